"""SoundFonts that are not complete General MIDI banks: a source is drawn only from a SoundFont with a
preset for its instrument, and a drum kit or single-instrument SoundFont installed beside the GM
ones is left out with one warning instead of failing a share of the videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avsplit.errors import ConfigError
from avsplit.synth import CATEGORIES, generate_dataset
from avsplit.synth import resources
from avsplit.synth.audio import fluidsynth_problem
from avsplit.synth.makers import SoundFont, find_soundfonts
from avsplit.synth.variety import Resources, plan_sources

GM_FONTS = [f for f in find_soundfonts() if f.stem in ("TimGM6mb", "FluidR3_GM")]
needs_gm_font = pytest.mark.skipif(fluidsynth_problem() is not None or not GM_FONTS,
                                   reason="FluidSynth or a General MIDI SoundFont is not installed")


def _makers_drawn(res: Resources, category: str, split: str = "train", draws: int = 400) -> set[str]:
    return {plan.maker for seed in range(draws)
            for plan in plan_sources(np.random.default_rng(seed), res, [category], split)}


def test_a_source_is_never_drawn_from_a_soundfont_without_its_preset():
    full = SoundFont(Path("/fonts/Full.sf2"), "Full")  # not probed: plays everything
    partial = SoundFont(Path("/fonts/Partial.sf2"), "Partial", frozenset({"piano", "guitar"}))
    res = Resources(soundfonts=(full, partial))
    assert "sf:Partial" in _makers_drawn(res, "piano")
    violin = _makers_drawn(res, "violin")
    assert "sf:Full" in violin and "sf:Partial" not in violin


def test_the_foreign_split_needs_the_held_out_soundfont_to_have_the_preset():
    held = SoundFont(Path("/fonts/FluidR3_GM.sf2"), "FluidR3_GM", frozenset({"piano"}))
    res = Resources(soundfonts=(held,))
    assert _makers_drawn(res, "piano", "foreign", draws=20) == {"sf:FluidR3_GM"}
    with pytest.raises(ConfigError, match="no held-out sound for horn"):
        plan_sources(np.random.default_rng(0), res, ["horn"], "foreign")


@needs_gm_font
def test_a_general_midi_soundfont_is_probed_for_every_category():
    fonts, warnings = resources.loadable_soundfonts(GM_FONTS[:1], strict=True)
    assert not warnings
    assert fonts[0].categories == frozenset(c.name for c in CATEGORIES)


@needs_gm_font
def test_a_soundfont_with_few_presets_is_left_out_with_one_warning(monkeypatch):
    # a drum kit's SoundFont answers only bank 0 program 0: stand it in with a GM file probed as such
    monkeypatch.setattr(resources, "soundfont_categories", lambda synth, sfid: ["piano"])
    fonts, warnings = resources.loadable_soundfonts(GM_FONTS[:1], strict=False)
    assert fonts == [] and len(warnings) == 1
    assert str(GM_FONTS[0].path) in warnings[0] and "not a General MIDI SoundFont" in warnings[0]
    with pytest.raises(ConfigError, match="1 of the 12 instrument categories"):
        resources.loadable_soundfonts(GM_FONTS[:1], strict=True)  # named with --soundfont: refused


@needs_gm_font
def test_the_plain_variety_refuses_a_soundfont_that_is_not_general_midi(monkeypatch, tmp_path):
    monkeypatch.setattr(resources, "soundfont_categories", lambda synth, sfid: ["piano"])
    with pytest.raises(ConfigError, match="not a General MIDI SoundFont"):
        generate_dataset(tmp_path / "out", solos=1, duets=0, seconds=1.0, size=(112, 84), fps=12.0,
                         sample_rate=16000, soundfont=GM_FONTS[0].path)
    assert not (tmp_path / "out").exists()
