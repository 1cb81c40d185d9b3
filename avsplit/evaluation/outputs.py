"""``evaluate``'s outputs: the tables on the console, JSON, CSV and Markdown."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, Sequence

from rich.table import Table

from avsplit.console import stdout_console
from avsplit.evaluation.breakdown import markdown_lines
from avsplit.evaluation.scores import LOC_METHODS, LOC_METRICS, METHODS, METRICS, EvalItem
from avsplit.files import atomic_path, json_text


# ------------------------------------------------------------------ output


def print_table(summary: dict[str, Any], title: str = "avsplit evaluate") -> None:

    table = Table(title=title)
    for col in ("protocol", "method", "n", "SDR", "SIR", "SAR", "NSDR", "SDR median"):
        # names fold onto more lines instead of being cut off; numbers stay whole
        table.add_column(col, justify="right" if col not in ("protocol", "method") else "left",
                         overflow="fold", no_wrap=col not in ("protocol", "method", "SDR median"))
    for key, entry in summary.items():
        for method in METHODS:
            if method not in entry:
                continue
            m = entry[method]
            table.add_row(key, method, str(entry["scored"]), *(f"{m[k]['mean']:.2f}" for k in METRICS),
                          f"{m['sdr']['median']:.2f}")
        if entry["skipped"]:
            table.add_row(key, f"[dim]{entry['skipped']} skipped (silent references or unreadable)[/dim]", "", "", "", "", "", "")
    stdout_console.print(table)
    _print_localization_table(summary)


def localization_rows(summary: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(group, method, scores)`` rows of the localization results, plus an ``all`` row per method
    pooling every frame when there are several groups (frame-weighted, so exact)."""
    rows = []
    for key, entry in summary.items():
        for method, m in (entry.get("localization") or {}).items():
            rows.append((key, method, m))
    groups = {k for k, _, _ in rows}
    if len(groups) > 1:
        for method in LOC_METHODS:
            ms = [m for _, meth, m in rows if meth == method]
            frames = sum(m["frames"] for m in ms)
            if frames:
                pooled = {k: sum(m[k] * m["frames"] for m in ms) / frames for k in LOC_METRICS}
                rows.append(("all", method, {**pooled, "frames": frames, "videos": sum(m["videos"] for m in ms)}))
    return rows


def _print_localization_table(summary: dict[str, Any]) -> None:

    rows = localization_rows(summary)
    if not rows:
        return
    table = Table(title="localization (frames pooled)")
    for col in ("protocol", "method", "videos", "frames", "cIoU", "cIoU@0.5", "AUC"):
        table.add_column(col, justify="right" if col not in ("protocol", "method") else "left", overflow="fold")
    for key, method, m in rows:
        table.add_row(key, method, str(m["videos"]), str(m["frames"]), f"{m['ciou']:.3f}", f"{m['ciou50']:.3f}",
                      f"{m['auc']:.3f}")
    stdout_console.print(table)


def write_outputs(items: Sequence[EvalItem], summary: dict[str, Any], meta: dict[str, Any],
                  json_path: Path | None, csv_path: Path | None, md_path: Path | None) -> None:
    rows = [it.row() for it in items]
    if json_path:
        payload = {"meta": meta, "summary": summary,
                   "items": [{**r, "per_source": it.per_source} for r, it in zip(rows, items)]}
        text = json_text(payload, indent=2)
        if str(json_path) == "-":  # --json -: to stdout
            sys.stdout.write(text + "\n")
        else:
            with atomic_path(json_path) as tmp:
                tmp.write_text(text)
    if csv_path:
        fields: list[str] = []
        for r in rows:
            fields += [k for k in r if k not in fields]
        with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
    if md_path:
        lines = ["# avsplit evaluate", "", f"weights: `{meta.get('weights', '')}`, data: `{meta.get('data', '')}`, "
                 f"seed {meta.get('seed')}, {meta.get('pairs')} mixtures of {meta.get('num_mix')}", "",
                 "| protocol | method | n | SDR | SIR | SAR | NSDR | SDR median |", "|---|---|---|---|---|---|---|---|"]
        for key, entry in summary.items():
            for method in METHODS:
                if method in entry:
                    m = entry[method]
                    lines.append(f"| {key} | {method} | {entry['scored']} | "
                                 + " | ".join(f"{m[k]['mean']:.2f}" for k in METRICS) + f" | {m['sdr']['median']:.2f} |")
        loc_rows = localization_rows(summary)
        if loc_rows:
            lines += ["", "## Localization", "", "cIoU per frame (map min-max normalised, thresholded at its median) "
                      "against the boxes of the sounding sources; frames pooled.", "",
                      "| protocol | method | videos | frames | cIoU | cIoU@0.5 | AUC |", "|---|---|---|---|---|---|---|"]
            for key, method, m in loc_rows:
                lines.append(f"| {key} | {method} | {m['videos']} | {m['frames']} | {m['ciou']:.3f} | "
                             f"{m['ciou50']:.3f} | {m['auc']:.3f} |")
        lines += markdown_lines(summary)
        lines += ["", "## Items", "", "| protocol | name | categories | model SDR | skipped |", "|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['protocol']} | {r['name']} | {r['categories']} | {r.get('model_sdr', '')} | {r['skipped']} |")
        with atomic_path(md_path) as tmp:
            tmp.write_text("\n".join(lines) + "\n")
