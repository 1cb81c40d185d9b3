"""The mix-and-separate objective, and a batch of arrays as model inputs."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avsplit.errors import ConfigError
from avsplit.dsp.transforms import ideal_binary_mask, ideal_ratio_mask, loss_weight
from avsplit.models import AVSeparator
from avsplit.data.mixing import MixBatch
from avsplit.models.appearance import normalize_frames
from avsplit.models.separator import max_pool, region_cells
from avsplit.training.category import NO_CATEGORY, CategoryHead
from avsplit.training.config import CATEGORY_ON


def check_own_weight(own_weight: float, has_refiner: bool) -> None:
    """Refuse ``own_weight`` for a model without a mask refiner: its own masks are its masks, so
    the term would only weigh the loss twice."""
    if own_weight and not has_refiner:
        raise ConfigError("--own-weight needs a model with a mask refiner (without one, its own masks are its masks)",
                          fix="add --refiner 16, or leave out --own-weight")


# ---------------------------------------------------------------------------------- the loss

class MixSeparateLoss(nn.Module):
    """Wraps the model so one ``forward`` computes the training loss (what DDP needs).

    ``audio``: ``(batch, sources, samples)`` (the mixture is their sum); ``frames``: normalised
    ``(batch, sources, frames, 3, H, W)``; ``regions`` (optional): bool ``(batch, sources, H, W)``, the
    pixels each source's vector pools. Returns the scalar loss: per-bin BCE against the ideal
    binary mask, or L1 against the ideal ratio mask, weighted by ``log(1 + |mixture|)``; targets
    live on the warped (log-frequency) grid, as the masks do.

    With a ``category_head`` and ``labels`` int ``(batch, sources)`` (each source's category,
    :data:`NO_CATEGORY` where unknown), ``category_weight`` times the head's cross-entropy on each
    source's pooled features is added: its pooled appearance features (``category_on="appearance"``)
    or the visual vector the masks are made from (``"vectors"``, averaged over a motion model's
    steps). With ``own_weight`` (models with a mask refiner only), ``own_weight`` times the same
    loss on each source's own mask logits, before the refiner, is added (``parts["own"]``).
    While :attr:`head_only` is set (``train --category-warmup``), the category loss reaches only the
    head: the pooled features are detached. ``parts`` holds the last call's terms as floats.
    """

    def __init__(self, model: AVSeparator, category_head: CategoryHead | None = None, category_weight: float = 0.0,
                 category_on: str = "appearance", own_weight: float = 0.0):
        super().__init__()
        if category_on not in CATEGORY_ON:
            raise ConfigError(f"unknown --category-on {category_on!r}", fix="use " + " or ".join(CATEGORY_ON))
        self.model = model
        self.category_head = category_head
        self.category_weight = category_weight
        self.category_on = category_on
        check_own_weight(own_weight, model.refiner is not None)
        self.own_weight = own_weight
        self.head_only = False
        self.parts: dict[str, float] = {}

    def forward(self, audio: torch.Tensor, frames: torch.Tensor, flow: torch.Tensor | None = None,
                regions: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        with_category = labels is not None and self.category_head is not None
        separation, own, appearance, vectors = self._separation(audio, frames, flow, regions, with_category)
        self.parts = {"separation": float(separation.detach())}
        if own is not None:
            self.parts["own"] = float(own.detach())
            separation = separation + self.own_weight * own
        if not with_category:
            return separation
        if self.category_on == "vectors":
            pooled = vectors.flatten(0, 1)  # (batch * sources, K) or, motion models, (batch * sources, steps, K)
            pooled = pooled.mean(dim=1) if pooled.ndim == 3 else pooled
        else:
            cells = None if regions is None else region_cells(regions.flatten(0, 1), appearance.shape[-2:])
            pooled = max_pool(appearance, cells)
        category, accuracy = self.category_head.loss(pooled.detach() if self.head_only else pooled, labels.flatten())
        self.parts.update(category=float(category.detach()), category_accuracy=float(accuracy))
        return separation + self.category_weight * category

    def _separation(self, audio, frames, flow, regions, with_category: bool):
        """The mix-and-separate loss of the refined masks; that of the own masks (``None`` without
        :attr:`own_weight`); the appearance features used ``(batch * sources, K, h, w)`` (computed only
        ``with_category``, else ``None``); and the sources' visual vectors ``(batch, sources, [steps,] K)``."""
        m = self.model
        batch, sources = audio.shape[:2]
        mixture = audio.sum(dim=1)
        with torch.no_grad():
            _, warped_mix = m.analyse(mixture)  # (B, 1, Fl, T)
            _, warped_src = m.analyse(audio.flatten(0, 1))
            warped_src = warped_src.view(batch, sources, *warped_src.shape[-2:])
            mix_mag = warped_mix[:, 0]
            if m.config.mask == "binary":
                target = ideal_binary_mask(warped_src, mix_mag)
            else:
                target = ideal_ratio_mask(warped_src, mix_mag)
            weight = loss_weight(warped_mix)  # (B, 1, Fl, T), broadcast over sources
        audio_feats = m.audio_features(warped_mix)
        appearance = m.appearance(frames.flatten(0, 1)) if with_category else None
        vectors = m.source_vectors(frames, flow, regions, appearance)
        own_logits = m.mask_logits(vectors, audio_feats)
        logits = m.refine(own_logits, vectors, audio_feats, warped_mix)

        def mask_loss(logits: torch.Tensor) -> torch.Tensor:
            logits = logits.float()
            if m.config.mask == "binary":
                per_bin = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            else:
                per_bin = (torch.relu(logits) - target).abs()
            return (per_bin * weight).mean()

        own = mask_loss(own_logits) if self.own_weight else None
        return mask_loss(logits), own, appearance, vectors


def to_model_inputs(batch: MixBatch, device: torch.device):
    """A sampler's :class:`MixBatch` -> model tensors: audio float ``(B, N, S)``, frames normalised
    ``(B, N, F, 3, H, W)``, flow ``(B, N, steps, 2, h, w)`` float (``None`` for appearance models) and
    regions bool ``(B, N, H, W)`` (or ``None``)."""
    a = torch.from_numpy(np.ascontiguousarray(batch.audio)).to(device)
    f = normalize_frames(torch.from_numpy(np.ascontiguousarray(batch.frames)).to(device))
    fl = None
    if batch.flow is not None:
        fl = torch.from_numpy(np.ascontiguousarray(batch.flow)).to(device).float().permute(0, 1, 2, 5, 3, 4).contiguous()
    regions = None if batch.regions is None else torch.from_numpy(batch.regions).to(device)
    return a, f, fl, regions


def batch_labels(batch: MixBatch, video_labels: np.ndarray | None, device: torch.device) -> torch.Tensor | None:
    """Each source's category ``(batch, sources)`` long, from ``video_labels`` (one per video of the
    sampler, :func:`avsplit.training.category.category_labels`), :data:`NO_CATEGORY` for a silent region
    (``batch.no_player``); ``None`` without labels."""
    if video_labels is None or batch.videos is None:
        return None
    labels = video_labels[batch.videos]
    if batch.no_player is not None:
        labels = np.where(batch.no_player, NO_CATEGORY, labels)
    return torch.from_numpy(labels).to(device)
