"""Self-supervised mix-and-separate training (``avsplit train``).

A run folder holds ``config.json`` (model and training settings), ``log.csv`` (one row per
logged step), ``last.safetensors`` and ``best.safetensors`` (model checkpoints usable by every
command) and ``state.safetensors`` (optimizer state and step, for ``--resume``). An existing run
folder is never deleted or overwritten: starting again needs ``--resume`` or a new folder.

Started by ``torchrun``, training runs DistributedDataParallel (NCCL on GPU, gloo on CPU); each
process draws different examples, rank 0 validates and writes files.
"""

from __future__ import annotations

import contextlib
import csv
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
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from avsplit.models.checkpoint import save_checkpoint, software_versions
from avsplit.config import PreprocessSettings, from_dict, to_dict
from avsplit.console import console, log, make_progress, warn_line
from avsplit.data.cache import PreprocessCache
from avsplit.data.entry import CachedVideo
from avsplit.data.mixing import NO_AUGMENT, Augment, MixSampler
from avsplit.data.scan import load_dataset
from avsplit.errors import AvsplitError, CheckpointError, ConfigError
from avsplit.files import atomic_path, ensure_dir
from avsplit.evaluation.bss import bss_eval
from avsplit.models import AVSeparator, ModelConfig, build_model, use_channels_last
from avsplit.models.appearance import normalize_frames
from avsplit.dsp.transforms import ideal_binary_mask, ideal_ratio_mask, loss_weight


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. Defaults follow the paper (SGD, momentum 0.9, weight decay 1e-4,
    lr 1e-4 for the frame net and 1e-3 for the sound net and synthesizer, x0.1 steps)."""

    steps: int = 20000
    batch_size: int = 8
    optimizer: str = "sgd"
    lr_frame: float = 1e-4
    lr_sound: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_steps: tuple[float, ...] = (0.6, 0.85)
    """Fractions of ``steps`` after which every learning rate is multiplied by 0.1."""
    seed: int = 0
    val_every: int = 500
    val_mixtures: int = 32
    checkpoint_every: int = 500
    log_every: int = 20
    amp: str = "auto"
    """``auto`` (bf16 on GPU and on CPUs with native bf16), ``bf16`` or ``off``."""
    grad_clip: float = 5.0
    curriculum: bool = False
    """Stages from easy pairs to hard ones and from 2 to 3 sources (:mod:`avsplit.data.curriculum`)."""
    curriculum_stages: str = ""
    """Custom stages, ``PAIRS:SOURCES:UNTIL,...`` (:func:`avsplit.data.curriculum.parse_stages`);
    empty: the default stages."""
    timbre_db: float = 0.0
    """Random equaliser per source (:func:`avsplit.data.mixing.random_timbre`), band gains up to
    +-timbre_db dB; 0: off."""
    lr_motion: float | None = None
    """Learning rate of the motion pathway and fusion (default: ``lr_sound``); higher than the others
    when they start from a trained appearance model (``--init``)."""
    freeze: tuple[str, ...] = ()
    """Parts kept as they are (no gradient, batch-norm statistics fixed), when fine-tuning from
    ``--init``: any of :data:`FREEZABLE`. A frozen part costs no backward pass."""


#: Parts of a model ``TrainConfig.freeze`` can hold fixed, and the submodules each one names.
#: ``base`` (``None``) is every submodule but the mask refiner (to train a refiner on top of a trained model).
FREEZABLE = {"frame": ("appearance",), "sound": ("audio_net",), "motion": ("motion_net",), "base": None}


#: Optimisation defaults per preset. ``small`` trains from scratch on CPU, where Adam converges
#: far sooner than the paper's SGD (which assumed an ImageNet-initialised frame net and GPUs).
TRAIN_PRESETS: dict[str, TrainConfig] = {
    "sop": TrainConfig(),
    "small": TrainConfig(steps=3500, batch_size=8, optimizer="adam", lr_frame=1e-3, lr_sound=1e-3,
                         weight_decay=0.0, lr_steps=(0.7, 0.9), val_every=250, checkpoint_every=250),
    "small-motion": TrainConfig(steps=1600, batch_size=8, optimizer="adam", lr_frame=1e-4, lr_sound=3e-4, lr_motion=1e-3,
                                weight_decay=0.0, lr_steps=(0.7, 0.9), val_every=250, checkpoint_every=250, curriculum=True),
    "som": TrainConfig(curriculum=True),
    "tiny": TrainConfig(steps=20, batch_size=2, optimizer="adam", lr_frame=1e-3, lr_sound=1e-3, weight_decay=0.0, amp="off",
                        val_every=10, val_mixtures=2, checkpoint_every=10, log_every=5),
}
TRAIN_PRESETS["tiny-motion"] = dataclasses.replace(TRAIN_PRESETS["tiny"], curriculum=True)


# ---------------------------------------------------------------------------------- the loss


class MixSeparateLoss(nn.Module):
    """Wraps the model so one ``forward`` computes the training loss (what DDP needs).

    ``audio``: ``(batch, sources, samples)`` (the mixture is their sum); ``frames``: normalised
    ``(batch, sources, frames, 3, H, W)``. Returns the scalar loss: per-bin BCE against the ideal
    binary mask, or L1 against the ideal ratio mask, weighted by ``log(1 + |mixture|)``; targets
    live on the warped (log-frequency) grid, as the masks do.
    """

    def __init__(self, model: AVSeparator):
        super().__init__()
        self.model = model

    def forward(self, audio: torch.Tensor, frames: torch.Tensor, flow: torch.Tensor | None = None) -> torch.Tensor:
        m = self.model
        batch, sources = audio.shape[:2]
        mixture = audio.sum(dim=1)
        with torch.no_grad():
            _, warped_mix = m.analyse(mixture)  # (B, 1, Fl, T)
            _, warped_src = m.analyse(audio.flatten(0, 1))
            warped_src = warped_src.view(batch, sources, *warped_src.shape[-2:])
            mix_mag = warped_mix[:, 0]
            if m.config.mask == "binary":
                target = ideal_binary_mask(warped_src, mix_mag)
            else:
                target = ideal_ratio_mask(warped_src, mix_mag)
            weight = loss_weight(warped_mix)  # (B, 1, Fl, T), broadcast over sources
        audio_feats = m.audio_features(warped_mix)
        logits = m.mixture_logits(m.source_vectors(frames, flow), audio_feats, warped_mix).float()
        if m.config.mask == "binary":
            per_bin = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        else:
            per_bin = (torch.relu(logits) - target).abs()
        return (per_bin * weight).mean()


# ---------------------------------------------------------------------------------- helpers


def pick_device(device: str | None) -> torch.device:
    """``None``/``auto``: CUDA when available, else CPU."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {device!r}", fix="use cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA was requested but is not available", fix="use --device cpu")
    return dev


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN has native bf16 kernels on this CPU (AVX512-BF16 or AMX), where bf16 autocast
    roughly doubles training throughput."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_for(device: torch.device, amp: str):
    """``auto``: bf16 on GPU, and on CPUs with native bf16; ``bf16``: always; ``off``: never."""
    if amp not in ("auto", "bf16", "off"):
        raise ConfigError(f"unknown --amp {amp!r}", fix="use auto, bf16 or off")
    use = amp == "bf16" or (amp == "auto" and (device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())))
    if not use:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def to_model_inputs(audio: np.ndarray, frames: np.ndarray, device: torch.device, flow: np.ndarray | None = None):
    """Sampler arrays -> model tensors: audio float ``(B, N, S)``, frames normalised ``(B, N, F, 3, H, W)``
    and flow ``(B, N, steps, 2, h, w)`` float (``None`` for appearance models)."""
    a = torch.from_numpy(np.ascontiguousarray(audio)).to(device)
    f = normalize_frames(torch.from_numpy(np.ascontiguousarray(frames)).to(device))
    fl = None
    if flow is not None:
        fl = torch.from_numpy(np.ascontiguousarray(flow)).to(device).float().permute(0, 1, 2, 5, 3, 4).contiguous()
    return a, f, fl


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


