"""The geometry of MediaPipe's face for the ``mediapipe`` action-unit backend
(facevox.extract.au_mediapipe): head pose from the facial transformation matrix, gaze
from an eye model on the mesh, and the same-face check against dlib's landmarks.
Plain numpy on MediaPipe's outputs: nothing here imports mediapipe.

* ``pose_*`` (:func:`head_pose`): from the facial transformation matrix (canonical face
  model -> camera, OpenGL axes: y up, z towards the viewer, centimetres).  With
  ``C = diag(1, -1, -1)`` (to OpenFace's camera frame: y down, z away),
  ``R = C R_mp C``, ``T = 10 C t_mp`` (mm); ``pose_Rx/Ry/Rz`` are the Euler angles of
  ``R = Rx Ry Rz`` (OpenFace's convention; :func:`euler_xyz`).  MediaPipe fixes an
  assumed camera (its face-geometry pipeline's default perspective), so ``T`` -
  ``pose_Tz`` above all - is approximate; the angles do not depend on it much.
* ``gaze_*``: a geometric eye model on the mesh (:func:`gaze_vectors`).  In the
  head's frame (mesh points rotated by ``R^T``) each eye's centre is the midpoint
  of its corners (33/133 right eye, 362/263 left eye), the eyeball radius is
  0.4 x the corner distance (~12 mm eyeball radius over a ~30 mm eye), and the gaze
  ray runs from the eyeball centre, that radius behind the corner midpoint, through
  the iris centre (468 right, 473 left): ``g_head = normalise(dx, dy, -sqrt(r^2 -
  dx^2 - dy^2))`` with ``(dx, dy)`` the iris centre's offset from the corner midpoint;
  ``g = R g_head``.  No per-person calibration: an iris that sits off the corner
  line at rest reads as a constant gaze offset (on the test video gaze_angle_y sits
  ~0.2-0.4 rad "up" while she looks near the camera), and the two eyes can differ by
  ~0.2 rad; a mirrored frame gives the mirrored gaze_angle_x within 0.1 rad.
  ``gaze_angle_x/y`` = ``atan2(x, -z)``, ``atan2(y, -z)`` of the mean of the two
  vectors (as OpenFace).  Treat gaze as a relative, within-video signal.

The same-face check (:func:`same_face`), per frame: MediaPipe's face is the
landmarks' face when its nose tip (mesh point 1) lies inside the landmarks' box and
both its eye centres (the corner midpoints 33/133 and 263/362) lie within
:data:`EYE_TOLERANCE_IOD` (0.5) inter-ocular distances of dlib's eye centres (the means
of points 36-41 and 42-47; the IOD is the distance between those two).  On
WolfgangLanger the same face's eyes are 0.04 IOD apart in the median, 0.11 at most,
and its nose tip sits at 0.45-0.61 of the box's width and height; another person's face
is a box or more away.  A frame that fails is success false with NaN values - never the other
face (facevox.extract.au_mediapipe.mediapipe_aus counts them).

Tests: tests/test_action_units.py (section "mediapipe backend").
"""
from __future__ import annotations

import numpy as np

#: Mesh points of the eye model: (outer corner, inner corner, iris centre), eye 0 = subject's right.
EYES = ((33, 133, 468), (263, 362, 473))
NOSE_TIP = 1
#: Eyeball radius over the corner-to-corner distance.
EYEBALL_RATIO = 0.4
#: The same-face check: MediaPipe's eye-corner midpoints at most this many inter-ocular
#: distances (dlib's eye centres) from dlib's eye centres (and its nose tip in dlib's box).
EYE_TOLERANCE_IOD = 0.5
#: dlib's 68-point eyes (subject's right = image left first), as MediaPipe's :data:`EYES`.
DLIB_EYES = (range(36, 42), range(42, 48))
#: OpenGL camera axes (MediaPipe's matrix) -> OpenFace's (y down, z away from the camera).
_FLIP = np.diag([1.0, -1.0, -1.0])


def euler_xyz(R: np.ndarray) -> np.ndarray:
    """(Rx, Ry, Rz) in radians with ``R = Rx @ Ry @ Rz``, for rotation matrices [..., 3, 3]."""
    rx = np.arctan2(-R[..., 1, 2], R[..., 2, 2])
    ry = np.arcsin(np.clip(R[..., 0, 2], -1.0, 1.0))
    rz = np.arctan2(-R[..., 0, 1], R[..., 0, 0])
    return np.stack([rx, ry, rz], axis=-1)


