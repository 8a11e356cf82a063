"""The data contract: every table facevox writes, defined once.

Each per-video table is a Parquet file whose schema is built here; every stage
imports its column names, dtypes and units from this module, and every reader
checks a file against it (:func:`check_table`).  Units are given in the field
metadata (``unit``) so they travel with the file.

Coordinates are pixels of the decoded frame at full resolution, after the
container's rotation metadata is applied (the frame as a player shows it),
origin top-left, x to the right, y down.  Times are seconds on the container's
clock (``pts * time_base``), so video and audio share one time axis.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from facevox.errors import ContractError

#: File-level metadata key that holds the provenance JSON (see provenance.py).
PROVENANCE_KEY = b"facevox"

N_LANDMARKS = 68
LANDMARK_X = [f"x_{i}" for i in range(N_LANDMARKS)]
LANDMARK_Y = [f"y_{i}" for i in range(N_LANDMARKS)]
#: x_0..x_67 then y_0..y_67 ("planar"): the column order of facevox's tables, as OpenFace's
#: CSVs name them.  D-Vlog's ``*_visual.npy`` arrays carry no names; the importer decides
#: their order (interleaved x0, y0, x1, y1, ... or planar) per file from the geometry
#: (facevox.dataset.import_dvlog.detect_landmark_order) and export-dvlog writes interleaved.
LANDMARK_COLUMNS = LANDMARK_X + LANDMARK_Y



def points_from_columns(table, x_columns=None, y_columns=None) -> np.ndarray:
    """The landmark columns of a table (x_* then y_*) as points [rows, 68, 2], float64."""
    xs = table[x_columns or LANDMARK_X].to_numpy(np.float64)
    ys = table[y_columns or LANDMARK_Y].to_numpy(np.float64)
    return np.stack([xs, ys], axis=-1)


def points_to_columns(points: np.ndarray, x_columns=None, y_columns=None) -> dict[str, np.ndarray]:
    """Points [rows, 68, 2] as the table's float32 columns {x_0: ..., ..., y_67: ...}."""
    pts = np.asarray(points, np.float32).reshape(-1, N_LANDMARKS, 2)
    cols = dict(zip(x_columns or LANDMARK_X, pts[:, :, 0].T))
    cols.update(zip(y_columns or LANDMARK_Y, pts[:, :, 1].T))
    return cols


#: The 25 eGeMAPSv02 low-level descriptors, named as opensmile names them.
EGEMAPS_COLUMNS = [
    "Loudness_sma3",
    "alphaRatio_sma3",
    "hammarbergIndex_sma3",
    "slope0-500_sma3",
    "slope500-1500_sma3",
    "spectralFlux_sma3",
    "mfcc1_sma3",
    "mfcc2_sma3",
    "mfcc3_sma3",
    "mfcc4_sma3",
    "F0semitoneFrom27.5Hz_sma3nz",
    "jitterLocal_sma3nz",
    "shimmerLocaldB_sma3nz",
    "HNRdBACF_sma3nz",
    "logRelF0-H1-H2_sma3nz",
    "logRelF0-H1-A3_sma3nz",
    "F1frequency_sma3nz",
    "F1bandwidth_sma3nz",
    "F1amplitudeLogRelF0_sma3nz",
    "F2frequency_sma3nz",
    "F2bandwidth_sma3nz",
    "F2amplitudeLogRelF0_sma3nz",
    "F3frequency_sma3nz",
    "F3bandwidth_sma3nz",
    "F3amplitudeLogRelF0_sma3nz",
]
#: The eGeMAPS column whose non-zero values mark voiced frames.
F0_COLUMN = "F0semitoneFrom27.5Hz_sma3nz"
#: Hop of the eGeMAPSv02 LLDs (opensmile's fixed 10 ms frame step).
EGEMAPS_HOP_S = 0.01
#: Sample rate the audio is decoded to before opensmile.
AUDIO_SAMPLE_RATE = 16_000

