"""Media I/O on PyAV (FFmpeg in-process): probing, decoding, encoding.

Everything that touches a media container lives here. Decoding functions stream: nothing holds a
whole video in memory, and reading a late window seeks instead of decoding from the start.
Every failure is raised as a :class:`avsplit.errors.MediaError` subclass whose message is one
line naming the file and the fix.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import av
import av.error
import numpy as np
import soundfile

from avsplit.errors import (
    EmptyMediaError,
    MediaError,
    NoAudioStreamError,
    NoVideoStreamError,
    OutputError,
    UnreadableMediaError,
)
from avsplit.files import atomic_path

__all__ = [
    "MediaInfo",
    "probe",
    "read_audio",
    "iter_frames",
    "read_frames",
    "scaled_size",
    "write_audio",
    "read_audio_file",
    "VideoWriter",
]

_FIX_UNREADABLE = "check that it is a complete video file FFmpeg can play (re-download or re-export it)"
# How many packets the probe inspects to decide whether the frame rate is variable.
_VFR_PROBE_PACKETS = 240


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learns about a media file without decoding it."""

    path: Path
    duration: float
    """Seconds; the longest of the container's and the streams' durations."""
    has_video: bool
    has_audio: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    """Average frame rate (frames/second); for variable-rate video, the mean rate."""
    variable_frame_rate: bool = False
    num_frames: int | None = None
    """Frame count from the container when it gives one, else estimated from duration x fps."""
    audio_rate: int | None = None
    audio_channels: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    video_start: float = 0.0
    audio_start: float = 0.0

    def require_video(self) -> "MediaInfo":
        if not self.has_video:
            raise NoVideoStreamError("has no video stream", self.path, "give a video file, not an audio-only file")
        return self

    def require_audio(self) -> "MediaInfo":
        if not self.has_audio:
            raise NoAudioStreamError("has no audio stream", self.path, "give a video with a sound track")
        return self


def _open(path: str | Path):
    """Open a container for reading, turning every failure into a one-line MediaError."""
    path = Path(path)
    if not path.exists():
        raise MediaError("no such file", path, "check the path")
    if path.is_dir():
        raise MediaError("is a folder, not a media file", path, "give a video file")
    if path.stat().st_size == 0:
        raise EmptyMediaError("file is empty (0 bytes)", path, "re-download or re-export it")
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        reason = _ffmpeg_reason(exc)
        if "moov atom not found" in reason.lower():
            raise UnreadableMediaError(
                "is truncated or incomplete (no MP4 index)", path, "re-download or re-export it"
            ) from exc
        raise UnreadableMediaError(f"not a media file FFmpeg can read ({reason})", path, _FIX_UNREADABLE) from exc
    except (OSError, ValueError, UnicodeError) as exc:
        raise UnreadableMediaError(f"cannot open ({exc})", path, _FIX_UNREADABLE) from exc


def _ffmpeg_reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())


def _stream_seconds(value, time_base) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def probe(path: str | Path) -> MediaInfo:
    """Streams, duration, frame rate (variable-rate aware), size and audio layout of a file.

    Raises :class:`EmptyMediaError` for a zero-byte file or one with no duration,
    :class:`UnreadableMediaError` for anything FFmpeg cannot read.
    """
    path = Path(path)
    with _open(path) as container:
        vstreams = list(container.streams.video)
        astreams = list(container.streams.audio)
        if not vstreams and not astreams:
            raise UnreadableMediaError("has no audio or video stream", path, _FIX_UNREADABLE)
        durations = []
        if container.duration is not None:
            durations.append(container.duration / av.time_base)
        info: dict = {"path": path, "has_video": bool(vstreams), "has_audio": bool(astreams)}
        if vstreams:
            vs = vstreams[0]
            ctx = vs.codec_context
            info.update(width=ctx.width, height=ctx.height, video_codec=ctx.name)
            d = _stream_seconds(vs.duration, vs.time_base)
            if d:
                durations.append(d)
            info["video_start"] = _stream_seconds(vs.start_time, vs.time_base) or 0.0
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            info["fps"] = float(rate) if rate else None
            info["variable_frame_rate"] = _looks_variable(container, vs)
            container.seek(0)
            if vs.frames:
                info["num_frames"] = int(vs.frames)
        if astreams:
            a = astreams[0]
            actx = a.codec_context
            info.update(audio_rate=actx.sample_rate, audio_channels=actx.channels, audio_codec=actx.name)
            d = _stream_seconds(a.duration, a.time_base)
            if d:
                durations.append(d)
            info["audio_start"] = _stream_seconds(a.start_time, a.time_base) or 0.0
        duration = max(durations) if durations else 0.0
        if info.get("num_frames") is None and info.get("fps") and duration:
            info["num_frames"] = int(round(duration * info["fps"]))
    if not duration or duration <= 0 or not math.isfinite(duration):
        raise EmptyMediaError("has zero length", path, "re-export it; the file holds no playable content")
    if info.get("has_video") and (not info.get("width") or not info.get("height")):
        raise UnreadableMediaError("video stream has no picture size", path, _FIX_UNREADABLE)
    return MediaInfo(duration=duration, **info)


