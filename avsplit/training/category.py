"""Weak labels for the frame network (``train --category-weight``): the category each training video is
filed under (``DATA/<category>/<id>.mp4``, as MUSIC, Solos and ``avsplit synth`` lay them out).

Mix-and-separate alone teaches the frame network little about *which* instrument a varied picture
shows (weights/README.md, sessions 12-13). A linear head on each source's pooled appearance
features, trained with cross-entropy on the video's category beside the separation loss, pushes
the features, and through them the visual vectors the masks are made from, to tell the categories
apart. The head is a training aid: it lives in the run folder (``category_head.safetensors``), not
in the model checkpoints, which stay loadable by every command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from avsplit.errors import CheckpointError, ConfigError
from avsplit.files import atomic_path
from avsplit.training.state import read_run_file

#: Label of a video without a category (left out of the cross-entropy).
NO_CATEGORY = -1


def category_labels(categories: Sequence[str | None]) -> tuple[list[str], np.ndarray]:
    """The sorted category names and, per video, the index of its category (``NO_CATEGORY`` where it
    has none). Fewer than two categories is an error: nothing to tell apart."""
    names = sorted({c for c in categories if c})
    if len(names) < 2:
        raise ConfigError(f"--category-weight needs videos of at least two categories, found {len(names)}",
                          fix="file the training videos as DATA/<category>/<id>.mp4, or drop --category-weight")
    index = {name: i for i, name in enumerate(names)}
    return names, np.array([index.get(c, NO_CATEGORY) for c in categories], dtype=np.int64)


class CategoryHead(nn.Module):
    """Pooled appearance features ``(n, K)`` -> category logits ``(n, categories)``: a linear layer on
    the features normalised per vector (raw pooled features run to tens, which would start the
    cross-entropy near 20 instead of ``log(categories)``)."""

    def __init__(self, channels: int, categories: Sequence[str]):
        super().__init__()
        self.categories = list(categories)
        self.norm = nn.LayerNorm(channels, elementwise_affine=False)
        self.linear = nn.Linear(channels, len(self.categories))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(pooled.float()))

    def loss(self, pooled: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy of ``pooled`` ``(n, K)`` against ``labels`` ``(n,)`` (``NO_CATEGORY`` ignored)
        and the accuracy over the labelled ones (both 0-dim; 0 where none is labelled)."""
        known = labels != NO_CATEGORY
        if not bool(known.any()):
            zero = pooled.sum() * 0.0
            return zero, zero.detach()
        logits = self(pooled[known])
        accuracy = (logits.argmax(dim=1) == labels[known]).float().mean()
        return F.cross_entropy(logits, labels[known]), accuracy.detach()

    def save(self, path: Path) -> None:
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(path) as tmp:
            save_file(state, str(tmp), metadata={"avsplit_categories": json.dumps(self.categories)})

    def load(self, path: Path) -> None:
        """Weights saved by :meth:`save` for the same categories."""
        saved, state = read_run_file(path, "avsplit_categories", "the category head")
        if saved != self.categories:
            raise CheckpointError("the category head was trained on other categories than these videos'", path,
                                  "resume with the run's own training data")
        self.load_state_dict(state)
