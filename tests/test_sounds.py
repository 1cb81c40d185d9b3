"""Sound styles of training sources (avsplit/data/sounds.py): another maker's sound, the timing kept."""

from __future__ import annotations

import numpy as np
import pytest

from avsplit.data import sounds
from avsplit.data.sounds import SOUND_STYLES, pitch_shift, random_timbre, resonances, resound

RATE = 11025


def _notes(seconds: float = 4.0, hz: float = 440.0, onsets=(0.5, 1.5, 2.6, 3.3)) -> np.ndarray:
    """Decaying tones with harmonics at ``onsets`` (s), silent before the first: float32 ``(samples,)``."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    wave = np.zeros(n)
    for onset in onsets:
        local = np.clip(t - onset, 0.0, None)
        tone = sum(np.sin(2 * np.pi * hz * k * local) / k for k in (1, 2, 3))
        wave += np.where(t >= onset, tone * np.exp(-local * 5.0), 0.0)
    return (0.1 * wave).astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def _attack_time(wave: np.ndarray, onset: float, frame: int = 64) -> float:
    """When the note played at ``onset`` (s) rises fastest: the frame whose energy has grown most over the
    three frames before it, from 0.2 s before the onset to 0.3 s after."""
    lo, hi = int((onset - 0.2) * RATE) // frame, int((onset + 0.3) * RATE) // frame
    frames = wave[lo * frame : hi * frame].astype(np.float64).reshape(-1, frame)
    energy = np.mean(frames**2, axis=1)
    return (lo + 3 + int(np.argmax(energy[3:] - energy[:-3]))) * frame / RATE


@pytest.mark.parametrize("style", SOUND_STYLES)
def test_every_sound_style_keeps_length_level_and_onsets(style):
    wave = _notes()
    out = sounds._MAKE[style](wave, RATE, np.random.default_rng(5))
    again = sounds._MAKE[style](wave, RATE, np.random.default_rng(5))
    np.testing.assert_array_equal(out, again)  # a pure function of the generator's state
    assert out.shape == wave.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert _rms(out) == pytest.approx(_rms(wave), rel=1e-3)
    assert np.max(np.abs(out - wave)) > 0.05 * np.max(np.abs(wave))  # it did change the sound
    # every note still starts where the picture shows it: within 60 ms (a detuned double comes up to 30 ms
    # late, the phase vocoder of a pitch shift smears an attack by up to half its 93-ms window)
    for onset in (0.5, 1.5, 2.6, 3.3):
        assert abs(_attack_time(out, onset) - _attack_time(wave, onset)) < 0.06, (style, onset)
    assert _rms(out[: int(0.45 * RATE)]) < 0.05 * _rms(out)  # the silence before the first note stays quiet


def test_pitch_shift_moves_every_partial_by_one_to_four_semitones():
    wave = _notes(hz=440.0)
    for seed in range(6):
        out = pitch_shift(wave, RATE, np.random.default_rng(seed))
        spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
        peak_hz = np.fft.rfftfreq(len(out), 1 / RATE)[spectrum.argmax()]
        semitones = abs(12 * np.log2(peak_hz / 440.0))
        assert 0.9 < semitones < 4.1, (seed, peak_hz)


def test_resonances_raise_narrow_bands_of_a_flat_spectrum():
    noise = np.random.default_rng(0).normal(0, 0.1, RATE * 2).astype(np.float32)
    out = resonances(noise, RATE, np.random.default_rng(1))
    ratio_db = 20 * np.log10(np.abs(np.fft.rfft(out)) / np.abs(np.fft.rfft(noise)))
    smooth = np.convolve(ratio_db, np.ones(51) / 51, mode="valid")
    assert smooth.max() - np.median(smooth) > 5.0 or np.median(smooth) - smooth.min() > 5.0


def test_resound_at_zero_leaves_the_wave_and_the_random_stream_alone():
    wave = _notes(seconds=1.0, onsets=(0.2,))
    rng, fresh = np.random.default_rng(9), np.random.default_rng(9)
    assert resound(wave, RATE, rng, 0.0) is wave
    assert rng.random() == fresh.random()
    changed = resound(wave, RATE, np.random.default_rng(9), 1.0)
    assert changed.shape == wave.shape and not np.array_equal(changed, wave)


def test_random_timbre_reshapes_the_spectrum_within_bounds():
    rate, n = 11025, 11025
    t = np.arange(n) / rate
    freqs = [110.0, 440.0, 1760.0, 4400.0]
    wave = sum(np.sin(2 * np.pi * f * t) for f in freqs).astype(np.float32)
    out = random_timbre(wave, rate, 6.0, np.random.default_rng(3))
    again = random_timbre(wave, rate, 6.0, np.random.default_rng(3))
    np.testing.assert_array_equal(out, again)  # a pure function of the generator's state
    assert out.dtype == np.float32 and out.shape == wave.shape
    assert np.sqrt(np.mean(out**2)) == pytest.approx(np.sqrt(np.mean(wave**2)), rel=1e-4)  # level kept

    def partial_levels(x):
        spectrum = np.abs(np.fft.rfft(x))
        return np.array([spectrum[int(round(f * n / rate))] for f in freqs])

    change_db = 20 * np.log10(partial_levels(out) / partial_levels(wave))
    relative = change_db - change_db.mean()
    assert np.ptp(relative) > 1.0  # the balance between the partials changed
    assert np.all(np.abs(change_db) < 4 * 6.0 + 1e-3)  # the curve's gain is bounded (+-2 max_db, then level kept)


@pytest.mark.parametrize("style", SOUND_STYLES)
def test_a_silent_window_stays_silent(style):
    out = sounds._MAKE[style](np.zeros(4000, np.float32), RATE, np.random.default_rng(0))
    assert out.shape == (4000,) and not np.any(out)
