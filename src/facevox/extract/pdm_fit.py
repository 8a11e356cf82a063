"""Fit OpenFace's point distribution model (PDM) to 2-D landmarks: the PDM parameters that
OpenFace's AU models take as geometry features (:func:`facevox.extract.au_openface_models.geometry_features`).

The PDM (:class:`~facevox.extract.au_openface_models.PDM`, read by ``read_pdm``) is a 3-D
shape ``X = mean + princ_comp @ p`` (n points; x of all points, then y, then z) with m
local parameters ``p`` (OpenFace's 68-point PDM: n = 68, m = 34).  It is put in the image by
a weak-perspective (scaled orthographic) projection with six global parameters
``[s, rx, ry, rz, tx, ty]``: ``x_i = s * (R @ X_i)[:2] + (tx, ty)``, ``R = Rx(rx) Ry(ry) Rz(rz)``
(OpenFace's ``Euler2RotationMatrix``).  :func:`shape_2d` is that projection.

:func:`fit_pdm` follows the algorithm of OpenFace's ``PDM::CalcParams`` (landmark version),
re-implemented here from its description (no OpenFace code):

* **start**: p = 0, rotation 0, translation = the centre of the landmarks' bounding box,
  scale = the mean of (landmark box width / model box width) and (height / height), the
  model box being that of the mean shape projected with s = 1, no rotation - its width and
  height truncated to whole numbers, as OpenFace's ``cv::Rect`` does;
* **step** (Gauss-Newton with a Tikhonov regulariser): with the Jacobian ``J`` of the 2n
  projected coordinates over the 6 + m parameters (the rotation columns for a small
  rotation ``R (I + [w]x)`` about the current one), the residual ``r`` (landmarks - shape)
  and ``L = diag(0 x 6, 1 / eigenvalues)``: ``delta = 0.5 * solve(J'J + L, J'r - L p)``;
  scale, translation and p are added, the rotation composed: ``R <- R orth(I + [w]x)``
  (``orth``: nearest rotation by SVD), the Euler angles read back from it;
* **stop**: after each step the error ``||landmarks - shape||`` (OpenFace measures it with
  the new global parameters and the local parameters from *before* the step, and so does
  this module) is compared with the previous one; a step that does not lower it by 0.1 %
  counts as not improving, and the fit stops at the 5th such step (not necessarily
  consecutive) or after 1000 steps.

Points whose x is exactly 0 are missing (OpenFace's convention): they leave the fit and the
bounding boxes.  Departures from OpenFace: everything is float64 (OpenFace solves in float32,
so its parameters differ in about the 5th digit); the Euler angles are read from the
rotation matrix directly (OpenFace goes through axis-angle and a quaternion: the same angles).

Frames are fitted together, vectorised over frames (:func:`fit_pdm` takes [frames, n, 2]):
~0.7-0.9 ms a frame for the 68-point PDM on one core of this project's dev machine (with
OpenBLAS limited to one thread; its default threads on 2 shared cores made it ~2x slower),
~20 steps a frame.  One frame a call costs ~9 ms (numpy's per-call overhead): batch.
A frame whose landmarks are not all finite, or that has fewer than 3 points or a flat box,
gets NaN parameters; so does a frame whose fit fails (a singular system - numpy's
LinAlgError, caught per frame - or non-finite numbers at some step), without touching the
other frames of its batch.

Tests: tests/test_pdm_fit.py
"""
from __future__ import annotations

import numpy as np

from facevox.errors import FacevoxError
from facevox.extract.au_mediapipe_geometry import euler_xyz, rotation_xyz
from facevox.extract.au_openface_models import PDM

#: OpenFace's CalcParams: at most this many steps ...
MAX_STEPS = 1000
#: ... stopping at the this-many-th step that lowers the error by less than ...
MAX_NOT_IMPROVED = 5
#: ... this fraction (0.1 %).
MIN_IMPROVEMENT = 0.001
#: The damping of every Gauss-Newton step ("to not overshoot").
STEP = 0.5
#: Frames fitted at once (bounds memory; smaller chunks stay in cache).
CHUNK = 128


