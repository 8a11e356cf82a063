"""facevox.extract.shape_model: dlib's 68-point model file, evaluated by numba, against dlib itself."""
import json
import logging
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from facevox.errors import FacevoxError
from facevox.extract import face_tracker, landmarks, shape_model
from facevox.media import iter_gray_frames


@pytest.fixture(scope="module")
def model():
    return shape_model.load(landmarks.predictor_path())


@pytest.fixture(scope="module")
def exact(model):
    return shape_model.load_exact(model.path)


@pytest.fixture(scope="module")
def dlib_frames(wolfgang, feat_media):
    """Every 4th frame of two real videos as (grey image, tracked box, dlib's own 68 points on
    that box): the reference both predictors are compared with (decoded and predicted once)."""
    tracker = landmarks.FaceTracker({"predictor": "dlib"})
    out = []
    for video in (wolfgang, feat_media / "single_face.mp4"):
        for frame in iter_gray_frames(video):
            if frame.index % 4:
                continue
            gray = np.ascontiguousarray(frame.image)
            face = tracker.step(gray)
            out.append((gray, face.box, tracker.dlib_predict(gray, face.box)))
    return out


def test_model_structure(model, exact):
    # dlib's 68-point model: 15 cascades of 500 depth-4 trees, 500 feature pixels each.
    assert model.initial.shape == (136,)
    assert model.idx1.shape == model.thresh.shape == (15, 500, 15) and model.depth == 4
    assert exact.leaves.shape == model.leaves_q.shape == (15, 500, 16, 136)
    assert model.anchor.shape == (15, 500) and model.deltas.shape == (15, 500, 2)
    assert model.anchor.min() >= 0 and model.anchor.max() < 68
    assert model.idx1.max() < 500 and model.idx2.max() < 500
    # Mean shape in box units: about the box (the chin pokes out below), nose tip mid-box.
    assert -0.2 < model.initial.min() and model.initial.max() < 1.2
    assert 0.45 < model.initial[60] < 0.55  # x of point 30


def test_leaves_quantised_within_half_a_step(model, exact):
    """int16 steps of one scale per cascade: the cascade's largest |leaf| is +-32767 steps,
    every leaf within half a step of dlib's float32 value."""
    assert model.leaves_q.dtype == np.int16 and model.step.shape == (15,)
    peak = np.abs(exact.leaves).max(axis=(1, 2, 3))
    np.testing.assert_allclose(model.step, peak / 32767, rtol=1e-6)
    assert (np.abs(model.leaves_q).max(axis=(1, 2, 3)) == 32767).all()
    err = np.abs(model.leaves_q * model.step[:, None, None, None].astype(np.float64) - exact.leaves)
    # half a step, plus the float32 rounding of the step itself (32767 x 2**-24 = 0.002 steps)
    assert (err <= model.step[:, None, None, None] * 0.502).all()
    # < 0.001 px on a 500-px box
    assert model.step.max() * 500 < 0.001


def test_exact_path_gives_dlibs_landmarks_on_real_frames(model, dlib_frames):
    """dlib's float32 leaves and arithmetic (ShapeModel.exact): rounded to whole pixels (as
    dlib returns them), >= 99.9 % of points are identical; the rest sit on a rounding
    boundary (1 px)."""
    same = total = 0
    worst = 0.0
    for gray, box, ref in dlib_frames:
        ours = model.exact(gray, box)
        diff = np.abs(np.floor(ours + 0.5) - ref)
        same += int((diff == 0).all(axis=1).sum())
        total += 68
        worst = max(worst, float(diff.max()))
    assert total > 5000
    assert same / total >= 0.999 and worst <= 1


