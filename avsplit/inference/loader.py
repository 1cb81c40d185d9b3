"""Decoding videos for ``separate`` in DataLoader worker processes (``-j``), as a stream of messages
per video: :class:`VideoStart`, one :class:`VideoWindow` per window, then :class:`VideoEnd` -- or
:class:`VideoFailed` as soon as the video fails."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from avsplit import io as media
from avsplit.dsp.chunking import Window
from avsplit.errors import AvsplitError
from avsplit.inference.discovery import discovery_windows
from avsplit.inference.windows import OutputPlan, WindowStream
from avsplit.models import ModelConfig


@dataclass
class VideoStart:
    """A video's probe info, windows and where its stems are made (one plan per output) and, when its
    sources must be found, the discovery windows (audio ``(M, S)``, frames ``(M, F, H, W, 3)``)."""

    video: int
    info: media.MediaInfo
    windows: list[Window]
    frame_size: tuple[int, int]
    discovery: tuple[np.ndarray, np.ndarray] | None
    outputs: list[OutputPlan]


@dataclass
class VideoWindow:
    """One window: model-rate mixture ``audio`` ``(S,)``, ``frames`` ``(F, H, W, 3)`` inside it and, for
    each output, the ``originals`` sound at its rate ``(C, S_out)``."""

    video: int
    window: Window
    audio: np.ndarray
    frames: np.ndarray
    originals: tuple[np.ndarray, ...]


@dataclass
class VideoEnd:
    video: int


@dataclass
class VideoFailed:
    video: int
    message: str
    """The one-line reason."""


VideoMessage = VideoStart | VideoWindow | VideoEnd | VideoFailed


class VideoWindowSource(torch.utils.data.IterableDataset):
    """Decodes videos for separation, in DataLoader worker processes when ``-j`` > 1.

    Each worker takes every n-th video and yields its messages in order (see the module doc).
    ``sample_rate``/``mono``: the output rate (default: each video's own) and channels.
    """

    def __init__(self, paths: Sequence[Path], config: ModelConfig, overlap: float, discover: bool,
                 sample_rate: int | None = None, mono: bool = False):
        self.paths = [Path(p) for p in paths]
        self.config = config
        self.overlap = overlap
        self.discover = discover
        self.sample_rate = sample_rate
        self.mono = mono

    def __iter__(self) -> Iterator[VideoMessage]:
        info = torch.utils.data.get_worker_info()
        ids = range(len(self.paths)) if info is None else range(info.id, len(self.paths), info.num_workers)
        for i in ids:
            try:
                stream = WindowStream(self.paths[i], self.config, self.overlap, out_rate=self.sample_rate, mono=self.mono)
                yield from video_messages(i, stream, self.discover)
            except AvsplitError as exc:
                yield VideoFailed(i, str(exc))


def video_messages(video: int, stream: WindowStream, discover: bool,
                   more: Sequence[WindowStream] = ()) -> Iterator[VideoStart | VideoWindow | VideoEnd]:
    """The messages of one video read by ``stream`` (a decoding error is raised). ``discover``: read
    the discovery windows first; ``more``: streams of the same video with other outputs (rates or
    channels), whose original sound comes with each window too, after ``stream``'s."""
    streams = (stream, *more)
    disc = discovery_windows(stream) if discover else None
    yield VideoStart(video, stream.info, stream.windows, stream.frame_size, disc, [s.output for s in streams])
    if disc is not None and len(disc[0]) == len(stream.windows):
        # a short video: every window was read for discovery, so it is not decoded twice
        windows = zip(stream.windows, disc[0], disc[1])
    else:
        windows = stream.iterate()
    for (win, audio, frames), originals in zip(windows, zip(*(s.original_in_order() for s in streams))):
        yield VideoWindow(video, win, audio, frames, originals)
    yield VideoEnd(video)


def video_loader(source: VideoWindowSource, jobs: int) -> torch.utils.data.DataLoader:
    """The messages of ``source``, decoded in ``jobs`` worker processes (in-process for ``jobs`` <= 1)."""
    workers = min(jobs, len(source.paths)) if jobs > 1 else 0
    return torch.utils.data.DataLoader(source, batch_size=None, num_workers=workers, collate_fn=_passthrough,
                                       prefetch_factor=4 if workers else None)


def _passthrough(item):
    return item
