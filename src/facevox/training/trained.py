"""A trained model applied to batches: the one seam between a model of any family and the
code that scores data with it (the loop's per-epoch dev evaluation, ``evaluate``, ``predict``).

:class:`TrainedModel` holds either a torch module or a scikit-learn estimator and answers
``predict(inputs) -> numpy array`` for the tuple of arrays a task's batch carries:

* torch: the module in eval mode on its device, ``no_grad``, autocast in the training
  precision (:func:`inference_precision`: bf16 / fp16 as trained; fp16 only on a CUDA
  device, else fp32), then the task's ``postprocess`` (softmax probabilities for
  classification, scores for regression, per-window outputs for continuous affect);
* scikit-learn: each slice becomes its statistics (facevox.models.classical.slice_statistics)
  and the estimator's ``predict_proba`` gives the class probabilities.

:meth:`TrainedModel.load` reads a model file (facevox.training.checkpoints) and builds the
model on the device ``models.device`` asks for; :meth:`TrainedModel.wrap` wraps the module a
training is fitting.  :attr:`TrainedModel.preprocessing` is what the model file recorded at
training time about turning a video's table into the model's inputs (``Task.preprocessing``);
a model file from before that record raises a FacevoxError asking for a retraining.

Tests: tests/test_predict.py
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from facevox.errors import FacevoxError
from facevox.io import file_sha256
from facevox.models import create_model
from facevox.models.families import FAMILIES
from facevox.training.checkpoints import load_checkpoint
from facevox.training.tasks import task_class

log = logging.getLogger("facevox.training.trained")

#: Autocast dtype of each reduced precision (fp32: no autocast).
AUTOCAST_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}
#: Slices per scikit-learn batch (the statistics of a batch are held in memory).
SKLEARN_BATCH = 4096
#: Items per torch batch when the training config's ``batch_size`` is 0 (one full batch).
DEFAULT_BATCH = 256


def trained_precision(payload: dict) -> str | None:
    """The precision a model file was trained in (fp32, bf16, fp16; None for scikit-learn); a file
    from before ``models.precision`` says fp16 when it used ``amp``."""
    if "precision" in payload:
        return payload["precision"]
    if FAMILIES[payload["family"]].estimator == "sklearn":
        return None
    return "fp16" if payload.get("amp") else "fp32"


def inference_precision(precision: str | None, device) -> str:
    """The precision a model trained in ``precision`` runs in on ``device``: the trained one,
    except fp16 off a CUDA device and bf16 on a CUDA GPU without native bfloat16 (fp32)."""
    import torch

    if precision == "fp16" and device.type != "cuda":
        return "fp32"
    if precision == "bf16" and device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 8:
        return "fp32"
    return precision if precision in AUTOCAST_DTYPES else "fp32"


def autocast(device, precision: str):
    """``torch.autocast`` on ``device`` in ``precision`` (fp32: disabled)."""
    import torch

    dtype = getattr(torch, AUTOCAST_DTYPES.get(precision, "float32"))
    return torch.autocast(device.type, dtype=dtype, enabled=precision in AUTOCAST_DTYPES)


def build_model(payload: dict):
    """The trained model of a model file's payload: a torch module (CPU, eval mode) with its
    weights, or the scikit-learn estimator."""
    if FAMILIES[payload["family"]].estimator == "sklearn":
        return payload["estimator"]
    model = create_model(payload["model"], **payload["arch"], **payload["data_kwargs"])
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def to_tensor(value, device):
    """numpy array or tensor -> tensor on ``device``."""
    import torch

    if not torch.is_tensor(value):
        value = torch.from_numpy(np.ascontiguousarray(value))
    return value.to(device, non_blocking=True)


class TrainedModel:
    """A model of any family applied to a batch of task inputs (see the module docstring).

    ``model``: a torch module or a scikit-learn estimator; ``postprocess``: the task's
    (torch only); ``device`` and ``precision``: where and in which autocast precision the
    module runs (torch only); ``payload``: the model file's content when loaded from one."""

    def __init__(self, model, *, postprocess=None, device=None, precision: str = "fp32",
                 payload: dict | None = None, path=None):
        self.model, self.postprocess, self.device = model, postprocess, device
        self.precision, self.payload = precision, payload
        self.path = Path(path) if path is not None else None
        self.estimator = "torch" if device is not None else "sklearn"

    @classmethod
    def wrap(cls, model, postprocess, device, precision: str) -> TrainedModel:
        """The torch module a training is fitting (its dev evaluation): ``postprocess`` of its
        task, autocast in the training's ``precision`` on ``device``."""
        return cls(model, postprocess=postprocess, device=device, precision=precision)

    @classmethod
    def from_payload(cls, payload: dict, settings: dict, path=None) -> TrainedModel:
        """The model of a loaded model file; a torch module goes to the device ``settings``
        (the ``models:`` section, facevox.training.loop.run_settings) asks for."""
        model = build_model(payload)
        if FAMILIES[payload["family"]].estimator == "sklearn":
            return cls(model, payload=payload, path=path)
        from facevox.training.device import pick_device

        device = pick_device(settings["device"], settings=settings)
        trained = trained_precision(payload)
        precision = inference_precision(trained, device)
        if precision != trained:
            log.warning("%s: trained in %s, applied in %s on %s", payload["model"], trained, precision, device)
        postprocess = task_class(payload["family"], payload["training"].get("protocol")).postprocess
        return cls(model.to(device), postprocess=postprocess, device=device, precision=precision, payload=payload,
                   path=path)

    @classmethod
    def load(cls, path, settings: dict) -> TrainedModel:
        """The model of the model file ``path`` (FacevoxError when it is missing or not one)."""
        if not Path(path).is_file():
            raise FacevoxError(f"{path}: model file not found")
        return cls.from_payload(load_checkpoint(path), settings, path)

    # ------------------------------------------------------------------ what it is
    @property
    def name(self) -> str:
        """The model's name in the model file: the registered model, or its sweep variant
        (``stst@lr=0.0001``)."""
        payload = self._payload()
        return payload.get("name", payload["model"])

    @property
    def batch_size(self) -> int:
        """Items per batch when scoring: the training's ``batch_size`` (torch; 0 -> 256), 4096 slices
        for scikit-learn."""
        if self.estimator == "sklearn":
            return SKLEARN_BATCH
        return int(self._payload()["training"].get("batch_size") or DEFAULT_BATCH)

    @property
    def preprocessing(self) -> dict:
        """How a video's table becomes this model's inputs, as recorded at training time
        (``Task.preprocessing``); a FacevoxError for a model file from before the record."""
        payload = self._payload()
        if "preprocessing" not in payload:
            raise FacevoxError(f"{self.path or payload['model']}: the model file does not record its preprocessing "
                               "(it was trained before facevox kept it in the model file) - retrain the model "
                               "to score new videos with it")
        return payload["preprocessing"]

    def sha256(self) -> str | None:
        """SHA-256 of the model file (None for a wrapped model)."""
        return file_sha256(self.path) if self.path is not None else None

    def _payload(self) -> dict:
        if self.payload is None:
            raise FacevoxError("a model being trained has no model file yet")
        return self.payload

    # ------------------------------------------------------------------ applying it
    def predict(self, inputs) -> np.ndarray:
        """The model's output for one batch ``inputs`` (the tuple of arrays a task's batch
        carries): class probabilities [n, K] (classification), scores [n] (regression) or
        outputs [n, T, D] (continuous), as numpy."""
        if self.estimator == "sklearn":
            from facevox.models.classical import slice_statistics

            return self.model.predict_proba(slice_statistics(inputs[0]))
        import torch

        self.model.eval()
        with torch.no_grad(), autocast(self.device, self.precision):
            output = self.model(*[to_tensor(t, self.device) for t in inputs])
            return self.postprocess(output).cpu().numpy()

