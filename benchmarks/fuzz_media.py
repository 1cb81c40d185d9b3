"""Fuzz the media path: hundreds of damaged copies of a small synth video through `separate` and `localize`.

Mutants are made from one short video (``avsplit synth``) written twice, with its index (moov) at the
start (faststart) and at the end: bytes flipped, chunks of the file inserted elsewhere (as in issue
13), deleted, zeroed, or the file cut short. They are run in batches, each a folder of mutants with a
good video sorted last, with a time limit per batch. Reported as JSON on stdout:

- ``crashes``: batches whose process died by a signal (exit >= 128 or negative);
- ``hangs``: batches that ran past the limit;
- ``tracebacks``: batches whose output holds a Python traceback;
- ``unfinished``: batches in which the good last video was not processed;
- ``error_kinds``: the error lines, with paths and numbers taken out, and how often each came.

Usage (the tiny model keeps it fast; OMP_NUM_THREADS=1 on a shared machine)::

    OMP_NUM_THREADS=1 python benchmarks/fuzz_media.py --files 300 [--batch 30] [--seed 0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

MUTATIONS = ("flip", "insert", "delete", "zero", "truncate")


def base_videos(folder: Path) -> dict[str, bytes]:
    """The clean video with its index at the end (as written) and at the start (faststart remux)."""
    from avsplit.synth import generate_dataset

    generate_dataset(folder / "synth", solos=1, duets=0, seconds=2.0, size=(96, 72), fps=12, seed=3)
    source = sorted((folder / "synth").rglob("*.mp4"))[0]
    fast = folder / "fast.mp4"
    remux(source, fast, faststart=True)
    return {"moov-end": source.read_bytes(), "moov-start": fast.read_bytes()}


def remux(source: Path, target: Path, faststart: bool) -> None:
    """Stream-copy ``source`` into ``target`` (MP4, index at the start with ``faststart``)."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4", options=options) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams if s.type in ("audio", "video")}
        for packet in src.demux():
            if packet.dts is None or packet.stream.index not in streams:
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)


def mutate(data: bytes, kind: str, rng) -> bytes:
    """One damaged copy of ``data``."""
    n = len(data)
    if kind == "flip":
        out = bytearray(data)
        for _ in range(int(rng.integers(1, 40))):
            out[int(rng.integers(0, n))] ^= 1 << int(rng.integers(0, 8))
        return bytes(out)
    size = int(rng.integers(1, max(2, n // 8)))
    at = int(rng.integers(0, n))
    if kind == "insert":
        start = int(rng.integers(0, n - size))
        return data[:at] + data[start : start + size] + data[at:]
    if kind == "delete":
        return data[:at] + data[at + size :]
    if kind == "zero":
        return data[:at] + bytes(min(size, n - at)) + data[at + size :]
    return data[: int(rng.integers(0, n))]  # truncate


def normalise(line: str) -> str:
    """An error line with its path and numbers taken out: its kind."""
    text = line.split(": ", 2)[-1] if line.count(": ") >= 2 else line
    text = re.sub(r"\d+(\.\d+)?", "N", text)
    return re.sub(r"'[^']*'", "'…'", text)[:140]


def run_batch(folder: Path, out: Path, weights: Path, command: str, limit: float) -> dict:
    cmd = [sys.executable, "-m", "avsplit", command, str(folder), "-o", str(out), "-w", str(weights)]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as exc:
        return {"hang": True, "seconds": limit, "output": (exc.stderr or b"").decode(errors="replace")[-2000:]}
    output = proc.stdout + proc.stderr
    good = (out / "zzz-good").is_dir() if command == "separate" else (out / "zzz-good.mp4").exists()
    return {"hang": False, "code": proc.returncode, "seconds": time.perf_counter() - started, "output": output,
            "crash": proc.returncode < 0 or proc.returncode >= 128, "traceback": "Traceback" in output,
            "finished": good, "errors": [l[len("error: "):] for l in output.splitlines() if l.startswith("error: ")]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=300, help="number of mutants (half per index position)")
    parser.add_argument("--batch", type=int, default=30, help="mutants per batch (plus the good video)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=float, default=600.0, help="seconds per batch before it counts as a hang")
    parser.add_argument("--commands", default="separate,localize")
    parser.add_argument("--keep", type=Path, help="keep the mutants and outputs in this folder")
    args = parser.parse_args()

    import numpy as np
    import torch

    from avsplit.models.checkpoint import save_checkpoint
    from avsplit.models import build_model, preset

    root = Path(tempfile.mkdtemp(prefix="avsplit-fuzz-")) if args.keep is None else args.keep
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(0)
    weights = save_checkpoint(root / "tiny.safetensors", build_model(preset("tiny")).eval())
    bases = base_videos(root)
    mutants = []
    for i in range(args.files):
        layout = "moov-start" if i % 2 == 0 else "moov-end"
        kind = MUTATIONS[int(rng.integers(0, len(MUTATIONS)))]
        mutants.append((f"m{i:04d}-{layout}-{kind}.mp4", mutate(bases[layout], kind, rng)))
    report: dict = {"files": len(mutants), "batches": 0, "crashes": 0, "hangs": 0, "tracebacks": 0, "unfinished": 0,
                    "inputs_changed": 0, "failed_files": 0, "processed_files": 0, "seconds": 0.0, "problems": [],
                    "error_kinds": collections.Counter(), "by_mutation": {}}
    for b in range(0, len(mutants), args.batch):
        folder = root / f"batch{b // args.batch:03d}"
        folder.mkdir(exist_ok=True)
        chunk = mutants[b : b + args.batch]
        for name, data in chunk:
            (folder / name).write_bytes(data)
        (folder / "zzz-good.mp4").write_bytes(bases["moov-end"])
        for command in args.commands.split(","):
            result = run_batch(folder, root / f"out-{command}-{b // args.batch:03d}", weights, command, args.limit)
            report["batches"] += 1
            report["seconds"] += result["seconds"]
            for key, flag in (("hangs", "hang"), ("crashes", "crash"), ("tracebacks", "traceback")):
                if result.get(flag):
                    report[key] += 1
                    report["problems"].append({"batch": str(folder), "command": command, "kind": flag,
                                               "output": result["output"][-1500:]})
            if not result["hang"] and not result["finished"]:
                report["unfinished"] += 1
                report["problems"].append({"batch": str(folder), "command": command, "kind": "unfinished",
                                           "output": result["output"][-1500:]})
            for line in result.get("errors", []):
                report["error_kinds"][normalise(line)] += 1
                report["failed_files"] += 1
                kind = next((m for m in MUTATIONS if f"-{m}.mp4" in line), "other")
                report["by_mutation"][kind] = report["by_mutation"].get(kind, 0) + 1
            report["processed_files"] += len(chunk) + 1 - len(result.get("errors", []))
        report["inputs_changed"] += sum((folder / name).read_bytes() != data for name, data in chunk)
        print(f"batch {b // args.batch + 1}: {len(chunk)} mutants, crashes {report['crashes']}, hangs {report['hangs']}, "
              f"tracebacks {report['tracebacks']}, unfinished {report['unfinished']}", file=sys.stderr)
    report["error_kinds"] = dict(report["error_kinds"].most_common())
    report["seconds"] = round(report["seconds"], 1)
    print(json.dumps(report, indent=2))
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
