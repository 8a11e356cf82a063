"""Task ``clips``: clip models (STA-DRN) on aligned face clips -> depression score.

Training draws ``clips_per_video`` random clips of ``clip_len`` frames per video and epoch,
with one horizontal flip and one colour jitter (brightness, contrast, saturation within
±0.1) for the whole clip; evaluation covers each video with clips placed by
``models.vision.eval_clips`` (:func:`eval_clip_rows`) and averages their scores; scores are
divided by ``score_scale`` (63, BDI-II) for training.

Test-time clips of a video of ``n`` face frames, ``L = clip_len``:

* ``consecutive`` (default): clips start at ``0, L, 2L, ...``; the last one is padded
  with the video's last frame;
* ``spread`` - as the STA-DRN authors place them (``ValDataset`` of
  ``dataloader/main_dataloader.py``, divertingPan/STA-DRN): ``n <= L`` gives one clip of
  frames ``i * n // L`` (``i = 0 .. L-1``, frames repeated to stretch the video to ``L``);
  otherwise ``s = ceil(n / L)`` clips spread over the whole video with overlap, clip ``i``
  starting at ``int(i * (L - (s * L - n) / (s - 1)))``, so the first starts at frame 0
  and the last ends at the last frame.  (Their frames are already every
  ``sample_interval``-th, as ``faces.stride`` makes ours.)

Tests: tests/test_train.py, tests/test_tasks.py
"""
from __future__ import annotations

import math

import numpy as np

from facevox.errors import FacevoxError
from facevox.training.tasks.base import Regression
from facevox.training.tasks.face_frames import video_batches

EVAL_CLIPS = ("consecutive", "spread")


def eval_clip_rows(n: int, clip_len: int, placement: str = "consecutive") -> list[np.ndarray]:
    """The frame rows of each test-time clip of a video of ``n`` frames (see the module docstring)."""
    if placement not in EVAL_CLIPS:
        raise FacevoxError(f"models.vision.eval_clips must be one of {', '.join(EVAL_CLIPS)}, got {placement!r}")
    if n < 1:
        return []
    if placement == "consecutive":
        return [np.minimum(np.arange(s, s + clip_len), n - 1) for s in range(0, n, clip_len)]
    if n <= clip_len:
        return [np.arange(clip_len) * n // clip_len]
    sections = math.ceil(n / clip_len)
    step = clip_len - (sections * clip_len - n) / (sections - 1)
    return [np.arange(int(i * step), int(i * step) + clip_len) for i in range(sections)]

class ClipRegression(Regression):
    """Task of the ``clip`` family (STA-DRN): BDI-II regression on face clips of ``clip_len`` frames."""
    unit = "clips"
    name = "clips"

    def __init__(self, sheet, folder, settings: dict):
        super().__init__(sheet, folder, settings, "aligned-face")
        self.clip_len = int(self.vision["clip_len"])

    def model_kwargs(self, family: str) -> dict:
        return {"clip_len": self.clip_len, "size": self.vision["size"]}

    def n_train(self) -> int:
        return len(self.videos["train"]) * self.vision["clips_per_video"]

    def clip_faces(self, n: int, start: int) -> np.ndarray:
        """Face frames of the training clip starting at ``start`` in a video of ``n`` face frames
        (a video shorter than a clip: padded with its last frame)."""
        return np.minimum(np.arange(start, start + self.clip_len), n - 1)

    def train_items(self, rng: np.random.Generator) -> list[tuple]:
        """One epoch's clips in training order (:meth:`Regression.epoch_items`): a random start each."""
        return self.epoch_items(rng, self.vision["clips_per_video"], lambda n: self.clip_faces(
            n, int(rng.integers(0, max(1, n - self.clip_len + 1)))))

    def batches(self, rng: np.random.Generator, batch_size: int):
        import torch

        items = self.train_items(rng)
        size = batch_size or len(items)
        chunks = [list(range(s, min(s + size, len(items)))) for s in range(0, len(items), size)]
        for chunk, clips in zip(chunks, self.stream(items, "clip", chunks)):
            targets = [self._score(items[i][0]) / self.scale for i in chunk]
            yield (clips,), torch.tensor(targets, dtype=torch.float32)

    def eval_items(self, split: str) -> list[tuple]:
        """The test-time clips ``(video, face frames, None)`` of a split's videos (:func:`eval_clip_rows`)."""
        placement = self.vision.get("eval_clips", "consecutive")
        return [(vid, rows, None) for vid in self.videos.get(split, [])
                for rows in eval_clip_rows(self.index[vid].n_faces, self.clip_len, placement)]

    def evaluate_split(self, predict_fn, split: str, cfg: dict, batch_size: int):
        items = self.eval_items(split)
        chunks = video_batches([v for v, _, _ in items], batch_size)
        per_video: dict[str, list[float]] = {}
        for chunk, clips in zip(chunks, self.stream(items, "clip", chunks)):
            out = predict_fn((clips,))
            per_video.setdefault(items[chunk[0]][0], []).extend(np.asarray(out, np.float64).tolist())
        return self._finish(split, per_video)
