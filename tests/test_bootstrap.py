"""Tests for facevox.report.bootstrap: the subject-level resampling unit (``groups``) and the Holm correction."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from facevox.errors import FacevoxError
from facevox.report import bootstrap
from facevox.training.metrics import classification_metrics

CLASSES = ["depression", "normal"]


def _cls_table(truth, pred, videos):
    return pd.DataFrame({"split": "test", "video_id": videos, "label": truth, "predicted": pred})


def _reg_table(truth, pred, videos):
    return pd.DataFrame({"split": "test", "video_id": videos, "score_true": truth, "score_pred": pred})


def _flip(labels):
    return np.where(np.asarray(labels) == CLASSES[0], CLASSES[1], CLASSES[0])


# --------------------------------------------------------------------------- holm
def test_holm_hand_computed():
    # sorted: 0.005, 0.01, 0.03, 0.04 -> 4 * 0.005, 3 * 0.01, 2 * 0.03, 1 * 0.04 = 0.02, 0.03, 0.06, 0.04
    # running max: 0.02, 0.03, 0.06, 0.06; back in input order:
    assert bootstrap.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)


def test_holm_nan_single_cap_and_ties():
    # the NaN stays NaN and is not counted: m = 2, sorted 0.02, 0.04 -> 2 * 0.02, max(0.04, 1 * 0.04)
    got = bootstrap.holm([0.04, math.nan, 0.02])
    assert math.isnan(got[1]) and got[0] == pytest.approx(0.04) and got[2] == pytest.approx(0.04)
    assert bootstrap.holm([0.037]) == [0.037]  # m = 1: unchanged
    # capped at 1: 3 * 0.5 = 1.5 -> 1, then the running max keeps 1
    assert bootstrap.holm([0.5, 0.6, 0.01]) == pytest.approx([1.0, 1.0, 0.03])
    # ties: 3 * 0.02 = 0.06, then max(0.06, 2 * 0.02 = 0.04) = 0.06, then 1 * 0.9
    assert bootstrap.holm([0.02, 0.9, 0.02]) == pytest.approx([0.06, 0.9, 0.06])
    assert bootstrap.holm([]) == []
    assert all(math.isnan(v) for v in bootstrap.holm([math.nan, math.nan]))
    with pytest.raises(FacevoxError, match=r"\[0, 1\]"):
        bootstrap.holm([0.2, 1.5])


# --------------------------------------------------------------------------- subject weights
def test_resample_weights_by_hand():
    """3 subjects; a video's weight is its subject's draw count."""
    videos = ["a0", "a1", "b0", "c0", "c1", "c2"]
    groups = {"a0": "zed", "a1": "zed", "b0": "amy", "c0": "kim", "c1": "kim", "c2": "kim", "other": "bob"}
    weights, unit, units = bootstrap.resample_weights(videos, groups, 40, seed=5)
    assert (unit, units) == ("subject", 3)  # "bob" has no video in play
    counts = bootstrap.resample_counts(3, 40, seed=5)  # columns: amy, kim, zed (sorted)
    assert (weights == counts[:, [2, 2, 0, 1, 1, 1]]).all()
    plain, unit, units = bootstrap.resample_weights(videos, None, 40, seed=5)
    assert (unit, units) == ("video", 6) and (plain == bootstrap.resample_counts(6, 40, seed=5)).all()
    with pytest.raises(FacevoxError, match="b0"):
        bootstrap.resample_weights(videos, {v: s for v, s in groups.items() if v != "b0"}, 40, seed=5)
    with pytest.raises(FacevoxError, match="c1"):
        bootstrap.resample_weights(videos, groups | {"c1": None}, 40, seed=5)


def test_subject_weighted_statistic_equals_replicated_rows():
    """Fixed subject counts (amy 0, kim 1, zed 2): zed's two right videos twice, kim's three
    once (2 right, 1 wrong), amy's wrong video not at all -> accuracy (2 * 2 + 2) / (2 * 2 + 3) = 6 / 7."""
    videos = ["a0", "a1", "b0", "c0", "c1", "c2"]
    truth = np.array(["depression", "normal", "normal", "depression", "normal", "normal"])
    pred = np.array(["depression", "normal", "depression", "depression", "depression", "normal"])
    stats = bootstrap.video_stats(_cls_table(truth, pred, videos), "classification", "accuracy", videos, CLASSES)
    weights = np.array([[0, 1, 2]], float)[:, [2, 2, 0, 1, 1, 1]]  # subject counts -> video weights
    got = bootstrap.metric_from_stats(weights @ stats, "classification", "accuracy", CLASSES)[0]
    assert got == pytest.approx(6 / 7)
    idx = np.repeat(np.arange(6), [2, 2, 0, 1, 1, 1])
    want = classification_metrics(truth[idx], pred[idx], np.zeros(len(idx)), CLASSES, "depression")
    assert got == pytest.approx(want["accuracy"])
    # the same for random draws, through resample_weights, for a metric that is not a plain mean
    groups = {"a0": "zed", "a1": "zed", "b0": "amy", "c0": "kim", "c1": "kim", "c2": "kim"}
    weights, _, _ = bootstrap.resample_weights(videos, groups, 25, seed=1)
    got = bootstrap.metric_from_stats(weights @ stats, "classification", "f1_macro", CLASSES)
    for row, value in zip(weights.astype(int), got):
        idx = np.repeat(np.arange(6), row)
        want = classification_metrics(truth[idx], pred[idx], np.zeros(len(idx)), CLASSES, "depression")
        assert value == pytest.approx(want["f1_macro"]) if len(idx) else math.isnan(value)


