"""Task ``whole``: a sequence model on each video's whole aligned sequence (protocol ``whole``).

The protocol of the public D-Vlog code (the Depression Detector reimplementation, and the
D-Vlog baselines and JAMFN in facevox's registry): one item per video, its whole
sequence (on D-Vlog about one row per second), no slicing; a batch is zero-padded to its
longest video and the real lengths go to the model, which masks the padded rows
(facevox.models.masking); one prediction per video, so there is no vote.

Data: the aligned tables ``<align>/<video>.parquet`` of the sheet's split videos
(contract.ALIGNED_SCHEMA), the columns of ``shards.feature_set`` (landmarks + eGeMAPS).
Short gaps are filled as the shard builder fills them (shards.video_features,
``models.whole.max_gap``); longer gaps stay missing and become 0, counted as
``values_filled`` (the public code has no gaps: D-Vlog's released features are complete).

Normalisation (``models.whole.normalisation``): ``none`` is the public code's (it feeds
the released features as they are); ``zscore`` / ``minmax`` fit per-column statistics on
the train videos (slices.NormStats, streamed) and apply them to every split.

Memory: videos are read when a batch needs them and kept while the cache stays under
``models.max_memory_gb`` (all of D-Vlog - 961 videos, ~600 rows x 161 float32 each,
~0.4 GB - fits the default 8 GB); past it, a video is read again each time, so memory
holds the cache plus one batch whatever the corpus size.

Labels: the sheet's ``label``; the loss is cross-entropy over the classes (two logits for
D-Vlog's two classes, which is BCE on their difference: the public code's one-logit BCE).

Tests: tests/test_whole.py
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from facevox.contract import EGEMAPS_COLUMNS, FEATURE_SETS, LANDMARK_COLUMNS, SPLITS, left_out_record
from facevox.errors import FacevoxError
from facevox.training.evaluate import PREDICTION_SCHEMA, split_metrics, video_predictions
from facevox.training.tasks.base import Classification, sheet_videos, why_unpredicted

log = logging.getLogger("facevox.training.loop")

NORMALISATIONS = ("none", "zscore", "minmax")


def aligned_features(path, columns: list[str], max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """[T, C] ``columns`` of the aligned table ``path`` with short gaps filled per modality
    (shards.video_features, ``max_gap`` rows), and the still-missing mask [T]."""
    from facevox.dataset.shards import video_features

    table = pq.read_table(path, columns=[*columns, "face_success", "audio_success"]).to_pandas()
    missing = [c for c in columns if c not in table]
    if missing:
        raise FacevoxError(f"{path}: missing columns {missing[:5]}")
    return video_features(table, columns, max_gap)


def whole_inputs(values: np.ndarray, stats=None) -> tuple[np.ndarray, int]:
    """A video's [T, C] float32 model input: ``values`` normalised with the train ``stats``
    (slices.NormStats; None: as they are), the still-missing values 0; and how many were filled."""
    if stats is not None:
        values = stats.apply(values)
    nan = np.isnan(values)
    return np.where(nan, 0.0, values).astype(np.float32), int(nan.sum())


class WholeClassification(Classification):
    """Sequence models on whole videos: one padded batch of videos -> one class per video."""

    unit = "videos"

    prediction_schema = PREDICTION_SCHEMA

    def __init__(self, sheet, folder, settings: dict):
        self.settings = settings
        self.whole = settings["whole"]
        self.root = Path(folder)
        feature_set = self.whole["feature_set"]
        if feature_set not in FEATURE_SETS:
            raise FacevoxError(f"models.whole.feature_set {feature_set!r} is not one of {', '.join(FEATURE_SETS)}")
        self.columns = list(FEATURE_SETS[feature_set])
        self.visual = [i for i, c in enumerate(self.columns) if c in set(LANDMARK_COLUMNS)]
        self.acoustic = [i for i, c in enumerate(self.columns) if c in set(EGEMAPS_COLUMNS)]
        if self.whole["normalisation"] not in NORMALISATIONS:
            raise FacevoxError(f"models.whole.normalisation must be one of {', '.join(NORMALISATIONS)}, "
                               f"not {self.whole['normalisation']!r}")
        self.samples, listed = sheet_videos(sheet, folder, ".parquet", "split", "aligned")
        labelled = {s: [v for v in vs if self.samples.loc[v, "label"] not in (None, "")] for s, vs in listed.items()}
        self.videos = {s: vs for s, vs in labelled.items() if vs}
        self.unlabelled = {s: [v for v in vs if v not in labelled[s]] for s, vs in listed.items()}
        if not self.videos.get("train"):
            raise FacevoxError(f"{sheet}: no labelled train video for whole-video models")
        self.classes = sorted({self.samples.loc[v, "label"] for v in self.videos["train"]})
        self.positive = settings["positive_label"]
        if self.positive not in self.classes:
            raise FacevoxError(f"{sheet}: positive_label {self.positive!r} is not among the train labels "
                               f"{self.classes}; set models.positive_label")
        if len(self.classes) < 2:
            raise FacevoxError(f"{sheet}: the train split has one class only ({self.classes})")
        self.index = {c: i for i, c in enumerate(self.classes)}
        unknown = [v for vs in self.videos.values() for v in vs if self.samples.loc[v, "label"] not in self.index]
        if unknown:
            raise FacevoxError(f"{sheet}: label(s) of {', '.join(unknown)} not among the train labels {self.classes}")
        self.lengths = {v: pq.ParquetFile(self.root / f"{v}.parquet").metadata.num_rows
                        for vs in self.videos.values() for v in vs}
        empty = [v for v, n in self.lengths.items() if n == 0]
        if empty:
            raise FacevoxError(f"{self.root}: aligned table(s) without rows: {', '.join(empty)}")
        self.max_gap = self.whole["max_gap"]
        self.budget = settings["max_memory_gb"] * 2**30
        self._cache: dict[str, np.ndarray] = {}
        self._cached_bytes = 0
        self.filled: dict[str, int] = {}
        self._counted: set[str] = set()
        self.stats = None
        if self.whole["normalisation"] != "none":
            from facevox.dataset.slices import NormStats

            self.stats = NormStats.fit(((v, self._raw(v)[0]) for v in self.videos["train"]), self.columns,
                                       self.whole["normalisation"])
        self.data = self.videos
        self.key_text = repr(sorted((s, v, self.samples.loc[v, "label"], self.lengths[v])
                                    for s, vs in self.videos.items() for v in vs))

    # data ---------------------------------------------------------------
    def _raw(self, vid: str) -> tuple[np.ndarray, np.ndarray]:
        return aligned_features(self.root / f"{vid}.parquet", self.columns, self.max_gap)

    def features(self, vid: str, split: str = "") -> np.ndarray:
        """[T, C] float32 features of one video (gaps filled, normalised, NaN -> 0)."""
        if vid in self._cache:
            return self._cache[vid]
        x, filled = whole_inputs(self._raw(vid)[0], self.stats)
        if vid not in self._counted:  # a video read again (cache full) is counted once
            self._counted.add(vid)
            self.filled[split] = self.filled.get(split, 0) + filled
        if self._cached_bytes + x.nbytes <= self.budget:
            self._cache[vid] = x
            self._cached_bytes += x.nbytes
        return x

    def padded(self, vids: list[str], split: str = "") -> tuple[tuple, np.ndarray]:
        """((visual [B, T_max, Cv], acoustic [B, T_max, Ca], lengths [B]), labels [B]):
        the videos zero-padded to the longest of them."""
        xs = [self.features(v, split) for v in vids]
        lengths = np.array([len(x) for x in xs], np.int64)
        batch = np.zeros((len(xs), int(lengths.max()), len(self.columns)), np.float32)
        for i, x in enumerate(xs):
            batch[i, :len(x)] = x
        labels = np.array([self.index[self.samples.loc[v, "label"]] for v in vids], np.int64)
        return (batch[..., self.visual], batch[..., self.acoustic], lengths), labels

    def model_kwargs(self, family: str) -> dict:
        if not self.visual or not self.acoustic:
            raise FacevoxError("whole-video models need landmark and eGeMAPS columns (models.whole.feature_set)")
        return {"n_visual": len(self.visual), "n_acoustic": len(self.acoustic), "n_classes": len(self.classes),
                # the longest video of any split: JAMFN's FC3 is sized for it
                "seq_len": max(self.lengths.values())}

    def n_train(self) -> int:
        return len(self.videos["train"])

    def batches(self, rng: np.random.Generator, batch_size: int):
        """Shuffled training batches of whole videos, each padded to its longest."""
        vids = self.videos["train"]
        order = rng.permutation(len(vids))
        size = batch_size or len(vids)
        for start in range(0, len(order), size):
            yield self.padded([vids[i] for i in order[start:start + size]], "train")

    # the loop's interface ------------------------------------------------
    def train_targets(self) -> np.ndarray:
        return np.array([self.index[self.samples.loc[v, "label"]] for v in self.videos["train"]], np.int64)

    def left_out(self) -> list[dict]:
        """Videos of a split without a label (the only whole-video drop: no slicing)."""
        return [left_out_record(s, "no_label", "videos", dict.fromkeys(self.unlabelled[s], 1))
                for s in SPLITS if self.unlabelled.get(s)]

    def splits(self) -> list[str]:
        return [s for s in ("dev", "test") if self.videos.get(s)]

    def has_dev(self) -> bool:
        return bool(self.videos.get("dev"))

    def describe(self) -> dict:
        return {"classes": self.classes, "positive": self.positive, "columns": self.columns,
                "protocol": "whole", "normalisation": self.whole["normalisation"]}

    def preprocessing(self, cfg: dict) -> dict:
        """``models.whole``'s columns, gap filling and normalisation with its fitted train statistics,
        the model's input columns; one prediction per video (the mean "vote" of evaluation)."""
        from dataclasses import asdict

        return {"kind": "whole", "feature_set": self.whole["feature_set"], "columns": self.columns,
                "max_gap": self.max_gap, "normalisation": self.whole["normalisation"],
                "norm": asdict(self.stats) if self.stats is not None else None, "visual": self.visual,
                "acoustic": self.acoustic, "classes": self.classes, "positive": self.positive, "vote": "mean"}

    def check(self, payload: dict) -> None:
        if self.classes != payload["classes"]:
            raise FacevoxError(f"trained on classes {payload['classes']}, the sheet's train videos have {self.classes}")
        if payload.get("normalisation", self.whole["normalisation"]) != self.whole["normalisation"]:
            raise FacevoxError(f"trained with models.whole.normalisation {payload['normalisation']!r}, "
                               f"configured {self.whole['normalisation']!r}")

    def evaluate_split(self, predict_fn, split: str, cfg: dict, batch_size: int) -> tuple[dict, object]:
        """Video-level metrics (weighted and positive-class P/R/F1, AUC...) of one split; a
        batch of videos sorted by length so the padding stays small."""
        vids = sorted(self.videos[split], key=lambda v: self.lengths[v])
        size = max(batch_size, 1)
        probs, labels = [], []
        for start in range(0, len(vids), size):
            inputs, y = self.padded(vids[start:start + size], split)
            probs.append(predict_fn(inputs))
            labels.append(y)
        probs = np.concatenate(probs) if probs else np.zeros((0, len(self.classes)))
        y = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        truth = {v: self.samples.loc[v, "label"] for v in vids}
        table, unpredicted = video_predictions(split, vids, truth, probs, self.classes, self.positive, "mean", vids)
        result = split_metrics(table, self.classes, self.positive)
        picked = probs[np.arange(len(y)), y] if len(y) else np.zeros(0)
        result["loss"] = float(-np.log(np.clip(picked, 1e-12, 1)).mean()) if len(y) else math.nan
        result["unpredicted"] = unpredicted
        result["unpredicted_reasons"] = why_unpredicted(unpredicted,
                                                        [r for r in self.left_out() if r["split"] == split])
        result["values_filled"] = self.filled.get(split, 0)
        order = {v: i for i, v in enumerate(self.videos[split])}
        table = table.sort_values("video_id", key=lambda s: s.map(order), ignore_index=True)
        return result, pd.DataFrame(table)
