"""OpenFace 2.x's aligned, masked face: the image its AU models read HOG features from.

OpenFace 2.x (``lib/local/FaceAnalyser/src/Face_utils.cpp``, ``AlignFaceMask``, called by
``FaceAnalyser::AddNextFrame`` with ``rigid = true``, scale 0.7, 112 x 112) does, per frame:

1. Scale the PDM's mean shape by ``sim_scale`` and drop its z (``similarity_normalised_shape =
   pdm.mean_shape * sim_scale``, then the first 2/3 of the rows: x then y).
2. Keep only the 24 rigid landmarks of both shapes (``extract_rigid_points``:
   :data:`RIGID_LANDMARKS`) and fit scale + rotation from the detected to the mean landmarks
   (``Utilities::AlignShapesWithScale``: :func:`similarity_to`).
3. Translate so that the PDM translation ``params_global[4:6]`` lands on ``(out_width/2,
   out_height/2)`` (integer division: (56, 56)); ``warp_matrix(0,2) = -T(0) + out_width/2`` with
   ``T = scale_rot_matrix * (tx, ty)``.  facevox has no PDM fit; it uses the centroid of the 68
   landmarks, which equals ``(tx, ty)`` for a converged least-squares fit because the PDM's mean
   shape and modes are centred (their x and y sums are 0 in In-the-wild_aligned_PDM_68.txt).
4. ``cv::warpAffine(frame, ..., INTER_LINEAR)`` (constant 0 border): :func:`cv2.warpAffine`.
5. Warp all 68 landmarks with the same matrix, lift 12 of them, 0, 16 and the brows 17-26, by
   ``(30 / 0.7) * sim_scale`` pixels (30 at scale 0.7; "Move the eyebrows up to include more of
   upper face"), and keep the pixels inside the triangulation ``tris_68_full.txt`` through those
   points (``LandmarkDetector::PAW(..., 0, 0, cols-1, rows-1)``, its ``pixel_mask``: pixel (x, y)
   at integer coordinates, triangle edges inclusive); every channel is multiplied by that mask.
   The outer boundary of ``tris_68_full.txt`` (its edges used by one triangle only) is the polygon
   :data:`MASK_OUTLINE`: jaw 0..16, then 26, 25, 24, 19, 18, 17; facevox fills that polygon
   instead of reading OpenFace's triangulation.  The two agree wherever the triangles do not fold
   over each other (all but extreme head poses).

The mean shape is the first matrix of the user's ``In-the-wild_aligned_PDM_68.txt`` (204 values:
68 x, 68 y, 68 z, in mm); facevox does not ship it.  Tests: tests/test_fhog.py
"""
from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from facevox.errors import FacevoxError

SIZE = 112
"""Side of the aligned face for AUs: FaceAnalyserParameters' ``sim_size_au`` (112)."""
SCALE = 0.7
"""Scale of the mean shape (mm -> px) in that face: FaceAnalyserParameters' ``sim_scale_au`` (0.7)."""
RIGID_LANDMARKS = (1, 2, 3, 4, 12, 13, 14, 15, 27, 28, 29, 31, 32, 33, 34, 35, 36, 39, 40, 41, 42, 45, 46, 47)
"""0-based landmarks ``extract_rigid_points`` keeps: jaw sides, nose bridge and base, eye corners and lower lids."""
LIFTED_LANDMARKS = (0, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26)
"""Landmarks AlignFaceMask moves up before masking: the top of the jaw line and the brows."""
LIFT_AT_SCALE_0_7 = 30.0
"""AlignFaceMask: ``destination_landmarks.at<float>(i, 1) -= (30 / 0.7) * sim_scale``."""
MASK_OUTLINE = tuple(range(17)) + (26, 25, 24, 19, 18, 17)
"""Outer boundary of OpenFace's ``tris_68_full.txt`` (111 triangles), in polygon order."""


