"""Task ``clips``: clip models (STA-DRN) on aligned face clips -> depression score.

Training draws ``clips_per_video`` random clips of ``clip_len`` frames per video and epoch,
with one horizontal flip and one colour jitter (brightness, contrast, saturation within
±0.1) for the whole clip; evaluation covers each video with consecutive clips (the last one
padded with its last frame) and averages their scores; scores are divided by
``score_scale`` (63, BDI-II) for training.

Tests: tests/test_train.py, tests/test_tasks.py
"""
from __future__ import annotations

import numpy as np

from facevox.training.tasks.base import Regression, jitter


class ClipRegression(Regression):
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
                clip, _ = jitter(self._clip(frames, first), rng)
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
