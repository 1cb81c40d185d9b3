"""How differently a model hears two sources: the cosine similarity of their own masks.

A source's *own* mask is what the model makes from that source's visual vector alone
(:meth:`avsplit.models.separator.AVSeparator.masks` with ``shared=False``); two sources the model
tells apart get different masks (cosine near 0), two it confuses get the same mask (cosine near 1).
The automatic count (:mod:`avsplit.inference.counting`) calls two regions one source when their
separated sounds (own mask times the mixture) are more alike than ``SAME_SOURCE_SIMILARITY``: masks
that are nearly the same leave it nothing to go on. This measures, without any count rule, how far
a model is from telling a domain's sources apart.

For each folder (a ``synth`` dataset with ``<stem>.truth.json``):

- **duets**: the two sources' truth boxes (each source's median box) pooled in the same picture,
  in the duet's own mixture (what ``separate`` faces in the wild);
- **mix pairs**: pairs of solos of different categories, each pooled over its whole picture, in
  the sum of their sounds (what ``evaluate``'s mix protocol faces).

    python benchmarks/bench_discrimination.py DATA [DATA ...] [--weights NAME|PATH] [--pairs N] [--cache DIR] [--zoom]

``--zoom``: each source seen closer (:mod:`avsplit.inference.zoom`), as ``separate --zoom`` sees it: a
duet's sources zoomed onto their truth boxes, a solo onto its sounding box (as ``--mix --zoom``).

Printed per folder and kind: the mean cosine, and how many pairs are below the count's
``SAME_SOURCE_SIMILARITY``. ``--cache`` is shared with ``bench_count.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_count import cached_discovery, truth_kind  # noqa: E402

from avsplit.api import load_model  # noqa: E402
from avsplit.inference import SeparationEngine, WindowStream, counting, discovery_windows  # noqa: E402
from avsplit.inference.regions import box_regions  # noqa: E402
from avsplit.localize.sounding import sounding_box  # noqa: E402
from avsplit.scan import find_videos, truth_path  # noqa: E402


def own_mask_cosine(engine: SeparationEngine, heard, vectors: torch.Tensor) -> float:
    """Cosine similarity of the own masks of two sources' vectors ``(M, 2, ...)`` in ``heard``."""
    own = engine.masks(heard, vectors, shared=False)  # (M, 2, Fl, T)
    return float(counting.cosine_matrix(own.transpose(0, 1).float().reshape(2, -1).cpu().numpy())[0, 1])


def duet_cosine(engine: SeparationEngine, video: Path, truth: dict, cache: Path | None, weights, zoom: bool = False) -> float:
    """Own-mask cosine of a duet's two truth boxes, pooled in its own picture (or each zoomed onto its
    box) and mixture."""
    found = cached_discovery(engine, video, cache, weights)
    boxes = [np.median(np.asarray(s["boxes"], float), axis=0).tolist() for s in truth["sources"]]
    if zoom:
        frames = discovery_windows(WindowStream(video, engine.model, 0.25))[1]
        return own_mask_cosine(engine, found.heard, engine.zoomed_vectors(frames, boxes, found.video_size))
    regions = box_regions(boxes, tuple(found.seen.raw.shape[-2:]), found.video_size)
    return own_mask_cosine(engine, found.heard, engine.vectors(found.seen, regions))


def pair_cosine(engine: SeparationEngine, first: Path, second: Path, cache: Path | None, weights,
                zoom: bool = False) -> float:
    """Own-mask cosine of two solos, each pooled over its whole picture (or zoomed onto its sounding
    box), in the sum of their sounds."""
    found = [cached_discovery(engine, v, cache, weights) for v in (first, second)]
    windows_of = [discovery_windows(WindowStream(v, engine.model, 0.25)) for v in (first, second)]
    windows = min(len(a) for a, _ in windows_of)
    heard = engine.hear(windows_of[0][0][:windows] + windows_of[1][0][:windows])
    vectors = []
    for video, f, (_, frames) in zip((first, second), found, windows_of):
        box = sounding_box(video) if zoom else None
        vectors.append(engine.vectors(f.seen)[:windows] if box is None else
                       engine.zoomed_vectors(frames[:windows], [box], f.video_size))
    return own_mask_cosine(engine, heard, torch.cat(vectors, dim=1))


def solo_pairs(solos: list[tuple[Path, str]], count: int, seed: int = 0) -> list[tuple[Path, Path]]:
    """Up to ``count`` disjoint pairs of solos ``(video, category)`` of different categories."""
    rng = random.Random(seed)
    pool = solos[:]
    rng.shuffle(pool)
    pairs = []
    while len(pairs) < count and len(pool) >= 2:
        first = pool.pop()
        partner = next((i for i, (_, cat) in enumerate(pool) if cat != first[1]), None)
        if partner is None:
            break
        pairs.append((first[0], pool.pop(partner)[0]))
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", type=Path)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--pairs", type=int, default=12, help="mix pairs of solos per folder")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--zoom", action="store_true", help="sources seen closer, as separate --zoom sees them")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, _, weights = load_model(args.weights, "cpu")
    engine = SeparationEngine(model, torch.device("cpu"))
    for folder in args.data:
        scores: dict[str, list[float]] = defaultdict(list)
        solos = []
        for video in find_videos([folder]):
            if not truth_path(video).exists():
                continue
            truth = json.loads(truth_path(video).read_text())
            kind = truth_kind(truth)
            if kind == "solo":
                solos.append((video, truth["sources"][0].get("category")))
            elif len(truth["sources"]) == 2:
                scores[f"duet, {kind}"].append(duet_cosine(engine, video, truth, args.cache, weights, args.zoom))
        for first, second in solo_pairs(solos, args.pairs):
            scores["mix pair"].append(pair_cosine(engine, first, second, args.cache, weights, args.zoom))
        for kind, values in sorted(scores.items()):
            below = sum(v < counting.SAME_SOURCE_SIMILARITY for v in values)
            print(f"{folder.name:>12} {kind:>22}: own-mask cosine {np.mean(values):.3f} over {len(values)}; "
                  f"{below} below {counting.SAME_SOURCE_SIMILARITY}", flush=True)


if __name__ == "__main__":
    main()
