"""Separation with a trained model: ``separate`` (sources found in one video) and ``separate --mix``.

Long inputs are cut into overlapping windows of the model's clip length
(:mod:`avsplit.chunking`); frames for a window come from inside that window; audio and frames are
streamed, so memory is bounded by the window, not by the video's length.

Finding the sources of one video: the appearance net's per-pixel features are standardised
over the frame; pixels that stand out (objects rather than background) are clustered on their
features and position into groups (k chosen automatically unless given, by checking that the
groups' masks differ); each group is a source, whose mask in every window comes from its pooled
features (max over the group's pixels, exactly as in training). ``--grid`` and ``--box`` give the
regions directly.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import soundfile
import torch

from avsplit import media
from avsplit.chunking import OverlapAdd, Window, plan_windows
from avsplit.console import warn_line
from avsplit.errors import AvsplitError, ConfigError, OutputError
from avsplit.files import atomic_path, ensure_dir
from avsplit.models import AVSeparator, ModelConfig, use_channels_last
from avsplit.resample import StreamResampler

#: Windows sampled from a video to find its sources.
DISCOVERY_WINDOWS = 6
MAX_SOURCES = 4
#: Clusters whose masks are more similar than this are the same source.
SAME_SOURCE_SIMILARITY = 0.75
#: A cluster must explain at least this share of the separated energy to count as a source.
MIN_SOURCE_SHARE = 0.05
#: Pixels at least this fraction of the frame's highest saliency are candidates for sources.
SALIENT_FRACTION = 0.4
#: Weight of a pixel's (x, y) position, in [0, 1] units, against its unit-norm features when clustering.
POSITION_WEIGHT = 1.0
#: The same for motion models, whose candidate pixels are the moving ones (often the edges of
#: each player, whose features differ more than two players' do): players are told apart by where
#: they are, features only break ties.
MOTION_POSITION_WEIGHT = 8.0


# ------------------------------------------------------------------------------ streaming input


class WindowStream:
    """Windows of one video: mixture-audio chunks and the frames inside each window, in order.

    Audio is read per window (a seek each); frames are decoded once, sequentially, at the model's
    frame rate, and only those of the current window are kept.
    """

    def __init__(self, path: Path, model: AVSeparator | ModelConfig, overlap: float, info: media.MediaInfo | None = None,
                 need_audio: bool = True):
        self.path = Path(path)
        self.cfg = model if isinstance(model, ModelConfig) else model.config
        self.info = info or media.probe(self.path)
        self.info.require_video()
        if need_audio:
            self.info.require_audio()
        rate = self.cfg.audio.sample_rate
        self.total = max(1, int(round(self.info.duration * rate)))
        self.windows = plan_windows(self.total, self.cfg.audio.clip_samples, overlap)
        self.frame_size = media.scaled_size(self.info.width, self.info.height, self.cfg.video.short_side)

    def audio(self, win: Window) -> np.ndarray:
        """``(clip_samples,)`` float32: the window's audio, zero-padded past the end of the file."""
        rate = self.cfg.audio.sample_rate
        size = self.cfg.audio.clip_samples
        wave = media.read_audio(self.path, rate, start=win.start / rate, duration=size / rate)
        out = np.zeros(size, np.float32)
        out[: min(size, wave.shape[0])] = wave[:size]
        return out

    def frame_times(self, win: Window) -> np.ndarray:
        """Times (s) of the ``frames_per_window`` frames of a window (``num_frames``; every frame at the
        model's rate for motion models): centres of equal parts of the real content."""
        rate = self.cfg.audio.sample_rate
        n = self.cfg.frames_per_window
        start = win.start / rate
        span = max(win.length, 1) / rate
        span = min(span, max(self.info.duration - start, 1e-3))
        return start + (np.arange(n) + 0.5) * span / n

    def frames_for(self, times: Sequence[np.ndarray]) -> Iterator[np.ndarray]:
        """For each window's sorted times, the frames on screen then: uint8 ``(n, H, W, 3)``.

        Decodes the video once at the model's frame rate, holding only the frames still needed.
        """
        step = 1.0 / self.cfg.video.fps
        stream = media.iter_frames(self.path, fps=self.cfg.video.fps, short_side=self.cfg.video.short_side)
        buffer: deque[tuple[float, np.ndarray]] = deque()
        done = False
        for wanted in times:
            picked = []
            for t in wanted:
                while not done and (not buffer or buffer[-1][0] < t + step / 2):
                    try:
                        buffer.append(next(stream))
                    except StopIteration:
                        done = True
                if not buffer:
                    raise AvsplitError("video stream has no decodable frames", self.path, "check the file plays")
                best = min(buffer, key=lambda item: abs(item[0] - t) if item[0] <= t + 1e-6 else math.inf)
                if best[0] > t + 1e-6:
                    best = buffer[0]
                picked.append(best[1])
            # frames before this window's first time can be dropped (windows advance in time)
            while len(buffer) > 1 and buffer[1][0] <= wanted[0]:
                buffer.popleft()
            yield np.stack(picked)

    def frames_at(self, times: np.ndarray) -> np.ndarray:
        """Frames on screen at ``times`` by seeking (for a few scattered windows): ``(n, H, W, 3)``."""
        return media.read_frames(self.path, list(times), short_side=self.cfg.video.short_side)

    def audio_in_order(self, windows: Sequence[Window]) -> Iterator[np.ndarray]:
        """:meth:`audio` of each of ``windows`` (sorted by start), from one decode of the sound track
        in order rather than a seek per window; only the samples still needed are held."""
        rate, size = self.cfg.audio.sample_rate, self.cfg.audio.clip_samples
        chunks = media.iter_audio(self.path, rate)
        held = np.zeros(0, np.float32)  # decoded samples from `offset` on
        offset = 0
        ended = False
        for win in windows:
            if win.start > offset:  # drop what no later window needs
                drop = min(win.start - offset, held.shape[0])
                held, offset = held[drop:], offset + drop
            pieces = [held]
            have = offset + held.shape[0]
            while not ended and have < win.start + size:
                chunk = next(chunks, None)
                if chunk is None:
                    ended = True
                else:
                    pieces.append(chunk[0])
                    have += chunk.shape[1]
            held = np.concatenate(pieces) if len(pieces) > 1 else held
            out = np.zeros(size, np.float32)
            part = held[max(0, win.start - offset) : max(0, win.start - offset) + size]
            out[: part.shape[0]] = part
            yield out

    def iterate(self) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
        """``(window, audio (clip_samples,), frames (num_frames, H, W, 3))`` for every window, in order
        (one sequential decode of the sound track and one of the pictures)."""
        times = [self.frame_times(w) for w in self.windows]
        yield from zip(self.windows, self.audio_in_order(self.windows), self.frames_for(times))