def _looks_variable(container, stream) -> bool:
    """True when packet timestamps of the first few seconds are not evenly spaced."""
    pts = []
    try:
        for packet in container.demux(stream):
            if packet.pts is not None:
                pts.append(packet.pts)
            if len(pts) >= _VFR_PROBE_PACKETS:
                break
    except av.error.FFmpegError:
        return False
    if len(pts) < 3:
        return False
    deltas = np.diff(np.sort(np.asarray(pts, dtype=np.int64)))
    deltas = deltas[deltas > 0]
    if deltas.size < 2:
        return False
    median = float(np.median(deltas))
    return bool(np.max(np.abs(deltas - median)) > 0.1 * median + 1)


# --------------------------------------------------------------------------------------- audio


def read_audio(
    path: str | Path,
    sample_rate: int,
    start: float = 0.0,
    duration: float | None = None,
    mono: bool = True,
) -> np.ndarray:
    """Decode audio resampled by FFmpeg to ``sample_rate``, from ``start`` for ``duration`` seconds.

    Returns float32 ``(samples,)`` when ``mono`` (channels are mixed down by FFmpeg), else
    ``(channels, samples)``. A late window is reached by seeking, not by decoding from the start.
    The result is exactly ``round(duration * sample_rate)`` samples long unless the stream ends
    first (then it is shorter; callers that need a full window pad it). Silence before the
    stream's first sample is returned as zeros, since it is silence in the file too.
    """
    path = Path(path)
    start = max(0.0, float(start))
    wanted = None if duration is None else max(0, int(round(duration * sample_rate)))
    with _open(path) as container:
        if not container.streams.audio:
            raise NoAudioStreamError("has no audio stream", path, "give a video with a sound track")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        channels = stream.codec_context.channels or 1
        layout = "mono" if mono else ("stereo" if channels == 2 else None)
        resampler = av.AudioResampler(format="fltp", layout=layout or stream.codec_context.layout, rate=sample_rate)
        if start > 0:
            _seek(container, stream, start, path)
        chunks: list[np.ndarray] = []
        have = 0
        skip: int | None = None  # samples to drop (or, if negative, zeros to prepend) at the front
        for frame in _decode(container, stream, path):
            if skip is None:
                t0 = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
                skip = int(round((start - t0) * sample_rate))
            for out in resampler.resample(frame):
                arr = out.to_ndarray()
                chunks.append(arr)
                have += arr.shape[1]
            if wanted is not None and have - (skip or 0) >= wanted:
                break
        else:
            for out in resampler.resample(None):
                arr = out.to_ndarray()
                chunks.append(arr)
                have += arr.shape[1]
    n_ch = 1 if layout == "mono" else (2 if layout == "stereo" else channels)
    audio = np.concatenate(chunks, axis=1) if chunks else np.zeros((n_ch, 0), np.float32)
    skip = skip or 0
    if skip > 0:
        audio = audio[:, skip:]
    elif skip < 0:
        audio = np.concatenate([np.zeros((audio.shape[0], -skip), np.float32), audio], axis=1)
    if wanted is not None:
        audio = audio[:, :wanted]
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    return audio[0] if mono else audio


