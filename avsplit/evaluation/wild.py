"""The ``wild`` protocol: videos with ground truth beside them, separated as ``separate`` does, at the
model's rate and full band; and the source count of solos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from avsplit import io as media
from avsplit.console import error_line
from avsplit.dsp.resample import resample
from avsplit.errors import AvsplitError, MediaError
from avsplit.evaluation.breakdown import box_order, match_tracks, read_domain
from avsplit.evaluation.scores import EvalItem, score, score_localization
from avsplit.inference import (RegionSpec, Region, Separated, WindowStream, discover_regions, find_regions,
                               separate_stream)
from avsplit.scan import VideoItem, truth_path


def count_solo(it: VideoItem, engine) -> EvalItem:
    """A solo's automatic source count (right when it is one), as ``separate`` finds its sources."""

    item = EvalItem("count", it.id.replace("/", "_"), [str(it.path)], [it.category], kind="solo", expected_sources=1,
                    domain=read_domain(it.path))
    try:
        item.found_sources = len(discover_regions(engine, WindowStream(it.path, engine.model, 0.25), None))
    except AvsplitError as exc:
        item.skipped = str(exc)
        error_line(f"{it.path}: {exc}")
    return item


def evaluate_wild(it: VideoItem, engine, localization: bool = True, auto_count: bool = True, zoom: bool = False) -> EvalItem:
    """A video with truth beside it separated as ``separate`` does (into as many tracks as it finds, or
    as the truth has), in memory, once: scored at the model's rate (method ``model``, the paper's
    protocol) and full band at the truth's rate (``model_fullband``), and its maps scored."""
    truth = json.loads(truth_path(it.path).read_text())
    sources = truth["sources"]
    cats = [s.get("category") for s in sources]
    kind = "same-kind" if len(set(cats)) == 1 else "different-kind"
    item = EvalItem("wild", it.id.replace("/", "_"), [str(it.path)], cats, kind=kind, expected_sources=len(sources),
                    domain=read_domain(it.path))
    rate = engine.model.config.audio.sample_rate
    try:
        waves = [media.read_audio_file(it.path.with_name(s["audio"])) for s in sources]
        at_model_rate, full_band = _separate(engine, it.path, waves[0][1], None if auto_count else len(sources), zoom)
        if auto_count:
            item.found_sources = len(at_model_rate.regions)
        mix = media.read_audio(it.path, rate)
    except (MediaError, OSError, KeyError) as exc:
        item.skipped = str(exc)
        error_line(f"{it.path}: {exc}")
        return item
    refs = [resample(wave.mean(0), sr, rate) for wave, sr in waves]
    _score_tracks(item, refs, _truth_ordered(at_model_rate, sources), mix, "model", baseline=True)
    if not item.skipped:
        try:
            full_mix = media.read_audio(it.path, full_band.sample_rate)
        except (MediaError, OSError) as exc:
            error_line(f"{it.path}: full-band scores skipped ({exc})")
        else:
            refs = [resample(wave.mean(0), sr, full_band.sample_rate) for wave, sr in waves]
            _score_tracks(item, refs, _truth_ordered(full_band, sources), full_mix, "model_fullband")
    if localization:
        score_localization(item, it.path, truth, engine)
    return item


def _separate(engine, video: Path, full_rate: int, num_sources: int | None, zoom: bool = False) -> tuple[Separated, Separated]:
    """``video`` separated into ``num_sources`` tracks (None: as many as it finds), mono, at the model's
    rate and full band at ``full_rate``: one pass of the model for both.

    The full-band tracks are those of ``separate --sources N``, N the count the first found: the same
    regions, unless clustering the pixels into N groups gives other groups than the clustering that
    found N did (when one of its groups came out empty); then the video is separated again for them."""
    stream = WindowStream(video, engine.model, 0.25, out_rate=engine.model.config.audio.sample_rate, mono=True)
    full = WindowStream(video, engine.model, 0.25, out_rate=full_rate, mono=True)
    at_model_rate, full_band = separate_stream(engine, stream, RegionSpec(num_sources, zoom=zoom), more=[full])
    tracks = at_model_rate.regions
    if num_sources != len(tracks) and not _same_cells(find_regions(engine, at_model_rate.discovery, len(tracks)), tracks):
        full_band = separate_stream(engine, full, RegionSpec(len(tracks), zoom=zoom))[0]
    return at_model_rate, full_band


def _truth_ordered(separated: Separated, sources: Sequence[dict]) -> np.ndarray:
    """``separated``'s mono tracks ``(R, S)``; as many as the truth's ``sources``, each where its region
    overlaps that source's player (:func:`box_order`, against each source's median box), when the
    truth has boxes."""
    tracks = separated.sources[:, 0]
    if len(tracks) != len(sources) or not all(s.get("boxes") for s in sources):
        return tracks
    truth_boxes = [np.median(np.asarray(s["boxes"], float), axis=0).tolist() for s in sources]
    return tracks[box_order([r.box for r in separated.regions], truth_boxes)]


def _same_cells(a: Sequence[Region], b: Sequence[Region]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x.cells, y.cells) for x, y in zip(a, b))


def _score_tracks(item: EvalItem, refs: Sequence[np.ndarray], tracks: np.ndarray, mix: np.ndarray, method: str,
                  baseline: bool = False) -> None:
    """Score ``tracks`` ``(R, S)`` as ``method`` against the references (matched to them, see
    :func:`match_tracks`), all cut to the shortest; ``baseline``: the mixture's scores too."""
    n = min([len(mix)] + [len(r) for r in refs] + [len(t) for t in tracks])
    refs_a = np.stack([r[:n] for r in refs])
    est = {method: match_tracks(refs_a, np.stack([t[:n] for t in tracks]), mix[:n])}
    if baseline:
        est["mixture"] = np.stack([mix[:n]] * len(refs))
    score(item, refs_a, mix[:n], est)
