"""Tasks: what the one training loop (facevox.training.loop) needs from each kind of data.

A task turns one data family into shuffled training batches, a loss, a
development score (higher is better) and evaluation tables.  Four of them:

* :class:`SliceClassification` - ``sequence`` and ``sklearn`` models on a shard
  set (landmarks + eGeMAPS slices); videos by voting (facevox.training.evaluate);
* :class:`ClipRegression` - ``clip`` models (STA-DRN) on aligned face clips:
  training draws ``clips_per_video`` random clips of ``clip_len`` frames per
  video and epoch, with one horizontal flip and one colour jitter (brightness,
  contrast, saturation within ±0.1) for the whole clip; evaluation covers each
  video with consecutive clips (the last one padded with its last frame) and
  averages their scores; scores are divided by ``score_scale`` (63, BDI-II) for
  training;
* :class:`FaceRegression` - ``face`` models (DLGA-CNN) on single aligned faces
  and their landmarks: ``frames_per_video`` random face frames per video and
  epoch (flip and jitter per frame, landmarks mirrored with the image);
  evaluation averages ``eval_frames_per_video`` evenly spaced face frames;
* :class:`FauContinuous` - ``fau`` models (the shallow FAU CNN) on whole FAU
  window sequences with time-continuous labels aligned to the window centres
  after delay compensation (facevox.dataset.labels); full-batch training, NaN
  labels (outside the annotation, padding) masked from the loss; CCC per
  dimension over the concatenated windows of a split, as AVEC computes it.

Regression metrics: MAE, RMSE, PCC, CCC per video in label units
(facevox.training.metrics.regression_metrics); continuous: CCC per dimension.

Tests: tests/test_train.py, tests/test_tasks.py
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from facevox.contract import (CROP_LANDMARK_X, CROP_LANDMARK_Y, EGEMAPS_COLUMNS, FAU_STAT_COLUMNS, LANDMARK_COLUMNS,
                       SPLITS)
from facevox.errors import FacevoxError
from facevox.training.evaluate import PREDICTION_SCHEMA, slice_metrics, split_metrics, video_predictions
from facevox.training.metrics import ccc, regression_metrics

log = logging.getLogger("facevox.training.loop")

REGRESSION_SCHEMA = pa.schema([
    pa.field("split", pa.string()),
    pa.field("video_id", pa.string()),
    pa.field("score_true", pa.float64()),
    pa.field("score_pred", pa.float64()),
    pa.field("n_items", pa.int32()),
])

CONTINUOUS_SCHEMA = pa.schema([
    pa.field("split", pa.string()),
    pa.field("video_id", pa.string()),
    pa.field("dimension", pa.string()),
    pa.field("centre_s", pa.float64()),
    pa.field("true", pa.float64()),
    pa.field("pred", pa.float64()),
])


def make_task(family: str, data, settings: dict, sheet=None):
    """The task of a model family on its data (shard folder, faces folder or FAU folder)."""
    if family in ("sequence", "sklearn"):
        return SliceClassification(data, settings, family)
    if sheet is None:
        raise FacevoxError(f"{family} models need the sample sheet (--sheet)")
    if family == "clip":
        return ClipRegression(sheet, data, settings)
    if family == "face":
        return FaceRegression(sheet, data, settings)
    if family == "fau":
        return FauContinuous(sheet, data, settings)
    raise FacevoxError(f"no task for model family {family!r}")


class SliceClassification:
    """Sequence / sklearn models on a shard set: slices -> class, videos by voting.

    Slices whose still-missing rows exceed ``max_missing_fraction`` of their real
    rows are left out (counted); remaining NaN values (short missing stretches
    inside a kept slice) become 0, i.e. the training minimum after min-max
    normalisation, and are counted in the log and the metrics.
    """

    def __init__(self, shard_dir, settings: dict, family: str = "sequence"):
        from facevox.dataset.datasets import SliceDataset

        self.root, self.family = Path(shard_dir), family
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
        self._cache: dict[str, tuple] = {}
        self.filled = {}

    # data ---------------------------------------------------------------
    def model_kwargs(self, family: str) -> dict:
        if family == "sklearn":
            n = len(self.columns)
            return {"groups": [np.r_[self.visual, np.array(self.visual) + n],
                               np.r_[self.acoustic, np.array(self.acoustic) + n]]}
        if not self.visual or not self.acoustic:
            raise FacevoxError(f"{self.root}: sequence models need landmark and eGeMAPS columns")
        return {"n_visual": len(self.visual), "n_acoustic": len(self.acoustic),
                "n_classes": len(self.classes), "seq_len": self.length}

    def usable(self, split: str) -> np.ndarray:
        ds = self.data[split]
        labels = np.array([ds.labels.get(x, -1) for x in ds.label_names])
        ok = (ds.n_missing <= self.settings["max_missing_fraction"] * np.maximum(ds.n_real, 1)) & (labels >= 0)
        return ok

    def load(self, split: str, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Features [N, L, C] and labels [N] of the usable slices (``rows``: a subset)."""
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
        return (x,) if self.family == "sklearn" else (x[..., self.visual], x[..., self.acoustic])

    def statistics(self, split: str):
        from facevox.models.classical import slice_statistics

        x, y, order = self._split_arrays(split)
        return slice_statistics(x), y, order

    # evaluation ---------------------------------------------------------
    def class_weights(self) -> np.ndarray:
        _, y, _ = self._split_arrays("train")
        counts = np.bincount(y, minlength=len(self.classes)).astype(np.float64)
        return len(y) / (len(self.classes) * np.maximum(counts, 1))

    def predict(self, predict_fn, split: str, batch_size: int):
        """Slice probabilities of one split with ``predict_fn(inputs) -> probs [n, K]``."""
        x, y, order = self._split_arrays(split)
        probs = [predict_fn(self.inputs(x[i:i + max(batch_size, 1)])) for i in range(0, len(x), max(batch_size, 1))]
        probs = np.concatenate(probs) if probs else np.zeros((0, len(self.classes)))
        ds = self.data[split]
        return [ds.video_ids[i] for i in order], y, probs

    # the loop's interface ------------------------------------------------
    kind = "classification"
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

    def loss(self, cfg: dict, device):
        import torch

        weights = None
        if cfg["class_weights"] == "balanced":
            weights = torch.tensor(self.class_weights(), dtype=torch.float32, device=device)
        elif cfg["class_weights"] != "none":
            raise FacevoxError(f"class_weights must be none or balanced, not {cfg['class_weights']!r}")
        ce = torch.nn.CrossEntropyLoss(weight=weights)
        return lambda output, target: ce(output.float(), target)

    @staticmethod
    def postprocess(output):
        import torch

        return torch.softmax(output.float(), 1)

    def score(self, result: dict, settings: dict) -> float:
        key = settings["select_by"]
        value = -result["loss"] if key == "loss" else result.get(key, math.nan)
        return -math.inf if value is None or math.isnan(value) else float(value)

    def evaluate_split(self, predict_fn, split: str, cfg: dict, batch_size: int) -> tuple[dict, object]:
        vote = cfg["vote"]
        ds = self.data[split]
        video_ids, y, probs = self.predict(predict_fn, split, batch_size)
        truth = dict(zip(ds.video_ids, ds.label_names))
        table, unpredicted = video_predictions(split, video_ids, truth, probs, self.classes, self.positive,
                                               vote, list(dict.fromkeys(ds.video_ids)))
        result = split_metrics(table, self.classes, self.positive)
        result["slice_level"] = slice_metrics(y, probs, self.classes, self.positive)
        picked = probs[np.arange(len(y)), y] if len(y) else np.zeros(0)
        result["loss"] = float(-np.log(np.clip(picked, 1e-12, 1)).mean()) if len(y) else math.nan
        result["unpredicted"] = unpredicted
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


