"""Landmark stage vs decode-only on the same file, one core; and tracking accuracy.

    python benchmarks/bench_landmarks.py [VIDEO] [--repeats 3] [--out benchmarks/results/landmarks.md]
    python benchmarks/bench_landmarks.py VIDEO --processes   # only the whole-process ratio

Prints (and writes as Markdown):
* frames/s of PyAV decode-only, OpenCV decode-only (reference), the facevox
  landmark stage (decode + detect + track + Parquet write), and the ratio
  stage / PyAV decode-only (the decoder the stage uses);
* the same as whole processes (issue 20's measure): ``python -m facevox landmarks``
  against a PyAV-only process, wall and CPU time (the machine is shared: CPU time
  is the steadier of the two);
* the cost of each call (shape predictor: facevox.extract.shape_model and dlib's own;
  detector on the shrunk frame, verification region, full resolution);
* accuracy: mean landmark distance to per-frame full-resolution detection, in %
  of the inter-ocular distance, for facevox's tracker and for a naive tracker
  that hands the predictor the previous landmarks' bounding box.  The reference is
  plain dlib: its detector and its own predictor on every frame.

The process is pinned to one core (sched_setaffinity) and every library to one thread.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The environment before this module pins every library to one thread (for child processes
#: that should get the usual one: bench_suite's Snakemake runs).
ORIGINAL_ENV = dict(os.environ)
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from facevox.dataset.demo import feat_media_dir  # noqa: E402
from facevox.extract import face_tracker, landmarks  # noqa: E402
from facevox.media import iter_gray_frames  # noqa: E402


def best_of(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` runs of fn()."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def pyav_decode(path) -> int:
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "SLICE"
        s.codec_context.thread_count = 1
        for _ in c.decode(s):
            n += 1
    return n


def opencv_decode(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab() and cap.retrieve()[0]:
        n += 1
    return n


#: The decode-only process: PyAV as the stage decodes (one slice thread), nothing else imported.
DECODE_ONLY = """import sys, av
with av.open(sys.argv[1]) as c:
    s = c.streams.video[0]
    s.thread_type = "SLICE"
    s.codec_context.thread_count = 1
    n = sum(1 for _ in c.decode(s))
print(n)
"""


def run_process(cmd: list[str], core: int, env: dict | None = None) -> tuple[float, float]:
    """(wall s, CPU s: user + system) of one child process pinned to ``core``."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    _, err = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"{cmd[:4]} failed: {err.decode()[-2000:]}")
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = r.ru_utime + r.ru_stime - run_process.cpu_so_far
    run_process.cpu_so_far = r.ru_utime + r.ru_stime
    return wall, cpu


run_process.cpu_so_far = 0.0


