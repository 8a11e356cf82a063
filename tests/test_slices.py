"""facevox.dataset.slices: slicing with polynomial padding, gap filling, train-only normalisation."""
import numpy as np
import pytest

from facevox.dataset.slices import NormStats, interpolate_gaps, slice_starts, slice_video
from facevox.errors import FacevoxError


def quadratic(t):
    return 0.002 * t**2 - 0.5 * t + 3.0


def test_650_frames_give_3_slices_the_last_padded_exactly():
    t = np.arange(650, dtype=float)
    values = np.stack([quadratic(t), 2 * t + 1], axis=1)  # a quadratic and a line
    slices, n_real, n_missing, starts = slice_video(values, length=300, pad="poly", degree=2)
    assert slices.shape == (3, 300, 2) and slices.dtype == np.float32
    assert n_real.tolist() == [300, 300, 50] and starts.tolist() == [0, 300, 600]
    assert n_missing.tolist() == [0, 0, 0]
    np.testing.assert_allclose(slices[1, :, 0], quadratic(t[300:600]), rtol=1e-6)
    # The tail: 50 real frames (600..649), then the quadratic extrapolated to 650..899.
    expected = quadratic(np.arange(600, 900, dtype=float))
    np.testing.assert_allclose(slices[2, :, 0], expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(slices[2, :, 1], 2 * np.arange(600, 900) + 1, rtol=1e-5)


@pytest.mark.parametrize("n, length, hop, pad, expected", [
    (650, 300, None, "poly", [(0, 300), (300, 300), (600, 50)]),
    (600, 300, None, "poly", [(0, 300), (300, 300)]),
    (650, 300, None, "drop", [(0, 300), (300, 300)]),
    (120, 300, None, "zero", [(0, 120)]),
    (120, 300, None, "drop", []),
    (650, 300, 150, "poly", [(0, 300), (150, 300), (300, 300), (450, 200)]),
    (0, 300, None, "poly", []),
])
def test_slice_starts(n, length, hop, pad, expected):
    assert slice_starts(n, length, hop, pad) == expected


def test_zero_padding_and_short_video():
    values = np.ones((120, 3))
    slices, n_real, _, _ = slice_video(values, length=300, pad="zero")
    assert slices.shape == (1, 300, 3) and n_real.tolist() == [120]
    assert (slices[0, :120] == 1).all() and (slices[0, 120:] == 0).all()


def test_bad_policy():
    with pytest.raises(FacevoxError, match="pad must be one of"):
        slice_starts(10, 5, pad="mirror")


def test_short_gaps_are_interpolated_long_ones_stay_missing():
    t = np.arange(20, dtype=float)
    values = np.stack([t * 10, -t], axis=1)
    valid = np.ones(20, bool)
    valid[3:5] = False     # 2-frame gap: filled
    valid[8:14] = False    # 6-frame gap: too long for max_gap=3
    valid[18:] = False     # at the end: no right neighbour
    filled, missing = interpolate_gaps(values, valid, max_gap=3)
    np.testing.assert_allclose(filled[3:5, 0], [30, 40])  # exact on a line
    np.testing.assert_allclose(filled[3:5, 1], [-3, -4])
    assert np.isnan(filled[8:14]).all() and np.isnan(filled[18:]).all()
    assert missing.tolist() == [i in range(8, 14) or i >= 18 for i in range(20)]
    _, _, n_missing, _ = slice_video(filled, missing, length=10, pad="zero")
    assert n_missing.tolist() == [2, 6]


def test_normalisation_is_fitted_on_train_only(tmp_path):
    rng = np.random.default_rng(0)
    train = {"a": rng.normal(5, 2, (100, 3)), "b": rng.normal(5, 2, (80, 3))}
    train["a"][:, 2] = 7.0
    train["b"][:, 2] = 7.0  # constant on train
    stats = NormStats.fit(train, ["f0", "f1", "f2"], "minmax")
    both = np.concatenate(list(train.values()))
    assert stats.minimum[:2] == pytest.approx(both[:, :2].min(0).tolist())
    assert stats.maximum[:2] == pytest.approx(both[:, :2].max(0).tolist())
    assert stats.n_frames == 180 and stats.videos == ["a", "b"]
    test_video = rng.normal(50, 20, (60, 3))
    out = stats.apply(test_video)
    assert np.isfinite(out).all() and (out[:, 2] == 0).all()  # constant column: 0, not NaN/inf
    np.testing.assert_allclose(out[:, 0], (test_video[:, 0] - stats.minimum[0]) / (stats.maximum[0] - stats.minimum[0]),
                               rtol=1e-5)
    # Saved, reloaded, identical; the test video never enters the statistics.
    path = tmp_path / "norm.json"
    stats.save(path)
    assert NormStats.load(path) == stats
    again = NormStats.fit(train, ["f0", "f1", "f2"], "minmax")
    assert again == stats  # whatever the test video's values are


def test_zscore_and_nan_handling():
    train = {"a": np.array([[1.0, np.nan], [3.0, np.nan], [np.nan, np.nan]])}
    stats = NormStats.fit(train, ["x", "empty"], "zscore")
    assert stats.mean[0] == 2.0 and stats.std[0] == 1.0
    out = stats.apply(np.array([[4.0, 1.0], [np.nan, 2.0]]))
    assert out[0, 0] == 2.0 and out[0, 1] == 0.0  # a column with no training value: 0
    assert np.isnan(out[1, 0])  # a gap stays a gap


def test_bad_method_and_empty_train(tmp_path):
    with pytest.raises(FacevoxError, match="normalisation method"):
        NormStats.fit({"a": np.zeros((2, 1))}, ["x"], "robust")
    with pytest.raises(FacevoxError, match="no training videos"):
        NormStats.fit({}, ["x"])
    bad = tmp_path / "n.json"
    bad.write_text("{}")
    with pytest.raises(FacevoxError, match="not a facevox normalisation file"):
        NormStats.load(bad)
