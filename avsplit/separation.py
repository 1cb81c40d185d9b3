"""Separation with a trained model: ``separate`` (sources found in one video) and ``separate --mix``.

Long inputs are cut into overlapping windows of the model's clip length
(:mod:`avsplit.dsp.chunking`); frames for a window come from inside that window; audio and frames are
streamed, so memory is bounded by the window, not by the video's length.

Finding the sources of one video: the appearance net's per-pixel features are standardised
over the frame; pixels that stand out (objects rather than background) are clustered on their
features and position into groups (k chosen automatically unless given, by checking that the
groups' masks differ); each group is a source, whose mask in every window comes from its pooled
features (max over the group's pixels, exactly as in training). ``--grid`` and ``--box`` give the
regions directly.

The model listens at its own rate; the tracks are made at the output rate (the input's own by
default) from the original sound of every channel, read window by window alongside the model's
input, with the model's masks mapped onto its STFT (:mod:`avsplit.dsp.fullband`), and written by
:mod:`avsplit.stems`.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from avsplit.dsp import fullband
from avsplit import io as media
from avsplit.dsp.chunking import Window, plan_windows, rescale_windows
from avsplit.console import warn_line
from avsplit.errors import AvsplitError, ConfigError, OutputError
from avsplit.files import atomic_path, ensure_dir
from avsplit.models import AVSeparator, ModelConfig, use_channels_last
from avsplit.stems import StemJoiner, StreamingWavWriter

#: Windows sampled from a video to find its sources.
DISCOVERY_WINDOWS = 6


# ------------------------------------------------------------------------------ streaming input


class WindowStream:
    """Windows of one video: mixture-audio chunks and the frames inside each window, in order.

    Audio is read per window (a seek each); frames are decoded once, sequentially, at the model's
    frame rate, and only those of the current window are kept.
    """

    def __init__(self, path: Path, model: AVSeparator | ModelConfig, overlap: float, info: media.MediaInfo | None = None,
                 need_audio: bool = True, out_rate: int | None = None, mono: bool = False):
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
        self.set_output(out_rate or self.info.audio_rate or rate, mono)

    def set_output(self, rate: int, mono: bool) -> None:
        """Where the stems are made: the original sound at ``rate``, all its channels (or mixed down
        to one by FFmpeg when ``mono``), on the model's windows carried to that rate
        (``out_windows``, ``out_total`` samples) with an STFT of the same resolution in seconds
        (``target``)."""
        model_rate = self.cfg.audio.sample_rate
        self.target = fullband.scaled_stft(self.cfg.audio, int(rate))
        self.mono = bool(mono)
        self.out_total = int(round(self.total * rate / model_rate))
        self.out_windows = rescale_windows(self.windows, model_rate, int(rate))

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
        for piece in _slices_in_order(media.iter_audio(self.path, rate), windows, size, 1, self.path):
            yield piece[0]

    def original_in_order(self, windows: Sequence[Window] | None = None) -> Iterator[np.ndarray]:
        """The original sound of each of ``windows`` (default :attr:`out_windows`) at the output rate:
        ``(channels, target.clip_samples)`` float32 (the decoded channels, or 1 when :attr:`mono`),
        zero-padded past the end."""
        chunks = media.iter_audio(self.path, self.target.sample_rate, mono=self.mono)
        yield from _slices_in_order(chunks, self.out_windows if windows is None else windows, self.target.clip_samples,
                                    1 if self.mono else None, self.path)

    def iterate(self) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
        """``(window, audio (clip_samples,), frames (num_frames, H, W, 3))`` for every window, in order
        (one sequential decode of the sound track and one of the pictures)."""
        times = [self.frame_times(w) for w in self.windows]
        yield from zip(self.windows, self.audio_in_order(self.windows), self.frames_for(times))


def _slices_in_order(chunks: Iterator[np.ndarray], windows: Sequence[Window], size: int, channels: int | None,
                     path: Path) -> Iterator[np.ndarray]:
    """Cut consecutive decoded chunks ``(C, n)`` into windows (sorted by start): ``(C, size)`` float32
    each, zero-padded past the end; only the samples some later window needs are held.
    ``channels``: the count every chunk must have (None: that of the first chunk)."""
    held: np.ndarray | None = None  # decoded samples from `offset` on
    offset = 0
    ended = False
    for win in windows:
        if held is not None and win.start > offset:  # drop what no later window needs
            drop = min(win.start - offset, held.shape[1])
            held, offset = held[:, drop:], offset + drop
        pieces = [] if held is None else [held]
        have = offset + (0 if held is None else held.shape[1])
        while not ended and have < win.start + size:
            chunk = next(chunks, None)
            if chunk is None:
                ended = True
                continue
            channels = channels or chunk.shape[0]
            if chunk.shape[0] != channels:
                raise AvsplitError(f"the sound track changes from {channels} to {chunk.shape[0]} channels", path,
                                   "separate it with --channels mono")
            pieces.append(chunk)
            have += chunk.shape[1]
        held = np.concatenate(pieces, axis=1) if pieces else np.zeros((channels or 1, 0), np.float32)
        out = np.zeros((held.shape[0], size), np.float32)
        part = held[:, max(0, win.start - offset) : max(0, win.start - offset) + size]
        out[:, : part.shape[1]] = part
        yield out


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
    from avsplit.counting import choose_regions

    if features is not None:
        features.update(saliency=sal, standardised=z, flow=flow)
    return choose_regions(engine, raw, sal, z, warped, feats, video_size, num_sources, flow)


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


def _stream_outputs(engine: SeparationEngine, stream: WindowStream, vectors_fn, stems: StemJoiner, audio_fn=None,
                    frames_fn=None, original_fn=None) -> None:
    """Separate every window of ``stream`` and stream the cross-faded results into ``stems``.

    ``audio_fn``/``frames_fn``/``original_fn`` (default: ``stream``'s own) give each window's
    model-rate mixture, frames and original sound (see :meth:`WindowStream.original_in_order`)."""
    batch: list[tuple[Window, np.ndarray, np.ndarray, np.ndarray]] = []

    def flush():
        vectors = vectors_fn([b[2] for b in batch])
        spec, warped, feats = engine.analyse(np.stack([b[1] for b in batch]))
        est = engine.separate(spec, warped, feats, vectors, np.stack([b[3] for b in batch]), stream.target)
        for (win, _, _, original), e in zip(batch, est):  # e: (N, C, S)
            stems.add(win.index, e, original)
        batch.clear()

    if audio_fn is None:
        items = stream.iterate()
        originals = stream.original_in_order()
    else:
        items = zip(stream.windows, audio_fn(), frames_fn())
        originals = original_fn()
    for (win, audio, frames), original in zip(items, originals):
        batch.append((win, audio, frames, original))
        if len(batch) >= engine.batch:
            flush()
    if batch:
        flush()


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
    window (its model-rate mixture audio, its original sound at the output rate and the frames
    inside it), then ``end`` -- or ``error`` with the one-line reason as soon as the video fails.
    ``sample_rate``/``mono``: the output rate (default: each video's own) and channels.
    """

    def __init__(self, paths: Sequence[Path], config: ModelConfig, overlap: float, discover: bool,
                 sample_rate: int | None = None, mono: bool = False):
        self.paths = [Path(p) for p in paths]
        self.config = config
        self.overlap = overlap
        self.discover = discover
        self.sample_rate = sample_rate
        self.mono = mono

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        ids = range(len(self.paths)) if info is None else range(info.id, len(self.paths), info.num_workers)
        for i in ids:
            try:
                stream = WindowStream(self.paths[i], self.config, self.overlap, out_rate=self.sample_rate, mono=self.mono)
                disc = discovery_windows(stream) if self.discover else None
                yield {"kind": "start", "video": i, "info": stream.info, "total": stream.total,
                       "windows": stream.windows, "frame_size": stream.frame_size, "discovery": disc,
                       "target": stream.target, "out_total": stream.out_total, "out_windows": stream.out_windows}
                if disc is not None and len(disc[0]) == len(stream.windows):
                    # a short video: every window was read for discovery, so it is not decoded twice
                    windows = zip(stream.windows, disc[0], disc[1])
                else:
                    windows = stream.iterate()
                for (win, audio, frames), original in zip(windows, stream.original_in_order()):
                    yield {"kind": "window", "video": i, "window": win, "audio": audio, "frames": frames,
                           "original": original}
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
    stems: StemJoiner
    target: fullband.OutputStft
    names: list[str]
    known: dict = field(default_factory=dict)
    """Raw visual features, STFT and audio features of windows already analysed (by their start sample)."""

    def abort(self) -> None:
        self.stems.abort()


def separate_videos(
    paths: Sequence[Path],
    out: Path,
    engine: SeparationEngine,
    *,
    regions: RegionSpec = RegionSpec(),
    overlap: float = 0.25,
    fmt: str = "wav",
    sample_rate: int | None = None,
    mono: bool = False,
    overwrite: bool = False,
    jobs: int = 1,
    weights_name: str = "",
) -> Iterator[tuple[Path, SeparateResult | None, str | None]]:
    """Separate many videos; yields ``(path, result, None)`` or ``(path, None, error line)`` as each ends.

    Decoding runs in ``jobs`` worker processes (in-process for ``jobs`` <= 1); windows of all the
    videos in flight are batched together through the model (``engine.batch`` per forward pass),
    so many short videos keep a GPU busy. Existing outputs are skipped unless ``overwrite``.
    Tracks are written at ``sample_rate`` (default: each video's own) with the video's channels
    (one, mixed down, when ``mono``): the model's masks applied to the original sound there.
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
    source = VideoWindowSource(todo, cfg, overlap, discover=regions.method == "cluster", sample_rate=sample_rate, mono=mono)
    workers = min(jobs, len(todo)) if jobs > 1 else 0
    loader = torch.utils.data.DataLoader(source, batch_size=None, num_workers=workers, collate_fn=_passthrough,
                                         prefetch_factor=4 if workers else None)
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
                est = engine.separate(spec_b, warped_b, feats_b, vectors, msg["original"][None], job.target)[0]  # (R, C, S)
                job.stems.add(msg["window"].index, est, msg["original"])

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
        target = msg["target"]
        writers = [StreamingWavWriter(folder / n, target.sample_rate, fmt) for n in names]
        residual = StreamingWavWriter(folder / f"residual.{fmt}", target.sample_rate, fmt)
        stems = StemJoiner(msg["out_total"], target.clip_samples, msg["out_windows"], writers, residual=residual)
        return _VideoJob(path, folder, info, found, stems, target, names, known)

    def finish(job: _VideoJob) -> SeparateResult:
        if not all(math.isfinite(r.confidence) and all(map(math.isfinite, r.box)) for r in job.regions):
            raise AvsplitError("the model gave non-finite source scores (NaN)", job.path,
                               "check the weights: they may come from a diverged training run")
        job.stems.close()
        sources = [{"index": k + 1, "file": job.names[k], "box": [round(v, 1) for v in r.box],
                    "confidence": round(r.confidence, 4)} for k, r in enumerate(job.regions)]
        meta = {"video": str(job.path), "method": regions.method, "sample_rate": job.target.sample_rate,
                "channels": job.stems.writers[0].channels if job.stems.writers else 1,
                "model_sample_rate": cfg.audio.sample_rate, "duration": job.info.duration, "weights": weights_name,
                "residual": f"residual.{fmt}", "sources": sources}
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
    mono: bool = False,
    overwrite: bool = False,
    weights_name: str = "",
) -> SeparateResult:
    """Write ``OUT/<stem>/source-<k>.<fmt>``, ``residual.<fmt>`` and ``sources.json`` for one video."""
    spec = RegionSpec(num_sources, grid, boxes)
    for _, result, error in separate_videos([Path(path)], out, engine, regions=spec, overlap=overlap, fmt=fmt,
                                            sample_rate=sample_rate, mono=mono, overwrite=overwrite,
                                            weights_name=weights_name):
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
    mono: bool = False,
    overwrite: bool = False,
) -> SeparateResult:
    """Mix the sound of solo videos and separate each back with its own frames.

    Writes ``OUT/<A>+<B>/mixture.<fmt>`` and ``<A>.<fmt>``, ``<B>.<fmt>``. The mixture is the
    average of the inputs' sound tracks (so it cannot clip; each separated track estimates its
    input at 1/N of its level) and lasts as long as the shortest input. Tracks are written at
    ``sample_rate`` (default: the highest of the inputs' rates) with the inputs' channels (a mono
    input is heard in every channel; inputs with different multi-channel layouts, or ``mono``, are
    mixed down to one).
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
    layouts = {s.info.audio_channels or 1 for s in streams} - {1}
    if len(layouts) > 1 and not mono:
        warn_line(f"the --mix inputs have different channel layouts ({sorted(layouts)} channels); mixing down to mono")
    out_rate = sample_rate or max(s.info.audio_rate or s.cfg.audio.sample_rate for s in streams)
    for s in streams:
        s.total, s.windows = shortest.total, shortest.windows
        s.set_output(out_rate, mono or len(layouts) > 1)
    ensure_dir(folder)
    writers = [StreamingWavWriter(folder / f"{s}.{fmt}", out_rate, fmt) for s in stems]
    mixture = StreamingWavWriter(folder / f"mixture.{fmt}", out_rate, fmt)
    joined = StemJoiner(shortest.out_total, shortest.target.clip_samples, shortest.out_windows, writers, mixture=mixture)

    def audio_fn():
        for pieces in zip(*(s.audio_in_order(shortest.windows) for s in streams)):
            yield np.mean(pieces, axis=0)

    def original_fn():
        for pieces in zip(*(s.original_in_order() for s in streams)):
            channels = max(p.shape[0] for p in pieces)
            if any(p.shape[0] not in (1, channels) for p in pieces):
                raise AvsplitError("the --mix inputs decode to different channel layouts", None,
                                   "mix them with --channels mono")
            yield np.mean([np.broadcast_to(p, (channels, p.shape[1])) for p in pieces], axis=0)

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
        _stream_outputs(engine, shortest, vectors_fn, joined, audio_fn, frames_fn, original_fn)
    except BaseException:
        joined.abort()
        raise
    joined.close()
    files = [folder / f"mixture.{fmt}"] + [folder / f"{s}.{fmt}" for s in stems]
    return SeparateResult(folder, files)