# ------------------------------------------------------------------------------ streaming output


class StreamingWavWriter:
    """Writes audio progressively into a temporary file, renamed into place by :meth:`close`."""

    def __init__(self, path: Path, sample_rate: int, fmt: str = "wav", out_rate: int | None = None):
        self.path = path
        self._ctx = atomic_path(path)
        self._tmp = self._ctx.__enter__()
        self.in_rate = sample_rate
        self.out_rate = out_rate or sample_rate
        self._resampler = StreamResampler(sample_rate, self.out_rate) if self.out_rate != sample_rate else None
        try:
            self._file = soundfile.SoundFile(str(self._tmp), "w", samplerate=self.out_rate, channels=1,
                                             format=fmt.upper(), subtype="PCM_16")
        except (RuntimeError, soundfile.LibsndfileError, OSError) as exc:
            self._ctx.__exit__(type(exc), exc, None)
            raise OutputError(f"cannot write audio ({exc})", path, "choose a writable output folder") from exc

    def write(self, samples: np.ndarray) -> None:
        if not np.isfinite(samples).all():
            raise AvsplitError("the model gave non-finite audio (NaN or infinity) for this output", self.path,
                               "check the weights: they may come from a diverged training run")
        if self._resampler is not None:
            samples = self._resampler.push(samples)
        self._file.write(np.clip(samples, -1.0, 1.0).astype(np.float32))

    def close(self) -> None:
        if self._resampler is not None:
            self._file.write(np.clip(self._resampler.flush(), -1.0, 1.0).astype(np.float32))
        self._file.close()
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)


# ------------------------------------------------------------------------------ the engine


@dataclass
class Region:
    """A source's region on the feature grid and in the video's pixel coordinates."""

    cells: np.ndarray  # bool (h, w)
    box: list[float]  # [x0, y0, x1, y1] in video pixels
    confidence: float = 0.0
    label: str = ""