def _model(pdm: PDM) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The PDM as (mean [3, n], components [3, n, m], eigenvalues [m])."""
    mean = np.asarray(pdm.mean_shape, dtype=np.float64)
    comp = np.asarray(pdm.princ_comp, dtype=np.float64)
    eig = np.asarray(pdm.eigen_values, dtype=np.float64).ravel()
    if mean.ndim != 1 or mean.size % 3 or comp.shape != (mean.size, eig.size):
        raise FacevoxError(f"not a PDM: mean shape {mean.shape}, components {comp.shape}, "
                           f"eigenvalues {eig.shape} (want 3n, 3n x m, m)")
    n = mean.size // 3
    return mean.reshape(3, n), comp.reshape(3, n, eig.size), eig


def _project(glob: np.ndarray, shape3d: np.ndarray) -> np.ndarray:
    """Weak perspective: [f, 6] global parameters, [f, 3, n] shapes -> [f, 2, n]."""
    rot = rotation_xyz(glob[:, 1:4])[:, :2, :]
    return glob[:, 0, None, None] * (rot @ shape3d) + glob[:, 4:6, None]


def shape_2d(params_global, params_local, pdm: PDM) -> np.ndarray:
    """The PDM's landmarks in the image (OpenFace's ``PDM::CalcShape2D``): ``params_global``
    ``[s, rx, ry, rz, tx, ty]`` (6, or [frames, 6]), ``params_local`` (m, or [frames, m]).
    Returns [n, 2] (x, y per point), or [frames, n, 2]."""
    mean, comp, eig = _model(pdm)
    g = np.asarray(params_global, dtype=np.float64)
    p = np.asarray(params_local, dtype=np.float64)
    single = g.ndim == 1
    g, p = np.atleast_2d(g), np.atleast_2d(p)
    if g.shape[1] != 6 or p.shape[1] != eig.size or g.shape[0] != p.shape[0] or g.ndim != 2 or p.ndim != 2:
        raise FacevoxError(f"PDM parameters must be 6 global and {eig.size} local values a frame, "
                           f"got {np.shape(params_global)} and {np.shape(params_local)}")
    pts = _project(g, mean[None] + np.einsum("knm,fm->fkn", comp, p)).swapaxes(1, 2)
    return pts[0] if single else pts


def _start(pts: np.ndarray, vis: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """CalcParams' initial global parameters from the bounding boxes: [f, 6]."""
    big = np.where(vis[:, None, :], pts, np.inf)
    small = np.where(vis[:, None, :], pts, -np.inf)
    lo, hi = big.min(axis=2), small.max(axis=2)                      # [f, 2]: min x, y; max x, y
    mbig = np.where(vis[:, None, :], mean[None, :2], np.inf)
    msmall = np.where(vis[:, None, :], mean[None, :2], -np.inf)
    model_size = np.trunc(np.abs(msmall.max(axis=2) - mbig.min(axis=2)))  # cv::Rect's int width, height
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = ((hi - lo) / model_size).mean(axis=1)
    glob = np.zeros((len(pts), 6))
    glob[:, 0] = scale
    glob[:, 4:6] = (lo + hi) / 2.0
    return glob


class _Model:
    """The PDM in the layouts the fit uses, computed once per fit."""

    def __init__(self, pdm: PDM):
        self.mean, self.comp, self.eig = _model(pdm)                    # [3, n], [3, n, m], [m]
        if not np.all(self.eig > 0):
            raise FacevoxError("the PDM's eigenvalues must all be positive (they set the regulariser 1 / eigenvalue)")
        n, m = self.comp.shape[1:]
        self.by_point = self.comp.transpose(1, 0, 2).reshape(n, 3 * m)  # [n, 3m]
        self.flat = self.comp.reshape(3, n * m)                         # [3, nm]
        gram = np.einsum("anm,bnk->abmk", self.comp, self.comp)         # sum over points of V_a' V_b
        self.gram = gram.reshape(9, m * m)
        self.gram_trace = gram[0, 0] + gram[1, 1] + gram[2, 2]
        self.reg = np.concatenate([np.zeros(6), 1.0 / self.eig])


