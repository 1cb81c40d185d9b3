"""localize (model and onsets), the .npz contract, cIoU/AUC, localization scores in evaluate."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from avsplit import io as media
from avsplit.cli import app
from avsplit.dsp.maps import upsample
from avsplit.evaluation.localization import auc, boxes_mask, ciou, map_at, score_maps, success_rate
from avsplit.localize.onsets import OnsetSettings, coincidence_map, onset_maps, sliding
from avsplit.synth import generate_dataset

from conftest import make_bad_batch

runner = CliRunner()


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, solos=2, duets=1, same_kind=0.0, seconds=2.5, size=(128, 96), fps=12, seed=5, distractors=1)
    return root


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# ------------------------------------------------------------------------------ metrics


def test_ciou_auc_on_hand_made_maps():
    size = (40, 30)
    box = [10, 5, 22, 17]
    gt = boxes_mask([box], size)
    assert gt.sum() == 12 * 12
    perfect = gt.astype(np.float32)
    assert ciou(perfect, gt) == pytest.approx(1.0)
    assert ciou(1.0 - perfect, gt) == pytest.approx(0.0)
    assert ciou(np.zeros(gt.shape), gt) == 0.0  # a constant map predicts nothing
    # a smooth bump centred on the box, plus a weaker one elsewhere: still mostly right
    yy, xx = np.mgrid[0:30, 0:40]
    bump = np.exp(-((xx - 16) ** 2 + (yy - 11) ** 2) / 30.0) + 0.3 * np.exp(-((xx - 35) ** 2 + (yy - 25) ** 2) / 10.0)
    assert 0.2 < ciou(bump, gt) < 1.0
    # a half-overlapping box: IoU of the two regions
    shifted = boxes_mask([[16, 5, 28, 17]], size).astype(np.float32)
    assert ciou(shifted, gt) == pytest.approx(72 / (144 + 72))
    assert success_rate([1.0, 0.6, 0.4, 0.0]) == 0.5
    assert auc([1.0] * 5) == pytest.approx(1.0)
    assert auc([0.0] * 5) == pytest.approx(0.05 / 2)  # only the threshold 0 is reached
    assert auc([0.5, 0.5]) == pytest.approx(0.5, abs=0.03)
    # coarse maps are upsampled bilinearly to the frame size before scoring
    assert upsample(np.ones((3, 4)), 40, 30).shape == (30, 40)


def test_score_maps_uses_the_sounding_sources_boxes():
    truth = {"fps": 2.0, "num_frames": 4, "width": 8, "height": 4,
             "sources": [{"boxes": [[0, 0, 2, 4]] * 4, "sounding": [True, True, False, False]},
                         {"boxes": [[6, 0, 8, 4]] * 4, "sounding": [False, True, True, False]}]}
    left = np.zeros((4, 8), np.float32)
    left[:, :2] = 1
    maps = np.stack([left, left, left[:, ::-1]])
    scores = score_maps(maps, np.array([0.25, 0.75, 1.25]), truth)
    assert len(scores) == 3  # the last frame has nothing sounding
    assert scores[0] == pytest.approx(1.0) and scores[2] == pytest.approx(1.0)
    assert scores[1] < 1.0  # both sound but the map shows (mostly) one


def test_coincidence_map_and_sliding():
    a = np.zeros(40, bool)
    a[[5, 15, 25, 35]] = True
    with_sound = a.copy()
    own_rhythm = np.zeros(40, bool)
    own_rhythm[[2, 9, 20, 30, 38]] = True
    still = np.zeros(40, bool)
    m = coincidence_map(a, np.stack([with_sound, own_rhythm, still], axis=1))
    assert m[0] == pytest.approx(1.0) and m[1] == 0.0 and m[2] == 0.0
    windows = list(sliding(range(6), 2, 1))
    assert [w[0] for w in windows] == list(range(6))
    assert windows[0][1] == [0, 1] and windows[3][1] == [1, 2, 3, 4] and windows[5][1] == [3, 4, 5]
    assert all(w[1][w[2]] == w[0] for w in windows)


def test_default_tolerance_takes_a_kick_two_steps_late_but_not_three():
    """A sprite's kick builds over a frame or two after the note: the default settings match it."""
    sound = np.zeros(48, bool)
    sound[[5, 17, 29, 41]] = True
    tolerance = OnsetSettings().tolerance
    late2, late3 = np.roll(sound, 2), np.roll(sound, 3)
    assert coincidence_map(sound, late2[:, None], tolerance=tolerance)[0] == pytest.approx(1.0)
    assert coincidence_map(sound, late3[:, None], tolerance=tolerance)[0] == 0.0


