"""Sprites of the synthetic dataset: emoji (Noto Color Emoji) or, as a fallback, drawn shapes
(:mod:`avsplit.synth.shapes`), and the choice between them for a run.

Noto Color Emoji is a bitmap (CBDT) font: FreeType renders it only at its native size (109 px
here), in colour with ``embedded_color=True``. Each sprite is rendered once per process, cropped
to its visible pixels and scaled afterwards.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from avsplit.errors import ConfigError
from avsplit.synth.shapes import DRAWN_SHAPES

__all__ = [
    "EMOJI_FONTS",
    "SpriteChoice",
    "find_emoji_font",
    "resolve_sprites",
    "emoji_image",
    "drawn_image",
    "sprite_image",
    "find_font",
    "ALPHA_MIN",
]

EMOJI_FONTS: tuple[str, ...] = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/google-noto-emoji/NotoColorEmoji.ttf",
    "/usr/share/fonts/**/NotoColorEmoji*.ttf",
)
_EMOJI_PX = 109  # the one size the CBDT bitmaps exist at
_DRAW_PX = 256  # drawn sprites are drawn at this size, then scaled down to _DRAWN_OUT
_DRAWN_OUT = 128
#: Alpha below this does not count as visible (bounding boxes).
ALPHA_MIN = 24


def find_font(patterns: Iterable[str]) -> Path | None:
    """The first file of ``patterns`` (paths, or globs searched recursively, matches in name order)."""
    for pattern in patterns:
        names = sorted(glob.glob(pattern, recursive=True)) if "*" in pattern else [pattern]
        for name in names:
            if Path(name).is_file():
                return Path(name)
    return None


def find_emoji_font() -> Path | None:
    return find_font(EMOJI_FONTS)


@lru_cache(maxsize=4)
def _font(path: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, _EMOJI_PX)


def _crop_visible(image: Image.Image) -> Image.Image | None:
    alpha = image.getchannel("A").point(lambda a: 255 if a >= ALPHA_MIN else 0)
    box = alpha.getbbox()
    if box is None:
        return None
    return image.crop(box)


@lru_cache(maxsize=64)
def emoji_image(char: str, font_path: str) -> Image.Image | None:
    """The glyph as an RGBA image cropped to its visible pixels; None when the font lacks it."""
    try:
        font = _font(font_path)
        size = (_EMOJI_PX * 3 // 2, _EMOJI_PX * 3 // 2)
        image = Image.new("RGBA", size, (0, 0, 0, 0))
        ImageDraw.Draw(image).text((4, 4), char, font=font, embedded_color=True)
    except (OSError, ValueError):  # FreeType without colour-bitmap support, or a broken font
        return None
    cropped = _crop_visible(image)
    if cropped is None:
        return None
    # A missing glyph may render as a monochrome "tofu" box: require some colour.
    rgb = np.asarray(cropped.convert("RGB"), dtype=np.int16)
    if int(np.ptp(rgb.reshape(-1, 3), axis=0).max()) < 40 and len(char) == 1:
        return None
    return cropped


@lru_cache(maxsize=64)
def drawn_image(shape: str, colour: tuple[int, int, int]) -> Image.Image:
    """A drawn pictogram (RGBA, cropped to its visible pixels)."""
    image = Image.new("RGBA", (_DRAW_PX, _DRAW_PX), (0, 0, 0, 0))
    DRAWN_SHAPES[shape](ImageDraw.Draw(image), tuple(colour))
    image = image.resize((_DRAWN_OUT, _DRAWN_OUT), Image.Resampling.LANCZOS)
    cropped = _crop_visible(image)
    assert cropped is not None
    return cropped


# -------------------------------------------------------------------------------- sprite choice


@dataclass(frozen=True)
class SpriteChoice:
    """The sprite kind resolved for a run."""

    kind: str
    """``emoji`` or ``drawn``."""
    font: Path | None
    missing: tuple[str, ...] = field(default=())
    """Glyphs the font lacks (those objects are drawn instead)."""
    warning: str | None = None


def resolve_sprites(sprites: str, glyphs: Iterable[str] = ()) -> SpriteChoice:
    """Pick the sprite kind: ``emoji``, ``drawn`` or ``auto`` (emoji when the font renders).

    ``glyphs`` are the characters the run needs; any the font lacks are listed in ``missing``.
    """
    if sprites not in ("auto", "emoji", "drawn"):
        raise ConfigError(f"unknown sprite kind {sprites!r}", None, "use auto, emoji or drawn")
    if sprites == "drawn":
        return SpriteChoice("drawn", None)
    font = find_emoji_font()
    problem = None
    if font is None:
        problem = "no colour emoji font found (install fonts-noto-color-emoji)"
    elif emoji_image("\U0001F3B9", str(font)) is None:
        problem = f"cannot render colour emoji from {font} (Pillow needs FreeType with PNG support)"
    if problem is not None:
        if sprites == "emoji":
            raise ConfigError(problem, None, "install fonts-noto-color-emoji or use drawn sprites")
        return SpriteChoice("drawn", None, (), f"{problem}; drawing shapes instead")
    missing = tuple(g for g in dict.fromkeys(glyphs) if emoji_image(g, str(font)) is None)
    return SpriteChoice("emoji", font, missing)


def sprite_image(choice_kind: str, font: Path | None, emoji: str, shape: str, colour: tuple[int, int, int]) -> Image.Image:
    """The sprite of one object: its emoji glyph, or its drawn shape."""
    if choice_kind == "emoji" and font is not None:
        image = emoji_image(emoji, str(font))
        if image is not None:
            return image
    return drawn_image(shape, tuple(colour))