#: Values of the ``audio_status`` metadata / QA field.
AUDIO_STATUS = ("ok", "silent", "no_audio_stream", "too_short", "truncated")


def _f(name: str, type_: pa.DataType, unit: str | None = None, doc: str = "") -> pa.Field:
    meta = {}
    if unit:
        meta["unit"] = unit
    if doc:
        meta["doc"] = doc
    return pa.field(name, type_, nullable=True, metadata=meta or None)


def _landmark_fields() -> list[pa.Field]:
    return [_f(c, pa.float32(), "px") for c in LANDMARK_COLUMNS]


def _egemaps_fields() -> list[pa.Field]:
    return [_f(c, pa.float32(), None, "opensmile eGeMAPSv02 LLD") for c in EGEMAPS_COLUMNS]


EGEMAPS_SCHEMA = pa.schema(
    [
        _f("start_s", pa.float64(), "s", "start of the LLD frame, container clock"),
        _f("end_s", pa.float64(), "s", "end of the LLD frame, container clock"),
        *_egemaps_fields(),
    ]
)

#: Values of the landmarks table's ``reason`` column: why a frame has no landmarks of the target
#: person (facevox.extract.landmarks, "One person per video").
FACE_REASONS = {
    "no_face": "no face on the frame",
    "not_target": "only other people's faces: the target person is not on the frame",
    "unverified": "a face whose identity changed between two identity checks: which frames were the "
                  "target's is not known, so none of them is taken",
}

LANDMARKS_SCHEMA = pa.schema(
    [
        _f("frame", pa.int32(), None, "0-based index of the decoded frame"),
        _f("timestamp_s", pa.float64(), "s", "frame pts on the container clock"),
        _f("success", pa.bool_(), None, "a face and its 68 landmarks were found"),
        _f("detected", pa.bool_(), None, "the face detector ran on this frame (else tracked)"),
        _f("reason", pa.string(), None,
           "why success is false: one of FACE_REASONS (no_face, not_target, unverified); '' on success"),
        _f("n_faces", pa.int16(), None, "faces tracked on this frame, the target's and other people's"),
        _f("confidence", pa.float32(), None,
           "dlib HOG detector score of the detection this track started from; NaN without face"),
        _f("box_left", pa.float32(), "px", "box handed to the shape predictor"),
        _f("box_top", pa.float32(), "px"),
        _f("box_width", pa.float32(), "px"),
        _f("box_height", pa.float32(), "px"),
        *_landmark_fields(),
    ]
)

ALIGNED_SCHEMA = pa.schema(
    [
        _f("index", pa.int32(), None, "row index: frame (native) or bin number (rate_hz)"),
        _f("timestamp_s", pa.float64(), "s", "frame time (native) or bin start"),
        _f("face_success", pa.bool_(), None, "face_fraction >= 0.5"),
        _f("face_fraction", pa.float32(), None, "share of the row's frames with a face"),
        _f("audio_success", pa.bool_(), None, "eGeMAPS rows fell into this row's interval"),
        *_landmark_fields(),
        *_egemaps_fields(),
    ]
)

#: The 17 action-unit intensities OpenFace 2.x writes and the AVEC 2018/2019 visual
#: features (and the shallow FAU CNN) use.  Every AU table has all 17 columns; an AU
#: its backend cannot estimate is NaN, and the file metadata lists the estimated ones
#: (``au_estimated``).
AU_COLUMNS = [
    "AU01_r", "AU02_r", "AU04_r", "AU05_r", "AU06_r", "AU07_r", "AU09_r", "AU10_r",
    "AU12_r", "AU14_r", "AU15_r", "AU17_r", "AU20_r", "AU23_r", "AU25_r", "AU26_r", "AU45_r",
]
AU_BACKENDS = ("pyfeat", "mediapipe", "openface", "landmarks")

