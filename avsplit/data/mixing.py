"""The mix-and-separate sampler: training examples made by mixing clips of different videos.

Each example takes ``num_mix`` sources from different videos, a random window of each (avoiding
near-silent windows when possible), a random gain per source, optionally a random timbre (a smooth
equaliser curve) and another sound style (:mod:`avsplit.data.sounds`), so that a model trained on a
few synthesizers' instruments hears others, and frames from inside each source's window, randomly
cropped, flipped and colour-jittered. Examples are a pure function of ``(seed, index)``, so a run is
reproducible and resumes exactly, whatever the number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from avsplit.data.composites import picture_in_picture, side_by_side
from avsplit.data.entry import CachedVideo
from avsplit.data.motion import choose_crop, crop_flip_flow, resize_clip, window_flow
from avsplit.data.players import choose_silent_region, player_boxes, player_mask
from avsplit.data.sounds import random_timbre, resound
from avsplit.data.styles import recolour, restyle
from avsplit.dsp.filters import rms
from avsplit.models.config import ModelConfig

#: Windows quieter than this RMS are re-drawn (a few times) when sampling.
MIN_WINDOW_RMS = 1e-3


@dataclass
class MixExample:
    """One training/validation example.

    ``audio``: float32 ``(sources, samples)`` with gains applied (the mixture is their sum);
    ``frames``: uint8 ``(sources, frames, height, width, 3)``; ``videos``: indices into the
    sampler's video list; ``starts``: window start sample per source; ``flow`` (motion models):
    float16 ``(sources, steps, height / s, width / s, 2)``, cut and mirrored like the frames;
    ``regions``: bool ``(sources, height, width)``, the pixels of each source's picture that show it
    (a composite example, :mod:`avsplit.data.composites`), or ``None``: each source's whole picture;
    ``no_player``: the sources whose region shows no player (a silent region, :attr:`Augment.silent_regions`),
    whose category is unknown.
    """

    audio: np.ndarray
    frames: np.ndarray
    videos: list[int]
    starts: list[int]
    flow: np.ndarray | None = None
    regions: np.ndarray | None = None
    no_player: tuple[int, ...] = ()


@dataclass
class MixBatch:
    """Stacked :class:`MixExample` arrays: ``audio`` ``(batch, sources, samples)``, ``frames``
    ``(batch, sources, frames, H, W, 3)``, ``flow`` (motion models) ``(batch, sources, steps, h, w, 2)``,
    ``regions`` ``(batch, sources, H, W)`` (``None`` when every example pools whole pictures),
    ``videos`` int ``(batch, sources)``: each source's index in the sampler's video list; ``no_player``
    bool ``(batch, sources)``: the silent regions (``None`` when there are none)."""

    audio: np.ndarray
    frames: np.ndarray
    flow: np.ndarray | None = None
    regions: np.ndarray | None = None
    videos: np.ndarray | None = None
    no_player: np.ndarray | None = None


@dataclass(frozen=True)
class Augment:
    crop: bool = True
    flip: bool = True
    colour: float = 0.2
    """Maximum relative change of brightness, contrast and saturation."""
    gain_db: float = 6.0
    """Per-source gains are drawn uniformly in [-gain_db, +gain_db] dB."""
    timbre_db: float = 0.0
    """Per-source random equaliser (:func:`avsplit.data.sounds.random_timbre`): band gains up to
    +-timbre_db dB; 0: off."""
    sound_styles: float = 0.0
    """Probability of playing a source in another sound style (:func:`avsplit.data.sounds.resound`:
    resonances, another register, saturation, other dynamics or a detuned double), so that what the
    picture shows, not one maker's sound, must pick a source out of the mixture."""
    crop_candidates: int = 1
    """Random crops drawn per clip when the frame is larger than the crop; with the flow of a motion
    model, the one holding the most motion is kept (:func:`avsplit.data.motion.choose_crop`), so
    that a sounding source off the centre of a wide or tall frame stays in view. 1: one random crop."""
    greyscale: float = 0.0
    """Probability of turning a clip's frames grey (a shape cue, not a colour one, must then identify it)."""
    channel_swap: float = 0.0
    """Probability of permuting a clip's colour channels (hue changes, shapes and shading stay)."""
    styles: float = 0.0
    """Probability of redrawing a clip in another picture style (:func:`avsplit.data.styles.restyle`:
    line drawing, flat colours, blur, negative or grain), so that shape and motion, not one way of
    drawing, identify a player."""
    composite: float = 0.0
    """Probability that a two-source example shows both sources in one picture, side by side, each
    source's vector pooled over its own half (:func:`avsplit.data.composites.side_by_side`): two
    players in one frame must then give two different vectors, as separating a duet needs."""
    inset: float = 0.0
    """Probability that a composite example shows one source's clip scaled down and inset in the
    other's picture instead of side by side (:func:`avsplit.data.composites.picture_in_picture`):
    players of different sizes, one in front of the other, as varied duets show them."""
    zoom: float = 1.0
    """Largest zoom of a clip's crop: half the clips are cut from a smaller part of the frame (side
    ``crop_size / z``, ``z`` log-uniform in ``[1, zoom]``, chosen like any crop) and scaled up to
    ``crop_size``, so that players drawn small in a wide frame are also seen large; 1: off."""
    equal_level: bool = False
    """Bring every source of an example to the same RMS (the geometric mean of theirs) before its
    random gain, so that sources differ in level by at most ``2 * gain_db``: clips recorded at levels
    far apart (varied data spans 30 dB) otherwise make examples where one source fills every bin of
    the ideal mask and the other none, which teaches loudness, not which picture sounds."""
    silent: float = 0.0
    """Probability that one source of an example (drawn at random) is silent: its picture is shown
    but its sound is left out of the mixture, so its ideal mask is empty. A player or object whose
    sound is not heard must then separate nothing, which is what the automatic count's share check
    (:data:`avsplit.inference.counting.MIN_SOURCE_SHARE`) asks of a group that is not a source.
    Never in composites (both halves of one picture sound)."""
    silent_regions: float = 0.0
    """Probability that one source of an example is replaced by a *silent region*
    (:mod:`avsplit.data.players`): another source's picture, its vector pooled outside that source's
    player (a dilated box from the truth beside the video), its sound left out, so its ideal mask is
    empty; the shown source's vector is pooled over its player. A region of a picture without the
    player, a distractor or the background, must separate nothing, which is what the automatic count
    asks of a group that is no source. Only for videos with a truth (``avsplit synth`` solos); never in
    composites or with a silent source. Drawn from its own random stream, so the rest of an example
    (videos, windows, crops) is the same as without it."""


