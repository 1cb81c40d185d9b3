"""Real recordings as sources: CC0 samples of Debian's ``sonic-pi-samples`` sequenced into a
performance.

A *take* is a set of sample files for one category: one-shot hits (drum kit pieces, tabla
strokes, bell strikes, guitar chords) placed at rhythmic onsets with gain variation, or a loop
(a recorded phrase) played in stretches from random offsets with rests between them. Hits give
their onsets exactly; a loop's onsets are found in its audio (spectral flux peaks), so the
sprite moves with what is heard either way.

Takes marked ``held_out`` form the real-sound evaluation split: ``--split train`` never uses
them, ``--split foreign`` uses only them (see docs/domains.md).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from avsplit.dsp.resample import resample
from avsplit.io import read_audio_file
from avsplit.dsp.onsets import pick_events, spectral_flux
from avsplit.synth.melody import Melody, Note

__all__ = ["SAMPLE_DIRS", "Take", "REAL_TAKES", "HELD_OUT_REAL_FILES", "find_sample_dir", "available_takes",
           "render_take"]

SAMPLE_DIRS: tuple[str, ...] = ("/usr/share/sonic-pi/samples", "/usr/share/sonic-pi/etc/samples",
                                "/usr/lib/sonic-pi/etc/samples")


@dataclass(frozen=True)
class Take:
    name: str
    files: tuple[str, ...]
    """Sample file stems (``<dir>/<stem>.flac``)."""
    loop: bool = False
    held_out: bool = False


def _hits(name, *files, held_out=False):
    return Take(name, tuple(files), False, held_out)


def _loop(name, held_out=False):
    return Take(name, (name,), True, held_out)


REAL_TAKES: dict[str, tuple[Take, ...]] = {
    "guitar": (
        _hits("guit_em9", "guit_em9"), _loop("guit_e_fifths"), _loop("guit_e_slide"),
        _loop("guit_harmonics", held_out=True),
    ),
    "drum": (
        _hits("acoustic-kit", "drum_heavy_kick", "drum_bass_hard", "drum_snare_hard", "drum_cymbal_closed",
              "drum_tom_mid_hard", "drum_tom_lo_hard", "drum_cymbal_hard"),
        _hits("soft-kit", "drum_bass_soft", "drum_snare_soft", "drum_cymbal_pedal", "drum_tom_hi_soft",
              "drum_tom_lo_soft", "drum_cymbal_soft"),
        _hits("electro-kit", "bd_808", "bd_klub", "sn_dub", "sn_generic", "drum_cymbal_closed"),
        _loop("loop_amen"), _loop("loop_amen_full"),
        _hits("club-kit", "bd_haus", "bd_zum", "sn_zome", "sn_dolf", "drum_cymbal_open", held_out=True),
        _loop("loop_breakbeat", held_out=True),
    ),
    "djembe": (
        _hits("tabla-bayan", "tabla_ghe1", "tabla_ghe4", "tabla_ghe8", "tabla_na", "tabla_te1", "tabla_te2",
              "tabla_tun1", "tabla_na_s"),
        _hits("tabla-dayan", "tabla_ghe2", "tabla_ghe3", "tabla_tas1", "tabla_tas2", "tabla_te_m", "tabla_te_ne",
              "tabla_tun2", "tabla_ke1"),
        _hits("tabla-strokes", "tabla_dhec", "tabla_ghe5", "tabla_ghe6", "tabla_ghe7", "tabla_ke2", "tabla_ke3",
              "tabla_na_o", "tabla_re", "tabla_tas3", "tabla_tun3", held_out=True),
        _loop("loop_tabla", held_out=True),
    ),
    "piano": (_loop("ambi_piano"),),
    "bell": (
        _hits("perc_bell", "perc_bell"), _hits("elec_bell", "elec_bell", "elec_chime"),
        _hits("perc_bell2", "perc_bell2", held_out=True),
    ),
}

#: Every sample file that only the real-sound evaluation split uses.
HELD_OUT_REAL_FILES: tuple[str, ...] = tuple(sorted({
    f + ".flac" for takes in REAL_TAKES.values() for t in takes if t.held_out for f in t.files
}))


def find_sample_dir() -> Path | None:
    """The sonic-pi samples folder (holding ``loop_amen.flac``), or None when not installed."""
    for pattern in SAMPLE_DIRS:
        for name in sorted(glob.glob(pattern)):
            if (Path(name) / "loop_amen.flac").is_file():
                return Path(name)
    return None


def available_takes(sample_dir: Path | None, category: str, held_out: bool | None) -> list[Take]:
    """Takes of ``category`` whose files all exist; ``held_out`` True/False keeps only the
    held-out/training ones, None keeps both."""
    if sample_dir is None:
        return []
    return [t for t in REAL_TAKES.get(category, ())
            if (held_out is None or t.held_out == held_out) and all((sample_dir / f"{f}.flac").is_file() for f in t.files)]


@lru_cache(maxsize=96)
def _sample(path: str, rate: int) -> np.ndarray:
    """A sample file as mono float32 at ``rate``, trimmed of leading silence."""
    data, sr = read_audio_file(path)
    mono = data.mean(axis=0)
    if sr != rate:
        mono = resample(mono, sr, rate)
    loud = np.flatnonzero(np.abs(mono) > 0.02 * (np.abs(mono).max() + 1e-12))
    return np.ascontiguousarray(mono[loud[0]:] if loud.size else mono, dtype=np.float32)


def _fade(seg: np.ndarray, rate: int, fade_in: float = 0.0, fade_out: float = 0.03) -> np.ndarray:
    seg = seg.copy()
    a, b = min(len(seg), int(fade_in * rate)), min(len(seg), int(fade_out * rate))
    if a:
        seg[:a] *= np.linspace(0.0, 1.0, a)
    if b:
        seg[-b:] *= np.linspace(1.0, 0.0, b)
    return seg


def _render_hits(take: Take, sample_dir: Path, rng: np.random.Generator, rate: int, n: int, seconds: float):
    out = np.zeros(n, np.float32)
    beat = 60.0 / float(rng.uniform(60.0, 180.0))
    speed = float(rng.uniform(0.85, 1.18)) if rng.random() < 0.5 else 1.0  # playback rate (pitch and length)
    weights = rng.uniform(0.3, 1.0, len(take.files))
    weights /= weights.sum()
    choke = len(take.files) == 1 or take.name.startswith("guit")  # a new strike stops the previous one
    onsets: list[float] = []
    t = float(rng.uniform(0.0, min(1.0, seconds * 0.2)))
    while t < seconds - 0.1:
        phrase_end = t + float(rng.uniform(1.0, 4.0))
        while t < min(phrase_end, seconds - 0.1):
            onsets.append(round(t, 4))
            t += beat * float(rng.choice((0.5, 0.5, 1.0, 1.0, 1.5, 2.0)))
        t += float(rng.uniform(0.3, 1.8))
    for i, onset in enumerate(onsets):
        stem = take.files[int(rng.choice(len(take.files), p=weights))]
        seg = _sample(str(sample_dir / f"{stem}.flac"), rate)
        if speed != 1.0:
            seg = np.interp(np.arange(0, len(seg) - 1, speed), np.arange(len(seg)), seg).astype(np.float32)
        a = int(round(onset * rate))
        if choke and i + 1 < len(onsets):
            seg = _fade(seg[: max(1, int(round(onsets[i + 1] * rate)) - a)], rate)
        m = min(len(seg), n - a)
        if m > 0:
            out[a:a + m] += seg[:m] * 10 ** (float(rng.uniform(-12.0, 0.0)) / 20.0)
    return out, onsets, {"bpm": round(60.0 / beat, 1), "speed": round(speed, 3)}


def _flux_onsets(audio: np.ndarray, rate: int) -> list[float]:
    hop = max(1, rate // 100)
    flux = spectral_flux(audio, n_fft=max(512, 4 * hop), hop=hop)
    half = 150  # +-1.5 s windows for the median
    events = [j for j in range(len(flux))
              if pick_events(flux[max(0, j - half): j + half + 1], min(j, half), k=3.0, rel=0.1, floor=1e-3)]
    return [round(j * hop / rate, 4) for j in events]


def _render_loop(take: Take, sample_dir: Path, rng: np.random.Generator, rate: int, n: int, seconds: float):
    loop = _sample(str(sample_dir / f"{take.files[0]}.flac"), rate)
    out = np.zeros(n, np.float32)
    starts: list[float] = []
    t = float(rng.uniform(0.0, min(1.0, seconds * 0.2)))
    while t < seconds - 0.3:
        starts.append(round(t, 4))
        length = min(float(rng.uniform(1.0, 4.0)), len(loop) / rate, seconds - t)
        offset = int(rng.integers(0, max(1, len(loop) - int(length * rate))))
        seg = _fade(loop[offset: offset + int(length * rate)], rate, 0.005, 0.05)
        a = int(round(t * rate))
        m = min(len(seg), n - a)
        if m > 0:
            out[a:a + m] += seg[:m] * 10 ** (float(rng.uniform(-6.0, 0.0)) / 20.0)
        t += length + float(rng.uniform(0.3, 1.5))
    onsets = sorted(starts)
    for t in _flux_onsets(out, rate):  # the attacks inside each stretch, found in the audio
        if all(abs(t - s) > 0.05 for s in onsets):
            onsets.append(t)
    return out, sorted(onsets), {}


def render_take(take: Take, sample_dir: Path, rng: np.random.Generator, rate: int, n: int) -> tuple[np.ndarray, Melody, dict]:
    """A performance of ``take``: mono float32 audio ``(n,)`` at ``rate``, a melody holding its
    onsets (one short note per onset), and a description for the truth."""
    seconds = n / rate
    render = _render_loop if take.loop else _render_hits
    audio, onsets, info = render(take, sample_dir, rng, rate, n, seconds)
    notes = tuple(Note(float(t), float(t) + 0.05, (60,), 100) for t in onsets)
    return audio, Melody(notes), {"take": take.name, "files": [f + ".flac" for f in take.files], **info}
