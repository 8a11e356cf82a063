"""Cross-validation folds: which subjects train, select (dev) and test in each fold.

``cv:`` in config.yaml (workflow/schemas/config.schema.yaml) picks the scheme:

* ``fixed`` - the sheet's own ``split`` column, one "fold" (the workflow's paths then have no
  fold part: ``results/metrics/<model>/seed<s>.json``);
* ``kfold`` - ``folds`` folds of **subjects** (every video of a subject in one fold),
  stratified by label: scikit-learn's ``StratifiedGroupKFold(folds, shuffle=True,
  random_state=seed)`` over the videos (groups = subjects, y = label; a regression sheet
  without labels: one stratum).  Fold *k* tests on its subjects;
* ``loso`` - leave one subject out: one fold per subject (in sorted subject order).

The videos in play are the sheet's rows whose ``split`` is train, dev or test (a row with
another split, e.g. empty, stays out as it does under ``fixed``); the sheet's split values
themselves are not used under cross-validation.

**Dev part** (early stopping, the best epoch, choosing a sweep variant): carved from each
fold's *training* subjects, never from its held-out fold - per label stratum, the stratum's
subjects (sorted, shuffled by ``numpy.random.default_rng([seed, fold])``) give
``round(dev_fraction * n)`` of them to dev, keeping at least one in train; when that gives
none, one subject of the largest stratum with two or more goes to dev.  A fold whose training
subjects cannot spare one (one subject per class) has no dev part: the training then keeps its
last epoch, and says so (facevox.training.loop).  A subject's stratum is the most common label
of its videos (ties to the first in sorted order).

:func:`assignments` gives, per fold, subject -> split; :func:`fold_sheet` applies one to a
sheet (every video gets its subject's split; a subject outside the assignment - not in play -
gets no split), :func:`run` writes it (rule ``fold_sheet``).  Everything depends only on the
sheet's content, the scheme, ``folds``, ``seed`` and ``dev_fraction``.

Tests: tests/test_folds.py
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from facevox.contract import SPLITS
from facevox.errors import FacevoxError
from facevox.samples import subjects_of

#: The schemes ``cv.scheme`` may name.
SCHEMES = ("fixed", "kfold", "loso")


def _subjects(samples: pd.DataFrame) -> pd.DataFrame:
    """The videos in play (split train / dev / test): ``subject`` (the video id when empty) and ``label``."""
    rows = samples[samples["split"].isin(SPLITS)]
    subject = subjects_of(rows)
    label = rows["label"].fillna("").astype(str) if "label" in rows else pd.Series("", index=rows.index)
    return pd.DataFrame({"subject": subject, "label": label}, index=rows.index)


def _stratum(videos: pd.DataFrame) -> dict[str, str]:
    """subject -> the most common label of its videos (ties to the first label in sorted order)."""
    out = {}
    for subject, labels in videos.groupby("subject")["label"]:
        counts = labels.value_counts()
        out[str(subject)] = sorted(counts[counts == counts.max()].index)[0]
    return out


def carve_dev(train_subjects: list[str], strata: dict[str, str], dev_fraction: float, seed: int,
              fold: int) -> set[str]:
    """The dev subjects carved from a fold's training subjects (see the module docstring)."""
    rng = np.random.default_rng([seed, fold])
    by_stratum: dict[str, list[str]] = {}
    for subject in sorted(train_subjects):
        by_stratum.setdefault(strata[subject], []).append(subject)
    dev: set[str] = set()
    shuffled = {s: [subjects[i] for i in rng.permutation(len(subjects))] for s, subjects in sorted(by_stratum.items())}
    for subjects in shuffled.values():
        n = min(int(round(dev_fraction * len(subjects))), len(subjects) - 1)
        dev |= set(subjects[:max(n, 0)])
    if not dev:
        spare = [s for s in sorted(shuffled, key=lambda s: (-len(shuffled[s]), s)) if len(shuffled[s]) >= 2]
        if spare:
            dev.add(shuffled[spare[0]][0])
    return dev


