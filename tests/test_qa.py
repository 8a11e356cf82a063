"""Tests for facevox.extract.qa: per-video quality records and results/qa.tsv."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facevox.contract import (
    EGEMAPS_COLUMNS,
    EGEMAPS_SCHEMA,
    F0_COLUMN,
    LANDMARK_COLUMNS,
    LANDMARKS_SCHEMA,
    QA_COLUMNS,
)
from facevox.extract import qa
from facevox.io import read_json, write_json, write_table


# --------------------------------------------------------------------------- longest_gap_s
@pytest.mark.parametrize("times, success, end_s, expected", [
    # one gap in the middle: first missing frame 0.25 -> next face 0.75
    ([0.0, 0.25, 0.5, 0.75, 1.0], [1, 0, 0, 1, 1], 1.25, 0.75 - 0.25),
    # two gaps, the longer one wins: 1 -> 2 (1 s) and 3 -> 6 (3 s)
    ([0, 1, 2, 3, 4, 5, 6], [1, 0, 1, 0, 0, 0, 1], 7.0, 6 - 3),
    # a gap running to the end is measured to end_s: 2 -> 4
    ([0, 1, 2, 3], [1, 1, 0, 0], 4.0, 4 - 2),
    # no gap at all
    ([0, 1, 2, 3], [1, 1, 1, 1], 4.0, 0.0),
    # nothing found: from the first frame's time (1.0) to the end
    ([1, 2, 3, 4], [0, 0, 0, 0], 5.0, 5 - 1),
    # no frames
    ([], [], 0.0, 0.0),
], ids=["middle", "longest-of-two", "to-end", "none", "all-missing", "empty"])
def test_longest_gap_s(times, success, end_s, expected):
    got = qa.longest_gap_s(np.asarray(times, float), np.asarray(success, bool), end_s)
    assert isinstance(got, float)
    assert got == pytest.approx(expected)


# --------------------------------------------------------------------------- record
def landmarks(times, success) -> pd.DataFrame:
    return pd.DataFrame({"timestamp_s": np.asarray(times, float), "success": np.asarray(success, bool)})


def egemaps(f0) -> pd.DataFrame:
    f0 = np.asarray(f0, np.float32)
    return pd.DataFrame({c: (f0 if c == F0_COLUMN else np.zeros_like(f0)) for c in EGEMAPS_COLUMNS})


def probe(duration_s=10.0, median=0.5, vfr=False, audio=True, truncated=False) -> dict:
    return {
        "video": {"duration_s": duration_s, "frame_interval_s": {"median": median},
                  "variable_frame_rate": vfr},
        "audio": {"codec": "aac", "sample_rate": 48000} if audio else None,
        "truncated": truncated,
    }


#: 20 frames at 2 fps (t = 0, 0.5, ..., 9.5); frames 5..9 (t 2.5..4.5) have no face.
TIMES = np.arange(20) * 0.5
FACE = np.ones(20, bool)
FACE[5:10] = False
#: F0 of 8 eGeMAPS rows: 3 voiced (> 0); 0 and NaN are unvoiced.
F0 = [0.0, 20.0, np.nan, 21.0, 0.0, 22.0, 0.0, 0.0]


@pytest.fixture
def good_record() -> dict:
    return qa.record("vid1", probe(), landmarks(TIMES, FACE), egemaps(F0),
                     {"audio_status": "ok", "audio_duration_s": 10.2})


def test_record_fields(good_record):
    assert list(good_record) == QA_COLUMNS
    assert good_record == {
        "video_id": "vid1",
        "n_frames": 20,
        "video_duration_s": 10.0,
        "face_found_rate": 15 / 20,  # 0.75
        "longest_gap_s": 5.0 - 2.5,  # first missing frame 2.5 s, next face 5.0 s
        "audio_present": True,
        "audio_status": "ok",
        "audio_duration_s": 10.2,
        "voiced_fraction": 3 / 8,  # 0.375
        "duration_mismatch_s": pytest.approx(10.2 - 10.0),
        "au_backend": None,
        # a landmarks table without a target record (written before target persons): unknown
        "target_mode": None, "target_why": None, "n_people": None, "target_present_rate": None,
        "other_present_rate": None, "target_match_distance": None, "same_face_as": None,
        "flags": "",
        "excluded_reason": None,  # a readable video
    }


def test_face_found_rate_is_rounded_to_four_places():
    rec = qa.record("v", probe(), landmarks([0, 0.5, 1.0], [1, 1, 0]), egemaps([1.0]),
                    {"audio_status": "ok", "audio_duration_s": 10.0})
    assert rec["face_found_rate"] == 0.6667  # 2/3
    assert rec["longest_gap_s"] == 1.5 - 1.0  # gap to the end: last frame 1.0 + median interval 0.5


def test_video_duration_falls_back_to_the_frames():
    rec = qa.record("v", probe(duration_s=None), landmarks(TIMES, FACE), egemaps(F0),
                    {"audio_status": "ok", "audio_duration_s": 10.0})
    assert rec["video_duration_s"] == 9.5 + 0.5  # last frame + one median interval
    assert rec["duration_mismatch_s"] == 0.0


@pytest.mark.parametrize("kwargs, face, meta, flags", [
    # 9/20 = 0.45 < 0.5; gap 4.5 s -> end 10.0 s = 5.5 s > 5
    ({}, [1] * 9 + [0] * 11, {"audio_status": "ok", "audio_duration_s": 10.0},
     "low_face_rate,long_face_gap"),
    # exactly 0.5 is not low; gap 5.0 s -> end 10.0 s is exactly 5.0 s, not > 5
    ({}, [1] * 10 + [0] * 10, {"audio_status": "ok", "audio_duration_s": 10.0}, ""),
    ({}, [1] * 20, {"audio_status": "silent", "audio_duration_s": 10.0}, "audio_silent"),
    ({}, [1] * 20, {"audio_status": "ok", "audio_duration_s": 9.4}, "duration_mismatch"),  # -0.6
    ({}, [1] * 20, {"audio_status": "ok", "audio_duration_s": 10.5}, ""),  # +0.5 is allowed
    ({"vfr": True}, [1] * 20, {"audio_status": "ok", "audio_duration_s": 10.0}, "variable_frame_rate"),
    ({"truncated": True}, [1] * 20, {"audio_status": "truncated", "audio_duration_s": 6.0},
     "audio_truncated,duration_mismatch,truncated"),
], ids=["low-face", "thresholds-inclusive", "silent", "mismatch", "mismatch-edge", "vfr",
        "truncated"])
def test_flags(kwargs, face, meta, flags):
    rec = qa.record("v", probe(**kwargs), landmarks(TIMES, face), egemaps(F0), meta)
    assert rec["flags"] == flags


def test_long_face_gap_alone():
    # 40 frames at 2 fps (0 .. 19.5 s); frames 4..14 missing: from t 2.0 to the next face at 7.5
    times = np.arange(40) * 0.5
    face = [1] * 4 + [0] * 11 + [1] * 25
    rec = qa.record("v", probe(duration_s=20.0), landmarks(times, face), egemaps(F0),
                    {"audio_status": "ok", "audio_duration_s": 20.0})
    assert rec["longest_gap_s"] == 7.5 - 2.0
    assert rec["face_found_rate"] == 29 / 40  # 0.725: not low
    assert rec["flags"] == "long_face_gap"


def test_no_audio_stream():
    rec = qa.record("v", probe(audio=False), landmarks(TIMES, FACE), egemaps([]),
                    {"audio_status": "no_audio_stream", "audio_duration_s": 0.0})
    assert rec["audio_present"] is False
    assert rec["audio_status"] == "no_audio_stream"
    assert rec["voiced_fraction"] == 0.0
    assert rec["duration_mismatch_s"] is None  # no audio: nothing to compare
    assert rec["flags"] == "audio_no_audio_stream"


def test_missing_audio_status_means_no_audio_stream():
    rec = qa.record("v", probe(audio=False), landmarks(TIMES, FACE), egemaps([]), {})
    assert rec["audio_status"] == "no_audio_stream"
    assert rec["audio_duration_s"] == 0.0
    assert rec["flags"] == "audio_no_audio_stream"


def test_no_frames():
    rec = qa.record("v", {"video": None, "audio": None}, landmarks([], []), egemaps([]), {})
    assert rec["n_frames"] == 0
    assert rec["video_duration_s"] == 0.0
    assert rec["face_found_rate"] == 0.0
    assert rec["longest_gap_s"] == 0.0
    assert rec["flags"] == "no_frames,low_face_rate,audio_no_audio_stream"


def lm_meta(promise, w, h) -> dict:
    """Landmarks metadata as facevox.extract.landmarks.run records the detection scale."""
    return {"multi_face_rate": 0.0, "min_face_px_promised": promise, "frame_width": w, "frame_height": h}


OK_AUDIO = {"audio_status": "ok", "audio_duration_s": 10.0}


@pytest.mark.parametrize("face, meta, flags", [
    # 320x180 at the defaults (promise 81 px); 9/20 faces < 0.5
    ([1] * 9 + [0] * 11, lm_meta(81.0, 320, 180), "low_face_rate,long_face_gap,small_frame_missed_faces"),
    # portrait 288x512: the shorter side (288) is the width
    ([0] * 20, lm_meta(129.6, 288, 512), "no_face,low_face_rate,long_face_gap,small_frame_missed_faces"),
    # 640x360 is not small (shorter side 360, not below): a faceless video there is just no_face
    ([0] * 20, lm_meta(160.0, 640, 360), "no_face,low_face_rate,long_face_gap"),
    ([0] * 20, lm_meta(160.0, 1280, 720), "no_face,low_face_rate,long_face_gap"),
    # faces found on half the frames (not low): no hint even on a small frame
    ([1] * 10 + [0] * 10, lm_meta(81.0, 320, 180), ""),
    # an older table without the frame size and promise
    ([0] * 20, {"multi_face_rate": 0.0}, "no_face,low_face_rate,long_face_gap"),
], ids=["small-low", "portrait", "640x360-edge", "hd", "not-low", "no-promise"])
def test_small_frame_missed_faces(face, meta, flags):
    rec = qa.record("v", probe(), landmarks(TIMES, face), egemaps(F0), OK_AUDIO, landmarks_meta=meta)
    assert rec["flags"] == flags


def test_small_frame_hint_names_the_setting():
    meta = lm_meta(81.0, 320, 180)
    rec = qa.record("v", probe(), landmarks(TIMES, [0] * 20), egemaps(F0), OK_AUDIO, landmarks_meta=meta)
    (hint,) = qa.hints(rec, meta)
    # 81 / 180 = 45 %; half of 81 = 40.5 -> 40
    assert hint == ("v: a face on 0 % of the frames of this 320x180 video, and faces smaller than 81 px "
                    "(45 % of the frame's shorter side) are not looked for: set landmarks.min_face_px "
                    "below the faces' size (e.g. 40; each halving ~4x slower detection)")
    ok = qa.record("v", probe(), landmarks(TIMES, [1] * 20), egemaps(F0), OK_AUDIO, landmarks_meta=meta)
    assert qa.hints(ok, meta) == []


# --------------------------------------------------------------------------- run / collect
def test_run_writes_the_record(tmp_path):
    n = len(TIMES)
    lm = {"frame": np.arange(n, dtype=np.int32), "timestamp_s": TIMES, "success": FACE,
          "detected": np.ones(n, bool), "reason": np.where(FACE, "", "no_face"), "n_faces": FACE.astype(np.int16),
          "confidence": np.ones(n, np.float32)}
    lm.update({c: np.zeros(n, np.float32) for c in ["box_left", "box_top", "box_width", "box_height"]})
    lm.update({c: np.zeros(n, np.float32) for c in LANDMARK_COLUMNS})
    eg = egemaps(F0)
    eg.insert(0, "start_s", np.arange(len(F0)) * 0.01)
    eg.insert(1, "end_s", np.arange(len(F0)) * 0.01 + 0.02)
    write_table(pd.DataFrame(lm), tmp_path / "lm.parquet", LANDMARKS_SCHEMA, {"stage": "landmarks"})
    write_table(eg, tmp_path / "eg.parquet", EGEMAPS_SCHEMA,
                {"stage": "egemaps", "audio_status": "ok", "audio_duration_s": 10.2})
    write_json(probe(), tmp_path / "probe.json")

    rec = qa.run("vid1", tmp_path / "probe.json", tmp_path / "lm.parquet", tmp_path / "eg.parquet",
                 tmp_path / "qa" / "vid1.json")
    assert read_json(tmp_path / "qa" / "vid1.json") == rec
    assert (rec["face_found_rate"], rec["longest_gap_s"], rec["voiced_fraction"]) == (0.75, 2.5, 0.375)


def write_egemaps_and_probe(tmp_path) -> None:
    """eg.parquet (F0's eGeMAPS rows, 10 ms hop, audio ok) and probe.json in ``tmp_path``."""
    eg = egemaps(F0)
    eg.insert(0, "start_s", np.arange(len(F0)) * 0.01)
    eg.insert(1, "end_s", np.arange(len(F0)) * 0.01 + 0.02)
    write_table(eg, tmp_path / "eg.parquet", EGEMAPS_SCHEMA, {"stage": "egemaps", **OK_AUDIO})
    write_json(probe(), tmp_path / "probe.json")


def test_run_logs_the_small_frame_hint(tmp_path, caplog):
    n = len(TIMES)
    lm = {"frame": np.arange(n, dtype=np.int32), "timestamp_s": TIMES, "success": np.zeros(n, bool),
          "detected": np.ones(n, bool), "reason": np.full(n, "no_face"), "n_faces": np.zeros(n, np.int16),
          "confidence": np.full(n, np.nan, np.float32)}
    lm.update({c: np.full(n, np.nan, np.float32) for c in ["box_left", "box_top", "box_width", "box_height"]})
    lm.update({c: np.full(n, np.nan, np.float32) for c in LANDMARK_COLUMNS})
    write_table(pd.DataFrame(lm), tmp_path / "lm.parquet", LANDMARKS_SCHEMA,
                {"stage": "landmarks", **lm_meta(81.0, 320, 180)})
    write_egemaps_and_probe(tmp_path)
    with caplog.at_level("WARNING", logger="facevox.extract.qa"):
        rec = qa.run("small", tmp_path / "probe.json", tmp_path / "lm.parquet", tmp_path / "eg.parquet",
                     tmp_path / "small.json")
    assert rec["flags"] == "no_face,low_face_rate,long_face_gap,small_frame_missed_faces"
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("small: a face on 0 % of the frames of this 320x180 video")
    assert "set landmarks.min_face_px" in line


def test_collect_writes_sorted_tsv_in_contract_order(tmp_path):
    recs = {
        "c": qa.record("c", probe(), landmarks(TIMES, FACE), egemaps(F0),
                       {"audio_status": "ok", "audio_duration_s": 10.0}),
        "a": qa.record("a", probe(audio=False), landmarks(TIMES, FACE), egemaps([]), {}),
        "b": qa.record("b", probe(vfr=True), landmarks(TIMES, [1] * 20), egemaps(F0),
                       {"audio_status": "silent", "audio_duration_s": 9.0}),
    }
    paths = []
    for vid, rec in recs.items():  # written c, a, b
        write_json(rec, tmp_path / "qa" / f"{vid}.json")
        paths.append(tmp_path / "qa" / f"{vid}.json")

    out = tmp_path / "qa.tsv"
    df = qa.collect(paths, out)
    assert df["video_id"].tolist() == ["a", "b", "c"]

    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == QA_COLUMNS
    rows = [dict(zip(QA_COLUMNS, line.split("\t"))) for line in lines[1:]]
    assert [r["video_id"] for r in rows] == ["a", "b", "c"]
    assert rows[0] == {
        "video_id": "a", "n_frames": "20", "video_duration_s": "10.0", "face_found_rate": "0.75",
        "longest_gap_s": "2.5", "audio_present": "False", "audio_status": "no_audio_stream",
        "audio_duration_s": "0.0", "voiced_fraction": "0.0", "duration_mismatch_s": "NA",
        "au_backend": "NA", "target_mode": "NA", "target_why": "NA", "n_people": "NA",
        "target_present_rate": "NA", "other_present_rate": "NA", "target_match_distance": "NA",
        "same_face_as": "NA", "flags": "audio_no_audio_stream", "excluded_reason": "NA",
    }
    assert rows[1]["flags"] == "audio_silent,duration_mismatch,variable_frame_rate"
    assert rows[1]["duration_mismatch_s"] == "-1.0"
    assert rows[1]["face_found_rate"] == "1.0"
    assert rows[2]["flags"] == ""
    assert rows[2]["voiced_fraction"] == "0.375"
    # no temporary file is left beside the output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa", "qa.tsv"]


# --------------------------------------------------------------------------- the target person
def target_record(**over) -> dict:
    """A landmarks table's provenance ``target`` record (facevox.extract.landmarks) of a video
    where person 0 (120 frames of 200) was chosen over person 1 (110 frames): a close choice."""
    rec = {"mode": "dominant", "found": True, "person": 0,
           "why": "present in the most frames: 120 of 200 (person 1: 110)", "n_people": 2,
           "present_rate": 0.6, "other_present_rate": 0.55, "match_distance": 0.31234, "close_choice": True,
           "embedding": [0.1] * 128, "n_descriptors": 14,
           "people": [{"person": 0, "frames": 120, "rate": 0.6, "median_face_px": 180.0, "n_descriptors": 8},
                      {"person": 1, "frames": 110, "rate": 0.55, "median_face_px": 150.0, "n_descriptors": 6}],
           "reference": None}
    return rec | over


def test_target_columns_and_close_choice_flag():
    meta = {"multi_face_rate": 0.0, "target": target_record()}
    rec = qa.record("v", probe(), landmarks(TIMES, [1] * 20), egemaps(F0), OK_AUDIO, landmarks_meta=meta)
    assert list(rec) == QA_COLUMNS
    assert {k: rec[k] for k in ("target_mode", "target_why", "n_people", "target_present_rate",
                                "other_present_rate", "target_match_distance", "same_face_as")} == {
        "target_mode": "dominant", "target_why": "present in the most frames: 120 of 200 (person 1: 110)",
        "n_people": 2, "target_present_rate": 0.6, "other_present_rate": 0.55,
        "target_match_distance": 0.3123,  # rounded to 4 places
        "same_face_as": None}  # collect() fills it
    # other faces on 55 % of the frames >= MULTI_FACE_RATE: multiple_faces even at multi_face_rate 0
    assert rec["flags"] == "multiple_faces,target_choice_close"
    (line,) = qa.hints(rec, meta)
    assert line.startswith("v: a close choice of the target person (target.mode: dominant): person 0 on 120 "
                           "frames was chosen over person 1 on 110 frames;")
    assert "target.mode: reference" in line


@pytest.mark.parametrize("target, flags", [
    # one person, present throughout: nothing to say
    (target_record(n_people=1, other_present_rate=0.0, close_choice=False, people=[]), ""),
    # another face on 5 % of the frames (< MULTI_FACE_RATE), a clear choice
    (target_record(other_present_rate=0.05, close_choice=False), ""),
    (target_record(other_present_rate=0.1, close_choice=False), "multiple_faces"),  # 0.1: inclusive
    # reference mode: two people seen, neither matches the reference
    (target_record(mode="reference", found=False, person=None, present_rate=0.0, close_choice=False,
                   other_present_rate=0.0), "target_not_found"),
    # no face at all: no_face says it (not target_not_found)
    (target_record(found=False, person=None, n_people=0, present_rate=0.0, other_present_rate=0.0,
                   close_choice=False, people=[]), ""),
], ids=["one-person", "brief-other", "other-10pct", "reference-unmatched", "faceless"])
def test_target_flags(target, flags):
    rec = qa.record("v", probe(), landmarks(TIMES, [1] * 20), egemaps(F0), OK_AUDIO,
                    landmarks_meta={"multi_face_rate": 0.0, "target": target})
    assert rec["flags"] == flags


def test_multiple_faces_from_an_older_table():
    """A table without a target record: the columns are None; multi_face_rate still flags."""
    rec = qa.record("v", probe(), landmarks(TIMES, [1] * 20), egemaps(F0), OK_AUDIO,
                    landmarks_meta={"multi_face_rate": 0.25})
    assert rec["flags"] == "multiple_faces"
    assert rec["n_people"] is None and rec["target_mode"] is None and rec["target_match_distance"] is None


def test_run_reads_the_target_record_and_logs_the_close_choice(tmp_path, caplog):
    n = len(TIMES)
    lm = {"frame": np.arange(n, dtype=np.int32), "timestamp_s": TIMES, "success": FACE, "detected": np.ones(n, bool),
          "reason": np.where(FACE, "", "not_target"), "n_faces": np.full(n, 2, np.int16),
          "confidence": np.ones(n, np.float32)}
    lm.update({c: np.zeros(n, np.float32) for c in ["box_left", "box_top", "box_width", "box_height"]})
    lm.update({c: np.zeros(n, np.float32) for c in LANDMARK_COLUMNS})
    write_table(pd.DataFrame(lm), tmp_path / "lm.parquet", LANDMARKS_SCHEMA,
                {"stage": "landmarks", "multi_face_rate": 0.5, "target": target_record(present_rate=0.75)})
    write_egemaps_and_probe(tmp_path)
    with caplog.at_level("WARNING", logger="facevox.extract.qa"):
        rec = qa.run("two", tmp_path / "probe.json", tmp_path / "lm.parquet", tmp_path / "eg.parquet",
                     tmp_path / "two.json")
    assert (rec["face_found_rate"], rec["target_present_rate"], rec["n_people"]) == (0.75, 0.75, 2)
    assert rec["flags"] == "multiple_faces,target_choice_close"
    (line,) = [r.getMessage() for r in caplog.records]
    assert "person 0 on 120 frames was chosen over person 1 on 110 frames" in line


def test_collect_flags_the_videos_of_cross_split_pairs(tmp_path):
    """identity_overlap.tsv: a ~ c in different splits (a leak), a ~ b in one split, d's two
    faces under one subject: only a and c get the flag and each other's id."""
    paths = []
    for vid in "abcd":
        write_json(qa.record(vid, probe(), landmarks(TIMES, FACE), egemaps(F0), OK_AUDIO),
                   tmp_path / "qa" / f"{vid}.json")
        paths.append(tmp_path / "qa" / f"{vid}.json")
    write_json(qa.excluded_record("x", {"stage": "probe", "path": "x.mp4", "problem": "file is empty (0 bytes)"}),
               tmp_path / "qa" / "x.json")
    paths.append(tmp_path / "qa" / "x.json")
    overlap = tmp_path / "identity_overlap.tsv"
    overlap.write_text(
        "kind\tvideo_a\tsubject_a\tsplit_a\tvideo_b\tsubject_b\tsplit_b\tdistance\tcross_split\n"
        "same_face_different_subject\ta\ts1\ttrain\tc\ts3\ttest\t0.3\tTrue\n"
        "same_face_different_subject\ta\ts1\ttrain\tb\ts2\ttrain\t0.1\tFalse\n"
        "different_face_same_subject\td\ts4\tdev\tb\ts4\tdev\t0.9\tFalse\n")
    df = qa.collect(paths, tmp_path / "qa.tsv", identity_overlap=overlap).set_index("video_id")
    assert df.loc["a", "flags"] == "same_face_other_subject" and df.loc["a", "same_face_as"] == "c"
    assert df.loc["c", "flags"] == "same_face_other_subject" and df.loc["c", "same_face_as"] == "a"
    assert df.loc["b", "flags"] == "" and pd.isna(df.loc["b", "same_face_as"])
    assert df.loc["d", "flags"] == "" and df.loc["x", "flags"] == "excluded"
    rows = pd.read_csv(tmp_path / "qa.tsv", sep="\t", keep_default_na=False).set_index("video_id")
    assert rows.loc["a", "same_face_as"] == "c" and rows.loc["b", "same_face_as"] == "NA"


def test_collect_writes_people_counts_as_integers(tmp_path):
    meta = {"target": target_record()}
    write_json(qa.record("two", probe(), landmarks(TIMES, FACE), egemaps(F0), OK_AUDIO, landmarks_meta=meta),
               tmp_path / "two.json")
    write_json(qa.record("old", probe(), landmarks(TIMES, FACE), egemaps(F0), OK_AUDIO), tmp_path / "old.json")
    qa.collect([tmp_path / "two.json", tmp_path / "old.json"], tmp_path / "qa.tsv")
    rows = pd.read_csv(tmp_path / "qa.tsv", sep="\t", dtype=str, keep_default_na=False).set_index("video_id")
    assert rows.loc["two", ["n_people", "target_present_rate", "target_match_distance", "target_mode"]].tolist() == [
        "2", "0.6", "0.3123", "dominant"]
    assert rows.loc["old", ["n_people", "target_mode"]].tolist() == ["NA", "NA"]


# --------------------------------------------------------------------------- degenerate videos (issue 29)
@pytest.mark.parametrize("median, meta, flags", [
    (1.0, {}, "low_frame_rate"),                      # 1 fps
    (0.2, {}, ""),                                    # exactly 5 fps is not low
    (0.25, {}, "low_frame_rate"),                     # 4 fps
    (0.04, {"max_frame_change": 0.179}, "still_picture"),
    (0.04, {"max_frame_change": 2.8}, ""),            # frames repeated 8x, but the picture moves
    (0.04, {"damaged_frames": 1}, "damaged_frames"),
], ids=["1fps", "5fps", "4fps", "still", "moving", "damaged"])
def test_degenerate_video_flags(median, meta, flags):
    times = np.arange(60) * median  # 2.4 s or more: not a short video
    info = probe(duration_s=60 * median, median=median)
    info["video"]["avg_fps"] = 1 / median
    rec = qa.record("v", info, landmarks(times, [1] * 60), egemaps(F0),
                    {"audio_status": "ok", "audio_duration_s": 60 * median}, landmarks_meta=meta)
    assert rec["flags"] == flags


def test_one_frame_is_not_a_still_or_low_frame_rate():
    rec = qa.record("v", probe(duration_s=0.04, median=None), landmarks(np.array([0.0]), [1]), egemaps(F0),
                    {"audio_status": "ok", "audio_duration_s": 0.04}, landmarks_meta={"max_frame_change": None})
    assert rec["flags"] == "short_video"


@pytest.mark.parametrize("flags, reason, why", [
    ("no_face,low_face_rate", None, "no face in any frame"),
    ("no_frames,low_face_rate", None, "no decoded frame"),
    ("excluded", "file is empty (0 bytes) (stage probe)", "excluded: file is empty (0 bytes) (stage probe)"),
    ("low_face_rate,short_video", None, None),
])
def test_unusable_reason(tmp_path, flags, reason, why):
    rec = {"video_id": "v", "flags": flags, "excluded_reason": reason}
    assert qa.unusable_reason(rec) == why
    write_json(rec, tmp_path / "v.json")
    assert qa.unusable_videos({"v": tmp_path / "v.json", "w": tmp_path / "missing.json"}) == ({"v": why} if why else {})