# -- AU table extension: head pose, gaze, blendshapes (issue 15) -------------------
# Named after OpenFace 2.x's columns where they mean the same, in OpenFace's units:
# camera frame x right, y down, z away from the camera (into the scene); the head's
# rotation R = Rx(pose_Rx) @ Ry(pose_Ry) @ Rz(pose_Rz) takes head axes to camera axes,
# identity for a face looking straight into the camera, upright.  Signs (from that
# definition): pose_Rx > 0 head pitched down (chin towards the chest), pose_Ry > 0 face
# turned towards the image's left (the subject's right for an unmirrored camera),
# pose_Rz > 0 head rolled clockwise as the image shows it.  A backend that has no pose or
# gaze writes NaN there (py-feat, landmarks); the ``openface`` backend copies OpenFace's own.
POSE_COLUMNS = ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
#: Eye 0 is the subject's right eye (the image's leftmost for an unmirrored frontal face, as
#: OpenFace's eye 0), eye 1 the left; unit gaze vectors in the camera frame, pointing from the
#: eye to where it looks (straight into the camera: (0, 0, -1)).
GAZE_VECTOR_COLUMNS = [f"gaze_{e}_{a}" for e in (0, 1) for a in "xyz"]
GAZE_COLUMNS = GAZE_VECTOR_COLUMNS + ["gaze_angle_x", "gaze_angle_y"]
#: MediaPipe FaceLandmarker's 52 ARKit-style blendshape scores (0-1), in the model's order,
#: prefixed ``bs_`` (``_neutral`` -> ``bs_neutral``).  "Left"/"Right" are MediaPipe's labels.
BLENDSHAPE_NAMES = [
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
]
BLENDSHAPE_COLUMNS = ["bs_" + n.lstrip("_") for n in BLENDSHAPE_NAMES]
#: OpenFace 2.x's AU presence outputs (its SVM classifiers: 1 present, 0 absent, after its
#: 7-frame vote), the 18 AUs it classifies (the 17 intensities' AUs and AU28, lip suck).  Written
#: by the backends that apply or import OpenFace (``openface_models``, ``openface``); NaN elsewhere.
AU_PRESENCE_COLUMNS = [
    "AU01_c", "AU02_c", "AU04_c", "AU05_c", "AU06_c", "AU07_c", "AU09_c", "AU10_c", "AU12_c",
    "AU14_c", "AU15_c", "AU17_c", "AU20_c", "AU23_c", "AU25_c", "AU26_c", "AU28_c", "AU45_c",
]
#: Every AU-table column after the 17 AUs (NaN where the backend has no such output).
AU_EXTRA_COLUMNS = POSE_COLUMNS + GAZE_COLUMNS + BLENDSHAPE_COLUMNS + AU_PRESENCE_COLUMNS


def _au_extra_fields() -> list[pa.Field]:
    pose = [_f(f"pose_T{a}", pa.float32(), "mm", f"head position {a} in the camera frame "
               "(mediapipe: from its assumed camera, approximate)") for a in "xyz"]
    pose += [_f(f"pose_R{a}", pa.float32(), "rad", f"head rotation, Euler angle about the camera {a} axis "
                "(R = Rx Ry Rz; see contract)") for a in "xyz"]
    gaze = [_f(c, pa.float32(), None, "unit gaze vector component, camera frame") for c in GAZE_VECTOR_COLUMNS]
    gaze += [_f("gaze_angle_x", pa.float32(), "rad",
                "atan2(x, -z) of the mean gaze vector: > 0 looking to the image's right"),
             _f("gaze_angle_y", pa.float32(), "rad", "atan2(y, -z) of the mean gaze vector: > 0 looking down")]
    shapes = [_f(c, pa.float32(), None, "MediaPipe blendshape score 0-1") for c in BLENDSHAPE_COLUMNS]
    presence = [_f(c, pa.float32(), None, "AU presence, OpenFace's classifier: 1 present, 0 absent")
                for c in AU_PRESENCE_COLUMNS]
    return pose + gaze + shapes + presence


