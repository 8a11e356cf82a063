"""Stage `faces`: square face crops with the eyes level, from the landmarks.

Two alignments (``faces.method``), both a similarity transform (rotation, uniform
scale, shift) computed from the 68 landmarks of the landmarks stage.

``eye_mouth`` (default) - for a frame with a face:

* ``E`` = midpoint of the two eye centres (points 36-41 and 42-47), ``M`` = mouth
  centre (mean of the outer lip, points 48-59).
* rotation: the eye line (image-left eye centre -> image-right eye centre) becomes
  horizontal;
* scale: ``|E - M|`` becomes ``size / 3`` pixels;
* shift: ``E`` lands at ``(size / 2, EYE_Y * size)`` with ``EYE_Y = 0.35``, so the
  mouth sits at about 0.68 of the height and the chin near 0.9.

``eyes`` - STA-DRN's alignment (the authors crop with imutils' ``FaceAligner`` at
its defaults, ``desiredLeftEye = (0.35, 0.35)``: their preprocessing script
``face_detect.py`` of divertingPan/utility_room, linked from the STA-DRN README):

* rotation: the eye line becomes horizontal (as above);
* scale: the inter-ocular distance (eye centre to eye centre) becomes
  ``(1 - 2 * 0.35) * size = 0.3 * size``;
* shift: the eye midpoint lands at ``(size / 2, 0.35 * size)``, so the image-left
  eye centre sits at ``(0.35, 0.35) * size`` and the image-right one at
  ``(0.65, 0.35) * size``; cubic interpolation (as imutils).

Their face detection (dlib's HOG detector, the image upsampled twice) belongs to
the landmarks stage, which is not changed by this option.

The ``eye_mouth`` crop is cut from the RGB frame with bilinear interpolation (pixels outside
the frame are black), stored as JPEG bytes, together with the 68 landmarks
mapped into crop coordinates (``cx_*``, ``cy_*``: DLGA-CNN places its 24
patches there).  Every ``stride``-th frame is kept; frames without a face get a
row with ``success = False``, an empty image and NaN landmarks.

Streaming: rows are written as they are made, in Parquet row groups of
``contract.FACES_ROW_GROUP_ROWS`` (256) rows (:class:`facevox.io.TableWriter`), so memory
holds one group of crops, not the video's; a reader of face clips reads by row group.

Privacy: nothing is written unless ``keep_face_images`` is true; with the
default (false) the Snakemake workflow leaves this stage out and this module
refuses to run.

Rule: workflow/rules/faces.smk · Tests: tests/test_faces.py
"""
from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa

from facevox.config import stage_params
from facevox.contract import (
    ALIGNED_FACES_SCHEMA,
    CROP_LANDMARK_X,
    CROP_LANDMARK_Y,
    FACES_ROW_GROUP_ROWS,
    LANDMARKS_SCHEMA,
    points_from_columns,
    points_to_columns,
)
from facevox.errors import FacevoxError
from facevox.io import TableWriter, read_table, table_from_numpy
from facevox.media import iter_rgb_frames
from facevox.provenance import provenance

EYE_Y = 0.35
#: ``eyes`` method: where the image-left eye centre lands, as fractions of the crop (imutils' default).
EYES_LEFT_EYE = (0.35, 0.35)
METHODS = ("eye_mouth", "eyes")


