"""Metrics shared by every task: classification (scikit-learn), regression and the
concordance correlation coefficient (CCC), in numpy and as a torch loss.

CCC (Lin 1989), with population (ddof 0) moments::

    ccc = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))**2)

Edge cases, defined here once: two constant sequences with equal means -> 1
(perfect agreement), otherwise a constant prediction -> 0 (cov is 0); fewer
than two values -> NaN.

Tests: tests/test_metrics.py
"""
from __future__ import annotations

import math

import numpy as np


def ccc(x, y) -> float:
    """Concordance correlation coefficient of two 1-D sequences (NaN pairs dropped)."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"ccc: shapes differ {x.shape} vs {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if len(x) < 2:
        return math.nan
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(), y.var()
    cov = ((x - mx) * (y - my)).mean()
    denom = vx + vy + (mx - my) ** 2
    if denom == 0:
        return 1.0  # identical constants
    return float(2 * cov / denom)


def pcc(x, y) -> float:
    """Pearson correlation; NaN when either side is constant."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def regression_metrics(y_true, y_pred) -> dict:
    """MAE, RMSE, PCC and CCC of per-video scores (in the labels' units)."""
    t, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    err = p - t
    return {
        "n": int(len(t)),
        "mae": float(np.abs(err).mean()) if len(t) else math.nan,
        "rmse": float(np.sqrt((err ** 2).mean())) if len(t) else math.nan,
        "pcc": pcc(t, p),
        "ccc": ccc(t, p),
    }


def classification_metrics(y_true, y_pred, prob_positive, classes: list[str], positive: str) -> dict:
    """Accuracy, weighted / macro / positive-class precision, recall, F1, AUC and the
    confusion matrix (rows = true, columns = predicted, in ``classes`` order).

    ``y_true`` / ``y_pred`` are class names; ``prob_positive`` the score of
    ``positive`` (for AUC, NaN when the true labels hold one class only).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

    y_true, y_pred = list(y_true), list(y_pred)
    out = {"n": len(y_true)}
    if not y_true:
        return out | {"accuracy": math.nan}
    out["accuracy"] = float(accuracy_score(y_true, y_pred))
    for avg in ("weighted", "macro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=classes, average=avg, zero_division=0)
        out |= {f"precision_{avg}": float(p), f"recall_{avg}": float(r), f"f1_{avg}": float(f)}
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=[positive], average=None, zero_division=0)
    out |= {"precision_positive": float(p[0]), "recall_positive": float(r[0]), "f1_positive": float(f[0])}
    is_pos = [t == positive for t in y_true]
    out["auc"] = float(roc_auc_score(is_pos, prob_positive)) if 0 < sum(is_pos) < len(is_pos) else math.nan
    out["confusion_matrix"] = {"labels": list(classes),
                               "matrix": confusion_matrix(y_true, y_pred, labels=classes).tolist()}
    return out
