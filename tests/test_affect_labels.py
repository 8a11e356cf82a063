"""Affect labels (facevox.dataset.labels): reading and checking label CSVs, alignment to
the FAU window centres by interpolation, delay compensation and the demo labels."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facevox.contract import AU_COLUMNS, AU_SCHEMA
from facevox.dataset import labels as affect_labels
from facevox.dataset.labels import align_labels, read_labels
from facevox.errors import FacevoxError, InputError
from facevox.extract import fau_windows


def write(tmp_path, text, name="labels.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def windows_table(seconds=30, fps=50.0, hop=5):
    """FAU windows of a synthetic AU table: a window every 100 ms at 50 fps."""
    n = int(seconds * fps)
    frames = np.arange(n)
    rng = np.random.default_rng(7)
    aus = pd.DataFrame({
        "frame": frames.astype(np.int32),
        "timestamp_s": frames / fps,
        "success": frames % 200 > 20,  # some frames without a face
        "confidence": rng.uniform(0.5, 1.0, n).astype(np.float32),
    })
    for i, c in enumerate(AU_COLUMNS):
        aus[c] = (1 + np.sin(frames / (40 + 7 * i))).astype(np.float32)
    aus["AU45_r"] = np.float32(np.nan)  # an AU the backend did not estimate
    return fau_windows.windows(aus.reindex(columns=AU_SCHEMA.names), window=50, hop=hop)  # pose etc. NaN


def test_read_labels_with_comments_and_spaces(tmp_path):
    path = write(tmp_path, "# rated by 5 annotators\ntime_s, arousal, valence, liking\n"
                           "0.0, 0.1, -0.2, 1\n0.1, 0.15, -0.25, 1\n")
    labels = read_labels(path)
    assert list(labels.columns) == ["time_s", "arousal", "valence"]
    np.testing.assert_array_equal(labels.to_numpy(), [[0.0, 0.1, -0.2], [0.1, 0.15, -0.25]])
    assert list(read_labels(path, ["liking"]).columns) == ["time_s", "liking"]


@pytest.mark.parametrize("text, message", [
    ("time_s,arousal\n0,0.1\n", "missing label column(s) valence; found time_s, arousal"),
    ("t,arousal,valence\n0,0.1,0.2\n", "missing label column(s) time_s"),
    ("time_s,arousal,valence\n0,0.1,0.2\n0.2,0.1,0.2\n0.1,0.3,0.2\n",
     "time_s must increase strictly: data row 3 (0.1 s) follows 0.2 s"),
    ("time_s,arousal,valence\n0,0.1,0.2\n0,0.1,0.2\n", "time_s must increase strictly: data row 2"),
    ("time_s,arousal,valence\n0,0.1,0.2\n0.1,,0.2\n", "column 'arousal', data row 2 is empty"),
    ("time_s,arousal,valence\n0,0.1,nan\n0.1,0.1,NaN\n", "column 'valence', data row 1 is 'nan'"),
    ("time_s,arousal,valence\n0,0.1,0.2\n0.1,high,0.2\n", "column 'arousal', data row 2 is 'high'"),
    ("time_s,arousal,valence\n0,inf,0.2\n", "column 'arousal', data row 1 is 'inf'"),
    ("time_s,arousal,valence\n0,1,2\n1,2,3,4,5\n", "not a readable CSV"),
    ("time_s,arousal,valence\n", "header but no rows"),
    ("", "label file is empty"),
])
def test_bad_label_files_name_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        read_labels(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_missing_label_file(tmp_path):
    with pytest.raises(FacevoxError, match="label file not found"):
        read_labels(tmp_path / "nope.csv")


def test_alignment_interpolates_and_masks_outside():
    labels = pd.DataFrame({"time_s": [0.0, 1.0, 2.0], "arousal": [0.0, 1.0, 3.0], "valence": [2.0, 2.0, 0.0]})
    centres = [0.0, 0.25, 1.5, 2.0, 2.5, -0.5]
    out = align_labels(labels, centres, {"arousal": 0.0, "valence": 0.0})
    assert list(out.columns) == ["centre_s", "arousal", "valence"]
    np.testing.assert_allclose(out["arousal"], [0.0, 0.25, 2.0, 3.0, np.nan, np.nan])
    np.testing.assert_allclose(out["valence"], [2.0, 2.0, 1.0, 0.0, np.nan, np.nan])
    # arousal 0.5 s later: queries 0.5, 0.75, 2.0, 2.5, 3.0, 0.0
    shifted = align_labels(labels, centres, {"arousal": 0.5, "valence": 0.0})
    np.testing.assert_allclose(shifted["arousal"], [0.5, 0.75, 3.0, np.nan, np.nan, 0.0])


def test_delay_compensation_shifts_by_delay_over_hop_windows():
    table = windows_table(seconds=30)
    centres = table["centre_s"].to_numpy()
    assert len(centres) == 300 and np.diff(centres) == pytest.approx(0.1)  # hop 5 frames at 50 fps
    rng = np.random.default_rng(0)
    labels = pd.DataFrame({"time_s": centres, "arousal": rng.uniform(-1, 1, 300),
                           "valence": rng.uniform(-1, 1, 300)})
    out = align_labels(labels, centres)  # the paper's delays: 4.0 s and 2.8 s
    assert affect_labels.DEFAULT_DELAYS_S == {"arousal": 4.0, "valence": 2.8}
    for dim, shift in (("arousal", 40), ("valence", 28)):
        np.testing.assert_allclose(out[dim][:300 - shift], labels[dim][shift:], rtol=0, atol=1e-9)
        assert out[dim][300 - shift:].isna().all() and out[dim][:300 - shift].notna().all()


def test_every_dimension_needs_a_delay():
    labels = pd.DataFrame({"time_s": [0.0, 1.0], "arousal": [0.0, 1.0], "liking": [0.0, 1.0]})
    with pytest.raises(FacevoxError, match="no delay compensation given for label dimension\\(s\\) liking"):
        align_labels(labels, [0.5])
    out = align_labels(labels, [0.5], {"arousal": 0.0, "liking": 0.25})
    assert (out["arousal"][0], out["liking"][0]) == pytest.approx((0.5, 0.75))


def test_window_labels_reads_and_aligns(tmp_path):
    path = write(tmp_path, "time_s,arousal,valence\n0,0,1\n10,1,0\n")
    table = pd.DataFrame({"centre_s": [0.0, 5.0, 9.0]})
    out = affect_labels.window_labels(path, table, delays_s={"arousal": 1.0, "valence": 0.0})
    np.testing.assert_allclose(out[["arousal", "valence"]].to_numpy(), [[0.1, 1.0], [0.6, 0.5], [1.0, 0.1]])


def test_demo_labels_are_marked_deterministic_and_delayed(tmp_path):
    table = windows_table(seconds=30)
    first = affect_labels.write_demo_labels(table, tmp_path / "a.csv", "wolfgang")
    second = affect_labels.write_demo_labels(table, tmp_path / "b.csv", "wolfgang")
    other = affect_labels.write_demo_labels(table, tmp_path / "c.csv", "single_face")
    text = first.read_text()
    assert text.startswith("# DEMO affect labels, SYNTHETIC")
    assert text.splitlines()[2] == "time_s,arousal,valence"
    assert text == second.read_text() and text != other.read_text()
    labels = read_labels(first)
    assert len(labels) == 300 and labels[["arousal", "valence"]].abs().lt(1).all().all()
    assert labels["arousal"].std() > 0.1 and labels["valence"].std() > 0.1
    # Aligning with the same delays recovers the undelayed signal (to the CSV's 6 decimals).
    undelayed = affect_labels.demo_labels(table, "wolfgang", {"arousal": 0.0, "valence": 0.0})
    aligned = align_labels(labels, table["centre_s"])
    np.testing.assert_allclose(aligned["arousal"][:260], undelayed["arousal"][:260], atol=1e-5)
    np.testing.assert_allclose(aligned["valence"][:272], undelayed["valence"][:272], atol=1e-5)
    with pytest.raises(FacevoxError, match="no rows"):
        affect_labels.demo_labels(table.iloc[:0], "empty")


def test_label_file_prefers_the_sheet_then_the_folder():
    from facevox.dataset.labels import label_file

    assert label_file("v1", "/data/v1_labels.csv", "labels") == Path("/data/v1_labels.csv")
    assert label_file("v1", None, "labels") == Path("labels/v1.csv")
    with pytest.raises(FacevoxError, match="video v1: the FAU models need affect labels"):
        label_file("v1", "", "")


def test_demo_labels_of_an_excluded_video_say_so(tmp_path):
    """An excluded video (its FAU windows are an excluded record) gets a label file with the
    header and the reason, no rows: the run goes on; a reader gets the 'no rows' error."""
    path = affect_labels.write_demo_labels(None, tmp_path / "x.csv", "x", why="input excluded: file is empty")
    text = path.read_text()
    assert text.startswith(affect_labels.DEMO_HEADER) and "# no labels: input excluded: file is empty\n" in text
    assert text.endswith("time_s,arousal,valence\n")
    with pytest.raises(InputError, match="header but no rows"):
        read_labels(path)