# --------------------------------------------------------------------------- bootstrap_ci with groups
def test_one_video_per_subject_equals_video_bootstrap():
    rng = np.random.default_rng(8)
    videos = [f"v{i:03d}" for i in range(40)]
    truth, pred = rng.choice(CLASSES, 40), rng.choice(CLASSES, 40)
    table = _cls_table(truth, pred, videos)
    groups = {v: f"s{v}" for v in videos}  # sorts as the videos do
    args = dict(task="classification", metric="f1_weighted", classes=CLASSES, resamples=300, seed=3)
    by_video = bootstrap.bootstrap_ci([table, table.iloc[3:]], **args)
    by_subject = bootstrap.bootstrap_ci([table, table.iloc[3:]], groups=groups, **args)
    assert (by_video["unit"], by_video["units"]) == ("video", 40)
    assert (by_subject["unit"], by_subject["units"]) == ("subject", 40)
    drop = {"unit"}
    assert {k: v for k, v in by_subject.items() if k not in drop} == {k: v for k, v in by_video.items()
                                                                    if k not in drop}


def test_planted_cohort_subject_interval_is_wider():
    """12 subjects x 5 videos; subjects 0-7 right on all their videos, 8-11 wrong on all:
    accuracy 40 / 60 = 2 / 3.  Drawing videos treats 60 independent items (sd about
    sqrt(2/9 / 60) = 0.061), drawing subjects only 12 (sd about sqrt(2/9 / 12) = 0.136),
    so the subject-level interval is about sqrt(5) = 2.2 times as wide."""
    videos = [f"s{s:02d}_v{k}" for s in range(12) for k in range(5)]
    groups = {v: v[:3] for v in videos}
    truth = np.array(CLASSES * 30)
    right = np.repeat(np.arange(12) < 8, 5)
    table = _cls_table(truth, np.where(right, truth, _flip(truth)), videos)
    args = dict(task="classification", metric="accuracy", classes=CLASSES, resamples=1000, seed=0)
    by_video = bootstrap.bootstrap_ci([table], **args)
    by_subject = bootstrap.bootstrap_ci([table], groups=groups, **args)
    assert by_subject["estimate"] == by_video["estimate"] == pytest.approx(2 / 3)
    assert (by_subject["unit"], by_subject["units"], by_subject["videos"]) == ("subject", 12, 60)
    width_video = by_video["high"] - by_video["low"]
    width_subject = by_subject["high"] - by_subject["low"]
    assert width_video == pytest.approx(2 * 1.96 * math.sqrt(2 / 9 / 60), abs=0.04)
    assert width_subject == pytest.approx(2 * 1.96 * math.sqrt(2 / 9 / 12), abs=0.08)
    assert width_subject >= 1.5 * width_video
    with pytest.raises(FacevoxError, match="s11_v4"):
        bootstrap.bootstrap_ci([table], groups={v: s for v, s in groups.items() if v != "s11_v4"}, **args)


