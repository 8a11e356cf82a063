"""Metric tables, the statistics under a row (facevox.report.tables builds the rows from them,
its docstring says what each number means):

* :func:`summarise` - mean, sample sd (ddof 1) and count of the finite values (:class:`Summary`).
* Cross-validation: :func:`cv_design` checks that a table's metrics files share one design
  (all of the fixed split, or all folds of one cross-validation, each fold holding out the
  same subjects in every file) and returns it; :func:`cv_text` says it in words;
  :func:`fold_means` gives each fold's value of a metric (the mean over the fold's seeds);
  :func:`pooled_predictions` concatenates, per seed, every fold's prediction rows of the
  test split into the pooled out-of-fold table, and refuses a video found in two folds.
* Sweeps: :func:`dev_score` is a metrics file's development score by its ``select_by``
  (``loss``: the dev loss, ``ccc_mean``: the mean of the dev CCCs, else ``splits.dev.<key>``);
  :func:`choose_on_dev` picks the best of several candidates (lower is better for
  :data:`LOWER_DEV`; ties to the earlier candidate).  The test split is never read here.
* :func:`holm_adjust`: Holm-Bonferroni over the paired comparisons of one table
  (facevox.report.bootstrap.holm), with the verdict from the adjusted p-value.

Tests: tests/test_tables_cv.py
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facevox.errors import FacevoxError, InputError
from facevox.report.bootstrap import LOWER_IS_BETTER, holm

#: Cross-validation schemes a metrics file's ``cv.scheme`` may name.
SCHEMES = ("fixed", "kfold", "loso")
#: Development scores where lower is better (a run's ``select_by``); every other one: higher.
LOWER_DEV = frozenset({"loss"}) | LOWER_IS_BETTER


def number(value) -> float:
    """``value`` as a float when it is a number (not a bool), else NaN."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


@dataclass(frozen=True)
class Summary:
    """Mean, standard deviation and count of one metric over seeds (or folds)."""
    mean: float
    sd: float  # NaN for fewer than two values
    n: int


