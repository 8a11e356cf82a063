"""Stage action_units (facevox.extract.action_units): OpenFace CSV, geometric AUs, py-feat plumbing, run()."""
import csv
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from facevox.contract import AU_COLUMNS, AU_SCHEMA, LANDMARK_X, LANDMARK_Y, LANDMARKS_SCHEMA, check_table
from facevox.errors import FacevoxError, InputError
from facevox.extract import action_units as au
from facevox.extract import landmarks, shape_model
from facevox.io import read_table

GEOMETRIC = ["AU01_r", "AU02_r", "AU04_r", "AU05_r", "AU12_r", "AU15_r", "AU25_r", "AU26_r", "AU45_r"]
#: py-feat's AU columns (feat.pretrained.AU_LANDMARK_MAP["Feat"]), written out: importing feat is slow.
PYFEAT_AUS = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU11", "AU12",
              "AU14", "AU15", "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU28", "AU43"]


def check_schema(df):
    check_table(pa.Table.from_pandas(df, schema=AU_SCHEMA, preserve_index=False), AU_SCHEMA, "test")


# -- openface ------------------------------------------------------------------

@pytest.fixture(scope="module")
def openface_csv(feat_media):
    return feat_media / "OpenFace_Test.csv"


def test_openface_csv_values_and_frames(openface_csv):
    with open(openface_csv, newline="") as f:
        rows = list(csv.reader(f))
    header = [c.strip() for c in rows[0]]
    first = dict(zip(header, (v.strip() for v in rows[1])))
    df = au.read_openface_csv(openface_csv)
    check_schema(df)
    assert len(df) == len(rows) - 1 == 100
    assert df.attrs["au_estimated"] == AU_COLUMNS
    # OpenFace's frames are 1-based, ours 0-based.
    assert df["frame"].tolist() == [int(r[0]) - 1 for r in rows[1:]] == list(range(100))
    row = df.iloc[0]
    assert row["timestamp_s"] == float(first["timestamp"])
    assert row["success"] and first["success"] == "1"
    assert row["confidence"] == np.float32(first["confidence"])
    for col in AU_COLUMNS:
        assert row[col] == np.float32(first[col]), col
    assert row["AU01_r"] == np.float32(0.6773)  # the value in the file, for the record


def test_openface_failed_frames_are_nan_and_missing_aus_not_estimated(tmp_path):
    path = tmp_path / "of.csv"
    path.write_text("frame, face_id, timestamp, confidence, success, AU01_r, AU12_r, AU45_r, AU12_c\n"
                    "1, 0, 0.00, 0.98, 1, 1.50, 2.25, 0.00, 1\n"
                    "2, 0, 0.04, 0.00, 0, 0.00, 0.00, 0.00, 0\n"
                    "3, 0, 0.08, 0.90, 1, 0.00, 3.00, 4.50, 1\n")
    df = au.read_openface_csv(path)
    check_schema(df)
    assert df.attrs["au_estimated"] == ["AU01_r", "AU12_r", "AU45_r"]
    assert df["frame"].tolist() == [0, 1, 2]
    assert df["success"].tolist() == [True, False, True]
    assert df["AU12_r"].iloc[[0, 2]].tolist() == [2.25, 3.0]
    assert df["AU45_r"].iloc[2] == 4.5 and df["AU01_r"].iloc[2] == 0.0  # a real zero stays
    assert df.iloc[1][["confidence", "AU01_r", "AU12_r", "AU45_r"]].isna().all()  # OpenFace's zeros
    assert df["AU06_r"].isna().all() and df["confidence"].iloc[0] == np.float32(0.98)


@pytest.mark.parametrize("content, problem", [
    (None, "not found"),
    ("frame, confidence, success, AU01_c\n1, 0.9, 1, 1\n", "timestamp, AU*_r"),
    ("frame, timestamp, confidence, success, AU01_r\n1, 0.0, 0.9, 1, high\n", "non-numeric values in column(s) AU01_r"),
    ("frame, timestamp, confidence, success, AU01_r\n1, 0.0, 0.9, 1, 1\n1, 0.0, 0.8, 1, 2\n", "several rows per frame"),
])
def test_openface_bad_files_name_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as exc:
        au.read_openface_csv(path)
    assert str(path) in str(exc.value) and problem in str(exc.value)


