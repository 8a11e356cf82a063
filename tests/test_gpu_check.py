"""benchmarks/gpu_check.py, the script a lent GPU machine runs: its CPU smoke run goes through every
part (faces stage on a real video, looped face tables, the vision and sequence trainings in two
precisions, a killed and resumed training) and writes its tables, so it still runs when a GPU comes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_smoke_run_writes_every_part(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), str(tmp_path), "--smoke"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    parts = [(r["part"], r.get("model"), r.get("precision")) for r in result["rows"]]
    assert ("vision", "sta_drn", "fp32") in parts and ("vision", "dlga_cnn", "fp32") in parts
    assert {("sequence", m, p) for m in ("stst", "jamfn", "depression_detector") for p in ("fp32", "bf16")} <= set(parts)
    resume = next(r for r in result["rows"] if r["part"] == "resume")
    assert resume["equal_weights"] is True
    vision = [r for r in result["rows"] if r["part"] == "vision"]
    assert all(r["items_per_s"] > 0 and r["loader_frames_per_s"] > 0 for r in vision)
    assert "| vision | sta_drn |" in (tmp_path / "gpu_check.md").read_text()


def test_gpu_check_refuses_to_run_without_a_gpu_unless_smoke(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no CUDA GPU visible" in done.stderr
