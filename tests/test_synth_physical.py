"""The physical-modelling sound maker of ``synth --variety full`` (``physical``): every family sounds,
at the melody's onsets and pitches, a seed gives one timbre, and only training data draws it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile

from avsplit.synth import CATEGORIES, generate_dataset
from avsplit.synth.makers import SoundFont
from avsplit.synth.melody import Melody, Note
from avsplit.synth.performance import perform
from avsplit.synth.physical import FAMILIES, family_of, render_physical
from avsplit.synth.variety import Resources, plan_sources
from test_synth_variety import TINY, _truths

RATE = 16000
BY_NAME = {c.name: c for c in CATEGORIES}
#: The first category of each family.
ONE_PER_FAMILY = {family: name for name, family in reversed(list(FAMILIES.items()))}


def _key(name: str) -> int:
    category = BY_NAME[name]
    return category.drum_keys[0] if category.percussion else (category.low + category.high) // 2


def _render(name: str, melody: Melody, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    return render_physical(BY_NAME[name], melody, RATE, int(seconds * RATE), np.random.default_rng(seed))


def _fundamental(audio: np.ndarray, rate: int) -> float:
    """Pitch (Hz) of ``audio`` ``(n,)``: the first autocorrelation peak (40-2000 Hz) near the highest."""
    x = audio.astype(np.float64) - audio.mean()
    corr = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * len(x))) ** 2)[: len(x)]
    low, high = int(rate / 2000), int(rate / 40)
    seg = corr[low:high] / corr[0]
    peaks = [i for i in range(1, len(seg) - 1) if seg[i - 1] <= seg[i] > seg[i + 1]]
    best = max(seg[i] for i in peaks)
    i = next(i for i in peaks if seg[i] > 0.85 * best)
    shift = 0.5 * (seg[i - 1] - seg[i + 1]) / (seg[i - 1] - 2 * seg[i] + seg[i + 1])
    return rate / (low + i + shift)


def _band_profile(audio: np.ndarray) -> np.ndarray:
    """Share of the energy (dB) in 16 log-spaced bands from 50 Hz to 7.9 kHz: ``(16,)``."""
    power = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1.0 / RATE)
    edges = np.geomspace(50.0, 7900.0, 17)
    energy = np.array([power[(freqs >= a) & (freqs < b)].sum() for a, b in zip(edges[:-1], edges[1:])])
    return 10.0 * np.log10(energy / energy.sum() + 1e-9)


def test_every_category_has_a_family():
    assert {c.name for c in CATEGORIES} <= set(FAMILIES)
    assert set(ONE_PER_FAMILY) == {"plucked", "struck", "mallet", "bowed", "blown", "membrane"}
    harp = dataclasses.replace(BY_NAME["guitar"], name="harp")
    organ = dataclasses.replace(BY_NAME["accordion"], name="organ")
    conga = dataclasses.replace(BY_NAME["djembe"], name="conga")
    assert (family_of(harp), family_of(organ), family_of(conga)) == ("plucked", "blown", "membrane")


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_every_category_renders_a_performance(name):
    melody, _ = perform(np.random.default_rng(1), BY_NAME[name], 2.0)
    audio = _render(name, melody)
    assert audio.shape == (2 * RATE,) and audio.dtype == np.float32
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0.01


@pytest.mark.parametrize("name", sorted(ONE_PER_FAMILY.values()))
def test_notes_sound_from_their_onsets(name):
    """Silence before the first note; in the 20 ms after each onset far more energy than just before,
    and over a tenth of the note's level (bowed and blown notes build up, struck ones start loudest)."""
    key = _key(name)
    onsets = (0.3, 2.0, 3.6)
    chord = (key, key + 4) if not BY_NAME[name].percussion else (key,)
    melody = Melody(tuple(Note(t, t + 0.3, chord if i == 1 else (key,), 100) for i, t in enumerate(onsets)))
    audio = _render(name, melody, seconds=4.5).astype(np.float64)
    first = int(round(onsets[0] * RATE))
    assert not np.any(audio[:first]) and np.any(audio[first:first + 2])
    window = int(0.02 * RATE)
    for t in onsets:
        a = int(round(t * RATE))
        after = np.sqrt(np.mean(audio[a:a + window] ** 2))
        before = np.sqrt(np.mean(audio[a - window:a] ** 2))
        note = np.sqrt(np.mean(audio[a:a + int(0.3 * RATE)] ** 2))
        assert after > 0.1 * note and after > 3.0 * before, (t, after, before, note)


@pytest.mark.parametrize("name", ["guitar", "banjo", "piano", "violin", "trumpet", "horn", "saxophone", "flute",
                                  "accordion"])
def test_a_note_has_its_keys_pitch(name):
    key = _key(name)
    audio = _render(name, Melody((Note(0.1, 1.1, (key,), 100),)), seconds=1.5)
    pitch = _fundamental(audio[int(0.2 * RATE):int(0.9 * RATE)], RATE)
    expected = 440.0 * 2 ** ((key - 69) / 12)
    assert abs(pitch / expected - 1.0) < 0.03, (pitch, expected)


@pytest.mark.parametrize("name", sorted(ONE_PER_FAMILY.values()))
def test_a_seed_is_one_timbre(name):
    melody = Melody((Note(0.1, 0.9, (_key(name),), 100),))
    same = [_render(name, melody, seed=5) for _ in range(2)]
    assert np.array_equal(same[0], same[1])
    profiles = [_band_profile(_render(name, melody, seed=seed)) for seed in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.sqrt(np.mean((profiles[i] - profiles[j]) ** 2)) > 1.5, (i, j)


def _maker_counts(res: Resources, split: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for seed in range(300):
        for plan in plan_sources(np.random.default_rng(seed), res, ["guitar", "violin", "drum"], split):
            counts[plan.maker] = counts.get(plan.maker, 0) + 1
    return counts


def test_only_training_data_draws_physical():
    fonts = tuple(SoundFont(Path(f"/fonts/{stem}.sf2"), stem) for stem in ("FluidR3_GM", "TimGM6mb"))
    assert "physical" not in _maker_counts(Resources(soundfonts=fonts), "foreign")
    for res in (Resources(soundfonts=fonts), Resources()):  # with SoundFonts, and with none installed
        for split in ("train", "all"):
            counts = _maker_counts(res, split)
            assert 0.1 < counts.get("physical", 0) / sum(counts.values()) < 0.2, (split, counts)


def test_train_clips_name_the_physical_maker(tmp_path):
    out = tmp_path / "train"
    summary = generate_dataset(out, solos=3, duets=0, seed=13, split="train", **TINY)
    assert not summary.failed
    physical = [(t, s) for t in _truths(out) for s in t["sources"] if s["domain"]["sound_maker"] == "physical"]
    assert physical
    for truth, source in physical:
        assert source["domain"]["soundfont"] == "none" and truth["domain"]["split"] == "train"
        assert "physical" in truth["domain"]["sound_maker"].split("+")
        audio = soundfile.read(str(truth["_path"].parent / source["audio"]))[0]
        assert np.abs(audio).max() > 0.01 and source["onsets"] and any(source["sounding"])
