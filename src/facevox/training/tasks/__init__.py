"""Tasks: what the one training loop (facevox.training.loop) needs from each kind of data.

The interface is :class:`~facevox.training.tasks.base.Task`; one task kind per file, chosen by
the model's family (facevox.models.families: ``Family.task``):

* ``slices`` (:class:`SliceClassification`) - ``sequence`` and ``sklearn`` models on a shard set;
* ``whole`` (:class:`WholeClassification`) - ``sequence`` models with protocol ``whole``, on
  each video's whole aligned sequence (facevox.models.families.PROTOCOLS);
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
from facevox.training.tasks.whole import WholeClassification

__all__ = ["MIRROR_68", "Task", "jitter", "make_task", "task_class", "ClipRegression", "FaceRegression",
           "FauContinuous", "SliceClassification", "WholeClassification"]

#: Task kind (``Family.task``) -> its class.
TASKS = {"slices": SliceClassification, "clips": ClipRegression, "faces": FaceRegression, "fau": FauContinuous,
         "whole": WholeClassification}


def task_class(family: str, protocol: str | None = None) -> type:
    """The task class of a model family; ``protocol`` (sequence models): ``slices`` (default)
    or ``whole``."""
    if family not in FAMILIES:
        raise FacevoxError(f"no task for model family {family!r}")
    if family == "sequence" and protocol == "whole":
        return WholeClassification
    return TASKS[FAMILIES[family].task]


def make_task(family: str, data, settings: dict, sheet=None, protocol: str | None = None) -> Task:
    """The task of a model family on its data (shard folder, faces, FAU or aligned folder);
    ``protocol`` (sequence models): ``slices`` (default) or ``whole``."""
    cls = task_class(family, protocol)
    if cls is SliceClassification:
        return SliceClassification(data, settings, family)
    if sheet is None:
        what = "whole-video" if cls is WholeClassification else family
        raise FacevoxError(f"{what} models need the sample sheet (--sheet)")
    return cls(sheet, data, settings)
