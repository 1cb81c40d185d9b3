"""Background families of ``--variety full``: ``textured`` (today's), ``gradient``, ``noise``,
``stripes``, ``clutter`` (random shapes) and ``blur`` (blurred clutter, like an out-of-focus room).
Each returns uint8 ``(height, width, 3)``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from avsplit.synth.sprites import _hsv, _upsampled_noise, make_background

__all__ = ["make_family_background", "FAMILIES"]


def _colour(rng: np.random.Generator, s=(0.1, 0.9), v=(0.2, 1.0)) -> np.ndarray:
    return _hsv(float(rng.uniform(0, 1)), float(rng.uniform(*s)), float(rng.uniform(*v)))


def _gradient(rng, width, height):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    if rng.random() < 0.5:  # linear, two or three stops
        angle = float(rng.uniform(0, 2 * np.pi))
        proj = xx * np.cos(angle) + yy * np.sin(angle)
    else:  # radial
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        proj = np.hypot(xx - cx, yy - cy)
    proj = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0)
    stops = [_colour(rng) for _ in range(int(rng.integers(2, 4)))]
    pos = np.linspace(0, 1, len(stops))
    for c in range(3):
        img[..., c] = np.interp(proj, pos, [s[c] for s in stops])
    return img


def _noise(rng, width, height):
    base = _colour(rng)
    cells = int(rng.choice((4, 16, 64, 160)))
    amount = float(rng.uniform(20, 80))
    img = base[None, None, :] + amount * np.stack([_upsampled_noise(rng, width, height, cells) for _ in range(3)], -1)
    return img + rng.normal(0.0, float(rng.uniform(2, 15)), (height, width, 3))


def _stripes(rng, width, height):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = float(rng.uniform(0, np.pi))
    period = float(rng.uniform(0.03, 0.25)) * max(width, height)
    proj = (xx * np.cos(angle) + yy * np.sin(angle)) / period
    a, b = _colour(rng), _colour(rng)
    soft = float(rng.uniform(0.02, 0.3))
    t = 0.5 + 0.5 * np.tanh(np.sin(2 * np.pi * proj) / soft)
    return a[None, None, :] * t[..., None] + b[None, None, :] * (1 - t[..., None])


def _clutter(rng, width, height):
    image = Image.fromarray(np.clip(_gradient(rng, width, height), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    scale = max(width, height)
    for _ in range(int(rng.integers(15, 60))):
        colour = tuple(int(c) for c in _colour(rng))
        x, y = float(rng.uniform(-0.1, 1.1)) * width, float(rng.uniform(-0.1, 1.1)) * height
        r = float(rng.uniform(0.02, 0.18)) * scale
        kind = int(rng.integers(4))
        if kind == 0:
            draw.ellipse((x - r, y - r * rng.uniform(0.4, 1.0), x + r, y + r), fill=colour)
        elif kind == 1:
            draw.rectangle((x - r, y - r * rng.uniform(0.2, 1.0), x + r, y + r), fill=colour)
        elif kind == 2:
            pts = [(x + r * np.cos(a), y + r * np.sin(a)) for a in np.sort(rng.uniform(0, 2 * np.pi, 3))]
            draw.polygon(pts, fill=colour)
        else:
            draw.line((x, y, x + rng.uniform(-2, 2) * r, y + rng.uniform(-2, 2) * r), fill=colour,
                      width=max(1, int(r * 0.15)))
    return np.asarray(image, dtype=np.float32)


def _blur(rng, width, height):
    sharp = np.clip(_clutter(rng, width, height), 0, 255).astype(np.uint8)
    radius = float(rng.uniform(0.01, 0.04)) * max(width, height)
    return np.asarray(Image.fromarray(sharp, "RGB").filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32)


FAMILIES = {
    "gradient": _gradient,
    "noise": _noise,
    "stripes": _stripes,
    "clutter": _clutter,
    "blur": _blur,
}


def make_family_background(rng: np.random.Generator, family: str, width: int, height: int) -> np.ndarray:
    """A random background of ``family`` (``textured`` is :func:`~avsplit.synth.sprites.make_background`)."""
    if family == "textured":
        return make_background(rng, width, height)
    img = FAMILIES[family](rng, width, height)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)
