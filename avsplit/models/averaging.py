"""Weight-space interpolation of two checkpoints of one architecture (``avsplit blend``).

A model fine-tuned on new data (other sound makers, pictures, recording chains) often forgets
part of what it knew. Interpolating its weights with those of the model it started from,
``(1 - weight) * A + weight * B``, keeps much of both: the fine-tuned model's gains on the new data
and the starting model's scores on its own (weight-space ensembling, as in Wortsman et al., "Robust
fine-tuning of zero-shot models", 2022). It only makes sense for B fine-tuned from A (or both from
one start); two independently trained models do not average into a working one.
"""

from __future__ import annotations

from pathlib import Path

import torch

from avsplit.errors import CheckpointError, ConfigError
from avsplit.models.checkpoint import load_checkpoint, save_checkpoint
from avsplit.models.registry import resolve_weights, sha256_of


def interpolate_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], weight: float) -> dict[str, torch.Tensor]:
    """``(1 - weight) * a + weight * b`` for every floating-point tensor of two state dicts with the
    same keys and shapes; other tensors (counters such as batch norm's ``num_batches_tracked``) are
    taken from the nearer end (``b`` from ``weight >= 0.5``)."""
    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"blend weight {weight} is outside [0, 1]", fix="give --weight between 0 (A) and 1 (B)")
    if set(a) != set(b):
        odd = sorted(set(a) ^ set(b))
        raise ConfigError(f"the two models have different tensors ({len(odd)}, e.g. {odd[0]})",
                          fix="blend two checkpoints of one architecture (B fine-tuned from A)")
    mixed = {}
    for key, ta in a.items():
        tb = b[key]
        if ta.shape != tb.shape:
            raise ConfigError(f"tensor {key} has shape {tuple(ta.shape)} in A and {tuple(tb.shape)} in B",
                              fix="blend two checkpoints of one architecture (B fine-tuned from A)")
        if ta.is_floating_point():
            mixed[key] = torch.lerp(ta.double(), tb.double(), weight).to(ta.dtype)
        else:
            mixed[key] = (tb if weight >= 0.5 else ta).clone()
    return mixed


def blend_checkpoints(a: str | Path, b: str | Path, weight: float, out: str | Path) -> Path:
    """Write the checkpoint ``(1 - weight) * A + weight * B`` to ``out`` (atomically) and return its path.

    ``a`` and ``b`` are registered names or checkpoint paths; their configs must be the same. The new
    checkpoint's metadata names both, with their sha256 and the weight.
    """
    path_a, path_b = resolve_weights(a), resolve_weights(b)
    out = Path(out)
    if out.is_dir():
        raise ConfigError("is a folder", out, "give the path of the .safetensors file to write")
    model_a, meta_a = load_checkpoint(path_a)
    model_b, meta_b = load_checkpoint(path_b)
    config_a, config_b = model_a.config.to_dict(), model_b.config.to_dict()
    if config_a != config_b:
        differ = sorted(k for k in set(config_a) | set(config_b) if config_a.get(k) != config_b.get(k))
        raise CheckpointError(f"has another model config than {path_a} (differs in: {', '.join(differ)})", path_b,
                              "blend two checkpoints of one architecture (B fine-tuned from A)")
    model_a.load_state_dict(interpolate_state(model_a.state_dict(), model_b.state_dict(), weight))
    summary = {"blend": {"a": str(a), "a_sha256": sha256_of(path_a), "b": str(b), "b_sha256": sha256_of(path_b),
                         "weight": weight, "a_training": meta_a.get("training", {}), "b_training": meta_b.get("training", {})}}
    return save_checkpoint(out, model_a, summary)