AU_SCHEMA = pa.schema(
    [
        _f("frame", pa.int32(), None, "0-based index of the decoded frame"),
        _f("timestamp_s", pa.float64(), "s", "frame pts on the container clock"),
        _f("success", pa.bool_(), None, "a face was found and AUs estimated"),
        _f("confidence", pa.float32(), None, "backend's face/AU confidence in [0, 1]; NaN without face"),
        *[_f(c, pa.float32(), None, "AU intensity (backend's scale, see metadata)") for c in AU_COLUMNS],
        *_au_extra_fields(),
    ]
)

#: Columns the FAU windows summarise (mean and std of each).
FAU_INPUT_COLUMNS = AU_COLUMNS + ["confidence"]
FAU_STAT_COLUMNS = [f"{c}_{stat}" for c in FAU_INPUT_COLUMNS for stat in ("mean", "std")]
#: The shallow FAU CNN's speaker-turn channel (Pandit et al. 3.2: "at least one of the two
#: participants speaking"): the share of a window's frames with voice activity in the audio,
#: 0-1; NaN where no frame of the window has audio (no audio stream, silent or too short a
#: track, audio shorter than the video) - missing audio is not silence.  How it is computed:
#: facevox.extract.voice_activity.
TURNS_COLUMN = "turns"
#: What the FAU models read (the paper's 37 inputs, section 4.1): the 36 functionals, then turns.
FAU_FEATURE_COLUMNS = FAU_STAT_COLUMNS + [TURNS_COLUMN]
#: Head pose and gaze functionals beside them (as AVEC's OpenFace features have them), in the
#: FAU window table after FAU_FEATURE_COLUMNS; the FAU models read FAU_FEATURE_COLUMNS by name.
FAU_POSE_GAZE_COLUMNS = ["pose_Rx", "pose_Ry", "pose_Rz", "pose_Tx", "pose_Ty", "pose_Tz",
                         "gaze_angle_x", "gaze_angle_y"]
FAU_POSE_GAZE_STAT_COLUMNS = [f"{c}_{stat}" for c in FAU_POSE_GAZE_COLUMNS for stat in ("mean", "std")]

#: The same functionals in the AVEC 2019 baseline script's order (convention ``avec``):
#: the means of confidence and the 17 AUs, then their standard deviations, confidence first.
FAU_AVEC_INPUT_COLUMNS = ["confidence"] + AU_COLUMNS
FAU_AVEC_STAT_COLUMNS = [f"{c}_{stat}" for stat in ("mean", "std") for c in FAU_AVEC_INPUT_COLUMNS]

_FAU_WINDOW_INDEX_FIELDS = [
    _f("window", pa.int32(), None, "0-based window index"),
    _f("centre_frame", pa.int32(), None, "frame at the window's centre"),
    _f("centre_s", pa.float64(), "s",
       "paper: timestamp of the centre frame; avec: window index x hop (the script's time)"),
    _f("first_frame", pa.int32(), None, "first frame of the (edge-truncated) window"),
    _f("last_frame", pa.int32(), None, "last frame of the window, inclusive"),
    _f("n_used", pa.int32(), None, "frames that entered the statistics"),
]


def _turns_field() -> pa.Field:
    return _f(TURNS_COLUMN, pa.float32(), None,
              "share of the window's frames with voice activity (someone speaking); NaN without audio")


FAU_WINDOWS_SCHEMA = pa.schema(
    [
        *_FAU_WINDOW_INDEX_FIELDS,
        *[_f(c, pa.float32(), None, "moving mean / std (ddof 0)") for c in FAU_STAT_COLUMNS],
        _turns_field(),
        *[_f(c, pa.float32(), "mm" if c.startswith("pose_T") else "rad", "moving mean / std (ddof 0)")
          for c in FAU_POSE_GAZE_STAT_COLUMNS],
    ]
)

