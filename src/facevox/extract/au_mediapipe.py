"""The ``mediapipe`` action-unit backend: MediaPipe FaceLandmarker, offline.

What runs
---------
MediaPipe Tasks' ``FaceLandmarker`` (mediapipe 1.2.2) with the bundle
``face_landmarker.task`` (BlazeFace short-range face detector, the 478-point face mesh
with irises, the 52-blendshape model and the face-geometry pipeline), which
facevox.extract.au_mediapipe_install locates, fetches and checks.

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

Then the same-face check (facevox.extract.au_mediapipe_geometry.same_face, whose module
docstring has the rule), per frame: MediaPipe's face must be the landmarks' face - its
nose tip inside the landmarks' box, its eye centres near dlib's.  A frame that fails is
success false with NaN values - never the other face (:func:`mediapipe_aus` counts them).
``FaceLandmarkerAU.video`` without boxes shows whole frames (no target known).

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
* ``pose_*``, ``gaze_*``: from the facial transformation matrix and the iris points
  (facevox.extract.au_mediapipe_geometry: head_pose, gaze_vectors; its docstring has the
  conventions and the eye model).

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

import io
import zipfile

import numpy as np
import pandas as pd

from facevox.contract import (
    AU_COLUMNS,
    BLENDSHAPE_COLUMNS,
    BLENDSHAPE_NAMES,
    GAZE_COLUMNS,
    POSE_COLUMNS,
    points_from_columns,
)
from facevox.errors import InputError
from facevox.extract.au_mediapipe_geometry import EYES, NOSE_TIP, check_points, gaze_vectors, head_pose, same_face
from facevox.extract.au_mediapipe_install import import_mediapipe, load_model_bytes
from facevox.extract.au_table import au_frame, landmark_boxes
from facevox.media import iter_rgb_frames

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

#: The mesh's size, and the points of it the session reads (the others are never converted).
MESH_POINTS = 478
MESH_USED = [NOSE_TIP, *EYES[0], *EYES[1]]
#: Side of the region MediaPipe is shown over the side of the target's landmark box (about the
#: box's centre): a dlib box spans brows to chin, MediaPipe's detector wants the whole head.
MASK_MARGIN = 1.8


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
        self.model = load_model_bytes()
        mp = import_mediapipe()  # after the checks: the import is slow

        with zipfile.ZipFile(io.BytesIO(self.model)) as z:
            self.detector_model = z.read(DETECTOR_MEMBER)
        self._mp = mp
        self.confidence_every = confidence_every
        self.margin = margin

    def video(self, video, boxes=None) -> dict[str, np.ndarray]:
        """Per decoded frame: frame, timestamp_s, success, confidence, the 17 AUs, pose, gaze,
        ``blendshapes`` [N, 52], ``given_box`` and ``check_points`` (:meth:`LandmarkerSession.result`);
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

    def session(self, video, masked: bool = True) -> LandmarkerSession:
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
        return LandmarkerSession(self._mp, video, landmarker, detector, self.confidence_every,
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


class FrameMask:
    """Frames black outside a region (:func:`mask_rect`), in one buffer kept across frames: each
    call clears the previous region and copies the new one in (a few hundred kB a frame, not
    the whole frame)."""

    def __init__(self):
        self.buf = None  # the masked frame, reused: only the region changes
        self.rect = None  # the region the buffer holds now

    def apply(self, img: np.ndarray, rect) -> np.ndarray:
        """``img`` black outside ``rect`` (x0, y0, x1, y1; x1, y1 exclusive): the buffer itself,
        which the next call overwrites."""
        if self.buf is None or self.buf.shape != img.shape:
            self.buf, self.rect = np.zeros(img.shape, np.uint8), None
        if self.rect is not None:
            px0, py0, px1, py1 = self.rect
            self.buf[py0:py1, px0:px1] = 0
        x0, y0, x1, y1 = rect
        self.buf[y0:y1, x0:x1] = img[y0:y1, x0:x1]
        self.rect = rect
        return self.buf


class LandmarkerSession:
    """One video's FaceLandmarker and detector tasks (:meth:`FaceLandmarkerAU.session`): frames
    go in one at a time (:meth:`add`), the per-frame table comes out (:meth:`result`)."""

    def __init__(self, mp, video, landmarker, detector, confidence_every: int, margin: float | None):
        self.mp, self.video, self.landmarker, self.detector = mp, video, landmarker, detector
        self.every = max(1, int(confidence_every))
        self.margin = margin
        self.frames, self.times, self.success, self.conf, self.shapes = [], [], [], [], []
        self.given, self.points, self.mesh, self.matrices = [], [], [], []  # mesh, matrices: faces only
        self.t0 = self.ms = None
        self.since_check = None  # faces tracked since the last detector check; None: no face before
        self.score = np.nan
        self.mask = FrameMask()  # the masked frame's buffer, reused across frames

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.landmarker.close()
        self.detector.close()

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
            data = self.mask.apply(frame.image, rect)
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


# -- the AU table (what facevox.extract.action_units.run writes) -----------------------

def box_differences(mp_out: dict, lm: pd.DataFrame) -> int:
    """On how many frames MediaPipe was shown another box (``given_box`` of
    :meth:`FaceLandmarkerAU.session`'s result; NaN: not shown the frame) than the
    landmarks table gives (:func:`landmark_boxes`); every frame when their lengths differ.  0: its
    output is exactly what the stage makes from the table."""
    given = np.asarray(mp_out["given_box"], np.float32)
    want = landmark_boxes(lm)
    if given.shape != want.shape:
        return max(len(given), len(want))
    same = (given == want) | (np.isnan(given) & np.isnan(want))
    return int((~same.all(axis=1)).sum())


def mediapipe_aus(video, lm: pd.DataFrame | None = None, confidence_every: int = CONFIDENCE_EVERY,
                  out: dict | None = None) -> tuple[pd.DataFrame, list[str], list[str], dict]:
    """The ``mediapipe`` backend's AU table, its estimated AU and extension columns, and the
    same-face record (the stage's ``target_*`` metadata: facevox.extract.action_units).
    ``lm``: the landmarks table (the target's boxes and points; None: whole frames, unchecked);
    ``out``: the landmarker's output for this video when the caller ran it (shown the table's
    boxes: :func:`box_differences` is 0)."""
    boxes = None if lm is None else landmark_boxes(lm)
    if out is None:
        out = FaceLandmarkerAU(confidence_every).video(video, boxes)
    success = np.asarray(out["success"], bool)
    if lm is None:
        check = {"target_checked": False, "target_check_why": "no landmarks table: MediaPipe saw whole frames"}
    else:
        n = len(success)
        if n != len(lm):
            raise InputError(video, f"has {n} frames but its landmark table has {len(lm)} rows")
        same = same_face(out["check_points"], boxes, points_from_columns(lm))
        target = lm["success"].to_numpy(bool)
        check = {"target_checked": True,
                 "target_check_why": "MediaPipe shown the target's region only; its face checked against "
                                     "the landmarks (nose tip in the box, eye centres)",
                 "target_frames": int((success & same).sum()),
                 "not_target_frames": int((success & ~same).sum()),
                 "no_target_frames": int((~target).sum()),
                 "target_missed_frames": int((target & ~success).sum())}
        success = success & same
    values = {c: out[c] for c in AU_COLUMNS + POSE_COLUMNS + GAZE_COLUMNS}
    values.update(zip(BLENDSHAPE_COLUMNS, out["blendshapes"].T))
    df = au_frame(out["frame"], out["timestamp_s"], success, out["confidence"], values)
    return df, list(AU_COLUMNS), POSE_COLUMNS + GAZE_COLUMNS + BLENDSHAPE_COLUMNS, check