class SeparationEngine:
    """Runs a model over windows. All tensors on ``device``; batches of ``batch`` windows."""

    def __init__(self, model: AVSeparator, device: torch.device, batch: int = 4):
        self.model = use_channels_last(model.eval().to(device))
        self.device = device
        self.batch = batch
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
        from avsplit.data.motion import visual_inputs

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
        from avsplit.models.appearance import normalize_frames

        cfg = self.model.config
        if cfg.motion is None:
            return self.visual(frames)
        picked = np.ascontiguousarray(frames[:, cfg.appearance_frame_indices()])
        return self.model.appearance(normalize_frames(torch.from_numpy(picked).to(self.device)))

    @torch.no_grad()
    def motion_energy(self, frames: np.ndarray | None, grid: tuple[int, int], flow: torch.Tensor | None = None) -> np.ndarray:
        """Mean optical-flow magnitude of windows ``(B, frames_per_window, H, W, 3)`` (motion models;
        or of their already computed ``flow``) averaged onto ``grid`` ``(h, w)``: high where things move."""
        from avsplit.data.motion import visual_inputs

        if flow is None:
            _, flow = visual_inputs(self.model.config, frames, torch.device("cpu"))
        flow = flow.float()
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
    def separate(self, spec, warped, feats, visual_vectors: torch.Tensor, length: int) -> np.ndarray:
        """Pooled visual vectors ``(B, N, K)`` (motion models: ``(B, N, steps, K)``) of the sources of
        windows analysed by :meth:`analyse` (``spec``, ``warped``, ``feats``) -> waveforms ``(B, N, length)``."""
        masks = self.model.source_masks(self.model.mixture_logits(visual_vectors, feats, warped))
        return self.model.apply_masks(masks, spec, length).cpu().numpy()

    @torch.no_grad()
    def pixel_energy(self, raw: torch.Tensor, warped: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """Share of the mixture's (warped) magnitude each pixel's mask claims: ``(B, h, w)``."""
        pix = self.model.activate(self.model.synthesizer.pixelwise(self.model.activate_pixels(raw), feats))
        mag = warped[:, 0]  # (B, Fl, T)
        total = mag.sum(dim=(-2, -1)).clamp(min=1e-8)
        return torch.einsum("bhwft,bft->bhw", pix, mag) / total[:, None, None]


def region_vectors(model: AVSeparator, raw: torch.Tensor, regions: Sequence[Region]) -> torch.Tensor:
    """Pool raw features ``(B, K, h, w)`` over each region (max, then the model's activation): ``(B, R, K)``
    (motion models: ``(B, steps, K, h, w)`` -> ``(B, R, steps, K)``)."""
    out = []
    for r in regions:
        cells = torch.from_numpy(r.cells).to(raw.device)
        masked = raw.masked_fill(~cells, -math.inf)
        out.append(model.visual_vector(masked.flatten(-2).amax(dim=-1)))
    return torch.stack(out, dim=1)


def cells_to_box(cells: np.ndarray, frame_size: tuple[int, int], video_size: tuple[int, int]) -> list[float]:
    """Bounding box of the True cells of an ``(h, w)`` grid, in video pixels ``[x0, y0, x1, y1]``."""
    h, w = cells.shape
    ys, xs = np.nonzero(cells)
    if ys.size == 0:
        return [0.0, 0.0, float(video_size[0]), float(video_size[1])]
    sx, sy = video_size[0] / w, video_size[1] / h
    return [float(xs.min() * sx), float(ys.min() * sy), float((xs.max() + 1) * sx), float((ys.max() + 1) * sy)]


def grid_regions(rows: int, cols: int, grid_shape: tuple[int, int], frame_size, video_size) -> list[Region]:
    h, w = grid_shape
    regions = []
    for i in range(rows):
        for j in range(cols):
            cells = np.zeros((h, w), bool)
            y0, y1 = round(i * h / rows), max(round((i + 1) * h / rows), round(i * h / rows) + 1)
            x0, x1 = round(j * w / cols), max(round((j + 1) * w / cols), round(j * w / cols) + 1)
            cells[y0:y1, x0:x1] = True
            box = [j * video_size[0] / cols, i * video_size[1] / rows, (j + 1) * video_size[0] / cols, (i + 1) * video_size[1] / rows]
            regions.append(Region(cells, box, label=f"cell {i + 1},{j + 1}"))
    return regions


def box_regions(boxes: Sequence[Sequence[float]], grid_shape, video_size) -> list[Region]:
    h, w = grid_shape
    regions = []
    for box in boxes:
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 and 0 <= y0 < y1):
            raise ConfigError(f"box {list(box)} must be x0,y0,x1,y1 with x0 < x1 and y0 < y1")
        cx = (np.arange(w) + 0.5) * video_size[0] / w
        cy = (np.arange(h) + 0.5) * video_size[1] / h
        cells = (cy[:, None] >= y0) & (cy[:, None] <= y1) & (cx[None] >= x0) & (cx[None] <= x1)
        if not cells.any():  # a box smaller than a cell: take the cell under its centre
            cells[min(h - 1, int((y0 + y1) / 2 / video_size[1] * h)), min(w - 1, int((x0 + x1) / 2 / video_size[0] * w))] = True
        regions.append(Region(cells, [float(v) for v in box], label="box"))
    return regions


