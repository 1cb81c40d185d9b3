"""Self-supervised mix-and-separate training (``avsplit train``).

A run folder holds ``config.json`` (model and training settings), ``log.csv`` (one row per
logged step), ``last.safetensors`` and ``best.safetensors`` (model checkpoints usable by every
command) and ``state.safetensors`` (optimizer state and step, for ``--resume``). An existing run
folder is never deleted or overwritten: starting again needs ``--resume`` or a new folder.

Started by ``torchrun``, training runs DistributedDataParallel (NCCL on GPU, gloo on CPU); each
process draws different examples, rank 0 validates and writes files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avsplit.config import from_dict, to_dict
from avsplit.console import console, log, make_progress
from avsplit.data.curriculum import Curriculum
from avsplit.data.mixing import NO_AUGMENT, MixSampler
from avsplit.errors import AvsplitError
from avsplit.evaluation.bss import bss_eval
from avsplit.files import atomic_path, ensure_dir
from avsplit.models import AVSeparator, ModelConfig, build_model, use_channels_last
from avsplit.models.checkpoint import load_checkpoint, save_checkpoint, software_versions
from avsplit.runtime import autocast_for, default_cache_dir, pick_device
from avsplit.training.config import TrainConfig
from avsplit.training.data import StageSamplers, make_curriculum, training_videos
from avsplit.training.category import CategoryHead, category_labels
from avsplit.training.loss import MixSeparateLoss, batch_labels, check_own_weight, to_model_inputs
from avsplit.training.optimizer import lr_factor, make_optimizer, set_lr, set_train_mode
from avsplit.training.state import (TensorBoardLog, append_csv, init_from_checkpoint, load_train_state, run_summary,
                                    save_train_state, trim_csv)


#: The ``--category-weight`` head's weights in a run folder.
CATEGORY_HEAD_FILE = "category_head.safetensors"
#: During ``--category-warmup`` the head, trained alone on fixed features (a linear probe), learns at
#: this many times its learning rate: at ``lr_sound`` it barely moves in 100 steps.
WARMUP_HEAD_LR_FACTOR = 30.0


# ---------------------------------------------------------------------------------- validation


def validate(model: AVSeparator, sampler: MixSampler, count: int, device: torch.device, amp: str, batch_size: int = 4) -> dict[str, float]:
    """Mean BSS Eval SDR/SIR/SAR on ``count`` fixed mixtures (examples 0..count-1 of ``sampler``)."""
    model.eval()
    sdr, sir, sar = [], [], []
    with torch.no_grad():
        for lo in range(0, count, batch_size):
            idx = list(range(lo, min(count, lo + batch_size)))
            batch = sampler.batch(idx)
            a, f, fl, _ = to_model_inputs(batch, device)  # validation examples are never composites
            with autocast_for(device, amp):
                est = model(a.sum(1), f, fl).float().cpu().numpy()
            for ref, e in zip(batch.audio, est):
                s = bss_eval(ref, e)
                if s.valid:
                    sdr += s.sdr
                    sir += s.sir
                    sar += s.sar
    model.train()
    if not sdr:
        return {"val_sdr": float("nan")}
    return {"val_sdr": float(np.mean(sdr)), "val_sir": float(np.mean(sir)), "val_sar": float(np.mean(sar))}


# ---------------------------------------------------------------------------------- the loop


@dataclass
class TrainSummary:
    run: Path
    steps: int
    best_val_sdr: float
    last: Path
    best: Path | None
    seconds: float
    clips_per_s: float
    losses: list[float]
    steps_run: int | None = None
    """Steps this call trained (``steps`` is the step the run reached, counting a resumed run's earlier ones)."""


def _distributed(device: str | None) -> tuple[int, int, torch.device]:
    """``(rank, world size, device)``; under ``torchrun`` (world size > 1) the process group is started:
    NCCL on the local rank's GPU, gloo on CPU."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    dev = pick_device(device)
    if world > 1:
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(dev)
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return rank, world, dev


def _run_configs(out: Path, cfg: ModelConfig, tcfg: TrainConfig, resume: bool, extend_to: int | None,
                 rank: int) -> tuple[ModelConfig, TrainConfig]:
    """The settings of the run in ``out``: the given ones for a new run, the saved ones (``extend_to``
    raising its steps) to resume. A run folder that holds a run is never started again."""
    config_path = out / "config.json"
    if config_path.exists() and not resume:
        raise AvsplitError("run folder already holds a run", out, "pass --resume to continue it, or choose another -o")
    if resume:
        if not config_path.exists():
            raise AvsplitError("nothing to resume: no config.json in the run folder", out, "start without --resume")
        saved = json.loads(config_path.read_text())
        cfg = ModelConfig.from_dict(saved["model"])
        tcfg = from_dict(TrainConfig, saved["train"])
        if extend_to is not None and extend_to != tcfg.steps:
            tcfg = dataclasses.replace(tcfg, steps=extend_to)
            if rank == 0:
                saved["train"] = to_dict(tcfg)
                with atomic_path(config_path) as tmp:
                    tmp.write_text(json.dumps(saved, indent=2))
    check_own_weight(tcfg.own_weight, cfg.refiner > 0)
    return cfg, tcfg


@dataclass
class _Run:
    """A run in progress: where it writes, its settings, model and optimizer, and how far it is."""

    out: Path
    data: str | Path
    cfg: ModelConfig
    tcfg: TrainConfig
    rank: int
    world: int
    dev: torch.device
    model: AVSeparator
    optimizer: torch.optim.Optimizer
    step: int = 0
    best: float = -math.inf
    category_head: CategoryHead | None = None
    """``--category-weight``'s head (saved beside the checkpoints, not in them)."""
    video_labels: np.ndarray | None = None
    """The category index of each training video (with ``category_head``)."""
    category_sums: dict[str, float] = dataclasses.field(default_factory=dict)
    """The category terms summed over the steps since the last log row, and their count ``n``."""

    def save(self) -> None:
        """The ``last`` checkpoint and the optimizer state (what ``--resume`` continues from)."""
        save_checkpoint(self.out / "last.safetensors", self.model, run_summary(self.step, self.best, self.tcfg, self.data))
        if self.category_head is not None:
            self.category_head.save(self.out / CATEGORY_HEAD_FILE)
        save_train_state(self.out / "state.safetensors", self.optimizer, self.step, self.best, {})


def _start_model(out: Path, data, val, cfg: ModelConfig, tcfg: TrainConfig, rank: int, world: int, dev: torch.device,
                 resume: bool, init, videos: list) -> _Run:
    """The model and optimizer of a run: fresh (from ``init``'s weights where they fit), or where the
    run in ``out`` stopped; a new run's ``config.json`` is written. ``videos``: the training videos
    (their categories label ``--category-weight``'s head)."""
    torch.manual_seed(tcfg.seed)
    model = use_channels_last(build_model(cfg).to(dev))
    set_train_mode(model, tcfg)
    head, labels = None, None
    if tcfg.category_weight > 0:
        names, labels = category_labels([v.category for v in videos])
        head = CategoryHead(cfg.channels, names).to(dev)
    run = _Run(out, data, cfg, tcfg, rank, world, dev, model, make_optimizer(model, tcfg, head), category_head=head,
               video_labels=labels)
    resuming = resume and (out / "state.safetensors").exists()
    if resuming:
        last, _ = load_checkpoint(out / "last.safetensors", device="cpu")
        model.load_state_dict(last.state_dict())
        set_train_mode(model, tcfg)
        if head is not None:
            head.load(out / CATEGORY_HEAD_FILE)
        meta = load_train_state(out / "state.safetensors", run.optimizer)
        run.step, run.best = int(meta["step"]), float(meta["best"])
        log.info(f"resuming {out} at step {run.step}")
    elif init is not None:
        copied = init_from_checkpoint(model, init)
        log.info(f"initialised {copied} tensors from {init}")
    if not resuming and rank == 0:
        with atomic_path(out / "config.json") as tmp:
            tmp.write_text(json.dumps({"model": cfg.to_dict(), "train": to_dict(tcfg), "versions": software_versions(),
                                       "data": str(data), "val": str(val) if val else None}, indent=2))
    return run


def _train_step(run: _Run, loss_module: nn.Module, sampler: MixSampler, base_lrs: list[float]) -> float:
    """One optimizer step on the batch of this process at ``run.step``; returns its loss."""
    tcfg = run.tcfg
    warming_up = run.step < tcfg.category_warmup
    set_lr(run.optimizer, base_lrs, lr_factor(run.step, tcfg), {"category": WARMUP_HEAD_LR_FACTOR} if warming_up else None)
    getattr(loss_module, "module", loss_module).head_only = warming_up
    first = (run.step * run.world + run.rank) * tcfg.batch_size
    batch = sampler.batch(range(first, first + tcfg.batch_size))
    a, f, fl, regions = to_model_inputs(batch, run.dev)
    with autocast_for(run.dev, tcfg.amp):
        loss = loss_module(a, f, fl, regions, batch_labels(batch, run.video_labels, run.dev))
    parts = getattr(loss_module, "module", loss_module).parts
    if "category" in parts:
        sums = run.category_sums
        sums["category"] = sums.get("category", 0.0) + parts["category"]
        sums["category_accuracy"] = sums.get("category_accuracy", 0.0) + parts["category_accuracy"]
        sums["n"] = sums.get("n", 0.0) + 1.0
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if tcfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), tcfg.grad_clip)
    run.optimizer.step()
    run.step += 1
    return float(loss.detach())


