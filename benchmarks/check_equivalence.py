"""Check that two runs of the CLI on the same inputs gave the same outputs (a refactor changed no number).

Usage::

    python benchmarks/check_equivalence.py BEFORE AFTER [--tol 1e-6]

BEFORE and AFTER are output folders made the same way, e.g. each holding what
``avsplit separate examples -o DIR/sep``, ``avsplit localize examples -o DIR/loc --maps`` and
``avsplit evaluate --data examples --pairs 2 --json DIR/eval.json -q`` wrote. Every file under
BEFORE must exist under AFTER (and no file may be new):

- ``.wav``/``.flac``: same rate and shape, samples within ``--tol``;
- ``.npz``: same arrays (names, shapes, dtypes), values within ``--tol``;
- ``.json``: same structure, numbers within ``--tol``, strings equal except timestamps, versions
  and absolute paths (keys listed in ``_VOLATILE_KEYS``);
- ``.mp4``: byte-identical, or else the decoded frames and sound equal (within ``--tol``);
- anything else: byte-identical.

Prints one line per difference and a summary; exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

# JSON keys whose string values name the moment or the machine of a run, not its result.
_VOLATILE_KEYS = frozenset({"time", "timestamp", "date", "created", "started", "finished", "version",
                            "avsplit_version", "python", "platform", "host", "elapsed", "seconds", "wall_s"})


def _compare_json(a, b, where: str, tol: float, out: list[str], key: str = "") -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            out.append(f"{where}: keys differ: {sorted(set(a) ^ set(b))}")
        for k in sorted(set(a) & set(b)):
            _compare_json(a[k], b[k], f"{where}.{k}", tol, out, k)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} items vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            _compare_json(x, y, f"{where}[{i}]", tol, out, key)
    elif isinstance(a, bool) or isinstance(b, bool):
        if a != b:
            out.append(f"{where}: {a!r} vs {b!r}")
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if key in _VOLATILE_KEYS:
            return
        if math.isnan(a) and math.isnan(b):
            return
        if not abs(a - b) <= tol:
            out.append(f"{where}: {a!r} vs {b!r}")
    elif isinstance(a, str) and isinstance(b, str):
        if a != b and key not in _VOLATILE_KEYS and not (a.startswith("/") and b.startswith("/")):
            out.append(f"{where}: {a!r} vs {b!r}")
    elif a != b:
        out.append(f"{where}: {a!r} vs {b!r}")


def _compare_arrays(a: np.ndarray, b: np.ndarray, where: str, tol: float, out: list[str]) -> None:
    if a.shape != b.shape or a.dtype != b.dtype:
        out.append(f"{where}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}")
    elif a.size and np.issubdtype(a.dtype, np.number):
        worst = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
        if not worst <= tol:
            out.append(f"{where}: differs by up to {worst:.3g}")
    elif not np.array_equal(a, b):
        out.append(f"{where}: differs")


def _compare_file(a: Path, b: Path, where: str, tol: float, out: list[str]) -> None:
    suffix = a.suffix.lower()
    if suffix == ".json":
        _compare_json(json.loads(a.read_text()), json.loads(b.read_text()), where, tol, out)
    elif suffix == ".npz":
        with np.load(a) as za, np.load(b) as zb:
            if set(za.files) != set(zb.files):
                out.append(f"{where}: arrays differ: {sorted(set(za.files) ^ set(zb.files))}")
            for name in sorted(set(za.files) & set(zb.files)):
                _compare_arrays(za[name], zb[name], f"{where}:{name}", tol, out)
    elif suffix in (".wav", ".flac"):
        import soundfile

        da, ra = soundfile.read(str(a), dtype="float64", always_2d=True)
        db, rb = soundfile.read(str(b), dtype="float64", always_2d=True)
        if ra != rb:
            out.append(f"{where}: rate {ra} vs {rb}")
        _compare_arrays(da, db, where, tol, out)
    elif a.read_bytes() != b.read_bytes():
        if suffix == ".mp4":
            _compare_decoded(a, b, where, tol, out)
        else:
            out.append(f"{where}: bytes differ")


def _compare_decoded(a: Path, b: Path, where: str, tol: float, out: list[str]) -> None:
    from avsplit import io as media

    ia, ib = media.probe(a), media.probe(b)
    fa = np.stack([f for _, f in media.iter_frames(a)])
    fb = np.stack([f for _, f in media.iter_frames(b)])
    _compare_arrays(fa, fb, f"{where} (frames)", 0, out)
    if ia.has_audio or ib.has_audio:
        rate = ia.audio_rate or ib.audio_rate
        _compare_arrays(media.read_audio(a, rate), media.read_audio(b, rate), f"{where} (sound)", tol, out)


def compare_folders(before: Path, after: Path, tol: float) -> tuple[int, list[str]]:
    """Compare every file under ``before`` with its namesake under ``after``: (files compared, differences)."""
    out: list[str] = []
    files_a = {p.relative_to(before) for p in before.rglob("*") if p.is_file()}
    files_b = {p.relative_to(after) for p in after.rglob("*") if p.is_file()}
    for rel in sorted(files_a - files_b):
        out.append(f"{rel}: missing after")
    for rel in sorted(files_b - files_a):
        out.append(f"{rel}: new after")
    for rel in sorted(files_a & files_b):
        _compare_file(before / rel, after / rel, str(rel), tol, out)
    return len(files_a & files_b), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--tol", type=float, default=1e-6, help="largest difference of numbers that counts as equal")
    args = parser.parse_args()
    for folder in (args.before, args.after):
        if not folder.is_dir():
            print(f"error: {folder}: not a folder; give two output folders", file=sys.stderr)
            return 2
    count, differences = compare_folders(args.before, args.after, args.tol)
    for line in differences:
        print(line)
    print(f"{count} files compared, {len(differences)} differences (tolerance {args.tol:g})")
    return 1 if differences or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
