"""Tests for the importers (facevox.dataset.importers, import_dvlog, import_openface): D-Vlog's released
features and OpenFace CSVs as aligned tables.

The D-Vlog trees come from benchmarks/make_fake_dvlog.py (loaded by path); where a
test needs exact control it overwrites a video's arrays with hand-made ones.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from facevox.contract import ALIGNED_SCHEMA, EGEMAPS_COLUMNS, LANDMARK_COLUMNS, SAMPLE_COLUMNS
from facevox.dataset.import_dvlog import import_dvlog
from facevox.dataset.import_openface import import_openface_dir, safe_video_id
from facevox.dataset.importers import ImportProblems
from facevox.errors import InputError
from facevox.io import read_table, write_table
from facevox.samples import read_samples

ROOT = Path(__file__).resolve().parents[1]


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_fake_dvlog", ROOT / "benchmarks" / "make_fake_dvlog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fake = _load_generator()


@pytest.fixture
def tree(tmp_path) -> Path:
    """A fake D-Vlog tree of 10 ids (folds 7 train / 1 valid / 2 test), 8-20 rows each."""
    root = tmp_path / "dvlog"
    fake.make_fake_dvlog(root, n=10, seed=0, min_t=8, max_t=20)
    return root


def arrays(root: Path, vid: str) -> tuple[np.ndarray, np.ndarray]:
    return np.load(root / vid / f"{vid}_visual.npy"), np.load(root / vid / f"{vid}_acoustic.npy")


def save(root: Path, vid: str, visual=None, acoustic=None) -> None:
    if visual is not None:
        np.save(root / vid / f"{vid}_visual.npy", visual)
    if acoustic is not None:
        np.save(root / vid / f"{vid}_acoustic.npy", acoustic)


def read_labels(root: Path) -> list[dict]:
    with (root / "labels.csv").open() as fh:
        return list(csv.DictReader(fh))


def write_labels(root: Path, rows: list[list[str]], header=("index", "label", "duration", "gender", "fold")):
    (root / "labels.csv").write_text("\n".join(",".join(r) for r in [list(header), *rows]) + "\n")


# --------------------------------------------------------------------------- the generator
def test_generator_layout(tree):
    rows = read_labels(tree)
    assert list(rows[0]) == ["index", "label", "duration", "gender", "fold"]
    assert [r["index"] for r in rows] == [str(i) for i in range(10)]
    folds = [r["fold"] for r in rows]
    assert (folds.count("train"), folds.count("valid"), folds.count("test")) == (7, 1, 2)
    assert fake.fold_counts(961) == {"train": 647, "valid": 102, "test": 212}
    for r in rows:
        visual, acoustic = arrays(tree, r["index"])
        assert visual.shape[1] == 136 and acoustic.shape[1] == 25
        assert abs(len(visual) - len(acoustic)) <= 3 and 8 <= min(len(visual), len(acoustic)) <= 20
        face = visual[(visual != 0).any(axis=1)]
        assert face.size == 0 or (0 < face.min() and face[:, 0::2].max() < 1280 and face[:, 1::2].max() < 720)
    again = tree.parent / "again"
    fake.make_fake_dvlog(again, n=10, seed=0, min_t=8, max_t=20)
    assert (again / "labels.csv").read_text() == (tree / "labels.csv").read_text()
    assert np.array_equal(arrays(again, "3")[0], arrays(tree, "3")[0])


# --------------------------------------------------------------------------- D-Vlog
def test_dvlog_tables_match_the_contract_and_deinterleave_exactly(tree, tmp_path):
    out = tmp_path / "aligned"
    sheet = import_dvlog(tree, out, tmp_path / "samples.tsv")
    assert sheet["video_id"].tolist() == [str(i) for i in range(10)]
    for vid in sheet["video_id"]:
        visual, acoustic = arrays(tree, vid)
        n = min(len(visual), len(acoustic))
        df, meta = read_table(out / f"{vid}.parquet", ALIGNED_SCHEMA)
        assert len(df) == n and meta["stage"] == "import_dvlog" and meta["n_rows"] == n
        assert df["index"].tolist() == list(range(n))
        assert df["timestamp_s"].tolist() == [float(k) for k in range(n)]
        face = (visual[:n] != 0).any(axis=1)
        assert df["face_success"].tolist() == face.tolist()
        assert df["face_fraction"].tolist() == face.astype(float).tolist()
        assert df["audio_success"].all()
        for i in (0, 3, 67):
            np.testing.assert_array_equal(df.loc[face, f"x_{i}"].to_numpy(), visual[:n][face, 2 * i])
            np.testing.assert_array_equal(df.loc[face, f"y_{i}"].to_numpy(), visual[:n][face, 2 * i + 1])
        np.testing.assert_array_equal(df[EGEMAPS_COLUMNS].to_numpy(), acoustic[:n])


def test_dvlog_deinterleave_hand_made(tree, tmp_path):
    # visual[t, c] = 1000 t + c: x_i must be 1000 t + 2i, y_i 1000 t + 2i + 1
    visual = (1000 * np.arange(4)[:, None] + np.arange(136)[None, :]).astype(np.float32)
    acoustic = (np.arange(4)[:, None] + np.arange(25)[None, :] / 100).astype(np.float32)
    save(tree, "0", visual, acoustic)
    # not a face under either reading: auto refuses it (below), the setting reads it
    import_dvlog(tree, tmp_path / "aligned", tmp_path / "samples.tsv", params={"landmark_order": "interleaved"})
    df, _ = read_table(tmp_path / "aligned" / "0.parquet", ALIGNED_SCHEMA)
    assert df["x_3"].tolist() == [6.0, 1006.0, 2006.0, 3006.0]
    assert df["y_3"].tolist() == [7.0, 1007.0, 2007.0, 3007.0]
    assert df["x_67"].tolist() == [134.0, 1134.0, 2134.0, 3134.0]
    assert df["y_0"].tolist() == [1.0, 1001.0, 2001.0, 3001.0]
    assert list(df.columns[5:141]) == LANDMARK_COLUMNS
    assert df["mfcc1_sma3"].tolist() == pytest.approx([0.06, 1.06, 2.06, 3.06])


def test_dvlog_file_is_byte_identical_to_io_write_table(tree, tmp_path):
    # import_dvlog builds the Arrow table directly (speed); the file must be what
    # io.write_table would write from the same data, NaN landmarks as nulls included.
    visual, _ = arrays(tree, "0")
    visual[1] = 0.0
    save(tree, "0", visual)
    out = tmp_path / "aligned"
    import_dvlog(tree, out, tmp_path / "samples.tsv")
    df, meta = read_table(out / "0.parquet", ALIGNED_SCHEMA)
    write_table(df, tmp_path / "again.parquet", ALIGNED_SCHEMA, meta)
    assert (tmp_path / "again.parquet").read_bytes() == (out / "0.parquet").read_bytes()
    assert pq.read_table(out / "0.parquet").column("x_0").null_count == 1


def test_dvlog_length_mismatch_truncates_to_shorter_and_is_recorded(tree, tmp_path):
    rng = np.random.default_rng(5)
    save(tree, "1", rng.uniform(100, 600, (10, 136)).astype(np.float32), rng.normal(size=(13, 25)))
    save(tree, "2", rng.uniform(100, 600, (12, 136)).astype(np.float32), rng.normal(size=(11, 25)))
    save(tree, "3", rng.uniform(100, 600, (9, 136)).astype(np.float32), rng.normal(size=(9, 25)))
    out = tmp_path / "aligned"
    import_dvlog(tree, out, tmp_path / "samples.tsv", params={"landmark_order": "interleaved"})
    expected = {"1": (10, 10, 13, 0, 3), "2": (11, 12, 11, 1, 0), "3": (9, 9, 9, 0, 0)}
    for vid, (n, tv, ta, cut_v, cut_a) in expected.items():
        df, meta = read_table(out / f"{vid}.parquet", ALIGNED_SCHEMA)
        assert len(df) == n
        assert (meta["n_rows"], meta["visual_rows"], meta["acoustic_rows"]) == (n, tv, ta)
        assert (meta["truncated_visual_rows"], meta["truncated_acoustic_rows"]) == (cut_v, cut_a)
        assert meta["inputs"]["visual"]["name"] == f"{vid}_visual.npy"
        assert meta["inputs"]["acoustic"]["name"] == f"{vid}_acoustic.npy"
    _, acoustic = arrays(tree, "1")
    df, _ = read_table(out / "1.parquet", ALIGNED_SCHEMA)
    np.testing.assert_array_equal(df[EGEMAPS_COLUMNS].to_numpy(), acoustic[:10].astype(np.float32))


def test_dvlog_all_zero_rows_are_no_face(tree, tmp_path):
    visual = np.random.default_rng(2).uniform(100, 600, (8, 136)).astype(np.float32)
    visual[[2, 5]] = 0.0
    visual[6, :10] = 0.0  # some zeros only: still a face
    save(tree, "4", visual, np.ones((8, 25), np.float32))
    import_dvlog(tree, tmp_path / "aligned", tmp_path / "samples.tsv", params={"landmark_order": "interleaved"})
    df, meta = read_table(tmp_path / "aligned" / "4.parquet", ALIGNED_SCHEMA)
    assert df["face_success"].tolist() == [True, True, False, True, True, False, True, True]
    assert df["face_fraction"].tolist() == [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    lm = df[LANDMARK_COLUMNS].to_numpy()
    assert np.isnan(lm[[2, 5]]).all() and not np.isnan(lm[[0, 1, 3, 4, 6, 7]]).any()
    assert df.loc[6, "x_0"] == 0.0 and df.loc[6, "x_5"] == visual[6, 10]
    assert df["audio_success"].all() and meta["no_face_rows"] == 2


def test_dvlog_sample_sheet_maps_folds_and_reads_back(tree, tmp_path):
    sheet_path = tmp_path / "sheets" / "samples.tsv"
    out = tmp_path / "aligned"
    written = import_dvlog(tree, out, sheet_path)
    labels = read_labels(tree)
    mapping = {"train": "train", "valid": "dev", "test": "test"}
    assert list(written.columns) == SAMPLE_COLUMNS
    assert written["split"].tolist() == [mapping[r["fold"]] for r in labels]
    assert "dev" in set(written["split"])
    df = read_samples(sheet_path)  # checks every path is a file
    assert df.index.tolist() == [r["index"] for r in labels]
    assert df["path"].tolist() == [str((out / f"{r['index']}.parquet").resolve()) for r in labels]
    assert df["subject_id"].tolist() == df.index.tolist()
    assert df["split"].tolist() == written["split"].tolist()
    assert df["label"].tolist() == [r["label"] for r in labels]
    assert df["gender"].tolist() == [r["gender"] for r in labels]
    assert df["score"].isna().all() and df["openface_csv"].isna().all()
    # paths are written relative to the sheet's folder
    assert written["path"].tolist()[0] == "../aligned/0.parquet"


def test_dvlog_bad_rows_are_all_reported_together(tree, tmp_path):
    save(tree, "3", visual=np.zeros((10, 135), np.float32))  # wrong width
    (tree / "4" / "4_acoustic.npy").unlink()  # missing file
    (tree / "5" / "5_visual.npy").write_bytes(b"not an array")  # unreadable
    rows = [[r["index"], r["label"], r["duration"], r["gender"], r["fold"]] for r in read_labels(tree)]
    rows[0][1] = "sad"  # unknown label
    rows[1][4] = "validation"  # unknown fold
    rows[2][3] = "x"  # unknown gender
    rows[6][2] = "long"  # duration not a number
    rows[7][0] = "7 7"  # unsafe id
    rows[8][0] = "9"  # duplicate of the last row's index
    write_labels(tree, rows)
    out = tmp_path / "aligned"
    with pytest.raises(ImportProblems) as info:
        import_dvlog(tree, out, tmp_path / "samples.tsv")
    problems = info.value.problems
    assert problems[:4] == [
        "labels.csv line 2 (index '0'): label must be one of ['depression', 'normal'], got 'sad'",
        "labels.csv line 3 (index '1'): fold must be one of ['train', 'valid', 'test'], got 'validation'",
        "labels.csv line 4 (index '2'): gender must be one of ['m', 'f'] or empty, got 'x'",
        "labels.csv line 5 (index '3'): 3_visual.npy has shape (10, 135), expected (T, 136)",
    ]
    assert problems[4] == f"labels.csv line 6 (index '4'): file not found: {tree / '4' / '4_acoustic.npy'}"
    assert problems[5].startswith("labels.csv line 7 (index '5'): 5_visual.npy cannot be read as a .npy array")
    assert problems[6:] == [
        "labels.csv line 8 (index '6'): duration must be a number, got 'long'",
        "labels.csv line 9 (index '7 7'): index may only contain letters, digits, '.', '_' and '-' "
        "(and must start with a letter or digit)",
        "labels.csv line 11 (index '9'): duplicate index (first on line 10)",
    ]
    assert isinstance(info.value, InputError) and "9 problem(s) in the D-Vlog tree" in str(info.value)
    assert not out.exists() and not (tmp_path / "samples.tsv").exists()  # nothing written


def test_dvlog_missing_columns_and_missing_labels(tree, tmp_path):
    write_labels(tree, [["0", "normal", "f", "train"]], header=("index", "label", "gender", "split"))
    with pytest.raises(ImportProblems, match=r"missing column\(s\) \['duration', 'fold'\]"):
        import_dvlog(tree, tmp_path / "aligned", tmp_path / "samples.tsv")
    (tree / "labels.csv").unlink()
    with pytest.raises(InputError, match="labels.csv not found"):
        import_dvlog(tree, tmp_path / "aligned", tmp_path / "samples.tsv")


# --------------------------------------------------------------------------- OpenFace
@pytest.fixture
def openface_dir(tmp_path, feat_media) -> Path:
    folder = tmp_path / "openface"
    folder.mkdir()
    shutil.copyfile(feat_media / "OpenFace_Test.csv", folder / "OpenFace_Test.csv")
    return folder


def test_openface_native(openface_dir, tmp_path):
    # a second copy with frame 3 failed (OpenFace writes 0s there) and an unsafe file name
    raw = pd.read_csv(openface_dir / "OpenFace_Test.csv", skipinitialspace=True)
    raw.columns = [c.strip() for c in raw.columns]
    raw.loc[2, "success"] = 0
    raw.loc[2, LANDMARK_COLUMNS] = 0.0
    raw.to_csv(openface_dir / "take 2 (bad).csv", index=False)
    out = tmp_path / "aligned"
    sheet = import_openface_dir(openface_dir, out, tmp_path / "samples.tsv")
    assert sheet["video_id"].tolist() == ["OpenFace_Test", "take_2_bad_"]

    df, meta = read_table(out / "OpenFace_Test.parquet", ALIGNED_SCHEMA)
    assert len(df) == 100 and meta["stage"] == "import_openface" and meta["n_frames"] == 100
    assert df["index"].tolist() == list(range(100))
    assert df["timestamp_s"].tolist() == pytest.approx([k / 1000 for k in range(100)])
    assert df["face_success"].all() and (df["face_fraction"] == 1.0).all()
    row = df.iloc[0]
    assert (row["x_0"], row["y_0"], row["x_67"], row["y_67"]) == tuple(
        np.float32(v) for v in (277.276, 181.19, 329.36, 236.823))
    assert row["x_1"] == np.float32(278.163)
    assert df[EGEMAPS_COLUMNS].isna().all().all() and not df["audio_success"].any()
    assert "no audio" in meta["audio"]

    bad, meta = read_table(out / "take_2_bad_.parquet", ALIGNED_SCHEMA)
    assert bad["face_success"].tolist() == [True, True, False] + [True] * 97
    assert bad.loc[2, LANDMARK_COLUMNS].isna().all() and meta["no_face_frames"] == 1
    assert bad.loc[3, "x_0"] == df.loc[3, "x_0"]

    samples = read_samples(tmp_path / "samples.tsv")
    assert samples.loc["OpenFace_Test", "path"] == str((out / "OpenFace_Test.parquet").resolve())
    assert samples.loc["OpenFace_Test", "openface_csv"] == str((openface_dir / "OpenFace_Test.csv").resolve())
    for col in ("subject_id", "split", "label", "score", "gender"):
        assert samples[col].isna().all()


def test_openface_rate_hz_bins(openface_dir, tmp_path):
    out = tmp_path / "aligned"
    import_openface_dir(openface_dir, out, tmp_path / "samples.tsv", rate_hz=20)
    df, meta = read_table(out / "OpenFace_Test.parquet", ALIGNED_SCHEMA)
    raw = pd.read_csv(openface_dir / "OpenFace_Test.csv", skipinitialspace=True)
    # 0.000-0.049 s -> bin 0, 0.050-0.099 s -> bin 1 (bins of 1/20 s)
    assert df["index"].tolist() == [0, 1] and df["timestamp_s"].tolist() == [0.0, 0.05]
    assert df["x_0"].tolist() == pytest.approx([raw["x_0"][:50].mean(), raw["x_0"][50:].mean()], rel=1e-6)
    assert meta["params"] == {"rate_hz": 20}


def test_openface_problems_are_all_reported(openface_dir, tmp_path):
    shutil.copyfile(openface_dir / "OpenFace_Test.csv", openface_dir / "a b.csv")
    shutil.copyfile(openface_dir / "OpenFace_Test.csv", openface_dir / "a_b.csv")
    (openface_dir / "notes.csv").write_text("frame,timestamp\n1,0.0\n")
    raw = pd.read_csv(openface_dir / "OpenFace_Test.csv", skipinitialspace=True)
    pd.concat([raw, raw.iloc[:1]]).to_csv(openface_dir / "two_faces.csv", index=False)
    with pytest.raises(ImportProblems) as info:
        import_openface_dir(openface_dir, tmp_path / "aligned", tmp_path / "samples.tsv")
    assert info.value.problems == [
        "a_b.csv: video_id 'a_b' is also the id of a b.csv; rename one",
        "notes.csv: not an OpenFace 2.x CSV: missing column(s) success, x_0, x_1, x_2, x_3, x_4 and 131 more",
        "two_faces.csv: several rows per frame (several faces?): facevox reads the single-face output "
        "of OpenFace's FeatureExtraction",
    ]
    assert not (tmp_path / "aligned").exists()
    with pytest.raises(InputError, match="no \\*.csv file"):
        import_openface_dir(tmp_path, tmp_path / "aligned", tmp_path / "s.tsv")


def test_safe_video_id():
    assert safe_video_id("OpenFace_Test") == "OpenFace_Test"
    assert safe_video_id("take 2 (bad)") == "take_2_bad_"
    assert safe_video_id("_x") == "v_x"
    assert safe_video_id("été") == "v_t_"
    assert len(safe_video_id("a" * 300)) == 128


# --------------------------------------------------------------------------- D-Vlog landmark order
from facevox.dataset.import_dvlog import (  # noqa: E402
    detect_landmark_order,
    dvlog_samples,
    landmark_fit,
    points_from_visual,
    procrustes_residual,
    visual_from_points,
)
from facevox.extract.landmarks import mean_shape  # noqa: E402


def test_procrustes_residual_is_the_similarity_fit_residual():
    # against skimage's least-squares similarity (Umeyama), on a face and on noise
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(0)
    ref = mean_shape()
    face = 200 + 150 * ref @ np.array([[0.96, 0.28], [-0.28, 0.96]]) + rng.normal(0, 2, (68, 2))
    noise = rng.uniform(0, 500, (68, 2))
    for pts in (face, noise):
        tf = SimilarityTransform.from_estimate(ref, pts)
        assert tf
        spread = np.sqrt(((pts - pts.mean(0)) ** 2).sum())
        expected = np.sqrt(((tf(ref) - pts) ** 2).sum()) / spread
        assert procrustes_residual(pts[None], ref)[0] == pytest.approx(expected, rel=1e-9)
    # the mean shape moved, turned and scaled fits exactly; all-zero rows have no geometry
    moved = 40 + 3.0 * ref @ np.array([[0.0, 1.0], [-1.0, 0.0]])
    assert procrustes_residual(np.stack([moved, np.zeros((68, 2))]), ref)[0] == pytest.approx(0, abs=1e-6)
    assert np.isnan(procrustes_residual(np.zeros((1, 68, 2)), ref)[0])


def test_orders_are_inverse_and_detected():
    pts = np.arange(2 * 136, dtype=float).reshape(2, 68, 2)
    assert visual_from_points(pts, "interleaved")[0, :4].tolist() == [0, 1, 2, 3]
    assert visual_from_points(pts, "planar")[0, [0, 1, 68, 69]].tolist() == [0, 2, 1, 3]
    for order in ("interleaved", "planar"):
        np.testing.assert_array_equal(points_from_visual(visual_from_points(pts, order), order), pts)
    face = 300 + 200 * mean_shape()[None]
    for order, other in (("interleaved", "planar"), ("planar", "interleaved")):
        fit = landmark_fit(visual_from_points(face, order))
        assert fit[order] == pytest.approx(0, abs=1e-4) and fit[other] > 0.9 and fit["rows"] == 1
        assert detect_landmark_order(fit) == (order, None)
    assert detect_landmark_order({"interleaved": None, "planar": None, "rows": 0}) == (None, None)
    order, problem = detect_landmark_order({"interleaved": 0.3, "planar": 0.45, "rows": 7})
    assert order is None and problem.startswith(
        "cannot tell the landmark order: against dlib's mean shape the interleaved reading has a Procrustes "
        "residual of 0.300 and the planar one 0.450 (median of 7 rows")


def test_dvlog_planar_file_is_detected_and_read_right(tree, tmp_path):
    visual, _ = arrays(tree, "2")
    save(tree, "2", visual_from_points(points_from_visual(visual, "interleaved"), "planar"))
    import_dvlog(tree, tmp_path / "a", tmp_path / "a.tsv", summary_out=tmp_path / "a.json")
    df, meta = read_table(tmp_path / "a" / "2.parquet", ALIGNED_SCHEMA)
    face = (visual != 0).any(axis=1)[: len(df)]
    np.testing.assert_array_equal(df.loc[face, "x_5"].to_numpy(), visual[: len(df)][face, 10])
    np.testing.assert_array_equal(df.loc[face, "y_5"].to_numpy(), visual[: len(df)][face, 11])
    assert (meta["landmark_order"], meta["landmark_order_from"], meta["landmark_order_detected"]) == (
        "planar", "auto", "planar")
    assert meta["procrustes_residual"]["planar"] < 0.2 < 0.9 < meta["procrustes_residual"]["interleaved"]
    summary = json.loads((tmp_path / "a.json").read_text())
    assert summary["landmark_orders"] == {"interleaved": 9, "planar": 1}
    assert summary["warnings"][1] == "the files do not share one landmark order: {'interleaved': 9, 'planar': 1}"
    assert summary["per_video"]["2"]["landmark_order"] == "planar"


def test_dvlog_ambiguous_order_fails_clearly_and_the_setting_overrides(tree, tmp_path):
    save(tree, "5", np.random.default_rng(4).uniform(100, 600, (12, 136)).astype(np.float32))
    with pytest.raises(ImportProblems) as info:
        import_dvlog(tree, tmp_path / "a", tmp_path / "a.tsv")
    (problem,) = info.value.problems
    assert problem.startswith("labels.csv line 7 (index '5'): 5_visual.npy: cannot tell the landmark order")
    assert "set dvlog.landmark_order to interleaved or planar" in problem
    assert not (tmp_path / "a.tsv").exists()
    import_dvlog(tree, tmp_path / "b", tmp_path / "b.tsv", params={"landmark_order": "planar"},
                 summary_out=tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text())["warnings"][1] == (
        "9 file(s) read as planar (dvlog.landmark_order) although their geometry says otherwise: "
        "0, 1, 2, 3, 4, 6, 7, 8, 9")
    _, meta = read_table(tmp_path / "b" / "5.parquet", ALIGNED_SCHEMA)
    assert (meta["landmark_order"], meta["landmark_order_from"], meta["landmark_order_detected"]) == (
        "planar", "config", "ambiguous")
    _, meta = read_table(tmp_path / "b" / "0.parquet", ALIGNED_SCHEMA)  # geometry says interleaved: read planar
    assert (meta["landmark_order"], meta["landmark_order_detected"]) == ("planar", "interleaved")


def test_dvlog_zero_rows_as_values(tree, tmp_path):
    visual, acoustic = arrays(tree, "0")
    visual[[1, 3]] = 0.0
    save(tree, "0", visual)
    import_dvlog(tree, tmp_path / "a", tmp_path / "a.tsv", params={"zero_rows": "values"})
    df, meta = read_table(tmp_path / "a" / "0.parquet", ALIGNED_SCHEMA)
    assert df.loc[[1, 3], "face_success"].tolist() == [True, True]
    assert (df.loc[[1, 3], LANDMARK_COLUMNS].to_numpy() == 0).all()
    assert meta["zero_rows"] == "values" and meta["no_face_rows"] == 0
    assert meta["procrustes_residual"]["rows"] == len(df) - 2  # zeros carry no geometry


def test_dvlog_subjects_file(tree, tmp_path):
    subjects = tmp_path / "subjects.csv"
    subjects.write_text("subject_id,index\n" + "".join(f"UC{i % 3},{i}\n" for i in range(10)))
    sheet = import_dvlog(tree, tmp_path / "a", tmp_path / "a.tsv", params={"subjects": str(subjects)},
                         summary_out=tmp_path / "a.json")
    assert sheet["subject_id"].tolist() == [f"UC{i % 3}" for i in range(10)]
    assert dvlog_samples(tree, subjects)["subject_id"].tolist() == sheet["subject_id"].tolist()
    assert "WARNING" not in (tmp_path / "a.tsv").read_text().splitlines()[0]
    assert json.loads((tmp_path / "a.json").read_text())["warnings"] == []
    _, meta = read_table(tmp_path / "a" / "0.parquet", ALIGNED_SCHEMA)
    assert meta["subjects"] == "from subjects.csv"

    subjects.write_text("index,subject_id\n0,UC0\n0,UC1\n1,\n99,UC9\n" + "".join(f"{i},UC\n" for i in range(2, 8)))
    with pytest.raises(ImportProblems) as info:
        import_dvlog(tree, tmp_path / "b", tmp_path / "b.tsv", params={"subjects": str(subjects)})
    assert info.value.problems == [
        "subjects.csv line 3 (index '0'): duplicate index (first on line 2)",
        "subjects.csv line 4 (index '1'): subject_id is empty",
        "subjects.csv line 5 (index '99'): no such index in labels.csv",
        "subjects.csv: 2 labels.csv index(es) without a row: '8', '9'",
    ]
    assert not (tmp_path / "b").exists()
    subjects.write_text("index,channel\n0,UC0\n")
    with pytest.raises(ImportProblems, match=r"subjects.csv: missing column\(s\) \['subject_id'\]"):
        dvlog_samples(tree, subjects)
    with pytest.raises(InputError, match="subjects file not found"):
        import_dvlog(tree, tmp_path / "b", tmp_path / "b.tsv", params={"subjects": str(tmp_path / "none.csv")})


def test_dvlog_without_subjects_file_warns_everywhere(tree, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="facevox"):
        sheet = import_dvlog(tree, tmp_path / "a", tmp_path / "a.tsv", summary_out=tmp_path / "a.json")
    assert sheet["subject_id"].tolist() == sheet["video_id"].tolist()
    warning = ("no subjects file (dvlog.subjects): subject_id = video_id, so the split guard cannot protect "
               "against one YouTube channel's vlogs in two splits")
    assert [r.getMessage() for r in caplog.records] == [f"import_dvlog: {warning}"]
    assert (tmp_path / "a.tsv").read_text().splitlines()[0].endswith(f"subject_id = video_id. WARNING: {warning}")
    assert json.loads((tmp_path / "a.json").read_text())["warnings"] == [warning]
    _, meta = read_table(tmp_path / "a" / "3.parquet", ALIGNED_SCHEMA)
    assert meta["subjects"] == f"none: {warning}"


def test_use_aligned_refuses_a_table_outside_the_contract(tmp_path):
    """source: aligned with a table that is not an aligned table: a clear error naming the file and
    the missing columns (a FacevoxError, so the CLI prints it without a traceback), nothing written."""
    import subprocess
    import sys

    from facevox.dataset.importers import use_aligned
    from facevox.errors import ContractError, FacevoxError

    bad = tmp_path / "not_aligned.parquet"
    pd.DataFrame({"a": [1.0]}).to_parquet(bad)
    with pytest.raises(ContractError, match=r"not_aligned.parquet: table does not match the facevox contract "
                                            r"\(missing \['index', 'timestamp_s'"):
        use_aligned(bad, tmp_path / "out.parquet")
    assert issubclass(ContractError, FacevoxError) and issubclass(ContractError, ValueError)
    assert not (tmp_path / "out.parquet").exists()
    done = subprocess.run([sys.executable, "-m", "facevox", "use-aligned", str(bad), str(tmp_path / "out.parquet")],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "table does not match the facevox contract" in done.stderr
