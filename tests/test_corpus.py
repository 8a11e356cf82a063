"""The bad-input corpus (tests/corpus/make_corpus.py) through the command line.

For every case the documented behaviour (``CASES[...].expect``): either
``facevox: error: <path>: <problem>`` and exit code 2 (never a traceback), or
well-formed outputs with the problem flagged in the QA record.  The stages run
in this process through ``facevox.cli.main`` (what ``python -m facevox`` calls;
one import of the libraries for all cases); the errors are also checked through
a real ``python -m facevox`` process, and a Snakemake run with ``--keep-going``
over good and bad videos completes the good one.  Privacy: no face image is
written without ``keep_face_images``, and stage logs print no feature values.

Heavy cases (4K) carry ``@pytest.mark.heavy``: ``make test-heavy``.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facevox.cli import main
from facevox.contract import (
    ALIGNED_FACES_SCHEMA,
    ALIGNED_SCHEMA,
    AU_COLUMNS,
    AU_SCHEMA,
    EGEMAPS_COLUMNS,
    EGEMAPS_SCHEMA,
    FAU_STAT_COLUMNS,
    FAU_WINDOWS_SCHEMA,
    LANDMARK_COLUMNS,
    LANDMARKS_SCHEMA,
    QA_COLUMNS,
    points_from_columns,
)
from facevox.dataset.slices import slice_video
from facevox.errors import ExcludedInput
from facevox.extract.action_units import resolve_backend
from facevox.extract.exclusion import exclusion_of
from facevox.extract.fau_windows import n_windows
from facevox.io import read_json, read_table
from tests.corpus.make_corpus import CASES, FACE_FRAMES, Builder, make_case

REPO = Path(__file__).resolve().parents[1]
#: Output files of `facevox extract`, by key: (file name suffix, contract schema).
OUTPUTS = {"probe": ("json", None), "egemaps": ("parquet", EGEMAPS_SCHEMA),
           "landmarks": ("parquet", LANDMARKS_SCHEMA), "aligned": ("parquet", ALIGNED_SCHEMA),
           "action_units": ("parquet", AU_SCHEMA), "fau_windows": ("parquet", FAU_WINDOWS_SCHEMA),
           "qa": ("json", None)}
#: Cases that must stop with an error, and the problem the message names.
ERRORS = {
    "empty": "file is empty (0 bytes)",
    "truncated_no_index": "not a readable media file (",
    "not_video": "not a readable media file (",
    "audio_only": "has no video stream (audio only)",
}
#: QA flags of every case that gives outputs (the flag vocabulary: facevox.extract.qa).
FLAGS = {
    "truncated": "audio_truncated,short_video,truncated",
    "no_audio": "audio_no_audio_stream",
    "no_face": "no_face,low_face_rate",
    "partial_face": "low_face_rate",
    "long_face_gap": "low_face_rate,long_face_gap",
    "two_faces": "multiple_faces",
    "vfr": "variable_frame_rate",
    "rotated": "",
    "portrait": "",
    "grayscale": "",
    "gray8_mkv": "",
    "odd_path": "",
    "very_short": "short_video",
    # degenerate videos (issue 29)
    "one_frame": "audio_no_audio_stream,short_video",
    "two_frames": "short_video",
    "tiny": "no_face,low_face_rate,small_frame_missed_faces",
    "wide_strip": "no_face,low_face_rate,small_frame_missed_faces",
    "tall_strip": "no_face,low_face_rate,small_frame_missed_faces",
    "thumbnail": "audio_no_audio_stream,short_video",
    "still": "low_frame_rate,still_picture",
    "black_speech": "low_face_rate,long_face_gap",
    "zero_audio": "audio_too_short,duration_mismatch",
    "silent_audio": "audio_silent",
    "fps1": "low_frame_rate",
    "fps240": "short_video",
    "ends_mid_frame": "damaged_frames",
}


def run_cli(*argv) -> tuple[int, str, str]:
    """``facevox ARGV`` in this process: (exit code, stdout, stderr).  An exception that
    escapes ``main`` - a traceback on the command line - fails the calling test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


