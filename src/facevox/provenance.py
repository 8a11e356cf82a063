"""Provenance: which code, tools and parameters produced a file.

Deliberately free of timestamps and host names, so that re-running a stage on
the same input with the same parameters gives a byte-identical file.
"""
from __future__ import annotations

import json
from functools import cache
from importlib import metadata
from pathlib import Path

from facevox import __version__

#: Distributions whose versions are recorded in every file.
TOOLS = ("dlib-bin", "numba", "opensmile", "av", "opencv-contrib-python", "mediapipe", "numpy", "pandas", "pyarrow",
         "torch", "scikit-learn", "py-feat")


@cache
def tool_versions() -> dict[str, str]:
    versions = {}
    for dist in TOOLS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
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


def _describe(path) -> dict:
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError:
        size = None
    return {"name": p.name, "size_bytes": size}


def dumps(record: dict) -> str:
    return json.dumps(record, sort_keys=True, default=str)