#: ``fau_windows.convention: avec``: the AU functionals of FAU_WINDOWS_SCHEMA (the AVEC script's
#: AU set, no pose or gaze) in FAU_AVEC_STAT_COLUMNS order, then ``turns`` (not the script's; the
#: shallow CNN's 37th input).  Readers select functionals by name, so both serve every model.
FAU_WINDOWS_AVEC_SCHEMA = pa.schema(
    [
        *_FAU_WINDOW_INDEX_FIELDS,
        *[_f(c, pa.float32(), None, "moving mean / std (ddof 0), AVEC 2019 order") for c in FAU_AVEC_STAT_COLUMNS],
        _turns_field(),
    ]
)

CROP_LANDMARK_X = [f"cx_{i}" for i in range(N_LANDMARKS)]
CROP_LANDMARK_Y = [f"cy_{i}" for i in range(N_LANDMARKS)]

ALIGNED_FACES_SCHEMA = pa.schema(
    [
        _f("frame", pa.int32(), None, "0-based index of the decoded frame"),
        _f("timestamp_s", pa.float64(), "s", "frame pts on the container clock"),
        _f("success", pa.bool_(), None, "a face was found and cropped"),
        _f("image", pa.binary(), None, "aligned face crop, JPEG (RGB); empty without face"),
        *[_f(c, pa.float32(), "px", "landmark in crop coordinates") for c in CROP_LANDMARK_X + CROP_LANDMARK_Y],
    ]
)

#: Rows per row group of a faces table (stage faces writes them as they are made; a reader of
#: face clips reads by row group): 256 crops (~3-4 MB of JPEG at 224 px) bound the writer's
#: memory, and a 64-frame training clip at any stride up to 4 lies in one or two groups.
FACES_ROW_GROUP_ROWS = 256

#: Feature sets a shard can hold: name -> per-frame columns of the aligned table.
FEATURE_SETS = {
    "landmarks_egemaps": LANDMARK_COLUMNS + EGEMAPS_COLUMNS,  # 136 + 25: STST, JAMFN, D-Vlog baselines
}


def shard_schema(length: int, n_features: int) -> pa.Schema:
    """One row per slice; ``features`` is a [length, n_features] float32 array stored as a
    fixed-size list of fixed-size lists (zero-copy to numpy, readable by pandas/DuckDB)."""
    return pa.schema(
        [
            _f("video_id", pa.string()),
            _f("subject_id", pa.string()),
            _f("slice_index", pa.int32(), None, "0-based slice number within the video"),
            _f("start_frame", pa.int32(), None, "row of the aligned table the slice starts at"),
            _f("n_real", pa.int32(), None, "rows from the video; the rest is padding"),
            _f("n_missing", pa.int32(), None, "real rows still NaN (gap longer than max_gap)"),
            _f("label", pa.string()),
            _f("score", pa.float32()),
            _f("gender", pa.string()),
            _f("features", pa.list_(pa.list_(pa.float32(), n_features), length), None,
               "normalised features [length, n_features]; columns in the manifest"),
        ]
    )


#: Columns of results/qa.tsv, in order (one row per video).
QA_COLUMNS = [
    "video_id",
    "n_frames",
    "video_duration_s",
    "face_found_rate",
    "longest_gap_s",
    "audio_present",
    "audio_status",
    "audio_duration_s",
    "voiced_fraction",
    "duration_mismatch_s",
    "au_backend",
    # the target person (the landmarks table's provenance ``target`` record; NA for older tables):
    "target_mode",  # dominant | reference | largest
    "target_why",  # one sentence: why this person
    "n_people",  # distinct people seen in the video
    "target_present_rate",  # share of frames with the target's landmarks
    "other_present_rate",  # share of frames where another person's face was tracked
    "target_match_distance",  # mean descriptor distance of the target's samples to its embedding
    "same_face_as",  # videos of other subject ids in other splits with the same face (rule identity_overlap)
    "flags",
    "excluded_reason",  # why an excluded video (flag `excluded`) could not be read: facevox.extract.exclusion
]

