"""``avsplit blend``: weight-space interpolation of two checkpoints of one architecture."""

import pytest
import torch
from typer.testing import CliRunner

from avsplit.cli import app
from avsplit.errors import CheckpointError, ConfigError
from avsplit.models import build_model, preset
from avsplit.models.averaging import blend_checkpoints, interpolate_state
from avsplit.models.checkpoint import load_checkpoint, read_metadata, save_checkpoint


def _pair(tmp_path, name="tiny"):
    """Two seeded models of one preset, saved: ``(path_a, path_b, model_a, model_b)``."""
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build_model(preset(name)).eval()
        # batch-norm statistics differ too, as after fine-tuning
        for buffer_name, buffer in model.named_buffers():
            if buffer.is_floating_point():
                buffer.add_(torch.rand_like(buffer))
            else:
                buffer.fill_(10 * (seed + 1))
        models.append(model)
    paths = [save_checkpoint(tmp_path / f"{tag}.safetensors", m) for tag, m in zip("ab", models)]
    return paths[0], paths[1], models[0], models[1]


def test_interpolation_ends_and_middle(tmp_path):
    path_a, path_b, model_a, model_b = _pair(tmp_path)
    sa, sb = model_a.state_dict(), model_b.state_dict()
    for weight, want in ((0.0, sa), (1.0, sb)):
        got = interpolate_state(sa, sb, weight)
        assert all(torch.equal(got[k], want[k]) for k in sa)
    mid = interpolate_state(sa, sb, 0.25)
    floats = [k for k in sa if sa[k].is_floating_point()]
    counters = [k for k in sa if not sa[k].is_floating_point()]
    assert floats and counters
    for k in floats:
        assert torch.allclose(mid[k], 0.75 * sa[k] + 0.25 * sb[k], atol=1e-6)
        assert not torch.equal(mid[k], sa[k]) or torch.equal(sa[k], sb[k])
    assert all(torch.equal(mid[k], sa[k]) for k in counters)  # the nearer end's counters
    assert all(torch.equal(interpolate_state(sa, sb, 0.75)[k], sb[k]) for k in counters)
    with pytest.raises(ConfigError, match="outside"):
        interpolate_state(sa, sb, 1.5)


def test_blend_writes_a_loadable_self_describing_checkpoint(tmp_path):
    path_a, path_b, model_a, model_b = _pair(tmp_path)
    out = blend_checkpoints(path_a, path_b, 0.4, tmp_path / "out" / "blend.safetensors")
    blended, meta = load_checkpoint(out)
    assert blended.config == model_a.config
    info = meta["training"]["blend"]
    assert info["weight"] == 0.4 and info["a"] == str(path_a) and len(info["b_sha256"]) == 64
    key = next(k for k, v in model_a.state_dict().items() if v.is_floating_point() and v.numel() > 1)
    want = 0.6 * model_a.state_dict()[key] + 0.4 * model_b.state_dict()[key]
    assert torch.allclose(blended.state_dict()[key], want, atol=1e-6)
    mix = torch.randn(1, blended.config.audio.clip_samples)
    v = blended.config.video
    frames = torch.randn(1, 2, v.num_frames, 3, v.crop_size, v.crop_size)
    with torch.no_grad():
        assert torch.isfinite(blended(mix, frames)).all()
    assert not list(out.parent.glob(".*part*"))  # no temporary left


def test_blend_refuses_other_architectures_and_bad_paths(tmp_path):
    path_a, _, _, _ = _pair(tmp_path)
    torch.manual_seed(0)
    other = save_checkpoint(tmp_path / "motion.safetensors", build_model(preset("tiny-motion")).eval())
    with pytest.raises(CheckpointError, match="another model config"):
        blend_checkpoints(path_a, other, 0.5, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()
    with pytest.raises(CheckpointError, match="neither a checkpoint file"):
        blend_checkpoints(path_a, tmp_path / "missing.safetensors", 0.5, tmp_path / "x.safetensors")


def test_blend_cli(tmp_path):
    path_a, path_b, _, _ = _pair(tmp_path)
    out = tmp_path / "cli.safetensors"
    result = CliRunner().invoke(app, ["blend", str(path_a), str(path_b), "-o", str(out), "--weight", "0.3"])
    assert result.exit_code == 0, result.output
    assert read_metadata(out)["training"]["blend"]["weight"] == 0.3
    result = CliRunner().invoke(app, ["blend", str(path_a), str(tmp_path / "nope.safetensors"), "-o", str(out)])
    assert result.exit_code == 1
    assert "nope.safetensors" in result.output and "Traceback" not in result.output
