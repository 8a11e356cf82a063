"""Stage `fau_windows`: AVEC-style FAU functionals - moving mean and standard deviation.

For every column of ``contract.FAU_INPUT_COLUMNS`` (the 17 AU intensities and the
confidence) and every window: the mean and the standard deviation with ddof 0,
named ``AU01_r_mean``, ``AU01_r_std``, ..., ``confidence_std``; with ``paper``, then the
same for head pose and gaze (``contract.FAU_POSE_GAZE_COLUMNS``: ``pose_Rx_mean`` ...
``gaze_angle_y_std``; NaN where the AU backend has none).  Two conventions (config
``convention``) decide which frames a window holds:

``paper`` (default; ``window`` = W frames, ``hop`` = H frames):

* Window *k* is centred on frame ``c = k * H``, for every ``c <= n - 1``: there
  are ``(n - 1) // H + 1`` windows for n >= 1 frames (0 for n = 0).
* It covers frames ``c - W//2`` to ``c - W//2 + W - 1`` (exactly W frames),
  **truncated at the video's ends** (no padding), so the first and last windows
  hold fewer frames; ``first_frame``/``last_frame`` say which.
* ``centre_s`` is the timestamp of the centre frame.
* Frames without a face (config ``no_face``): ``drop`` (default) leaves them out
  (``n_used`` counts the frames that entered; a window with none is NaN);
  ``zero`` enters them with every AU, pose and gaze value and the confidence set to 0
  (what OpenFace writes for them).
* Columns: ``contract.FAU_WINDOWS_SCHEMA`` (a mean/std pair per input column).

``avec``: what the AVEC 2019 baseline script computes
(AudioVisualEmotionChallenge/AVEC2019,
``Baseline_features_extraction/Low-Level-Descriptors/generate_functionals.py``), checked
against that script's own output on real AU tables (tests/fixtures/avec2019/):

* ``half = int(window_s * fps / 2)`` frames (or ``window // 2`` when the window is
  given in frames); window *t* holds the rows ``c - half`` to ``c + half``
  inclusive - ``2 * half + 1`` frames - truncated at the ends.
* Centre ``c = int(t * fps * hop_s)`` in double precision, as the script computes it
  (or ``t * hop`` for a hop in frames), for t = 0, 1, ... while ``c <= n`` and
  the window is not empty: with ``n % hop == 0`` that is one window more than
  ``paper``, the last one centred one frame past the end.
* Frames without a face enter as 0 for the confidence and every AU (OpenFace
  writes zeros there; facevox AU tables hold NaN); ``no_face`` does not apply.
  An AU the backend never estimates (not in the table's ``au_estimated``) stays NaN.
* Mean and std: ``np.mean`` / ``np.std`` (ddof 0) over the window's rows, in
  float64, in the script's column layout; stored as float32.
* ``centre_s`` is ``t * hop_s`` (the script's time stamp column, 0 at the first
  row); rows are addressed by position, as the script reads its CSV.
* Columns: ``contract.FAU_WINDOWS_AVEC_SCHEMA`` - means of confidence and the 17 AUs,
  then their stds, confidence first (the script's ``[mean(X), std(X)]`` over the
  LLD columns ``confidence;AU01_r;...;AU45_r`` of its extract_video_LLDs.py).
* The script allocates ``max_seq_len = 1768`` windows and silently stops there
  (176.8 s at a 0.1 s hop); its comment calls this "just used for allocation",
  sized to AVEC 2019 CES's longest file.  That cap is **not** part of this
  convention: facevox computes every window of a longer video.  Up to 1768
  windows the outputs agree.

Seconds (both conventions): ``window_s`` / ``hop_s`` (when set) replace ``window`` /
``hop`` so videos at 24 and 50 fps get the same window in time; ``paper`` rounds
them to whole frames (``round(window_s * fps)``, ``max(1, round(hop_s * fps))``).
``fps`` is the config value, or else measured from the table: 1 / median frame
interval, rounded to 3 decimals (29.97 for NTSC; a nominal rate such as 25 stays
25 despite timestamp jitter).  The file metadata (``windowing``) records the
convention, fps and its source, window and hop in frames and in seconds.

An AU its backend did not estimate (all NaN) stays NaN.

``turns`` (both conventions; the shallow CNN's 37th input, ``contract.TURNS_COLUMN``): the share
of the window's frames - the same frames as the functionals, with or without a face - in
which someone speaks, from the video's eGeMAPS voicing with a hangover
(``turns_hangover_s``); NaN where none of them has audio (no audio stream, a silent or too
short track, past the end of the audio), never 0 for missing audio.  How and why:
facevox.extract.voice_activity.  The metadata record ``turns`` gives the audio status and
the frames with audio.

Rule: workflow/rules/fau_windows.smk · Tests: tests/test_fau_windows.py
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from facevox.config import stage_params
from facevox.contract import (
    AU_SCHEMA,
    EGEMAPS_SCHEMA,
    FAU_AVEC_INPUT_COLUMNS,
    FAU_AVEC_STAT_COLUMNS,
    FAU_INPUT_COLUMNS,
    FAU_POSE_GAZE_COLUMNS,
    FAU_WINDOWS_AVEC_SCHEMA,
    FAU_WINDOWS_SCHEMA,
    TURNS_COLUMN,
)
from facevox.errors import FacevoxError, InputError
from facevox.extract.voice_activity import frame_activity, summary, window_share
from facevox.io import read_table, write_table
from facevox.provenance import provenance

CONVENTIONS = ("paper", "avec")
SCHEMAS = {"paper": FAU_WINDOWS_SCHEMA, "avec": FAU_WINDOWS_AVEC_SCHEMA}

#: Windows computed per block: bounds memory to ~block x columns x W floats.
_BLOCK = 2048


def n_windows(n_frames: int, hop: int) -> int:
    """Number of ``paper`` windows for ``n_frames`` frames (see the module docstring)."""
    return 0 if n_frames <= 0 else (n_frames - 1) // hop + 1


def measured_fps(timestamps) -> float | None:
    """1 / median frame interval, rounded to 3 decimals; None with fewer than 2 frames."""
    t = np.asarray(timestamps, np.float64)
    step = np.median(np.diff(t)) if t.size >= 2 else 0.0
    return round(1.0 / float(step), 3) if step > 0 else None


def windowing(params: dict, timestamps) -> dict:
    """Window and hop of one video, in frames and in seconds, with the fps they rest on.

    ``params``: the fau_windows config section (defaults filled).  Keys returned:
    convention, fps, fps_source (config | timestamps | None), window_frames,
    hop_frames, window_s, hop_s, and for avec ``half`` (frames each side of the
    centre).  ``window_s`` is the span the window really has, window_frames / fps
    (avec, 4.0 s at 50 fps: 201 frames = 4.02 s; the configured value is in the
    params); ``hop_frames`` may be fractional for avec with ``hop_s``.
    """
    convention = params["convention"]
    if convention not in CONVENTIONS:
        raise FacevoxError(f"config fau_windows.convention: {convention!r} is not one of {list(CONVENTIONS)}")
    fps, source = params.get("fps"), "config"
    if fps is None:
        fps, source = measured_fps(timestamps), "timestamps"
        if fps is None:
            source = None
    window_s, hop_s = params.get("window_s"), params.get("hop_s")
    if fps is None and (window_s is not None or hop_s is not None) and len(timestamps) > 0:
        raise FacevoxError("fau_windows: window_s / hop_s need a frame rate, and it cannot be measured from "
                           f"{len(timestamps)} frame(s); set fau_windows.fps")
    out = {"convention": convention, "fps": fps, "fps_source": source}
    if convention == "paper":
        window = int(round(window_s * fps)) if window_s is not None and fps else int(params["window"])
        hop = max(1, int(round(hop_s * fps))) if hop_s is not None and fps else int(params["hop"])
        if window < 1:
            raise FacevoxError(f"fau_windows: window_s {window_s} at {fps} fps is less than one frame")
        out.update(window_frames=window, hop_frames=hop)
    else:
        half = int(window_s * fps / 2) if window_s is not None and fps else int(params["window"]) // 2
        hop = fps * hop_s if hop_s is not None and fps else int(params["hop"])
        if hop <= 0:
            raise FacevoxError(f"fau_windows: hop_s {hop_s} at {fps} fps is no hop at all")
        out.update(half=half, window_frames=2 * half + 1, hop_frames=hop)
    out["window_s"] = out["window_frames"] / fps if fps else None
    out["hop_s"] = hop_s if hop_s is not None else (out["hop_frames"] / fps if fps else None)
    return out


def windows(aus: pd.DataFrame, window: int = 50, hop: int = 5, no_face: str = "drop",
            activity=None) -> pd.DataFrame:
    """``paper`` FAU functionals of one video's AU table (contract.AU_SCHEMA).  ``activity``:
    voice activity per row (voice_activity.frame_activity) for ``turns``; None: NaN."""
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
    out[TURNS_COLUMN] = _turns(activity, n, first, last + 1)
    df = pd.DataFrame(out)
    return df[FAU_WINDOWS_SCHEMA.names]


def _turns(activity, n: int, first: np.ndarray, stop: np.ndarray) -> np.ndarray:
    if activity is None:
        return np.full(len(first), np.nan, np.float32)
    if len(activity) != n:
        raise FacevoxError(f"fau_windows: voice activity for {len(activity)} frames, the AU table has {n}")
    return window_share(activity, first, stop)


def avec_centres(n: int, half: int, hop_frames: int | None = None, fps: float | None = None,
                 hop_s: float | None = None) -> np.ndarray:
    """Centre rows of the ``avec`` windows of an ``n``-row table (module docstring).

    With ``hop_s`` (and ``fps``) the centre of window t is ``int(t * fps * hop_s)``,
    evaluated left to right in double precision as the script does (0.1 is not
    exact in binary, so the truncation is part of the convention).
    """
    centres = []
    t = 0
    while True:
        c = int(t * fps * hop_s) if hop_s is not None else t * int(hop_frames)
        if not (max(0, c - half) < min(n, c + half + 1) and c <= n):
            break
        centres.append(c)
        t += 1
    return np.asarray(centres, np.int64)


def avec_windows(aus: pd.DataFrame, half: int, hop_frames: int | None = None, fps: float | None = None,
                 hop_s: float | None = None, estimated=None, activity=None) -> pd.DataFrame:
    """``avec`` FAU functionals of one video's AU table (contract.AU_SCHEMA).

    ``half``: frames each side of the centre; the hop is ``hop_s`` seconds at ``fps``
    or ``hop_frames`` frames.  ``estimated``: the AU columns the backend estimates
    (the table's ``au_estimated``; default: those with any value) - the others stay
    NaN, the rest are 0 on frames without a face.  ``activity``: as for :func:`windows`.
    """
    n = len(aus)
    face = aus["success"].to_numpy(bool)
    if estimated is None:
        estimated = [c for c in AU_SCHEMA.names if c in FAU_AVEC_INPUT_COLUMNS and aus[c].notna().any()]
    keep = np.array([c == "confidence" or c in set(estimated) for c in FAU_AVEC_INPUT_COLUMNS])
    values = aus[FAU_AVEC_INPUT_COLUMNS].to_numpy(np.float64)
    no_face_zero = ~face[:, None] & keep[None, :] & np.isnan(values)
    values = np.where(no_face_zero, 0.0, values)
    values[:, ~keep] = np.nan
    # The script's layout: column 0 its time stamp, the statistics over X[a:b, 1:].
    x = np.empty((n, 1 + values.shape[1]))
    x[:, 0] = np.arange(n)
    x[:, 1:] = values
    centres = avec_centres(n, half, hop_frames, fps, hop_s)
    k = len(centres)
    first = np.maximum(centres - half, 0)
    stop = np.minimum(centres + half + 1, n)
    stats = np.empty((k, 2 * values.shape[1]))
    m = values.shape[1]
    for i, (a, b) in enumerate(zip(first, stop)):
        stats[i, :m] = np.mean(x[a:b, 1:], axis=0)
        stats[i, m:] = np.std(x[a:b, 1:], axis=0)
    frames = aus["frame"].to_numpy(np.int64)
    t = np.arange(k)
    if hop_s is not None:
        centre_s = t * hop_s
    else:
        centre_s = t * (int(hop_frames) / fps) if fps else np.zeros(k)
    centre_frame = np.where(centres < n, frames[np.minimum(centres, n - 1)], frames[-1] + centres - (n - 1)) \
        if n else centres
    out = {
        "window": t.astype(np.int32),
        "centre_frame": centre_frame.astype(np.int32),
        "centre_s": np.asarray(centre_s, np.float64),
        "first_frame": frames[first].astype(np.int32) if k else np.zeros(0, np.int32),
        "last_frame": frames[stop - 1].astype(np.int32) if k else np.zeros(0, np.int32),
        "n_used": (stop - first).astype(np.int32),
    }
    for j, col in enumerate(FAU_AVEC_STAT_COLUMNS):
        out[col] = stats[:, j].astype(np.float32)
    out[TURNS_COLUMN] = _turns(activity, n, first, stop)
    return pd.DataFrame(out)[FAU_WINDOWS_AVEC_SCHEMA.names]


def compute(aus: pd.DataFrame, params: dict | None = None, estimated=None,
            activity=None) -> tuple[pd.DataFrame, dict]:
    """The functionals of one AU table under the configured convention, and its ``windowing``;
    ``activity``: per-row voice activity for ``turns`` (None: NaN)."""
    p = stage_params("fau_windows", params)
    w = windowing(p, aus["timestamp_s"].to_numpy(np.float64))
    if w["convention"] == "paper":
        df = windows(aus, w["window_frames"], w["hop_frames"], p["no_face"], activity)
    elif p.get("hop_s") is not None and w["fps"]:
        df = avec_windows(aus, w["half"], fps=w["fps"], hop_s=p["hop_s"], estimated=estimated, activity=activity)
    else:
        df = avec_windows(aus, w["half"], hop_frames=w["hop_frames"], fps=w["fps"], estimated=estimated,
                          activity=activity)
    return df, w


def read_windows(path) -> tuple[pd.DataFrame, dict]:
    """A fau_windows table of either convention (checked against its schema) and its metadata."""
    df, meta = read_table(path)
    convention = (meta.get("windowing") or {}).get("convention", "paper")
    schema = SCHEMAS.get(convention)
    if schema is None or list(df.columns) != schema.names:
        raise InputError(path, f"not a fau_windows table of convention {convention!r} (columns do not match)")
    return read_table(path, schema)


def run(aus_path, out, params: dict | None = None, egemaps_path=None) -> dict:
    """The stage: ``aus_path``'s functionals, ``turns`` from the eGeMAPS table ``egemaps_path``
    (None: no audio given, turns NaN) -> ``out``."""
    p = stage_params("fau_windows", params)
    aus, au_meta = read_table(aus_path, AU_SCHEMA)
    inputs = {"action_units": aus_path}
    if egemaps_path is not None:
        egemaps, eg_meta = read_table(egemaps_path, EGEMAPS_SCHEMA)
        status, inputs["egemaps"] = eg_meta.get("audio_status"), egemaps_path
    else:
        egemaps, status = None, "not_given"
    frame_t = aus["timestamp_s"].to_numpy(np.float64)
    activity = (np.full(len(aus), np.nan) if egemaps is None
                else frame_activity(frame_t, egemaps, status, p["turns_hangover_s"]))
    df, w = compute(aus, p, estimated=au_meta.get("au_estimated"), activity=activity)
    turns = summary(activity, status, p["turns_hangover_s"])
    meta = provenance("fau_windows", params=p, inputs=inputs, windowing=w, turns=turns,
                      au_backend=au_meta.get("au_backend"), au_estimated=au_meta.get("au_estimated"))
    write_table(df, out, SCHEMAS[w["convention"]], meta)
    return {"n_windows": int(len(df)), "au_backend": au_meta.get("au_backend"), "windowing": w, "turns": turns}
