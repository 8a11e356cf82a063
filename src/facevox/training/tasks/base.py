"""What the training loop needs from a task (:class:`Task`, written once), and what the
sheet-based tasks share: the prediction schemas, the sheet's videos per split and the
regression base class of the vision tasks (face frames streamed by
facevox.training.tasks.face_frames, whose augmentation - ``jitter``, ``MIRROR_68`` - is
re-exported here).

Tests: tests/test_tasks.py
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import pyarrow as pa

from facevox.contract import SPLITS, describe_left_out, left_out_record
from facevox.errors import FacevoxError
from facevox.training.metrics import regression_metrics
from facevox.training.tasks.face_frames import (
    MIRROR_68,
    FaceItem,
    FaceItems,
    VideoFrames,
    draw_jitter,
    face_batches,
    index_video,
    jitter,
    loader_workers,
)

__all__ = ["MIRROR_68", "jitter", "Regression", "Task", "Classification", "sheet_videos", "why_unpredicted",
           "log_left_out", "REGRESSION_SCHEMA", "CONTINUOUS_SCHEMA"]

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



@runtime_checkable
class Task(Protocol):
    """One kind of data adapted to the one training loop (facevox.training.loop).

    ``predict_fn(inputs) -> numpy array`` is a trained model's forward pass
    (facevox.training.trained.TrainedModel.predict: model, device, autocast and
    :meth:`postprocess` applied); ``inputs`` is the tuple a batch carries.
    """

    #: The metrics table this task's results go to: classification | regression | continuous.
    kind: str
    #: Arrow schema of the per-video prediction table evaluation writes.
    prediction_schema: pa.Schema
    #: The data folder (shard set, faces or FAU windows).
    root: Path
    #: Text identifying the training data; a resumed checkpoint must have been made on the same.
    key_text: str
    #: What one training item is (slices, videos, clips, frames): the loop's log and ``items_per_s``.
    unit: str

    def model_kwargs(self, family: str) -> dict:
        """Data-dependent constructor arguments (input sizes, classes, clip length...)."""

    def describe(self) -> dict:
        """What the checkpoint records about the data (classes, dimensions, scale...)."""

    def check(self, payload: dict) -> None:
        """Raise if a checkpoint's recorded description does not fit this data."""

    def preprocessing(self, cfg: dict) -> dict:
        """Everything that turns one new video's table into exactly the inputs the model was
        trained and evaluated on, and its outputs into the video's prediction (``kind``: the
        task; ``cfg``: the training config) - the model file keeps it (``preprocessing``) for
        scoring new videos (facevox.training.predict)."""

    def n_train(self) -> int:
        """Training items per epoch (:attr:`unit`: slices, clips, frames or videos)."""

    def batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[tuple[tuple, Any]]:
        """Shuffled training batches ``(inputs, targets)`` for one epoch (0 = one full batch)."""

    def loss(self, cfg: dict, device) -> Callable:
        """``loss(output, target) -> scalar tensor`` for the training settings ``cfg``."""

    @staticmethod
    def postprocess(output):
        """Model output -> what evaluation reads (probabilities, scores)."""

    def has_dev(self) -> bool:
        """Whether a development split is there to select the best epoch."""

    def splits(self) -> list[str]:
        """The evaluation splits present (dev, test)."""

    def evaluate_split(self, predict_fn: Callable, split: str, cfg: dict, batch_size: int) -> tuple[dict, Any]:
        """(metrics of the split, its prediction table)."""

    def score(self, result: dict, settings: dict) -> float:
        """Development score of :meth:`evaluate_split`'s metrics, higher is better."""

    def left_out(self) -> list[dict]:
        """Every item of the data not used, as :func:`left_out_record` entries (all splits)."""


def why_unpredicted(videos: list[str], records: list[dict]) -> dict[str, str]:
    """Each unpredicted video -> the reasons (``+``-joined, in record order) its items were left
    out for (``records``: the split's :func:`left_out_record` entries); ``unknown`` if none."""
    out = {}
    for vid in videos:
        reasons = [r["reason"] for r in records if vid in r["videos"]]
        out[vid] = "+".join(dict.fromkeys(reasons)) or "unknown"
    return out


def log_left_out(name: str, records: list[dict]) -> None:
    """One warning line per left-out entry (the training log), naming the videos."""
    for rec in records:
        log.warning("%s: %s", name, describe_left_out(rec))


class Classification:
    """What the slice and whole-video classification tasks share: (class-weighted) cross-entropy
    on the logits, softmax probabilities for evaluation, and the development score named by
    ``select_by`` (``loss``: minus the dev loss).  A subclass gives ``classes`` and
    :meth:`train_targets`."""

    kind = "classification"

    def train_targets(self) -> np.ndarray:
        """Class index of every training item (slices or videos)."""
        raise NotImplementedError

    def class_weights(self) -> np.ndarray:
        """``balanced``: n / (K * count of the class) over the training items."""
        y = self.train_targets()
        counts = np.bincount(y, minlength=len(self.classes)).astype(np.float64)
        return len(y) / (len(self.classes) * np.maximum(counts, 1))

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