# --------------------------------------------------------------------------- sheet-based tasks
def _sheet_videos(sheet, folder, suffix: str, need: str, what: str):
    """Videos of the sheet per split whose table exists, and those left out (no value)."""
    from facevox.samples import read_samples
    from facevox.dataset.splits import check_subject_splits

    samples = read_samples(sheet, check_files=False)
    check_subject_splits(samples, str(sheet))  # leakage guard: a subject in one split only
    folder = Path(folder)
    videos: dict[str, list[str]] = {}
    for vid, row in samples.iterrows():
        split = row.get("split")
        if split not in SPLITS:
            continue
        if need == "score" and row.get("score") in (None, ""):
            continue
        path = folder / f"{vid}{suffix}"
        if not path.is_file():
            raise FacevoxError(f"{path}: missing {what} table of video {vid}")
        videos.setdefault(split, []).append(vid)
    if not videos.get("train"):
        raise FacevoxError(f"{sheet}: no train video with a {need} for {what} models")
    return samples, videos


class _FaceFrames:
    """Decoded, resized face crops of one aligned-face table, read on demand (one video cached)."""

    def __init__(self, folder, size: int):
        self.folder, self.size = Path(folder), size
        self._cached = (None, None)

    def load(self, vid: str):
        if self._cached[0] != vid:
            import torch

            from facevox.extract.faces import decode_jpeg

            table = pq.read_table(self.folder / f"{vid}.parquet")
            success = table.column("success").to_numpy(zero_copy_only=False)
            images = table.column("image").to_pylist()
            xy = np.stack([np.stack([table.column(x).to_numpy(), table.column(y).to_numpy()], 1)
                           for x, y in zip(CROP_LANDMARK_X, CROP_LANDMARK_Y)], 1)  # [n, 68, 2]
            faces = np.flatnonzero(success)
            if len(faces) == 0:
                raise FacevoxError(f"{self.folder / vid}.parquet: no frame with a face")
            frames = np.stack([decode_jpeg(images[i]) for i in faces])  # [n, H, W, 3] uint8
            stored = frames.shape[1]
            tensor = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
            if stored != self.size:
                tensor = torch.nn.functional.interpolate(tensor, size=(self.size, self.size), mode="bilinear",
                                                         antialias=True, align_corners=False)
            self._cached = (vid, (tensor.clamp(0, 1), xy[faces] * (self.size / stored)))
        return self._cached[1]


