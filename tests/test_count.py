"""The automatic source count (avsplit.inference.counting) and evaluate's count / domain breakdowns."""

import json

import numpy as np
import pytest

from avsplit.evaluation.breakdown import count_summary, join_domains, level_bin, markdown_lines, match_tracks, read_domain, truth_domain
from avsplit.inference.counting import distinct_sources, salient_cells, sound_flux
from avsplit.evaluation import EvalItem, summarize, write_outputs
from avsplit.inference import Region


def _region(cols):
    cells = np.zeros((4, 8), bool)
    cells[1:3, cols] = True
    return Region(cells, [0, 0, 1, 1])


def _warped_with_onsets(onsets, steps=40, bins=16):
    """A mixture magnitude ``(1, 1, bins, steps)`` that jumps up at each onset step and decays."""
    env = np.full(steps, 0.05)
    for t in onsets:
        env[t:] = np.maximum(env[t:], np.exp(-0.5 * np.arange(steps - t)))
    import torch

    return torch.from_numpy(np.tile(env, (bins, 1))[None, None].astype(np.float32))


def _motion(series_left, series_right):
    """Cell motion ``(steps, 4, 8)``: the left half moves with one series, the right half with the other."""
    m = np.zeros((len(series_left), 4, 8))
    m[:, :, :4] = np.asarray(series_left)[:, None, None]
    m[:, :, 4:] = np.asarray(series_right)[:, None, None]
    return m


def test_groups_that_sound_alike_are_two_sources_only_if_they_move_apart_with_the_sound():
    rng = np.random.default_rng(0)
    steps = 40
    a_on, b_on = [2, 12, 22, 32], [7, 17, 27, 37]
    warped = _warped_with_onsets(a_on + b_on, steps)
    spike = lambda on: np.isin(np.arange(steps), on).astype(float) + 0.01 * rng.random(steps)  # noqa: E731
    same_sound = np.ones((2, 1, 16, steps))  # two groups whose separated sounds are identical
    regions = [_region(slice(0, 4)), _region(slice(4, 8))]
    # one player cut in two: the halves move together -> one source
    assert not distinct_sources(same_sound, _motion(spike(a_on), spike(a_on)), regions, warped)
    # two players of one kind, each moving on its own notes -> two sources
    assert distinct_sources(same_sound, _motion(spike(a_on), spike(b_on)), regions, warped)
    # a player and a silent mover with a rhythm of its own (not the sound's) -> one source
    silent = spike([5, 9, 25, 30]) * 0 + rng.random(steps)
    lone_warped = _warped_with_onsets(a_on, steps)
    assert not distinct_sources(same_sound, _motion(spike(a_on), silent), regions, lone_warped)
    # sounds that differ are two sources whatever the motion; a group with almost no share is not one
    apart = np.zeros((2, 1, 16, steps))
    apart[0, :, :8], apart[1, :, 8:] = 1.0, 1.0
    assert distinct_sources(apart, None, regions, warped)
    apart[1] *= 0.01
    assert not distinct_sources(apart, None, regions, warped)


def test_sound_flux_peaks_at_the_onsets():
    flux = sound_flux(_warped_with_onsets([5, 20], 40), 40)
    assert flux.shape == (40,)
    assert set(np.argsort(flux)[-2:]) <= {4, 5, 19, 20}


def test_a_player_that_moves_less_keeps_its_cells():
    sal = np.zeros((6, 10))
    sal[2:4, 1:3] = [[1.0, 0.8], [0.9, 0.7]]  # the busy player
    sal[2:4, 7:9] = [[0.3, 0.25], [0.28, 0.2]]  # a quieter one (below 0.4 of the frame's peak)
    sal[0, 5] = 0.05  # noise
    cells = salient_cells(sal)
    assert cells[2:4, 1:3].all() and cells[2:4, 7:9].any() and not cells[0, 5]


