"""Silent regions (``train --silent-regions``, :mod:`avsplit.data.players`): a solo's picture outside its
player, pooled as one more source that is not heard."""

import dataclasses
import json
import numpy as np
import pytest
import torch

from avsplit.config import PreprocessSettings
from avsplit.data.cache import PreprocessCache
from avsplit.data.mixing import NO_AUGMENT, Augment, MixSampler
from avsplit.data.motion import cache_extras
from avsplit.data.players import MIN_SILENT_SHARE, choose_silent_region, player_boxes, player_mask
from avsplit.models import preset
from avsplit.scan import scan_videos, truth_path
from avsplit.training.category import NO_CATEGORY
from avsplit.training.loss import batch_labels

from conftest import write_test_video


@pytest.fixture(scope="module")
def solos(tmp_path_factory):
    """The tiny-motion preset and six synthetic solos with one distractor each (cached with their
    flow), plus a video with no truth beside it."""
    from avsplit.synth import generate_dataset

    root = tmp_path_factory.mktemp("silent")
    generate_dataset(root / "data", solos=6, duets=0, seconds=2.5, size=(112, 84), fps=8, seed=3, distractors=1)
    write_test_video(root / "data" / "solos" / "no-truth.mp4", seconds=2.5, fps=8, size=(112, 84))
    cfg = preset("tiny-motion")
    items = scan_videos(root / "data" / "solos")
    videos = list(PreprocessCache(root / "cache", PreprocessSettings(cfg.audio, cfg.video),
                                  extras=cache_extras(cfg)).build(items).ready)
    return cfg, videos


def test_player_boxes_follow_the_player_on_the_cached_frames(solos, tmp_path):
    cfg, videos = solos
    known = [v for v in videos if truth_path(v.source).exists()]
    assert len(known) == 6 and player_boxes(next(v for v in videos if v not in known)) is None
    for video in known:
        boxes = player_boxes(video)
        h, w = video.frames.shape[1:3]
        assert boxes.shape == (video.num_frames, 4)
        assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
        assert boxes.min() >= -1 and (boxes[:, [0, 2]] <= w + 1).all() and (boxes[:, [1, 3]] <= h + 1).all()
    # a white square moving 2 pixels a frame (24 fps, 160 x 120), its truth written by hand: on the
    # cached frames (8 fps, 96 x 72) each box must sit on the square
    (tmp_path / "square").mkdir()
    video = write_test_video(tmp_path / "square" / "square.mp4", seconds=2.5, fps=24, size=(160, 120))
    square = [[2 * k % 150, 55, 2 * k % 150 + 10, 65] for k in range(60)]
    truth_path(video).write_text(json.dumps({"width": 160, "height": 120, "fps": 24, "sources": [{"boxes": square}]}))
    (cached,) = PreprocessCache(tmp_path / "cache", PreprocessSettings(cfg.audio, cfg.video)).build(scan_videos(video.parent)).ready
    boxes = player_boxes(cached)
    green = np.asarray(cached.frames[..., 1], np.float32)  # the square is white, the rest has no green
    for frame, (x0, y0, x1, y1) in zip(green, boxes):
        centre = frame[int((y0 + y1) / 2), int((x0 + x1) / 2)]
        assert centre > 150 > frame.mean() + 100, (x0, y0, x1, y1)


def test_player_mask_grows_each_box_and_takes_their_union():
    mask = player_mask(np.array([[10, 20, 30, 40], [12, 22, 50, 44]], float), (100, 80), margin=0.1)
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (12, 51, 2, 57)  # grown by 8 = 0.1 * 80
    expected = np.zeros((100, 80), bool)
    expected[12:48, 2:38] = True  # (10, 20, 30, 40) grown by 8 on every side
    expected[14:52, 4:58] = True
    np.testing.assert_array_equal(mask, expected)


