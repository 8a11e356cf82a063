"""Evaluation: slice predictions -> video predictions -> metrics JSON per (model, seed).

Classification (sequence and sklearn models, on shard sets):

* every slice gets class probabilities (softmax of the logits);
* a video's label is the **majority vote** of its slices' predicted classes
  (STST, ``vote: majority``; a tie goes to the class with the higher mean
  probability) or the class of the **mean probability** (``vote: mean``);
* a video's score for AUC is the mean probability of the positive class over
  its slices, in both modes (a vote fraction has too few levels for ROC);
* slices whose real rows are more than ``max_missing_fraction`` still missing
  (long gaps, e.g. no face) are not used; a video left without slices is listed
  under ``unpredicted`` and is not in the metrics (``n`` says how many are); a class
  whose every video of the split is unpredicted is listed under ``classes_unpredicted``
  ({class: videos}: its metrics are of the other class only, the tables mark the row);
* metrics (facevox.training.metrics.classification_metrics): accuracy, weighted / macro
  / positive-class precision, recall and F1, AUC, confusion matrix, for the dev
  and test splits, at video level and at slice level.

Outputs: ``results/metrics/<model>/seed<seed>.json`` and the video-level
predictions ``results/predictions/<model>/seed<seed>.parquet`` (for ROC curves,
bootstrap intervals and the report).

Tests: tests/test_evaluate.py
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from facevox.errors import FacevoxError
from facevox.training.metrics import classification_metrics

PREDICTION_SCHEMA = pa.schema([
    pa.field("split", pa.string()),
    pa.field("video_id", pa.string()),
    pa.field("label", pa.string()),
    pa.field("predicted", pa.string()),
    pa.field("prob_positive", pa.float64()),
    pa.field("n_slices", pa.int32()),
    pa.field("votes_positive", pa.int32()),
])


def aggregate(video_ids, probs: np.ndarray, vote: str) -> pd.DataFrame:
    """Slice probabilities [N, K] -> one row per video (first-seen order): ``class``
    (index), ``probs`` (mean probability per class), ``votes`` (slice votes per class),
    ``n_slices``."""
    if vote not in ("majority", "mean"):
        raise FacevoxError(f"vote must be majority or mean, not {vote!r}")
    probs = np.asarray(probs, np.float64)
    frame = pd.DataFrame({"video_id": list(video_ids)})
    rows = []
    for vid, index in frame.groupby("video_id", sort=False).indices.items():
        p = probs[index]
        mean = p.mean(0)
        votes = np.bincount(p.argmax(1), minlength=p.shape[1])
        if vote == "mean":
            cls = int(mean.argmax())
        else:
            top = np.flatnonzero(votes == votes.max())
            cls = int(top[np.argmax(mean[top])])
        rows.append({"video_id": vid, "class": cls, "probs": mean, "votes": votes, "n_slices": len(index)})
    return pd.DataFrame(rows, columns=["video_id", "class", "probs", "votes", "n_slices"])


def video_predictions(split: str, video_ids, true_labels: dict, probs, classes: list[str], positive: str,
                      vote: str, all_videos: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The prediction table of one split and the videos without any usable slice."""
    pos = classes.index(positive)
    agg = aggregate(video_ids, probs, vote) if len(video_ids) else aggregate([], np.zeros((0, len(classes))), vote)
    table = pd.DataFrame({
        "split": split,
        "video_id": agg["video_id"].astype(str),
        "label": [true_labels[v] for v in agg["video_id"]],
        "predicted": [classes[c] for c in agg["class"]],
        "prob_positive": [float(p[pos]) for p in agg["probs"]],
        "n_slices": agg["n_slices"].astype(np.int32),
        "votes_positive": [int(v[pos]) for v in agg["votes"]],
    })
    unpredicted = [v for v in all_videos if v not in set(table["video_id"])]
    return table, unpredicted


def classes_unpredicted(table: pd.DataFrame, unpredicted, labels: dict) -> dict[str, list[str]]:
    """The classes of a split that no predicted video has, though the split has videos of them
    (all unpredicted, e.g. the only test video of a class has no face): {class: [its videos]}.
    ``labels``: video id -> label (the sample sheet); a video without one is skipped.  The metrics
    of such a split are of the other class(es) only (AUC undefined), and the tables say so."""
    have = set(table["label"])
    lost: dict[str, list[str]] = {}
    for video in unpredicted:
        label = labels.get(video)
        if isinstance(label, str) and label and label not in have:
            lost.setdefault(label, []).append(video)
    return lost


def split_metrics(table: pd.DataFrame, classes: list[str], positive: str) -> dict:
    """Classification metrics of one split's video-level predictions table."""
    return classification_metrics(table["label"], table["predicted"], table["prob_positive"], classes, positive)


def slice_metrics(labels: np.ndarray, probs: np.ndarray, classes: list[str], positive: str) -> dict:
    """Classification metrics of slice-level class probabilities (integer labels)."""
    pred = probs.argmax(1) if len(probs) else np.zeros(0, int)
    return classification_metrics([classes[i] for i in labels], [classes[i] for i in pred],
                                  probs[:, classes.index(positive)] if len(probs) else [], classes, positive)