def _item(protocol, kind, expected, found, sdr=None, domain=None):
    it = EvalItem(protocol, f"{protocol}-{kind}-{found}", ["v.mp4"], ["a"], kind=kind, expected_sources=expected,
                  found_sources=found, domain=domain or truth_domain(None))
    if sdr is not None:
        it.scores = {"model": {"sdr": sdr, "sir": 0.0, "sar": 0.0, "nsdr": 0.0},
                     "mixture": {"sdr": 0.0, "sir": 0.0, "sar": 0.0, "nsdr": 0.0}}
    return it


def test_count_accuracy_per_kind_and_domain_groups(tmp_path):
    train = {**truth_domain(None), "split": "train", "soundfont": "TimGM6mb"}
    foreign = {**truth_domain(None), "split": "foreign", "soundfont": "OPL3"}
    items = [_item("wild", "same-kind", 2, 2, 6.0, train), _item("wild", "same-kind", 2, 1, 0.0, foreign),
             _item("wild", "same-kind", 2, 2, 4.0, foreign), _item("wild", "different-kind", 2, 3, 9.0, train),
             _item("count", "solo", 1, 1, None, train), _item("mix", "", 0, None, 10.0, foreign)]
    mixes = [_item("mix", "", 0, None, 4.0, foreign), _item("mix", "", 0, None, 4.0, foreign)]
    for it, glyphs, model_sdr, scored in zip(mixes, (("emoji", "outline"), ("emoji", "drawn")), ([9.0, -1.0], [7.0]), ([0, 1], [0])):
        it.source_domains = [{**foreign, "glyph": g} for g in glyphs]  # the drawn source's model score is undefined:
        it.per_source = {"model": {"sdr": model_sdr, "sources": scored},  # it is left out
                         "mixture": {"sdr": [1.0, -1.0], "sources": [0, 1]}}
    items += mixes
    assert count_summary(items[:3])["right"] == 2 and count_summary(items[5:]) is None
    summary = summarize(items)
    same = summary["wild/same-kind"]
    assert same["count"]["videos"] == 3 and abs(same["count"]["accuracy"] - 2 / 3) < 1e-9
    assert same["count"]["found"] == {"1": 1, "2": 2}
    assert summary["wild/different-kind"]["count"]["accuracy"] == 0.0
    assert summary["count/solo"]["count"]["accuracy"] == 1.0 and "count" not in summary["mix"]
    split = same["domains"]["split"]
    assert set(split) == {"train", "foreign"}
    assert split["foreign"]["model_sdr"]["mean"] == 2.0 and split["train"]["model_sdr"]["mean"] == 6.0
    assert split["foreign"]["count"]["right"] == 1
    assert set(same["domains"]["soundfont"]) == {"TimGM6mb", "OPL3"}
    by_glyph = summary["mix"]["source_domains"]["glyph"]  # each source by its own glyph
    assert by_glyph == {"emoji": {"sources": 2, "model_sdr": 8.0, "mixture_sdr": 1.0, "gain": 7.0},
                        "outline": {"sources": 1, "model_sdr": -1.0, "mixture_sdr": -1.0, "gain": 0.0}}
    by_level = summary["mix"]["source_domains"]["level"]  # each source by its level in the mixture
    assert by_level == {"-6 to +6 dB": {"sources": 3, "model_sdr": pytest.approx(5.0), "mixture_sdr": pytest.approx(1 / 3),
                                        "gain": pytest.approx(14 / 3)}}
    assert [level_bin(v) for v in (-12.0, -6.0, 0.0, 6.5)] == ["under -6 dB", "-6 to +6 dB", "-6 to +6 dB", "over +6 dB"]
    assert "source_domains" not in same
    write_outputs(items, summary, {}, tmp_path / "e.json", tmp_path / "e.csv", tmp_path / "e.md")
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["summary"]["wild/same-kind"]["domains"]["split"]["foreign"]["items"] == 2
    assert data["items"][1]["sources_found"] == 1 and data["items"][1]["domain_split"] == "foreign"
    md = (tmp_path / "e.md").read_text()
    assert "## Source count" in md and "| same-kind | 3 | 2 | 67% | 1:1 2:2 |" in md and "## Domains" in md
    assert "| mix | glyph | emoji | 2 | 8.00 | 1.00 | 7.00 |" in md
    assert "domain_soundfont" in (tmp_path / "e.csv").read_text().splitlines()[0]