def test_fast_path_close_to_dlib_on_real_frames(model, dlib_frames):
    """The quantised leaves move the chaotic cascade a little: measured on these 136 frames,
    a mean distance to dlib's own points of 0.72 % of the inter-ocular distance (max 1.7 %;
    the exact path: 0.40 %, dlib's whole-pixel rounding alone), half the points identical
    after rounding, none more than 5 px away."""
    errors, same, total = [], 0, 0
    for gray, box, ref in dlib_frames:
        ours = model(gray, box)
        errors.append(np.linalg.norm(ours - ref, axis=1).mean() / landmarks.inter_ocular(ref))
        same += int((np.floor(ours + 0.5) == ref).all(axis=1).sum())
        total += 68
        assert np.abs(ours - ref).max() < 8
    assert len(errors) == 136
    assert np.mean(errors) < 0.01 and np.max(errors) < 0.025
    assert same / total > 0.4


def test_memo_changes_nothing(model, feat_media):
    """With the memo only the changed leaves are read; the sums are exact integers, so the
    points are bit-identical to a call without memo - on a track and after a jump."""
    frames = [np.ascontiguousarray(f.image) for f in iter_gray_frames(feat_media / "single_face.mp4")]
    tracker = landmarks.FaceTracker()
    boxes = [tracker.step(g).box for g in frames]
    memo = model.memo()
    for g, b in zip(frames, boxes):
        assert np.array_equal(model(g, b, memo), model(g, b))
    assert (memo[0] >= 0).all()
    jump = (boxes[0][0] + 40, boxes[0][1] - 30, boxes[0][2] + 60, boxes[0][3])
    assert np.array_equal(model(frames[-1], jump, memo), model(frames[-1], jump))


@pytest.fixture(scope="module")
def aot_build(tmp_path_factory):
    """The ahead-of-time builds of the kernels for this CPU, made here from this source
    (~5-10 s each) in a fresh cache: (cache dir, {target name: loaded module})."""
    cache = tmp_path_factory.mktemp("kernels_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEVOX_CACHE_DIR", str(cache))
        paths = shape_model.build_kernels()
    targets = shape_model.usable_targets()
    assert [t.name for t in targets][-1] == "baseline" and len(paths) == len(targets)
    for path, target in zip(paths, targets):
        assert path.is_relative_to(cache / "kernels") and path.parent.name == target.name
    # one module name for every build: each is loaded under it in turn
    return cache, {t.name: shape_model.load_aot(path) for t, path in zip(targets, paths)}


def test_ahead_of_time_builds_are_the_jit_bit_for_bit(model, aot_build, feat_media):
    """Every numba.pycc build of the kernels gives the JIT's bits: points, memo and leaf
    sums, along a real track and after a jump; centroid and radius for float32 and float64."""
    from facevox.extract import shape_kernels

    _, builds = aot_build
    frames = [np.ascontiguousarray(f.image) for f in iter_gray_frames(feat_media / "single_face.mp4")]
    tracker = landmarks.FaceTracker()
    boxes = [tracker.step(g).box for g in frames]
    boxes.append((boxes[0][0] + 40, boxes[0][1] - 30, boxes[0][2] + 60, boxes[0][3]))
    frames.append(frames[-1])
    arrays = (model.initial, model.idx1, model.idx2, model.thresh, model.leaves_q, model.step,
              model.anchor, model.deltas, model.depth)
    for name, aot in builds.items():
        memo_jit, memo_aot = model.memo(), model.memo()
        for g, b in zip(frames, boxes):
            box = shape_model.rounded_box(b)
            jit = shape_kernels.predict_fast(g, *box, *arrays, *memo_jit)
            ours = aot.predict_fast(g, *box, *arrays, *memo_aot)
            assert ours.dtype == np.float32 and np.array_equal(ours, jit), name
            assert np.array_equal(memo_aot[0], memo_jit[0]) and np.array_equal(memo_aot[1], memo_jit[1])
            assert aot.centre_radius_f4(jit) == shape_kernels.centre_radius(jit)
            p64 = jit.astype(np.float64) * 1.0001
            assert aot.centre_radius_f8(p64) == shape_kernels.centre_radius(p64)
    assert len(frames) > 20