def rotation_xyz(euler) -> np.ndarray:
    """``Rx(rx) @ Ry(ry) @ Rz(rz)`` for Euler angles ``[..., 3]`` (rad: rx, ry, rz) -> ``[..., 3, 3]``;
    the inverse of :func:`euler_xyz` (OpenFace's convention; also its PDM's rotation,
    facevox.extract.pdm_fit)."""
    e = np.asarray(euler, dtype=np.float64)
    s1, s2, s3 = np.sin(e[..., 0]), np.sin(e[..., 1]), np.sin(e[..., 2])
    c1, c2, c3 = np.cos(e[..., 0]), np.cos(e[..., 1]), np.cos(e[..., 2])
    rows = [[c2 * c3, -c2 * s3, s2],
            [c1 * s3 + s1 * s2 * c3, c1 * c3 - s1 * s2 * s3, -s1 * c2],
            [s1 * s3 - c1 * s2 * c3, s1 * c3 + c1 * s2 * s3, c1 * c2]]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def head_pose(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's 4x4 facial transformation matrix (or [N, 4, 4]: the same numbers as one by one,
    faster) -> (R in OpenFace's camera frame, the six ``POSE_COLUMNS`` values: Tx, Ty, Tz in mm,
    Rx, Ry, Rz in rad)."""
    m = np.asarray(matrix, np.float64)
    R = _FLIP @ m[..., :3, :3] @ _FLIP
    # The matrix may carry the canonical model's scale; keep the rotation only.
    u, _, vt = np.linalg.svd(R)
    R = u @ vt
    T = 10.0 * (_FLIP @ m[..., :3, 3:])[..., 0]
    return R, np.concatenate([T, euler_xyz(R)], axis=-1)


def gaze_vectors(points: np.ndarray, R: np.ndarray) -> np.ndarray:
    """The eight ``GAZE_COLUMNS`` values from the mesh [478, 3] and the head rotation R.

    ``points`` are in the image's pixel frame (x right, y down, z away from the camera,
    z on x's scale, as MediaPipe normalises them); see the module docstring for the eye model.
    """
    head = np.asarray(points, np.float64) @ R  # rows R^T p: head-frame coordinates
    out = []
    for outer, inner, iris in EYES:
        centre = (head[outer] + head[inner]) / 2
        r = EYEBALL_RATIO * np.linalg.norm(head[outer, :2] - head[inner, :2])
        dx, dy = head[iris, :2] - centre[:2]
        dz = -np.sqrt(max(r * r - dx * dx - dy * dy, 0.0))
        g = np.array([dx, dy, dz])
        g = R @ (g / np.linalg.norm(g))
        out.append(g)
    mean = (out[0] + out[1]) / 2
    angles = [np.arctan2(mean[0], -mean[2]), np.arctan2(mean[1], -mean[2])]
    return np.concatenate([out[0], out[1], angles])


def check_points(pts: np.ndarray) -> np.ndarray:
    """The points of MediaPipe's face [478, 3] (pixels) the same-face check uses [3, 2]: the nose
    tip and the two eyes' corner midpoints (subject's right eye first)."""
    return np.array([pts[NOSE_TIP, :2], (pts[EYES[0][0], :2] + pts[EYES[0][1], :2]) / 2,
                     (pts[EYES[1][0], :2] + pts[EYES[1][1], :2]) / 2])


def same_face(points: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray,
              tolerance: float = EYE_TOLERANCE_IOD) -> np.ndarray:
    """Per frame: MediaPipe's face (:func:`check_points` [N, 3, 2]) is the face of the landmarks
    table's row (``boxes`` [N, 4] left, top, width, height; ``landmarks`` [N, 68, 2] dlib's points):
    the nose tip inside the box and each eye's corner midpoint within ``tolerance`` inter-ocular
    distances of dlib's eye centre (the mean of its six points).  False where either is NaN."""
    points = np.asarray(points, np.float64)
    boxes = np.asarray(boxes, np.float64)
    with np.errstate(invalid="ignore"):
        nose = points[:, 0]
        in_box = ((nose[:, 0] >= boxes[:, 0]) & (nose[:, 0] <= boxes[:, 0] + boxes[:, 2])
                  & (nose[:, 1] >= boxes[:, 1]) & (nose[:, 1] <= boxes[:, 1] + boxes[:, 3]))
        return in_box & (eye_offsets(points, landmarks) <= tolerance)


def eye_offsets(points: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Per frame: the larger of the two eyes' distances between MediaPipe's corner midpoint and
    dlib's eye centre, in inter-ocular distances (what :func:`same_face` bounds)."""
    lm = np.asarray(landmarks, np.float64)
    eyes = np.stack([lm[:, list(e)].mean(axis=1) for e in DLIB_EYES], axis=1)  # [N, 2, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        iod = np.linalg.norm(eyes[:, 1] - eyes[:, 0], axis=1)
        return np.linalg.norm(np.asarray(points, np.float64)[:, 1:] - eyes, axis=2).max(axis=1) / iod
