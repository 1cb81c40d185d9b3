"""What the automatic count has to go on: its cues on duets' true sources and on solos it might split.

The count (:mod:`avsplit.inference.counting`) first groups a video's moving cells into k groups,
then asks whether the groups are distinct sources. This measures both steps apart, on ``synth``
folders with truth:

- **grouping**: for each duet and k = 2, 3, 4, whether two of the k automatic groups fall on the
  two players (most of each group's cells inside a different player's box, counting only the cells
  that are in one player's box and not the other's);
- **cues**: for each duet, two regions on its players' truth boxes (each source's median box); for
  each solo, the count's own two groups (what a false split would be made of). For both, the cues
  a rule could use: the cosine similarity of the two regions' visual vectors, of the sounds their
  own masks separate (what the count compares today), of the sounds the masks made together
  separate, the correlation of the two regions' motion over time, and the weaker region's
  correlation with the sound's onsets. A cue is useful where duets and solos' splits fall apart.

    python benchmarks/bench_count_cues.py DATA [DATA ...] [--weights NAME|PATH] [--cache DIR] [--jsonl FILE]

Printed per folder and kind: the grouping tally, then the 10th, 50th and 90th percentile of each
cue. ``--cache`` is shared with ``bench_count.py``; ``--jsonl`` keeps one line per video.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_count import cached_discovery, truth_kind  # noqa: E402

from avsplit.api import load_model  # noqa: E402
from avsplit.inference import Discovery, SeparationEngine, counting, find_regions  # noqa: E402
from avsplit.inference.regions import Region, box_regions  # noqa: E402
from avsplit.scan import find_videos, truth_path  # noqa: E402

CUES = ("vectors", "own_masks", "joint_masks", "motion", "follows")


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().float(), b.flatten().float()
    return float(a @ b / (a.norm() * b.norm()).clamp(min=1e-8))


def truth_boxes(truth: dict) -> list[list[float]]:
    """Each source's median box over the clip."""
    return [np.median(np.asarray(s["boxes"], float), axis=0).tolist() for s in truth["sources"]]


def groups_on_players(engine: SeparationEngine, found: Discovery, truth: dict, k: int) -> bool:
    """Whether two of the count's ``k`` groups fall on the duet's two players (see the module doc)."""
    groups = find_regions(engine, found, k)
    players = box_regions(truth_boxes(truth), groups[0].cells.shape, found.video_size)
    own = [players[0].cells & ~players[1].cells, players[1].cells & ~players[0].cells]
    inside = np.array([[(g.cells & o).sum() / max(int(g.cells.sum()), 1) for o in own] for g in groups])
    return any(inside[i, 0] > 0.5 and inside[j, 1] > 0.5 for i in range(len(groups)) for j in range(len(groups)) if i != j)


def cues(engine: SeparationEngine, found: Discovery, regions: list[Region]) -> dict[str, float]:
    """The cues of two ``regions`` of a video (see the module doc)."""
    vectors = engine.vectors(found.seen, regions)  # (M, 2, [steps,] K)
    warped = found.heard.warped
    own = (engine.masks(found.heard, vectors, shared=False) * warped).transpose(0, 1)  # (2, M, Fl, T)
    joint = (engine.masks(found.heard, vectors, shared=True) * warped).transpose(0, 1)
    values = {"vectors": cosine(vectors[:, 0], vectors[:, 1]), "own_masks": cosine(own[0], own[1]),
              "joint_masks": cosine(joint[0], joint[1])}
    if found.seen.flow is not None:
        motion = counting.cell_motion(found.seen.flow, regions[0].cells.shape)
        series = np.stack([motion[:, r.cells].mean(1) for r in regions])  # (2, steps)
        flux = counting.sound_flux(warped, series.shape[1])
        corr = counting.correlation_matrix(np.concatenate([series, flux[None]]))
        values.update(motion=float(corr[0, 1]), follows=float(min(corr[0, 2], corr[1, 2])))
    return values


def measure(engine: SeparationEngine, video: Path, truth: dict, cache: Path | None, weights) -> dict | None:
    """One video's line: its kind, the grouping tally (duets) and the cues (None: a solo the count
    cannot split in two)."""
    found = cached_discovery(engine, video, cache, weights)
    kind = truth_kind(truth)
    line: dict = {"video": str(video), "kind": kind}
    if kind == "solo":
        regions = find_regions(engine, found, 2)
        if len(regions) < 2:
            return None
    elif len(truth["sources"]) == 2:
        regions = box_regions(truth_boxes(truth), tuple(found.seen.raw.shape[-2:]), found.video_size)
        line.update({f"groups_on_players_k{k}": groups_on_players(engine, found, truth, k) for k in (2, 3, 4)})
    else:
        return None
    line.update(cues(engine, found, regions))
    return line


def report(folder: str, lines: list[dict]) -> None:
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for line in lines:
        by_kind[line["kind"]].append(line)
    for kind, rows in sorted(by_kind.items()):
        tally = ", ".join(f"k={k} {sum(r[f'groups_on_players_k{k}'] for r in rows)}/{len(rows)}"
                          for k in (2, 3, 4) if f"groups_on_players_k{k}" in rows[0])
        print(f"{folder:>12} {kind:>15} ({len(rows)}){': groups on both players ' + tally if tally else ''}")
        for cue in CUES:
            values = [r[cue] for r in rows if cue in r]
            if values:
                p10, p50, p90 = np.percentile(values, [10, 50, 90])
                print(f"{'':>30}{cue:>12}: {p10:6.2f} {p50:6.2f} {p90:6.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", type=Path)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--jsonl", type=Path, default=None, help="also write one JSON line per video here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, _, weights = load_model(args.weights, "cpu")
    engine = SeparationEngine(model, torch.device("cpu"))
    out = args.jsonl.open("w") if args.jsonl else None
    for folder in args.data:
        lines = []
        for video in find_videos([folder]):
            if truth_path(video).exists():
                line = measure(engine, video, json.loads(truth_path(video).read_text()), args.cache, weights)
                if line is not None:
                    lines.append(line)
                    if out:
                        out.write(json.dumps(line) + "\n")
        report(folder.name, lines)
    if out:
        out.close()


if __name__ == "__main__":
    main()
