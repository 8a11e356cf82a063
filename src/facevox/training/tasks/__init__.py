"""Tasks: what the one training loop (facevox.training.loop) needs from each kind of data.

The interface is :class:`~facevox.training.tasks.base.Task`; one task kind per file, chosen by
the model's family (facevox.models.families: ``Family.task``):

* ``slices`` (:class:`SliceClassification`) - ``sequence`` and ``sklearn`` models on a shard set;
* ``clips`` (:class:`ClipRegression`) - ``clip`` models (STA-DRN) on aligned face clips;
* ``faces`` (:class:`FaceRegression`) - ``face`` models (DLGA-CNN) on single aligned faces;
* ``fau`` (:class:`FauContinuous`) - ``fau`` models (the shallow FAU CNN) on FAU windows.

Regression metrics: MAE, RMSE, PCC, CCC per video in label units
(facevox.training.metrics.regression_metrics); continuous: CCC per dimension.

Tests: tests/test_train.py, tests/test_tasks.py
"""
from __future__ import annotations

from facevox.errors import FacevoxError
from facevox.models.families import FAMILIES
from facevox.training.tasks.base import MIRROR_68, Task, jitter
from facevox.training.tasks.clips import ClipRegression
from facevox.training.tasks.faces import FaceRegression
from facevox.training.tasks.fau import FauContinuous
from facevox.training.tasks.slices import SliceClassification

__all__ = ["MIRROR_68", "Task", "jitter", "make_task", "ClipRegression", "FaceRegression", "FauContinuous",
           "SliceClassification"]

#: Task kind (``Family.task``) -> its class.
TASKS = {"slices": SliceClassification, "clips": ClipRegression, "faces": FaceRegression, "fau": FauContinuous}


def make_task(family: str, data, settings: dict, sheet=None) -> Task:
    """The task of a model family on its data (shard folder, faces folder or FAU folder)."""
    if family not in FAMILIES:
        raise FacevoxError(f"no task for model family {family!r}")
    fam = FAMILIES[family]
    if fam.task == "slices":
        return SliceClassification(data, settings, family)
    if sheet is None:
        raise FacevoxError(f"{family} models need the sample sheet (--sheet)")
    return TASKS[fam.task](sheet, data, settings)
