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
* The target person - every per-video table describes ONE person, chosen by identity
  (config ``target``, facevox.extract.landmarks); read from the landmarks table's provenance
  ``target`` record, NA for a table written before that record existed:

  - ``target_mode`` - how the person was chosen: ``dominant`` (present in the most frames),
    ``reference`` (matches the sheet's reference face) or ``largest`` (the biggest face);
  - ``target_why`` - one sentence: why this person;
  - ``n_people`` - distinct people seen in the video (the target and the others);
  - ``target_present_rate`` - share of frames with the target's landmarks (the
    ``face_found_rate`` of a table with a target record);
  - ``other_present_rate`` - share of frames where another person's face was tracked (their
    landmarks are in no table);
  - ``target_match_distance`` - mean dlib descriptor distance of the target's samples to its
    embedding (``reference`` mode: to the reference face); below ``target.match_distance``
    (0.6) is one person, and the lower the surer;
  - ``same_face_as`` - filled by :func:`collect` from ``results/identity_overlap.tsv``
    (facevox.extract.identity_overlap): the videos (comma-separated ids) whose target is
    the same face under another subject id in another split; NA when none.
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
  - ``multiple_faces`` - other faces were present: at least ``MULTI_FACE_RATE`` of the
    landmark stage's detections found two or more faces, or another person's face was
    tracked on at least ``MULTI_FACE_RATE`` of the frames (``other_present_rate``).  The
    target was chosen by identity and only its landmarks are kept (the features no longer
    mix people): check ``target_why`` and ``n_people`` that the right person was chosen;
  - ``target_choice_close`` - ``dominant`` mode, and the runner-up person was present
    almost as often as the target (at least ``target.close_ratio`` of its frames): which
    of the two is the subject is a guess.  The QA log names both people's frame counts;
    fix: give the subject a reference face (sheet column ``reference``, ``target.mode:
    reference``);
  - ``target_not_found`` - people were seen (``n_people`` > 0) but none was chosen as the
    target (``reference`` mode: nobody matches the reference face); the video has no
    landmarks.  A video with no face at all is ``no_face``;
  - ``same_face_other_subject`` - the target's face is also the target of a video of another
    subject id in another split (``same_face_as``): one participant under two ids, a leak
    between the splits (rule ``identity_overlap``, config ``target.on_identity_overlap``);
  - ``audio_<status>`` - audio not ``ok`` (see egemaps.py);
  - ``duration_mismatch`` - audio and video durations differ by more than
    ``DURATION_MISMATCH_S``;
  - ``short_video`` - shorter than ``SHORT_VIDEO_S`` (one 50-frame FAU window
    at 25 fps): every FAU window is truncated and a slice is mostly padding;
  - ``low_frame_rate`` - two or more frames, fewer than ``LOW_FPS`` a second (the probe's
    ``avg_fps``): the per-frame features miss facial movement, and a window of N frames spans
    N / fps seconds;
  - ``still_picture`` - two or more frames, and the picture never changes (the landmarks
    table's ``max_frame_change`` below ``STILL_CHANGE`` grey levels): a still image saved as a
    video; its AUs and head pose say nothing about the person's movement;
  - ``damaged_frames`` - the decoder flagged frames corrupt (partly concealed: a file cut off
    mid-frame, broken packets; the landmarks table's ``damaged_frames`` counts them);
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

#: QA columns read from the landmarks table's provenance ``target`` record: column -> key.
TARGET_FIELDS = {"target_mode": "mode", "target_why": "why", "n_people": "n_people",
                 "target_present_rate": "present_rate", "other_present_rate": "other_present_rate",
                 "target_match_distance": "match_distance"}

#: Flag thresholds.
LOW_FACE_RATE = 0.5
LONG_GAP_S = 5.0
DURATION_MISMATCH_S = 0.5
MULTI_FACE_RATE = 0.1
SHORT_VIDEO_S = 2.0
SMALL_FRAME_PX = 360
LOW_FPS = 5.0
STILL_CHANGE = 0.5

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
        **target_fields(landmarks_meta),
        "same_face_as": None,  # collect() fills it from results/identity_overlap.tsv
    }
    target = (landmarks_meta or {}).get("target")
    target = target if isinstance(target, dict) else {}
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
    if ((landmarks_meta or {}).get("multi_face_rate") or 0.0) >= MULTI_FACE_RATE or \
            (rec["other_present_rate"] or 0.0) >= MULTI_FACE_RATE:
        flags.append("multiple_faces")
    if target.get("close_choice"):
        flags.append("target_choice_close")
    if target and not target.get("found", True) and (target.get("n_people") or 0) > 0:
        flags.append("target_not_found")
    if status != "ok":
        flags.append(f"audio_{status}")
    if rec["duration_mismatch_s"] is not None and abs(rec["duration_mismatch_s"]) > DURATION_MISMATCH_S:
        flags.append("duration_mismatch")
    if rec["n_frames"] and rec["video_duration_s"] < SHORT_VIDEO_S:
        flags.append("short_video")
    if len(times) >= 2 and (video.get("avg_fps") or LOW_FPS) < LOW_FPS:
        flags.append("low_frame_rate")
    change = (landmarks_meta or {}).get("max_frame_change")
    if len(times) >= 2 and change is not None and change < STILL_CHANGE:
        flags.append("still_picture")
    if (landmarks_meta or {}).get("damaged_frames"):
        flags.append("damaged_frames")
    if video.get("variable_frame_rate"):
        flags.append("variable_frame_rate")
    if probe.get("truncated"):
        flags.append("truncated")
    rec["flags"] = ",".join(flags)
    rec["excluded_reason"] = None
    return rec


def target_fields(landmarks_meta: dict | None) -> dict:
    """The target-person QA columns (:data:`TARGET_FIELDS`) from the landmarks table's
    provenance ``target`` record; all None for a table without one (written before it existed)."""
    target = (landmarks_meta or {}).get("target")
    if not isinstance(target, dict):
        return dict.fromkeys(TARGET_FIELDS)
    out = {}
    for column, key in TARGET_FIELDS.items():
        value = target.get(key)
        if isinstance(value, float):
            value = round(value, 4)
        out[column] = value
    return out


def people_counts(target: dict) -> tuple[dict | None, dict | None]:
    """The target's and the runner-up's entries of the record's ``people`` (most frames
    among the others); None where there is no such person."""
    people = [p for p in target.get("people") or [] if isinstance(p, dict)]
    chosen = next((p for p in people if p.get("person") == target.get("person")), None)
    others = [p for p in people if p is not chosen]
    runner = max(others, key=lambda p: p.get("frames") or 0) if others else None
    return chosen, runner


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
    flags = rec["flags"].split(",")
    target = (landmarks_meta or {}).get("target") or {}
    if "target_choice_close" in flags:
        chosen, runner = people_counts(target)
        if chosen and runner:
            counts = (f"person {chosen.get('person')} on {chosen.get('frames')} frames was chosen over person "
                      f"{runner.get('person')} on {runner.get('frames')} frames")
        else:
            counts = "the runner-up person was present almost as often as the chosen one"
        out.append(f"{rec['video_id']}: a close choice of the target person (target.mode: {target.get('mode')}): "
                   f"{counts}; check that the subject is the chosen one, or give the subject a reference face "
                   "(sheet column reference, target.mode: reference)")
    if "target_not_found" in flags:
        out.append(f"{rec['video_id']}: {target.get('n_people')} people seen but no target person chosen "
                   f"(target.mode: {target.get('mode')}): {target.get('why') or 'no reason recorded'}")
    if "small_frame_missed_faces" in flags:
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


def unusable_reason(rec: dict) -> str | None:
    """Why a video's QA record says it has nothing for the face models, or None: excluded, no
    decoded frame, or no face in any frame (its audio may still be usable)."""
    flags = set((rec.get("flags") or "").split(","))
    if "excluded" in flags:
        return f"excluded: {rec.get('excluded_reason')}"
    if "no_frames" in flags:
        return "no decoded frame"
    if "no_face" in flags:
        return "no face in any frame"
    return None


def unusable_videos(records: dict) -> dict[str, str]:
    """{video id: :func:`unusable_reason`} of the QA records (``records``: video id -> path of
    results/qa/<video>.json) that exist and are readable now - what is known when the DAG is
    built (a first run has none yet)."""
    from pathlib import Path

    out = {}
    for vid, path in records.items():
        if not Path(path).is_file():
            continue
        try:
            why = unusable_reason(read_json(path))
        except (OSError, ValueError):
            continue
        if why:
            out[vid] = why
    return out


def same_faces(identity_overlap) -> dict[str, list[str]]:
    """Per video, the other videos of ``results/identity_overlap.tsv``'s cross-split
    ``same_face_different_subject`` pairs (the leaks), sorted."""
    from facevox.extract.identity_overlap import read_overlap

    pairs = read_overlap(identity_overlap)
    leaks = pairs[(pairs["kind"] == "same_face_different_subject") & pairs["cross_split"]]
    out: dict[str, set[str]] = {}
    for a, b in zip(leaks["video_a"], leaks["video_b"]):
        out.setdefault(a, set()).add(b)
        out.setdefault(b, set()).add(a)
    return {vid: sorted(others) for vid, others in out.items()}


def collect(records, out, identity_overlap=None) -> pd.DataFrame:
    """Gather per-video QA JSON files into one TSV (one row per video, sorted by id).
    ``identity_overlap``: results/identity_overlap.tsv; its cross-split pairs of one face under
    two subject ids give their videos the flag ``same_face_other_subject`` and ``same_face_as``."""
    rows = [read_json(p) for p in records]
    if identity_overlap is not None:
        same = same_faces(identity_overlap)
        for row in rows:
            others = same.get(row.get("video_id"))
            if others and row.get("flags") != "excluded":
                row["same_face_as"] = ",".join(others)
                row["flags"] = ",".join([f for f in (row.get("flags") or "").split(",") if f]
                                        + ["same_face_other_subject"])
    df = pd.DataFrame(rows, columns=QA_COLUMNS).sort_values("video_id")
    df["n_people"] = pd.to_numeric(df["n_people"], errors="coerce").astype("Int64")  # 2, not 2.0 beside NA
    with atomic_path(out) as tmp:
        df.to_csv(tmp, sep="\t", index=False, na_rep="NA")
    return df
