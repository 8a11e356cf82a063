"""Task ``faces``: face models (DLGA-CNN) on single aligned faces and their landmarks.

``frames_per_video`` random face frames per video and epoch (flip and jitter per frame,
landmarks mirrored with the image); evaluation averages ``eval_frames_per_video`` evenly
spaced face frames.

Tests: tests/test_train.py, tests/test_tasks.py
"""
from __future__ import annotations

import numpy as np

from facevox.training.tasks.base import Regression
from facevox.training.tasks.face_frames import video_batches


def eval_frame_rows(n: int, n_eval: int) -> np.ndarray:
    """The face frames evaluation reads of a video of ``n`` face frames: ``n_eval``
    (``models.vision.eval_frames_per_video``) evenly spaced ones, all when ``n_eval`` is 0 or
    at least ``n``."""
    if not n_eval or n_eval >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, n_eval).round().astype(int))


class FaceRegression(Regression):
    """Task of the ``face`` family (DLGA-CNN): BDI-II regression on single face frames with their landmarks."""
    unit = "frames"
    name = "faces"

    def __init__(self, sheet, folder, settings: dict):
        super().__init__(sheet, folder, settings, "aligned-face")

    def model_kwargs(self, family: str) -> dict:
        return {"size": self.vision["size"]}

    def n_train(self) -> int:
        return len(self.videos["train"]) * self.vision["frames_per_video"]

    def train_items(self, rng: np.random.Generator) -> list[tuple]:
        """One epoch's frames in training order (:meth:`Regression.epoch_items`): a random face frame each."""
        return self.epoch_items(rng, self.vision["frames_per_video"], lambda n: np.array([int(rng.integers(n))]))

    def batches(self, rng: np.random.Generator, batch_size: int):
        import torch

        items = self.train_items(rng)
        size = batch_size or len(items)
        chunks = [list(range(s, min(s + size, len(items)))) for s in range(0, len(items), size)]
        for chunk, (images, points) in zip(chunks, self.stream(items, "frame", chunks)):
            targets = [self._score(items[i][0]) / self.scale for i in chunk]
            yield (images, points), torch.tensor(targets, dtype=torch.float32)

    def eval_items(self, split: str) -> list[tuple]:
        """The evaluation frames ``(video, [face frame], None)``: ``eval_frames_per_video`` evenly
        spaced face frames of each video of the split (0 or more than it has: all)."""
        n_eval = self.vision["eval_frames_per_video"]
        return [(vid, np.array([r]), None) for vid in self.videos.get(split, [])
                for r in eval_frame_rows(self.index[vid].n_faces, n_eval)]

    def evaluate_split(self, predict_fn, split: str, cfg: dict, batch_size: int):
        items = self.eval_items(split)
        chunks = video_batches([v for v, _, _ in items], batch_size)
        per_video: dict[str, list[float]] = {}
        for chunk, (images, points) in zip(chunks, self.stream(items, "frame", chunks)):
            out = predict_fn((images, points))
            per_video.setdefault(items[chunk[0]][0], []).extend(np.asarray(out, np.float64).tolist())
        return self._finish(split, per_video)
