"""The synthetic dataset generator (``avsplit synth``): layout, truth, determinism, motion, fallbacks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from avsplit import io as media
from avsplit.errors import ConfigError
from avsplit.synth import CATEGORIES, generate_dataset
from avsplit.synth import audio as synth_audio
from avsplit.synth import sprites as synth_sprites

TINY = dict(seconds=2.0, size=(128, 96), fps=12.0, sample_rate=16000)


def _truths(root: Path) -> list[Path]:
    return sorted(root.rglob("*.truth.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _frame_rms(audio: np.ndarray, rate: int, fps: float, n: int) -> np.ndarray:
    edges = np.round(np.arange(n + 1) * rate / fps).astype(int)
    return np.array([np.sqrt(np.mean(np.square(audio[edges[k] : edges[k + 1]], dtype=np.float64))) for k in range(n)])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two solos and two duets (one of them same-kind), with a distractor, made once."""
    out = tmp_path_factory.mktemp("synth") / "data"
    summary = generate_dataset(out, solos=2, duets=2, same_kind=0.5, distractors=1, seed=7, **TINY)
    return out, summary


# ------------------------------------------------------------------------------------ layout


def test_layout_and_truth_files(dataset):
    out, summary = dataset
    assert not summary.failed and not summary.skipped and len(summary.written) == 4
    assert (out / "synth.json").is_file()
    solos = sorted((out / "solos").glob("*/*.mp4"))
    duets = sorted((out / "duets").glob("*.mp4"))
    assert sorted(p.name for p in solos) == ["solo-0000.mp4", "solo-0001.mp4"]
    assert [p.name for p in duets] == ["duet-0000.mp4", "duet-0001.mp4"]
    for video in solos + duets:
        truth = _load(video.with_name(video.stem + ".truth.json"))
        kind = "solo" if video in solos else "duet"
        assert truth["version"] == 2 and truth["kind"] == kind and truth["video"] == video.name
        assert len(truth["sources"]) == (1 if kind == "solo" else 2)
        if kind == "solo":
            assert video.parent.name == truth["sources"][0]["category"]
        assert truth["generator"]["renderer"] == summary.renderer
        assert truth["generator"]["sprites"] == summary.sprites
        for k, source in enumerate(truth["sources"], start=1):
            assert source["index"] == k
            assert source["audio"] == f"{video.stem}.source-{k}.wav"
            assert (video.parent / source["audio"]).is_file()
        assert len(truth["distractors"]) == 1


def test_truth_lines_up_with_the_video(dataset):
    out, _ = dataset
    for truth_path in _truths(out):
        truth = _load(truth_path)
        video = truth_path.with_name(truth["video"])
        info = media.probe(video)
        assert (info.width, info.height) == (truth["width"], truth["height"]) == (128, 96)
        decoded = sum(1 for _ in media.iter_frames(video))
        assert decoded == truth["num_frames"] == round(truth["seconds"] * truth["fps"])
        w, h = truth["width"], truth["height"]
        centres = []
        for source in truth["sources"] + truth["distractors"]:
            boxes = np.asarray(source["boxes"])
            assert boxes.shape == (truth["num_frames"], 4)
            assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
            assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
            assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        for source in truth["sources"]:
            boxes = np.asarray(source["boxes"])
            centres.append(float(np.mean((boxes[:, 0] + boxes[:, 2]) / 2)))
            assert len(source["sounding"]) == truth["num_frames"]
            assert all(0 <= t < truth["seconds"] for t in source["onsets"]) and source["onsets"]
            audio, rate = soundfile.read(str(video.parent / source["audio"]), dtype="float32")
            assert rate == truth["sample_rate"] and len(audio) == round(truth["seconds"] * rate)
        assert centres == sorted(centres)


def test_video_sound_is_the_sum_of_the_sources(dataset):
    out, _ = dataset
    for truth_path in _truths(out):
        truth = _load(truth_path)
        video = truth_path.with_name(truth["video"])
        rate = truth["sample_rate"]
        total = sum(soundfile.read(str(video.parent / s["audio"]), dtype="float32")[0] for s in truth["sources"])
        assert np.max(np.abs(total)) < 1.0
        track = media.read_audio(video, rate)
        n = min(len(track), len(total))
        assert n >= 0.95 * len(total)
        assert np.corrcoef(track[:n], total[:n])[0, 1] > 0.98