# -- geometric AUs on synthetic faces ------------------------------------------------

@pytest.fixture(scope="module")
def neutral():
    """dlib's mean face (68 points, ~190 px wide), placed at (100, 50)."""
    return shape_model.load(landmarks.predictor_path()).initial.reshape(68, 2).astype(np.float64) * 200 + (100, 50)


def iod(face):
    return np.linalg.norm((face[42] + face[45]) / 2 - (face[36] + face[39]) / 2)


def ear(face):
    d = lambda i, j: np.linalg.norm(face[i] - face[j])  # noqa: E731
    return ((d(37, 41) + d(38, 40)) / (2 * d(36, 39)) + (d(43, 47) + d(44, 46)) / (2 * d(42, 45))) / 2


def table(faces, success=None):
    """A landmark table (the columns geometric_aus reads) from [N, 68, 2] points."""
    faces = np.asarray(faces, np.float32)
    n = len(faces)
    df = pd.DataFrame({"frame": np.arange(n, dtype=np.int32), "timestamp_s": np.arange(n) / 25.0,
                       "success": np.ones(n, bool) if success is None else np.asarray(success)})
    coords = pd.DataFrame(np.concatenate([faces[:, :, 0], faces[:, :, 1]], axis=1), columns=LANDMARK_X + LANDMARK_Y)
    return pd.concat([df, coords], axis=1)


def mouth_opening(neutral, n=30):
    """Closed for 10 frames, then lower lip and chin drop by up to 0.3 IOD (corners half as far)."""
    drop = np.clip((np.arange(n) - 10) / 10, 0, 1) * 0.3 * iod(neutral)
    faces = np.repeat(neutral[None], n, axis=0)
    lower = [55, 56, 57, 58, 59, 65, 66, 67, *range(5, 12)]
    faces[:, lower, 1] += drop[:, None]
    faces[:, [48, 54, 60, 64], 1] += drop[:, None] / 2
    return faces, drop


def blink(neutral, n=20):
    """Lids meet on frames 9-10, half way on 8 and 11."""
    closure = np.zeros(n)
    closure[[8, 11]], closure[[9, 10]] = 0.5, 1.0
    faces = np.repeat(neutral[None], n, axis=0)
    for upper, lower in [(37, 41), (38, 40), (43, 47), (44, 46)]:
        gap = neutral[lower] - neutral[upper]
        faces[:, upper] += closure[:, None] * gap / 2
        faces[:, lower] -= closure[:, None] * gap / 2
    return faces, closure


def test_opening_mouth_raises_au25_and_au26_only(neutral):
    faces, drop = mouth_opening(neutral)
    df, estimated = au.geometric_aus(table(faces))
    check_schema(df)
    assert estimated == GEOMETRIC
    unit = drop / iod(neutral)  # the lower inner lip's drop in IOD units
    # AU25: inner lip gap grows by the drop; full scale 0.3 IOD -> intensity 5.
    assert np.allclose(df["AU25_r"], 5 * np.minimum(unit / 0.3, 1), atol=1e-3)
    # AU26: chin-to-nose distance grows by (nearly) the drop; full scale 0.4 IOD.
    chin_nose = np.linalg.norm(faces[:, 8] - faces[:, 33], axis=1) / iod(neutral)
    assert np.allclose(df["AU26_r"], 5 * (chin_nose - chin_nose[0]) / 0.4, atol=1e-3)
    assert df["AU26_r"].iloc[-1] == pytest.approx(3.75, abs=0.01)
    assert np.all(np.diff(df["AU25_r"]) >= -1e-6) and df["AU25_r"].iloc[:11].max() < 1e-3
    for col in ["AU01_r", "AU02_r", "AU04_r", "AU05_r", "AU12_r", "AU15_r", "AU45_r"]:
        assert np.abs(df[col]).max() < 1e-3, col
    assert df["confidence"].eq(1.0).all() and df["success"].all()
    for col in set(AU_COLUMNS) - set(GEOMETRIC):
        assert df[col].isna().all()


