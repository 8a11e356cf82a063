"""Crash safety: Snakemake killed with SIGKILL in the middle of an extraction job and of a
training job; after `--unlock` and `--rerun-incomplete` the outputs equal those of an
uninterrupted run - byte for byte for every Parquet table, the shards and the
predictions; the metrics JSON equal except wall-clock fields."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TIMING_KEYS = {"seconds", "items_per_s", "train_seconds"}


def _command(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(workdir / "config.yaml"), *args]


def _env() -> dict:
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}


def run(workdir: Path, *args: str) -> None:
    proc = subprocess.run(_command(workdir, *args), capture_output=True, text=True, env=_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr


def kill_when(workdir: Path, ready, timeout: float = 300) -> None:
    """Start `snakemake --cores 1`, SIGKILL its whole process group once ``ready()`` is true."""
    proc = subprocess.Popen(_command(workdir, "--cores", "1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env(), start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "timed out waiting for the moment to kill"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def parquet_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "results").rglob("*.parquet"))}


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


@pytest.mark.slow
def test_killed_extraction_resumes_to_identical_outputs(tmp_path, feat_media):
    projects = {}
    for name in ("reference", "killed"):
        workdir = tmp_path / name
        (workdir / "videos").mkdir(parents=True)
        shutil.copyfile(feat_media / "WolfgangLanger_Pexels.mp4", workdir / "videos" / "w.mp4")
        (workdir / "samples.tsv").write_text("video_id\tpath\nwolfgang\tvideos/w.mp4\n")
        (workdir / "config.yaml").write_text("samples: samples.tsv\n")
        projects[name] = workdir
    run(projects["reference"], "--cores", "1")

    killed = projects["killed"]
    landmarks = killed / "results/landmarks/wolfgang.parquet"
    log = killed / "results/logs/landmarks/wolfgang.log"
    kill_when(killed, lambda: log.exists() and not landmarks.exists())  # the job has started
    assert not landmarks.exists()  # a killed job leaves no file under the output's name
    run(killed, "--unlock")
    run(killed, "--cores", "1", "--rerun-incomplete")
    reference = parquet_files(projects["reference"])
    assert parquet_files(killed) == reference and "results/landmarks/wolfgang.parquet" in reference
    assert (killed / "results/qa.tsv").read_bytes() == (projects["reference"] / "results/qa.tsv").read_bytes()


@pytest.mark.slow
def test_killed_training_resumes_to_identical_metrics(tmp_path):
    from facevox.dataset.synthetic import planted_project

    projects = {}
    for name in ("reference", "killed"):
        workdir = tmp_path / name
        planted_project(workdir, {"train": 4, "dev": 2, "test": 2}, rows=330)
        (workdir / "config.yaml").write_text(
            "samples: samples.tsv\nsource: aligned\nshards: {length: 60}\nreport: {bootstrap_resamples: 20}\n"
            "models: {run: [blstm], seeds: [0], device: cpu, threads: 1, checkpoint_every_s: 0,\n"
            "         overrides: {blstm: {epochs: 40, batch_size: 2, hidden_size: 16, patience: null}}}\n")
        projects[name] = workdir
    run(projects["reference"], "--cores", "1")

    killed = projects["killed"]
    checkpoint = killed / "results/models/blstm/seed0.ckpt.resume/last.ckpt"
    kill_when(killed, checkpoint.exists)
    assert not (killed / "results/models/blstm/seed0.ckpt").exists()
    run(killed, "--unlock")
    run(killed, "--cores", "1", "--rerun-incomplete")
    log = (killed / "results/logs/train/blstm/seed0.log").read_text()
    assert "resuming after epoch" in log
    # models.checkpoint_every_s is a machine key: it reached the job through its environment (Snakefile)
    assert "resume state at most every 0 s (models.checkpoint_every_s)" in log

    reference = projects["reference"]
    assert parquet_files(killed) == parquet_files(reference)  # aligned tables, shards, predictions
    metrics = [json.loads((p / "results/metrics/blstm/seed0.json").read_text()) for p in (killed, reference)]
    assert _strip(metrics[0]) == _strip(metrics[1])
    assert len(metrics[0]["history"]) == 40