def alignment_matrix(points: np.ndarray, size: int, method: str = "eye_mouth") -> np.ndarray:
    """The 2x3 affine matrix (for cv2.warpAffine) that aligns a face with 68 points [68, 2]
    by ``method`` (``eye_mouth`` or ``eyes``, see the module docstring)."""
    if method not in METHODS:
        raise FacevoxError(f"faces.method must be one of {', '.join(METHODS)}, got {method!r}")
    left_eye = points[36:42].mean(axis=0)
    right_eye = points[42:48].mean(axis=0)
    eyes = (left_eye + right_eye) / 2
    angle = np.arctan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0])
    if method == "eye_mouth":
        mouth = points[48:60].mean(axis=0)
        scale = (size / 3.0) / np.linalg.norm(eyes - mouth)
        centre = np.array([size / 2.0, EYE_Y * size])
    else:
        scale = (1 - 2 * EYES_LEFT_EYE[0]) * size / np.linalg.norm(right_eye - left_eye)
        centre = np.array([size / 2.0, EYES_LEFT_EYE[1] * size])
    cos, sin = scale * np.cos(-angle), scale * np.sin(-angle)
    rot = np.array([[cos, -sin], [sin, cos]])
    shift = centre - rot @ eyes
    return np.hstack([rot, shift[:, None]])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_face(rgb: np.ndarray, points: np.ndarray, size: int,
               method: str = "eye_mouth") -> tuple[np.ndarray, np.ndarray]:
    """(aligned RGB crop [size, size, 3], landmarks in crop coordinates [68, 2])."""
    m = alignment_matrix(points, size, method)
    flags = cv2.INTER_CUBIC if method == "eyes" else cv2.INTER_LINEAR
    crop = cv2.warpAffine(rgb, m, (size, size), flags=flags,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crop, transform_points(m, points).astype(np.float32)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """An RGB uint8 image as JPEG bytes at ``quality`` (OpenCV's 1-100 scale)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise FacevoxError("JPEG encoding failed")
    return buf.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes from this stage back to an RGB array."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def iter_batches(video, landmarks: pd.DataFrame, params: dict | None = None,
                 rows: int = FACES_ROW_GROUP_ROWS) -> Iterator[dict]:
    """The stage's rows in frame order as numpy column batches ({column: array}) of ``rows`` rows
    (the last one shorter; none for a video without frames)."""
    if rows < 1:
        raise FacevoxError(f"faces: rows per batch must be at least 1, got {rows}")
    p = stage_params("faces", params)
    size, stride = p["size"], p["stride"]
    points_all = points_from_columns(landmarks)
    success = landmarks["success"].to_numpy(bool)
    row_of = {int(f): i for i, f in enumerate(landmarks["frame"])}
    nan_points = np.full((68, 2), np.nan, np.float32)

    def batch(buf: dict) -> dict:
        return {
            "frame": np.asarray(buf["frame"], np.int32),
            "timestamp_s": np.asarray(buf["timestamp_s"], np.float64),
            "success": np.asarray(buf["success"], bool),
            "image": buf["image"],
            **points_to_columns(np.asarray(buf["crop"]), CROP_LANDMARK_X, CROP_LANDMARK_Y),
        }

    buf = {"frame": [], "timestamp_s": [], "success": [], "image": [], "crop": []}
    for frame in iter_rgb_frames(video, stride=stride):
        i = row_of.get(frame.index)
        ok = i is not None and bool(success[i])
        buf["frame"].append(frame.index)
        buf["timestamp_s"].append(frame.time_s)
        buf["success"].append(ok)
        if ok:
            crop, crop_points = align_face(frame.image, points_all[i], size, p["method"])
            buf["image"].append(encode_jpeg(crop, p["jpeg_quality"]))
            buf["crop"].append(crop_points)
        else:
            buf["image"].append(b"")
            buf["crop"].append(nan_points)
        if len(buf["frame"]) == rows:
            yield batch(buf)
            buf = {k: [] for k in buf}
    if buf["frame"]:
        yield batch(buf)


def extract(video, landmarks: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
    """The whole table in memory (small videos, tests); :func:`run` streams it to a file instead."""
    tables = [table_from_numpy(b, ALIGNED_FACES_SCHEMA) for b in iter_batches(video, landmarks, params)]
    return (pa.concat_tables(tables) if tables else ALIGNED_FACES_SCHEMA.empty_table()).to_pandas()


def run(video, landmarks_path, out, params: dict | None = None,
        row_group_rows: int = FACES_ROW_GROUP_ROWS) -> dict:
    """Write the faces table of ``video`` at ``out``, ``row_group_rows`` rows per row group as they
    are made; return ``{"n_rows", "n_faces"}``."""
    p = stage_params("faces", params)
    if not p["keep_face_images"]:
        raise FacevoxError("faces.keep_face_images is false: face images are not written "
                           "(set it to true in config.yaml to store aligned crops)")
    landmarks, _ = read_table(landmarks_path, LANDMARKS_SCHEMA)
    geometry = ({"eye_y": EYE_Y, "eye_mouth": "1/3 of size"} if p["method"] == "eye_mouth"
                else {"left_eye": list(EYES_LEFT_EYE), "inter_ocular": f"{1 - 2 * EYES_LEFT_EYE[0]:g} of size"})
    meta = provenance("faces", params={**p, **geometry},
                      inputs={"video": video, "landmarks": landmarks_path})
    n_faces = 0
    with TableWriter(out, ALIGNED_FACES_SCHEMA, meta, row_group_size=row_group_rows) as writer:
        for cols in iter_batches(video, landmarks, p, rows=row_group_rows):
            writer.write(cols)
            n_faces += int(cols["success"].sum())
    return {"n_rows": writer.n_rows, "n_faces": n_faces}
