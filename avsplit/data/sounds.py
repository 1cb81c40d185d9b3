"""Sound styles for training sources: the same performance played by another maker of sound.

A sound network trained on a few renderers keys on how they sound: their sample sets' spectral
envelopes, their registers, how their notes swell and die away. Each function here reshapes one
source's window ``(samples,)`` float32 so that it sounds like another instrument maker while its
timing stays (the onsets that the picture moves with do not move), and keeps its RMS (levels are
drawn afterwards): :func:`random_timbre` (a smooth random equaliser, ``train --timbre-db``) and
:func:`resound` (one of :data:`SOUND_STYLES`, ``train --sound-styles``).
"""

from __future__ import annotations

import numpy as np

from avsplit.dsp.filters import rms, zero_phase_gain

__all__ = ["SOUND_STYLES", "random_timbre", "resound", "resonances", "pitch_shift", "drive", "dynamics", "detune"]

#: Band edges of the timbre equaliser: log-spaced nodes from this frequency up to Nyquist.
TIMBRE_LOW_HZ = 60.0
TIMBRE_NODES = 8


def _keep_rms(out: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """``out`` scaled to the RMS of ``wave``, as float32 (unscaled when ``out`` is silent)."""
    after = rms(out)
    if after > 0.0:
        out = out * (rms(wave) / after)
    return np.asarray(out, dtype=np.float32)


def random_timbre(wave: np.ndarray, sample_rate: int, max_db: float, rng: np.random.Generator) -> np.ndarray:
    """Filter ``wave`` ``(samples,)`` by a random smooth equaliser curve and keep its RMS.

    The curve's gains in dB are drawn uniformly in ``[-max_db, max_db]`` at ``TIMBRE_NODES`` log-spaced
    frequencies (``TIMBRE_LOW_HZ`` to Nyquist) plus a random tilt of up to ``max_db / 2`` dB per
    octave around 1 kHz, clipped to ``+-2 max_db``; it is interpolated linearly in log frequency
    and applied as a zero-phase filter. Different SoundFonts render the same instrument with
    different spectral envelopes; this teaches the model not to rely on one.
    """
    nyquist = sample_rate / 2.0
    nodes = np.log2(np.geomspace(TIMBRE_LOW_HZ, nyquist, TIMBRE_NODES))
    node_db = rng.uniform(-max_db, max_db, TIMBRE_NODES)
    tilt = rng.uniform(-max_db / 2.0, max_db / 2.0)

    def curve(freqs):
        log_f = np.log2(np.clip(freqs, TIMBRE_LOW_HZ, nyquist))
        return np.clip(np.interp(log_f, nodes, node_db) + tilt * (log_f - np.log2(1000.0)), -2.0 * max_db, 2.0 * max_db)

    return _keep_rms(zero_phase_gain(wave, sample_rate, curve), wave)


def resonances(wave: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Another body: 1-4 narrow resonances (formants) of +6..+18 dB, or now and then an antiresonance of
    -6..-18 dB, at random frequencies from 150 Hz to 0.8 Nyquist, each 0.08-0.5 octave wide."""
    count = int(rng.integers(1, 5))
    centres = rng.uniform(np.log2(150.0), np.log2(0.4 * sample_rate), count)
    gains = rng.uniform(6.0, 18.0, count) * np.where(rng.random(count) < 0.2, -1.0, 1.0)
    widths = rng.uniform(0.08, 0.5, count)

    def curve(freqs):
        log_f = np.log2(np.maximum(freqs, 20.0))[:, None]
        return (gains / (1.0 + ((log_f - centres) / widths) ** 2)).sum(axis=1)

    return _keep_rms(zero_phase_gain(wave, sample_rate, curve), wave)


def _stretch(wave: np.ndarray, analysis_hop: int, synthesis_hop: int, n_fft: int = 1024) -> np.ndarray:
    """Phase-vocoder time stretch of ``wave`` ``(samples,)`` by ``synthesis_hop / analysis_hop``: every
    bin's phase advances at the bin's measured frequency, magnitudes are kept. Attacks are smeared by at
    most half a window (46 ms at 11025 Hz)."""
    window = np.hanning(n_fft + 1)[:-1]
    padded = np.pad(wave.astype(np.float64), (n_fft // 2, n_fft // 2 + analysis_hop))
    count = 1 + (padded.shape[0] - n_fft) // analysis_hop
    index = np.arange(n_fft)[None, :] + analysis_hop * np.arange(count)[:, None]
    spectra = np.fft.rfft(padded[index] * window, axis=1)  # (frames, bins)
    expected = 2.0 * np.pi * analysis_hop * np.arange(n_fft // 2 + 1) / n_fft
    phase = np.angle(spectra)
    advance = np.diff(phase, axis=0) - expected
    advance = expected + np.angle(np.exp(1j * advance))  # wrapped to the bin's own frequency
    ratio = synthesis_hop / analysis_hop
    phase_out = np.concatenate([phase[:1], phase[:1] + np.cumsum(advance * ratio, axis=0)])
    frames = np.fft.irfft(np.abs(spectra) * np.exp(1j * phase_out), n_fft, axis=1) * window
    length = n_fft + synthesis_hop * (count - 1)
    placed = (np.arange(n_fft)[None, :] + synthesis_hop * np.arange(count)[:, None]).ravel()
    out = np.bincount(placed, weights=frames.ravel(), minlength=length)
    norm = np.bincount(placed, weights=np.tile(window**2, count), minlength=length)
    out /= np.maximum(norm, 1e-3 * norm.max())
    return out[n_fft // 2 :]


def pitch_shift(wave: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Another register, and with it another placement of the maker's samples: the pitch moved by 1-4
    semitones up or down, the duration (so every onset) kept (phase-vocoder stretch, then resampling)."""
    semitones = float(rng.uniform(1.0, 4.0)) * (1.0 if rng.random() < 0.5 else -1.0)
    analysis_hop = 128
    synthesis_hop = int(round(analysis_hop * 2.0 ** (semitones / 12.0)))
    ratio = synthesis_hop / analysis_hop  # the pitch factor actually applied
    n = wave.shape[-1]
    stretched = _stretch(wave, analysis_hop, synthesis_hop)
    if ratio > 1.0:  # read faster: band-limit first, so nothing folds over Nyquist
        spectrum = np.fft.rfft(stretched)
        spectrum[int(len(spectrum) / ratio) :] = 0.0
        stretched = np.fft.irfft(spectrum, stretched.shape[0])
    positions = np.arange(n) * ratio
    return _keep_rms(np.interp(positions, np.arange(stretched.shape[0]), stretched, right=0.0), wave)


def drive(wave: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A brighter, buzzier maker: soft saturation (tanh, drive 2-10 over the peak, sometimes biased for
    even harmonics), which adds overtones where the source already sounds."""
    peak = float(np.max(np.abs(wave)))
    if peak <= 0.0:
        return wave.astype(np.float32)
    gain = float(rng.uniform(2.0, 10.0))
    bias = float(rng.uniform(0.0, 0.3)) if rng.random() < 0.5 else 0.0
    out = np.tanh(gain * wave.astype(np.float64) / peak + bias) - np.tanh(bias)
    return _keep_rms(out - out.mean(), wave)


def dynamics(wave: np.ndarray, sample_rate: int, rng: np.random.Generator, frame: int = 256) -> np.ndarray:
    """Notes that swell and die away another way: the envelope (RMS over ``frame`` samples, smoothed)
    raised to a power, compressed (longer sustain, exponent -0.6..-0.2) or expanded (shorter,
    drier notes, 0.3..1.0); the gain is held within 20 dB so silences stay quiet."""
    n = wave.shape[-1]
    x = wave.astype(np.float64)
    frames = -(-n // frame)
    padded = np.pad(x, (0, frames * frame - n))
    envelope = np.sqrt(np.mean(padded.reshape(frames, frame) ** 2, axis=1))
    envelope = np.convolve(envelope, np.ones(3) / 3.0, mode="same")
    top = float(envelope.max())
    if top <= 0.0:
        return wave.astype(np.float32)
    exponent = float(rng.uniform(-0.6, -0.2)) if rng.random() < 0.5 else float(rng.uniform(0.3, 1.0))
    gain = np.clip((np.maximum(envelope, 1e-4 * top) / top) ** exponent, 0.0, 10.0)
    gain_per_sample = np.interp(np.arange(n), (np.arange(frames) + 0.5) * frame, gain)
    return _keep_rms(x * gain_per_sample, wave)


def detune(wave: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """An ensemble or a chorus: the source plus a copy 5-25 cents apart and 10-30 ms late, at 40-100%
    of its level (beating and a wider sound; onsets stay within 30 ms plus the drift)."""
    n = wave.shape[-1]
    cents = float(rng.uniform(5.0, 25.0)) * (1.0 if rng.random() < 0.5 else -1.0)
    delay = float(rng.uniform(0.010, 0.030)) * sample_rate
    positions = np.arange(n) * 2.0 ** (cents / 1200.0) - delay
    copy = np.interp(positions, np.arange(n), wave.astype(np.float64), left=0.0, right=0.0)
    return _keep_rms(wave + float(rng.uniform(0.4, 1.0)) * copy, wave)


_MAKE = {"resonances": resonances, "pitch": pitch_shift, "drive": drive, "dynamics": dynamics, "detune": detune}
#: Styles :func:`resound` draws from, equally likely.
SOUND_STYLES = tuple(_MAKE)


def resound(wave: np.ndarray, sample_rate: int, rng: np.random.Generator, probability: float) -> np.ndarray:
    """With ``probability``, ``wave`` ``(samples,)`` played in one of :data:`SOUND_STYLES` (chosen
    uniformly; same length and RMS); otherwise unchanged, and no random number is drawn at 0."""
    if probability <= 0 or rng.random() >= probability:
        return wave
    return _MAKE[SOUND_STYLES[int(rng.integers(len(SOUND_STYLES)))]](wave, sample_rate, rng)
