"""Stage `egemaps`: eGeMAPSv02 low-level descriptors (opensmile, 25 columns, 10 ms hop).

The audio track is decoded with PyAV to 16 kHz mono float and handed to
opensmile's ``process_signal`` (no temporary WAV, no mediainfo).

Audio that cannot give features still gives a well-formed table, flagged in the
file metadata (``audio_status``) and later in QA:

* ``no_audio_stream`` – the file has no audio: zero rows.
* ``too_short`` – fewer samples than one analysis frame: zero rows.
* ``silent`` – peak level below ``silence_dbfs``: the rows opensmile computes
  (F0 is 0 everywhere), flagged so nobody mistakes them for speech.
* ``truncated`` – decoding stopped at a damaged packet, or the file ends before
  its index does (a download cut off mid-stream): rows up to that point.

Rule: workflow/rules/egemaps.smk · Tests: tests/test_egemaps.py
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pandas as pd

from facevox.config import stage_params
from facevox.contract import AUDIO_SAMPLE_RATE, EGEMAPS_COLUMNS, EGEMAPS_SCHEMA
from facevox.errors import FacevoxError
from facevox.io import write_table
from facevox.media import decode_audio
from facevox.provenance import provenance

#: opensmile's eGeMAPS LLDs need at least one 60 ms F0 frame to say anything.
MIN_SAMPLES = int(0.06 * AUDIO_SAMPLE_RATE)


@lru_cache(maxsize=1)
def _smile():
    import opensmile

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
    )


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64" if c.endswith("_s") else "float32")
                         for c in EGEMAPS_SCHEMA.names})


def lld_frame(samples: np.ndarray, sample_rate: int, start_s: float = 0.0) -> pd.DataFrame:
    """Run opensmile on a mono float signal; times shifted onto the container clock."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Segment too short": handled by callers
        raw = _smile().process_signal(samples, sample_rate)
    missing = [c for c in EGEMAPS_COLUMNS if c not in raw.columns]
    if missing:
        raise FacevoxError(f"opensmile returned unexpected eGeMAPS columns (missing {missing})")
    starts = raw.index.get_level_values("start").total_seconds().to_numpy()
    ends = raw.index.get_level_values("end").total_seconds().to_numpy()
    df = pd.DataFrame({"start_s": starts + start_s, "end_s": ends + start_s})
    for c in EGEMAPS_COLUMNS:
        df[c] = raw[c].to_numpy(dtype=np.float32)
    return df


def peak_dbfs(samples: np.ndarray) -> float:
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


def extract(video, params: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """eGeMAPS LLDs of ``video``'s first audio track; returns (table, status record)."""
    p = stage_params("egemaps", params)
    audio = decode_audio(video, AUDIO_SAMPLE_RATE)
    if audio is None:
        return empty_frame(), {"audio_status": "no_audio_stream", "audio_duration_s": 0.0,
                               "peak_dbfs": None}
    status = {"audio_duration_s": audio.samples.size / audio.sample_rate,
              "peak_dbfs": peak_dbfs(audio.samples), "audio_start_s": audio.start_s}
    if audio.samples.size < MIN_SAMPLES:
        return empty_frame(), {**status, "audio_status": "too_short"}
    df = lld_frame(audio.samples, audio.sample_rate, audio.start_s)
    if audio.truncated:
        status["audio_status"] = "truncated"
    elif status["peak_dbfs"] < p["silence_dbfs"]:
        status["audio_status"] = "silent"
    else:
        status["audio_status"] = "ok"
    return df, status


def run(video, out, params: dict | None = None) -> dict:
    p = stage_params("egemaps", params)
    df, status = extract(video, p)
    meta = provenance("egemaps", params={**p, "sample_rate": AUDIO_SAMPLE_RATE,
                                         "feature_set": "eGeMAPSv02", "level": "LLD"},
                      inputs={"video": video}, **status)
    write_table(df, out, EGEMAPS_SCHEMA, meta)
    return status