class Extracted:
    """One `facevox extract` run: exit code, stderr and the output paths."""

    def __init__(self, name: str, video: Path, out: Path, rc: int, stderr: str):
        self.name, self.video, self.out, self.rc, self.stderr = name, video, out, rc, stderr
        self.paths = {k: out / f"{name}.{k}.{ext}" for k, (ext, _) in OUTPUTS.items()}

    def table(self, key: str):
        return read_table(self.paths[key], OUTPUTS[key][1])

    def json(self, key: str) -> dict:
        return read_json(self.paths[key])


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpus")


@pytest.fixture(scope="session")
def case(corpus):
    """case(name) -> the case's file, made on first use (shared sources made once)."""
    builder = Builder(corpus / ".sources")
    return lambda name: make_case(name, corpus, builder)


@pytest.fixture(scope="session")
def extract(case, tmp_path_factory):
    """extract(name, *options) -> Extracted; each (case, options) runs once per session."""
    done: dict[tuple, Extracted] = {}

    def run(name: str, *options: str) -> Extracted:
        if (name, options) not in done:
            video = case(name)
            out = tmp_path_factory.mktemp(f"x_{name}")
            rc, _, err = run_cli("extract", video, "--out", out, "--quiet", "--id", name, *options)
            done[name, options] = Extracted(name, video, out, rc, err)
        return done[name, options]

    return run


def flags(result: Extracted) -> str:
    return result.json("qa")["flags"]


def test_every_case_has_its_documented_behaviour_here():
    """Each corpus case is asserted below, as an error or by its flags, with what its
    ``expect`` text says (heavy cases: test_4k_frames)."""
    heavy = {name for name, c in CASES.items() if c.heavy}
    assert sorted(CASES) == sorted([*ERRORS, *FLAGS, *heavy]) and heavy == {"uhd_4k"}
    for name, problem in ERRORS.items():
        assert CASES[name].expect.startswith(f"error: '{problem}")
    for name, expected in FLAGS.items():
        assert CASES[name].expect.startswith("flagged" if expected else "ok")
        assert expected == "" or f"'{expected}'" in CASES[name].expect


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", ERRORS)
def test_unusable_file_is_one_clear_error(extract, name):
    r = extract(name)
    assert r.rc == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"facevox: error: {r.video}: {ERRORS[name]}")
    assert "Traceback" not in r.stderr
    assert not list(r.out.glob("*.parquet"))  # nothing half-made


@pytest.mark.parametrize("name", ERRORS)
def test_every_stage_that_reads_the_video_records_the_problem(case, tmp_path, name):
    """The per-stage commands the rules call write an excluded record with the problem and
    exit 0 (facevox.extract.exclusion: not retried); an audio-only file has a probe (its
    record says excluded) and eGeMAPS, and an excluded landmarks table."""
    video = case(name)
    readable = name == "audio_only"
    for command, out in [("probe", "p.json"), ("egemaps", "e.parquet"), ("landmarks", "l.parquet")]:
        rc, _, err = run_cli(command, video, tmp_path / out)
        assert rc == 0, command
        if readable and command != "landmarks":
            assert "excluded record" not in err, command
            continue
        assert err.startswith(f"facevox: excluded: {video}: {ERRORS[name]}") and err.count("\n") == 1
        assert exclusion_of(tmp_path / out)["problem"].startswith(ERRORS[name]), command
    if readable:
        probe = read_json(tmp_path / "p.json")
        assert probe["video"] is None and probe["excluded"]["problem"] == ERRORS[name]
        with pytest.raises(ExcludedInput, match=r"excluded by stage landmarks: has no video stream"):
            read_table(tmp_path / "l.parquet")


@pytest.mark.parametrize("name", ["not_video", "audio_only"])
def test_real_command_line_prints_one_line_and_exits_2(case, tmp_path, name):
    video = case(name)
    proc = subprocess.run([sys.executable, "-m", "facevox", "extract", str(video), "--out", str(tmp_path)],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"facevox: error: {video}: {ERRORS[name]}")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("name", FLAGS)
