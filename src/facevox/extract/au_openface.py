"""The ``openface`` action-unit backend: an OpenFace 2.x FeatureExtraction CSV as the AU table.

The CSV is the one named in the sample sheet's ``openface_csv`` column
(:func:`read_openface_csv`; the file itself is read and checked by
facevox.extract.openface.read_openface_table, which the OpenFace importer shares): its
``AU*_r`` intensities (0-5) as they are, its rows as they are (OpenFace's frames, made
0-based; not matched to ours).  Rows with ``success`` 0 get NaN: OpenFace writes zeros
there, which are not measurements.  Confidence: OpenFace's.  Its pose and gaze columns are
copied too (:func:`openface_pose_gaze`; OpenFace's units are the contract's).

OpenFace has no notion of our target person: when the CSV has its 2-D landmarks
(``x_0..x_67``, ``y_0..y_67``), a row whose landmark centroid lies outside the landmarks
table's target box on the same 0-based frame (or whose frame has no target) is not the
target and becomes success false / NaN (:func:`openface_target`); without those columns
the rows are kept and the metadata says the person was not checked.

The stage that runs it: facevox.extract.action_units.

Tests: tests/test_action_units.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from facevox.contract import AU_COLUMNS, AU_PRESENCE_COLUMNS, GAZE_COLUMNS, GAZE_VECTOR_COLUMNS, POSE_COLUMNS
from facevox.errors import InputError
from facevox.extract.au_table import au_frame, landmark_boxes
from facevox.extract.openface import read_openface_table

#: ``au_scale`` metadata of this backend: what the numbers mean.
AU_SCALE = "OpenFace 2.x intensity 0-5"

#: Columns every OpenFace 2.x FeatureExtraction CSV has (besides the AUs).
OPENFACE_REQUIRED = ("frame", "timestamp", "confidence", "success")


def read_openface_csv(path, landmarks: pd.DataFrame | None = None) -> pd.DataFrame:
    """An OpenFace 2.x CSV as an AU table (``AU_SCHEMA``).

    Column names lose OpenFace's leading space; ``frame`` becomes 0-based,
    ``timestamp`` is ``timestamp_s``, ``success`` 1 is True.  The ``AU*_r``
    columns of ``AU_COLUMNS`` are kept (those the file lacks are NaN); rows with
    success 0 get NaN AUs and confidence.  ``df.attrs["au_estimated"]`` lists
    the AU columns the file had.  ``landmarks``: the video's landmarks table; rows
    whose face is not its target become success false (:func:`openface_target`;
    ``df.attrs["target_check"]`` says what was checked).  Raises :class:`InputError`
    for a missing or unreadable file, or one that fails
    facevox.extract.openface.read_openface_table's checks.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "OpenFace CSV not found")
    raw, problems = read_openface_table(path, OPENFACE_REQUIRED, AU_COLUMNS, "AU*_r (no AU intensity column)")
    if problems:
        raise InputError(path, "; ".join(problems))
    estimated = [c for c in AU_COLUMNS if c in raw.columns]
    extra = {**openface_pose_gaze(raw), **openface_presence(raw)}
    frame = raw["frame"].to_numpy(np.float64).astype(np.int64) - 1
    success = raw["success"].to_numpy(np.float64) == 1
    check = openface_target(raw, frame, success, landmarks)
    df = au_frame(frame, raw["timestamp"], success & check.pop("is_target"),
                  np.clip(raw["confidence"].to_numpy(np.float64), 0, 1),
                  {**{c: raw[c].to_numpy(np.float64) for c in estimated}, **extra})
    df.attrs["au_estimated"] = estimated
    df.attrs["extra_estimated"] = list(extra)
    df.attrs["target_check"] = check
    return df


#: OpenFace's 2-D landmark columns (pixels), as in its CSV.
OPENFACE_2D = [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]


def openface_target(raw: pd.DataFrame, frame: np.ndarray, success: np.ndarray, lm: pd.DataFrame | None) -> dict:
    """Which OpenFace rows show the landmarks table's target: the centroid of OpenFace's 68 2-D
    landmarks (``x_0..x_67``, ``y_0..y_67``) inside the target's box on the same 0-based frame
    (a row whose frame has no target, or is past the table's end, is not the target).  Returns
    the same-face record plus ``is_target`` (per row; all True when nothing could be checked:
    no table, or a CSV without the 2-D landmark columns)."""
    if lm is None:
        return {"is_target": np.ones(len(raw), bool), "target_checked": False,
                "target_check_why": "no landmarks table given"}
    if not all(c in raw.columns for c in OPENFACE_2D):
        return {"is_target": np.ones(len(raw), bool), "target_checked": False,
                "target_check_why": "the OpenFace CSV has no 2-D landmark columns (x_0..x_67, y_0..y_67): "
                                    "the person its rows show was not checked against the landmarks' target"}
    xy = raw[OPENFACE_2D].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    cx, cy = xy[:, :68].mean(axis=1), xy[:, 68:].mean(axis=1)
    boxes = landmark_boxes(lm).astype(np.float64)
    row = np.full(len(raw), -1)
    index = pd.Series(np.arange(len(lm)), index=lm["frame"].to_numpy())
    known = np.isin(frame, index.index)
    row[known] = index.loc[frame[known]].to_numpy()
    b = np.where((row >= 0)[:, None], boxes[np.maximum(row, 0)], np.nan)
    with np.errstate(invalid="ignore"):
        inside = (cx >= b[:, 0]) & (cx <= b[:, 0] + b[:, 2]) & (cy >= b[:, 1]) & (cy <= b[:, 1] + b[:, 3])
    return {"is_target": inside, "target_checked": True,
            "target_check_why": "OpenFace's 2-D landmark centroid inside the landmarks' target box",
            "target_frames": int((success & inside).sum()), "not_target_frames": int((success & ~inside).sum())}


def openface_presence(raw: pd.DataFrame) -> dict[str, np.ndarray]:
    """OpenFace's AU presence columns (``AUxx_c``, 0/1) that the CSV has, under the same names."""
    return {c: pd.to_numeric(raw[c], errors="coerce").to_numpy(np.float64)
            for c in AU_PRESENCE_COLUMNS if c in raw.columns}


def openface_pose_gaze(raw: pd.DataFrame) -> dict[str, np.ndarray]:
    """OpenFace's pose_T*/pose_R* (mm, rad) and gaze_* columns that the CSV has, numeric ones only,
    under the same names (the contract's units are OpenFace's).  OpenFace before 2.0.4 writes no
    ``gaze_angle_*``: they are computed from the two vectors as OpenFace does (atan2 of the mean)."""
    out = {c: pd.to_numeric(raw[c], errors="coerce").to_numpy(np.float64)
           for c in POSE_COLUMNS + GAZE_COLUMNS if c in raw.columns}
    if "gaze_angle_x" not in out and all(c in out for c in GAZE_VECTOR_COLUMNS):
        g = (np.stack([out[f"gaze_0_{a}"] for a in "xyz"]) + np.stack([out[f"gaze_1_{a}"] for a in "xyz"])) / 2
        out["gaze_angle_x"] = np.arctan2(g[0], -g[2])
        out["gaze_angle_y"] = np.arctan2(g[1], -g[2])
    return {c: out[c] for c in POSE_COLUMNS + GAZE_COLUMNS if c in out}