def make_optimizer(model: AVSeparator, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Per-module learning rates: the frame net at ``lr_frame``, sound net and synthesizer at ``lr_sound``,
    the rest (motion pathway, fusion) at ``lr_motion``. Frozen parameters are left out."""
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
    if not any(g["params"] for g in groups):
        raise ConfigError("--freeze leaves nothing to train", fix="freeze fewer parts (base needs a model with --refiner)")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}", fix="use sgd or adam")


def lr_factor(step: int, cfg: TrainConfig) -> float:
    return 0.1 ** sum(step >= int(f * cfg.steps) for f in cfg.lr_steps)


def _set_lr(optimizer: torch.optim.Optimizer, base: list[float], factor: float) -> None:
    for group, lr in zip(optimizer.param_groups, base):
        group["lr"] = lr * factor


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


def load_train_state(path: Path, optimizer: torch.optim.Optimizer) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["avsplit_state"])
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - any read failure means the state is unusable
        raise CheckpointError(f"cannot read training state ({exc})", path, "start a new run folder") from exc
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return meta


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
    from avsplit.data.motion import cache_extras

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
        from avsplit.models.checkpoint import load_checkpoint

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
        from avsplit.data.curriculum import DEFAULT_STAGES, Curriculum, parse_stages

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
        _trim_csv(log_path, step)  # rows of steps after the checkpoint are redone: no duplicates
    writer = _TensorBoard(out) if rank == 0 else None

    losses: list[float] = []
    t_start = time.perf_counter()
    clips = 0
    steps_here = 0
    with make_progress() as progress:
        task = progress.add_task("training", total=tcfg.steps, completed=step, status="")
        while step < tcfg.steps:
            _set_lr(optimizer, base_lrs, lr_factor(step, tcfg))
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
                    save_checkpoint(out / "best.safetensors", model, _summary(step, best, tcfg, data))
            if rank == 0 and row:
                if curriculum:
                    row["stage"] = curriculum.stage_at(step - 1).name
                _append_csv(log_path, row)
                if not console.is_terminal and "loss" in row:
                    log.info(f"step {step}/{tcfg.steps}: loss {value:.4f}, {rate:.2f} clips/s")
                if writer:
                    writer.add(row)
            if rank == 0 and (step % tcfg.checkpoint_every == 0 or step == tcfg.steps):
                save_checkpoint(out / "last.safetensors", model, _summary(step, best, tcfg, data))
                save_train_state(out / "state.safetensors", optimizer, step, best, {})
            if stop_after is not None and steps_here >= stop_after:
                break
    seconds = time.perf_counter() - t_start
    if distributed:
        torch.distributed.barrier()
    return TrainSummary(out, step, best, out / "last.safetensors",
                        out / "best.safetensors" if (out / "best.safetensors").exists() else None,
                        seconds, clips / max(seconds, 1e-9), losses, steps_here)


def init_from_checkpoint(model: nn.Module, path: str | Path) -> int:
    """Copy every tensor of checkpoint ``path`` whose name and shape match one of ``model``'s; returns
    how many were copied. Nothing matching is an error (a wrong file)."""
    from avsplit.models.checkpoint import read_metadata

    read_metadata(path)  # a clear error for a missing or foreign file
    state = load_file(str(path), device="cpu")
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise CheckpointError("no weights of this checkpoint fit the model", Path(path), "give a checkpoint of a related preset")
    model.load_state_dict(matched, strict=False)
    return len(matched)


def _summary(step: int, best: float, tcfg: TrainConfig, data) -> dict[str, Any]:
    return {"step": step, "best_val_sdr": best, "train": to_dict(tcfg), "data": str(data)}


def _trim_csv(path: Path, step: int) -> None:
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


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    fields = ["step", "loss", "lr_frame", "lr_sound", "clips_per_s", "val_sdr", "val_sir", "val_sar", "stage"]
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)


class _TensorBoard:
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


def default_cache_dir() -> Path:
    base = os.environ.get("AVSPLIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "avsplit")
    return Path(base) / "preprocess"
