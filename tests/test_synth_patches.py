"""The sampled-instrument sound maker (``synth --patches DIR``, ``patch:<name>``): GUS patch files
are read exactly, notes play at their pitch (bends included), loop while held and fall silent
after; ``--makers`` restricts what is drawn. The patch sets are tiny ones the tests write."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from avsplit.cli import app
from avsplit.errors import ConfigError
from avsplit.synth import CATEGORIES, generate_dataset
from avsplit.synth.melody import PITCH_BEND, Melody, Note
from avsplit.synth.patches import find_patch_set, read_patch, render_patch
from avsplit.synth.variety import Resources, plan_sources
from test_synth_variety import TINY, _truths

RATE = 16000
BY_NAME = {c.name: c for c in CATEGORIES}


def write_patch(path: Path, waves: list[tuple[np.ndarray, int, float, float, float, tuple[int, int] | None]]) -> None:
    """A GF1PATCH110 file of 16-bit signed samples: each ``(data in [-1, 1], rate, low Hz, high Hz,
    root Hz, loop or None)``."""
    out = bytearray(b"GF1PATCH110\x00" + b"ID#000002\x00" + bytes(60))
    out += struct.pack("<BBBHHI", 1, 14, 0, len(waves), 127, 0) + bytes(36)
    out += struct.pack("<H16sIB", 0, b"test", 0, 1) + bytes(40)
    out += struct.pack("<BBIB", 0, 0, 0, len(waves)) + bytes(40)
    for data, rate, low, high, root, loop in waves:
        pcm = np.round(np.clip(data, -1, 1) * 32767).astype("<i2").tobytes()
        start, end = (2 * loop[0], 2 * loop[1]) if loop else (0, len(pcm))
        header = struct.pack("<7sBIIIHIIIhB", b"w", 0, len(pcm), start, end, rate, int(low * 1000), int(high * 1000),
                             int(root * 1000), 0, 7)
        header += bytes(12) + bytes(6) + bytes([0b00100001 | (0b100 if loop else 0)]) + struct.pack("<HH", 60, 1024)
        out += header + bytes(96 - len(header)) + pcm
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))


def _tone(hz: float, rate: int, seconds: float) -> np.ndarray:
    """A sine of a whole number of periods (so it loops without a click)."""
    periods = max(1, round(hz * seconds))
    n = int(round(periods * rate / hz))
    return 0.8 * np.sin(2 * np.pi * periods * np.arange(n) / n)


@pytest.fixture(scope="module")
def patch_dir(tmp_path_factory) -> Path:
    """A patch set that plays violin (two samples, looped), piano (looped) and the drum kit's keys
    (a short decaying burst each, no loop)."""
    root = tmp_path_factory.mktemp("patches") / "tinypats"
    low_tone, high_tone = _tone(220.0, 22050, 0.1), _tone(880.0, 22050, 0.1)
    write_patch(root / "Tone_000" / "040_Violin.pat", [
        (low_tone, 22050, 10.0, 440.0, 220.0, (0, len(low_tone))),
        (high_tone, 22050, 440.001, 8000.0, 880.0, (0, len(high_tone))),
    ])
    write_patch(root / "Tone_000" / "000_Piano.pat", [(low_tone, 22050, 10.0, 8000.0, 220.0, (0, len(low_tone)))])
    burst = np.random.default_rng(0).uniform(-1, 1, 2205) * np.exp(-np.arange(2205) / 400)
    for key in BY_NAME["drum"].drum_keys:
        write_patch(root / "Drum_000" / f"{key:03d}_Hit.pat", [(burst, 22050, 10.0, 8000.0, 100.0, None)])
    return root


def _peak_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / RATE)[np.argmax(spectrum)])


def test_a_patch_file_is_read_exactly(patch_dir):
    samples = read_patch(patch_dir / "Tone_000" / "040_Violin.pat")
    assert [s.root_hz for s in samples] == [220.0, 880.0]
    assert samples[0].rate == 22050 and samples[0].loop == (0, len(samples[0].data))
    assert np.allclose(samples[0].data, _tone(220.0, 22050, 0.1), atol=2 / 32767)  # rounding, and 32768 full scale
    drum = read_patch(patch_dir / "Drum_000" / "036_Hit.pat")[0]
    assert drum.loop is None and len(drum.data) == 2205


def test_a_bad_patch_names_its_file(tmp_path):
    bad = tmp_path / "Tone_000" / "040_Bad.pat"
    bad.parent.mkdir()
    bad.write_bytes(b"RIFF" + bytes(300))
    with pytest.raises(ConfigError, match="GUS patch") as info:
        read_patch(bad)
    assert "040_Bad.pat" in str(info.value)
    with pytest.raises(ConfigError, match="no patches"):
        find_patch_set(tmp_path / "Tone_000")


@pytest.mark.parametrize("key", [57, 64, 81])  # the low sample shifted down and up, the high sample
def test_notes_play_at_their_pitch_and_loop_while_held(patch_dir, key):
    patches = find_patch_set(patch_dir)
    melody = Melody((Note(0.25, 1.25, (key,), 127),))
    audio = render_patch(patches, BY_NAME["violin"], melody, RATE, 2 * RATE, np.random.default_rng(0))
    expected = 440.0 * 2 ** ((key - 69) / 12)
    assert abs(_peak_hz(audio[int(0.35 * RATE):int(1.15 * RATE)]) / expected - 1) < 0.02
    assert not audio[:int(0.25 * RATE)].any()  # nothing before the onset
    held = np.sqrt(np.mean(audio[int(1.0 * RATE):int(1.2 * RATE)] ** 2))  # far past the 0.1-s sample: looping
    after = np.sqrt(np.mean(audio[int(1.8 * RATE):] ** 2))  # the release (at most 120 ms) is over
    assert held > 0.3 and after < 0.01 * held


def test_pitch_bends_move_the_pitch(patch_dir):
    patches = find_patch_set(patch_dir)
    melody = Melody((Note(0.0, 1.9, (69,), 100),), controls=((0.0, PITCH_BEND, 8191),))  # a whole tone up
    audio = render_patch(patches, BY_NAME["violin"], melody, RATE, 2 * RATE, np.random.default_rng(0))
    assert abs(_peak_hz(audio[int(0.2 * RATE):int(1.8 * RATE)]) / (440 * 2 ** (2 / 12)) - 1) < 0.02


def test_drum_hits_play_once_at_their_onsets(patch_dir):
    patches = find_patch_set(patch_dir)
    drum = BY_NAME["drum"]
    melody = Melody((Note(0.2, 0.3, (drum.drum_keys[0],), 100), Note(1.0, 1.1, (drum.drum_keys[1],), 100)))
    audio = render_patch(patches, drum, melody, RATE, int(1.5 * RATE), np.random.default_rng(0))
    level = np.abs(audio)
    assert not level[:int(0.2 * RATE)].any()
    assert level[int(0.2 * RATE):int(0.25 * RATE)].max() > 0.2 and level[int(1.0 * RATE):int(1.05 * RATE)].max() > 0.2
    assert not level[int(0.2 * RATE) + 1700:int(1.0 * RATE)].any()  # one pass of the 0.1-s sample at 22.05 kHz


def test_makers_restrict_the_draw(patch_dir):
    patches = find_patch_set(patch_dir)
    assert patches.covers(BY_NAME["violin"]) and patches.covers(BY_NAME["drum"]) and not patches.covers(BY_NAME["flute"])
    everything = Resources(patch_sets=(patches,))
    only_patches = Resources(patch_sets=(patches,), makers=("patch",))
    drawn = {p.maker for seed in range(100) for p in plan_sources(np.random.default_rng(seed), everything, ["violin"], "train")}
    assert drawn == {"patch:tinypats", "additive", "physical"}  # no SoundFont given, no real takes of violins
    for seed in range(20):
        (plan,) = plan_sources(np.random.default_rng(seed), only_patches, ["drum"], "train")
        assert plan.maker == "patch:tinypats" and plan.patch_set == patches
    with pytest.raises(ConfigError, match="flute"):
        plan_sources(np.random.default_rng(0), only_patches, ["flute"], "train")


def test_synth_with_patches_end_to_end(tmp_path, patch_dir):
    out = tmp_path / "pats"
    result = CliRunner().invoke(app, ["synth", str(out), "--variety", "full", "--patches", str(patch_dir), "--makers",
                                      "patch", "--categories", "violin,piano,drum", "--solos", "3", "--duets", "1",
                                      "--seconds", "1.5", "--size", "112x84", "--fps", "12", "--sr", "16000", "-q"])
    assert result.exit_code == 0, result.output
    truths = _truths(out)
    assert len(truths) == 4
    assert {s["domain"]["sound_maker"] for t in truths for s in t["sources"]} == {"patch:tinypats"}
    refused = CliRunner().invoke(app, ["synth", str(tmp_path / "no"), "--patches", str(patch_dir), "-q"])
    assert refused.exit_code == 1 and "--variety full" in refused.output


def test_without_patches_the_draw_is_unchanged(tmp_path):
    """Giving no patch set draws exactly what it drew before patch sets existed (same truths)."""
    a, b = tmp_path / "a", tmp_path / "b"
    generate_dataset(a, solos=2, duets=0, seed=21, split="train", **TINY)
    generate_dataset(b, solos=2, duets=0, seed=21, split="train", makers=None, patches=None, **TINY)
    assert [t["domain"] for t in _truths(a)] == [t["domain"] for t in _truths(b)]
