"""Full-band stems: masks the model makes at its own rate, applied to the original sound.

The model listens at its own rate (11025 Hz mono for the shipped models) and predicts, per
source, a mask on its own STFT grid: ``F = n_fft // 2 + 1`` linear-frequency bins up to its Nyquist
frequency and ``T`` frames ``hop / rate`` seconds apart. The stems are made instead on an STFT of
the original audio at the output rate (the input's own, or ``--sr``), of every channel, with the
same time resolution in seconds (window and hop scaled by the rate ratio: :func:`scaled_stft`).
Each mask is mapped onto that grid by frequency in Hz and time in seconds (linear interpolation:
:func:`map_masks`); above the model's band, where it heard nothing, each source gets a share
given by an extension rule (:func:`extension_shares`), the same for every bin above, per frame.

The masks are shares: in every bin they add up, over the sources, to at most 1 (exactly 1 for
two or more sources), and interpolation with common weights and the rules below keep that, so
what the stems leave is the residual's share. Everything here is a pure function of tensors.

Extension rules (``benchmarks/fullband_sdr.py`` measures them; README, "Full-band tracks"):

- ``octave``: a source's share of the mixture's power in the top octave the model hears (from
  a quarter of its rate to its Nyquist frequency), per frame. Overtones above the band follow the
  instrument whose overtones fill the band's top; weighting by power lets the loud bins decide.
- ``edge``: the mean of the source's mask over the top third-octave of the band, per frame,
  unweighted (the mask held flat from the band's edge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from avsplit.config import AudioSettings
from avsplit.dsp.transforms import Spectrogram

EXTENSION_RULES = ("octave", "edge")
#: The rule used by ``separate``. On synthetic 48 kHz duets (``benchmarks/fullband_sdr.py``) the two
#: rules tie with one SoundFont (TimGM6mb: SDR above 5 kHz 4.34 / 4.35 dB) and ``octave`` is better
#: with another (FluidR3: 3.05 / 2.84 dB; above 6 kHz 2.75 / 2.32 dB).
DEFAULT_EXTENSION = "octave"
#: Floor added to the mixture power when weighting bins, so a silent band falls back to the plain mean.
POWER_FLOOR = 1e-10


@dataclass(frozen=True)
class OutputStft:
    """The STFT the stems are made on, at the output rate: a Hann window of ``win_length`` samples
    every ``hop_length``, in frames of ``n_fft`` samples (bins ``sample_rate / n_fft`` Hz apart);
    ``clip_samples`` holds one model window."""

    sample_rate: int
    clip_samples: int
    n_fft: int
    win_length: int
    hop_length: int

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def spectrogram(self) -> Spectrogram:
        settings = AudioSettings(self.sample_rate, self.clip_samples, self.n_fft, self.hop_length)
        return Spectrogram(settings, win_length=self.win_length)


def fast_fft_size(n: int) -> int:
    """The smallest ``2^a 3^b 5^c`` at least ``n`` (FFTs of such sizes are several times faster)."""
    best = 1 << max(0, int(n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            size = p35
            while size < n:
                size *= 2
            best = min(best, size)
            p35 *= 3
        p5 *= 5
    return best


def scaled_stft(model: AudioSettings, rate: int) -> OutputStft:
    """The model's STFT carried to ``rate`` with the same resolution in seconds.

    Window and hop are scaled by ``rate / model.sample_rate`` (the window rounded to an even
    length), frames padded to a fast FFT size, and ``clip_samples`` becomes the length that holds
    one model window at ``rate`` (rounded up). At the model's own rate it is the model's STFT.
    """
    rate = int(rate)
    if rate == model.sample_rate:
        return OutputStft(rate, model.clip_samples, model.n_fft, model.n_fft, model.hop_length)
    ratio = rate / model.sample_rate
    window = max(2, 2 * int(round(model.n_fft * ratio / 2)))
    return OutputStft(rate, int(math.ceil(model.clip_samples * ratio - 1e-9)), fast_fft_size(window), window,
                      max(1, int(round(model.hop_length * ratio))))


def linear_weights(positions: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linear interpolation of a grid of ``size`` points at fractional ``positions`` ``(n,)``,
    clamped to ``[0, size - 1]``: ``(lo, hi, frac)``, each ``(n,)``; the value is
    ``x[lo] * (1 - frac) + x[hi] * frac``."""
    pos = positions.to(torch.float64).clamp(0.0, size - 1)
    lo = pos.floor().long().clamp(max=size - 1)
    hi = (lo + 1).clamp(max=size - 1)
    return lo, hi, (pos - lo).clamp(0.0, 1.0)


