"""Task ``faces``: face models (DLGA-CNN) on single aligned faces and their landmarks.

``frames_per_video`` random face frames per video and epoch (flip and jitter per frame,
landmarks mirrored with the image); evaluation averages ``eval_frames_per_video`` evenly
spaced face frames.

Tests: tests/test_train.py, tests/test_tasks.py
"""
from __future__ import annotations

import numpy as np

from facevox.training.tasks.base import MIRROR_68, Regression, jitter


class FaceRegression(Regression):
    """Task of the ``face`` family (DLGA-CNN): BDI-II regression on single face frames with their landmarks."""
    unit = "frames"

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
                image, flipped = jitter(frames[i:i + 1], rng)
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
