"""A video read window by window for the model: its sound at the model's rate (and the original
sound at the output rate), and its frames at the model's frame times, streamed so that memory is
bounded by the window, not by the video's length (windows: :mod:`avsplit.dsp.chunking`).
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from dataclasses import dataclass

from avsplit import io as media
from avsplit.dsp import fullband
from avsplit.dsp.chunking import Window, centred_times, plan_windows, rescale_windows
from avsplit.errors import AvsplitError
from avsplit.models import AVSeparator, ModelConfig


@dataclass(frozen=True)
class OutputPlan:
    """Where a video's stems are made: on an STFT at the output rate with the model's resolution in
    seconds (``target``), over ``total`` samples, in the model's windows carried to that rate."""

    target: fullband.OutputStft
    total: int
    windows: list[Window]


class WindowStream:
    """Windows of one video: mixture-audio chunks and the frames inside each window, in order.

    Audio is read per window (a seek each); frames are decoded once, sequentially, at the model's
    frame rate, and only those of the current window are kept.
    """

    def __init__(self, path: Path, model: AVSeparator | ModelConfig, overlap: float, info: media.MediaInfo | None = None,
                 need_audio: bool = True, out_rate: int | None = None, mono: bool = False):
        self.path = Path(path)
        self.cfg = model if isinstance(model, ModelConfig) else model.config
        self.info = info or media.probe(self.path)
        self.info.require_video()
        if need_audio:
            self.info.require_audio()
        rate = self.cfg.audio.sample_rate
        self.total = max(1, int(round(self.info.duration * rate)))
        self.windows = plan_windows(self.total, self.cfg.audio.clip_samples, overlap)
        self.frame_size = media.scaled_size(self.info.width, self.info.height, self.cfg.video.short_side)
        self.set_output(out_rate or self.info.audio_rate or rate, mono)

    def set_output(self, rate: int, mono: bool) -> None:
        """Where the stems are made (:attr:`output`): the original sound at ``rate``, all its channels
        (or mixed down to one by FFmpeg when ``mono``)."""
        model_rate = self.cfg.audio.sample_rate
        self.mono = bool(mono)
        self.output = OutputPlan(fullband.scaled_stft(self.cfg.audio, int(rate)), int(round(self.total * rate / model_rate)),
                                 rescale_windows(self.windows, model_rate, int(rate)))

    def audio(self, win: Window) -> np.ndarray:
        """``(clip_samples,)`` float32: the window's audio, zero-padded past the end of the file."""
        rate = self.cfg.audio.sample_rate
        size = self.cfg.audio.clip_samples
        wave = media.read_audio(self.path, rate, start=win.start / rate, duration=size / rate)
        out = np.zeros(size, np.float32)
        out[: min(size, wave.shape[0])] = wave[:size]
        return out

    def frame_times(self, win: Window) -> np.ndarray:
        """Times (s) of the ``frames_per_window`` frames of a window (``num_frames``; every frame at the
        model's rate for motion models): centres of equal parts of the real content."""
        rate = self.cfg.audio.sample_rate
        n = self.cfg.frames_per_window
        start = win.start / rate
        span = max(win.length, 1) / rate
        span = min(span, max(self.info.duration - start, 1e-3))
        return centred_times(start, span, n)

    def frames_for(self, times: Sequence[np.ndarray]) -> Iterator[np.ndarray]:
        """For each window's sorted times, the frames on screen then: uint8 ``(n, H, W, 3)``.

        Decodes the video once at the model's frame rate, holding only the frames still needed.
        """
        step = 1.0 / self.cfg.video.fps
        stream = media.iter_frames(self.path, fps=self.cfg.video.fps, short_side=self.cfg.video.short_side)
        buffer: deque[tuple[float, np.ndarray]] = deque()
        done = False
        for wanted in times:
            picked = []
            for t in wanted:
                while not done and (not buffer or buffer[-1][0] < t + step / 2):
                    try:
                        buffer.append(next(stream))
                    except StopIteration:
                        done = True
                if not buffer:
                    raise AvsplitError("video stream has no decodable frames", self.path, "check the file plays")
                best = min(buffer, key=lambda item: abs(item[0] - t) if item[0] <= t + 1e-6 else math.inf)
                if best[0] > t + 1e-6:
                    best = buffer[0]
                picked.append(best[1])
            # frames before this window's first time can be dropped (windows advance in time)
            while len(buffer) > 1 and buffer[1][0] <= wanted[0]:
                buffer.popleft()
            yield np.stack(picked)

    def frames_at(self, times: np.ndarray) -> np.ndarray:
        """Frames on screen at ``times`` by seeking (for a few scattered windows): ``(n, H, W, 3)``."""
        return media.read_frames(self.path, list(times), short_side=self.cfg.video.short_side)

    def audio_in_order(self, windows: Sequence[Window]) -> Iterator[np.ndarray]:
        """:meth:`audio` of each of ``windows`` (sorted by start), from one decode of the sound track
        in order rather than a seek per window; only the samples still needed are held."""
        rate, size = self.cfg.audio.sample_rate, self.cfg.audio.clip_samples
        for piece in _slices_in_order(media.iter_audio(self.path, rate), windows, size, 1, self.path):
            yield piece[0]

    def original_in_order(self) -> Iterator[np.ndarray]:
        """The original sound of each of the :attr:`output` windows at the output rate:
        ``(channels, target.clip_samples)`` float32 (the decoded channels, or 1 when :attr:`mono`),
        zero-padded past the end."""
        target = self.output.target
        chunks = media.iter_audio(self.path, target.sample_rate, mono=self.mono)
        yield from _slices_in_order(chunks, self.output.windows, target.clip_samples, 1 if self.mono else None, self.path)

    def iterate(self) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
        """``(window, audio (clip_samples,), frames (num_frames, H, W, 3))`` for every window, in order
        (one sequential decode of the sound track and one of the pictures)."""
        times = [self.frame_times(w) for w in self.windows]
        yield from zip(self.windows, self.audio_in_order(self.windows), self.frames_for(times))


def _slices_in_order(chunks: Iterator[np.ndarray], windows: Sequence[Window], size: int, channels: int | None,
                     path: Path) -> Iterator[np.ndarray]:
    """Cut consecutive decoded chunks ``(C, n)`` into windows (sorted by start): ``(C, size)`` float32
    each, zero-padded past the end; only the samples some later window needs are held.
    ``channels``: the count every chunk must have (None: that of the first chunk)."""
    held: np.ndarray | None = None  # decoded samples from `offset` on
    offset = 0
    ended = False
    for win in windows:
        if held is not None and win.start > offset:  # drop what no later window needs
            drop = min(win.start - offset, held.shape[1])
            held, offset = held[:, drop:], offset + drop
        pieces = [] if held is None else [held]
        have = offset + (0 if held is None else held.shape[1])
        while not ended and have < win.start + size:
            chunk = next(chunks, None)
            if chunk is None:
                ended = True
                continue
            channels = channels or chunk.shape[0]
            if chunk.shape[0] != channels:
                raise AvsplitError(f"the sound track changes from {channels} to {chunk.shape[0]} channels", path,
                                   "separate it with --channels mono")
            pieces.append(chunk)
            have += chunk.shape[1]
        held = np.concatenate(pieces, axis=1) if pieces else np.zeros((channels or 1, 0), np.float32)
        out = np.zeros((held.shape[0], size), np.float32)
        part = held[:, max(0, win.start - offset) : max(0, win.start - offset) + size]
        out[:, : part.shape[1]] = part
        yield out
