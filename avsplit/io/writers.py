"""Writing audio files and H.264/AAC MP4 videos, atomically."""

from __future__ import annotations

import contextlib
import itertools
import math
from fractions import Fraction
from pathlib import Path
from typing import NoReturn

import av
import av.error
import numpy as np
import soundfile

from avsplit.errors import MediaError, OutputError
from avsplit.files import atomic_path
from avsplit.io.container import _audio_stream, _check_decodable, _ffmpeg_reason, _one_line, _open, _origin
from avsplit.io.demux import _StreamReader


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




# -------------------------------------------------------------------------------------- writing

# Time base of frames written at their own times (VideoWriter with variable_rate): the MPEG 90 kHz clock.
_VFR_TIME_BASE = Fraction(1, 90000)
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
            self._fail(exc, "cannot start writing", "choose a writable output folder")

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
        except (MediaError, av.error.FFmpegError, OSError) as exc:
            self._fail(exc, "video encoding failed")

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
        except BaseException as exc:
            self._fail(exc, "cannot finish the video")
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

    def _fail(self, exc: BaseException, what: str, fix: str = "check free disk space") -> NoReturn:
        """Abort the file after ``exc`` and raise: an FFmpeg or OS error as one :class:`OutputError` line
        (``what (reason)``), anything else (a :class:`MediaError` too) as it is."""
        self._abort()
        if isinstance(exc, (av.error.FFmpegError, OSError)) and not isinstance(exc, MediaError):
            raise OutputError(f"{what} ({_ffmpeg_reason(exc)})", self.path, fix) from exc
        raise exc

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
