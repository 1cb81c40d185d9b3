"""Composite training pictures (:mod:`avsplit.data.composites`)."""

import numpy as np

from avsplit.data.composites import INSET_SCALE, picture_in_picture, side_by_side

SIZE, SCALE = 64, 4


def _clips():
    """Two flat clips (F = 3, 64 x 64) told apart by colour, and their flow at a quarter of the size:
    the first moves only in its top-left corner (a sixteenth of it), the second everywhere by 0.5 pixels."""
    first, second = np.full((3, SIZE, SIZE, 3), 10, np.uint8), np.full((3, SIZE, SIZE, 3), 200, np.uint8)
    n = SIZE // SCALE
    first_flow = np.zeros((2, n, n, 2), np.float32)
    first_flow[:, : n // 4, : n // 4, 0] = 3.0
    second_flow = np.full((2, n, n, 2), 0.5, np.float32)
    return [first, second], [first_flow, second_flow]


def test_picture_in_picture_insets_one_clip_where_the_other_moves_least():
    clips, flows = _clips()
    covered, insets = [], set()
    for seed in range(40):
        pictures, flow, regions = picture_in_picture(clips, flows, np.random.default_rng(seed), SCALE)
        assert pictures.shape == (2, 3, SIZE, SIZE, 3) and flow.shape == (2, 2, SIZE // SCALE, SIZE // SCALE, 2)
        np.testing.assert_array_equal(pictures[0], pictures[1])  # one picture, shown for both sources
        assert (regions[0] ^ regions[1]).all()  # every pixel shows exactly one source
        inset = int(regions[1].sum() < regions[0].sum())
        insets.add(inset)
        rows, cols = np.nonzero(regions[inset])
        side = rows.max() - rows.min() + 1
        assert regions[inset].sum() == side * side and side % (2 * SCALE) == 0  # a square on the flow's grid
        assert rows.min() % SCALE == 0 and cols.min() % SCALE == 0
        assert INSET_SCALE[0] * SIZE - 2 * SCALE <= side <= INSET_SCALE[1] * SIZE + 2 * SCALE
        for s in range(2):  # each source's pixels are its own clip's
            assert (pictures[0][:, regions[s]] == clips[s][0, 0, 0]).all()
        cells = regions[inset][::SCALE, ::SCALE]
        if inset == 1:  # the inset's flow is its own, shrunk with it; the rest the other's
            np.testing.assert_allclose(flow[0][:, cells], 0.5 * side / SIZE, rtol=1e-3)
            np.testing.assert_array_equal(flow[0][:, ~cells], flows[0][:, ~cells])
            covered.append(bool(cells[: SIZE // SCALE // 4, : SIZE // SCALE // 4].any()))
    assert insets == {0, 1}  # either source may be the inset
    assert len(covered) >= 10 and np.mean(covered) < 0.3  # the first clip's mover mostly stays in view


def test_picture_in_picture_without_flow_and_side_by_side_halves():
    clips, _ = _clips()
    pictures, flow, regions = picture_in_picture(clips, [None, None], np.random.default_rng(0))
    assert flow is None and pictures.shape == (2, 3, SIZE, SIZE, 3) and (regions[0] ^ regions[1]).all()
    halves = [c[:, :, : SIZE // 2] for c in clips]
    pictures, flow, regions = side_by_side(halves, [None, None], np.random.default_rng(0))
    assert flow is None and pictures.shape == (2, 3, SIZE, SIZE, 3)
    assert regions[0].sum() == regions[1].sum() == SIZE * SIZE // 2 and (regions[0] ^ regions[1]).all()