def _jitter(images, rng: np.random.Generator, amount: float = 0.1, flip: bool | None = None):
    """One flip and one brightness/contrast/saturation jitter (each within ±amount) applied to
    every image of ``images`` [N, 3, H, W]; returns (images, flipped)."""
    import torch

    flipped = bool(rng.integers(2)) if flip is None else flip
    if flipped:
        images = torch.flip(images, dims=[-1])
    b, c, s = rng.uniform(1 - amount, 1 + amount, 3)
    images = images * b
    mean = images.mean(dim=(-3, -2, -1), keepdim=True)
    images = (images - mean) * c + mean
    gray = (0.299 * images[:, 0:1] + 0.587 * images[:, 1:2] + 0.114 * images[:, 2:3])
    images = gray + (images - gray) * s
    return images.clamp(0, 1), flipped


#: dlib 68-point indices mirrored left <-> right (jaw, brows, nose base, eyes, mouth).
MIRROR_68 = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])


class _Regression:
    """Shared by the clip and face tasks: per-video scores, MAE/RMSE/PCC/CCC."""

    kind = "regression"
    prediction_schema = REGRESSION_SCHEMA

    def __init__(self, sheet, folder, settings: dict, what: str):
        self.settings = settings
        self.vision = settings["vision"]
        self.scale = float(self.vision["score_scale"])
        self.samples, listed = _sheet_videos(sheet, folder, ".parquet", "score", what)
        self.frames = _FaceFrames(folder, self.vision["size"])
        self.root = Path(folder)
        # a video without any face crop cannot be scored: left out (evaluation lists it as unpredicted)
        self.faceless = [v for vs in listed.values() for v in vs
                         if not pq.read_table(self.root / f"{v}.parquet", columns=["success"]).column("success")
                         .to_numpy(zero_copy_only=False).any()]
        if self.faceless:
            log.warning("%s: no face in %d video(s), left out: %s", self.root, len(self.faceless),
                        ", ".join(self.faceless))
        self.all_videos = listed
        self.videos = {s: [v for v in vs if v not in self.faceless] for s, vs in listed.items()}
        if not self.videos.get("train"):
            raise FacevoxError(f"{sheet}: no train video with a face crop for {what} models")
        self.key_text = repr(sorted((s, v, self._score(v)) for s, vs in self.videos.items() for v in vs))
        self.data = self.videos

    def _score(self, vid: str) -> float:
        return float(self.samples.loc[vid, "score"])

    def splits(self) -> list[str]:
        return [s for s in ("dev", "test") if self.videos.get(s)]

    def has_dev(self) -> bool:
        return bool(self.videos.get("dev"))

    def describe(self) -> dict:
        return {"score_scale": self.scale, "vision": self.vision}

    def check(self, payload: dict) -> None:
        pass

    def loss(self, cfg: dict, device):
        import torch

        name = cfg["loss"] if cfg["loss"] in ("mse", "l1") else "mse"
        fn = torch.nn.MSELoss() if name == "mse" else torch.nn.L1Loss()
        return lambda output, target: fn(output.float().reshape(-1), target.float().reshape(-1))

    @staticmethod
    def postprocess(output):
        return output.float().reshape(-1)

    def score(self, result: dict, settings: dict) -> float:
        value = result.get("rmse", math.nan)
        return -math.inf if math.isnan(value) else -float(value)

    def _finish(self, split: str, per_video: dict[str, list[float]]):
        vids = list(per_video)
        true = np.array([self._score(v) for v in vids])
        pred = np.array([float(np.mean(per_video[v])) * self.scale for v in vids])
        table = pd.DataFrame({"split": split, "video_id": vids, "score_true": true, "score_pred": pred,
                              "n_items": np.array([len(per_video[v]) for v in vids], np.int32)})
        result = regression_metrics(true, pred)
        result["unpredicted"] = [v for v in self.all_videos[split] if v not in per_video]
        return result, table


