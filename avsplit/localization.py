"""Where the sound comes from: sound maps over time, heatmap videos, raw maps (``avsplit localize``).

Two ways to get maps, both streamed as ``(time, map)`` with ``map`` float32 ``(h, w)`` in [0, 1]:

- ``model`` (:func:`model_maps`): the pixel-wise synthesizer gives one spectrogram mask per pixel
  of the appearance net's feature grid; applied to the mixture, each pixel claims a share of the
  sound energy at every STFT frame. Windows of the model's clip length slide over the video with a
  hop of at most 1 s; inside a window the per-frame shares are smoothed over time (Gaussian) and
  gated by loudness (silence gives an empty map); overlapping windows are averaged (weighted
  towards each window's middle, where the network sees most context) into maps at ``map_rate``.
  Values below ``floor`` x the map's peak are set to zero, so a map shows objects, not haze.
  With ``per_source`` the sources found as ``separate`` finds them each get their own map: the
  energy a pixel claims inside the part of the spectrogram that source's mask claims.
- ``onsets`` (:mod:`avsplit.onsets`): no weights; regions that move in time with the sound.

:class:`OverlayWriter` blends maps (bilinearly upsampled to the frame size, linearly interpolated
in time) over the original frames, at the original size and frame rate, with the original audio
copied in, written atomically. :class:`MapsWriter` streams the raw maps into ``OUT/<stem>.npz``
(``maps`` float32 ``[T, h, w]`` in [0, 1], ``times`` ``[T]`` (seconds, centre of each map),
``frame_size`` ``[H, W]``; with sources also ``source_maps`` ``[K, T, h, w]`` and
``source_boxes`` ``[K, 4]``). Memory is bounded by one window and one frame, whatever the length.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from avsplit import io as media
from avsplit.console import warn_line
from avsplit.errors import AvsplitError, ConfigError, OutputError
from avsplit.files import atomic_path, ensure_dir

METHODS = ("model", "onsets")

# ------------------------------------------------------------------------------ colours

_COLORMAP_STOPS: dict[str, list[list[int]]] = {
    "inferno": [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                [250, 193, 39], [252, 255, 164]],
    "magma": [[0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129], [181, 54, 122], [229, 80, 100],
              [251, 135, 97], [254, 194, 135], [252, 253, 191]],
    "viridis": [[68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142], [31, 158, 137],
                [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37]],
    "jet": [[0, 0, 128], [0, 0, 255], [0, 128, 255], [0, 255, 255], [128, 255, 128], [255, 255, 0],
            [255, 128, 0], [255, 0, 0], [128, 0, 0]],
    "hot": [[0, 0, 0], [128, 0, 0], [255, 0, 0], [255, 128, 0], [255, 255, 0], [255, 255, 128], [255, 255, 255]],
}
COLORMAPS = tuple(_COLORMAP_STOPS)

#: Colours of sources 1, 2, ... with ``--per-source`` (distinct hues, bright on dark).
SOURCE_COLOURS = np.array([[255, 60, 40], [40, 200, 255], [255, 220, 40], [200, 80, 255], [60, 255, 120],
                           [255, 120, 200], [255, 150, 40], [120, 140, 255]], np.float32)


def colormap_lut(name: str) -> np.ndarray:
    """A 256-entry RGB uint8 lookup table ``(256, 3)`` for a named colour map."""
    if name not in _COLORMAP_STOPS:
        raise ConfigError(f"unknown colour map {name!r}", fix=f"use one of {', '.join(COLORMAPS)}")
    stops = np.array(_COLORMAP_STOPS[name], np.float64)
    x = np.linspace(0, len(stops) - 1, 256)
    lo = np.floor(x).astype(int).clip(0, len(stops) - 2)
    frac = (x - lo)[:, None]
    return np.round(stops[lo] * (1 - frac) + stops[lo + 1] * frac).astype(np.uint8)


def apply_colormap(values: np.ndarray, name: str | np.ndarray = "inferno") -> np.ndarray:
    """Values in [0, 1] ``(H, W)`` -> RGB uint8 ``(H, W, 3)``."""
    lut = colormap_lut(name) if isinstance(name, str) else name
    idx = np.clip(np.nan_to_num(values) * 255 + 0.5, 0, 255).astype(np.uint8)
    return lut[idx]


def upsample(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of ``(h, w)`` (or ``(K, h, w)``) maps to ``(height, width)`` (``(K, height, width)``)."""
    import cv2

    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 3:
        return np.stack([upsample(v, width, height) for v in values]) if len(values) else \
            np.zeros((0, height, width), np.float32)
    if values.shape == (height, width):
        return values
    return cv2.resize(values, (int(width), int(height)), interpolation=cv2.INTER_LINEAR)


