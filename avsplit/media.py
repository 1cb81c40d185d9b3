"""Media I/O on PyAV (FFmpeg in-process): probing, decoding, encoding.

Everything that touches a media container lives here. Decoding functions stream: nothing holds a
whole video in memory, and reading a late window seeks instead of decoding from the start.
Every failure is raised as a :class:`avsplit.errors.MediaError` subclass whose message is one
line naming the file and the fix.

Time convention: every time given to or returned by this module is in seconds from the start of
the file (the earliest timestamp of any stream, FFmpeg's ``start_time``), for audio and video
alike, so audio and video stay in sync even for containers whose timestamps start late
(MPEG-TS starts at 1.4 s) or whose streams start at different times.

Truncated files: a file whose index promises more than its data holds (an MP4 written with its
index at the front and cut short, an MKV cut short, ...) is never used as if complete and never
padded with zeros. Reading a range that lies inside the part that is there works; asking for
anything past the point where the data stops raises :class:`TruncatedMediaError`.
:func:`probe` reports such files with ``truncated=True``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import av
import av.error
import numpy as np
import soundfile
from av.video.reformatter import VideoReformatter

from avsplit.errors import (
    EmptyMediaError,
    MediaError,
    MissingMediaError,
    NoAudioStreamError,
    NoVideoStreamError,
    OutputError,
    TruncatedMediaError,
    UnreadableMediaError,
)
from avsplit.files import atomic_path

__all__ = [
    "MediaInfo",
    "probe",
    "read_audio",
    "iter_audio",
    "iter_frames",
    "read_frames",
    "scaled_size",
    "write_audio",
    "read_audio_file",
    "VideoWriter",
]

_FIX_UNREADABLE = "check that it is a complete video file FFmpeg can play (re-download or re-export it)"
_FIX_TRUNCATED = "re-download or re-export it"
# How many packets the probe inspects to decide whether the frame rate is variable.
_VFR_PROBE_PACKETS = 240
# Time base of frames written at their own times (VideoWriter with variable_rate): the MPEG 90 kHz clock.
_VFR_TIME_BASE = Fraction(1, 90000)
# Data that stops more than this before the declared end of a stream means a truncated file.
_TRUNCATION_TOLERANCE = 0.5
# Audio is decoded from this long before a requested window, so that the decoder (AAC overlap,
# MP3 bit reservoir, Opus pre-roll) and the resampler's filter are warmed up: a late window is
# then sample-for-sample what a decode from the start gives.
_AUDIO_PREROLL = 0.25
# read_frames decodes forward instead of seeking when the next time is at most this far ahead.
_SEEK_GAP = 2.0
# More channels than any real layout FFmpeg writes (22.2 has 24): a frame claiming more is corrupt.
_MAX_CHANNELS = 64
# Consecutive demuxer errors after which the data is taken to stop there.
_MAX_DEMUX_FAILURES = 20
# Times within this of a frame's timestamp count as that frame (float rounding of timestamps);
# for coarse timestamps (Matroska: 1 ms) half a timestamp unit, see _tolerance.
_EPS = 1e-6

# Formats whose header states the duration (rather than FFmpeg estimating it from the bit rate):
# for them, data that stops well before that duration means the file was cut.
_DECLARED_DURATION_FORMATS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi"})
# Audio codecs whose frames (packets) all hold the same number of samples, but the last.
_FIXED_FRAME_CODECS = frozenset({"aac", "mp3", "mp3float", "mp2", "mp2float", "ac3", "eac3", "opus", "flac", "dca", "truehd"})
# First boxes of an ISO base media file (MP4/MOV/M4A/3GP).
_ISO_BMFF_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"})


def _tolerance(stream) -> float:
    """How far before a frame's stated time it may really start: rounding of its timestamp."""
    return max(_EPS, float(stream.time_base) / 2) if stream.time_base else _EPS


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learns about a media file without decoding it.

    Times are seconds from the start of the file (see the module docstring).
    """

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
    """When the video stream starts, in seconds from the start of the file."""
    audio_start: float = 0.0
    """When the audio stream starts, in seconds from the start of the file."""
    start_time: float = 0.0
    """The file's own timestamp of its start (e.g. 1.4 for MPEG-TS); times here are relative to it."""
    truncated: bool = False
    """True when the file's data stops well before the duration its index declares (a cut file):
    windows before the cut read, anything after raises :class:`TruncatedMediaError`."""
    empty_video: bool = False
    """True when the video stream is there but the whole (uncut) file holds no packet of it."""

    def require_video(self) -> "MediaInfo":
        if not self.has_video:
            raise NoVideoStreamError("has no video stream", self.path, "give a video file, not an audio-only file")
        if self.empty_video:
            raise EmptyMediaError("its video stream has no frames", self.path,
                                  "re-export it with its picture, or give another video")
        return self

    def require_audio(self) -> "MediaInfo":
        if not self.has_audio:
            raise NoAudioStreamError("has no audio stream", self.path, "give a video with a sound track")
        return self


# ----------------------------------------------------------------------------------- opening


def _open(path: str | Path):
    """Open a container for reading, turning every failure into a one-line MediaError."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise MissingMediaError("no such file", path, "check the path") from None
    except OSError as exc:
        raise UnreadableMediaError(f"cannot access ({exc.strerror or exc})", path, "check the path and its permissions") from None
    if path.is_dir():
        raise UnreadableMediaError("is a folder, not a media file", path, "give a video file")
    if st.st_size == 0:
        raise EmptyMediaError("file is empty (0 bytes)", path, "re-download or re-export it")
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except PermissionError as exc:
        raise UnreadableMediaError("cannot be read (permission denied)", path, "fix its permissions") from exc
    except (av.error.FFmpegError, OSError, ValueError, UnicodeError) as exc:
        if _is_iso_bmff(path):
            raise TruncatedMediaError(
                "is an incomplete MP4/MOV file: its index (moov box) is missing or damaged, "
                "as when a download or recording is cut short",
                path,
                _FIX_TRUNCATED,
            ) from exc
        raise UnreadableMediaError(f"is not a media file FFmpeg can read ({_ffmpeg_reason(exc)})", path, _FIX_UNREADABLE) from exc


def _is_iso_bmff(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return len(head) >= 8 and head[4:8] in _ISO_BMFF_BOXES


def _ffmpeg_reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return _one_line(text)


def _video_stream(container):
    """The first real video stream (cover art in audio files is not video), or None."""
    for stream in container.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic:
            continue
        return stream
    return None


def _audio_stream(container):
    return container.streams.audio[0] if container.streams.audio else None


def _origin(container) -> float:
    """The file's start in its own timestamps (seconds): times are measured from here."""
    if container.start_time is not None:
        return container.start_time / av.time_base
    starts = [float(s.start_time * s.time_base) for s in container.streams if s.start_time is not None and s.time_base]
    return min(starts) if starts else 0.0


