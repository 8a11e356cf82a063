"""Who is who: face descriptors, the people of one video, and its target person.

Used by the landmarks stage (facevox.extract.landmarks, "One person per video"), which
tracks every face and keeps the landmarks of one *target* person; every later stage reads
that person's landmarks, so no table mixes two people.

The descriptor
--------------
dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``, shipped by
``face-recognition-models``; 99.38 % on LFW pairs) maps a face, aligned by its landmarks
to a 150x150 chip (dlib's ``get_face_chip``, padding 0.25), to 128 numbers; two faces of
one person lie closer than ``target.match_distance`` (Euclidean, dlib's threshold 0.6).
It is computed from the RGB frame and facevox's own 68 landmarks, only where identity is
in question (a new face, a face after a scene cut, a periodic check: see landmarks.py):
dlib-bin's build runs it in ~80 ms of CPU on a 2-core Xeon (no BLAS), 8-20 video frames'
worth of the whole chain.

The people of a video (:class:`Gallery`)
----------------------------------------
Each descriptor joins the person whose mean descriptor is nearest, if closer than
``match_distance``, else founds a new person.  A person's *embedding* is the mean of its
descriptors.  Presence is counted in frames (a frame counts once per person, however many
of its faces were assigned to that person).

The target (:func:`choose_target`, config ``target.mode``)
----------------------------------------------------------
* ``dominant`` - the person present in the most frames (ties: the larger median face);
  ``close_choice`` when the runner-up's frames reach ``target.close_ratio`` of the target's.
* ``reference`` - the person whose embedding is nearest to the reference descriptor
  (:func:`reference_descriptor`: an image, or a video frame at a time, with exactly one
  face), if closer than ``match_distance``; none: the target is not in the video.
* ``largest`` - the person with the largest median face (box side over their frames).

Rule: workflow/rules/landmarks.smk · Tests: tests/test_identity.py
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from facevox.errors import FacevoxError

#: The descriptor model inside face-recognition-models' folder.
DESCRIPTOR_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
#: dlib's chip: 150 x 150 px, 25 % padding around the landmarks' alignment square.
CHIP_SIZE = 150
CHIP_PADDING = 0.25
#: Values of config target.mode.
MODES = ("dominant", "reference", "largest")


def model_path() -> Path:
    from facevox.extract.face_tracker import model_dir

    path = model_dir() / DESCRIPTOR_MODEL
    if not path.is_file():
        raise FacevoxError(f"dlib's face descriptor model is missing: {path} (it ships with the "
                           "'face-recognition-models' package: pip install face-recognition-models==0.3.0)")
    return path


@lru_cache(maxsize=1)
def _recognizer():
    import dlib

    return dlib.face_recognition_model_v1(str(model_path()))


def descriptor(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The 128-d descriptor [128] float32 of the face with 68 landmarks ``points`` [68, 2]
    (pixels) on the RGB image ``rgb`` [H, W, 3] uint8."""
    import dlib

    pts = [dlib.point(int(round(x)), int(round(y))) for x, y in np.asarray(points, np.float64)]
    xs, ys = [p.x for p in pts], [p.y for p in pts]
    shape = dlib.full_object_detection(dlib.rectangle(min(xs), min(ys), max(xs), max(ys)), pts)
    image = np.ascontiguousarray(rgb, dtype=np.uint8)
    return np.asarray(_recognizer().compute_face_descriptor(image, shape, 0, CHIP_PADDING), np.float32)


@dataclass(eq=False)  # compared by identity: one object per face / person
class Person:
    """One person of a video: descriptors seen, frames present, face sizes."""

    number: int
    descriptors: list  # each [128] float32
    frames: int = 0
    size_sum: float = 0.0  # box sides summed over the frames present (mean: largest, online)
    sizes: list = field(default_factory=list)  # box side per frame present (median: largest)
    _embedding: np.ndarray | None = None

    @property
    def embedding(self) -> np.ndarray:
        """The mean of the person's descriptors [128] float32."""
        if self._embedding is None:
            self._embedding = np.mean(self.descriptors, axis=0).astype(np.float32)
        return self._embedding

    @property
    def n_descriptors(self) -> int:
        return len(self.descriptors)

    def add(self, desc: np.ndarray) -> None:
        self.descriptors.append(np.asarray(desc, np.float32))
        self._embedding = None

    def spread(self) -> float:
        """Mean distance of the person's descriptors to their embedding."""
        return float(np.mean(np.linalg.norm(np.stack(self.descriptors) - self.embedding, axis=1)))

    @property
    def median_size(self) -> float:
        return float(np.median(self.sizes)) if self.sizes else 0.0

    @property
    def mean_size(self) -> float:
        return self.size_sum / self.frames if self.frames else 0.0


class Gallery:
    """The people of one video, grown one descriptor at a time (module docstring)."""

    def __init__(self, match_distance: float):
        self.match_distance = float(match_distance)
        self.people: list[Person] = []

    def nearest(self, desc: np.ndarray) -> tuple[Person | None, float]:
        """The person whose embedding is nearest to ``desc`` and the distance (None, inf: nobody yet)."""
        if not self.people:
            return None, float("inf")
        d = np.linalg.norm(np.stack([p.embedding for p in self.people]) - desc, axis=1)
        k = int(np.argmin(d))
        return self.people[k], float(d[k])

    def assign(self, desc: np.ndarray) -> Person:
        """The person ``desc`` belongs to (the nearest, if close enough), or a new one."""
        person, dist = self.nearest(desc)
        if person is not None and dist < self.match_distance:
            person.add(desc)
            return person
        person = Person(len(self.people), [np.asarray(desc, np.float32)])
        self.people.append(person)
        return person

    def present(self, person: Person, side: float) -> None:
        """``person`` is on one more frame, with a face of box side ``side`` px."""
        person.frames += 1
        person.size_sum += side
        person.sizes.append(side)


