"""benchmarks/gpu_check.py runs its checks on CPU with the tiny presets (so that it cannot rot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_passes_on_cpu_with_tiny_presets(tmp_path):
    import torch
    from torchvision.models.optical_flow import Raft_Small_Weights, raft_small

    # RAFT weights "in the torch hub cache" (randomly initialised: the check runs the flow, it does
    # not judge it), so the RAFT check runs instead of being skipped.
    torch.manual_seed(0)
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(raft_small(weights=None).state_dict(), checkpoints / Path(Raft_Small_Weights.DEFAULT.url).name)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TORCH_HOME": str(tmp_path / "torch"),
           "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--tiny",
                             "--keep", str(tmp_path / "work")], capture_output=True, text=True, env=env, timeout=300)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    checks = {line["check"]: line for line in lines}
    assert result.returncode == 0, (result.stdout, result.stderr[-2000:])
    assert list(checks) == ["env", "synth", "train-tiny", "train-tiny-motion", "torchrun", "separate", "localize", "raft", "summary"]
    assert all(line["ok"] for line in lines) and checks["summary"]["pass"] is True
    assert checks["torchrun"]["backend"] == "gloo" and checks["torchrun"]["steps"] == 2
    for name in ("train-tiny", "train-tiny-motion"):
        assert checks[name]["clips_per_s"] > 0 and checks[name]["steps"] == 2
    assert checks["separate"]["rtf"] > 0 and 0 < checks["separate"]["separate_over_decode"]
    assert checks["raft"].get("skipped") is None and checks["raft"]["pairs"] == 8
    assert len(list((tmp_path / "work" / "separated").iterdir())) == checks["separate"]["videos"]


def test_a_failing_check_is_reported_and_the_rest_go_on(capsys):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))

    def broken():
        raise RuntimeError("CUDA error: out of memory")

    gpu_check.RESULTS.clear()
    gpu_check.run_check("train-sop", broken)
    gpu_check.run_check("env", lambda: {"ok": False, "bf16": False})
    gpu_check.run_check("localize", lambda: {"rtf": 3.0})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["check"], line["ok"]) for line in lines] == [("train-sop", False), ("env", False), ("localize", True)]
    assert "out of memory" in lines[0]["error"]
