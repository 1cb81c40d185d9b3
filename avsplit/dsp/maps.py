"""Post-processing of sound maps ``(h, w)``: resizing, sparsifying, combining the maps of sources."""

from __future__ import annotations

import numpy as np


def upsample(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of ``(h, w)`` (or ``(K, h, w)``) maps to ``(height, width)`` (``(K, height, width)``)."""
    import cv2

    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 3:
        return np.stack([upsample(v, width, height) for v in values]) if len(values) else \
            np.zeros((0, height, width), np.float32)
    if values.shape == (height, width):
        return values
    return cv2.resize(values, (int(width), int(height)), interpolation=cv2.INTER_LINEAR)


def sparsify(values: np.ndarray, floor: float, baseline: bool = False) -> np.ndarray:
    """Zero what is below ``floor`` x the peak; stretch the rest so the peak keeps its value.

    With ``baseline`` the map's minimum (what every pixel claims alike, which says nothing about
    where) is removed first, and ``floor`` is taken between the minimum and the peak.
    """
    values = np.asarray(values, dtype=np.float32)
    if not values.size:
        return values
    peak = float(values.max())
    low = float(values.min()) if baseline else 0.0
    if peak <= low:
        return np.zeros_like(values) if baseline else values
    cut = low + floor * (peak - low)
    return (np.maximum(values - cut, 0.0) * ((peak - low) / (peak - cut))).astype(np.float32)


def combine_sources(source_maps: np.ndarray, floor: float, gate: float) -> np.ndarray:
    """One map ``(h, w)`` from the maps of the sources of one moment ``(K, h, w)``.

    Each source's map, less its minimum, is cut at ``floor`` x its peak and scaled to a peak of 1;
    a source counts only if its energy (the sum of its map) is at least ``gate`` x the loudest
    source's. The result is the maximum over the sources that count.
    """
    maps = np.maximum(np.asarray(source_maps, np.float32) - np.asarray(source_maps, np.float32).min(axis=(1, 2), keepdims=True), 0.0)
    if not len(maps):
        return np.zeros(maps.shape[1:], np.float32)
    energy = maps.reshape(len(maps), -1).sum(axis=1)
    loudest = float(energy.max())
    out = np.zeros(maps.shape[1:], np.float32)
    if loudest <= 0:
        return out
    for m, e in zip(maps, energy):
        peak = float(m.max())
        if e < gate * loudest or peak <= 0:
            continue
        cut = floor * peak
        out = np.maximum(out, np.maximum(m - cut, 0.0) / (peak - cut))
    return out