def sheet_videos(sheet, folder, suffix: str, need: str, what: str, no_value: dict | None = None):
    """Videos of the sheet per split whose table exists; those of a split without the value
    ``need`` (``score``) are appended to ``no_value[split]`` when given."""
    from facevox.dataset.splits import check_subject_splits
    from facevox.samples import read_samples

    samples = read_samples(sheet, check_files=False)
    check_subject_splits(samples, str(sheet))  # leakage guard: a subject in one split only
    folder = Path(folder)
    videos: dict[str, list[str]] = {}
    for vid, row in samples.iterrows():
        split = row.get("split")
        if split not in SPLITS:
            continue
        score = row.get("score")  # iterrows turns the sheet's None into NaN
        if need == "score" and (score is None or score == "" or (isinstance(score, float) and math.isnan(score))):
            if no_value is not None:
                no_value.setdefault(split, []).append(vid)
            continue
        path = folder / f"{vid}{suffix}"
        if not path.is_file():
            raise FacevoxError(f"{path}: missing {what} table of video {vid}")
        videos.setdefault(split, []).append(vid)
    if not videos.get("train"):
        raise FacevoxError(f"{sheet}: no train video with a {need} for {what} models")
    return samples, videos


class Regression:
    """Shared by the clip and face tasks: per-video scores, MAE/RMSE/PCC/CCC."""

    kind = "regression"
    prediction_schema = REGRESSION_SCHEMA
    #: The task's name in facevox.training.tasks.TASKS (clips, faces).
    name = ""

    def __init__(self, sheet, folder, settings: dict, what: str):
        self.settings = settings
        self.vision = settings["vision"]
        self.scale = float(self.vision["score_scale"])
        self.no_score: dict[str, list[str]] = {}
        self.samples, listed = sheet_videos(sheet, folder, ".parquet", "score", what, self.no_score)
        self.root = Path(folder)
        # built once: each video's face rows (runs of success == True), a few numbers per video
        self.index = {v: index_video(v, self.root / f"{v}.parquet") for vs in listed.values() for v in vs}
        self.frames = VideoFrames(self.index, self.vision["size"])
        # a video without any face crop cannot be scored: left out (evaluation lists it as unpredicted)
        self.faceless = [v for vs in listed.values() for v in vs if self.index[v].n_faces == 0]
        self.all_videos = listed
        self.videos = {s: [v for v in vs if v not in self.faceless] for s, vs in listed.items()}
        if not self.videos.get("train"):
            raise FacevoxError(f"{sheet}: no train video with a face crop for {what} models")
        self.key_text = repr(sorted((s, v, self._score(v)) for s, vs in self.videos.items() for v in vs))
        self.data = self.videos

    def _score(self, vid: str) -> float:
        return float(self.samples.loc[vid, "score"])

    def epoch_items(self, rng: np.random.Generator, per_video: int, pick) -> list[tuple]:
        """One epoch's training items in order, ``(video, face frames, jitter)``: ``per_video`` per
        train video, shuffled; ``pick(n_faces)`` draws an item's face frames, then its jitter is
        drawn - every random number here (main process), in the order the in-memory loader drew them."""
        items = [v for v in self.videos["train"] for _ in range(per_video)]
        out = []
        for k in rng.permutation(len(items)):
            vid = items[k]
            frames = pick(self.index[vid].n_faces)
            out.append((vid, frames, draw_jitter(rng)))
        return out

    def stream(self, items: list[tuple], kind: str, batches: list[list[int]]):
        """The collated batches of ``items`` ``(video, face frames, jitter or None)`` (``kind``
        clip or frame) read by ``models.vision.workers`` processes, in the order of ``batches``."""
        import torch

        videos = list(dict.fromkeys(v for v, _, _ in items))
        where = {v: i for i, v in enumerate(videos)}
        data = FaceItems([self.index[v] for v in videos],
                         [FaceItem(where[v], np.asarray(f), j) for v, f, j in items], self.vision["size"], kind)
        pin = self.settings.get("device", "auto") != "cpu" and torch.cuda.is_available()
        return face_batches(data, batches, loader_workers(self.vision), int(self.vision.get("prefetch", 2)), pin)

    def splits(self) -> list[str]:
        return [s for s in ("dev", "test") if self.videos.get(s)]

    def has_dev(self) -> bool:
        return bool(self.videos.get("dev"))

    def describe(self) -> dict:
        return {"score_scale": self.scale, "vision": self.vision}

    def preprocessing(self, cfg: dict) -> dict:
        """The vision settings evaluation reads (clip length, size, test-time clips and frames,
        score scale), the stored size of the train videos' face crops and the faces stage's
        parameters of the first train video's table (its provenance; {} when it has none)."""
        from facevox.io import read_provenance

        first = self.videos["train"][0]
        keys = ("clip_len", "size", "eval_clips", "eval_frames_per_video", "score_scale")
        return {"kind": self.name, "vision": {k: self.vision.get(k) for k in keys},
                "crop_size": self.frames.reader.crop_size(self.index[first]),
                "faces_params": read_provenance(self.index[first].path).get("params") or {}}

    def check(self, payload: dict) -> None:
        pass

    def left_out(self) -> list[dict]:
        out = []
        for split in SPLITS:
            faceless = [v for v in self.all_videos.get(split, []) if v in self.faceless]
            if faceless:
                out.append(left_out_record(split, "no_face", "videos", dict.fromkeys(faceless, 1)))
            if self.no_score.get(split):
                out.append(left_out_record(split, "no_score", "videos", dict.fromkeys(self.no_score[split], 1)))
        return out

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
        result["unpredicted_reasons"] = why_unpredicted(result["unpredicted"],
                                                        [r for r in self.left_out() if r["split"] == split])
        return result, table
