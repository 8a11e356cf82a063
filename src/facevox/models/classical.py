"""Classical baselines of the D-Vlog tables (LR, SVM, RF, KNN-Fusion) over per-slice
statistics.

The D-Vlog paper (Yoon et al. 2022) reports these rows but not their settings;
the STST and JAMFN papers copy its numbers (../shared/papers/README.md).  Here
each slice [T, C] becomes one vector: the mean and the standard deviation (ddof
0) of every column over the slice's rows, NaN rows left out (``slice_statistics``),
so a 300 x 161 slice gives 322 features.  The estimators are scikit-learn's with
its defaults unless stated; all choices below are facevox's, not the papers':

* ``lr``: standardised features -> LogisticRegression (C=1, max_iter 1000);
* ``svm``: standardised -> SVC (RBF, C=1); probabilities (AUC, mean voting) from
  scikit-learn's sigmoid calibration on cross-validated decision values
  (``CalibratedClassifierCV(ensemble=False)``, 5 folds, fewer when a class has
  fewer training slices);
* ``rf``: RandomForestClassifier (300 trees);
* ``knn_fusion``: decision-level fusion: one k-NN (k=5, standardised) per
  modality (landmark columns, eGeMAPS columns), class probabilities averaged
  (k is lowered to the number of training slices when there are fewer).

Every estimator takes ``seed`` (``random_state`` where the estimator has one).
Videos are formed from slices exactly as for the neural models (facevox.training.evaluate).

Tests: tests/test_models.py
"""
from __future__ import annotations

import warnings

import numpy as np

from facevox.models import register

TRAINING = {"vote": "mean", "epochs": 1, "amp": False}


def slice_statistics(x: np.ndarray) -> np.ndarray:
    """[N, T, C] slices -> [N, 2C]: per-column mean then std over non-NaN rows (NaN -> 0
    when a column has no value in a slice; the caller counts such slices)."""
    x = np.asarray(x, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: handled below
        mean, std = np.nanmean(x, axis=1), np.nanstd(x, axis=1)
    return np.nan_to_num(np.concatenate([mean, std], axis=1))


def _scaled(estimator):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), estimator)


@register("lr", display="LR", family="sklearn", defaults={"C": 1.0, "max_iter": 1000}, training=TRAINING,
          paper="D-Vlog baseline row (settings not published; facevox choice)")
def logistic_regression(C=1.0, max_iter=1000, seed=0, **_data):
    from sklearn.linear_model import LogisticRegression

    return _scaled(LogisticRegression(C=C, max_iter=max_iter, random_state=seed))


class CalibratedSVM:
    """SVC with sigmoid-calibrated probabilities; the folds adapt to the class counts."""

    def __init__(self, C: float, kernel: str, seed: int, folds: int = 5):
        self.C, self.kernel, self.seed, self.folds = C, kernel, seed, folds

    def fit(self, x, y):
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.model_selection import StratifiedKFold
        from sklearn.svm import SVC

        counts = np.bincount(y)
        folds = int(min(self.folds, counts[counts > 0].min()))
        svc = _scaled(SVC(C=self.C, kernel=self.kernel, random_state=self.seed))
        cv = StratifiedKFold(max(folds, 2), shuffle=True, random_state=self.seed)
        self.model = CalibratedClassifierCV(svc, method="sigmoid", cv=cv, ensemble=False).fit(x, y)
        self.classes_ = self.model.classes_
        return self

    def predict_proba(self, x):
        return self.model.predict_proba(x)

    def predict(self, x):
        return self.model.predict(x)


@register("svm", display="SVM", family="sklearn", defaults={"C": 1.0, "kernel": "rbf"}, training=TRAINING,
          paper="D-Vlog baseline row (settings not published; facevox choice)")
def support_vector_machine(C=1.0, kernel="rbf", seed=0, **_data):
    return CalibratedSVM(C, kernel, seed)


@register("rf", display="RF", family="sklearn", defaults={"n_estimators": 300, "max_depth": None}, training=TRAINING,
          paper="D-Vlog baseline row (settings not published; facevox choice)")
def random_forest(n_estimators=300, max_depth=None, seed=0, **_data):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=seed, n_jobs=1)


class KnnFusion:
    """Decision-level fusion: one k-NN per modality, mean of their class probabilities.

    ``groups``: column indices of each modality in the per-slice statistics
    vector (the trainer derives them from the shard's columns).
    """

    def __init__(self, groups: list[np.ndarray], n_neighbors: int = 5):
        from sklearn.neighbors import KNeighborsClassifier

        self.groups = [np.asarray(g) for g in groups]
        self.members = [_scaled(KNeighborsClassifier(n_neighbors=n_neighbors)) for _ in self.groups]

    def fit(self, x, y):
        for model in self.members:
            knn = model[-1]
            knn.n_neighbors = min(knn.n_neighbors, len(x))
        for model, cols in zip(self.members, self.groups):
            model.fit(x[:, cols], y)
        self.classes_ = self.members[0].classes_
        return self

    def predict_proba(self, x):
        return np.mean([m.predict_proba(x[:, cols]) for m, cols in zip(self.members, self.groups)], axis=0)

    def predict(self, x):
        return self.classes_[self.predict_proba(x).argmax(1)]


@register("knn_fusion", display="KNN-Fusion", family="sklearn", defaults={"n_neighbors": 5}, training=TRAINING,
          paper="D-Vlog baseline row KNN-Fusion (settings not published; facevox choice)")
def knn_fusion(n_neighbors=5, groups=None, seed=0, **_data):
    if groups is None:
        raise ValueError("knn_fusion needs `groups` (column indices per modality)")
    return KnnFusion(groups, n_neighbors=n_neighbors)
