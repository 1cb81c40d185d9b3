"""``avsplit evaluate``: both protocols over a data folder (see :mod:`avsplit.evaluation`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from avsplit.console import error_line, make_progress
from avsplit.errors import AvsplitError, MediaError
from avsplit.evaluation.breakdown import join_domains, read_domain
from avsplit.evaluation.mix import Evaluator, draw_mixtures
from avsplit.evaluation.report import write_item_report
from avsplit.evaluation.scores import METHODS, EvalItem, score, summarize
from avsplit.evaluation.wild import count_solo, evaluate_wild
from avsplit.inference import SeparationEngine
from avsplit.models import AVSeparator
from avsplit.scan import load_dataset, truth_path


def _is_multi_source(video: Path) -> bool:
    truth = truth_path(video)
    if not truth.exists():
        return False
    try:
        return len(json.loads(truth.read_text()).get("sources", [])) > 1
    except (OSError, json.JSONDecodeError):
        return False




def evaluate(
    data: str | Path,
    model: AVSeparator,
    device: torch.device,
    *,
    pairs: int = 32,
    num_mix: int = 2,
    seed: int = 0,
    same_category: bool = False,
    wild: bool = True,
    localization: bool = True,
    weights_name: str = "",
    report_dir: Path | None = None,
    count: str = "auto",
    zoom: bool = False,
) -> tuple[list[EvalItem], dict[str, Any]]:
    """Run both protocols over ``data``; returns the items and the summary.

    ``count``: ``auto`` (wild videos are split into as many tracks as ``separate`` finds, and the
    mixed solos that have a truth file are counted too) or ``truth`` (as many as the truth says;
    no count is scored). ``zoom``: sources seen closer, as ``separate --zoom`` does."""
    if count not in ("auto", "truth"):
        raise AvsplitError(f"unknown count {count!r}", fix="use auto or truth")

    items_all = load_dataset(data)
    solos = [it for it in items_all if not _is_multi_source(it.path)]
    multis = [it for it in items_all if _is_multi_source(it.path)] if wild else []
    # The mix protocol runs the weights as loaded (as its published scores were measured); the
    # engine of the other protocols then stores them channels-last (faster, equal to ~1e-7).
    evaluator = Evaluator(SeparationEngine(model, device, channels_last=False), zoom)
    results: list[EvalItem] = []
    groups = draw_mixtures(solos, pairs, num_mix, seed, same_category) if len(solos) >= num_mix else []
    if len(solos) < num_mix and not multis:
        raise AvsplitError(f"found {len(solos)} solo videos; mixing needs at least {num_mix}", Path(data),
                           "give a folder with more solo videos")
    total = len(groups) + len(multis)
    with make_progress() as progress:
        task = progress.add_task("evaluating", total=total, status="")
        for gi, g in enumerate(groups):
            vids = [solos[i] for i in g]
            domains = [read_domain(v.path) for v in vids]
            item = EvalItem("mix", "+".join(v.id.replace("/", "_") for v in vids), [str(v.path) for v in vids],
                            [v.category for v in vids], domain=join_domains(domains), source_domains=domains)
            try:
                out = evaluator.mixture([v.path for v in vids], seed=seed * 100_003 + gi)
            except MediaError as exc:
                error_line(str(exc))
                item.skipped = str(exc)
            else:
                score(item, out["reference"], out["mix"], {m: out[m] for m in METHODS if m in out})
                if report_dir is not None and not item.skipped:

                    write_item_report(report_dir, item, out, model.config.audio.sample_rate)
            results.append(item)
            progress.advance(task)
        counted = [solos[i] for i in sorted({i for g in groups for i in g})] if wild and count == "auto" else []
        counted = [v for v in counted if truth_path(v.path).exists()]
        if multis or counted:
            engine = SeparationEngine(model, device)
            progress.update(task, total=total + len(counted))
            for it in counted:
                results.append(count_solo(it, engine))
                progress.advance(task)
            for it in multis:
                results.append(evaluate_wild(it, engine, localization, count == "auto", zoom))
                progress.advance(task)
    return results, summarize(results)
