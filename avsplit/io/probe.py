"""What a media file holds, learnt without decoding it (:func:`probe`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np

from avsplit.errors import EmptyMediaError, NoAudioStreamError, NoVideoStreamError, UnreadableMediaError
from avsplit.io.container import FIX_UNREADABLE, _TRUNCATION_TOLERANCE, _VFR_PROBE_PACKETS, _audio_stream, _check_decodable, _open, _origin, _packet_end, _states_length, _video_stream
from avsplit.io.isolation import guarded, isolation_on


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



def probe(path: str | Path) -> MediaInfo:
    """See :func:`_probe_here` (in a child process inside :func:`isolated_decoding`)."""
    if isolation_on():
        return next(guarded(path, _probe_here, path))
    return _probe_here(path)



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
            raise UnreadableMediaError("has no audio or video stream", path, FIX_UNREADABLE)
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
            info["video_start"] = _stream_span(vs, origin, durations)
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            info["fps"] = float(rate) if rate else None
            info["variable_frame_rate"], video_packets = _looks_variable(container, vs)
            if vs.frames:
                info["num_frames"] = int(vs.frames)
        if astream is not None:
            _check_decodable(astream, path, "audio")
            actx = astream.codec_context
            info.update(audio_rate=actx.sample_rate, audio_channels=actx.channels, audio_codec=actx.name)
            info["audio_start"] = _stream_span(astream, origin, durations)
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
        raise UnreadableMediaError("video stream has no picture size", path, FIX_UNREADABLE)
    return MediaInfo(duration=duration, **info)


def _stream_span(stream, origin: float, durations: list) -> float:
    """The start of ``stream`` in seconds from the container's ``origin``; its end, where the stream
    declares a duration, is appended to ``durations``."""
    start = _stream_seconds(stream.start_time, stream.time_base)
    offset = round(start - origin, 6) if start is not None else 0.0
    length = _stream_seconds(stream.duration, stream.time_base)
    if length:
        durations.append(offset + length)
    return offset


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
