"""Source-count accuracy of ``separate``'s automatic count on datasets with truth.

For every video with a ``<stem>.truth.json`` under the folders given (``synth`` solos and duets),
the sources are found as ``avsplit separate`` finds them (no ``--sources``) and their number is
compared with the truth's. One line per video (``-v``), then the share counted right per folder
and kind (solo, different-kind duet, same-kind duet).

    python benchmarks/bench_count.py DATA [DATA ...] [--weights NAME|PATH] [--cache DIR] [-v]

``--cache DIR`` keeps what the networks computed for each video's discovery windows, so a changed
count rule (:mod:`avsplit.inference.counting`) is measured again in seconds (delete the folder after a model
or ``find_regions`` change).

``--oracle`` also asks, for each duet, whether the count rule
(:func:`avsplit.inference.counting.distinct_sources`) accepts the two truth boxes (each source's
median box) as two sources, and whether the automatic groups for k = 2 fall on the two sources
(most of each group's cells inside a different truth box), and whether the candidate cells reach
both sources (each truth box holds at least :data:`REACH_SHARE` of them; motion models: the
moving pixels that :mod:`avsplit.inference.rhythm` groups). It tells a grouping
failure (the candidate cells, or their clustering) from a rule failure (the groups' sounds and
motions).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from avsplit.api import load_model  # noqa: E402
from avsplit.inference import (Discovery, SeparationEngine, WindowStream, counting, discover,  # noqa: E402
                               discovery_windows, find_regions)
from avsplit.inference.discovery import candidates  # noqa: E402
from avsplit.inference.regions import box_regions  # noqa: E402
from avsplit.inference.rhythm import moving_pixels  # noqa: E402
from avsplit.scan import find_videos, truth_path  # noqa: E402


#: ``--oracle``: the candidate cells reach a source when its truth box holds at least this share of them.
REACH_SHARE = 0.1


def truth_kind(truth: dict) -> str:
    cats = [s.get("category") for s in truth["sources"]]
    if len(cats) == 1:
        return "solo"
    return "same-kind" if len(set(cats)) == 1 else "different-kind"


def cached_discovery(engine: SeparationEngine, video: Path, cache: Path | None, weights: Path) -> Discovery:
    """What the networks made of ``video``'s discovery windows (the input of :func:`find_regions`),
    computed once per cache."""
    key = hashlib.sha1(f"{video.resolve()}|{video.stat().st_mtime_ns}|{weights}".encode()).hexdigest()[:16]
    file = cache / f"{video.stem}-{key}.pt" if cache else None
    if file is not None and file.exists():
        return torch.load(file, weights_only=False)
    stream = WindowStream(video, engine.model, 0.25)
    audio, frames = discovery_windows(stream)
    found = discover(engine, audio, frames, (stream.info.width, stream.info.height), video)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        torch.save(found, file)
    return found


def oracle_check(engine: SeparationEngine, found: Discovery, truth: dict) -> tuple[bool, bool, bool]:
    """Whether the count rule accepts a duet's two truth boxes as two sources, whether the
    automatic k = 2 groups fall on the two sources, and whether the candidate cells reach both
    (see the module doc)."""
    sal, z = candidates(found.seen)
    boxes = [np.median(np.asarray(s["boxes"], float), axis=0).tolist() for s in truth["sources"]]
    truth_regions = box_regions(boxes, sal.shape, found.video_size)
    sounds = counting.group_sounds(engine, found.seen, found.heard, truth_regions)
    motion = counting.cell_motion(found.seen.flow, sal.shape) if found.seen.flow is not None else None
    rule_accepts = counting.distinct_sources(sounds, motion, truth_regions, found.heard.warped)
    groups = find_regions(engine, found, 2)
    inside = np.array([[(g.cells & t.cells).sum() / max(int(g.cells.sum()), 1) for t in truth_regions] for g in groups])
    split_right = len(groups) == 2 and max(min(inside[0, 0], inside[1, 1]), min(inside[0, 1], inside[1, 0])) > 0.5
    if found.seen.flow is not None:  # motion models group the moving pixels of the flow's grid
        moving = moving_pixels(found.seen.flow)
        coords = moving.coords * np.array(sal.shape) // np.array(moving.fine_shape)  # onto the feature grid
    else:
        coords, _ = counting.candidate_points(np.nan_to_num(sal), z, motion=False)
    reach = all(t.cells[coords[:, 0], coords[:, 1]].mean() >= REACH_SHARE for t in truth_regions) if len(coords) else False
    return bool(rule_accepts), bool(split_right), bool(reach)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", type=Path)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--oracle", action="store_true", help="also check the rule on truth boxes and the k = 2 grouping (duets)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, _, weights = load_model(args.weights, "cpu")
    engine = SeparationEngine(model, torch.device("cpu"))
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    oracle: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for folder in args.data:
        for video in find_videos([folder]):
            truth_file = truth_path(video)
            if not truth_file.exists():
                continue
            truth = json.loads(truth_file.read_text())
            discovery = cached_discovery(engine, video, args.cache, weights)
            found = len(find_regions(engine, discovery, None))
            kind = truth_kind(truth)
            want = len(truth["sources"])
            line = {"video": str(video), "kind": kind, "truth": want, "found": found}
            for group in (str(folder), "all"):
                tally[(group, kind)][0] += found == want
                tally[(group, kind)][1] += 1
            if args.oracle and want == 2:
                checks = oracle_check(engine, discovery, truth)
                line["rule_accepts_truth_boxes"], line["k2_groups_on_sources"], line["candidates_reach_both"] = checks
                for group in (str(folder), "all"):
                    oracle[(group, kind)] = [have + new for have, new in zip(oracle[(group, kind)], checks)]
            if args.verbose:
                print(json.dumps(line), flush=True)
    for (group, kind), (right, total) in sorted(tally.items()):
        extra = ""
        if (group, kind) in oracle:
            accepts, on_sources, reach = oracle[(group, kind)]
            extra = (f"; rule accepts the truth boxes {accepts}/{total}, k=2 groups on the sources {on_sources}/{total}, "
                     f"candidate cells reach both {reach}/{total}")
        print(f"{group:>24} {kind:>15}: {right}/{total} right ({100 * right / total:.0f}%){extra}")


if __name__ == "__main__":
    main()
