"""Physical-modelling sound maker of ``synth --variety full`` (``physical``): each category family
(:data:`FAMILIES`) is made from a model of how the instrument vibrates, in NumPy and SciPy:

- ``plucked`` (guitar, banjo): an extended Karplus-Strong string, a noise burst combed at the pluck
  position circulating in a delay loop with a loss and a brightness filter, damped at the note end;
- ``struck`` (piano): modes of a stiff string (partials ``k f0 sqrt(1 + B k^2)``) shaped by the
  hammer's position and hardness, two detuned strings per key, a damper at the note end;
- ``mallet`` (bell): modes at inharmonic bell ratios, struck by a mallet;
- ``bowed`` (violin): Helmholtz motion (a band-limited sawtooth) with vibrato and bow noise at each
  slip, driving the same string loop, which rings on when the bow lifts;
- ``blown`` (trumpet, horn, saxophone, flute, accordion): FM whose index follows the breath (louder
  is brighter), breath noise and vibrato; the accordion sounds two detuned reeds;
- ``membrane`` (drum, djembe): a circular membrane's modes (Bessel-zero ratios) with a pitch glide
  after the strike, and a noise burst (snares, stick, slap).

Each source draws its own :class:`Voice` (brightness, decay, inharmonicity, body resonances...), so
two sources of one category differ. Notes start exactly at their onsets; velocity sets level and
brightness; chords sound every key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.random import Generator
from scipy.signal import lfilter

from avsplit.synth.instruments import Category
from avsplit.synth.melody import Melody

__all__ = ["FAMILIES", "Voice", "family_of", "draw_voice", "render_physical"]

#: Model family of each category; :func:`family_of` gives others one by their timbre.
FAMILIES: dict[str, str] = {
    "guitar": "plucked", "banjo": "plucked", "piano": "struck", "bell": "mallet", "violin": "bowed",
    "trumpet": "blown", "horn": "blown", "saxophone": "blown", "flute": "blown", "accordion": "blown",
    "drum": "membrane", "djembe": "membrane",
}
#: Blown instruments: (FM modulator ratio, FM index at full breath, reeds). A clarinet would be 2.0.
_BLOWN = {"trumpet": (1.0, 4.0, 1), "horn": (1.0, 2.2, 1), "saxophone": (1.0, 3.0, 1), "flute": (1.0, 0.7, 1),
          "accordion": (1.0, 3.0, 2)}
_BLOWN_DEFAULT = (1.0, 2.5, 1)
#: Church-bell partials (hum, prime, tierce, quint, nominal, ...) over the prime.
_BELL_RATIOS = (0.5, 1.0, 1.19, 1.5, 2.0, 2.51, 2.66, 3.01, 4.1)
#: Zeros of Bessel functions over the first: a circular membrane's mode frequencies.
_MEMBRANE_RATIOS = (1.0, 1.594, 2.136, 2.296, 2.653, 2.918, 3.156, 3.501, 3.600, 3.652)
#: Fundamental (Hz) of each General MIDI kit key the categories play; snare keys add snare noise.
_DRUM_HZ = {36: 52.0, 38: 185.0, 40: 200.0, 41: 70.0, 43: 85.0, 45: 100.0, 47: 120.0, 48: 140.0, 50: 165.0,
            60: 430.0, 61: 310.0, 62: 360.0, 63: 270.0, 64: 200.0}
_SNARE_KEYS = frozenset({38, 40})
_NOTE_PEAK = 0.3
_BLOCK = 256


@dataclass(frozen=True)
class Voice:
    """One source's instrument, drawn once (:func:`draw_voice`): ``brightness`` 0..1 (loop filter,
    hammer and mallet hardness, noise colour); ``decay`` (s) the category's decay times a random
    factor; ``inharmonicity`` 0..1 (a stiff string's B, how far a bell's ``mode_shifts`` move its
    ratios, a membrane's pitch glide); ``position`` of the pluck or strike along the string
    (0.08..0.3); ``detune`` cents between a piano key's two strings (six times that between an
    accordion's reeds); ``tension`` a membrane's tuning ratio; ``vibrato`` (cents, Hz); ``noise``
    share of bow, breath, stick or slap noise; ``fm`` (modulator ratio, index at full breath,
    reeds); ``mode_gains`` and ``mode_shifts`` (shares of each ratio) per mode of a bell or
    membrane; ``body`` resonances (centre Hz, Q, gain)."""

    family: str
    brightness: float
    decay: float
    inharmonicity: float
    position: float
    detune: float
    tension: float
    vibrato: tuple[float, float]
    noise: float
    fm: tuple[float, float, int]
    mode_gains: tuple[float, ...]
    mode_shifts: tuple[float, ...]
    body: tuple[tuple[float, float, float], ...]


def family_of(category: Category) -> str:
    """The model family of ``category``: :data:`FAMILIES`, else membrane for a kit, plucked for a
    decaying timbre, blown for a sustained one."""
    if category.name in FAMILIES:
        return FAMILIES[category.name]
    if category.percussion:
        return "membrane"
    return "plucked" if category.timbre.decay is not None else "blown"


def draw_voice(category: Category, rng: Generator) -> Voice:
    """A random instrument of ``category``'s family (the same draws, in the same order, for every family)."""
    timbre = category.timbre
    ratio, index, reeds = _BLOWN.get(category.name, _BLOWN_DEFAULT)
    depth, rate = timbre.vibrato
    body = tuple((float(np.exp(rng.uniform(np.log(90.0), np.log(3500.0)))), float(rng.uniform(2.0, 12.0)),
                  float(rng.uniform(0.3, 1.5))) for _ in range(int(rng.integers(2, 5))))
    return Voice(
        family=family_of(category),
        brightness=float(rng.uniform(0.15, 0.95)),
        decay=(timbre.decay or 1.0) * float(rng.uniform(0.6, 1.6)),
        inharmonicity=float(rng.uniform(0.0, 1.0)),
        position=float(rng.uniform(0.08, 0.3)),
        detune=float(rng.uniform(0.5, 3.0)),
        tension=float(rng.uniform(0.85, 1.2)),
        vibrato=(depth * float(rng.uniform(0.5, 1.8)), (rate or 5.0) * float(rng.uniform(0.85, 1.15))),
        noise=float(np.clip(timbre.noise * rng.uniform(1.0, 3.0) + rng.uniform(0.01, 0.08), 0.0, 0.8)),
        fm=(ratio, index * float(rng.uniform(0.6, 1.4)), reeds),
        mode_gains=tuple(float(g) for g in rng.uniform(0.35, 1.0, len(_MEMBRANE_RATIOS))),
        mode_shifts=tuple(float(g) for g in rng.uniform(-0.02, 0.02, len(_MEMBRANE_RATIOS))),
        body=body,
    )


def render_physical(category: Category, melody: Melody, sample_rate: int, n_samples: int,
                    rng: Generator) -> np.ndarray:
    """Render ``melody`` with a physical model of ``category``'s family, through the source's body:
    ``(n_samples,)`` float32. Every key of a chord sounds; nothing sounds before the first onset."""
    voice = draw_voice(category, rng)
    make_note = _NOTE_MAKERS[voice.family]
    out = np.zeros(n_samples)
    for note in melody.notes:
        start = int(round(note.start * sample_rate))
        if start >= n_samples:
            continue
        loud = note.velocity / 127.0
        for key in note.keys:
            seg = make_note(key, max(note.end - note.start, 1e-3), loud, sample_rate, voice, rng)
            seg = seg * (_NOTE_PEAK * loud ** 1.5 / max(float(np.max(np.abs(seg))), 1e-9))
            m = min(len(seg), n_samples - start)
            out[start:start + m] += seg[:m]
    return _body(out, voice.body, sample_rate).astype(np.float32)


# ------------------------------------------------------------------------------------ building blocks


def _key_hz(key: int) -> float:
    return 440.0 * 2.0 ** ((key - 69) / 12.0)


def _resonator(audio: np.ndarray, hz: float, q: float, sample_rate: int) -> np.ndarray:
    """``audio`` ``(n,)`` through a two-pole band-pass at ``hz`` (0 dB at the centre): ``(n,)``."""
    w0 = 2.0 * np.pi * hz / sample_rate
    alpha = np.sin(w0) / (2.0 * q)
    return lfilter([alpha, 0.0, -alpha], [1.0 + alpha, -2.0 * np.cos(w0), 1.0 - alpha], audio)


def _body(audio: np.ndarray, body, sample_rate: int) -> np.ndarray:
    """``audio`` ``(n,)`` plus its resonances in the body (causal, so onsets stay): ``(n,)``."""
    out = audio.copy()
    for hz, q, gain in body:
        if hz < 0.45 * sample_rate:
            out += gain * _resonator(audio, hz, q, sample_rate)
    return out


def _envelope(t: np.ndarray, held: float, attack: float, release: float) -> np.ndarray:
    """Level ``(n,)`` at times ``t`` ``(n,)``: rising from the onset, falling after ``held`` seconds."""
    end_level = 1.0 - np.exp(-held / attack)
    return np.where(t < held, 1.0 - np.exp(-t / attack), end_level * np.exp(-(t - held) / release))


def _vibrato(f0: float, t: np.ndarray, voice: Voice) -> np.ndarray:
    """Instantaneous frequency ``(n,)`` Hz: ``f0`` with the voice's vibrato faded in after 0.15 s."""
    depth, rate = voice.vibrato
    fade = np.clip((t - 0.15) / 0.3, 0.0, 1.0)
    return f0 * 2.0 ** (depth * fade * np.sin(2.0 * np.pi * rate * t) / 1200.0)


def _string_loop(drive: np.ndarray, period: np.ndarray, gain: np.ndarray, brightness: float,
                 sample_rate: int) -> np.ndarray:
    """A string as a delay loop (extended Karplus-Strong): ``y[n] = drive[n] + g[n] * h * y[n - P[n]]``,
    ``h`` a two-point low-pass (darker for lower ``brightness``, the same loss in Hz at any rate) and
    linear interpolation for the fractional period. Computed a period at a time: each block reads
    only samples a period back. ``drive``, ``period`` (samples), ``gain`` (per pass): ``(n,)``;
    returns ``(n,)`` float64."""
    n = len(drive)
    smooth = 0.5 - 0.45 * brightness  # at 22.05 kHz; the loss per pass is about smooth(1-smooth) w^2
    spread = min(0.25, smooth * (1.0 - smooth) * (22050.0 / sample_rate) ** 2)
    smooth = 0.5 * (1.0 - np.sqrt(1.0 - 4.0 * spread))
    pad = int(np.ceil(period.max())) + 3
    y = np.concatenate([np.zeros(pad), drive.astype(np.float64)])
    start = 0
    while start < n:
        delay = float(period[start]) - smooth
        lag = max(1, int(delay))
        frac = delay - lag
        taps = ((1 - smooth) * (1 - frac), (1 - smooth) * frac + smooth * (1 - frac), smooth * frac)
        m = min(lag, n - start)
        i = pad + start
        past = taps[0] * y[i - lag:i - lag + m] + taps[1] * y[i - lag - 1:i - lag - 1 + m]
        y[i:i + m] += gain[start] * (past + taps[2] * y[i - lag - 2:i - lag - 2 + m])
        start += m
    return y[pad:]


def _modes(freqs: np.ndarray, amps: np.ndarray, taus: np.ndarray, n: int, sample_rate: int,
           damp_at: float | None = None, glide: float = 0.0) -> np.ndarray:
    """Sum of decaying sine modes ``(modes,)`` (Hz, amplitude, time constant s) over ``n`` samples:
    ``(n,)``. A damper stops them after ``damp_at`` s; ``glide`` raises every pitch by that share at
    the strike, falling back in 30 ms (a struck membrane's tension)."""
    keep = (freqs < 0.45 * sample_rate) & (amps > 1e-3 * amps.max())
    freqs, amps, taus = freqs[keep], amps[keep], taus[keep]
    # Each mode is Im(a z^k), z^k = z^(block start) z^(within the block): one product for all modes
    # (einsum, not a BLAS matmul, whose threads crawl on a busy machine).
    pole = -1.0 / (taus * sample_rate) + 2j * np.pi * freqs / sample_rate
    start = amps * np.exp(2j * np.pi * freqs * glide * 0.03)  # the phase the settled glide leaves
    rows = np.exp(np.outer(np.arange(-(-n // _BLOCK)) * _BLOCK, pole)) * start
    out = np.einsum("rm,mb->rb", rows, np.exp(np.outer(pole, np.arange(_BLOCK)))).imag.reshape(-1)[:n]
    head = min(n, int(0.25 * sample_rate)) if glide else 0  # while the pitch glides, mode by mode
    t = np.arange(head) / sample_rate
    warped = t + glide * 0.03 * (1.0 - np.exp(-t / 0.03))  # time whose rate is the glided pitch
    out[:head] = sum(a * np.exp(-t / tau) * np.sin(2.0 * np.pi * hz * warped) for hz, a, tau in zip(freqs, amps, taus))
    if damp_at is not None:
        out *= np.exp(-np.maximum(np.arange(n) / sample_rate - damp_at, 0.0) / 0.08)
    return out


def _noise_burst(rng: Generator, n: int, tau: float, centre: float, q: float, sample_rate: int) -> np.ndarray:
    """Band-passed noise at ``centre`` Hz decaying with time constant ``tau`` s: ``(n,)``, zero after 8 tau."""
    m = min(n, int(8.0 * tau * sample_rate) + 1)
    burst = np.zeros(n)
    noise = _resonator(rng.standard_normal(m), min(centre, 0.4 * sample_rate), q, sample_rate)
    burst[:m] = noise * np.exp(-np.arange(m) / (tau * sample_rate))
    return burst


# --------------------------------------------------------------------------------------- the models


def _plucked_note(key: int, held: float, loud: float, sample_rate: int, voice: Voice, rng: Generator) -> np.ndarray:
    """One plucked string: ``(samples,)``, ringing while held (up to its decay), damped after."""
    f0 = _key_hz(key)
    period = sample_rate / f0
    t60 = float(np.clip(5.0 * voice.decay * (196.0 / f0) ** 0.5, 0.3, 10.0))
    n = int((min(held, 1.2 * t60) + 0.15) * sample_rate)
    gain = np.full(n, 10.0 ** (-3.0 / (f0 * t60)))
    gain[int(held * sample_rate):] = 10.0 ** (-3.0 / (f0 * 0.08))
    width = max(2, int(round(period)))
    pole = float(np.clip(0.85 - 0.8 * (0.5 * voice.brightness + 0.5 * loud), 0.0, 0.95)) ** (22050.0 / sample_rate)
    burst = lfilter([1.0 - pole], [1.0, -pole], rng.uniform(-1.0, 1.0, width))
    cut = max(1, int(round(voice.position * width)))
    burst = np.concatenate([burst, np.zeros(cut)]) - np.concatenate([np.zeros(cut), burst])  # pluck position
    drive = np.zeros(n)
    drive[:min(n, len(burst))] = (burst - burst.mean())[:n]
    return _string_loop(drive, np.full(n, period), gain, voice.brightness, sample_rate)


def _struck_note(key: int, held: float, loud: float, sample_rate: int, voice: Voice, rng: Generator) -> np.ndarray:
    """One piano key: two detuned stiff strings' modes and the hammer's thump, ``(samples,)``."""
    f0 = _key_hz(key)
    k = np.arange(1, 17)
    b = 1e-4 * (0.5 + 7.0 * voice.inharmonicity) * (f0 / 262.0)
    freqs = k * f0 * np.sqrt(1.0 + b * k ** 2)
    hammer_hz = 600.0 + 5000.0 * voice.brightness * loud
    amps = np.abs(np.sin(np.pi * k * voice.position)) / k / (1.0 + (freqs / hammer_hz) ** 2)
    tau1 = 2.0 * voice.decay * (262.0 / f0) ** 0.5
    taus = tau1 / (1.0 + freqs / 1500.0)
    ring = min(held, 5.0 * tau1)
    n = int((ring + 0.4) * sample_rate)
    twin = freqs * 2.0 ** (voice.detune / 1200.0)
    out = _modes(np.concatenate([freqs, twin]), np.concatenate([amps, amps]), np.concatenate([taus, 1.4 * taus]),
                 n, sample_rate, damp_at=ring)
    thump = _noise_burst(rng, n, 0.006, 300.0, 0.5, sample_rate)
    return out + 0.2 * loud * np.max(np.abs(out)) * thump / max(np.max(np.abs(thump)), 1e-9)


def _mallet_note(key: int, held: float, loud: float, sample_rate: int, voice: Voice, rng: Generator) -> np.ndarray:
    """One bell stroke: modes at the voice's bell ratios, harder mallets exciting more of them, ``(samples,)``."""
    f0 = _key_hz(key)
    ratios = np.array(_BELL_RATIOS)
    shifts = (0.5 + voice.inharmonicity) * np.array(voice.mode_shifts[:len(ratios)])
    ratios = ratios * np.where(ratios == 1.0, 1.0, 1.0 + shifts)  # the prime stays the key's pitch
    hardness = 1.5 + 5.0 * voice.brightness * loud
    amps = np.array(voice.mode_gains[:len(ratios)]) / (1.0 + (ratios / hardness) ** 2)
    tau1 = 2.5 * voice.decay
    taus = tau1 / ratios ** 0.7
    ring = min(held, 5.0 * tau1)
    n = int((ring + 0.5) * sample_rate)
    out = _modes(f0 * ratios, amps, taus, n, sample_rate, damp_at=ring + 0.1)
    click = _noise_burst(rng, n, 0.003, 3000.0 + 4000.0 * voice.brightness, 1.0, sample_rate)
    return out + 0.3 * np.max(np.abs(out)) * click / max(np.max(np.abs(click)), 1e-9)


def _membrane_note(key: int, held: float, loud: float, sample_rate: int, voice: Voice, rng: Generator) -> np.ndarray:
    """One drum hit (the note's length does not matter): membrane modes with a pitch glide, and a
    noise burst, snares ringing longer, ``(samples,)``."""
    f0 = _DRUM_HZ.get(key, _key_hz(key) / 2.0) * voice.tension
    freqs = f0 * np.array(_MEMBRANE_RATIOS)
    order = np.arange(len(freqs))
    stick_hz = 300.0 + 3000.0 * voice.brightness * loud
    amps = np.array(voice.mode_gains) / (1.0 + 0.4 * order) / (1.0 + (freqs / stick_hz) ** 2)
    tau1 = 2.0 * voice.decay * (100.0 / f0) ** 0.5
    n = int(min(6.0 * tau1 + 0.05, 3.0) * sample_rate)
    glide = (0.05 + 0.5 * voice.inharmonicity) * loud
    tone = _modes(freqs, amps, tau1 / (1.0 + 0.6 * order), n, sample_rate, glide=glide)
    snare = key in _SNARE_KEYS
    share, tau = (0.55 + 0.3 * voice.noise, 0.15 * voice.decay / 0.16) if snare else (0.35 * voice.noise, 0.012)
    burst = _noise_burst(rng, n, tau, 1200.0 + 5000.0 * voice.brightness, 0.7, sample_rate)
    return (1.0 - share) * tone / max(np.max(np.abs(tone)), 1e-9) + share * burst / max(np.max(np.abs(burst)), 1e-9)


def _bowed_note(key: int, held: float, loud: float, sample_rate: int, voice: Voice, rng: Generator) -> np.ndarray:
    """One bowed note: a sawtooth (Helmholtz motion) with vibrato and noise at each slip drives the
    string loop, which rings on after the bow lifts, ``(samples,)``."""
    f0 = _key_hz(key)
    free_t60 = 0.3 + 0.4 * voice.decay
    n = int((held + free_t60) * sample_rate)
    t = np.arange(n) / sample_rate
    freq = _vibrato(f0, t, voice)
    cycle = np.cumsum(freq / sample_rate) % 1.0
    step = freq / sample_rate
    saw = 2.0 * cycle - 1.0
    lo, hi = cycle < step, cycle > 1.0 - step  # polyBLEP: round the jumps off (band-limited)
    x = cycle[lo] / step[lo]
    saw[lo] -= 2.0 * x - x * x - 1.0
    x = (cycle[hi] - 1.0) / step[hi]
    saw[hi] -= x * x + 2.0 * x + 1.0
    slip_noise = rng.standard_normal(n) * np.exp(-6.0 * cycle)
    drive = _envelope(t, held, 0.015 + 0.04 * (1.0 - loud), 0.04) * (saw + 2.0 * voice.noise * slip_noise)
    gain = np.where(t < held, 10.0 ** (-3.0 / (f0 * 0.12)), 10.0 ** (-3.0 / (f0 * free_t60)))
    return _string_loop(drive, sample_rate / freq, gain, voice.brightness * (0.5 + 0.5 * loud), sample_rate)


def _blown_note(key: int, held: float, loud: float, sample_rate: int, voice: Voice, rng: Generator) -> np.ndarray:
    """One blown note: FM whose index follows the breath, breath noise and vibrato; an accordion's two
    reeds beat, ``(samples,)``."""
    f0 = _key_hz(key)
    ratio, index, reeds = voice.fm
    release = 0.03 + 0.05 * voice.decay
    n = int((held + 6.0 * release) * sample_rate)
    t = np.arange(n) / sample_rate
    env = _envelope(t, held, 0.015 + 0.04 * (1.0 - loud), release)
    phase = 2.0 * np.pi * np.cumsum(_vibrato(f0, t, voice)) / sample_rate
    depth = index * (0.3 + 0.7 * loud) * env
    tone = np.zeros(n)
    for reed in range(reeds):
        p = phase * 2.0 ** (6.0 * voice.detune * reed / 1200.0)
        tone += np.sin(p + depth * np.sin(ratio * p))
    breath = _resonator(rng.standard_normal(n), min(4.0 * f0, 0.4 * sample_rate), 0.8, sample_rate)
    return env * (tone / reeds + voice.noise * breath * (0.6 + 0.4 * np.sin(phase)))


_NOTE_MAKERS = {"plucked": _plucked_note, "struck": _struck_note, "mallet": _mallet_note,
                "membrane": _membrane_note, "bowed": _bowed_note, "blown": _blown_note}
