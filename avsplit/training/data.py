"""The examples a run trains and validates on: videos scanned and preprocessed into the cache, some held
out for validation, and the mix-and-separate samplers (one per curriculum stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from avsplit.config import PreprocessSettings
from avsplit.console import log, warn_line
from avsplit.data.cache import PreprocessCache
from avsplit.data.curriculum import DEFAULT_STAGES, Curriculum, parse_stages
from avsplit.data.entry import CachedVideo
from avsplit.data.mixing import PICTURE_VARIETY, Augment, MixSampler
from avsplit.data.motion import cache_extras
from avsplit.errors import AvsplitError, ConfigError
from avsplit.models import ModelConfig
from avsplit.scan import load_dataset
from avsplit.training.config import TrainConfig


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


def _hold_out(videos: list[CachedVideo], cfg: ModelConfig, seed: int) -> tuple[list[CachedVideo], list[CachedVideo]]:
    """``(train, val)``: a tenth of ``videos`` (at least ``num_mix``) held out, drawn with ``seed``; where
    too few would be left to train on, every video is both."""
    n_val = max(cfg.num_mix, len(videos) // 10)
    if len(videos) - n_val >= max(cfg.num_mix, 4):
        order = np.random.default_rng(seed).permutation(len(videos))
        return [videos[i] for i in sorted(order[n_val:])], [videos[i] for i in sorted(order[:n_val])]
    warn_line("too few videos to hold some out: validating on the training videos")
    return videos, videos


def training_videos(data, val, cfg: ModelConfig, tcfg: TrainConfig, cache_root: Path, jobs: int, rank: int,
                    distributed: bool) -> tuple[list[CachedVideo], list[CachedVideo]]:
    """``(train, val)`` videos, preprocessed into the cache under ``cache_root``. Under ``torchrun`` rank 0
    builds the cache first; the others then find every entry ready."""
    settings = PreprocessSettings(audio=cfg.audio, video=cfg.video)
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
        train_videos, val_videos = _hold_out(train_videos, cfg, tcfg.seed)
    return train_videos, val_videos


def make_curriculum(videos: list[CachedVideo], tcfg: TrainConfig) -> Curriculum | None:
    """The curriculum of a run (None without one): its stages, or the default ones."""
    if not tcfg.curriculum:
        return None
    try:
        stages = parse_stages(tcfg.curriculum_stages) if tcfg.curriculum_stages else DEFAULT_STAGES
    except ValueError as exc:
        raise ConfigError(str(exc), fix="e.g. --curriculum-stages easy:2:0.2,hard:2:0.6,any:2:0.8,any:3:1") from None
    return Curriculum(videos, tcfg.steps, stages)


class StageSamplers:
    """The training sampler of each step: one per curriculum stage (one overall without a curriculum),
    made when its stage begins."""

    def __init__(self, videos: list[CachedVideo], cfg: ModelConfig, tcfg: TrainConfig, curriculum: Curriculum | None,
                 announce: bool):
        self.videos, self.cfg, self.tcfg, self.curriculum = videos, cfg, tcfg, curriculum
        self.announce = announce
        self.augment = Augment(timbre_db=tcfg.timbre_db, sound_styles=tcfg.sound_styles, styles=tcfg.picture_styles, composite=tcfg.composite, inset=tcfg.inset,
                               equal_level=tcfg.equal_level, gain_db=tcfg.gain_db, zoom=tcfg.zoom, silent=tcfg.silent,
                               silent_regions=tcfg.silent_regions,
                               **(PICTURE_VARIETY if tcfg.picture_variety else {}))
        self._samplers: dict[int, MixSampler] = {}

    def at(self, step: int) -> MixSampler:
        curriculum = self.curriculum
        index = curriculum.stage_index(step) if curriculum else 0
        if index not in self._samplers:
            if curriculum:
                stage = curriculum.stage_at(step)
                self._samplers[index] = MixSampler(self.videos, self.cfg, num_mix=stage.num_mix,
                                                   seed=self.tcfg.seed + 1000 * index, augment=self.augment,
                                                   pair_filter=curriculum.pair_filter(stage))
                if self.announce:
                    log.info(f"step {step}: curriculum {curriculum.describe(stage)}")
            else:
                self._samplers[index] = MixSampler(self.videos, self.cfg, seed=self.tcfg.seed, augment=self.augment)
        return self._samplers[index]
