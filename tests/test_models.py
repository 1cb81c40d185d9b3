import pytest
import torch

from avsplit.errors import CheckpointError, ConfigError
from avsplit.models import build_model, preset
from avsplit.models.appearance import AppearanceNet, build_resnet18
from avsplit.models.audio_unet import AudioUNet
from avsplit.models.config import AppearanceConfig, AudioNetConfig
from avsplit.models.synthesizer import Synthesizer


def test_appearance_net_output_stride_16_with_dilated_last_stage():
    net = AppearanceNet(8, AppearanceConfig(depth=4)).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 3, 64, 96))  # (batch, frames, 3, H, W)
    assert out.shape == (2, 8, 4, 6)
    assert net.stages[3][1].conv1.dilation == (2, 2)


def test_audio_unet_shapes():
    net = AudioUNet(6, AudioNetConfig(levels=4, base_channels=4)).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 1, 64, 32)).shape == (2, 6, 64, 32)


def test_synthesizer_pooled_and_pixelwise_agree():
    synth = Synthesizer(4)
    with torch.no_grad():
        synth.scale.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
        synth.bias.fill_(0.3)
    audio = torch.randn(1, 4, 8, 5)
    visual = torch.randn(1, 4, 2, 3)
    pix = synth.pixelwise(visual, audio)  # (1, 2, 3, 8, 5)
    pooled = synth(visual[:, :, 1, 2][:, None], audio)  # the vector of pixel (1, 2)
    assert torch.allclose(pix[:, 1, 2], pooled[:, 0], atol=1e-6)
    manual = (visual[0, :, 1, 2] * synth.scale)[:, None, None].mul(audio[0]).sum(0) + 0.3
    assert torch.allclose(pooled[0, 0], manual, atol=1e-5)


def test_backbone_weights_from_local_file(tmp_path):
    from torchvision.models import resnet18

    reference = resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    loaded = build_resnet18(str(tmp_path / "r18.pth"))
    assert torch.equal(loaded.conv1.weight, reference.conv1.weight)
    cfg = preset("tiny")
    cfg = cfg.replace(appearance=AppearanceConfig(depth=2, backbone_weights=str(tmp_path / "r18.pth")))
    model = build_model(cfg)
    assert torch.equal(model.appearance.stem[0].weight, reference.conv1.weight)
    with pytest.raises(CheckpointError, match="not found"):
        build_resnet18(str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot read"):
        build_resnet18(str(tmp_path / "junk.pth"))


def test_presets_and_invalid_configs():
    sop = preset("sop")
    assert (sop.audio.sample_rate, sop.audio.clip_samples, sop.audio.n_fft, sop.audio.hop_length) == (11025, 65535, 1022, 256)
    assert (sop.audio.log_freq_bins, sop.channels, sop.audio_net.levels, sop.audio_net.base_channels) == (256, 32, 7, 64)
    assert (sop.video.crop_size, sop.video.num_frames) == (224, 3)
    with pytest.raises(ConfigError):
        preset("nope")
    with pytest.raises(ConfigError):
        preset("tiny", mask="softmax")


def test_model_forward_tiny():
    model = build_model(preset("tiny")).eval()
    cfg = model.config
    with torch.no_grad():
        out = model(torch.randn(2, cfg.audio.clip_samples), torch.randn(2, 3, cfg.video.num_frames, 3, 64, 80))
    assert out.shape == (2, 3, cfg.audio.clip_samples)


def test_source_masks_share_out_the_mixture():
    import torch

    from avsplit.models import build_model, preset
    from avsplit.models.separator import MASK_SUM_FLOOR

    model = build_model(preset("tiny"))
    # 2 sources; bins: both claim, neither claims (but one more than the other), one claims, silence
    logits = torch.tensor([[[[4.0, -4.0, 6.0, -30.0]], [[4.0, -5.0, -6.0, -30.0]]]])
    masks = model.source_masks(logits)
    assert masks.shape == (1, 2, 1, 4)
    torch.testing.assert_close(masks.sum(dim=1)[0, 0, :3], torch.ones(3))  # the tracks add up to the mixture
    torch.testing.assert_close(masks[0, :, 0, 0], torch.full((2,), 0.5))  # shared out
    p = torch.sigmoid(torch.tensor([-4.0, -5.0])) ** 2
    torch.testing.assert_close(masks[0, :, 0, 1], p / p.sum())  # in proportion to the squares (Wiener)
    assert masks[0, 0, 0, 2] > 0.99  # a sure source keeps the bin
    assert masks[0, :, 0, 3].sum() <= 2 * torch.sigmoid(torch.tensor(-30.0)) ** 2 / MASK_SUM_FLOOR**2 + 1e-6  # silence stays silent
    torch.testing.assert_close(model.source_masks(logits[:, :1]), torch.sigmoid(logits[:, :1]))  # one source


def test_channels_last_changes_layout_not_results():
    from avsplit.models import use_channels_last

    torch.manual_seed(0)
    model = build_model(preset("tiny-motion")).eval()
    cfg = model.config
    frames = torch.randn(2, len(cfg.appearance_frame_indices()), 3, cfg.video.crop_size, cfg.video.crop_size)
    steps = cfg.frames_per_window - 1
    size = cfg.video.crop_size // cfg.motion.flow_scale
    flow = torch.randn(2, steps, 2, size, size)
    warped = torch.rand(2, 1, cfg.audio.log_freq_bins, 64)
    with torch.no_grad():
        before = model.mask_logits(model.visual_features(frames, flow)[:, None].amax(dim=(-2, -1)), model.audio_features(warped))
        use_channels_last(model)
        convs = [p for p in model.parameters() if p.dim() == 4]
        assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
        after = model.mask_logits(model.visual_features(frames, flow)[:, None].amax(dim=(-2, -1)), model.audio_features(warped))
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)