# ------------------------------------------------------------------------------ onsets


@pytest.mark.parametrize("seed", [3, 11])
def test_onsets_light_the_sounding_object_not_the_distractor(tmp_path, seed):
    generate_dataset(tmp_path, solos=1, duets=0, seconds=3.0, size=(128, 96), fps=12, seed=seed, distractors=1)
    video = next(tmp_path.rglob("*.mp4"))
    truth = json.loads(video.with_name(video.stem + ".truth.json").read_text())
    results = list(onset_maps(video, OnsetSettings()))
    times = np.array([t for t, _ in results])
    maps = np.stack([m for _, m in results])
    assert maps.dtype == np.float32 and maps.min() >= 0 and maps.max() <= 1 and maps.max() > 0
    assert np.all(np.diff(times) > 0) and times[-1] <= 3.0

    def heat(boxes):
        # mean heat inside the object's box in each frame, averaged over frames
        vals = []
        for k, box in enumerate(boxes):
            up = upsample(map_at(times, maps, (k + 0.5) / truth["fps"]), 128, 96)
            vals.append(float(up[boxes_mask([box], (128, 96))].mean()))
        return float(np.mean(vals))

    sounding = heat(truth["sources"][0]["boxes"])
    distractor = heat(truth["distractors"][0]["boxes"])
    assert sounding > 2 * distractor + 0.01, (sounding, distractor)




# ------------------------------------------------------------------------------ the command


def _frame_count(path):
    return sum(1 for _ in media.iter_frames(path))


def test_localize_model_writes_overlay_and_npz_contract(tiny_weights, synth_set, tmp_path):
    duet = next((synth_set / "duets").glob("*.mp4"))
    out = tmp_path / "out"
    r = _invoke("localize", duet, "-o", out, "-w", tiny_weights, "--maps", "--colormap", "jet", "--alpha", "0.6", "-q")
    assert r.exit_code == 0, r.output
    video = out / f"{duet.stem}.mp4"
    src, dst = media.probe(duet), media.probe(video)
    assert (dst.width, dst.height) == (src.width, src.height) == (128, 96)
    assert dst.fps == pytest.approx(src.fps)
    assert _frame_count(video) == _frame_count(duet)
    assert dst.has_audio and dst.audio_codec == src.audio_codec
    rate = 8000
    np.testing.assert_allclose(media.read_audio(video, rate)[: rate * 2], media.read_audio(duet, rate)[: rate * 2],
                               atol=1e-4)  # the original sound, copied
    data = np.load(out / f"{duet.stem}.npz")
    maps, times, frame_size = data["maps"], data["times"], data["frame_size"]
    assert maps.dtype == np.float32 and maps.ndim == 3 and maps.shape[0] == len(times) > 0
    assert 0.0 <= maps.min() and maps.max() <= 1.0
    assert np.issubdtype(times.dtype, np.floating) and np.all(np.diff(times) > 0)
    assert 0 < times[0] and times[-1] < src.duration
    assert times[1] - times[0] <= 1.0  # several maps per second
    assert list(frame_size) == [96, 128]
    # overlay frames differ from the original (the colours are blended in)
    a = next(media.iter_frames(video))[1].astype(int)
    b = next(media.iter_frames(duet))[1].astype(int)
    assert np.abs(a - b).mean() > 5


