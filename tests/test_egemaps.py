"""Stage egemaps (facevox.extract.egemaps): opensmile eGeMAPSv02 LLDs on PyAV-decoded audio."""
import wave

import numpy as np
import pytest

from facevox.contract import EGEMAPS_COLUMNS, EGEMAPS_SCHEMA, F0_COLUMN
from facevox.extract import egemaps
from facevox.io import read_table


def test_speech_gives_25_columns_at_100_hz_with_voiced_f0(speech_wav):
    df, status = egemaps.extract(speech_wav)
    assert status["audio_status"] == "ok"
    assert list(df.columns) == ["start_s", "end_s", *EGEMAPS_COLUMNS] and len(EGEMAPS_COLUMNS) == 25
    hop = np.diff(df["start_s"].to_numpy())
    assert np.allclose(hop, 0.01, atol=1e-6)  # 100 Hz
    # one row per 10 ms, less the last few whose 60 ms F0 window would run past the end
    assert status["audio_duration_s"] * 100 - 10 <= len(df) <= status["audio_duration_s"] * 100
    f0 = df[F0_COLUMN].to_numpy()
    voiced = f0 > 0
    assert 0.2 < voiced.mean() < 0.9  # speech with pauses
    # A voiced frame's F0 is a plausible speaking pitch: 27.5 Hz * 2^(st/12) within 60-400 Hz.
    hz = 27.5 * 2 ** (f0[voiced] / 12)
    assert 60 < np.median(hz) < 400
    # Loudness is higher where the voice is.
    loud = df["Loudness_sma3"].to_numpy()
    assert loud[voiced].mean() > 3 * loud[~voiced].mean()


def test_times_are_on_the_container_clock(talking_video):
    df, status = egemaps.extract(talking_video)
    assert df["start_s"].iloc[0] == pytest.approx(status["audio_start_s"])
    assert status["audio_status"] == "ok"


def test_silent_track_is_flagged_not_a_crash(wolfgang, tmp_path):
    out = tmp_path / "e.parquet"
    status = egemaps.run(wolfgang, out)
    df, meta = read_table(out, EGEMAPS_SCHEMA)
    assert status["audio_status"] == meta["audio_status"] == "silent"
    assert len(df) == pytest.approx(1969, abs=5)  # 19.69 s at 100 Hz, well-formed rows
    assert (df[F0_COLUMN] == 0).all()
    assert meta["stage"] == "egemaps" and meta["params"]["feature_set"] == "eGeMAPSv02"


def test_no_audio_stream_gives_empty_flagged_table(video_only, tmp_path):
    out = tmp_path / "e.parquet"
    status = egemaps.run(video_only, out)
    df, meta = read_table(out, EGEMAPS_SCHEMA)
    assert status["audio_status"] == meta["audio_status"] == "no_audio_stream"
    assert len(df) == 0 and list(df.columns) == EGEMAPS_SCHEMA.names


def test_too_short_audio_is_flagged(tmp_path):
    clip = tmp_path / "blip.wav"  # 25 ms: shorter than one 60 ms analysis frame
    with wave.open(str(clip), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((np.sin(np.arange(400) / 5) * 8000).astype("<i2").tobytes())
    df, status = egemaps.extract(clip)
    assert status["audio_status"] == "too_short" and len(df) == 0
