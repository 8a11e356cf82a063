"""Model files and resume checkpoints of the training loop (facevox.training.loop).

* a **model file** (``<out>``, format :data:`MODEL_FORMAT`) is written atomically by
  :func:`save` and read by :func:`load_checkpoint`;
* the **resume checkpoint** (``<out>.resume/last.ckpt``, :class:`Resume`) lets a killed
  training go on.  It is written after an epoch when ``models.checkpoint_every_s`` seconds
  (monotonic :data:`clock`; 0 = after every epoch) have passed since the last one was
  written (or since the training started), so a large model (DLGA-CNN: about 0.5 GB of
  weights and Adam state) is not written every epoch.  It holds the weights, the optimiser,
  scheduler and gradient-scaler states, the RNG states (torch CPU and CUDA, numpy's and
  Python's global ones), the loop state (epoch, history, warnings, early-stopping count) and
  the best epoch's weights **once**: when the best epoch is the epoch just finished they are
  the current weights and are not stored a second time.  A killed run resumes after the
  epoch of the last written checkpoint and replays the epochs since (each epoch reseeds
  from ``(seed, epoch)``, so it ends with the same weights as an uninterrupted run); the
  last state of a finished run goes into the model file itself.
* nothing non-finite is written: :meth:`Resume.write` refuses weights with NaN / inf (the
  loop raises first, naming model, seed, epoch and batch), so the checkpoint on disk stays
  the last good one.

Tests: tests/test_checkpoints.py
"""
from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np

from facevox.errors import FacevoxError
from facevox.io import atomic_path

MODEL_FORMAT = "facevox-model/1"

#: The clock of the checkpoint cadence (seconds, monotonic); tests replace it.
clock = time.monotonic


def save(obj, path) -> None:
    """``torch.save(obj)`` to ``path`` atomically (a killed write leaves the old file)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path) -> dict:
    """A facevox model file or resume checkpoint (on the CPU); FacevoxError when it is not one."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)  # facevox's own files
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same message
        raise FacevoxError(f"{path}: not a readable facevox model file ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise FacevoxError(f"{path}: not a facevox model file (format {MODEL_FORMAT})")
    return payload


def resume_dir(out) -> Path:
    """The resume folder of the model file ``out`` (``<out>.resume``)."""
    out = Path(out)
    return out.with_name(out.name + ".resume")


def rng_states(device) -> dict:
    """The global RNG states: torch CPU (and CUDA on a CUDA ``device``), numpy, Python."""
    import torch

    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states: dict, device) -> None:
    """Restore what :func:`rng_states` gave (the CUDA state only on a CUDA ``device``)."""
    import torch

    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if device.type == "cuda" and states.get("cuda") is not None:
        torch.cuda.set_rng_state(states["cuda"], device)


def finite_weights(model) -> bool:
    """Whether every parameter and buffer of ``model`` is finite."""
    import torch

    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


class Resume:
    """The resume checkpoint of one training (``path``), its configuration ``key`` and cadence."""

    def __init__(self, path, key: str, every_s: float):
        self.path = Path(path)
        self.key = key
        self.every_s = float(every_s)
        self.last_write = clock()
        self.written_epoch = 0

    def load(self, model, optimizer, scheduler, scaler, device) -> dict | None:
        """The saved loop state with the modules' states restored, or None (no checkpoint, or
        one of another configuration)."""
        if not self.path.exists():
            return None
        saved = load_checkpoint(self.path)
        if saved.get("key") != self.key:
            return None
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        if saved.get("rng") is not None:
            set_rng_states(saved["rng"], device)
        state = saved["state"]
        if state.get("best") is not None and state["best"].get("weights") is None:
            # the best epoch was the one written: its weights are the model's
            state["best"]["weights"] = {k: v.clone() for k, v in saved["model"].items()}
        self.written_epoch = state["epoch"]
        return state

    def due(self) -> bool:
        """Whether ``every_s`` seconds have passed since the last write (or the start)."""
        return clock() - self.last_write >= self.every_s

    def write(self, model, optimizer, scheduler, scaler, state: dict, device) -> None:
        """Write the checkpoint (atomically) after epoch ``state["epoch"]``."""
        if not finite_weights(model):
            raise FacevoxError(f"{self.path}: not written - the weights after epoch {state['epoch']} are not "
                               "finite (NaN / inf); the checkpoint on disk is the last good one")
        best = state.get("best")
        if best is not None and best["epoch"] == state["epoch"]:
            best = {**best, "weights": None}  # the model's own weights: stored once
        save({"format": MODEL_FORMAT, "key": self.key, "model": model.state_dict(),
              "optimizer": optimizer.state_dict(),
              "scheduler": scheduler.state_dict() if scheduler is not None else None,
              "scaler": scaler.state_dict(), "rng": rng_states(device), "state": {**state, "best": best}},
             self.path)
        self.last_write = clock()
        self.written_epoch = state["epoch"]