def test_subject_bootstrap_regression_matches_explicit_resampling():
    """MAE of 4 subjects x 3 videos: each subject has its own error size.  The interval
    equals the percentile interval of the MAE computed on the explicitly replicated
    videos of the drawn subjects."""
    subject_err = np.array([1.0, 2.0, 4.0, 8.0])
    videos = [f"p{s}_{k}" for s in range(4) for k in range(3)]
    groups = {v: v[:2] for v in videos}
    truth = np.linspace(0, 22, 12)
    err = np.repeat(subject_err, 3) * np.tile([1.0, -1.0, 0.5], 4)
    table = _reg_table(truth, truth + err, videos)
    ci = bootstrap.bootstrap_ci([table], "regression", "mae", resamples=500, seed=2, groups=groups)
    # |err| per subject: (1 + 1 + 0.5) * e = 2.5 e over 3 videos; mean over subjects 2.5 / 3 * 15 / 4 = 3.125
    assert ci["estimate"] == pytest.approx(3.125)
    counts = bootstrap.resample_counts(4, 500, seed=2)
    values = [np.abs(err[np.repeat(np.arange(12), np.repeat(row, 3))]).mean() for row in counts]
    assert (ci["low"], ci["high"]) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])))
    assert (ci["unit"], ci["units"], ci["valid"]) == ("subject", 4, 500)


# --------------------------------------------------------------------------- paired_bootstrap with groups
def test_paired_subject_bootstrap_missing_video_and_identical_models():
    videos = [f"s{s}_v{k}" for s in range(6) for k in range(3)]
    groups = {v: v[:2] for v in videos}
    rng = np.random.default_rng(4)
    truth, pred = rng.choice(CLASSES, 18), rng.choice(CLASSES, 18)
    table = _cls_table(truth, pred, videos)
    args = dict(task="classification", metric="f1_weighted", classes=CLASSES, resamples=400)
    out = bootstrap.paired_bootstrap({0: table, 1: table}, {0: table.sample(frac=1, random_state=1), 1: table},
                                     groups=groups, **args)
    assert out["p_value"] == 1.0 and (out["difference"], out["low"], out["high"]) == (0.0, 0.0, 0.0)
    assert not out["significant"] and out["better"] == ""
    assert (out["unit"], out["units"], out["videos"]) == ("subject", 6, 18)
    with pytest.raises(FacevoxError, match="s2_v1"):
        bootstrap.paired_bootstrap({0: table}, {0: table}, groups={v: s for v, s in groups.items() if v != "s2_v1"},
                                   **args)
    # a video only A predicted is not in play, so it need not be in groups
    extra = pd.concat([table, _cls_table(["normal"], ["normal"], ["x9"])], ignore_index=True)
    only_a = bootstrap.paired_bootstrap({0: extra}, {0: table}, groups=groups, **args)
    assert only_a["videos"] == 18 and only_a["p_value"] == 1.0
    video = bootstrap.paired_bootstrap({0: table}, {0: table}, **args)
    assert (video["unit"], video["units"]) == ("video", 18)


def test_paired_subject_bootstrap_matches_explicit_resampling():
    """A's MAE minus B's on 5 subjects x 2 videos, one subject draw shared by A, B and both seeds."""
    videos = [f"q{s}_{k}" for s in range(5) for k in range(2)]
    groups = {v: v[:2] for v in videos}
    truth = np.arange(10, dtype=float)
    err_a = np.array([0.5, 0.5, 1.0, 1.0, 0.2, 0.4, 3.0, 3.0, 0.1, 0.3])
    err_b = np.array([1.0, 2.0, 1.0, 1.5, 0.2, 0.2, 5.0, 4.0, 0.1, 1.3])
    a = {0: _reg_table(truth, truth + err_a, videos), 1: _reg_table(truth, truth - err_a, videos)}
    b = {0: _reg_table(truth, truth + err_b, videos), 1: _reg_table(truth, truth + err_b, videos)}
    out = bootstrap.paired_bootstrap(a, b, "regression", "mae", resamples=300, seed=6, groups=groups)
    assert out["difference"] == pytest.approx(err_a.mean() - err_b.mean())  # 10.0 / 10 - 16.3 / 10
    assert out["difference"] == pytest.approx(-0.63)
    counts = bootstrap.resample_counts(5, 300, seed=6)
    diffs = []
    for row in counts:
        w = np.repeat(row, 2).astype(float)
        diffs.append((w @ err_a - w @ err_b) / w.sum())
    diffs = np.array(diffs)
    assert (out["low"], out["high"]) == pytest.approx(tuple(np.quantile(diffs, [0.025, 0.975])))
    tail = min(1 + (diffs <= 0).sum(), 1 + (diffs >= 0).sum())
    assert out["p_value"] == pytest.approx(min(1.0, 2 * tail / 301))
    assert (out["unit"], out["units"], out["videos"], out["seeds"]) == ("subject", 5, 10, [0, 1])
