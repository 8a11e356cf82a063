"""Metric tables, the built objects: a :class:`Table` of :class:`Row` s with the text of its
notes (:meth:`Table.notes`, :func:`data_notes`).  facevox.report.tables builds them (its
docstring says what every number means); facevox.report.table_files writes them out.

Tests: tests/test_tables.py, tests/test_tables_cv.py
"""
from __future__ import annotations

from dataclasses import dataclass, field

from facevox.contract import describe_left_out
from facevox.models.families import display_name
from facevox.report.table_inputs import Metric
from facevox.report.table_stats import Summary, cv_text

TITLES = {"classification": "Classification", "regression": "Severity regression",
          "continuous": "Continuous affect"}
DASH = "\u2013"
PM = "\u00b1"
DELTA = "\u0394"
UNITS_NOTE = {
    "classification": "Accuracy, precision, recall and F1 in percent (2 decimals), AUC as a fraction (3 decimals); "
                      "weighted = averaged over classes weighted by their number of true videos.",
    "regression": "MAE and RMSE in the units of the scores (BDI-II points; 2 decimals), PCC and CCC 3 decimals.",
    "continuous": "CCC per dimension over the pooled time steps of the split (3 decimals).",
}


#: The variant label of a swept model's row of the per-fold choices (cross-validation).
CHOSEN_PER_FOLD = "chosen per fold on dev"


def row_label(model: str, variant: str = "") -> str:
    """A row's label: the model's display name, the variant label in brackets."""
    name = display_name(model)
    return f"{name} [{variant}]" if variant else name


