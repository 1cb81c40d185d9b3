"""Monochrome glyph styles: ink in one colour with a contrasting rim.

``outline``: the instrument symbols of an outline font (Symbola, from Debian's fonts-symbola),
recoloured with a random fill and rim. ``mono``: the same kind of picture made from another
sprite (the colour emoji or the drawn shape): its dark parts and its edges become the ink, so a
model meets one-colour line drawings of other shapes than Symbola's (``synth --glyphs``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from avsplit.synth.sprites import ALPHA_MIN, find_font

__all__ = ["OUTLINE_FONTS", "find_outline_font", "outline_image", "mono_image"]

OUTLINE_FONTS: tuple[str, ...] = (
    "/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf",
    "/usr/share/fonts/truetype/ancient-scripts/Symbola.ttf",
    "/usr/share/fonts/**/Symbola*.ttf",
    "/usr/share/fonts/**/Symbola*.otf",
)
_PX = 160


@lru_cache(maxsize=1)
def find_outline_font() -> Path | None:
    return find_font(OUTLINE_FONTS)


@lru_cache(maxsize=2)
def _font(path: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, _PX)


@lru_cache(maxsize=64)
def _mask(char: str, font_path: str) -> Image.Image | None:
    """The glyph's coverage (mode L), cropped; None when the font lacks it (no ink, or the
    font's empty-box "notdef" glyph)."""
    font = _font(font_path)
    try:
        if font.getmask(char).getbbox() is None:
            return None
        notdef = font.getmask("\U0010FFFD").getbbox()
    except (OSError, ValueError):
        return None
    image = Image.new("L", (_PX * 2, _PX * 2), 0)
    ImageDraw.Draw(image).text((_PX // 4, _PX // 4), char, font=font, fill=255)
    box = image.point(lambda a: 255 if a >= ALPHA_MIN else 0).getbbox()
    if box is None:
        return None
    crop = image.crop(box)
    if notdef is not None and crop.size == (notdef[2] - notdef[0], notdef[3] - notdef[1]):
        return None
    return crop


def outline_image(char: str, font_path: Path, fill: tuple[int, int, int], rim: tuple[int, int, int]) -> Image.Image | None:
    """The glyph in ``fill`` with a 3-pixel ``rim`` (RGBA), or None when the font lacks it."""
    mask = _mask(char, str(font_path))
    if mask is None:
        return None
    return _inked(np.asarray(mask, dtype=np.float32) / 255.0, fill, rim)


def mono_image(sprite: Image.Image, fill: tuple[int, int, int], rim: tuple[int, int, int], hollow: bool = False) -> Image.Image:
    """``sprite`` (RGBA) redrawn as a one-colour ink drawing (RGBA): its edges (luma and
    silhouette) and, unless ``hollow``, its dark parts (luma at most the 35th percentile of its
    visible pixels and at most halfway between their darkest and lightest) in ``fill``, with a
    3-pixel ``rim``; the rest transparent."""
    rgba = np.asarray(sprite.convert("RGBA"), dtype=np.float32)
    alpha = rgba[..., 3] / 255.0
    visible = alpha >= ALPHA_MIN / 255.0
    luma = (rgba[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)) * alpha  # silhouette edges count
    dark = np.zeros_like(visible)
    if visible.any() and not hollow:
        shown = luma[visible]
        dark = visible & (luma <= min(float(np.percentile(shown, 35.0)), 0.5 * float(shown.min() + shown.max())))
    gy, gx = np.gradient(luma)
    edge = np.hypot(gx, gy)
    edges = edge[edge > 0]
    threshold = 0.25 * float(np.percentile(edges, 90.0)) if edges.size else 1.0
    lines = edge >= max(threshold, 1e-3)
    width = max(1, round(min(alpha.shape) / 60))  # strokes about as thick as Symbola's at sprite size
    return _inked(_grow((dark | lines).astype(np.float32), width) * visible.astype(np.float32), fill, rim)


def _grow(cov: np.ndarray, radius: int) -> np.ndarray:
    """``cov`` ``(H, W)`` float32 dilated by a disc of ``radius`` pixels (nothing enters from outside)."""
    import cv2

    offsets = np.arange(-radius, radius + 1)
    disc = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius * radius).astype(np.uint8)
    return cv2.dilate(cov.astype(np.float32), disc, borderType=cv2.BORDER_CONSTANT, borderValue=0)


def _inked(cov: np.ndarray, fill: tuple[int, int, int], rim: tuple[int, int, int]) -> Image.Image:
    """Coverage ``cov`` ``(H, W)`` in [0, 1] as ink of ``fill`` with a 3-pixel ``rim`` (RGBA, padded)."""
    cov = np.pad(cov, 4)
    grown = _grow(cov, 3)
    rgb = np.where(cov[..., None] > 0.5, np.array(fill, np.float32), np.array(rim, np.float32))
    alpha = np.clip(grown * 255.0, 0, 255)
    return Image.fromarray(np.dstack([rgb, alpha]).astype(np.uint8), "RGBA")