@dataclass
class TargetChoice:
    person: Person | None
    why: str
    close_choice: bool = False
    reference_distance: float | None = None


def choose_target(gallery: Gallery, mode: str, reference: np.ndarray | None = None,
                  close_ratio: float = 0.8, n_frames: int = 0) -> TargetChoice:
    """The target person of a finished video (module docstring, "The target")."""
    people = [p for p in gallery.people if p.frames > 0]
    if mode not in MODES:
        raise FacevoxError(f"target.mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not people:
        return TargetChoice(None, "no face in the video")
    share = (lambda p: f"{p.frames} of {n_frames} frames") if n_frames else (lambda p: f"{p.frames} frames")
    if mode == "reference":
        if reference is None:
            raise FacevoxError("target.mode is reference but no reference face was given")
        d = [float(np.linalg.norm(p.embedding - reference)) for p in people]
        k = int(np.argmin(d))
        if d[k] >= gallery.match_distance:
            seen = "the one person seen does not match" if len(people) == 1 else \
                f"none of the {len(people)} people seen matches"
            return TargetChoice(None, f"{seen} the reference face "
                                      f"(nearest at distance {d[k]:.3f}, match below {gallery.match_distance:g})",
                                reference_distance=d[k])
        return TargetChoice(people[k], f"matches the reference face (distance {d[k]:.3f}); "
                                       f"present in {share(people[k])}", reference_distance=d[k])
    if mode == "largest":
        ranked = sorted(people, key=lambda p: (-p.median_size, -p.frames, p.number))
        best = ranked[0]
        return TargetChoice(best, f"the largest face (median {best.median_size:.0f} px) of {len(people)} "
                                  f"people; present in {share(best)}")
    ranked = sorted(people, key=lambda p: (-p.frames, -p.median_size, p.number))
    best = ranked[0]
    if len(ranked) == 1:
        return TargetChoice(best, f"the only person seen; present in {share(best)}")
    second = ranked[1]
    close = second.frames >= close_ratio * best.frames
    why = (f"present in the most frames ({share(best)}; the next of {len(people)} people: "
           f"{second.frames})" + ("; a close choice" if close else ""))
    return TargetChoice(best, why, close_choice=close)


# -- the reference face -----------------------------------------------------------

def _reference_image(path: Path, time_s: float | None, where: str) -> np.ndarray:
    """The reference as an RGB array: an image file, or a video's frame at ``time_s``."""
    import cv2

    from facevox.errors import InputError
    from facevox.media import iter_rgb_frames

    if not path.is_file():
        raise FacevoxError(f"{where}: reference face file not found: {path}")
    if time_s is None:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is not None:
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    try:  # a video (or an image format OpenCV does not read: FFmpeg may)
        last = None
        for frame in iter_rgb_frames(path):
            last = frame
            if time_s is None or frame.time_s >= time_s - 1e-6:
                return frame.image
    except InputError as exc:
        raise FacevoxError(f"{where}: the reference face {path} is not a readable image or video "
                           f"({exc.problem})") from None
    if last is None:
        raise FacevoxError(f"{where}: the reference face {path} has no picture")
    raise FacevoxError(f"{where}: the reference video {path} ends at {last.time_s:.2f} s, before "
                       f"reference_s {time_s:g} s")


def reference_descriptor(path, time_s: float | None = None, where: str = "reference") -> tuple[np.ndarray, dict]:
    """The descriptor of the one face on a reference image (or a video's frame at ``time_s``
    seconds), with a record of it; a missing or unreadable file, no face or several faces is a
    FacevoxError that starts with ``where`` (the sample sheet's row)."""
    from facevox.extract.face_tracker import dlib_detector, dlib_predictor

    path = Path(path)
    rgb = _reference_image(path, time_s, where)
    gray = np.ascontiguousarray(rgb.mean(axis=2).astype(np.uint8))
    # full resolution, and upsampled once when small (a 40-px face in a 400-px photo)
    upsample = 1 if min(gray.shape) < 720 else 0
    rects, scores, _ = dlib_detector().run(gray, upsample, 0.0)
    what = f"the reference face {path}" + (f" at {time_s:g} s" if time_s is not None else "")
    if len(rects) == 0:
        raise FacevoxError(f"{where}: {what}: no face found (give a picture in which the participant's "
                           "face is frontal and at least ~40 px wide)")
    if len(rects) > 1:
        raise FacevoxError(f"{where}: {what}: {len(rects)} faces found, so which one is the participant is "
                           "not known (crop the picture to the participant)")
    shape = dlib_predictor()(gray, rects[0])
    points = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
    desc = descriptor(rgb, points)
    r = rects[0]
    record = {"path": str(path), "time_s": time_s, "face_box": [r.left(), r.top(), r.width(), r.height()],
              "detector_score": round(float(scores[0]), 4)}
    return desc, record


def embedding_list(vec: np.ndarray | None) -> list[float] | None:
    """An embedding as JSON-friendly floats (6 decimals: far below any threshold)."""
    return None if vec is None else [round(float(v), 6) for v in vec]


def model_record() -> dict:
    """What identity ran with, for provenance."""
    return {"model": DESCRIPTOR_MODEL, "chip_size": CHIP_SIZE, "chip_padding": CHIP_PADDING,
            "package": "face-recognition-models"}
