"""What cross-validation costs before any job runs: Snakemake's dry run (start, DAG, input checks) of a
1,000-video study under the sheet's own splits and under 5-fold cross-validation (issue 32's target:
under 60 s), and the number of jobs each plans.

    python benchmarks/bench_cv_dag.py [--videos 1000] [--subjects 300] [--folds 5] [--out benchmarks/results/cv_dag.md]

The videos are empty placeholder files (a dry run never opens them); every one of facevox's default
models x 3 seeds is in the run, so the fold wildcard multiplies the trainings by 5 and the shard sets by 5.
The cost that matters at run time - the trainings - is k x the fixed split's by construction: one shard
set and one training per (model, fold, seed) over the same videos (the per-video extraction is shared).
"""
from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_study(folder: Path, videos: int, subjects: int) -> None:
    (folder / "videos").mkdir(parents=True)
    rows = ["video_id\tpath\tsubject_id\tsplit\tlabel\tscore\tgender"]
    for i in range(videos):
        subject = i % subjects
        split = ("train", "train", "train", "dev", "test")[subject % 5]
        label = "depression" if subject % 3 == 0 else "normal"
        (folder / "videos" / f"v{i:04d}.mp4").touch()
        rows.append(f"v{i:04d}\tvideos/v{i:04d}.mp4\tp{subject:03d}\t{split}\t{label}\t\t")
    (folder / "samples.tsv").write_text("\n".join(rows) + "\n")


def dry_run(folder: Path, cv: str) -> tuple[float, int, dict[str, int]]:
    (folder / "config.yaml").write_text(f"samples: samples.tsv\ncv: {cv}\n")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(folder), "--configfile", str(folder / "config.yaml"), "--quiet",
                           "rules"], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    counts = {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, flags=re.M)}
    return seconds, counts.get("total", 0), counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--subjects", type=int, default=300)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "cv_dag.md"))
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_study(folder, a.videos, a.subjects)
        for label, cv in (("fixed (the sheet's splits)", "{scheme: fixed}"),
                          (f"kfold, {a.folds} folds", f"{{scheme: kfold, folds: {a.folds}}}")):
            seconds, total, counts = dry_run(folder, cv)
            rows.append((label, seconds, total, counts.get("shards", 0), counts.get("train", 0)))
            print(f"{label}: {seconds:.1f} s, {total} jobs", flush=True)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [f"Dry run (`snakemake -n`) of a {a.videos}-video, {a.subjects}-subject study, facevox's default models "
             f"x 3 seeds, on {cpu} (one run each; `python benchmarks/bench_cv_dag.py`).", "",
             "| cv | dry run (s) | jobs | shard sets | trainings |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {label} | {s:.1f} | {total} | {shards} | {train} |" for label, s, total, shards, train in rows]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
