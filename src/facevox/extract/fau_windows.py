"""Stage `fau_windows`: AVEC-style FAU functionals - moving mean and standard deviation.

For every column of ``contract.FAU_INPUT_COLUMNS`` (the 17 AU intensities and the
confidence) and every window: the mean and the standard deviation with ddof 0,
named ``AU01_r_mean``, ``AU01_r_std``, ..., ``confidence_std``; then the same for
head pose and gaze (``contract.FAU_POSE_GAZE_COLUMNS``: ``pose_Rx_mean`` ...
``gaze_angle_y_std``; NaN where the AU backend has none).

Windows (``window`` = W frames, ``hop`` = H frames, both in config):

* Window *k* is centred on frame ``c = k * H``, for every ``c <= n - 1``: there
  are ``(n - 1) // H + 1`` windows for n >= 1 frames (0 for n = 0).
* It covers frames ``c - W//2`` to ``c - W//2 + W - 1``, **truncated at the
  video's ends** (as the AVEC scripts do: no padding), so the first and last
  windows hold fewer frames; ``first_frame``/``last_frame`` say which.
* ``centre_s`` is the timestamp of the centre frame.

Frames without a face (config ``no_face``):

* ``drop`` (default): left out of the statistics; ``n_used`` counts the frames that
  entered; a window with none has NaN statistics.
* ``zero``: enter with every AU, pose and gaze value and the confidence set to 0
  (what OpenFace writes for them).

An AU its backend did not estimate (all NaN) stays NaN.

Rule: workflow/rules/fau_windows.smk · Tests: tests/test_fau_windows.py
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from facevox.config import stage_params
from facevox.contract import AU_SCHEMA, FAU_INPUT_COLUMNS, FAU_POSE_GAZE_COLUMNS, FAU_WINDOWS_SCHEMA
from facevox.io import read_table, write_table
from facevox.provenance import provenance

#: Windows computed per block: bounds memory to ~block x columns x W floats.
_BLOCK = 2048


def n_windows(n_frames: int, hop: int) -> int:
    """Number of windows for ``n_frames`` frames (see the module docstring)."""
    return 0 if n_frames <= 0 else (n_frames - 1) // hop + 1


def windows(aus: pd.DataFrame, window: int = 50, hop: int = 5, no_face: str = "drop") -> pd.DataFrame:
    """FAU functionals of one video's AU table (contract.AU_SCHEMA)."""
    n = len(aus)
    columns = FAU_INPUT_COLUMNS + FAU_POSE_GAZE_COLUMNS
    values = aus[columns].to_numpy(np.float64)
    face = aus["success"].to_numpy(bool)
    if no_face == "zero":
        values = np.where(face[:, None], values, 0.0)
        used = np.ones(n, bool)
    else:
        values = np.where(face[:, None], values, np.nan)
        used = face
    half = window // 2
    centres = np.arange(0, n, hop)
    first = np.maximum(centres - half, 0)
    last = np.minimum(centres - half + window, n) - 1

    # NaN padding makes every window W long; NaN never enters a nan-statistic.
    pad = ((half, window - half), (0, 0))
    padded = np.pad(values, pad, constant_values=np.nan)
    padded_used = np.pad(used.astype(np.int32), (half, window - half))
    means = np.full((len(centres), values.shape[1]), np.nan)
    stds = np.full_like(means, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows -> NaN, on purpose
        view = sliding_window_view(padded, window, axis=0)  # [n + 1, columns, W], no copy
        for start in range(0, len(centres), _BLOCK):
            block = view[centres[start:start + _BLOCK]]
            means[start:start + _BLOCK] = np.nanmean(block, axis=2)
            stds[start:start + _BLOCK] = np.nanstd(block, axis=2)
    n_used = sliding_window_view(padded_used, window)[centres].sum(axis=1)

    out = {
        "window": np.arange(len(centres), dtype=np.int32),
        "centre_frame": aus["frame"].to_numpy(np.int32)[centres],
        "centre_s": aus["timestamp_s"].to_numpy(np.float64)[centres],
        "first_frame": aus["frame"].to_numpy(np.int32)[first],
        "last_frame": aus["frame"].to_numpy(np.int32)[last],
        "n_used": n_used.astype(np.int32),
    }
    for j, col in enumerate(columns):
        out[f"{col}_mean"] = means[:, j].astype(np.float32)
        out[f"{col}_std"] = stds[:, j].astype(np.float32)
    df = pd.DataFrame(out)
    return df[FAU_WINDOWS_SCHEMA.names]


def run(aus_path, out, params: dict | None = None) -> dict:
    p = stage_params("fau_windows", params)
    aus, au_meta = read_table(aus_path, AU_SCHEMA)
    df = windows(aus, p["window"], p["hop"], p["no_face"])
    meta = provenance("fau_windows", params=p, inputs={"action_units": aus_path},
                      au_backend=au_meta.get("au_backend"), au_estimated=au_meta.get("au_estimated"))
    write_table(df, out, FAU_WINDOWS_SCHEMA, meta)
    return {"n_windows": int(len(df)), "au_backend": au_meta.get("au_backend")}
