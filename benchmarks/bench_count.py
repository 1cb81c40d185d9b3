"""Source-count accuracy of ``separate``'s automatic count on datasets with truth.

For every video with a ``<stem>.truth.json`` under the folders given (``synth`` solos and duets),
the sources are found as ``avsplit separate`` finds them (no ``--sources``) and their number is
compared with the truth's. One line per video (``-v``), then the share counted right per folder
and kind (solo, different-kind duet, same-kind duet).

    python benchmarks/bench_count.py DATA [DATA ...] [--weights NAME|PATH] [--cache DIR] [-v]

``--cache DIR`` keeps what the networks computed for each video's discovery windows, so a changed
count rule (:mod:`avsplit.inference.counting`) is measured again in seconds (delete the folder after a model
or ``find_regions`` change).
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

from avsplit.api import load_model  # noqa: E402
from avsplit.inference import (Discovery, SeparationEngine, WindowStream, discover, discovery_windows,  # noqa: E402
                               find_regions)
from avsplit.scan import find_videos  # noqa: E402


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", type=Path)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, _, weights = load_model(args.weights, "cpu")
    engine = SeparationEngine(model, torch.device("cpu"))
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for folder in args.data:
        for video in find_videos([folder]):
            truth_file = video.with_name(video.stem + ".truth.json")
            if not truth_file.exists():
                continue
            truth = json.loads(truth_file.read_text())
            found = len(find_regions(engine, cached_discovery(engine, video, args.cache, weights), None))
            kind = truth_kind(truth)
            want = len(truth["sources"])
            for group in (folder.name, "all"):
                tally[(group, kind)][0] += found == want
                tally[(group, kind)][1] += 1
            if args.verbose:
                print(json.dumps({"video": str(video), "kind": kind, "truth": want, "found": found}), flush=True)
    for (group, kind), (right, total) in sorted(tally.items()):
        print(f"{group:>16} {kind:>15}: {right}/{total} right ({100 * right / total:.0f}%)")


if __name__ == "__main__":
    main()