def sparsify(values: np.ndarray, floor: float, baseline: bool = False) -> np.ndarray:
    """Zero what is below ``floor`` x the peak; stretch the rest so the peak keeps its value.

    With ``baseline`` the map's minimum (what every pixel claims alike, which says nothing about
    where) is removed first, and ``floor`` is taken between the minimum and the peak.
    """
    values = np.asarray(values, dtype=np.float32)
    if not values.size:
        return values
    peak = float(values.max())
    low = float(values.min()) if baseline else 0.0
    if peak <= low:
        return np.zeros_like(values) if baseline else values
    cut = low + floor * (peak - low)
    return (np.maximum(values - cut, 0.0) * ((peak - low) / (peak - cut))).astype(np.float32)


def combine_sources(source_maps: np.ndarray, floor: float, gate: float) -> np.ndarray:
    """One map ``(h, w)`` from the maps of the sources of one moment ``(K, h, w)``.

    Each source's map, less its minimum, is cut at ``floor`` x its peak and scaled to a peak of 1;
    a source counts only if its energy (the sum of its map) is at least ``gate`` x the loudest
    source's. The result is the maximum over the sources that count.
    """
    maps = np.maximum(np.asarray(source_maps, np.float32) - np.asarray(source_maps, np.float32).min(axis=(1, 2), keepdims=True), 0.0)
    if not len(maps):
        return np.zeros(maps.shape[1:], np.float32)
    energy = maps.reshape(len(maps), -1).sum(axis=1)
    loudest = float(energy.max())
    out = np.zeros(maps.shape[1:], np.float32)
    if loudest <= 0:
        return out
    for m, e in zip(maps, energy):
        peak = float(m.max())
        if e < gate * loudest or peak <= 0:
            continue
        cut = floor * peak
        out = np.maximum(out, np.maximum(m - cut, 0.0) / (peak - cut))
    return out


# ------------------------------------------------------------------------------ model maps


@dataclass(frozen=True)
class ModelMapSettings:
    hop: float = 1.0
    """Seconds between consecutive windows (at most 1)."""
    map_rate: float = 8.0
    """Maps per second."""
    smooth: float = 0.25
    """Gaussian smoothing over time, seconds (sigma)."""
    floor: float | None = None
    """(Default: 0.5; 0.25 for motion models, whose maps are already sharp.) Values below this share of a map's range (above its minimum, see ``baseline``) are set to
    zero: a map shows objects, not haze."""
    baseline: bool = True
    """Remove the share every pixel claims alike (the map's minimum) before the floor."""
    align: bool = True
    """Move the feature grid's values onto a grid whose cells cover the frame evenly, each from
    where the network's cell really looks (:func:`receptive_centre`), so that a plain bilinear
    resize puts the heat on the right pixels."""
    silence_db: float = -60.0
    """Mixture level (dBFS, per STFT frame) at and below which the map is empty ..."""
    full_db: float = -40.0
    """... rising linearly (in dB) to full strength at this level."""
    batch: int = 2
    """Windows per forward pass."""
    objects_blur: int = 1
    """Motion models: side (flow pixels) of the box filter that spreads the motion over the object."""
    objectness: float | None = None
    """Weight each pixel's energy by how much it is an object, scaled to [0, 1], to this power (0:
    off). Appearance models: the frame net's saliency (:func:`avsplit.inference.discovery.saliency`),
    default power 1; motion models: how much the pixel moves in the window (at the flow's
    resolution, finer than the feature grid), default power 0.5."""

    by_source: bool | None = None
    """Build each map from the sources found as ``separate`` finds them (default: on for motion
    models): each source's own map (the energy its pixels claim inside the part of the spectrogram
    its mask claims) is cut at ``source_floor`` of its peak and scaled to a peak of 1, and counts
    only while the source is loud (its energy at least ``source_gate`` of the loudest source's);
    the map is their maximum. Two players that both sound then both light up, however different
    their levels, while a silent one stays dark."""
    source_floor: float = 0.4
    source_gate: float = 0.7

    def resolved(self, motion: bool) -> "ModelMapSettings":
        """The settings with the defaults that depend on the kind of model filled in."""
        import dataclasses

        return dataclasses.replace(
            self,
            floor=self.floor if self.floor is not None else (0.25 if motion else 0.5),
            objectness=self.objectness if self.objectness is not None else (0.5 if motion else 1.0),
            by_source=self.by_source if self.by_source is not None else motion)

    def __post_init__(self):
        if not 0 < self.hop <= 1.0:
            raise ConfigError(f"the window hop must be in (0, 1] seconds, got {self.hop}")
        if not self.map_rate > 0:
            raise ConfigError("the map rate must be positive")
        if self.floor is not None and not 0 <= self.floor < 1:
            raise ConfigError("the map floor must be in [0, 1)")
        if not (0 <= self.source_floor < 1 and 0 <= self.source_gate <= 1):
            raise ConfigError("source_floor must be in [0, 1) and source_gate in [0, 1]")