def test_the_best_build_this_cpu_runs_is_loaded(aot_build, monkeypatch):
    """x86-64-v3 where the CPU has its flags and the build is present, else the baseline;
    never a build whose instructions the CPU lacks."""
    cache, builds = aot_build
    monkeypatch.setenv("FACEVOX_CACHE_DIR", str(cache))
    v3, baseline = shape_model.TARGETS
    monkeypatch.setattr(shape_model, "cpu_flags", lambda: frozenset({"sse2", "avx"}))
    assert shape_model.usable_targets() == [baseline] and shape_model.aot_choice()[0] == baseline
    monkeypatch.setattr(shape_model, "cpu_flags", lambda: v3.flags | {"sse2"})
    monkeypatch.setattr(shape_model.platform, "machine", lambda: "x86_64")
    assert shape_model.usable_targets() == [v3, baseline]
    assert shape_model.aot_choice()[0] == (v3 if "x86-64-v3" in builds else baseline)
    monkeypatch.setattr(shape_model.platform, "machine", lambda: "aarch64")
    assert shape_model.usable_targets() == [baseline]
    monkeypatch.setenv("FACEVOX_SHAPE_KERNELS", "jit")
    assert shape_model.aot_choice() is None


def test_stage_process_runs_the_build_without_numba(aot_build):
    """With a build in the cache, a process's kernels are the build's and numba is never
    imported (its import and first call cost ~0.3-1 s of CPU per landmark job)."""
    cache, builds = aot_build
    code = ("import sys, json, numpy as np\n"
            "from facevox.extract import landmarks, shape_model\n"
            "k = shape_model.kernels()\n"
            "c = landmarks.centre_radius(np.array([[0, 0], [4, 0], [4, 3], [0, 3]], np.float32))\n"
            "print(json.dumps([k.build, c, 'numba' in sys.modules, 'llvmlite' in sys.modules]))")
    env = {**os.environ, "FACEVOX_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [f"aot {next(iter(builds))}", [2.0, 1.5, 2.5], False, False]
    env["FACEVOX_SHAPE_KERNELS"] = "jit"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["jit", [2.0, 1.5, 2.5], True, True]


def test_without_a_build_the_jit_runs_and_says_how_to_build(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FACEVOX_CACHE_DIR", str(tmp_path))
    shape_model.kernels.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger="facevox.extract.shape_model"):
            k = shape_model.kernels()
        assert k.build == "jit"
        assert "facevox build-kernels" in caplog.text and str(tmp_path / "kernels") in caplog.text
        assert shape_model.aot_choice() is None
        # float64 and strided points give the float64 sums of a contiguous copy
        pts = np.array([[0, 0], [4, 0], [4, 3], [0, 3]], np.float64)
        assert k.centre_radius(pts) == k.centre_radius(np.asfortranarray(pts)) == (2.0, 1.5, 2.5)
    finally:
        shape_model.kernels.cache_clear()


def test_build_without_a_compiler_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEVOX_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("LDSHARED", str(tmp_path / "no-such-cc") + " -shared")
    level = logging.getLogger().level
    with pytest.raises(FacevoxError, match="cannot compile the shape predictor's kernels ahead of time"):
        shape_model.build_kernels()
    assert not any(shape_model.kernels_path(t).exists() for t in shape_model.TARGETS)
    assert logging.getLogger().level == level  # numba.pycc's compiler resets it; build_kernels restores it
    # from the command line, in a fresh process (where numba.pycc's compiler probe fails first):
    # the message and rc 2, no traceback
    out = subprocess.run([sys.executable, "-m", "facevox", "build-kernels"], capture_output=True, text=True,
                         env={**os.environ, "FACEVOX_CACHE_DIR": str(tmp_path), "CC": str(tmp_path / "no-such-cc"),
                              "LDSHARED": str(tmp_path / "no-such-cc") + " -shared"})
    assert out.returncode == 2, out.stderr
    assert "facevox: error: cannot compile the shape predictor's kernels ahead of time" in out.stderr
    assert "Traceback" not in out.stderr


def test_model_cache(tmp_path, monkeypatch):
    """The parsed, quantised arrays are kept in the cache dir and read back unchanged; a
    damaged cache file is parsed around, then replaced."""
    monkeypatch.setenv("FACEVOX_CACHE_DIR", str(tmp_path))
    path = landmarks.predictor_path()
    shape_model.load.cache_clear()
    try:
        first = shape_model.load(path)
        (cached,) = tmp_path.glob("shape_predictor_68_face_landmarks-*-v1.npz")
        shape_model.load.cache_clear()
        t = time.perf_counter()
        again = shape_model.load(path)
        assert time.perf_counter() - t < 0.5  # parsing takes ~1 s
        for name in ("initial", "idx1", "idx2", "thresh", "leaves_q", "step", "anchor", "deltas"):
            assert np.array_equal(getattr(first, name), getattr(again, name))
        cached.write_bytes(b"not a zip file")
        shape_model.load.cache_clear()
        third = shape_model.load(path)
        assert np.array_equal(third.leaves_q, first.leaves_q)
        assert cached.stat().st_size > 30e6
    finally:
        shape_model.load.cache_clear()


def test_box_partly_outside_the_image(model, wolfgang):
    gray = np.ascontiguousarray(next(iter(iter_gray_frames(wolfgang))).image)
    tracker = landmarks.FaceTracker({"predictor": "dlib"})
    box = (420, 150, 720, 450)  # runs past the right and bottom edges
    ref = tracker.dlib_predict(gray, box)
    assert np.abs(np.floor(model.exact(gray, box) + 0.5) - ref).max() <= 1
    # the fast path on this off-centre box: within 10 px (3 % of the 300-px box) everywhere
    assert np.abs(model(gray, box) - ref).max() < 10


def test_not_a_model_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEVOX_CACHE_DIR", str(tmp_path / "cache"))
    bad = tmp_path / "bad.dat"
    bad.write_bytes(bytes([1, 2]) + b"\x00" * 64)
    with pytest.raises(FacevoxError, match="not a dlib 68-point shape predictor"):
        shape_model.load(bad)
    assert not (tmp_path / "cache").exists()


def test_saved_detector_finds_the_same_faces(wolfgang, tmp_path, monkeypatch):
    """The frontal detector loaded from dlib's own saved copy (~1 ms instead of ~0.35 s)
    finds the same boxes with the same scores; a damaged copy is replaced."""
    import dlib

    monkeypatch.setenv("FACEVOX_CACHE_DIR", str(tmp_path))
    builtin = dlib.get_frontal_face_detector()
    face_tracker.dlib_detector.cache_clear()
    try:
        face_tracker.dlib_detector()  # writes the copy
        (copy,) = tmp_path.glob("frontal_face_detector-dlib*.svm")
        face_tracker.dlib_detector.cache_clear()
        saved = face_tracker.dlib_detector()
        for frame in iter_gray_frames(wolfgang):
            if frame.index % 40:
                continue
            gray = np.ascontiguousarray(frame.image)
            (r1, s1, k1), (r2, s2, k2) = builtin.run(gray, 0, -0.5), saved.run(gray, 0, -0.5)
            assert [(r.left(), r.top(), r.right(), r.bottom()) for r in r1] == \
                [(r.left(), r.top(), r.right(), r.bottom()) for r in r2]
            assert list(s1) == list(s2) and list(k1) == list(k2) and len(r1) >= 1
        copy.write_bytes(b"garbage")
        face_tracker.dlib_detector.cache_clear()
        assert len(face_tracker.dlib_detector().run(gray, 0, 0.0)[0]) == 1
        assert copy.stat().st_size > 100_000
    finally:
        face_tracker.dlib_detector.cache_clear()
