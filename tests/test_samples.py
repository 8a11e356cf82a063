"""Tests for facevox.samples.read_samples: the sample sheet and its validation."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from facevox.contract import SAMPLE_COLUMNS
from facevox.errors import FacevoxError, InputError
from facevox.extract.probe import probe_samples
from facevox.samples import SampleSheetError, check_label_config, check_labels, nearest, read_samples

HEADER = SAMPLE_COLUMNS  # video_id path subject_id split label score gender


@pytest.fixture
def videos(tmp_path) -> Path:
    """Empty stand-in video files a.mp4, b.mp4, c.mp4 in tmp_path/videos."""
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (folder / name).touch()
    return folder


def write_sheet(path: Path, rows: list[list[str]], header=HEADER, sep="\t", comments=()) -> Path:
    lines = [f"# {c}" for c in comments] + [sep.join(header)] + [sep.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def good_rows() -> list[list[str]]:
    return [
        ["a", "videos/a.mp4", "s1", "train", "1", "12.5", "f"],
        ["b", "videos/b.mp4", "", "", "", "", ""],
    ]


def sheet_error(path: Path, **kwargs) -> SampleSheetError:
    with pytest.raises(SampleSheetError) as info:
        read_samples(path, **kwargs)
    return info.value


# --------------------------------------------------------------------------- good sheets
def test_good_tsv(tmp_path, videos):
    sheet = write_sheet(tmp_path / "samples.tsv", good_rows(), comments=["made by hand"])
    df = read_samples(sheet)

    assert df.index.name == "video_id"
    assert df.index.tolist() == ["a", "b"]
    assert list(df.columns) == SAMPLE_COLUMNS
    a, b = df.loc["a"], df.loc["b"]
    # relative paths are resolved against the sheet's own folder, and made absolute
    assert a["path"] == str((videos / "a.mp4").resolve())
    assert b["path"] == str((videos / "b.mp4").resolve())
    assert (a["subject_id"], a["split"], a["label"], a["score"], a["gender"]) == ("s1", "train", "1", "12.5", "f")
    # empty optional cells -> None
    for c in ["subject_id", "split", "label", "score", "gender"]:
        assert b[c] is None


def test_relative_paths_do_not_depend_on_the_working_directory(tmp_path, videos, monkeypatch):
    sheet = write_sheet(tmp_path / "samples.tsv", good_rows())
    monkeypatch.chdir(videos)  # "videos/a.mp4" does not exist from here
    assert read_samples(sheet).loc["a", "path"] == str((videos / "a.mp4").resolve())


def test_absolute_path_is_kept(tmp_path, videos):
    sheet = write_sheet(tmp_path / "samples.tsv", [["a", str(videos / "a.mp4")]], header=["video_id", "path"])
    assert read_samples(sheet).loc["a", "path"] == str((videos / "a.mp4").resolve())


def test_only_required_columns(tmp_path, videos):
    sheet = write_sheet(tmp_path / "samples.tsv", [["a", "videos/a.mp4"]], header=["video_id", "path"])
    df = read_samples(sheet)
    assert list(df.columns) == SAMPLE_COLUMNS
    assert df.loc["a", "split"] is None and df.loc["a", "score"] is None


def test_csv_by_extension(tmp_path, videos):
    sheet = write_sheet(tmp_path / "samples.csv", good_rows(), sep=",")
    df = read_samples(sheet)
    assert df.index.tolist() == ["a", "b"]
    assert df.loc["a", "split"] == "train"
    assert df.loc["a", "path"] == str((videos / "a.mp4").resolve())


def test_cells_are_stripped(tmp_path, videos):
    sheet = write_sheet(tmp_path / "samples.tsv", [[" a ", " videos/a.mp4", "", " dev "]],
                        header=["video_id", "path", "subject_id", "split"])
    df = read_samples(sheet)
    assert df.index.tolist() == ["a"]
    assert df.loc["a", "split"] == "dev"


def test_check_files_false_skips_the_existence_check(tmp_path):
    sheet = write_sheet(tmp_path / "samples.tsv", [["a", "gone.mp4"]], header=["video_id", "path"])
    df = read_samples(sheet, check_files=False)
    assert df.loc["a", "path"] == str((tmp_path / "gone.mp4").resolve())


def test_hash_inside_a_cell_is_not_a_comment(tmp_path, videos):
    (videos / "take#2.mp4").touch()
    sheet = write_sheet(tmp_path / "samples.tsv", [["a", "videos/take#2.mp4"]], header=["video_id", "path"])
    assert read_samples(sheet).loc["a", "path"] == str((videos / "take#2.mp4").resolve())


# --------------------------------------------------------------------------- bad rows
@pytest.mark.parametrize("row, problem", [
    (["a b", "videos/c.mp4"], "video_id may only contain"),
    (["../x", "videos/c.mp4"], "video_id may only contain"),
    (["c", "videos/c.mp4", "", "training"], "split must be one of ['train', 'dev', 'test'] or empty, got 'training'"),
    (["c", "videos/c.mp4", "", "", "", "high"], "score must be a number, got 'high'"),
    (["c", ""], "path is empty"),
], ids=["space-in-id", "dotdot-id", "bad-split", "bad-score", "empty-path"])
def test_bad_row_is_named_by_file_row_and_problem(tmp_path, videos, row, problem):
    row = row + [""] * (len(HEADER) - len(row))
    sheet = write_sheet(tmp_path / "samples.tsv", good_rows() + [row])
    err = sheet_error(sheet)
    assert len(err.problems) == 1
    # header is line 1, good rows are lines 2 and 3, so the bad one is line 4
    assert err.problems[0].startswith(f"samples.tsv line 4 (video_id {row[0]!r}): ")
    assert problem in err.problems[0]
    assert "samples.tsv" in str(err) and "line 4" in str(err) and problem in str(err)


def test_duplicate_video_id_names_the_first_row(tmp_path, videos):
    rows = good_rows() + [["c", "videos/c.mp4"] + [""] * 5, ["a", "videos/c.mp4"] + [""] * 5]
    err = sheet_error(write_sheet(tmp_path / "samples.tsv", rows))
    assert err.problems == ["samples.tsv line 5 (video_id 'a'): duplicate video_id (first on line 2)"]


def test_missing_video_file_names_the_path(tmp_path, videos):
    rows = good_rows() + [["c", "videos/missing.mp4"] + [""] * 5]
    err = sheet_error(write_sheet(tmp_path / "samples.tsv", rows))
    assert len(err.problems) == 1
    assert err.problems[0].startswith("samples.tsv line 4 (video_id 'c'): video file not found: ")
    assert str(tmp_path / "videos" / "missing.mp4") in err.problems[0]


def test_empty_video_id(tmp_path, videos):
    rows = good_rows() + [["", "videos/c.mp4"] + [""] * 5]
    err = sheet_error(write_sheet(tmp_path / "samples.tsv", rows))
    assert err.problems == ["samples.tsv line 4: video_id is empty"]


def test_missing_required_column(tmp_path, videos):
    sheet = write_sheet(tmp_path / "samples.tsv", [["a", "s1"]], header=["video_id", "subject_id"])
    err = sheet_error(sheet)
    assert len(err.problems) == 1
    assert "missing required column(s) ['path']" in err.problems[0]
    assert "samples.tsv" in str(err)


def test_sheet_without_rows(tmp_path):
    sheet = write_sheet(tmp_path / "samples.tsv", [])
    err = sheet_error(sheet)
    assert err.problems == ["samples.tsv: the sample sheet lists no videos"]


def test_all_problems_are_reported_together(tmp_path, videos):
    rows = [
        ["a", "videos/a.mp4", "", "", "", "", ""],  # line 2: fine
        ["a b", "videos/b.mp4", "", "", "", "", ""],  # line 3: unsafe id
        ["c", "videos/nope.mp4", "", "training", "", "high", ""],  # line 4: three problems
        ["a", "", "", "", "", "", ""],  # line 5: duplicate id and empty path
    ]
    err = sheet_error(write_sheet(tmp_path / "samples.tsv", rows))
    assert len(err.problems) == 6
    assert [p.split(":")[0] for p in err.problems] == [
        "samples.tsv line 3 (video_id 'a b')",
        "samples.tsv line 4 (video_id 'c')",
        "samples.tsv line 4 (video_id 'c')",
        "samples.tsv line 4 (video_id 'c')",
        "samples.tsv line 5 (video_id 'a')",
        "samples.tsv line 5 (video_id 'a')",
    ]
    assert str(err).count("\n") == 6  # a summary line, then one line per problem
    assert "6 problem(s)" in str(err)


def test_sample_sheet_error_is_an_input_error(tmp_path, videos):
    rows = good_rows() + [["c", ""] + [""] * 5]
    err = sheet_error(write_sheet(tmp_path / "samples.tsv", rows))
    assert isinstance(err, InputError)
    assert err.path == str(tmp_path / "samples.tsv")


def test_missing_sheet(tmp_path):
    with pytest.raises(InputError, match="sample sheet not found") as info:
        read_samples(tmp_path / "nope.tsv")
    assert not isinstance(info.value, SampleSheetError)
    assert info.value.path == str(tmp_path / "nope.tsv")


# --------------------------------------------------------------------------- labels (config `labels:`)
LABELS = ["depression", "normal"]


def test_label_outside_the_configured_set_names_row_value_and_nearest(tmp_path, videos):
    """What a new user typed: 'depressed' on a train row, 'Normal' on a test row."""
    rows = [["a", "videos/a.mp4", "s1", "train", "depression", "", ""],
            ["b", "videos/b.mp4", "s2", "train", "depressed", "", ""],
            ["c", "videos/c.mp4", "s3", "test", "Normal", "", ""]]
    sheet = write_sheet(tmp_path / "samples.tsv", rows)
    err = sheet_error(sheet, labels=LABELS)
    assert err.problems == [
        "samples.tsv line 3 (video_id 'b'): label 'depressed' is not one of the configured labels "
        "['depression', 'normal'] (config `labels:`); nearest valid: 'depression'",
        "samples.tsv line 4 (video_id 'c'): label 'Normal' is not one of the configured labels "
        "['depression', 'normal'] (config `labels:`); nearest valid: 'normal'",
    ]
    assert read_samples(sheet).loc["b", "label"] == "depressed"  # labels=None: not checked


def test_configured_labels_are_accepted_and_empty_labels_allowed(tmp_path, videos):
    rows = [["a", "videos/a.mp4", "s1", "train", "high", "", ""], ["b", "videos/b.mp4", "", "", "", "", ""]]
    df = read_samples(write_sheet(tmp_path / "samples.tsv", rows), labels=["high", "low"])
    assert df["label"].tolist() == ["high", None]
    assert df.attrs["line"] == {"a": 2, "b": 3}


def test_label_config_needs_the_positive_label_among_two_or_more():
    check_label_config(LABELS, "depression")
    with pytest.raises(FacevoxError) as info:
        check_label_config(LABELS, "depressed")
    assert str(info.value) == ("config models.positive_label 'depressed' is not one of labels "
                               "['depression', 'normal']; nearest: 'depression'")
    with pytest.raises(FacevoxError, match=r"two or more distinct, non-empty labels, got \['a', 'a'\]"):
        check_label_config(["a", "a"], "a")


def test_imported_sheet_labels_are_checked():
    df = pd.DataFrame({"video_id": ["0", "1"], "label": ["depression", "Depression"]}).set_index("video_id", drop=False)
    with pytest.raises(SampleSheetError) as info:
        check_labels(df, LABELS, "dvlog")
    assert info.value.problems == ["dvlog (video_id '1'): label 'Depression' is not one of the configured labels "
                                   "['depression', 'normal'] (config `labels:`); nearest valid: 'depression'"]


@pytest.mark.parametrize("score, problem", [
    ("high", "score must be a number, got 'high'"),
    ("nan", "score must be a finite number, got 'nan'"),
    ("inf", "score must be a finite number, got 'inf'"),
])
def test_score_must_be_a_finite_number(tmp_path, videos, score, problem):
    rows = good_rows() + [["c", "videos/c.mp4", "", "", "", score, ""]]
    assert sheet_error(write_sheet(tmp_path / "samples.tsv", rows)).problems == [
        f"samples.tsv line 4 (video_id 'c'): {problem}"]


def test_unknown_split_names_the_nearest(tmp_path, videos):
    rows = good_rows() + [["c", "videos/c.mp4", "", "Train", "", "", ""]]
    assert sheet_error(write_sheet(tmp_path / "samples.tsv", rows)).problems == [
        "samples.tsv line 4 (video_id 'c'): split must be one of ['train', 'dev', 'test'] or empty, "
        "got 'Train'; nearest valid: 'train'"]


def test_nearest():
    assert nearest("Normal", LABELS) == "normal"
    assert nearest("depressed", LABELS) == "depression"
    assert nearest("devel", ["train", "dev", "test"]) == "dev"


# --------------------------------------------------------------------------- --probe: open every file
@pytest.fixture
def probe_sheet(tmp_path, talking_video, video_only, speech_wav):
    """Two good videos (with and without audio) and four bad files."""
    from tests.conftest import require

    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(talking_video, folder / "talking.mp4")
    shutil.copy(video_only, folder / "silent.mp4")
    (folder / "text.mp4").write_text("This is a text file, not a video.\n" * 40)
    (folder / "empty.mp4").write_bytes(b"")
    faststart = tmp_path / "faststart.mp4"
    subprocess.run([require("ffmpeg"), "-v", "error", "-y", "-i", str(talking_video), "-c", "copy",
                    "-movflags", "+faststart", str(faststart)], check=True)
    data = faststart.read_bytes()
    (folder / "cut.mp4").write_bytes(data[: int(len(data) * 0.6)])
    shutil.copy(speech_wav, folder / "speech.wav")
    rows = [[vid, f"media/{name}"] for vid, name in [("talking", "talking.mp4"), ("silent", "silent.mp4"),
                                                       ("text", "text.mp4"), ("empty", "empty.mp4"),
                                                       ("cut", "cut.mp4"), ("speech", "speech.wav")]]
    return write_sheet(tmp_path / "samples.tsv", rows, header=["video_id", "path"])


def test_probe_lists_every_bad_file(probe_sheet):
    df = read_samples(probe_sheet)  # every file exists: the sheet itself is fine
    with pytest.raises(SampleSheetError) as info:
        probe_samples(df, probe_sheet)
    media = probe_sheet.parent / "media"
    problems = info.value.problems
    assert [p.split(": ")[0] for p in problems] == [
        "samples.tsv line 4 (video_id 'text')", "samples.tsv line 5 (video_id 'empty')",
        "samples.tsv line 6 (video_id 'cut')", "samples.tsv line 7 (video_id 'speech')"]
    assert problems[0].startswith(f"samples.tsv line 4 (video_id 'text'): {media / 'text.mp4'}: "
                                  "not a readable media file (")
    assert problems[1] == f"samples.tsv line 5 (video_id 'empty'): {media / 'empty.mp4'}: file is empty (0 bytes)"
    assert problems[2].startswith(f"samples.tsv line 6 (video_id 'cut'): {media / 'cut.mp4'}: cut off: holds ")
    assert problems[2].endswith(" of the 72 video frames its index lists")
    assert problems[3] == (f"samples.tsv line 7 (video_id 'speech'): {media / 'speech.wav'}: "
                           "has no video stream (audio only)")


def test_probe_says_which_videos_have_audio(probe_sheet):
    lines = probe_sheet.read_text().splitlines()[:3]
    probe_sheet.write_text("\n".join(lines) + "\n")
    assert probe_samples(read_samples(probe_sheet), probe_sheet) == {"with_audio": ["talking"],
                                                                     "without_audio": ["silent"]}


def test_check_samples_command(probe_sheet, tmp_path, capsys):
    from facevox.cli import main

    assert main(["check-samples", str(probe_sheet), "--probe"]) == 2
    err = capsys.readouterr().err
    assert "4 problem(s) in the sample sheet" in err and "cut off" in err
    lines = probe_sheet.read_text().splitlines()[:3]
    probe_sheet.write_text("\n".join(lines) + "\n")
    assert main(["check-samples", str(probe_sheet), "--probe"]) == 0
    assert capsys.readouterr().out == (f"{probe_sheet}: 2 videos, all files present, labels among "
                                       "['depression', 'normal']; every video opens "
                                       "(1 with audio, 1 without: silent)\n")
    probe_sheet.write_text("video_id\tpath\tlabel\n"
                           "talking\tmedia/talking.mp4\tNormal\n")
    assert main(["check-samples", str(probe_sheet)]) == 2
    assert "label 'Normal' is not one of the configured labels" in capsys.readouterr().err
    config = tmp_path / "config.yaml"
    config.write_text("labels: [Normal, Depressed]\nmodels: {positive_label: Depressed}\n")
    assert main(["check-samples", str(probe_sheet), "--config", str(config)]) == 0


def test_probe_of_aligned_tables(tmp_path):
    """source aligned: each path must be an aligned table (contract.ALIGNED_SCHEMA)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from facevox.contract import ALIGNED_SCHEMA

    pq.write_table(ALIGNED_SCHEMA.empty_table(), tmp_path / "good.parquet")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "other.parquet")
    (tmp_path / "text.parquet").write_text("not parquet")
    sheet = write_sheet(tmp_path / "samples.tsv", [["good", "good.parquet"], ["other", "other.parquet"],
                                                   ["text", "text.parquet"]], header=["video_id", "path"])
    with pytest.raises(SampleSheetError) as info:
        probe_samples(read_samples(sheet), sheet, "aligned")
    other, text = info.value.problems
    assert other.startswith(f"samples.tsv line 3 (video_id 'other'): {tmp_path / 'other.parquet'}: table does not "
                            "match the facevox contract (missing ['index', 'timestamp_s'")
    assert text.startswith(f"samples.tsv line 4 (video_id 'text'): {tmp_path / 'text.parquet'}: "
                           "not a readable Parquet file (")


