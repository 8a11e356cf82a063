"""OpenFace 2.x FeatureExtraction CSVs: one reader, checked, for the ``openface`` AU backend
(facevox.extract.au_openface) and the OpenFace importer (facevox.dataset.import_openface).

Tests: tests/test_importers.py, tests/test_action_units.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def shown(columns: list[str]) -> str:
    return ", ".join(columns[:6]) + (f" and {len(columns) - 6} more" if len(columns) > 6 else "")


def read_openface_table(path, required, any_of=(), any_of_label: str = "") -> tuple[pd.DataFrame | None, list[str]]:
    """One OpenFace 2.x FeatureExtraction CSV, checked; or the problems (without the file name).

    Column names lose OpenFace's leading spaces.  Checked: the ``required``
    columns and, when ``any_of`` is given, at least one of those (reported as
    ``any_of_label``) are present and numeric; ``frame`` and ``timestamp`` have
    no empty cell; one row per frame (the single-face output).  Used by the
    importer (landmarks) and by the ``openface`` AU backend (AUs).
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, skipinitialspace=True)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        return None, [f"not a readable CSV file ({exc})"]
    raw.columns = [str(c).strip() for c in raw.columns]
    present_any = [c for c in any_of if c in raw.columns]
    missing = [c for c in required if c not in raw.columns]
    if any_of and not present_any:
        missing.append(any_of_label)
    if missing:
        return None, [f"not an OpenFace 2.x CSV: missing column(s) {shown(missing)}"]
    bad = [c for c in [*required, *present_any] if not pd.api.types.is_numeric_dtype(raw[c])]
    if bad:
        return None, [f"non-numeric values in column(s) {shown(bad)}"]
    problems = [f"empty cells in column {col}" for col in ("frame", "timestamp")
                if col in raw.columns and raw[col].isna().any()]
    if not problems and raw["frame"].duplicated().any():
        problems.append("several rows per frame (several faces?): facevox reads the "
                        "single-face output of OpenFace's FeatureExtraction")
    return (None, problems) if problems else (raw, [])


def openface_landmarks(raw: pd.DataFrame) -> pd.DataFrame:
    """OpenFace's 2-D landmarks as a landmarks-like table (what the AU backends read: ``frame``
    0-based, ``timestamp_s``, ``success``, ``x_0..x_67``, ``y_0..y_67``; NaN points where OpenFace's
    ``success`` is not 1), from a CSV read by :func:`read_openface_table`.  Used to run facevox's
    ``openface_models`` backend on OpenFace's own landmarks (benchmarks/bench_au_openface.py)."""
    from facevox.contract import LANDMARK_X, LANDMARK_Y
    success = pd.to_numeric(raw["success"], errors="coerce").to_numpy(np.float64) == 1
    pts = raw[LANDMARK_X + LANDMARK_Y].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64, copy=True)
    pts[~success] = np.nan
    head = pd.DataFrame({"frame": raw["frame"].to_numpy(np.int64) - 1,
                         "timestamp_s": raw["timestamp"].to_numpy(np.float64), "success": success})
    return pd.concat([head, pd.DataFrame(pts, columns=LANDMARK_X + LANDMARK_Y)], axis=1)
