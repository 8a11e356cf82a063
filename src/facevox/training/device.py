"""Which device a training job uses - chosen inside the job (Snakemake never assigns GPUs).

``pick_device(prefer, settings=models)``:

* ``cpu`` -> CPU.
* ``auto`` / ``cuda`` -> one of the GPUs this process can see (``CUDA_VISIBLE_DEVICES`` is
  respected: SLURM sets it per job), chosen through NVML (facevox.training.gpu_slots) -
  free memory, utilisation and UUID read without a CUDA context on any GPU.  The job takes
  a **slot** of a GPU (an exclusive ``flock`` on ``<models.gpu_lock_dir>/<UUID>.<k>.lock``,
  machine-wide, ``models.jobs_per_gpu`` slots per GPU), GPUs with the most free memory first;
  when every slot is taken it waits (``models.gpu_wait_s``, then an error) instead of
  sharing.  The choice is then made the job's only GPU: ``CUDA_VISIBLE_DEVICES=<UUID>``
  before torch initialises CUDA (so it is ``cuda:0``), and ``torch.cuda.set_device``.
* without NVML (nvidia-ml-py missing, no driver library; said in the log): one visible GPU is
  used as it is; among several, free memory is read through torch (a CUDA context on each)
  and the slots are keyed by the ``CUDA_VISIBLE_DEVICES`` entry, waiting as above.
* no usable GPU: ``auto`` -> CPU with a warning (the training loop records the fallback
  in the model file and the metrics JSON); ``cuda`` -> a FacevoxError saying so (a run
  asked for a GPU must not quietly train for hours on the CPU).

:func:`check_gpu_memory` (called by the loop once the device is picked, before the model is
built) stops a training whose estimated need (facevox.training.gpu_memory) exceeds the
chosen GPU's free memory, naming the model, the need and the GPU.
:func:`job_partition` is the SLURM partition of a train/evaluate job (workflow/rules/common.smk).

Tests: tests/test_device.py
"""
from __future__ import annotations

import logging
import os

from facevox.errors import FacevoxError
from facevox.training.gpu_memory import GIB, estimate_gpu_memory
from facevox.training.gpu_slots import Gpu, acquire, load_nvml, lock_dir, release_slots, visible_gpus

log = logging.getLogger("facevox.training.device")

__all__ = ["check_gpu_memory", "estimate_gpu_memory", "job_partition", "pick_device", "release_device"]
_chosen: dict = {}  # this process's GPU: {"gpu": Gpu, "index": cuda index}


def gpu_options(settings: dict | None) -> tuple[str, int, float]:
    """``(gpu_lock_dir, jobs_per_gpu, gpu_wait_s)`` of a ``models`` section, schema defaults filled."""
    from facevox.config import stage_params

    models = stage_params("models", {k: v for k, v in (settings or {}).items()
                                     if k in ("gpu_lock_dir", "jobs_per_gpu", "gpu_wait_s")})
    return models["gpu_lock_dir"], int(models["jobs_per_gpu"]), float(models["gpu_wait_s"])


def _narrow(gpu: Gpu) -> bool:
    """Make ``gpu`` the process's only CUDA device when torch has not initialised CUDA yet."""
    import torch

    if torch.cuda.is_initialized():
        return False
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu.key
    return True


def _choose_nvml(nvml, settings) -> Gpu | None:
    """The GPU this job takes a slot of, through NVML; None when NVML cannot map the visible GPUs."""
    try:
        gpus = visible_gpus(nvml)
    except nvml.NVMLError as exc:
        log.info("device: NVML could not read the GPUs (%s) - GPUs compared through torch", exc)
        return None
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass
    if not gpus:
        return None
    folder, per_gpu, wait_s = gpu_options(settings)
    gpus = sorted(gpus, key=lambda g: (-g.free, g.util or 0, g.position))
    log.info("device: visible GPUs: %s", "; ".join(g.label() for g in gpus))
    gpu, slot = acquire(gpus, lock_dir(folder), per_gpu, wait_s)
    log.info("device: slot %d of %d of %s", slot, per_gpu, gpu.key)
    return gpu


