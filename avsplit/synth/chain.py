"""The recording chain of ``--variety full``: what happens to a source between the instrument
and the video's sound track.

Per source (applied to that source alone, so its clean WAV is exactly its part of the mixture):
rendering at another sample rate (16-48 kHz) then resampling to the video's rate, a random
equaliser, a room (a synthetic impulse response: exponentially decaying noise), soft compression.
Per video: background noise at 20-60 dB SNR (a separate component of the mixture, written as its
own WAV), the overall level over a 30 dB range, and the AAC bitrate (64-256 kb/s).

The chain's label in the truth lists the steps used, in this order:
``lowrate+eq+room+comp+noise+aac``; ``clean`` when none is.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from avsplit.dsp.filters import zero_phase_gain
from avsplit.dsp.resample import resample

__all__ = ["SOURCE_RATES", "CHAIN_STEPS", "random_source_chain", "random_video_chain", "apply_source_chain",
           "make_noise", "chain_label"]

SOURCE_RATES = (16000, 22050, 32000, 44100, 48000)
CHAIN_STEPS = ("lowrate", "eq", "room", "comp", "noise", "aac")
NOISE_KINDS = ("white", "pink", "brown", "hum")


def random_source_chain(rng: np.random.Generator) -> dict:
    """Random per-source chain settings (a JSON-able dict)."""
    chain: dict = {"source_rate": int(rng.choice(SOURCE_RATES))}
    if rng.random() < 0.6:
        n = int(rng.integers(2, 6))
        chain["eq"] = [[round(float(f), 1), round(float(g), 2), round(float(q), 2)] for f, g, q in zip(
            np.exp(rng.uniform(np.log(80.0), np.log(8000.0), n)), rng.uniform(-10.0, 10.0, n), rng.uniform(0.4, 2.0, n))]
    if rng.random() < 0.5:
        chain["room"] = {"rt60": round(float(rng.uniform(0.15, 1.6)), 3), "wet": round(float(rng.uniform(0.1, 0.6)), 3),
                         "predelay": round(float(rng.uniform(0.0, 0.03)), 4), "seed": int(rng.integers(1 << 31))}
    if rng.random() < 0.4:
        chain["comp"] = {"threshold_db": round(float(rng.uniform(-30.0, -10.0)), 1),
                         "ratio": round(float(rng.uniform(1.5, 5.0)), 2)}
    return chain


def random_video_chain(rng: np.random.Generator) -> dict:
    """Per-video settings: noise (or none), level of the mix, AAC bitrate."""
    chain: dict = {"level_db": round(float(rng.uniform(-45.0, -15.0)), 2),
                   "aac_kbps": int(rng.choice((64, 96, 128, 160, 192, 256)))}
    if rng.random() < 0.6:
        chain["noise"] = {"kind": str(rng.choice(NOISE_KINDS)), "snr_db": round(float(rng.uniform(20.0, 60.0)), 2),
                          "seed": int(rng.integers(1 << 31))}
    return chain


def chain_label(source_chain: dict | None, video_chain: dict | None, output_rate: int) -> str:
    """Short label such as ``eq+room+noise+aac`` (``clean`` when the chain is off)."""
    if source_chain is None and video_chain is None:
        return "clean"
    used = set()
    if source_chain:
        if source_chain.get("source_rate", output_rate) < output_rate:
            used.add("lowrate")
        used.update(k for k in ("eq", "room", "comp") if k in source_chain)
    if video_chain:
        used.update(k for k in ("noise",) if k in video_chain)
        used.add("aac")
    return "+".join(s for s in CHAIN_STEPS if s in used) or "clean"


def _equalise(audio: np.ndarray, rate: int, bands: list) -> np.ndarray:
    """Peaking bands ``[centre Hz, gain dB, width in octaves]`` as a smooth gain over frequency."""
    def gain_db(freqs):
        octaves = np.log2(np.maximum(freqs, 10.0))
        total = np.zeros_like(freqs)
        for centre, gain, width in bands:
            total += gain * np.exp(-0.5 * ((octaves - np.log2(centre)) / (width / 2.355)) ** 2)
        return total

    return zero_phase_gain(audio, rate, gain_db)


def _room(audio: np.ndarray, rate: int, room: dict) -> np.ndarray:
    """Dry signal plus its convolution with exponentially decaying, slightly low-passed noise."""
    rng = np.random.default_rng(room["seed"])
    n = max(8, int(room["rt60"] * rate))
    t = np.arange(n) / rate
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / room["rt60"])  # -60 dB at rt60
    ir = np.convolve(ir, np.ones(3) / 3, mode="same")
    ir = np.concatenate([np.zeros(int(room["predelay"] * rate)), ir])
    ir /= np.sqrt(np.sum(ir ** 2)) + 1e-12
    wet = fftconvolve(audio, ir)[: len(audio)]
    dry_rms, wet_rms = np.sqrt(np.mean(audio ** 2)) + 1e-12, np.sqrt(np.mean(wet ** 2)) + 1e-12
    return (1.0 - room["wet"]) * audio + room["wet"] * wet * (dry_rms / wet_rms)


def _compress(audio: np.ndarray, rate: int, comp: dict) -> np.ndarray:
    """Soft feed-forward compression on a 20 ms RMS envelope, relative to the signal's peak RMS."""
    width = max(1, int(0.02 * rate))
    power = np.convolve(audio ** 2, np.ones(width) / width, mode="same")
    env_db = 10 * np.log10(np.maximum(power, 1e-12) / max(float(power.max()), 1e-12))
    over = np.maximum(0.0, env_db - comp["threshold_db"])
    gain_db = -over * (1.0 - 1.0 / comp["ratio"])
    return audio * 10 ** (gain_db / 20.0)