def discovery_picks(count: int) -> np.ndarray:
    """Indices of the windows (of ``count``) that :func:`discovery_windows` reads: up to
    :data:`DISCOVERY_WINDOWS`, spread evenly (all of them for a short video)."""
    return np.unique(np.linspace(0, count - 1, min(DISCOVERY_WINDOWS, count)).round().astype(int))


def discovery_windows(stream: WindowStream) -> tuple[np.ndarray, np.ndarray]:
    """Audio ``(M, S)`` and frames ``(M, F, H, W, 3)`` of up to :data:`DISCOVERY_WINDOWS` windows spread
    over the video (read by seeking), from which its sources are found."""
    windows = stream.windows
    picks = discovery_picks(len(windows))
    if len(picks) == len(windows):  # a short video: all of it, decoded once in order (cheaper than seeking)
        _, audio, frames = zip(*stream.iterate())
        return np.stack(audio), np.stack(frames)
    chosen = [windows[i] for i in picks]
    audio = np.stack([stream.audio(w) for w in chosen])
    frames = np.stack([stream.frames_at(stream.frame_times(w)) for w in chosen])
    return audio, frames


def saliency(raw: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Where the frame net sees objects: ``(h, w)`` saliency and ``(h, w, K)`` standardised features.

    ``raw``: per-pixel features ``(M, K, h, w)`` of a few windows (averaged). Each channel is
    standardised over the frame's pixels (median and standard deviation); a pixel's saliency is
    the norm of its positive deviations. Background texture stays near zero, objects stand out.
    """
    raw = raw.float()
    if raw.ndim == 5:  # motion models: (M, steps, K, h, w)
        raw = raw.mean(1)
    feats = raw.mean(0)  # (K, h, w)
    flat = feats.flatten(1)
    z = (feats - flat.median(dim=1).values[:, None, None]) / (flat.std(dim=1)[:, None, None] + 1e-6)
    sal = z.clamp(min=0).pow(2).sum(0).sqrt()
    return sal.cpu().numpy(), z.permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def find_regions(
    engine: SeparationEngine, audio: np.ndarray, frames: np.ndarray, video_size: tuple[int, int],
    num_sources: int | None, path: Path | str = "", features: dict | None = None,
) -> list[Region]:
    """Group the salient pixels of a few windows into sources (see the module doc).

    Salient pixels (:func:`saliency` at least :data:`SALIENT_FRACTION` of its maximum) are
    clustered on their standardised features and position; each cluster's pooled features give a
    mask. Without ``num_sources``, the largest k (up to :data:`MAX_SOURCES`) whose masks are
    distinct (cosine similarity of masked spectrograms below :data:`SAME_SOURCE_SIMILARITY`, also
    against the sum of the other groups: a group that sounds like the others together is a mix of
    them) and each carry at least :data:`MIN_SOURCE_SHARE` of the separated energy is kept.
    ``features``, when given, receives what was computed for the windows, for reuse: raw visual
    features (``raw``), mixture STFT (``spec``), its warped magnitude (``warped``) and audio features
    (``audio``).
    """
    spec, warped, feats = engine.analyse(audio)
    raw, flow, appearance = engine.visual_flow_appearance(frames)  # (M, K, h, w); motion models: (M, steps, K, h, w)
    if features is not None:
        features.update(raw=raw, spec=spec, warped=warped, audio=feats)
    if raw.ndim == 5:
        # motion models: sources are what moves (the players), described by what they look like
        _, z = saliency(appearance)
        sal = engine.motion_energy(None, raw.shape[-2:], flow)
    else:
        sal, z = saliency(raw)
    h, w = sal.shape
    whole = [0.0, 0.0, float(video_size[0]), float(video_size[1])]
    if float(np.abs(audio).max()) < 1e-4:
        warn_line(f"{path}: the audio is silent; writing one silent source")
        return [Region(np.ones((h, w), bool), whole, 0.0, "silent")]
    sal = np.nan_to_num(sal, nan=0.0, posinf=0.0, neginf=0.0)  # a 1-pixel grid has no spread
    if not float(sal.max()) > 1e-6:
        # nothing moves or stands out (a still picture with sound, a tiny video): one source, the whole picture
        if num_sources and num_sources > 1:
            warn_line(f"{path}: nothing in the picture moves or stands out, so its sources cannot be told apart; "
                      f"writing one source instead of {num_sources}")
        return [Region(np.ones((h, w), bool), whole, 1.0, "whole picture")]
    salient = sal >= SALIENT_FRACTION * float(sal.max())
    coords = np.argwhere(salient)
    zn = z[salient] / np.linalg.norm(z[salient], axis=1, keepdims=True).clip(min=1e-6)
    position = coords[:, ::-1] / np.array([w, h], float)  # (x, y) in [0, 1]
    weight = MOTION_POSITION_WEIGHT if raw.ndim == 5 else POSITION_WEIGHT
    points = np.concatenate([zn, weight * position], axis=1)
    max_k = min(MAX_SOURCES, len(points))
    candidates = [min(num_sources, len(points))] if num_sources else list(range(max_k, 0, -1))
    best: list[Region] | None = None
    for k in candidates:
        labels = kmeans_euclidean(points, k) if k > 1 else np.zeros(len(points), int)
        regions = []
        for j in range(k):
            cells = np.zeros((h, w), bool)
            members = coords[labels == j]
            cells[members[:, 0], members[:, 1]] = True
            if cells.any():
                regions.append(Region(cells, cells_to_box(cells, (w, h), video_size)))
        vecs = region_vectors(engine.model, raw, regions)  # (M, R, K)
        est = engine.model.activate(engine.model.mask_logits(vecs, feats)) * warped  # (M, R, Fl, T)
        flat = est.flatten(2).transpose(0, 1).flatten(1).cpu().numpy()  # (R, M*Fl*T)
        shares = flat.sum(1) / max(flat.sum(), 1e-8)
        norms = np.linalg.norm(flat, axis=1).clip(min=1e-8)
        sim = (flat @ flat.T) / norms[:, None] / norms[None]
        np.fill_diagonal(sim, 0)
        # a group whose sound is (close to) the others' together is a mix of them, not a source
        if len(flat) > 2:
            rest = flat.sum(0, keepdims=True) - flat
            mixed = ((flat * rest).sum(1) / norms / np.linalg.norm(rest, axis=1).clip(min=1e-8)).max()
        else:
            mixed = 0.0
        for r, s in zip(regions, shares):
            r.confidence = float(s)
        if num_sources or k == 1 or (max(sim.max(), mixed) < SAME_SOURCE_SIMILARITY and shares.min() >= MIN_SOURCE_SHARE):
            best = regions
            break
    if best is None:
        raise AvsplitError("no sources could be found in the picture", path, "give the regions with --grid or --box")
    return sorted(best, key=lambda r: (r.box[0] + r.box[2]) / 2)


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


def discover_regions(engine: SeparationEngine, stream: WindowStream, num_sources: int | None) -> list[Region]:
    """Find the sounding regions of a video by clustering pixel features (see module doc)."""
    audio, frames = discovery_windows(stream)
    return find_regions(engine, audio, frames, (stream.info.width, stream.info.height), num_sources, stream.path)


@dataclass
class SeparateResult:
    folder: Path
    files: list[Path] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    skipped: bool = False


def _stream_outputs(engine: SeparationEngine, stream: WindowStream, vectors_fn, writers: list[StreamingWavWriter],
                    residual: StreamingWavWriter | None, mixture: StreamingWavWriter | None = None, audio_fn=None,
                    frames_fn=None) -> None:
    """Separate every window of ``stream`` and stream the cross-faded results into ``writers``."""
    size = engine.model.config.audio.clip_samples
    joiner = OverlapAdd(stream.total, size, stream.windows)
    batch: list[tuple[Window, np.ndarray, np.ndarray]] = []

    def flush():
        audio = np.stack([b[1] for b in batch])
        spec, warped, feats = engine.analyse(audio)
        vectors = vectors_fn([b[2] for b in batch])
        est = engine.separate(spec, warped, feats, vectors, size)  # (B, N, S)
        for (win, wave, _), e in zip(batch, est):
            channels = np.concatenate([e, wave[None]], axis=0)  # sources + mixture
            piece = joiner.add(win, channels)
            _emit(piece)
        batch.clear()

    def _emit(piece: np.ndarray) -> None:
        if not piece.shape[1]:
            return
        sources, mix = piece[:-1], piece[-1]
        for wtr, s in zip(writers, sources):
            wtr.write(s)
        if residual is not None:
            residual.write(mix - sources.sum(0))
        if mixture is not None:
            mixture.write(mix)

    items = stream.iterate() if audio_fn is None else zip(stream.windows, audio_fn(), frames_fn())
    for item in items:
        batch.append(item)
        if len(batch) >= engine.batch:
            flush()
    if batch:
        flush()
    _emit(joiner.finish())


@dataclass
class RegionSpec:
    """How to get a video's regions: discovered (``num_sources`` or automatic), a grid, or boxes."""

    num_sources: int | None = None
    grid: tuple[int, int] | None = None
    boxes: Sequence[Sequence[float]] | None = None

    @property
    def method(self) -> str:
        return "box" if self.boxes else ("grid" if self.grid else "cluster")


class VideoWindowSource(torch.utils.data.IterableDataset):
    """Decodes videos for separation, in DataLoader worker processes when ``-j`` > 1.

    Each worker takes every n-th video and yields, in order, a ``start`` message (probe info,
    windows, and the discovery windows when sources must be found), one ``window`` message per
    window (its mixture audio and the frames inside it), then ``end`` -- or ``error`` with the
    one-line reason as soon as the video fails.
    """

    def __init__(self, paths: Sequence[Path], config: ModelConfig, overlap: float, discover: bool):
        self.paths = [Path(p) for p in paths]
        self.config = config
        self.overlap = overlap
        self.discover = discover

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        ids = range(len(self.paths)) if info is None else range(info.id, len(self.paths), info.num_workers)
        for i in ids:
            try:
                stream = WindowStream(self.paths[i], self.config, self.overlap)
                disc = discovery_windows(stream) if self.discover else None
                yield {"kind": "start", "video": i, "info": stream.info, "total": stream.total,
                       "windows": stream.windows, "frame_size": stream.frame_size, "discovery": disc}
                if disc is not None and len(disc[0]) == len(stream.windows):
                    # a short video: every window was read for discovery, so it is not decoded twice
                    windows = zip(stream.windows, disc[0], disc[1])
                else:
                    windows = stream.iterate()
                for win, audio, frames in windows:
                    yield {"kind": "window", "video": i, "window": win, "audio": audio, "frames": frames}
                yield {"kind": "end", "video": i}
            except AvsplitError as exc:
                yield {"kind": "error", "video": i, "message": str(exc)}


def _passthrough(item):
    return item


@dataclass
class _VideoJob:
    path: Path
    folder: Path
    info: media.MediaInfo
    regions: list[Region]
    joiner: OverlapAdd
    writers: list[StreamingWavWriter]
    residual: StreamingWavWriter
    names: list[str]
    known: dict = field(default_factory=dict)
    """Raw visual features, STFT and audio features of windows already analysed (by their start sample)."""

    def emit(self, piece: np.ndarray) -> None:
        if not piece.shape[1]:
            return
        sources, mix = piece[:-1], piece[-1]
        for wtr, src in zip(self.writers, sources):
            wtr.write(src)
        self.residual.write(mix - sources.sum(0))

    def abort(self) -> None:
        for wtr in self.writers + [self.residual]:
            wtr.abort()


def separate_videos(
    paths: Sequence[Path],
    out: Path,
    engine: SeparationEngine,
    *,
    regions: RegionSpec = RegionSpec(),
    overlap: float = 0.25,
    fmt: str = "wav",
    sample_rate: int | None = None,
    overwrite: bool = False,
    jobs: int = 1,
    weights_name: str = "",
) -> Iterator[tuple[Path, SeparateResult | None, str | None]]:
    """Separate many videos; yields ``(path, result, None)`` or ``(path, None, error line)`` as each ends.

    Decoding runs in ``jobs`` worker processes (in-process for ``jobs`` <= 1); windows of all the
    videos in flight are batched together through the model (``engine.batch`` per forward pass),
    so many short videos keep a GPU busy. Existing outputs are skipped unless ``overwrite``.
    """
    cfg = engine.model.config
    todo = []
    stems: dict[str, Path] = {}
    for p in paths:
        folder = out / Path(p).stem
        first = stems.setdefault(Path(p).stem, Path(p))
        if first != Path(p):
            yield Path(p), None, str(OutputError(
                f"has the same name as {first} in this batch (both would write {folder})", Path(p),
                "separate it into another -o folder, or rename it"))
        elif (folder / "sources.json").exists() and not overwrite:
            yield Path(p), SeparateResult(folder, skipped=True), None
        else:
            todo.append(Path(p))
    if not todo:
        return
    source = VideoWindowSource(todo, cfg, overlap, discover=regions.method == "cluster")
    workers = min(jobs, len(todo)) if jobs > 1 else 0
    loader = torch.utils.data.DataLoader(source, batch_size=None, num_workers=workers, collate_fn=_passthrough,
                                         prefetch_factor=4 if workers else None)
    rate = cfg.audio.sample_rate
    out_rate = sample_rate or rate
    size = cfg.audio.clip_samples
    jobs_by_id: dict[int, _VideoJob] = {}
    failed: set[int] = set()
    pending: list[dict] = []

    def flush() -> None:
        groups: dict[tuple, list[dict]] = {}
        for msg in pending:
            groups.setdefault(msg["frames"].shape, []).append(msg)
        pending.clear()
        for group in groups.values():
            # windows already analysed while finding the sources (all of them, for a short video) are not
            # analysed again
            todo_idx = [b for b, m in enumerate(group) if m["window"].start not in jobs_by_id[m["video"]].known]
            if todo_idx:
                spec_new, warped_new, feats_new = engine.analyse(np.stack([group[b]["audio"] for b in todo_idx]))
                raw_new = engine.visual(np.stack([group[b]["frames"] for b in todo_idx]))
            for b, msg in enumerate(group):
                job = jobs_by_id[msg["video"]]
                known = job.known.pop(msg["window"].start, None)
                if known is not None:
                    raw_b, spec_b, warped_b, feats_b = known
                else:
                    i = todo_idx.index(b)
                    raw_b, spec_b, warped_b, feats_b = (raw_new[i : i + 1], spec_new[i : i + 1], warped_new[i : i + 1],
                                                        feats_new[i : i + 1])
                vectors = region_vectors(engine.model, raw_b, job.regions)
                est = engine.separate(spec_b, warped_b, feats_b, vectors, size)[0]  # (R, S)
                job.emit(job.joiner.add(msg["window"], np.concatenate([est, msg["audio"][None]], axis=0)))

    def start(msg: dict) -> _VideoJob:
        path = todo[msg["video"]]
        info = msg["info"]
        video_size = (info.width, info.height)
        fw, fh = msg["frame_size"]
        grid_shape = engine.grid_shape((fw, fh))
        if regions.boxes:
            found = box_regions(regions.boxes, grid_shape, video_size)
        elif regions.grid:
            found = grid_regions(regions.grid[0], regions.grid[1], grid_shape, (fw, fh), video_size)
        known: dict[int, torch.Tensor] = {}
        if not (regions.boxes or regions.grid):
            audio, frames = msg["discovery"]
            seen: dict = {}
            found = find_regions(engine, audio, frames, video_size, regions.num_sources, path, features=seen)
            for i, w in zip(discovery_picks(len(msg["windows"])), range(len(seen["raw"]))):
                known[msg["windows"][i].start] = (seen["raw"][w : w + 1], seen["spec"][w : w + 1], seen["warped"][w : w + 1],
                                                  seen["audio"][w : w + 1])
        folder = ensure_dir(out / path.stem)
        names = [f"source-{k + 1}.{fmt}" for k in range(len(found))]
        writers = [StreamingWavWriter(folder / n, rate, fmt, out_rate) for n in names]
        residual = StreamingWavWriter(folder / f"residual.{fmt}", rate, fmt, out_rate)
        return _VideoJob(path, folder, info, found, OverlapAdd(msg["total"], size, msg["windows"]), writers, residual, names,
                         known)

    def finish(job: _VideoJob) -> SeparateResult:
        job.emit(job.joiner.finish())
        if not all(math.isfinite(r.confidence) and all(map(math.isfinite, r.box)) for r in job.regions):
            raise AvsplitError("the model gave non-finite source scores (NaN)", job.path,
                               "check the weights: they may come from a diverged training run")
        for wtr in job.writers + [job.residual]:
            wtr.close()
        sources = [{"index": k + 1, "file": job.names[k], "box": [round(v, 1) for v in r.box],
                    "confidence": round(r.confidence, 4)} for k, r in enumerate(job.regions)]
        meta = {"video": str(job.path), "method": regions.method, "sample_rate": out_rate,
                "duration": job.info.duration, "weights": weights_name, "residual": f"residual.{fmt}", "sources": sources}
        with atomic_path(job.folder / "sources.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=2, allow_nan=False))  # never invalid JSON (NaN)
        files = [job.folder / n for n in job.names] + [job.folder / f"residual.{fmt}"]
        return SeparateResult(job.folder, files, sources)

    try:
        for msg in loader:
            vid = msg["video"]
            if vid in failed:
                continue
            kind = msg["kind"]
            try:
                if kind == "start":
                    jobs_by_id[vid] = start(msg)
                elif kind == "window":
                    pending.append(msg)
                    if len(pending) >= engine.batch:
                        flush()
                elif kind == "end":
                    flush()
                    result = finish(jobs_by_id[vid])
                    del jobs_by_id[vid]
                    yield todo[vid], result, None
                else:
                    raise AvsplitError(msg["message"])
            except AvsplitError as exc:
                pending[:] = [m for m in pending if m["video"] != vid]
                failed.add(vid)
                job = jobs_by_id.pop(vid, None)
                if job is not None:
                    job.abort()
                yield todo[vid], None, str(exc)
    finally:
        for job in jobs_by_id.values():
            job.abort()


def separate_video(
    path: Path,
    out: Path,
    engine: SeparationEngine,
    *,
    num_sources: int | None = None,
    grid: tuple[int, int] | None = None,
    boxes: Sequence[Sequence[float]] | None = None,
    overlap: float = 0.25,
    fmt: str = "wav",
    sample_rate: int | None = None,
    overwrite: bool = False,
    weights_name: str = "",
) -> SeparateResult:
    """Write ``OUT/<stem>/source-<k>.<fmt>``, ``residual.<fmt>`` and ``sources.json`` for one video."""
    spec = RegionSpec(num_sources, grid, boxes)
    for _, result, error in separate_videos([Path(path)], out, engine, regions=spec, overlap=overlap, fmt=fmt,
                                            sample_rate=sample_rate, overwrite=overwrite, weights_name=weights_name):
        if error:
            raise AvsplitError(error)
        return result  # type: ignore[return-value]
    raise AvsplitError("nothing was separated", Path(path))


def separate_mix(
    paths: Sequence[Path],
    out: Path,
    engine: SeparationEngine,
    *,
    overlap: float = 0.25,
    fmt: str = "wav",
    sample_rate: int | None = None,
    overwrite: bool = False,
) -> SeparateResult:
    """Mix the sound of solo videos and separate each back with its own frames.

    Writes ``OUT/<A>+<B>/mixture.<fmt>`` and ``<A>.<fmt>``, ``<B>.<fmt>``. The mixture is the
    average of the inputs' sound tracks (so it cannot clip; each separated track estimates its
    input at 1/N of its level) and lasts as long as the shortest input.
    """
    paths = [Path(p) for p in paths]
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise ConfigError("the --mix inputs need distinct file names (their stems name the outputs)")
    folder = out / "+".join(stems)
    if (folder / f"mixture.{fmt}").exists() and not overwrite and all((folder / f"{s}.{fmt}").exists() for s in stems):
        return SeparateResult(folder, skipped=True)
    streams = [WindowStream(p, engine.model, overlap) for p in paths]
    shortest = min(streams, key=lambda s: s.total)
    for s in streams:
        s.total, s.windows = shortest.total, shortest.windows
    ensure_dir(folder)
    rate = engine.model.config.audio.sample_rate
    out_rate = sample_rate or rate
    writers = [StreamingWavWriter(folder / f"{s}.{fmt}", rate, fmt, out_rate) for s in stems]
    mixture = StreamingWavWriter(folder / f"mixture.{fmt}", rate, fmt, out_rate)

    def audio_fn():
        for pieces in zip(*(s.audio_in_order(shortest.windows) for s in streams)):
            yield np.mean(pieces, axis=0)

    def frames_fn():
        per_source = [s.frames_for([s.frame_times(w) for w in shortest.windows]) for s in streams]
        yield from zip(*per_source)  # per window: one (F, H, W, 3) array per source (sizes may differ)

    def vectors_fn(frames_list):
        per_source = []
        for n in range(len(streams)):
            raw = engine.visual(np.stack([frames[n] for frames in frames_list]))  # (B, K, h, w)
            per_source.append(engine.model.pool(raw))
        return torch.stack(per_source, dim=1)  # (B, N, K)

    try:
        _stream_outputs(engine, shortest, vectors_fn, writers, None, mixture, audio_fn, frames_fn)
    except BaseException:
        for wtr in writers + [mixture]:
            wtr.abort()
        raise
    for wtr in writers + [mixture]:
        wtr.close()
    files = [folder / f"mixture.{fmt}"] + [folder / f"{s}.{fmt}" for s in stems]
    return SeparateResult(folder, files)
