"""What a run keeps besides its checkpoints: optimizer state for ``--resume``, initialisation from a
checkpoint, and the logs (``log.csv``, TensorBoard)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from avsplit.config import to_dict
from avsplit.errors import CheckpointError
from avsplit.files import atomic_path
from avsplit.models.checkpoint import read_metadata
from avsplit.training.config import TrainConfig


def save_train_state(path: Path, optimizer: torch.optim.Optimizer, step: int, best: float, extra: dict) -> None:
    """Optimizer state (tensors) + step as safetensors; nothing pickled."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, pstate in state["state"].items():
        for key, value in pstate.items():
            name = f"{pid}.{key}"
            if torch.is_tensor(value):
                tensors[name] = value.detach().cpu().contiguous()
            else:
                scalars[name] = value
    meta = {"step": step, "best": best, "scalars": scalars, "param_groups": state["param_groups"], **extra}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"avsplit_state": json.dumps(meta)})


def read_run_file(path: Path, key: str, what: str) -> tuple[Any, dict[str, torch.Tensor]]:
    """A run folder's safetensors file: the JSON stored under metadata ``key`` and the tensors. Any
    read failure is a :class:`CheckpointError` naming ``what`` the file holds."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()[key])
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - any read failure means the file is unusable
        raise CheckpointError(f"cannot read {what} ({exc})", path, "start a new run folder") from exc
    return meta, tensors


def load_train_state(path: Path, optimizer: torch.optim.Optimizer) -> dict:
    """Restore ``optimizer`` from :func:`save_train_state`'s file; returns its metadata (step, best)."""
    meta, tensors = read_run_file(path, "avsplit_state", "training state")
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return meta




def init_from_checkpoint(model: nn.Module, path: str | Path) -> int:
    """Copy every tensor of checkpoint ``path`` whose name and shape match one of ``model``'s; returns
    how many were copied. Nothing matching is an error (a wrong file)."""

    read_metadata(path)  # a clear error for a missing or foreign file
    state = load_file(str(path), device="cpu")
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise CheckpointError("no weights of this checkpoint fit the model", Path(path), "give a checkpoint of a related preset")
    model.load_state_dict(matched, strict=False)
    return len(matched)


def run_summary(step: int, best: float, tcfg: TrainConfig, data) -> dict[str, Any]:
    return {"step": step, "best_val_sdr": best, "train": to_dict(tcfg), "data": str(data)}


def trim_csv(path: Path, step: int) -> None:
    """Drop the rows of ``log.csv`` after ``step`` (written before a resumed run was stopped)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    keep = [rows[0]] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
    if len(keep) == len(rows):
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(keep)


#: Columns of ``log.csv``; the category ones only in runs with ``--category-weight``.
LOG_FIELDS = ["step", "loss", "lr_frame", "lr_sound", "clips_per_s", "val_sdr", "val_sir", "val_sar", "stage"]
CATEGORY_FIELDS = ["category_loss", "category_accuracy"]


def append_csv(path: Path, row: dict[str, Any], category: bool = False) -> None:
    """One row of ``log.csv`` (the header written with the first one; a file that exists keeps its columns)."""
    fields = LOG_FIELDS + (CATEGORY_FIELDS if category else [])
    new = not path.exists()
    if not new:
        with open(path, newline="") as f:
            fields = next(csv.reader(f), fields)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)


class TensorBoardLog:
    """Scalars to TensorBoard when it is installed; silently absent otherwise (it is optional)."""

    def __init__(self, out: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.writer = None
        else:
            self.writer = SummaryWriter(str(out / "tensorboard"))

    def add(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for k, v in row.items():
            if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                self.writer.add_scalar(k, v, row["step"])
        self.writer.flush()
