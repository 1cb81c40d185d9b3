"""separate at the input's own rate and channels: layout of the outputs and exact sums (tiny model)."""

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from avsplit import io as media
from avsplit.cli import app

from conftest import write_test_video

runner = CliRunner()


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _band_energy(x: np.ndarray, rate: int, lo: float, hi: float) -> float:
    """Energy of ``x`` ``(samples,)`` between ``lo`` and ``hi`` Hz."""
    spec = np.abs(np.fft.rfft(x)) ** 2
    hz = np.fft.rfftfreq(len(x), 1 / rate)
    return float(spec[(hz >= lo) & (hz < hi)].sum())


@pytest.fixture(scope="module")
def stereo_48k(tmp_path_factory):
    """48 kHz stereo: 440 Hz on the left, 9 kHz (above the model's band) on the right."""
    return write_test_video(tmp_path_factory.mktemp("v") / "stereo.mp4", seconds=2.0, fps=12, size=(128, 96),
                            sample_rate=48000, channels=2, freq=(440.0, 9000.0))


def _read_tracks(folder, names):
    tracks = [sf.read(folder / n, always_2d=True) for n in names]
    return [t[0].T for t in tracks], {t[1] for t in tracks}


def test_stereo_48k_stems_are_48k_stereo_full_band_and_add_up_to_the_original(tiny_weights, stereo_48k, tmp_path):
    r = _invoke("separate", stereo_48k, "-o", tmp_path, "-w", tiny_weights, "--sources", "2", "-q")
    assert r.exit_code == 0, r.output
    folder = tmp_path / stereo_48k.stem
    meta = json.loads((folder / "sources.json").read_text())
    assert meta["sample_rate"] == 48000 and meta["channels"] == 2
    names = [s["file"] for s in meta["sources"]] + [meta["residual"]]
    for n in names:
        info = sf.info(folder / n)
        assert (info.samplerate, info.channels, info.subtype) == (48000, 2, "FLOAT")
    (s1, s2, residual), _ = _read_tracks(folder, names)
    original = media.read_audio(stereo_48k, 48000, mono=False)
    n = min(original.shape[1], s1.shape[1])
    assert abs(s1.shape[1] - original.shape[1]) <= 5
    np.testing.assert_allclose(s1[:, :n] + s2[:, :n] + residual[:, :n], original[:, :n], atol=1e-6)
    # the channels stay apart, and the 9 kHz tone (above the model's 4 kHz band) is in the stems
    for s in (s1, s2):
        assert _band_energy(s[0], 48000, 8500, 9500) < 1e-3 * _band_energy(s[0], 48000, 400, 480)
    high = _band_energy(original[1, :n], 48000, 8500, 9500)
    assert _band_energy((s1 + s2)[1, :n], 48000, 8500, 9500) > 0.9 * high
    assert _band_energy(residual[1, :n], 48000, 8500, 9500) < 0.01 * high  # not left over to the residual


def test_sr_and_channels_mono_ask_for_less(tiny_weights, stereo_48k, tmp_path):
    r = _invoke("separate", stereo_48k, "-o", tmp_path, "-w", tiny_weights, "--sources", "2", "--sr", "16000",
                "--channels", "mono", "-q")
    assert r.exit_code == 0, r.output
    folder = tmp_path / stereo_48k.stem
    meta = json.loads((folder / "sources.json").read_text())
    assert meta["sample_rate"] == 16000 and meta["channels"] == 1
    names = [s["file"] for s in meta["sources"]] + [meta["residual"]]
    (s1, s2, residual), rates = _read_tracks(folder, names)
    assert rates == {16000} and s1.shape[0] == 1
    original = media.read_audio(stereo_48k, 16000)  # mixed down by FFmpeg
    n = min(original.shape[0], s1.shape[1])
    np.testing.assert_allclose((s1 + s2 + residual)[0, :n], original[:n], atol=1e-6)
    r = _invoke("separate", stereo_48k, "-o", tmp_path, "-w", tiny_weights, "--channels", "both", "--overwrite")
    assert r.exit_code != 0 and "--channels" in r.output