def assignments(samples: pd.DataFrame, cv: dict) -> list[dict[str, str]]:
    """Per fold (in order), subject -> ``train`` / ``dev`` / ``test`` under ``cv`` (the config's
    ``cv`` section: scheme, folds, seed, dev_fraction); ``fixed``: ``[]`` (the sheet's splits)."""
    scheme = cv.get("scheme", "fixed")
    if scheme not in SCHEMES:
        raise FacevoxError(f"cv.scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")
    if scheme == "fixed":
        return []
    seed, dev_fraction = int(cv.get("seed", 0)), float(cv.get("dev_fraction", 0.2))
    videos = _subjects(samples)
    subjects = sorted(set(videos["subject"]))
    if len(subjects) < 2:
        raise FacevoxError(f"cv.scheme {scheme}: the sheet has {len(subjects)} subject(s) with a split; "
                           "cross-validation needs at least 2")
    strata = _stratum(videos)
    if scheme == "loso":
        tests = [{s} for s in subjects]
    else:
        from sklearn.model_selection import StratifiedGroupKFold

        k = int(cv.get("folds", 5))
        if not 2 <= k <= len(subjects):
            raise FacevoxError(f"cv.folds is {k}: k-fold cross-validation needs 2 <= folds <= the sheet's "
                               f"{len(subjects)} subjects")
        order = videos.sort_values("subject", kind="stable")
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        y = order["label"].to_numpy() if order["label"].nunique() > 1 else np.zeros(len(order), int)
        tests = []
        for _, test_ix in splitter.split(np.zeros(len(order)), y, order["subject"].to_numpy()):
            tests.append(set(order["subject"].iloc[test_ix]))
        empty = [i for i, t in enumerate(tests) if not t]
        if empty:
            raise FacevoxError(f"cv.folds is {k}: fold(s) {empty} would hold no subject")
    out = []
    for fold, test in enumerate(tests):
        train = [s for s in subjects if s not in test]
        dev = carve_dev(train, strata, dev_fraction, seed, fold)
        out.append({s: "test" if s in test else "dev" if s in dev else "train" for s in subjects})
    return out


def fold_sheet(samples: pd.DataFrame, assignment: dict[str, str]) -> pd.DataFrame:
    """``samples`` with every video's ``split`` set to its subject's in ``assignment`` (a video whose
    subject is not assigned - not in play - gets an empty split)."""
    out = samples.copy()
    out["split"] = [assignment.get(s, "") for s in subjects_of(out)]
    return out


def describe(assignment: dict[str, str], fold: int, cv: dict) -> dict:
    """What a fold's metrics record says about it: the scheme, fold index and name, fold count,
    subjects in play and the held-out subjects."""
    n_folds = int(cv["folds"]) if cv["scheme"] == "kfold" else len(assignment)
    return {"fold": fold, "fold_name": f"fold{fold}",
            "cv": {"scheme": cv["scheme"], "folds": n_folds, "seed": int(cv.get("seed", 0)),
                   "dev_fraction": float(cv.get("dev_fraction", 0.2)), "subjects": len(assignment),
                   "test_subjects": sorted(s for s, split in assignment.items() if split == "test"),
                   "dev_subjects": sorted(s for s, split in assignment.items() if split == "dev")}}


def run(sheet, out, assignment_json: str) -> pd.DataFrame:
    """Write the fold's sheet ``out``: ``sheet`` with the splits of ``assignment_json`` (subject ->
    split, as :func:`assignments` gives it); paths absolute, as the included sheet writes them."""
    from facevox.io import atomic_path
    from facevox.samples import read_samples

    try:
        assignment = json.loads(assignment_json)
    except ValueError:
        raise FacevoxError(f"fold sheet: the assignment is not JSON: {assignment_json[:80]!r}") from None
    table = fold_sheet(read_samples(sheet, check_files=False), assignment)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, sep="\t", index=False, na_rep="")
    return table