def test_sprites_move_with_their_own_sound(dataset):
    out, _ = dataset
    for truth_path in _truths(out):
        truth = _load(truth_path)
        for source in truth["sources"]:
            boxes = np.asarray(source["boxes"], dtype=np.float64)
            sounding = np.asarray(source["sounding"])
            assert sounding.any() and not sounding.all(), "each source should play and rest"
            rest = boxes[~sounding][0]
            deviation = np.abs(boxes - rest).sum(axis=1)
            assert (deviation[~sounding] == 0).all(), "a silent sprite must be still"
            audio, rate = soundfile.read(str(truth_path.parent / source["audio"]), dtype="float32")
            envelope = _frame_rms(audio, rate, truth["fps"], truth["num_frames"])
            assert np.corrcoef(deviation, envelope)[0, 1] > 0.4


def test_same_kind_count_and_category_spread(tmp_path):
    out = tmp_path / "d"
    summary = generate_dataset(out, solos=0, duets=3, same_kind=0.5, seed=3, renderer="additive", sprites="drawn", **TINY)
    assert len(summary.written) == 3
    pairs = [[s["category"] for s in _load(p)["sources"]] for p in _truths(out)]
    assert sum(a == b for a, b in pairs) == round(3 * 0.5)
    manifest = _load(out / "synth.json")
    assert manifest["seed"] == 3 and manifest["duets"] == 3 and len(manifest["videos"]) == 3


def test_at_least_eight_categories_with_distinct_looks():
    assert len(CATEGORIES) >= 8
    assert len({c.name for c in CATEGORIES}) == len(CATEGORIES)
    assert len({c.emoji for c in CATEGORIES}) == len(CATEGORIES)
    assert len({(c.shape, c.colour) for c in CATEGORIES}) == len(CATEGORIES)
    for c in CATEGORIES:
        assert 0 <= c.program < 128 and c.bank in (0, 128)
        assert synth_sprites.drawn_image(c.shape, c.colour).size[0] > 10


# ------------------------------------------------------------------------------- determinism


def test_same_seed_same_truth_and_audio_whatever_the_jobs(dataset, tmp_path):
    out, _ = dataset
    again = tmp_path / "again"
    generate_dataset(again, solos=2, duets=2, same_kind=0.5, distractors=1, seed=7, jobs=2, **TINY)
    first, second = _truths(out), _truths(again)
    assert [p.relative_to(out) for p in first] == [p.relative_to(again) for p in second]
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()
        for source in _load(a)["sources"]:
            wa, _ = soundfile.read(str(a.parent / source["audio"]))
            wb, _ = soundfile.read(str(b.parent / source["audio"]))
            assert np.array_equal(wa, wb)


def test_other_seed_differs(dataset, tmp_path):
    out, _ = dataset
    other = tmp_path / "other"
    generate_dataset(other, solos=1, duets=0, seed=8, **TINY)
    mine = _load(next((out / "solos").glob("*/solo-0000.truth.json")))
    theirs = _load(next((other / "solos").glob("*/solo-0000.truth.json")))
    assert mine["sources"][0]["boxes"] != theirs["sources"][0]["boxes"]
    assert mine["sources"][0]["onsets"] != theirs["sources"][0]["onsets"]


# --------------------------------------------------------------------------------- fallbacks


def test_additive_renderer_and_drawn_sprites(tmp_path):
    out = tmp_path / "fallback"
    summary = generate_dataset(out, solos=1, duets=1, same_kind=0.0, seed=1, renderer="additive", sprites="drawn", **TINY)
    assert not summary.failed and summary.renderer == "additive" and summary.sprites == "drawn"
    assert summary.soundfont is None
    for truth_path in _truths(out):
        truth = _load(truth_path)
        assert truth["generator"] == {"renderer": "additive", "soundfont": None, "sprites": "drawn"}
        for source in truth["sources"]:
            audio, _ = soundfile.read(str(truth_path.parent / source["audio"]))
            assert np.max(np.abs(audio)) > 0.05
            assert any(source["sounding"]) and not all(source["sounding"])
        frame = next(media.iter_frames(truth_path.with_name(truth["video"])))[1]
        x0, y0, x1, y1 = truth["sources"][0]["boxes"][0]
        assert frame[y0:y1, x0:x1].std() > 10  # a drawn sprite is there


def test_every_category_renders_with_the_additive_synth():
    rng = np.random.default_rng(0)
    from avsplit.synth.melody import random_melody

    for category in CATEGORIES:
        melody = random_melody(rng, category, 2.0)
        audio = synth_audio.render_additive(category, melody, 16000, 32000, rng)
        assert audio.dtype == np.float32 and np.isfinite(audio).all() and np.abs(audio).max() > 0.01


