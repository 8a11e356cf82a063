"""Stage landmarks (facevox.extract.landmarks): dlib HOG + 68 points, detect-then-track."""
import numpy as np
import pandas as pd
import pytest

from facevox.config import stage_params
from facevox.contract import F0_COLUMN, LANDMARK_X, LANDMARK_Y, LANDMARKS_SCHEMA, points_from_columns
from facevox.extract import landmarks, qa
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
    # 640x360 at the defaults: halved, as the fixed detect_scale 0.5 did (80 / 160)
    assert (meta["frame_width"], meta["frame_height"]) == (640, 360)
    assert meta["detect_scale_used"] == 0.5 and meta["min_face_px_promised"] == 160.0
    # Most frames are tracked, not detected: that is where the speed is.
    assert df["detected"].mean() < 0.35


@pytest.mark.parametrize("shape, params, scale, promise", [
    # defaults: promise min(160, 0.45 * shorter side); scale 80 / promise
    ((360, 640), {}, 0.5, 160.0),  # 0.45 * 360 = 162 > 160
    ((1080, 1920), {}, 0.5, 160.0),
    ((180, 320), {}, 80 / 81, 81.0),  # 0.45 * 180 = 81
    ((320, 180), {}, 80 / 81, 81.0),  # portrait: the shorter side is the width
    ((270, 480), {}, 80 / 121.5, 121.5),
    ((90, 160), {}, 80 / 40.5, 40.5),  # enlarged ~2x
    ((36, 64), {}, 4.0, 20.0),  # 0.45 * 36 = 16.2 -> 4.94x, capped at 4x: 80 / 4 = 20 px
    ((360, 640), {"min_face_px": 40}, 2.0, 40.0),
    ((360, 640), {"min_face_fraction": 0.25}, 80 / 90, 90.0),  # 0.25 * 360 = 90 < 160
    # explicit detect_scale overrides the rule; upsample halves the promise on top
    ((180, 320), {"detect_scale": 0.5}, 0.5, 160.0),
    ((180, 320), {"detect_scale": 0.5, "upsample": 1}, 0.5, 80.0),
    ((360, 640), {"upsample": 1}, 0.5, 80.0),
], ids=["640x360", "1920x1080", "320x180", "portrait", "480x270", "160x90", "64x36-cap",
        "min-face-40", "fraction", "override", "override-upsample", "upsample"])
def test_detection_scale(shape, params, scale, promise):
    ds = landmarks.detection_scale(shape, stage_params("landmarks", params))
    assert ds.scale == pytest.approx(scale)
    assert ds.min_face_px == pytest.approx(promise)
    assert ds.upsample == params.get("upsample", 0)
    assert ds.factor * ds.min_face_px == pytest.approx(landmarks.HOG_WINDOW_PX)


def test_320x180_copy_is_found_by_default(downscaled, tmp_path):
    """single_face.mp4 at 320x180 (an ~87-px face): the fixed detect_scale 0.5 shrank it to
    ~43 px, below the 80-px HOG window, and found it nowhere; the default rule keeps it."""
    video = downscaled("single_face.mp4", 320, 180)
    summary = landmarks.run(video, tmp_path / "small.parquet")
    df, meta = read_table(tmp_path / "small.parquet", LANDMARKS_SCHEMA)
    assert len(df) == 72 and df["success"].mean() >= 0.95
    assert summary["face_found_rate"] == df["success"].mean()
    assert (meta["frame_width"], meta["frame_height"]) == (320, 180)
    assert meta["min_face_px_promised"] == 81.0 and meta["detect_scale_used"] == round(80 / 81, 4)
    assert meta["params"]["detect_scale"] is None and meta["params"]["hog_window_px"] == 80
    assert landmarks.describe_promise(summary) == "320x180 searched at x0.9877: faces from 81 px"
    pts = points_from_columns(df[df["success"]])
    assert 70 < np.median(df.loc[df["success"], "box_width"]) < 110
    assert pts[..., 0].max() < 320 and pts[..., 1].max() < 180


def test_small_frame_miss_is_flagged_with_the_setting(downscaled, tmp_path):
    """The old fixed scale on the 320x180 copy: no face, and QA names the setting."""
    video = downscaled("single_face.mp4", 320, 180)
    landmarks.run(video, tmp_path / "old.parquet", {"detect_scale": 0.5})
    df, meta = read_table(tmp_path / "old.parquet", LANDMARKS_SCHEMA)
    assert not df["success"].any() and meta["min_face_px_promised"] == 160.0
    rec = qa.record("v", {"video": None, "audio": None}, df, pd.DataFrame({F0_COLUMN: []}),
                    {"audio_status": "no_audio_stream"}, landmarks_meta=meta)
    assert "small_frame_missed_faces" in rec["flags"].split(",")
    (hint,) = qa.hints(rec, meta)
    assert "faces smaller than 160 px" in hint and "landmarks.min_face_px" in hint


def test_tiny_frame_is_enlarged_and_its_track_verified(downscaled):
    """160x90 (a ~43-px face): detected on the frame enlarged ~2x, and the verification
    (which enlarges a face below VERIFY_FACE_PX) confirms the track on every frame."""
    video = downscaled("single_face.mp4", 160, 90)
    tracker = landmarks.FaceTracker()
    found = verified = 0
    for frame in iter_gray_frames(video):
        face = tracker.step(frame.image)
        if face is not None:
            found += 1
            verified += tracker.verify(frame.image, face.box) is not None
    assert found == verified == 72
    assert tracker.scales[(90, 160)].scale == pytest.approx(80 / 40.5)


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
    from facevox.extract import face_tracker

    monkeypatch.setattr(face_tracker.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(landmarks.FacevoxError, match="pip install face-recognition-models"):
        landmarks.model_dir()


def test_stage_file_equals_extract(feat_media, tmp_path):
    """run() writes Arrow built from numpy buffers (io.table_from_numpy, no pandas): the
    file reads back as extract()'s DataFrame, NaN without a face stored as null."""
    import pyarrow.parquet as pq

    video = feat_media / "face_noface.mov"
    landmarks.run(video, tmp_path / "lm.parquet")
    df, _ = read_table(tmp_path / "lm.parquet", LANDMARKS_SCHEMA)
    ref = landmarks.extract(video)
    pd.testing.assert_frame_equal(df, ref)
    table = pq.read_table(tmp_path / "lm.parquet")
    assert table.column("confidence").null_count == table.column("x_0").null_count == int((~ref["success"]).sum()) > 0
    assert table.column("success").null_count == 0
