"""The ``model`` method's sound maps (:class:`ModelMaps`): see :mod:`avsplit.localize`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from avsplit import io as media
from avsplit.dsp.maps import combine_sources, sparsify
from avsplit.errors import ConfigError
from avsplit.inference import WindowStream, discover_regions, motion_energy, saliency
from avsplit.localize.maps import MapFrame


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




class ModelMaps:
    """Streams :class:`MapFrame` s of the ``model`` method for one video (see the module doc).

    ``grid`` (h, w) and ``regions`` (with ``per_source``) are known after construction.
    """

    def __init__(self, engine, path: str | Path, settings: ModelMapSettings = ModelMapSettings(),
                 per_source: bool = False, info: media.MediaInfo | None = None):
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
        engine = self.engine
        heard, seen = engine.hear(audio), engine.see(frames)
        raw, flow = seen.raw, seen.flow
        pix = engine.pixel_masks(heard, seen)  # (B, h, w, F, T)
        mag = heard.warped[:, 0].float()  # (B, F, T)
        total = mag.sum(dim=1).clamp(min=1e-8)  # (B, T)
        shares = torch.einsum("bhwft,bft->bhwt", pix.float(), mag) / total[:, None, None]
        # What a pixel claims beyond what a typical (background) pixel claims: objects that sound
        # claim more energy than the background, silent ones less.
        shares = (shares - shares.flatten(1, 2).median(dim=1).values[:, None, None]).clamp(min=0)
        objects = None
        if self.settings.objectness > 0:
            objects = []
            for b in range(raw.shape[0]):
                if self.fine is not None:  # motion models: what moves in this window, per flow pixel
                    sal = motion_energy(flow[b : b + 1], self.fine)
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
            masks = engine.masks(heard, engine.vectors(seen, self.regions), shared=False).float()  # (B, R, F, T)
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
