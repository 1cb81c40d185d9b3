"""Sound-localization scores: cIoU per frame, its success rate at 0.5, and AUC.

As the sound-localization literature computes them (Senocak et al., "Learning to localize sound
source in visual scenes", CVPR 2018; the evaluation protocol of Chen et al., "Localizing visual
sounds the hard way", CVPR 2021):

- the map is upsampled to the frame size (bilinear), min-max normalised to [0, 1] and
  thresholded at its median: the predicted region is the pixels *above* the median (so a map that
  is exactly zero on more than half of the picture predicts just its non-zero part);
- with one binary ground-truth region G (the union of the boxes of the sources that sound in that
  frame), ``cIoU = |A & G| / (|G| + |A - G|)``, which is the IoU of A and G;
- ``ciou50`` is the share of frames with cIoU >= 0.5; ``auc`` is the area under the success curve
  (share of frames with cIoU >= t) over thresholds t = 0, 0.05, ..., 1 (trapezoid rule).

A constant map (nothing to rank) predicts nothing and scores 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from avsplit import io as media
from avsplit.dsp.maps import upsample
from avsplit.localize.maps import METHODS, OnsetMaps, compute_maps
from avsplit.localize.model_maps import ModelMapSettings, ModelMaps

#: Thresholds of the success curve whose area is the AUC.
AUC_THRESHOLDS = np.linspace(0.0, 1.0, 21)


def normalize(values: np.ndarray) -> np.ndarray:
    """Min-max normalisation to [0, 1]; a constant map becomes all zeros."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo <= 1e-12:
        return np.zeros_like(values)
    return (values - lo) / (hi - lo)