def test_outputs_are_well_formed_and_flagged(extract, name):
    """Every output exists and passes its contract; the tables agree with each other
    (one landmark/AU/aligned row per decoded frame, the FAU window count of the
    rule); the QA record has the contract's fields and the documented flags."""
    r = extract(name)
    assert r.rc == 0, r.stderr
    assert "Traceback" not in r.stderr
    probe = r.json("probe")
    lm, lm_meta = r.table("landmarks")
    aus, au_meta = r.table("action_units")
    aligned, _ = r.table("aligned")
    windows, _ = r.table("fau_windows")
    eg, eg_meta = r.table("egemaps")
    n = len(lm)
    assert 0 < n <= probe["video"]["n_frames"]
    assert lm["frame"].tolist() == list(range(n)) and np.all(np.diff(lm["timestamp_s"]) > 0)
    assert len(aus) == len(aligned) == n and aus["frame"].tolist() == lm["frame"].tolist()
    if au_meta["au_backend"] == "landmarks":  # mediapipe finds faces with its own detector
        assert aus["success"].tolist() == lm["success"].tolist()
    assert len(windows) == n_windows(n, 5)
    assert eg_meta["audio_status"] in ("ok", "no_audio_stream", "truncated", "silent", "too_short")
    assert au_meta["au_backend"] == resolve_backend("auto")  # mediapipe: no py-feat weights here
    rec = r.json("qa")
    assert list(rec) == sorted(QA_COLUMNS) and rec["video_id"] == name and rec["n_frames"] == n
    assert rec["face_found_rate"] == round(float(lm["success"].mean()), 4)
    assert rec["flags"] == FLAGS[name]
    # the log line of the last stage shows the same flags
    assert f"qa: flags [{FLAGS[name]}]" in r.stderr


# --------------------------------------------------------------------------- degenerate videos (issue 29)
@pytest.mark.parametrize("name, size", [("tiny", (16, 16)), ("wide_strip", (1280, 8)), ("tall_strip", (8, 720))])
def test_odd_frame_shapes_are_decoded_and_have_no_face(extract, name, size):
    r = extract(name)
    lm, meta = r.table("landmarks")
    assert (meta["frame_width"], meta["frame_height"]) == size and len(lm) == FACE_FRAMES
    assert not lm["success"].any() and lm[list(LANDMARK_COLUMNS)].isna().all().all()
    assert set(lm["reason"]) == {"no_face"}
    windows, _ = r.table("fau_windows")
    assert (windows["n_used"] == 0).all()


@pytest.mark.parametrize("name", ["one_frame", "thumbnail"])
def test_one_frame_gives_one_row_everywhere(extract, name):
    """A recording that stopped after one frame, and a JPEG saved as .mp4: one row in each
    per-frame table (the face found), one FAU window of that frame."""
    r = extract(name)
    lm, _ = r.table("landmarks")
    aus, _ = r.table("action_units")
    windows, _ = r.table("fau_windows")
    assert len(lm) == len(aus) == 1 and lm["success"].iloc[0] and lm["timestamp_s"].iloc[0] == 0.0
    assert len(windows) == 1 and windows["n_used"].iloc[0] == 1
    assert r.json("probe")["video"]["n_frames"] == 1


def test_still_image_saved_as_video(extract):
    r = extract("still")
    lm, meta = r.table("landmarks")
    assert len(lm) == 3 and lm["success"].all()
    assert lm["timestamp_s"].tolist() == pytest.approx([0.0, 1.0, 2.0])
    assert meta["max_frame_change"] < 0.5  # qa.STILL_CHANGE: the picture never changes
    assert extract("fps1").table("landmarks")[1]["max_frame_change"] > 5  # a moving face at 1 fps


def test_black_stretch_with_speech_keeps_the_speech(extract):
    """1 s face, 12 s black while the speech goes on, 1 s face (10 fps): the face on both
    ends only; the eGeMAPS rows of the black stretch are there, voiced where the speech is."""
    r = extract("black_speech")
    lm, _ = r.table("landmarks")
    t = lm["timestamp_s"].to_numpy()
    found = lm["success"].to_numpy()
    assert len(lm) == 140 and found[t < 0.95].all() and found[t > 13.05].all() and not found[(t > 1.5) & (t < 12.5)].any()
    eg, meta = r.table("egemaps")
    black = eg[(eg["start_s"] > 1.5) & (eg["start_s"] < 4.0)]
    assert meta["audio_status"] == "ok" and len(black) > 200 and (black["F0semitoneFrom27.5Hz_sma3nz"] > 0).mean() > 0.2
    assert r.json("qa")["longest_gap_s"] == pytest.approx(12.0, abs=0.2)