def _states_length(container) -> bool:
    """Whether the format's header or index states the length (MP4, MKV, AVI), rather than FFmpeg
    estimating it (from the bit rate for MP3, from the last timestamps for MPEG-TS)."""
    return bool(set((container.format.name or "").split(",")) & _DECLARED_DURATION_FORMATS)


def _declared_file_end(container) -> float | None:
    """The file's length as its header states it, for formats where that is reliable."""
    if container.duration is None or not _states_length(container):
        return None
    return container.duration / av.time_base


def _packet_end(packet, origin: float) -> float | None:
    ts = packet.pts if packet.pts is not None else packet.dts
    if ts is None or packet.time_base is None:
        return None
    return float((ts + (packet.duration or 0)) * packet.time_base) - origin


def _check_decodable(stream, path: Path, kind: str) -> None:
    if stream.codec_context is None:
        raise UnreadableMediaError(
            f"its {kind} codec is not supported by this FFmpeg build", path, "re-export it with a common codec (H.264/AAC)"
        )


# ------------------------------------------------------------------------- crash isolation

_isolation = {"on": False}


@contextlib.contextmanager
def isolated_decoding() -> Iterator[None]:
    """Within this block, :func:`probe`, :func:`iter_audio` (and :func:`read_audio`),
    :func:`iter_frames` and :func:`read_frames` decode in a forked child process
    (:mod:`avsplit.isolation`): a native decoder that crashes on a corrupt file raises
    :class:`~avsplit.errors.DecoderCrashError` for that file instead of killing the process."""
    before = _isolation["on"]
    _isolation["on"] = True
    try:
        yield
    finally:
        _isolation["on"] = before


def _in_child(fn, *args, **kwargs) -> Iterator:
    _isolation["on"] = False  # the child decodes in-process
    result = fn(*args, **kwargs)
    if isinstance(result, Iterator):
        yield from result
    else:
        yield result


def _guarded(path, fn, *args, **kwargs) -> Iterator:
    from avsplit.isolation import isolated_iter

    return isolated_iter(path, _in_child, fn, *args, **kwargs)


def probe(path: str | Path) -> MediaInfo:
    """See :func:`_probe_here` (in a child process inside :func:`isolated_decoding`)."""
    if _isolation["on"]:
        return next(_guarded(path, _probe_here, path))
    return _probe_here(path)


def iter_audio(path: str | Path, sample_rate: int, start: float = 0.0, duration: float | None = None,
               mono: bool = True) -> Iterator[np.ndarray]:
    """See :func:`_iter_audio_here` (in a child process inside :func:`isolated_decoding`)."""
    if _isolation["on"]:
        return _guarded(path, _iter_audio_here, path, sample_rate, start, duration, mono)
    return _iter_audio_here(path, sample_rate, start, duration, mono)


