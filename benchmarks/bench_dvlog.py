"""A D-Vlog-size synthetic study, step by step: wall time and peak memory of each (issue 20, item 5).

    python benchmarks/bench_dvlog.py [--n 961] [--min-t 60] [--max-t 600] [--workdir DIR]
                                     [--device cpu] [--out benchmarks/results/dvlog_synthetic.md]

``--n`` fake D-Vlog videos of 1 Hz features (benchmarks/make_fake_dvlog.py; 961 gives
D-Vlog's folds 647 / 102 / 212), then the workflow's own commands, each in a child process
of its own so that its peak resident memory is its own (``os.wait4``'s ``ru_maxrss``), in
the working folder as Snakemake would run them from the project root:

0. setup: ``python benchmarks/make_fake_dvlog.py DVLOG --n N``;
1. rule import_dvlog: ``python -m facevox import-dvlog DVLOG results/align
   results/imported/samples.tsv --params <dvlog section> --summary results/imported/import.json``;
2. rule shards: ``python -m facevox shards results/imported/samples.tsv results/align
   results/shards/<feature_set> --params <shards section>``;
3. rule train, for stst (protocol slices: the shard set) and jamfn (protocol whole:
   results/align): ``python -m facevox train MODEL DATA results/models/MODEL/seed0.ckpt
   --seed 0 --sheet results/imported/samples.tsv --threads T --params <job settings>``.

The ``--params`` JSON is what the rules pass: config.yaml with config/paper/dvlog.yaml laid
over it (Snakemake's merge), ``source: dvlog``, the schema's defaults filled in
(facevox.config.check_workflow_config), then ``stage_json`` / ``job_settings`` as in
workflow/rules/common.smk; the only changes are ``models.overrides.<model>.epochs: 1``
and ``models.device`` (``--device``, default cpu). Every model keeps its paper settings
otherwise (batch size, optimiser, sizes). Like Snakemake, each job gets
OMP/OPENBLAS/MKL_NUM_THREADS = its threads (1 for import and shards, ``models.threads``
for training). Items/s of a training: the epoch's items (slices or videos: the
checkpoint's history) over the epoch's training seconds (the dev evaluation after it is
in the job's wall time, not in that rate).

Run it on an otherwise idle machine. JAMFN's LSTMs run on packed sequences
(facevox.models.masking.run_lstm), which on the CPU is a loop over time steps with about
10^5 small ops a batch (the backward's ``aten::fill_`` alone 70 % of the time, pytorch/pytorch#149194).
With 2 threads, any other busy process stalls every op: one epoch at n = 40 took 32 s idle
but 447 s beside another benchmark (~15 min idle at n = 961, 21 batches of ~44 s).

Writes ``--out`` (Markdown: rows "measurement | measured | target | met", no targets) and
keeps the working folder only when ``--workdir`` is given. ``bench_dvlog(n, work)`` is the
entry of bench_suite.py (item 6).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SRC = REPO / "src"
sys.path.insert(0, str(HERE))
from bench_rows import Row, load_average  # noqa: E402

if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

MODELS = ("stst", "jamfn")
SHEET = "results/imported/samples.tsv"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")


@dataclass
class Step:
    name: str
    command: list[str]
    wall_s: float
    cpu_s: float
    peak_mib: float


def log(msg: str) -> None:
    print(f"[bench_dvlog {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the workflow's settings

def _merge(base: dict, over: dict) -> dict:
    """Snakemake's config overlay: nested mappings merged, everything else replaced."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def workflow_config(dvlog_root: Path, device: str = "cpu", models: tuple[str, ...] = MODELS) -> dict:
    """``snakemake --configfile config.yaml config/paper/dvlog.yaml --config dvlog_root=...`` with
    ``models`` (stst and jamfn) at one epoch, as the Snakefile sees it (defaults filled, checked)."""
    import yaml

    from facevox.config import check_workflow_config
    from facevox.models import check_overrides

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config = _merge(config, yaml.safe_load((REPO / "config" / "paper" / "dvlog.yaml").read_text()))
    config = _merge(config, {"source": "dvlog", "dvlog_root": str(dvlog_root),
                             "models": {"run": list(models), "seeds": [0], "device": device,
                                        "overrides": {m: {"epochs": 1} for m in models}}})
    check_workflow_config(config, [REPO / "config.yaml", REPO / "config" / "paper" / "dvlog.yaml"])
    check_overrides(config["models"]["overrides"])
    return config


def stage_json(config: dict, section: str) -> str:
    return json.dumps(config[section], sort_keys=True)  # workflow/rules/common.smk: stage_json


