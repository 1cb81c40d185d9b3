"""``evaluate``'s breakdowns: source-count accuracy and scores per domain.

**Count**: ``separate`` chooses the number of sources by itself (:mod:`avsplit.inference.counting`); for
every video whose truth says how many sources it has (``synth`` duets, and solos: one), the
share split into the right number of tracks, per kind (``different-kind``, ``same-kind``,
``solo``).

**Domains**: a truth file of version 2 names the clip's domain, a top-level ``"domain"`` with
:data:`DOMAIN_AXES` (per-source values that differ joined by ``+``) and ``"split"`` (``train``,
``foreign`` or ``real``). A clip without one (version 1) is of domain ``unknown``. A mixture of
solos joins its solos' values per axis; its split is the farthest from training of theirs
(:data:`SPLIT_ORDER`). Every protocol group of the summary gets ``domains``: per axis (``split``
first: in-domain vs out-of-domain), per value, the items and their mean scores. The mix protocol
also gets ``source_domains``: each source scored by its own domain (a mixture of an emoji and an
outline glyph says which of the two was separated), and by its ``level`` in the mixture
(:func:`level_bin`: a source far quieter than the others is the hardest to pull out).
"""

from __future__ import annotations

import json
from itertools import permutations
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from avsplit.console import console
from avsplit.scan import truth_path

DOMAIN_AXES = ("sound_maker", "soundfont", "chain", "glyph", "background", "motion")
UNKNOWN = "unknown"
#: Splits from in-domain to farthest out: a mixture takes the last of its solos' splits.
SPLIT_ORDER = ("train", UNKNOWN, "foreign", "real")
COUNT_KINDS = ("different-kind", "same-kind", "solo")
#: A source's level in its mixture, binned: its input SDR (the mixture scored as its estimate),
#: below, within or above this many dB.
LEVEL_BIN_DB = 6.0


def level_bin(mixture_sdr: float) -> str:
    """The ``level`` a source of a mixture is filed under, from its input SDR (dB)."""
    if mixture_sdr < -LEVEL_BIN_DB:
        return f"under -{LEVEL_BIN_DB:g} dB"
    return f"over +{LEVEL_BIN_DB:g} dB" if mixture_sdr > LEVEL_BIN_DB else f"-{LEVEL_BIN_DB:g} to +{LEVEL_BIN_DB:g} dB"


def truth_domain(truth: dict | None) -> dict[str, str]:
    """``{"split": ..., axis: value, ...}`` of a truth file's content (all ``unknown`` without one)."""
    domain = (truth or {}).get("domain") or {}
    out = {"split": str(domain.get("split") or UNKNOWN)}
    for axis in DOMAIN_AXES:
        out[axis] = str(domain.get(axis) or UNKNOWN)
    return out


def read_domain(video: Path) -> dict[str, str]:
    """The domain of ``video`` from ``<stem>.truth.json`` beside it (``unknown`` when absent or unreadable)."""
    truth_file = truth_path(video)
    try:
        return truth_domain(json.loads(truth_file.read_text()))
    except (OSError, json.JSONDecodeError, AttributeError):
        return truth_domain(None)


def join_domains(domains: Sequence[dict[str, str]]) -> dict[str, str]:
    """The domain of a mixture of clips: per axis their distinct values joined by ``+`` (in order);
    the split farthest from training (:data:`SPLIT_ORDER`; an unheard-of split counts as foreign)."""
    def rank(split: str) -> int:
        return SPLIT_ORDER.index(split) if split in SPLIT_ORDER else SPLIT_ORDER.index("foreign")

    out = {"split": max((d["split"] for d in domains), key=rank) if domains else UNKNOWN}
    for axis in DOMAIN_AXES:
        values: list[str] = []
        for d in domains:
            for v in d.get(axis, UNKNOWN).split("+"):
                if v not in values:
                    values.append(v)
        out[axis] = "+".join(values) or UNKNOWN
    return out


def count_summary(items: Sequence) -> dict[str, Any] | None:
    """Over items with a count (``found_sources`` set): ``videos``, ``right``, ``accuracy`` and
    ``found`` (how many videos got each number of tracks); None when no item has one."""
    counted = [it for it in items if it.found_sources is not None]
    if not counted:
        return None
    right = sum(it.found_sources == it.expected_sources for it in counted)
    found: dict[str, int] = {}
    for it in sorted(counted, key=lambda it: it.found_sources):
        found[str(it.found_sources)] = found.get(str(it.found_sources), 0) + 1
    return {"videos": len(counted), "right": right, "accuracy": right / len(counted),
            "expected": sorted({it.expected_sources for it in counted}), "found": found}


