"""The training curriculum: from easily separable mixtures to hard ones, and to more sources.

Mix-and-separate learns fastest when it first sees mixtures whose sources sound different
(a bass with a flute) and only later ones whose sources sound alike (two violins). The
curriculum (``som`` preset) splits training into :class:`Stage` s; each stage gives the number
of sources to mix and which videos may be mixed together:

``"easy"``
    spectrally dissimilar videos (cosine similarity of their :func:`spectral_profiles` below the
    median over all pairs) *and*, when both have a known category, of different categories;
``"any"``
    any distinct videos (no filter);
``"hard"``
    videos of the same category when both have a known category, otherwise spectrally similar
    ones (similarity above the 75th percentile over all pairs).

The restriction reaches :class:`~avsplit.data.mixing.MixSampler` as its ``pair_filter``; with
more than two sources every pair in the mixture must pass. Categories are only a hint (the
folder layout ``DIR/<category>/<id>.mp4``); a dataset without them is ordered by spectra alone.

Degenerate cases:

* fewer than two distinct known categories (a flat folder, or a single category): categories
  carry no information and are ignored; both filters then use spectra only (otherwise "easy"
  would reject every pair);
* a category with a single video cannot give a same-category pair: for the "hard" rule such a
  video counts as of unknown category (paired by spectrum); for "easy" it is simply different
  from every other category;
* a filter that accepts no (or very few) sets of ``num_mix`` videos, e.g. a hard three-source
  stage when categories have fewer than three videos, is not an error: the sampler tries a
  limited number of draws and then falls back to any distinct videos.
  :meth:`Curriculum.acceptance` tells how often a random pair passes, for the logs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_STAGES",
    "PAIR_KINDS",
    "Curriculum",
    "PairFilter",
    "Stage",
    "parse_stages",
    "spectral_profiles",
]

#: Accepted values of :attr:`Stage.pairs`.
PAIR_KINDS = ("easy", "any", "hard")

#: Frames quieter than this RMS are left out of a profile (silence says nothing about timbre).
SILENT_RMS = 1e-3

#: Band powers more than this far below a frame's loudest band are clipped to that level.
DYNAMIC_RANGE_DB = 80.0

#: Quantiles of the pairwise similarities that bound the "easy" and "hard" spectral rules.
EASY_QUANTILE = 0.5
HARD_QUANTILE = 0.75


# ------------------------------------------------------------------------------ spectral profiles
def _frame_length(sample_rate: int) -> int:
    """FFT size: the power of two nearest to 64 ms (1024 at 16 kHz, 2048 at 44.1 kHz)."""
    return int(2 ** max(6, round(math.log2(max(1, sample_rate) * 0.064))))


def _band_matrix(sample_rate: int, n_fft: int, bands: int, fmin: float = 50.0) -> np.ndarray:
    """float32 ``(n_fft // 2 + 1, bands)``: column b is a weighted average of FFT bins for band b.

    Band centres are log-spaced from ``fmin`` to Nyquist; each band is a triangle on the
    log-frequency axis reaching the neighbouring centres (like a mel filterbank), so a small
    change of pitch moves energy smoothly between bands. A band with no bin under its triangle
    (low bands of a short FFT) takes the bin nearest to its centre, so no band is ever empty.
    """
    nyquist = sample_rate / 2.0
    fmin = min(fmin, nyquist / 4.0)
    centres = np.log2(np.geomspace(fmin, nyquist, bands))
    spacing = centres[1] - centres[0]
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    logf = np.log2(np.maximum(freqs, 1e-3))
    weights = np.maximum(0.0, 1.0 - np.abs(logf[:, None] - centres[None, :]) / spacing)
    empty = weights.sum(axis=0) <= 0
    if empty.any():
        nearest = np.abs(freqs[:, None] - 2.0 ** centres[None, empty]).argmin(axis=0)
        weights[nearest, np.flatnonzero(empty)] = 1.0
    return (weights / weights.sum(axis=0, keepdims=True)).astype(np.float32)


#: Frames gathered before projecting them onto the bands in one matrix product (bounds memory:
#: 8192 frames of a 2048-point FFT are 32 MiB of power spectra).
_CHUNK_FRAMES = 8192


class _BandAnalyser:
    """Power spectra of the loud frames of each video, projected onto the bands in chunks.

    One matrix product per chunk of many videos' frames rather than one per video: a small
    product per video costs more in BLAS thread hand-offs than in arithmetic, notably on a
    machine that is busy training.
    """

    def __init__(self, bands: int, out: np.ndarray):
        self.bands = bands
        self.out = out  # float64 (V, bands), filled row by row
        self._setup: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._pending: dict[int, list[tuple[int, np.ndarray]]] = {}
        self._frames = 0

    def setup(self, rate: int) -> tuple[np.ndarray, np.ndarray]:
        if rate not in self._setup:
            n_fft = _frame_length(rate)
            self._setup[rate] = (np.hanning(n_fft).astype(np.float32), _band_matrix(rate, n_fft, self.bands))
        return self._setup[rate]

    def add(self, index: int, audio: np.ndarray, rate: int) -> None:
        """Queue video ``index``: ``audio`` float ``(N,)`` at ``rate`` Hz."""
        window, _ = self.setup(rate)
        n_fft = window.shape[0]
        audio = np.asarray(audio, dtype=np.float32)
        n = audio.shape[0] // n_fft
        if n == 0:  # shorter than one frame: zero-pad it to one
            audio = np.pad(audio, (0, n_fft - audio.shape[0]))
            n = 1
        frames = audio[: n * n_fft].reshape(n, n_fft)  # (frames, n_fft), non-overlapping
        loud = np.sqrt(np.mean(frames**2, axis=1)) >= SILENT_RMS
        if loud.any():
            frames = frames[loud]
        spectrum = np.fft.rfft(frames * window, axis=1)  # (frames, n_fft // 2 + 1)
        power = spectrum.real**2 + spectrum.imag**2
        self._pending.setdefault(rate, []).append((index, power))
        self._frames += power.shape[0]
        if self._frames >= _CHUNK_FRAMES:
            self.flush()

    def flush(self) -> None:
        for rate, items in self._pending.items():
            _, matrix = self.setup(rate)
            power = np.concatenate([p for _, p in items]) @ matrix  # (frames, bands)
            # Floor each frame DYNAMIC_RANGE_DB below its loudest band: relative, so a gain
            # change only shifts the log profile by a constant (removed by centring), and
            # near-empty bands do not weigh in with the arbitrary depth of their numerical noise.
            floor = power.max(axis=1, keepdims=True) * np.float32(10.0 ** (-DYNAMIC_RANGE_DB / 10.0))
            logs = np.log(np.maximum(power, floor) + np.float32(1e-30))
            counts = np.array([p.shape[0] for _, p in items])
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            sums = np.add.reduceat(logs.astype(np.float64), starts, axis=0)  # (videos, bands)
            self.out[[i for i, _ in items]] = sums / counts[:, None]
        self._pending.clear()
        self._frames = 0


def spectral_profiles(videos: Sequence, bands: int = 32, max_seconds: float = 30.0, relative: bool = True) -> np.ndarray:
    """Timbre fingerprints: float32 ``(V, bands)``, unit-norm rows whose dot products are cosine similarities.

    For each video (anything with ``.audio``, a float ``(N,)`` mono array, and ``.sample_rate``)
    the first ``max_seconds`` of audio are cut into non-overlapping Hann-windowed frames of about
    64 ms; frames with an RMS below :data:`SILENT_RMS` are ignored (all of them are used when the
    whole clip is that quiet). The power of each frame in ``bands`` log-spaced triangular bands
    (50 Hz to Nyquist) is floored :data:`DYNAMIC_RANGE_DB` below the frame's loudest band, and
    its log averaged over frames. Each profile is then centred (its mean over bands removed, so
    the loudness of a video does not matter) and, when ``relative``, the dataset's mean profile
    is removed too (the spectral tilt shared by all natural sounds would otherwise make every
    pair look alike), before L2 normalisation. A silent or empty video gets a zero row
    (similarity 0 with everything). Videos may differ in sample rate.
    """
    if bands < 2:
        raise ValueError(f"bands must be at least 2, got {bands}")
    profiles = np.zeros((len(videos), bands), np.float64)
    analyser = _BandAnalyser(bands, profiles)
    for i, video in enumerate(videos):
        rate = int(video.sample_rate)
        limit = max(1, round(max_seconds * rate))
        audio = np.asarray(video.audio[:limit])
        if audio.size == 0 or not np.any(audio):
            continue  # stays zero
        analyser.add(i, audio, rate)
    analyser.flush()
    profiles -= profiles.mean(axis=1, keepdims=True)
    if relative and len(videos) > 1:
        live = np.any(profiles != 0, axis=1)
        if live.sum() > 1:
            profiles[live] -= profiles[live].mean(axis=0, keepdims=True)
    norms = np.linalg.norm(profiles, axis=1, keepdims=True)
    profiles = np.divide(profiles, norms, out=np.zeros_like(profiles), where=norms > 1e-9)
    return profiles.astype(np.float32)


# ------------------------------------------------------------------------------------- stages
@dataclass(frozen=True)
class Stage:
    """One curriculum stage.

    ``until``: fraction of the total steps at which the stage ends (the next begins);
    ``num_mix``: sources per mixture; ``pairs``: ``"easy"``, ``"any"`` or ``"hard"``.
    """

    name: str
    until: float
    num_mix: int
    pairs: str

    def __post_init__(self) -> None:
        if self.pairs not in PAIR_KINDS:
            raise ValueError(f"stage {self.name!r}: pairs must be one of {PAIR_KINDS}, got {self.pairs!r}")
        if self.num_mix < 2:
            raise ValueError(f"stage {self.name!r}: num_mix must be at least 2, got {self.num_mix}")
        if not 0.0 < self.until <= 1.0:
            raise ValueError(f"stage {self.name!r}: until must be in (0, 1], got {self.until}")


DEFAULT_STAGES: tuple[Stage, ...] = (
    Stage("easy", until=0.3, num_mix=2, pairs="easy"),
    Stage("any", until=0.55, num_mix=2, pairs="any"),
    Stage("hard", until=0.8, num_mix=2, pairs="hard"),
    Stage("three", until=1.0, num_mix=3, pairs="any"),
)


class PairFilter:
    """``pair_filter(a, b) -> bool`` over video indices, backed by a boolean ``(V, V)`` matrix.

    A class rather than a closure so that samplers holding one can be pickled (data-loader
    worker processes).
    """

    def __init__(self, mask: np.ndarray, kind: str = ""):
        self.mask = mask
        self.kind = kind

    def __call__(self, a: int, b: int) -> bool:
        return bool(self.mask[a, b])

    def __repr__(self) -> str:
        return f"PairFilter({self.kind!r}, videos={self.mask.shape[0]})"


class Curriculum:
    """Stages over ``total_steps`` training steps, with the pair rules for ``videos``.

    ``videos``: sequence of :class:`~avsplit.data.entry.CachedVideo` (or anything with ``.audio``,
    ``.sample_rate`` and ``.category``), in the order the sampler gets them: filters take indices
    into it. Profiles (``(V, bands)``), the similarity matrix (float32 ``(V, V)``) and its
    quantiles are computed once.
    """

    def __init__(self, videos: Sequence, total_steps: int, stages: Sequence[Stage] = DEFAULT_STAGES, *,
                 bands: int = 32, max_seconds: float = 30.0):
        stages = tuple(stages)
        if not stages:
            raise ValueError("a curriculum needs at least one stage")
        for prev, nxt in itertools.pairwise(stages):
            if nxt.until <= prev.until:
                raise ValueError(f"stage {nxt.name!r} ends at {nxt.until}, not after {prev.name!r} ({prev.until})")
        if total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {total_steps}")
        self.stages = stages
        self.total_steps = int(total_steps)
        #: Step at which each stage ends (exclusive); the last stage also covers any later step.
        self.boundaries = [round(s.until * self.total_steps) for s in stages]

        self.profiles = spectral_profiles(videos, bands=bands, max_seconds=max_seconds)  # (V, bands)
        sim = self.profiles @ self.profiles.T
        self.similarity = (sim + sim.T) / 2  # float32 (V, V) cosine similarities, exactly symmetric
        v = len(videos)
        if v >= 2:
            upper = self.similarity[np.triu_indices(v, 1)]
            self.easy_threshold, self.hard_threshold = (float(q) for q in np.quantile(upper, [EASY_QUANTILE, HARD_QUANTILE]))
        else:
            self.easy_threshold = self.hard_threshold = float("nan")

        # Category codes: -1 unknown. Ignored altogether with fewer than two known categories.
        names = [getattr(video, "category", None) for video in videos]
        known = sorted({c for c in names if c is not None})
        self.uses_categories = len(known) >= 2
        if self.uses_categories:
            index = {c: i for i, c in enumerate(known)}
            codes = np.array([index[c] if c is not None else -1 for c in names], np.int64)
        else:
            codes = np.full(v, -1, np.int64)
        self.categories = codes  # (V,) category code per video, -1 unknown (or categories unused)
        # For the "hard" rule a category with a single video is as good as unknown.
        counts = np.bincount(codes[codes >= 0], minlength=max(1, len(known)))
        paired = (codes >= 0) & (counts[np.maximum(codes, 0)] >= 2)
        self._hard_codes = np.where(paired, codes, -1)
        self._masks: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------------------- schedule
    def stage_index(self, step: int) -> int:
        """Index into :attr:`stages` of the stage training is in at ``step`` (0-based)."""
        for i, end in enumerate(self.boundaries):
            if step < end:
                return i
        return len(self.stages) - 1

    def stage_at(self, step: int) -> Stage:
        return self.stages[self.stage_index(step)]

    # ---------------------------------------------------------------------------- pair rules
    def pair_mask(self, stage: Stage | str) -> np.ndarray:
        """bool ``(V, V)``: which pairs the stage (or pair kind) accepts; the diagonal is False."""
        kind = stage.pairs if isinstance(stage, Stage) else stage
        if kind not in PAIR_KINDS:
            raise ValueError(f"unknown pair kind {kind!r}; expected one of {PAIR_KINDS}")
        mask = self._masks.get(kind)
        if mask is None:
            sim = self.similarity
            v = sim.shape[0]
            if kind == "any":
                mask = np.ones((v, v), bool)
            elif kind == "easy":
                c = self.categories
                both = (c[:, None] >= 0) & (c[None, :] >= 0)
                mask = (sim < self.easy_threshold) & ~(both & (c[:, None] == c[None, :]))
            else:
                c = self._hard_codes
                both = (c[:, None] >= 0) & (c[None, :] >= 0)
                mask = np.where(both, c[:, None] == c[None, :], sim > self.hard_threshold)
            np.fill_diagonal(mask, False)
            mask.flags.writeable = False
            self._masks[kind] = mask
        return mask

    def pair_filter(self, stage: Stage | str) -> Callable[[int, int], bool] | None:
        """The sampler's ``pair_filter`` for the stage: None for ``"any"``, else a :class:`PairFilter`."""
        kind = stage.pairs if isinstance(stage, Stage) else stage
        if kind == "any":
            return None
        return PairFilter(self.pair_mask(kind), kind)

    def acceptance(self, stage: Stage | str) -> float:
        """Fraction of distinct pairs the stage accepts (1.0 for ``"any"``, nan with < 2 videos)."""
        mask = self.pair_mask(stage)
        v = mask.shape[0]
        if v < 2:
            return float("nan")
        return float(mask[np.triu_indices(v, 1)].mean())

    # ---------------------------------------------------------------------------- logging
    def _rule(self, kind: str) -> str:
        if kind == "any":
            return "any videos"
        if kind == "easy":
            return "different categories and dissimilar spectra" if self.uses_categories else "dissimilar spectra"
        return "same category or similar spectra" if self.uses_categories else "similar spectra"

    def describe(self, stage: Stage | int) -> str:
        """One line for logs, e.g. ``stage 3/4 'hard' (steps 550-799): 2 sources, same category or similar spectra (12% of pairs)``."""
        if isinstance(stage, int):
            index = stage
            stage = self.stages[index]
        else:
            index = next((i for i, s in enumerate(self.stages) if s == stage), None)
        where = f"stage {index + 1}/{len(self.stages)}" if index is not None else "stage ?"
        steps = ""
        if index is not None:
            start = self.boundaries[index - 1] if index > 0 else 0
            end = self.boundaries[index] if index < len(self.stages) - 1 else max(self.boundaries[index], self.total_steps)
            steps = f" (steps {start}-{end - 1})" if end > start else " (no steps)"
        text = f"{where} {stage.name!r}{steps}: {stage.num_mix} sources, {self._rule(stage.pairs)}"
        if stage.pairs != "any" and self.similarity.shape[0] >= 2:
            text += f" ({100 * self.acceptance(stage):.0f}% of pairs)"
        return text

    def __repr__(self) -> str:
        return f"Curriculum({len(self.stages)} stages, {self.total_steps} steps, {self.similarity.shape[0]} videos)"


def parse_stages(spec: str) -> tuple[Stage, ...]:
    """Stages from a command-line spec: comma-separated ``PAIRS:SOURCES:UNTIL`` items, e.g.
    ``"easy:2:0.2,hard:2:0.6,any:2:0.8,any:3:1"``. Raises ``ValueError`` with the reason."""
    stages = []
    for n, item in enumerate(x.strip() for x in spec.split(",") if x.strip()):
        parts = item.split(":")
        if len(parts) != 3:
            raise ValueError(f"curriculum stage {item!r} must be PAIRS:SOURCES:UNTIL (e.g. hard:2:0.6)")
        pairs, num_mix, until = parts
        try:
            stages.append(Stage(f"{pairs}{'' if num_mix == '2' else 'x' + num_mix}", float(until), int(num_mix), pairs))
        except ValueError as exc:
            raise ValueError(f"curriculum stage {item!r}: {exc}") from None
    if not stages:
        raise ValueError("the curriculum needs at least one stage")
    if any(b.until <= a.until for a, b in zip(stages, stages[1:])) or stages[-1].until != 1.0:
        raise ValueError("curriculum stages must end at increasing fractions of the steps, the last at 1")
    return tuple(stages)
