"""The report subcommands of the ``facevox`` command line: ``tables``, ``plots``,
``qa-plot``, ``run-card``, and the report pages ``study-page``, ``video-page``,
``model-page``, ``timeline`` and ``run-card-page`` (what workflow/rules/report.smk calls).

facevox.cli calls :func:`register` with its subparsers and its ``command`` helper.

Tests: tests/test_report.py (the CLI entry), tests/test_tables.py
"""
from __future__ import annotations

import json
import logging

from facevox.errors import FacevoxError

log = logging.getLogger("facevox")


def _csv(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def cmd_tables(a):
    from facevox.report.table_files import write_tables
    from facevox.report.tables import sheet_subjects

    subjects = sheet_subjects(a.sheet) if a.sheet else None
    tables = write_tables(a.metrics, a.predictions, a.references, a.out_dir, tasks=_csv(a.tasks) or None,
                          split=a.split, order=_csv(a.order), resamples=a.resamples, seed=a.seed,
                          level=a.ci_level, reference=a.reference, subjects=subjects)
    for task, table in tables.items():
        log.info("tables %s: %d rows, %d reported columns, CI %s (over %ss) -> %s/%s.{csv,md,tex,html}", task,
                 len(table.rows), len(table.reported_columns), "yes" if table.has_ci else "no", table.unit,
                 a.out_dir, task)


def cmd_plots(a):
    from facevox.report.plots import model_plots

    written = model_plots(a.metrics, a.predictions, a.out_dir, split=a.split, select_by=a.select_by)
    log.info("plots: %s", ", ".join(str(p) for p in written))


def cmd_qa_plot(a):
    from facevox.report.plots import qa_plot

    log.info("qa-plot: %s", qa_plot(a.qa, a.out))


def cmd_run_card(a):
    from facevox.config import json_option
    from facevox.report.run_card import run_card

    if bool(a.qa) != bool(a.sheet):
        raise FacevoxError("run-card: --qa and --sheet go together (the QA table's unusable videos are judged by "
                           "the sheet's splits and labels)")
    try:
        study = json.loads(a.study_warnings_json or "[]")
    except json.JSONDecodeError as exc:
        raise FacevoxError(f"--study-warnings-json is not valid JSON ({exc})") from None
    card = run_card(a.out, json_option(a.config_json, "--config-json"), a.benchmarks, a.metrics or (), root=a.root,
                    study_warnings=study, inputs_tsv=a.inputs, qa_tsv=a.qa, sheet=a.sheet,
                    au_tables=a.au_tables or ())
    log.info("run-card %s: commit %s, config %s, %d stages, %.1f s of job time", a.out, card["git"]["commit"],
             card["config_sha256"][:12], len(card["stages"]), card["total_job_wall_seconds"])


def cmd_study_page(a):
    from facevox.config import json_option
    from facevox.report.study import study_page

    log.info("study-page: %s", study_page(a.sheet, a.out, json_option(a.config_json, "--config-json"), a.qa,
                                          a.metrics or ()))


def cmd_video_page(a):
    from facevox.report.videos import video_page

    log.info("video-page: %s", video_page(a.sheet, a.out, a.qa, a.probes or (), a.metrics or (),
                                          a.predictions or (), order=_csv(a.order)))


def cmd_model_page(a):
    from facevox.report.videos import model_page

    log.info("model-page: %s", model_page(a.model, a.out, a.metrics, a.predictions))


def cmd_timeline(a):
    from facevox.errors import ExcludedInput
    from facevox.report.timelines import excluded_placeholder, landmark_sheet, timeline_plot

    try:
        log.info("timeline: %s", timeline_plot(a.video_id, a.landmarks, a.action_units, a.egemaps, a.out))
        log.info("landmark sheet (%s): %s", "face crops" if a.faces else "neutral canvas",
                 landmark_sheet(a.video_id, a.landmarks, a.sheet_out, a.faces))
    except ExcludedInput as exc:  # an excluded video: its pictures say why
        for out in (a.out, a.sheet_out):
            excluded_placeholder(a.video_id, exc.record, out)
        log.warning("timeline %s: input excluded (%s): placeholders written", a.video_id, exc.record.get("problem"))


def cmd_run_card_page(a):
    from facevox.report.run_card import run_card_page

    log.info("run-card-page: %s", run_card_page(a.card, a.out))


def register(sub, command) -> None:
    """Add the report subcommands to ``sub`` (argparse subparsers) via facevox.cli's ``command``."""
    p = command("tables", cmd_tables, "metric tables per task (CSV, Markdown, LaTeX, HTML) with reported numbers "
                "and bootstrap CIs", "out_dir")
    p.add_argument("--metrics", nargs="+", required=True, help="metrics JSON files (one per model and seed)")
    p.add_argument("--predictions", nargs="*", default=[],
                   help="their prediction tables, in the same order (none: no bootstrap CI)")
    p.add_argument("--references", help="reported results YAML (resources/reference_results.yaml)")
    p.add_argument("--tasks", help="comma-separated tables to write (default: the tasks of the metrics files)")
    p.add_argument("--order", help="comma-separated model order of the rows (config models.run)")
    p.add_argument("--split", default="test")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap random seed")
    p.add_argument("--ci-level", type=float, default=0.95)
    p.add_argument("--reference", default="best",
                   help="row the paired comparisons are against: best, a model name or a row label")
    p.add_argument("--sheet", help="the sample sheet: its subject_id makes every bootstrap resample subjects "
                   "(default: videos)")

    p = command("plots", cmd_plots, "one model's plots over its seeds (confusion, ROC, scatter, "
                "training curves) -> PNG files in a folder", "out_dir")
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--predictions", nargs="+", required=True, help="in the order of --metrics")
    p.add_argument("--split", default="test")
    p.add_argument("--select-by", help="the classification dev metric (models.select_by), names the axis")

    command("qa-plot", cmd_qa_plot, "QA overview (face-found rate per video, audio status) -> PNG", "qa", "out")

    p = command("study-page", cmd_study_page, "report page: sample sheet, split composition, settings, "
                "exclusions -> HTML", "sheet", "out")
    p.add_argument("--config-json", required=True, help="the resolved configuration as JSON")
    p.add_argument("--qa", help="results/qa.tsv (source videos)")
    p.add_argument("--metrics", nargs="*", default=[], help="metrics JSON files (unpredicted videos)")

    p = command("video-page", cmd_video_page, "report page: one row per video (QA, probe, every model's "
                "prediction) -> HTML", "sheet", "out")
    p.add_argument("--qa", help="results/qa.tsv (source videos)")
    p.add_argument("--probes", nargs="*", default=[], help="results/probe/<video>.json files")
    p.add_argument("--metrics", nargs="*", default=[])
    p.add_argument("--predictions", nargs="*", default=[], help="in the order of --metrics")
    p.add_argument("--order", help="comma-separated model column order (config models.run)")

    p = command("model-page", cmd_model_page, "report page: one model's video-level predictions -> HTML",
                "model", "out")
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--predictions", nargs="+", required=True, help="in the order of --metrics")

    p = command("timeline", cmd_timeline, "report figures of one video: timeline PNG and landmark sheet PNG",
                "video_id", "out", "sheet_out")
    p.add_argument("--landmarks", required=True)
    p.add_argument("--action-units", required=True)
    p.add_argument("--egemaps", required=True)
    p.add_argument("--faces", help="results/faces/<video>.parquet: draw on the crops (keep_face_images only)")

    command("run-card-page", cmd_run_card_page, "report page: the run card JSON as HTML", "card", "out")

    p = command("run-card", cmd_run_card, "run card JSON: commit, config hash, versions, hardware, stage times",
                "out")
    p.add_argument("--config-json", required=True, help="the resolved configuration as JSON")
    p.add_argument("--benchmarks", default="results/benchmarks", help="folder of Snakemake benchmark TSVs")
    p.add_argument("--metrics", nargs="*", default=[], help="metrics JSON files (training device and time)")
    p.add_argument("--root", default=".", help="the git checkout whose commit to record")
    p.add_argument("--study-warnings-json", default="[]",
                   help="JSON list of the study's warnings found when the DAG was built (splits.study_warnings)")
    p.add_argument("--inputs", help="results/inputs.tsv: the excluded inputs and their reasons go into the card")
    p.add_argument("--qa", help="results/qa.tsv: with --sheet, the study warnings its unusable videos add")
    p.add_argument("--sheet", help="the sample sheet (with --qa)")
    p.add_argument("--au-tables", nargs="*", default=[],
                   help="the run's AU tables: the OpenFace model files they were made with go into the card")
