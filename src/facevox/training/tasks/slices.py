"""Task ``slices``: sequence and scikit-learn models on a shard set (landmarks + eGeMAPS
slices); slice -> class, videos by voting (facevox.training.evaluate).

Tests: tests/test_train.py, tests/test_tasks.py
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from facevox.contract import EGEMAPS_COLUMNS, LANDMARK_COLUMNS
from facevox.errors import FacevoxError
from facevox.models.families import FAMILIES
from facevox.training.evaluate import PREDICTION_SCHEMA, slice_metrics, split_metrics, video_predictions
from facevox.training.tasks.base import Classification, left_out_record, why_unpredicted

#: The ``shards`` settings that decide a slice's content (recorded in the model file).
SLICE_PARAMS = ("length", "hop", "pad", "degree", "max_gap", "normalisation")


def too_missing(n_missing, n_real, fraction: float) -> np.ndarray:
    """Per slice: whether its still-missing rows exceed ``fraction`` (``models.max_missing_fraction``)
    of its real rows - such a slice is not used."""
    return np.asarray(n_missing) > fraction * np.maximum(np.asarray(n_real), 1)


def slice_inputs(x: np.ndarray, visual: list[int], acoustic: list[int], sklearn: bool) -> tuple:
    """Model inputs of slices ``x`` [N, L, C]: ``(x,)`` for a scikit-learn model, (visual columns,
    acoustic columns) for a sequence model."""
    return (x,) if sklearn else (x[..., visual], x[..., acoustic])


class SliceClassification(Classification):
    """Sequence / sklearn models on a shard set: slices -> class, videos by voting.

    Slices whose still-missing rows exceed ``max_missing_fraction`` of their real
    rows are left out, and so are slices whose label is not a train class (empty
    label, or a label only dev/test has); remaining NaN values (short missing stretches
    inside a kept slice) become 0, i.e. the training minimum after min-max
    normalisation, and are counted in the log and the metrics. :meth:`left_out`
    names every slice and video not used, with the shard set's own ``left_out``
    entries (videos without a slice, excluded inputs) - the metrics JSON carries them.
    """

    unit = "slices"

    def __init__(self, shard_dir, settings: dict, family: str = "sequence"):
        from facevox.dataset.datasets import SliceDataset

        self.root, self.family = Path(shard_dir), family
        self.estimator = FAMILIES[family].estimator
        self.settings = settings
        train = SliceDataset(self.root, "train")
        self.classes = sorted(train.labels)
        self.positive = settings["positive_label"]
        if self.positive not in self.classes:
            raise FacevoxError(f"{self.root}: positive_label {self.positive!r} is not among the train labels "
                               f"{self.classes}; set models.positive_label")
        if len(self.classes) < 2:
            raise FacevoxError(f"{self.root}: the train split has one class only ({self.classes})")
        index = {c: i for i, c in enumerate(self.classes)}
        self.data = {"train": train}
        for split in ("dev", "test"):
            try:
                ds = SliceDataset(self.root, split, labels=index)
            except FacevoxError:
                continue
            self.data[split] = ds
        self.data["train"].labels = index
        _check_shard_subjects(self.root, self.data)
        columns = train.columns
        self.visual = [i for i, c in enumerate(columns) if c in set(LANDMARK_COLUMNS)]
        self.acoustic = [i for i, c in enumerate(columns) if c in set(EGEMAPS_COLUMNS)]
        self.columns, self.length = columns, train.length
        self.key_text = (self.root / "manifest.json").read_text()
        self.manifest_left_out = list(json.loads(self.key_text).get("left_out") or [])
        self._cache: dict[str, tuple] = {}
        self.filled = {}

    # data ---------------------------------------------------------------
    def model_kwargs(self, family: str) -> dict:
        if FAMILIES[family].estimator == "sklearn":
            n = len(self.columns)
            return {"groups": [np.r_[self.visual, np.array(self.visual) + n],
                               np.r_[self.acoustic, np.array(self.acoustic) + n]]}
        if not self.visual or not self.acoustic:
            raise FacevoxError(f"{self.root}: sequence models need landmark and eGeMAPS columns")
        return {"n_visual": len(self.visual), "n_acoustic": len(self.acoustic),
                "n_classes": len(self.classes), "seq_len": self.length}

    def _reasons(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Per slice of ``split``: (no usable label, too much still missing)."""
        ds = self.data[split]
        labels = np.array([ds.labels.get(x, -1) for x in ds.label_names], np.int64)
        missing = too_missing(ds.n_missing, ds.n_real, self.settings["max_missing_fraction"])
        return labels < 0, missing

    def usable(self, split: str) -> np.ndarray:
        no_label, missing = self._reasons(split)
        return ~no_label & ~missing

    def left_out(self) -> list[dict]:
        """The shard set's left-out entries (videos without a slice, excluded inputs), then per
        split the slices without a known label and those over ``max_missing_fraction``."""
        out = [rec for rec in self.manifest_left_out if rec.get("split") in self.data]
        for split, ds in self.data.items():
            no_label, missing = self._reasons(split)
            for reason, mask in (("no_label", no_label), ("max_missing_fraction", missing & ~no_label)):
                if mask.any():
                    per_video: dict[str, int] = {}
                    for i in np.flatnonzero(mask):
                        per_video[ds.video_ids[i]] = per_video.get(ds.video_ids[i], 0) + 1
                    out.append(left_out_record(split, reason, "slices", per_video))
        return out

    def _unsliced(self, split: str) -> list[str]:
        """Videos of ``split`` the shard set has no slice of (its ``left_out`` entries)."""
        return [v for rec in self.manifest_left_out if rec.get("split") == split and rec.get("unit") == "videos"
                for v in rec.get("videos", {})]

    def load(self, split: str, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features [N, L, C], labels [N] and slice indices [N] (into the split's dataset, in the
        order returned) of the usable slices (``rows``: a subset)."""
        ds = self.data[split]
        wanted = np.flatnonzero(self.usable(split)) if rows is None else rows
        wanted_set = set(wanted.tolist())
        blocks, order = [], []
        for f, g, ix in ds.groups():
            take = [k for k, i in enumerate(ix) if i in wanted_set]
            if take:
                blocks.append(np.asarray(ds.block(f, g))[take])
                order.extend(ix[take])
        x = np.concatenate(blocks) if blocks else np.zeros((0, self.length, len(self.columns)), np.float32)
        nan = np.isnan(x)
        if nan.any():
            x = np.where(nan, np.float32(0), x)
        self.filled[split] = self.filled.get(split, 0) + int(nan.sum())
        labels = np.array([ds.labels.get(ds.label_names[i], -1) for i in order], np.int64)
        return x, labels, np.array(order, np.int64)

    def _split_arrays(self, split: str):
        if split not in self._cache:
            self._cache[split] = self.load(split)
        return self._cache[split]

    def n_train(self) -> int:
        return int(self.usable("train").sum())

    def batches(self, epoch_rng: np.random.Generator, batch_size: int):
        """Shuffled training batches ``((visual, acoustic) | (x,), labels)`` as numpy arrays.

        The split is held in memory when it fits ``max_memory_gb``; otherwise row
        groups are shuffled and read in pools that fit, shuffled within each pool.
        """
        ds = self.data["train"]
        keep = self.usable("train")
        slice_bytes = self.length * len(self.columns) * 4
        budget = self.settings["max_memory_gb"] * 2**30
        if keep.sum() * slice_bytes <= budget:
            pools = [None]
        else:
            groups = [ix[keep[ix]] for _, _, ix in ds.groups()]
            groups = [groups[i] for i in epoch_rng.permutation(len(groups)) if len(groups[i])]
            per_pool = max(1, int(budget // (slice_bytes * max(len(g) for g in groups))))
            pools = [np.concatenate(groups[i:i + per_pool]) for i in range(0, len(groups), per_pool)]
        for pool in pools:
            x, y, _ = self._split_arrays("train") if pool is None else self.load("train", np.sort(pool))
            order = epoch_rng.permutation(len(x))
            size = batch_size or len(x)
            for start in range(0, len(order), size):
                ix = np.sort(order[start:start + size]) if pool is None else order[start:start + size]
                yield self.inputs(x[ix]), y[ix]

    def inputs(self, x: np.ndarray) -> tuple:
        """Model inputs of a batch: (visual, acoustic) for sequence models, (x,) for sklearn."""
        return slice_inputs(x, self.visual, self.acoustic, self.estimator == "sklearn")

    def statistics(self, split: str):
        from facevox.models.classical import slice_statistics

        x, y, order = self._split_arrays(split)
        return slice_statistics(x), y, order

    # evaluation ---------------------------------------------------------
    def train_targets(self) -> np.ndarray:
        return self._split_arrays("train")[1]

    def predict(self, predict_fn, split: str, batch_size: int):
        """Slice probabilities of one split with ``predict_fn(inputs) -> probs [n, K]``."""
        x, y, order = self._split_arrays(split)
        probs = [predict_fn(self.inputs(x[i:i + max(batch_size, 1)])) for i in range(0, len(x), max(batch_size, 1))]
        probs = np.concatenate(probs) if probs else np.zeros((0, len(self.classes)))
        ds = self.data[split]
        return [ds.video_ids[i] for i in order], y, probs

    # the loop's interface ------------------------------------------------
    prediction_schema = PREDICTION_SCHEMA

    def splits(self) -> list[str]:
        return [s for s in ("dev", "test") if s in self.data]

    def has_dev(self) -> bool:
        return "dev" in self.data and bool(self.usable("dev").any())

    def describe(self) -> dict:
        return {"classes": self.classes, "positive": self.positive, "columns": self.columns}

    def check(self, payload: dict) -> None:
        if self.classes != payload["classes"]:
            raise FacevoxError(f"trained on classes {payload['classes']}, the shards have {self.classes}")

    def preprocessing(self, cfg: dict) -> dict:
        """The shard set's slicing and normalisation (manifest.json's parameters, norm.json's train
        statistics), the slice filter, the model's input columns and the vote."""
        from dataclasses import asdict

        from facevox.dataset.slices import NormStats

        manifest = json.loads(self.key_text)
        params = manifest.get("params") or {}
        return {"kind": "slices", "feature_set": manifest.get("feature_set"), "columns": self.columns,
                "shards": {k: params[k] for k in SLICE_PARAMS if k in params},
                "norm": asdict(NormStats.load(self.root / manifest.get("norm", "norm.json"))),
                "max_missing_fraction": self.settings["max_missing_fraction"], "visual": self.visual,
                "acoustic": self.acoustic, "sklearn": self.estimator == "sklearn", "classes": self.classes,
                "positive": self.positive, "vote": cfg["vote"]}

    def evaluate_split(self, predict_fn, split: str, cfg: dict, batch_size: int) -> tuple[dict, object]:
        vote = cfg["vote"]
        ds = self.data[split]
        video_ids, y, probs = self.predict(predict_fn, split, batch_size)
        truth = dict(zip(ds.video_ids, ds.label_names))
        table, unpredicted = video_predictions(split, video_ids, truth, probs, self.classes, self.positive,
                                               vote, list(dict.fromkeys(ds.video_ids)) + self._unsliced(split))
        result = split_metrics(table, self.classes, self.positive)
        result["slice_level"] = slice_metrics(y, probs, self.classes, self.positive)
        picked = probs[np.arange(len(y)), y] if len(y) else np.zeros(0)
        result["loss"] = float(-np.log(np.clip(picked, 1e-12, 1)).mean()) if len(y) else math.nan
        result["unpredicted"] = unpredicted
        result["unpredicted_reasons"] = why_unpredicted(unpredicted, [r for r in self.left_out()
                                                                       if r["split"] == split])
        result["slices_left_out"] = int((~self.usable(split)).sum())
        result["values_filled"] = self.filled.get(split, 0)
        return result, table


def _check_shard_subjects(root: Path, data: dict) -> None:
    """The leakage guard at training time: no subject in two splits of the shard set (the
    shards rule checks the sheet; this catches shard folders assembled by hand)."""
    from facevox.dataset.splits import check_subject_splits

    rows = []
    for split, ds in data.items():
        for path in dict.fromkeys(ds._paths):
            table = pq.read_table(path, columns=["video_id", "subject_id"]).to_pandas().drop_duplicates()
            rows.append(table.assign(split=split))
    if rows:
        check_subject_splits(pd.concat(rows, ignore_index=True), f"shard set {root}")