def _after_step(run: _Run, value: float, rate: float, val_sampler: MixSampler, curriculum: Curriculum | None,
                writer: TensorBoardLog | None) -> None:
    """Rank 0's work after a step: validation (a new best is saved), the log row, the last checkpoint."""
    step, tcfg, optimizer = run.step, run.tcfg, run.optimizer
    row: dict[str, Any] = {}
    if step % tcfg.log_every == 0 or step == tcfg.steps:
        lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
        row = {"step": step, "loss": value, "lr_frame": lrs["frame"] if optimizer.param_groups[0]["params"] else 0.0,
               "lr_sound": lrs["sound"], "clips_per_s": rate, **_category_means(run)}
    if step % tcfg.val_every == 0 or step == tcfg.steps:
        scores = validate(run.model, val_sampler, tcfg.val_mixtures, run.dev, tcfg.amp)
        set_train_mode(run.model, tcfg)
        row = {**row, "step": step, "loss": value, **scores}
        log.info(f"step {step}: loss {value:.4f}, validation SDR {scores['val_sdr']:.2f} dB")
        if scores["val_sdr"] > run.best:
            run.best = scores["val_sdr"]
            save_checkpoint(run.out / "best.safetensors", run.model, run_summary(step, run.best, tcfg, run.data))
    if row:
        if curriculum:
            row["stage"] = curriculum.stage_at(step - 1).name
        append_csv(run.out / "log.csv", row, category=run.category_head is not None)
        if not console.is_terminal and "loss" in row:
            extra = f", category accuracy {row['category_accuracy']:.2f}" if "category_accuracy" in row else ""
            log.info(f"step {step}/{tcfg.steps}: loss {value:.4f}{extra}, {rate:.2f} clips/s")
        if writer:
            writer.add(row)
    if step % tcfg.checkpoint_every == 0 or step == tcfg.steps:
        run.save()