@pytest.fixture
def no_fluidsynth(monkeypatch):
    def missing():
        raise ImportError("Couldn't find the FluidSynth library.")

    synth_audio._write_float.cache_clear()
    monkeypatch.setattr(synth_audio, "_load_fluidsynth", missing)
    yield
    synth_audio._write_float.cache_clear()


def test_auto_falls_back_when_fluidsynth_is_missing(no_fluidsynth):
    choice = synth_audio.resolve_renderer("auto", None, 16000)
    assert choice.name == "additive" and "FluidSynth" in choice.warning
    with pytest.raises(ConfigError):
        synth_audio.resolve_renderer("fluidsynth", None, 16000)


def test_auto_falls_back_when_the_emoji_font_is_missing(monkeypatch):
    monkeypatch.setattr(synth_sprites, "find_emoji_font", lambda: None)
    choice = synth_sprites.resolve_sprites("auto")
    assert choice.kind == "drawn" and choice.warning
    with pytest.raises(ConfigError):
        synth_sprites.resolve_sprites("emoji")


@pytest.mark.skipif(synth_audio.fluidsynth_problem() is not None or synth_audio.find_soundfont() is None,
                    reason="FluidSynth or a General MIDI SoundFont is not installed")
def test_fluidsynth_rendering_is_deterministic():
    from avsplit.synth.melody import random_melody

    choice = synth_audio.resolve_renderer("fluidsynth", None, 16000)
    for category in (CATEGORIES[0], next(c for c in CATEGORIES if c.percussion)):
        melody = random_melody(np.random.default_rng(5), category, 1.5)
        a = synth_audio.render_fluidsynth(choice.soundfont, category, melody, 16000, 24000)
        b = synth_audio.render_fluidsynth(choice.soundfont, category, melody, 16000, 24000)
        assert np.array_equal(a, b) and np.abs(a).max() > 1e-3


# ------------------------------------------------------------------------- resume and errors


def test_skip_existing_and_overwrite(tmp_path):
    out = tmp_path / "resume"
    opts = dict(solos=1, duets=0, seed=2, renderer="additive", sprites="drawn", **TINY)
    first = generate_dataset(out, **opts)
    video = first.written[0]
    stamp = video.stat().st_mtime_ns
    second = generate_dataset(out, **opts)
    assert second.skipped == [video] and not second.written
    assert video.stat().st_mtime_ns == stamp
    # An incomplete video (a missing source file) is made again.
    video.with_name(video.stem + ".source-1.wav").unlink()
    third = generate_dataset(out, **opts)
    assert third.written == [video]
    fourth = generate_dataset(out, overwrite=True, **opts)
    assert fourth.written == [video] and not fourth.skipped


def test_bad_options_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="kazoo"):
        generate_dataset(tmp_path / "a", categories=["piano", "kazoo"], **TINY)
    with pytest.raises(ConfigError, match="SoundFont"):
        generate_dataset(tmp_path / "b", soundfont=tmp_path / "missing.sf2", **TINY)
    with pytest.raises(ConfigError):
        generate_dataset(tmp_path / "c", renderer="midi", **TINY)
    with pytest.raises(ConfigError, match="two categories"):
        generate_dataset(tmp_path / "d", solos=0, duets=1, same_kind=0.0, categories=["drum"], **TINY)
    # A folder made with other settings is not silently mixed with a new dataset.
    opts = dict(solos=1, duets=0, renderer="additive", sprites="drawn", **TINY)
    generate_dataset(tmp_path / "e", seed=1, **opts)
    with pytest.raises(ConfigError, match="other settings"):
        generate_dataset(tmp_path / "e", seed=2, **opts)


def test_cli_synth(tmp_path):
    from typer.testing import CliRunner

    from avsplit.cli import app

    out = tmp_path / "cli out"
    args = ["synth", str(out), "--solos", "1", "--duets", "1", "--same-kind", "1", "--seconds", "1.5",
            "--size", "96x64", "--fps", "10", "--sr", "16000", "--seed", "4", "--categories", "drum,piano", "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    truths = _truths(out)
    assert len(truths) == 2
    duet = _load(out / "duets" / "duet-0000.truth.json")
    assert duet["sources"][0]["category"] == duet["sources"][1]["category"] in ("drum", "piano")
    bad = CliRunner().invoke(app, ["synth", str(tmp_path / "x"), "--categories", "kazoo"])
    assert bad.exit_code == 1