def _seek(container, stream, seconds: float, path: Path) -> None:
    """Seek to the last keyframe at or before ``seconds``."""
    target = int(seconds / stream.time_base) if stream.time_base else int(seconds * av.time_base)
    if stream.start_time is not None:
        target += stream.start_time
    try:
        container.seek(target, stream=stream, backward=True, any_frame=False)
    except av.error.FFmpegError as exc:
        raise UnreadableMediaError(f"cannot seek to {seconds:.2f} s ({_ffmpeg_reason(exc)})", path, _FIX_UNREADABLE) from exc


def _decode(container, stream, path: Path):
    """Decode frames of one stream; a decoding failure becomes an UnreadableMediaError.

    A few corrupt packets inside a stream are skipped, as players do; a stream that yields
    nothing at all but errors is reported.
    """
    decoded = 0
    errors = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                errors += 1
                if errors > 50 and decoded == 0:
                    raise UnreadableMediaError("stream does not decode (corrupt data)", path, _FIX_UNREADABLE)
                continue
            for frame in frames:
                decoded += 1
                yield frame
    except av.error.FFmpegError as exc:
        if decoded == 0:
            raise UnreadableMediaError(f"decoding failed ({_ffmpeg_reason(exc)})", path, _FIX_UNREADABLE) from exc
        # Data ended early (a truncated file): what decoded is real content, so stop there.
        return


