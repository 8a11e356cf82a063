"""What every action-unit backend builds on: the AU table (``contract.AU_SCHEMA``) made from
per-frame arrays (:func:`au_frame`), and the landmarks table's target box per frame
(:func:`landmark_boxes`), by which the ``mediapipe`` and ``openface`` backends keep to the
target person.  The stage itself is facevox.extract.action_units.

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


def landmark_boxes(lm: pd.DataFrame) -> np.ndarray:
    """The target's box per row of a landmarks table [N, 4] float32 (left, top, width, height),
    NaN on rows without the target (success false): what MediaPipe is shown the frame by."""
    boxes = lm[["box_left", "box_top", "box_width", "box_height"]].to_numpy(np.float32).copy()
    boxes[~lm["success"].to_numpy(bool)] = np.nan
    return boxes
