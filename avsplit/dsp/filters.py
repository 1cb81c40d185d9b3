"""Whole-window filters on NumPy waves: a level, and a zero-phase gain curve applied in one FFT
(used by ``synth``'s recording chain and by the training sampler's sound styles)."""

from __future__ import annotations

from typing import Callable

import numpy as np


def rms(wave: np.ndarray) -> float:
    """Root mean square of ``wave`` (any shape), computed in float64."""
    return float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))


def zero_phase_gain(wave: np.ndarray, sample_rate: int, gain_db: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``wave`` ``(samples,)`` through a zero-phase filter of gain ``gain_db(freqs)`` dB, ``freqs`` the
    window's FFT bin frequencies in Hz: float64 ``(samples,)``."""
    n = wave.shape[-1]
    spectrum = np.fft.rfft(wave.astype(np.float64))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    return np.fft.irfft(spectrum * 10.0 ** (gain_db(freqs) / 20.0), n)