def test_flac_is_24_bit_and_adds_up_to_its_precision(tiny_weights, stereo_48k, tmp_path):
    r = _invoke("separate", stereo_48k, "-o", tmp_path, "-w", tiny_weights, "--sources", "2", "--format", "flac", "-q")
    assert r.exit_code == 0, r.output
    folder = tmp_path / stereo_48k.stem
    names = ["source-1.flac", "source-2.flac", "residual.flac"]
    assert {sf.info(folder / n).subtype for n in names} == {"PCM_24"}
    (s1, s2, residual), _ = _read_tracks(folder, names)
    original = media.read_audio(stereo_48k, 48000, mono=False)
    n = min(original.shape[1], s1.shape[1])
    np.testing.assert_allclose(s1[:, :n] + s2[:, :n] + residual[:, :n], original[:, :n], atol=4 * 2.0**-23)


def test_mix_writes_at_the_inputs_rate_and_channels(tiny_weights, stereo_48k, tmp_path):
    mono = write_test_video(tmp_path / "mono.mp4", seconds=2.0, fps=12, size=(128, 96), sample_rate=22050, freq=660.0)
    r = _invoke("separate", "--mix", stereo_48k, mono, "-o", tmp_path / "out", "-w", tiny_weights, "-q")
    assert r.exit_code == 0, r.output
    folder = tmp_path / "out" / f"{stereo_48k.stem}+{mono.stem}"
    names = ["mixture.wav", f"{stereo_48k.stem}.wav", f"{mono.stem}.wav"]
    (mixture, a, b), rates = _read_tracks(folder, names)
    assert rates == {48000} and mixture.shape[0] == a.shape[0] == b.shape[0] == 2
    # the mixture is the average of the two sound tracks at 48 kHz (the mono one in both channels)
    left, right = media.read_audio(stereo_48k, 48000, mono=False), media.read_audio(mono, 48000)
    n = min(mixture.shape[1], left.shape[1], right.shape[0])
    np.testing.assert_allclose(mixture[:, :n], (left[:, :n] + right[None, :n]) / 2, atol=1e-6)
    r = _invoke("separate", "--mix", stereo_48k, mono, "-o", tmp_path / "low", "-w", tiny_weights, "--sr", "11025", "-q")
    assert r.exit_code == 0, r.output
    assert sf.info(tmp_path / "low" / f"{stereo_48k.stem}+{mono.stem}" / "mixture.wav").samplerate == 11025


def _write_surround_video(path, seconds=2.0, rate=48000, fps=12):
    """A Matroska video with 5.1 FLAC sound: a different tone in each of the 6 channels."""
    import av

    n = int(seconds * rate)
    t = np.arange(n) / rate
    sound = (0.3 * np.sin(2 * np.pi * (300 + 200 * np.arange(6))[:, None] * t) * 32767).astype(np.int16)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 128, 96, "yuv420p"
        audio = out.add_stream("flac", rate=rate, layout="5.1")
        for k in range(int(seconds * fps)):
            img = np.zeros((96, 128, 3), np.uint8)
            img[:, (4 * k) % 100 : (4 * k) % 100 + 20] = 255
            for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for pos in range(0, n, 4096):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(sound[:, pos : pos + 4096].T).reshape(1, -1),
                                               format="s16", layout="5.1")
            frame.sample_rate, frame.pts = rate, pos
            for packet in audio.encode(frame):
                out.mux(packet)
        for stream in (audio, video):
            for packet in stream.encode(None):
                out.mux(packet)
    return path


def test_surround_input_gives_stems_of_the_same_layout(tiny_weights, tmp_path):
    video = _write_surround_video(tmp_path / "surround.mkv")
    r = _invoke("separate", video, "-o", tmp_path / "out", "-w", tiny_weights, "--sources", "2", "-q")
    assert r.exit_code == 0, r.output
    folder = tmp_path / "out" / video.stem
    meta = json.loads((folder / "sources.json").read_text())
    assert meta["channels"] == 6 and meta["sample_rate"] == 48000
    (s1, s2, residual), rates = _read_tracks(folder, ["source-1.wav", "source-2.wav", "residual.wav"])
    assert rates == {48000} and s1.shape[0] == 6
    original = media.read_audio(video, 48000, mono=False)
    n = min(original.shape[1], s1.shape[1])
    np.testing.assert_allclose(s1[:, :n] + s2[:, :n] + residual[:, :n], original[:, :n], atol=1e-6)
