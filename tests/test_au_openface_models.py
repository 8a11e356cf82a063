"""facevox.extract.au_openface_models: OpenFace 2.x's AU model files read back and applied.

The model files here are tiny ones written in OpenFace's own binary layout by the tests
themselves (no OpenFace file is in the repository); with OPENFACE_MODELS pointing at a real
OpenFace model folder, the real files are read too."""
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from facevox.errors import FacevoxError, InputError
from facevox.extract import au_openface_models as aom


def mat_bin(values, rows, cols) -> bytes:
    """An OpenCV binary float64 matrix as OpenFace's ReadMatBin reads it."""
    return struct.pack("<iii", rows, cols, 6) + np.asarray(values, dtype="<f8").tobytes()


def model_bytes(marker, means, weights, bias, cutoff=None, pos=None, neg=None) -> bytes:
    n = len(means)
    out = struct.pack("<i", marker)
    if cutoff is not None:
        out += struct.pack("<d", cutoff)
    out += mat_bin(means, 1, n) + mat_bin(weights, n, 1) + struct.pack("<d", bias)
    if pos is not None:
        out += struct.pack("<dd", pos, neg)
    return out


def write_models(folder: Path, entries) -> Path:
    """entries: (file name, AU name, bytes); returns the AU list."""
    (folder / "svr").mkdir(parents=True, exist_ok=True)
    for name, _, data in entries:
        (folder / "svr" / name).write_bytes(data)
    au_list = folder / "AU_all_best.txt"
    au_list.write_text("".join(f"svr/{name} {au}\n" for name, au, _ in entries))
    return au_list


# The running median's bin centres, written out from OpenFace's formula
# min + j * (length / bins) + 0.5 * length / bins.
def hog_centre(j):
    return -0.005 + j * (1.005 / 1000) + 0.5 * 1.005 / 1000


def geom_centre(j):
    return -60 + j * (120 / 10000) + 0.5 * 120 / 10000


# One HOG column, one geometry column, five tracked frames.
HOG = [0.2, 0.9, 0.4, 0.1, 0.3]
GEOM = [1.0, 50.0, 3.0, -7.0, 2.0]
X = np.column_stack([HOG, GEOM])


def test_static_svr_read_back_scored_clamped_and_smoothed(tmp_path):
    au_list = write_models(tmp_path, [("AU_12_static.dat", "AU12",
                                       model_bytes(0, [1, 2, 3], [0.5, -1, 2], 0.25))])
    models = aom.load_au_models(au_list)
    (m,) = models.models
    assert (m.au, m.kind, m.dynamic, m.bias, m.cutoff) == ("AU12", "intensity", False, 0.25, None)
    assert m.means.tolist() == [1, 2, 3] and m.weights.tolist() == [0.5, -1, 2]
    assert models.files == (au_list, tmp_path / "svr" / "AU_12_static.dat")
    x = np.array([[3, 2, 4], [1, 2, 6], [0, 4, 3], [5, 5, 5]], dtype=float)
    # (x - means) @ w + b: (2,0,1)->3.25, (0,0,3)->6.25, (-1,2,0)->-2.25, (4,3,2)->3.25
    assert aom.model_scores(models, x).ravel() == pytest.approx([3.25, 6.25, -2.25, 3.25])
    out = aom.predict_aus(models, x, [True, True, True, False])
    # clamped 3.25, 5, 0, untracked 0; 3-frame mean inside: (3.25+5+0)/3, (5+0+0)/3
    assert list(out) == ["AU12_r"]
    assert out["AU12_r"] == pytest.approx([3.25, 8.25 / 3, 5 / 3, 0.0])