class ClipRegression(_Regression):
    def __init__(self, sheet, folder, settings: dict):
        super().__init__(sheet, folder, settings, "aligned-face")
        self.clip_len = int(self.vision["clip_len"])

    def model_kwargs(self, family: str) -> dict:
        return {"clip_len": self.clip_len, "size": self.vision["size"]}

    def n_train(self) -> int:
        return len(self.videos["train"]) * self.vision["clips_per_video"]

    def _clip(self, frames, start: int):
        rows = np.minimum(np.arange(start, start + self.clip_len), len(frames) - 1)
        return frames[rows]  # [T, 3, S, S]

    def batches(self, rng: np.random.Generator, batch_size: int):
        import torch

        items = [v for v in self.videos["train"] for _ in range(self.vision["clips_per_video"])]
        order = rng.permutation(len(items))
        size = batch_size or len(items)
        for start in range(0, len(order), size):
            clips, targets = [], []
            for k in order[start:start + size]:
                vid = items[k]
                frames, _ = self.frames.load(vid)
                first = int(rng.integers(0, max(1, len(frames) - self.clip_len + 1)))
                clip, _ = _jitter(self._clip(frames, first), rng)
                clips.append(clip.permute(1, 0, 2, 3))  # [3, T, S, S]
                targets.append(self._score(vid) / self.scale)
            yield (torch.stack(clips),), torch.tensor(targets, dtype=torch.float32)

    def evaluate_split(self, predict_fn, split: str, cfg: dict, batch_size: int):
        import torch

        per_video: dict[str, list[float]] = {}
        for vid in self.videos.get(split, []):
            frames, _ = self.frames.load(vid)
            starts = range(0, len(frames), self.clip_len)
            clips = [self._clip(frames, s).permute(1, 0, 2, 3) for s in starts]
            for i in range(0, len(clips), max(batch_size, 1)):
                out = predict_fn((torch.stack(clips[i:i + max(batch_size, 1)]),))
                per_video.setdefault(vid, []).extend(np.asarray(out, np.float64).tolist())
        return self._finish(split, per_video)


