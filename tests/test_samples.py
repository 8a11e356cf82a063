"""Tests for facevox.samples.read_samples: the sample sheet and its validation."""
from __future__ import annotations

from pathlib import Path

import pytest

from facevox.contract import SAMPLE_COLUMNS
from facevox.errors import InputError
from facevox.samples import SampleSheetError, read_samples

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