def summarise(values: Iterable[float]) -> Summary:
    """Mean and sample sd (ddof 1) of the finite values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
    if len(v) == 0:
        return Summary(math.nan, math.nan, 0)
    return Summary(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v))


def finite_mean(values: Iterable[float]) -> float:
    """Mean of the finite values; NaN when there is none."""
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else math.nan


# --------------------------------------------------------------------------- cross-validation
def check_cv(record: dict, where) -> None:
    """Check a metrics record's ``fold`` and ``cv`` keys (see facevox.report.tables); raise
    InputError naming ``where`` when they are malformed.  ``fold`` None: the fixed split."""
    fold, cv = record.get("fold"), record.get("cv")
    if fold is None:
        return
    if not isinstance(fold, int) or isinstance(fold, bool) or fold < 0:
        raise InputError(where, f"`fold` must be null or a fold index (0, 1, ...), not {fold!r}")
    if not isinstance(cv, Mapping):
        raise InputError(where, f"fold {fold} without its `cv` mapping (scheme, folds, seed, subjects, "
                           f"test_subjects)")
    folds = cv.get("folds")
    if cv.get("scheme") not in SCHEMES:
        raise InputError(where, f"unknown cv.scheme {cv.get('scheme')!r} (one of {', '.join(SCHEMES)})")
    if not isinstance(folds, int) or isinstance(folds, bool) or not 0 <= fold < folds:
        raise InputError(where, f"fold {fold} is not one of the cv.folds = {folds!r} folds")
    if not isinstance(cv.get("test_subjects"), list):
        raise InputError(where, f"cv.test_subjects must be the list of the subjects fold {fold} holds out")


def cv_design(records: Sequence[dict], task: str) -> dict | None:
    """The cross-validation of one table's metrics records: None for the fixed split, else
    ``scheme, folds, seed, subjects`` of their ``cv`` and ``held_out`` (fold -> number of
    test subjects).  Fold and fixed-split files together, folds of two different
    cross-validations, or a fold holding out other subjects in another file raise
    FacevoxError naming a file of each."""
    folded = [r for r in records if r.get("fold") is not None]
    fixed = [r for r in records if r.get("fold") is None]
    if folded and fixed:
        raise FacevoxError(f"{task} table: cross-validation folds and fixed-split runs cannot share a table: "
                           f"{folded[0]['_path']} is fold {folded[0]['fold']}, {fixed[0]['_path']} is the fixed "
                           f"split")
    if not folded:
        return None
    first = folded[0]
    design = {k: first["cv"].get(k) for k in ("scheme", "folds", "seed", "subjects")}
    held_out: dict[int, tuple[list[str], str]] = {}
    for rec in folded:
        other = {k: rec["cv"].get(k) for k in design}
        if other != design:
            raise FacevoxError(f"{task} table: folds of two cross-validations: {first['_path']} ({design}) and "
                               f"{rec['_path']} ({other})")
        subjects = sorted(map(str, rec["cv"]["test_subjects"]))
        known, path = held_out.setdefault(rec["fold"], (subjects, rec["_path"]))
        if known != subjects:
            raise FacevoxError(f"{task} table: fold {rec['fold']} holds out other subjects in {path} "
                               f"({', '.join(known)}) than in {rec['_path']} ({', '.join(subjects)})")
    return design | {"held_out": {k: len(v[0]) for k, v in sorted(held_out.items())}}


def cv_text(design: Mapping) -> str:
    """The cross-validation in words, e.g. ``5-fold cross-validation grouped by subject (60
    subjects, 5 folds; split seed 0)`` or ``leave-one-subject-out (12 folds = subjects)``."""
    folds, subjects = design["folds"], design.get("subjects")
    if design["scheme"] == "loso":
        return f"leave-one-subject-out cross-validation ({folds} folds = subjects)"
    count = f"{subjects} subjects, " if subjects is not None else ""
    seed = f"; split seed {design['seed']}" if design.get("seed") is not None else ""
    if design["scheme"] == "kfold":
        return f"{folds}-fold cross-validation grouped by subject ({count}{folds} folds{seed})"
    return f"cross-validation, scheme {design['scheme']} ({count}{folds} folds{seed})"


def fold_means(values: Iterable[tuple[int, float]]) -> dict[int, float]:
    """``(fold, value)`` pairs (one per metrics file) -> fold -> the mean of the fold's finite
    values (NaN when it has none), in fold order."""
    by_fold: dict[int, list[float]] = {}
    for fold, value in values:
        by_fold.setdefault(fold, []).append(value)
    return {fold: finite_mean(v) for fold, v in sorted(by_fold.items())}


def pooled_predictions(members: Sequence[tuple[dict, pd.DataFrame]], split: str, label: str,
                       folds: Sequence[int]) -> tuple[dict[int, pd.DataFrame], list[str]]:
    """Per seed, the prediction rows of ``split`` of every fold concatenated (fold order): the
    pooled out-of-fold predictions of one row.  ``members``: (metrics record, prediction
    table) of every fold and seed; ``folds``: the cross-validation's folds.  Only seeds with
    every one of the row's folds are pooled; the returned notes name the seeds left out and
    the folds the row lacks.  A video in the ``split`` of two folds raises FacevoxError."""
    owner: dict[str, tuple[int, str]] = {}
    by_seed: dict[int, dict[int, pd.DataFrame]] = {}
    for rec, pred in members:
        part = pred[pred["split"] == split]
        by_seed.setdefault(rec["seed"], {})[rec["fold"]] = part
        for vid in sorted(set(part["video_id"].astype(str))):
            fold, path = owner.setdefault(vid, (rec["fold"], rec["_path"]))
            if fold != rec["fold"]:
                raise FacevoxError(f"{label}: video {vid} is in the {split} split of fold {fold} ({path}) and of "
                                   f"fold {rec['fold']} ({rec['_path']}): out-of-fold predictions must hold each "
                                   f"video once")
    present = sorted({rec["fold"] for rec, _ in members})
    pooled = {s: pd.concat([tables[f] for f in present], ignore_index=True)
              for s, tables in sorted(by_seed.items()) if sorted(tables) == present}
    notes = [f"seed {s} lacks fold(s) {', '.join(str(f) for f in present if f not in tables)}: left out of the "
             f"pooled out-of-fold predictions" for s, tables in sorted(by_seed.items()) if s not in pooled]
    missing = [f for f in folds if f not in present]
    if missing:
        notes.append(f"no metrics file of fold(s) {', '.join(map(str, missing))}: the pooled out-of-fold "
                     f"predictions hold only the videos of fold(s) {', '.join(map(str, present))}")
    return pooled, notes


# --------------------------------------------------------------------------- sweeps
def dev_score(record: dict, select_by: str) -> float:
    """The development score a run is selected by: ``splits.dev.<select_by>``, ``loss`` the
    dev loss, ``ccc_mean`` the mean of the finite ``splits.dev.ccc`` values; NaN when absent."""
    dev = record["splits"].get("dev") or {}
    if select_by == "ccc_mean":
        ccc = dev.get("ccc")
        return finite_mean(number(v) for v in ccc.values()) if isinstance(ccc, Mapping) else math.nan
    return number(dev.get(select_by))


def choose_on_dev(scores: Sequence[float], select_by: str) -> int | None:
    """Index of the best finite score (lower is better for :data:`LOWER_DEV`), ties to the
    earlier index; None when no score is finite."""
    sign = 1.0 if select_by in LOWER_DEV else -1.0
    best = None
    for i, score in enumerate(scores):
        if math.isfinite(score) and (best is None or sign * score < sign * scores[best]):
            best = i
    return best


# --------------------------------------------------------------------------- multiple comparisons
def holm_adjust(pairs: Sequence[dict], level: float) -> list[dict]:
    """The paired comparisons of one table (facevox.report.bootstrap.paired_bootstrap results),
    each with ``p_holm`` (Holm-adjusted over all of ``pairs``), ``significant`` = ``p_holm <
    1 - level``, ``better`` (``"a"`` / ``"b"`` in the metric's direction, ``""`` when not
    significant) and ``interval_excludes_0`` (the unadjusted verdict of the interval)."""
    adjusted = holm([pair["p_value"] for pair in pairs])
    out = []
    for pair, p_holm in zip(pairs, adjusted):
        significant = bool(math.isfinite(p_holm) and p_holm < 1 - level)
        better = ""
        if significant:
            better = "a" if (pair["difference"] > 0) != (pair["metric"] in LOWER_IS_BETTER) else "b"
        out.append(dict(pair) | {"p_holm": p_holm, "significant": significant, "better": better,
                                 "interval_excludes_0": pair["significant"]})
    return out