#: Sample sheet columns: required ones and those that may be left empty.
SAMPLE_REQUIRED = ["video_id", "path"]
SAMPLE_OPTIONAL = ["subject_id", "split", "label", "score", "gender", "openface_csv", "affect_labels",
                   "reference", "reference_s"]
SAMPLE_COLUMNS = SAMPLE_REQUIRED + SAMPLE_OPTIONAL
SPLITS = ("train", "dev", "test")

TABLES = {
    "egemaps": EGEMAPS_SCHEMA,
    "landmarks": LANDMARKS_SCHEMA,
    "aligned": ALIGNED_SCHEMA,
    "action_units": AU_SCHEMA,
    "fau_windows": FAU_WINDOWS_SCHEMA,
    "faces": ALIGNED_FACES_SCHEMA,
}


def schema_tag(schema: pa.Schema) -> str:
    """A short fingerprint of ``schema``'s column names and types (12 hex digits of their sha256):
    a rule that writes such a table gives it as a param, so tables written under an older contract
    (another column set) are stale to Snakemake and rewritten, never read by a newer stage that
    checks the contract (the AU table's: workflow/rules/action_units.smk)."""
    import hashlib

    text = ";".join(f"{f.name}:{f.type}" for f in schema)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_table(table: pa.Table, schema: pa.Schema, what: str) -> None:
    """Raise :class:`~facevox.errors.ContractError` (a ValueError) unless ``table`` has exactly
    ``schema``'s names and types."""
    got = [(f.name, f.type) for f in table.schema]
    want = [(f.name, f.type) for f in schema]
    if got != want:
        missing = [n for n, _ in want if n not in dict(got)]
        extra = [n for n, _ in got if n not in dict(want)]
        raise ContractError(
            f"{what}: table does not match the facevox contract "
            f"(missing {missing[:5]}, unexpected {extra[:5]}, or different types/order)"
        )


# --------------------------------------------------------------------------- left-out items
#: Why a slice, window or video is not used (``left_out`` entries: the shard manifest, the
#: model file, the metrics JSON; the tables' notes say it in these words).
LEFT_OUT_REASONS = {
    "max_missing_fraction": "over models.max_missing_fraction still missing",
    "no_label": "no label the model knows",
    "no_slices": "no slice (shorter than one slice)",
    "no_face": "no face crop",
    "no_score": "no score in the sheet",
    "excluded_input": "input excluded (unreadable)",
}


def left_out_record(split: str, reason: str, unit: str, per_video: dict[str, int]) -> dict:
    """One left-out entry: ``count`` items (``unit``: slices, windows or videos) of ``split``
    not used for ``reason`` (a key of :data:`LEFT_OUT_REASONS`); ``videos`` maps each video
    id to its items left out, in data order."""
    if reason not in LEFT_OUT_REASONS:
        raise ValueError(f"unknown left-out reason {reason!r}")
    return {"split": split, "reason": reason, "unit": unit, "count": int(sum(per_video.values())),
            "videos": {str(v): int(n) for v, n in per_video.items()}}


def describe_left_out(record: dict) -> str:
    """One left-out entry in words, e.g. ``train split: 8 slices left out (over
    models.max_missing_fraction still missing): v1 (5), v2 (3)`` - videos with their items
    left out, or only the ids when whole videos are."""
    unit = record["unit"] if record["count"] != 1 else record["unit"].removesuffix("s")
    ids = ", ".join(v if record["unit"] == "videos" else f"{v} ({n})" for v, n in record["videos"].items())
    why = LEFT_OUT_REASONS.get(record["reason"], record["reason"])
    return f"{record['split']} split: {record['count']} {unit} left out ({why}): {ids}"
