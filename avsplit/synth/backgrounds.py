"""Background families of ``--variety full``: ``textured`` (today's), ``gradient``, ``noise``,
``stripes``, ``clutter`` (random shapes) and ``blur`` (blurred clutter, like an out-of-focus room).
Each returns uint8 ``(height, width, 3)``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["make_background", "make_family_background", "FAMILIES"]


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]) * 255.0


def _upsampled_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Smooth noise in [-1, 1]: a coarse random grid upsampled bicubically."""
    gw = max(2, int(round(cells * width / max(width, height))))
    gh = max(2, int(round(cells * height / max(width, height))))
    grid = rng.uniform(-1.0, 1.0, (gh, gw)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BICUBIC))


def make_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A random textured background: a two-colour gradient, a few soft blobs, smooth and fine
    noise. uint8 ``(height, width, 3)``."""
    hue = float(rng.uniform(0, 1))
    c1 = _hsv(hue, float(rng.uniform(0.15, 0.6)), float(rng.uniform(0.35, 0.9)))
    c2 = _hsv((hue + rng.uniform(-0.25, 0.25)) % 1.0, float(rng.uniform(0.15, 0.6)), float(rng.uniform(0.3, 0.85)))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = float(rng.uniform(0, 2 * np.pi))
    proj = xx * np.cos(angle) + yy * np.sin(angle)
    proj = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0)
    img = c1[None, None, :] * (1 - proj[..., None]) + c2[None, None, :] * proj[..., None]
    for _ in range(int(rng.integers(3, 7))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(0.08, 0.35) * width, rng.uniform(0.08, 0.35) * height
        colour = _hsv(float(rng.uniform(0, 1)), float(rng.uniform(0.1, 0.6)), float(rng.uniform(0.3, 1.0)))
        strength = float(rng.uniform(0.15, 0.4))
        mask = np.exp(-(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)) * strength
        img = img * (1 - mask[..., None]) + colour[None, None, :] * mask[..., None]
    if rng.random() < 0.5:  # a floor: the lower part a little darker, with a soft edge
        edge = float(rng.uniform(0.6, 0.8)) * height
        floor = 1.0 / (1.0 + np.exp(np.clip(-(yy - edge) / 3.0, -60.0, 60.0)))
        img = img * (1 - 0.25 * floor[..., None])
    texture = 14.0 * _upsampled_noise(rng, width, height, 12) + 6.0 * _upsampled_noise(rng, width, height, 48)
    img = img + texture[..., None]
    img = img + rng.normal(0.0, 2.5, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


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
    """A random background of ``family`` (``textured`` is :func:`make_background`)."""
    if family == "textured":
        return make_background(rng, width, height)
    img = FAMILIES[family](rng, width, height)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)
