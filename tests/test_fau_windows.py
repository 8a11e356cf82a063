"""Stage fau_windows (facevox.extract.fau_windows): AVEC moving mean/std, hand-computed,
and the ``avec`` convention against the AVEC 2019 script's own output (tests/fixtures/avec2019)."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facevox.contract import (
    AU_COLUMNS,
    AU_SCHEMA,
    FAU_AVEC_STAT_COLUMNS,
    FAU_STAT_COLUMNS,
    FAU_WINDOWS_AVEC_SCHEMA,
    FAU_WINDOWS_SCHEMA,
)
from facevox.errors import FacevoxError
from facevox.extract import fau_windows
from facevox.io import read_table, write_table

FIXTURES = Path(__file__).parent / "fixtures" / "avec2019"


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
    assert meta["au_backend"] == "landmarks"
    assert meta["params"] == {"convention": "paper", "window": 50, "hop": 5, "window_s": None, "hop_s": None,
                              "fps": None, "no_face": "drop"}
    assert meta["windowing"] == {"convention": "paper", "fps": 50.0, "fps_source": "timestamps",
                                 "window_frames": 50, "hop_frames": 5, "window_s": 1.0, "hop_s": 0.1}
    assert summary["windowing"] == meta["windowing"]


# --------------------------------------------------------------------------- seconds
def test_window_in_seconds_gives_the_same_time_at_24_and_50_fps():
    for fps, window, hop in ((50.0, 100, 5), (24.0, 48, 2)):  # 2 s, 0.1 s -> round(0.1 * 24) = 2
        aus = au_table(240, fps=fps)
        df, w = fau_windows.compute(aus, {"window_s": 2.0, "hop_s": 0.1})
        assert (w["fps"], w["fps_source"], w["window_frames"], w["hop_frames"]) == (fps, "timestamps", window, hop)
        assert w["window_s"] == pytest.approx(2.0)
        assert df.equals(fau_windows.windows(aus, window, hop))


def test_measured_fps_is_rounded_and_config_fps_wins():
    assert fau_windows.measured_fps(np.arange(10) * 1001 / 30000) == 29.97
    assert fau_windows.measured_fps(np.arange(10) * 0.04 + 1e-12 * np.arange(10)) == 25.0
    assert fau_windows.measured_fps([0.0]) is None
    _, w = fau_windows.compute(au_table(100, fps=25.0), {"window_s": 1.0, "fps": 50})
    assert (w["fps"], w["fps_source"], w["window_frames"]) == (50, "config", 50)


def test_seconds_without_a_measurable_frame_rate_is_a_clear_error():
    with pytest.raises(FacevoxError, match="set fau_windows.fps"):
        fau_windows.compute(au_table(1), {"window_s": 1.0})


# --------------------------------------------------------------------------- avec
def test_avec_hand_computed_100_frames():
    """half = int(1.0 * 50 / 2) = 25: rows [c-25, c+25] (51 frames); centres int(t * 50 * 0.1) = 5t
    while c <= 100: 21 windows (paper has 20), the last centred on the row after the end."""
    aus = au_table(100)
    df, w = fau_windows.compute(aus, {"convention": "avec", "window_s": 1.0, "hop_s": 0.1})
    assert list(df.columns) == FAU_WINDOWS_AVEC_SCHEMA.names
    assert FAU_AVEC_STAT_COLUMNS[:2] == ["confidence_mean", "AU01_r_mean"]
    assert FAU_AVEC_STAT_COLUMNS[18] == "confidence_std"
    assert (w["half"], w["window_frames"], w["hop_frames"], w["window_s"]) == (25, 51, 5.0, 1.02)
    assert len(df) == 21 and len(fau_windows.windows(aus, 50, 5)) == 20
    w0, w10, last = df.iloc[0], df.iloc[10], df.iloc[-1]
    assert (w0["first_frame"], w0["last_frame"], w0["n_used"]) == (0, 25, 26)  # rows 0..25
    assert w0["AU01_r_mean"] == pytest.approx(12.5) and w0["AU01_r_std"] == pytest.approx(np.sqrt((26**2 - 1) / 12))
    assert (w10["centre_frame"], w10["first_frame"], w10["last_frame"], w10["n_used"]) == (50, 25, 75, 51)
    assert w10["AU01_r_mean"] == pytest.approx(50.0) and w10["AU01_r_std"] == pytest.approx(np.sqrt((51**2 - 1) / 12))
    a02 = np.arange(25, 76) % 7
    assert w10["AU02_r_mean"] == pytest.approx(a02.mean()) and w10["AU02_r_std"] == pytest.approx(a02.std())
    assert w10["centre_s"] == pytest.approx(1.0)
    assert (last["centre_frame"], last["first_frame"], last["last_frame"], last["n_used"]) == (100, 75, 99, 25)
    assert last["AU01_r_mean"] == pytest.approx(87.0) and last["centre_s"] == pytest.approx(2.0)
    assert df["AU45_r_mean"].isna().all()  # never estimated: NaN, not OpenFace's 0


def test_avec_centres_truncate_like_the_script():
    """int(t * fps * hop_s) in doubles, as the script computes it: at 30 fps and hop 0.7 s,
    3 * 30 * 0.7 = 62.99999999999999 -> centre 62, not 63 (at hop 0.1 the common rates
    24 / 25 / 29.97 / 30 / 50 give exact multiples)."""
    assert fau_windows.avec_centres(1000, 60, fps=30.0, hop_s=0.7)[:4].tolist() == [0, 21, 42, 62]
    for fps, hop_s in ((24.0, 0.1), (29.97, 0.1), (30.0, 0.7), (50.0, 0.1)):
        centres = fau_windows.avec_centres(1000, 60, fps=fps, hop_s=hop_s)
        assert centres.tolist() == [int(t * fps * hop_s) for t in range(len(centres))]
        assert centres[-1] <= 1000 < int(len(centres) * fps * hop_s)  # the last centre may be row n


def test_avec_frames_without_face_enter_as_zero():
    face = np.ones(100, bool)
    face[40:60] = False
    aus = au_table(100, face=face)
    aus.loc[~face, ["confidence", *AU_COLUMNS]] = np.nan  # as facevox writes them
    df, _ = fau_windows.compute(aus, {"convention": "avec", "window": 50, "hop": 5, "no_face": "drop"})
    w = df.iloc[10]  # centre 50: rows 25..75, 51 frames, 20 of them without a face
    rows = np.arange(25, 76)
    au01 = np.where((rows >= 40) & (rows < 60), 0.0, rows)
    conf = np.where((rows >= 40) & (rows < 60), 0.0, 0.9)
    assert w["n_used"] == 51
    assert w["AU01_r_mean"] == pytest.approx(au01.mean()) and w["AU01_r_std"] == pytest.approx(au01.std())
    assert w["confidence_mean"] == pytest.approx(conf.mean()) and w["confidence_std"] == pytest.approx(conf.std())


def test_avec_tables_round_trip_and_models_read_them_by_name(tmp_path):
    src = tmp_path / "au.parquet"
    write_table(au_table(100), src, AU_SCHEMA, {"stage": "action_units", "au_estimated": ["AU01_r", "AU02_r"]})
    fau_windows.run(src, tmp_path / "w.parquet", {"convention": "avec", "window_s": 1.0, "hop_s": 0.1})
    df, meta = fau_windows.read_windows(tmp_path / "w.parquet")
    assert list(df.columns) == FAU_WINDOWS_AVEC_SCHEMA.names and meta["windowing"]["convention"] == "avec"
    assert set(FAU_STAT_COLUMNS) == set(FAU_AVEC_STAT_COLUMNS)
    paper = tmp_path / "p.parquet"
    fau_windows.run(src, paper, {})
    assert list(fau_windows.read_windows(paper)[0].columns) == FAU_WINDOWS_SCHEMA.names


def _frames(name: str) -> pd.DataFrame:
    """A fixture's per-frame table (the columns the AVEC script reads); the AU table's other
    columns (pose, gaze, blendshapes) are absent there and stay NaN."""
    df = pd.read_csv(FIXTURES / name)
    for f in AU_SCHEMA:
        if f.name not in df:
            df[f.name] = np.nan
    return df.astype({f.name: f.type.to_pandas_dtype() for f in AU_SCHEMA})[AU_SCHEMA.names]


CASES = json.loads((FIXTURES / "cases.json").read_text())["cases"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_avec_equals_the_avec2019_script(case):
    """The AVEC 2019 generate_functionals.py, run on the same per-frame table (how:
    tests/fixtures/avec2019/README.md): every window, time and value; the float32
    functionals equal the script's float64 results rounded to float32, bit for bit."""
    c = CASES[case]
    script = pd.read_csv(FIXTURES / f"{case}_script.csv")
    aus = _frames(c["frames"])
    df, w = fau_windows.compute(aus, {"convention": "avec", "window_s": c["window_s"], "hop_s": c["hop_s"],
                                      "fps": c["fps"]}, estimated=c["au_estimated"])
    assert len(df) == len(script) == c["n_windows"]
    assert np.array_equal(df["centre_s"].to_numpy(), script["time_s"].to_numpy())
    ours = df[FAU_AVEC_STAT_COLUMNS].to_numpy(np.float32)
    theirs = script[FAU_AVEC_STAT_COLUMNS].to_numpy(np.float32)
    assert np.array_equal(ours, theirs, equal_nan=True)
    assert c["float32_equal"] and c["max_abs_delta_vs_script_float64"] < 3e-7


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
