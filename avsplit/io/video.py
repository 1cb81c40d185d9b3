"""Decoding video frames as RGB arrays: streaming at a rate, or at given times."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator, Sequence

import av
from av.video.reformatter import VideoReformatter
import numpy as np

from avsplit.errors import EmptyMediaError, NoVideoStreamError, UnreadableMediaError
from avsplit.io.container import _EPS, FIX_UNREADABLE, _SEEK_GAP, _check_decodable, _open, _tolerance, _video_stream
from avsplit.io.demux import _StreamReader, _frames_at
from avsplit.io.isolation import guarded, isolation_on


def iter_frames(path: str | Path, fps: float | None = None, start: float = 0.0, duration: float | None = None,
                short_side: int | None = None, size: tuple[int, int] | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """See :func:`_iter_frames_here` (in a child process inside :func:`isolated_decoding`)."""
    if isolation_on():
        return guarded(path, _iter_frames_here, path, fps, start, duration, short_side, size)
    return _iter_frames_here(path, fps, start, duration, short_side, size)


def read_frames(path: str | Path, times: Sequence[float], short_side: int | None = None,
                size: tuple[int, int] | None = None) -> np.ndarray:
    """See :func:`_read_frames_here` (in a child process inside :func:`isolated_decoding`)."""
    if isolation_on():
        return next(guarded(path, _read_frames_here, path, times, short_side, size))
    return _read_frames_here(path, times, short_side, size)



# -------------------------------------------------------------------------------------- frames


def scaled_size(width: int, height: int, short_side: int | None = None, size: tuple[int, int] | None = None) -> tuple[int, int]:
    """Output ``(width, height)``: ``size`` as given, or the short side scaled to ``short_side``.

    With ``short_side`` the aspect ratio is kept and both sides are rounded to even numbers.
    With neither, the original size.
    """
    if size is not None:
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0:
            raise ValueError(f"size must be positive, got {size}")
        return w, h
    if short_side is None:
        return int(width), int(height)
    if short_side <= 0:
        raise ValueError(f"short_side must be positive, got {short_side}")
    scale = short_side / min(width, height)
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


class _RGB:
    """Converts decoded frames to RGB uint8 at one output size with one reused scaler context."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.reformatter = VideoReformatter()

    def __call__(self, frame) -> np.ndarray:
        out = self.reformatter.reformat(frame, width=self.width, height=self.height, format="rgb24", interpolation="AREA")
        return out.to_ndarray()


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 frames ``(n, H, W, 3)`` at ``size`` ``(width, height)``, resized by FFmpeg's scaler with
    the area filter decoded frames are resized with (returned as they are when already that size)."""
    width, height = size
    if frames.shape[1:3] == (height, width):
        return frames
    reformatter = VideoReformatter()
    return np.stack([reformatter.reformat(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24"), width=width,
                                          height=height, format="rgb24", interpolation="AREA").to_ndarray() for f in frames])


def _open_video(container, path: Path):
    stream = _video_stream(container)
    if stream is None:
        raise NoVideoStreamError("has no video stream", path, "give a video file, not an audio-only file")
    _check_decodable(stream, path, "video")
    ctx = stream.codec_context
    if not ctx.width or not ctx.height:
        raise UnreadableMediaError("video stream has no picture size", path, FIX_UNREADABLE)
    stream.thread_type = "AUTO"
    return stream


def _iter_frames_here(
    path: str | Path,
    fps: float | None = None,
    start: float = 0.0,
    duration: float | None = None,
    short_side: int | None = None,
    size: tuple[int, int] | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream ``(time, frame)`` pairs: RGB uint8 ``(height, width, 3)`` frames resized by FFmpeg.

    With ``fps`` the frames are sampled at times ``start + k / fps`` (k = 0, 1, ...), each being
    the frame on screen at that time (the last frame whose timestamp is <= t; before the first
    frame, the first frame), which is exact for variable-frame-rate video too; the last frame
    stays on screen for its own duration. Without ``fps`` every decoded frame in
    ``[start, start + duration)`` is yielded with its own timestamp. ``size`` is
    ``(width, height)``; ``short_side`` keeps the aspect ratio. Only one decoded frame is held at
    a time, so memory does not grow with the video's length. Running past the point where a
    truncated file's data stops raises :class:`TruncatedMediaError` (after the frames before it).
    """
    path = Path(path)
    start = max(0.0, float(start))
    end = math.inf if duration is None else start + float(duration)
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    with _open(path) as container:
        stream = _open_video(container, path)
        ctx = stream.codec_context
        convert = _RGB(*scaled_size(ctx.width, ctx.height, short_side, size))
        reader = _StreamReader(container, stream, path)
        frames = _frames_at(reader, start)
        default_period = 1.0 / float(stream.average_rate) if stream.average_rate else None
        try:
            if fps is None:
                yield from _every_frame(reader, frames, convert, start, end, _tolerance(stream), default_period)
            else:
                at_rate = _FramesAtRate(reader, convert, start, end, 1.0 / float(fps), _tolerance(stream), default_period)
                yield from at_rate.sample(frames, container, path)
        finally:
            frames.close()


