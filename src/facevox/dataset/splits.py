"""Subject-level splits: the leak guard, and a stratified split maker.

A *subject* is the ``subject_id`` of the sample sheet.  Every video of a subject
must be in one split, or a model is tested on people it was trained on.

:func:`check_subject_splits` - the guard (run by ``shards.build`` before anything else)
    Groups the rows that have both a ``subject_id`` and a ``split`` (empty, None
    or NaN cells are ignored) by subject; every subject found in more than one
    split is one problem line naming the subject, each split and its videos,
    all reported together in one :class:`~facevox.samples.SampleSheetError`.

:func:`make_splits` - subject-level, stratified by (label, gender)
    1. A video with an empty ``subject_id`` is its own subject (its ``video_id``).
    2. A subject's stratum is the ``(label, gender)`` of its first video in
       sheet order (empty cells are a value of their own).
    3. Strata are taken in sorted order; within each, the subject ids are sorted,
       then shuffled by one ``numpy.random.default_rng(seed)`` shared by all
       strata, so the result depends only on the sheet's content and the seed.
    4. Rounding: a stratum of ``n`` subjects has quotas ``q_k = n * r_k``
       (ratios normalised to sum 1).  Split *k* first gets ``floor(q_k)``; the
       ``n - sum(floor(q_k))`` subjects left over go, one each, to those
       splits with a fractional quota that are furthest below their *overall*
       target so far - the largest ``r_k * (subjects in the strata done, this
       one included) - (subjects given to k so far)``, ties to the earlier
       split (train, dev, test).
       So each stratum's counts are within one subject of its quotas, and the
       overall counts stay within about one subject of ``N * r_k`` instead of
       drifting by one per stratum.
    5. The shuffled subjects are cut in that order: the first ``c_train`` go
       to train, the next ``c_dev`` to dev, the rest to test; every video of a
       subject gets its subject's split.  Existing splits are overwritten.

:func:`study_warnings` - what makes a study's numbers shaky, one line each (DAG time)
    A split with fewer than ``min_split_videos`` videos; a split whose labelled videos
    are all of one class (AUC undefined, F1 of one class); no dev split, or a dev split
    of fewer than ``min_dev_videos`` videos or of one class (the best epoch and early
    stopping rest on it); a configured label no video has, or no train video has.
    Label checks apply only when some video has a label (a regression study has none).

:func:`unusable_class_warnings` - the same kind of line from what the QA records know
    A class of a split whose every video is unusable for the face models (e.g. the only
    test video of a class has no face): the models that need the face cannot predict that
    class, and the tables mark the row.

Tests: tests/test_splits.py
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from facevox.contract import SPLITS
from facevox.errors import FacevoxError
from facevox.samples import SampleSheetError


def _cells(series: pd.Series) -> list[str]:
    """Cells as stripped strings; None / NaN -> ''."""
    return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip() for v in series]


def _video_ids(samples: pd.DataFrame) -> list[str]:
    if "video_id" in samples.columns:
        return _cells(samples["video_id"])
    return [str(v) for v in samples.index]


def check_subject_splits(samples: pd.DataFrame, where: str = "sample sheet") -> None:
    """Raise SampleSheetError if any subject has videos in more than one split.

    ``samples`` is a sample sheet as ``read_samples`` returns it (or any frame
    with ``subject_id`` and ``split`` columns, and ``video_id`` as a column or
    the index); ``where`` names it in the error.  Rows with an empty split or
    subject are ignored.
    """
    for col in ("subject_id", "split"):
        if col not in samples.columns:
            raise SampleSheetError(where, [f"no {col} column: cannot check subject splits"])
    seen: dict[str, dict[str, list[str]]] = {}
    for vid, subject, split in zip(_video_ids(samples), _cells(samples["subject_id"]), _cells(samples["split"])):
        if subject and split:
            seen.setdefault(subject, {}).setdefault(split, []).append(vid)
    problems = []
    for subject in sorted(seen):
        splits = seen[subject]
        if len(splits) > 1:
            order = sorted(splits, key=lambda s: (SPLITS.index(s) if s in SPLITS else len(SPLITS), s))
            parts = [f"{s} (video{'s' if len(splits[s]) > 1 else ''} {', '.join(splits[s])})" for s in order]
            problems.append(f"subject {subject!r} is in {len(splits)} splits: {'; '.join(parts)}")
    if problems:
        raise SampleSheetError(where, problems)


def split_counts(n: int, ratios, deficit: np.ndarray) -> np.ndarray:
    """Subjects per split for a stratum of ``n`` (rule 4); updates ``deficit`` in place.

    ``deficit[k]`` is split k's overall target minus what it has been given so far.
    """
    quotas = np.round(n * np.asarray(ratios, np.float64), 9)  # 0.7 * 10 is 7, not 7.000000000000001
    counts = np.floor(quotas).astype(np.int64)
    deficit += quotas - counts
    left = n - int(counts.sum())
    if left > 0:  # only splits with a fractional quota may take one more: counts stay floor or ceil
        eligible = np.where(quotas > counts, deficit, -np.inf)
        top = np.argsort(-eligible, kind="stable")[:left]
        counts[top] += 1
        deficit[top] -= 1
    return counts


def _check_ratios(ratios) -> np.ndarray:
    r = np.asarray(ratios, np.float64)
    if r.shape != (len(SPLITS),) or not np.isfinite(r).all() or (r < 0).any() or r.sum() <= 0:
        raise FacevoxError(f"split ratios must be {len(SPLITS)} non-negative numbers "
                           f"({', '.join(SPLITS)}) with a positive sum, got {ratios!r}")
    return r / r.sum()


def make_splits(samples: pd.DataFrame, ratios=(0.7, 0.1, 0.2), seed: int = 0) -> pd.DataFrame:
    """A copy of ``samples`` with ``split`` filled at subject level (rules in the module docstring).

    ``ratios`` are the train, dev, test shares (normalised to sum 1).  The same
    sheet and seed always give the same splits; ``check_subject_splits`` passes
    on the result.
    """
    r = _check_ratios(ratios)
    out = samples.copy()

    def column(name: str) -> list[str]:
        return _cells(out[name]) if name in out.columns else [""] * len(out)

    # a video without a subject is its own subject (keyed apart from real subject ids)
    subjects = [s or f"video:{v}" for s, v in zip(column("subject_id"), _video_ids(out))]
    labels, genders = column("label"), column("gender")
    stratum_of: dict[str, tuple[str, str]] = {}
    for subject, label, gender in zip(subjects, labels, genders):
        stratum_of.setdefault(subject, (label, gender))
    strata: dict[tuple[str, str], list[str]] = {}
    for subject, key in stratum_of.items():
        strata.setdefault(key, []).append(subject)

    rng = np.random.default_rng(seed)
    deficit = np.zeros(len(SPLITS))
    split_of: dict[str, str] = {}
    for key in sorted(strata):
        members = sorted(strata[key])
        order = rng.permutation(len(members))
        counts = split_counts(len(members), r, deficit)
        bounds = np.cumsum(counts)
        for rank, i in enumerate(order):
            split_of[members[i]] = SPLITS[int(np.searchsorted(bounds, rank, side="right"))]
    out["split"] = [split_of[s] for s in subjects]
    return out


def study_warnings(samples: pd.DataFrame, labels=(), *, min_split_videos: int = 3,
                   min_dev_videos: int = 4) -> list[str]:
    """The degenerate-study warnings of a sample sheet (rules in the module docstring), one
    line each, in split order then label order; [] for a sound study.

    ``samples``: the sheet as ``read_samples`` returns it; ``labels``: config ``labels:``.
    """
    splits = _cells(samples["split"]) if "split" in samples.columns else [""] * len(samples)
    cells = _cells(samples["label"]) if "label" in samples.columns else [""] * len(samples)
    any_label = any(cells)
    out = []
    if "train" not in splits:
        return out  # nothing is trained: no split to judge
    for split in SPLITS:
        rows = [i for i, s in enumerate(splits) if s == split]
        if split == "dev":
            if not rows:
                out.append("split dev: no video - training keeps the last epoch, no early stopping "
                           "(give some subjects split dev)")
                continue
            if len(rows) < min_dev_videos:
                out.append(f"split dev: {len(rows)} video(s), fewer than models.min_dev_videos ({min_dev_videos}) - "
                           f"too few to pick the best epoch or stop early on")
        elif 0 < len(rows) < min_split_videos:
            out.append(f"split {split}: {len(rows)} video(s), fewer than models.min_split_videos "
                       f"({min_split_videos}) - its metrics rest on very few videos")
        classes = sorted({cells[i] for i in rows if cells[i]})
        if any_label and len(classes) == 1:
            n = sum(1 for i in rows if cells[i])
            out.append(f"split {split}: one class only ({classes[0]!r}, {n} video(s)) - AUC undefined, "
                       f"F1 of one class")
    if any_label:
        for label in labels:
            have = [splits[i] for i, c in enumerate(cells) if c == label]
            if not have:
                out.append(f"label {label!r} (config labels): no video of the sheet has it")
            elif "train" not in have:
                out.append(f"label {label!r}: no train video has it - models cannot learn it")
    return out



def unusable_class_warnings(samples: pd.DataFrame, unusable: dict[str, str]) -> list[str]:
    """The study warnings of the videos known to be unusable for the face models (``unusable``:
    video id -> why; facevox.extract.qa.unusable_reason of their QA records): a class of a split
    of two or more classes whose every video is unusable (e.g. the only test video of a class
    has no face), one line each in split order then label order.  Beside :func:`study_warnings`
    (whose one-class splits and train-less sheets it leaves to that function)."""
    splits = _cells(samples["split"]) if "split" in samples.columns else [""] * len(samples)
    cells = _cells(samples["label"]) if "label" in samples.columns else [""] * len(samples)
    if not unusable or "train" not in splits:
        return []
    ids = list(samples.index)
    out = []
    for split in SPLITS:
        rows = [i for i, s in enumerate(splits) if s == split]
        classes = sorted({cells[i] for i in rows if cells[i]})
        for label in classes if len(classes) > 1 else []:
            of_class = [ids[i] for i in rows if cells[i] == label]
            if all(v in unusable for v in of_class):
                why = "; ".join(f"{v}: {unusable[v]}" for v in of_class)
                out.append(f"split {split}: every {label!r} video is unusable for the face models ({why}) - "
                           f"they cannot predict the class: AUC undefined, the tables mark the row "
                           f"'[no {label} video]'")
    return out