def predicted_region(values: np.ndarray) -> np.ndarray:
    """Bool mask of the pixels of a (min-max normalised) map above its median."""
    norm = normalize(values)
    flat = np.sort(norm, axis=None)
    threshold = flat[flat.size // 2]
    return norm > threshold


def boxes_mask(boxes: Iterable[Sequence[float]], size: tuple[int, int]) -> np.ndarray:
    """Bool ``(height, width)`` mask of the union of boxes ``[x0, y0, x1, y1]`` (pixels, x1/y1
    exclusive, clipped to the picture); ``size`` = ``(width, height)``."""
    w, h = int(size[0]), int(size[1])
    mask = np.zeros((h, w), bool)
    for box in boxes:
        x0, y0, x1, y1 = (float(v) for v in box)
        c0, r0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        c1, r1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
        if c1 > c0 and r1 > r0:
            mask[r0:r1, c0:c1] = True
    return mask


def ciou(values: np.ndarray, truth: np.ndarray) -> float:
    """cIoU of a map against a bool ground-truth mask of the same shape (see the module doc)."""
    values = np.asarray(values)
    truth = np.asarray(truth, dtype=bool)
    if values.shape != truth.shape:
        raise ValueError(f"map {values.shape} and truth {truth.shape} differ in shape")
    pred = predicted_region(values)
    inter = np.count_nonzero(pred & truth)
    denom = np.count_nonzero(truth) + np.count_nonzero(pred & ~truth)
    return float(inter / denom) if denom else 0.0


def success_rate(cious: Sequence[float], threshold: float = 0.5) -> float:
    """Share of frames whose cIoU is at least ``threshold`` (0 when there are none)."""
    arr = np.asarray(list(cious), dtype=np.float64)
    return float(np.mean(arr >= threshold - 1e-12)) if arr.size else 0.0


def auc(cious: Sequence[float], thresholds: np.ndarray = AUC_THRESHOLDS) -> float:
    """Area under the success curve over ``thresholds`` (0..1), trapezoid rule."""
    arr = np.asarray(list(cious), dtype=np.float64)
    if not arr.size:
        return 0.0
    rates = np.array([np.mean(arr >= t - 1e-12) for t in thresholds])
    return float(np.sum((thresholds[1:] - thresholds[:-1]) * (rates[1:] + rates[:-1]) / 2))


def summarize_cious(cious: Sequence[float]) -> dict[str, float]:
    """``{"ciou": mean, "ciou50": share >= 0.5, "auc": AUC, "frames": n}``."""
    arr = np.asarray(list(cious), dtype=np.float64)
    return {"ciou": float(arr.mean()) if arr.size else 0.0, "ciou50": success_rate(arr), "auc": auc(arr),
            "frames": int(arr.size)}


def map_at(times: np.ndarray, maps: np.ndarray, t: float) -> np.ndarray:
    """The map at time ``t``, linearly interpolated between the maps at ``times`` (held at the ends)."""
    times = np.asarray(times, dtype=np.float64)
    if times.size == 1 or t <= times[0]:
        return maps[0]
    if t >= times[-1]:
        return maps[-1]
    j = int(np.searchsorted(times, t, side="right"))
    t0, t1 = times[j - 1], times[j]
    a = (t - t0) / max(t1 - t0, 1e-9)
    return (1 - a) * maps[j - 1] + a * maps[j]


def score_maps(maps: np.ndarray, times: np.ndarray, truth: dict, frame_size: tuple[int, int] | None = None,
               step: int = 1) -> list[float]:
    """Per-frame cIoU of maps ``(T, h, w)`` at ``times`` against a ``synth`` truth dict.

    The ground truth of frame k (shown from ``k / fps``) is the union of the boxes of the
    sources whose ``sounding`` flag is set in that frame; frames where nothing sounds are not
    scored. The map of frame k is the one at the frame's centre time ``(k + 0.5) / fps``.
    ``frame_size`` = ``(width, height)`` defaults to the truth's. ``step`` scores every step-th
    frame.
    """
    width = int(truth.get("width") or (frame_size or (0, 0))[0])
    height = int(truth.get("height") or (frame_size or (0, 0))[1])
    if frame_size is not None:
        width, height = int(frame_size[0]), int(frame_size[1])
    fps = float(truth["fps"])
    sources = truth.get("sources", [])
    n_frames = int(truth.get("num_frames") or max((len(s.get("boxes", [])) for s in sources), default=0))
    out = []
    for k in range(0, n_frames, max(1, int(step))):
        boxes = [s["boxes"][k] for s in sources
                 if k < len(s.get("boxes", [])) and (k >= len(s.get("sounding", [])) or s["sounding"][k])]
        if not boxes:
            continue
        gt = boxes_mask(boxes, (width, height))
        if not gt.any():
            continue
        m = upsample(map_at(times, maps, (k + 0.5) / fps), width, height)
        out.append(ciou(m, gt))
    return out


__all__ = ["AUC_THRESHOLDS", "auc", "boxes_mask", "ciou", "map_at", "normalize", "predicted_region", "score_maps",
           "success_rate", "summarize_cious"]

def truth_has_boxes(truth: dict) -> bool:
    """Whether a ``synth`` truth dict has per-frame boxes for its sources."""
    sources = truth.get("sources") or []
    return bool(sources) and all(s.get("boxes") for s in sources) and bool(truth.get("fps"))


def localization_cious(path: str | Path, truth: dict, engine=None, methods: Sequence[str] = METHODS,
                       settings: ModelMapSettings | None = None, onset_settings=None) -> dict[str, list[float]]:
    """Per-frame cIoU of each method's maps for one video against its truth boxes
    (:func:`score_maps`); ``model`` is skipped without an ``engine``."""
    info = media.probe(path).require_video().require_audio()
    out: dict[str, list[float]] = {}
    for method in methods:
        if method == "model":
            if engine is None:
                continue
            source = ModelMaps(engine, path, settings or ModelMapSettings(), info=info)
        else:
            source = OnsetMaps(path, onset_settings, info=info)
        times, maps, _ = compute_maps(source)
        out[method] = score_maps(maps, times, truth, frame_size=(info.width, info.height))
    return out