def _every_frame(reader: _StreamReader, frames: Iterator, convert: _RGB, start: float, end: float, eps: float,
                 default_period: float | None) -> Iterator[tuple[float, np.ndarray]]:
    """Every decoded frame in ``[start, end)`` with its own timestamp (a frame without one is taken to
    follow the one before by the stream's average period)."""
    last_t = None
    for frame in frames:
        t = reader.frame_time(frame)
        if t is None:
            t = (last_t + (default_period or 0.0)) if last_t is not None else start
        last_t = t
        if t < start - eps:
            continue
        if t >= end:
            return
        yield t, convert(frame)
    reader.check_not_truncated()


class _FramesAtRate:
    """The frames on screen at the times ``start + k * step`` before ``end``; one decoded frame is held
    (the last one whose timestamp is at or before the next time), converted once however often shown."""

    def __init__(self, reader: _StreamReader, convert: _RGB, start: float, end: float, step: float, eps: float,
                 default_period: float | None):
        self.reader, self.convert = reader, convert
        self.start, self.end, self.step, self.eps = start, end, step, eps
        self.default_period = default_period
        self.k = 0
        self.target = start
        self.held = None  # the decoded frame on screen at `target`
        self.held_t = 0.0
        self.held_rgb = None

    def _show_held(self) -> tuple[float, np.ndarray]:
        """``(target, the held frame)``, and on to the next target time."""
        if self.held_rgb is None:
            self.held_rgb = self.convert(self.held)
        shown = (self.target, self.held_rgb)
        self.k += 1
        self.target = self.start + self.k * self.step
        return shown

    def sample(self, frames: Iterator, container, path: Path) -> Iterator[tuple[float, np.ndarray]]:
        for frame in frames:
            t = self.reader.frame_time(frame)
            if t is None:
                t = self.held_t + (self.default_period or self.step) if self.held is not None else self.target
            while self.target < self.end and self.held is not None and t > self.target + self.eps:
                yield self._show_held()
            if self.target >= self.end:
                return
            # Before the stream's first frame, the first frame is what a player shows.
            self.held, self.held_t, self.held_rgb = frame, t, None
        if self.held is None:
            self.reader.check_not_truncated()
            if self.start > 0:
                return  # start is past the last frame: nothing to show
            raise EmptyMediaError("video stream has no decodable frames", path, FIX_UNREADABLE)
        yield from self._after_last(container)

    def _after_last(self, container) -> Iterator[tuple[float, np.ndarray]]:
        """After the last frame: it stays on screen for its own duration (not past the file's end)."""
        until = self.held_t + (_frame_period(self.held) or self.default_period or self.step)
        if container.duration is not None:
            until = max(self.held_t + _EPS * 2, min(until, container.duration / av.time_base))
        while self.target < self.end and self.target < until - _EPS:
            yield self._show_held()
        if self.target < self.end:
            self.reader.check_not_truncated()


def _frame_period(frame) -> float | None:
    duration = getattr(frame, "duration", None)
    if duration and frame.time_base is not None:
        return float(duration * frame.time_base)
    return None


def _read_frames_here(
    path: str | Path,
    times: Sequence[float],
    short_side: int | None = None,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """The frames on screen at each of ``times`` (seconds): uint8 ``(len(times), height, width, 3)``.

    Times far apart are reached by seeking, close ones by decoding forward, so a few frames from
    a long video are cheap. A time past the end of the video gives the last frame (for a
    truncated file, a time past where its data stops raises :class:`TruncatedMediaError`).
    """
    path = Path(path)
    wanted = np.asarray(times, dtype=np.float64).reshape(-1)
    if wanted.size == 0:
        raise ValueError("read_frames needs at least one time")
    if not np.all(np.isfinite(wanted)):
        raise ValueError("read_frames times must be finite")
    order = np.argsort(wanted, kind="stable")
    with _open(path) as container:
        stream = _open_video(container, path)
        ctx = stream.codec_context
        out_w, out_h = scaled_size(ctx.width, ctx.height, short_side, size)
        convert = _RGB(out_w, out_h)
        reader = _StreamReader(container, stream, path)
        eps = _tolerance(stream)
        result = np.empty((wanted.size, out_h, out_w, 3), np.uint8)
        frames = None
        held = held_rgb = pending = None
        held_t = pending_t = -math.inf
        exhausted = False
        try:
            for idx in order:
                t = max(0.0, float(wanted[idx]))
                position = max(held_t, pending_t)
                if frames is None or (not exhausted and t > position + _SEEK_GAP):
                    if frames is not None:
                        frames.close()
                    frames = _frames_at(reader, t)
                    held = held_rgb = pending = None
                    held_t = pending_t = -math.inf
                    exhausted = False
                while not exhausted:
                    if pending is None:
                        pending = next(frames, None)
                        if pending is None:
                            exhausted = True
                            break
                        pt = reader.frame_time(pending)
                        pending_t = pt if pt is not None else (held_t + 1e-3 if held is not None else t)
                    if pending_t <= t + eps:
                        held, held_t, held_rgb, pending = pending, pending_t, None, None
                        continue
                    break
                if held is None:
                    if pending is None:
                        reader.check_not_truncated()
                        raise EmptyMediaError("video stream has no decodable frames", path, FIX_UNREADABLE)
                    # t is before the stream's first frame: the first frame is on screen.
                    result[idx] = convert(pending)
                    continue
                if exhausted and t > held_t + (_frame_period(held) or 0.0) + eps:
                    reader.check_not_truncated()
                if held_rgb is None:
                    held_rgb = convert(held)
                result[idx] = held_rgb
        finally:
            if frames is not None:
                frames.close()
    return result