def _interp(x: torch.Tensor, dim: int, lo: torch.Tensor, hi: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    """Gather ``x`` along ``dim`` at ``lo``/``hi`` and blend by ``frac`` (all ``(n,)``)."""
    shape = [1] * x.ndim
    shape[dim] = -1
    f = frac.to(x.dtype).view(shape)
    return x.index_select(dim, lo) * (1 - f) + x.index_select(dim, hi) * f


def extension_shares(masks: torch.Tensor, mixture_power: torch.Tensor, rule: str = DEFAULT_EXTENSION) -> torch.Tensor:
    """Each source's share above the model's band, per frame (see the module doc for the rules).

    ``masks``: ``(B, N, F, T)`` on the model's linear-frequency grid (bin ``F - 1`` at its Nyquist
    frequency); ``mixture_power``: ``(B, F, T)``, the mixture's power on the same grid.
    Returns ``(B, N, T)``; summed over sources it is at most the largest per-bin sum of the masks.
    """
    n_freq = masks.shape[-2]
    if rule == "octave":
        lo = (n_freq - 1) // 2
        weights = mixture_power[:, None, lo:] + POWER_FLOOR  # (B, 1, f, T)
    elif rule == "edge":
        lo = int(math.floor((n_freq - 1) / 2 ** (1 / 3)))
        weights = torch.ones_like(masks[:, :1, lo:])
    else:
        raise ValueError(f"unknown extension rule {rule!r}; known: {', '.join(EXTENSION_RULES)}")
    return (masks[:, :, lo:] * weights).sum(-2) / weights.sum(-2)


def map_masks(masks: torch.Tensor, above: torch.Tensor, model: AudioSettings, target: OutputStft,
              frames: int) -> torch.Tensor:
    """Masks on the model's grid -> masks on the target STFT's grid.

    ``masks``: ``(B, N, F, T)`` at ``model`` (linear frequency, ``F = model.n_freq``);
    ``above``: ``(B, N, T)``, the value for every target bin above the model's Nyquist frequency
    (:func:`extension_shares`). Target bin ``k`` (``k * target.sample_rate / target.n_fft`` Hz) and
    frame ``j`` (``j * target.hop_length / target.sample_rate`` s) read the model's masks at the
    same frequency and time, interpolated linearly (held at the edges in time). Returns
    ``(B, N, target.n_freq, frames)``.
    """
    n_freq, n_time = masks.shape[-2:]
    device = masks.device
    seconds = torch.arange(frames, device=device, dtype=torch.float64) * target.hop_length / target.sample_rate
    t_lo, t_hi, t_frac = linear_weights(seconds * model.sample_rate / model.hop_length, n_time)
    stacked = torch.cat([masks, above.unsqueeze(-2)], dim=-2)  # (B, N, F + 1, T): row F is "above"
    timed = _interp(stacked, -1, t_lo, t_hi, t_frac)  # (B, N, F + 1, frames)
    hz = torch.arange(target.n_freq, device=device, dtype=torch.float64) * target.sample_rate / target.n_fft
    f_lo, f_hi, f_frac = linear_weights(hz * model.n_fft / model.sample_rate, n_freq)
    outside = hz > model.sample_rate / 2 * (1 + 1e-9)
    f_lo, f_hi = f_lo.masked_fill(outside, n_freq), f_hi.masked_fill(outside, n_freq)
    return _interp(timed, -2, f_lo, f_hi, f_frac.masked_fill(outside, 0.0))


def separate_original(masks: torch.Tensor, mixture_spec: torch.Tensor, original: torch.Tensor, model: AudioSettings,
                      target: OutputStft, rule: str = DEFAULT_EXTENSION) -> torch.Tensor:
    """Apply the model's masks to the original sound of a batch of windows.

    ``masks``: ``(B, N, F, T)`` on the model's linear-frequency grid (shares, as the model makes
    them); ``mixture_spec``: the model's complex STFT of the mixture ``(B, F, T)`` (its power
    weights the ``octave`` rule); ``original``: ``(B, C, S)`` float at ``target.sample_rate``.
    Returns ``(B, N, C, S)``: per source and channel, the inverse STFT (at ``target``) of the mapped
    mask times the original's STFT (the original's phase). One window at a time, so memory is
    that of one window's ``N x C`` spectrograms.
    """
    spectrogram = target.spectrogram()
    above = extension_shares(masks, mixture_spec.abs().square(), rule)
    length = original.shape[-1]
    out = []
    for b in range(original.shape[0]):
        spec = spectrogram.stft(original[b])  # (C, F', T')
        mapped = map_masks(masks[b : b + 1], above[b : b + 1], model, target, spec.shape[-1])[0]  # (N, F', T')
        out.append(spectrogram.istft(mapped[:, None].to(spec.real.dtype) * spec[None], length))  # (N, C, S)
    return torch.stack(out)
