"""Metric tables, the model: which rows and columns a table has and the numbers in them -
every model (and variant) x seed summarised per task family, with the papers' reported
numbers beside ours and a bootstrap interval for the headline metric (:func:`build_table`,
:func:`build_tables` from the files).  Their text - the exact cell strings, Markdown,
LaTeX, CSV, the HTML page - and the files ``write_tables`` writes: facevox.report.table_files.

Inputs: the metrics JSON of each (model, seed) (facevox.training.loop.evaluate writes
``results/metrics/<model>/seed<seed>.json``); its ``task`` key decides the table:

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
that make the ablation, labelled by :func:`variant_label` (sorted ``key=value`` pairs
joined by ", ", values as JSON except bare strings, e.g. ``kernel_sizes=[3, 5],
pos_encoding=sinusoidal``); without it the JSON is the model's base row. (Run-size
overrides such as ``epochs`` are deliberately not read from anywhere: they do not make
a variant, so the base row keeps its reported numbers.)

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
* CI: ``[low, high]`` of the video-level bootstrap (facevox.report.bootstrap.bootstrap_ci:
  percentile, seed mean of the metric per resample, same drawn videos for every seed),
  same units and decimals as the cell. Needs the prediction tables.
* Paired comparison (with the prediction tables, two rows or more): for each headline
  metric, ``Δ <metric> vs ref``: the row's seed mean minus the reference row's, over the
  seeds and videos the two share, with the interval of a paired bootstrap
  (facevox.report.bootstrap.paired_bootstrap: the same drawn videos for both rows),
  ``+1.23 [0.50, 2.10]`` in the cell's units; ``p``: its two-sided bootstrap p-value (3
  decimals); ``Sig.``: ``yes, better`` / ``yes, worse`` (the interval excludes 0; better
  in the metric's direction, lower for MAE / RMSE) or ``no``.  The reference row reads
  ``reference``.  Which row is the reference (``reference``, config
  ``report.paired_reference``): ``best`` - the row with the best seed mean of the
  headline metric (continuous: mean over the dimensions), ties to the earlier row - or a
  model name (its base row; a row label such as ``STST [pos_encoding=sinusoidal]`` picks
  a variant).  A table without the named row falls back to ``best`` and says so in its
  notes; a name found in no table is an error.
* Reported: the number a paper published for the same model and variant, from
  ``resources/reference_results.yaml`` (paper + table in the "Source" column, the
  data set and split in the header). Reported values are only displayed, never used in
  any mean, sd or interval; their data set and protocol may differ from this run.

Reference YAML (``load_references``): ``entries`` of ``model``, optional ``variant`` (a
mapping of overrides, labelled by :func:`variant_label`, or a label string), ``task``,
``dataset``, ``split``, ``paper``, ``table``, ``values`` (metric -> number as printed:
classification in percent, converted here to fractions) and an optional ``note``. Two
entries giving the same (model, variant, dataset, split, metric) are an error.

Tests: tests/test_tables.py
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from facevox.contract import describe_left_out
from facevox.errors import FacevoxError, InputError
from facevox.io import read_json
from facevox.models.families import display_name, family
from facevox.report.bootstrap import LOWER_IS_BETTER, bootstrap_ci, paired_bootstrap

TASKS = ("classification", "regression", "continuous")
TITLES = {"classification": "Classification", "regression": "Severity regression",
          "continuous": "Continuous affect"}
DASH = "\u2013"
PM = "\u00b1"
DELTA = "\u0394"


@dataclass(frozen=True)
class Metric:
    """A column of a metric table: its key in the metrics JSON, label, display scale and decimals."""
    key: str
    label: str
    scale: float = 1.0  # displayed value = stored value * scale
    decimals: int = 2


METRICS = {
    "classification": (Metric("accuracy", "Acc", 100), Metric("precision_weighted", "P (weighted)", 100),
                       Metric("recall_weighted", "R (weighted)", 100), Metric("f1_weighted", "F1 (weighted)", 100),
                       Metric("f1_macro", "F1 (macro)", 100), Metric("auc", "AUC", 1, 3)),
    "regression": (Metric("mae", "MAE"), Metric("rmse", "RMSE"), Metric("pcc", "PCC", 1, 3),
                   Metric("ccc", "CCC", 1, 3)),
}
#: Headline metric(s) of a table: the bootstrap interval's metric (continuous: every dimension).
HEADLINE = {"classification": ("f1_weighted",), "regression": ("rmse",)}
UNITS_NOTE = {
    "classification": "Accuracy, precision, recall and F1 in percent (2 decimals), AUC as a fraction (3 decimals); "
                      "weighted = averaged over classes weighted by their number of true videos.",
    "regression": "MAE and RMSE in the units of the scores (BDI-II points; 2 decimals), PCC and CCC 3 decimals.",
    "continuous": "CCC per dimension over the pooled time steps of the split (3 decimals).",
}


def continuous_metric(dimension: str) -> Metric:
    return Metric(f"ccc_{dimension}", f"CCC {dimension}", 1, 3)


def table_tasks(models: Iterable[str]) -> list[str]:
    """The tables a list of registry names produces, in TASKS order (no torch import)."""
    found = {family(m).table for m in models}
    return [t for t in TASKS if t in found]


def variant_label(overrides: Mapping | str | None) -> str:
    """A variant's row label: sorted ``key=value`` pairs joined by ", " ("" for none)."""
    if overrides is None:
        return ""
    if isinstance(overrides, str):
        return overrides.strip()
    if not isinstance(overrides, Mapping):
        raise FacevoxError(f"a variant is a mapping of overrides or a label, not {overrides!r}")
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(overrides.items()))