def test_audio_stream_without_samples_and_silent_audio(extract):
    eg, meta = extract("zero_audio").table("egemaps")
    assert len(eg) == 0 and meta["audio_status"] == "too_short"
    eg, meta = extract("silent_audio").table("egemaps")
    assert meta["audio_status"] == "silent" and (eg["F0semitoneFrom27.5Hz_sma3nz"] == 0).all()


def test_frame_rates_1_and_240(extract):
    lm, _ = extract("fps1").table("landmarks")
    assert len(lm) == 6 and np.diff(lm["timestamp_s"]) == pytest.approx(1.0)
    lm, _ = extract("fps240").table("landmarks")
    assert len(lm) == 240 and np.diff(lm["timestamp_s"]) == pytest.approx(1 / 240, abs=1e-4) and lm["success"].all()


def test_file_cut_off_mid_frame_counts_the_damaged_frame(extract):
    """MPEG-TS cut inside its last frames' bytes: the frames before the cut, the one the
    decoder could only partly decode counted as damaged (QA flag damaged_frames)."""
    r = extract("ends_mid_frame")
    lm, meta = r.table("landmarks")
    assert 60 <= len(lm) < FACE_FRAMES and meta["damaged_frames"] >= 1
    assert extract("no_audio").table("landmarks")[1]["damaged_frames"] == 0


def test_truncated_file_keeps_what_is_there(extract):
    r = extract("truncated")
    probe = r.json("probe")
    v = probe["video"]
    assert probe["truncated"] and v["n_frames_header"] == FACE_FRAMES
    assert 0 < v["n_frames"] < FACE_FRAMES  # cut at 60 % of the bytes
    assert v["duration_s"] == pytest.approx(v["n_frames"] / 30) and v["duration_header_s"] == pytest.approx(2.4)
    lm, _ = r.table("landmarks")
    assert v["n_frames"] - 1 <= len(lm) <= v["n_frames"] and lm["success"].all()
    eg, meta = r.table("egemaps")
    assert meta["audio_status"] == "truncated" and 0.5 < meta["audio_duration_s"] < 2.4 - 0.5
    assert len(eg) > 0


def test_no_audio_stream_gives_empty_audio_columns(extract):
    r = extract("no_audio")
    eg, meta = r.table("egemaps")
    assert len(eg) == 0 and meta["audio_status"] == "no_audio_stream"
    aligned, _ = r.table("aligned")
    assert len(aligned) == FACE_FRAMES and not aligned["audio_success"].any()
    assert aligned[EGEMAPS_COLUMNS].isna().all().all() and aligned["face_success"].all()
    windows, wmeta = r.table("fau_windows")  # no audio is not silence: turns NaN, the AUs there
    assert windows["turns"].isna().all() and wmeta["turns"]["audio_status"] == "no_audio_stream"
    assert windows["n_used"].gt(0).all()
    rec = r.json("qa")
    assert rec["audio_present"] is False and rec["duration_mismatch_s"] is None


def test_no_face_gives_nan_features_not_zeros(extract):
    r = extract("no_face")
    lm, _ = r.table("landmarks")
    assert not lm["success"].any() and lm[LANDMARK_COLUMNS].isna().all().all()
    aus, _ = r.table("action_units")
    assert not aus["success"].any() and aus[AU_COLUMNS + ["confidence"]].isna().all().all()
    windows, _ = r.table("fau_windows")
    assert (windows["n_used"] == 0).all() and windows[FAU_STAT_COLUMNS].isna().all().all()
    assert windows["turns"].notna().all() and windows["turns"].max() == 1  # the speech is still there
    aligned, _ = r.table("aligned")
    assert not aligned["face_success"].any() and aligned[LANDMARK_COLUMNS].isna().all().all()
    assert aligned["audio_success"].mean() > 0.9  # the speech is still there
    assert r.json("qa")["longest_gap_s"] == pytest.approx(2.5)


