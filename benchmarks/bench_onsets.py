"""cIoU@0.5 of ``localize --method onsets`` on datasets with truth, for its settings and variants.

For every duet (``<stem>.truth.json`` with two or more sources) under each folder, the onset maps
are computed and scored per frame as ``avsplit evaluate`` scores them
(:func:`avsplit.evaluation.localization.localization_cious`); the share of frames with cIoU >= 0.5 is
printed per folder and variant, over all duets and per motion style (the truth's ``domain``).

    python benchmarks/bench_onsets.py DATA [DATA ...] [--variant NAME=FIELD:VALUE[;FIELD:VALUE]] ...

``--variant tol1=tolerance:1;floor:0.35`` adds a variant of :class:`OnsetSettings` (the defaults
are always measured, as ``default``). The localizer needs no weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avsplit.evaluation.localization import localization_cious, success_rate  # noqa: E402
from avsplit.localize.onsets import OnsetSettings  # noqa: E402
from avsplit.scan import find_videos, truth_path  # noqa: E402


def parse_variant(text: str) -> tuple[str, OnsetSettings]:
    """``NAME=FIELD:VALUE;FIELD:VALUE`` -> ``(NAME, settings)`` (each value cast to the field's type)."""
    name, _, body = text.partition("=")
    defaults = OnsetSettings()
    changes = {}
    for item in filter(None, body.split(";")):
        field, _, value = item.partition(":")
        if not hasattr(defaults, field):
            raise SystemExit(f"--variant {text!r}: OnsetSettings has no field {field!r}")
        changes[field] = type(getattr(defaults, field))(value)
    return name, dataclasses.replace(defaults, **changes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", type=Path)
    ap.add_argument("--variant", action="append", default=[], help="NAME=FIELD:VALUE[;FIELD:VALUE] (repeatable)")
    args = ap.parse_args()
    variants = [("default", OnsetSettings())] + [parse_variant(v) for v in args.variant]
    for folder in args.data:
        cious = {name: defaultdict(list) for name, _ in variants}
        for video in find_videos([folder]):
            truth_file = truth_path(video)
            if not truth_file.exists():
                continue
            truth = json.loads(truth_file.read_text())
            if len(truth.get("sources", [])) < 2:
                continue
            style = (truth.get("domain") or {}).get("motion", "bounce")
            for name, settings in variants:
                frames = localization_cious(video, truth, methods=["onsets"], onset_settings=settings)["onsets"]
                cious[name]["all"] += frames
                cious[name][style] += frames
        for name, _ in variants:
            styles = " ".join(f"{s}={success_rate(c):.3f}" for s, c in sorted(cious[name].items()) if s != "all")
            everything = cious[name]["all"]
            print(f"{folder.name} {name}: cIoU@0.5 {success_rate(everything):.3f} over {len(everything)} frames; {styles}",
                  flush=True)


if __name__ == "__main__":
    main()