NO_AUGMENT = Augment(crop=False, flip=False, colour=0.0, gain_db=0.0)

#: The picture augmentations of ``train --picture-variety``: motion-guided crops, grey and hue-swapped clips.
PICTURE_VARIETY = {"crop_candidates": 4, "greyscale": 0.2, "channel_swap": 0.3}

def equalising_factors(waves: Sequence[np.ndarray]) -> list[float]:
    """Factors that bring each wave ``(samples,)`` to the geometric mean RMS of the waves (those
    quieter than ``MIN_WINDOW_RMS`` are left as they are and do not count in the mean)."""
    levels = [rms(w) for w in waves]
    loud = [r for r in levels if r >= MIN_WINDOW_RMS]
    if not loud:
        return [1.0] * len(waves)
    target = float(np.exp(np.mean(np.log(loud))))
    return [target / r if r >= MIN_WINDOW_RMS else 1.0 for r in levels]


class MixSampler:
    """Deterministic mix-and-separate examples from cached videos.

    ``pair_filter(a, b)``, when given, restricts which videos may be mixed together (the curriculum
    uses it); it is tried a limited number of times before falling back to any distinct videos.
    """

    def __init__(
        self,
        videos: Sequence[CachedVideo],
        config: ModelConfig,
        num_mix: int | None = None,
        seed: int = 0,
        augment: Augment = Augment(),
        pair_filter: Callable[[int, int], bool] | None = None,
    ):
        self.num_mix = num_mix or config.num_mix
        if len(videos) < self.num_mix:
            raise ValueError(f"mixing {self.num_mix} sources needs at least {self.num_mix} videos, got {len(videos)}")
        self.videos = list(videos)
        self.config = config
        self.seed = seed
        self.augment = augment
        self.pair_filter = pair_filter
        self._boxes: dict[int, np.ndarray | None] = {}

    def __len__(self) -> int:
        return len(self.videos)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, index])

    def example(self, index: int) -> MixExample:
        rng = self.rng(index)
        chosen = self._choose_videos(rng)
        composite = self.num_mix == 2 and self.augment.composite > 0 and rng.random() < self.augment.composite
        inset = composite and self.augment.inset > 0 and rng.random() < self.augment.inset
        width = self.config.video.crop_size // 2 if composite and not inset else None
        audio, frames, starts, flows, gains, masks = [], [], [], [], [], []
        for v in chosen:
            wave, clip_frames, start, flow, gain, mask = self._clip(v, rng, width)
            audio.append(wave)
            frames.append(clip_frames)
            starts.append(start)
            flows.append(flow)
            gains.append(gain)
            masks.append(mask)
        if self.augment.equal_level:
            gains = [g * f for g, f in zip(gains, equalising_factors(audio))]
        if not composite and self.augment.silent > 0 and rng.random() < self.augment.silent:
            gains[int(rng.integers(len(gains)))] = 0.0
        silent_region = None
        if not composite and 0.0 not in gains and self.augment.silent_regions > 0:
            region_rng = np.random.default_rng([self.seed, index, 1])
            if region_rng.random() < self.augment.silent_regions:
                silent_region = choose_silent_region(masks, region_rng)
        if silent_region is not None:
            gains[silent_region[1]] = 0.0
        audio = [wave * np.float32(g) for wave, g in zip(audio, gains)]  # float32 waves stay float32
        if silent_region is not None:
            return self._with_silent_region(np.stack(audio), frames, flows, chosen, starts, masks, *silent_region)
        if inset:
            pictures, flow, regions = picture_in_picture(frames, flows, rng, self._flow_scale)
            return MixExample(np.stack(audio), pictures, chosen, starts, flow, regions)
        if composite:
            pictures, flow, regions = side_by_side(frames, flows, rng)
            return MixExample(np.stack(audio), pictures, chosen, starts, flow, regions)
        flow = np.stack(flows) if self.config.motion is not None else None
        return MixExample(np.stack(audio), np.stack(frames), chosen, starts, flow)

    def _with_silent_region(self, audio: np.ndarray, frames: list, flows: list, chosen: list[int], starts: list[int],
                            masks: list, shown: int, replaced: int) -> MixExample:
        """The example with source ``replaced`` (already silenced in ``audio``) showing source ``shown``'s
        picture outside its player mask, and ``shown`` pooled over its player."""
        frames[replaced], flows[replaced] = frames[shown], flows[shown]
        regions = np.ones((len(frames), *frames[shown].shape[1:3]), bool)
        regions[shown], regions[replaced] = masks[shown], ~masks[shown]
        flow = np.stack(flows) if self.config.motion is not None else None
        return MixExample(audio, np.stack(frames), chosen, starts, flow, regions, (replaced,))

    def batch(self, indices: Sequence[int]) -> MixBatch:
        """The examples ``indices``, stacked (:class:`MixBatch`)."""
        examples = [self.example(i) for i in indices]
        flow = np.stack([e.flow for e in examples]) if self.config.motion is not None else None
        regions = None
        if any(e.regions is not None for e in examples):
            whole = np.ones((examples[0].frames.shape[0], *examples[0].frames.shape[2:4]), bool)
            regions = np.stack([whole if e.regions is None else e.regions for e in examples])
        no_player = None
        if any(e.no_player for e in examples):
            no_player = np.zeros((len(examples), examples[0].frames.shape[0]), bool)
            for row, e in enumerate(examples):
                no_player[row, list(e.no_player)] = True
        return MixBatch(np.stack([e.audio for e in examples]), np.stack([e.frames for e in examples]), flow, regions,
                        np.array([e.videos for e in examples], dtype=np.int64), no_player)

    # ------------------------------------------------------------------ internals
    def _choose_videos(self, rng: np.random.Generator) -> list[int]:
        n = len(self.videos)
        for attempt in range(50):
            chosen = [int(i) for i in rng.choice(n, size=self.num_mix, replace=False)]
            if self.pair_filter is None or attempt == 49:
                return chosen
            if all(self.pair_filter(a, b) for i, a in enumerate(chosen) for b in chosen[i + 1 :]):
                return chosen
        return chosen

    def _clip(self, video_index: int, rng: np.random.Generator, width: int | None = None
              ) -> tuple[np.ndarray, np.ndarray, int, np.ndarray | None, float, np.ndarray | None]:
        """A source's window from video ``video_index``: audio ``(samples,)`` before its random gain,
        frames ``(F, crop, width or crop, 3)``, start, flow, the gain (a factor) and, with
        :attr:`Augment.silent_regions` (not in composites), its player's pixels bool ``(crop, crop)``
        (``None`` where unknown)."""
        cfg = self.config
        video = self.videos[video_index]
        length = cfg.audio.clip_samples
        total = video.num_samples
        span = max(0, total - length)
        wave = None
        start = 0
        for _ in range(5):
            start = int(rng.integers(0, span + 1)) if span else 0
            wave = video.audio_window(start, length)
            if float(np.sqrt(np.mean(wave**2))) >= MIN_WINDOW_RMS:
                break
        if self.augment.timbre_db > 0:
            wave = random_timbre(wave, self.config.audio.sample_rate, self.augment.timbre_db, rng)
        wave = resound(wave, self.config.audio.sample_rate, rng, self.augment.sound_styles)
        gain_db = rng.uniform(-self.augment.gain_db, self.augment.gain_db) if self.augment.gain_db else 0.0
        gain = float(10.0 ** (gain_db / 20.0))
        rate = cfg.audio.sample_rate
        t0, t1 = start / rate, (start + length) / rate
        flow = None
        if cfg.motion is None:
            idx = video.frames_in(t0, t1, cfg.video.num_frames)
        else:
            dense = video.frames_in(t0, t1, cfg.frames_per_window)
            idx = dense[cfg.appearance_frame_indices()]
            flow = window_flow(video.array("flow"), dense)
        frames = np.asarray(video.frames[idx])  # (F, H, W, 3), a copy out of the memmap
        mask = None
        if self.augment.silent_regions > 0 and width is None:
            boxes = self._player_boxes(video_index)
            shown = idx if cfg.motion is None else dense
            mask = None if boxes is None else player_mask(boxes[shown], frames.shape[1:3])
        frames, flow, mask = self._augment_frames(frames, rng, flow, width, mask)
        return wave.astype(np.float32), frames, start, flow, gain, mask

    def _player_boxes(self, video_index: int) -> np.ndarray | None:
        """:func:`avsplit.data.players.player_boxes` of a video, read once per sampler."""
        if video_index not in self._boxes:
            self._boxes[video_index] = player_boxes(self.videos[video_index])
        return self._boxes[video_index]

    @property
    def _flow_scale(self) -> int:
        """Frame pixels per flow pixel (1 without a motion model)."""
        return self.config.motion.flow_scale if self.config.motion is not None else 1

    def _augment_frames(self, frames: np.ndarray, rng: np.random.Generator, flow: np.ndarray | None = None,
                        width: int | None = None, mask: np.ndarray | None = None):
        """Crop to ``crop_size`` squares (or ``crop_size`` x ``width``; random or centred), flip, jitter
        colour; same for all frames (and the same crop and flip for the flow and for ``mask``, bool
        ``(H, W)``, when given). Returns the frames, the flow and the mask (``None``s when not given)."""
        size, size_w = self.config.video.crop_size, width or self.config.video.crop_size
        scale = self._flow_scale
        if mask is not None:  # cut like one more frame, then split off before any colour change
            frames = np.concatenate([frames, np.repeat(mask[None, :, :, None] * np.uint8(255), 3, axis=3)])
        _, h, w, _ = frames.shape
        if h < size or w < size_w:
            pad_h, pad_w = max(0, size - h), max(0, size_w - w)
            pad_h, pad_w = -(-pad_h // (2 * scale)) * 2 * scale, -(-pad_w // (2 * scale)) * 2 * scale
            frames = np.pad(frames, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)), mode="edge")
            if flow is not None:
                fh, fw = pad_h // 2 // scale, pad_w // 2 // scale
                flow = np.pad(flow, ((0, 0), (fh, fh), (fw, fw), (0, 0)), mode="constant")
            _, h, w, _ = frames.shape
        cut_h, cut_w = self._zoomed_size(size, size_w, scale, rng)
        if self.augment.crop:
            y, x = choose_crop(h, w, (cut_h, cut_w), scale, self.augment.crop_candidates, rng, flow)
        else:
            y, x = (h - size) // 2 // scale * scale, (w - size_w) // 2 // scale * scale
        frames = frames[:, y : y + cut_h, x : x + cut_w]
        flip = bool(self.augment.flip and rng.random() < 0.5)
        if flip:
            frames = frames[:, :, ::-1]
        if flow is not None:
            flow = crop_flip_flow(flow, y, x, (cut_h, cut_w), flip, scale)
        if (cut_h, cut_w) != (size, size_w):
            frames, flow = resize_clip(np.ascontiguousarray(frames), flow, (size, size_w), scale)
        if flow is not None:
            flow = flow.astype(np.float16)
        if mask is not None:
            frames, mask = frames[:-1], frames[-1, :, :, 0] >= 128
        frames = self._jitter_colour(frames, rng)
        frames = recolour(frames, rng, self.augment.greyscale, self.augment.channel_swap)
        return np.ascontiguousarray(restyle(frames, rng, self.augment.styles)), flow, mask

    def _jitter_colour(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Frames ``(F, H, W, 3)`` uint8 with a random brightness, contrast and saturation (up to
        ``Augment.colour``), the same for all frames."""
        if self.augment.colour <= 0:
            return frames
        c = self.augment.colour
        brightness, contrast, saturation = rng.uniform(1 - c, 1 + c, size=3)
        f = frames.astype(np.float32)
        grey = f.mean(axis=-1, keepdims=True)
        f = grey + (f - grey) * saturation
        mean = f.mean()
        f = (f - mean) * contrast + mean
        f = f * brightness
        return np.clip(f, 0, 255).astype(np.uint8)

    def _zoomed_size(self, size: int, size_w: int, scale: int, rng: np.random.Generator) -> tuple[int, int]:
        """``(height, width)`` of the part of the frame a clip's crop is cut from: ``(size, size_w)``, or
        with ``Augment.zoom`` (half the clips, and only with random crops) that divided by a random zoom,
        in multiples of ``scale``."""
        if self.augment.zoom <= 1.0 or not self.augment.crop or rng.random() < 0.5:
            return size, size_w
        z = float(np.exp(rng.uniform(0.0, np.log(self.augment.zoom))))
        return tuple(max(2 * scale, int(round(s / z / scale)) * scale) for s in (size, size_w))