def train_command(config: dict, model: str, python: str) -> tuple[list[str], str]:
    """The train rule's command for (model, seed 0) and the model file it writes."""
    from facevox.models.families import family, job_settings

    models = config["models"]
    fam = family(model, models)
    data = {"shards": f"results/shards/{config['shards']['feature_set']}", "align": "results/align"}[fam.data]
    out = f"results/models/{model}/seed0.ckpt"
    params = json.dumps(job_settings(model, models), sort_keys=True)  # common.smk: model_json
    return ([python, "-m", "facevox", "train", model, data, out, "--seed", "0", "--sheet", SHEET,
             "--threads", str(models["threads"]), "--params", params], out)


# ---------------------------------------------------------------- measuring a child

def child_env(threads: int) -> dict:
    """The job's environment as Snakemake's shell would give it: the repo's src first on
    PYTHONPATH (Snakefile's shell.prefix), the thread variables set to the job's threads."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    env["HF_HUB_OFFLINE"] = "1"
    env.update(dict.fromkeys(THREAD_VARS, str(threads)))
    return env


#: Runs argv[2:], then writes {"rc", "wall_s", "cpu_s", "peak_mib"} of that process to argv[1]. A child
#: of this process would start with its peak RSS (exec keeps the pre-exec high-water mark of the
#: forked copy: a big parent - bench_suite's, with torch - would show in every step), a child of
#: this small launcher starts from the launcher's ~10 MiB.
LAUNCHER = """import json, os, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[2:])
_, status, u = os.wait4(p.pid, 0)
wall = time.perf_counter() - t0
with open(sys.argv[1], "w") as fh:
    json.dump({"rc": os.waitstatus_to_exitcode(status), "wall_s": wall, "cpu_s": u.ru_utime + u.ru_stime,
               "peak_mib": u.ru_maxrss / 1024}, fh)
"""


def measure(name: str, command: list[str], cwd: Path, threads: int, log_path: Path) -> Step:
    """Run ``command`` (stdout and stderr to ``log_path``) through :data:`LAUNCHER`: its wall
    time, user + system CPU time and peak RSS (``os.wait4``: the process and the children it waited for)."""
    log(f"{name}: {shlex.join(command[:6])}{' ...' if len(command) > 6 else ''}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result = log_path.with_suffix(".rusage.json")
    with log_path.open("w") as fh:
        subprocess.run([sys.executable, "-c", LAUNCHER, str(result), *command], cwd=cwd, env=child_env(threads),
                       stdout=fh, stderr=subprocess.STDOUT, check=True)
    r = json.loads(result.read_text())
    if r["rc"]:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-20:])
        raise RuntimeError(f"{name} failed (exit {r['rc']}): {shlex.join(command)}\n{tail}")
    step = Step(name, command, r["wall_s"], r["cpu_s"], r["peak_mib"])
    log(f"{name}: {step.wall_s:.1f} s wall, {step.cpu_s:.1f} s CPU, peak {step.peak_mib:.0f} MiB")
    return step


def training_figures(ckpt: Path) -> dict:
    """Items, epoch seconds and items/s of the (one) epoch, from the model file's history."""
    import torch

    payload = torch.load(ckpt, map_location="cpu", weights_only=False)
    epoch = payload["history"][-1]
    items = round(epoch["items_per_s"] * epoch["seconds"])
    return {"items": items, "epoch_s": epoch["seconds"], "items_per_s": epoch["items_per_s"],
            "train_s": payload["train_seconds"], "device": payload["device"],
            "n_parameters": payload["n_parameters"], "batch_size": payload["training"]["batch_size"],
            "protocol": payload["training"]["protocol"]}


# ---------------------------------------------------------------- the benchmark

