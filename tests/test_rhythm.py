"""Motion models' players grouped by the rhythm of their motion (avsplit.inference.rhythm)."""

import numpy as np
import torch

from avsplit.inference.rhythm import moving_pixels, rhythm_groupings, rhythm_points, motion_speed


def _flow(players, steps=24, windows=2, size=(32, 64)):
    """Flow ``(windows, steps, 2, h, w)``: each player ``(rows, cols, speed series)`` moves along x at
    its own speed over time; the rest of the picture is still."""
    flow = torch.zeros(windows, steps, 2, *size)
    for rows, cols, series in players:
        flow[:, :, 0, rows, cols] = torch.as_tensor(series, dtype=torch.float32).reshape(windows, steps, 1, 1)
    return flow


def _beats(onsets, total=48, decay=0.6):
    """A speed series ``(total,)`` that jumps at each onset and decays: a player striking its notes."""
    series = np.full(total, 0.2)
    for t in onsets:
        series[t:] = np.maximum(series[t:], 0.2 + 2.0 * decay ** np.arange(total - t))
    return series


def test_a_player_in_front_of_another_is_told_apart_by_its_rhythm_not_its_place():
    large = (slice(4, 24), slice(4, 24), _beats(range(0, 48, 8)))
    small = (slice(11, 17), slice(11, 17), _beats(range(4, 48, 8)))  # inside the large one, off its beat
    flow = _flow([large, small])
    found = list(rhythm_groupings(moving_pixels(flow), 2, (8, 16), (640, 320)))
    assert found and all(len(regions) == 2 for regions in found)
    first = found[0]
    inner = np.zeros((8, 16), bool)
    inner[3:4, 3:4] = True  # the cell at the small player's centre (rows 12-15, columns 12-15)
    corner = np.zeros((8, 16), bool)
    corner[1, 1] = True  # a cell of the large player only
    holder = [r for r in first if (r.cells & inner).any()]
    other = [r for r in first if not (r.cells & inner).any()]
    assert len(holder) == 1 and len(other) == 1
    assert not (holder[0].cells & corner).any() and (other[0].cells & corner).any()
    assert holder[0].cells.sum() <= 6 < other[0].cells.sum()
    # boxes in video pixels: the small player's group sits inside the large one's
    x0, y0, x1, y1 = holder[0].box
    assert 40 <= x0 < x1 <= 240 and 40 <= y0 < y1 <= 240


def test_two_players_side_by_side_and_no_motion():
    left = (slice(8, 24), slice(2, 14), _beats(range(0, 48, 6)))
    right = (slice(8, 24), slice(40, 56), _beats(range(3, 48, 6)))
    [regions, *_] = rhythm_groupings(moving_pixels(_flow([left, right])), 2, (8, 16), (640, 320))
    assert {tuple(np.flatnonzero(r.cells.any(0))) for r in regions} == {(0, 1, 2, 3), (10, 11, 12, 13)}
    coords, points = rhythm_points(motion_speed(_flow([])))
    assert len(coords) == 0 and points.shape[0] == 0
    assert not list(rhythm_groupings(moving_pixels(_flow([])), 2, (8, 16), (640, 320)))  # nothing moves: no grouping
    one_pixel = (slice(0, 2), slice(0, 2), _beats([3]))  # one 2x2 block: one moving point
    assert not list(rhythm_groupings(moving_pixels(_flow([one_pixel])), 2, (8, 16), (640, 320)))