class AlignedFace(NamedTuple):
    """An aligned face: ``image`` [size, size(, 3)] uint8 masked outside the face, ``landmarks``
    [68, 2] warped (before the brow lift), ``mask`` [size, size] bool, ``warp`` [2, 3] float64
    (frame pixel -> aligned pixel, OpenCV's convention)."""

    image: np.ndarray
    landmarks: np.ndarray
    mask: np.ndarray
    warp: np.ndarray


def _points(points, name: str, n: int | None = None) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or (n is not None and points.shape[0] != n):
        want = f"[{n}, 2]" if n is not None else "[n, 2]"
        raise FacevoxError(f"{name}: expected points {want}, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise FacevoxError(f"{name}: contains NaN or infinite coordinates (no face in this frame?)")
    return points


def similarity_to(src_points, dst_points) -> tuple[np.ndarray, np.ndarray]:
    """Scale + rotation ``A`` [2, 2] and translation ``t`` [2] with ``dst ~= src @ A.T + t``.

    As OpenFace's ``AlignShapesWithScale``: both point sets are centred, the rotation is Kabsch's
    (SVD of ``src_c.T @ dst_c``, reflections excluded) and the scale is the ratio of the two RMS
    radii ``sqrt(sum |p - mean|^2 / n)`` (not the least-squares optimal scale; the two coincide
    when ``dst`` is an exact similarity copy of ``src``).  ``t = mean(dst) - A @ mean(src)``
    (OpenFace computes and drops it; :func:`align_face` sets its own).
    """
    src = _points(src_points, "similarity_to: src_points")
    dst = _points(dst_points, "similarity_to: dst_points", src.shape[0])
    if src.shape[0] < 2:
        raise FacevoxError(f"similarity_to: needs at least 2 points, got {src.shape[0]}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_rms = np.sqrt((src_c ** 2).sum() / len(src))
    dst_rms = np.sqrt((dst_c ** 2).sum() / len(dst))
    if not src_rms > 0 or not dst_rms > 0:
        raise FacevoxError("similarity_to: all points coincide; scale and rotation are undefined")
    u, _, vt = np.linalg.svd((src_c / src_rms).T @ (dst_c / dst_rms))
    flip = np.diag([1.0, np.sign(np.linalg.det(vt.T @ u.T)) or 1.0])
    a = (dst_rms / src_rms) * (vt.T @ flip @ u.T)
    return a, dst_mean - a @ src_mean


def mean_shape_2d(mean_shape) -> np.ndarray:
    """The PDM mean shape as [68, 2] (x, y): from OpenFace's flat [204] (68 x, 68 y, 68 z) or
    [68, 2] / [68, 3] points (z dropped)."""
    shape = np.asarray(mean_shape, dtype=np.float64)
    if shape.ndim == 1 and shape.size == 204:
        shape = shape.reshape(3, 68).T
    elif shape.ndim == 2 and shape.shape[0] == 204 and shape.shape[1] == 1:
        shape = shape[:, 0].reshape(3, 68).T
    if shape.ndim != 2 or shape.shape[0] != 68 or shape.shape[1] not in (2, 3):
        raise FacevoxError(
            f"mean_shape: expected OpenFace's 204 PDM mean values or [68, 2|3] points, got shape {shape.shape}"
        )
    return _points(shape[:, :2], "mean_shape", 68)


def polygon_mask(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels (integer x, y) inside the closed polygon or on its boundary (even-odd rule).

    Each edge touches only its own rows (the crossing test: ``min(ay, by) <= y < max(ay, by)``)
    and its own bounding box (the on-edge test: a pixel outside it is at least 1 px away), so a
    112 x 112 mask costs ~0.5 ms instead of a whole-grid pass per edge."""
    xs = np.arange(width, dtype=np.float64)
    inside = np.zeros((height, width), dtype=bool)
    on_edge = np.zeros((height, width), dtype=bool)
    for (ax, ay), (bx, by) in zip(polygon, np.roll(polygon, -1, axis=0)):
        y0, y1 = max(0, math.ceil(min(ay, by))), min(height, math.ceil(max(ay, by)))
        if y1 > y0 and ay != by:
            ys = np.arange(y0, y1, dtype=np.float64)[:, None]
            inside[y0:y1] ^= xs[None, :] < ax + (ys - ay) * (bx - ax) / (by - ay)
        r0, r1 = max(0, math.floor(min(ay, by))), min(height - 1, math.ceil(max(ay, by)))
        c0, c1 = max(0, math.floor(min(ax, bx))), min(width - 1, math.ceil(max(ax, bx)))
        if r1 < r0 or c1 < c0:
            continue
        gy = np.arange(r0, r1 + 1, dtype=np.float64)[:, None]
        gx = xs[None, c0:c1 + 1]
        length2 = (bx - ax) ** 2 + (by - ay) ** 2
        if length2 == 0:
            on_edge[r0:r1 + 1, c0:c1 + 1] |= (gx == ax) & (gy == ay)
            continue
        along = np.clip(((gx - ax) * (bx - ax) + (gy - ay) * (by - ay)) / length2, 0.0, 1.0)
        on_edge[r0:r1 + 1, c0:c1 + 1] |= np.hypot(gx - ax - along * (bx - ax), gy - ay - along * (by - ay)) <= 1e-9
    return inside | on_edge


def face_mask(aligned_landmarks, size: int = SIZE, scale: float = SCALE) -> np.ndarray:
    """OpenFace's mask [size, size] (bool) for landmarks already in the aligned face: the polygon
    :data:`MASK_OUTLINE` after lifting :data:`LIFTED_LANDMARKS` by ``(30 / 0.7) * scale`` pixels."""
    points = _points(aligned_landmarks, "face_mask: aligned_landmarks", 68).copy()
    points[list(LIFTED_LANDMARKS), 1] -= LIFT_AT_SCALE_0_7 / 0.7 * scale
    return polygon_mask(points[list(MASK_OUTLINE)], size, size)


def align_face(frame: np.ndarray, landmarks68, mean_shape, size: int = SIZE, scale: float = SCALE,
               rigid: bool = True, centre=None) -> AlignedFace:
    """OpenFace 2.x's masked, similarity-aligned face (``AlignFaceMask``) of one frame.

    ``frame`` [H, W] or [H, W, 3] uint8 (channels untouched); ``landmarks68`` [68, 2] pixel (x, y)
    in dlib / iBUG order; ``mean_shape``: the PDM mean (see :func:`mean_shape_2d`).  The warp maps
    the :data:`RIGID_LANDMARKS` (all 68 with ``rigid=False``) onto ``scale * mean_shape`` and
    ``centre`` (default: the centroid of the 68 landmarks, standing in for OpenFace's PDM
    translation) onto pixel ``(size // 2, size // 2)``.
    """
    frame = np.asarray(frame)
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3)) or frame.dtype != np.uint8:
        raise FacevoxError(f"align_face: expected a uint8 frame [H, W] or [H, W, 3], got {frame.dtype} {frame.shape}")
    if not (isinstance(size, (int, np.integer)) and size >= 8):
        raise FacevoxError(f"align_face: size must be an integer >= 8, got {size!r}")
    if not (np.isfinite(scale) and scale > 0):
        raise FacevoxError(f"align_face: scale must be a positive number, got {scale!r}")
    source = _points(landmarks68, "align_face: landmarks68", 68)
    target = mean_shape_2d(mean_shape) * scale
    pick = list(RIGID_LANDMARKS) if rigid else slice(None)
    a, _ = similarity_to(source[pick], target[pick])
    centre = source.mean(axis=0) if centre is None else _points(np.reshape(centre, (1, 2)), "align_face: centre")[0]
    warp = np.empty((2, 3))
    warp[:, :2] = a
    warp[:, 2] = -a @ centre + size // 2
    image = cv2.warpAffine(frame, warp, (size, size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    aligned = source @ a.T + warp[:, 2]
    mask = face_mask(aligned, size=size, scale=scale)
    image = image * (mask[:, :, None] if image.ndim == 3 else mask).astype(np.uint8)
    return AlignedFace(image=image, landmarks=aligned, mask=mask, warp=warp)
