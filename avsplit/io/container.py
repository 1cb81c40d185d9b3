"""Opening a container and what every reader shares: one-line errors, stream lookup, time origin."""

from __future__ import annotations

from pathlib import Path

import av
import av.error

from avsplit.errors import EmptyMediaError, MissingMediaError, TruncatedMediaError, UnreadableMediaError


FIX_UNREADABLE = "check that it is a complete video file FFmpeg can play (re-download or re-export it)"
_FIX_TRUNCATED = "re-download or re-export it"
# How many packets the probe inspects to decide whether the frame rate is variable.
_VFR_PROBE_PACKETS = 240
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
        raise UnreadableMediaError(f"is not a media file FFmpeg can read ({_ffmpeg_reason(exc)})", path, FIX_UNREADABLE) from exc


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
