"""The model pass, the one place that runs it: sound to spectrogram and audio features
(:meth:`SeparationEngine.hear`), frames to visual features (:meth:`~SeparationEngine.see`), features
to pooled vectors (:meth:`~SeparationEngine.vectors`), vectors to masks
(:meth:`~SeparationEngine.masks`, or one per pixel: :meth:`~SeparationEngine.pixel_masks`), masks to
tracks (:meth:`~SeparationEngine.separate` full band at the output rate,
:meth:`~SeparationEngine.resynthesize` at the model's). ``separate``, ``separate --mix``,
``localize``, ``evaluate`` and source discovery all run the model through it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from avsplit.dsp import fullband
from avsplit.dsp.camera import remove_camera_motion
from avsplit.inference.regions import Region
from avsplit.inference.zoom import zoom_frames
from avsplit.models import AVSeparator, use_channels_last
from avsplit.models.appearance import normalize_frames
from avsplit.models.separator import EncodedAudio
from avsplit.models.inputs import visual_inputs


@dataclass
class Heard:
    """A batch of ``B`` windows' mixture as the model hears it; indexable by batch (``heard[b : b + 1]``)."""

    spec: torch.Tensor
    """Complex STFT at the model's rate ``(B, F, T)``."""
    warped: torch.Tensor
    """Its warped (log-frequency) magnitude ``(B, 1, Fl, T)``."""
    features: torch.Tensor | EncodedAudio
    """Audio features ``(B, K, Fl, T)`` (FiLM heads: the U-Net encoder's outputs)."""

    def __getitem__(self, index: slice) -> "Heard":
        return Heard(self.spec[index], self.warped[index], self.features[index])


@dataclass
class Seen:
    """A batch of ``B`` windows' frames as the model sees them; indexable by batch."""

    raw: torch.Tensor
    """Raw per-pixel features ``(B, K, h, w)`` (motion models: per step, ``(B, steps, K, h, w)``)."""
    flow: torch.Tensor | None
    """Optical flow ``(B, steps, 2, h', w')`` the motion pathway used (None for appearance models)."""
    appearance: torch.Tensor
    """The appearance net's features ``(B, K, h, w)`` (what objects look like; ``raw`` for appearance models)."""

    def __getitem__(self, index: slice) -> "Seen":
        return Seen(self.raw[index], None if self.flow is None else self.flow[index], self.appearance[index])


#: A box at least this share of the picture's width and height is the whole picture (:meth:`SeparationEngine.zoomed_vectors`).
WHOLE_PICTURE = 0.9