# --------------------------------------------------------------------------- inputs
def read_metrics(path) -> dict:
    """One metrics JSON, checked; ``variant`` normalised to a label, ``_path`` added."""
    rec = read_json(path)
    missing = [k for k in ("model", "seed", "task", "splits") if k not in rec]
    if missing:
        raise InputError(path, f"not a facevox metrics file (missing {', '.join(missing)})")
    if rec["task"] not in TASKS:
        raise InputError(path, f"unknown task {rec['task']!r} (one of {', '.join(TASKS)})")
    if not isinstance(rec["splits"], dict):
        raise InputError(path, "`splits` must be a mapping of split -> metrics")
    rec["variant"] = variant_label(rec.get("variant"))
    rec["_path"] = str(path)
    return rec


def split_values(record: dict, split: str) -> dict[str, float]:
    """The numeric metrics of one split; continuous ``ccc: {dim: v}`` becomes ``ccc_<dim>``."""
    values = {}
    for key, value in (record["splits"].get(split) or {}).items():
        if isinstance(value, Mapping) and key == "ccc":
            values.update({f"ccc_{dim}": _number(v) for dim, v in value.items()})
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            values[key] = float(value)
    return values


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


@dataclass(frozen=True)
class Reference:
    model: str
    variant: str
    task: str
    dataset: str
    split: str
    metric: str
    value: float  # in the units of our metrics JSON (classification: fraction)
    source: str
    note: str = ""


def load_references(path) -> list[Reference]:
    """The reported results of ``path`` (see the module docstring), checked."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(path, f"not a readable YAML file ({exc})") from None
    entries = (doc or {}).get("entries")
    if not isinstance(entries, list):
        raise InputError(path, "expected a top-level `entries:` list")
    refs, seen = [], {}
    for i, e in enumerate(entries):
        where = f"entry {i + 1} ({e.get('model', '?') if isinstance(e, dict) else e!r})"
        if not isinstance(e, dict):
            raise InputError(path, f"{where}: not a mapping")
        missing = [k for k in ("model", "task", "dataset", "split", "paper", "table", "values") if k not in e]
        if missing:
            raise InputError(path, f"{where}: missing {', '.join(missing)}")
        if e["task"] not in TASKS:
            raise InputError(path, f"{where}: unknown task {e['task']!r}")
        known = {m.key for m in METRICS.get(e["task"], ())}
        for metric, value in (e["values"] or {}).items():
            if e["task"] == "continuous" and not metric.startswith("ccc_") or e["task"] != "continuous" \
                    and metric not in known:
                raise InputError(path, f"{where}: metric {metric!r} is not a {e['task']} table column")
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise InputError(path, f"{where}: {metric} must be a number, got {value!r}")
            scale = 100.0 if e["task"] == "classification" and metric != "auc" else 1.0
            ref = Reference(str(e["model"]), variant_label(e.get("variant")), e["task"], str(e["dataset"]),
                            str(e["split"]), metric, float(value) / scale, f"{e['paper']} {e['table']}",
                            str(e.get("note") or "").strip())
            key = (ref.model, ref.variant, ref.dataset, ref.split, metric)
            if key in seen:
                raise InputError(path, f"{where}: {metric} of {ref.model} [{ref.variant or 'base'}] on "
                                       f"{ref.dataset} {ref.split} is also given by {seen[key]}")
            seen[key] = ref.source
            refs.append(ref)
    return refs


# --------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class Summary:
    """Mean, standard deviation and count of one metric over seeds."""
    mean: float
    sd: float  # NaN for fewer than two values
    n: int


def summarise(values: Iterable[float]) -> Summary:
    """Mean and sample sd (ddof 1) of the finite values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
    if len(v) == 0:
        return Summary(math.nan, math.nan, 0)
    return Summary(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v))


