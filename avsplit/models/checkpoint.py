"""Self-describing, safe checkpoints: safetensors weights + JSON metadata.

The metadata holds the full :class:`~avsplit.models.config.ModelConfig`, the preprocessing
settings, software versions and a training summary, so a checkpoint alone is enough to run
``separate``, ``localize`` and ``evaluate``. Loading never unpickles anything.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import avsplit
from avsplit.errors import CheckpointError, ConfigError
from avsplit.files import atomic_path
from avsplit.models import AVSeparator, ModelConfig, build_model

FORMAT = "avsplit-checkpoint"
FORMAT_VERSION = 1


def software_versions() -> dict[str, str]:
    import av
    import numpy

    return {
        "avsplit": avsplit.__version__,
        "torch": torch.__version__,
        "av": av.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def save_checkpoint(path: str | Path, model: AVSeparator, summary: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights and its config to ``path`` atomically."""
    path = Path(path)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "versions": software_versions(),
        "training": summary or {},
    }
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"avsplit": json.dumps(meta, sort_keys=True)})
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a checkpoint, without loading the weights."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError("checkpoint not found", path, "check the path or use a name from `avsplit models`")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("avsplit")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError("not a readable safetensors checkpoint (corrupt or another format)", path,
                              "re-download or re-train it") from exc
    if raw is None:
        raise CheckpointError("is a safetensors file without avsplit metadata", path, "give a checkpoint written by avsplit")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError("checkpoint metadata is corrupt", path, "re-download or re-train it") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError("is not an avsplit checkpoint", path, "give a checkpoint written by avsplit")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError("was written by a newer avsplit", path, "upgrade avsplit")
    return meta


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[AVSeparator, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights. Returns ``(model, metadata)``."""
    path = Path(path)
    meta = read_metadata(path)
    try:
        config = ModelConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint config is invalid ({exc})", path, "re-train it with this avsplit version") from exc
    # The backbone initialisation does not matter when weights are loaded: never download here.
    config = config.replace(appearance=dataclasses.replace(config.appearance, backbone_weights="none"))
    model = build_model(config)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError("checkpoint weights are corrupt", path, "re-download or re-train it") from exc
    broken = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if broken:
        raise CheckpointError(f"has non-finite weights (NaN or infinity) in {len(broken)} tensors, e.g. {broken[0]}",
                              path, "the training run diverged or the file is damaged; use an earlier checkpoint or re-train")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = (missing or unexpected or wrong)[0]
        raise CheckpointError(
            f"weights do not match the config stored in the checkpoint ({len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(wrong)} mis-shaped, e.g. {detail})",
            path, "the file is damaged or was edited; re-download or re-train it",
        )
    model.load_state_dict(state)
    model.eval()
    return model.to(device), meta