def _category_means(run: _Run) -> dict[str, float]:
    """The category loss and accuracy averaged over the steps since the last log row (then reset)."""
    sums, run.category_sums = run.category_sums, {}
    if not sums.get("n"):
        return {}
    return {"category_loss": sums["category"] / sums["n"], "category_accuracy": sums["category_accuracy"] / sums["n"]}


def train(
    data: str | Path,
    out: str | Path,
    *,
    val: str | Path | None = None,
    model_config: ModelConfig,
    train_config: TrainConfig,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    jobs: int = 1,
    resume: bool = False,
    stop_after: int | None = None,
    extend_to: int | None = None,
    init: str | Path | None = None,
) -> TrainSummary:
    """Train ``model_config`` on the videos under ``data``; write the run into ``out``.

    ``stop_after`` ends the process after that many steps of this invocation, as an
    interruption would (used to test that ``resume`` continues exactly). ``extend_to`` (with
    ``resume``) raises the run's total number of steps; the learning-rate steps move with it.
    ``init``: a checkpoint whose weights start the model wherever names and shapes match (e.g. the
    appearance and audio nets of a motion model from an appearance-only model).
    """
    rank, world, dev = _distributed(device)
    out = Path(out)
    cfg, tcfg = _run_configs(out, model_config, train_config, resume, extend_to, rank)
    if rank == 0:
        ensure_dir(out)
    cache_root = Path(cache_dir) if cache_dir else default_cache_dir()
    train_videos, val_videos = training_videos(data, val, cfg, tcfg, cache_root, jobs, rank, world > 1)
    run = _start_model(out, data, val, cfg, tcfg, rank, world, dev, resume, init, train_videos)
    base_lrs = [g["lr"] for g in run.optimizer.param_groups]
    loss_module: nn.Module = MixSeparateLoss(run.model, run.category_head, tcfg.category_weight, tcfg.category_on,
                                             tcfg.own_weight)
    if world > 1:
        loss_module = nn.parallel.DistributedDataParallel(loss_module, device_ids=[dev.index] if dev.type == "cuda" else None)
    curriculum = make_curriculum(train_videos, tcfg)
    samplers = StageSamplers(train_videos, cfg, tcfg, curriculum, announce=rank == 0)
    val_sampler = MixSampler(val_videos, cfg, seed=10_000 + tcfg.seed, augment=NO_AUGMENT)
    if rank == 0:
        trim_csv(out / "log.csv", run.step)  # rows of steps after the checkpoint are redone: no duplicates
    writer = TensorBoardLog(out) if rank == 0 else None

    losses: list[float] = []
    t_start = time.perf_counter()
    clips = 0
    with make_progress() as progress:
        task = progress.add_task("training", total=tcfg.steps, completed=run.step, status="")
        while run.step < tcfg.steps:
            value = _train_step(run, loss_module, samplers.at(run.step), base_lrs)
            clips += tcfg.batch_size * world
            losses.append(value)
            rate = clips / (time.perf_counter() - t_start)
            progress.update(task, completed=run.step, status=f"loss {value:.4f}  {rate:.2f} clips/s")
            if rank == 0:
                _after_step(run, value, rate, val_sampler, curriculum, writer)
            if stop_after is not None and len(losses) >= stop_after:
                break
    seconds = time.perf_counter() - t_start
    if world > 1:
        torch.distributed.barrier()
    return TrainSummary(out, run.step, run.best, out / "last.safetensors",
                        out / "best.safetensors" if (out / "best.safetensors").exists() else None,
                        seconds, clips / max(seconds, 1e-9), losses, len(losses))