def group_stats(items: Sequence) -> dict[str, Any]:
    """Compact scores of a group of items: counts, model and mixture SDR, localization, count accuracy."""
    valid = [it for it in items if not it.skipped]
    out: dict[str, Any] = {"items": len(items), "scored": sum(bool(it.scores) for it in valid)}
    for method in ("model", "mixture"):
        sdr = [it.scores[method]["sdr"] for it in valid if method in it.scores]
        if sdr:
            out[f"{method}_sdr"] = {"mean": float(np.mean(sdr)), "median": float(np.median(sdr))}
    ciou50 = [it.localization["model"]["ciou50"] for it in valid if "model" in it.localization]
    if ciou50:
        out["loc_model_ciou50"] = float(np.mean(ciou50))
    count = count_summary(items)
    if count:
        out["count"] = {k: count[k] for k in ("videos", "right", "accuracy")}
    return out


def domain_summary(items: Sequence) -> dict[str, dict[str, Any]]:
    """Per axis (``split`` first), per value: :func:`group_stats` of the items with that value."""
    out: dict[str, dict[str, Any]] = {}
    for axis in ("split",) + DOMAIN_AXES:
        values: dict[str, list] = {}
        for it in items:
            values.setdefault(it.domain.get(axis, UNKNOWN), []).append(it)
        out[axis] = {v: group_stats(group) for v, group in sorted(values.items())}
    return out


def source_score(item, method: str, metric: str, source: int) -> float | None:
    """``metric`` of ``method`` for source ``source`` of ``item``; None where that source was not scored
    (silent, undefined, or the item skipped)."""
    scores = item.per_source.get(method, {})
    try:
        return scores[metric][scores["sources"].index(source)]
    except (KeyError, ValueError, IndexError):
        return None


def source_domain_summary(items: Sequence) -> dict[str, dict[str, Any]]:
    """Per source of the items with ``source_domains`` (the mix protocol): per axis (``split`` first,
    then the domain axes and ``level``), per value of that source's own domain (or level bin),
    ``sources`` and the means of its model and mixture SDR and of ``gain`` (model minus mixture).
    Sources not scored by both (silent, undefined) are left out; ``{}`` when none."""
    pairs: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for it in items:
        if it.skipped or not it.source_domains or not {"model", "mixture"} <= set(it.per_source):
            continue
        for s, domain in enumerate(it.source_domains):
            model_sdr, mixture_sdr = source_score(it, "model", "sdr", s), source_score(it, "mixture", "sdr", s)
            if model_sdr is None or mixture_sdr is None:
                continue
            values = {axis: domain.get(axis, UNKNOWN) for axis in ("split",) + DOMAIN_AXES}
            values["level"] = level_bin(mixture_sdr)
            for axis, value in values.items():
                pairs.setdefault(axis, {}).setdefault(value, []).append((model_sdr, mixture_sdr))
    out: dict[str, dict[str, Any]] = {}
    for axis, values in pairs.items():
        out[axis] = {}
        for value, scores in sorted(values.items()):
            model_sdr, mixture_sdr = np.array(scores).T
            out[axis][value] = {"sources": len(scores), "model_sdr": float(model_sdr.mean()),
                                "mixture_sdr": float(mixture_sdr.mean()), "gain": float((model_sdr - mixture_sdr).mean())}
    return out


def add_breakdowns(summary: dict[str, Any], groups: dict[str, list]) -> None:
    """Add ``count`` (where counted), ``domains`` and, for the mix protocol, ``source_domains`` to each
    protocol group's entry of ``summary``."""
    for key, group in groups.items():
        entry = summary.setdefault(key, {"items": len(group), "scored": 0, "skipped": 0})
        count = count_summary(group)
        if count:
            entry["count"] = count
        entry["domains"] = domain_summary(group)
        per_source = source_domain_summary(group)
        if per_source:
            entry["source_domains"] = per_source


