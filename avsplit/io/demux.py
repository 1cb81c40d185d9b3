"""Demuxing and decoding one stream of a container, tracking where its data ends."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import av
import av.error

from avsplit.errors import TruncatedMediaError, UnreadableMediaError
from avsplit.io.container import _FIX_TRUNCATED, FIX_UNREADABLE, _MAX_CHANNELS, _MAX_DEMUX_FAILURES, _TRUNCATION_TOLERANCE, _declared_file_end, _ffmpeg_reason, _origin, _packet_end, _states_length, _tolerance
from avsplit.io.probe import _stream_seconds


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
                    f"cannot seek back to its start ({_ffmpeg_reason(exc)})", self.path, FIX_UNREADABLE
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
                    f"its {self.stream.type} stream does not decode ({_ffmpeg_reason(exc)})", self.path, FIX_UNREADABLE
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
                    f"stream declares {self.channels or 'no'})", self.path, FIX_UNREADABLE)
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
