"""The training curriculum: spectral profiles, the stage schedule and the pair rules."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pytest

from avsplit.data.entry import EntryWriter
from avsplit.data.curriculum import (
    DEFAULT_STAGES,
    Curriculum,
    PairFilter,
    Stage,
    spectral_profiles,
)
from avsplit.data.mixing import NO_AUGMENT, MixSampler
from avsplit.models import preset

RATE = 8000


@dataclass
class FakeVideo:
    """Stand-in for CachedVideo with the attributes the curriculum reads."""

    audio: np.ndarray
    sample_rate: int = RATE
    category: str | None = None
    id: str = ""

    @property
    def num_samples(self) -> int:
        return self.audio.shape[0]


def _tone(freq: float, seconds: float = 2.0, amp: float = 0.3, harmonics: int = 3, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone (partials at 1/k amplitude), plus white noise of RMS ``noise``."""
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(amp / k * np.sin(2 * np.pi * freq * k * t) for k in range(1, harmonics + 1))
    if noise:
        wave = wave + noise * np.random.default_rng(seed).standard_normal(t.shape[0])
    return wave.astype(np.float32)


def _melody(base: float, harmonics: int, seed: int, notes: int = 4, seconds: float = 2.0) -> np.ndarray:
    """Notes of a harmonic instrument around ``base`` Hz (random steps up to a fifth), as a
    clip of real music would have, with a faint noise floor."""
    rng = np.random.default_rng(seed)
    pitches = base * 2.0 ** (rng.integers(0, 8, size=notes) / 12.0)
    parts = [_tone(float(f), seconds / notes, harmonics=harmonics) for f in pitches]
    wave = np.concatenate(parts)
    return (wave + 3e-3 * rng.standard_normal(wave.shape[0])).astype(np.float32)


def _noise(seed: int, seconds: float = 2.0, amp: float = 0.2) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(int(seconds * RATE))).astype(np.float32)


def _audios() -> list[tuple[str, np.ndarray]]:
    """Three 'bass' (low, rich tones), three 'flute' (high, pure-ish tones), three 'drum' (noise);
    a little background noise as in any recording."""
    return (
        [("bass", _melody(100.0, harmonics=8, seed=i)) for i in range(3)]
        + [("flute", _melody(1000.0, harmonics=2, seed=10 + i)) for i in range(3)]
        + [("drum", _noise(s)) for s in range(3)]
    )


@pytest.fixture
def videos() -> list[FakeVideo]:
    return [FakeVideo(a, category=c, id=f"{c}{i}") for i, (c, a) in enumerate(_audios())]


def _cached_videos(tmp_path) -> list:
    """Real CachedVideo entries (written with EntryWriter, no decoding) for MixSampler."""
    out = []
    for i, (cat, audio) in enumerate(_audios()):
        folder = tmp_path / f"v{i}"
        folder.mkdir()
        meta = {"key": f"k{i}", "id": f"{cat}{i}", "category": cat, "source": str(folder), "sample_rate": RATE,
                "frame_rate": 4.0, "duration": audio.shape[0] / RATE,
                "original": {"width": 72, "height": 72, "fps": 4.0}}
        writer = EntryWriter(folder, meta)
        writer.write_array("frames", np.full((8, 72, 72, 3), i, np.uint8))
        writer.write_array("frame_times", (np.arange(8) / 4.0).astype(np.float32))
        writer.write_array("audio", audio)
        writer.finish()
        out.append(writer.view())
    return out


# ----------------------------------------------------------------------------------- profiles
def test_profiles_shape_norm_and_similarity(videos):
    prof = spectral_profiles(videos, bands=24)
    assert prof.shape == (9, 24) and prof.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(prof, axis=1), 1.0, atol=1e-5)
    sim = prof @ prof.T
    bass, flute, drum = [0, 1, 2], [3, 4, 5], [6, 7, 8]
    for group in (bass, flute, drum):
        others = [j for j in range(9) if j not in group]
        within = min(sim[a, b] for a, b in combinations(group, 2))
        across = max(sim[a, b] for a in group for b in others)
        assert within > across, (group, within, across)


def test_profiles_ignore_loudness_and_silence():
    base = _tone(200.0)
    louder = FakeVideo(4 * base * 0.5)  # 6 dB louder
    padded = FakeVideo(np.concatenate([np.zeros(RATE * 3, np.float32), base]))  # leading silence
    other = FakeVideo(_tone(3000.0, harmonics=1))
    silent = FakeVideo(np.zeros(RATE, np.float32))
    prof = spectral_profiles([FakeVideo(base), louder, padded, other, silent], relative=False)
    assert prof[0] @ prof[1] > 0.999
    assert prof[0] @ prof[2] > 0.99
    assert prof[0] @ prof[3] < 0.9
    assert not prof[4].any()  # silent: zero row


def test_profiles_max_seconds_and_short_audio():
    # Low tone for 1 s, then a high tone: with max_seconds=1 only the low part is read.
    mixed = FakeVideo(np.concatenate([_tone(150.0, 1.0), _tone(3000.0, 3.0, harmonics=1)]))
    low, high = FakeVideo(_tone(150.0)), FakeVideo(_tone(3000.0, harmonics=1))
    prof = spectral_profiles([mixed, low, high], max_seconds=1.0, relative=False)
    assert prof[0] @ prof[1] > 0.99
    tiny = spectral_profiles([FakeVideo(_tone(300.0, 0.01))], relative=False)  # shorter than a frame
    assert tiny.shape == (1, 32) and np.isfinite(tiny).all()


def test_profiles_are_quick():
    import time

    many = [FakeVideo(_noise(i, seconds=8.0)) for i in range(100)]
    start = time.perf_counter()
    spectral_profiles(many)
    assert time.perf_counter() - start < 3.0


