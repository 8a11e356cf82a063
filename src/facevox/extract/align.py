"""Stage `align`: landmarks and eGeMAPS on one time grid, one row per step.

The rule, for both rates: every output row owns a half-open time interval
``[start, end)`` on the container clock; its value is the **mean of the source
rows whose time falls inside it**.  An eGeMAPS row's time is the centre of its
analysis frame, ``(start_s + end_s) / 2``; a video frame's time is its pts.

* ``rate_hz: native`` - one row per video frame.  Frame *i* owns
  ``[t_i, t_{i+1})``; the last frame owns one median frame interval.  Landmarks
  are the frame's own (NaN without a face); eGeMAPS is the mean of the 3-4 LLD
  rows in the frame's interval (30 fps).
* ``rate_hz: R`` (e.g. 1, as D-Vlog's released features) - row *k* owns
  ``[k/R, (k+1)/R)``, from the bin of the first frame to the bin of the last;
  a time ``t`` falls into bin ``floor(t * R)`` (one rule for frames and
  eGeMAPS rows, so no row can fall outside the grid through rounding).
  Landmarks are the mean over the bin's frames *with* a face;
  ``face_fraction`` is the share of the bin's frames with a face and
  ``face_success`` is ``face_fraction >= 0.5``.

A row no eGeMAPS row falls into has NaN eGeMAPS and ``audio_success = False``.

Rule: workflow/rules/align.smk · Tests: tests/test_align.py
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from facevox.config import stage_params
from facevox.contract import ALIGNED_SCHEMA, EGEMAPS_COLUMNS, EGEMAPS_SCHEMA, LANDMARK_COLUMNS, LANDMARKS_SCHEMA
from facevox.errors import FacevoxError
from facevox.io import read_table, write_table
from facevox.provenance import provenance


def _rate(value) -> float | None:
    if value in (None, "native"):
        return None
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = -1.0
    if not rate > 0:
        raise FacevoxError(f"align.rate_hz must be 'native' or a positive number, got {value!r}")
    return rate


def _bin_means(values: np.ndarray, bins: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin nan-mean of ``values`` [m, c] grouped by ``bins`` [m] into n bins; and counts."""
    keep = (bins >= 0) & (bins < n)
    values, bins = values[keep], bins[keep]
    counts = np.bincount(bins, minlength=n)
    if values.size == 0:
        return np.full((n, values.shape[1]), np.nan, np.float64), counts
    valid = ~np.isnan(values)
    sums = np.zeros((n, values.shape[1]))
    hits = np.zeros((n, values.shape[1]))
    np.add.at(sums, bins, np.where(valid, values, 0.0))
    np.add.at(hits, bins, valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(hits > 0, sums / hits, np.nan), counts


def native_bins(frame_t: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``rate_hz: native``: the frame each time falls into (frame *i* owns ``[t_i, t_{i+1})``,
    the last one median frame interval); -1 before the first frame, ``n`` after the last."""
    n = len(frame_t)
    step = float(np.median(np.diff(frame_t))) if n > 1 else 0.04
    edges = np.append(frame_t, frame_t[-1] + step) if n else np.zeros(1)
    return np.searchsorted(edges, times, side="right") - 1


def frame_means(frame_t, times, values) -> tuple[np.ndarray, np.ndarray]:
    """The ``native`` rule for any source stream: per video frame (times ``frame_t``), the
    nan-mean of the ``values`` [m, c] whose ``times`` [m] fall into it (NaN where none
    does), and how many fell into it."""
    frame_t = np.asarray(frame_t, np.float64)
    values = np.asarray(values, np.float64).reshape(len(times), -1)
    return _bin_means(values, native_bins(frame_t, np.asarray(times, np.float64)), len(frame_t))


def align(landmarks: pd.DataFrame, egemaps: pd.DataFrame, rate_hz="native") -> pd.DataFrame:
    """Resample both streams onto one grid (see module docstring)."""
    rate = _rate(rate_hz)
    t = landmarks["timestamp_s"].to_numpy(np.float64)
    success = landmarks["success"].to_numpy(bool)
    points = landmarks[LANDMARK_COLUMNS].to_numpy(np.float64)
    lld_t = ((egemaps["start_s"] + egemaps["end_s"]) / 2).to_numpy(np.float64)
    lld = egemaps[EGEMAPS_COLUMNS].to_numpy(np.float64)

    if rate is None:
        n = len(t)
        index = landmarks["frame"].to_numpy(np.int32)
        starts = t
        face_fraction = success.astype(np.float64)
        face_points = np.where(success[:, None], points, np.nan)
        lld_bins = native_bins(t, lld_t)
    else:
        if len(t):
            first, last = int(np.floor(t.min() * rate)), int(np.floor(t.max() * rate))
        else:
            first, last = 0, -1
        index = np.arange(first, last + 1, dtype=np.int32)
        n = len(index)
        starts = index / rate
        frame_bins = np.floor(t * rate).astype(np.int64) - first
        frames_per_bin = np.bincount(frame_bins, minlength=n)
        face_per_bin = np.bincount(frame_bins, weights=success, minlength=n)
        face_fraction = np.where(frames_per_bin > 0, face_per_bin / np.maximum(frames_per_bin, 1), 0.0)
        face_points, _ = _bin_means(np.where(success[:, None], points, np.nan), frame_bins, n)
        lld_bins = np.floor(lld_t * rate).astype(np.int64) - first
    audio, audio_counts = _bin_means(lld, lld_bins, n)

    out = {
        "index": index,
        "timestamp_s": starts,
        "face_success": face_fraction >= 0.5,
        "face_fraction": face_fraction.astype(np.float32),
        "audio_success": audio_counts > 0,
    }
    out.update({c: face_points[:, i].astype(np.float32) for i, c in enumerate(LANDMARK_COLUMNS)})
    out.update({c: audio[:, i].astype(np.float32) for i, c in enumerate(EGEMAPS_COLUMNS)})
    return pd.DataFrame(out)


def run(landmarks_path, egemaps_path, out, params: dict | None = None) -> dict:
    p = stage_params("align", params)
    lm, _ = read_table(landmarks_path, LANDMARKS_SCHEMA)
    eg, eg_meta = read_table(egemaps_path, EGEMAPS_SCHEMA)
    df = align(lm, eg, p["rate_hz"])
    summary = {"n_rows": int(len(df)), "audio_status": eg_meta.get("audio_status")}
    meta = provenance("align", params=p,
                      inputs={"landmarks": landmarks_path, "egemaps": egemaps_path}, **summary)
    write_table(df, out, ALIGNED_SCHEMA, meta)
    return summary
