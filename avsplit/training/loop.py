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
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from avsplit.config import PreprocessSettings, from_dict, to_dict
from avsplit.console import console, log, make_progress, warn_line
from avsplit.data.cache import PreprocessCache
from avsplit.data.curriculum import DEFAULT_STAGES, Curriculum, parse_stages
from avsplit.data.entry import CachedVideo
from avsplit.data.mixing import NO_AUGMENT, Augment, MixSampler
from avsplit.data.motion import cache_extras
from avsplit.data.scan import load_dataset
from avsplit.errors import AvsplitError, ConfigError
from avsplit.evaluation.bss import bss_eval
from avsplit.files import atomic_path, ensure_dir
from avsplit.models import AVSeparator, ModelConfig, build_model, use_channels_last
from avsplit.models.checkpoint import load_checkpoint, save_checkpoint, software_versions
from avsplit.runtime import autocast_for, default_cache_dir, pick_device
from avsplit.training.config import TrainConfig
from avsplit.training.loss import MixSeparateLoss, to_model_inputs
from avsplit.training.optimizer import lr_factor, make_optimizer, set_lr, set_train_mode
from avsplit.training.state import (TensorBoardLog, append_csv, init_from_checkpoint, load_train_state, run_summary,
                                    save_train_state, trim_csv)


# ---------------------------------------------------------------------------------- data


def prepare_videos(spec, cache_dir: Path, settings: PreprocessSettings, jobs: int, label: str,
                   extras: Sequence = ()) -> list[CachedVideo]:
    """Scan ``spec`` (folder or SoP CSV) and preprocess it into the cache (with ``extras``, e.g. the
    optical flow of motion models); return usable entries."""
    items = load_dataset(spec)
    if not items:
        raise AvsplitError(f"no videos found for {label}", Path(str(spec)), "give a folder of videos or a Sound-of-Pixels CSV")
    report = PreprocessCache(cache_dir, settings, extras=extras).build(items, jobs=jobs)
    if report.failed:
        warn_line(f"{len(report.failed)} of {len(items)} {label} videos could not be used and are skipped")
    return list(report.ready)


def validate(model: AVSeparator, sampler: MixSampler, count: int, device: torch.device, amp: str, batch_size: int = 4) -> dict[str, float]:
    """Mean BSS Eval SDR/SIR/SAR on ``count`` fixed mixtures (examples 0..count-1 of ``sampler``)."""
    model.eval()
    sdr, sir, sar = [], [], []
    with torch.no_grad():
        for lo in range(0, count, batch_size):
            idx = list(range(lo, min(count, lo + batch_size)))
            audio, frames, *flow = sampler.batch(idx)
            a, f, fl = to_model_inputs(audio, frames, device, flow[0] if flow else None)
            with autocast_for(device, amp):
                est = model(a.sum(1), f, fl).float().cpu().numpy()
            for ref, e in zip(audio, est):
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


