"""Subject- or video-level bootstrap intervals (:func:`bootstrap_ci`), paired comparisons between
two models (:func:`paired_bootstrap`) and the Holm correction of several p-values (:func:`holm`),
used by facevox.report.tables for each table's headline metric.

* Videos: the union of the video ids in the seeds' prediction tables of one split
  (sorted, so the draw does not depend on file order).
* Unit: the **subject** whenever the subjects are known (``groups``: video id -> subject
  id), else the **video** (``groups=None``).  Several videos of one person are not
  independent, so a subject's videos are drawn together: the units are the sorted distinct
  subjects of the videos in play; a resample draws that many subjects with replacement and
  every video of a drawn subject gets its subject's draw count as weight (a subject drawn
  twice counts all its videos twice).  A video missing from ``groups`` (or mapped to a
  missing subject) is an error, never silently a unit of its own.  With ``groups=None`` the
  unit is the video and each video's weight is its own draw count.  Both results report
  ``unit`` (``"subject"`` / ``"video"``) and ``units`` (how many there were to draw from)
  next to ``videos``.  With one video per subject, and subject ids that sort as their
  videos do, the two units give identical numbers.
* One resample draws ``units`` units with replacement (``numpy.random.default_rng(seed)``,
  ``resamples`` draws, both from the config). The **same** drawn units are used for
  every seed (paired), each seed's metric is computed on its rows of the drawn videos
  (a video drawn twice counts twice; a video a seed left unpredicted is absent from
  that seed), and the resample's statistic is the **mean over seeds** of that metric,
  the quantity a table cell reports. Pooling over seeds this way gives the interval of
  the seed mean under test-set sampling; the seed-to-seed spread is the cell's sd.
* Interval: percentile method, ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of
  the resample statistics (numpy's linear interpolation). Resamples whose statistic is
  undefined (e.g. a seed with no drawn video, CCC of fewer than two values) are left
  out and counted (``valid``).
* ``estimate`` is the same statistic on the full set (no resampling).
* Speed: a resample is a vector of per-video weights ``w`` (:func:`resample_weights`: the
  ``[resamples, units]`` draw counts of :func:`resample_counts`, columns picked per video); the metric is computed
  from ``w @ S`` (:func:`metric_from_stats`) with ``S`` each video's sufficient
  statistics (:func:`video_stats`): the (true, predicted)
  cell of the confusion matrix for classification, the sums ``1, t, p, t^2, p^2, tp,
  |p - t|, (p - t)^2`` (centred on the seed's mean true value, for numerical range)
  for regression and, per dimension and summed over a video's steps, for continuous
  affect (CCC over the pooled steps of the drawn videos, as AVEC computes it over
  concatenated sequences). 1000 resamples cost milliseconds. The formulas are those
  of facevox.training.metrics (sklearn's ``zero_division=0`` for precision / recall / F1;
  CCC edge cases of :func:`facevox.training.metrics.ccc`); tests check they agree.

Paired comparison (:func:`paired_bootstrap`, model A against a reference model B):

* Pairing: only the seeds both models have (the same seed numbers) and the videos both
  predicted (each model's videos are the union over those seeds; the intersection is
  kept), so both sides see exactly the same test items.  With ``groups`` the units are the
  subjects of those common videos (only they must be in ``groups``).
* One resample draws those units with replacement (the same draw for A, for B and for
  every seed); its statistic is the difference ``d = mean over seeds of metric(A) - mean
  over seeds of metric(B)``.  Because both models are evaluated on the same draw, the
  unit-to-unit variation they share cancels and the interval is that of the
  *difference* - narrower than comparing the two rows' separate intervals.
* ``difference`` is ``d`` on the full set; the interval is the percentile interval of the
  valid resampled ``d``.
* p-value (two-sided, for "no difference"): ``min(1, 2 * min(1 + #(d <= 0), 1 + #(d >= 0)) /
  (valid + 1))`` - twice the smaller tail of the bootstrap distribution at 0, with the
  usual +1 so it is never exactly 0 (the smallest value is ``2 / (valid + 1)``).  Two
  identical models give ``d = 0`` in every resample, hence p = 1.
* ``significant``: the interval excludes 0.  ``better`` says which side is better in the
  metric's direction (:data:`LOWER_IS_BETTER` for MAE / RMSE): ``"a"``, ``"b"`` or ``""``
  (not significant).

Holm correction (:func:`holm`), for the p-values of several comparisons reported together
(e.g. every model against the reference): Holm-Bonferroni step-down adjusted p-values, in
the input order.  With the ``m`` finite p-values sorted ascending ``p_(1) <= ... <= p_(m)``
(ties in input order), ``adjusted_(i) = max over j <= i of min(1, (m - j + 1) * p_(j))``;
NaN p-values (an undefined comparison) stay NaN and do not count in ``m``.  Rejecting where
the adjusted p is below ``alpha`` controls the family-wise error rate at ``alpha``.

Tests: tests/test_report.py, tests/test_bootstrap.py
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from facevox.errors import FacevoxError

#: Classification metrics the bootstrap computes from confusion counts.
CLASSIFICATION_STATS = ("accuracy", "precision_weighted", "recall_weighted", "f1_weighted",
                        "precision_macro", "recall_macro", "f1_macro")
#: Regression / continuous metrics the bootstrap computes from sums.
REGRESSION_STATS = ("mae", "rmse", "pcc", "ccc")
#: Metrics where a lower value is better (every other one: higher is better).
LOWER_IS_BETTER = frozenset({"mae", "rmse"})


# =========================================================================== bootstrap
def resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, n]`` counts: how often each of ``n`` units (videos or subjects) is drawn in each resample
    (``n`` draws with replacement per resample, ``numpy.random.default_rng(seed)``)."""
    if resamples < 1:
        raise FacevoxError(f"bootstrap: resamples must be at least 1, got {resamples}")
    if n == 0:
        return np.zeros((resamples, 0), np.int64)
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    offsets = (np.arange(resamples) * n)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=resamples * n).reshape(resamples, n)