class SeparationEngine:
    """Runs a model over windows. All tensors on ``device``; batches of ``batch`` windows.

    The model is put in eval mode on ``device`` and, with ``channels_last`` (the default), its
    convolution weights are stored channels-last, in place (:func:`avsplit.models.use_channels_last`:
    several times faster; results differ from the weights as loaded by float rounding, ~1e-7).
    """

    def __init__(self, model: AVSeparator, device: torch.device, batch: int = 4, channels_last: bool = True):
        model = model.eval().to(device)
        self.model = use_channels_last(model) if channels_last else model
        self.device = device
        self.batch = batch
        self.extension = fullband.DEFAULT_EXTENSION
        """How masks are extended above the model's band (one of :data:`avsplit.dsp.fullband.EXTENSION_RULES`)."""
        self._grids: dict[tuple[int, int], tuple[int, int]] = {}

    @torch.no_grad()
    def hear(self, audio: np.ndarray) -> Heard:
        """Mixtures at the model's rate ``(B, S)`` -> their :class:`Heard`."""
        spec, warped = self.model.analyse(torch.from_numpy(np.ascontiguousarray(audio)).to(self.device))
        return Heard(spec, warped, self.model.audio_features(warped))

    @torch.no_grad()
    def see(self, frames: np.ndarray) -> Seen:
        """uint8 frames ``(B, frames_per_window, H, W, 3)`` -> their :class:`Seen` (motion models: the
        flow is computed from the frames here, and the frame net runs once for both pathways)."""
        app_frames, flow = visual_inputs(self.model.config, frames, self.device)
        if self.model.config.motion is None:
            raw = self.model.visual_features(app_frames)
            return Seen(raw, None, raw)
        appearance = self.model.appearance(app_frames)
        return Seen(self.model.visual_features(app_frames, flow, appearance=appearance), flow, appearance)

    @torch.no_grad()
    def vectors(self, seen: Seen, regions: Sequence[Region] | None = None) -> torch.Tensor:
        """Pooled visual vectors ``(B, R, K)`` (motion models: ``(B, R, steps, K)``) of ``regions`` of the
        picture (max over the region's cells, then the model's activation, as in training); without
        ``regions``, one vector of the whole picture (``R = 1``)."""
        if regions is None:
            return self.model.pool(seen.raw).unsqueeze(1)
        return torch.stack([self.model.pool(seen.raw, torch.from_numpy(r.cells).to(seen.raw.device)) for r in regions], dim=1)

    @torch.no_grad()
    def zoomed_vectors(self, frames: np.ndarray, boxes: Sequence[Sequence[float]], video_size: tuple[int, int]) -> torch.Tensor:
        """uint8 frames ``(B, frames_per_window, H, W, 3)`` -> one vector per box ``(B, R, K)`` (motion
        models: ``(B, R, steps, K)``), each from the frames zoomed onto that box (video pixels;
        :mod:`avsplit.inference.zoom`) and pooled over the whole crop. A box covering nearly the whole
        picture (:data:`WHOLE_PICTURE` of both sides) is seen whole instead."""
        vectors = []
        for box in boxes:
            whole = (box[2] - box[0]) >= WHOLE_PICTURE * video_size[0] and (box[3] - box[1]) >= WHOLE_PICTURE * video_size[1]
            vectors.append(self.vectors(self.see(frames if whole else zoom_frames(frames, box, video_size))))
        return torch.cat(vectors, dim=1)

    @torch.no_grad()
    def masks(self, heard: Heard, vectors: torch.Tensor, shared: bool = True) -> torch.Tensor:
        """Warped masks ``(B, N, Fl, T)`` of the sources whose vectors are ``vectors`` ``(B, N, [steps,] K)``
        in the mixtures ``heard`` (see :meth:`AVSeparator.masks` for ``shared``)."""
        return self.model.masks(vectors, heard.features, heard.warped, shared)

    @torch.no_grad()
    def pixel_masks(self, heard: Heard, seen: Seen) -> torch.Tensor:
        """One warped mask per pixel of the feature grid ``(B, h, w, Fl, T)`` (synthesizer heads)."""
        return self.model.pixel_masks(seen.raw, heard.features)

    @torch.no_grad()
    def separate(self, heard: Heard, masks: torch.Tensor, original: np.ndarray, target: fullband.OutputStft) -> np.ndarray:
        """Warped masks ``(B, N, Fl, T)`` of windows :meth:`hear` analysed, and the same windows'
        original sound ``(B, C, S)`` at ``target.sample_rate`` -> the sources ``(B, N, C, S)``: the masks
        mapped onto the original's STFT (``target``) and extended above the model's band by
        :attr:`extension` (:mod:`avsplit.dsp.fullband`)."""
        audio = torch.from_numpy(np.ascontiguousarray(original, dtype=np.float32)).to(self.device)
        est = fullband.separate_original(self.model.linear_masks(masks), heard.spec, audio, self.model.config.audio,
                                         target, self.extension)
        return est.cpu().numpy()

    @torch.no_grad()
    def resynthesize(self, heard: Heard, masks: torch.Tensor, length: int) -> np.ndarray:
        """Warped masks ``(B, N, Fl, T)`` on the model's own STFT of the mixtures -> the sources at the
        model's rate ``(B, N, length)`` (mask x mixture magnitude, mixture phase: the paper's output)."""
        return self.model.apply_masks(masks, heard.spec, length).cpu().numpy()

    @torch.no_grad()
    def appearance(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 ``(B, frames_per_window, H, W, 3)`` -> the appearance net's raw features ``(B, K, h, w)``
        (what objects look like; for motion models without the motion pathway)."""
        cfg = self.model.config
        if cfg.motion is None:
            return self.see(frames).raw
        picked = np.ascontiguousarray(frames[:, cfg.appearance_frame_indices()])
        return self.model.appearance(normalize_frames(torch.from_numpy(picked).to(self.device)))

    def grid_shape(self, frame_size: tuple[int, int]) -> tuple[int, int]:
        """``(h, w)`` of the feature grid for frames of ``frame_size`` ``(W, H)`` (found once per size)."""
        if frame_size not in self._grids:
            w, h = frame_size
            probe = np.zeros((1, self.model.config.frames_per_window, h, w, 3), np.uint8)
            # the fused grid is the appearance grid
            self._grids[frame_size] = tuple(int(v) for v in self.appearance(probe).shape[-2:])
        return self._grids[frame_size]


def motion_energy(flow: torch.Tensor, grid: tuple[int, int]) -> np.ndarray:
    """Mean optical-flow magnitude of windows' flow ``(B, steps, 2, h', w')`` averaged onto ``grid``
    ``(h, w)``: high where things move (the camera's own motion removed: a shaking or zooming camera
    moves everything)."""
    flow = remove_camera_motion(flow.float())
    # hypot of the two components (a norm over the size-2 axis is many times slower on CPU)
    magnitude = torch.hypot(flow[:, :, 0], flow[:, :, 1]).mean(dim=(0, 1)).cpu()  # (h', w') at flow resolution
    if tuple(magnitude.shape) == tuple(grid):
        return magnitude.numpy()
    return torch.nn.functional.adaptive_avg_pool2d(magnitude[None, None], tuple(grid))[0, 0].numpy()
