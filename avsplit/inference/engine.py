"""The model pass over batches of windows: sound to spectrogram, frames to visual features, masks to
full-band tracks."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from avsplit.dsp import fullband
from avsplit.dsp.camera import remove_camera_motion
from avsplit.inference.regions import Region
from avsplit.models import AVSeparator, use_channels_last
from avsplit.models.appearance import normalize_frames
from avsplit.models.inputs import visual_inputs


class SeparationEngine:
    """Runs a model over windows. All tensors on ``device``; batches of ``batch`` windows."""

    def __init__(self, model: AVSeparator, device: torch.device, batch: int = 4):
        self.model = use_channels_last(model.eval().to(device))
        self.device = device
        self.batch = batch
        self.extension = fullband.DEFAULT_EXTENSION
        """How masks are extended above the model's band (one of :data:`avsplit.dsp.fullband.EXTENSION_RULES`)."""
        self._grids: dict[tuple[int, int], tuple[int, int]] = {}

    @torch.no_grad()
    def analyse(self, audio: np.ndarray):
        """``(B, S)`` -> (complex STFT ``(B, F, T)``, warped magnitude ``(B, 1, Fl, T)``, audio features ``(B, K, Fl, T)``)."""
        a = torch.from_numpy(np.ascontiguousarray(audio)).to(self.device)
        spec, warped = self.model.analyse(a)
        return spec, warped, self.model.audio_features(warped)

    @torch.no_grad()
    def visual(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 ``(B, frames_per_window, H, W, 3)`` -> raw per-pixel features ``(B, K, h, w)``
        (motion models: ``(B, steps, K, h, w)``, with the flow computed from the frames here)."""
        return self.visual_and_flow(frames)[0]

    @torch.no_grad()
    def visual_and_flow(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`visual` and the flow it used ``(B, steps, 2, h', w')`` (None for appearance models)."""
        return self.visual_flow_appearance(frames)[:2]

    @torch.no_grad()
    def visual_flow_appearance(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """:meth:`visual_and_flow` plus :meth:`appearance` of the same frames, the frame net run once."""
        app_frames, flow = visual_inputs(self.model.config, frames, self.device)
        if self.model.config.motion is None:
            raw = self.model.visual_features(app_frames)
            return raw, None, raw
        appearance = self.model.appearance(app_frames)
        return self.model.visual_features(app_frames, flow, appearance=appearance), flow, appearance

    @torch.no_grad()
    def appearance(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 ``(B, frames_per_window, H, W, 3)`` -> the appearance net's raw features ``(B, K, h, w)``
        (what objects look like; for motion models without the motion pathway)."""
        cfg = self.model.config
        if cfg.motion is None:
            return self.visual(frames)
        picked = np.ascontiguousarray(frames[:, cfg.appearance_frame_indices()])
        return self.model.appearance(normalize_frames(torch.from_numpy(picked).to(self.device)))

    @torch.no_grad()
    def motion_energy(self, frames: np.ndarray | None, grid: tuple[int, int], flow: torch.Tensor | None = None) -> np.ndarray:
        """Mean optical-flow magnitude of windows ``(B, frames_per_window, H, W, 3)`` (motion models;
        or of their already computed ``flow``) averaged onto ``grid`` ``(h, w)``: high where things move."""
        if flow is None:
            _, flow = visual_inputs(self.model.config, frames, torch.device("cpu"))
        flow = remove_camera_motion(flow.float())  # a shaking or zooming camera moves everything
        # hypot of the two components (a norm over the size-2 axis is many times slower on CPU)
        magnitude = torch.hypot(flow[:, :, 0], flow[:, :, 1]).mean(dim=(0, 1)).cpu()  # (h', w') at flow resolution
        if tuple(magnitude.shape) == tuple(grid):
            return magnitude.numpy()
        return torch.nn.functional.adaptive_avg_pool2d(magnitude[None, None], tuple(grid))[0, 0].numpy()

    def grid_shape(self, frame_size: tuple[int, int]) -> tuple[int, int]:
        """``(h, w)`` of the feature grid for frames of ``frame_size`` ``(W, H)`` (found once per size)."""
        if frame_size not in self._grids:
            w, h = frame_size
            probe = np.zeros((1, self.model.config.frames_per_window, h, w, 3), np.uint8)
            # the fused grid is the appearance grid
            self._grids[frame_size] = tuple(int(v) for v in self.appearance(probe).shape[-2:])
        return self._grids[frame_size]

    @torch.no_grad()
    def separate(self, spec, warped, feats, visual_vectors: torch.Tensor, original: np.ndarray,
                 target: fullband.OutputStft) -> np.ndarray:
        """Pooled visual vectors ``(B, N, K)`` (motion models: ``(B, N, steps, K)``) of the sources of
        windows analysed by :meth:`analyse` (``spec``, ``warped``, ``feats``), and the same windows'
        original sound ``(B, C, S)`` at ``target.sample_rate`` -> the sources ``(B, N, C, S)``: the
        model's masks mapped onto the original's STFT (``target``) and extended above the model's
        band by :attr:`extension` (:mod:`avsplit.dsp.fullband`)."""
        warped_masks = self.model.source_masks(self.model.mixture_logits(visual_vectors, feats, warped))
        masks = self.model.linear_masks(warped_masks)  # (B, N, F, T) at the model's STFT
        audio = torch.from_numpy(np.ascontiguousarray(original, dtype=np.float32)).to(self.device)
        est = fullband.separate_original(masks, spec, audio, self.model.config.audio, target, self.extension)
        return est.cpu().numpy()

def region_vectors(model: AVSeparator, raw: torch.Tensor, regions: Sequence[Region]) -> torch.Tensor:
    """Pool raw features ``(B, K, h, w)`` over each region (max, then the model's activation): ``(B, R, K)``
    (motion models: ``(B, steps, K, h, w)`` -> ``(B, R, steps, K)``)."""
    out = []
    for r in regions:
        cells = torch.from_numpy(r.cells).to(raw.device)
        masked = raw.masked_fill(~cells, -math.inf)
        out.append(model.visual_vector(masked.flatten(-2).amax(dim=-1)))
    return torch.stack(out, dim=1)
