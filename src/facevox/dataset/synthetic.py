"""Synthetic data with a planted signal: aligned tables, a sample sheet and shards on which
a working model must learn something (tests and benchmarks; never real results).

Every video is ``rows`` frames at ``fps`` of 68 landmarks and 25 eGeMAPS LLDs:

* landmarks: a per-video face (a fixed template, offset by ~2 px, scaled by ±2 %) plus
  per-frame noise (sd 1.5 px); the mouth's lower-lip y coordinates (points 57,
  58, 56, 66) oscillate with amplitude 4 px - at **0.5 Hz in "depression"
  videos** and at 1.7 Hz in "normal" ones (same amplitude, so per-slice mean and
  standard deviation do not tell them apart: the frequency does);
* eGeMAPS: noise (sd 1), except ``F0semitoneFrom27.5Hz_sma3nz``, whose video
  mean is **4 semitones lower in "depression" videos** (video-level jitter sd
  0.5, frame noise sd 2) - a cue the per-slice statistics baselines can use.

Labels alternate within each split, so the classes are balanced; each video is
its own subject.

Also: aligned-face tables whose brightness encodes the score (``planted_faces``:
a bright blob whose size grows with the score, for the regression models) and FAU
window tables whose arousal/valence are lagged linear filters of two AU channels
(``planted_fau``: for the shallow FAU CNN).

Tests: tests/test_train.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from facevox.contract import (
    ALIGNED_FACES_SCHEMA,
    ALIGNED_SCHEMA,
    CROP_LANDMARK_X,
    CROP_LANDMARK_Y,
    EGEMAPS_COLUMNS,
    FAU_STAT_COLUMNS,
    FAU_WINDOWS_SCHEMA,
    LANDMARK_X,
    LANDMARK_Y,
)
from facevox.io import atomic_path, write_table

F0_COLUMN = "F0semitoneFrom27.5Hz_sma3nz"
OSCILLATING_POINTS = (56, 57, 58, 66)
FREQUENCY_HZ = {"depression": 0.5, "normal": 1.7}


def planted_video(rows: int, label: str, rng: np.random.Generator, fps: float = 30.0) -> pd.DataFrame:
    """One aligned table (contract.ALIGNED_SCHEMA) with the planted signal of ``label``."""
    t = np.arange(rows) / fps
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    template = np.stack([np.cos(angles), np.sin(angles)], 1) * 80 + [320, 240]
    face = template * rng.uniform(0.98, 1.02) + rng.normal(0, 2, 2)
    xy = face[None] + rng.normal(0, 1.5, (rows, 68, 2))
    phase = rng.uniform(0, 2 * np.pi)
    wave = 4.0 * np.sin(2 * np.pi * FREQUENCY_HZ[label] * t + phase)
    for p in OSCILLATING_POINTS:
        xy[:, p, 1] += wave
    audio = rng.normal(0, 1, (rows, len(EGEMAPS_COLUMNS)))
    f0 = EGEMAPS_COLUMNS.index(F0_COLUMN)
    audio[:, f0] = 30 - (4.0 if label == "depression" else 0.0) + rng.normal(0, 0.5) + rng.normal(0, 2, rows)
    return _aligned(t, xy, audio)


def planted_whole_video(rows: int, label: str, rng: np.random.Generator, fps: float = 1.0) -> pd.DataFrame:
    """An aligned table whose label is visible only over the **whole** video.

    No landmark cue (template + noise); eGeMAPS noise; ``F0semitoneFrom27.5Hz_sma3nz`` is
    ``30 ± 0.5`` (+ in "depression" videos) plus a drift of amplitude 3 st that makes one full
    sine period over the video (random phase) and frame noise (sd 1). Over the whole video
    the drift averages to exactly 0, so the video mean tells the label; over any window of
    a quarter of the video or less the drift's mean (up to ±2.7) swamps the ±0.5 cue.
    """
    t = np.arange(rows) / fps
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    template = np.stack([np.cos(angles), np.sin(angles)], 1) * 80 + [320, 240]
    xy = template[None] + rng.normal(0, 1.5, (rows, 68, 2))
    audio = rng.normal(0, 1, (rows, len(EGEMAPS_COLUMNS)))
    drift = 3.0 * np.sin(2 * np.pi * np.arange(rows) / rows + rng.uniform(0, 2 * np.pi))
    audio[:, EGEMAPS_COLUMNS.index(F0_COLUMN)] = (30 + (0.5 if label == "depression" else -0.5) + drift
                                                  + rng.normal(0, 1, rows))
    return _aligned(t, xy, audio)


def _aligned(t: np.ndarray, xy: np.ndarray, audio: np.ndarray) -> pd.DataFrame:
    """An aligned table (contract.ALIGNED_SCHEMA) of times, points [rows, 68, 2] and eGeMAPS, a face
    and audio on every row."""
    rows = len(t)
    data = {
        "index": np.arange(rows, dtype=np.int32),
        "timestamp_s": t,
        "face_success": np.ones(rows, bool),
        "face_fraction": np.ones(rows, np.float32),
        "audio_success": np.ones(rows, bool),
    }
    data.update({c: xy[:, i, 0].astype(np.float32) for i, c in enumerate(LANDMARK_X)})
    data.update({c: xy[:, i, 1].astype(np.float32) for i, c in enumerate(LANDMARK_Y)})
    data.update({c: audio[:, i].astype(np.float32) for i, c in enumerate(EGEMAPS_COLUMNS)})
    return pd.DataFrame(data)[ALIGNED_SCHEMA.names]


def planted_project(folder, n_videos: dict[str, int], rows: int = 600, seed: int = 0, fps: float = 30.0,
                    signal: str = "slices") -> Path:
    """Write ``folder/aligned/<video>.parquet`` and ``folder/samples.tsv``; return the sheet.

    ``n_videos``: videos per split, e.g. ``{"train": 24, "dev": 8, "test": 8}``;
    ``signal``: ``slices`` (:func:`planted_video`) or ``whole`` (:func:`planted_whole_video`).
    """
    make = {"slices": planted_video, "whole": planted_whole_video}[signal]
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    lines = ["video_id\tpath\tsubject_id\tsplit\tlabel\tscore\tgender\n"]
    for split, count in n_videos.items():
        for i in range(count):
            vid = f"{split}{i:03d}"
            label = "depression" if i % 2 else "normal"
            path = folder / "aligned" / f"{vid}.parquet"
            write_table(make(rows, label, rng, fps), path, ALIGNED_SCHEMA,
                        {"stage": "synthetic",
                         "planted": FREQUENCY_HZ if signal == "slices" else "whole-video F0 mean"})
            score = 20 if label == "depression" else 5
            lines.append(f"{vid}\taligned/{vid}.parquet\tsubj_{vid}\t{split}\t{label}\t{score}\t{'fm'[i % 2]}\n")
    sheet = folder / "samples.tsv"
    with atomic_path(sheet) as tmp:
        tmp.write_text("".join(lines))
    return sheet


def planted_shards(folder, n_videos: dict[str, int], rows: int = 600, seed: int = 0, fps: float = 30.0,
                   slices: dict | None = None) -> Path:
    """A planted project and its shard set (``folder/shards``); return the shard folder."""
    from facevox.dataset.shards import run

    folder = Path(folder)
    sheet = planted_project(folder, n_videos, rows, seed, fps)
    out = folder / "shards"
    run(sheet, folder / "aligned", out, slices)
    return out



def _sheet(folder: Path, rows: list[tuple], extra: str = "") -> Path:
    lines = ["video_id\tpath\tsubject_id\tsplit\tlabel\tscore\tgender" + extra + "\n"]
    lines += ["\t".join(map(str, r)) + "\n" for r in rows]
    sheet = folder / "samples.tsv"
    with atomic_path(sheet) as tmp:
        tmp.write_text("".join(lines))
    return sheet


def planted_faces(folder, n_videos: dict[str, int], frames: int = 24, size: int = 32, seed: int = 0) -> Path:
    """Aligned-face tables ``folder/faces/<video>.parquet`` whose crops show a bright disc of
    radius proportional to the video's score (0-63) on noise, landmarks on a fixed
    layout; returns the sheet (scores in the ``score`` column)."""
    from facevox.extract.faces import encode_jpeg

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    points = np.stack([np.cos(angles), np.sin(angles)], 1) * size * 0.35 + size / 2
    rows = []
    for split, count in n_videos.items():
        for i in range(count):
            vid = f"{split}{i:03d}"
            score = float(rng.uniform(0, 63))
            radius = 2 + score / 63 * (size * 0.4)
            images = []
            for _ in range(frames):
                cx, cy = size / 2 + rng.normal(0, 1, 2)
                disc = ((xx - cx) ** 2 + (yy - cy) ** 2) <= radius ** 2
                img = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
                img[disc] = 220
                images.append(encode_jpeg(img, 95))
            data = {"frame": np.arange(frames, dtype=np.int32), "timestamp_s": np.arange(frames) / 10.0,
                    "success": np.ones(frames, bool), "image": images}
            jitter = rng.normal(0, 0.5, (frames, 68, 2))
            data.update({c: (points[k, 0] + jitter[:, k, 0]).astype(np.float32) for k, c in enumerate(CROP_LANDMARK_X)})
            data.update({c: (points[k, 1] + jitter[:, k, 1]).astype(np.float32) for k, c in enumerate(CROP_LANDMARK_Y)})
            write_table(pd.DataFrame(data)[ALIGNED_FACES_SCHEMA.names], folder / "faces" / f"{vid}.parquet",
                        ALIGNED_FACES_SCHEMA, {"stage": "synthetic", "planted": "disc radius ~ score"})
            rows.append((vid, f"faces/{vid}.parquet", f"subj_{vid}", split, "", f"{score:.3f}", "f"))
    return _sheet(folder, rows)


#: planted_fau: arousal = this lagged filter of two AU channels (lags in windows).
FAU_SIGNAL = {"AU12_r_mean": (1.0, 3), "AU06_r_mean": (0.6, 7)}


def planted_fau(folder, n_videos: dict[str, int], windows: int = 400, hop_s: float = 0.1, seed: int = 0,
                delay_s: float = 2.0) -> Path:
    """FAU window tables ``folder/fau/<video>.parquet`` (smooth random AU functionals) and label
    CSVs ``folder/labels/<video>.csv`` where arousal = ``sum w * AU[t - lag]``
    (:data:`FAU_SIGNAL`), valence = the negated signal, both written ``delay_s``
    late (the annotator lag that delay compensation removes); returns the sheet."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    kernel = np.hanning(9) / np.hanning(9).sum()
    rows = []
    for split, count in n_videos.items():
        for i in range(count):
            vid = f"{split}{i:03d}"
            values = {c: np.convolve(rng.normal(0, 1, windows), kernel, "same").astype(np.float32)
                      for c in FAU_STAT_COLUMNS}
            t = np.arange(windows) * hop_s
            data = {"window": np.arange(windows, dtype=np.int32),
                    "centre_frame": np.arange(windows, dtype=np.int32) * 5,
                    "centre_s": t, "first_frame": np.zeros(windows, np.int32),
                    "last_frame": np.zeros(windows, np.int32), "n_used": np.full(windows, 50, np.int32), **values}
            write_table(pd.DataFrame(data).reindex(columns=FAU_WINDOWS_SCHEMA.names), folder / "fau" / f"{vid}.parquet",
                        FAU_WINDOWS_SCHEMA, {"stage": "synthetic", "planted": str(FAU_SIGNAL)})
            signal = np.zeros(windows)
            for column, (weight, lag) in FAU_SIGNAL.items():
                signal[lag:] += weight * values[column][:-lag]
            # the annotation lags by delay_s: label time t + delay carries the signal of t
            labels = pd.DataFrame({"time_s": t + delay_s, "arousal": signal, "valence": -signal})
            path = folder / "labels" / f"{vid}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_text(labels.to_csv(index=False, float_format="%.6f"))
            rows.append((vid, f"fau/{vid}.parquet", f"subj_{vid}", split, "", "", "f"))
    return _sheet(folder, rows)
