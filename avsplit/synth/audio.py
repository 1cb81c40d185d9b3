"""Audio of the synthetic dataset: offline FluidSynth rendering, a built-in additive fallback,
loudness balancing, and per-frame envelopes.

FluidSynth is driven without any audio driver: a fresh ``Synth`` per source (a reused one
carries its internal 64-sample block phase over, which would make the output depend on what
was rendered before), the SoundFont loaded with ``sfload``, notes played with
``noteon``/``noteoff`` between blocks written by ``fluid_synth_write_float`` (float output,
so no dithering noise and bit-identical results for a seed).
"""

from __future__ import annotations

import ctypes
import glob
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from avsplit.errors import ConfigError
from avsplit.synth.instruments import Category
from avsplit.synth.melody import PITCH_BEND, Melody

__all__ = [
    "DEFAULT_SOUNDFONTS",
    "RendererChoice",
    "find_soundfont",
    "fluidsynth_problem",
    "quiet_fluidsynth_log",
    "resolve_renderer",
    "render_fluidsynth",
    "render_additive",
    "balance_sources",
    "frame_rms",
    "loudness",
]

#: SoundFonts tried in order when none is given (Debian's timgm6mb-soundfont, fluid-soundfont-gm,
#: the default-GM alternative, then anything under /usr/share/soundfonts).
DEFAULT_SOUNDFONTS: tuple[str, ...] = (
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/*.sf2",
)

#: Active loudness (RMS over the sounding parts) of each source before the mix is limited.
_TARGET_RMS = 0.1
#: Peak of the mixture; sources are scaled down together when their sum would exceed it.
_MIX_PEAK = 0.89
#: Dynamic range (dB below the source's loudest frame) that counts as sounding.
SILENCE_DB = 30.0
_BLOCK = 512
_FLUID_DRUM_CHANNEL = 9


# ----------------------------------------------------------------------------- FluidSynth access


def _load_fluidsynth():
    """Import pyfluidsynth; raises ImportError or OSError when it or libfluidsynth is missing."""
    import fluidsynth  # noqa: PLC0415 - optional native dependency, imported on demand

    return fluidsynth


@lru_cache(maxsize=1)
def _write_float():
    fs = _load_fluidsynth()
    fn = fs._fl.fluid_synth_write_float
    fn.argtypes = [
        ctypes.c_void_p, ctypes.c_int,
        ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
        ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
    ]
    fn.restype = ctypes.c_int
    quiet_fluidsynth_log()
    return fn


@lru_cache(maxsize=1)
def quiet_fluidsynth_log() -> None:
    """Stop FluidSynth logging straight to stderr (a missing preset, a bad file): failures are
    reported by us as one line instead."""
    set_log = getattr(_load_fluidsynth()._fl, "fluid_set_log_function", None)
    if set_log is not None:
        set_log.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        for level in range(5):
            set_log(level, None, None)


def fluidsynth_problem() -> str | None:
    """None when FluidSynth can be used, else a short reason."""
    try:
        _write_float()
    except (ImportError, OSError) as exc:
        return f"FluidSynth is not available ({' '.join(str(exc).split()) or type(exc).__name__})"
    except AttributeError as exc:  # a libfluidsynth without fluid_synth_write_float
        return f"FluidSynth library is too old ({exc})"
    return None


def find_soundfont(explicit: str | Path | None = None) -> Path | None:
    """``explicit`` if given (it must exist), else the first default SoundFont found, else None."""
    if explicit is not None:
        path = Path(explicit).expanduser().absolute()
        if not path.is_file():
            raise ConfigError("no such SoundFont file", path, "give the path of a General MIDI .sf2 file")
        return path
    for pattern in DEFAULT_SOUNDFONTS:
        for name in sorted(glob.glob(pattern)) if "*" in pattern else [pattern]:
            path = Path(name)
            if path.is_file():
                return path
    return None


def _new_synth(fs, sample_rate: int, fx: dict | None = None):
    """A fresh synth; ``fx`` (see :func:`avsplit.synth.makers.random_fluid_settings`) turns on
    reverb, chorus, another interpolation and gain. Samples load on demand (an .sf3 SoundFont
    would otherwise decompress every sample at each load)."""
    fx = fx or {}
    synth = fs.Synth(
        gain=float(fx.get("gain", 0.6)),
        samplerate=float(sample_rate),
        **{"synth.reverb.active": int(bool(fx.get("reverb"))), "synth.chorus.active": int(bool(fx.get("chorus"))),
           "synth.cpu-cores": 1, "synth.dynamic-sample-loading": 1},
    )
    if fx.get("reverb"):
        r = fx["reverb"]
        synth.set_reverb(roomsize=r["roomsize"], damping=r["damping"], width=r["width"], level=r["level"])
    if fx.get("chorus"):
        c = fx["chorus"]
        synth.set_chorus(nr=c["nr"], level=c["level"], speed=c["speed"], depth=c["depth"])
    if "interpolation" in fx:
        fs._fl.fluid_synth_set_interp_method(ctypes.c_void_p(synth.synth), -1, int(fx["interpolation"]))
    return synth


def _load_soundfont(synth, soundfont: Path) -> int:
    sfid = synth.sfload(str(soundfont))
    if sfid is None or sfid < 0:
        raise ConfigError("cannot load this SoundFont (not a valid .sf2 file)", soundfont, "give a General MIDI .sf2 file")
    return sfid


@dataclass(frozen=True)
class RendererChoice:
    """The audio renderer resolved for a run."""

    name: str
    """``fluidsynth`` or ``additive``."""
    soundfont: Path | None
    warning: str | None = None
    """Set when ``auto`` had to fall back to the additive synthesizer."""


def resolve_renderer(renderer: str, soundfont: str | Path | None, sample_rate: int) -> RendererChoice:
    """Pick the renderer: ``fluidsynth``, ``additive`` or ``auto`` (FluidSynth when usable)."""
    if renderer not in ("auto", "fluidsynth", "additive"):
        raise ConfigError(f"unknown renderer {renderer!r}", None, "use auto, fluidsynth or additive")
    if renderer == "additive":
        return RendererChoice("additive", None)
    sf_path = find_soundfont(soundfont)  # an explicit but missing file is an error either way
    problem = fluidsynth_problem()
    if problem is None and sf_path is None:
        problem = "no General MIDI SoundFont found (install timgm6mb-soundfont or fluid-soundfont-gm, or give --soundfont)"
    if problem is None:
        fs = _load_fluidsynth()
        synth = _new_synth(fs, sample_rate)
        try:
            _load_soundfont(synth, sf_path)  # type: ignore[arg-type]
        except ConfigError as exc:
            if renderer == "fluidsynth" or soundfont is not None:
                raise
            problem = str(exc).rstrip(".")
        finally:
            synth.delete()
    if problem is None:
        return RendererChoice("fluidsynth", sf_path)
    if renderer == "fluidsynth":
        raise ConfigError(problem, None, "install libfluidsynth3 and a GM SoundFont, or use the built-in synthesizer")
    return RendererChoice("additive", None, f"{problem}; using the built-in additive synthesizer")


# ---------------------------------------------------------------------------------- rendering


def _controller_events(melody: Melody, sample_rate: int) -> list[tuple[int, int, int, int]]:
    """Controls as ``(sample, 2, controller, value)`` events (sorting after note offs and ons)."""
    return [(int(round(t * sample_rate)), 2, c, v) for t, c, v in melody.controls]


def render_fluidsynth(
    soundfont: Path, category: Category, melody: Melody, sample_rate: int, n_samples: int, fx: dict | None = None
) -> np.ndarray:
    """Render ``melody`` (notes and controller events) with FluidSynth: offline, deterministic,
    mono float32. ``fx``: reverb, chorus, interpolation and gain settings (None: all off)."""
    fs = _load_fluidsynth()
    write = _write_float()
    synth = _new_synth(fs, sample_rate, fx)
    try:
        sfid = _load_soundfont(synth, soundfont)
        chan = _FLUID_DRUM_CHANNEL if category.percussion else 0
        if synth.program_select(chan, sfid, category.bank, category.program) != 0:
            raise ConfigError(
                f"SoundFont has no preset for {category.name} (bank {category.bank}, program {category.program})",
                soundfont,
                "give a complete General MIDI SoundFont",
            )
        events: list[tuple[int, int, int, int]] = []  # (sample, 0=off/1=on, key, velocity)
        for note in melody.notes:
            a = int(round(note.start * sample_rate))
            b = max(a + 1, int(round(note.end * sample_rate)))
            for key in note.keys:
                events.append((a, 1, key, note.velocity))
                events.append((b, 0, key, 0))
        events += _controller_events(melody, sample_rate)
        events.sort()
        left = np.zeros(n_samples, np.float32)
        right = np.zeros(n_samples, np.float32)
        lp, rp = left.ctypes.data, right.ctypes.data
        pos = 0
        ei = 0
        while pos < n_samples:
            while ei < len(events) and events[ei][0] <= pos:
                _, on, key, vel = events[ei]
                if on == 2:
                    _control(synth, chan, key, vel)
                elif on:
                    synth.noteon(chan, key, vel)
                else:
                    synth.noteoff(chan, key)
                ei += 1
            count = min(_BLOCK, n_samples - pos)
            if ei < len(events):
                count = max(1, min(count, events[ei][0] - pos))
            write(synth.synth, count, lp, pos, 1, rp, pos, 1)
            pos += count
    finally:
        synth.delete()
    return (0.5 * (left + right)).astype(np.float32)


def _control(synth, chan: int, controller: int, value: int) -> None:
    if controller == PITCH_BEND:
        synth.pitch_bend(chan, int(value))
    else:
        synth.cc(chan, int(controller), int(value))


_DRUM_PITCH = {36: 55.0, 38: 185.0, 40: 200.0, 41: 82.0, 43: 98.0, 45: 110.0, 47: 131.0, 48: 147.0, 50: 165.0,
               60: 400.0, 61: 300.0, 62: 350.0, 63: 260.0, 64: 190.0}
_DRUM_NOISE = {36: 0.15, 38: 1.0, 40: 1.0}


def _smooth_noise(rng: np.random.Generator, n: int, cutoff: float, sample_rate: int) -> np.ndarray:
    """White noise low-passed at about ``cutoff`` Hz (a moving average, fast in numpy)."""
    width = max(1, int(round(sample_rate / max(cutoff, 1.0) / 2)))
    noise = rng.standard_normal(n + width)
    cs = np.cumsum(noise)
    out = (cs[width:] - cs[:-width]) / math.sqrt(width)
    return out[:n]


def _additive_note(
    category: Category, key: int, duration: float, velocity: int, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    tm = category.timbre
    if category.percussion:
        length = min(duration, 4 * (tm.decay or 0.2)) + 6 * tm.release
    else:
        length = duration + 6 * tm.release
    n = max(1, int(round(length * sample_rate)))
    t = np.arange(n, dtype=np.float64) / sample_rate

    # Amplitude envelope: attack, then decay (struck) or sustain (blown/bowed), then release.
    held = t < duration
    env = np.clip(t / max(tm.attack, 1e-4), 0.0, 1.0)
    if tm.decay is not None:
        body = np.exp(-t / tm.decay)
    else:
        body = tm.sustain + (1.0 - tm.sustain) * np.exp(-t / 0.12)
    end_level = body[min(n - 1, int(duration * sample_rate))] if duration * sample_rate < n else body[-1]
    tail = end_level * np.exp(-(t - duration) / max(tm.release, 1e-3))
    env = env * np.where(held, body, tail)
    if tm.tremolo[0]:
        env = env * (1.0 - tm.tremolo[0] * (0.5 + 0.5 * np.sin(2 * np.pi * tm.tremolo[1] * t)))

    # Instantaneous frequency of the fundamental.
    if category.percussion:
        f0 = _DRUM_PITCH.get(key, 440.0 * 2 ** ((key - 69) / 12.0) / 2)
        freq = f0 * (1.0 + 0.6 * np.exp(-t / 0.025))
    else:
        f0 = 440.0 * 2 ** ((key - 69) / 12.0)
        freq = np.full(n, f0)
        if tm.vibrato[0]:
            depth = tm.vibrato[0] * np.clip((t - 0.15) / 0.3, 0.0, 1.0)
            freq = freq * 2 ** (depth * np.sin(2 * np.pi * tm.vibrato[1] * t) / 1200.0)
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate

    sig = np.zeros(n)
    total = 0.0
    for i, amp in enumerate(tm.partials):
        ratio = tm.ratios[i] if tm.ratios else float(i + 1)
        if f0 * ratio >= 0.45 * sample_rate:
            break
        partial = np.sin(ratio * phase + float(rng.uniform(0, 2 * np.pi)))
        if tm.bright_decay:
            partial = partial * np.exp(-t * tm.bright_decay * i)
        sig += amp * partial
        total += amp
    sig /= max(total, 1e-6)

    noise_share = _DRUM_NOISE.get(key, tm.noise) if category.percussion else tm.noise
    if noise_share:
        if category.percussion:
            noise = _smooth_noise(rng, n, 5000.0, sample_rate) * np.exp(-t / 0.06)
        else:
            noise = _smooth_noise(rng, n, 3000.0, sample_rate) * 0.5
        sig = (1.0 - noise_share) * sig + noise_share * noise
    return (sig * env * (velocity / 127.0) ** 1.5).astype(np.float32)


def render_additive(
    category: Category, melody: Melody, sample_rate: int, n_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """Render ``melody`` with the built-in additive synthesizer (timbre per category)."""
    out = np.zeros(n_samples, np.float32)
    for note in melody.notes:
        a = int(round(note.start * sample_rate))
        if a >= n_samples:
            continue
        for key in note.keys:
            seg = _additive_note(category, key, note.end - note.start, note.velocity, sample_rate, rng)
            m = min(len(seg), n_samples - a)
            out[a : a + m] += seg[:m]
    return out


# ----------------------------------------------------------------------------------- levels


def _active_rms(audio: np.ndarray, block: int = 1024) -> float:
    """RMS over the blocks within ``SILENCE_DB`` of the loudest block (the sounding parts)."""
    n = len(audio) // block
    if n == 0:
        return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    power = np.mean(np.square(audio[: n * block].astype(np.float64)).reshape(n, block), axis=1)
    peak = power.max()
    if peak <= 0:
        return 0.0
    active = power[power >= peak * 10 ** (-SILENCE_DB / 10)]
    return float(np.sqrt(active.mean()))


def balance_sources(sources: list[np.ndarray], gains_db: list[float]) -> tuple[list[np.ndarray], np.ndarray]:
    """Level each source to the same active loudness (plus its gain), then scale them together so
    the mixture never exceeds the mix peak. Sources are rounded to the 16-bit grid, so the
    mixture (their sum, returned second) is exactly the sum of the WAV files written from them.
    """
    scaled = []
    for audio, gain in zip(sources, gains_db):
        rms = _active_rms(audio)
        factor = (_TARGET_RMS * 10 ** (gain / 20.0) / rms) if rms > 0 else 0.0
        scaled.append(audio.astype(np.float64) * factor)
    mix = np.sum(scaled, axis=0) if scaled else np.zeros(0)
    peak = float(np.max(np.abs(mix))) if mix.size else 0.0
    if peak > _MIX_PEAK:
        scaled = [s * (_MIX_PEAK / peak) for s in scaled]
    quantized = [(np.round(np.clip(s, -1.0, 1.0) * 32767.0) / 32767.0).astype(np.float32) for s in scaled]
    mix = np.zeros_like(quantized[0]) if quantized else np.zeros(0, np.float32)
    for q in quantized:
        mix = mix + q
    return quantized, mix.astype(np.float32)


def frame_rms(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> np.ndarray:
    """RMS of ``audio`` over each frame's time span ``[k/fps, (k+1)/fps)``."""
    edges = np.minimum(len(audio), np.round(np.arange(n_frames + 1) * sample_rate / fps).astype(np.int64))
    cs = np.concatenate([[0.0], np.cumsum(np.square(audio.astype(np.float64)))])
    counts = np.maximum(1, edges[1:] - edges[:-1])
    power = np.maximum(0.0, cs[edges[1:]] - cs[edges[:-1]]) / counts
    return np.sqrt(power)


def loudness(rms: np.ndarray, floor_db: float = SILENCE_DB) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame level in [0, 1] (0 at ``floor_db`` below the loudest frame, 1 at the loudest,
    linear in dB) and the sounding flags (level > 0)."""
    peak = float(rms.max()) if rms.size else 0.0
    if peak <= 0:
        zeros = np.zeros_like(rms)
        return zeros, zeros.astype(bool)
    db = 20 * np.log10(np.maximum(rms, 1e-12) / peak)
    level = np.clip((db + floor_db) / floor_db, 0.0, 1.0)
    return level, level > 0