def resample_weights(videos: Sequence[str], groups: Mapping[str, str] | None, resamples: int,
                     seed: int) -> tuple[np.ndarray, str, int]:
    """Per-video bootstrap weights ``[resamples, len(videos)]`` (float) with the resampling unit.

    ``groups=None``: the unit is the video, the weights are :func:`resample_counts` over the
    videos.  Else ``groups`` maps video id -> subject id, the units are the sorted distinct
    subjects of ``videos``, and each video's weight is its subject's draw count
    (``counts[:, subject_index_of_video]``).  Returns ``(weights, unit, units)`` with
    ``unit`` ``"subject"`` or ``"video"`` and ``units`` the number drawn from.  A video
    missing from ``groups`` (or with a missing subject) raises :class:`FacevoxError`.
    """
    if groups is None:
        return resample_counts(len(videos), resamples, seed).astype(np.float64), "video", len(videos)
    missing = [v for v in videos if v not in groups or pd.isna(groups[v])]
    if missing:
        shown = ", ".join(missing[:10]) + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
        raise FacevoxError(f"bootstrap: no subject for {len(missing)} video(s) in groups: {shown}")
    of_video = [str(groups[v]) for v in videos]
    subjects = sorted(set(of_video))
    position = {s: i for i, s in enumerate(subjects)}
    column = np.array([position[s] for s in of_video], np.int64)
    counts = resample_counts(len(subjects), resamples, seed)
    return counts[:, column].astype(np.float64), "subject", len(subjects)