def test_mask_refiner_starts_as_identity_and_treats_sources_alike():
    """A new refiner changes nothing (its output layer is zero); once trained it corrects each source
    from all of them, with the same weights for every source: swapping sources swaps its outputs."""
    from avsplit.models.refiner import MaskRefiner

    torch.manual_seed(0)
    refiner = MaskRefiner(4, visual_channels=3)
    logits = torch.randn(2, 3, 16, 12) * 3
    log_mix = torch.randn(2, 1, 16, 12)
    visual = torch.rand(2, 3, 5, 3)  # (batch, sources, steps, K)
    torch.testing.assert_close(refiner(logits, log_mix, visual), logits)
    torch.nn.init.normal_(refiner.out.weight)
    out = refiner(logits, log_mix, visual)
    assert not torch.allclose(out, logits)
    order = [2, 0, 1]
    torch.testing.assert_close(refiner(logits[:, order], log_mix, visual[:, order]), out[:, order])
    assert refiner(logits, log_mix, visual[:, :, 0]).shape == logits.shape  # pooled (per-clip) vectors too


def test_model_with_refiner_builds_saves_and_loads(tmp_path):
    from avsplit.models.checkpoint import load_checkpoint, save_checkpoint

    import dataclasses

    motion = preset("tiny-motion")
    film = motion.replace(motion=dataclasses.replace(motion.motion, fusion="film"))
    for name, cfg in (("tiny", preset("tiny")), ("tiny-motion", motion), ("film", film)):
        assert build_model(cfg).refiner is None
        cfg = cfg.replace(refiner=4)
        model = build_model(cfg).eval()
        torch.nn.init.normal_(model.refiner.out.weight)
        # the synthesizer head's audio features reach the refiner; a FiLM head has none to give
        assert model.refiner.audio_channels == (0 if name == "film" else cfg.channels)
        frames = torch.randn(1, 2, cfg.frames_per_window if cfg.motion else cfg.video.num_frames, 3,
                             cfg.video.crop_size, cfg.video.crop_size)
        flow = None
        if cfg.motion:
            side = cfg.video.crop_size // cfg.motion.flow_scale
            flow = torch.randn(1, 2, cfg.frames_per_window - 1, 2, side, side)
        with torch.no_grad():
            out = model(torch.randn(1, cfg.audio.clip_samples), frames, flow)
        assert out.shape == (1, 2, cfg.audio.clip_samples) and torch.isfinite(out).all()
        path = tmp_path / f"{name}.safetensors"
        save_checkpoint(path, model, {})
        loaded, _ = load_checkpoint(path)
        assert loaded.config.refiner == 4
        for key, value in model.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[key], value, msg=key)
    with pytest.raises(ConfigError, match="binary"):
        preset("tiny", refiner=4, mask="ratio")
    with pytest.raises(ConfigError, match="refiner"):
        preset("tiny", refiner=-1)
