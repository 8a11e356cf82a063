"""Stage faces (facevox.extract.faces): eyes level, eye-mouth = size/3, JPEG crops."""
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from facevox import media
from facevox.contract import ALIGNED_FACES_SCHEMA, CROP_LANDMARK_X, CROP_LANDMARK_Y, FACES_ROW_GROUP_ROWS
from facevox.errors import FacevoxError, InputError
from facevox.extract import faces, landmarks, shape_model
from facevox.io import TableWriter, read_table


def eye_angle_and_eye_mouth(points):
    left, right = points[36:42].mean(0), points[42:48].mean(0)
    angle = np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))
    return angle, np.linalg.norm((left + right) / 2 - points[48:60].mean(0))


@pytest.fixture(scope="module")
def neutral_face():
    """dlib's mean 68-point shape, 200 px wide."""
    return shape_model.load(landmarks.predictor_path()).initial.reshape(68, 2).astype(np.float64) * 200


@pytest.mark.parametrize("degrees, scale", [(0, 1.0), (25, 1.3), (-40, 0.6)])
def test_synthetic_face_is_levelled_and_scaled(neutral_face, degrees, scale):
    t = np.radians(degrees)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    points = (neutral_face - 100) @ rot.T * scale + (320, 240)
    m = faces.alignment_matrix(points, 224)
    out = faces.transform_points(m, points)
    angle, eye_mouth = eye_angle_and_eye_mouth(out)
    assert abs(angle) < 1.0
    assert eye_mouth == pytest.approx(224 / 3, abs=1.0)
    eyes = (out[36:42].mean(0) + out[42:48].mean(0)) / 2
    assert eyes == pytest.approx([112, 0.35 * 224], abs=0.5)
    assert 0 < out.min() and out.max() < 224  # the whole face is in the crop


def test_crops_from_a_real_video(feat_media, tmp_path):
    video = feat_media / "single_face.mp4"
    lm_path = tmp_path / "lm.parquet"
    landmarks.run(video, lm_path)
    out = tmp_path / "faces.parquet"
    summary = faces.run(video, lm_path, out, {"keep_face_images": True, "stride": 3})
    df, meta = read_table(out, ALIGNED_FACES_SCHEMA)
    assert summary == {"n_rows": 24, "n_faces": 24}
    assert df["frame"].tolist() == list(range(0, 72, 3))
    assert meta["params"]["size"] == 224 and meta["params"]["stride"] == 3
    for _, row in df.iloc[::8].iterrows():
        img = faces.decode_jpeg(row["image"])
        assert img.shape == (224, 224, 3) and img.std() > 10  # a real picture, not a blank
        pts = np.stack([row[CROP_LANDMARK_X].to_numpy(float), row[CROP_LANDMARK_Y].to_numpy(float)], -1)
        angle, eye_mouth = eye_angle_and_eye_mouth(pts)
        assert abs(angle) < 1.0 and eye_mouth == pytest.approx(224 / 3, abs=1.0)


def test_frames_without_face_are_flagged(feat_media, tmp_path):
    video = feat_media / "no_face.mp4"
    lm_path = tmp_path / "lm.parquet"
    landmarks.run(video, lm_path)
    faces.run(video, lm_path, tmp_path / "f.parquet", {"keep_face_images": True, "stride": 10})
    df, _ = read_table(tmp_path / "f.parquet", ALIGNED_FACES_SCHEMA)
    assert len(df) == 10 and not df["success"].any()
    assert (df["image"].map(len) == 0).all() and df[CROP_LANDMARK_X].isna().all().all()


def test_privacy_default_writes_nothing(feat_media, tmp_path):
    with pytest.raises(FacevoxError, match="keep_face_images is false"):
        faces.run(feat_media / "single_face.mp4", tmp_path / "lm.parquet", tmp_path / "f.parquet")
    assert not (tmp_path / "f.parquet").exists()


@pytest.mark.parametrize("degrees, scale", [(0, 1.0), (25, 1.3), (-40, 0.6)])
def test_eyes_method_places_the_eyes_as_sta_drn(neutral_face, degrees, scale):
    t = np.radians(degrees)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    points = (neutral_face - 100) @ rot.T * scale + (320, 240)
    out = faces.transform_points(faces.alignment_matrix(points, 256, "eyes"), points)
    # imutils FaceAligner(desiredFaceWidth=256): left eye at (0.35, 0.35), right at (0.65, 0.35) of 256
    assert out[36:42].mean(0) == pytest.approx([89.6, 89.6], abs=1e-6)
    assert out[42:48].mean(0) == pytest.approx([166.4, 89.6], abs=1e-6)
    # a similarity transform: eye-mouth distance scaled by the same factor as the eyes' distance
    _, before = eye_angle_and_eye_mouth(points)
    iod = np.linalg.norm(points[42:48].mean(0) - points[36:42].mean(0))
    assert eye_angle_and_eye_mouth(out)[1] == pytest.approx(before * 76.8 / iod, rel=1e-9)