def test_localize_onsets_and_per_source(tiny_weights, synth_set, tmp_path):
    duet = next((synth_set / "duets").glob("*.mp4"))
    r = _invoke("localize", duet, "-o", tmp_path / "on", "--method", "onsets", "--maps", "-q")
    assert r.exit_code == 0, r.output
    data = np.load(tmp_path / "on" / f"{duet.stem}.npz")
    assert data["maps"].dtype == np.float32 and data["maps"].shape[1:] == (16, 21)
    assert str(data["method"]) == "onsets"
    assert _frame_count(tmp_path / "on" / f"{duet.stem}.mp4") == _frame_count(duet)
    r = _invoke("localize", duet, "-o", tmp_path / "ps", "-w", tiny_weights, "--per-source", "--maps", "-q")
    assert r.exit_code == 0, r.output
    data = np.load(tmp_path / "ps" / f"{duet.stem}.npz")
    k = data["source_maps"].shape[0]
    assert k >= 1 and data["source_maps"].shape[1:] == data["maps"].shape and data["source_boxes"].shape == (k, 4)
    r = _invoke("localize", duet, "-o", tmp_path / "x", "--method", "onsets", "--per-source")
    assert r.exit_code == 1 and "--per-source" in r.output


def test_localize_keeps_every_frame_of_a_variable_frame_rate_video(tmp_path):
    """Issue 13 item 9: a VFR video (irregular gaps, some frames on screen for a third of a period)
    comes out with every input frame once, at its own time, and the input's duration (resampling at
    the average rate dropped some frames and doubled others)."""
    from test_media import read_barcode, write_av

    gaps = np.random.default_rng(0).uniform(0.3, 1.7, 95) / 12
    times = [0.0] + [round(t, 3) for t in np.cumsum(gaps)]
    path = write_av(tmp_path / "in" / "vfr.mp4", frame_times=times, seconds=times[-1] + 1 / 12, fps=12)
    assert media.probe(path).variable_frame_rate
    r = _invoke("localize", path, "-o", tmp_path / "out", "--method", "onsets", "--alpha", 0, "-q")
    assert r.exit_code == 0, r.output
    out = tmp_path / "out" / "vfr.mp4"
    written = list(media.iter_frames(out))
    assert [read_barcode(f) for _, f in written] == list(range(96))
    assert [t for t, _ in written] == pytest.approx(times, abs=1e-3)
    assert media.probe(out).duration == pytest.approx(media.probe(path).duration, abs=0.05)


def test_bad_file_in_batch_one_line_and_skip_overwrite(tiny_weights, synth_set, tmp_path):
    inputs = make_bad_batch(tmp_path / "in", next((synth_set / "solos").rglob("*.mp4")))
    out = tmp_path / "out"
    r = runner.invoke(app, ["localize", str(inputs), "-o", str(out), "--method", "onsets", "-q"])
    assert r.exit_code == 1
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and any("empty.mp4" in e for e in errors) and any("notes.mp4" in e for e in errors)
    target = out / "good clip é.mp4"
    assert target.exists() and sorted(p.name for p in out.iterdir()) == ["good clip é.mp4"]  # no partial files
    stamp = target.stat().st_mtime_ns
    r = _invoke("localize", inputs / "good clip é.mp4", "-o", out, "--method", "onsets")
    assert r.exit_code == 0 and "1 skipped" in r.output and target.stat().st_mtime_ns == stamp
    r = _invoke("localize", inputs / "good clip é.mp4", "-o", out, "--method", "onsets", "--overwrite", "-q")
    assert r.exit_code == 0 and target.stat().st_mtime_ns != stamp
    # asking for maps that are not there yet redoes the video
    r = _invoke("localize", inputs / "good clip é.mp4", "-o", out, "--method", "onsets", "--maps", "-q")
    assert r.exit_code == 0 and (out / "good clip é.npz").exists()