def confusion_metrics(counts: np.ndarray, metric: str) -> np.ndarray:
    """Metric of confusion matrices ``[..., C, C]`` (rows true, columns predicted);
    NaN where a matrix is empty."""
    if metric not in CLASSIFICATION_STATS:
        raise FacevoxError(f"bootstrap: classification metric {metric!r} is not one of {CLASSIFICATION_STATS}")
    counts = np.asarray(counts, np.float64)
    total = counts.sum((-2, -1))
    tp = np.diagonal(counts, axis1=-2, axis2=-1)
    support, predicted = counts.sum(-1), counts.sum(-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "accuracy":
            out = tp.sum(-1) / total
        else:
            kind, average = metric.split("_")
            denom = {"precision": predicted, "recall": support, "f1": support + predicted}[kind]
            per_class = np.where(denom > 0, (2 if kind == "f1" else 1) * tp / np.where(denom > 0, denom, 1), 0.0)
            if average == "macro":
                out = per_class.mean(-1)
            else:
                out = (per_class * support).sum(-1) / total
    return np.where(total > 0, out, np.nan)


def moment_metrics(sums: np.ndarray, metric: str) -> np.ndarray:
    """Metric from sums ``[..., 8]`` = ``n, t, p, t^2, p^2, tp, |p-t|, (p-t)^2``."""
    if metric not in REGRESSION_STATS:
        raise FacevoxError(f"bootstrap: regression metric {metric!r} is not one of {REGRESSION_STATS}")
    s = np.asarray(sums, np.float64)
    n = s[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "mae":
            return np.where(n > 0, s[..., 6] / n, np.nan)
        if metric == "rmse":
            return np.where(n > 0, np.sqrt(np.maximum(s[..., 7] / n, 0.0)), np.nan)
        mt, mp = s[..., 1] / n, s[..., 2] / n
        vt = np.maximum(s[..., 3] / n - mt ** 2, 0.0)
        vp = np.maximum(s[..., 4] / n - mp ** 2, 0.0)
        cov = s[..., 5] / n - mt * mp
        if metric == "pcc":
            tiny = 1e-12 * np.maximum(1.0, s[..., 3] / n)  # a constant side (rounding aside)
            out = np.where((vt > tiny) & (vp > tiny), cov / np.sqrt(vt * vp), np.nan)
        else:
            denom = vt + vp + (mt - mp) ** 2
            out = np.where(denom > 0, 2 * cov / np.where(denom > 0, denom, 1), 1.0)
    return np.where(n >= 2, out, np.nan)


def moment_rows(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-pair rows ``[n, 8]`` of ``1, t, p, t^2, p^2, tp, |p-t|, (p-t)^2``: their sums feed :func:`moment_metrics`."""
    t, p = np.asarray(true, np.float64), np.asarray(pred, np.float64)
    err = p - t
    return np.stack([np.ones_like(t), t, p, t * t, p * p, t * p, np.abs(err), err * err], 1)


def continuous_long(table: pd.DataFrame) -> pd.DataFrame:
    """A continuous-affect prediction table in long form: ``video_id, dimension, true, pred``."""
    if "dimension" in table.columns:
        missing = {"video_id", "true", "pred"} - set(table.columns)
        if missing:
            raise FacevoxError(f"continuous predictions: long form needs columns video_id, dimension, true, "
                               f"pred (missing {sorted(missing)})")
        return table[["video_id", "dimension", "true", "pred"]]
    dims = [c[:-5] for c in table.columns if c.endswith("_true") and f"{c[:-5]}_pred" in table.columns]
    if not dims:
        raise FacevoxError("continuous predictions: expected columns dimension/true/pred or <dim>_true/<dim>_pred")
    parts = [pd.DataFrame({"video_id": table["video_id"], "dimension": d, "true": table[f"{d}_true"],
                           "pred": table[f"{d}_pred"]}) for d in dims]
    return pd.concat(parts, ignore_index=True)


def video_stats(table: pd.DataFrame, task: str, metric: str, videos: list[str],
                 classes: list[str] | None) -> np.ndarray:
    """Per-video sufficient statistics ``[n_videos, k]`` of one seed's predictions
    (zero rows for videos the seed did not predict)."""
    index = {v: i for i, v in enumerate(videos)}
    rows = table["video_id"].astype(str).map(index).to_numpy(np.int64)
    if task == "classification":
        k = len(classes)
        pos = {c: i for i, c in enumerate(classes)}
        t = table["label"].astype(str).map(pos)
        p = table["predicted"].astype(str).map(pos)
        if t.isna().any() or p.isna().any():
            raise FacevoxError(f"bootstrap: a label or prediction is not among the classes {classes}")
        out = np.zeros((len(videos), k * k))
        np.add.at(out, (rows, (t * k + p).to_numpy(np.int64)), 1.0)
        return out
    if task == "regression":
        t, p = table["score_true"].to_numpy(np.float64), table["score_pred"].to_numpy(np.float64)
    else:
        dim = metric.removeprefix("ccc_")
        long = continuous_long(table)
        long = long[long["dimension"].astype(str) == dim]
        rows = long["video_id"].astype(str).map(index).to_numpy(np.int64)
        t, p = long["true"].to_numpy(np.float64), long["pred"].to_numpy(np.float64)
    keep = ~(np.isnan(t) | np.isnan(p))
    rows, t, p = rows[keep], t[keep], p[keep]
    centre = t.mean() if len(t) else 0.0
    out = np.zeros((len(videos), 8))
    np.add.at(out, rows, moment_rows(t - centre, p - centre))
    return out


def metric_from_stats(stats: np.ndarray, task: str, metric: str, classes: list[str] | None) -> np.ndarray:
    """``metric`` of summed :func:`video_stats` rows ``[..., k]`` (e.g. resample counts ``@`` the stats)."""
    if task == "classification":
        k = len(classes)
        return confusion_metrics(stats.reshape(*stats.shape[:-1], k, k), metric)
    return moment_metrics(stats, "ccc" if task == "continuous" else metric)


def bootstrap_ci(tables: list[pd.DataFrame], task: str, metric: str, *, classes: list[str] | None = None,
                 resamples: int = 1000, seed: int = 0, level: float = 0.95,
                 groups: Mapping[str, str] | None = None) -> dict:
    """Subject- (``groups`` given) or video-level percentile bootstrap interval of the seed mean of ``metric``.

    ``tables``: one prediction table per seed, already restricted to one split.
    ``metric``: classification one of :data:`CLASSIFICATION_STATS` (``classes`` in the
    metrics JSON's order; default: the sorted labels and predictions), regression one of
    :data:`REGRESSION_STATS`, continuous ``ccc_<dimension>``.  ``groups``: video id ->
    subject id; then a resample draws subjects (see :func:`resample_weights`), and every
    video of the tables must be in it.  Returns ``metric, estimate, low, high, level,
    resamples, valid, seed, videos, unit, units, seeds``; ``low``/``high`` are NaN when no
    resample is valid.
    """
    _check_inputs(tables, task, metric, level)
    if task == "classification" and classes is None:
        classes = sorted({str(v) for t in tables for c in ("label", "predicted") for v in t[c]})
    videos = sorted({str(v) for t in tables for v in t["video_id"]})
    stats = [video_stats(t, task, metric, videos, classes) for t in tables]
    counts, unit, units = resample_weights(videos, groups, resamples, seed)
    full = np.ones(len(videos))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)  # = an invalid resample
        per_seed = np.stack([metric_from_stats(counts @ s, task, metric, classes) for s in stats], 1) if stats \
            else np.full((resamples, 0), np.nan)
        values = np.nanmean(per_seed, 1) if stats else np.full(resamples, np.nan)
        point = [float(metric_from_stats(full @ s, task, metric, classes)) for s in stats]
        estimate = float(np.nanmean(point)) if stats else math.nan
    values = values[np.isfinite(values)]
    low, high = (np.quantile(values, [(1 - level) / 2, (1 + level) / 2]) if len(values) else (math.nan, math.nan))
    return {"metric": metric, "estimate": estimate, "low": float(low), "high": float(high), "level": level,
            "resamples": resamples, "valid": int(len(values)), "seed": seed, "videos": len(videos),
            "unit": unit, "units": units, "seeds": len(tables)}


def _check_inputs(tables, task: str, metric: str, level: float) -> None:
    if task not in ("classification", "regression", "continuous"):
        raise FacevoxError(f"bootstrap: unknown task {task!r}")
    if task == "continuous" and not metric.startswith("ccc_"):
        raise FacevoxError(f"bootstrap: continuous metrics are ccc_<dimension>, not {metric!r}")
    if not 0 < level < 1:
        raise FacevoxError(f"bootstrap: level must be between 0 and 1, got {level}")
    need = {"classification": {"video_id", "label", "predicted"}, "continuous": {"video_id"},
            "regression": {"video_id", "score_true", "score_pred"}}[task]
    for table in tables:
        if need - set(table.columns):
            raise FacevoxError(f"bootstrap: {task} predictions lack columns {sorted(need - set(table.columns))}")


def paired_bootstrap(tables_a: dict, tables_b: dict, task: str, metric: str, *, classes: list[str] | None = None,
                     resamples: int = 1000, seed: int = 0, level: float = 0.95,
                     groups: Mapping[str, str] | None = None) -> dict:
    """Paired subject- (``groups`` given) or video-level bootstrap of ``metric(A) - metric(B)``
    (see the module docstring).

    ``tables_a`` / ``tables_b``: seed -> prediction table of model A / the reference B, one
    split.  ``groups``: video id -> subject id; the subjects of the videos both models
    predicted are drawn (one draw shared by A, B and every seed), and each of those videos
    must be in it.  Returns ``metric, difference, low, high, p_value, significant, better,
    level, resamples, valid, seed, videos, unit, units, seeds`` (``seeds``: the paired seed
    numbers); with no common seed or video the numbers are NaN, ``significant`` False.
    """
    _check_inputs([*tables_a.values(), *tables_b.values()], task, metric, level)
    seeds = sorted(set(tables_a) & set(tables_b))
    if task == "classification" and classes is None:
        classes = sorted({str(v) for t in [*tables_a.values(), *tables_b.values()]
                          for c in ("label", "predicted") for v in t[c]})

    def videos_of(tables):
        return {str(v) for s in seeds for v in tables[s]["video_id"]}
    videos = sorted(videos_of(tables_a) & videos_of(tables_b))
    out = {"metric": metric, "difference": math.nan, "low": math.nan, "high": math.nan, "p_value": math.nan,
           "significant": False, "better": "", "level": level, "resamples": resamples, "valid": 0, "seed": seed,
           "videos": len(videos), "unit": "video" if groups is None else "subject", "units": 0, "seeds": seeds}
    if not seeds or not videos:
        return out

    def stats_of(tables):
        kept = [tables[s][tables[s]["video_id"].astype(str).isin(videos)] for s in seeds]
        return [video_stats(t, task, metric, videos, classes) for t in kept]
    stats_a, stats_b = stats_of(tables_a), stats_of(tables_b)
    counts, unit, units = resample_weights(videos, groups, resamples, seed)
    out |= {"unit": unit, "units": units}
    full = np.ones((1, len(videos)))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)  # = an invalid resample

        def seed_mean(weights, stats):
            return np.nanmean(np.stack([metric_from_stats(weights @ s, task, metric, classes) for s in stats], 1), 1)
        diffs = seed_mean(counts, stats_a) - seed_mean(counts, stats_b)
        estimate = float((seed_mean(full, stats_a) - seed_mean(full, stats_b))[0])
    diffs = diffs[np.isfinite(diffs)]
    if not len(diffs):
        return out | {"difference": estimate}
    low, high = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    tail = min(1 + int((diffs <= 0).sum()), 1 + int((diffs >= 0).sum()))
    significant = bool(low > 0 or high < 0)
    better = ""
    if significant:
        a_higher = estimate > 0
        better = "a" if a_higher != (metric in LOWER_IS_BETTER) else "b"
    return out | {"difference": estimate, "low": float(low), "high": float(high),
                  "p_value": min(1.0, 2 * tail / (len(diffs) + 1)), "significant": significant, "better": better,
                  "valid": int(len(diffs))}


# =========================================================================== multiple comparisons
def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values, in the input order (see the module docstring).

    NaN p-values stay NaN and do not count among the ``m`` tests; a p-value outside
    ``[0, 1]`` raises :class:`FacevoxError`.
    """
    p = np.asarray(list(p_values), np.float64).reshape(-1)
    finite = ~np.isnan(p)
    bad = p[finite & ((p < 0) | (p > 1))]
    if len(bad):
        raise FacevoxError(f"holm: p-values must lie in [0, 1], got {bad.tolist()}")
    where = np.flatnonzero(finite)
    order = np.argsort(p[where], kind="stable")
    m = len(where)
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[where][order]))
    out = np.full(len(p), np.nan)
    out[where[order]] = adjusted
    return out.tolist()