def apply_source_chain(render, chain: dict | None, output_rate: int, n_samples: int) -> np.ndarray:
    """Render a source through its chain. ``render(rate, n)`` gives the raw float32 audio at
    ``rate``; the result is ``(n_samples,)`` float32 at ``output_rate``."""
    if not chain:
        return render(output_rate, n_samples)
    rate = int(chain.get("source_rate", output_rate))
    if rate != output_rate:
        raw = render(rate, int(np.ceil(n_samples * rate / output_rate)) + 16)
        audio = resample(raw, rate, output_rate).astype(np.float64)
    else:
        audio = render(output_rate, n_samples).astype(np.float64)
    audio = np.pad(audio, (0, max(0, n_samples - len(audio))))[:n_samples]
    if "eq" in chain:
        audio = _equalise(audio, output_rate, chain["eq"])
    if "room" in chain:
        audio = _room(audio, output_rate, chain["room"])
    if "comp" in chain:
        audio = _compress(audio, output_rate, chain["comp"])
    return audio.astype(np.float32)


def make_noise(noise: dict, signal_rms: float, rate: int, n_samples: int) -> np.ndarray:
    """Background noise of ``noise["kind"]`` at ``snr_db`` below ``signal_rms``; float32."""
    rng = np.random.default_rng(noise["seed"])
    kind = noise["kind"]
    if kind == "hum":
        t = np.arange(n_samples) / rate
        base = float(rng.choice((50.0, 60.0)))
        x = sum(np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3, 5))
        x = x + 0.3 * rng.standard_normal(n_samples)
    else:
        spec = np.fft.rfft(rng.standard_normal(n_samples))
        f = np.maximum(np.fft.rfftfreq(n_samples, 1.0 / rate), 20.0)
        slope = {"white": 0.0, "pink": 0.5, "brown": 1.0}[kind]
        x = np.fft.irfft(spec / f ** slope, n=n_samples)
    x = x / (np.sqrt(np.mean(x ** 2)) + 1e-12)
    return (x * signal_rms * 10 ** (-noise["snr_db"] / 20.0)).astype(np.float32)