def test_face_in_part_of_the_video(extract):
    """36 frames with the face, 45 without: the face is dropped within verify_every (5) frames."""
    lm, _ = extract("partial_face").table("landmarks")
    success = lm["success"].to_numpy()
    assert len(lm) == 81 and success[:36].all() and not success[36 + 5:].any()
    windows, _ = extract("partial_face").table("fau_windows")
    assert windows["n_used"].iloc[0] > 0 and windows["n_used"].iloc[-1] == 0


def test_face_found_again_after_a_long_gap(extract):
    """10 fps: face 0-1 s, none 1-7 s, face 7-8 s."""
    r = extract("long_face_gap")
    lm, _ = r.table("landmarks")
    success = lm["success"].to_numpy()
    assert len(lm) == 80 and np.allclose(np.diff(lm["timestamp_s"]), 0.1, atol=1e-3)
    assert success[:10].all() and not success[15:70].any() and success[70:].all()
    assert 6.0 - 0.5 <= r.json("qa")["longest_gap_s"] <= 6.0


def test_two_faces_track_one_face_per_frame_and_are_flagged(extract):
    """The clip beside its mirror image (1280 px wide): every frame's 68 points lie on one
    of the two faces; which one may change at a re-detection (hence the flag)."""
    r = extract("two_faces")
    lm, meta = r.table("landmarks")
    assert lm["success"].all() and meta["multi_face_rate"] == 1.0
    x = points_from_columns(lm)[..., 0]
    assert np.all((x.max(axis=1) < 640) | (x.min(axis=1) >= 640))


def test_variable_frame_rate_keeps_the_real_timestamps(extract):
    """Frames 10-29 at half rate (every odd one dropped): 62 frames, intervals 1/30 and 1/15 s."""
    r = extract("vfr")
    probe = r.json("probe")["video"]
    assert probe["variable_frame_rate"] and probe["n_frames"] == 62
    lm, _ = r.table("landmarks")
    steps = np.diff(lm["timestamp_s"].to_numpy())
    assert np.allclose(steps[:10], 1 / 30, atol=1e-3) and np.allclose(steps[10:20], 2 / 30, atol=1e-3)
    assert lm["timestamp_s"].iloc[-1] == pytest.approx(71 / 30, abs=1e-3)
    aligned, _ = r.table("aligned")
    assert np.array_equal(aligned["timestamp_s"].to_numpy(), lm["timestamp_s"].to_numpy())


@pytest.mark.parametrize("name", ["rotated", "grayscale", "gray8_mkv", "odd_path"])
def test_same_landmarks_as_the_upright_colour_clip(extract, name):
    """The same frames stored sideways with rotation metadata, or without colour, give
    the landmarks of the upright colour clip (no_audio: the face clip's video, copied)."""
    ref, _ = extract("no_audio").table("landmarks")
    lm, _ = extract(name).table("landmarks")
    assert len(lm) == len(ref) == FACE_FRAMES and lm["success"].all()
    dist = np.linalg.norm(points_from_columns(lm) - points_from_columns(ref), axis=-1)
    assert np.median(dist) < 1.5  # px, with an inter-ocular distance of ~70 px (re-encoding)
    if name == "odd_path":  # a copy of the same file: identical
        assert dist.max() == 0.0


def test_rotation_metadata_and_portrait_frames(extract):
    rotated = extract("rotated").json("probe")["video"]
    assert rotated["rotation"] == 90 and (rotated["width"], rotated["height"]) == (640, 360)
    assert (rotated["coded_width"], rotated["coded_height"]) == (360, 640)
    r = extract("portrait")
    portrait = r.json("probe")["video"]
    assert (portrait["width"], portrait["height"]) == (288, 512) and portrait["rotation"] == 0
    lm, _ = r.table("landmarks")
    centre = points_from_columns(lm).mean(axis=1)
    assert lm["success"].all() and np.all((centre > 0) & (centre < (288, 512)))


def test_path_with_spaces_and_non_ascii_characters(extract):
    r = extract("odd_path")
    assert " " in str(r.video) and not str(r.video).isascii()
    assert r.json("probe")["path"] == str(r.video)
    _, meta = r.table("landmarks")
    assert meta["inputs"]["video"]["name"] == r.video.name


