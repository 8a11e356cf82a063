"""Stage `qa`: one quality record per video, collected into ``results/qa.tsv``.

Fields (contract.QA_COLUMNS):

* ``face_found_rate`` - share of decoded frames with a face.
* ``longest_gap_s`` - longest stretch without a face, in seconds (from the
  first missing frame's time to the next frame with a face, or the end).
* ``audio_present`` / ``audio_status`` - see egemaps.py for the statuses.
* ``voiced_fraction`` - share of eGeMAPS rows with F0 > 0.
* ``duration_mismatch_s`` - audio duration minus video duration.
* ``au_backend`` - the action-unit backend actually used (pyfeat, mediapipe, openface, landmarks;
  why: the AU table's ``au_backend_why`` metadata).
* ``flags`` - comma-separated problems a researcher should look at:

  - ``no_frames`` - no video frame decoded;
  - ``no_face`` - frames, but a face in none of them (also ``low_face_rate``);
  - ``low_face_rate`` - a face in fewer than ``LOW_FACE_RATE`` of the frames;
  - ``long_face_gap`` - a stretch of more than ``LONG_GAP_S`` without a face;
  - ``small_frame_missed_faces`` - faces in fewer than ``LOW_FACE_RATE`` of
    the frames, and the frame is small (shorter side below ``SMALL_FRAME_PX``):
    a visible face there may be smaller than the smallest face the landmark
    stage looked for (``min_face_px_promised`` in its metadata).  Fix: lower
    ``landmarks.min_face_px`` below the faces' size (:func:`hints` says so with
    the numbers; the QA log shows it);
  - ``multiple_faces`` - at least ``MULTI_FACE_RATE`` of the landmark stage's
    detections found two or more faces: only the best-scoring one is tracked,
    so the features may mix two people;
  - ``audio_<status>`` - audio not ``ok`` (see egemaps.py);
  - ``duration_mismatch`` - audio and video durations differ by more than
    ``DURATION_MISMATCH_S``;
  - ``short_video`` - shorter than ``SHORT_VIDEO_S`` (one 50-frame FAU window
    at 25 fps): every FAU window is truncated and a slice is mostly padding;
  - ``variable_frame_rate``, ``truncated`` - from the probe;
  - ``excluded`` - the video could not be read (on_bad_input, facevox.extract.exclusion):
    the only flag of its row, the measures empty, ``excluded_reason`` the problem and the
    stage that met it.

Rule: workflow/rules/qa.smk · Tests: tests/test_qa.py
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from facevox.contract import EGEMAPS_SCHEMA, F0_COLUMN, LANDMARKS_SCHEMA, QA_COLUMNS
from facevox.errors import ExcludedInput
from facevox.io import atomic_path, read_json, read_provenance, read_table, write_json

#: Flag thresholds.
LOW_FACE_RATE = 0.5
LONG_GAP_S = 5.0
DURATION_MISMATCH_S = 0.5
MULTI_FACE_RATE = 0.1
SHORT_VIDEO_S = 2.0
SMALL_FRAME_PX = 360

log = logging.getLogger("facevox.extract.qa")


def longest_gap_s(times: np.ndarray, success: np.ndarray, end_s: float) -> float:
    """Longest run of frames without a face, measured on the container clock."""
    longest, gap_start = 0.0, None
    for t, ok in zip(times, success):
        if not ok and gap_start is None:
            gap_start = t
        elif ok and gap_start is not None:
            longest = max(longest, t - gap_start)
            gap_start = None
    if gap_start is not None:
        longest = max(longest, end_s - gap_start)
    return float(longest)


def record(video_id: str, probe: dict, landmarks: pd.DataFrame, egemaps: pd.DataFrame,
           egemaps_meta: dict, au_backend: str | None = None, landmarks_meta: dict | None = None) -> dict:
    times = landmarks["timestamp_s"].to_numpy()
    success = landmarks["success"].to_numpy(bool)
    video = probe.get("video") or {}
    interval = (video.get("frame_interval_s") or {}).get("median") or 0.0
    video_duration = video.get("duration_s") or (float(times[-1] + interval) if len(times) else 0.0)
    end_s = float(times[-1] + interval) if len(times) else 0.0
    status = egemaps_meta.get("audio_status", "no_audio_stream")
    audio_duration = float(egemaps_meta.get("audio_duration_s") or 0.0)
    voiced = float((egemaps[F0_COLUMN] > 0).mean()) if len(egemaps) else 0.0
    rec = {
        "video_id": video_id,
        "n_frames": int(len(landmarks)),
        "video_duration_s": round(float(video_duration), 4),
        "face_found_rate": round(float(success.mean()) if len(success) else 0.0, 4),
        "longest_gap_s": round(longest_gap_s(times, success, end_s), 4),
        "audio_present": probe.get("audio") is not None,
        "audio_status": status,
        "audio_duration_s": round(audio_duration, 4),
        "voiced_fraction": round(voiced, 4),
        "duration_mismatch_s": round(audio_duration - float(video_duration), 4)
        if probe.get("audio") is not None else None,
        "au_backend": au_backend,
    }
    flags = []
    if rec["n_frames"] == 0:
        flags.append("no_frames")
    elif not success.any():
        flags.append("no_face")
    if rec["face_found_rate"] < LOW_FACE_RATE:
        flags.append("low_face_rate")
    if rec["longest_gap_s"] > LONG_GAP_S:
        flags.append("long_face_gap")
    if rec["n_frames"] and rec["face_found_rate"] < LOW_FACE_RATE and small_frame(landmarks_meta):
        flags.append("small_frame_missed_faces")
    if (landmarks_meta or {}).get("multi_face_rate", 0.0) >= MULTI_FACE_RATE:
        flags.append("multiple_faces")
    if status != "ok":
        flags.append(f"audio_{status}")
    if rec["duration_mismatch_s"] is not None and abs(rec["duration_mismatch_s"]) > DURATION_MISMATCH_S:
        flags.append("duration_mismatch")
    if rec["n_frames"] and rec["video_duration_s"] < SHORT_VIDEO_S:
        flags.append("short_video")
    if video.get("variable_frame_rate"):
        flags.append("variable_frame_rate")
    if probe.get("truncated"):
        flags.append("truncated")
    rec["flags"] = ",".join(flags)
    rec["excluded_reason"] = None
    return rec


def excluded_record(video_id: str, reason: dict) -> dict:
    """The QA row of an excluded video: flag ``excluded``, the reason, no measures."""
    from facevox.extract.exclusion import describe

    rec = dict.fromkeys(QA_COLUMNS)
    rec.update(video_id=video_id, flags="excluded", excluded_reason=describe(reason))
    return rec


def small_frame(landmarks_meta: dict | None) -> bool:
    """The landmarks table's frames are small: shorter side below SMALL_FRAME_PX.
    False for a table that does not record its frame size and promise."""
    meta = landmarks_meta or {}
    promise, w, h = meta.get("min_face_px_promised"), meta.get("frame_width"), meta.get("frame_height")
    if not (promise and w and h):
        return False
    return min(w, h) < SMALL_FRAME_PX


def hints(rec: dict, landmarks_meta: dict | None) -> list[str]:
    """One sentence per flag that has a setting to change, naming the setting."""
    out = []
    if "small_frame_missed_faces" in rec["flags"].split(","):
        meta = landmarks_meta or {}
        promise, w, h = meta["min_face_px_promised"], meta["frame_width"], meta["frame_height"]
        out.append(
            f"{rec['video_id']}: a face on {100 * rec['face_found_rate']:.0f} % of the frames of this "
            f"{w}x{h} video, and faces smaller than {promise:g} px ({100 * promise / min(w, h):.0f} % of "
            f"the frame's shorter side) are not looked for: set landmarks.min_face_px below the faces' "
            f"size (e.g. {max(20, round(promise / 2))}; each halving ~4x slower detection)"
        )
    return out


def run(video_id: str, probe_path, landmarks_path, egemaps_path, out, aus_path=None) -> dict:
    probe = read_json(probe_path)
    reason = probe.get("excluded")
    if not reason:
        try:
            lm, lm_meta = read_table(landmarks_path, LANDMARKS_SCHEMA)
            eg, eg_meta = read_table(egemaps_path, EGEMAPS_SCHEMA)
        except ExcludedInput as exc:
            reason = exc.record
    if not reason and aus_path:
        au_meta = read_provenance(aus_path)
        reason = au_meta.get("excluded")
    if reason:
        rec = excluded_record(video_id, reason)
        log.warning("%s: excluded: %s", video_id, rec["excluded_reason"])
        write_json(rec, out)
        return rec
    au_backend = au_meta.get("au_backend") if aus_path else None
    rec = record(video_id, probe, lm, eg, eg_meta, au_backend, lm_meta)
    for line in hints(rec, lm_meta):
        log.warning(line)
    write_json(rec, out)
    return rec


def collect(records, out) -> pd.DataFrame:
    """Gather per-video QA JSON files into one TSV (one row per video, sorted by id)."""
    rows = [read_json(p) for p in records]
    df = pd.DataFrame(rows, columns=QA_COLUMNS).sort_values("video_id")
    with atomic_path(out) as tmp:
        df.to_csv(tmp, sep="\t", index=False, na_rep="NA")
    return df