def read_audio_file(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV/FLAC file with soundfile: float32 ``(channels, samples)`` and its rate."""
    path = Path(path)
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise UnreadableMediaError(f"cannot read audio ({exc})", path, "give a WAV or FLAC file") from exc
    return np.ascontiguousarray(data.T), int(rate)


def write_audio(
    path: str | Path,
    audio: np.ndarray,
    sample_rate: int,
    format: str | None = None,
    subtype: str = "PCM_16",
) -> Path:
    """Write ``audio`` (``(samples,)`` or ``(channels, samples)``, float in [-1, 1]) atomically.

    The format comes from ``format`` (``wav``/``flac``) or the file extension. Samples beyond
    [-1, 1] are clipped for integer subtypes.
    """
    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise ValueError(f"audio must be (samples,) or (channels, samples), got shape {audio.shape}")
    fmt = (format or path.suffix.lstrip(".") or "wav").upper()
    if subtype.startswith("PCM"):
        audio = np.clip(audio, -1.0, 1.0)
    try:
        with atomic_path(path) as tmp:
            soundfile.write(str(tmp), audio.T, int(sample_rate), format=fmt, subtype=subtype)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise OutputError(f"cannot write audio ({exc})", path, "choose a writable output folder") from exc
    except PermissionError as exc:
        raise OutputError("permission denied", path, "choose a writable output folder") from exc
    return path


# -------------------------------------------------------------------------------------- frames


def scaled_size(width: int, height: int, short_side: int | None = None, size: tuple[int, int] | None = None) -> tuple[int, int]:
    """Output ``(width, height)``: ``size`` as given, or the short side scaled to ``short_side``.

    With ``short_side`` the aspect ratio is kept and both sides are rounded to even numbers.
    With neither, the original size.
    """
    if size is not None:
        return int(size[0]), int(size[1])
    if short_side is None:
        return width, height
    scale = short_side / min(width, height)
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


def iter_frames(
    path: str | Path,
    fps: float | None = None,
    start: float = 0.0,
    duration: float | None = None,
    short_side: int | None = None,
    size: tuple[int, int] | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream ``(time, frame)`` pairs: RGB uint8 ``(height, width, 3)`` frames resized by FFmpeg.

    With ``fps`` the frames are sampled at times ``start + k / fps`` (k = 0, 1, ...), each being
    the frame on screen at that time (the last frame whose timestamp is <= t), which is exact
    for variable-frame-rate video too. Without ``fps`` every decoded frame is yielded with its
    own timestamp. ``size`` is ``(width, height)``; ``short_side`` keeps the aspect ratio. Only
    one decoded frame is held at a time, so memory does not grow with the video's length.
    """
    path = Path(path)
    start = max(0.0, float(start))
    end = math.inf if duration is None else start + float(duration)
    with _open(path) as container:
        if not container.streams.video:
            raise NoVideoStreamError("has no video stream", path, "give a video file, not an audio-only file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        ctx = stream.codec_context
        out_w, out_h = scaled_size(ctx.width, ctx.height, short_side, size)
        stream_start = _stream_seconds(stream.start_time, stream.time_base) or 0.0
        if start > 0:
            _seek(container, stream, start, path)

        def convert(frame) -> np.ndarray:
            return frame.to_ndarray(width=out_w, height=out_h, format="rgb24", interpolation="AREA")

        def frame_time(frame) -> float:
            if frame.pts is None:
                return math.nan
            return float(frame.pts * frame.time_base) - stream_start

        if fps is None:
            for frame in _decode(container, stream, path):
                t = frame_time(frame)
                if t < start - 1e-6:
                    continue
                if t >= end:
                    return
                yield t, convert(frame)
            return

        step = 1.0 / float(fps)
        k = 0
        target = start
        held = None  # (time, av frame) currently on screen
        held_rgb = None
        for frame in _decode(container, stream, path):
            t = frame_time(frame)
            if math.isnan(t):
                t = held[0] + step if held is not None else start
            while target < end and t > target + 1e-6 and held is not None:
                if held_rgb is None:
                    held_rgb = convert(held[1])
                yield target, held_rgb
                k += 1
                target = start + k * step
            if target >= end:
                return
            if held is None and t > target + 1e-6:
                # The stream's first frame starts after the requested time: it is what a player
                # shows until then.
                pass
            held = (t, frame)
            held_rgb = None
        if held is None:
            if start > 0:
                return  # start is past the last frame: nothing to show
            raise EmptyMediaError("video stream has no decodable frames", path, _FIX_UNREADABLE)
        # After the last frame: it stays on screen for one frame period of the source.
        last_until = held[0] + (1.0 / float(stream.average_rate) if stream.average_rate else step)
        while target < end and target < last_until - 1e-6:
            if held_rgb is None:
                held_rgb = convert(held[1])
            yield target, held_rgb
            k += 1
            target = start + k * step


def read_frames(
    path: str | Path,
    times: Sequence[float],
    short_side: int | None = None,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """The frames on screen at each of ``times`` (seconds): uint8 ``(len(times), height, width, 3)``.

    Times far apart are reached by seeking, so a few frames from a long video are cheap. A time
    past the end of the video gives the last frame.
    """
    path = Path(path)
    order = np.argsort(np.asarray(times, dtype=np.float64))
    result: list[np.ndarray | None] = [None] * len(times)
    last: np.ndarray | None = None
    for idx in order:
        t = float(times[idx])
        got = None
        for _, frame in iter_frames(path, fps=1e6, start=t, duration=1e-6, short_side=short_side, size=size):
            got = frame
        if got is None:
            # Past the end: use the final frame (decode the last second).
            info = probe(path)
            for _, frame in iter_frames(path, start=max(0.0, info.duration - 2.0), short_side=short_side, size=size):
                got = frame
        if got is None:
            raise EmptyMediaError("video stream has no decodable frames", path, _FIX_UNREADABLE)
        result[idx] = got
        last = got
    if last is None:
        raise ValueError("read_frames needs at least one time")
    return np.stack(result)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------- writing


class VideoWriter:
    """Write an H.264 MP4 frame by frame, with AAC audio muxed in, atomically.

    Audio comes either from an array (``audio``: ``(samples,)`` or ``(channels, samples)`` float
    at ``audio_rate``) or is copied without re-encoding from another file's first audio stream
    (``copy_audio_from``), packet by packet, so a long sound track is never held in memory.
    Audio and video are interleaved as frames are written. The file appears at ``path`` only
    when :meth:`close` succeeds; on error the partial file is removed.

    Odd frame sizes are padded by one pixel (edge replicated) because H.264 4:2:0 needs even
    sizes. Use as a context manager::

        with VideoWriter(out, fps=25, width=320, height=240, audio=wave, audio_rate=22050) as w:
            for frame in frames:
                w.write(frame)
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        width: int,
        height: int,
        audio: np.ndarray | None = None,
        audio_rate: int | None = None,
        copy_audio_from: str | Path | None = None,
        crf: int = 23,
        preset: str = "veryfast",
    ):
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
        self.width, self.height = int(width), int(height)
        self._enc_w = self.width + (self.width % 2)
        self._enc_h = self.height + (self.height % 2)
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self._closed = False
        self._frames = 0
        try:
            self._container = av.open(str(self._tmp), mode="w", format="mp4")
            self._vstream = self._container.add_stream("libx264", rate=self.fps)
            self._vstream.width = self._enc_w
            self._vstream.height = self._enc_h
            self._vstream.pix_fmt = "yuv420p"
            self._vstream.options = {"crf": str(crf), "preset": preset}
            self._audio = None
            self._astream = None
            self._src = None
            if audio is not None:
                if audio_rate is None:
                    raise ValueError("audio_rate is needed with audio")
                arr = np.asarray(audio, dtype=np.float32)
                arr = arr[None] if arr.ndim == 1 else arr
                if arr.shape[0] > 2:
                    raise ValueError("VideoWriter audio must be mono or stereo")
                self._audio = np.ascontiguousarray(np.clip(arr, -1, 1))
                self._audio_rate = int(audio_rate)
                self._audio_pos = 0
                self._astream = self._container.add_stream("aac", rate=self._audio_rate)
                self._astream.layout = "mono" if arr.shape[0] == 1 else "stereo"
                self._astream.bit_rate = 128000
            elif copy_audio_from is not None:
                self._src = _open(copy_audio_from)
                if self._src.streams.audio:
                    src_stream = self._src.streams.audio[0]
                    self._astream = self._container.add_stream_from_template(src_stream)
                    self._src_stream = src_stream
                    self._src_packets = self._src.demux(src_stream)
                    self._pending = None
                else:
                    self._src.close()
                    self._src = None
        except BaseException:
            self._abort()
            raise

    # ---- public API
    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 ``(height, width, 3)`` frame."""
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            self._abort()
            raise ValueError(f"frame must be uint8 {(self.height, self.width, 3)}, got {frame.dtype} {frame.shape}")
        if (self._enc_w, self._enc_h) != (self.width, self.height):
            frame = np.pad(frame, ((0, self._enc_h - self.height), (0, self._enc_w - self.width), (0, 0)), mode="edge")
        try:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts = self._frames
            self._frames += 1
            for packet in self._vstream.encode(vf):
                self._container.mux(packet)
            self._mux_audio_until(self._frames / float(self.fps))
        except av.error.FFmpegError as exc:
            self._abort()
            raise OutputError(f"video encoding failed ({_ffmpeg_reason(exc)})", self.path, "check free disk space") from exc

    def close(self) -> Path:
        """Flush the encoders and move the file into place."""
        if self._closed:
            return self.path
        try:
            for packet in self._vstream.encode(None):
                self._container.mux(packet)
            self._mux_audio_until(math.inf)
            if self._astream is not None and self._audio is not None:
                for packet in self._astream.encode(None):
                    self._container.mux(packet)
            self._container.close()
            if self._src is not None:
                self._src.close()
        except BaseException:
            self._abort()
            raise
        self._closed = True
        self._atomic.__exit__(None, None, None)
        return self.path

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    # ---- internals
    def _mux_audio_until(self, seconds: float) -> None:
        if self._astream is None:
            return
        if self._audio is not None:
            total = self._audio.shape[1]
            until = total if math.isinf(seconds) else min(total, int(seconds * self._audio_rate))
            frame_size = self._astream.codec_context.frame_size or 1024
            layout = "mono" if self._audio.shape[0] == 1 else "stereo"
            while self._audio_pos < until and (until - self._audio_pos >= frame_size or math.isinf(seconds) or until == total):
                chunk = self._audio[:, self._audio_pos : self._audio_pos + frame_size]
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=layout)
                af.sample_rate = self._audio_rate
                af.pts = self._audio_pos
                self._audio_pos += chunk.shape[1]
                for packet in self._astream.encode(af):
                    self._container.mux(packet)
        else:
            while True:
                if self._pending is None:
                    try:
                        packet = next(self._src_packets)
                    except StopIteration:
                        self._astream_done = True
                        return
                    if packet.dts is None and packet.pts is None:
                        continue  # flush packet
                    self._pending = packet
                p = self._pending
                t = float((p.pts if p.pts is not None else p.dts) * p.time_base)
                if t > seconds:
                    return
                p.stream = self._astream
                self._container.mux(p)
                self._pending = None

    def _abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._container.close()
        if getattr(self, "_src", None) is not None:
            with contextlib.suppress(Exception):
                self._src.close()
        self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)