def _dist_env() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


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
    rank, world, local_rank = _dist_env()
    distributed = world > 1
    dev = pick_device(device)
    if distributed:
        import torch.distributed as dist

        if dev.type == "cuda":
            dev = torch.device("cuda", local_rank)
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    out = Path(out)
    cfg, tcfg = model_config, train_config
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
    if rank == 0:
        ensure_dir(out)
    cache_root = Path(cache_dir) if cache_dir else default_cache_dir()
    settings = PreprocessSettings(audio=cfg.audio, video=cfg.video)

    # Rank 0 builds the cache first; the others then find every entry ready.
    if distributed and rank != 0:
        torch.distributed.barrier()

    extras = cache_extras(cfg)
    train_videos = prepare_videos(data, cache_root, settings, jobs, "training", extras)
    val_videos = prepare_videos(val, cache_root, settings, jobs, "validation", extras) if val else None
    if distributed and rank == 0:
        torch.distributed.barrier()
    if len(train_videos) < cfg.num_mix:
        raise AvsplitError(f"training needs at least {cfg.num_mix} usable videos, found {len(train_videos)}", Path(data),
                           "add more videos")
    if val_videos is None:
        n_val = max(cfg.num_mix, len(train_videos) // 10)
        if len(train_videos) - n_val >= max(cfg.num_mix, 4):
            order = np.random.default_rng(tcfg.seed).permutation(len(train_videos))
            val_videos = [train_videos[i] for i in sorted(order[:n_val])]
            train_videos = [train_videos[i] for i in sorted(order[n_val:])]
        else:
            warn_line("too few videos to hold some out: validating on the training videos")
            val_videos = train_videos

    torch.manual_seed(tcfg.seed)
    model = use_channels_last(build_model(cfg).to(dev))
    set_train_mode(model, tcfg)
    optimizer = make_optimizer(model, tcfg)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    step, best = 0, -math.inf
    if resume and (out / "state.safetensors").exists():

        last, _ = load_checkpoint(out / "last.safetensors", device="cpu")
        model.load_state_dict(last.state_dict())
        set_train_mode(model, tcfg)
        meta = load_train_state(out / "state.safetensors", optimizer)
        step, best = int(meta["step"]), float(meta["best"])
        log.info(f"resuming {out} at step {step}")
    elif init is not None:
        copied = init_from_checkpoint(model, init)
        log.info(f"initialised {copied} tensors from {init}")
    if not (resume and (out / "state.safetensors").exists()) and rank == 0:
        with atomic_path(config_path) as tmp:
            tmp.write_text(json.dumps({"model": cfg.to_dict(), "train": to_dict(tcfg), "versions": software_versions(),
                                       "data": str(data), "val": str(val) if val else None}, indent=2))

    loss_module: nn.Module = MixSeparateLoss(model)
    if distributed:
        loss_module = nn.parallel.DistributedDataParallel(loss_module, device_ids=[dev.index] if dev.type == "cuda" else None)
    curriculum = None
    if tcfg.curriculum:

        try:
            stages = parse_stages(tcfg.curriculum_stages) if tcfg.curriculum_stages else DEFAULT_STAGES
        except ValueError as exc:
            raise ConfigError(str(exc), fix="e.g. --curriculum-stages easy:2:0.2,hard:2:0.6,any:2:0.8,any:3:1") from None
        curriculum = Curriculum(train_videos, tcfg.steps, stages)
    samplers: dict[int, MixSampler] = {}
    augment = Augment(timbre_db=tcfg.timbre_db)

    def sampler_at(at: int) -> MixSampler:
        """The training sampler for a step (one per curriculum stage; one overall without)."""
        index = curriculum.stage_index(at) if curriculum else 0
        if index not in samplers:
            if curriculum:
                stage = curriculum.stage_at(at)
                samplers[index] = MixSampler(train_videos, cfg, num_mix=stage.num_mix, seed=tcfg.seed + 1000 * index,
                                             augment=augment, pair_filter=curriculum.pair_filter(stage))
                if rank == 0:
                    log.info(f"step {at}: curriculum {curriculum.describe(stage)}")
            else:
                samplers[index] = MixSampler(train_videos, cfg, seed=tcfg.seed, augment=augment)
        return samplers[index]

    val_sampler = MixSampler(val_videos, cfg, seed=10_000 + tcfg.seed, augment=NO_AUGMENT)
    log_path = out / "log.csv"
    if rank == 0:
        trim_csv(log_path, step)  # rows of steps after the checkpoint are redone: no duplicates
    writer = TensorBoardLog(out) if rank == 0 else None

    losses: list[float] = []
    t_start = time.perf_counter()
    clips = 0
    steps_here = 0
    with make_progress() as progress:
        task = progress.add_task("training", total=tcfg.steps, completed=step, status="")
        while step < tcfg.steps:
            set_lr(optimizer, base_lrs, lr_factor(step, tcfg))
            first = (step * world + rank) * tcfg.batch_size
            audio, frames, *flow = sampler_at(step).batch(range(first, first + tcfg.batch_size))
            a, f, fl = to_model_inputs(audio, frames, dev, flow[0] if flow else None)
            with autocast_for(dev, tcfg.amp):
                loss = loss_module(a, f, fl)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tcfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
            optimizer.step()
            step += 1
            steps_here += 1
            clips += tcfg.batch_size * world
            value = float(loss.detach())
            losses.append(value)
            rate = clips / (time.perf_counter() - t_start)
            progress.update(task, completed=step, status=f"loss {value:.4f}  {rate:.2f} clips/s")
            row: dict[str, Any] = {}
            if step % tcfg.log_every == 0 or step == tcfg.steps:
                lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
                row = {"step": step, "loss": value, "lr_frame": lrs["frame"] if optimizer.param_groups[0]["params"] else 0.0,
                       "lr_sound": lrs["sound"], "clips_per_s": rate}
            if rank == 0 and (step % tcfg.val_every == 0 or step == tcfg.steps):
                scores = validate(model, val_sampler, tcfg.val_mixtures, dev, tcfg.amp)
                set_train_mode(model, tcfg)
                row = {**row, "step": step, "loss": value, **scores}
                log.info(f"step {step}: loss {value:.4f}, validation SDR {scores['val_sdr']:.2f} dB")
                if scores["val_sdr"] > best:
                    best = scores["val_sdr"]
                    save_checkpoint(out / "best.safetensors", model, run_summary(step, best, tcfg, data))
            if rank == 0 and row:
                if curriculum:
                    row["stage"] = curriculum.stage_at(step - 1).name
                append_csv(log_path, row)
                if not console.is_terminal and "loss" in row:
                    log.info(f"step {step}/{tcfg.steps}: loss {value:.4f}, {rate:.2f} clips/s")
                if writer:
                    writer.add(row)
            if rank == 0 and (step % tcfg.checkpoint_every == 0 or step == tcfg.steps):
                save_checkpoint(out / "last.safetensors", model, run_summary(step, best, tcfg, data))
                save_train_state(out / "state.safetensors", optimizer, step, best, {})
            if stop_after is not None and steps_here >= stop_after:
                break
    seconds = time.perf_counter() - t_start
    if distributed:
        torch.distributed.barrier()
    return TrainSummary(out, step, best, out / "last.safetensors",
                        out / "best.safetensors" if (out / "best.safetensors").exists() else None,
                        seconds, clips / max(seconds, 1e-9), losses, steps_here)
