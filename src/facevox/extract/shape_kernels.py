"""The compiled loops of :mod:`facevox.extract.shape_model` (numba): dlib's file parser,
the exact and the fast predictor, and the centroid + RMS radius of a shape.

Two ways to run them, same source, same machine code semantics (``fastmath`` off):

* **ahead of time**: :data:`AOT_EXPORTS` lists the entry points and their exact types;
  :func:`facevox.extract.shape_model.build_kernels` compiles them once with ``numba.pycc``
  into an extension module in the cache (``make install`` does it).  Importing that
  module costs ~10 ms and imports neither numba nor LLVM; the landmark stage runs it.
* **just in time** (this module, imported only when the ahead-of-time module is absent,
  for the parser and the exact path, and by the build): numba's import plus its first
  call from its disk cache cost ~0.6-1.2 s of CPU per process before the first frame.

Nothing here is called directly by the stages: :mod:`shape_model` picks the build.
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

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
def parse(buf, n_points):
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
def feature_pixels(img, shape, initial, anchor, deltas, c, left, top, sx, sy, pix):
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
def predict_exact(img, left, top, right, bottom, initial, idx1, idx2, thresh, leaves, anchor, deltas):
    """dlib's cascade on one box: the 68 points in pixels, float leaves added in dlib's order."""
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
        feature_pixels(img, shape, initial, anchor, deltas, c, left, top, sx, sy, pix)
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

@numba.njit(cache=True, fastmath=False)
def predict_fast(img, left, top, right, bottom, initial, idx1, idx2, thresh, leaves_q, step,
                  anchor, deltas, depth, memo_leaf, memo_acc):
    """dlib's cascade as in :func:`predict_exact`, but: the trees walked branch-free to a fixed
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
        feature_pixels(img, shape, initial, anchor, deltas, c, left, top, sx, sy, pix)
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


#: The ahead-of-time entry points: name -> (function, numba signature).  The fast path
#: is called only with these types (``ShapeModel.__call__``: a C-contiguous uint8 frame,
#: the model's arrays as loaded, a memo from ``ShapeModel.memo``).
_F4_2D = "f4[:, ::1]"
AOT_EXPORTS = {
    "predict_fast": (predict_fast,
                     f"{_F4_2D}(u1[:, ::1], f8, f8, f8, f8, f4[::1], i4[:, :, ::1], i4[:, :, ::1], "
                     "f4[:, :, ::1], i2[:, :, :, ::1], f4[::1], i4[:, ::1], f4[:, :, ::1], i8, "
                     "i2[:, ::1], i4[:, ::1])"),
    "centre_radius_f4": (centre_radius, f"UniTuple(f8, 3)({_F4_2D})"),
    "centre_radius_f8": (centre_radius, "UniTuple(f8, 3)(f8[:, ::1])"),
}
