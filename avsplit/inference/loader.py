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
from avsplit.dsp import fullband
from avsplit.dsp.chunking import Window
from avsplit.errors import AvsplitError
from avsplit.inference.discovery import discovery_windows
from avsplit.inference.windows import WindowStream
from avsplit.models import ModelConfig


@dataclass
class VideoStart:
    """A video's probe info, windows (model rate and output rate) and, when its sources must be
    found, the discovery windows (audio ``(M, S)``, frames ``(M, F, H, W, 3)``)."""

    video: int
    info: media.MediaInfo
    windows: list[Window]
    frame_size: tuple[int, int]
    discovery: tuple[np.ndarray, np.ndarray] | None
    target: fullband.OutputStft
    out_total: int
    out_windows: list[Window]


@dataclass
class VideoWindow:
    """One window: model-rate mixture ``audio`` ``(S,)``, ``frames`` ``(F, H, W, 3)`` inside it and the
    ``original`` sound at the output rate ``(C, S_out)``."""

    video: int
    window: Window
    audio: np.ndarray
    frames: np.ndarray
    original: np.ndarray


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
                disc = discovery_windows(stream) if self.discover else None
                yield VideoStart(i, stream.info, stream.windows, stream.frame_size, disc, stream.target,
                                 stream.out_total, stream.out_windows)
                if disc is not None and len(disc[0]) == len(stream.windows):
                    # a short video: every window was read for discovery, so it is not decoded twice
                    windows = zip(stream.windows, disc[0], disc[1])
                else:
                    windows = stream.iterate()
                for (win, audio, frames), original in zip(windows, stream.original_in_order()):
                    yield VideoWindow(i, win, audio, frames, original)
                yield VideoEnd(i)
            except AvsplitError as exc:
                yield VideoFailed(i, str(exc))


def video_loader(source: VideoWindowSource, jobs: int) -> torch.utils.data.DataLoader:
    """The messages of ``source``, decoded in ``jobs`` worker processes (in-process for ``jobs`` <= 1)."""
    workers = min(jobs, len(source.paths)) if jobs > 1 else 0
    return torch.utils.data.DataLoader(source, batch_size=None, num_workers=workers, collate_fn=_passthrough,
                                       prefetch_factor=4 if workers else None)


def _passthrough(item):
    return item
