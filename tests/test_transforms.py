import math

import pytest
import torch

from avsplit.config import AudioSettings
from avsplit.dsp.transforms import (
    LogFrequencyWarp,
    Spectrogram,
    ideal_binary_mask,
    ideal_ratio_mask,
    loss_weight,
)

SETTINGS = AudioSettings()


def test_stft_shapes_at_paper_settings():
    spec = Spectrogram(SETTINGS).stft(torch.randn(2, SETTINGS.clip_samples))
    assert spec.shape == (2, 512, 256)
    assert spec.is_complex()


def test_stft_round_trip_relative_error_below_1e5():
    torch.manual_seed(0)
    audio = torch.randn(3, SETTINGS.clip_samples) * 0.1
    transform = Spectrogram(SETTINGS)
    back = transform.istft(transform.stft(audio), SETTINGS.clip_samples)
    rel = (back - audio).norm() / audio.norm()
    assert rel < 1e-5


def test_warp_shapes_and_unwarp_of_smooth_spectrogram_is_near_identity():
    warp = LogFrequencyWarp(512, 256)
    f = torch.arange(512, dtype=torch.float32)[:, None]
    t = torch.arange(256, dtype=torch.float32)[None, :]
    # Smooth along frequency (on the log axis too): a slow function of log-frequency and time.
    smooth = torch.cos(torch.log1p(f) * 0.8) * torch.sin(t / 40.0) + 2.0
    x = smooth.expand(2, 3, 512, 256)
    warped = warp.warp(x)
    assert warped.shape == (2, 3, 256, 256)
    back = warp.unwarp(warped)
    assert back.shape == x.shape
    rel = ((back - x).norm() / x.norm()).item()
    assert rel < 0.01


def test_warp_samples_low_frequencies_densely():
    warp = LogFrequencyWarp(512, 256)
    pos = warp.linear_positions
    assert pos[0].item() == pytest.approx(1.0)
    assert pos[-1].item() == pytest.approx(511.0)
    # more than half of the warped rows describe the lowest eighth of the spectrum
    assert (pos < 64).sum().item() > 128


def test_warp_rejects_wrong_height():
    with pytest.raises(ValueError):
        LogFrequencyWarp(512, 256).warp(torch.zeros(1, 100, 10))


def test_ideal_masks():
    mix = torch.tensor([[[1.0, 2.0], [4.0, 0.0]]])  # (1, 2, 2)
    sources = torch.tensor([[[[0.9, 0.5], [1.0, 0.0]], [[0.1, 1.5], [3.0, 0.0]]]])  # (1, 2, 2, 2)
    ibm = ideal_binary_mask(sources, mix)
    assert ibm.tolist() == [[[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]]]
    irm = ideal_ratio_mask(sources, mix)
    assert irm[0, 0, 0, 0].item() == pytest.approx(0.9)
    assert irm[0, 1, 0, 1].item() == pytest.approx(0.75)
    assert torch.isfinite(irm).all() and irm.max() <= 5.0


def test_loss_weight_is_clamped_log1p():
    w = loss_weight(torch.tensor([0.0, math.e - 1, 1e9]))
    assert w.tolist() == pytest.approx([1e-3, 1.0, 10.0])