def test_choose_silent_region_needs_a_known_player_with_room_around_it():
    rng = np.random.default_rng(0)
    small, full = np.zeros((10, 10), bool), np.ones((10, 10), bool)
    small[4:6, 4:6] = True
    assert choose_silent_region([None, None], rng) is None
    assert choose_silent_region([full, None], rng) is None  # no picture left outside the player
    tight = np.ones((10, 10), bool)
    tight[0, : int(100 * MIN_SILENT_SHARE) - 10] = False
    assert choose_silent_region([tight, full], rng) is None
    picks = {choose_silent_region([None, small, None], rng) for _ in range(40)}
    assert picks == {(1, 0), (1, 2)}


@pytest.mark.parametrize("augment", [NO_AUGMENT, Augment(crop_candidates=4, zoom=2.0)], ids=["plain", "augmented"])
def test_silent_region_examples_show_a_player_and_the_rest_of_its_picture_unheard(solos, augment):
    cfg, videos = solos
    plain = MixSampler(videos, cfg, num_mix=2, seed=5, augment=augment)
    with_regions = MixSampler(videos, cfg, num_mix=2, seed=5, augment=dataclasses.replace(augment, silent_regions=1.0))
    no_truth = next(i for i, v in enumerate(videos) if not truth_path(v.source).exists())
    made = 0
    for index in range(30):
        before, after = plain.example(index), with_regions.example(index)
        assert after.videos == before.videos and after.starts == before.starts  # the same draw otherwise
        if not after.no_player:
            assert after.regions is None
            continue
        made += 1
        (replaced,) = after.no_player
        shown = 1 - replaced
        assert after.videos[shown] != no_truth
        assert not after.audio[replaced].any()  # not heard: its ideal mask is empty
        np.testing.assert_array_equal(after.audio[shown], before.audio[shown])
        np.testing.assert_array_equal(after.frames[replaced], after.frames[shown])
        np.testing.assert_array_equal(after.frames[shown], before.frames[shown])  # the same crop and colours
        np.testing.assert_array_equal(after.flow[replaced], after.flow[shown])
        player = after.regions[shown]
        assert (after.regions[replaced] == ~player).all() and player.any() and (~player).mean() >= MIN_SILENT_SHARE
    assert made >= 15
    batch = with_regions.batch(list(range(8)))
    labels = batch_labels(batch, np.arange(len(videos)), torch.device("cpu")).numpy()
    assert batch.no_player is not None and batch.no_player.any()
    assert (labels[batch.no_player] == NO_CATEGORY).all() and (labels[~batch.no_player] >= 0).all()


def test_no_silent_region_without_a_truth_or_in_composites(solos, tmp_path):
    cfg, videos = solos
    no_truth = [v for v in videos if not truth_path(v.source).exists()]
    sampler = MixSampler(no_truth * 2, cfg, num_mix=2, seed=1, augment=dataclasses.replace(NO_AUGMENT, silent_regions=1.0))
    assert not any(sampler.example(i).no_player for i in range(10))
    composites = MixSampler(videos, cfg, num_mix=2, seed=1,
                            augment=dataclasses.replace(NO_AUGMENT, silent_regions=1.0, composite=1.0))
    for i in range(10):
        example = composites.example(i)
        assert not example.no_player and example.audio.any(axis=1).all()


def test_train_with_silent_regions_runs_and_records_the_share(solos, tmp_path):
    from avsplit.training import TRAIN_PRESETS, TrainConfig, train

    cfg, videos = solos
    data = videos[0].source.parents[1]  # the solos folder
    tcfg = TrainConfig(**{**TRAIN_PRESETS["tiny-motion"].__dict__, "steps": 2, "val_every": 2, "silent_regions": 0.5})
    summary = train(data, tmp_path / "run", model_config=cfg, train_config=tcfg, cache_dir=tmp_path / "cache")
    assert summary.steps == 2 and np.isfinite(summary.losses).all()
    assert '"silent_regions": 0.5' in (tmp_path / "run" / "config.json").read_text()
