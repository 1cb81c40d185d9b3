"""separate / evaluate / models through the CLI, with a tiny model: the output-layout contract."""

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from avsplit.cli import app
from avsplit.models import preset
from avsplit.synth import generate_dataset

from conftest import make_bad_batch

runner = CliRunner()


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, solos=3, duets=1, same_kind=0.0, seconds=2.5, size=(128, 96), fps=12, seed=5)
    return root


def _invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def test_separate_writes_contract_layout(tiny_weights, synth_set, tmp_path):
    duet = next((synth_set / "duets").glob("*.mp4"))
    out = tmp_path / "out"
    r = _invoke("separate", duet, "-o", out, "-w", tiny_weights, "--sources", "2", "-q")
    assert r.exit_code == 0, r.output
    folder = out / duet.stem
    meta = json.loads((folder / "sources.json").read_text())
    assert [s["file"] for s in meta["sources"]] == ["source-1.wav", "source-2.wav"]
    centres = [(s["box"][0] + s["box"][2]) / 2 for s in meta["sources"]]
    assert centres == sorted(centres)  # ordered left to right
    for s in meta["sources"]:
        x0, y0, x1, y1 = s["box"]
        assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 96  # the video's own pixel coordinates
        assert 0.0 <= s["confidence"] <= 1.0
    mix = sf.read(folder / "residual.wav")[0]
    s1, rate = sf.read(folder / "source-1.wav")
    s2 = sf.read(folder / "source-2.wav")[0]
    assert rate == 22050 != preset("tiny").audio.sample_rate  # the video's own rate, not the model's
    assert meta["sample_rate"] == 22050 and meta["channels"] == 1
    assert meta["model_sample_rate"] == preset("tiny").audio.sample_rate
    assert len(s1) == len(s2) == len(mix) == pytest.approx(2.5 * rate, abs=rate * 0.05)
    # residual = mixture - sum of sources: adding them back gives the mixture's sound track exactly
    from avsplit import io as media

    original = media.read_audio(duet, rate)
    n = min(len(original), len(s1))
    assert abs(n - len(s1)) <= 2
    np.testing.assert_allclose(s1[:n] + s2[:n] + mix[:n], original[:n], atol=1e-6)


def test_separate_grid_box_skip_overwrite_and_sr(tiny_weights, synth_set, tmp_path):
    duet = next((synth_set / "duets").glob("*.mp4"))
    out = tmp_path / "o"
    r = _invoke("separate", duet, "-o", out, "-w", tiny_weights, "--grid", "1x3", "--sr", "16000", "--format", "flac", "-q")
    assert r.exit_code == 0, r.output
    meta = json.loads((out / duet.stem / "sources.json").read_text())
    assert meta["method"] == "grid" and len(meta["sources"]) == 3
    assert sf.info(out / duet.stem / "source-1.flac").samplerate == 16000
    stamp = (out / duet.stem / "sources.json").stat().st_mtime_ns
    r = _invoke("separate", duet, "-o", out, "-w", tiny_weights, "--grid", "1x3", "-q")
    assert r.exit_code == 0 and (out / duet.stem / "sources.json").stat().st_mtime_ns == stamp  # skipped
    r = _invoke("separate", duet, "-o", out, "-w", tiny_weights, "--box", "0,0,60,96", "--box", "64,0,128,96",
                "--overwrite", "-q")
    assert r.exit_code == 0, r.output
    meta = json.loads((out / duet.stem / "sources.json").read_text())
    assert meta["method"] == "box" and [s["box"] for s in meta["sources"]] == [[0, 0, 60, 96], [64, 0, 128, 96]]


def test_separate_mix_layout(tiny_weights, synth_set, tmp_path):
    a, b = sorted((synth_set / "solos").rglob("*.mp4"))[:2]
    r = _invoke("separate", "--mix", a, b, "-o", tmp_path, "-w", tiny_weights, "-q")
    assert r.exit_code == 0, r.output
    folder = tmp_path / f"{a.stem}+{b.stem}"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["mixture.wav", f"{a.stem}.wav", f"{b.stem}.wav"])
    mix = sf.read(folder / "mixture.wav")[0]
    assert np.abs(mix).max() > 0.01