def iter_frames(path: str | Path, fps: float | None = None, start: float = 0.0, duration: float | None = None,
                short_side: int | None = None, size: tuple[int, int] | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """See :func:`_iter_frames_here` (in a child process inside :func:`isolated_decoding`)."""
    if _isolation["on"]:
        return _guarded(path, _iter_frames_here, path, fps, start, duration, short_side, size)
    return _iter_frames_here(path, fps, start, duration, short_side, size)


def read_frames(path: str | Path, times: Sequence[float], short_side: int | None = None,
                size: tuple[int, int] | None = None) -> np.ndarray:
    """See :func:`_read_frames_here` (in a child process inside :func:`isolated_decoding`)."""
    if _isolation["on"]:
        return next(_guarded(path, _read_frames_here, path, times, short_side, size))
    return _read_frames_here(path, times, short_side, size)


# ------------------------------------------------------------------------------------- probe


def _probe_here(path: str | Path) -> MediaInfo:
    """Streams, duration, frame rate (variable-rate aware), size and audio layout of a file.

    Raises :class:`EmptyMediaError` for a zero-byte file or one with no duration,
    :class:`TruncatedMediaError` for an MP4 whose index is missing,
    :class:`UnreadableMediaError` for anything FFmpeg cannot read. A file whose data stops
    before its declared end is reported with ``truncated=True`` (reading it may raise later).
    """
    path = Path(path)
    with _open(path) as container:
        vs = _video_stream(container)
        astream = _audio_stream(container)
        if vs is None and astream is None:
            raise UnreadableMediaError("has no audio or video stream", path, _FIX_UNREADABLE)
        origin = _origin(container)
        durations = []
        video_packets = None
        if container.duration is not None:
            durations.append(container.duration / av.time_base)
        info: dict = {"path": path, "has_video": vs is not None, "has_audio": astream is not None, "start_time": origin}
        if vs is not None:
            _check_decodable(vs, path, "video")
            ctx = vs.codec_context
            info.update(width=ctx.width, height=ctx.height, video_codec=ctx.name)
            v_start = _stream_seconds(vs.start_time, vs.time_base)
            info["video_start"] = round(v_start - origin, 6) if v_start is not None else 0.0
            d = _stream_seconds(vs.duration, vs.time_base)
            if d:
                durations.append(info["video_start"] + d)
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            info["fps"] = float(rate) if rate else None
            info["variable_frame_rate"], video_packets = _looks_variable(container, vs)
            if vs.frames:
                info["num_frames"] = int(vs.frames)
        if astream is not None:
            _check_decodable(astream, path, "audio")
            actx = astream.codec_context
            info.update(audio_rate=actx.sample_rate, audio_channels=actx.channels, audio_codec=actx.name)
            a_start = _stream_seconds(astream.start_time, astream.time_base)
            info["audio_start"] = round(a_start - origin, 6) if a_start is not None else 0.0
            d = _stream_seconds(astream.duration, astream.time_base)
            if d:
                durations.append(info["audio_start"] + d)
        duration = max(durations) if durations else 0.0
        if not durations:
            # No length in the header (raw streams, live recordings): find the last packet.
            duration = _scan_end(container, origin) or 0.0
        if info.get("num_frames") is None and info.get("fps") and duration:
            info["num_frames"] = int(round((duration - info.get("video_start", 0.0)) * info["fps"]))
        if duration and math.isfinite(duration):
            info["truncated"] = _data_stops_early(container, origin, duration)
        # No packet at all (counted to the end of a file that is not cut), none declared either.
        info["empty_video"] = vs is not None and video_packets == 0 and not vs.frames and not info.get("truncated")
    if not duration or duration <= 0 or not math.isfinite(duration):
        raise EmptyMediaError("has zero length", path, "re-export it; the file holds no playable content")
    if info.get("has_video") and (not info.get("width") or not info.get("height")):
        raise UnreadableMediaError("video stream has no picture size", path, _FIX_UNREADABLE)
    return MediaInfo(duration=duration, **info)


def _stream_seconds(value, time_base) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _looks_variable(container, stream) -> tuple[bool, int | None]:
    """Whether packet timestamps of the first few seconds are not evenly spaced, and how many
    packets of ``stream`` hold data among those read (None when reading failed before the end)."""
    pts = []
    found = 0
    packets = container.demux(stream)
    try:
        for packet in packets:
            found += 1 if packet.size else 0
            if packet.pts is not None and packet.size:
                pts.append(packet.pts)
            if len(pts) >= _VFR_PROBE_PACKETS:
                break
    except (av.error.FFmpegError, OSError):
        found = found or None
    finally:
        packets.close()
    return _uneven(pts), found


def _uneven(pts: list[int]) -> bool:
    """Whether timestamps (in any order) are not evenly spaced."""
    if len(pts) < 3:
        return False
    deltas = np.diff(np.sort(np.asarray(pts, dtype=np.int64)))
    deltas = deltas[deltas > 0]
    if deltas.size < 2:
        return False
    median = float(np.median(deltas))
    return bool(np.max(np.abs(deltas - median)) > 0.1 * median + 1)


def _scan_end(container, origin: float) -> float | None:
    """End of the last packet, found by reading every packet (only for files with no length)."""
    end = None
    try:
        container.seek(0, backward=True)
    except (av.error.FFmpegError, OSError):
        pass
    try:
        for packet in container.demux():
            e = _packet_end(packet, origin) if packet.size else None
            if e is not None and (end is None or e > end):
                end = e
    except (av.error.FFmpegError, OSError):
        pass
    return end


def _data_stops_early(container, origin: float, duration: float) -> bool:
    """Whether the data ends well before the declared ``duration`` (cheap: one seek near the end)."""
    if not _states_length(container):
        return False  # the length is an estimate: nothing to compare against
    declared = duration
    try:
        container.seek(int((max(0.0, declared - 2.0) + origin) * av.time_base), backward=True)
    except (av.error.FFmpegError, OSError):
        return False
    end = None
    count = size = 0
    try:
        for packet in container.demux():
            if not packet.size:
                continue
            e = _packet_end(packet, origin)
            if e is not None and (end is None or e > end):
                end = e
            if end is not None and end >= declared - _TRUNCATION_TOLERANCE:
                return False
            count += 1
            size += packet.size
            if count > 5000 or size > 64 << 20:
                return False  # the seek landed far back; cannot tell cheaply
    except (av.error.FFmpegError, OSError):
        return True
    return end is None or end < declared - _TRUNCATION_TOLERANCE


# ------------------------------------------------------------------------------ stream reader


class _SeekFailed(Exception):
    """The demuxer refused a seek."""


class _StreamReader:
    """Demuxes a container and decodes one of its streams, tracking where the data ends.

    All packets are demuxed (FFmpeg reads them anyway) so that the end of the whole file's data
    is known too; only packets of ``stream`` are decoded. A few corrupt packets are skipped, as
    players do; a run of demuxer errors is taken as the end of the data (a damaged tail).
    """

    def __init__(self, container, stream, path: Path):
        self.container = container
        self.stream = stream
        self.path = path
        self.origin = _origin(container)
        self.time_base = stream.time_base
        start = _stream_seconds(stream.start_time, stream.time_base)
        # (rounded to the microsecond: FFmpeg gives the file's start in microseconds)
        self.start = round(start - self.origin, 6) if start is not None else 0.0
        length = _stream_seconds(stream.duration, stream.time_base)
        self.declared_end = self.start + length if length and _states_length(container) else None
        self.file_declared_end = _declared_file_end(container)
        self.stream_data_end: float | None = None
        self.file_data_end: float | None = None
        self.failure: str | None = None
        self.exhausted = False
        self.fresh = True  # nothing demuxed yet: positioned at the start of the file
        self.packets = 0  # packets of the stream sent to the decoder (tests count them)
        self.frames_decoded = 0
        self.decode_errors = 0
        # What the stream declares, before any (possibly corrupt) packet can change the decoder's state.
        self.channels = (stream.codec_context.channels or 0) if stream.type == "audio" else 0
        self.bad_frames = 0  # decoded frames whose layout contradicts the stream's (corrupt data)

    # ---- positioning
    def frame_time(self, frame) -> float | None:
        if frame.pts is None or frame.time_base is None:
            return None
        return float(frame.pts * frame.time_base) - self.origin

    def seek(self, seconds: float) -> None:
        """Position at the last keyframe at or before ``seconds`` (from the file start)."""
        ts = int(math.floor((seconds + self.origin) / self.time_base))
        self.fresh = False
        try:
            self.container.seek(ts, stream=self.stream, backward=True)
        except (av.error.FFmpegError, OSError) as exc:
            raise _SeekFailed(_ffmpeg_reason(exc)) from exc
        self.exhausted = False
        self.failure = None

    def rewind(self) -> None:
        """Back to the first packet (nothing to do if nothing was read yet)."""
        if self.fresh:
            return
        try:
            self.seek(self.start)
        except _SeekFailed:
            try:
                self.container.seek(0, backward=True)  # in microseconds, for the whole file
            except (av.error.FFmpegError, OSError) as exc:
                raise UnreadableMediaError(
                    f"cannot seek back to its start ({_ffmpeg_reason(exc)})", self.path, _FIX_UNREADABLE
                ) from exc

    # ---- decoding
    def frames(self) -> Iterator:
        """Decoded frames from the current position to the end of the data."""
        self.fresh = False
        self.exhausted = False
        self.failure = None
        index = self.stream.index
        failures = 0
        demuxer = self.container.demux()
        try:
            while True:
                try:
                    packet = next(demuxer)
                except StopIteration:
                    break
                except (av.error.FFmpegError, OSError) as exc:
                    failures += 1
                    self.failure = _ffmpeg_reason(exc)
                    if failures > _MAX_DEMUX_FAILURES:
                        yield from self._decode(None)  # drain what the decoder holds
                        break
                    demuxer = self.container.demux()  # resume after the damaged packet
                    continue
                failures = 0
                if not packet.size:
                    if packet.stream_index == index:
                        yield from self._decode(packet)  # end of data: flush the decoder
                    continue
                end = _packet_end(packet, self.origin)
                if end is not None and (self.file_data_end is None or end > self.file_data_end):
                    self.file_data_end = end
                if packet.stream_index != index:
                    continue
                if end is not None and (self.stream_data_end is None or end > self.stream_data_end):
                    self.stream_data_end = end
                self.packets += 1
                yield from self._decode(packet)
            if failures == 0:
                self.failure = None
            self.exhausted = True
        finally:
            demuxer.close()

    def _decode(self, packet):
        try:
            frames = self.stream.codec_context.decode(packet)
        except (av.error.FFmpegError, OSError) as exc:
            self.decode_errors += 1
            if self.frames_decoded == 0 and self.decode_errors > 50:
                raise UnreadableMediaError(
                    f"its {self.stream.type} stream does not decode ({_ffmpeg_reason(exc)})", self.path, _FIX_UNREADABLE
                ) from exc
            return
        for frame in frames:
            if self.stream.type == "audio" and not _sane_audio_frame(frame, self.channels):
                # A corrupt packet can decode to a frame of dozens of channels with planes that do
                # not match them; converting it crashes PyAV, and the decoder stays in that state.
                self.bad_frames += 1
                t = self.frame_time(frame)
                where = f" at {t:.2f} s" if t is not None else ""
                raise UnreadableMediaError(
                    f"its audio stream is corrupt{where} (a frame decodes as {_frame_layout(frame)} where the "
                    f"stream declares {self.channels or 'no'})", self.path, _FIX_UNREADABLE)
            self.frames_decoded += 1
            yield frame

    # ---- truncation
    def stops_early(self) -> bool:
        """After the data ran out: whether it stopped before the end the file declares."""
        if self.failure is not None:
            return True
        limit = _TRUNCATION_TOLERANCE
        if self.declared_end is not None:
            return self.stream_data_end is None or self.stream_data_end < self.declared_end - limit
        if self.file_declared_end is not None:
            return self.file_data_end is None or self.file_data_end < self.file_declared_end - limit
        return False

    def check_not_truncated(self) -> None:
        """Called when the data ran out before what was asked for: raise if the file was cut."""
        if not self.stops_early():
            return
        declared = self.declared_end if self.declared_end is not None else self.file_declared_end
        stop = self.stream_data_end
        claims = f" although it claims {declared:.2f} s" if declared is not None else ""
        where = f"its data stops at {stop:.2f} s{claims}" if stop is not None else f"its data stops early{claims}"
        if self.failure:
            where += f" ({self.failure})"
        fix = _FIX_TRUNCATED + (f" (only 0-{stop:.2f} s can be read)" if stop else "")
        raise TruncatedMediaError(f"is truncated: {where}", self.path, fix)


def _sane_audio_frame(frame, channels: int) -> bool:
    """Whether a decoded audio frame's layout agrees with the stream's ``channels`` (0: unknown) and
    with itself (one plane per channel when planar, one plane when packed), and holds samples."""
    try:
        count = frame.layout.nb_channels
        planes = len(frame.planes)
        planar = frame.format.is_planar
        samples, rate = frame.samples, frame.sample_rate
    except (ValueError, AttributeError, av.error.FFmpegError):
        return False
    if count < 1 or count > _MAX_CHANNELS or (channels and count != channels):
        return False
    return planes == (count if planar else 1) and samples > 0 and rate > 0


def _frame_layout(frame) -> str:
    try:
        count = frame.layout.nb_channels
    except (ValueError, AttributeError, av.error.FFmpegError):
        return "an unreadable layout"
    return f"{count} channel{'' if count == 1 else 's'}"


def _frames_at(reader: _StreamReader, t: float, lead: float = 0.0) -> Iterator:
    """Decoded frames starting at or before ``t - lead``: seeks, and seeks further back if the
    demuxer lands after that point; decodes from the start when ``t - lead`` is near it."""
    target = t - lead
    accept = target + (lead / 2 if lead else _tolerance(reader.stream))
    back = 0.0
    while True:
        where = target - back
        if where <= reader.start + 1e-3:
            reader.rewind()
            yield from reader.frames()
            return
        try:
            reader.seek(where)
        except _SeekFailed:
            # Some demuxers (raw FLAC without a seek table, ...) refuse some targets: try
            # further back, and in the end decode from the start.
            back = 1.0 if back == 0 else back * 4
            continue
        packets_before = reader.packets
        frames = reader.frames()
        first = next(frames, None)
        if first is None:
            if reader.packets == packets_before:
                return  # no data from there on: the caller decides (past the end, or truncated)
            # Packets but no picture: the demuxer landed after the last keyframe (MPEG-TS
            # seeks by timestamp, not to keyframes): go further back.
            back = 1.0 if back == 0 else back * 4
            continue
        ft = reader.frame_time(first)
        if ft is None or ft <= accept:
            yield first
            yield from frames
            return
        frames.close()
        back = 1.0 if back == 0 else back * 4


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
    ``(channels, samples)``. A late window is reached by seeking, not by decoding from the start,
    and equals the same slice of a full decode. The result is exactly
    ``round(duration * sample_rate)`` samples long unless the stream ends first (then it is
    shorter; callers that need a full window pad it). Silence before the stream's first sample
    is returned as zeros, since it is silence in the file too. Asking for audio past the point
    where a truncated file's data stops raises :class:`TruncatedMediaError`.
    """
    chunks = list(iter_audio(path, sample_rate, start=start, duration=duration, mono=mono))
    if chunks:
        audio = np.concatenate(chunks, axis=1)
    else:
        audio = np.zeros((1 if mono else max(1, _channels_of(path)), 0), np.float32)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    return audio[0] if mono else audio


def _channels_of(path: Path) -> int:
    with _open(path) as container:
        stream = _audio_stream(container)
        return (stream.codec_context.channels or 1) if stream is not None else 1


def _iter_audio_here(
    path: str | Path,
    sample_rate: int,
    start: float = 0.0,
    duration: float | None = None,
    mono: bool = True,
) -> Iterator[np.ndarray]:
    """Stream the audio of :func:`read_audio` as consecutive float32 ``(channels, n)`` chunks.

    Memory stays bounded by one decoded packet, whatever the window's length; the chunks
    concatenated are exactly what :func:`read_audio` returns (as ``(channels, samples)``).
    """
    path = Path(path)
    sample_rate = int(sample_rate)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    start = max(0.0, float(start))
    with _open(path) as container:
        stream = _audio_stream(container)
        if stream is None:
            raise NoAudioStreamError("has no audio stream", path, "give a video with a sound track")
        _check_decodable(stream, path, "audio")
        stream.thread_type = "AUTO"
        reader = _StreamReader(container, stream, path)
        yield from _AudioWindow(reader, sample_rate, start, duration, mono).chunks()


class _AudioWindow:
    """Decode + downmix + resample one window of a stream onto an output grid anchored at the
    stream's first sample, so that any window equals the same slice of a full decode.

    The output sample ``j`` is the stream's audio at ``stream start + j / rate``. Decoding starts
    a little before the window (see ``_AUDIO_PREROLL``) at an input sample that falls exactly on
    that grid, so FFmpeg's resampler produces the same samples as in a decode from the start.
    """

    def __init__(self, reader: _StreamReader, rate: int, start: float, duration: float | None, mono: bool):
        self.reader = reader
        self.rate = rate
        self.mono = mono
        self.channels = 1 if mono else (reader.stream.codec_context.channels or 1)
        first = int(round((start - reader.start) * rate))  # output index of the window's first sample
        self.remaining = None if duration is None else max(0, int(round(float(duration) * rate)))
        self.zeros = max(0, -first)  # part of the window before the stream's first sample
        self.first = max(0, first)
        # Where the index declares the stream ends (MP4 edit lists cut the encoder's padding).
        self.limit = None if reader.declared_end is None else int(round((reader.declared_end - reader.start) * rate))

    def _sample_index(self, frame, in_rate: int, following=None) -> int:
        """Index (from the stream's first sample) of ``frame``'s first sample, from its timestamp.

        Timestamps coarser than a sample (Matroska/WebM: 1 ms) are made exact with the codec's
        frame grid: frames of a fixed-size codec end at multiples of its frame size (less the
        decoder's initial skip, the Opus pre-skip). The first frame after a seek may be cut
        short by the decoder (Opus skips its pre-roll again), so the ``following`` frame, when
        given, pins the grid instead.
        """
        reader = self.reader
        tick = float(reader.time_base) * in_rate  # samples per timestamp unit

        def exact(f) -> float:
            ft = reader.frame_time(f)
            return ((ft if ft is not None else reader.start) - reader.start) * in_rate

        def on_grid(f) -> int | None:
            ctx = reader.stream.codec_context
            size = ctx.frame_size or (f.samples if ctx.name in _FIXED_FRAME_CODECS else 0)
            if not size or f.pts is None:
                return None
            end = exact(f) + f.samples
            delay = ctx.delay or 0
            snapped = int(round((end + delay) / size)) * size - delay
            return snapped - f.samples if abs(snapped - end) <= tick else None

        if tick > 1.0:
            if following is not None and following.pts is not None and frame.pts is not None:
                nxt = on_grid(following)
                if nxt is not None and abs(nxt - frame.samples - exact(frame)) <= 2 * tick:
                    return nxt - frame.samples
            here = on_grid(frame)
            if here is not None:
                return here
        return int(round(exact(frame)))

    def _emit(self, out: np.ndarray, next_out: int) -> tuple[np.ndarray | None, int]:
        """The part of ``out`` (output samples numbered from ``next_out``) that is in the window."""
        n = out.shape[1]
        lo = max(0, self.first - next_out)
        hi = n if self.limit is None else max(0, min(n, self.limit - next_out))
        piece = None
        if lo < hi:
            piece = out[:, lo:hi]
            if self.remaining is not None:
                piece = piece[:, : self.remaining]
                self.remaining -= piece.shape[1]
            if not piece.shape[1]:
                piece = None
        return piece, next_out + n

    def chunks(self) -> Iterator[np.ndarray]:
        if self.zeros:
            z = self.zeros if self.remaining is None else min(self.zeros, self.remaining)
            if z:
                yield np.zeros((self.channels, z), np.float32)
                if self.remaining is not None:
                    self.remaining -= z
        if self.remaining == 0:
            return
        reader = self.reader
        frames = _frames_at(reader, reader.start + self.first / self.rate, _AUDIO_PREROLL)
        convert = None  # frame -> fltp arrays at the input rate, downmixed by FFmpeg
        convert_key = None
        resampler = None
        in_rate = None
        layout = None
        cursor = 0  # input index (from the stream's first sample) of the next decoded sample
        next_in = 0  # input index of the next sample fed to the resampler
        next_out = 0  # output index of the next sample the resampler gives
        to_drop = 0

        def feed(data):
            """Resample input samples; yields output pieces inside the window."""
            nonlocal to_drop, next_in, next_out
            if to_drop:
                drop = min(to_drop, data.shape[1])
                data = data[:, drop:]
                to_drop -= drop
                if not data.shape[1]:
                    return
            outs = [data] if resampler is None else _resample(resampler, data, layout, in_rate, next_in)
            next_in += data.shape[1]
            for out in outs:
                piece, next_out = self._emit(out, next_out)
                if piece is not None:
                    yield piece

        def done() -> bool:
            return self.remaining == 0 or (self.limit is not None and next_out >= self.limit)

        following = None
        if float(reader.time_base) * (reader.stream.codec_context.sample_rate or 1) > 1.0:
            # Coarse timestamps: look at the second frame too (see _sample_index).
            head = [f for f in (next(frames, None), next(frames, None)) if f is not None]
            following = head[1] if len(head) > 1 else None
            frames_in = itertools.chain(head, frames)
        else:
            frames_in = frames
        try:
            for frame in frames_in:
                key = (frame.format.name, frame.layout.name, frame.sample_rate)
                if key != convert_key:
                    if in_rate is not None and frame.sample_rate != in_rate:
                        break  # the sample rate changes mid-stream: stop at the change
                    convert = _PlanarConverter("mono" if self.mono else None)
                    convert_key = key
                if in_rate is None:
                    in_rate = frame.sample_rate
                    if in_rate != self.rate:
                        resampler = av.AudioResampler(format="fltp", rate=self.rate)
                    grid = in_rate // math.gcd(in_rate, self.rate)
                    cursor = self._sample_index(frame, in_rate, following)
                    next_in = -(-cursor // grid) * grid  # the first grid point at or after it
                    to_drop = next_in - cursor
                    next_out = next_in * self.rate // in_rate
                    gap_limit = int(0.015 * in_rate + float(reader.time_base) * in_rate) + 1
                    if next_out > self.first:
                        # The stream's first decodable sample comes after the window start (a
                        # stream that starts later than declared): that time is silence.
                        piece, _ = self._emit(np.zeros((self.channels, next_out - self.first), np.float32), self.first)
                        if piece is not None:
                            yield piece
                        if done():
                            return
                else:
                    gap = 0 if frame.pts is None else self._sample_index(frame, in_rate) - cursor
                    if gap > gap_limit and layout is not None:
                        # A hole in the timeline (a lost packet, a recorder that paused): it
                        # plays as silence, and filling it keeps what follows in sync.
                        cursor += gap
                        while gap > 0:
                            n = min(gap, in_rate)
                            gap -= n
                            yield from feed(np.zeros((1 if self.mono else _layout_channels(layout), n), np.float32))
                            if done():
                                return
                for data, layout in convert(frame):
                    cursor += data.shape[1]
                    yield from feed(data)
                    if done():
                        return
            if resampler is not None and in_rate is not None:
                for out in resampler.resample(None):
                    piece, next_out = self._emit(_planar(out), next_out)
                    if piece is not None:
                        yield piece
                    if done():
                        return
            if reader.exhausted:
                reader.check_not_truncated()
        finally:
            frames.close()


def _layout_channels(layout) -> int:
    return layout.nb_channels if hasattr(layout, "nb_channels") else av.AudioLayout(layout).nb_channels


def _planar(frame) -> np.ndarray:
    return np.asarray(frame.to_ndarray(), dtype=np.float32)


def _resample(resampler, data: np.ndarray, layout, in_rate: int, pts: int) -> list[np.ndarray]:
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data, dtype=np.float32), format="fltp", layout=layout)
    frame.sample_rate = in_rate
    frame.pts = pts
    frame.time_base = Fraction(1, in_rate)
    return [_planar(out) for out in resampler.resample(frame)]


class _PlanarConverter:
    """AudioFrame -> ``[(float32 (channels, n), layout)]`` at the frame's own rate.

    With ``layout="mono"`` FFmpeg mixes the channels down; a layout it cannot mix down is
    averaged instead. With ``layout=None`` the channels are kept.
    """

    def __init__(self, layout: str | None):
        self.layout = layout
        self.resampler = None
        self.average = False

    def __call__(self, frame) -> list[tuple[np.ndarray, object]]:
        if self.resampler is None:
            # FFmpeg's standard downmix matrix, scaled so that the mix never exceeds full scale
            # (stereo -> (L + R) / 2; 5.1 -> fronts, centre and surrounds weighted, LFE dropped).
            options = {"rematrix_maxval": "1.0"} if self.layout == "mono" else None
            self.resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=frame.sample_rate, options=options)
        try:
            outs = self.resampler.resample(frame)
        except (av.error.FFmpegError, ValueError):
            if self.average or self.layout is None:
                raise
            self.average = True
            self.resampler = av.AudioResampler(format="fltp", rate=frame.sample_rate)
            outs = self.resampler.resample(frame)
        if self.average:
            return [(_planar(o).mean(axis=0, keepdims=True), "mono") for o in outs]
        return [(_planar(o), o.layout) for o in outs]


def read_audio_file(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV/FLAC file with soundfile: float32 ``(channels, samples)`` and its rate."""
    path = Path(path)
    if not path.exists():
        raise MissingMediaError("no such file", path, "check the path")
    if path.is_file() and path.stat().st_size == 0:
        raise EmptyMediaError("file is empty (0 bytes)", path, "give a WAV or FLAC file")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, OSError) as exc:
        raise UnreadableMediaError(f"cannot read audio ({_one_line(exc)})", path, "give a WAV or FLAC file") from exc
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
    [-1, 1] are clipped for integer subtypes; NaN or infinite samples are refused (ValueError).
    The file appears at ``path`` only once complete; a failure leaves nothing behind and raises
    :class:`OutputError`.
    """
    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise ValueError(f"audio must be (samples,) or (channels, samples), got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or infinite samples")
    fmt = (format or path.suffix.lstrip(".") or "wav").upper()
    if subtype.startswith("PCM"):
        audio = np.clip(audio, -1.0, 1.0)
    try:
        with atomic_path(path) as tmp:
            soundfile.write(str(tmp), audio.T, int(sample_rate), format=fmt, subtype=subtype)
    except OutputError:
        raise
    except PermissionError as exc:
        raise OutputError("permission denied", path, "choose a writable output folder") from exc
    except (RuntimeError, soundfile.LibsndfileError, OSError) as exc:
        raise OutputError(f"cannot write audio ({_one_line(exc)})", path, "choose a writable output folder with free space") from exc
    return path


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


def _open_video(container, path: Path):
    stream = _video_stream(container)
    if stream is None:
        raise NoVideoStreamError("has no video stream", path, "give a video file, not an audio-only file")
    _check_decodable(stream, path, "video")
    ctx = stream.codec_context
    if not ctx.width or not ctx.height:
        raise UnreadableMediaError("video stream has no picture size", path, _FIX_UNREADABLE)
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
        eps = _tolerance(stream)
        frames = _frames_at(reader, start)
        default_period = 1.0 / float(stream.average_rate) if stream.average_rate else None
        try:
            if fps is None:
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
                return

            step = 1.0 / float(fps)
            k = 0
            target = start
            held = None  # the decoded frame on screen at `target`
            held_t = 0.0
            held_rgb = None
            for frame in frames:
                t = reader.frame_time(frame)
                if t is None:
                    t = held_t + (default_period or step) if held is not None else target
                while target < end and held is not None and t > target + eps:
                    if held_rgb is None:
                        held_rgb = convert(held)
                    yield target, held_rgb
                    k += 1
                    target = start + k * step
                if target >= end:
                    return
                # Before the stream's first frame, the first frame is what a player shows.
                held, held_t, held_rgb = frame, t, None
            if held is None:
                reader.check_not_truncated()
                if start > 0:
                    return  # start is past the last frame: nothing to show
                raise EmptyMediaError("video stream has no decodable frames", path, _FIX_UNREADABLE)
            # After the last frame: it stays on screen for its own duration (not past the file's end).
            until = held_t + (_frame_period(held) or default_period or step)
            if container.duration is not None:
                until = max(held_t + _EPS * 2, min(until, container.duration / av.time_base))
            while target < end and target < until - _EPS:
                if held_rgb is None:
                    held_rgb = convert(held)
                yield target, held_rgb
                k += 1
                target = start + k * step
            if target < end:
                reader.check_not_truncated()
        finally:
            frames.close()


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
                        raise EmptyMediaError("video stream has no decodable frames", path, _FIX_UNREADABLE)
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


# -------------------------------------------------------------------------------------- writing

# Rates the AAC encoder accepts.
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


class VideoWriter:
    """Write an H.264 MP4 frame by frame, with AAC audio muxed in, atomically.

    Audio comes either from an array (``audio``: ``(samples,)`` or ``(channels, samples)`` float
    at ``audio_rate``) or from another file's first audio stream (``copy_audio_from``): AAC with
    MP4-style headers is copied packet by packet without re-encoding, anything else (MPEG-TS
    AAC, MP3, Opus, PCM, ...) is re-encoded to AAC, streaming, so a long sound track is never
    held in memory. Copied audio keeps its timing relative to the start of its file, the same
    origin :func:`iter_frames` uses, so frames taken from that file stay in sync. Audio and video
    are interleaved as frames are written; audio past the end of the last video frame is dropped,
    so both streams end together. With ``variable_rate`` each frame is written at the time given
    to :meth:`write` (seconds from the file's start, as :func:`iter_frames` yields them without
    ``fps``), so a variable-frame-rate video keeps every frame and its timing; ``fps`` is then
    only the last frame's duration. The file appears at ``path`` only when :meth:`close`
    succeeds; on any error the partial file is removed and nothing is left at ``path``.

    Odd frame sizes are padded by one pixel (edge replicated) because H.264 4:2:0 needs even
    sizes (players cannot crop by one pixel). Use as a context manager::

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
        audio_bitrate: int | None = None,
        variable_rate: bool = False,
    ):
        self.path = Path(path)
        self._audio_bitrate = audio_bitrate
        if not fps or fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if int(width) <= 0 or int(height) <= 0:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        self.fps = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
        self.width, self.height = int(width), int(height)
        self._enc_w = self.width + (self.width % 2)
        self._enc_h = self.height + (self.height % 2)
        self._closed = True
        self._frames = 0
        self._variable_rate = bool(variable_rate)
        self._last_pts = -1
        self._end = 0.0  # seconds: the end of the video written so far
        self._container = None
        self._src = None
        self._src_items = None
        self._pending = None
        self._astream = None
        self._audio = None
        self._encoding = False
        self._aborted = False
        self._atomic = atomic_path(self.path)
        try:
            self._tmp = self._atomic.__enter__()
        except OutputError:
            raise
        except OSError as exc:
            raise OutputError(f"cannot create the output ({exc.strerror or exc})", self.path, "choose a writable output folder") from exc
        self._closed = False
        try:
            if audio is not None and copy_audio_from is not None:
                raise ValueError("give either audio or copy_audio_from, not both")
            self._container = av.open(str(self._tmp), mode="w", format="mp4")
            self._vstream = self._container.add_stream("libx264", rate=self.fps)
            self._vstream.width = self._enc_w
            self._vstream.height = self._enc_h
            self._vstream.pix_fmt = "yuv420p"
            self._vstream.options = {"crf": str(crf), "preset": preset}
            if self._variable_rate:
                self._vstream.codec_context.time_base = _VFR_TIME_BASE
            if audio is not None:
                if audio_rate is None:
                    raise ValueError("audio_rate is needed with audio")
                arr = np.asarray(audio, dtype=np.float32)
                arr = arr[None] if arr.ndim == 1 else arr
                if arr.ndim != 2 or arr.shape[0] > 2:
                    raise ValueError("VideoWriter audio must be mono or stereo, (samples,) or (channels, samples)")
                self._audio = np.ascontiguousarray(np.clip(np.nan_to_num(arr), -1, 1))
                self._audio_rate = int(audio_rate)
                self._audio_pos = 0
                self._add_aac(self._audio_rate, arr.shape[0])
            elif copy_audio_from is not None:
                self._open_audio_source(Path(copy_audio_from))
        except BaseException as exc:
            self._abort()
            if isinstance(exc, (av.error.FFmpegError, OSError)) and not isinstance(exc, MediaError):
                raise OutputError(f"cannot start writing ({_ffmpeg_reason(exc)})", self.path, "choose a writable output folder") from exc
            raise

    # ---- public API
    def write(self, frame: np.ndarray, time: float | None = None) -> None:
        """Append one RGB uint8 ``(height, width, 3)`` frame (at ``time`` seconds with ``variable_rate``)."""
        if self._closed:
            raise ValueError("VideoWriter is closed")
        if self._variable_rate and (time is None or not math.isfinite(time)):
            self._abort()
            raise ValueError(f"a variable-rate VideoWriter needs each frame's time, got {time}")
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            self._abort()
            raise ValueError(f"frame must be uint8 {(self.height, self.width, 3)}, got {frame.dtype} {frame.shape}")
        if (self._enc_w, self._enc_h) != (self.width, self.height):
            frame = np.pad(frame, ((0, self._enc_h - self.height), (0, self._enc_w - self.width), (0, 0)), mode="edge")
        try:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            if self._variable_rate:  # its own time, strictly after the previous frame
                vf.pts = max(self._last_pts + 1, int(round(max(0.0, time) / _VFR_TIME_BASE)))
                vf.time_base = _VFR_TIME_BASE
                self._end = float(vf.pts * _VFR_TIME_BASE + 1 / self.fps)
            else:
                vf.pts = self._frames
                vf.time_base = 1 / self.fps
                self._end = float((self._frames + 1) / self.fps)
            self._last_pts = vf.pts
            self._frames += 1
            for packet in self._vstream.encode(vf):
                self._container.mux(packet)
            self._mux_audio_until(self._end)
        except MediaError:
            self._abort()
            raise
        except (av.error.FFmpegError, OSError) as exc:
            self._abort()
            raise OutputError(f"video encoding failed ({_ffmpeg_reason(exc)})", self.path, "check free disk space") from exc

    def close(self) -> Path:
        """Flush the encoders and move the file into place."""
        if self._aborted:
            raise ValueError("VideoWriter was aborted after an error; nothing was written")
        if self._closed:
            return self.path
        if self._frames == 0:
            self._abort()
            raise ValueError("VideoWriter got no frames; write at least one before closing")
        try:
            for packet in self._vstream.encode(None):
                self._container.mux(packet)
            self._mux_audio_until(self._end, final=True)
            self._container.close()
            if self._src is not None:
                self._src.close()
        except MediaError:
            self._abort()
            raise
        except (av.error.FFmpegError, OSError) as exc:
            self._abort()
            raise OutputError(f"cannot finish the video ({_ffmpeg_reason(exc)})", self.path, "check free disk space") from exc
        except BaseException:
            self._abort()
            raise
        self._closed = True
        try:
            self._atomic.__exit__(None, None, None)
        except OSError as exc:
            raise OutputError(f"cannot move the finished file into place ({exc.strerror or exc})", self.path, "choose a writable output folder") from exc
        return self.path

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    # ---- internals
    def _add_aac(self, rate: int, channels: int):
        self._astream = self._container.add_stream("aac", rate=rate)
        self._astream.layout = "mono" if channels == 1 else "stereo"
        self._astream.bit_rate = self._audio_bitrate or (128000 if channels > 1 else 96000)
        self._audio_layout = "mono" if channels == 1 else "stereo"
        self._audio_rate = rate
        self._enc_pos = 0
        self._encoding = True

    def _open_audio_source(self, source: Path) -> None:
        self._src = _open(source)
        stream = _audio_stream(self._src)
        if stream is None:
            self._src.close()
            self._src = None
            return
        _check_decodable(stream, source, "audio")
        ctx = stream.codec_context
        if ctx.name == "aac" and ctx.extradata:
            # A plain copy. (ADTS AAC, as in MPEG-TS, has no extradata and would need a
            # bitstream filter: it is re-encoded below like any other codec.)
            self._astream = self._container.add_stream_from_template(stream)
            self._src_items = self._copied_packets(stream)
        else:
            channels = 1 if (ctx.channels or 1) == 1 else 2
            self._add_aac(ctx.sample_rate if ctx.sample_rate in _AAC_RATES else 48000, channels)
            self._src_items = self._decoded_frames(stream, source)

    def _copied_packets(self, stream):
        """``(time, packet)`` of the source's audio, timestamps moved to its file's origin."""
        offset = int(round(_origin(self._src) / stream.time_base))
        for packet in self._src.demux(stream):
            if not packet.size or (packet.pts is None and packet.dts is None):
                continue
            if packet.pts is not None:
                packet.pts -= offset
            if packet.dts is not None:
                packet.dts -= offset
            ts = packet.pts if packet.pts is not None else packet.dts
            yield float(ts * packet.time_base), packet

    def _decoded_frames(self, stream, source: Path):
        """``(time, frame)`` of the source's audio resampled for the AAC encoder."""
        reader = _StreamReader(self._src, stream, source)
        resampler = av.AudioResampler(format="fltp", layout=self._audio_layout, rate=self._audio_rate, frame_size=1024)
        pos = None
        for frame in itertools.chain(reader.frames(), [None]):
            if pos is None and frame is not None:
                t0 = reader.frame_time(frame)
                pos = max(0, int(round((t0 or 0.0) * self._audio_rate)))
                self._enc_pos = pos  # keep the source's offset from its file's start
            for out in resampler.resample(frame):
                yield pos / self._audio_rate, out
                pos += out.samples

    def _mux_audio_until(self, seconds, final: bool = False) -> None:
        """Mux audio up to ``seconds`` (the end of the video written so far)."""
        if self._astream is None:
            return
        seconds = float(seconds)
        if self._audio is not None:
            total = min(self._audio.shape[1], int(round(seconds * self._audio_rate)))
            frame_size = self._astream.codec_context.frame_size or 1024
            while self._audio_pos < total and (total - self._audio_pos >= frame_size or final):
                chunk = self._audio[:, self._audio_pos : min(total, self._audio_pos + frame_size)]
                self._encode_audio(av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=self._audio_layout))
                self._audio_pos += chunk.shape[1]
        elif self._src_items is not None:
            while True:
                if self._pending is None:
                    self._pending = next(self._src_items, None)
                    if self._pending is None:
                        self._src_items = None
                        break
                t, item = self._pending
                if t >= seconds:
                    break  # after the video written so far (at the end: past the video's end)
                self._pending = None
                if isinstance(item, av.Packet):
                    item.stream = self._astream
                    self._container.mux(item)
                    continue
                if final:
                    keep = int(round((seconds - t) * self._audio_rate))
                    if keep < item.samples:  # the frame that crosses the video's end: cut it
                        data = np.ascontiguousarray(item.to_ndarray()[:, :keep])
                        item = av.AudioFrame.from_ndarray(data, format="fltp", layout=self._audio_layout)
                self._encode_audio(item)
        if final and self._encoding:
            for packet in self._astream.encode(None):
                self._container.mux(packet)

    def _encode_audio(self, frame) -> None:
        frame.sample_rate = self._audio_rate
        frame.pts = self._enc_pos
        frame.time_base = Fraction(1, self._audio_rate)
        self._enc_pos += frame.samples
        for packet in self._astream.encode(frame):
            self._container.mux(packet)

    def _abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._aborted = True
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
        if self._src is not None:
            with contextlib.suppress(Exception):
                self._src.close()
        self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)
