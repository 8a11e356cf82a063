"""facevox.training.evaluate: slice predictions -> video predictions (voting) -> metrics."""
import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from facevox.errors import FacevoxError
from facevox.training.evaluate import aggregate, split_metrics, video_predictions

CLASSES = ["depression", "normal"]


def test_majority_vote_and_mean_probability_by_hand():
    ids = ["a", "a", "a", "b", "b", "c", "c"]
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.45, 0.55],   # a: 1 vote depression, 2 normal; mean 0.583 dep
                      [0.6, 0.4], [0.3, 0.7],                 # b: tie 1-1; mean 0.45 dep -> normal
                      [0.8, 0.2], [0.7, 0.3]])                # c: depression either way
    majority = aggregate(ids, probs, "majority").set_index("video_id")
    mean = aggregate(ids, probs, "mean").set_index("video_id")
    assert majority["class"].to_dict() == {"a": 1, "b": 1, "c": 0}
    assert mean["class"].to_dict() == {"a": 0, "b": 1, "c": 0}
    assert majority.loc["a", "votes"].tolist() == [1, 2] and majority.loc["a", "n_slices"] == 3
    assert majority.loc["a", "probs"][0] == pytest.approx((0.9 + 0.4 + 0.45) / 3)
    with pytest.raises(FacevoxError, match="vote must be"):
        aggregate(ids, probs, "max")


def test_video_metrics_match_scikit_learn_by_hand():
    truth = {"a": "depression", "b": "depression", "c": "normal", "d": "normal", "e": "normal", "x": "normal"}
    ids = ["a", "b", "b", "c", "d", "e"]
    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9], [0.2, 0.8]])
    table, unpredicted = video_predictions("test", ids, truth, probs, CLASSES, "depression", "majority",
                                           ["a", "b", "c", "d", "e", "x"])
    assert table["predicted"].tolist() == ["depression", "normal", "depression", "normal", "normal"]
    assert unpredicted == ["x"]
    m = split_metrics(table, CLASSES, "depression")
    y_true = ["depression", "depression", "normal", "normal", "normal"]
    y_pred = table["predicted"].tolist()
    assert m["n"] == 5 and m["accuracy"] == pytest.approx(3 / 5)
    assert m["f1_weighted"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    assert m["f1_macro"] == pytest.approx(0.5 * (0.5 + 2 / 3))  # depression F1 1/2, normal F1 2/3
    assert m["precision_positive"] == 0.5 and m["recall_positive"] == 0.5
    # AUC from mean positive probability: a .8, b .25 vs c .6, d .1, e .2 -> 5 of 6 pairs ordered
    assert m["auc"] == pytest.approx(5 / 6)
    assert m["confusion_matrix"] == {"labels": CLASSES, "matrix": [[1, 1], [1, 2]]}


def test_one_class_split_has_no_auc_and_empty_split_no_numbers():
    table, _ = video_predictions("test", ["a"], {"a": "normal"}, np.array([[0.2, 0.8]]), CLASSES, "depression",
                                 "mean", ["a"])
    assert math.isnan(split_metrics(table, CLASSES, "depression")["auc"])
    empty, unpredicted = video_predictions("test", [], {}, np.zeros((0, 2)), CLASSES, "depression", "mean", ["z"])
    assert split_metrics(empty, CLASSES, "depression")["n"] == 0 and unpredicted == ["z"]


def test_classes_without_a_predicted_video():
    """A class whose every video of the split is unpredicted is named with its videos; a
    class with one predicted video, or a video without a label, is not."""
    import pandas as pd

    from facevox.training.evaluate import classes_unpredicted

    table = pd.DataFrame({"video_id": ["a", "b"], "label": ["depression", "depression"]})
    labels = {"a": "depression", "b": "depression", "c": "normal", "d": "normal", "e": "depression", "f": None}
    assert classes_unpredicted(table, ["c", "d", "e", "f"], labels) == {"normal": ["c", "d"]}
    assert classes_unpredicted(table, [], labels) == {}
