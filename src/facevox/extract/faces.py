"""Stage `faces`: square face crops with the eyes level, from the landmarks.

The similarity transform (rotation, uniform scale, shift) for a frame with a face:

* ``E`` = midpoint of the two eye centres (points 36-41 and 42-47), ``M`` = mouth
  centre (mean of the outer lip, points 48-59).
* rotation: the eye line (image-left eye centre -> image-right eye centre) becomes
  horizontal;
* scale: ``|E - M|`` becomes ``size / 3`` pixels;
* shift: ``E`` lands at ``(size / 2, EYE_Y * size)`` with ``EYE_Y = 0.35``, so the
  mouth sits at about 0.68 of the height and the chin near 0.9.

The crop is cut from the RGB frame with bilinear interpolation (pixels outside
the frame are black), stored as JPEG bytes, together with the 68 landmarks
mapped into crop coordinates (``cx_*``, ``cy_*``: DLGA-CNN places its 24
patches there).  Every ``stride``-th frame is kept; frames without a face get a
row with ``success = False``, an empty image and NaN landmarks.

Privacy: nothing is written unless ``keep_face_images`` is true; with the
default (false) the Snakemake workflow leaves this stage out and this module
refuses to run.

Rule: workflow/rules/faces.smk · Tests: tests/test_faces.py
"""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from facevox.config import stage_params
from facevox.contract import (
    ALIGNED_FACES_SCHEMA,
    CROP_LANDMARK_X,
    CROP_LANDMARK_Y,
    LANDMARKS_SCHEMA,
    points_from_columns,
    points_to_columns,
)
from facevox.errors import FacevoxError
from facevox.io import read_table, write_table
from facevox.media import iter_rgb_frames
from facevox.provenance import provenance

EYE_Y = 0.35
#: Rows per Parquet row group: readers stream a video's crops in blocks of this many.
ROW_GROUP = 256


def alignment_matrix(points: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 affine matrix (for cv2.warpAffine) that aligns a face with 68 points [68, 2]."""
    left_eye = points[36:42].mean(axis=0)
    right_eye = points[42:48].mean(axis=0)
    eyes = (left_eye + right_eye) / 2
    mouth = points[48:60].mean(axis=0)
    angle = np.arctan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0])
    scale = (size / 3.0) / np.linalg.norm(eyes - mouth)
    cos, sin = scale * np.cos(-angle), scale * np.sin(-angle)
    rot = np.array([[cos, -sin], [sin, cos]])
    shift = np.array([size / 2.0, EYE_Y * size]) - rot @ eyes
    return np.hstack([rot, shift[:, None]])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_face(rgb: np.ndarray, points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(aligned RGB crop [size, size, 3], landmarks in crop coordinates [68, 2])."""
    m = alignment_matrix(points, size)
    crop = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crop, transform_points(m, points).astype(np.float32)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise FacevoxError("JPEG encoding failed")
    return buf.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes from this stage back to an RGB array."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def extract(video, landmarks: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
    p = stage_params("faces", params)
    size, stride = p["size"], p["stride"]
    points_all = points_from_columns(landmarks)
    success = landmarks["success"].to_numpy(bool)
    row_of = {int(f): i for i, f in enumerate(landmarks["frame"])}
    rows = {"frame": [], "timestamp_s": [], "success": [], "image": [], "crop": []}
    nan_points = np.full((68, 2), np.nan, np.float32)
    for frame in iter_rgb_frames(video, stride=stride):
        i = row_of.get(frame.index)
        ok = i is not None and bool(success[i])
        rows["frame"].append(frame.index)
        rows["timestamp_s"].append(frame.time_s)
        rows["success"].append(ok)
        if ok:
            crop, crop_points = align_face(frame.image, points_all[i], size)
            rows["image"].append(encode_jpeg(crop, p["jpeg_quality"]))
            rows["crop"].append(crop_points)
        else:
            rows["image"].append(b"")
            rows["crop"].append(nan_points)
    crop = rows.pop("crop")
    data = {
        "frame": np.asarray(rows["frame"], np.int32),
        "timestamp_s": np.asarray(rows["timestamp_s"], np.float64),
        "success": np.asarray(rows["success"], bool),
        "image": rows["image"],
        **points_to_columns(np.asarray(crop), CROP_LANDMARK_X, CROP_LANDMARK_Y),
    }
    return pd.DataFrame(data)


def run(video, landmarks_path, out, params: dict | None = None) -> dict:
    p = stage_params("faces", params)
    if not p["keep_face_images"]:
        raise FacevoxError("faces.keep_face_images is false: face images are not written "
                           "(set it to true in config.yaml to store aligned crops)")
    landmarks, _ = read_table(landmarks_path, LANDMARKS_SCHEMA)
    df = extract(video, landmarks, p)
    meta = provenance("faces", params={**p, "eye_y": EYE_Y, "eye_mouth": "1/3 of size"},
                      inputs={"video": video, "landmarks": landmarks_path})
    write_table(df, out, ALIGNED_FACES_SCHEMA, meta, row_group_size=ROW_GROUP)
    return {"n_rows": int(len(df)), "n_faces": int(df["success"].sum())}