def test_very_short_video(extract):
    """12 frames (0.4 s): fewer than one 50-frame FAU window and one 300-row slice."""
    r = extract("very_short")
    windows, _ = r.table("fau_windows")
    assert windows["centre_frame"].tolist() == [0, 5, 10]
    assert (windows["first_frame"] == 0).all() and (windows["last_frame"] == 11).all()
    assert (windows["n_used"] == 12).all()
    aligned, _ = r.table("aligned")
    _, n_real, _, starts = slice_video(aligned[LANDMARK_COLUMNS].to_numpy(), length=300)
    assert n_real.tolist() == [12] and starts.tolist() == [0]  # one slice, 288 rows padding
    eg, meta = r.table("egemaps")
    assert meta["audio_status"] == "ok" and 20 < len(eg) < 40


# --------------------------------------------------------------------------- heavy
@pytest.mark.heavy
def test_4k_frames(extract, tmp_path):
    """3840x2160 (the face clip x6): landmarks in full-resolution pixels, crops as usual."""
    config = tmp_path / "keep.yaml"
    config.write_text("faces: {keep_face_images: true, stride: 5}\n")
    r = extract("uhd_4k", "--config", str(config))
    assert r.rc == 0, r.stderr
    assert (r.json("probe")["video"]["width"], r.json("probe")["video"]["height"]) == (3840, 2160)
    lm, _ = r.table("landmarks")
    ref, _ = extract("no_audio").table("landmarks")
    assert len(lm) == 15 and lm["success"].all()
    dist = np.linalg.norm(points_from_columns(lm) - 6 * points_from_columns(ref)[:15], axis=-1)
    assert np.median(dist) < 6 * 1.5
    faces, _ = read_table(r.out / "uhd_4k.faces.parquet", ALIGNED_FACES_SCHEMA)
    assert len(faces) == 3 and faces["success"].all()
    assert r.json("qa")["flags"] == "short_video"


# --------------------------------------------------------------------------- privacy
def test_no_face_image_is_written_unless_asked_for(extract, tmp_path):
    """`facevox extract` with the default config writes no crop table and no JPEG bytes
    in any file; with keep_face_images: true it does (the same check sees them)."""
    default = extract("odd_path")
    assert sorted(p.name for p in default.out.iterdir()) == sorted(p.name for p in default.paths.values())
    assert not any(b"JFIF" in p.read_bytes() for p in default.out.iterdir())

    config = tmp_path / "keep.yaml"
    config.write_text("faces: {keep_face_images: true, stride: 12}\n")
    kept = extract("odd_path", "--config", str(config))
    faces = kept.out / "odd_path.faces.parquet"
    assert kept.rc == 0 and b"JFIF" in faces.read_bytes()
    df, _ = read_table(faces, ALIGNED_FACES_SCHEMA)
    assert len(df) == FACE_FRAMES // 12 and df["success"].all()


_BOX = ["confidence", "box_left", "box_top", "box_width", "box_height"]
#: Decimal numbers with at least 3 decimals: how a leaked value, array or table prints.
_NUMBER = re.compile(r"-?\d+\.\d{3,}")
#: Column names of the feature tables: a printed table or record would show them.
_FEATURE_NAME = re.compile(r"\b(?:[xy]_\d+|c[xy]_\d+|AU\d\d_r\w*)\b|" + "|".join(map(re.escape, EGEMAPS_COLUMNS)))


