"""The whole per-video chain against its floor (part 1b of ``make bench``).

    python benchmarks/bench_suite.py --only chain [--repeats 3]

``python -m facevox extract`` (every per-video stage in one process, mediapipe AU backend) on a
94-s 640x360 clip with an espeak-ng speech track, against the chain's floor on the same file:
``benchmarks/landmarker_floor.py``, a process that decodes every frame with PyAV and hands it to
MediaPipe's FaceLandmarker with facevox's model bundle and options, and nothing else.  Both
whole processes (interpreter, imports, model loads included), pinned to the same core, CPU time
(user + system), taking turns: one untimed round, then ``--repeats`` rounds; the ratio is the
median of the rounds' own ratios.  Target (issue 29): chain <= 1.35x its floor.  Beside it the
chain in times real time (video seconds / CPU seconds), no target.  Where the time beyond the
floor goes: one more chain run, instrumented (benchmarks/chain_shares.py), its CPU time by part.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import bench_landmarks
from bench_rows import Row
from suite_tools import HERE, REPO, SUBPROCESS_ENV, long_landmark_video, make_speech

#: Issue 29's target: the chain's CPU time over its floor's.
CHAIN_TARGET = 1.35


def chain_video(work: Path) -> tuple[Path, float]:
    """The 94-s 640x360 clip with 94 s of espeak-ng speech as its AAC track; (path, duration s)."""
    out = work / "chain_94s.mp4"
    if not out.exists():
        (work / "chain_speech").mkdir(exist_ok=True)
        speech = make_speech(work / "chain_speech", 94)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(long_landmark_video(work)), "-i", str(speech),
                        "-map", "0:v", "-map", "1:a", "-c", "copy", "-t", "94", str(out)], check=True,
                       capture_output=True)
    import av

    with av.open(str(out)) as c:
        s = c.streams.video[0]
        duration = float(s.duration * s.time_base)
    return out, duration


def commands(video: Path, work: Path) -> tuple[dict[str, list[str]], dict]:
    """The command lines of the chain, its floor and the instrumented chain (chain_shares.py),
    and their environment."""
    from facevox.extract import au_mediapipe_install

    config = work / "chain_config.yaml"
    config.write_text("action_units:\n  backend: mediapipe\n")
    env = {**SUBPROCESS_ENV, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    return {"chain": [sys.executable, "-m", "facevox", "extract", str(video), "--out", str(work / "chain"),
                      "--quiet", "--config", str(config)],
            "floor": [sys.executable, str(HERE / "landmarker_floor.py"), str(video),
                      str(au_mediapipe_install.model_path())],
            "shares": [sys.executable, str(HERE / "chain_shares.py"), str(video), str(config),
                       str(work / "chain_shares"), str(work / "chain_shares.json")]}, env


def chain_vs_floor(video: Path, work: Path, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """(wall s, CPU s) of each round's chain and floor process, pinned to one core, taking turns,
    after one untimed round (the floor's frame count checked against the decoder's there)."""
    cmds, env = commands(video, work)
    core = sorted(os.sched_getaffinity(0))[0]
    frames = subprocess.run(cmds["floor"], capture_output=True, text=True, env=env, check=True).stdout.split()
    if int(frames[0]) != bench_landmarks.pyav_decode(video):
        raise RuntimeError(f"the floor process saw {frames[0]} frames of {video}")
    bench_landmarks.run_process.cpu_so_far = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
    bench_landmarks.run_process(cmds["chain"], core, env)
    times = {"chain": [], "floor": []}
    for _ in range(repeats):
        for name in ("chain", "floor"):
            times[name].append(bench_landmarks.run_process(cmds[name], core, env))
    return times


def chain_shares(video: Path, work: Path) -> dict[str, float]:
    """CPU s by part of one instrumented chain run (benchmarks/chain_shares.py), pinned to one core."""
    cmds, env = commands(video, work)
    bench_landmarks.run_process(cmds["shares"], sorted(os.sched_getaffinity(0))[0], env)
    return json.loads((work / "chain_shares.json").read_text())


def bench_chain(repeats: int, work: Path) -> tuple[list[Row], list[str], list[str]]:
    from facevox.extract import au_mediapipe_install

    what = "per-video chain (`facevox extract`, mediapipe AUs, one core, CPU time) / its floor"
    if not au_mediapipe_install.available():
        return [Row(what, "not run", f"<= {CHAIN_TARGET:.2f}x", None)], [
            f"Chain: not measured ({au_mediapipe_install.unavailable_reason()})."], []
    video, duration = chain_video(work)
    n = bench_landmarks.pyav_decode(video)
    times = chain_vs_floor(video, work, repeats)
    ratios = [c[1] / f[1] for c, f in zip(times["chain"], times["floor"])]
    ratio = statistics.median(ratios)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
    (chain_wall, chain_cpu), (floor_wall, floor_cpu) = med["chain"], med["floor"]
    shares = chain_shares(video, work)
    rows = [
        Row(f"{what}: PyAV decode + MediaPipe's FaceLandmarker alone on the same frames "
            f"(benchmarks/landmarker_floor.py, whole processes, same core; {chain_cpu:.1f} s / {floor_cpu:.1f} s, "
            f"wall {chain_wall / floor_wall:.2f}x; median of {repeats} rounds' ratios)", f"{ratio:.2f}x",
            f"<= {CHAIN_TARGET:.2f}x", ratio <= CHAIN_TARGET),
        Row(f"whole per-video chain (`facevox extract`, mediapipe AUs, one process, one core, CPU time; wall "
            f"{duration / chain_wall:.2f}x), 640x360 ~24 fps, times real time", f"{duration / chain_cpu:.2f}x",
            "-", None),
    ]
    details = [f"Chain: `{video.name}` ({n} frames, {duration:.1f} s, speech track), `python -m facevox extract` "
               f"and its floor pinned to one core, taking turns, median of {repeats}: chain {chain_wall:.2f} s wall "
               f"/ {chain_cpu:.2f} s CPU = {n / chain_cpu:.0f} frames/s per core; floor {floor_wall:.2f} s / "
               f"{floor_cpu:.2f} s; the rounds' ratios (CPU) " + ", ".join(f"{r:.3f}" for r in ratios) + "."]
    return rows, details, shares_lines(shares, chain_cpu, floor_cpu, n)


def shares_lines(s: dict[str, float], chain_cpu: float, floor_cpu: float, n: int) -> list[str]:
    """The "beyond the floor" note: the instrumented run's CPU time by part."""
    g = s.get
    track_rest = g("track", 0) - g("predictor", 0) - g("hog", 0) - g("descriptors", 0)
    listed = ("start", "decode", "landmarker", "detector", "session_own", "track", "egemaps", "probe", "tables")
    rest = g("total", 0) - sum(g(k, 0) for k in listed)
    beyond = [
        ("dlib landmarks and identity (`landmarks.Track.add`)", g("track", 0)),
        ("of it: shape predictor (`FaceTracker.predict`)", g("predictor", 0)),
        ("of it: HOG detector (`FaceTracker.detect_all`, `verify`)", g("hog", 0)),
        ("of it: identity descriptors (`identity.descriptor`)", g("descriptors", 0)),
        ("of it: the rest of the tracking", track_rest),
        ("eGeMAPS stage (`egemaps.run`: audio decode, opensmile, table)", g("egemaps", 0)),
        ("MediaPipe's face detector, the confidence (`FaceDetector.detect_for_video`)", g("detector", 0)),
        ("the AU session's own work per frame (mask, MediaPipe image, result conversion)", g("session_own", 0)),
        ("interpreter start and imports (`facevox.cli`, the stages, mediapipe)", g("start", 0)),
        ("the tables (landmarks, align, action_units, fau_windows, qa) and probe", g("tables", 0) + g("probe", 0)),
        ("the rest (model loads, tasks' set-up, pose and gaze, results)", rest),
    ]
    lines = ["### Per-video chain beyond its floor", "",
             f"Median CPU time: chain {chain_cpu:.1f} s, floor {floor_cpu:.1f} s: {chain_cpu - floor_cpu:.1f} s beyond "
             f"it. One instrumented chain run (benchmarks/chain_shares.py, {g('total', 0):.1f} s of CPU): the "
             f"floor's own work in it, MediaPipe's FaceLandmarker {g('landmarker', 0):.1f} s "
             f"({1000 * g('landmarker', 0) / n:.2f} ms a frame) and PyAV decoding (grey + RGB) {g('decode', 0):.1f} s; "
             "beyond it:", "", "| part | CPU s | share of the chain |", "|---|---:|---:|"]
    lines += [f"| {name} | {sec:.2f} | {100 * sec / g('total', 1):.1f} % |" for name, sec in beyond]
    return lines + [""]


def main(argv=None) -> int:
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", help="folder for the clip and outputs (default: a temporary one)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="facevox-bench-chain-") as tmp:
        rows, details, notes = bench_chain(a.repeats, Path(a.work or tmp))
    print("\n".join([r.markdown() for r in rows] + [""] + details + [""] + notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
