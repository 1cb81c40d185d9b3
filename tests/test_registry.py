import pytest

from avsplit.errors import CheckpointError
from avsplit.models.registry import load_registry, register_model, resolve_weights


def test_register_resolve_and_verify(tmp_path, monkeypatch):
    monkeypatch.setenv("AVSPLIT_WEIGHTS_DIR", str(tmp_path))
    assert load_registry() == []
    with pytest.raises(CheckpointError, match="no default weights"):
        resolve_weights(None)
    (tmp_path / "m.safetensors").write_bytes(b"weights")
    register_model("m1", tmp_path / "m.safetensors", preset="tiny", scores={"sdr": 1.0}, default=True)
    [entry] = load_registry()
    assert entry.default and entry.scores == {"sdr": 1.0}
    assert resolve_weights(None) == tmp_path / "m.safetensors"
    assert resolve_weights("m1") == tmp_path / "m.safetensors"
    (tmp_path / "m.safetensors").write_bytes(b"tampered")
    with pytest.raises(CheckpointError, match="corrupt"):
        resolve_weights("m1")
    (tmp_path / "m.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        resolve_weights("m1")
    with pytest.raises(CheckpointError, match="neither a checkpoint file nor a registered"):
        resolve_weights("unknown-name")