def test_evaluate_reports_localization(tiny_weights, synth_set, tmp_path):
    r = _invoke("evaluate", "--data", synth_set, "-w", tiny_weights, "--pairs", "1", "--json", tmp_path / "e.json",
                "--csv", tmp_path / "e.csv", "--markdown", tmp_path / "e.md")
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "e.json").read_text())
    loc = data["summary"]["wild/different-kind"]["localization"]
    for method in ("model", "onsets"):
        assert 0 <= loc[method]["ciou"] <= 1 and 0 <= loc[method]["ciou50"] <= 1 and 0 <= loc[method]["auc"] <= 1
        assert loc[method]["frames"] > 10 and loc[method]["videos"] == 1
    wild = [i for i in data["items"] if i["protocol"] == "wild"]
    assert "loc_onsets_ciou50" in wild[0] and "loc_model_auc" in wild[0]
    assert "loc_onsets_ciou50" in (tmp_path / "e.csv").read_text().splitlines()[0]
    assert "## Localization" in (tmp_path / "e.md").read_text()
    assert "localization" in r.output
    r = _invoke("evaluate", "--data", synth_set, "-w", tiny_weights, "--pairs", "1", "--no-localization",
                "--json", tmp_path / "n.json")
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "n.json").read_text())["summary"]
    assert "model" in summary["wild/different-kind"] and "localization" not in summary["wild/different-kind"]


def test_evaluate_json_stays_valid_when_scores_are_undefined(tiny_weights, synth_set, tmp_path, monkeypatch):
    """Non-finite BSS Eval scores (a degenerate source) are reported and left out: the JSON is strict."""
    import avsplit.evaluation.bss as metrics

    real = metrics._bss

    def degenerate(ref, est):  # the last source's SIR is undefined (sources of the mixtures: 0 and 1)
        sdr, sir, sar = real(ref, est)
        sir[-1] = np.nan
        return sdr, sir, sar

    monkeypatch.setattr(metrics, "_bss", degenerate)
    r = _invoke("evaluate", "--data", synth_set, "-w", tiny_weights, "--pairs", "1", "--no-localization",
                "--json", tmp_path / "e.json", "--csv", tmp_path / "e.csv")
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "e.json").read_text(), parse_constant=pytest.fail)  # no NaN / Infinity
    mix = [i for i in data["items"] if i["protocol"] == "mix"]
    assert mix and all("model: 1" in i["undefined_sources"] and not i["skipped"] for i in mix)
    assert all(np.isfinite(i["model_sir"]) for i in mix)
    assert np.isfinite(data["summary"]["mix"]["model"]["sir"]["mean"])
    assert "scores undefined" in r.output


def test_combine_sources_lights_every_loud_source_and_leaves_quiet_ones_dark():
    from avsplit.dsp.maps import combine_sources

    maps = np.zeros((3, 6, 9), np.float32)
    maps[0, 1:3, 1:3] = 1.0  # loud
    maps[1, 1:3, 6:8] = 0.6  # quieter: energy 0.6 of the loudest -> below the gate 0.7
    maps[2, 4:6, 4:6] = 0.9  # loud enough (energy 0.9 of the loudest)
    out = combine_sources(maps, floor=0.4, gate=0.7)
    assert out.shape == (6, 9)
    assert out[1:3, 1:3].min() == pytest.approx(1.0) and out[4:6, 4:6].min() == pytest.approx(1.0)  # each scaled to 1
    assert not out[1:3, 6:8].any()  # gated out
    assert not out[0].any() and not out[:, 0].any()  # background stays dark
    # a lower gate lets the quiet source in, at full scale too
    assert combine_sources(maps, floor=0.4, gate=0.5)[1:3, 6:8].min() == pytest.approx(1.0)
    assert not combine_sources(np.zeros((2, 4, 4), np.float32), 0.4, 0.7).any()  # silence: nothing
