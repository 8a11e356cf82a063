"""Metric tables, the model: which rows and columns a table has and the numbers in them -
every model (and variant) x seed summarised per task family, with the papers' reported
numbers beside ours and a bootstrap interval for the headline metric (:func:`build_table`,
:func:`build_tables` from the files).  Their text - the exact cell strings, Markdown,
LaTeX, CSV, the HTML page - and the files ``write_tables`` writes: facevox.report.table_files.
Reading the inputs: facevox.report.table_inputs; the statistics under a row (fold means,
pooled out-of-fold predictions, the choice on dev, Holm): facevox.report.table_stats; the
built Row / Table and the text of the notes: facevox.report.table_rows.

Inputs: the metrics JSON of each (model, seed) (facevox.training.loop.evaluate writes
``results/metrics/<model>/seed<seed>.json``, under cross-validation
``results/metrics/<model>/fold<k>/seed<seed>.json``); its ``task`` key decides the table:

==============  ==========================================  ===================
task            columns (``splits.<split>`` keys)            headline (CI)
==============  ==========================================  ===================
classification  accuracy, precision / recall / F1 weighted,  f1_weighted
                F1 macro, AUC
regression      mae, rmse, pcc, ccc (BDI-II points)          rmse
continuous      ccc per dimension (``ccc: {dim: value}``)     every ccc_<dim>
==============  ==========================================  ===================

Rows: one per (model, variant), in the order of ``order`` (config ``models.run``), models
not in it after them by name, a model's base row before its variants (by label). A
metrics JSON may carry ``variant``: a label string, or the mapping of the overrides
that make the ablation, labelled by facevox.report.table_inputs.variant_label (sorted ``key=value`` pairs
joined by ", ", values as JSON except bare strings, e.g. ``kernel_sizes=[3, 5],
pos_encoding=sinusoidal``); without it the JSON is the model's base row. (Run-size
overrides such as ``epochs`` are deliberately not read from anywhere: they do not make
a variant, so the base row keeps its reported numbers.)

Cross-validation (the metrics JSONs carry ``fold``: 0 .. K-1, and ``cv``: ``scheme`` kfold /
loso, ``folds``, ``seed``, ``subjects``, ``test_subjects``; ``fold`` null or absent = the
fixed split; fold and fixed-split files in one table, folds of two cross-validations, or a
fold holding out other subjects in another file are errors naming the files):

* a cell is mean ± sd **over folds**, a fold's value being the mean over its seeds of its
  test metric; ``n`` = folds with a finite value; columns "Seeds" (seed numbers) and
  "Folds" (folds with a metrics file); "Videos" sums a seed's folds;
* "<headline> pooled OOF": per seed, every fold's prediction rows of the split concatenated
  (each video in exactly one fold's test split - else an error), the metric computed on
  that pooled table (the ``estimate`` of bootstrap_ci), the mean over seeds; the CI and the
  paired comparisons are computed on these pooled tables.  Only for the test split, with
  the prediction tables; a seed missing a fold is left out of the pooling (a note says so);
* the notes and the caption name the scheme, folds and subjects (``2-fold cross-validation
  grouped by subject (8 subjects, 2 folds; split seed 0)``, ``leave-one-subject-out
  cross-validation (12 folds = subjects)``); a "Per fold" table (Markdown, HTML) gives each
  row's headline metric per fold (seed mean) under the fold's name and held-out subject
  count; the CSV has ``<metric>_fold<k>``, ``fold<k>_test_subjects``, ``<metric>_pooled``,
  ``cv_scheme``, ``folds``, ``n_folds``.

Sweeps (metrics JSONs with ``sweep: true``: ``variant`` is the mapping of the swept values,
``select_by`` the dev metric - f1_weighted, f1_macro, accuracy, auc, loss, rmse, ccc_mean
(mean of ``splits.dev.ccc``); loss, rmse, mae: lower is better): one row per grid point,
column "Dev choice".  The chosen point is the best seed mean of ``select_by`` on the dev
split (ties to the earlier row); the test split is never used to choose.  Fixed split: that
row reads ``chosen on dev: <metric> <value>``, the others ``dev: <metric> <value>``.  Under
cross-validation the choice is made inside each fold on that fold's dev split; the row
``<Model> [chosen per fold on dev]`` (:data:`CHOSEN_PER_FOLD`) has each fold's values and
out-of-fold predictions of that fold's choice, the notes list every fold's choice, and the
grid rows read ``chosen in k/K folds``.  Only the chosen row stands for the model: the
other grid points are shown but never the reference and never in the paired comparisons.

Cells (exact format, made by facevox.report.table_files, also in every table's notes):

* ``mean ± sd (n=k)``: mean and sample standard deviation (ddof = 1) over the seeds
  whose value is finite; ``k`` is that number of seeds. One seed: ``mean ± – (n=1)`` (sd
  undefined); none: ``–``. NaN values (e.g. AUC of a split with one class, metrics of a
  split where no video was predicted) are left out, so ``n`` can be below the seed count
  (column "Seeds").
* Classification metrics in percent with 2 decimals (``70.70 ± 1.23 (n=3)``), AUC as a
  fraction with 3 decimals; regression MAE / RMSE in the labels' units with 2 decimals,
  PCC / CCC with 3; continuous CCC with 3.
* "Videos": videos predicted in the split (a range when seeds differ), plus the largest
  number a seed left unpredicted (no usable slice; not in the metrics). The notes name
  every unpredicted video with its reason, every slice, window or video left out (the
  metrics JSON's ``left_out``, any split) and the training ``warnings`` (CPU fallback of
  ``device: auto``, a small or undefined dev split); the CSV has ``unpredicted_videos``
  and ``left_out`` columns.
* CI: ``[low, high]`` of the bootstrap (facevox.report.bootstrap.bootstrap_ci: percentile,
  seed mean of the metric per resample, same draw for every seed), same units and decimals
  as the cell. Needs the prediction tables.  Unit: the **subject** when the sample sheet is
  given (``subjects``, :func:`sheet_subjects`: every video of a drawn subject drawn with
  it; a video without ``subject_id`` is its own subject), else the video; the notes and
  caption say which, with the number of subjects.
* Paired comparison (with the prediction tables, two rows or more): for each headline
  metric, ``Δ <metric> vs ref``: the row's seed mean minus the reference row's, over the
  seeds and videos the two share, with the interval of a paired bootstrap
  (facevox.report.bootstrap.paired_bootstrap: the same drawn videos for both rows),
  ``+1.23 [0.50, 2.10]`` in the cell's units (same unit as the CI); ``p``: its two-sided
  bootstrap p-value (3 decimals); ``p (Holm)``: p adjusted by Holm-Bonferroni
  (facevox.report.bootstrap.holm) over the family of all paired tests of the table (every
  compared row x headline metric; m, the number of finite p-values, is in the notes), CSV
  ``<metric>_diff_p_holm``; ``Sig.``: ``yes, better`` / ``yes, worse`` when ``p (Holm) <
  1 - level`` (better in the metric's direction, lower for MAE / RMSE) or ``no``; the
  interval is not adjusted.  The reference row reads ``reference``.  Which row is the
  reference (``reference``, config ``report.paired_reference``): ``best`` - the row with
  the best headline value (the seed mean; under cross-validation the pooled out-of-fold
  value; continuous: mean over the dimensions), ties to the earlier row - or a model name
  (its base row, for a swept model its chosen row; a row label such as ``STST
  [pos_encoding=sinusoidal]`` picks a variant).  A table without the named row falls back
  to ``best`` and says so in its notes; a name found in no table is an error.
* Reported: the number a paper published for the same model and variant, from
  ``resources/reference_results.yaml`` (paper + table in the "Source" column, the
  data set and split in the header). Reported values are only displayed, never used in
  any mean, sd or interval; their data set and protocol may differ from this run.

Reference YAML: facevox.report.table_inputs.load_references.

Tests: tests/test_tables.py, tests/test_tables_cv.py
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from facevox.errors import FacevoxError
from facevox.models.families import display_name, family
from facevox.report.bootstrap import LOWER_IS_BETTER, bootstrap_ci, paired_bootstrap
from facevox.report.table_inputs import (
    METRICS,
    TASKS,
    Metric,
    Reference,
    continuous_metric,
    load_references,
    read_metrics,
    split_values,
)
from facevox.report.table_rows import CHOSEN_PER_FOLD, DASH, Row, Table, headline_value, row_label
from facevox.report.table_stats import (
    LOWER_DEV,
    choose_on_dev,
    cv_design,
    dev_score,
    fold_means,
    holm_adjust,
    pooled_predictions,
    summarise,
)
from facevox.samples import read_samples, subjects_of

#: Headline metric(s) of a table: the bootstrap interval's metric (continuous: every dimension).
HEADLINE = {"classification": ("f1_weighted",), "regression": ("rmse",)}


def table_tasks(models: Iterable[str]) -> list[str]:
    """The tables a list of registry names produces, in TASKS order (no torch import)."""
    found = {family(m).table for m in models}
    return [t for t in TASKS if t in found]


# --------------------------------------------------------------------------- statistics
def _choose_reference(rows: list[Row], headline: list[str], reference: str) -> tuple[Row | None, str]:
    """The reference row (see the module docstring) and a note when ``reference`` is not in the table."""
    note = ""
    if reference != "best":
        for row in rows:
            if (row.model == reference and not row.variant) or row.label == reference:
                return row, ""
        for row in rows:  # a swept model (no base row): its row chosen on dev
            if row.model == reference and row.role == "chosen":
                return row, ""
        note = f"({reference} is not in this table: the best row is the reference.)"
    lower = headline[0].removeprefix("ccc_") in LOWER_IS_BETTER
    scored = []
    for i, row in enumerate(rows):
        if row.role == "grid":  # a sweep's grid point other than its choice is never the best row
            continue
        values = [headline_value(row, k) for k in headline if k in row.stats]
        values = [v for v in values if math.isfinite(v)]
        if values:
            scored.append(((1 if lower else -1) * float(np.mean(values)), i, row))
    return (min(scored, key=lambda x: x[:2])[2] if scored else None), note


def _row_key(order: list[str]):
    def key(row: Row):
        rank = 0 if not row.variant else 1 if row.variant == CHOSEN_PER_FOLD and row.role == "chosen" else 2
        return (order.index(row.model) if row.model in order else len(order), row.model, rank, row.variant)
    return key


def _make_row(model: str, variant: str, members: list, metrics: list[Metric], split: str, refs: list[Reference],
              cv: dict | None) -> Row:
    """One row from the (metrics record, prediction table) pairs of its seeds (and folds)."""
    keys = [(rec["fold"], rec["seed"]) for rec, _ in members]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        fold, seed = dup[0]
        paths = [rec["_path"] for rec, _ in members if (rec["fold"], rec["seed"]) in dup]
        raise FacevoxError(f"{model} [{variant or 'base'}]{'' if fold is None else f' fold {fold}'} seed {seed} has "
                           f"more than one metrics file: {', '.join(paths)}")
    values = [split_values(rec, split) for rec, _ in members]
    videos: dict[int, int] = {}
    unpredicted: dict[int, int] = {}
    for (rec, _), v in zip(members, values):  # per seed, summed over its folds
        if "n" in v:
            videos[rec["seed"]] = videos.get(rec["seed"], 0) + int(v["n"])
        part = rec["splits"].get(split) or {}
        unpredicted[rec["seed"]] = unpredicted.get(rec["seed"], 0) + len(part.get("unpredicted") or [])
    if cv is None:
        fold_values = {}
        stats = {m.key: summarise(v.get(m.key, math.nan) for v in values) for m in metrics}
    else:
        fold_values = {m.key: fold_means((rec["fold"], v.get(m.key, math.nan)) for (rec, _), v in zip(members, values))
                       for m in metrics}
        stats = {key: summarise(by_fold.values()) for key, by_fold in fold_values.items()}
    row = Row(model, variant, sorted({rec["seed"] for rec, _ in members}), videos=list(videos.values()),
              unpredicted=list(unpredicted.values()), stats=stats, n_parameters=members[0][0].get("n_parameters"),
              folds=sorted({rec["fold"] for rec, _ in members if rec["fold"] is not None}), fold_values=fold_values)
    for rec, _ in members:
        part = rec["splits"].get(split, {}) or {}
        reasons = part.get("unpredicted_reasons") or {}
        fold = "" if rec["fold"] is None else f"fold{rec['fold']}: "
        for vid in part.get("unpredicted") or []:
            row.unpredicted_videos.setdefault(vid, (reasons.get(vid, "no usable item"), []))[1].append(rec["seed"])
        for label, vids in (part.get("classes_unpredicted") or {}).items():
            lost = row.classes_lost.setdefault(label, [])
            lost += [v for v in vids if v not in lost]
        for entry in rec.get("left_out") or []:
            entry = entry if rec["fold"] is None else {**entry, "fold": rec["fold"]}
            if entry not in row.left_out:
                row.left_out.append(entry)
        for warning in rec.get("warnings") or []:
            seeds = row.warnings.setdefault(fold + warning, [])
            seeds += [rec["seed"]] if rec["seed"] not in seeds else []
    for ref in refs:
        if ref.model == model and ref.variant == variant:
            row.reported[(ref.metric, f"{ref.dataset} {ref.split}")] = ref.value
            row.sources += [ref.source] if ref.source not in row.sources else []
            row.notes += [ref.note] if ref.note and ref.note not in row.notes else []
    return row


def dev_text(task: str, select_by: str, value: float) -> str:
    """A development score in the table's units, e.g. ``F1 (weighted) 81.20``; ``loss 0.412``."""
    metric = next((m for m in METRICS.get(task, ()) if m.key == select_by), None)
    if not math.isfinite(value):
        return f"{metric.label if metric else select_by} {DASH}"
    if metric:
        return f"{metric.label} {value * metric.scale:.{metric.decimals}f}"
    return f"{select_by} {value:.3f}"


