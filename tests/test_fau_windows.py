"""Stage fau_windows (facevox.extract.fau_windows): AVEC moving mean/std, hand-computed."""
import numpy as np
import pandas as pd
import pytest

from facevox.extract import fau_windows
from facevox.contract import AU_COLUMNS, AU_SCHEMA, FAU_WINDOWS_SCHEMA
from facevox.io import read_table, write_table


def au_table(n=120, fps=50.0, face=None):
    """AU01_r = frame index, AU02_r = (frame % 7), confidence = 0.9; others NaN (not estimated)."""
    frames = np.arange(n)
    df = pd.DataFrame({
        "frame": frames.astype(np.int32),
        "timestamp_s": frames / fps,
        "success": np.ones(n, bool) if face is None else face,
        "confidence": np.full(n, 0.9, np.float32),
    })
    for c in AU_COLUMNS:
        df[c] = np.float32(np.nan)
    df["AU01_r"] = frames.astype(np.float32)
    df["AU02_r"] = (frames % 7).astype(np.float32)
    return df.reindex(columns=AU_SCHEMA.names)  # the pose, gaze and blendshape columns NaN


@pytest.mark.parametrize("n, hop, expected", [(120, 5, 24), (121, 5, 25), (1, 5, 1), (0, 5, 0), (50, 1, 50)])
def test_window_count_formula(n, hop, expected):
    assert fau_windows.n_windows(n, hop) == expected
    assert len(fau_windows.windows(au_table(n), 50, hop)) == expected


def test_hand_computed_120_frames():
    out = fau_windows.windows(au_table(120), window=50, hop=5)
    assert list(out.columns) == FAU_WINDOWS_SCHEMA.names
    # First window: centre 0, truncated to frames 0..24 (25 frames).
    w0 = out.iloc[0]
    assert (w0["first_frame"], w0["last_frame"], w0["n_used"]) == (0, 24, 25)
    assert w0["AU01_r_mean"] == pytest.approx(12.0)  # mean(0..24)
    assert w0["AU01_r_std"] == pytest.approx(np.sqrt((25**2 - 1) / 12))  # ddof 0 of 25 consecutive ints
    a02 = np.arange(0, 25) % 7
    assert w0["AU02_r_mean"] == pytest.approx(a02.mean()) and w0["AU02_r_std"] == pytest.approx(a02.std())
    # A middle window: centre 60 covers 35..84 (50 frames, full).
    w12 = out.iloc[12]
    assert (w12["centre_frame"], w12["first_frame"], w12["last_frame"], w12["n_used"]) == (60, 35, 84, 50)
    assert w12["AU01_r_mean"] == pytest.approx(59.5)
    assert w12["AU01_r_std"] == pytest.approx(np.sqrt((50**2 - 1) / 12))
    assert w12["centre_s"] == pytest.approx(60 / 50)
    # Last window: centre 115 covers 90..119 (30 frames).
    w = out.iloc[-1]
    assert (w["centre_frame"], w["first_frame"], w["last_frame"], w["n_used"]) == (115, 90, 119, 30)
    assert w["AU01_r_mean"] == pytest.approx(104.5)
    assert w["confidence_mean"] == pytest.approx(0.9) and w["confidence_std"] == pytest.approx(0.0, abs=1e-6)
    # AUs the backend did not estimate stay NaN.
    assert out["AU45_r_mean"].isna().all() and out["AU45_r_std"].isna().all()


def test_frames_without_face_drop_or_zero():
    face = np.ones(120, bool)
    face[30:40] = False
    dropped = fau_windows.windows(au_table(120, face=face), 50, 5, "drop").iloc[6]  # centre 30: 5..54
    kept = np.r_[5:30, 40:55]
    assert dropped["n_used"] == len(kept) == 40
    assert dropped["AU01_r_mean"] == pytest.approx(kept.mean())
    assert dropped["AU01_r_std"] == pytest.approx(kept.std())
    zeroed = fau_windows.windows(au_table(120, face=face), 50, 5, "zero").iloc[6]
    vals = np.where((np.arange(5, 55) >= 30) & (np.arange(5, 55) < 40), 0, np.arange(5, 55))
    assert zeroed["n_used"] == 50
    assert zeroed["AU01_r_mean"] == pytest.approx(vals.mean())
    conf = np.where((np.arange(5, 55) >= 30) & (np.arange(5, 55) < 40), 0, 0.9)
    assert zeroed["confidence_mean"] == pytest.approx(conf.mean())


def test_window_with_no_face_is_nan():
    out = fau_windows.windows(au_table(60, face=np.zeros(60, bool)), 50, 5, "drop")
    assert (out["n_used"] == 0).all() and out["AU01_r_mean"].isna().all()


def test_run_round_trip(tmp_path):
    src = tmp_path / "au.parquet"
    write_table(au_table(120), src, AU_SCHEMA, {"stage": "action_units", "au_backend": "landmarks",
                                                "au_estimated": ["AU01_r", "AU02_r"]})
    summary = fau_windows.run(src, tmp_path / "w.parquet", {"window": 50, "hop": 5})
    df, meta = read_table(tmp_path / "w.parquet", FAU_WINDOWS_SCHEMA)
    assert summary["n_windows"] == len(df) == 24
    assert meta["au_backend"] == "landmarks" and meta["params"] == {"window": 50, "hop": 5, "no_face": "drop"}


def test_pose_and_gaze_functionals_beside_the_aus():
    """Issue 15: pose/gaze mean and std per window, after the AU functionals (NaN when absent)."""
    from facevox.contract import FAU_POSE_GAZE_STAT_COLUMNS, FAU_STAT_COLUMNS

    aus = au_table(120)
    aus["pose_Rx"] = (np.arange(120) * 0.01).astype(np.float32)  # radians
    aus["gaze_angle_x"] = np.float32(-0.2)
    out = fau_windows.windows(aus, window=50, hop=5)
    assert list(out.columns[-len(FAU_POSE_GAZE_STAT_COLUMNS):]) == FAU_POSE_GAZE_STAT_COLUMNS
    assert list(out.columns).index("pose_Rx_mean") == 6 + len(FAU_STAT_COLUMNS)
    assert out["pose_Rx_mean"].iloc[0] == pytest.approx(0.12)  # mean(0..24) * 0.01
    assert out["pose_Rx_std"].iloc[0] == pytest.approx(0.01 * np.sqrt((25**2 - 1) / 12), rel=1e-5)
    assert out["gaze_angle_x_mean"].eq(np.float32(-0.2)).all() and out["gaze_angle_x_std"].eq(0).all()
    assert out["pose_Tz_mean"].isna().all()  # a backend without translation