def test_running_median_hand_computed():
    med = aom.running_median(X, np.ones(5, bool), n_hog=1)
    # frame 1: the frame itself; frame 3: lower median of frames 1, 3 (0.2 -> bin 203, 1.0 -> bin 5083);
    # frame 5: median of frames 1, 3, 5 (0.3 -> bin 303, 2.0 -> bin 5166); even frames keep the last one
    f3 = [hog_centre(203), geom_centre(5083)]
    f5 = [hog_centre(303), geom_centre(5166)]
    assert med == pytest.approx(np.array([[0.2, 1.0], [0.2, 1.0], f3, f3, f5]), abs=1e-12)
    assert f3 == pytest.approx([0.1995175, 1.002]) and f5 == pytest.approx([0.3000175, 1.998])


def test_running_median_quirks():
    # an untracked first frame: no value counted yet -> bin 0's centre, HOG clamped to 0
    med = aom.running_median(np.array([[0.5, 9.0]]), [False], n_hog=1)
    assert med[0] == pytest.approx([0.0, -60 + 0.006])
    # one value counted: the *current* odd frame's own features, even if it was not tracked
    x = np.array([[0.2, 1.0], [0.9, 5.0], [0.7, -3.0]])
    med = aom.running_median(x, [True, True, False], n_hog=1)
    assert med[2] == pytest.approx([0.7, -3.0])
    # a negative HOG median becomes 0, a negative geometry median stays
    med = aom.running_median(np.array([[-0.004, -2.5]]), [True], n_hog=1)
    assert med[0] == pytest.approx([0.0, -2.5])
    # values beyond the range go to the end bins
    med = aom.running_median(np.array([[2.0, 70.0], [0, 0], [3.0, 80.0]]), [True] * 3, n_hog=1)
    assert med[2] == pytest.approx([hog_centre(999), geom_centre(9999)])