def _normal_equations(model: _Model, glob, shape3d, resid, w, all_vis):
    """``J'WJ`` [f, 6+m, 6+m] and ``J'W r`` [f, 6+m] of the weak-perspective projection at
    glob and the 3-D shapes [f, 3, n], without building the [f, 2n, m] non-rigid Jacobian where every point is in:
    its block ``s^2 sum_i V_i' R2' R2 V_i`` is ``s^2 (sum_i V_i'V_i - sum_ab r3_a r3_b sum_i V_ia' V_ib)``
    (``R2'R2 = I - r3 r3'`` for the first two rows R2 of a rotation, r3 its third row)."""
    f, _, n = shape3d.shape
    m = model.eig.size
    rot = rotation_xyz(glob[:, 1:4])
    r2, s = rot[:, :2, :], glob[:, 0]
    # rigid columns [f, 2, n, 6]: d/ds, d/dw of s R (I + [w]x) X = s (X x row of R), d/dt
    rigid = np.zeros((f, 2, n, 6))
    rigid[..., 0] = r2 @ shape3d
    pts = shape3d.transpose(0, 2, 1)
    rigid[:, 0, :, 1:4] = s[:, None, None] * np.cross(pts, rot[:, None, 0, :])
    rigid[:, 1, :, 1:4] = s[:, None, None] * np.cross(pts, rot[:, None, 1, :])
    rigid[:, 0, :, 4] = 1.0
    rigid[:, 1, :, 5] = 1.0
    rigid_w = rigid * w[..., None]
    hess = np.empty((f, 6 + m, 6 + m))
    flat_w = rigid_w.reshape(f, 2 * n, 6)
    hess[:, :6, :6] = flat_w.transpose(0, 2, 1) @ rigid.reshape(f, 2 * n, 6)
    # non-rigid column of point i, coordinate c, mode k: s * r_c . V_i[:, k]
    mix = (rigid_w.transpose(0, 1, 3, 2).reshape(f * 12, n) @ model.by_point).reshape(f, 2, 6, 3, m)
    hess[:, :6, 6:] = s[:, None, None] * np.einsum("fca,fckam->fkm", r2, mix)
    hess[:, 6:, :6] = hess[:, :6, 6:].transpose(0, 2, 1)
    grad = np.empty((f, 6 + m))
    grad[:, :6] = np.einsum("fnk,fn->fk", flat_w, resid.reshape(f, 2 * n))
    proj_res = (resid.reshape(f * 2, n) @ model.by_point).reshape(f, 2, 3, m)
    grad[:, 6:] = s[:, None] * np.einsum("fca,fcam->fm", r2, proj_res)
    r3 = rot[:, 2, :]
    outer = (r3[:, :, None] * r3[:, None, :]).reshape(f, 9)
    hess[:, 6:, 6:] = (s ** 2)[:, None, None] * (model.gram_trace - (outer @ model.gram).reshape(f, m, m))
    part = np.flatnonzero(~all_vis)
    if part.size:   # frames with missing points: the non-rigid block the long way
        nonrigid = (r2[part].reshape(-1, 3) @ model.flat).reshape(part.size, 2 * n, m) * s[part, None, None]
        nonrigid_w = nonrigid * np.repeat(w[part], 2, axis=1).reshape(part.size, 2 * n, 1)
        hess[part, 6:, 6:] = nonrigid_w.transpose(0, 2, 1) @ nonrigid
    return hess, grad


def _orthonormalise(mats: np.ndarray) -> np.ndarray:
    """The nearest rotation (det +1) to each [f, 3, 3] matrix."""
    u, _, vt = np.linalg.svd(mats)
    d = np.linalg.det(u @ vt)
    u[:, :, 2] *= d[:, None]
    return u @ vt


