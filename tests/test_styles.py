"""Picture styles for training clips (avsplit.data.styles)."""

import numpy as np
import pytest

from avsplit.data import styles


def _square_clip(frames: int = 3, size: int = 48) -> np.ndarray:
    """A light square on a dark ground, the same in every frame: uint8 (frames, size, size, 3)."""
    clip = np.full((frames, size, size, 3), 30, np.uint8)
    clip[:, 16:32, 16:32] = (220, 180, 40)
    return clip


@pytest.mark.parametrize("style", styles.STYLES)
def test_every_style_keeps_the_clip_shape_and_draws_its_frames_alike(style):
    clip = _square_clip()
    out = styles._DRAW[style](clip, np.random.default_rng(1))
    assert out.shape == clip.shape and out.dtype == np.uint8
    assert not np.array_equal(out, clip)
    if style != "grain":  # grain is new noise in every frame; the others draw one clip one way
        assert all(np.array_equal(out[0], f) for f in out[1:])


def test_sketch_draws_the_outline_and_leaves_the_fill_as_paper():
    out = styles.sketch(_square_clip(), np.random.default_rng(2))[0].astype(int)
    paper = out[2, 2]
    assert (out[24, 24] == paper).all() and (out[40, 40] == paper).all()  # inside and outside the square
    assert np.abs(out[16, 24] - paper).sum() > 100  # on its edge


def test_restyle_with_zero_probability_leaves_the_clip_and_the_random_stream_alone():
    clip = _square_clip()
    rng, reference = np.random.default_rng(3), np.random.default_rng(3)
    assert styles.restyle(clip, rng, 0.0) is clip
    assert rng.random() == reference.random()
    changed = [not np.array_equal(styles.restyle(clip, np.random.default_rng(s), 1.0), clip) for s in range(10)]
    assert all(changed)


def test_recolour_greys_and_swaps_channels():
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 200, 50, 10
    grey = styles.recolour(frames, np.random.default_rng(0), greyscale=1.0, channel_swap=0.0)
    assert grey.dtype == np.uint8 and grey.shape == frames.shape
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert int(grey[0, 0, 0, 0]) == round(0.299 * 200 + 0.587 * 50 + 0.114 * 10)
    swapped = styles.recolour(frames, np.random.default_rng(0), greyscale=0.0, channel_swap=1.0)
    assert sorted(swapped[0, 0, 0].tolist()) == [10, 50, 200] and swapped[0, 0, 0].tolist() != [200, 50, 10]
    assert styles.recolour(frames, np.random.default_rng(0), 0.0, 0.0) is frames
