"""Separation in memory (``api.separate_arrays``, ``inference.separate_stream``) against ``separate`` on files."""

import json

import numpy as np
import pytest
import torch

from avsplit import api
from avsplit import io as media
from avsplit.errors import ConfigError
from avsplit.inference import RegionSpec, SeparationEngine, WindowStream, separate_stream
from avsplit.models import preset
from avsplit.models.checkpoint import load_checkpoint

from conftest import write_test_video


def _model_native_video(path, seconds=3.0):
    """A video already at the tiny models' rates and frame size (8000 Hz mono, 4 fps, 96x72), so the
    arrays decoded from it are what the file's windows decode: nothing to resample or resize."""
    cfg = preset("tiny")
    size = media.scaled_size(160, 120, cfg.video.short_side)
    return write_test_video(path, seconds=seconds, fps=cfg.video.fps, size=size, sample_rate=cfg.audio.sample_rate,
                            freq=523.0)


def _read_folder(folder):
    meta = json.loads((folder / "sources.json").read_text())
    sources = np.stack([media.read_audio_file(folder / s["file"])[0] for s in meta["sources"]])
    return meta, sources, media.read_audio_file(folder / meta["residual"])[0]


@pytest.mark.parametrize("weights", ["tiny_weights", "tiny_motion_weights"])
def test_array_call_gives_the_file_calls_tracks(weights, request, tmp_path):
    weights = request.getfixturevalue(weights)
    video = _model_native_video(tmp_path / "clip.mp4")
    api.separate([video], tmp_path / "out", weights=weights, device="cpu")
    meta, sources, residual = _read_folder(tmp_path / "out" / "clip")

    info = media.probe(video)
    audio = media.read_audio(video, info.audio_rate, mono=False)  # (1, S)
    frames = np.stack([f for _, f in media.iter_frames(video)])  # every frame, at the video's own size
    got = api.separate_arrays(audio, info.audio_rate, frames, info.fps, weights=weights, device="cpu")

    assert got.sample_rate == meta["sample_rate"]
    assert got.sources.shape == sources.shape and got.sources.dtype == np.float32
    np.testing.assert_array_equal(got.sources, sources)
    np.testing.assert_array_equal(got.residual, residual)
    assert [[round(v, 1) for v in r.box] for r in got.regions] == [s["box"] for s in meta["sources"]]
    assert [round(r.confidence, 4) for r in got.regions] == [s["confidence"] for s in meta["sources"]]


def test_a_decoded_video_gives_the_file_calls_tracks_at_two_outputs_in_one_pass(tiny_weights, make_video, tmp_path):
    video = make_video("clip.mp4", seconds=3.0, sample_rate=22050, channels=2, freq=(440.0, 660.0))
    api.separate([video], tmp_path / "full", weights=tiny_weights, device="cpu", sources=2)
    api.separate([video], tmp_path / "mono", weights=tiny_weights, device="cpu", sources=2, sample_rate=8000,
                 channels="mono")

    model, _ = load_checkpoint(tiny_weights)
    engine = SeparationEngine(model, torch.device("cpu"))
    full = WindowStream(video, model, 0.25)
    mono = WindowStream(video, model, 0.25, out_rate=8000, mono=True)
    first, second = separate_stream(engine, full, RegionSpec(num_sources=2), more=[mono])
    for got, folder in ((first, "full"), (second, "mono")):
        meta, sources, residual = _read_folder(tmp_path / folder / "clip")
        assert got.sample_rate == meta["sample_rate"] and got.sources.shape[1] == meta["channels"]
        np.testing.assert_array_equal(got.sources, sources)
        np.testing.assert_array_equal(got.residual, residual)
    assert first.regions is second.regions and first.discovery is not None


def test_arrays_at_other_rates_and_sizes_are_resampled_and_resized(tiny_weights):
    rate, fps, seconds = 22050, 10.0, 2.0
    t = np.arange(int(rate * seconds)) / rate
    audio = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 880 * t)]).astype(np.float32) * 0.3
    frames = np.zeros((int(fps * seconds), 240, 320, 3), np.uint8)
    for k, frame in enumerate(frames):
        frame[100:140, 10 + 10 * k : 50 + 10 * k] = 255
    got = api.separate_arrays(audio, rate, frames, fps, weights=tiny_weights, device="cpu", sources=2)
    assert got.sample_rate == rate and got.sources.shape == (2, 2, audio.shape[1])
    # the tracks and the residual add up to the sound given
    np.testing.assert_allclose(got.sources.sum(0) + got.residual, audio, atol=1e-5)
    for region in got.regions:
        x0, y0, x1, y1 = region.box
        assert 0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 240  # in the given frames' pixels
    mono = api.separate_arrays(audio, rate, frames, fps, weights=tiny_weights, device="cpu", out_rate=8000,
                               channels="mono")
    assert mono.sample_rate == 8000 and mono.sources.shape[1:] == (1, 16000)


@pytest.mark.parametrize("audio, frames", [
    (np.zeros((1, 0), np.float32), np.zeros((4, 72, 96, 3), np.uint8)),  # no samples
    (np.zeros((1, 8000), np.float32), np.zeros((4, 72, 96, 3), np.float32)),  # frames not uint8
    (np.zeros((1, 8000), np.float32), np.zeros((4, 72, 96), np.uint8)),  # frames not RGB
    (np.zeros((1, 1, 8000), np.float32), np.zeros((4, 72, 96, 3), np.uint8)),  # audio not (channels, samples)
])
def test_bad_arrays_are_one_clear_error(tiny_weights, audio, frames):
    with pytest.raises(ConfigError):
        api.separate_arrays(audio, 8000, frames, 4.0, weights=tiny_weights, device="cpu")
