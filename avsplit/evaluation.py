"""Deterministic evaluation (``avsplit evaluate``).

Two protocols, both scored with BSS Eval v3 (:mod:`avsplit.metrics`):

- **mix**: mixtures of N solo videos drawn deterministically from the data with ``seed``; each
  solo's clip is the reference, the model separates the sum using each solo's own frames. The
  same table holds baselines at the model's STFT: the unseparated mixture (lower bound) and the
  oracle ideal binary and ratio masks (upper bounds for any mask-based method).
- **wild**: videos with several sources and ground truth beside them (``<stem>.truth.json`` and
  ``<stem>.source-<k>.wav``, as ``avsplit synth`` writes for duets) are separated as
  ``avsplit separate`` does, choosing the number of sources itself (``count="truth"``: as many as
  the truth has), and compared with the clean tracks (both ordered left to right). A video split
  into fewer tracks than it has sources is unseparated: every source is scored against the
  mixture; one split into more has each track added to the source it correlates with best.
  Scored at the model's rate (the paper's protocol, method ``model``) and, as ``model_fullband``,
  as ``separate`` writes them by default: full band at the truth's own rate (mono mixdowns of the
  tracks and of the truth).

Source count (:mod:`avsplit.breakdown`): the share of wild videos split into the right number of
tracks, per kind, and of the mixed solos that have a truth file left as one track (``count/solo``).
Every protocol group is also broken down per domain (the truth's ``domain``; in-domain vs
out-of-domain by its ``split``).

Localization (where the truth has per-frame boxes, as ``synth`` writes them): the wild videos are
also localized by both ``localize`` methods (``model`` and ``onsets``) and scored per frame by
cIoU against the boxes of the sources sounding in that frame (:mod:`avsplit.localization_metrics`):
mean cIoU, share of frames with cIoU >= 0.5 and AUC, in the same table, JSON, CSV and Markdown.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from avsplit import io as media
from avsplit.breakdown import add_breakdowns, join_domains, markdown_lines, match_tracks, read_domain
from avsplit.console import error_line, make_progress, stdout_console, warn_line
from avsplit.data.scan import VideoItem, load_dataset
from avsplit.errors import AvsplitError, MediaError
from avsplit.files import atomic_path
from avsplit.metrics import bss_eval
from avsplit.models import AVSeparator
from avsplit.models.inputs import visual_inputs
from avsplit.dsp.transforms import ideal_binary_mask, ideal_ratio_mask

METRICS = ("sdr", "sir", "sar", "nsdr")
METHODS = ("model", "mixture", "oracle_ibm", "oracle_irm", "model_fullband")
#: Candidate windows tried per solo to find a sounding clip.
WINDOW_TRIES = 4
#: Localization methods and scores (wild items with truth boxes; see avsplit.localization_metrics):
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
    per_source: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    silent: list[int] = field(default_factory=list)
    skipped: str | None = None
    kind: str = ""  # for wild: "same-kind" / "different-kind"
    localization: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> ciou/ciou50/auc/frames
    loc_cious: dict[str, list[float]] = field(default_factory=dict, repr=False)  # method -> per-frame cIoU
    expected_sources: int = 0  # how many sources the truth has (wild and count items)
    found_sources: int | None = None  # how many the automatic count found (None: not counted)
    domain: dict[str, str] = field(default_factory=dict)  # split and axis -> value (avsplit.breakdown)

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"protocol": self.protocol, "name": self.name, "kind": self.kind,
                               "videos": " + ".join(self.videos),
                               "categories": " + ".join(c or "?" for c in self.categories),
                               "skipped": self.skipped or "", "silent_sources": ",".join(map(str, self.silent))}
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


def _truth_path(video: Path) -> Path:
    return video.with_name(video.stem + ".truth.json")


def _is_multi_source(video: Path) -> bool:
    truth = _truth_path(video)
    if not truth.exists():
        return False
    try:
        return len(json.loads(truth.read_text()).get("sources", [])) > 1
    except (OSError, json.JSONDecodeError):
        return False


def draw_mixtures(items: Sequence[VideoItem], pairs: int, num_mix: int, seed: int, same_category: bool) -> list[list[int]]:
    """``pairs`` deterministic groups of ``num_mix`` distinct solos (different categories unless
    ``same_category`` or the categories are unknown)."""
    rng = np.random.default_rng(seed)
    groups: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()
    n = len(items)
    for _ in range(pairs * 50):
        if len(groups) == pairs:
            break
        g = sorted(int(i) for i in rng.choice(n, size=num_mix, replace=False))
        cats = [items[i].category for i in g]
        if not same_category and None not in cats and len(set(cats)) < num_mix:
            continue
        if tuple(g) in seen and len(seen) < math.comb(n, num_mix):
            continue
        seen.add(tuple(g))
        groups.append(g)
    return groups


class Evaluator:
    def __init__(self, model: AVSeparator, device: torch.device):
        self.model = model.eval().to(device)
        self.device = device
        self.cfg = model.config

    # ------------------------------------------------------------------ mix protocol
    def _solo_clip(self, path: Path, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A sounding clip of a solo: audio ``(S,)`` and frames ``(F, H, W, 3)`` from inside its window."""
        info = media.probe(path).require_video().require_audio()
        rate, size = self.cfg.audio.sample_rate, self.cfg.audio.clip_samples
        clip_s = size / rate
        span = max(0.0, info.duration - clip_s)
        best = None
        for _ in range(WINDOW_TRIES if span > 0 else 1):
            start = float(rng.uniform(0, span)) if span > 0 else 0.0
            wave = media.read_audio(path, rate, start=start, duration=clip_s)
            wave = np.pad(wave, (0, max(0, size - wave.shape[0])))[:size]
            rms = float(np.sqrt(np.mean(wave**2)))
            if best is None or rms > best[0]:
                best = (rms, start, wave)
            if rms > 0.01:
                break
        _, start, wave = best
        n = self.cfg.frames_per_window
        real = min(clip_s, info.duration - start)
        times = start + (np.arange(n) + 0.5) * real / n
        frames = media.read_frames(path, list(times), short_side=self.cfg.video.short_side)
        return wave.astype(np.float32), frames

    @torch.no_grad()
    def mixture(self, paths: Sequence[Path], seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        clips = [self._solo_clip(p, rng) for p in paths]
        refs = np.stack([c[0] for c in clips])  # (N, S)
        mix = refs.sum(0)
        m = self.model
        mix_t = torch.from_numpy(mix)[None].to(self.device)
        spec, warped = m.analyse(mix_t)
        feats = m.audio_features(warped)
        vectors = []
        for _, frames in clips:
            vectors.append(m.pool(m.visual_features(*visual_inputs(self.cfg, frames[None], self.device))))
        vectors = torch.stack(vectors, dim=1)  # (1, N, K) (motion models: (1, N, steps, K))
        masks = m.source_masks(m.mixture_logits(vectors, feats, warped))
        est = m.apply_masks(masks, spec, mix.shape[0])[0].cpu().numpy()
        # oracle masks at the model's (linear-frequency) STFT
        src_spec = m.spectrogram.stft(torch.from_numpy(refs).to(self.device))  # (N, F, T)
        mix_mag = spec.abs()  # (1, F, T)
        ibm = ideal_binary_mask(src_spec.abs()[None], mix_mag)[0]
        irm = ideal_ratio_mask(src_spec.abs()[None], mix_mag)[0]
        length = mix.shape[0]
        oracle = {
            "oracle_ibm": m.spectrogram.istft(ibm * spec, length).cpu().numpy(),
            "oracle_irm": m.spectrogram.istft(irm * spec, length).cpu().numpy(),
        }
        return {"reference": refs, "mix": mix, "model": est, "mixture": np.stack([mix] * len(paths)), **oracle,
                "frames": np.stack([c[1][len(c[1]) // 2] for c in clips]) if all(c[1].shape == clips[0][1].shape for c in clips) else None,
                "masks": masks[0].cpu().numpy(), "warped_mix": warped[0, 0].cpu().numpy()}


def score(item: EvalItem, reference: np.ndarray, mix: np.ndarray, estimates: dict[str, np.ndarray]) -> None:
    """Fill ``item.scores`` for every method in ``estimates``."""
    for method, est in estimates.items():
        s = bss_eval(reference, est, mix)
        if not s.valid:
            item.skipped = f"fewer than two sounding references (silent: {s.silent})"
            item.silent = s.silent
            return
        item.silent = s.silent
        item.scores[method] = s.mean()
        item.per_source[method] = {"sdr": s.sdr, "sir": s.sir, "sar": s.sar, "nsdr": s.nsdr}


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
    from avsplit.localization_metrics import summarize_cious

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
    from avsplit.localization_metrics import localization_cious, truth_has_boxes
    from avsplit.localization_metrics import summarize_cious

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
) -> tuple[list[EvalItem], dict[str, Any]]:
    """Run both protocols over ``data``; returns the items and the summary.

    ``count``: ``auto`` (wild videos are split into as many tracks as ``separate`` finds, and the
    mixed solos that have a truth file are counted too) or ``truth`` (as many as the truth says;
    no count is scored)."""
    if count not in ("auto", "truth"):
        raise AvsplitError(f"unknown count {count!r}", fix="use auto or truth")
    from avsplit.inference import SeparationEngine

    items_all = load_dataset(data)
    solos = [it for it in items_all if not _is_multi_source(it.path)]
    multis = [it for it in items_all if _is_multi_source(it.path)] if wild else []
    evaluator = Evaluator(model, device)
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
            item = EvalItem("mix", "+".join(v.id.replace("/", "_") for v in vids), [str(v.path) for v in vids],
                            [v.category for v in vids], domain=join_domains([read_domain(v.path) for v in vids]))
            try:
                out = evaluator.mixture([v.path for v in vids], seed=seed * 100_003 + gi)
            except MediaError as exc:
                error_line(str(exc))
                item.skipped = str(exc)
            else:
                score(item, out["reference"], out["mix"], {m: out[m] for m in METHODS if m in out})
                if report_dir is not None and not item.skipped:
                    from avsplit.report import write_item_report

                    write_item_report(report_dir, item, out, model.config.audio.sample_rate)
            results.append(item)
            progress.advance(task)
        counted = [solos[i] for i in sorted({i for g in groups for i in g})] if wild and count == "auto" else []
        counted = [v for v in counted if _truth_path(v.path).exists()]
        if multis or counted:
            engine = SeparationEngine(model, device)
            progress.update(task, total=total + len(counted))
            for it in counted:
                results.append(_count_solo(it, engine))
                progress.advance(task)
            import tempfile

            with tempfile.TemporaryDirectory(prefix="avsplit-eval-") as tmp:
                for it in multis:
                    results.append(_evaluate_wild(it, engine, Path(tmp), localization, count == "auto"))
                    progress.advance(task)
    return results, summarize(results)


def _count_solo(it: VideoItem, engine) -> EvalItem:
    """A solo's automatic source count (right when it is one), as ``separate`` finds its sources."""
    from avsplit.inference import WindowStream, discover_regions

    item = EvalItem("count", it.id.replace("/", "_"), [str(it.path)], [it.category], kind="solo", expected_sources=1,
                    domain=read_domain(it.path))
    try:
        item.found_sources = len(discover_regions(engine, WindowStream(it.path, engine.model, 0.25), None))
    except AvsplitError as exc:
        item.skipped = str(exc)
        error_line(f"{it.path}: {exc}")
    return item


def _evaluate_wild(it: VideoItem, engine, tmp: Path, localization: bool = True, auto_count: bool = True) -> EvalItem:
    from avsplit.inference import separate_video

    truth = json.loads(_truth_path(it.path).read_text())
    sources = truth["sources"]
    cats = [s.get("category") for s in sources]
    kind = "same-kind" if len(set(cats)) == 1 else "different-kind"
    item = EvalItem("wild", it.id.replace("/", "_"), [str(it.path)], cats, kind=kind, expected_sources=len(sources),
                    domain=read_domain(it.path))
    rate = engine.model.config.audio.sample_rate
    try:
        res = separate_video(it.path, tmp, engine, num_sources=None if auto_count else len(sources), sample_rate=rate,
                             mono=True, overwrite=True)
        tracks = len(res.sources)
        if auto_count:
            item.found_sources = tracks
        est = [media.read_audio_file(f)[0][0] for f in res.files[:tracks]]
        refs = []
        for s in sources:
            wave, sr = media.read_audio_file(it.path.with_name(s["audio"]))
            from avsplit.dsp.resample import resample

            refs.append(resample(wave.mean(0), sr, rate))
        mix = media.read_audio(it.path, rate)
    except (MediaError, OSError, KeyError) as exc:
        item.skipped = str(exc)
        error_line(f"{it.path}: {exc}")
        return item
    n = min([len(mix)] + [len(r) for r in refs] + [len(e) for e in est])
    refs_a = np.stack([r[:n] for r in refs])
    est_a = match_tracks(refs_a, np.stack([e[:n] for e in est]), mix[:n])
    score(item, refs_a, mix[:n], {"model": est_a, "mixture": np.stack([mix[:n]] * len(refs))})
    if not item.skipped:
        _score_fullband(item, it.path, [it.path.with_name(s["audio"]) for s in sources], engine, tmp / "fullband", tracks)
    if localization:
        score_localization(item, it.path, truth, engine)
    return item


def _score_fullband(item: EvalItem, video: Path, truth_files: Sequence[Path], engine, tmp: Path, tracks: int) -> None:
    """``item.scores["model_fullband"]``: the video separated as ``separate`` does by default (full
    band) into ``tracks`` tracks (the count the paper-protocol pass found), scored at the truth's own
    rate against the truth (mono mixdowns of both; tracks matched as in that pass)."""
    from avsplit.dsp.resample import resample
    from avsplit.inference import separate_video

    try:
        truth = [media.read_audio_file(f) for f in truth_files]
        rate = truth[0][1]
        res = separate_video(video, tmp, engine, num_sources=tracks, sample_rate=rate, mono=True, overwrite=True)
        est = [media.read_audio_file(f)[0][0] for f in res.files[:tracks]]
        mix = media.read_audio(video, rate)
    except (MediaError, OSError) as exc:
        error_line(f"{video}: full-band scores skipped ({exc})")
        return
    refs = [resample(w.mean(0), r, rate) for w, r in truth]
    n = min([len(mix)] + [len(r) for r in refs] + [len(e) for e in est])
    refs_a = np.stack([r[:n] for r in refs])
    est_a = match_tracks(refs_a, np.stack([e[:n] for e in est]), mix[:n])
    score(item, refs_a, mix[:n], {"model_fullband": est_a})


# ------------------------------------------------------------------ output


def print_table(summary: dict[str, Any], title: str = "avsplit evaluate") -> None:
    from rich.table import Table

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
    from rich.table import Table

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
        text = json.dumps(payload, indent=2)
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