# ----------------------------------------------------------------------------------- schedule
def test_stage_at_boundaries(videos):
    cur = Curriculum(videos, total_steps=100)
    assert cur.boundaries == [30, 55, 80, 100]
    assert [cur.stage_at(s).name for s in (0, 29, 30, 54, 55, 79, 80, 99, 100, 500)] == [
        "easy", "easy", "any", "any", "hard", "hard", "three", "three", "three", "three"]
    assert cur.stage_index(54) == 1 and cur.stage_at(80).num_mix == 3
    assert cur.describe(cur.stage_at(60)).startswith("stage 3/4 'hard' (steps 55-79): 2 sources, same category or similar spectra")
    assert "3 sources, any videos" in cur.describe(3)


def test_custom_stages_and_validation(videos):
    stages = [Stage("warm", 0.5, 2, "easy"), Stage("rest", 1.0, 4, "hard")]
    cur = Curriculum(videos, total_steps=10, stages=stages)
    assert [cur.stage_at(s).name for s in range(10)] == ["warm"] * 5 + ["rest"] * 5
    with pytest.raises(ValueError):
        Curriculum(videos, 10, stages=[Stage("a", 0.6, 2, "any"), Stage("b", 0.5, 2, "any")])
    with pytest.raises(ValueError):
        Stage("x", 0.5, 2, "medium")
    with pytest.raises(ValueError):
        Stage("x", 0.5, 1, "any")
    with pytest.raises(ValueError):
        Curriculum(videos, 0)


# ----------------------------------------------------------------------------------- pair rules
def test_easy_and_hard_filters(videos):
    cur = Curriculum(videos, total_steps=100)
    assert cur.uses_categories
    assert cur.pair_filter(DEFAULT_STAGES[1]) is None  # "any"
    easy, hard = cur.pair_filter("easy"), cur.pair_filter("hard")
    cats = [v.category for v in videos]
    for a, b in combinations(range(9), 2):
        if cats[a] == cats[b]:
            assert not easy(a, b) and not easy(b, a)
            assert hard(a, b) and hard(b, a)
        else:
            assert not hard(a, b)
            assert easy(a, b) == (cur.similarity[a, b] < cur.easy_threshold)
    # Low tones vs high tones: dissimilar spectra and different categories.
    assert easy(0, 3) and easy(2, 5)
    assert 0 < cur.acceptance("easy") < 0.75 and cur.acceptance("any") == 1.0
    assert not cur.pair_mask("hard").diagonal().any()


def test_without_categories_spectra_decide(videos):
    flat = [FakeVideo(v.audio) for v in videos]  # no categories
    one = [FakeVideo(v.audio, category="music") for v in videos]  # a single category
    for vids in (flat, one):
        cur = Curriculum(vids, total_steps=10)
        assert not cur.uses_categories
        easy, hard = cur.pair_mask("easy"), cur.pair_mask("hard")
        iu = np.triu_indices(9, 1)
        assert easy[iu].any() and hard[iu].any()
        assert not (easy & hard).any()
        assert np.array_equal(hard[iu], cur.similarity[iu] > cur.hard_threshold)
        assert "similar spectra" in cur.describe(2) and "category" not in cur.describe(2)
        # Two low tones count as hard, a low tone and a high tone as easy.
        assert hard[0, 1] and easy[0, 4]


def test_singleton_category_pairs_by_spectrum(videos):
    vids = list(videos) + [FakeVideo(_melody(110.0, harmonics=8, seed=99), category="cello")]  # alone in its category, sounds like bass
    cur = Curriculum(vids, total_steps=10)
    hard = cur.pair_filter("hard")
    assert any(hard(9, j) for j in range(9))  # not excluded from the hard stage
    assert all(hard(9, j) == (cur.similarity[9, j] > cur.hard_threshold) for j in range(9))


def test_degenerate_sizes():
    one = Curriculum([FakeVideo(_tone(200.0))], total_steps=5)
    assert one.pair_mask("easy").shape == (1, 1) and np.isnan(one.acceptance("hard"))
    assert "stage 1/4" in one.describe(0)
    empty = Curriculum([], total_steps=5)
    assert empty.similarity.shape == (0, 0)


def test_drawing_respects_the_filter(videos):
    """MixSampler-free: rejection draws like the sampler's always give accepted pairs."""
    cur = Curriculum(videos, total_steps=100)
    rng = np.random.default_rng(0)
    for kind in ("easy", "hard"):
        f = cur.pair_filter(kind)
        for _ in range(200):
            for _attempt in range(200):
                a, b = (int(i) for i in rng.choice(9, size=2, replace=False))
                if f(a, b):
                    break
            assert cur.pair_mask(kind)[a, b]
            same = videos[a].category == videos[b].category
            assert same == (kind == "hard")


def test_with_mix_sampler(tmp_path):
    import pickle

    cached = _cached_videos(tmp_path)
    cur = Curriculum(cached, total_steps=100)
    cfg = preset("tiny")
    for step, expect_same in ((0, False), (60, True)):
        stage = cur.stage_at(step)
        sampler = MixSampler(cached, cfg, num_mix=stage.num_mix, seed=1, augment=NO_AUGMENT, pair_filter=cur.pair_filter(stage))
        for i in range(20):
            ex = sampler.example(i)
            a, b = ex.videos
            assert cur.pair_mask(stage)[a, b]
            assert (cached[a].category == cached[b].category) == expect_same
        assert ex.audio.shape == (2, cfg.audio.clip_samples)
    # The filter survives pickling (data-loader workers).
    f = pickle.loads(pickle.dumps(cur.pair_filter("hard")))
    assert isinstance(f, PairFilter) and f(0, 1) and not f(0, 3)
