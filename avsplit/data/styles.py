"""Picture styles for training clips: the same scene drawn another way.

A frame network trained on one way of drawing players (filled glyphs, one renderer) keys on that
drawing: its fill, its palette, its sharpness. Each function here redraws a clip's frames
``(F, H, W, 3)`` uint8 in another style, the same for every frame of the clip (one clip, one
camera), keeping shapes and positions, so that what identifies a player must be its shape and
motion: :func:`recolour` (grey or permuted channels), :func:`restyle` (one of :data:`STYLES`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["STYLES", "recolour", "restyle", "sketch", "posterize", "blur", "invert", "grain"]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _grey(frames: np.ndarray) -> np.ndarray:
    """Luma of uint8 ``(F, H, W, 3)`` frames: float32 ``(F, H, W)`` in [0, 255]."""
    return frames.astype(np.float32) @ _LUMA


def recolour(frames: np.ndarray, rng: np.random.Generator, greyscale: float, channel_swap: float) -> np.ndarray:
    """``frames`` turned grey with probability ``greyscale``, else with their colour channels permuted
    (never the identity) with probability ``channel_swap``; otherwise unchanged."""
    if greyscale > 0 and rng.random() < greyscale:
        return np.repeat(np.clip(_grey(frames) + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
    if channel_swap > 0 and rng.random() < channel_swap:
        order = rng.permutation(3)
        while (order == np.arange(3)).all():
            order = rng.permutation(3)
        return frames[..., order]
    return frames


def sketch(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Line drawing: the frames' edges (Sobel magnitude of the luma) in a random ink colour on a random
    flat paper colour, lines 1-3 pixels wide."""
    import cv2

    grey = _grey(frames)
    width = int(rng.integers(1, 4))
    edges = np.empty_like(grey)
    for i, g in enumerate(grey):
        gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
        e = np.hypot(gx, gy)
        edges[i] = cv2.dilate(e, np.ones((width, width), np.uint8)) if width > 1 else e
    scale = max(float(np.percentile(edges, 99)), 1e-3)
    ink = np.clip(edges / scale, 0.0, 1.0)[..., None]  # (F, H, W, 1): 1 on the lines
    paper, colour = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    if np.abs(paper - colour).sum() < 150:  # lines must show on the paper
        colour = 255.0 - paper
    return np.clip(paper + ink * (colour - paper) + 0.5, 0, 255).astype(np.uint8)


def posterize(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flat colours, as in a cartoon: each channel quantised to 2-4 levels, after a light blur."""
    import cv2

    levels = int(rng.integers(2, 5))
    smooth = np.stack([cv2.GaussianBlur(f, (0, 0), 1.0) for f in frames]).astype(np.float32)
    step = 255.0 / (levels - 1)
    return np.clip(np.round(smooth / step) * step, 0, 255).astype(np.uint8)


def blur(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Out of focus or upscaled from a small video: a Gaussian blur of sigma 1-3 pixels."""
    import cv2

    sigma = float(rng.uniform(1.0, 3.0))
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in frames])


def invert(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The negative: dark players on light ground become light on dark."""
    return 255 - frames


def grain(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise: Gaussian, of standard deviation 5-20 levels, drawn anew for every frame."""
    noise = rng.normal(0.0, float(rng.uniform(5.0, 20.0)), frames.shape).astype(np.float32)
    return np.clip(frames.astype(np.float32) + noise, 0, 255).astype(np.uint8)


_DRAW = {"sketch": sketch, "posterize": posterize, "blur": blur, "invert": invert, "grain": grain}
#: Styles :func:`restyle` draws from, equally likely.
STYLES = tuple(_DRAW)


def restyle(frames: np.ndarray, rng: np.random.Generator, probability: float) -> np.ndarray:
    """With ``probability``, ``frames`` ``(F, H, W, 3)`` uint8 redrawn in one of :data:`STYLES` (chosen
    uniformly); otherwise unchanged."""
    if probability <= 0 or rng.random() >= probability:
        return frames
    return _DRAW[STYLES[int(rng.integers(len(STYLES)))]](frames, rng)