class FaceRegression(_Regression):
    def __init__(self, sheet, folder, settings: dict):
        super().__init__(sheet, folder, settings, "aligned-face")

    def model_kwargs(self, family: str) -> dict:
        return {"size": self.vision["size"]}

    def n_train(self) -> int:
        return len(self.videos["train"]) * self.vision["frames_per_video"]

    def _flip_landmarks(self, xy):
        out = xy[:, MIRROR_68].copy()
        out[..., 0] = self.vision["size"] - 1 - out[..., 0]
        return out

    def batches(self, rng: np.random.Generator, batch_size: int):
        import torch

        items = [v for v in self.videos["train"] for _ in range(self.vision["frames_per_video"])]
        order = rng.permutation(len(items))
        size = batch_size or len(items)
        for start in range(0, len(order), size):
            images, points, targets = [], [], []
            for k in order[start:start + size]:
                vid = items[k]
                frames, xy = self.frames.load(vid)
                i = int(rng.integers(len(frames)))
                image, flipped = _jitter(frames[i:i + 1], rng)
                images.append(image[0])
                points.append(self._flip_landmarks(xy[i:i + 1])[0] if flipped else xy[i])
                targets.append(self._score(vid) / self.scale)
            yield ((torch.stack(images), torch.from_numpy(np.stack(points)).float()),
                   torch.tensor(targets, dtype=torch.float32))

    def evaluate_split(self, predict_fn, split: str, cfg: dict, batch_size: int):
        import torch

        per_video: dict[str, list[float]] = {}
        n_eval = self.vision["eval_frames_per_video"]
        for vid in self.videos.get(split, []):
            frames, xy = self.frames.load(vid)
            rows = np.arange(len(frames)) if not n_eval or n_eval >= len(frames) else \
                np.unique(np.linspace(0, len(frames) - 1, n_eval).round().astype(int))
            step = max(batch_size, 1)
            for i in range(0, len(rows), step):
                r = rows[i:i + step]
                out = predict_fn((frames[r], torch.from_numpy(xy[r]).float()))
                per_video.setdefault(vid, []).extend(np.asarray(out, np.float64).tolist())
        return self._finish(split, per_video)


