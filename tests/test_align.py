"""Tests for facevox.extract.align: both streams resampled onto one grid.

Every expected value below is worked out by hand from the rule in the module
docstring: an output row owns ``[start, end)``; its value is the mean of the
source rows whose time falls inside; an eGeMAPS row's time is
``(start_s + end_s) / 2``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facevox.contract import (
    ALIGNED_SCHEMA,
    EGEMAPS_COLUMNS,
    EGEMAPS_SCHEMA,
    F0_COLUMN,
    LANDMARK_COLUMNS,
    LANDMARKS_SCHEMA,
)
from facevox.errors import FacevoxError
from facevox.extract import align as align_mod
from facevox.extract.align import align
from facevox.io import read_table, write_table

N_LM = len(LANDMARK_COLUMNS)  # 136
N_EG = len(EGEMAPS_COLUMNS)  # 25
#: Written into frames without a face: a value that would wreck any mean it leaked into.
POISON = 1.0e6


# --------------------------------------------------------------------------- helpers
def make_landmarks(times, success) -> pd.DataFrame:
    """Frame f, landmark column j holds ``1000*f + j`` when the frame has a face.

    Frames without a face hold POISON (not NaN), so a test fails loudly if
    ``align`` ever uses landmarks of a frame whose ``success`` is False.
    """
    times = np.asarray(times, np.float64)
    success = np.asarray(success, bool)
    n = len(times)
    frame = np.arange(n, dtype=np.int32)
    values = 1000.0 * frame[:, None] + np.arange(N_LM)[None, :]
    values[~success] = POISON
    data = {
        "frame": frame,
        "timestamp_s": times,
        "success": success,
        "detected": np.ones(n, bool),
        "reason": np.where(success, "", "no_face"),
        "n_faces": success.astype(np.int16),
        "confidence": np.where(success, 1.0, np.nan).astype(np.float32),
        "box_left": np.zeros(n, np.float32),
        "box_top": np.zeros(n, np.float32),
        "box_width": np.full(n, 100.0, np.float32),
        "box_height": np.full(n, 100.0, np.float32),
    }
    data.update({c: values[:, i].astype(np.float32) for i, c in enumerate(LANDMARK_COLUMNS)})
    return pd.DataFrame(data)


def lm_value(frame: float, j: int) -> float:
    """Landmark column j of frame ``frame`` (or the mean frame number of several)."""
    return 1000.0 * frame + j


def make_egemaps(starts, ends, ramp) -> pd.DataFrame:
    """eGeMAPS rows; column j of the row with ramp value r holds ``r + 100*j``."""
    ramp = np.asarray(ramp, np.float64)
    data = {"start_s": np.asarray(starts, np.float64), "end_s": np.asarray(ends, np.float64)}
    data.update({c: (ramp + 100.0 * j).astype(np.float32) for j, c in enumerate(EGEMAPS_COLUMNS)})
    return pd.DataFrame(data)


def hop_egemaps(k) -> pd.DataFrame:
    """opensmile-like rows k: start = k*10 ms, end = start + 20 ms, ramp value k.

    The row's time (its centre) is therefore ``(k + 1) * 0.01`` s.  Start and
    end are rounded to whole milliseconds, as literals in a file would be.
    """
    k = np.asarray(k)
    starts = np.round(k * 0.01, 2)
    ends = np.round(starts + 0.02, 2)
    return make_egemaps(starts, ends, k)


def empty_egemaps() -> pd.DataFrame:
    return make_egemaps([], [], [])


def eg_value(ramp_mean: float, j: int) -> float:
    return ramp_mean + 100.0 * j


def assert_landmarks(row: pd.Series, frame_mean: float | None) -> None:
    got = row[LANDMARK_COLUMNS].to_numpy(np.float64)
    if frame_mean is None:
        assert np.isnan(got).all()
    else:
        want = [lm_value(frame_mean, j) for j in range(N_LM)]
        np.testing.assert_allclose(got, want, rtol=1e-6)


def assert_egemaps(row: pd.Series, ramp_mean: float | None) -> None:
    got = row[EGEMAPS_COLUMNS].to_numpy(np.float64)
    if ramp_mean is None:
        assert np.isnan(got).all()
    else:
        want = [eg_value(ramp_mean, j) for j in range(N_EG)]
        np.testing.assert_allclose(got, want, rtol=1e-6)


# --------------------------------------------------------------------------- (a) native
@pytest.fixture
def native():
    """4 frames at 25 fps (frame 2 without a face), opensmile rows k = 0..17."""
    lm = make_landmarks([0.00, 0.04, 0.08, 0.12], [True, True, False, True])
    eg = hop_egemaps(np.arange(18))  # centres 0.01, 0.02, ..., 0.18
    return align(lm, eg, "native")


def test_native_one_row_per_frame(native):
    assert native["index"].tolist() == [0, 1, 2, 3]
    assert native["timestamp_s"].tolist() == [0.00, 0.04, 0.08, 0.12]


def test_native_egemaps_mean_per_frame_interval(native):
    # frame 0 owns [0.00, 0.04): centres 0.01 0.02 0.03        -> k 0,1,2     -> (0+1+2)/3     = 1.0
    # frame 1 owns [0.04, 0.08): centres 0.04 0.05 0.06 0.07   -> k 3,4,5,6   -> (3+4+5+6)/4   = 4.5
    # frame 2 owns [0.08, 0.12): centres 0.08 .. 0.11          -> k 7..10     -> (7+8+9+10)/4  = 8.5
    # frame 3 is last: owns one median interval (0.04), [0.12, 0.16)
    #                            centres 0.12 .. 0.15          -> k 11..14    -> (11+..+14)/4  = 12.5
    # rows k 15, 16, 17 (centres 0.16, 0.17, 0.18) fall after the last interval: unused.
    for i, ramp_mean in enumerate([(0 + 1 + 2) / 3, (3 + 4 + 5 + 6) / 4,
                                   (7 + 8 + 9 + 10) / 4, (11 + 12 + 13 + 14) / 4]):
        assert_egemaps(native.iloc[i], ramp_mean)
    assert native["audio_success"].tolist() == [True, True, True, True]


def test_native_landmarks_are_the_frames_own(native):
    assert_landmarks(native.iloc[0], 0)
    assert_landmarks(native.iloc[1], 1)
    assert_landmarks(native.iloc[2], None)  # no face: NaN, never the stored values
    assert_landmarks(native.iloc[3], 3)


def test_native_face_fraction_and_success(native):
    assert native["face_fraction"].tolist() == [1.0, 1.0, 0.0, 1.0]
    assert native["face_success"].tolist() == [True, True, False, True]


def test_native_last_frame_owns_the_median_interval_not_the_last_one():
    # intervals 0.25, 0.25, 0.5 -> median 0.25, so the last frame owns [1.0, 1.25).
    lm = make_landmarks([0.0, 0.25, 0.5, 1.0], [True] * 4)
    # centres 1.125 (inside) and 1.375 (inside only if the last interval, 0.5, were used)
    eg = make_egemaps([1.0, 1.25], [1.25, 1.5], [7.0, 40.0])
    out = align(lm, eg, "native")
    assert_egemaps(out.iloc[3], 7.0)
    assert out["audio_success"].tolist() == [False, False, False, True]


def test_native_interval_is_half_open():
    # Exactly representable times: frame 0 owns [0, 0.5), frame 1 owns [0.5, 1.0).
    lm = make_landmarks([0.0, 0.5], [True, True])
    # centres 0.0 (frame 0), 0.5 (frame 1: a start belongs to the later row), 1.0 (no row)
    eg = make_egemaps([-0.25, 0.25, 0.75], [0.25, 0.75, 1.25], [1.0, 2.0, 3.0])
    out = align(lm, eg, "native")
    assert_egemaps(out.iloc[0], 1.0)
    assert_egemaps(out.iloc[1], 2.0)


def test_native_index_is_the_frame_column():
    lm = make_landmarks([0.0, 0.5], [True, True])
    lm["frame"] = np.array([10, 11], np.int32)
    out = align(lm, empty_egemaps(), "native")
    assert out["index"].tolist() == [10, 11]


# --------------------------------------------------------------------------- (b) rate_hz
#: 10 fps from t = 1.2 s to 3.6 s: 25 frames, f = 0..24, t = 1.2 + f/10.
RATE_TIMES = np.round(1.2 + 0.1 * np.arange(25), 1)
#: Bin 1 [1,2): f 0..7 (8 frames),  face on f 0,1,2,3           -> 4/8  = 0.5
#: Bin 2 [2,3): f 8..17 (10 frames), face on f 8 (t 2.0), 13 (t 2.5) -> 2/10 = 0.2
#: Bin 3 [3,4): f 18..24 (7 frames), face on f 18..23           -> 6/7
RATE_FACE = np.zeros(25, bool)
RATE_FACE[[0, 1, 2, 3, 8, 13, 18, 19, 20, 21, 22, 23]] = True


@pytest.fixture
def per_second():
    lm = make_landmarks(RATE_TIMES, RATE_FACE)
    eg = hop_egemaps(np.arange(380))  # centres 0.01 .. 3.80
    return align(lm, eg, 1)


def test_rate_bins_start_at_the_first_frames_bin(per_second):
    # first frame 1.2 s -> bin 1, last frame 3.6 s -> bin 3
    assert per_second["index"].tolist() == [1, 2, 3]
    assert per_second["timestamp_s"].tolist() == [1.0, 2.0, 3.0]


def test_rate_face_fraction_and_threshold(per_second):
    np.testing.assert_allclose(per_second["face_fraction"], [4 / 8, 2 / 10, 6 / 7], rtol=1e-6)
    # 0.5 is enough (>=), 0.2 is not
    assert per_second["face_success"].tolist() == [True, False, True]


def test_rate_landmarks_are_means_over_face_frames_only(per_second):
    assert_landmarks(per_second.iloc[0], (0 + 1 + 2 + 3) / 4)  # 1.5
    assert_landmarks(per_second.iloc[1], (8 + 13) / 2)  # 10.5, even though face_success is False
    assert_landmarks(per_second.iloc[2], (18 + 19 + 20 + 21 + 22 + 23) / 6)  # 20.5


def test_rate_egemaps_means_per_second(per_second):
    # centre (k+1)/100 in [1, 2) -> k 99..198 -> mean (99+198)/2  = 148.5
    # centre in [2, 3)           -> k 199..298 -> mean            = 248.5
    # centre in [3, 4)           -> k 299..379 (rows end at 3.80) -> mean (299+379)/2 = 339.0
    # rows k 0..98 (before bin 1) are unused.
    assert_egemaps(per_second.iloc[0], (99 + 198) / 2)
    assert_egemaps(per_second.iloc[1], (199 + 298) / 2)
    assert_egemaps(per_second.iloc[2], (299 + 379) / 2)
    assert per_second["audio_success"].tolist() == [True, True, True]


def test_rate_bin_without_frames_has_no_face():
    # frames at 0.1 s and 2.1 s: bin 1 holds no frame at all
    lm = make_landmarks([0.1, 2.1], [True, True])
    out = align(lm, empty_egemaps(), 1)
    assert out["index"].tolist() == [0, 1, 2]
    assert out["face_fraction"].tolist() == [1.0, 0.0, 1.0]
    assert out["face_success"].tolist() == [True, False, True]
    assert_landmarks(out.iloc[0], 0)
    assert_landmarks(out.iloc[1], None)
    assert_landmarks(out.iloc[2], 1)


def test_rate_other_than_one():
    # rate 4 Hz: row k owns [k/4, (k+1)/4); frames 0.25..0.875 -> bins 1, 2, 3
    lm = make_landmarks([0.25, 0.375, 0.5, 0.875], [True, False, True, True])
    eg = make_egemaps([0.25, 0.5, 0.75], [0.5, 0.75, 1.0], [2.0, 4.0, 8.0])  # centres 0.375 0.625 0.875
    out = align(lm, eg, 4)
    assert out["index"].tolist() == [1, 2, 3]
    assert out["timestamp_s"].tolist() == [0.25, 0.5, 0.75]
    np.testing.assert_allclose(out["face_fraction"], [1 / 2, 1.0, 1.0])
    assert_landmarks(out.iloc[0], 0)  # frame 1 has no face
    assert_landmarks(out.iloc[1], 2)
    assert_landmarks(out.iloc[2], 3)
    assert_egemaps(out.iloc[0], 2.0)
    assert_egemaps(out.iloc[1], 4.0)
    assert_egemaps(out.iloc[2], 8.0)


def test_rate_first_frame_just_below_a_bin_edge():
    """Regression: t = 3*0.3 = 0.8999999999999999 but t*10 rounds to 9.0. The documented
    rule (bin = floor(t*R)) puts it in bin 9 and the grid starts there: no bin -1 crash."""
    t0 = 3 * 0.3
    assert np.floor(t0 * 10) == 9
    lm = make_landmarks([t0, 1.0], [True, True])
    out = align(lm, empty_egemaps(), 10)
    assert out["index"].tolist() == [9, 10]
    assert out["face_fraction"].tolist() == [1.0, 1.0]
    # and at the other end: frames [0, 3*0.3] give exactly bins 0..9, no empty extra row
    out = align(make_landmarks([0.0, t0], [True, True]), empty_egemaps(), 10)
    assert out["index"].tolist() == list(range(10))
    assert out["face_fraction"].iloc[-1] == 1.0


# --------------------------------------------------------------------------- (c) no rows
def test_rate_bin_without_egemaps_rows_is_nan():
    lm = make_landmarks(RATE_TIMES, RATE_FACE)
    k = np.concatenate([np.arange(99, 199), np.arange(299, 380)])  # nothing centred in [2, 3)
    out = align(lm, hop_egemaps(k), 1)
    assert out["audio_success"].tolist() == [True, False, True]
    assert_egemaps(out.iloc[0], (99 + 198) / 2)
    assert_egemaps(out.iloc[1], None)
    assert_egemaps(out.iloc[2], (299 + 379) / 2)
    # the face side of that row is unaffected
    assert_landmarks(out.iloc[1], (8 + 13) / 2)


def test_native_frame_without_egemaps_rows_is_nan():
    lm = make_landmarks([0.00, 0.04, 0.08, 0.12], [True] * 4)
    k = np.array([0, 1, 2, 11, 12, 13, 14])  # frames 1 and 2 get no row
    out = align(lm, hop_egemaps(k), "native")
    assert out["audio_success"].tolist() == [True, False, False, True]
    assert_egemaps(out.iloc[0], 1.0)
    assert_egemaps(out.iloc[1], None)
    assert_egemaps(out.iloc[2], None)
    assert_egemaps(out.iloc[3], 12.5)


# --------------------------------------------------------------------------- (d) no audio
@pytest.mark.parametrize("rate, n_rows", [("native", 25), (1, 3)])
def test_empty_egemaps_table(rate, n_rows):
    lm = make_landmarks(RATE_TIMES, RATE_FACE)
    out = align(lm, empty_egemaps(), rate)
    assert out.shape == (n_rows, 5 + N_LM + N_EG)
    assert not out["audio_success"].any()
    assert out[EGEMAPS_COLUMNS].isna().all().all()
    # landmarks are still there
    assert out["face_success"].any()


# --------------------------------------------------------------------------- (e) nan-mean
def test_nan_values_are_skipped_in_the_mean():
    lm = make_landmarks([0.00, 0.04, 0.08, 0.12], [True] * 4)
    eg = hop_egemaps(np.arange(18))
    f0 = EGEMAPS_COLUMNS.index(F0_COLUMN)
    eg.loc[[3, 4], F0_COLUMN] = np.nan  # frame 1's rows are k 3..6
    eg.loc[[7, 8, 9, 10], F0_COLUMN] = np.nan  # all of frame 2's rows
    out = align(lm, eg, "native")
    # frame 1: F0 is the mean of k 5 and 6 only -> 5.5 (+100*j); other columns untouched
    assert out.loc[1, F0_COLUMN] == pytest.approx(eg_value((5 + 6) / 2, f0))
    assert out.loc[1, "Loudness_sma3"] == pytest.approx(eg_value(4.5, 0))
    # frame 2: no valid F0 value -> NaN, but rows did fall in, so audio_success stays True
    assert np.isnan(out.loc[2, F0_COLUMN])
    assert out.loc[2, "Loudness_sma3"] == pytest.approx(eg_value(8.5, 0))
    assert out["audio_success"].tolist() == [True, True, True, True]


# --------------------------------------------------------------------------- (f) rate
@pytest.mark.parametrize("rate", ["fast", 0, -1, 0.0, float("nan")])
def test_invalid_rate_raises(rate):
    lm = make_landmarks([0.0, 0.5], [True, True])
    with pytest.raises(FacevoxError, match="rate_hz"):
        align(lm, empty_egemaps(), rate)


# --------------------------------------------------------------------------- (g) contract
@pytest.mark.parametrize("rate", ["native", 1])
def test_columns_follow_the_contract(rate):
    out = align(make_landmarks(RATE_TIMES, RATE_FACE), hop_egemaps(np.arange(380)), rate)
    assert list(out.columns) == ALIGNED_SCHEMA.names


def test_run_round_trip(tmp_path):
    lm_path, eg_path, out_path = tmp_path / "lm.parquet", tmp_path / "eg.parquet", tmp_path / "al.parquet"
    write_table(make_landmarks(RATE_TIMES, RATE_FACE), lm_path, LANDMARKS_SCHEMA, {"stage": "landmarks"})
    write_table(hop_egemaps(np.arange(380)), eg_path, EGEMAPS_SCHEMA,
                {"stage": "egemaps", "audio_status": "ok"})

    summary = align_mod.run(lm_path, eg_path, out_path, params={"rate_hz": 1})
    assert summary == {"n_rows": 3, "audio_status": "ok"}

    df, prov = read_table(out_path, ALIGNED_SCHEMA)
    assert prov["stage"] == "align"
    assert prov["params"] == {"rate_hz": 1}
    assert prov["inputs"]["landmarks"]["name"] == "lm.parquet"
    assert prov["inputs"]["egemaps"]["name"] == "eg.parquet"
    assert list(df.columns) == ALIGNED_SCHEMA.names
    assert df["index"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(df["face_fraction"], [0.5, 0.2, 6 / 7], rtol=1e-6)
    assert_landmarks(df.iloc[0], 1.5)
    assert_egemaps(df.iloc[1], 248.5)


def test_run_rejects_invalid_params(tmp_path):
    with pytest.raises(FacevoxError, match="align.rate_hz"):
        align_mod.run(tmp_path / "lm.parquet", tmp_path / "eg.parquet", tmp_path / "al.parquet",
                      params={"rate_hz": "fast"})
