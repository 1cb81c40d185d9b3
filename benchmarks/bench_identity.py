"""Do a model's visual features say which instrument is in the picture?

Separating by pictures needs visual vectors that differ between instruments and agree within one.
For every solo of a ``synth`` folder (``<stem>.truth.json`` names its category), this pools the
features of its discovery windows over the whole picture, averaged over windows (and, for the
visual vectors of motion models, over steps), and reports:

- **nearest-centroid accuracy** (leave one out) of the category, for the appearance net's features
  (max over the picture, before any activation) and for the visual vectors the masks are made from
  (standardised per channel); chance is about one in the number of categories;
- the mean cosine similarity of the centred visual vectors of two solos of the same category and
  of different categories (near 1 and below 0 when the vectors name the instrument).

    python benchmarks/bench_identity.py DATA [DATA ...] [--weights NAME|PATH] [--by glyph|background]

``--by`` also prints the appearance accuracy within each glyph style or background family.
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

from avsplit.api import load_model  # noqa: E402
from avsplit.inference import SeparationEngine, WindowStream, discovery_windows  # noqa: E402
from avsplit.scan import find_videos, truth_path  # noqa: E402


def solo_features(engine: SeparationEngine, video: Path) -> tuple[np.ndarray, np.ndarray]:
    """A solo's appearance features ``(K,)`` and visual vector ``(K,)``, whole picture, averaged."""
    _, frames = discovery_windows(WindowStream(video, engine.model, 0.25))
    seen = engine.see(frames)
    appearance = seen.appearance.flatten(-2).amax(dim=-1).float().mean(dim=0)  # (K,)
    vectors = engine.vectors(seen).float()  # (B, 1, [steps,] K)
    return appearance.numpy(), vectors.reshape(-1, vectors.shape[-1]).mean(dim=0).numpy()


def standardise(features: np.ndarray) -> np.ndarray:
    """``(n, K)`` -> zero mean, unit variance per channel."""
    return (features - features.mean(axis=0)) / features.std(axis=0).clip(min=1e-6)


def centroid_accuracy(features: np.ndarray, labels: list[str], subset: list[int] | None = None) -> tuple[int, int]:
    """Leave-one-out nearest-centroid accuracy over ``subset`` (default: all): (right, scored).
    An item whose label has no other member in the subset is not scored."""
    members = list(range(len(labels))) if subset is None else subset
    right = scored = 0
    for i in members:
        centroids = {}
        for label in set(labels[j] for j in members):
            others = [j for j in members if j != i and labels[j] == label]
            if others:
                centroids[label] = features[others].mean(axis=0)
        if labels[i] not in centroids:
            continue
        scored += 1
        right += min(centroids, key=lambda c: float(np.linalg.norm(features[i] - centroids[c]))) == labels[i]
    return right, scored


def centred_cosines(features: np.ndarray, labels: list[str]) -> tuple[float, float]:
    """Mean cosine of centred features of two items with the same label, and with different labels."""
    centred = features - features.mean(axis=0)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True).clip(min=1e-9)
    similarity = unit @ unit.T
    pairs = np.triu_indices(len(labels), k=1)
    same = np.array([labels[i] == labels[j] for i, j in zip(*pairs)])
    values = similarity[pairs]
    return float(values[same].mean()), float(values[~same].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", type=Path)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--by", choices=("glyph", "background"), default=None)
    args = ap.parse_args()
    model, _, _ = load_model(args.weights, "cpu")
    engine = SeparationEngine(model, torch.device("cpu"))
    for folder in args.data:
        appearance, vectors, labels, groups = [], [], [], defaultdict(list)
        for video in find_videos([folder]):
            if not truth_path(video).exists():
                continue
            truth = json.loads(truth_path(video).read_text())
            if len(truth["sources"]) != 1:
                continue
            a, v = solo_features(engine, video)
            if args.by:
                groups[truth.get("domain", {}).get(args.by, "?")].append(len(labels))
            appearance.append(a)
            vectors.append(v)
            labels.append(str(truth["sources"][0].get("category")))
        if len(labels) < 3:
            print(f"{folder}: fewer than 3 solos with truth, skipped")
            continue
        app, vec = np.stack(appearance), np.stack(vectors)
        a_right, n = centroid_accuracy(app, labels)
        v_right, _ = centroid_accuracy(standardise(vec), labels)
        same, different = centred_cosines(vec, labels)
        print(f"{folder.name:>12}: {n} solos, {len(set(labels))} categories; nearest-centroid accuracy: "
              f"appearance {a_right}/{n}, visual vectors {v_right}/{n}; centred vector cosine: "
              f"same category {same:.3f}, different {different:.3f}", flush=True)
        for name, members in sorted(groups.items()):
            right, scored = centroid_accuracy(app, labels, members)
            print(f"{'':>14}{args.by} {name}: appearance {right}/{scored}")


if __name__ == "__main__":
    main()
