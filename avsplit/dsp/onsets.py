"""Onset events in a series: spectral flux of a sound, peaks picked against their surroundings, and
events widened in time (used by ``localize --method onsets`` and by ``synth``'s real takes)."""

from __future__ import annotations

import numpy as np


def spectral_flux(wave: np.ndarray, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """Spectral flux of a mono signal: one value per STFT frame (frame j centred on sample j * hop).

    The sum over frequency of the positive increase of ``log(1 + 100 |X|)`` from frame j - 1 to
    frame j (0 for the first frame).
    """
    wave = np.asarray(wave, dtype=np.float64).reshape(-1)
    pad = n_fft // 2
    x = np.pad(wave, (pad, pad))
    n = 1 + max(0, wave.size - 1) // hop if wave.size else 0
    if n == 0:
        return np.zeros(0)
    idx = np.arange(n)[:, None] * hop + np.arange(n_fft)[None]
    idx = np.minimum(idx, x.size - 1)
    frames = x[idx] * np.hanning(n_fft)[None]
    mag = np.log1p(100.0 * np.abs(np.fft.rfft(frames, axis=1)))
    diff = np.diff(mag, axis=0, prepend=mag[:1])
    return np.maximum(diff, 0.0).sum(axis=1)


def pick_events(values: np.ndarray, centre: int, k: float, rel: float, floor: float = 0.0) -> np.ndarray:
    """Whether ``values[centre]`` (``values``: ``(n, ...)``, a window of a time series per region)
    is an event: a local peak (at least its neighbours) that exceeds the window's median by ``k``
    median absolute deviations, ``rel`` of the window's maximum, and ``floor``."""
    v = np.asarray(values, dtype=np.float64)
    x = v[centre]
    prev = v[centre - 1] if centre > 0 else np.full_like(x, -np.inf)
    nxt = v[centre + 1] if centre + 1 < len(v) else np.full_like(x, -np.inf)
    med = np.median(v, axis=0)
    mad = np.median(np.abs(v - med), axis=0)
    peak = (x >= prev) & (x > nxt)
    return peak & (x > med + k * mad) & (x > rel * v.max(axis=0)) & (x > floor)


def dilate(events: np.ndarray, steps: int) -> np.ndarray:
    """Events ``(T, ...)`` widened by ``steps`` steps on each side (logical or over time)."""
    events = np.asarray(events, dtype=bool)
    out = events.copy()
    for s in range(1, steps + 1):
        out[s:] |= events[:-s]
        out[:-s] |= events[s:]
    return out
