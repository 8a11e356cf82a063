"""Provenance: which code, tools and parameters produced a file.

Deliberately free of timestamps and host names, so that re-running a stage on
the same input with the same parameters gives a byte-identical file.
"""
from __future__ import annotations

import json
import os
import re
import sys
from functools import cache
from pathlib import Path

from facevox import __version__

#: Distributions whose versions are recorded in every file.
TOOLS = ("dlib-bin", "numba", "opensmile", "av", "opencv-contrib-python", "mediapipe", "numpy", "pandas", "pyarrow",
         "torch", "scikit-learn", "py-feat")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _dist_info_dirs() -> dict[str, Path]:
    """Normalised distribution name -> its ``.dist-info`` directory, the first on ``sys.path``
    (as importlib.metadata finds it): one listing per path entry."""
    found: dict[str, Path] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                found.setdefault(_normalise(name[:-len(".dist-info")].split("-", 1)[0]), Path(entry or ".", name))
    return found


def _version(dist_info: Path) -> str | None:
    """The ``Version:`` header of a dist-info's METADATA (what importlib.metadata.version reads)."""
    try:
        with open(dist_info / "METADATA", encoding="utf-8") as f:
            for line in f:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
                if not line.strip():
                    break  # end of the headers
    except OSError:
        pass
    return None


@cache
def tool_versions() -> dict[str, str]:
    """The installed versions of :data:`TOOLS` (and PyAV's FFmpeg).  Read from the
    dist-info directories directly: every stage process records them, and importing
    importlib.metadata alone costs ~50 ms; a tool found otherwise (an egg, a zip) is asked
    of importlib.metadata."""
    dirs = _dist_info_dirs()
    versions = {}
    for dist in TOOLS:
        dist_info = dirs.get(_normalise(dist))
        version = _version(dist_info) if dist_info is not None else None
        if version is None:
            from importlib import metadata

            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                version = "not installed"
        versions[dist] = version
    try:  # the FFmpeg libraries PyAV was built against decide what decodes
        import av

        versions["ffmpeg(libavcodec)"] = ".".join(map(str, av.library_versions["libavcodec"]))
    except Exception:  # pragma: no cover - av is a hard dependency
        pass
    return versions


def provenance(stage: str, params: dict | None = None, inputs: dict | None = None, **extra) -> dict:
    """The provenance record of one output file."""
    record = {
        "facevox_version": __version__,
        "stage": stage,
        "tools": tool_versions(),
        "params": params or {},
        "inputs": {k: _describe(v) for k, v in (inputs or {}).items()},
    }
    record.update(extra)
    return record


def git_state(root=None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout holding ``root`` (default:
    facevox's own source files); None values outside a checkout or without git."""
    import subprocess

    where = Path(root) if root is not None else Path(__file__).resolve().parent

    def git(*args):
        return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def _describe(path) -> dict:
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError:
        size = None
    return {"name": p.name, "size_bytes": size}


def dumps(record: dict) -> str:
    """A provenance record as key-sorted JSON (the bytes stored in a file's metadata)."""
    return json.dumps(record, sort_keys=True, default=str)
