"""Per-video timelines and the landmark sanity sheet for the report.

:func:`timeline_plot` draws one video's tracks on one shared time axis (seconds on the
container clock, as every per-frame table stores it):

1. face presence - ``success`` of ``results/landmarks/<video>.parquet`` (shaded where a
   face was found), with the face-found share in the title;
2. head pose - ``pose_Rx``, ``pose_Ry``, ``pose_Rz`` of ``results/action_units/<video>.parquet``
   when the AU backend wrote them (OpenFace names and convention: radians, drawn in
   degrees; a column whose Parquet field metadata says ``unit: deg`` is drawn as it is),
   and gaze ``gaze_angle_x`` / ``gaze_angle_y`` in the same panel; otherwise the panel says
   "not estimated by backend <au_backend>";
3. key action units - up to four of :data:`KEY_AUS` that the backend estimated
   (``au_estimated`` of the AU table's metadata), on the backend's own scale;
4. loudness - eGeMAPS ``Loudness_sma3`` (``results/egemaps/<video>.parquet``);
5. F0 - eGeMAPS ``F0semitoneFrom27.5Hz_sma3nz``, unvoiced frames (0) left out.

:func:`landmark_sheet` draws the 68 landmarks of up to :data:`SHEET_FRAMES` frames spread
over the video: on the aligned face crop (``results/faces/<video>.parquet``, its crop
coordinates ``cx_*`` / ``cy_*``) when the run kept face images, otherwise on a neutral
grey canvas (the points of ``results/landmarks`` scaled into their detector box). The
workflow passes the crops only when ``faces.keep_face_images`` is true, so no face image
reaches the report otherwise.

:func:`timeline_videos` chooses the videos: ``report.timelines.videos`` when given, else
the first ``report.timelines.per_split`` videos of each split in sheet order (videos in no
split count as one more group).

Tests: tests/test_report_pages.py
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from facevox.contract import (
    CROP_LANDMARK_X,
    CROP_LANDMARK_Y,
    EGEMAPS_SCHEMA,
    F0_COLUMN,
    LANDMARK_X,
    LANDMARK_Y,
    LANDMARKS_SCHEMA,
    SPLITS,
)
from facevox.errors import FacevoxError
from facevox.io import read_table
from facevox.report.plots import new_figure, save_figure, show_message

#: Action units drawn when estimated, in this order: brow lowerer, cheek raiser,
#: lip-corner puller (smile), lip-corner depressor, blink.
KEY_AUS = ("AU04_r", "AU06_r", "AU12_r", "AU15_r", "AU45_r")
POSE_COLUMNS = ("pose_Rx", "pose_Ry", "pose_Rz")
GAZE_COLUMNS = ("gaze_angle_x", "gaze_angle_y")
LOUDNESS_COLUMN = "Loudness_sma3"
SHEET_FRAMES = 6
#: The shortest time axis drawn (s): a one-frame video gets a readable axis, not a zero-length one.
MIN_SPAN_S = 1.0
#: Tracks of fewer frames than this are drawn with a dot on every frame.
FEW_FRAMES = 30
#: Line groups of the 68-point (iBUG 300-W) layout: jaw, brows, nose, eyes, lips.
FACE_LINES = [range(0, 17), range(17, 22), range(22, 27), range(27, 31), range(31, 36),
              [*range(36, 42), 36], [*range(42, 48), 42], [*range(48, 60), 48], [*range(60, 68), 60]]


def timeline_videos(samples: pd.DataFrame, videos=None, per_split: int = 2) -> list[str]:
    """The videos that get a timeline: ``videos`` (checked against the sheet) or the first
    ``per_split`` of each split (and of the videos in no split), in sheet order."""
    if videos:
        unknown = [v for v in videos if v not in samples.index]
        if unknown:
            raise FacevoxError(f"config report.timelines.videos: not in the sample sheet: {', '.join(unknown)}")
        return list(dict.fromkeys(videos))
    split = samples["split"].fillna("")
    chosen = []
    for name in (*SPLITS, ""):
        chosen += list(samples.index[split == name][:per_split])
    return chosen


def _angles_deg(table, meta_units: dict, column: str) -> tuple[np.ndarray, str]:
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(float)
    unit = (meta_units.get(column) or "").lower()
    if unit.startswith("deg"):
        return values, "deg"
    return np.degrees(values), "rad→deg"


def _field_units(path) -> dict[str, str]:
    import pyarrow.parquet as pq

    units = {}
    for field in pq.read_schema(path):
        meta = field.metadata or {}
        if b"unit" in meta:
            units[field.name] = meta[b"unit"].decode()
    return units


def timeline_plot(video_id: str, landmarks_path, action_units_path, egemaps_path, out) -> Path:
    """One video's face presence, head pose / gaze, key AUs, loudness and F0 over time."""
    lm, _ = read_table(landmarks_path, LANDMARKS_SCHEMA)
    aus, au_meta = read_table(action_units_path)  # no schema: a backend may add pose / gaze columns
    eg, _ = read_table(egemaps_path, EGEMAPS_SCHEMA)
    backend = au_meta.get("au_backend", "unknown")
    fig = new_figure(11.0, 7.0)  # 770 px high: the report centres it in one screen
    axes = fig.subplots(5, 1, sharex=True, height_ratios=[0.5, 1, 1.2, 1, 1])
    t = lm["timestamp_s"].to_numpy(float)
    face = lm["success"].to_numpy(bool)
    ax = axes[0]
    frame_s = frame_duration_s(t)
    if len(t):  # each frame's presence held until the next frame (the last one for one frame time)
        ax.fill_between(np.append(t, t[-1] + frame_s), 0, np.append(face, face[-1]).astype(float), step="post",
                        color="#4daf4a", alpha=0.7, lw=0)
        ax.set_title(f"{video_id}: face found in {100 * face.mean():.0f} % of {len(t)} frames "
                     f"(AU backend {backend})", fontsize=10)
    else:
        ax.set_title(f"{video_id}: no decoded frame", fontsize=10)
    ax.set_yticks([0, 1], ["no", "yes"])
    ax.set_ylim(-0.05, 1.1)
    ax.set_ylabel("face")

    ax = axes[1]
    at = aus["timestamp_s"].to_numpy(float)
    dots = {"marker": "o", "ms": 3} if len(at) < FEW_FRAMES else {}  # a frame or two are a dot, not a line
    # every AU table has the columns (contract.AU_SCHEMA); a backend that does not estimate them leaves NaN
    pose = [c for c in POSE_COLUMNS if c in aus.columns and aus[c].notna().any()]
    gaze = [c for c in GAZE_COLUMNS if c in aus.columns and aus[c].notna().any()]
    any_face = bool(aus["success"].astype(bool).any())
    if not any_face:  # nothing to draw, and not for want of the backend
        ax.text(0.5, 0.5, f"head pose and gaze: no face found on any of the {len(aus)} frames", ha="center",
                va="center", transform=ax.transAxes, fontsize=10, color="#555555")
        ax.set_yticks([])
        ax.set_ylabel("pose")
    elif pose or gaze:
        units = _field_units(action_units_path)
        for c in pose + gaze:
            values, unit = _angles_deg(aus, units, c)
            ax.plot(at, values, lw=1, ls="-" if c in pose else ":", label=c, **dots)
        ax.set_ylabel("degrees")
        ax.legend(fontsize=7, ncol=5, loc="upper right")
        if pose and gaze:
            title = f"head pose (solid) and gaze (dotted), backend {backend}"
        elif pose:
            title = f"head pose, backend {backend}; gaze not estimated by backend {backend}"
        else:
            title = f"gaze, backend {backend}; head pose not estimated by backend {backend}"
        ax.set_title(title, fontsize=9)
    else:
        ax.text(0.5, 0.5, f"head pose and gaze: not estimated by backend {backend}", ha="center", va="center",
                transform=ax.transAxes, fontsize=10, color="#555555")
        ax.set_yticks([])
        ax.set_ylabel("pose")

    ax = axes[2]
    estimated = au_meta.get("au_estimated") or [c for c in aus.columns if c.startswith("AU")]
    key = [c for c in KEY_AUS if c in estimated and c in aus.columns][:4]
    if not any_face:
        ax.text(0.5, 0.5, "action units: no face found on any frame", ha="center", va="center",
                transform=ax.transAxes, fontsize=10, color="#555555")
        ax.set_yticks([])
    elif key:
        for c in key:
            ax.plot(at, pd.to_numeric(aus[c], errors="coerce").to_numpy(float), lw=1, label=c, **dots)
        ax.legend(fontsize=7, ncol=4, loc="upper right")
        ax.set_ylabel("AU intensity")
        scale = au_meta.get("au_scale")
        ax.set_title(f"action units ({scale})" if scale else "action units", fontsize=9)
    else:
        ax.text(0.5, 0.5, f"none of {', '.join(KEY_AUS)} estimated by backend {backend}", ha="center",
                va="center", transform=ax.transAxes, fontsize=10, color="#555555")
        ax.set_yticks([])

    et = eg["start_s"].to_numpy(float) if len(eg) else np.array([])
    ax = axes[3]
    if len(eg):
        ax.plot(et, eg[LOUDNESS_COLUMN].to_numpy(float), lw=0.8, color="#377eb8")
        ax.set_ylabel("loudness")
        ax.set_title("loudness (eGeMAPS Loudness_sma3, sone-like)", fontsize=9)
    else:
        show_message(ax, "no audio frames (see the QA audio status)")
    ax = axes[4]
    if len(eg):
        f0 = eg[F0_COLUMN].to_numpy(float)
        f0 = np.where(f0 > 0, f0, np.nan)
        ax.plot(et, f0, lw=0.8, color="#e41a1c")
        voiced = float(np.isfinite(f0).mean())
        if not voiced:
            ax.text(0.5, 0.5, "no voiced frame (see the QA audio status)", ha="center", va="center",
                    transform=ax.transAxes, fontsize=10, color="#555555")
        ax.set_ylabel("F0 (semitones)")
        ax.set_title(f"F0 (semitones from 27.5 Hz; voiced in {100 * voiced:.0f} % of frames)", fontsize=9)
    else:
        show_message(ax, "no audio frames")
    axes[-1].set_xlabel("time (s, container clock)")
    # the time axis spans the tables' last row plus one frame, and at least MIN_SPAN_S: a
    # one-frame video (or a still saved as a video) has no zero-length axis
    ends = [x[-1] for x in (t + frame_s, at, et) if len(x) and np.isfinite(x[-1])]
    axes[-1].set_xlim(0, max([MIN_SPAN_S, *ends]))
    return save_figure(fig, out)