def test_eyes_method_is_a_config_choice(feat_media, tmp_path):
    video = feat_media / "single_face.mp4"
    lm_path = tmp_path / "lm.parquet"
    landmarks.run(video, lm_path)
    faces.run(video, lm_path, tmp_path / "f.parquet", {"keep_face_images": True, "stride": 24, "method": "eyes"})
    df, meta = read_table(tmp_path / "f.parquet", ALIGNED_FACES_SCHEMA)
    assert meta["params"]["method"] == "eyes" and meta["params"]["left_eye"] == [0.35, 0.35]
    row = df[df["success"]].iloc[0]
    pts = np.stack([row[CROP_LANDMARK_X].to_numpy(float), row[CROP_LANDMARK_Y].to_numpy(float)], -1)
    assert pts[36:42].mean(0) == pytest.approx([0.35 * 224, 0.35 * 224], abs=0.01)
    with pytest.raises(FacevoxError, match="faces.method must be one of eye_mouth, eyes"):
        faces.alignment_matrix(pts, 224, "nose")


def test_rows_stream_in_row_groups(feat_media, tmp_path, monkeypatch):
    """A tiny row-group size: several groups of the expected sizes, the same table as one group,
    and the writer is fed one group at a time (never the whole video)."""
    video = feat_media / "face_noface.mov"  # faces in some frames only: null landmarks too
    lm_path = tmp_path / "lm.parquet"
    landmarks.run(video, lm_path)
    params = {"keep_face_images": True, "stride": 4}
    whole = faces.run(video, lm_path, tmp_path / "one.parquet", params, row_group_rows=10_000)
    batches = []
    real_write = TableWriter.write
    monkeypatch.setattr(TableWriter, "write", lambda self, b: (batches.append(len(b["frame"])), real_write(self, b)))
    small = faces.run(video, lm_path, tmp_path / "small.parquet", params, row_group_rows=7)
    assert small == whole and whole["n_rows"] == 43 and 0 < whole["n_faces"] < 43
    assert batches == [7] * 6 + [1]  # one write per row group: at most 7 rows held
    pf = pq.ParquetFile(tmp_path / "small.parquet")
    assert [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)] == [7] * 6 + [1]
    assert pq.ParquetFile(tmp_path / "one.parquet").num_row_groups == 1
    a, b = pq.read_table(tmp_path / "one.parquet"), pq.read_table(tmp_path / "small.parquet")
    assert a.equals(b) and a.schema.equals(b.schema, check_metadata=True)
    assert a.schema.equals(ALIGNED_FACES_SCHEMA.with_metadata(a.schema.metadata), check_metadata=True)
    import inspect

    default = inspect.signature(faces.run).parameters["row_group_rows"].default
    assert FACES_ROW_GROUP_ROWS == default == 256  # the default, shared with the clip readers


def test_streamed_table_equals_the_in_memory_one(feat_media, tmp_path):
    """run() streams the same rows and values as extract() builds in memory (NaN = null)."""
    video = feat_media / "face_noface.mov"
    lm_path = tmp_path / "lm.parquet"
    landmarks.run(video, lm_path)
    params = {"keep_face_images": True, "stride": 6}
    faces.run(video, lm_path, tmp_path / "f.parquet", params, row_group_rows=5)
    got, _ = read_table(tmp_path / "f.parquet", ALIGNED_FACES_SCHEMA)
    want = faces.extract(video, read_table(lm_path)[0], params)
    pd.testing.assert_frame_equal(got, want)


def test_no_frames_write_an_empty_table_and_a_failure_writes_nothing(feat_media, tmp_path, monkeypatch):
    """A video without frames: a valid empty table (as write_table writes it); an InputError
    mid-stream: no file and no temporary file left (the CLI writes the excluded record)."""
    video = feat_media / "single_face.mp4"
    lm_path = tmp_path / "lm.parquet"
    landmarks.run(video, lm_path)
    monkeypatch.setattr(faces, "iter_rgb_frames", lambda path, stride: iter(()))
    assert faces.run(video, lm_path, tmp_path / "e.parquet", {"keep_face_images": True}) == {"n_rows": 0, "n_faces": 0}
    df, meta = read_table(tmp_path / "e.parquet", ALIGNED_FACES_SCHEMA)
    assert len(df) == 0 and meta["stage"] == "faces"
    assert pq.ParquetFile(tmp_path / "e.parquet").num_row_groups == 1  # pq.write_table's empty table

    real = media.iter_rgb_frames

    def broken(path, stride):
        yield from list(real(path, stride=stride))[:5]
        raise InputError(path, "cut off")

    monkeypatch.setattr(faces, "iter_rgb_frames", broken)
    with pytest.raises(InputError, match="cut off"):
        faces.run(video, lm_path, tmp_path / "x.parquet", {"keep_face_images": True}, row_group_rows=2)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".x", "x"))) == []
