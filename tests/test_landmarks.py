"""Stage landmarks (facevox.extract.landmarks): dlib HOG + 68 points, detect-then-track."""
import numpy as np
import pytest

from facevox.extract import landmarks
from facevox.contract import LANDMARK_X, LANDMARK_Y, LANDMARKS_SCHEMA, points_from_columns
from facevox.io import read_table
from facevox.media import iter_gray_frames


@pytest.fixture(scope="module")
def wolfgang_table(wolfgang, tmp_path_factory):
    out = tmp_path_factory.mktemp("lm") / "wolfgang.parquet"
    landmarks.run(wolfgang, out)
    return read_table(out, LANDMARKS_SCHEMA)


def test_wolfgang_face_everywhere_and_plausible(wolfgang_table):
    df, meta = wolfgang_table
    assert len(df) == 472
    assert df["success"].mean() >= 0.95
    ok = df[df["success"]]
    pts = points_from_columns(ok)
    # Nose tip (point 30) inside the box handed to the predictor.
    x30, y30 = pts[:, 30, 0], pts[:, 30, 1]
    assert np.all((x30 > ok["box_left"]) & (x30 < ok["box_left"] + ok["box_width"]))
    assert np.all((y30 > ok["box_top"]) & (y30 < ok["box_top"] + ok["box_height"]))
    # Inter-ocular distance: plausible for a ~250 px face, stable frame to frame.
    iod = landmarks.inter_ocular(pts)
    assert 60 < np.median(iod) < 140
    change = np.abs(np.diff(iod)) / iod[:-1]
    assert np.median(change) < 0.02 and change.max() < 0.15
    # Anatomy: eyes above the nose tip, nose tip above the mouth, left eye left of right eye.
    assert np.all(pts[:, 36:42, 1].mean(1) < y30) and np.all(y30 < pts[:, 48:68, 1].mean(1))
    assert np.all(pts[:, 36:42, 0].mean(1) < pts[:, 42:48, 0].mean(1))
    # Container timestamps: 1001/24000 s apart, starting at 0.
    assert df["timestamp_s"].iloc[0] == 0.0
    assert np.allclose(np.diff(df["timestamp_s"]), 1001 / 24000)
    assert meta["stage"] == "landmarks" and meta["params"]["redetect_every"] == 30
    # Most frames are tracked, not detected: that is where the speed is.
    assert df["detected"].mean() < 0.35


def test_tracking_matches_per_frame_full_resolution_detection(wolfgang):
    """Mean landmark distance to per-frame full-resolution detection <= 2.5 % of the IOD."""
    tracker = landmarks.FaceTracker()
    errors = []
    for frame in iter_gray_frames(wolfgang):
        if frame.index == 120:
            break
        face = tracker.step(frame.image)
        ref = landmarks.reference_points(tracker, frame.image)
        assert face is not None and ref is not None
        errors.append(np.linalg.norm(face.points - ref, axis=1).mean() / landmarks.inter_ocular(ref))
    assert np.mean(errors) <= 0.025


def test_canonical_box_follows_the_detector_convention(wolfgang):
    """From the detector's own landmarks, the canonical box lands near the detector's box."""
    tracker = landmarks.FaceTracker()
    gray = next(iter(iter_gray_frames(wolfgang))).image
    rects, scores, _ = tracker.detector.run(np.ascontiguousarray(gray), 0, 0.0)
    r = rects[int(np.argmax(scores))]
    pts = tracker.predict(gray, (r.left(), r.top(), r.right(), r.bottom()))
    l, t, rt, b = landmarks.canonical_box(pts)
    side = r.right() - r.left() + 1
    assert abs((l + rt) / 2 - (r.left() + r.right()) / 2) < 0.1 * side
    assert abs((t + b) / 2 - (r.top() + r.bottom()) / 2) < 0.1 * side
    assert abs((rt - l + 1) / side - 1) < 0.15
    # A landmark bounding box is tighter than the detector's (why the canonical box exists).
    assert pts[:, 0].max() - pts[:, 0].min() < 0.9 * side


def test_no_face_video_is_all_false_and_well_formed(feat_media, tmp_path):
    out = tmp_path / "nf.parquet"
    summary = landmarks.run(feat_media / "no_face.mp4", out)
    df, _ = read_table(out, LANDMARKS_SCHEMA)
    assert summary["face_found_rate"] == 0.0 and len(df) == 95
    assert not df["success"].any() and df["detected"].all()
    assert df[LANDMARK_X + LANDMARK_Y + ["confidence", "box_left"]].isna().all().all()
    assert df["frame"].tolist() == list(range(95))


def test_face_that_leaves_is_dropped_within_verify_every_frames(feat_media):
    """face_noface.mov: a face in frames 0..~71, none after; tracking must not carry it on."""
    df = landmarks.extract(feat_media / "face_noface.mov")
    ref = landmarks.extract(feat_media / "face_noface.mov", {"redetect_every": 1})
    last_ref = int(ref.index[ref["success"]].max())
    last = int(df.index[df["success"]].max())
    assert 60 < last_ref < 100
    assert last_ref - 1 <= last <= last_ref + 5  # verify_every = 5
    assert not df["success"].iloc[last + 1:].any()
    assert df["success"].iloc[:last_ref - 5].all()


def test_rotated_video_is_made_upright(rotated_video):
    df = landmarks.extract(rotated_video)
    assert df["success"].mean() >= 0.95
    pts = points_from_columns(df[df["success"]])
    assert pts[..., 0].max() < 640 and pts[..., 1].max() < 360  # displayed frame is 640x360
    assert np.all(pts[:, 36:42, 1].mean(1) < pts[:, 48:68, 1].mean(1))  # eyes above mouth


def test_redetect_every_frame(feat_media):
    df = landmarks.extract(feat_media / "single_face.mp4", {"redetect_every": 1})
    assert df["detected"].all() and df["success"].all()


def test_missing_model_message(monkeypatch):
    monkeypatch.setattr(landmarks.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(landmarks.FacevoxError, match="pip install face-recognition-models"):
        landmarks.model_dir()