def _gaussian_smooth(x: np.ndarray, sigma: float, axis: int = -1) -> np.ndarray:
    """Gaussian smoothing along ``axis``, normalised at the edges (no fading towards them)."""
    if sigma <= 0 or x.shape[axis] < 2:
        return x
    x = np.moveaxis(x, axis, -1)
    n = x.shape[-1]
    radius = max(1, min(int(math.ceil(3 * sigma)), (n - 1) // 2))  # a kernel no longer than the signal
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    flat = x.reshape(-1, n)
    out = np.empty_like(flat)
    norm = np.convolve(np.ones(n), k, mode="same")
    for i, row in enumerate(flat):
        out[i] = np.convolve(row, k, mode="same") / norm
    return np.moveaxis(out.reshape(x.shape), -1, axis)


def regrid_matrix(cells: int, size: int, stride: int, offset: float = 0.0) -> np.ndarray:
    """``(cells, cells)`` linear-interpolation weights that move the values of a strided feature
    grid onto a regular grid covering the picture.

    Cell j of a network with output stride ``stride`` looks at pixel ``stride * j + offset`` of
    the ``size`` input pixels (``offset`` 0 for convolutions whose padding keeps the size), while
    a map resized to the frame puts cell i at pixel ``(i + 0.5) * size / cells - 0.5``. Row i of
    the matrix interpolates the features at that position (clamped at the edges).
    """
    pos = ((np.arange(cells) + 0.5) * size / cells - 0.5 - offset) / stride
    pos = np.clip(pos, 0, cells - 1)
    lo = np.floor(pos).astype(int).clip(0, max(cells - 2, 0))
    frac = pos - lo
    m = np.zeros((cells, cells), np.float32)
    if cells == 1:
        m[:] = 1
        return m
    m[np.arange(cells), lo] += 1 - frac
    m[np.arange(cells), lo + 1] += frac
    return m


_CENTRES = None  # model -> (dy, dx), a WeakKeyDictionary once used


def receptive_centre(model, stride: int, cells: int = 9) -> tuple[float, float]:
    """Where a cell of ``model``'s appearance net looks, relative to ``stride * index``: the
    centroid ``(dy, dx)`` (pixels) of the gradient of an inner cell's features with respect to a
    random input. A trained network need not look where its geometry says (zero padding and
    learned asymmetric kernels shift it by several pixels). Cached per model."""
    import weakref

    global _CENTRES
    if _CENTRES is None:
        _CENTRES = weakref.WeakKeyDictionary()
    hit = _CENTRES.get(model)
    if hit is not None:
        return hit
    device = next(model.parameters()).device
    n = cells * stride
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, model.config.video.num_frames, 3, n, n, generator=gen).to(device).requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            feats = model.appearance(x)
            c = feats.shape[-1] // 2
            (grad,) = torch.autograd.grad(feats[0, :, c, c].sum(), x)
    finally:
        model.train(was_training)
    weight = grad.abs().sum(dim=(0, 1, 2)).double().cpu().numpy()
    total = float(weight.sum())
    if not total > 0:
        centre = (0.0, 0.0)
    else:
        ys, xs = np.mgrid[0:n, 0:n]
        centre = (float((weight * ys).sum() / total) - stride * c, float((weight * xs).sum() / total) - stride * c)
    _CENTRES[model] = centre
    return centre


def _frame_levels_db(audio: np.ndarray, n_fft: int, hop: int, frames: int) -> np.ndarray:
    """RMS level (dBFS) of the ``n_fft`` samples around each STFT frame centre ``(frames,)``."""
    pad = n_fft // 2
    x = np.pad(np.asarray(audio, np.float64), (pad, pad))
    cs = np.concatenate([[0.0], np.cumsum(x * x)])
    starts = np.arange(frames) * hop
    ends = np.minimum(starts + n_fft, len(x))
    starts = np.minimum(starts, len(x))
    power = (cs[ends] - cs[starts]) / np.maximum(1, ends - starts)
    return 10 * np.log10(np.maximum(power, 1e-12))


@dataclass
class _Bins:
    """Weighted sums of per-frame maps in time bins of ``1 / rate`` seconds."""

    rate: float
    shape: tuple[int, ...]
    num: dict = field(default_factory=dict)
    den: dict = field(default_factory=dict)
    next_bin: int = 0

    def add(self, times: np.ndarray, values: np.ndarray, weights: np.ndarray) -> None:
        """``values`` ``(n, *shape)`` at ``times`` ``(n,)`` with ``weights`` ``(n,)``."""
        idx = np.floor(times * self.rate + 1e-9).astype(int)
        for b in np.unique(idx):
            sel = idx == b
            w = weights[sel]
            contrib = np.tensordot(w, values[sel], axes=(0, 0))
            if b in self.num:
                self.num[b] += contrib
                self.den[b] += float(w.sum())
            else:
                self.num[b] = contrib.astype(np.float64)
                self.den[b] = float(w.sum())

    def pop_until(self, end_bin: int) -> Iterator[tuple[int, np.ndarray]]:
        """Finished bins ``< end_bin`` in order (bins no frame fell into are zeros)."""
        while self.next_bin < end_bin:
            b = self.next_bin
            if b in self.num:
                value = self.num.pop(b) / max(self.den.pop(b), 1e-12)
            else:
                value = np.zeros(self.shape)
            self.next_bin += 1
            yield b, value


@dataclass
class MapFrame:
    """One map in time: ``values`` ``(h, w)`` and, with sources, ``sources`` ``(K, h, w)``."""

    time: float
    values: np.ndarray
    sources: np.ndarray | None = None


class ModelMaps:
    """Streams :class:`MapFrame` s of the ``model`` method for one video (see the module doc).

    ``grid`` (h, w) and ``regions`` (with ``per_source``) are known after construction.
    """

    def __init__(self, engine, path: str | Path, settings: ModelMapSettings = ModelMapSettings(),
                 per_source: bool = False, info: media.MediaInfo | None = None):
        from avsplit.inference import WindowStream, discover_regions

        self.engine = engine
        self.path = Path(path)
        cfg = engine.model.config
        settings = settings.resolved(cfg.motion is not None)
        self.settings = settings
        self.cfg = cfg
        clip_s = cfg.audio.clip_samples / cfg.audio.sample_rate
        overlap = max(0.0, 1.0 - settings.hop / clip_s)
        self.stream = WindowStream(self.path, engine.model, overlap, info=info)
        self.info = self.stream.info
        if not engine.model.has_pixel_masks:
            raise ConfigError("these weights predict masks with a FiLM head and have no pixel-wise masks",
                              fix="use --method onsets, or weights with a synthesizer head")
        w, h = self.stream.frame_size
        self.grid = engine.grid_shape((w, h))
        # Motion models: each cell's share is spread over what moves inside it, at the flow's resolution.
        self.fine = None
        if cfg.motion is not None and settings.objectness > 0:
            self.fine = (h // cfg.motion.flow_scale, w // cfg.motion.flow_scale)
        stride = int(getattr(engine.model.appearance, "output_stride", round(h / self.grid[0])))
        if settings.align:
            dy, dx = receptive_centre(engine.model, stride)
            self._regrid = (torch.from_numpy(regrid_matrix(self.grid[0], h, stride, dy)),
                            torch.from_numpy(regrid_matrix(self.grid[1], w, stride, dx)))
        else:
            self._regrid = (torch.eye(self.grid[0]), torch.eye(self.grid[1]))
        self.per_source = per_source
        self.regions = discover_regions(engine, self.stream, None) if per_source or settings.by_source else None
        self.coarse = self.grid
        if self.fine is not None:
            self.grid = self.fine
        self.duration = float(self.info.duration)
        self.count = max(1, int(math.ceil(self.duration * settings.map_rate - 1e-6)))
        self.silent = False

    @property
    def windows(self) -> int:
        return len(self.stream.windows)

    @torch.no_grad()
    def _window_shares(self, audio: np.ndarray, frames: np.ndarray):
        """Per-frame shares ``(B, h, w, T)`` (and per source ``(B, R, h, w, T)``) of a batch of windows."""
        from avsplit.inference import region_vectors

        engine, model = self.engine, self.engine.model
        spec, warped, feats = engine.analyse(audio)
        raw, flow = engine.visual_and_flow(frames)
        pix = model.activate(model.synthesizer.pixelwise(model.activate_pixels(raw), feats))  # (B,h,w,F,T)
        mag = warped[:, 0].float()  # (B, F, T)
        total = mag.sum(dim=1).clamp(min=1e-8)  # (B, T)
        shares = torch.einsum("bhwft,bft->bhwt", pix.float(), mag) / total[:, None, None]
        # What a pixel claims beyond what a typical (background) pixel claims: objects that sound
        # claim more energy than the background, silent ones less.
        shares = (shares - shares.flatten(1, 2).median(dim=1).values[:, None, None]).clamp(min=0)
        objects = None
        if self.settings.objectness > 0:
            from avsplit.inference import saliency

            objects = []
            for b in range(raw.shape[0]):
                if self.fine is not None:  # motion models: what moves in this window, per flow pixel
                    sal = engine.motion_energy(None, self.fine, flow[b : b + 1])
                else:
                    sal, _ = saliency(raw[b : b + 1])
                objects.append(torch.from_numpy(sal / max(float(sal.max()), 1e-8)))
            objects = torch.stack(objects).to(shares.device)  # (B, h, w)
            if self.fine is not None and self.settings.objects_blur > 1:  # fill in between moving edges
                k = int(self.settings.objects_blur) | 1
                objects = torch.nn.functional.avg_pool2d(objects[:, None], k, stride=1, padding=k // 2,
                                                         count_include_pad=False)[:, 0]
                objects = objects / objects.flatten(1).amax(dim=1).clamp(min=1e-8)[:, None, None]
            objects = objects.pow(self.settings.objectness)
            if self.fine is None:
                shares = shares * objects[..., None]
        per_source = None
        if self.regions:
            vecs = region_vectors(model, raw, self.regions)
            masks = model.activate(model.mask_logits(vecs, feats)).float()  # (B, R, F, T)
            per_source = torch.einsum("bhwft,brft,bft->brhwt", pix.float(), masks, mag) / total[:, None, None, None]
        ry, rx = (r.to(shares.device) for r in self._regrid)

        def to_np(x):
            if x is None:
                return None
            x = torch.einsum("ij,...jkt,lk->...ilt", ry, x, rx)  # onto a grid that covers the frame
            if self.fine is not None:
                lead, t = x.shape[:-3], x.shape[-1]
                up = torch.nn.functional.interpolate(x.movedim(-1, -3).reshape(-1, 1, *x.shape[-3:-1]), size=self.fine,
                                                     mode="bilinear", align_corners=False)
                x = up.reshape(*lead, t, *self.fine).movedim(-3, -1)
                x = x * objects.view(objects.shape[0], *([1] * (x.ndim - 4)), *self.fine, 1)
            return x.clamp(0, 1).cpu().numpy()

        return to_np(shares), to_np(per_source)

    def __iter__(self) -> Iterator[MapFrame]:
        st = self.settings
        cfg = self.cfg.audio
        rate, hop_len, n_fft = cfg.sample_rate, cfg.hop_length, cfg.n_fft
        sigma = st.smooth * rate / hop_len
        shape = self.grid if not self.regions else (1 + len(self.regions),) + self.grid
        bins = _Bins(st.map_rate, shape)
        windows = self.stream.windows
        loudest = -math.inf
        batch: list = []

        def process(items):
            nonlocal loudest
            audio = np.stack([it[1] for it in items])
            frames = np.stack([it[2] for it in items])
            shares, per_source = self._window_shares(audio, frames)
            for b, (win, wave, _) in enumerate(items):
                n_cols = shares.shape[-1]
                valid = min(n_cols, int(math.ceil(max(win.length, 1) / hop_len)) + 1)
                values = shares[b][..., :valid]  # (h, w, n)
                if per_source is not None:
                    values = np.concatenate([values[None], per_source[b][..., :valid]], axis=0)  # (1+R, h, w, n)
                values = _gaussian_smooth(values, sigma, axis=-1)
                level = _frame_levels_db(wave, n_fft, hop_len, n_cols)[:valid]
                loudest = max(loudest, float(level.max()))
                gate = np.clip((level - st.silence_db) / max(st.full_db - st.silence_db, 1e-6), 0.0, 1.0)
                values = values * gate
                pos = (np.arange(valid) + 0.5) / n_cols
                weights = 0.05 + np.sin(np.pi * pos)  # favour the window's middle; never zero
                times = (win.start + np.arange(valid) * hop_len) / rate
                keep = times < self.duration
                bins.add(times[keep], np.moveaxis(values, -1, 0)[keep], weights[keep])

        def finished(upto_time: float) -> Iterator[MapFrame]:
            end_bin = self.count if math.isinf(upto_time) else min(self.count, int(math.floor(upto_time * st.map_rate + 1e-9)))
            for b, value in bins.pop_until(end_bin):
                yield self._frame(b, value)

        for i, item in enumerate(self.stream.iterate()):
            batch.append(item)
            if len(batch) >= st.batch:
                process(batch)
                batch = []
                nxt = windows[i + 1].start / rate if i + 1 < len(windows) else math.inf
                yield from finished(nxt)
        if batch:
            process(batch)
        yield from finished(math.inf)
        self.silent = loudest <= st.silence_db

    def _frame(self, b: int, value: np.ndarray) -> MapFrame:
        st = self.settings
        t = (b / st.map_rate + min((b + 1) / st.map_rate, max(self.duration, b / st.map_rate))) / 2  # bin centre
        value = np.asarray(value, np.float32)
        if not self.regions:
            return MapFrame(t, np.clip(sparsify(value, st.floor, st.baseline), 0, 1))
        combined = combine_sources(value[1:], st.source_floor, st.source_gate) if st.by_source else \
            sparsify(value[0], st.floor, st.baseline)
        sources = None
        if self.per_source:
            sources = np.clip(np.stack([sparsify(v, st.floor, st.baseline) for v in value[1:]]), 0, 1)
        return MapFrame(t, np.clip(combined, 0, 1), sources)


class OnsetMaps:
    """Streams :class:`MapFrame` s of the ``onsets`` method (:func:`avsplit.onsets.onset_maps`)."""

    def __init__(self, path: str | Path, settings=None, info: media.MediaInfo | None = None):
        from avsplit.onsets import OnsetSettings, analysis_fps, grid_shape

        self.path = Path(path)
        self.settings = settings or OnsetSettings()
        self.info = (info or media.probe(self.path)).require_video().require_audio()
        self.grid = grid_shape(self.path, self.settings, self.info)
        self.regions = None
        self.duration = float(self.info.duration)
        fps = analysis_fps(self.info, self.settings)
        self.count = max(1, int(math.ceil(self.duration * min(self.settings.map_rate, fps))))

    def __iter__(self) -> Iterator[MapFrame]:
        from avsplit.onsets import onset_maps

        for t, m in onset_maps(self.path, self.settings, self.info):
            yield MapFrame(float(t), m)


def compute_maps(source) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Collect a map stream: ``(times (T,), maps (T, h, w), source maps (K, T, h, w) or None)``."""
    times, maps, sources = [], [], []
    for f in source:
        times.append(f.time)
        maps.append(f.values)
        if f.sources is not None:
            sources.append(f.sources)
    grid = tuple(source.grid)
    maps_a = np.stack(maps).astype(np.float32) if maps else np.zeros((0,) + grid, np.float32)
    src = np.stack(sources, axis=1).astype(np.float32) if sources else None
    return np.asarray(times, np.float64), maps_a, src


# ------------------------------------------------------------------------------ writers


class MapsWriter:
    """Streams maps into an ``.npz`` (see the module doc), atomically.

    Maps are appended to temporary raw files and copied into the archive by :meth:`close`, so
    memory does not grow with the video's length.
    """

    def __init__(self, path: Path, grid: tuple[int, int], frame_size: tuple[int, int], sources: int = 0,
                 extra: dict | None = None):
        self.path = Path(path)
        self.grid = tuple(int(v) for v in grid)
        self.frame_size = frame_size  # (H, W)
        self.extra = extra or {}
        self.count = 0
        self.times: list[float] = []
        try:
            ensure_dir(self.path.parent)
            self._dir = tempfile.TemporaryDirectory(prefix=".avsplit-maps-", dir=self.path.parent)
        except OSError as exc:
            raise OutputError(f"cannot write the maps ({exc.strerror or exc})", self.path,
                              "choose a writable output folder") from exc
        self._files = [open(Path(self._dir.name) / f"{i}.raw", "wb") for i in range(1 + sources)]

    def write(self, frame: MapFrame) -> None:
        self._files[0].write(np.ascontiguousarray(frame.values, dtype="<f4").tobytes())
        if len(self._files) > 1:
            for f, v in zip(self._files[1:], frame.sources):
                f.write(np.ascontiguousarray(v, dtype="<f4").tobytes())
        self.times.append(float(frame.time))
        self.count += 1

    def _copy(self, zf: zipfile.ZipFile, name: str, raw: Path, shape: tuple[int, ...]) -> None:
        with zf.open(name, "w", force_zip64=True) as out:
            np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False, "shape": shape})
            with open(raw, "rb") as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)

    def close(self) -> Path:
        for f in self._files:
            f.close()
        t, (h, w) = self.count, self.grid
        try:
            with atomic_path(self.path) as tmp:
                with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                    self._copy(zf, "maps.npy", Path(self._dir.name) / "0.raw", (t, h, w))
                    arrays = {"times": np.asarray(self.times, np.float64),
                              "frame_size": np.asarray(self.frame_size, np.int64), **self.extra}
                    k = len(self._files) - 1
                    if k:
                        # (K, T, h, w): one source after the other
                        with zf.open("source_maps.npy", "w", force_zip64=True) as out:
                            np.lib.format.write_array_header_1_0(
                                out, {"descr": "<f4", "fortran_order": False, "shape": (k, t, h, w)})
                            for i in range(1, k + 1):
                                with open(Path(self._dir.name) / f"{i}.raw", "rb") as src:
                                    while chunk := src.read(1 << 20):
                                        out.write(chunk)
                    for name, arr in arrays.items():
                        with zf.open(f"{name}.npy", "w") as out:
                            np.lib.format.write_array(out, np.asarray(arr), allow_pickle=False)
        except OSError as exc:
            raise OutputError(f"cannot write the maps ({exc.strerror or exc})", self.path,
                              "choose a writable output folder or free disk space") from exc
        finally:
            self._dir.cleanup()
        return self.path

    def abort(self) -> None:
        for f in self._files:
            with contextlib.suppress(OSError):
                f.close()
        self._dir.cleanup()


class _MapClock:
    """The map at any time of a stream of :class:`MapFrame` s in time order (linear interpolation
    between neighbours, held at the ends); pulls frames lazily and hands each to ``on_frame``."""

    def __init__(self, frames: Iterator[MapFrame], on_frame=None):
        self._it = iter(frames)
        self._on_frame = on_frame
        self._prev: MapFrame | None = None
        self._next: MapFrame | None = self._pull()

    def _pull(self) -> MapFrame | None:
        frame = next(self._it, None)
        if frame is not None and self._on_frame is not None:
            self._on_frame(frame)
        return frame

    def at(self, t: float) -> tuple[np.ndarray, np.ndarray | None]:
        while self._next is not None and self._next.time < t:
            self._prev, self._next = self._next, self._pull()
        a, b = self._prev, self._next
        if a is None and b is None:
            raise AvsplitError("no sound maps were produced")
        if b is None:
            return a.values, a.sources
        if a is None or t <= a.time or b.time <= a.time:
            return (b if a is None else a).values, (b if a is None else a).sources
        x = (t - a.time) / (b.time - a.time)
        vals = (1 - x) * a.values + x * b.values
        srcs = None if a.sources is None else (1 - x) * a.sources + x * b.sources
        return vals, srcs

    def drain(self) -> None:
        while self._next is not None:
            self._prev, self._next = self._next, self._pull()


class OverlayRenderer:
    """Blends maps over frames: ``(1 - alpha) * frame + alpha * colour(map)``.

    Map values are shown relative to a slowly decaying peak (half-life ``memory`` seconds), so a
    quiet video still shows where its sound comes from while silence stays dark. With source maps,
    each source has its own colour (:data:`SOURCE_COLOURS`) scaled by its map.
    """

    def __init__(self, colormap: str = "inferno", alpha: float = 0.5, memory: float = 10.0, min_peak: float = 0.05):
        if not 0 <= alpha <= 1:
            raise ConfigError(f"--alpha must be in [0, 1], got {alpha}")
        self.lut = colormap_lut(colormap)
        self.alpha = float(alpha)
        self.memory = memory
        self.min_peak = min_peak
        self._peak = 0.0
        self._last_t: float | None = None

    def _gain(self, t: float, peak_now: float) -> float:
        if self._last_t is not None and self.memory > 0:
            self._peak *= 0.5 ** (max(0.0, t - self._last_t) / self.memory)
        self._last_t = t
        self._peak = max(self._peak, peak_now)
        return 1.0 / max(self._peak, self.min_peak)

    def render(self, t: float, frame: np.ndarray, values: np.ndarray, sources: np.ndarray | None = None) -> np.ndarray:
        h, w = frame.shape[:2]
        gain = self._gain(t, float(values.max()) if values.size else 0.0)
        base = frame.astype(np.float32) * (1.0 - self.alpha)
        if sources is not None and len(sources):
            up = np.clip(upsample(sources, w, h) * gain, 0, 1)  # (K, H, W)
            colours = SOURCE_COLOURS[np.arange(len(up)) % len(SOURCE_COLOURS)]
            tint = np.einsum("khw,kc->hwc", up, colours)
            out = base + self.alpha * np.minimum(tint, 255.0)
        else:
            up = np.clip(upsample(values, w, h) * gain, 0, 1)
            out = base + self.alpha * self.lut[np.clip(up * 255 + 0.5, 0, 255).astype(np.uint8)].astype(np.float32)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ one video


@dataclass
class LocalizeResult:
    video: Path
    files: list[Path] = field(default_factory=list)
    skipped: bool = False
    maps: int = 0
    silent: bool = False


def output_paths(video: Path, out: Path) -> tuple[Path, Path]:
    stem = Path(video).stem
    return out / f"{stem}.mp4", out / f"{stem}.npz"


def localize_video(
    path: str | Path,
    out: str | Path,
    *,
    method: str = "model",
    engine=None,
    maps: bool = False,
    per_source: bool = False,
    alpha: float = 0.5,
    colormap: str = "inferno",
    settings: ModelMapSettings | None = None,
    onset_settings=None,
    overwrite: bool = False,
    progress=None,
) -> LocalizeResult:
    """Write ``OUT/<stem>.mp4`` (and with ``maps`` ``OUT/<stem>.npz``) for one video.

    ``engine`` (a :class:`~avsplit.inference.engine.SeparationEngine`) is needed for ``method="model"``.
    Existing outputs are kept (``skipped``) unless ``overwrite``. ``progress``: a rich Progress to
    show the frames written.
    """
    path = Path(path)
    out = Path(out)
    video_out, maps_out = output_paths(path, out)
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}", fix=f"use one of {', '.join(METHODS)}")
    if per_source and method != "model":
        raise ConfigError("--per-source needs --method model (the onsets method does not tell sources apart)")
    for target in (video_out, maps_out) if maps else (video_out,):
        if target.is_dir():
            raise AvsplitError("is a folder where the output file should go", target, "remove or rename it, or use another -o")
    if not overwrite and video_out.exists() and (not maps or maps_out.exists()):
        return LocalizeResult(path, [video_out] + ([maps_out] if maps else []), skipped=True)
    with contextlib.suppress(OSError):
        if video_out.resolve() == path.resolve() or maps_out.resolve() == path.resolve():
            raise AvsplitError("the output would replace the input", path, "choose another output folder")
    renderer = OverlayRenderer(colormap, alpha)  # validates the options before any work
    info = media.probe(path).require_video().require_audio()
    if method == "model":
        if engine is None:
            raise ConfigError("the model method needs weights")
        source = ModelMaps(engine, path, settings or ModelMapSettings(), per_source=per_source, info=info)
    else:
        source = OnsetMaps(path, onset_settings, info=info)
    ensure_dir(out)
    writer_maps = None
    if maps:
        extra = {"method": np.asarray(method)}
        shown = source.regions if per_source else None  # sources found only to build the map are not written
        if shown:
            extra["source_boxes"] = np.asarray([r.box for r in shown], np.float64)
        writer_maps = MapsWriter(maps_out, source.grid, (info.height, info.width),
                                 sources=len(shown or []), extra=extra)
    clock = _MapClock(iter(source), writer_maps.write if writer_maps else None)
    fps = info.fps or 25.0
    frames = media.iter_frames(path, fps=fps if info.variable_frame_rate else None)
    task = None
    if progress is not None:
        task = progress.add_task(f"  {path.name}", total=info.num_frames or None, status="")
    written = 0
    try:
        with media.VideoWriter(video_out, fps=fps, width=info.width, height=info.height, copy_audio_from=path) as vw:
            for t, frame in frames:
                values, sources = clock.at(t)
                vw.write(renderer.render(t, frame, values, sources))
                written += 1
                if task is not None:
                    progress.advance(task)
            if written == 0:
                raise AvsplitError("video stream has no decodable frames", path, "check that the file plays")
            clock.drain()
        files = [video_out]
        if writer_maps is not None:
            writer_maps.close()
            files.append(maps_out)
    except BaseException:
        if writer_maps is not None:
            writer_maps.abort()
        raise
    finally:
        if task is not None:
            progress.remove_task(task)
    silent = getattr(source, "silent", False)
    if silent:
        warn_line(f"{path}: the audio is silent; the sound map is empty")
    return LocalizeResult(path, files, maps=writer_maps.count if writer_maps else 0, silent=silent)


def truth_has_boxes(truth: dict) -> bool:
    """Whether a ``synth`` truth dict has per-frame boxes for its sources."""
    sources = truth.get("sources") or []
    return bool(sources) and all(s.get("boxes") for s in sources) and bool(truth.get("fps"))


def localization_cious(path: str | Path, truth: dict, engine=None, methods: Sequence[str] = METHODS,
                       settings: ModelMapSettings | None = None, onset_settings=None) -> dict[str, list[float]]:
    """Per-frame cIoU of each method's maps for one video against its truth boxes
    (:func:`avsplit.localization_metrics.score_maps`); ``model`` is skipped without an ``engine``."""
    from avsplit.localization_metrics import score_maps

    info = media.probe(path).require_video().require_audio()
    out: dict[str, list[float]] = {}
    for method in methods:
        if method == "model":
            if engine is None:
                continue
            source = ModelMaps(engine, path, settings or ModelMapSettings(), info=info)
        else:
            source = OnsetMaps(path, onset_settings, info=info)
        times, maps, _ = compute_maps(source)
        out[method] = score_maps(maps, times, truth, frame_size=(info.width, info.height))
    return out


__all__ = ["COLORMAPS", "METHODS", "SOURCE_COLOURS", "LocalizeResult", "combine_sources", "MapFrame", "MapsWriter", "ModelMapSettings",
           "ModelMaps", "OnsetMaps", "OverlayRenderer", "apply_colormap", "colormap_lut", "compute_maps",
           "localization_cious", "localize_video", "output_paths", "sparsify", "truth_has_boxes", "upsample"]
