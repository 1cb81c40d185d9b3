"""Glyph styles of ``avsplit synth --variety full``: the ``mono`` style (one-colour ink made from
another sprite) and ``--glyphs``, which chooses the styles drawn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from avsplit.cli import app
from avsplit.errors import ConfigError
from avsplit.synth import generate_dataset
from avsplit.synth.glyphs import mono_image
from avsplit.synth.resources import resolve_resources
from avsplit.synth.sprites import ALPHA_MIN, drawn_image
from avsplit.synth.variety import GLYPHS

TINY = dict(seconds=1.5, size=(112, 84), fps=12.0, sample_rate=16000)
FILL, RIM = (200, 40, 90), (255, 255, 255)


def _truths(root: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(root.rglob("*.truth.json"))]


def _two_tone_sprite() -> Image.Image:
    """A dark disc on a light square, transparent around: ink where it is dark and on the edges."""
    rgba = np.zeros((60, 60, 4), np.uint8)
    rgba[10:50, 10:50] = (230, 230, 230, 255)
    yy, xx = np.mgrid[:60, :60]
    rgba[(yy - 30) ** 2 + (xx - 30) ** 2 <= 64] = (20, 20, 20, 255)
    return Image.fromarray(rgba, "RGBA")


@pytest.mark.parametrize("hollow", [False, True])
def test_mono_glyphs_are_ink_of_one_colour_with_a_rim(hollow):
    image = np.asarray(mono_image(_two_tone_sprite(), FILL, RIM, hollow=hollow))
    opaque = image[..., 3] >= ALPHA_MIN
    colours = {tuple(c) for c in image[opaque][:, :3]}
    assert colours == {FILL, RIM}
    ink = (image[..., :3] == FILL).all(-1) & opaque
    centre = ink[30 + 4, 30 + 4]  # the dark disc's centre (the image is padded by 4)
    assert centre != hollow  # solid ink fills the dark part; hollow ink only draws its edges
    assert ink[4 + 10, 4 + 30]  # the silhouette's edge is inked either way
    assert not ink[4 + 20, 4 + 20]  # the light inside is not ink


def test_mono_is_made_from_drawn_shapes_too():
    image = np.asarray(mono_image(drawn_image("bell", (230, 200, 40)), FILL, RIM, hollow=True))
    assert ((image[..., :3] == FILL).all(-1) & (image[..., 3] > 0)).sum() > 100


def test_glyphs_choose_the_styles_drawn(tmp_path):
    out = tmp_path / "mono"
    result = CliRunner().invoke(app, ["synth", str(out), "--split", "train", "--glyphs", "drawn,mono", "--solos", "6",
                                      "--duets", "1", "--seed", "5", "--seconds", "1.5", "--size", "112x84", "--fps", "12",
                                      "--sr", "16000", "-q"])
    assert result.exit_code == 0, result.output
    glyphs = [s["domain"]["glyph"] for t in _truths(out) for s in t["sources"]]
    assert set(glyphs) == {"drawn", "mono"}
    assert json.loads((out / "synth.json").read_text())["available"]["glyphs"] == ["drawn", "mono"]


def test_the_default_glyphs_draw_as_before(tmp_path):
    """Naming the default styles draws exactly what giving none draws."""
    a, b = tmp_path / "a", tmp_path / "b"
    generate_dataset(a, solos=3, duets=1, seed=22, split="train", **TINY)
    generate_dataset(b, solos=3, duets=1, seed=22, split="train", glyphs=["drawn", "outline", "emoji"], **TINY)
    assert [t["domain"] for t in _truths(a)] == [t["domain"] for t in _truths(b)]


def test_bad_glyph_styles_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown glyph style sketch"):
        resolve_resources("additive", None, GLYPHS, None, glyph_styles=["mono", "sketch"])
    with pytest.raises(ConfigError, match="outline glyph style does not render"):
        resolve_resources("additive", None, ("drawn",), None, glyph_styles=["outline"])
    assert resolve_resources("additive", None, ("drawn",), None, glyph_styles=["mono", "drawn"])[0].glyphs == ("drawn", "mono")
    refused = CliRunner().invoke(app, ["synth", str(tmp_path / "no"), "--glyphs", "mono", "-q"])
    assert refused.exit_code == 1 and "--variety full" in refused.output