def test_blink_raises_au45_on_its_frames_only(neutral):
    faces, closure = blink(neutral)
    df, _ = au.geometric_aus(table(faces))
    expected = 5 * np.minimum(closure * ear(neutral) / 0.25, 1)  # EAR falls in proportion to the closure
    assert np.allclose(df["AU45_r"], expected, atol=1e-3)
    assert df["AU45_r"].iloc[[9, 10]].tolist() == [5.0, 5.0]
    assert df["AU45_r"].iloc[8] == pytest.approx(5 * 0.5 * ear(neutral) / 0.25, abs=1e-3)
    assert df["AU45_r"].drop(index=[8, 9, 10, 11]).max() < 1e-3
    # The brows are measured from the eye corners, which a blink does not move.
    for col in ["AU01_r", "AU02_r", "AU04_r", "AU05_r", "AU25_r"]:
        assert np.abs(df[col]).max() < 1e-3, col


def test_rotation_and_scale_leave_the_values_unchanged(neutral):
    mouth, _ = mouth_opening(neutral)
    eyes, _ = blink(neutral, n=30)
    faces = mouth.copy()
    faces[:, 36:48] = eyes[:, 36:48]
    faces += np.random.default_rng(0).normal(0, 0.7, faces.shape)  # landmark jitter
    a = np.radians(20)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    moved = 1.5 * faces @ rot.T + (40, -25)
    ref, _ = au.geometric_aus(table(faces))
    out, _ = au.geometric_aus(table(moved))
    assert np.allclose(out[GEOMETRIC], ref[GEOMETRIC], atol=2e-3)
    assert ref["AU25_r"].iloc[-1] > 4 and ref["AU45_r"].iloc[9] > 4  # there is something to compare


def test_frames_without_face_are_nan_and_leave_the_baseline_alone(neutral):
    faces, _ = mouth_opening(neutral)
    success = np.ones(len(faces), bool)
    success[[3, 25]] = False
    faces[3] = np.nan  # as the landmark stage writes it
    faces[25] = faces[0]  # stale points under success False: ignored too
    df, _ = au.geometric_aus(table(faces, success))
    ref, _ = au.geometric_aus(table(mouth_opening(neutral)[0]))
    assert df["success"].tolist() == success.tolist()
    assert df.loc[~success, ["confidence", *AU_COLUMNS]].isna().all().all()
    assert np.allclose(df.loc[success, GEOMETRIC], ref.loc[success, GEOMETRIC], atol=1e-3)
    none, _ = au.geometric_aus(table(faces, np.zeros(len(faces), bool)))
    assert none[["confidence", *AU_COLUMNS]].isna().all().all() and not none["success"].any()


# -- py-feat -------------------------------------------------------------------

def test_pyfeat_output_moves_to_the_avec_columns():
    values = np.arange(3 * 20, dtype=np.float64).reshape(3, 20) / 100
    feat_out = pd.DataFrame(values, columns=PYFEAT_AUS).assign(FaceScore=0.99)
    frames = pd.DataFrame({"frame": [0, 1, 2], "timestamp_s": [0.0, 0.04, 0.08], "success": [True, False, True]})
    df, estimated = au.from_pyfeat(feat_out, frames)
    check_schema(df)
    assert estimated == [c for c in AU_COLUMNS if c != "AU45_r"] and len(estimated) == 16
    for col in estimated:
        assert df[col].iloc[[0, 2]].tolist() == feat_out[col[:-2]].iloc[[0, 2]].astype(np.float32).tolist()
    assert df["AU45_r"].isna().all()  # py-feat has no blink AU
    assert df.iloc[1][["confidence", *AU_COLUMNS]].isna().all()
    assert df["confidence"].iloc[[0, 2]].tolist() == [1.0, 1.0]
    dropped = feat_out[["AU11", "AU24", "AU28", "AU43"]].to_numpy(np.float32)
    assert not np.isin(dropped, df[AU_COLUMNS].to_numpy()).any()


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """No py-feat weights anywhere, whatever this machine has cached."""
    monkeypatch.setattr(au, "pyfeat_cache_dirs", lambda: [tmp_path / "cache"])
    return tmp_path / "cache"


