"""``--zoom``: a source's frames cut around its box and scaled up before the frame network, in
``separate`` (regions, ``--mix``) and in ``evaluate``; the box of where a video's sound comes from."""

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from avsplit.cli import app
from avsplit.inference.zoom import zoom_frames, zoom_square
from avsplit.localize.sounding import sounding_box
from avsplit.scan import truth_path

runner = CliRunner()


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _coded_frames(h: int, w: int) -> np.ndarray:
    """``(2, h, w, 3)`` uint8 frames whose pixels hold their own ``(x, y)``."""
    ys, xs = np.mgrid[0:h, 0:w]
    return np.broadcast_to(np.stack([xs, ys, np.zeros_like(xs)], -1).astype(np.uint8), (2, h, w, 3)).copy()


def test_zoom_cuts_a_square_around_the_box_and_scales_it_to_the_short_side():
    frames = _coded_frames(100, 200)  # a video of 400 x 200 shown at 200 x 100
    x0, y0, side = zoom_square([200, 80, 240, 120], (200, 100), (400, 200), share=0.5)
    assert side == 40 and (x0, y0) == (90, 30)  # the box is 20 x 20 frame pixels, centred at (110, 50)
    out = zoom_frames(frames, [200, 80, 240, 120], (400, 200), share=0.5)
    assert out.shape == (2, 100, 100, 3)
    assert abs(int(out[0, 0, 0, 0]) - 90) <= 1 and abs(int(out[0, 0, -1, 0]) - 129) <= 1  # columns 90..129
    assert abs(int(out[0, 0, 0, 1]) - 30) <= 1 and abs(int(out[0, -1, 0, 1]) - 69) <= 1  # rows 30..69
    # near the edge the square moves inside the frame; wider than the frame it is centred and padded
    assert zoom_square([0, 0, 20, 20], (200, 100), (400, 200), share=0.5)[:2] == (0, 0)
    x0, y0, side = zoom_square([0, 0, 400, 200], (200, 100), (400, 200))
    assert side == 200 and y0 == -50
    padded = zoom_frames(frames, [0, 0, 400, 200], (400, 200))
    assert padded.shape == (2, 100, 100, 3) and padded[0, 0, 50, 1] == 0 and padded[0, -1, 50, 1] == 99  # edge rows repeated


@pytest.fixture(scope="module")
def zoom_set(tmp_path_factory):
    from avsplit.synth import generate_dataset

    root = tmp_path_factory.mktemp("zoom")
    generate_dataset(root, solos=4, duets=1, seconds=4.0, size=(160, 96), fps=12, seed=3)
    return root


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_sounding_box_finds_the_player(zoom_set):
    solos = sorted((zoom_set / "solos").rglob("*.mp4"))
    for video in solos:
        truth = json.loads(truth_path(video).read_text())["sources"][0]["boxes"]
        box = sounding_box(video)
        assert box is not None and _iou(box, np.median(np.asarray(truth, float), axis=0)) > 0.3


def test_separate_and_evaluate_with_zoom(tiny_motion_weights, zoom_set, tmp_path):
    duet = sorted((zoom_set / "duets").glob("*.mp4"))[0]
    boxes = ["0,0,80,96", "80,0,160,96"]
    tracks = {}
    for name, extra in (("plain", []), ("zoom", ["--zoom"])):
        r = _invoke("separate", duet, "-o", tmp_path / name, "-w", tiny_motion_weights, "--box", boxes[0], "--box",
                    boxes[1], *extra, "-q")
        assert r.exit_code == 0, r.output
        tracks[name] = sf.read(tmp_path / name / duet.stem / "source-1.wav")[0]
    assert tracks["plain"].shape == tracks["zoom"].shape and not np.allclose(tracks["plain"], tracks["zoom"])

    a, b = sorted((zoom_set / "solos").rglob("*.mp4"))[:2]
    for name, extra in (("mix-plain", []), ("mix-zoom", ["--zoom"])):
        r = _invoke("separate", "--mix", a, b, "-o", tmp_path / name, "-w", tiny_motion_weights, *extra, "-q")
        assert r.exit_code == 0, r.output
        tracks[name] = sf.read(tmp_path / name / f"{a.stem}+{b.stem}" / f"{a.stem}.wav")[0]
    assert not np.allclose(tracks["mix-plain"], tracks["mix-zoom"])

    scores = {}
    for name, extra in (("plain", []), ("zoom", ["--zoom"])):
        out = tmp_path / f"{name}.json"
        r = _invoke("evaluate", "--data", zoom_set, "-w", tiny_motion_weights, "--pairs", "2", "--no-localization",
                    "--json", out, *extra, "-q")
        assert r.exit_code == 0, r.output
        data = json.loads(out.read_text())
        assert data["meta"]["zoom"] is (name == "zoom")
        scores[name] = [i["model_sdr"] for i in data["items"] if i["protocol"] == "mix"]
    assert len(scores["zoom"]) == 2 and scores["zoom"] != scores["plain"]
