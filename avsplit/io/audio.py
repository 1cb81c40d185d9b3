"""Decoding audio: windows at a sample rate, seeking with pre-roll, resampling, WAV/FLAC reading."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from pathlib import Path
from typing import Generator, Iterator

import av
import av.error
import numpy as np
import soundfile

from avsplit.errors import EmptyMediaError, MissingMediaError, NoAudioStreamError, UnreadableMediaError
from avsplit.io.container import _AUDIO_PREROLL, _FIXED_FRAME_CODECS, _audio_stream, _check_decodable, _one_line, _open
from avsplit.io.demux import _StreamReader, _frames_at
from avsplit.io.isolation import guarded, isolation_on


def iter_audio(path: str | Path, sample_rate: int, start: float = 0.0, duration: float | None = None,
               mono: bool = True) -> Iterator[np.ndarray]:
    """See :func:`_iter_audio_here` (in a child process inside :func:`isolated_decoding`)."""
    if isolation_on():
        return guarded(path, _iter_audio_here, path, sample_rate, start, duration, mono)
    return _iter_audio_here(path, sample_rate, start, duration, mono)



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
        # Set by the first decoded frame (:meth:`_start`):
        self.in_rate: int | None = None  # the stream's own rate
        self.resampler = None  # to ``rate``, when the stream's rate differs
        self.layout = None  # channel layout of the converted samples
        self.cursor = 0  # input index (from the stream's first sample) of the next decoded sample
        self.next_in = 0  # input index of the next sample fed to the resampler
        self.next_out = 0  # output index of the next sample the resampler gives
        self.to_drop = 0  # decoded samples before the first grid point, not fed
        self.gap_limit = 0  # a jump of more input samples than this between frames is a hole

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
        """The window as consecutive float32 ``(channels, n)`` chunks."""
        yield from self._leading_silence()
        if self.remaining == 0:
            return
        reader = self.reader
        frames = _frames_at(reader, reader.start + self.first / self.rate, _AUDIO_PREROLL)
        try:
            filled = yield from self._decode(frames)
            if not filled and reader.exhausted:
                reader.check_not_truncated()
        finally:
            frames.close()

    def _leading_silence(self) -> Iterator[np.ndarray]:
        """The part of the window before the stream's first sample: zeros."""
        if self.zeros:
            z = self.zeros if self.remaining is None else min(self.zeros, self.remaining)
            if z:
                yield np.zeros((self.channels, z), np.float32)
                if self.remaining is not None:
                    self.remaining -= z

    def _done(self) -> bool:
        return self.remaining == 0 or (self.limit is not None and self.next_out >= self.limit)

    def _feed(self, data: np.ndarray) -> Iterator[np.ndarray]:
        """Resample input samples ``(channels, n)``; yields the output pieces inside the window."""
        if self.to_drop:
            drop = min(self.to_drop, data.shape[1])
            data = data[:, drop:]
            self.to_drop -= drop
            if not data.shape[1]:
                return
        outs = [data] if self.resampler is None else _resample(self.resampler, data, self.layout, self.in_rate,
                                                               self.next_in)
        self.next_in += data.shape[1]
        for out in outs:
            piece, self.next_out = self._emit(out, self.next_out)
            if piece is not None:
                yield piece

    def _with_following(self, frames: Iterator) -> tuple[Iterator, object]:
        """``(frames, the second frame or None)``: with timestamps coarser than a sample the second
        frame is looked at too (see :meth:`_sample_index`)."""
        reader = self.reader
        if float(reader.time_base) * (reader.stream.codec_context.sample_rate or 1) > 1.0:
            head = [f for f in (next(frames, None), next(frames, None)) if f is not None]
            return itertools.chain(head, frames), (head[1] if len(head) > 1 else None)
        return frames, None

    def _decode(self, frames: Iterator) -> Generator[np.ndarray, None, bool]:
        """Yield the window's samples from the decoded ``frames``; returns whether the window was filled
        before the stream ended (the rest of the stream then is not looked at)."""
        frames_in, following = self._with_following(frames)
        convert = None  # frame -> fltp arrays at the input rate, downmixed by FFmpeg
        convert_key = None
        for frame in frames_in:
            key = (frame.format.name, frame.layout.name, frame.sample_rate)
            if key != convert_key:
                if self.in_rate is not None and frame.sample_rate != self.in_rate:
                    break  # the sample rate changes mid-stream: stop at the change
                convert = _PlanarConverter("mono" if self.mono else None)
                convert_key = key
            if self.in_rate is None:
                if (yield from self._start(frame, following)):
                    return True
            elif (yield from self._fill_gap(frame)):
                return True
            for data, layout in convert(frame):
                self.layout = layout
                self.cursor += data.shape[1]
                yield from self._feed(data)
                if self._done():
                    return True
        return (yield from self._flush())

    def _start(self, frame, following) -> Generator[np.ndarray, None, bool]:
        """Anchor the input on the output grid at the first decoded ``frame``; returns whether the window
        is already filled (by silence before a stream that starts later than declared)."""
        in_rate = self.in_rate = frame.sample_rate
        if in_rate != self.rate:
            self.resampler = av.AudioResampler(format="fltp", rate=self.rate)
        grid = in_rate // math.gcd(in_rate, self.rate)
        self.cursor = self._sample_index(frame, in_rate, following)
        self.next_in = -(-self.cursor // grid) * grid  # the first grid point at or after it
        self.to_drop = self.next_in - self.cursor
        self.next_out = self.next_in * self.rate // in_rate
        self.gap_limit = int(0.015 * in_rate + float(self.reader.time_base) * in_rate) + 1
        if self.next_out > self.first:
            # The stream's first decodable sample comes after the window start (a stream that starts
            # later than declared): that time is silence.
            piece, _ = self._emit(np.zeros((self.channels, self.next_out - self.first), np.float32), self.first)
            if piece is not None:
                yield piece
            return self._done()
        return False

    def _fill_gap(self, frame) -> Generator[np.ndarray, None, bool]:
        """A hole in the timeline before ``frame`` (a lost packet, a recorder that paused) plays as
        silence, and filling it keeps what follows in sync; returns whether the window is filled."""
        gap = 0 if frame.pts is None else self._sample_index(frame, self.in_rate) - self.cursor
        if gap > self.gap_limit and self.layout is not None:
            self.cursor += gap
            while gap > 0:
                n = min(gap, self.in_rate)
                gap -= n
                yield from self._feed(np.zeros((1 if self.mono else _layout_channels(self.layout), n), np.float32))
                if self._done():
                    return True
        return False

    def _flush(self) -> Generator[np.ndarray, None, bool]:
        """The resampler's last samples; returns whether the window is filled."""
        if self.resampler is not None and self.in_rate is not None:
            for out in self.resampler.resample(None):
                piece, self.next_out = self._emit(_planar(out), self.next_out)
                if piece is not None:
                    yield piece
                if self._done():
                    return True
        return False


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