def headline_value(row: Row, key: str) -> float:
    """A row's value of a headline metric: the pooled out-of-fold value under cross-validation
    (with predictions), else the cell's mean."""
    return row.pooled[key] if key in row.pooled else row.stats[key].mean


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
    #: Cross-validation: the folds with a metrics file, metric -> fold -> the mean over the fold's seeds.
    folds: list[int] = field(default_factory=list)
    fold_values: dict[str, dict[int, float]] = field(default_factory=dict)
    pooled: dict[str, float] = field(default_factory=dict)  # headline metric -> pooled out-of-fold value
    #: Sweep: "grid" (a point of the model's sweep grid), "chosen" (the choice on dev), "" (no sweep).
    role: str = ""
    selection: str = ""  # the "Dev choice" cell
    dev: dict = field(default_factory=dict)  # fold (None: fixed split) -> seed mean of the dev score
    pool_notes: list[str] = field(default_factory=list)  # what the pooled out-of-fold predictions lack

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
    cv: dict | None = None     # the cross-validation (table_stats.cv_design); None: the fixed split
    unit: str = "video"        # the bootstrap's unit: "subject" (a sample sheet given) or "video"
    holm_m: int = 0            # paired tests in the Holm family (finite p-values)
    sweep_notes: list[str] = field(default_factory=list)  # how each sweep's variant was chosen

    @property
    def has_paired(self) -> bool:
        return bool(self.reference)

    @property
    def has_sweep(self) -> bool:
        return any(row.role for row in self.rows)

    @property
    def has_pooled(self) -> bool:
        return self.cv is not None and self.has_ci

    def units_text(self) -> str:
        """``N subjects, all their videos drawn together`` with N (a range when the rows differ) from the CIs."""
        counts = sorted({ci["units"] for row in self.rows for ci in row.ci.values() if "units" in ci})
        n = "?" if not counts else str(counts[0]) if len(counts) == 1 else f"{counts[0]}{DASH}{counts[-1]}"
        return f"{n} subjects, all their videos drawn together"

    def notes(self) -> list[str]:
        level = f"{100 * self.level:g} %"
        if self.cv is None:
            first = (f"{TITLES[self.task]}, {self.split} split, video level. Cells: mean {PM} sd over seeds (sd with "
                     f"ddof = 1; '{PM} {DASH}' when one seed has a value), n = seeds with a finite value; "
                     f"'{DASH}' = no value. Seeds = metrics files of the row.")
        else:
            first = (f"{TITLES[self.task]}, {self.split} split, {cv_text(self.cv)}, video level. Cells: mean "
                     f"{PM} sd over folds of the fold's value, the mean over the fold's seeds of its {self.split} "
                     f"metric (sd with ddof = 1; '{PM} {DASH}' when one fold has a value), n = folds with a finite "
                     f"value; '{DASH}' = no value. Seeds = seed numbers of the row, Folds = folds with a metrics "
                     f"file. Subjects held out: " + ", ".join(f"fold{k} {n}" for k, n in self.cv["held_out"].items())
                     + " (the per-fold table lists each fold's headline metric).")
        out = [
            first,
            UNITS_NOTE[self.task],
            "Videos: videos predicted in the split (" + ("all folds together; " if self.cv else "") + "a range "
            "when the seeds differ); 'unpred.': videos a seed could not predict (no usable slice), not in the "
            "metrics; '[no <class> video]': every video of that class was unpredicted, so the metrics are of the "
            "other class(es) only.",
        ]
        if self.has_pooled:
            out.append(f"'pooled OOF': the headline metric of the pooled out-of-fold predictions - per seed, "
                       f"every fold's {self.split} predictions concatenated (each video once, predicted by the fold "
                       f"that held its subject out), then the mean over seeds; the CI and the paired comparisons "
                       f"are computed on these pooled predictions.")
        elif self.cv is not None:
            out.append("No pooled out-of-fold value, CI or paired comparison: they need the prediction tables and "
                       "the test split (the folds' other splits overlap).")
        if self.has_ci and self.unit == "video":
            out.append(f"{level} CI: percentile bootstrap over videos ({self.resamples} resamples, seed {self.seed}); "
                       f"each resample draws the split's videos with replacement, the same videos for every seed, "
                       f"and takes the mean over seeds of the metric.")
        elif self.has_ci:
            out.append(f"{level} CI: percentile bootstrap over subjects ({self.units_text()}); {self.resamples} "
                       f"resamples, seed {self.seed}: each resample draws the split's subjects with replacement, "
                       f"every video of a drawn subject counted as often as it is drawn, the same subjects for every "
                       f"seed, and takes the mean over seeds of the metric.")
        if self.has_paired:
            unit = self.unit
            out.append(
                f"Paired comparison against the reference row {self.reference}: '{DELTA} vs ref' is the row's "
                f"seed mean minus the reference's, computed over the seeds (same seed numbers) and test videos "
                f"the two rows share" + (" (pooled out of fold)" if self.cv else "") + f", with the {level} "
                f"interval of a paired bootstrap ({self.resamples} resamples, seed {self.seed}): each resample "
                f"draws {'those videos' if unit == 'video' else 'the subjects of those videos'} with replacement "
                f"once for both rows, so the {unit}-to-{unit} variation they share cancels out of the difference "
                f"(two rows' separate CIs may overlap while the difference is clear). p is the two-sided bootstrap "
                f"p-value for no difference (twice the smaller share of resampled differences on either side "
                f"of 0, with +1 in numerator and denominator; identical rows give 1). 'p (Holm)' is p adjusted "
                f"by Holm's step-down method over the family of all m = {self.holm_m} paired tests of this table "
                f"(every compared row x headline metric), so that the chance of any false 'yes' in the table "
                f"stays at most {1 - self.level:.2g}. 'Sig.' says yes when p (Holm) < {1 - self.level:.2g} "
                f"(1 - the CI level), with better or worse in the metric's direction (lower is better for MAE "
                f"and RMSE); the interval itself is not adjusted. No paper reports such a test; it tells whether "
                f"a gap between two rows is larger than the test set's sampling noise, not whether it would hold "
                f"on other data."
                + (f" {self.reference_note}" if self.reference_note else ""))
        out += self.sweep_notes
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


def left_out_text(entry: dict) -> str:
    """A left-out entry of a metrics file in words (facevox.contract.describe_left_out), its
    fold first under cross-validation (``fold 2: train split: ...``)."""
    return (f"fold {entry['fold']}: " if entry.get("fold") is not None else "") + describe_left_out(entry)


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
        lines += [f"left out, {left_out_text(rec)}" for rec in row.left_out]
        lines += [f"warning: {w}{_seeds_text(seeds, row.seeds)}" for w, seeds in row.warnings.items()]
        lines += row.pool_notes
        for line in lines:
            grouped.setdefault(line, []).append(row.label)
    return [f"{', '.join(labels)}: {line}" for line, labels in grouped.items()]
