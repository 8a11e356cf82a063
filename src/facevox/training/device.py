"""Which device a training job uses - chosen inside the job (Snakemake never assigns GPUs).

``pick_device(prefer)``:

* ``cpu`` -> CPU.
* ``auto`` / ``cuda`` -> the GPUs this process can see (``CUDA_VISIBLE_DEVICES``
  is respected as it is: SLURM sets it per job).  With one visible GPU it is
  used.  With several, the job takes a **slot**: an exclusive ``flock`` on
  ``<slot_dir>/gpu<N>.lock`` (default ``.snakemake/gpu-slots/``), tried in order
  of free memory; the lock lives as long as the process, so two concurrent
  trainings under ``snakemake --resources gpu=2`` land on different GPUs and a
  killed job frees its slot at once.  When every slot is taken (more jobs than
  ``gpu=`` allows) the GPU with the most free memory is shared, with a warning.
* no usable GPU: ``auto`` -> CPU with a warning (the training loop records the fallback
  in the model file and the metrics JSON); ``cuda`` -> a FacevoxError saying so (a run
  asked for a GPU must not quietly train for hours on the CPU).

Tests: tests/test_device.py
"""
from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from facevox.errors import FacevoxError

log = logging.getLogger("facevox.training.device")

DEFAULT_SLOT_DIR = ".snakemake/gpu-slots"
_held: list = []  # open lock files: released when the process exits


def take_slot(candidates: list[int], slot_dir=DEFAULT_SLOT_DIR) -> int | None:
    """The first of ``candidates`` (device indices) whose lock is free; it stays held."""
    folder = Path(slot_dir)
    folder.mkdir(parents=True, exist_ok=True)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    names = [v.strip() for v in visible.split(",")] if visible else None
    for index in candidates:
        # the lock names the physical GPU (its id in CUDA_VISIBLE_DEVICES when set)
        name = names[index] if names and index < len(names) else str(index)
        handle = open(folder / f"gpu{name}.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _held.append(handle)
        return index
    return None


def release_slots() -> None:
    while _held:
        _held.pop().close()


def pick_device(prefer: str = "auto", slot_dir=DEFAULT_SLOT_DIR):
    """A ``torch.device`` for this job (see the module docstring)."""
    import torch

    if prefer not in ("auto", "cpu", "cuda"):
        raise FacevoxError(f"models.device must be auto, cpu or cuda, not {prefer!r}")
    if prefer == "cpu":
        log.info("device: cpu (config)")
        return torch.device("cpu")
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if prefer == "cuda":
            raise FacevoxError(f"models.device is cuda but this job sees no CUDA GPU (CUDA_VISIBLE_DEVICES="
                               f"{visible!r}, torch {torch.__version__}, CUDA build {torch.version.cuda}); "
                               "run it where a GPU is visible, or set models.device: auto (falls back to the "
                               "CPU, recorded in the metrics) or cpu")
        log.warning("device: cpu - auto: no CUDA GPU visible (CUDA_VISIBLE_DEVICES=%r)", visible)
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if count == 1:
        index = 0
    else:
        free = [torch.cuda.mem_get_info(i)[0] for i in range(count)]
        order = sorted(range(count), key=lambda i: -free[i])
        index = take_slot(order, slot_dir)
        if index is None:
            index = order[0]
            log.warning("device: all %d GPU slots are taken; sharing cuda:%d (most free memory)", count, index)
    log.info("device: cuda:%d (%s) of %d visible", index, torch.cuda.get_device_name(index), count)
    return torch.device("cuda", index)