def process_ratio(video, repeats: int, params: dict | None = None) -> dict:
    """The landmark stage against decode-only as whole processes (interpreter, imports,
    model loads, Parquet write included), each pinned to the same core, taking turns
    ``repeats`` times (after one untimed round: file cache, numba cache).  Returns the
    medians {"decode_wall", "decode_cpu", "stage_wall", "stage_cpu"} in seconds and the
    ratios stage / decode-only in frames/s ("ratio_wall", "ratio_cpu")."""
    core = sorted(os.sched_getaffinity(0))[0]
    # the children import the facevox this process imported (not another installed copy)
    src = str(Path(landmarks.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    run_process.cpu_so_far = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
    with tempfile.TemporaryDirectory() as tmp:
        stage = [sys.executable, "-m", "facevox", "landmarks", str(video), str(Path(tmp) / "lm.parquet")]
        if params:
            stage += ["--params", json.dumps(params)]
        decode = [sys.executable, "-c", DECODE_ONLY, str(video)]
        times = {"decode": [], "stage": []}
        for i in range(repeats + 1):
            for name, cmd in (("decode", decode), ("stage", stage)):
                wall, cpu = run_process(cmd, core, env)
                if i:
                    times[name].append((wall, cpu))
    out = {}
    for name, v in times.items():
        out[f"{name}_wall"] = statistics.median(w for w, _ in v)
        out[f"{name}_cpu"] = statistics.median(c for _, c in v)
    out["ratio_wall"] = out["decode_wall"] / out["stage_wall"]
    out["ratio_cpu"] = out["decode_cpu"] / out["stage_cpu"]
    return out


def per_call_ms(fn, n: int = 200) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1000


def accuracy(path, tracker_params=None, naive: bool = False) -> tuple[float, float]:
    """Mean and 95th percentile landmark error (% of IOD) against per-frame full-res detection."""
    original = landmarks.canonical_box
    if naive:
        landmarks.canonical_box = lambda p, _=None: (p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max())
    try:
        tracker = landmarks.FaceTracker(tracker_params)
        errors = []
        for frame in iter_gray_frames(path):
            face = tracker.step(frame.image)
            ref = landmarks.reference_points(tracker, frame.image)
            if face is None or ref is None:
                continue
            errors.append(np.linalg.norm(face.points - ref, axis=1).mean() / landmarks.inter_ocular(ref))
    finally:
        landmarks.canonical_box = original
    return 100 * float(np.mean(errors)), 100 * float(np.percentile(errors, 95))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", nargs="?", default=str(feat_media_dir() / "WolfgangLanger_Pexels.mp4"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "landmarks.md"))
    ap.add_argument("--process-video", default=None,
                    help="the file for the whole-process rows (default: VIDEO), e.g. a 94-s loop of it")
    ap.add_argument("--processes", action="store_true",
                    help="only the whole-process comparison (process_ratio), printed as one line")
    a = ap.parse_args(argv)
    if a.processes:
        r = process_ratio(a.video, a.repeats)
        print(f"{Path(a.video).name}: decode-only {r['decode_wall']:.2f} s wall / {r['decode_cpu']:.2f} s CPU, "
              f"landmark stage {r['stage_wall']:.2f} s / {r['stage_cpu']:.2f} s: ratio {r['ratio_wall']:.3f}x wall, "
              f"{r['ratio_cpu']:.3f}x CPU (median of {a.repeats}, load {os.getloadavg()[0]:.1f})")
        return 0

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cv2.setNumThreads(1)
    load_before = "/".join(f"{x:.1f}" for x in os.getloadavg())
    video = Path(a.video)
    n = pyav_decode(video)
    face_tracker.dlib_predictor()  # load once, outside the timings (~1 s)

    t_pyav = best_of(lambda: pyav_decode(video), a.repeats)
    t_cv = best_of(lambda: opencv_decode(video), a.repeats)
    landmarks.FaceTracker()  # compile / load the numba predictor outside the timings
    with tempfile.TemporaryDirectory() as tmp:
        t_stage = best_of(lambda: landmarks.run(video, Path(tmp) / "lm.parquet"), a.repeats)
        t_stage_dlib = best_of(lambda: landmarks.run(video, Path(tmp) / "lm.parquet", {"predictor": "dlib"}),
                               a.repeats)
    df = landmarks.extract(video)

    tracker = landmarks.FaceTracker()
    gray = np.ascontiguousarray(next(iter(iter_gray_frames(video))).image)
    face = tracker.step(gray)
    ds = tracker.detection_scale(gray.shape)
    small = cv2.resize(gray, None, fx=ds.scale, fy=ds.scale,
                       interpolation=cv2.INTER_AREA if ds.scale < 1 else cv2.INTER_LINEAR)
    calls = {
        "shape predictor, facevox fast path (no memo: every leaf read)":
            per_call_ms(lambda: tracker.fast_predictor(gray, face.box)),
        "shape predictor, facevox exact path (dlib's float32 arithmetic)":
            per_call_ms(lambda: tracker.fast_predictor.exact(gray, face.box)),
        "shape predictor, dlib's own": per_call_ms(lambda: tracker.dlib_predict(gray, face.box)),
        f"detector, frame x{ds.scale:.3g}": per_call_ms(lambda: tracker.detector.run(small, 0, 0.0), 50),
        "detector, verification region": per_call_ms(lambda: tracker.verify(gray, face.box), 50),
        "detector, full resolution": per_call_ms(lambda: tracker.detector.run(gray, 0, 0.0), 20),
    }
    proc_video = Path(a.process_video or video)
    proc = process_ratio(proc_video, a.repeats)
    ours = accuracy(video)
    ours_dlib = accuracy(video, {"predictor": "dlib"})
    naive = accuracy(video, naive=True)

    fps = {"PyAV decode-only": n / t_pyav, "OpenCV decode-only": n / t_cv, "landmark stage": n / t_stage,
           "landmark stage, predictor: dlib": n / t_stage_dlib}
    ratio = fps["landmark stage"] / fps["PyAV decode-only"]
    p = tracker.p
    lines = [
        "# Landmark stage vs decode-only",
        "",
        f"Video: `{video.name}`, {n} frames, {gray.shape[1]}x{gray.shape[0]}; one core, one thread; "
        f"median of {a.repeats} runs.",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
        f"Python {platform.python_version()}, {platform.platform()}; load average before "
        f"{load_before}, after {'/'.join(f'{x:.1f}' for x in os.getloadavg())}.",
        f"Settings: detection scale {ds.scale:.3g} (detect_scale={p['detect_scale']}, min_face_px="
        f"{p['min_face_px']}, min_face_fraction={p['min_face_fraction']}: faces >= {ds.min_face_px:g} px), "
        f"upsample={p['upsample']}, "
        f"redetect_every={p['redetect_every']}, verify_every={p['verify_every']}.",
        "",
        "| what | frames/s |",
        "|---|---:|",
        *[f"| {k} | {v:.0f} |" for k, v in fps.items()],
        f"| **ratio landmark stage / PyAV decode-only** | **{ratio:.2f}x** |",
        "",
        f"Whole processes on `{proc_video.name}` ({pyav_decode(proc_video)} frames; `python -m facevox landmarks` "
        "against a PyAV decode-only process: interpreter, imports, model loads and Parquet write included), "
        f"pinned to one core, taking turns, median of {a.repeats}:",
        "",
        "| process | wall s | CPU s |",
        "|---|---:|---:|",
        f"| PyAV decode-only | {proc['decode_wall']:.2f} | {proc['decode_cpu']:.2f} |",
        f"| landmark stage | {proc['stage_wall']:.2f} | {proc['stage_cpu']:.2f} |",
        f"| **ratio (frames/s) stage / decode-only** | **{proc['ratio_wall']:.2f}x** | **{proc['ratio_cpu']:.2f}x** |",
        "",
        f"Face found in {100 * df['success'].mean():.1f} % of frames; detector ran (full frame or "
        f"verification region) on {100 * df['detected'].mean():.1f} % of frames.",
        "",
        "| call | ms per call |",
        "|---|---:|",
        *[f"| {k} | {v:.2f} |" for k, v in calls.items()],
        "",
        "| tracker | mean error, % IOD | 95th pct, % IOD |",
        "|---|---:|---:|",
        f"| facevox (canonical detector-convention box) | {ours[0]:.2f} | {ours[1]:.2f} |",
        f"| facevox, predictor: dlib | {ours_dlib[0]:.2f} | {ours_dlib[1]:.2f} |",
        f"| naive (previous landmarks' bounding box) | {naive[0]:.2f} | {naive[1]:.2f} |",
        "",
        "Error: mean distance over the 68 points to landmarks from per-frame full-resolution "
        "detection with the detector's own box, divided by that frame's inter-ocular distance.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