def row_label(model: str, variant: str = "") -> str:
    """A row's label: the model's display name, the variant label in brackets."""
    name = display_name(model)
    return f"{name} [{variant}]" if variant else name


def _choose_reference(rows: list[Row], headline: list[str], reference: str) -> tuple[Row | None, str]:
    """The reference row (see the module docstring) and a note when ``reference`` is not in the table."""
    note = ""
    if reference != "best":
        for row in rows:
            if (row.model == reference and not row.variant) or row.label == reference:
                return row, ""
        note = f"({reference} is not in this table: the best row is the reference.)"
    lower = headline[0].removeprefix("ccc_") in LOWER_IS_BETTER
    scored = []
    for i, row in enumerate(rows):
        values = [row.stats[k].mean for k in headline if k in row.stats and math.isfinite(row.stats[k].mean)]
        if values:
            scored.append(((1 if lower else -1) * float(np.mean(values)), i, row))
    return (min(scored, key=lambda x: x[:2])[2] if scored else None), note


@dataclass
class Row:
    """One row of a metric table: a model (and variant) over its seeds, with its summaries and notes."""
    model: str
    variant: str
    seeds: list[int]
    videos: list[int]
    unpredicted: list[int]
    stats: dict[str, Summary]
    reported: dict[tuple[str, str], float] = field(default_factory=dict)  # (metric, group) -> value
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ci: dict[str, dict] = field(default_factory=dict)
    n_parameters: int | None = None
    #: Unpredicted video of the split -> (reason, the seeds that did not predict it).
    unpredicted_videos: dict[str, tuple[str, list[int]]] = field(default_factory=dict)
    #: The left-out entries of the row's metrics files (every split), one each.
    left_out: list[dict] = field(default_factory=list)
    #: Training warnings (device fallback, dev split) -> the seeds that had them.
    warnings: dict[str, list[int]] = field(default_factory=dict)
    paired: dict[str, dict] = field(default_factory=dict)  # metric -> paired_bootstrap against the reference
    is_reference: bool = False
    #: Classes of the split no predicted video has (all its videos unpredicted) -> those videos.
    classes_lost: dict[str, list[str]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return row_label(self.model, self.variant)


@dataclass
class Table:
    """One metric table (a task on a split): its metrics, rows, reported numbers and notes."""
    task: str
    split: str
    metrics: list[Metric]
    rows: list[Row]
    reported_columns: list[tuple[Metric, str]]  # (metric, group "dataset split"), grouped by dataset
    ci_metrics: list[Metric]
    resamples: int
    seed: int
    level: float
    has_ci: bool
    reference: str = ""        # label of the reference row of the paired comparisons ("": none)
    reference_note: str = ""   # why the reference is not the configured one

    @property
    def has_paired(self) -> bool:
        return bool(self.reference)

    def notes(self) -> list[str]:
        level = f"{100 * self.level:g} %"
        out = [
            f"{TITLES[self.task]}, {self.split} split, video level. Cells: mean {PM} sd over seeds (sd with "
            f"ddof = 1; '{PM} {DASH}' when one seed has a value), n = seeds with a finite value; "
            f"'{DASH}' = no value. Seeds = metrics files of the row.",
            UNITS_NOTE[self.task],
            "Videos: videos predicted in the split (a range when the seeds differ); 'unpred.': videos a seed "
            "could not predict (no usable slice), not in the metrics; '[no <class> video]': every video of "
            "that class was unpredicted, so the metrics are of the other class(es) only.",
        ]
        if self.has_ci:
            out.append(f"{level} CI: percentile bootstrap over videos ({self.resamples} resamples, seed {self.seed}); "
                       f"each resample draws the split's videos with replacement, the same videos for every seed, "
                       f"and takes the mean over seeds of the metric.")
        if self.has_paired:
            out.append(
                f"Paired comparison against the reference row {self.reference}: '{DELTA} vs ref' is the row's "
                f"seed mean minus the reference's, computed over the seeds (same seed numbers) and test videos "
                f"the two rows share, with the {level} interval of a paired bootstrap ({self.resamples} "
                f"resamples, seed {self.seed}): each resample draws those videos with replacement once for both "
                f"rows, so the video-to-video variation they share cancels out of the difference (two rows' "
                f"separate CIs may overlap while the difference is clear). p is the two-sided bootstrap "
                f"p-value for no difference (twice the smaller share of resampled differences on either side "
                f"of 0, with +1 in numerator and denominator; identical rows give 1). 'Sig.' says yes when the "
                f"interval excludes 0, with better or worse in the metric's direction (lower is better for MAE "
                f"and RMSE). No paper reports such a test; it tells whether a gap between two rows is larger "
                f"than the test set's sampling noise, not whether it would hold on other data."
                + (f" {self.reference_note}" if self.reference_note else ""))
        if self.reported_columns:
            out.append("Reported: numbers published by the papers (resources/reference_results.yaml; paper and "
                       "table in 'Source'), shown for comparison only - never part of our means, sds or "
                       "intervals; their data and protocol may differ from this run.")
        notes = {}
        for row in self.rows:
            for note in row.notes:
                notes.setdefault(note, []).append(row.label)
        out += [f"{', '.join(labels)} (reported): {note}" for note, labels in notes.items()]
        out += data_notes(self.rows, self.split)
        return out


def _seeds_text(seeds: list[int], all_seeds: list[int]) -> str:
    return "" if sorted(seeds) == sorted(all_seeds) else f" (seed{'s' if len(seeds) > 1 else ''} " \
        f"{', '.join(map(str, sorted(seeds)))})"


def data_notes(rows: list[Row], split: str) -> list[str]:
    """What the rows' metrics files say was not used: the unpredicted videos of ``split``
    by name and reason, every left-out entry (all splits: a train drop changes the model),
    and the training warnings; rows with the same text share one note."""
    grouped: dict[str, list[str]] = {}
    for row in rows:
        lines = []
        if row.unpredicted_videos:
            lines.append(f"unpredicted in the {split} split: " + ", ".join(
                f"{v} ({reason}){_seeds_text(seeds, row.seeds)}"
                for v, (reason, seeds) in row.unpredicted_videos.items()))
        lines += [f"class {label!r} has no predicted video in the {split} split ({', '.join(vids)}: unpredicted): "
                  f"the row's metrics are of the other class(es) only, AUC undefined"
                  for label, vids in row.classes_lost.items()]
        lines += [f"left out, {describe_left_out(rec)}" for rec in row.left_out]
        lines += [f"warning: {w}{_seeds_text(seeds, row.seeds)}" for w, seeds in row.warnings.items()]
        for line in lines:
            grouped.setdefault(line, []).append(row.label)
    return [f"{', '.join(labels)}: {line}" for line, labels in grouped.items()]


def _row_key(order: list[str]):
    def key(row: Row):
        return (order.index(row.model) if row.model in order else len(order), row.model, row.variant != "",
                row.variant)
    return key


def build_table(records: list[dict], task: str, references: Iterable[Reference] = (),
                predictions: list[pd.DataFrame | None] | None = None, *, split: str = "test",
                order: Iterable[str] = (), resamples: int = 1000, seed: int = 0, level: float = 0.95,
                reference: str = "best") -> Table:
    """The table of ``task`` from metrics records (:func:`read_metrics`).

    ``predictions[i]`` is the prediction table of ``records[i]`` (all splits; None = not
    available); without predictions the table has no CI and no paired columns.
    ``reference``: ``best`` or the row the paired comparisons are against.
    """
    if task not in TASKS:
        raise FacevoxError(f"unknown table {task!r} (one of {', '.join(TASKS)})")
    order = list(order)
    pairs = list(zip(records, predictions if predictions is not None else [None] * len(records)))
    pairs = [(r, p) for r, p in pairs if r["task"] == task]
    groups: dict[tuple[str, str], list] = {}
    for rec, pred in pairs:
        groups.setdefault((rec["model"], rec["variant"]), []).append((rec, pred))
    if task == "continuous":
        dims = sorted({k[4:] for rec, _ in pairs for k in split_values(rec, split) if k.startswith("ccc_")})
        metrics = [continuous_metric(d) for d in dims]
        headline = [m.key for m in metrics]
    else:
        metrics, headline = list(METRICS[task]), list(HEADLINE[task])
    has_ci = bool(pairs) and all(p is not None for _, p in pairs)
    refs = [r for r in references if r.task == task]
    rows, split_tables = [], {}
    for (model, variant), members in groups.items():
        seeds = [rec["seed"] for rec, _ in members]
        dup = {s for s in seeds if seeds.count(s) > 1}
        if dup:
            paths = [rec["_path"] for rec, _ in members if rec["seed"] in dup]
            raise FacevoxError(f"{model} [{variant or 'base'}] seed {sorted(dup)[0]} has more than one metrics "
                               f"file: {', '.join(paths)}")
        values = [split_values(rec, split) for rec, _ in members]
        row = Row(model, variant, sorted(seeds),
                  videos=[int(v["n"]) for v in values if "n" in v],
                  unpredicted=[len(rec["splits"].get(split, {}).get("unpredicted") or []) for rec, _ in members],
                  stats={m.key: summarise(v.get(m.key, math.nan) for v in values) for m in metrics},
                  n_parameters=members[0][0].get("n_parameters"))
        for rec, _ in members:
            part = rec["splits"].get(split, {}) or {}
            reasons = part.get("unpredicted_reasons") or {}
            for vid in part.get("unpredicted") or []:
                row.unpredicted_videos.setdefault(vid, (reasons.get(vid, "no usable item"), []))[1].append(rec["seed"])
            for label, vids in (part.get("classes_unpredicted") or {}).items():
                lost = row.classes_lost.setdefault(label, [])
                lost += [v for v in vids if v not in lost]
            for entry in rec.get("left_out") or []:
                if entry not in row.left_out:
                    row.left_out.append(entry)
            for warning in rec.get("warnings") or []:
                row.warnings.setdefault(warning, []).append(rec["seed"])
        for ref in refs:
            if ref.model == model and ref.variant == variant:
                row.reported[(ref.metric, f"{ref.dataset} {ref.split}")] = ref.value
                row.sources += [ref.source] if ref.source not in row.sources else []
                row.notes += [ref.note] if ref.note and ref.note not in row.notes else []
        if has_ci:
            tables = [p[p["split"] == split] for _, p in members]
            classes = members[0][0].get("classes")
            for key in headline:
                row.ci[key] = bootstrap_ci(tables, task, key, classes=classes, resamples=resamples, seed=seed,
                                           level=level)
            split_tables[id(row)] = (dict(zip(seeds, tables)), classes)
        rows.append(row)
    rows.sort(key=_row_key(order))
    ref_row, ref_note = (_choose_reference(rows, headline, reference) if has_ci and len(rows) > 1
                         else (None, ""))
    if ref_row is not None:
        ref_row.is_reference = True
        ref_tables, classes = split_tables[id(ref_row)]
        for row in rows:
            if row is not ref_row:
                for key in headline:
                    row.paired[key] = paired_bootstrap(split_tables[id(row)][0], ref_tables, task, key,
                                                       classes=classes, resamples=resamples, seed=seed,
                                                       level=level)
    # reported columns: grouped by "dataset split", in our column order; a reported
    # continuous dimension we did not measure gets its own column after ours
    by_key = {m.key: m for m in metrics}
    used = {k for row in rows for k in row.reported}
    extra = sorted({m for m, _ in used} - set(by_key))
    by_key |= {m: continuous_metric(m.removeprefix("ccc_")) for m in extra}
    reported_columns = [(by_key[m], g) for g in sorted({g for _, g in used}) for m in by_key if (m, g) in used]
    return Table(task, split, metrics, rows, reported_columns, [by_key[k] for k in headline], resamples, seed,
                 level, has_ci, ref_row.label if ref_row is not None else "", ref_note)


# --------------------------------------------------------------------------- from the files
def build_tables(metrics_paths, predictions_paths, references_path, *, tasks: Iterable[str] | None = None,
                 split: str = "test", order: Iterable[str] = (), resamples: int = 1000, seed: int = 0,
                 level: float = 0.95, reference: str = "best") -> Iterator[Table]:
    """The table of every task in ``tasks`` (default: those of the metrics files), in TASKS
    order.  ``predictions_paths[i]`` belongs to ``metrics_paths[i]``; an empty list means no
    bootstrap intervals and no paired comparisons; ``reference``: the paired comparisons'
    reference row (``best`` or a model name / row label).  The files are read and checked
    now; each table is built when the iterator reaches it."""
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
        labels = {r["model"] for r in records if not r["variant"]} | {row_label(r["model"], r["variant"])
                                                                     for r in records}
        if reference not in labels:
            raise FacevoxError(f"tables: paired reference {reference!r} is none of the rows (models: "
                               f"{', '.join(sorted({r['model'] for r in records}))}; or 'best')")
    return (build_table(records, task, references, predictions, split=split, order=order, resamples=resamples,
                        seed=seed, level=level, reference=reference) for task in tasks)
