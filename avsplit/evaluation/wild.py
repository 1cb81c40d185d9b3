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
from avsplit.evaluation.breakdown import match_tracks, read_domain
from avsplit.evaluation.scores import EvalItem, score, score_localization
from avsplit.inference import WindowStream, discover_regions, separate_video
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


def evaluate_wild(it: VideoItem, engine, tmp: Path, localization: bool = True, auto_count: bool = True) -> EvalItem:

    truth = json.loads(truth_path(it.path).read_text())
    sources = truth["sources"]
    cats = [s.get("category") for s in sources]
    kind = "same-kind" if len(set(cats)) == 1 else "different-kind"
    item = EvalItem("wild", it.id.replace("/", "_"), [str(it.path)], cats, kind=kind, expected_sources=len(sources),
                    domain=read_domain(it.path))
    rate = engine.model.config.audio.sample_rate
    try:
        res = separate_video(it.path, tmp, engine, num_sources=None if auto_count else len(sources), sample_rate=rate,
                             mono=True, overwrite=True)
        tracks = len(res.sources)
        if auto_count:
            item.found_sources = tracks
        est = [media.read_audio_file(f)[0][0] for f in res.files[:tracks]]
        refs = []
        for s in sources:
            wave, sr = media.read_audio_file(it.path.with_name(s["audio"]))

            refs.append(resample(wave.mean(0), sr, rate))
        mix = media.read_audio(it.path, rate)
    except (MediaError, OSError, KeyError) as exc:
        item.skipped = str(exc)
        error_line(f"{it.path}: {exc}")
        return item
    n = min([len(mix)] + [len(r) for r in refs] + [len(e) for e in est])
    refs_a = np.stack([r[:n] for r in refs])
    est_a = match_tracks(refs_a, np.stack([e[:n] for e in est]), mix[:n])
    score(item, refs_a, mix[:n], {"model": est_a, "mixture": np.stack([mix[:n]] * len(refs))})
    if not item.skipped:
        _score_fullband(item, it.path, [it.path.with_name(s["audio"]) for s in sources], engine, tmp / "fullband", tracks)
    if localization:
        score_localization(item, it.path, truth, engine)
    return item


def _score_fullband(item: EvalItem, video: Path, truth_files: Sequence[Path], engine, tmp: Path, tracks: int) -> None:
    """``item.scores["model_fullband"]``: the video separated as ``separate`` does by default (full
    band) into ``tracks`` tracks (the count the paper-protocol pass found), scored at the truth's own
    rate against the truth (mono mixdowns of both; tracks matched as in that pass)."""

    try:
        truth = [media.read_audio_file(f) for f in truth_files]
        rate = truth[0][1]
        res = separate_video(video, tmp, engine, num_sources=tracks, sample_rate=rate, mono=True, overwrite=True)
        est = [media.read_audio_file(f)[0][0] for f in res.files[:tracks]]
        mix = media.read_audio(video, rate)
    except (MediaError, OSError) as exc:
        error_line(f"{video}: full-band scores skipped ({exc})")
        return
    refs = [resample(w.mean(0), r, rate) for w, r in truth]
    n = min([len(mix)] + [len(r) for r in refs] + [len(e) for e in est])
    refs_a = np.stack([r[:n] for r in refs])
    est_a = match_tracks(refs_a, np.stack([e[:n] for e in est]), mix[:n])
    score(item, refs_a, mix[:n], {"model_fullband": est_a})