def _choose_sweeps(rows: list[Row], members_of: dict, task: str, cv: dict | None, make_row) -> list[str]:
    """Mark every sweep's grid rows and its choice on dev (see the module docstring); under
    cross-validation add the row of each fold's choice (``make_row(model, variant, members)``)
    to ``rows``.  Returns the notes that say how each sweep chose."""
    notes = []
    for model in dict.fromkeys(row.model for row in rows):
        grid = [row for row in rows if row.model == model and any(rec["sweep"] for rec, _ in members_of[id(row)])]
        if not grid:
            continue
        runs = [rec for row in grid for rec, _ in members_of[id(row)]]
        select = sorted({str(rec.get("select_by")) for rec in runs})
        if len(select) > 1:
            raise FacevoxError(f"sweep of {model}: its runs select by different dev metrics ({', '.join(select)}): "
                               + ", ".join(next(r["_path"] for r in runs if str(r.get("select_by")) == s)
                                           for s in select))
        select_by = select[0]
        for row in grid:
            row.role = "grid"
            row.dev = fold_means((rec["fold"], dev_score(rec, select_by)) for rec, _ in members_of[id(row)])
        folds = [None] if cv is None else list(range(cv["folds"]))
        choice = {f: choose_on_dev([row.dev.get(f, math.nan) for row in grid], select_by) for f in folds}
        how = (f"the best dev-split {select_by} (mean over seeds; "
               f"{'lower' if select_by in LOWER_DEV else 'higher'} is better; ties to the earlier row)")
        name = display_name(model)
        if cv is None:
            if choice[None] is not None:
                grid[choice[None]].role = "chosen"
            for row in grid:
                row.selection = ("chosen on dev: " if row.role == "chosen" else "dev: ") + \
                    dev_text(task, select_by, row.dev.get(None, math.nan))
            notes.append(f"Sweep of {name}: its rows are the points of its hyper-parameter grid; 'Dev choice' "
                         f"marks as chosen the one with {how}"
                         + ("" if choice[None] is not None else f" - none has a finite dev {select_by}, none is "
                            f"chosen") + ". The test split was not used to choose: its numbers are reported as they "
                         "are. Only the chosen row enters the paired comparisons.")
            continue
        for row in grid:
            row.selection = f"chosen in {sum(i is not None and grid[i] is row for i in choice.values())}/" \
                            f"{len(folds)} folds"
        members = [(rec, pred) for f, i in choice.items() if i is not None
                   for rec, pred in members_of[id(grid[i])] if rec["fold"] == f]
        if members:
            chosen = make_row(model, CHOSEN_PER_FOLD, members)
            chosen.role, chosen.selection = "chosen", "chosen per fold on dev"
            members_of[id(chosen)] = members
            rows.append(chosen)
        listed = "; ".join(f"fold{f}: " + (f"{grid[i].variant} (dev {dev_text(task, select_by, grid[i].dev[f])})"
                                           if i is not None else f"none (no finite dev {select_by})")
                           for f, i in choice.items())
        notes.append(f"Sweep of {name}: its grid rows are over all folds; inside each fold the point with {how} on "
                     f"that fold's dev split is chosen, and the row {row_label(model, CHOSEN_PER_FOLD)} has, fold by "
                     f"fold, the test values and out-of-fold predictions of that fold's choice - {listed}. The test "
                     f"split was not used to choose. Only that row of the sweep enters the paired comparisons; "
                     f"'Dev choice' says in how many folds each grid point was chosen.")
    return notes