def test_pyfeat_without_weights_fails_fast_with_the_fix(empty_cache, tmp_path):
    start = time.perf_counter()
    with pytest.raises(FacevoxError) as exc:
        au.run("video.mp4", tmp_path / "lm.parquet", tmp_path / "au.parquet", {"backend": "pyfeat"})
    assert time.perf_counter() - start < 2.0
    msg = str(exc.value)
    assert "py-feat/xgb_au" in msg and "xgb_au_classifier_v2.skops" in msg and "facevox fetch-models" in msg
    assert not (tmp_path / "au.parquet").exists()
    assert not au.pyfeat_weights_available() and au.resolve_backend("auto") == "landmarks"


def test_weights_are_found_in_the_hub_cache_layout(empty_cache):
    repo = empty_cache / "models--py-feat--xgb_au"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    weights = repo / "snapshots" / "0123abcd" / "xgb_au_classifier_v2.skops"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"model")
    assert au.pyfeat_weights_path() == weights
    assert au.resolve_backend("auto") == "pyfeat" and au.resolve_backend("landmarks") == "landmarks"


def test_fetch_models_offline_is_a_clear_error(empty_cache, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    with pytest.raises(FacevoxError, match="could not download py-feat/xgb_au/xgb_au_classifier_v2.skops"):
        au.fetch_models()
    assert time.perf_counter() - start < 2.0


# -- run() ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def single_face_landmarks(feat_media, tmp_path_factory):
    out = tmp_path_factory.mktemp("au") / "single_face_landmarks.parquet"
    landmarks.run(feat_media / "single_face.mp4", out)
    return out


def test_run_landmarks_backend(feat_media, single_face_landmarks, tmp_path, empty_cache):
    # The default backend, auto, is landmarks without py-feat's weights.
    out = tmp_path / "au.parquet"
    summary = au.run(feat_media / "single_face.mp4", single_face_landmarks, out)
    df, meta = read_table(out, AU_SCHEMA)
    lm, _ = read_table(single_face_landmarks, LANDMARKS_SCHEMA)
    assert summary == {"backend": "landmarks", "n_frames": 72, "face_rate": 1.0}
    assert meta["stage"] == "action_units" and meta["au_backend"] == "landmarks"
    assert meta["au_estimated"] == GEOMETRIC and meta["au_scale"] == au.AU_SCALE["landmarks"]
    assert meta["params"]["backend"] == "auto" and meta["params"]["baseline_quantile"] == 0.1
    assert meta["params"]["geometric_aus"]["AU45_r"] == {"direction": -1, "full_scale": 0.25, "baseline": "quantile"}
    assert df["frame"].tolist() == lm["frame"].tolist() and np.array_equal(df["timestamp_s"], lm["timestamp_s"])
    assert df["success"].all() and df["confidence"].eq(1.0).all()
    assert np.isfinite(df[GEOMETRIC]).all().all() and df[GEOMETRIC].min().min() >= 0 and df[GEOMETRIC].max().max() <= 5
    assert df[[c for c in AU_COLUMNS if c not in GEOMETRIC]].isna().all().all()
    # The man in this clip breaks into a broad, open-mouthed smile at ~0.6 s and holds it to ~2.3 s.
    assert df["AU12_r"].iloc[:15].max() < 1.5 and df["AU12_r"].iloc[30:66].min() > 4
    assert df["AU25_r"].iloc[:15].max() < 1 and df["AU25_r"].iloc[30:66].mean() > 3


def test_run_openface_backend(openface_csv, tmp_path):
    out = tmp_path / "au.parquet"
    summary = au.run("video.mp4", tmp_path / "unused.parquet", out, {"backend": "openface"}, openface_csv=openface_csv)
    df, meta = read_table(out, AU_SCHEMA)
    assert summary == {"backend": "openface", "n_frames": 100, "face_rate": 1.0}
    assert meta["au_backend"] == "openface" and meta["au_estimated"] == AU_COLUMNS
    assert meta["au_scale"] == "OpenFace 2.x intensity 0-5"
    assert meta["inputs"] == {"openface_csv": {"name": "OpenFace_Test.csv", "size_bytes": openface_csv.stat().st_size}}
    assert df["frame"].tolist() == list(range(100)) and df["AU01_r"].iloc[0] == np.float32(0.6773)


def test_openface_backend_needs_the_csv(tmp_path):
    with pytest.raises(FacevoxError, match="openface_csv column is empty"):
        au.run("interview.mp4", tmp_path / "lm.parquet", tmp_path / "au.parquet", {"backend": "openface"})
