"""avsplit.dsp.fullband: the model's masks mapped onto the original sound's STFT (pure functions)."""

import math

import numpy as np
import pytest
import torch

from avsplit.dsp.chunking import plan_windows, rescale_windows
from avsplit.config import AudioSettings
from avsplit.dsp.fullband import EXTENSION_RULES, extension_shares, fast_fft_size, map_masks, scaled_stft, separate_original

MODEL = AudioSettings()  # 11025 Hz, n_fft 1022, hop 256


def test_scaled_stft_keeps_the_resolution_in_seconds():
    same = scaled_stft(MODEL, 11025)
    assert (same.n_fft, same.win_length, same.hop_length, same.clip_samples) == (1022, 1022, 256, 65535)
    for rate in (22050, 44100, 48000, 8000):
        t = scaled_stft(MODEL, rate)
        assert t.win_length % 2 == 0 and t.win_length <= t.n_fft < 1.25 * t.win_length
        assert abs(t.hop_length / rate - MODEL.hop_length / MODEL.sample_rate) <= 0.5 / rate
        assert abs(t.win_length / rate - MODEL.n_fft / MODEL.sample_rate) <= 1.0 / rate
        assert t.clip_samples >= MODEL.clip_samples * rate / MODEL.sample_rate


def test_fast_fft_size():
    assert [fast_fft_size(n) for n in (1, 7, 1022, 4450, 4608, 4609)] == [1, 8, 1024, 4500, 4608, 4800]


def test_a_lowpass_mask_maps_to_the_bins_below_its_cutoff():
    """1 up to model bin k0 (f0 = k0 * 11025 / 1022 Hz), 0 above: at 48 kHz the bins up to f0 are 1,
    those a model bin above f0 and beyond (the extension too, since the top octave is 0) are 0."""
    k0 = 150
    f0 = k0 * MODEL.sample_rate / MODEL.n_fft
    masks = torch.zeros(1, 1, MODEL.n_freq, 20)
    masks[:, :, : k0 + 1] = 1.0
    target = scaled_stft(MODEL, 48000)
    power = torch.rand(1, MODEL.n_freq, 20)
    above = extension_shares(masks, power, "octave")
    out = map_masks(masks, above, MODEL, target, 22)[0, 0]  # (F', 22)
    assert out.shape == (target.n_freq, 22)
    hz = np.arange(target.n_freq) * target.sample_rate / target.n_fft
    step = MODEL.sample_rate / MODEL.n_fft
    assert torch.all(out[hz <= f0 - 1e-6] > 1 - 1e-6)
    assert torch.all(out[hz >= f0 + step + 1e-6] < 1e-6)
    between = out[(hz > f0) & (hz < f0 + step)]
    assert between.numel() and torch.all((between > 0) & (between < 1))


def test_time_is_mapped_by_seconds():
    """A mask that switches on at model frame 10 switches on at the target frame at the same time."""
    masks = torch.zeros(1, 1, MODEL.n_freq, 40)
    masks[..., 10:] = 1.0
    target = scaled_stft(MODEL, 44100)  # hop 1024: the same frame times as the model's
    out = map_masks(masks, masks[:, :, -1], MODEL, target, 40)[0, 0]
    assert torch.all(out[:, :10] < 1e-6) and torch.all(out[:, 10:] > 1 - 1e-6)
    target = scaled_stft(MODEL, 48000)  # hop 1115: 23.229 ms against 23.220 ms
    out = map_masks(masks, masks[:, :, -1], MODEL, target, 40)[0, 0]
    seconds = np.arange(40) * target.hop_length / target.sample_rate
    on = seconds >= 10 * MODEL.hop_length / MODEL.sample_rate
    assert torch.all(out[:, on] > 0.99) and torch.all(out[:, seconds <= 9 * MODEL.hop_length / MODEL.sample_rate] < 1e-6)