def box_order(track_boxes: Sequence[Sequence[float]], truth_boxes: Sequence[Sequence[float]]) -> list[int]:
    """The order in which to score as many tracks as the truth has sources: each track against the
    source whose box its region's box overlaps: the permutation of ``track_boxes`` (x0, y0, x1, y1)
    with the largest summed IoU with ``truth_boxes``, the given (left-to-right) order on a tie.
    Left to right alone pairs them wrongly where players stand one above the other or one in front."""
    iou = np.array([[box_iou(t, r) for r in truth_boxes] for t in track_boxes])  # (E, N)
    return list(max(permutations(range(len(track_boxes))), key=lambda p: sum(iou[p[i], i] for i in range(len(p)))))


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def match_tracks(refs: np.ndarray, est: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """Estimates ``(E, n)`` of references ``(N, n)`` as ``(N, n)``: in order when ``E == N``; the
    mixture for every reference when fewer (unseparated); when more, each track added to the
    reference it correlates with best (a reference given none gets the mixture)."""
    n_refs = refs.shape[0]
    if est.shape[0] == n_refs:
        return est
    if est.shape[0] < n_refs:
        return np.stack([mix] * n_refs)
    ref_n = refs / np.linalg.norm(refs, axis=1, keepdims=True).clip(min=1e-8)
    est_n = est / np.linalg.norm(est, axis=1, keepdims=True).clip(min=1e-8)
    owner = np.argmax(est_n @ ref_n.T, axis=1)  # (E,)
    return np.stack([est[owner == r].sum(0) if (owner == r).any() else mix for r in range(n_refs)])


# ------------------------------------------------------------------------------ tables


def count_rows(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(kind, count)`` rows: the count of each group that has one."""
    return [(key.split("/")[-1], entry["count"]) for key, entry in summary.items() if entry.get("count")]


def _found_text(count: dict[str, Any]) -> str:
    return " ".join(f"{n}:{v}" for n, v in count["found"].items())


def print_count_table(summary: dict[str, Any]) -> None:
    """Source-count accuracy per kind (fits 80 columns)."""
    from rich.table import Table

    rows = count_rows(summary)
    if not rows:
        return
    table = Table(title="source count (automatic)")
    for col in ("kind", "videos", "right", "accuracy", "tracks:videos"):
        table.add_column(col, justify="left" if col in ("kind", "tracks:videos") else "right")
    for kind, c in rows:
        table.add_row(kind, str(c["videos"]), str(c["right"]), f"{100 * c['accuracy']:.0f}%", _found_text(c))
    console.print(table)


def domain_rows(summary: dict[str, Any], axes: Sequence[str] = ("split",)) -> list[tuple[str, str, str, dict]]:
    """``(group, axis, value, stats)`` rows for ``axes``; an axis whose only value is ``unknown`` is left out."""
    rows = []
    for key, entry in summary.items():
        for axis in axes:
            values = (entry.get("domains") or {}).get(axis) or {}
            if set(values) - {UNKNOWN}:
                rows += [(key, axis, v, s) for v, s in values.items()]
    return rows


def _stat_cells(s: dict[str, Any]) -> list[str]:
    def sdr(method):
        return f"{s[method]['mean']:.2f}" if method in s else "-"

    count = s.get("count")
    return [str(s["items"]), sdr("model_sdr"), sdr("mixture_sdr"),
            f"{100 * count['accuracy']:.0f}%" if count else "-",
            f"{s['loc_model_ciou50']:.3f}" if "loc_model_ciou50" in s else "-"]


def print_domain_table(summary: dict[str, Any], by_domain: bool = False) -> None:
    """In-domain vs out-of-domain (the ``split`` axis) per protocol group; every axis with ``by_domain``."""
    from rich.table import Table

    rows = domain_rows(summary, ("split",) + (DOMAIN_AXES if by_domain else ()))
    if not rows:
        return
    table = Table(title="per domain" if by_domain else "in-domain vs out-of-domain")
    for col in ("group", "domain", "n", "SDR", "mix SDR", "count", "cIoU50"):
        table.add_column(col, justify="left" if col in ("group", "domain") else "right", overflow="fold")
    for key, axis, value, s in rows:
        table.add_row(key, value if axis == "split" else f"{axis}={value}", *_stat_cells(s))
    console.print(table)
    sources = source_rows(summary)
    if by_domain and sources:
        table = Table(title="per source, by its own domain")
        for col in ("group", "domain", "sources", "SDR", "mix SDR", "gain"):
            table.add_column(col, justify="left" if col in ("group", "domain") else "right", overflow="fold")
        for key, axis, value, s in sources:
            table.add_row(key, f"{axis}={value}", str(s["sources"]), *(f"{s[k]:.2f}" for k in ("model_sdr", "mixture_sdr", "gain")))
        console.print(table)


def source_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, dict]]:
    """``(group, axis, value, stats)`` rows of every group's ``source_domains``; an axis whose only
    value is ``unknown`` is left out."""
    return [(key, axis, value, s) for key, entry in summary.items()
            for axis, values in (entry.get("source_domains") or {}).items() if set(values) - {UNKNOWN}
            for value, s in values.items()]


def markdown_lines(summary: dict[str, Any]) -> list[str]:
    """Markdown sections for the count and every domain axis."""
    lines: list[str] = []
    rows = count_rows(summary)
    if rows:
        lines += ["", "## Source count", "", "Videos split into the right number of tracks by the automatic count.", "",
                  "| kind | videos | right | accuracy | tracks:videos |", "|---|---|---|---|---|"]
        lines += [f"| {k} | {c['videos']} | {c['right']} | {100 * c['accuracy']:.0f}% | {_found_text(c)} |" for k, c in rows]
    drows = domain_rows(summary, ("split",) + DOMAIN_AXES)
    if drows:
        lines += ["", "## Domains", "", "| group | axis | value | n | SDR | mixture SDR | count | cIoU@0.5 |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {key} | {axis} | {value} | " + " | ".join(_stat_cells(s)) + " |" for key, axis, value, s in drows]
    srows = source_rows(summary)
    if srows:
        lines += ["", "## Sources by their own domain", "", "Each source of a mixture scored by its own domain.", "",
                  "| group | axis | value | sources | SDR | mixture SDR | gain |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {key} | {axis} | {value} | {s['sources']} | {s['model_sdr']:.2f} | {s['mixture_sdr']:.2f} | "
                  f"{s['gain']:.2f} |" for key, axis, value, s in srows]
    return lines
