"""Writing separated tracks: streaming audio files (or arrays in memory) and the cross-faded join of
separated windows."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile

from avsplit.dsp.chunking import OverlapAdd, Window
from avsplit.errors import AvsplitError, OutputError
from avsplit.files import atomic_path


class StreamingWavWriter:
    """Writes audio progressively into a temporary file, renamed into place by :meth:`close`.

    The channel count is that of the first :meth:`write` (``(channels, n)`` or ``(n,)`` for one).
    WAV files hold 32-bit float samples, unclipped, so that tracks written from float data add up
    to it exactly; FLAC (an integer format) holds 24-bit samples, clipped to [-1, 1].
    """

    SUBTYPES = {"wav": "FLOAT", "flac": "PCM_24"}

    def __init__(self, path: Path, sample_rate: int, fmt: str = "wav"):
        self.path = path
        self.sample_rate = int(sample_rate)
        self.fmt = fmt
        self.channels: int | None = None
        self._ctx = atomic_path(path)
        self._tmp = self._ctx.__enter__()
        self._file: soundfile.SoundFile | None = None

    def _open(self, channels: int) -> soundfile.SoundFile:
        try:
            return soundfile.SoundFile(str(self._tmp), "w", samplerate=self.sample_rate, channels=channels,
                                       format=self.fmt.upper(), subtype=self.SUBTYPES[self.fmt])
        except (RuntimeError, soundfile.LibsndfileError, OSError) as exc:
            self._ctx.__exit__(type(exc), exc, None)
            raise OutputError(f"cannot write audio ({exc})", self.path, "choose a writable output folder") from exc

    def write(self, samples: np.ndarray) -> None:
        """Append ``(channels, n)`` (or ``(n,)``) samples."""
        samples = _finite_samples(samples, self.path)
        if self._file is None:
            self.channels = samples.shape[0]
            self._file = self._open(self.channels)
        if self.SUBTYPES[self.fmt].startswith("PCM"):
            samples = np.clip(samples, -1.0, 1.0)
        self._file.write(samples.T)

    def close(self) -> None:
        if self._file is None:  # nothing was written: an empty file of one channel
            self.channels = 1
            self._file = self._open(1)
        self._file.close()
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)


class ArrayWriter:
    """Collects in memory what :class:`StreamingWavWriter` would write to a WAV file (float32 samples,
    unclipped); :meth:`array` gives them ``(channels, n)``."""

    def __init__(self):
        self.channels: int | None = None
        self._pieces: list[np.ndarray] = []

    def write(self, samples: np.ndarray) -> None:
        """Append ``(channels, n)`` (or ``(n,)``) samples."""
        samples = _finite_samples(samples, None)
        self.channels = self.channels or samples.shape[0]
        self._pieces.append(samples)

    def close(self) -> None:
        self.channels = self.channels or 1

    def abort(self) -> None:
        self._pieces.clear()

    def array(self) -> np.ndarray:
        if not self._pieces:
            return np.zeros((self.channels or 1, 0), np.float32)
        return np.concatenate(self._pieces, axis=1)


def _finite_samples(samples: np.ndarray, path: Path | None) -> np.ndarray:
    """``(channels, n)`` (or ``(n,)``) samples as float32 ``(channels, n)``; non-finite ones are refused."""
    samples = np.asarray(samples, dtype=np.float32)
    samples = samples[None] if samples.ndim == 1 else samples
    if not np.isfinite(samples).all():
        raise AvsplitError("the model gave non-finite audio (NaN or infinity) for this output", path,
                           "check the weights: they may come from a diverged training run")
    return samples


class StemJoiner:
    """Cross-fades the separated windows at the output rate and streams them into files.

    ``add(window, sources, original)`` takes one window's sources ``(N, C, S)`` and its original
    sound ``(C, S)`` (windows in order, from ``windows``, the output-rate windows); finished samples
    go to ``writers`` (one per source), to ``residual`` (the original minus the sum of the sources,
    in float64, so that the files add up to the original) and to ``mixture`` (the original).
    """

    def __init__(self, total: int, size: int, windows: Sequence[Window], writers: list[StreamingWavWriter | ArrayWriter],
                 residual: StreamingWavWriter | ArrayWriter | None = None,
                 mixture: StreamingWavWriter | ArrayWriter | None = None):
        self.joiner = OverlapAdd(total, size, list(windows))
        self.windows = list(windows)
        self.writers, self.residual, self.mixture = writers, residual, mixture
        self.channels = 0

    def add(self, index: int, sources: np.ndarray, original: np.ndarray) -> None:
        self.channels = original.shape[0]
        rows = np.concatenate([sources.reshape(-1, sources.shape[-1]), original], axis=0)  # ((N + 1) * C, S)
        self._emit(self.joiner.add(self.windows[index], rows))

    def finish(self) -> None:
        self._emit(self.joiner.finish())

    def _emit(self, piece: np.ndarray) -> None:
        if not piece.shape[1]:
            return
        piece = piece.reshape(-1, self.channels, piece.shape[1])  # (N + 1, C, n)
        sources, mix = piece[:-1], piece[-1]
        for wtr, src in zip(self.writers, sources):
            wtr.write(src)
        if self.residual is not None:
            self.residual.write(mix.astype(np.float64) - sources.astype(np.float64).sum(0))
        if self.mixture is not None:
            self.mixture.write(mix)

    def files(self) -> list[StreamingWavWriter | ArrayWriter]:
        return self.writers + [w for w in (self.residual, self.mixture) if w is not None]

    def close(self) -> None:
        self.finish()
        for wtr in self.files():
            wtr.close()

    def abort(self) -> None:
        for wtr in self.files():
            wtr.abort()
