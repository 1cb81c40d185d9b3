"""Euclidean k-means, the grouping behind the automatic count (:mod:`.counting`, :mod:`.rhythm`)."""

from __future__ import annotations

import numpy as np


def kmeans_euclidean(x: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> np.ndarray:
    """Euclidean k-means of rows of ``x`` ``(n, d)`` with k-means++ initialisation; labels ``(n,)``."""
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d = np.min(np.stack([((x - c) ** 2).sum(1) for c in centres]), axis=0)
        centres.append(x[rng.choice(len(x), p=d / d.sum())] if d.sum() > 0 else x[rng.integers(len(x))])
    c = np.stack(centres)
    labels = np.full(len(x), -1)
    for _ in range(iters):
        new = np.argmin(((x[:, None] - c[None]) ** 2).sum(-1), axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            if (labels == j).any():
                c[j] = x[labels == j].mean(0)
    return labels
