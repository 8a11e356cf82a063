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
                              "fps": None, "no_face": "drop", "turns_hangover_s": 0.15}
    assert df["turns"].isna().all() and meta["turns"]["audio_status"] == "not_given"  # no eGeMAPS given
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
    assert list(out.columns).index("turns") == 6 + len(FAU_STAT_COLUMNS)  # the 37 model inputs, then these
    assert list(out.columns).index("pose_Rx_mean") == 6 + len(FAU_STAT_COLUMNS) + 1
    assert out["pose_Rx_mean"].iloc[0] == pytest.approx(0.12)  # mean(0..24) * 0.01
    assert out["pose_Rx_std"].iloc[0] == pytest.approx(0.01 * np.sqrt((25**2 - 1) / 12), rel=1e-5)
    assert out["gaze_angle_x_mean"].eq(np.float32(-0.2)).all() and out["gaze_angle_x_std"].eq(0).all()
    assert out["pose_Tz_mean"].isna().all()  # a backend without translation


# --------------------------------------------------------------------------- turns (voice activity)
#: Planted speech: espeak-ng's sentence placed at SPEECH_AT s into an AUDIO_S s silent track.
SPEECH_AT, AUDIO_S, RATE = 3.0, 8.0, 16000
#: How far from the planted speech's ends the activity may differ from the truth: the
#: hangover (0.15 s) plus 0.1 s for opensmile's 60 ms F0 frame and the AAC encoder's delay.
MARGIN = 0.15 + 0.1


@pytest.fixture(scope="module")
def planted(media_dir):
    """(16 kHz track, speech onset s, speech offset s): one espeak-ng sentence, no pause in it,
    between silences; the span is where the waveform exceeds 1 % of its peak."""
    import subprocess

    from tests.conftest import read_audio, require

    wav = media_dir / "fox.wav"
    subprocess.run([require("espeak-ng"), "-s", "140", "-w", str(wav), "the quick brown fox jumps over the lazy dog"],
                   check=True)
    speech = read_audio(wav, RATE)
    loud = np.flatnonzero(np.abs(speech) > 0.01 * np.abs(speech).max())
    track = np.zeros(int(AUDIO_S * RATE), np.float32)
    start = int(SPEECH_AT * RATE)
    track[start:start + len(speech)] = speech
    return track, SPEECH_AT + loud[0] / RATE, SPEECH_AT + loud[-1] / RATE


def spans(frame_t, onset, offset, step):
    """Frames (of length ``step``) inside the speech with MARGIN to spare, and in silence
    with MARGIN to spare (before the speech, or after it and before the audio ends)."""
    inside = (frame_t >= onset + MARGIN) & (frame_t + step <= offset - MARGIN)
    silent = (frame_t + step <= onset - MARGIN) | ((frame_t >= offset + MARGIN) & (frame_t + step <= AUDIO_S - 0.1))
    return inside, silent


def test_voice_activity_is_one_in_planted_speech_zero_in_silence_nan_without_audio(planted):
    from facevox.extract import egemaps
    from facevox.extract.voice_activity import frame_activity, speech_rows

    track, onset, offset = planted
    lld = egemaps.lld_frame(track, RATE)
    assert offset - onset > 2.5  # a sentence long enough for whole 1 s windows inside it
    # Per eGeMAPS row: the hangover bridges the unvoiced gaps inside the sentence (<= 0.3 s).
    rows_t = ((lld["start_s"] + lld["end_s"]) / 2).to_numpy()
    speech = speech_rows(lld)
    assert speech[(rows_t > onset + MARGIN) & (rows_t < offset - MARGIN)].all()
    assert not speech[(rows_t < onset - MARGIN) | (rows_t > offset + MARGIN)].any()
    voiced = speech_rows(lld, hangover_s=0.0)  # no hangover: gaps inside the sentence remain
    assert 0.5 < voiced[(rows_t > onset) & (rows_t < offset)].mean() < 0.95
    # On 50 fps frames over 10 s of video: the audio ends at 8 s.
    frame_t = np.arange(500) / 50
    activity = frame_activity(frame_t, lld, "ok")
    inside, silent = spans(frame_t, onset, offset, 0.02)
    assert inside.sum() > 100 and silent.sum() > 200
    assert (activity[inside] == 1).all() and (activity[silent] == 0).all()
    assert np.isnan(activity[frame_t >= AUDIO_S]).all() and not np.isnan(activity[frame_t < AUDIO_S - 0.1]).any()
    # Missing audio is not silence.
    for status in ("no_audio_stream", "too_short", "silent"):
        assert np.isnan(frame_activity(frame_t, lld, status)).all()
    assert np.isnan(frame_activity(frame_t, lld.iloc[:0], "ok")).all()


