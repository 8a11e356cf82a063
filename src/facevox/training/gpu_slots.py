"""The GPUs a job sees, read through NVML, and machine-wide slot locks keyed by GPU UUID.

* :func:`load_nvml` / :func:`visible_gpus`: free memory, utilisation and the UUID of every
  GPU this process may use, through NVML (``nvidia-ml-py``, imported as ``pynvml``): no CUDA
  context is created on any GPU.  ``CUDA_VISIBLE_DEVICES`` entries are mapped to NVML
  handles: an index (NVML's order, which is PCI bus order: CUDA's own order too for
  identical GPUs or with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``), a ``GPU-``/``MIG-`` UUID or a
  unique UUID prefix (as CUDA accepts them).
* :func:`acquire`: a **slot** is an exclusive ``flock`` on ``<lock dir>/<UUID>.<k>.lock``,
  ``k < models.jobs_per_gpu``, held as long as the process lives (a killed job frees it at
  once); the file holds its owner's pid, user and start time.  Slot 0 of every GPU is tried
  before slot 1 of any (jobs spread first), GPUs in the order given (most free memory
  first).  When every slot is taken the job **waits** (saying so once, with the holders),
  up to ``models.gpu_wait_s`` seconds, then a FacevoxError.
* The lock dir (``models.gpu_lock_dir``) defaults to ``/tmp/facevox-gpu-locks``, one
  folder for the whole machine - not per user (``$XDG_RUNTIME_DIR``) nor per job
  (``$TMPDIR``), so two users' jobs on one workstation also see each other's slots.  It
  is created with mode 1777 (world-writable and sticky, like /tmp) and the lock files
  with mode 0666.

Tests: tests/test_device.py
"""
from __future__ import annotations

import fcntl
import getpass
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from facevox.errors import FacevoxError

log = logging.getLogger("facevox.training.device")

DEFAULT_LOCK_DIR = "/tmp/facevox-gpu-locks"
POLL_S = 5.0  # seconds between two looks for a free slot
_held: dict[str, object] = {}  # slot key ("<uuid>.<k>") -> its open lock file, kept for the process


@dataclass
class Gpu:
    """One GPU this process sees: its CUDA index (``position``), lock key and NVML readings."""

    position: int          # index among the visible GPUs (cuda:<position> before narrowing)
    key: str               # the lock key: NVML UUID, or ``gpu<entry>`` without NVML
    name: str
    free: int = -1         # bytes free (NVML), -1 unknown
    total: int = -1
    util: int | None = None  # percent busy (NVML), None unknown

    def label(self) -> str:
        """``NVIDIA H100 (GPU-1234..., 60.2 of 80.0 GiB free, 3 % busy)`` for log lines and errors."""
        parts = [self.key]
        if self.free >= 0:
            parts.append(f"{self.free / 2**30:.1f} of {self.total / 2**30:.1f} GiB free")
        if self.util is not None:
            parts.append(f"{self.util} % busy")
        return f"{self.name} ({', '.join(parts)})"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def load_nvml():
    """The initialised ``pynvml`` module, or None (not installed, no driver) with a log line."""
    try:
        import pynvml
    except ImportError:
        log.info("device: nvidia-ml-py (pynvml) is not installed - GPUs compared through torch "
                 "(a CUDA context on each visible GPU)")
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # pynvml.NVMLError (no driver, no library)
        log.info("device: NVML unavailable (%s) - GPUs compared through torch (a CUDA context on each "
                 "visible GPU)", exc)
        return None
    return pynvml


def _handle(nvml, entry: str, count: int):
    """The NVML handle of one CUDA_VISIBLE_DEVICES entry, or None."""
    if entry.isdigit():
        return nvml.nvmlDeviceGetHandleByIndex(int(entry)) if int(entry) < count else None
    try:
        return nvml.nvmlDeviceGetHandleByUUID(entry)
    except nvml.NVMLError:
        pass
    matches = [h for h in (nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count))
               if _text(nvml.nvmlDeviceGetUUID(h)).startswith(entry)]
    return matches[0] if len(matches) == 1 else None


def visible_gpus(nvml) -> list[Gpu] | None:
    """The GPUs this process may use (CUDA's numbering), read through NVML; None when an
    entry of ``CUDA_VISIBLE_DEVICES`` matches no GPU that NVML knows."""
    count = nvml.nvmlDeviceGetCount()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        entries = [str(i) for i in range(count)]
    else:  # CUDA stops at the first empty or invalid entry
        entries = []
        for entry in visible.split(","):
            if not entry.strip() or entry.strip().startswith("-"):
                break
            entries.append(entry.strip())
    gpus = []
    for position, entry in enumerate(entries):
        handle = _handle(nvml, entry, count)
        if handle is None:
            log.info("device: CUDA_VISIBLE_DEVICES entry %r matches no GPU that NVML lists (%d GPUs)", entry, count)
            return None
        gpu = Gpu(position, _text(nvml.nvmlDeviceGetUUID(handle)), _text(nvml.nvmlDeviceGetName(handle)))
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        gpu.free, gpu.total = int(memory.free), int(memory.total)
        try:
            gpu.util = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except nvml.NVMLError:  # e.g. MIG instances report none
            pass
        gpus.append(gpu)
    return gpus


