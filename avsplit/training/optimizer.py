"""Which parameters train (freezing), the optimizer with its per-part learning rates, and the schedule."""

from __future__ import annotations

import torch
from torch import nn

from avsplit.errors import ConfigError
from avsplit.models import AVSeparator
from avsplit.training.config import FREEZABLE, TrainConfig


def frozen_modules(model: AVSeparator, cfg: TrainConfig) -> list[nn.Module]:
    """The submodules ``cfg.freeze`` names (a clear error for an unknown or absent part)."""
    out = []
    for part in cfg.freeze:
        if part not in FREEZABLE:
            raise ConfigError(f"cannot freeze {part!r}", fix=f"choose among {', '.join(FREEZABLE)}")
        if FREEZABLE[part] is None:
            out.extend(module for name, module in model.named_children() if name != "refiner")
            continue
        for name in FREEZABLE[part]:
            module = getattr(model, name, None)
            if module is None:
                raise ConfigError(f"cannot freeze {part!r}: this model has no {name}", fix="drop it from --freeze")
            out.append(module)
    return out


def set_train_mode(model: AVSeparator, cfg: TrainConfig) -> None:
    """``model.train()``, with the frozen parts (:func:`frozen_modules`) in eval mode and without gradients."""
    model.train()
    for module in frozen_modules(model, cfg):
        module.eval()
        module.requires_grad_(False)


def make_optimizer(model: AVSeparator, cfg: TrainConfig, category_head: nn.Module | None = None) -> torch.optim.Optimizer:
    """Per-module learning rates: the frame net at ``lr_frame``, sound net and synthesizer at ``lr_sound``,
    the rest (motion pathway, fusion) at ``lr_motion``, a ``category_head`` (``--category-weight``) at
    ``lr_sound``. Frozen parameters are left out."""
    frozen = {id(p) for m in frozen_modules(model, cfg) for p in m.parameters()}

    def trainable(params) -> list[nn.Parameter]:
        return [p for p in params if id(p) not in frozen]

    synth = list(model.synthesizer.parameters()) if model.synthesizer is not None else []
    groups = [
        {"params": trainable(model.appearance.parameters()), "lr": cfg.lr_frame, "name": "frame"},
        {"params": trainable(list(model.audio_net.parameters()) + synth), "lr": cfg.lr_sound, "name": "sound"},
    ]
    extra = trainable(p for n, p in model.named_parameters()
                      if not n.startswith(("appearance.", "audio_net.", "synthesizer.")))
    if extra:
        groups.append({"params": extra, "lr": cfg.lr_motion or cfg.lr_sound, "name": "other"})
    if category_head is not None:
        groups.append({"params": list(category_head.parameters()), "lr": cfg.lr_sound, "name": "category"})
    if not any(g["params"] for g in groups):
        raise ConfigError("--freeze leaves nothing to train", fix="freeze fewer parts (base needs a model with --refiner)")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}", fix="use sgd or adam")


def lr_factor(step: int, cfg: TrainConfig) -> float:
    return 0.1 ** sum(step >= int(f * cfg.steps) for f in cfg.lr_steps)


def set_lr(optimizer: torch.optim.Optimizer, base: list[float], factor: float,
           boost: dict[str, float] | None = None) -> None:
    """Each group's learning rate: its ``base`` one times ``factor``, and times ``boost[name]`` for the
    groups ``boost`` names."""
    for group, lr in zip(optimizer.param_groups, base):
        group["lr"] = lr * factor * (boost or {}).get(group.get("name"), 1.0)