@pytest.mark.parametrize("rule", EXTENSION_RULES)
def test_shares_still_add_up_to_one_everywhere(rule):
    g = torch.Generator().manual_seed(0)
    raw = torch.rand(2, 3, MODEL.n_freq, 30, generator=g) ** 3
    masks = raw / raw.sum(1, keepdim=True)
    power = torch.rand(2, MODEL.n_freq, 30, generator=g)
    above = extension_shares(masks, power, rule)
    assert above.shape == (2, 3, 30)
    np.testing.assert_allclose(above.sum(1).numpy(), 1.0, atol=1e-5)
    out = map_masks(masks, above, MODEL, scaled_stft(MODEL, 48000), 31)
    np.testing.assert_allclose(out.sum(1).numpy(), 1.0, atol=1e-5)
    assert out.min() >= 0


def test_octave_rule_is_each_sources_share_of_the_top_octaves_power():
    masks = torch.zeros(1, 2, MODEL.n_freq, 1)
    power = torch.zeros(1, MODEL.n_freq, 1)
    top = (MODEL.n_freq - 1) // 2
    masks[0, 0, top + 10], masks[0, 1, top + 10] = 0.75, 0.25  # the only loud bin of the top octave
    masks[0, 0, top + 20], masks[0, 1, top + 20] = 0.0, 1.0  # a quiet one
    power[0, top + 10], power[0, top + 20] = 1.0, 1e-12
    share = extension_shares(masks, power, "octave")[0, :, 0]
    np.testing.assert_allclose(share.numpy(), [0.75, 0.25], atol=1e-3)
    with pytest.raises(ValueError, match="unknown extension rule"):
        extension_shares(masks, power, "magic")


def test_masks_of_one_reconstruct_the_original_at_its_rate_and_channels():
    """A source whose mask is 1 everywhere (and above the band) is the original, every channel."""
    target = scaled_stft(MODEL, 48000)
    rng = np.random.default_rng(1)
    original = torch.from_numpy(rng.standard_normal((1, 2, 12000)).astype(np.float32)) * 0.1
    masks = torch.ones(1, 1, MODEL.n_freq, 12)
    spec = torch.ones(1, MODEL.n_freq, 12, dtype=torch.complex64)
    out = separate_original(masks, spec, original, MODEL, target)
    assert out.shape == (1, 1, 2, 12000)
    np.testing.assert_allclose(out[0, 0].numpy(), original[0].numpy(), atol=1e-5)


def test_rescaled_windows_cover_the_signal_at_the_new_rate():
    total = 200_000
    windows = plan_windows(total, 65535, 0.25)
    out = rescale_windows(windows, 11025, 48000)
    new_total = round(total * 48000 / 11025)
    assert out[0].start == 0 and out[-1].start + out[-1].length == new_total
    size = scaled_stft(MODEL, 48000).clip_samples
    for a, b in zip(out, windows):
        assert a.length <= size and abs(a.start - b.start * 48000 / 11025) <= 0.5
    for a, b in zip(out, out[1:]):
        assert b.start < a.start + a.length  # still overlapping
    assert math.isclose(out[1].start / 48000, windows[1].start / 11025, abs_tol=1 / 48000)


def test_at_the_models_rate_it_is_the_models_own_masking():
    """--sr at the model's rate, mono: exactly what the model's apply_masks makes (the paper's output)."""
    from avsplit.dsp.transforms import Spectrogram

    settings = AudioSettings(sample_rate=8000, clip_samples=8191, n_fft=254, hop_length=64)
    g = torch.Generator().manual_seed(3)
    audio = torch.randn(2, 8191, generator=g) * 0.1
    spec = Spectrogram(settings).stft(audio)  # (2, F, T)
    masks = torch.rand(2, 3, settings.n_freq, spec.shape[-1], generator=g)
    masks = masks / masks.sum(1, keepdim=True)
    expected = Spectrogram(settings).istft(masks * spec[:, None], 8191)  # (2, 3, S)
    out = separate_original(masks, spec, audio[:, None], settings, scaled_stft(settings, 8000))  # (2, 3, 1, S)
    np.testing.assert_allclose(out[:, :, 0].numpy(), expected.numpy(), atol=1e-6)
