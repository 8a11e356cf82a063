"""Voice activity from the eGeMAPS LLDs: the shallow FAU CNN's ``turns`` channel.

Pandit et al. (section 3.2) feed their CNN, beside the 36 FAU functionals, a "speaker-turn
activation feature - which is indicative of at least one of the two participants speaking"
(the paper's 37 inputs, 4.1; one of the three features model D relies on, 5.2).  They took it
from SEWA's turn annotations; facevox has none, so it derives the channel from the video's
own audio track, which carries every participant's voice (a video chat's mix, a vlog's one
speaker), and so answers "someone is speaking", not "the target is speaking":

1. **Voicing**, per 10 ms eGeMAPS row: ``F0semitoneFrom27.5Hz_sma3nz > 0`` (opensmile's
   eGeMAPSv02 pitch tracker writes 0 on frames it finds unvoiced; the same test as QA's
   ``voiced_fraction``).
2. **Hangover**: every row within ``hangover_s`` (config ``fau_windows.turns_hangover_s``,
   default 0.15 s) of a voiced row is speech too (a binary dilation of the voiced rows).
   Unvoiced consonants and stop closures inside speech (gaps of up to 2 x 0.15 = 0.3 s) and
   the unvoiced onset and coda of a word count as speaking; pauses longer than 0.3 s do not,
   and speech is marked up to 0.15 s before its first and after its last voiced row.
   (espeak-ng's English: gaps inside a sentence up to 0.27 s, between sentences 0.47-0.62 s.)
3. **On the video frames**, by the align stage's ``native`` rule
   (:func:`facevox.extract.align.frame_means`): a frame's activity is the share of the speech
   rows among the eGeMAPS rows whose centre falls into its interval, NaN where none does.
4. **Per window** (:func:`window_share`, called by facevox.extract.fau_windows): ``turns`` is
   the mean activity over the window's frames that have audio - the share of the window in
   which someone speaks - over the same frames as the AU functionals (all of them: a frame
   without a face still has audio); NaN where none of them has audio.

**Missing audio is not silence.**  No audio stream, a track too short for one F0 frame, and a
``silent`` track (peak below ``egemaps.silence_dbfs``: a track whose loudest sample stays
below -60 dBFS holds no audible sound anywhere - a muted or stripped recording, not a quiet
room) give NaN on every frame; a track shorter than the video, or ``truncated``, gives NaN
on the frames past its last eGeMAPS row (so also on the last frame or two of a full track,
which opensmile's 60 ms F0 frame does not reach).  The model input then gets what the FAU
task gives any missing functional (0), counted per split as ``windows_no_audio``
(facevox.training.tasks.fau).  The fau_windows metadata (``turns``) records the audio
status, the hangover, the frames with audio and the share of them with speech.

**Why eGeMAPS voicing and not a VAD from PyPI.**  The LLDs are already computed (stage
``egemaps``) on the container clock the frames share, so the channel costs no second audio
decode, no new dependency, model weights or pin, and it is exact to reproduce from the
tables.  Voicing is a speech-specific cue where an energy test is not: on white noise (-26
and -10 dBFS RMS), brown noise and 50 Hz mains hum opensmile finds no voiced frame at all,
while espeak-ng's sentences are voiced on 55-63 % of their rows, pauses included.  Its blind
spots: pitched non-speech (music, singing, a held tone is voiced, so it counts as speaking)
and whispering (unvoiced, so it does not).  webrtcvad (a GMM over sub-band energies on
10-30 ms frames) would need that second decode and an aggressiveness mode to tune, and is
no better on music; silero-vad (a small neural network, its weights in the wheel, on torch),
trained on speech among noise and music, is the candidate upgrade if vlogs with background
music matter - at the price of a network run over every 32 ms of audio and a model version
to pin.

Tests: tests/test_fau_windows.py (planted espeak-ng speech between silences, no audio)
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from facevox.contract import EGEMAPS_HOP_S, F0_COLUMN
from facevox.extract.align import frame_means

#: eGeMAPS audio statuses (facevox.extract.egemaps) that mean no usable audio: NaN, not silence.
NO_AUDIO = ("no_audio_stream", "too_short", "silent")


def speech_rows(egemaps: pd.DataFrame, hangover_s: float = 0.15) -> np.ndarray:
    """Per eGeMAPS row: voiced (F0 > 0), or within ``hangover_s`` of a voiced row (bool)."""
    voiced = egemaps[F0_COLUMN].to_numpy(np.float64) > 0
    radius, n = int(round(hangover_s / EGEMAPS_HOP_S)), len(voiced)
    # row i is speech when a voiced row lies in [i - radius, i + radius]: counted by cumsum
    count = np.concatenate([[0], np.cumsum(voiced)])
    rows = np.arange(n)
    return count[np.minimum(rows + radius + 1, n)] - count[np.maximum(rows - radius, 0)] > 0


def frame_activity(frame_t, egemaps: pd.DataFrame, audio_status: str | None,
                   hangover_s: float = 0.15) -> np.ndarray:
    """Per video frame (times ``frame_t``): the share of its eGeMAPS rows that are speech,
    0-1, float64; NaN where no row falls into the frame or the audio is missing (:data:`NO_AUDIO`)."""
    frame_t = np.asarray(frame_t, np.float64)
    if audio_status in NO_AUDIO or len(egemaps) == 0:
        return np.full(len(frame_t), np.nan)
    times = ((egemaps["start_s"] + egemaps["end_s"]) / 2).to_numpy(np.float64)
    means, _ = frame_means(frame_t, times, speech_rows(egemaps, hangover_s).astype(np.float64))
    return means[:, 0]


def window_share(activity: np.ndarray, first: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Mean of ``activity`` over the frames ``first[k]`` to ``stop[k] - 1`` of each window,
    leaving out the NaN frames; NaN for a window without a frame with audio (float32)."""
    activity = np.asarray(activity, np.float64)
    has = ~np.isnan(activity)
    sums = np.concatenate([[0.0], np.cumsum(np.where(has, activity, 0.0))])
    counts = np.concatenate([[0], np.cumsum(has)])
    first, stop = np.asarray(first, np.int64), np.asarray(stop, np.int64)
    n = counts[stop] - counts[first]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n > 0, (sums[stop] - sums[first]) / np.maximum(n, 1), np.nan)
    return np.clip(share, 0.0, 1.0).astype(np.float32)  # cumsum rounding stays inside 0-1


def summary(activity: np.ndarray, audio_status: str | None, hangover_s: float) -> dict:
    """The fau_windows metadata record ``turns``."""
    has = ~np.isnan(activity)
    return {"source": "egemaps F0 > 0, dilated by the hangover", "audio_status": audio_status,
            "hangover_s": hangover_s, "frames": int(len(activity)), "frames_with_audio": int(has.sum()),
            "speech_share": round(float(activity[has].mean()), 4) if has.any() else None}
