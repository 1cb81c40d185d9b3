"""What is scored and how it is summarised: one scored item (:class:`EvalItem`), BSS Eval of its
estimates, cIoU of its maps, and the mean and median per protocol group."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from avsplit.console import warn_line
from avsplit.errors import AvsplitError
from avsplit.evaluation.breakdown import add_breakdowns
from avsplit.evaluation.bss import bss_eval
from avsplit.evaluation.localization import localization_cious, summarize_cious, truth_has_boxes


METRICS = ("sdr", "sir", "sar", "nsdr")
METHODS = ("model", "mixture", "oracle_ibm", "oracle_irm", "model_fullband")
#: Candidate windows tried per solo to find a sounding clip.
WINDOW_TRIES = 4
#: Localization methods and scores (wild items with truth boxes; see avsplit.evaluation.localization):
#: mean cIoU, share of frames with cIoU >= 0.5, area under the success curve.
LOC_METHODS = ("model", "onsets")
LOC_METRICS = ("ciou", "ciou50", "auc")


@dataclass
class EvalItem:
    protocol: str  # "mix" or "wild"
    name: str
    videos: list[str]
    categories: list[str | None]
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> metric -> mean over sources
    per_source: dict[str, dict[str, list]] = field(default_factory=dict)  # method -> metric -> per scored source; "sources": their indices
    silent: list[int] = field(default_factory=list)
    undefined: dict[str, list[int]] = field(default_factory=dict)  # method -> sources with non-finite scores
    skipped: str | None = None
    kind: str = ""  # for wild: "same-kind" / "different-kind"
    localization: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> ciou/ciou50/auc/frames
    loc_cious: dict[str, list[float]] = field(default_factory=dict, repr=False)  # method -> per-frame cIoU
    expected_sources: int = 0  # how many sources the truth has (wild and count items)
    found_sources: int | None = None  # how many the automatic count found (None: not counted)
    domain: dict[str, str] = field(default_factory=dict)  # split and axis -> value (avsplit.evaluation.breakdown)
    source_domains: list[dict[str, str]] = field(default_factory=list)  # mix: each source's own domain

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"protocol": self.protocol, "name": self.name, "kind": self.kind,
                               "videos": " + ".join(self.videos),
                               "categories": " + ".join(c or "?" for c in self.categories),
                               "skipped": self.skipped or "", "silent_sources": ",".join(map(str, self.silent))}
        if self.undefined:
            row["undefined_sources"] = "; ".join(f"{m}: {','.join(map(str, s))}" for m, s in self.undefined.items())
        for method, metrics in self.scores.items():
            for k, v in metrics.items():
                row[f"{method}_{k}"] = round(v, 4)
        for method, metrics in self.localization.items():
            for k, v in metrics.items():
                row[f"loc_{method}_{k}"] = round(v, 4) if isinstance(v, float) else v
        if self.found_sources is not None:
            row.update(sources_expected=self.expected_sources, sources_found=self.found_sources)
        for axis, value in self.domain.items():
            row[f"domain_{axis}"] = value
        return row




def score(item: EvalItem, reference: np.ndarray, mix: np.ndarray, estimates: dict[str, np.ndarray]) -> None:
    """Fill ``item.scores`` for every method in ``estimates``."""
    for method, est in estimates.items():
        s = bss_eval(reference, est, mix)
        if s.undefined:
            item.undefined[method] = s.undefined
            warn_line(f"{item.name}: {method} scores undefined (not finite) for sources {s.undefined}; "
                      "left out of the means")
        if not s.valid:
            item.skipped = (f"fewer than two sounding references (silent: {s.silent})" if not s.undefined
                            else f"scores undefined (not finite) for every source of {method}")
            item.silent = s.silent
            return
        item.silent = s.silent
        item.scores[method] = s.mean()
        item.per_source[method] = {"sdr": s.sdr, "sir": s.sir, "sar": s.sar, "nsdr": s.nsdr, "sources": s.sources}


def summarize(items: Sequence[EvalItem]) -> dict[str, Any]:
    """Mean and median of each metric per protocol (and duet kind) and method; skipped items excluded."""
    out: dict[str, Any] = {}
    groups: dict[str, list[EvalItem]] = {}
    for it in items:
        key = it.protocol if not it.kind else f"{it.protocol}/{it.kind}"
        groups.setdefault(key, []).append(it)
    for key, group in groups.items():
        valid = [it for it in group if not it.skipped]
        entry: dict[str, Any] = {"items": len(group), "scored": sum(bool(it.scores) for it in valid),
                                 "skipped": len(group) - len(valid)}
        for method in METHODS:
            vals = {k: [it.scores[method][k] for it in valid if method in it.scores] for k in METRICS}
            if vals["sdr"]:
                entry[method] = {k: {"mean": float(np.mean(v)), "median": float(np.median(v))} for k, v in vals.items()}
        loc = summarize_localization(group)
        if loc:
            entry["localization"] = loc
        out[key] = entry
    add_breakdowns(out, groups)
    return out


def summarize_localization(items: Sequence[EvalItem]) -> dict[str, Any]:
    """Per localization method: the scores over all frames pooled (``ciou``, ``ciou50``, ``auc``,
    ``frames``, ``videos``) and the mean and median over videos (``per_video``)."""

    out: dict[str, Any] = {}
    for method in LOC_METHODS:
        scored = [it for it in items if it.loc_cious.get(method)]
        if not scored:
            continue
        pooled = summarize_cious([c for it in scored for c in it.loc_cious[method]])
        per_video = {k: [it.localization[method][k] for it in scored] for k in LOC_METRICS}
        out[method] = {**{k: pooled[k] for k in LOC_METRICS}, "frames": pooled["frames"], "videos": len(scored),
                       "per_video": {k: {"mean": float(np.mean(v)), "median": float(np.median(v))}
                                     for k, v in per_video.items()}}
    return out


def score_localization(item: EvalItem, video: Path, truth: dict, engine) -> None:
    """Fill ``item.localization`` (both methods) when the truth has per-frame boxes."""

    if not truth_has_boxes(truth):
        return
    try:
        cious = localization_cious(video, truth, engine, LOC_METHODS)
    except AvsplitError as exc:
        warn_line(f"{video}: localization not scored ({exc})")
        return
    for method, values in cious.items():
        if values:
            item.loc_cious[method] = values
            item.localization[method] = summarize_cious(values)