def reference_median(x, success, n_hog):
    """OpenFace's UpdateRunningMedian, frame by frame, with explicit histograms."""
    spec = [aom.HOG_HISTOGRAM] * n_hog + [aom.GEOM_HISTOGRAM] * (x.shape[1] - n_hog)
    hist = [np.zeros(nb, int) for nb, _, _ in spec]
    count, median, out = 0, None, []
    for t in range(x.shape[0]):
        if t % 2 == 0:
            if success[t]:
                for i, (nb, lo, hi) in enumerate(spec):
                    hist[i][int(min(max((x[t, i] - lo) * nb / (hi - lo), 0), nb - 1))] += 1
                count += 1
            if count == 1:
                median = x[t].copy()
            else:
                median = np.empty(x.shape[1])
                for i, (nb, lo, hi) in enumerate(spec):
                    j = int(np.argmax(np.cumsum(hist[i]) >= (count + 1) // 2))
                    median[i] = lo + j * ((hi - lo) / nb) + 0.5 * (hi - lo) / nb
            median[:n_hog] = np.maximum(median[:n_hog], 0)
        out.append(median.copy())
    return np.array(out)


def test_running_median_matches_a_frame_by_frame_loop():
    rng = np.random.default_rng(3)
    x = np.hstack([rng.uniform(-0.01, 0.4, (61, 3)), rng.normal(0, 20, (61, 2))])
    ok = rng.random(61) > 0.3
    ok[0] = False
    assert np.array_equal(aom.running_median(x, ok, n_hog=3), reference_median(x, ok, 3))


def test_dynamic_svr_median_subtraction_and_calibration(tmp_path):
    au_list = write_models(tmp_path, [
        ("AU_1_dyn.dat", "AU01", model_bytes(1, [0.1, 0.5], [2, 0.5], 1.0, cutoff=-1)),
        ("AU_2_dyn.dat", "AU02", model_bytes(1, [0, 0], [0, 1], 0.0, cutoff=0.5)),
    ])
    models = aom.load_au_models(au_list)
    assert [(m.dynamic, m.cutoff) for m in models.models] == [(True, -1), (True, 0.5)]
    med = aom.running_median(X, np.ones(5, bool), n_hog=1)
    # frame 2: x (0.9, 50), median (0.2, 1.0): (0.9-0.1-0.2)*2 + (50-0.5-1)*0.5 + 1
    assert aom.model_scores(models, X, med)[1, 0] == pytest.approx(26.45)

    # OpenFace's offline path: every tracked frame (< 3000) scored with the final median (geometry 1.998):
    # AU02 = g - 1.998 = -0.998, 48.002, 1.002, -8.998, 0.002; offset = sorted[int(5 * 0.5)] = 0.002
    # -> -1, 48, 1, -9, 0 -> clamped 0, 5, 1, 0, 0 -> 3-frame mean inside
    out = aom.predict_aus(models, X, np.ones(5, bool), n_hog=1)
    assert out["AU02_r"] == pytest.approx([0, 2, 2, 1 / 3, 0])
    # without dynamic post-processing: each frame's own median (1, 1, 1.002, 1.002, 1.998), no offset
    # -> 0, 49, 1.998, -8.002, 0.002 -> clamped 0, 5, 1.998, 0, 0.002
    out = aom.predict_aus(models, X, np.ones(5, bool), dynamic=False, n_hog=1)
    assert out["AU02_r"] == pytest.approx([0, 6.998 / 3, 6.998 / 3, 2 / 3, 0.002])


def plain_predict(models, x, ok, n_hog, max_init_frames, dynamic=True):
    """The whole-matrix computation (before the column chunks): every [frames, features] array
    built, then :func:`predict_aus`'s clamping, calibration and smoothing."""
    x = np.asarray(x, dtype=np.float64)
    median = aom.running_median(x, ok, n_hog, chunk=x.shape[1])
    scores = aom.model_scores(models, x, median)
    if dynamic and ok.any():
        first = np.flatnonzero(ok)[:max_init_frames]
        scores[first] = aom.model_scores(models, x[first], median[-1])
    return scores


def test_chunked_scores_equal_the_whole_matrix_computation(tmp_path):
    rng = np.random.default_rng(7)
    n_hog, n_geom, frames = 9, 4, 57
    width = n_hog + n_geom

    def rand_model(marker, **kw):
        return model_bytes(marker, rng.normal(0, 0.2, width), rng.normal(0, 1, width), rng.normal(), **kw)
    models = aom.load_au_models(write_models(tmp_path, [
        ("a.dat", "AU01", rand_model(1, cutoff=0.3)), ("b.dat", "AU02", rand_model(1, cutoff=-1)),
        ("c.dat", "AU04", rand_model(0)), ("d.dat", "AU01", rand_model(5, pos=1.0, neg=0.0)),
        ("e.dat", "AU04", rand_model(4, pos=1.0, neg=0.0)), ("f.dat", "AU06", rand_model(1, cutoff=0.9))]))
    x = np.hstack([rng.uniform(-0.01, 0.5, (frames, n_hog)), rng.normal(0, 20, (frames, n_geom))]).astype(np.float32)
    ok = rng.random(frames) > 0.25
    ok[0] = False
    for max_init in (20, 3000):   # the final-median re-scoring of the first 20 tracked frames, or of all
        for dynamic in (True, False):
            want = plain_predict(models, x, ok, n_hog, max_init, dynamic)
            for chunk in (1, 2, 5, 9, width, 100):
                got = aom.video_scores(models, x, ok, dynamic, n_hog, max_init, chunk=chunk)
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    # the calibration cutoff and all that follows, on the chunked scores vs the plain ones
    want = plain_predict(models, x, ok, n_hog, 20)
    offsets = aom.calibration_offsets(models, want, ok)
    assert offsets[[2, 3, 4]].tolist() == [0, 0, 0] and offsets[1] == 0 and offsets[0] != 0
    for chunk in (1, 4, width):
        got = aom.predict_aus(models, x, ok, n_hog=n_hog, max_init_frames=20, chunk=chunk)
        ref = aom.predict_aus(models, x.astype(np.float64), ok, n_hog=n_hog, max_init_frames=20, chunk=width)
        assert list(got) == ["AU01_r", "AU02_r", "AU04_r", "AU06_r", "AU01_c", "AU04_c"]
        for k in got:
            np.testing.assert_allclose(got[k], ref[k], rtol=0, atol=1e-9)
    # the running median itself, block by block vs whole
    whole = aom.running_median(x, ok, n_hog, chunk=width)
    assert np.array_equal(whole, reference_median(x.astype(np.float64), ok, n_hog))
    for chunk in (1, 3, 8):
        assert np.array_equal(aom.running_median(x, ok, n_hog, chunk=chunk), whole)
    with pytest.raises(FacevoxError, match="chunk .* must be a positive integer, got 0"):
        aom.video_scores(models, x, ok, n_hog=n_hog, chunk=0)


def test_calibration_offsets_use_tracked_frames_only(tmp_path):
    au_list = write_models(tmp_path, [("a.dat", "AU01", model_bytes(1, [0], [1], 0.0, cutoff=0.25)),
                                      ("b.dat", "AU04", model_bytes(0, [0], [1], 0.0))])
    models = aom.load_au_models(au_list)
    scores = np.array([[4.0, 4.0], [-50.0, -50.0], [1.0, 1.0], [3.0, 3.0], [2.0, 2.0]])
    # tracked AU01 scores sorted: 1, 2, 3, 4 -> index int(4 * 0.25) = 1 -> 2; static AU04: none
    assert aom.calibration_offsets(models, scores, [True, False, True, True, True]).tolist() == [2.0, 0.0]


def test_svm_presence_values_and_vote(tmp_path):
    au_list = write_models(tmp_path, [
        ("AU_12_static.dat", "AU12", model_bytes(4, [1, 1], [1, -1], 0.0, pos=1.0, neg=0.0)),
        # OpenFace's own AU01 file stores pos 0, neg 1: the values are taken as written
        ("AU_1_dynamic.dat", "AU01", model_bytes(5, [0, 0], [0, 1], -0.5, pos=0.0, neg=1.0)),
    ])
    models = aom.load_au_models(au_list)
    m12, m01 = models.models
    assert (m12.kind, m12.dynamic, m12.pos_class, m12.neg_class) == ("presence", False, 1.0, 0.0)
    assert (m01.kind, m01.dynamic, m01.cutoff) == ("presence", True, None)
    # AU12 score = (x0 - 1) - (x1 - 1): 2, 0 (not > 0), -2, 0.2; untracked frame 4 -> 0
    x = np.array([[2, 0], [3, 3], [0, 2], [0.2, 0.0]])
    out = aom.predict_aus(models, x, [True, True, True, False], dynamic=False, n_hog=0)
    assert list(out) == ["AU01_c", "AU12_c"]
    assert out["AU12_c"].tolist() == [1, 0, 0, 0]
    # AU01: x1 - median - 0.5; medians (geometry bins): frame 1 itself, frame 3 lower median of 0 and 2
    # -> 0 - 0 - 0.5 < 0 -> neg 1; 3 - 0 - 0.5 > 0 -> pos 0; 2 - 0.006 - 0.5 > 0 -> 0; untracked -> 0
    assert out["AU01_c"].tolist() == [1, 0, 0, 0]
    # the 7-frame vote: frames 3 .. n-4 only; window sums 3 and 3 -> < 0.5 -> 0
    assert aom.smooth_presence(np.array([[1, 1, 0, 1, 0, 0, 0, 1]]).T).ravel().tolist() == [1, 1, 0, 0, 0, 0, 0, 1]
    # one window of 7, sum 4 -> 1 in the middle
    assert aom.smooth_presence(np.array([[1, 1, 0, 0, 1, 1, 0]]).T).ravel().tolist() == [1, 1, 0, 1, 1, 1, 0]


def test_malformed_model_files_name_the_file(tmp_path):
    good = model_bytes(0, [1, 2], [3, 4], 0.5)
    cases = {
        "cut.dat": (good[:-3], "file ends before the bias"),
        "marker.dat": (struct.pack("<i", 7) + good[4:], "unknown OpenFace model type 7"),
        "extra.dat": (good + b"\0" * 8, "8 bytes left after the model"),
        "shape.dat": (struct.pack("<i", 0) + mat_bin([1, 2], 1, 2) + mat_bin([3, 4, 5], 3, 1) + struct.pack("<d", 0),
                      "means (1, 2) and weights (3, 1) do not fit"),
        "header.dat": (struct.pack("<i", 0) + struct.pack("<iii", 1, 2, 99), "not an OpenCV matrix at byte 4"),
        "cutoff.dat": (model_bytes(1, [1], [1], 0.0, cutoff=1.5), "cutoff 1.5 is neither -1 nor a fraction"),
    }
    for name, (data, problem) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(InputError) as err:
            aom.read_au_model(path, "AU12")
        assert str(path) in str(err.value) and problem in str(err.value), name
        assert "AU_all_best.txt" in str(err.value)
    with pytest.raises(InputError, match="AU model file for AU12 not found"):
        aom.read_au_model(tmp_path / "nothere.dat", "AU12")


def test_malformed_lists_and_folders(tmp_path):
    bad = tmp_path / "AU_all_best.txt"
    bad.write_text("svr/a.dat AU01\nsvr/b.dat\n")
    with pytest.raises(InputError, match=r"line 2 'svr/b.dat' is not '<model file> <AU name>'"):
        aom.read_au_list(bad)
    bad.write_text("svr/missing.dat AU01\n")
    with pytest.raises(InputError, match="missing.dat: OpenFace AU model file for AU01 not found"):
        aom.load_au_models(bad)
    bad.write_text("\n\n")
    with pytest.raises(InputError, match="names no model"):
        aom.read_au_list(bad)
    au_list = write_models(tmp_path / "two", [("a.dat", "AU01", model_bytes(0, [1], [1], 0.0)),
                                              ("b.dat", "AU02", model_bytes(0, [1, 2], [1, 1], 0.0))])
    with pytest.raises(InputError, match="b.dat: has 2 features, a.dat has 1"):
        aom.load_au_models(au_list)
    au_list = write_models(tmp_path / "dup", [("a.dat", "AU01", model_bytes(0, [1], [1], 0.0)),
                                              ("b.dat", "AU01", model_bytes(1, [1], [1], 0.0, cutoff=-1))])
    with pytest.raises(InputError, match="two intensity models for AU01: a.dat and b.dat"):
        aom.load_au_models(au_list)
    with pytest.raises(InputError, match="no AU_all_best.txt here or in AU_predictors/"):
        aom.find_model_files(tmp_path / "empty")
    with pytest.raises(InputError, match="no In-the-wild_aligned_PDM_68.txt beside AU_all_best.txt"):
        aom.find_model_files(tmp_path)


def test_feature_checks(tmp_path):
    models = aom.load_au_models(write_models(tmp_path, [("a.dat", "AU01", model_bytes(0, [1, 2], [1, 1], 0.0))]))
    with pytest.raises(FacevoxError, match="take 2 features .* got 3"):
        aom.predict_aus(models, np.zeros((4, 3)), np.ones(4, bool))
    with pytest.raises(FacevoxError, match="features of frame 1 are not finite"):
        aom.predict_aus(models, np.array([[0, 0], [np.nan, 0]]), [True, False])


PDM_TEXT = """# The mean values of the components (in mm)
6
1
6
1.0
2.0
3.0
4.0
5.0
6.0
# The principal components
6 2 6
1 0
0 1
1 1
0 0
2 0
0 -1
# The variances of the components
1 2 6
9.0 4.0
"""


def test_pdm_and_geometry_features(tmp_path):
    path = tmp_path / "pdm.txt"
    path.write_text(PDM_TEXT)
    pdm = aom.read_pdm(path)
    assert pdm.mean_shape.tolist() == [1, 2, 3, 4, 5, 6]
    assert pdm.princ_comp.shape == (6, 2) and pdm.princ_comp[4].tolist() == [2, 0]
    assert pdm.eigen_values.tolist() == [9, 4]
    # p = (2, 3): princ_comp @ p = (2, 3, 5, 0, 4, -3), then p itself
    assert aom.geometry_features(np.array([[2.0, 3.0]]), pdm).tolist() == [[2, 3, 5, 0, 4, -3, 2, 3]]
    path.write_text(PDM_TEXT.replace("1 2 6\n9.0 4.0", "1 3 6\n9.0 4.0"))
    with pytest.raises(InputError, match=r"pdm.txt: the eigenvalues \(1 x 3\) is cut short: 2 values"):
        aom.read_pdm(path)
    path.write_text(PDM_TEXT.replace("1 2 6\n9.0 4.0", "1 1 6\n9.0"))
    with pytest.raises(InputError, match="shapes do not fit"):
        aom.read_pdm(path)
    with pytest.raises(InputError, match="OpenFace PDM file not found"):
        aom.read_pdm(tmp_path / "none.txt")


def test_find_model_files_and_checksums(tmp_path):
    bin_dir = tmp_path / "bin"
    au_list = write_models(bin_dir / "AU_predictors", [("a.dat", "AU01", b"abc")])
    (bin_dir / "model" / "pdms").mkdir(parents=True)
    (bin_dir / "model" / "pdms" / "In-the-wild_aligned_PDM_68.txt").write_text(PDM_TEXT)
    found = aom.find_model_files(bin_dir)
    assert found == {"au_list": au_list, "pdm": bin_dir / "model" / "pdms" / "In-the-wild_aligned_PDM_68.txt"}
    assert aom.find_model_files(bin_dir / "AU_predictors") == found
    sums = aom.model_checksums([bin_dir / "AU_predictors" / "svr" / "a.dat"])
    # sha256("abc"), FIPS 180-2's example
    assert sums == {str(bin_dir / "AU_predictors" / "svr" / "a.dat"):
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}
    with pytest.raises(InputError, match="model file not found"):
        aom.model_checksums([tmp_path / "gone.dat"])


@pytest.mark.skipif(not os.environ.get("OPENFACE_MODELS"), reason="OPENFACE_MODELS names no OpenFace model folder")
def test_real_openface_models():
    found = aom.find_model_files(os.environ["OPENFACE_MODELS"])
    models = aom.load_au_models(found["au_list"])
    assert models.n_features == aom.HOG_FEATURES + aom.GEOM_FEATURES == 4702
    by = {(m.au, m.kind): m for m in models.models}
    au12 = by[("AU12", "intensity")]
    assert (au12.dynamic, au12.means.shape, au12.weights.shape) == (False, (4702,), (4702,))
    assert by[("AU01", "intensity")].dynamic and 0 <= by[("AU01", "intensity")].cutoff <= 1
    assert {m.au for m in models.models if m.kind == "presence"} >= {"AU12", "AU28"}
    pdm = aom.read_pdm(found["pdm"])
    assert (pdm.mean_shape.shape, pdm.princ_comp.shape, pdm.eigen_values.shape) == ((204,), (204, 34), (34,))
    sums = aom.model_checksums([*models.files, found["pdm"]])
    assert len(sums) == len(models.files) + 1 and all(len(h) == 64 for h in sums.values())
    assert hashlib.sha256(found["au_list"].read_bytes()).hexdigest() == sums[str(found["au_list"])]
    rng = np.random.default_rng(0)
    x = np.hstack([rng.uniform(0, 0.3, (40, 4464)), rng.normal(0, 5, (40, 238))])
    out = aom.predict_aus(models, x, np.ones(40, bool))
    assert all(np.all((v >= 0) & (v <= 5)) for k, v in out.items() if k.endswith("_r"))
    assert all(set(np.unique(v)) <= {0.0, 1.0} for k, v in out.items() if k.endswith("_c"))