def build_table(records: list[dict], task: str, references: Iterable[Reference] = (),
                predictions: list[pd.DataFrame | None] | None = None, *, split: str = "test",
                order: Iterable[str] = (), resamples: int = 1000, seed: int = 0, level: float = 0.95,
                reference: str = "best", subjects: Mapping[str, str] | None = None) -> Table:
    """The table of ``task`` from metrics records (:func:`read_metrics`).

    ``predictions[i]`` is the prediction table of ``records[i]`` (all splits; None = not
    available); without predictions the table has no CI and no paired columns.
    ``reference``: ``best`` or the row the paired comparisons are against.  ``subjects``:
    video id -> subject id (:func:`sheet_subjects`); given, every bootstrap resamples
    subjects, else videos.  Records of cross-validation folds make a cross-validation table,
    records with ``sweep: true`` a sweep (see the module docstring).
    """
    if task not in TASKS:
        raise FacevoxError(f"unknown table {task!r} (one of {', '.join(TASKS)})")
    order = list(order)
    pairs = list(zip(records, predictions if predictions is not None else [None] * len(records)))
    pairs = [(r, p) for r, p in pairs if r["task"] == task]
    cv = cv_design([rec for rec, _ in pairs], task)
    groups: dict[tuple[str, str], list] = {}
    for rec, pred in pairs:
        groups.setdefault((rec["model"], rec["variant"]), []).append((rec, pred))
    if task == "continuous":
        dims = sorted({k[4:] for rec, _ in pairs for k in split_values(rec, split) if k.startswith("ccc_")})
        metrics = [continuous_metric(d) for d in dims]
        headline = [m.key for m in metrics]
    else:
        metrics, headline = list(METRICS[task]), list(HEADLINE[task])
    has_ci = bool(pairs) and all(p is not None for _, p in pairs) and (cv is None or split == "test")
    refs = [r for r in references if r.task == task]

    def make_row(model, variant, members):
        return _make_row(model, variant, members, metrics, split, refs, cv)
    rows, members_of, split_tables = [], {}, {}
    for (model, variant), members in groups.items():
        rows.append(make_row(model, variant, members))
        members_of[id(rows[-1])] = members
    rows.sort(key=_row_key(order))
    sweep_notes = _choose_sweeps(rows, members_of, task, cv, make_row)
    rows.sort(key=_row_key(order))
    for row in rows if has_ci else []:
        members = members_of[id(row)]
        classes = members[0][0].get("classes")
        if cv is None:
            tables = [p[p["split"] == split] for _, p in members]
            by_seed = dict(zip([rec["seed"] for rec, _ in members], tables))
        else:
            by_seed, row.pool_notes = pooled_predictions(members, split, row.label, range(cv["folds"]))
            tables = list(by_seed.values())
        for key in headline if tables else []:
            row.ci[key] = bootstrap_ci(tables, task, key, classes=classes, resamples=resamples, seed=seed,
                                       level=level, groups=subjects)
            if cv is not None:
                row.pooled[key] = row.ci[key]["estimate"]
        split_tables[id(row)] = (by_seed, classes)
    compared = [row for row in rows if row.role != "grid"]
    ref_row, ref_note = (_choose_reference(rows, headline, reference) if has_ci and len(compared) > 1
                         else (None, ""))
    holm_m = 0
    if ref_row is not None:
        ref_row.is_reference = True
        ref_tables, classes = split_tables[id(ref_row)]
        family = [(row, key) for row in compared if row is not ref_row for key in headline]
        results = [paired_bootstrap(split_tables[id(row)][0], ref_tables, task, key, classes=classes,
                                    resamples=resamples, seed=seed, level=level, groups=subjects)
                   for row, key in family]
        for (row, key), pair in zip(family, holm_adjust(results, level)):
            row.paired[key] = pair
            holm_m += math.isfinite(pair["p_holm"])
    # reported columns: grouped by "dataset split", in our column order; a reported
    # continuous dimension we did not measure gets its own column after ours
    by_key = {m.key: m for m in metrics}
    used = {k for row in rows for k in row.reported}
    extra = sorted({m for m, _ in used} - set(by_key))
    by_key |= {m: continuous_metric(m.removeprefix("ccc_")) for m in extra}
    reported_columns = [(by_key[m], g) for g in sorted({g for _, g in used}) for m in by_key if (m, g) in used]
    return Table(task, split, metrics, rows, reported_columns, [by_key[k] for k in headline], resamples, seed,
                 level, has_ci, ref_row.label if ref_row is not None else "", ref_note, cv=cv,
                 unit="video" if subjects is None else "subject", holm_m=holm_m, sweep_notes=sweep_notes)


