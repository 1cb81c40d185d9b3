"""``avsplit synth --variety full`` and ``--split``: domains in the truth, the leave-out protocol,
the recording chain, real takes, picture and motion variety, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from avsplit import io as media
from avsplit.errors import ConfigError
from avsplit.synth import CATEGORIES, generate_dataset
from avsplit.synth import realtakes
from avsplit.synth.backgrounds import make_family_background
from avsplit.synth.chain import apply_source_chain, chain_label, make_noise, random_source_chain
from avsplit.synth.makers import find_soundfonts
from avsplit.synth.motion import styled_motion
from avsplit.synth.scene import Actor, render_scene
from avsplit.synth.variety import BACKGROUNDS, HELD_OUT, MOTIONS

TINY = dict(seconds=1.5, size=(112, 84), fps=12.0, sample_rate=16000)
DOMAIN_KEYS = {"sound_maker", "soundfont", "chain", "glyph", "background", "motion", "split"}
SOURCE_KEYS = {"sound_maker", "soundfont", "chain", "glyph", "motion"}
SAMPLES = realtakes.find_sample_dir()
FONTS = {f.stem for f in find_soundfonts()}
needs_fluid_r3 = pytest.mark.skipif("FluidR3_GM" not in FONTS, reason="fluid-soundfont-gm is not installed")


def _truths(root: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) | {"_path": p} for p in sorted(root.rglob("*.truth.json"))]


@pytest.fixture(scope="module")
def train_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("variety") / "train"
    summary = generate_dataset(out, solos=14, duets=6, seed=3, split="train", **TINY)
    assert not summary.failed
    return out


@pytest.fixture(scope="module")
def foreign_set(tmp_path_factory):
    if "FluidR3_GM" not in FONTS:
        pytest.skip("fluid-soundfont-gm is not installed")
    out = tmp_path_factory.mktemp("variety") / "foreign"
    summary = generate_dataset(out, solos=6, duets=4, seed=4, split="foreign", **TINY)
    assert not summary.failed
    return out


def test_truth_names_its_domain(train_set):
    for truth in _truths(train_set):
        assert truth["version"] == 2
        assert set(truth["domain"]) == DOMAIN_KEYS
        assert truth["domain"]["split"] in ("train", "foreign", "real")
        for source in truth["sources"]:
            d = source["domain"]
            assert set(d) == SOURCE_KEYS
            assert d["sound_maker"] in ("additive", "physical", "real") or d["sound_maker"] == f"sf:{d['soundfont']}"
            assert (d["soundfont"] == "none") == (d["sound_maker"] in ("additive", "physical", "real"))
            assert d["glyph"] in ("emoji", "outline", "drawn") and d["motion"] in MOTIONS
            assert d["chain"] == "clean" or all(step in ("lowrate", "eq", "room", "comp", "noise", "aac")
                                                for step in d["chain"].split("+"))
        assert truth["domain"]["background"] in BACKGROUNDS
        for key in ("sound_maker", "soundfont", "glyph", "motion"):
            assert truth["domain"][key] == "+".join(sorted({s["domain"][key] for s in truth["sources"]}))


def test_train_split_never_uses_held_out_values(train_set):
    truths = _truths(train_set)
    assert len(truths) == 20
    for truth in truths:
        assert truth["domain"]["split"] == "train", truth["_path"]
        for source in truth["sources"]:
            d = source["domain"]
            assert d["soundfont"] not in HELD_OUT["soundfont"] and d["glyph"] not in HELD_OUT["glyph"]
            assert d["motion"] not in HELD_OUT["motion"]
            if d["sound_maker"] == "real":
                take = next(t for ts in realtakes.REAL_TAKES.values() for t in ts if t.name == source["take"])
                assert not take.held_out
        assert truth["domain"]["background"] not in HELD_OUT["background"]
    # and the train split still varies on every axis
    for key in ("sound_maker", "background", "motion", "chain"):
        assert len({t["domain"][key] for t in truths}) >= 3, key
    assert len({(t["width"], t["height"]) for t in truths}) >= 5 and len({t["fps"] for t in truths}) >= 3


def test_foreign_split_always_uses_held_out_sound(foreign_set):
    for truth in _truths(foreign_set):
        assert truth["domain"]["split"] in ("foreign", "real")
        for source in truth["sources"]:
            d = source["domain"]
            if d["sound_maker"] == "real":
                take = next(t for ts in realtakes.REAL_TAKES.values() for t in ts if t.name == source["take"])
                assert take.held_out and truth["domain"]["split"] == "real"
            else:
                assert d["soundfont"] in HELD_OUT["soundfont"]


def test_mixture_is_sources_plus_recorded_noise(train_set):
    noisy = 0
    for truth in _truths(train_set):
        folder = truth["_path"].parent
        total = sum(soundfile.read(str(folder / s["audio"]), dtype="float64")[0] for s in truth["sources"])
        if truth["noise"] is not None:
            noisy += 1
            noise = soundfile.read(str(folder / truth["noise"]["audio"]), dtype="float64")[0]
            signal_rms = np.sqrt(np.mean(total ** 2))
            snr = 20 * np.log10(signal_rms / np.sqrt(np.mean(noise ** 2)))
            assert 15.0 < snr < 70.0
            total = total + noise
        track = media.read_audio(folder / truth["video"], truth["sample_rate"])
        n = min(len(track), len(total))
        assert n >= 0.95 * len(total)
        assert np.corrcoef(track[:n], total[:n])[0, 1] > 0.95, truth["_path"]
    assert noisy >= 3


def test_sound_part_sums_exactly():
    """Before AAC: the mixture is exactly the sum of the 16-bit sources and the noise."""
    from avsplit.synth import clip as synth_clip
    from avsplit.synth.audio import resolve_renderer
    from avsplit.synth.resources import resolve_resources

    res, _, _ = resolve_resources("auto", None, ("drawn",), None)
    st = synth_clip.Settings(seconds=1.0, width=64, height=48, fps=12.0, sample_rate=16000, seed=0, distractors=0,
                             renderer=resolve_renderer("additive", None, 16000), sprite_kind="drawn", font=None,
                             overwrite=False, variety="full", split="all", resources=res)
    for seed in range(6):
        rngs = [np.random.default_rng([seed, k]) for k in range(2)]
        part = synth_clip.make_sound(st, [CATEGORIES[seed], CATEGORIES[seed + 3]], *rngs)
        expected = np.sum(part.sources, axis=0, dtype=np.float32) + (0 if part.noise is None else part.noise)
        assert np.array_equal(part.mix, expected.astype(np.float32))
        for s in part.sources:
            assert np.array_equal(np.round(s * 32767.0), s * 32767.0)


def test_same_seed_same_output(tmp_path):
    a = generate_dataset(tmp_path / "a", solos=2, duets=1, seed=11, variety="full", **TINY)
    b = generate_dataset(tmp_path / "b", solos=2, duets=1, seed=11, variety="full", jobs=2, **TINY)
    assert not a.failed and not b.failed
    for ta, tb in zip(_truths(tmp_path / "a"), _truths(tmp_path / "b")):
        pa, pb = ta.pop("_path"), tb.pop("_path")
        assert ta == tb
        for s in ta["sources"]:
            wa = soundfile.read(str(pa.parent / s["audio"]))[0]
            wb = soundfile.read(str(pb.parent / s["audio"]))[0]
            assert np.array_equal(wa, wb)


@pytest.mark.skipif(SAMPLES is None, reason="sonic-pi-samples is not installed")
@pytest.mark.parametrize("held_out", [False, True])
def test_real_takes_render_with_their_onsets(held_out):
    takes = [t for c in realtakes.REAL_TAKES for t in realtakes.available_takes(SAMPLES, c, held_out)]
    assert takes
    rate = 16000
    hit_rises: list[bool] = []
    loop_rises: list[bool] = []
    for i, take in enumerate(takes):
        audio, melody, info = realtakes.render_take(take, SAMPLES, np.random.default_rng(i), rate, 4 * rate)
        assert audio.shape == (4 * rate,) and np.max(np.abs(audio)) > 0.01, take.name
        onsets = melody.onsets
        assert onsets and all(0 <= t < 4.0 for t in onsets)
        assert info["take"] == take.name
        # an onset is an attack: more high-frequency energy (first differences) just after it than before
        edge = np.diff(audio.astype(np.float64), prepend=0.0) ** 2
        rise = [np.mean(edge[int(t * rate): int(t * rate) + 480]) > np.mean(edge[max(0, int(t * rate) - 480): int(t * rate)])
                for t in onsets]
        (loop_rises if take.loop else hit_rises).extend(rise)
    # hits are placed at their onsets; a loop's inner onsets are found in its audio
    assert not hit_rises or np.mean(hit_rises) > 0.75
    assert not loop_rises or np.mean(loop_rises) > 0.55
    held_files = {f + ".flac" for t in takes for f in t.files}
    assert held_files <= set(realtakes.HELD_OUT_REAL_FILES) if held_out else not (held_files & set(realtakes.HELD_OUT_REAL_FILES))


@pytest.mark.skipif(SAMPLES is None, reason="sonic-pi-samples is not installed")
def test_real_takes_appear_in_clips(tmp_path):
    out = tmp_path / "real"
    summary = generate_dataset(out, solos=8, duets=0, seed=2, split="foreign", categories=["drum", "djembe"], **TINY)
    assert not summary.failed
    real = [s for t in _truths(out) for s in t["sources"] if s["domain"]["sound_maker"] == "real"]
    assert real and all(s["take"] and s["onsets"] for s in real)


@pytest.mark.parametrize("family", BACKGROUNDS)
def test_every_background_family_renders(family):
    image = make_family_background(np.random.default_rng(0), family, 80, 60)
    assert image.shape == (60, 80, 3) and image.dtype == np.uint8 and image.std() > 3


@pytest.mark.parametrize("style", MOTIONS)
def test_every_motion_style_follows_the_sound(style):
    fps, n = 12.0, 36
    level = np.zeros(n)
    level[12:24] = 0.8
    motion = styled_motion(style, level, [1.0], fps, np.random.default_rng(0))
    rest = [k for k in range(n) if k < 12]
    assert np.all(motion.lift[rest] == 0) and np.all(motion.angle[rest] == 0) and np.all(motion.scale[rest] == 1)
    moving = np.abs(motion.angle[12:24]).max() + np.abs(motion.lift[12:24]).max() + np.abs(motion.scale[12:24] - 1).max()
    if motion.arm is not None:
        assert np.all(motion.arm[rest] == 0)
        moving += np.abs(motion.arm[12:24]).max()
    assert moving > 0.05
    from PIL import Image

    sprite = Image.new("RGBA", (20, 30), (200, 30, 30, 255))
    frames = [f for f, _ in render_scene(np.zeros((48, 64, 3), np.uint8), [Actor(sprite, 32, 24, motion)], n)]
    assert not np.array_equal(frames[0], frames[13])


def test_chain_steps_and_labels():
    rate, n = 16000, 16000
    tone = lambda r, m: (0.3 * np.sin(2 * np.pi * 440 * np.arange(m) / r)).astype(np.float32)  # noqa: E731
    rng = np.random.default_rng(0)
    chains = [random_source_chain(rng) for _ in range(30)]
    for chain in chains:
        out = apply_source_chain(tone, chain, rate, n)
        assert out.shape == (n,) and np.all(np.isfinite(out)) and np.max(np.abs(out)) > 0.01
    assert {k for c in chains for k in c} >= {"eq", "room", "comp", "source_rate"}
    assert chain_label(None, None, rate) == "clean"
    assert chain_label({"source_rate": 16000, "eq": []}, {"noise": {}, "aac_kbps": 64}, 22050) == "lowrate+eq+noise+aac"
    noise = make_noise({"kind": "pink", "snr_db": 30.0, "seed": 1}, 0.1, rate, n)
    assert abs(20 * np.log10(0.1 / np.sqrt(np.mean(noise.astype(np.float64) ** 2))) - 30.0) < 0.1


def test_bad_variety_and_split_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="variety"):
        generate_dataset(tmp_path / "x", solos=1, duets=0, variety="lots", **TINY)
    with pytest.raises(ConfigError, match="split"):
        generate_dataset(tmp_path / "x", solos=1, duets=0, split="test", **TINY)


def test_missing_samples_fall_back_to_synthesis(monkeypatch, tmp_path):
    from avsplit.synth import resources

    monkeypatch.setattr(resources, "find_sample_dir", lambda: None)
    res, report, warnings = resources.resolve_resources("auto", None, ("drawn",), None)
    assert res.sample_dir is None and report["samples"] is None
    assert any("sonic-pi-samples" in w for w in warnings)
