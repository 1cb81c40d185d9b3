"""The library API. Each CLI command is a thin layer over one function here.

Example::

    from avsplit import api
    api.synth("data/", solos=8, duets=2)
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def synth(out: str | Path, **options):
    """Generate the synthetic dataset into ``out``; see :func:`avsplit.synth.generate_dataset`."""
    from avsplit.synth import generate_dataset

    return generate_dataset(out, **options)


def print_models() -> None:
    """Print the registry of shipped weights as a table."""
    from avsplit.registry import print_registry

    print_registry()


def train(
    data: str | Path,
    out: str | Path,
    *,
    val: str | Path | None = None,
    preset: str = "small",
    model_overrides: dict | None = None,
    train_overrides: dict | None = None,
    backbone_weights: str | None = None,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    jobs: int = 1,
    resume: bool = False,
):
    """Train a model of ``preset`` (with overrides) on ``data``; see :func:`avsplit.training.train`."""
    import dataclasses

    from avsplit.models import preset as model_preset
    from avsplit.training import TRAIN_PRESETS, TrainConfig, train as run_training

    model_config = model_preset(preset, **(model_overrides or {}))
    if backbone_weights is not None:
        model_config = model_config.replace(
            appearance=dataclasses.replace(model_config.appearance, backbone_weights=backbone_weights))
    train_config = dataclasses.replace(TRAIN_PRESETS.get(preset, TrainConfig()), **(train_overrides or {}))
    return run_training(data, out, val=val, model_config=model_config, train_config=train_config,
                        cache_dir=cache_dir, device=device, jobs=jobs, resume=resume)