def test_probe_reads_the_openface_csv(tmp_path, video_only):
    shutil.copy(video_only, tmp_path / "v.mp4")
    (tmp_path / "of.csv").write_text("frame,timestamp\n1,0.0\n")
    sheet = write_sheet(tmp_path / "samples.tsv", [["v", "v.mp4", "of.csv"]],
                        header=["video_id", "path", "openface_csv"])
    with pytest.raises(SampleSheetError) as info:
        probe_samples(read_samples(sheet), sheet)
    [problem] = info.value.problems
    assert problem.startswith(f"samples.tsv line 2 (video_id 'v'): openface_csv {tmp_path / 'of.csv'}")


def test_subjects_of_a_video_without_subject_is_itself():
    from facevox.samples import subjects_of

    df = pd.DataFrame({"video_id": ["a", "b", "c", "d"], "subject_id": ["s1", "", None, float("nan")]},
                      index=["a", "b", "c", "d"])
    assert subjects_of(df).tolist() == ["s1", "b", "c", "d"]
    assert subjects_of(df).index.tolist() == ["a", "b", "c", "d"]
    bare = pd.DataFrame({"split": ["train", "test"]}, index=pd.Index(["v1", "v2"], name="video_id"))
    assert subjects_of(bare).tolist() == ["v1", "v2"]  # no subject_id column: each video is its own