def test_bad_files_are_one_line_each_and_batch_goes_on(tiny_weights, synth_set, tmp_path):
    inputs = make_bad_batch(tmp_path / "in", next((synth_set / "solos").rglob("*.mp4")))
    r = runner.invoke(app, ["separate", str(inputs), "-o", str(tmp_path / "out"), "-w", str(tiny_weights), "-q"])
    assert r.exit_code == 1
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and any("empty.mp4" in e for e in errors) and any("notes.mp4" in e for e in errors)
    assert (tmp_path / "out" / "good clip é" / "sources.json").exists()
    assert not (tmp_path / "out" / "empty").exists()


def test_missing_or_corrupt_weights_is_one_clear_line(synth_set, tmp_path):
    clip = next((synth_set / "solos").rglob("*.mp4"))
    r = _invoke("separate", clip, "-o", tmp_path, "-w", tmp_path / "nope.safetensors")
    assert r.exit_code == 1 and "nope.safetensors" in r.output and "Traceback" not in r.output
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    r = _invoke("separate", clip, "-o", tmp_path, "-w", bad)
    assert r.exit_code == 1 and "corrupt" in r.output


def test_evaluate_writes_json_csv_markdown_and_report(tiny_weights, synth_set, tmp_path):
    r = _invoke("evaluate", "--data", synth_set, "-w", tiny_weights, "--pairs", "2", "--json", tmp_path / "e.json",
                "--csv", tmp_path / "e.csv", "--markdown", tmp_path / "e.md", "--report", tmp_path / "rep", "--by-domain")
    assert r.exit_code == 0, r.output
    assert "per source, by its own domain" in r.output
    data = json.loads((tmp_path / "e.json").read_text())
    assert sum(v["sources"] for v in data["summary"]["mix"]["source_domains"]["glyph"].values()) == 4  # 2 pairs
    assert set(data["summary"]) >= {"mix", "wild/different-kind"}
    mix = data["summary"]["mix"]
    assert mix["oracle_ibm"]["sdr"]["mean"] > mix["mixture"]["sdr"]["mean"] + 3  # upper bound above lower bound
    assert len([i for i in data["items"] if i["protocol"] == "mix"]) == 2
    wild = data["summary"]["wild/different-kind"]
    assert {"model", "model_fullband"} <= set(wild) and "model_fullband" not in mix  # paper protocol and full band
    assert "| wild/different-kind | model_fullband |" in (tmp_path / "e.md").read_text()
    assert (tmp_path / "e.csv").read_text().count("\n") == len(data["items"]) + 1
    assert "| mix | model |" in (tmp_path / "e.md").read_text()
    pages = list((tmp_path / "rep").glob("*/index.html"))
    assert len(pages) == 2 and (pages[0].parent / "mixture.wav").exists() and (pages[0].parent / "mask-1.png").exists()
    # deterministic: same seed, same mixtures and scores
    r2 = _invoke("evaluate", "--data", synth_set, "-w", tiny_weights, "--pairs", "2", "--json", tmp_path / "f.json", "-q")
    assert r2.exit_code == 0, r2.output
    again = json.loads((tmp_path / "f.json").read_text())
    assert [i.get("model_sdr") for i in again["items"]] == [i.get("model_sdr") for i in data["items"]]
    # the automatic count: the wild duet and the mixed solos (which have truth files) were counted
    counted = [i for i in data["items"] if "sources_found" in i]
    assert {i["protocol"] for i in counted} == {"wild", "count"}
    assert data["summary"]["count/solo"]["count"]["videos"] == len([i for i in counted if i["protocol"] == "count"])
    splits = data["summary"]["mix"]["domains"]["split"]  # synth's truth names each clip's split (v2 truth)
    assert set(splits) <= {"train", "foreign"} and splits, splits


def test_models_lists_registry():
    r = _invoke("models")
    assert r.exit_code == 0


def test_parallel_decoding_gives_the_same_tracks(tiny_weights, synth_set, tmp_path):
    inputs = synth_set / "solos"
    r1 = _invoke("separate", inputs, "-o", tmp_path / "j1", "-w", tiny_weights, "--sources", "1", "-q")
    r2 = _invoke("separate", inputs, "-o", tmp_path / "j2", "-w", tiny_weights, "--sources", "1", "-j", "2", "--batch", "3", "-q")
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    files = sorted(p.relative_to(tmp_path / "j1") for p in (tmp_path / "j1").rglob("*.wav"))
    assert len(files) == 6 and files == sorted(p.relative_to(tmp_path / "j2") for p in (tmp_path / "j2").rglob("*.wav"))
    for f in files:
        np.testing.assert_allclose(sf.read(tmp_path / "j1" / f)[0], sf.read(tmp_path / "j2" / f)[0], atol=2e-4)