@pytest.mark.parametrize("convention", ["paper", "avec"])
def test_turns_is_the_share_of_the_window_with_speech(planted, convention):
    from facevox.extract import egemaps
    from facevox.extract.voice_activity import frame_activity

    track, onset, offset = planted
    aus = au_table(500, fps=50.0)  # 10 s: the last 2 s have no audio
    activity = frame_activity(aus["timestamp_s"], egemaps.lld_frame(track, RATE), "ok")
    params = {"convention": convention, "window_s": 1.0, "hop_s": 0.1}
    df, _ = fau_windows.compute(aus, params, activity=activity)
    assert list(df.columns) == fau_windows.SCHEMAS[convention].names
    first_s, last_s = df["first_frame"] / 50, (df["last_frame"] + 1) / 50
    inside = (first_s >= onset + MARGIN) & (last_s <= offset - MARGIN)
    silent = (last_s <= onset - MARGIN) | ((first_s >= offset + MARGIN) & (last_s <= AUDIO_S - 0.1))
    no_audio = first_s >= AUDIO_S
    assert inside.sum() >= 10 and silent.sum() >= 20 and no_audio.sum() >= 10
    assert (df.loc[inside, "turns"] == 1).all() and (df.loc[silent, "turns"] == 0).all()
    assert df.loc[no_audio, "turns"].isna().all() and df.loc[~no_audio, "turns"].notna().all()
    # A window across the speech's onset: the share of its frames that are speech (by hand).
    k = int(np.argmin(np.abs(df["centre_s"].to_numpy() - onset)))
    frames = slice(int(df["first_frame"].iloc[k]), int(df["last_frame"].iloc[k]) + 1)
    assert df["turns"].iloc[k] == pytest.approx(np.mean(activity[frames]), abs=1e-6)
    assert 0.2 < df["turns"].iloc[k] < 0.8
    # A window across the audio's end: the mean over its frames with audio only.
    k = int(np.argmin(np.abs(df["centre_s"].to_numpy() - AUDIO_S)))
    part = activity[df["first_frame"].iloc[k]:df["last_frame"].iloc[k] + 1]
    assert np.isnan(part).any() and df["turns"].iloc[k] == np.float32(np.nanmean(part)) == 0


def test_run_takes_turns_from_the_egemaps_table_and_flags_missing_audio(planted, video_only, wolfgang, tmp_path):
    """Planted speech muxed (AAC) with a few video frames; a video without an audio stream; a
    silent track: the stage's turns from egemaps.run's tables, end to end."""
    from facevox.extract import egemaps
    from tests.conftest import write_media

    track, onset, offset = planted
    talking = write_media(tmp_path / "planted.mp4", [np.full((64, 64, 3), 128, np.uint8)] * 12, fps=24,
                          audio=track, rate=RATE)
    aus = tmp_path / "au.parquet"
    write_table(au_table(250, fps=25.0), aus, AU_SCHEMA, {"stage": "action_units", "au_estimated": ["AU01_r"]})
    results = {}
    for name, video in (("planted", talking), ("no_audio", video_only), ("silent", wolfgang)):
        egemaps.run(video, tmp_path / f"{name}.egemaps.parquet")
        s = fau_windows.run(aus, tmp_path / f"{name}.parquet", {"window_s": 1.0, "hop_s": 0.2},
                            egemaps_path=tmp_path / f"{name}.egemaps.parquet")
        df, meta = read_table(tmp_path / f"{name}.parquet", FAU_WINDOWS_SCHEMA)
        assert meta["turns"] == s["turns"] and meta["inputs"]["egemaps"]["name"] == f"{name}.egemaps.parquet"
        results[name] = df, meta["turns"]
    df, turns = results["planted"]
    assert turns["audio_status"] == "ok" and turns["hangover_s"] == 0.15
    assert turns["frames"] == 250 and 195 <= turns["frames_with_audio"] <= 200  # 8 s of 10 s at 25 fps
    first_s, last_s = df["first_frame"] / 25, (df["last_frame"] + 1) / 25
    inside = (first_s >= onset + MARGIN) & (last_s <= offset - MARGIN)
    silent = (last_s <= onset - MARGIN) | ((first_s >= offset + MARGIN) & (last_s <= AUDIO_S - 0.1))
    assert inside.sum() >= 3 and silent.sum() >= 10
    assert (df.loc[inside, "turns"] == 1).all() and (df.loc[silent, "turns"] == 0).all()
    assert df.loc[first_s >= AUDIO_S + 0.1, "turns"].isna().all()
    assert turns["speech_share"] == pytest.approx((offset - onset + 0.3) / AUDIO_S, abs=0.05)
    for name, status in (("no_audio", "no_audio_stream"), ("silent", "silent")):
        df, turns = results[name]
        assert turns["audio_status"] == status and turns["frames_with_audio"] == 0 and turns["speech_share"] is None
        assert df["turns"].isna().all() and df["AU01_r_mean"].notna().all()  # the functionals are unaffected
