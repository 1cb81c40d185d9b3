"""The outline glyph style: monochrome instrument symbols of an outline font (Symbola, from
Debian's fonts-symbola), recoloured with a random fill and a contrasting rim.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from avsplit.synth.sprites import ALPHA_MIN, find_font

__all__ = ["OUTLINE_FONTS", "find_outline_font", "outline_image"]

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
    pad = 4
    cov = np.pad(np.asarray(mask, dtype=np.float32) / 255.0, pad)
    grown = cov.copy()
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            if dx * dx + dy * dy <= 9:
                grown = np.maximum(grown, np.roll(np.roll(cov, dy, 0), dx, 1))
    rgb = np.where(cov[..., None] > 0.5, np.array(fill, np.float32), np.array(rim, np.float32))
    alpha = np.clip(grown * 255.0, 0, 255)
    return Image.fromarray(np.dstack([rgb, alpha]).astype(np.uint8), "RGBA")
