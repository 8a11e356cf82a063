"""What every action-unit backend builds on: the AU table (``contract.AU_SCHEMA``) made from
per-frame arrays (:func:`au_frame`), and the landmarks table's target box per frame
(:func:`landmark_boxes`), by which the ``mediapipe`` and ``openface`` backends keep to the
target person, and the per-video neutral baseline (:func:`face_quantile`): the ``landmarks``
backend's baseline of each geometric measure, and ``action_units.person_baseline``
(:func:`person_baseline`, the ``mediapipe`` backend).  The stage itself is
facevox.extract.action_units.

Person baseline
---------------
A video has one target person (the landmarks stage's choice), so per video is per person.
With ``action_units.person_baseline`` on, each ``AU*_r`` column becomes
``max(0, value - b)`` with ``b`` the ``person_baseline_quantile`` quantile (default 0.05;
numpy's linear interpolation) of that column over the rows with a face: values above the
person's own neutral, so a resting face that the model scores above 0 (a habitual frown, a
face that looks slightly smiling) starts from 0.  Rows without a face stay NaN; the
confidence, pose, gaze and blendshape columns are left as they are.  Like the ``landmarks``
backend's baseline this assumes each AU is at rest on most of the video's frames; where it is
not, the values are relative to the expression held.

Tests: tests/test_action_units.py
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from facevox.contract import AU_COLUMNS, AU_EXTRA_COLUMNS, AU_SCHEMA


def au_frame(frame, timestamp_s, success, confidence, values: dict[str, np.ndarray]) -> pd.DataFrame:
    """The AU table in ``AU_SCHEMA`` order; AU and extension columns missing from ``values``
    and every value (confidence included) on rows without ``success`` are NaN."""
    success = np.asarray(success, bool)
    nan = np.float32(np.nan)
    data = {
        "frame": np.asarray(frame, np.int32),
        "timestamp_s": np.asarray(timestamp_s, np.float64),
        "success": success,
        "confidence": np.where(success, np.asarray(confidence, np.float32), nan),
    }
    for col in AU_COLUMNS + AU_EXTRA_COLUMNS:
        v = values.get(col)
        data[col] = np.full(len(success), nan) if v is None else np.where(success, np.asarray(v, np.float32), nan)
    return pd.DataFrame(data)[AU_SCHEMA.names]


def face_quantile(values, success, q: float) -> float:
    """The per-video neutral baseline: the ``q`` quantile (numpy's linear interpolation, in float64)
    of ``values`` over the rows with ``success`` and a finite value; NaN when there is no such row."""
    v = np.asarray(values, np.float64)[np.asarray(success, bool)]
    v = v[np.isfinite(v)]
    return float(np.quantile(v, q)) if len(v) else float("nan")


def person_baseline(df: pd.DataFrame, q: float) -> tuple[pd.DataFrame, dict[str, float | None]]:
    """``df`` (an AU table) with each ``AU*_r`` column minus the person's neutral - its ``q``
    :func:`face_quantile` over the rows with ``success`` - floored at 0 (module docstring), and
    the baseline subtracted per column (None for a column without a value on any face row: left
    as it is).  The other columns and the NaN rows are unchanged."""
    out = df.copy()
    success = df["success"].to_numpy(bool)
    subtracted: dict[str, float | None] = {}
    for col in AU_COLUMNS:
        b = face_quantile(df[col], success, q)
        subtracted[col] = None if np.isnan(b) else b
        if subtracted[col] is not None:
            v = df[col].to_numpy(np.float64)
            out[col] = np.maximum(v - b, 0.0).astype(np.float32)  # NaN stays NaN
    return out, subtracted


def landmark_boxes(lm: pd.DataFrame) -> np.ndarray:
    """The target's box per row of a landmarks table [N, 4] float32 (left, top, width, height),
    NaN on rows without the target (success false): what MediaPipe is shown the frame by."""
    boxes = lm[["box_left", "box_top", "box_width", "box_height"]].to_numpy(np.float32).copy()
    boxes[~lm["success"].to_numpy(bool)] = np.nan
    return boxes
