"""facevox.extract.shape_model: dlib's 68-point model file, evaluated by numba, against dlib itself."""
import numpy as np
import pytest

from facevox.errors import FacevoxError
from facevox.extract import landmarks, shape_model
from facevox.media import iter_gray_frames


@pytest.fixture(scope="module")
def model():
    return shape_model.load(landmarks.predictor_path())


def test_model_structure(model):
    # dlib's 68-point model: 15 cascades of 500 depth-4 trees, 500 feature pixels each.
    assert model.initial.shape == (136,)
    assert model.idx1.shape == model.thresh.shape == (15, 500, 15)
    assert model.leaves.shape == (15, 500, 16, 136)
    assert model.anchor.shape == (15, 500) and model.deltas.shape == (15, 500, 2)
    assert model.anchor.min() >= 0 and model.anchor.max() < 68
    assert model.idx1.max() < 500 and model.idx2.max() < 500
    # Mean shape in box units: about the box (the chin pokes out below), nose tip mid-box.
    assert -0.2 < model.initial.min() and model.initial.max() < 1.2
    assert 0.45 < model.initial[60] < 0.55  # x of point 30


def test_same_landmarks_as_dlib_on_real_frames(model, wolfgang, feat_media):
    """Rounded to whole pixels (as dlib returns them), >= 99.9 % of points are identical;
    the rest sit on a rounding boundary (1 px)."""
    tracker = landmarks.FaceTracker({"predictor": "dlib"})
    same = total = 0
    worst = 0.0
    for video in (wolfgang, feat_media / "single_face.mp4"):
        for frame in iter_gray_frames(video):
            if frame.index % 4:
                continue
            gray = np.ascontiguousarray(frame.image)
            face = tracker.step(gray)
            ref = tracker.dlib_predict(gray, face.box)
            ours = model(gray, face.box)
            diff = np.abs(np.floor(ours + 0.5) - ref)
            same += int((diff == 0).all(axis=1).sum())
            total += 68
            worst = max(worst, float(diff.max()))
    assert total > 5000
    assert same / total >= 0.999 and worst <= 1


def test_box_partly_outside_the_image(model, wolfgang):
    gray = np.ascontiguousarray(next(iter(iter_gray_frames(wolfgang))).image)
    tracker = landmarks.FaceTracker({"predictor": "dlib"})
    box = (420, 150, 720, 450)  # runs past the right and bottom edges
    ref = tracker.dlib_predict(gray, box)
    assert np.abs(np.floor(model(gray, box) + 0.5) - ref).max() <= 1


def test_not_a_model_file(tmp_path):
    bad = tmp_path / "bad.dat"
    bad.write_bytes(bytes([1, 2]) + b"\x00" * 64)
    with pytest.raises(FacevoxError, match="not a dlib 68-point shape predictor"):
        shape_model.load(bad)