def bench_dvlog(n: int, work: Path, min_t: int = 60, max_t: int = 600, device: str = "cpu",
                models: tuple[str, ...] = MODELS, python: str = sys.executable) -> tuple[list[Row], list[str]]:
    """Fake D-Vlog tree of ``n`` videos -> import -> shards -> one epoch of each of ``models``
    (default stst and jamfn), in ``work``; rows (no targets) and detail lines for bench_suite's report."""
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    root = work / "dvlog"
    logs = work / "results" / "logs"
    config = workflow_config(root, device, tuple(models))
    steps: dict[str, Step] = {}

    steps["setup"] = measure("setup: fake D-Vlog tree",
                             [python, str(HERE / "make_fake_dvlog.py"), str(root), "--n", str(n),
                              "--min-t", str(min_t), "--max-t", str(max_t)], work, 1, logs / "make_fake_dvlog.log")
    steps["import"] = measure("import_dvlog",
                              [python, "-m", "facevox", "import-dvlog", str(root), "results/align", SHEET,
                               "--params", stage_json(config, "dvlog"), "--summary",
                               "results/imported/import.json"], work, 1, logs / "import_dvlog.log")
    shards = f"results/shards/{config['shards']['feature_set']}"
    (work / shards).parent.mkdir(parents=True, exist_ok=True)
    steps["shards"] = measure("shards", [python, "-m", "facevox", "shards", SHEET, "results/align", shards,
                                         "--params", stage_json(config, "shards")], work, 1, logs / "shards.log")
    manifest = json.loads((work / shards / "manifest.json").read_text())
    figures = {}
    for model in models:
        command, ckpt = train_command(config, model, python)
        (work / ckpt).parent.mkdir(parents=True, exist_ok=True)
        steps[model] = measure(f"train {model}", command, work, config["models"]["threads"],
                               logs / "train" / model / "seed0.log")
        figures[model] = training_figures(work / ckpt)

    rows = [
        Row(f"D-Vlog synthetic ({n} videos): setup, fake tree", _step_text(steps["setup"]), "-", None),
        Row(f"D-Vlog synthetic ({n} videos): import_dvlog", _step_text(steps["import"]), "-", None),
        Row(f"D-Vlog synthetic ({n} videos): shards", _step_text(steps["shards"]), "-", None),
    ]
    for model in models:
        f = figures[model]
        unit = "slices" if f["protocol"] == "slices" else "videos"
        rows.append(Row(f"D-Vlog synthetic ({n} videos): one epoch of `{model}` ({f['device']}, "
                        f"protocol {f['protocol']}, batch {f['batch_size']})",
                        f"{_step_text(steps[model])}; {f['items']} {unit} in {f['epoch_s']:.1f} s = "
                        f"{f['items_per_s']:.1f} {unit}/s", "-", None))
    pipeline = sum(steps[k].wall_s for k in ("import", "shards", *models))
    rows.append(Row(f"D-Vlog synthetic ({n} videos): import -> shards -> one epoch of {', '.join(models)}, wall",
                    f"{pipeline:.1f} s", "-", None))
    split_text = ", ".join(f"{k} {v['slices']} slices / {v['videos']} videos"
                           for k, v in manifest["splits"].items())
    details = [
        f"D-Vlog synthetic study: {n} fake videos (benchmarks/make_fake_dvlog.py, T uniform in "
        f"{min_t}-{max_t} rows at 1 Hz), the workflow's commands (import_dvlog, shards, train) with the "
        f"config/paper/dvlog.yaml settings, each a child process measured alone (wall, user+system CPU, "
        f"peak RSS from os.wait4); shards: {split_text}.",
        "Training: paper settings but epochs 1, seed 0, models.device "
        f"{config['models']['device']}, {config['models']['threads']} threads; the job's wall time holds "
        "interpreter start, imports, data loading, the epoch and the dev evaluation: "
        + "; ".join(f"{m} job {steps[m].wall_s:.1f} s, train() {figures[m]['train_s']:.1f} s, epoch "
                    f"{figures[m]['epoch_s']:.1f} s, {figures[m]['n_parameters']:,} parameters" for m in models)
        + ".",
    ]
    return rows, details


def _step_text(step: Step) -> str:
    return f"{step.wall_s:.1f} s wall ({step.cpu_s:.1f} s CPU), peak {step.peak_mib:.0f} MiB"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=961, help="fake videos (default 961: D-Vlog's folds)")
    ap.add_argument("--min-t", type=int, default=60, help="shortest video, rows (default 60)")
    ap.add_argument("--max-t", type=int, default=600, help="longest video, rows (default 600)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "auto", "cuda"], help="models.device (default cpu)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated (default stst,jamfn)")
    ap.add_argument("--workdir", type=Path, help="working folder, kept (default: a temporary one, removed)")
    ap.add_argument("--out", default=str(HERE / "results" / "dvlog_synthetic.md"), help="Markdown file ('' for none)")
    a = ap.parse_args(argv)

    started, load_before = time.perf_counter(), load_average()
    with tempfile.TemporaryDirectory(prefix="facevox-bench-dvlog-") as tmp:
        work = a.workdir or Path(tmp)
        models = tuple(m for m in a.models.split(",") if m)
        rows, details = bench_dvlog(a.n, work, a.min_t, a.max_t, a.device, models)
    minutes = (time.perf_counter() - started) / 60
    import bench_suite  # after the run: it loads torch and pins this process's threads

    lines = [
        "# D-Vlog-size synthetic study (issue 20, item 5)", "",
        f"`python benchmarks/bench_dvlog.py --n {a.n} --min-t {a.min_t} --max-t {a.max_t} --device {a.device} "
        f"--models {a.models}`: "
        f"{minutes:.1f} min, load average (1/5/15 min) {load_before} before, {load_average()} after.", "",
        *bench_suite.machine_lines(), "",
        "| measurement | measured | target | met |", "|---|---:|---|---|",
        *[r.markdown() for r in rows], "",
        *[f"- {d}" for d in details],
    ]
    text = "\n".join(lines).rstrip() + "\n"
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