def test_domains_of_truth_files_and_mixtures(tmp_path):
    old = tmp_path / "a.truth.json"
    old.write_text(json.dumps({"version": 1, "sources": [{}]}))
    assert read_domain(tmp_path / "a.mp4") == truth_domain(None)
    assert read_domain(tmp_path / "missing.mp4")["split"] == "unknown"
    new = {"version": 2, "sources": [{}], "domain": {"sound_maker": "fluidsynth", "soundfont": "FluidR3", "chain": "clean",
                                                     "glyph": "emoji", "background": "noise", "motion": "bounce", "split": "foreign"}}
    (tmp_path / "b.truth.json").write_text(json.dumps(new))
    b = read_domain(tmp_path / "b.mp4")
    assert b["split"] == "foreign" and b["motion"] == "bounce"
    a = {**b, "split": "train", "motion": "sway"}
    joined = join_domains([a, b])
    assert joined["split"] == "foreign" and joined["motion"] == "sway+bounce" and joined["glyph"] == "emoji"
    assert join_domains([a, {**a, "split": "real"}])["split"] == "real"
    assert join_domains([a, a])["split"] == "train"


def test_tracks_fewer_than_sources_are_scored_as_the_mixture():
    refs = np.stack([np.sin(np.arange(100.0)), np.cos(np.arange(100.0) * 3)])
    mix = refs.sum(0)
    assert np.array_equal(match_tracks(refs, mix[None], mix), np.stack([mix, mix]))
    assert np.array_equal(match_tracks(refs, refs, mix), refs)
    split = np.stack([refs[0] * 0.5, refs[1], refs[0] * 0.5])  # the first source cut in two
    assert np.allclose(match_tracks(refs, split, mix), refs)


def test_markdown_without_counts_or_domains_adds_nothing():
    assert markdown_lines(summarize([_item("mix", "", 0, None, 3.0)])) == []


def test_tracks_are_scored_against_the_player_their_box_covers():
    from avsplit.evaluation.breakdown import box_iou, box_order

    above, below = [10, 0, 90, 40], [0, 50, 100, 100]  # one player above the other, centres 50 and 50
    assert box_iou(above, above) == 1.0 and box_iou(above, below) == 0.0
    assert box_order([above, below], [above, below]) == [0, 1]
    assert box_order([below, above], [above, below]) == [1, 0]  # left to right would pair them wrongly
    assert box_order([[0, 0, 1, 1], [5, 5, 6, 6]], [above, below]) == [0, 1]  # no overlap: the given order
    three = [[0, 0, 30, 30], [40, 0, 70, 30], [80, 0, 100, 30]]
    assert box_order([three[2], three[0], three[1]], three) == [1, 2, 0]


def test_appearance_models_try_one_grouping_of_the_cells_that_stand_out():
    from avsplit.inference.counting import groupings

    rng = np.random.default_rng(0)
    sal = np.zeros((8, 8))
    sal[1:4, 1:4] = sal[5:8, 5:8] = 1.0
    z = rng.standard_normal((8, 8, 4))
    [regions] = list(groupings(None, sal, z, 2, (64, 64)))
    assert sorted(int(r.cells.sum()) for r in regions) == [9, 9]
    assert not list(groupings(None, sal, z, 40, (64, 64)))  # more groups than cells: none


def test_the_grouping_kept_is_the_one_whose_groups_sound_least_alike():
    from avsplit.inference.counting import most_distinct

    alike = np.stack([np.ones((1, 4, 6)), np.ones((1, 4, 6)) * 2])  # two groups, one sound
    apart = np.zeros((2, 1, 4, 6))
    apart[0, :, :2], apart[1, :, 2:] = 1.0, 1.0
    assert most_distinct([("first", alike), ("second", apart)]) == "second"
    assert most_distinct([("first", apart), ("second", apart.copy())]) == "first"  # a tie: the first