def _choose_torch(torch, count: int, settings) -> tuple[Gpu, int]:
    """Without NVML: today's way - free memory of every visible GPU read through torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    names = [v.strip() for v in visible.split(",")] if visible else []
    gpus = []
    for i in range(count):
        free, total = torch.cuda.mem_get_info(i)
        entry = names[i] if i < len(names) else str(i)
        gpus.append(Gpu(i, f"gpu{entry}", torch.cuda.get_device_name(i), int(free), int(total)))
    gpus.sort(key=lambda g: (-g.free, g.position))
    folder, per_gpu, wait_s = gpu_options(settings)
    gpu, _ = acquire(gpus, lock_dir(folder), per_gpu, wait_s)
    return gpu, gpu.position


def pick_device(prefer: str = "auto", settings: dict | None = None):
    """A ``torch.device`` for this job (see the module docstring); ``settings``: the ``models`` section."""
    import torch

    if prefer not in ("auto", "cpu", "cuda"):
        raise FacevoxError(f"models.device must be auto, cpu or cuda, not {prefer!r}")
    if prefer == "cpu":
        log.info("device: cpu (config)")
        return torch.device("cpu")
    if _chosen:  # a second call in one process (train, then evaluate): the same GPU and slot
        return torch.device("cuda", _chosen["index"])
    gpu, narrowed = None, False
    nvml = load_nvml()
    if nvml is not None:
        gpu = _choose_nvml(nvml, settings)
        narrowed = gpu is not None and _narrow(gpu)
    if not torch.cuda.is_available():
        release_slots()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if prefer == "cuda":
            raise FacevoxError(f"models.device is cuda but this job sees no CUDA GPU (CUDA_VISIBLE_DEVICES="
                               f"{visible!r}, torch {torch.__version__}, CUDA build {torch.version.cuda}); "
                               "run it where a GPU is visible, or set models.device: auto (falls back to the "
                               "CPU, recorded in the metrics) or cpu")
        log.warning("device: cpu - auto: no CUDA GPU visible (CUDA_VISIBLE_DEVICES=%r)", visible)
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if gpu is not None:
        index = 0 if narrowed and count == 1 else gpu.position
        if not narrowed:
            log.warning("device: torch had initialised CUDA before the GPU was chosen - cuda:%d, "
                        "CUDA_VISIBLE_DEVICES left as it was", index)
    elif count == 1:
        gpu, index = Gpu(0, "cuda:0", torch.cuda.get_device_name(0)), 0
    else:
        gpu, index = _choose_torch(torch, count, settings)
    torch.cuda.set_device(index)
    _chosen.update(gpu=gpu, index=index)
    log.info("device: cuda:%d = %s", index, gpu.label())
    return torch.device("cuda", index)


def release_device() -> None:
    """Forget this process's GPU choice and release its slots (a process that trains one model after another)."""
    _chosen.clear()
    release_slots()


def check_gpu_memory(model_name: str, cfg: dict, data_kwargs: dict, device) -> int | None:
    """Raise a FacevoxError when ``device`` has less free memory than the model needs; the need in bytes."""
    if getattr(device, "type", str(device)) != "cuda":
        return None
    import torch

    from facevox.models import get_spec

    family = get_spec(model_name).family
    batch = int(cfg.get("batch_size") or 0)
    need = estimate_gpu_memory(model_name, family, batch, data_kwargs, amp=bool(cfg.get("amp", True)))
    if need is None:
        log.info("device: %s: no GPU memory estimate for family %s - not checked", model_name, family)
        return None
    free, total = torch.cuda.mem_get_info(device)
    gpu = _chosen.get("gpu")
    where = f"cuda:{device.index or 0}" + (f" = {gpu.name} {gpu.key}" if gpu is not None else "")
    log.info("device: %s needs about %.2f GiB of GPU memory (batch %s); %s has %.2f of %.2f GiB free",
             model_name, need / GIB, batch or "full", where, free / GIB, total / GIB)
    if need > free:
        raise FacevoxError(
            f"{model_name}: needs about {need / GIB:.1f} GiB of GPU memory (batch size {batch or 'full'}, "
            f"input {data_kwargs}; facevox.training.gpu_memory) but {where} has {free / GIB:.1f} of "
            f"{total / GIB:.1f} GiB free; lower its batch size (models.overrides.{model_name}.batch_size), "
            "free the GPU, or train on the CPU (models.device: cpu)")
    return need


def job_partition(gpus: int, environ=None) -> str:
    """SLURM partition of a train/evaluate job: FACEVOX_SLURM_GPU_PARTITION when it asks for a GPU
    (else FACEVOX_SLURM_PARTITION), FACEVOX_SLURM_PARTITION otherwise; '' = the cluster's default."""
    env = os.environ if environ is None else environ
    cpu = env.get("FACEVOX_SLURM_PARTITION", "")
    return (env.get("FACEVOX_SLURM_GPU_PARTITION", "") or cpu) if gpus else cpu