# --------------------------------------------------------------------------- from the files
def build_tables(metrics_paths, predictions_paths, references_path, *, tasks: Iterable[str] | None = None,
                 split: str = "test", order: Iterable[str] = (), resamples: int = 1000, seed: int = 0,
                 level: float = 0.95, reference: str = "best",
                 subjects: Mapping[str, str] | None = None) -> Iterator[Table]:
    """The table of every task in ``tasks`` (default: those of the metrics files), in TASKS
    order.  ``predictions_paths[i]`` belongs to ``metrics_paths[i]``; an empty list means no
    bootstrap intervals and no paired comparisons; ``reference``: the paired comparisons'
    reference row (``best`` or a model name / row label); ``subjects``: video id -> subject
    id (:func:`sheet_subjects`), the bootstrap's unit (None: the video).  The files are read
    and checked now; each table is built when the iterator reaches it."""
    records = [read_metrics(p) for p in metrics_paths]
    predictions_paths = list(predictions_paths or [])
    if predictions_paths and len(predictions_paths) != len(records):
        raise FacevoxError(f"tables: {len(records)} metrics files but {len(predictions_paths)} prediction tables")
    predictions = [pd.read_parquet(p) for p in predictions_paths] or None
    references = load_references(references_path) if references_path else []
    found = [t for t in TASKS if any(r["task"] == t for r in records)]
    tasks = list(tasks) if tasks else found
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise FacevoxError(f"tables: unknown task(s) {unknown} (one of {', '.join(TASKS)})")
    stray = [r["_path"] for r in records if r["task"] not in tasks]
    if stray:
        raise FacevoxError(f"tables: metrics of a task without a table ({', '.join(tasks)}): {', '.join(stray)}")
    reference = str(reference or "best")
    if reference != "best":
        labels = {r["model"] for r in records if not r["variant"] or r["sweep"]} \
            | {row_label(r["model"], r["variant"]) for r in records} \
            | {row_label(r["model"], CHOSEN_PER_FOLD) for r in records if r["sweep"] and r["fold"] is not None}
        if reference not in labels:
            raise FacevoxError(f"tables: paired reference {reference!r} is none of the rows (models: "
                               f"{', '.join(sorted({r['model'] for r in records}))}; or 'best')")
    return (build_table(records, task, references, predictions, split=split, order=order, resamples=resamples,
                        seed=seed, level=level, reference=reference, subjects=subjects) for task in tasks)


def sheet_subjects(sheet) -> dict[str, str]:
    """video id -> subject id of the sample sheet ``sheet`` (facevox.samples.read_samples, the
    files not checked); a video with an empty ``subject_id`` is its own subject (its video
    id), as in facevox.dataset.splits."""
    samples = read_samples(sheet, check_files=False)
    return {str(vid): subject for vid, subject in subjects_of(samples).items()}