def lock_dir(configured: str = "") -> Path:
    """The slot-lock folder (``models.gpu_lock_dir``, default /tmp/facevox-gpu-locks), created
    with mode 1777 when missing."""
    folder = Path(configured or DEFAULT_LOCK_DIR).expanduser()
    try:
        folder.mkdir(parents=True)
        os.chmod(folder, 0o1777)  # every user's jobs share it; the sticky bit keeps their files theirs
    except FileExistsError:
        pass
    except OSError as exc:
        raise FacevoxError(f"models.gpu_lock_dir: cannot create {folder} ({exc.strerror}); set it to a "
                           "folder on this machine that every GPU job can write") from None
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise FacevoxError(f"models.gpu_lock_dir: {folder} is not a folder this job can write (GPU slot "
                           "locks); set models.gpu_lock_dir to one every GPU job on this machine can write")
    return folder


def _slot_file(folder: Path, key: str, k: int) -> Path:
    return folder / f"{key.replace('/', '_')}.{k}.lock"


def _try_lock(path: Path):
    """The open file of ``path`` with its exclusive flock taken, or None when another process holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's file, created before it was made 0666
        return None
    try:
        os.fchmod(fd, 0o666)  # other users' jobs must open it too (umask)
    except OSError:
        pass  # not ours: its owner set the mode
    handle = os.fdopen(fd, "r+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} user {_user()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    return handle


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no name for this uid (containers)
        return str(os.getuid())


def try_slot(gpus: list[Gpu], folder: Path, jobs_per_gpu: int) -> tuple[Gpu, int] | None:
    """A free slot ``(gpu, k)`` of ``gpus`` (one this process holds already first), taken and held; or None."""
    for gpu in gpus:
        for k in range(jobs_per_gpu):
            if f"{gpu.key}.{k}" in _held:
                return gpu, k
    for k in range(jobs_per_gpu):
        for gpu in gpus:
            handle = _try_lock(_slot_file(folder, gpu.key, k))
            if handle is not None:
                _held[f"{gpu.key}.{k}"] = handle
                return gpu, k
    return None


def holders(gpus: list[Gpu], folder: Path, jobs_per_gpu: int) -> str:
    """Who holds each slot: ``GPU-... slot 0: pid 123 user ann since ...``, joined by ``; ``."""
    out = []
    for gpu in gpus:
        for k in range(jobs_per_gpu):
            try:
                text = _slot_file(folder, gpu.key, k).read_text().strip() or "pid unknown"
            except OSError:
                text = "pid unknown"
            out.append(f"{gpu.name} {gpu.key} slot {k}: {text}")
    return "; ".join(out)


def acquire(gpus: list[Gpu], folder: Path, jobs_per_gpu: int = 1, wait_s: float = 3600) -> tuple[Gpu, int]:
    """A slot of ``gpus`` (tried in their order), waiting up to ``wait_s`` seconds for one."""
    started = time.monotonic()
    said = False
    while True:
        got = try_slot(gpus, folder, jobs_per_gpu)
        if got is not None:
            if said:
                log.info("device: a GPU slot came free after %.0f s of waiting", time.monotonic() - started)
            return got
        waited = time.monotonic() - started
        if waited >= wait_s:
            raise FacevoxError(
                f"no free GPU slot after waiting {waited:.0f} s (models.gpu_wait_s: {wait_s:g}): every slot of "
                f"the {len(gpus)} GPU(s) this job sees is taken ({holders(gpus, folder, jobs_per_gpu)}; locks in "
                f"{folder}); run fewer GPU jobs at once (snakemake --resources gpu=N), let small models share "
                "(models.jobs_per_gpu), wait longer (models.gpu_wait_s) or train on the CPU (models.device: cpu)")
        if not said:
            log.warning("device: every GPU slot is taken (%s) - waiting up to %g s (models.gpu_wait_s) for one, "
                        "rather than sharing a GPU", holders(gpus, folder, jobs_per_gpu), wait_s)
            said = True
        time.sleep(max(0.0, min(POLL_S, wait_s - waited)))


def release_slots() -> None:
    """Close every slot lock this process holds (they are also released when it exits)."""
    while _held:
        _held.popitem()[1].close()