def frame_duration_s(times: np.ndarray) -> float:
    """The typical time from one frame to the next (the median step), 1/25 s for fewer than two frames."""
    steps = np.diff(times[np.isfinite(times)]) if len(times) > 1 else np.array([])
    steps = steps[steps > 0]
    return float(np.median(steps)) if len(steps) else 1 / 25


def _pick(frames: np.ndarray, n: int) -> np.ndarray:
    if len(frames) <= n:
        return frames
    return frames[np.linspace(0, len(frames) - 1, n).round().astype(int)]


def _draw_face(ax, x, y) -> None:
    for group in FACE_LINES:
        idx = list(group)
        ax.plot(x[idx], y[idx], color="#1f78b4", lw=0.8)
    ax.scatter(x, y, s=5, color="#e31a1c", zorder=3)


def landmark_sheet(video_id: str, landmarks_path, out, faces_path=None) -> Path:
    """Landmarks of up to SHEET_FRAMES face frames: on the aligned crops (``faces_path``)
    or on a neutral canvas (no ``faces_path``)."""
    fig = new_figure(2.0 * SHEET_FRAMES, 2.9)
    axes = fig.subplots(1, SHEET_FRAMES)
    if faces_path is not None:
        from PIL import Image

        faces, _ = read_table(faces_path)
        rows = faces[faces["success"].astype(bool)]
        picked = _pick(np.arange(len(rows)), SHEET_FRAMES)
        what = "on the aligned face crop (faces.keep_face_images: true)"
        for ax, i in zip(axes, picked):
            row = rows.iloc[i]
            image = np.asarray(Image.open(io.BytesIO(row["image"])).convert("RGB"))
            ax.imshow(image)
            _draw_face(ax, row[CROP_LANDMARK_X].to_numpy(float), row[CROP_LANDMARK_Y].to_numpy(float))
            ax.set_title(f"{row['timestamp_s']:.2f} s", fontsize=8)
    else:
        lm, _ = read_table(landmarks_path, LANDMARKS_SCHEMA)
        rows = lm[lm["success"].to_numpy(bool)]
        picked = _pick(np.arange(len(rows)), SHEET_FRAMES)
        what = "on a neutral canvas (no face image: faces.keep_face_images is off)"
        for ax, i in zip(axes, picked):
            row = rows.iloc[i]
            w = float(row["box_width"]) or 1.0
            h = float(row["box_height"]) or 1.0
            x = (row[LANDMARK_X].to_numpy(float) - float(row["box_left"])) / w
            y = (row[LANDMARK_Y].to_numpy(float) - float(row["box_top"])) / h
            ax.set_facecolor("#e6e6e6")
            _draw_face(ax, x, y)
            lo = min(-0.1, np.nanmin(x), np.nanmin(y)) if np.isfinite(x).any() else -0.1
            hi = max(1.1, np.nanmax(x), np.nanmax(y)) if np.isfinite(x).any() else 1.1
            ax.set_xlim(lo, hi)
            ax.set_ylim(hi, lo)
            ax.set_title(f"{row['timestamp_s']:.2f} s", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal")
    if not len(picked):
        show_message(axes[0], "no frame with a face")
        for ax in axes[1:]:
            ax.set_axis_off()
    for ax in axes[len(picked):] if len(picked) else []:
        ax.set_axis_off()
    n = len(rows)
    fig.suptitle(f"{video_id}: landmarks of {len(picked)} of {n} face frames, {what}", fontsize=9)
    return save_figure(fig, out)


def excluded_placeholder(video_id: str, record: dict, out) -> Path:
    """The picture of a video whose input was excluded (facevox.extract.exclusion): the
    reason in place of the tracks, so the report's timeline section says why."""
    fig = new_figure(8.0, 2.0)
    ax = fig.subplots()
    show_message(ax, f"{video_id}: input excluded by stage {record.get('stage')}: {record.get('problem')}")
    return save_figure(fig, out)