def test_two_inputs_with_one_name_do_not_share_an_output_folder(tiny_weights, synth_set, tmp_path):
    duet = next((synth_set / "duets").glob("*.mp4"))
    other = tmp_path / "elsewhere" / duet.name
    other.parent.mkdir()
    other.write_bytes(duet.read_bytes())
    r = _invoke("separate", duet, other, "-o", tmp_path / "out", "-w", tiny_weights, "--sources", "2", "-q")
    assert r.exit_code != 0
    assert "same name as" in r.output and "another -o folder" in r.output
    assert (tmp_path / "out" / duet.stem / "sources.json").exists()  # the first one was separated


@pytest.mark.parametrize("name", ["tiny", "tiny-motion"])
def test_window_stream_in_order_equals_a_seek_per_window(make_video, name):
    """`iterate` decodes sound and pictures once, in order; each window is what reading it alone gives."""
    from avsplit.inference import WindowStream

    video = make_video("clip.mp4", seconds=4.3)
    stream = WindowStream(video, preset(name), overlap=0.25)
    assert len(stream.windows) >= 4
    items = list(stream.iterate())
    assert [w for w, _, _ in items] == stream.windows
    for win, audio, frames in items:
        np.testing.assert_allclose(audio, stream.audio(win), atol=1e-5)
        assert frames.shape[0] == preset(name).frames_per_window


def test_window_stream_on_a_truncated_file_raises_instead_of_padding(make_video, tmp_path):
    from avsplit.errors import TruncatedMediaError
    from avsplit.inference import WindowStream

    from test_media import cut as cut_file, write_av

    cut = cut_file(write_av(tmp_path / "clip.mkv", seconds=4.0), tmp_path / "cut.mkv")
    stream = WindowStream(cut, preset("tiny"), overlap=0.25)
    seen = []
    with pytest.raises(TruncatedMediaError):
        for win, audio, _ in stream.iterate():
            seen.append(audio)
    assert seen and all(np.abs(a).max() > 0.1 for a in seen)  # the windows before the cut hold the tone


def test_separate_uses_the_mask_refiner(synth_set, tmp_path):
    """A model with a (non-zero) refiner separates through it, in a video and in --mix, and its tracks
    still add up to the mixture; the same model without the refiner gives other tracks."""
    import torch

    from avsplit import io as media
    from avsplit.models.checkpoint import save_checkpoint
    from avsplit.models import build_model

    torch.manual_seed(0)
    refined = build_model(preset("tiny-motion", refiner=4)).eval()
    torch.nn.init.normal_(refined.refiner.out.weight, std=0.5)
    # a correction far above float rounding on any CPU (AVX-512, bf16 or not): every logit moves down by
    # about 30, so the refined masks are nearly closed where the plain ones are not
    torch.nn.init.constant_(refined.refiner.out.bias, -30.0)
    plain = build_model(preset("tiny-motion")).eval()
    plain.load_state_dict({k: v for k, v in refined.state_dict().items() if not k.startswith("refiner.")})
    duet = next((synth_set / "duets").glob("*.mp4"))
    tracks = {}
    for name, model in (("refined", refined), ("plain", plain)):
        weights = save_checkpoint(tmp_path / f"{name}.safetensors", model)
        out = tmp_path / name
        r = _invoke("separate", duet, "-o", out, "-w", weights, "--sources", "2", "-q")
        assert r.exit_code == 0, r.output
        folder = out / duet.stem
        s1, rate = sf.read(folder / "source-1.wav")
        s2 = sf.read(folder / "source-2.wav")[0]
        residual = sf.read(folder / "residual.wav")[0]
        np.testing.assert_allclose(s1 + s2 + residual, media.read_audio(duet, rate)[: len(s1)], atol=3e-3)
        tracks[name] = s1
    change = np.linalg.norm(tracks["refined"] - tracks["plain"]) / max(np.linalg.norm(tracks["plain"]), 1e-9)
    assert change > 0.2, change  # the refiner changes the track, by far more than rounding could
    a, b = sorted((synth_set / "solos").rglob("*.mp4"))[:2]
    r = _invoke("separate", "--mix", a, b, "-o", tmp_path / "mix", "-w", tmp_path / "refined.safetensors", "-q")
    assert r.exit_code == 0, r.output