def _update(glob: np.ndarray, loc: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CalcParams' parameter update (``UpdateModelParameters``)."""
    new = glob.copy()
    new[:, [0, 4, 5]] += delta[:, [0, 4, 5]]
    wx, wy, wz = delta[:, 1], delta[:, 2], delta[:, 3]
    one = np.ones_like(wx)
    small = np.stack([np.stack([one, -wz, wy], -1), np.stack([wz, one, -wx], -1),
                      np.stack([-wy, wx, one], -1)], -2)
    new[:, 1:4] = euler_xyz(rotation_xyz(glob[:, 1:4]) @ _orthonormalise(small))
    return new, loc + delta[:, 6:]


def _solve(hess: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """``solve(hess, grad)`` per frame ([f, k, k], [f, k] -> [f, k]); a frame whose system is
    singular (numpy's LinAlgError, which fails the whole batch) gets NaN instead."""
    try:
        return np.linalg.solve(hess, grad[..., None])[..., 0]
    except np.linalg.LinAlgError:
        out = np.full(grad.shape, np.nan)
        for i in range(len(hess)):
            try:
                out[i] = np.linalg.solve(hess[i], grad[i])
            except np.linalg.LinAlgError:
                pass
        return out


def _fit_chunk(pts, vis, model: _Model, rotation) -> tuple[np.ndarray, np.ndarray]:
    """Fit [f, 2, n] landmarks (all frames fittable); frames stop one by one.  A frame whose fit
    fails - a singular system, or non-finite parameters or error at any step (degenerate
    landmarks: e.g. a face 1e-300 or 1e200 pixels wide) - stops there with NaN parameters."""
    f, m = len(pts), model.eig.size
    mean, comp = model.mean, model.comp
    glob = _start(pts, vis, mean)
    glob[:, 1:4] = rotation
    loc = np.zeros((f, m))
    w = vis[:, None, :].astype(np.float64)                            # [f, 1, n]
    all_vis = vis.all(axis=1)

    shape3d = mean[None] + np.einsum("knm,fm->fkn", comp, loc)
    err = np.linalg.norm(((pts - _project(glob, shape3d)) * w).reshape(f, -1), axis=1)
    failed = ~(np.isfinite(glob).all(axis=1) & np.isfinite(err))
    misses = np.zeros(f, dtype=int)
    active = np.flatnonzero(~failed)
    for _ in range(MAX_STEPS):
        if active.size == 0:
            break
        g, p, a_w = glob[active], loc[active], w[active]
        shape3d = mean[None] + (p @ model.flat.reshape(3 * mean.shape[1], m).T).reshape(-1, 3, mean.shape[1])
        resid = (pts[active] - _project(g, shape3d)) * a_w
        hess, grad = _normal_equations(model, g, shape3d, resid, a_w, all_vis[active])
        hess += np.diag(model.reg)
        grad[:, 6:] -= model.reg[6:] * p
        delta = STEP * _solve(hess, grad)
        bad = ~np.isfinite(delta).all(axis=1)
        delta[bad] = 0.0
        g, p_new = _update(g, p, delta)
        glob[active], loc[active] = g, p_new
        # OpenFace's stopping error: new global parameters, the shape from before the step.
        new_err = np.linalg.norm(((pts[active] - _project(g, shape3d)) * a_w).reshape(len(active), -1), axis=1)
        bad |= ~(np.isfinite(g).all(axis=1) & np.isfinite(p_new).all(axis=1) & np.isfinite(new_err))
        failed[active[bad]] = True
        misses[active] += (1.0 - MIN_IMPROVEMENT) * err[active] < new_err
        err[active] = new_err
        active = active[(misses[active] < MAX_NOT_IMPROVED) & ~bad]
    glob[failed] = np.nan
    loc[failed] = np.nan
    return glob, loc


def fit_pdm(landmarks, pdm: PDM, rotation=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Fit the PDM to 2-D landmarks as OpenFace's ``PDM::CalcParams`` does (see the module's
    docstring).  ``landmarks``: [n, 2] (x, y per point, n = the PDM's points: 68), or
    [frames, n, 2] for many frames at once (much faster than one by one); ``rotation``: the
    starting Euler angles (OpenFace's default: 0).  Returns ``(params_global, params_local)``:
    ``[s, rx, ry, rz, tx, ty]`` (6 or [frames, 6]) and the m local parameters (m or
    [frames, m]); NaN for a frame with non-finite landmarks, fewer than 3 points (x == 0
    marks a missing point) or a flat bounding box, and for a frame whose fit fails (a singular
    system or non-finite numbers on the way: degenerate landmarks) - never an exception, and
    the other frames' fits are unchanged."""
    model = _Model(pdm)
    mean, eig = model.mean, model.eig
    n = mean.shape[1]
    pts = np.asarray(landmarks, dtype=np.float64)
    single = pts.ndim == 2
    if single:
        pts = pts[None]
    if pts.ndim != 3 or pts.shape[1:] != (n, 2):
        raise FacevoxError(f"landmarks must be [{n}, 2] or [frames, {n}, 2] for this PDM, got {np.shape(landmarks)}")
    rotation = np.asarray(rotation, dtype=np.float64)
    if rotation.shape != (3,):
        raise FacevoxError(f"rotation must be 3 Euler angles, got {rotation.shape}")
    pts = pts.transpose(0, 2, 1)                                      # [frames, 2, n]
    vis = pts[:, 0, :] != 0
    finite = np.isfinite(pts).all(axis=(1, 2))
    vis &= finite[:, None]
    with np.errstate(invalid="ignore"):
        span = np.where(vis[:, None, :], pts, -np.inf).max(axis=2) - np.where(vis[:, None, :], pts, np.inf).min(axis=2)
    flat = ~(span > 0).all(axis=1)
    ok = finite & (vis.sum(axis=1) >= 3) & ~flat
    glob = np.full((len(pts), 6), np.nan)
    loc = np.full((len(pts), eig.size), np.nan)
    idx = np.flatnonzero(ok)
    with np.errstate(all="ignore"):   # a degenerate frame overflows: it fails alone (NaN), see _fit_chunk
        for start in range(0, idx.size, CHUNK):
            sel = idx[start:start + CHUNK]
            glob[sel], loc[sel] = _fit_chunk(pts[sel], vis[sel], model, rotation)
    if single:
        return glob[0], loc[0]
    return glob, loc
