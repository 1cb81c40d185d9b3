"""Spectral transforms (torch): STFT, the log-frequency warp, ideal masks.

Shapes: ``audio`` is ``(..., samples)``; a spectrogram is ``(..., freq, time)`` with
``freq = n_fft // 2 + 1`` (512 at the paper settings) and ``time = samples // hop + 1`` (256 for a
65535-sample clip). Warped spectrograms have ``log_freq_bins`` rows (256) on a log-frequency axis.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from avsplit.config import AudioSettings

#: Floor inside logarithms of magnitudes.
EPS = 1e-10


class Spectrogram:
    """STFT / inverse STFT with a periodic Hann window, centred frames (the paper's settings)."""

    def __init__(self, settings: AudioSettings = AudioSettings(), win_length: int | None = None):
        self.n_fft = settings.n_fft
        self.hop = settings.hop_length
        self.win_length = win_length or self.n_fft
        """Length of the Hann window, centred in each ``n_fft``-sample frame (default: ``n_fft``)."""
        self._windows: dict[tuple, torch.Tensor] = {}

    def _window(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (device, dtype)
        if key not in self._windows:
            self._windows[key] = torch.hann_window(self.win_length, periodic=True, device=device, dtype=dtype)
        return self._windows[key]

    def stft(self, audio: torch.Tensor) -> torch.Tensor:
        """``(..., samples)`` float -> complex ``(..., freq, time)``."""
        shape = audio.shape
        flat = audio.reshape(-1, shape[-1]).float()
        spec = torch.stft(
            flat, self.n_fft, self.hop, win_length=self.win_length, window=self._window(flat.device, flat.dtype),
            center=True, pad_mode="reflect" if shape[-1] > self.n_fft // 2 else "constant", return_complex=True,
        )
        return spec.reshape(*shape[:-1], *spec.shape[-2:])

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """complex ``(..., freq, time)`` -> ``(..., length)`` float."""
        shape = spec.shape
        flat = spec.reshape(-1, *shape[-2:])
        real_dtype = flat.real.dtype
        audio = torch.istft(
            flat, self.n_fft, self.hop, win_length=self.win_length, window=self._window(flat.device, real_dtype),
            center=True, length=length,
        )
        return audio.reshape(*shape[:-2], length)


class LogFrequencyWarp:
    """Resample spectrograms between a linear and a log-spaced frequency axis (``grid_sample``).

    Warped row ``i`` (of ``n_log``) sits at linear bin ``exp(i / (n_log - 1) * log(n_freq - 1))``,
    i.e. bins are geometrically spaced from bin 1 to the Nyquist bin; the time axis is untouched.
    ``unwarp(warp(x))`` is close to ``x`` for spectrograms that are smooth along frequency, and
    exact at the bins the log grid passes through.
    """

    def __init__(self, n_freq: int, n_log: int):
        self.n_freq = n_freq
        self.n_log = n_log
        top = math.log(n_freq - 1)
        rows = torch.arange(n_log, dtype=torch.float64)
        self.linear_positions = torch.exp(rows / (n_log - 1) * top)  # in linear bins, 1 .. n_freq-1
        bins = torch.arange(n_freq, dtype=torch.float64).clamp(min=1.0)
        self.log_positions = torch.log(bins) / top * (n_log - 1)  # in warped rows, 0 .. n_log-1
        self._grids: dict[tuple, torch.Tensor] = {}

    def _grid(self, positions: torch.Tensor, size_in: int, time: int, device, dtype) -> torch.Tensor:
        key = (id(positions), time, device, dtype)
        grid = self._grids.get(key)
        if grid is None:
            y = (positions / (size_in - 1) * 2 - 1).to(device=device, dtype=dtype)  # (rows_out,)
            x = torch.linspace(-1, 1, time, device=device, dtype=dtype)  # (time,)
            gy, gx = torch.meshgrid(y, x, indexing="ij")
            grid = torch.stack([gx, gy], dim=-1)[None]  # (1, rows_out, time, 2)
            self._grids[key] = grid
        return grid

    def _resample(self, x: torch.Tensor, positions: torch.Tensor, size_in: int) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, 1, *shape[-2:])
        grid = self._grid(positions, size_in, shape[-1], x.device, flat.dtype).expand(flat.shape[0], -1, -1, -1)
        out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return out.reshape(*shape[:-2], out.shape[-2], shape[-1])

    def warp(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., n_freq, time)`` -> ``(..., n_log, time)``."""
        if x.shape[-2] != self.n_freq:
            raise ValueError(f"expected {self.n_freq} frequency rows, got {x.shape[-2]}")
        return self._resample(x, self.linear_positions, self.n_freq)

    def unwarp(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., n_log, time)`` -> ``(..., n_freq, time)``."""
        if x.shape[-2] != self.n_log:
            raise ValueError(f"expected {self.n_log} log-frequency rows, got {x.shape[-2]}")
        return self._resample(x, self.log_positions, self.n_log)


def ideal_binary_mask(source_magnitudes: torch.Tensor, mixture_magnitude: torch.Tensor) -> torch.Tensor:
    """1 where a source's magnitude exceeds half the mixture's, else 0.

    ``source_magnitudes``: ``(batch, sources, freq, time)``; ``mixture_magnitude``:
    ``(batch, freq, time)``. Returns float ``(batch, sources, freq, time)``.
    """
    return (source_magnitudes > 0.5 * mixture_magnitude.unsqueeze(1)).to(source_magnitudes.dtype)


def ideal_ratio_mask(
    source_magnitudes: torch.Tensor, mixture_magnitude: torch.Tensor, max_value: float = 5.0
) -> torch.Tensor:
    """Source magnitude over mixture magnitude, clamped to ``[0, max_value]`` (may exceed 1).

    Shapes as :func:`ideal_binary_mask`.
    """
    return (source_magnitudes / mixture_magnitude.unsqueeze(1).clamp(min=EPS)).clamp(0.0, max_value)


def loss_weight(mixture_magnitude: torch.Tensor, low: float = 1e-3, high: float = 10.0) -> torch.Tensor:
    """Per-bin loss weight ``log(1 + |mixture|)``, clamped to ``[low, high]``."""
    return torch.log1p(mixture_magnitude).clamp(low, high)


def log_magnitude(magnitude: torch.Tensor) -> torch.Tensor:
    """The audio network's input: ``log(magnitude)`` with a floor."""
    return torch.log(magnitude.clamp(min=EPS))