class FauContinuous:
    """Whole FAU-window sequences -> time-continuous affect (see the module docstring)."""

    kind = "continuous"
    prediction_schema = CONTINUOUS_SCHEMA

    def __init__(self, sheet, folder, settings: dict):
        from facevox.dataset.labels import label_file, window_labels

        self.settings = settings
        self.affect = settings["affect"]
        self.dimensions = list(self.affect["dimensions"])
        self.root = Path(folder)
        samples, videos = _sheet_videos(sheet, folder, ".parquet", "split", "FAU-window")
        self.videos, self.x, self.y, self.centres = {}, {}, {}, {}
        for split, vids in videos.items():
            for vid in vids:
                path = label_file(vid, samples.loc[vid, "affect_labels"], self.affect["labels_dir"])
                table = pq.read_table(self.root / f"{vid}.parquet").to_pandas()
                self.x[vid] = np.nan_to_num(table[FAU_STAT_COLUMNS].to_numpy(np.float32))
                aligned = window_labels(path, table, self.dimensions, self.affect["delays_s"])
                self.y[vid] = aligned[self.dimensions].to_numpy(np.float32)
                self.centres[vid] = table["centre_s"].to_numpy(np.float64)
                self.videos.setdefault(split, []).append(vid)
        self.data = self.videos
        self.key_text = repr({v: (float(np.nansum(self.y[v])), self.x[v].shape) for v in self.x})

    def model_kwargs(self, family: str) -> dict:
        return {"n_features": len(FAU_STAT_COLUMNS), "n_outputs": len(self.dimensions)}

    def n_train(self) -> int:
        return len(self.videos["train"])

    def splits(self) -> list[str]:
        return [s for s in ("dev", "test") if self.videos.get(s)]

    def has_dev(self) -> bool:
        return bool(self.videos.get("dev"))

    def describe(self) -> dict:
        return {"dimensions": self.dimensions, "delays_s": self.affect["delays_s"],
                "feature_names": FAU_STAT_COLUMNS}

    def check(self, payload: dict) -> None:
        if payload.get("dimensions") != self.dimensions:
            raise FacevoxError(f"trained on dimensions {payload.get('dimensions')}, configured {self.dimensions}")

    def _padded(self, vids: list[str]):
        import torch

        longest = max(len(self.x[v]) for v in vids)
        x = np.zeros((len(vids), longest, self.x[vids[0]].shape[1]), np.float32)
        y = np.full((len(vids), longest, len(self.dimensions)), np.nan, np.float32)
        for i, v in enumerate(vids):
            x[i, :len(self.x[v])], y[i, :len(self.y[v])] = self.x[v], self.y[v]
        return torch.from_numpy(x), torch.from_numpy(y)

    def batches(self, rng: np.random.Generator, batch_size: int):
        vids = self.videos["train"]
        order = [vids[i] for i in rng.permutation(len(vids))]
        size = batch_size or len(order)
        for start in range(0, len(order), size):
            x, y = self._padded(order[start:start + size])
            yield (x,), y

    def loss(self, cfg: dict, device):
        import torch

        from facevox.models.shallow_fau import masked_ccc_loss

        if cfg["loss"] == "ccc":
            return lambda output, target: masked_ccc_loss(output.float(), target)

        def mse(output, target):
            keep = ~torch.isnan(target)
            return ((output.float() - torch.nan_to_num(target)) ** 2)[keep].mean()
        return mse

    @staticmethod
    def postprocess(output):
        return output.float()

    def score(self, result: dict, settings: dict) -> float:
        value = result.get("ccc_mean", math.nan)
        return -math.inf if math.isnan(value) else float(value)

    def evaluate_split(self, predict_fn, split: str, cfg: dict, batch_size: int):
        rows, preds, trues = [], {d: [] for d in self.dimensions}, {d: [] for d in self.dimensions}
        for vid in self.videos.get(split, []):
            out = np.asarray(predict_fn((self.x[vid][None],)))[0]  # [T, D]
            for k, dim in enumerate(self.dimensions):
                preds[dim].append(out[:, k])
                trues[dim].append(self.y[vid][:, k])
                rows.append(pd.DataFrame({"split": split, "video_id": vid, "dimension": dim,
                                          "centre_s": self.centres[vid], "true": self.y[vid][:, k].astype(np.float64),
                                          "pred": out[:, k].astype(np.float64)}))
        values = {d: ccc(np.concatenate(trues[d]), np.concatenate(preds[d])) if trues[d] else math.nan
                  for d in self.dimensions}
        result = {"n": len(self.videos.get(split, [])), "ccc": values,
                  "ccc_mean": float(np.mean(list(values.values()))) if values else math.nan, "unpredicted": []}
        table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=CONTINUOUS_SCHEMA.names)
        return result, table

    def explain(self, model) -> dict:
        """The trained filter per dimension (features x time, the paper's Figure) and eq. 5
        attributions at three evenly spaced windows of the first test (else dev) video;
        empty for model A (no single filter)."""
        from facevox.models.shallow_fau import feature_attributions, filter_lags, filter_weights

        try:
            lags = filter_lags(model)
        except FacevoxError:
            return {}
        names = list(getattr(model, "input_names", FAU_STAT_COLUMNS))
        out = {"features": names, "lags": lags.tolist(), "filters": {}, "attributions": {}}
        split = "test" if self.videos.get("test") else "dev"
        vid = (self.videos.get(split) or [None])[0]
        for k, dim in enumerate(self.dimensions):
            out["filters"][dim] = filter_weights(model, k).round(6).tolist()
            if vid is not None:
                steps = np.linspace(0, len(self.x[vid]) - 1, 3).round().astype(int)
                values = feature_attributions(model, self.x[vid], steps.tolist(), k)
                out["attributions"][dim] = {"video_id": vid, "steps": steps.tolist(),
                                            "centre_s": self.centres[vid][steps].tolist(),
                                            "values": np.round(values, 6).tolist()}
        return out