def test_stage_logs_print_no_feature_values(case, tmp_path, caplog, capfd):
    """Every per-video stage, as the rules call it, with debug logging: the log (logging
    records and everything on stdout/stderr) holds paths and summary numbers (counts,
    rates, fps, durations), but no feature value of the tables the stages wrote (at
    the precision a number is printed with, 3 decimals or more: how a value, an array
    or a table prints) and no column name of them."""
    video = case("odd_path")
    o = {k: tmp_path / f"v.{k}.{ext}" for k, (ext, _) in OUTPUTS.items()}
    caplog.set_level(logging.DEBUG)
    keep = '{"keep_face_images": true, "stride": 12}'
    for argv in [("probe", video, o["probe"]), ("egemaps", video, o["egemaps"]),
                 ("landmarks", video, o["landmarks"]), ("align", o["landmarks"], o["egemaps"], o["aligned"]),
                 ("action-units", video, o["landmarks"], o["action_units"]),
                 ("fau-windows", o["action_units"], o["fau_windows"]),
                 ("faces", video, o["landmarks"], tmp_path / "faces.parquet", "--params", keep),
                 ("qa-video", "v", o["probe"], o["landmarks"], o["egemaps"], o["qa"],
                  "--action-units", o["action_units"])]:
        assert main(["-v", *map(str, argv)]) == 0, argv
    captured = capfd.readouterr()
    log = "\n".join([caplog.text, captured.out, captured.err])
    assert "landmarks" in log and video.name in log  # the log is there, paths are fine

    feature_columns = {"egemaps": EGEMAPS_COLUMNS, "landmarks": LANDMARK_COLUMNS + _BOX,
                       "aligned": LANDMARK_COLUMNS + EGEMAPS_COLUMNS, "action_units": AU_COLUMNS + ["confidence"],
                       "fau_windows": FAU_STAT_COLUMNS}
    values = np.concatenate([read_table(o[k])[0][cols].to_numpy(np.float64).ravel()
                             for k, cols in feature_columns.items()])
    values = np.unique(values[np.isfinite(values)])
    leaked = []
    for token in _NUMBER.findall(log):
        x, decimals = float(token), len(token.split(".")[1])
        i = int(np.searchsorted(values, x))
        nearest = values[max(i - 1, 0): i + 1]  # the values either side of x
        if np.any(np.abs(nearest - x) <= 0.5 * 10.0 ** -decimals):
            leaked.append(token)
    assert not leaked, f"feature values in the log: {leaked}"
    assert not _FEATURE_NAME.search(log), _FEATURE_NAME.search(log)
    assert "JFIF" not in log


# --------------------------------------------------------------------------- Snakemake
def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(workdir / "config.yaml"), *args], capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_a_bad_video_is_excluded_and_the_good_one_completes(case, tmp_path):
    """A sheet with a good video (odd path) and a bad one: the good one's whole chain
    completes; every stage of the bad one writes an excluded record (no traceback, rc 0),
    and the QA table lists both (the bad one flagged `excluded`, with the reason)."""
    videos = {"good": case("odd_path"), "text": case("not_video")}
    rows = ["video_id\tpath"]
    for vid, src in videos.items():
        target = tmp_path / "videos" / vid / src.name
        target.parent.mkdir(parents=True)
        shutil.copyfile(src, target)
        rows.append(f"{vid}\t{target.relative_to(tmp_path)}")
    (tmp_path / "samples.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "config.yaml").write_text("samples: samples.tsv\n")

    proc = snakemake(tmp_path, "--cores", "2", "--keep-going")
    assert proc.returncode == 0, proc.stderr
    results = tmp_path / "results"
    for folder, ext in [("probe", "json"), ("egemaps", "parquet"), ("landmarks", "parquet"),
                        ("align", "parquet"), ("action_units", "parquet"), ("fau_windows", "parquet"),
                        ("qa", "json")]:
        assert (results / folder / f"good.{ext}").exists(), folder  # ... the good one completed
        assert exclusion_of(results / folder / f"good.{ext}") is None, folder
        assert exclusion_of(results / folder / f"text.{ext}") or folder == "qa", folder
    assert read_json(results / "qa/good.json")["flags"] == ""
    text_log = (results / "logs/probe/text.log").read_text()
    assert f"facevox: excluded: {tmp_path / 'videos/text/not_video.mp4'}: not a readable media file" in text_log
    qa = pd.read_csv(results / "qa.tsv", sep="\t", keep_default_na=False).set_index("video_id")
    assert qa.loc["text", "flags"] == "excluded"
    assert qa.loc["text", "excluded_reason"].endswith("the file is text, not media (stage probe)")
    last = "\n".join(proc.stderr.strip().splitlines()[-5:])  # the run's last lines say what was excluded
    assert "facevox: 1 input(s) EXCLUDED" in last and "text: not a readable media file" in last
    for log in results.glob("logs/**/*.log"):
        assert "Traceback" not in log.read_text(), log
