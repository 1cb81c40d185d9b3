"""The bad-input matrix and a fuzz test (issue 13): every kind of file in one batch, and damaged copies.

Checks: the exit code, one ``error:`` line per bad file naming it, every good file processed (the good
video sorted last too: the batch reaches the end), no traceback, inputs byte-identical, no
temporaries left.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from badmedia import make_matrix, remux
from conftest import write_test_video

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "avsplit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    return proc.returncode, proc.stdout + proc.stderr


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def _no_temporaries(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if ".part" in p.name], list(folder.rglob("*.part*"))


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    from avsplit.synth import generate_dataset

    root = tmp_path_factory.mktemp("matrix")
    folder = root / "in"
    bad, good = make_matrix(folder, root / "scratch")
    generate_dataset(root / "synth", solos=1, duets=0, seconds=2.0, size=(96, 72), fps=12, seed=1)
    (folder / "zzz-good.mp4").write_bytes(sorted((root / "synth").rglob("*.mp4"))[0].read_bytes())
    return folder, bad, good + ["zzz-good.mp4"]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["separate", "localize"])
def test_bad_input_matrix(matrix, tiny_weights, tmp_path, command):
    folder, bad, good = matrix
    assert len(bad) + len(good) >= 28
    before = _digests(folder)
    out = tmp_path / "out"
    code, output = _cli(command, folder, "-o", out, "-w", tiny_weights)
    assert code == 1, output
    assert "Traceback" not in output, output
    errors = _errors(output)
    assert len(errors) == len(bad), "\n".join(errors)
    for name in bad:
        assert sum(name in e for e in errors) == 1, (name, errors)
    made = {p.name if p.is_dir() else p.stem for p in out.iterdir()} if out.exists() else set()
    assert {Path(n).stem for n in good} <= made, sorted({Path(n).stem for n in good} - made)
    assert "1 sound-only files passed over (.m4a)" in " ".join(output.split())
    assert _digests(folder) == before  # inputs untouched
    _no_temporaries(out)


def _damaged_weights(tmp_path: Path, tiny_weights: Path) -> dict[str, Path]:
    import collections

    import torch

    from avsplit.models.checkpoint import save_checkpoint
    from avsplit.models import build_model, preset

    data = Path(tiny_weights).read_bytes()
    kinds = {"missing": tmp_path / "missing.safetensors"}
    kinds["corrupt"] = tmp_path / "corrupt.safetensors"
    kinds["corrupt"].write_bytes(data[:8] + bytes(200) + data[208:])
    kinds["truncated"] = tmp_path / "truncated.safetensors"
    kinds["truncated"].write_bytes(data[: len(data) // 2])
    kinds["pickled"] = tmp_path / "pickled.pth"
    torch.save({"x": collections.Counter(a=1)}, kinds["pickled"])
    model = build_model(preset("tiny")).eval()
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    kinds["nan"] = save_checkpoint(tmp_path / "nan.safetensors", model)
    return kinds


def test_bad_weights_and_unwritable_output_are_one_error_line(tiny_weights, tmp_path):
    clip = write_test_video(tmp_path / "a.mp4", seconds=1.0, size=(64, 48))
    for kind, weights in _damaged_weights(tmp_path, tiny_weights).items():
        out = tmp_path / f"out-{kind}"
        code, output = _cli("separate", clip, "-o", out, "-w", weights)
        assert code == 1 and len(_errors(output)) == 1 and "Traceback" not in output, (kind, output)
        assert not out.exists(), kind
    (tmp_path / "file").write_text("in the way")
    code, output = _cli("separate", clip, "-o", tmp_path / "file" / "out", "-w", tiny_weights)
    assert code == 1 and len(_errors(output)) == 1 and "Traceback" not in output, output


def test_unknown_train_choices_fail_before_any_data_is_read(tmp_path):
    """A typo in a choice option is one error line before preprocessing: no cache, no run folder."""
    data = tmp_path / "data" / "cat"
    data.mkdir(parents=True)
    write_test_video(data / "a.mp4", seconds=1.0, size=(64, 48))
    for option, value in (("--category-on", "pixels"), ("--optimizer", "lion"), ("--amp", "fp8")):
        out, cache = tmp_path / f"run{option}", tmp_path / f"cache{option}"
        code, output = _cli("train", "--data", tmp_path / "data", "-o", out, "--preset", "tiny", "--cache", cache,
                            option, value)
        errors = _errors(output)
        assert code == 1 and len(errors) == 1 and option in errors[0] and "Traceback" not in output, output
        assert not out.exists() and not cache.exists(), option


# --------------------------------------------------------------------------------------------- fuzz


def _mutants(base: dict[str, bytes], count: int, seed: int) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        layout = "start" if i % 2 == 0 else "end"
        data = base[layout]
        n = len(data)
        kind = ("flip", "insert", "delete", "truncate")[i // 2 % 4]
        if kind == "flip":
            buf = bytearray(data)
            for _ in range(int(rng.integers(1, 30))):
                buf[int(rng.integers(0, n))] ^= 0xFF
            data = bytes(buf)
        elif kind == "insert":
            size, at, src = int(rng.integers(16, 4096)), int(rng.integers(0, n)), int(rng.integers(0, n - 4096))
            data = data[:at] + data[src : src + size] + data[at:]
        elif kind == "delete":
            at = int(rng.integers(0, n))
            data = data[:at] + data[at + int(rng.integers(16, 4096)) :]
        else:
            data = data[: int(rng.integers(0, n))]
        out.append((f"m{i:02d}-{layout}-{kind}.mp4", data))
    return out


@pytest.mark.slow
def test_fuzzed_media_never_end_the_batch(tiny_weights, tmp_path):
    """Two dozen damaged copies of a small video (index at the start and at the end) in one batch with a
    good video last, bounded in time: no crash, no hang, no traceback, the last file is separated."""
    plain = write_test_video(tmp_path / "plain.mp4", seconds=1.5, size=(64, 48))
    fast = remux(plain, tmp_path / "fast.mp4", faststart=True)
    folder = tmp_path / "in"
    folder.mkdir()
    mutants = _mutants({"start": fast.read_bytes(), "end": plain.read_bytes()}, 24, seed=13)
    for name, data in mutants:
        (folder / name).write_bytes(data)
    (folder / "zzz-good.mp4").write_bytes(plain.read_bytes())
    before = _digests(folder)
    out = tmp_path / "out"
    code, output = _cli("separate", folder, "-o", out, "-w", tiny_weights, timeout=400)
    assert code in (0, 1) and "Traceback" not in output, output
    assert (out / "zzz-good" / "sources.json").exists(), output
    assert len(_errors(output)) + len([p for p in out.iterdir()]) == len(mutants) + 1, output
    assert _digests(folder) == before
    _no_temporaries(out)
