"""The ground truth beside a synthetic video: ``<stem>.source-<k>.wav`` (clean sound of each source),
``<stem>.noise.wav`` (the recording chain's noise, where there is one) and ``<stem>.truth.json``
(written last: a video with its truth JSON and every source WAV it names is complete).

Sources are numbered 1..K left to right by the horizontal centre of their box averaged over the video.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from avsplit.errors import OutputError
from avsplit.files import atomic_path, json_text
from avsplit.io import write_audio
from avsplit.scan import truth_path, truth_source_path
from avsplit.synth.clip import Settings, sound_truth
from avsplit.synth.instruments import Category
from avsplit.synth.variety import domain_of

TRUTH_VERSION = 2


def is_complete(video: Path) -> bool:
    """Whether ``video`` exists with its truth JSON and every source WAV the truth names."""
    truth = truth_path(video)
    if not (video.is_file() and truth.is_file()):
        return False
    try:
        data = json.loads(truth.read_text(encoding="utf-8"))
        files = [video.with_name(s["audio"]) for s in data["sources"]]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return bool(files) and all(f.is_file() for f in files)


def dumps(obj) -> str:
    """JSON with two-space indentation, but short lists of numbers/booleans kept on one line."""
    text = json_text(obj, indent=2, ensure_ascii=False)
    atom = r"(?:-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null)"
    pattern = re.compile(r"\[\s*(" + atom + r"(?:\s*,\s*" + atom + r")*)\s*\]")
    return pattern.sub(lambda m: "[" + ", ".join(p.strip() for p in m.group(1).split(",")) + "]", text) + "\n"


def write_text(path: Path, text: str) -> None:
    """``text`` into ``path``, atomically; a folder that refuses writing is one :class:`OutputError`."""
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except PermissionError as exc:
        raise OutputError("permission denied", path, "choose a writable output folder") from exc


def _source_entries(video: Path, st: Settings, cats: Sequence[Category], sound, look, src_boxes: list,
                    sounding) -> tuple[list[dict], dict]:
    """Write each source's clean sound, left to right; returns their truth entries and the sound's
    generator details (:func:`~avsplit.synth.clip.sound_truth`)."""
    centres = [float(np.mean([(b[0] + b[2]) / 2 for b in bx])) for bx in src_boxes]
    order = sorted(range(len(cats)), key=lambda i: (centres[i], i))
    extras_truth, details = sound_truth(sound, order)
    entries = []
    for k, (i, extra) in enumerate(zip(order, extras_truth), start=1):
        path = truth_source_path(video, k)
        write_audio(path, sound.sources[i], st.sample_rate)
        entry = {
            "index": k,
            "category": cats[i].name,
            "program": cats[i].program,
            "bank": cats[i].bank,
            "audio": path.name,
            "boxes": src_boxes[i],
            "sounding": [bool(x) for x in sounding[i]],
            "onsets": [round(float(t), 4) for t in sound.melodies[i].onsets],
        }
        entry.update(extra)
        entry["domain"]["glyph"] = look.glyphs[i]
        if i < len(sound.plans) and sound.plans[i].take is not None:
            entry["take"] = sound.performances[i].get("take")
        entries.append(entry)
    return entries, details


def _noise_entry(video: Path, st: Settings, sound) -> dict | None:
    """Write the recording chain's noise beside the video, where there is one; its truth entry."""
    if sound.noise is None:
        return None
    noise_path = video.with_name(f"{video.stem}.noise.wav")
    write_audio(noise_path, sound.noise, st.sample_rate)
    return {"audio": noise_path.name, **sound.video_chain["noise"]}


def write_truth(video: Path, kind: str, st: Settings, cats: Sequence[Category], sound, look, boxes: list, extras: list,
                sounding) -> None:
    """The truth files of a rendered video. ``boxes``: per actor (the ``extras``, silent distractors,
    first, then one per source in ``cats``' order) its box ``[x0, y0, x1, y1]`` in every frame."""
    entries, details = _source_entries(video, st, cats, sound, look, boxes[len(extras):], sounding)
    truth = {
        "version": TRUTH_VERSION,
        "video": video.name,
        "kind": kind,
        "fps": float(look.fps),
        "num_frames": look.n_frames,
        "width": look.width,
        "height": look.height,
        "sample_rate": st.sample_rate,
        "seconds": float(st.seconds),
        "seed": int(st.seed),
        "domain": domain_of([e["domain"] for e in entries], sound.plans, look.background),
        "generator": {
            "renderer": st.renderer.name,
            "soundfont": str(st.renderer.soundfont) if st.renderer.soundfont else None,
            "sprites": st.sprite_kind,
            **({"variety": st.variety, "split": st.split, **details, "picture": look.describe()} if st.variety == "full" else {}),
        },
        "noise": _noise_entry(video, st, sound),
        "sources": entries,
        "distractors": [{"kind": obj.name, "boxes": boxes[i]} for i, obj in enumerate(extras)],
    }
    write_text(truth_path(video), dumps(truth))
