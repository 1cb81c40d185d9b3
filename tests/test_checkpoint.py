import json

import pytest
import torch

from avsplit.models.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from avsplit.errors import CheckpointError
from avsplit.models import build_model, preset


def test_round_trip_rebuilds_same_model(tmp_path):
    torch.manual_seed(0)
    model = build_model(preset("tiny", mask="ratio")).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, {"steps": 3})
    loaded, meta = load_checkpoint(path)
    assert loaded.config == model.config
    assert meta["training"] == {"steps": 3}
    assert "torch" in meta["versions"]
    mix = torch.randn(1, model.config.audio.clip_samples)
    v = model.config.video
    frames = torch.randn(1, 2, v.num_frames, 3, v.crop_size, v.crop_size)
    with torch.no_grad():
        assert torch.allclose(model(mix, frames), loaded(mix, frames), atol=1e-6)


def test_missing_corrupt_and_foreign_files_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(bad)
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="without avsplit metadata"):
        read_metadata(plain)


def test_weights_from_another_config_are_rejected(tmp_path):
    model = build_model(preset("tiny"))
    path = save_checkpoint(tmp_path / "m.safetensors", model)
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["avsplit"])
    meta["config"]["channels"] = 8  # config says 8 channels, weights have 4
    save_file(load_file(str(path)), str(tmp_path / "edited.safetensors"), metadata={"avsplit": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(tmp_path / "edited.safetensors")
    line = None
    try:
        load_checkpoint(tmp_path / "edited.safetensors")
    except CheckpointError as exc:
        line = str(exc)
    assert "\n" not in line and "edited.safetensors" in line
