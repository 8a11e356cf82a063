"""PyTorch datasets over facevox shards, read lazily: one Parquet row group at a time.

:class:`SliceDataset` indexes a split's slices from the Parquet footers only
(no feature is read up front); ``__getitem__`` decodes the row group that
holds the slice - a [rows, length, C] float32 block, zero-copy from Arrow -
and keeps that one block (and one open part file) cached, so iterating in
order reads every row group exactly once and memory stays at about one row
group, whatever the size of the shard set.  ``video_ids`` /
``video_index`` group slices by video for video-level voting or averaging.

Tests: tests/test_shards.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from facevox.errors import FacevoxError
from facevox.dataset.shards import read_manifest


class SliceDataset:
    """Slices of one split: ``(features [length, C] float32 tensor, label int64 tensor)``.

    ``labels`` maps the sheet's label strings to class indices (default: the
    sorted distinct labels of the split, e.g. depression=0, normal=1).
    """

    def __init__(self, shard_dir, split: str, labels: dict[str, int] | None = None):
        self.root = Path(shard_dir)
        manifest = read_manifest(self.root)
        if split not in manifest["splits"]:
            raise FacevoxError(f"{self.root}: no split {split!r} in the manifest")
        self.columns = manifest["columns"]
        self.length = manifest["length"]
        self._paths, self._index = [], []
        meta = {"video_id": [], "label": [], "n_real": [], "n_missing": []}
        for f, part in enumerate(manifest["splits"][split]["parts"]):
            path = self.root / part["path"]
            self._paths.append(path)
            pf = pq.ParquetFile(path)
            for g in range(pf.num_row_groups):
                small = pf.read_row_group(g, columns=list(meta))
                for key in meta:
                    meta[key] += small.column(key).to_pylist()
                self._index += [(f, g, r) for r in range(small.num_rows)]
        self.video_ids = meta["video_id"]
        self.label_names = meta["label"]
        self.n_real = np.array(meta["n_real"], np.int64)
        self.n_missing = np.array(meta["n_missing"], np.int64)
        self.labels = labels or {name: i for i, name in enumerate(sorted({x for x in meta["label"] if x}))}
        self._cached = (None, None)
        self._open = (None, None)  # only the current part stays open: a reader keeps its buffers
        uniq = {v: i for i, v in enumerate(dict.fromkeys(self.video_ids))}
        self.video_index = np.array([uniq[v] for v in self.video_ids], np.int64)

    def __len__(self) -> int:
        return len(self._index)

    def groups(self) -> list[tuple[int, int, np.ndarray]]:
        """``(part, row_group, slice indices)`` of every row group, in file order."""
        out: dict[tuple[int, int], list[int]] = {}
        for i, (f, g, _) in enumerate(self._index):
            out.setdefault((f, g), []).append(i)
        return [(f, g, np.array(ix)) for (f, g), ix in out.items()]

    def block(self, f: int, g: int) -> np.ndarray:
        """Row group ``g`` of part ``f`` as a [rows, length, C] float32 array (read-only view)."""
        if self._cached[0] != (f, g):
            if self._open[0] != f:
                self._open = (f, pq.ParquetFile(self._paths[f]))
            col = self._open[1].read_row_group(g, columns=["features"]).column("features").combine_chunks()
            block = col.flatten().flatten().to_numpy().reshape(len(col), self.length, len(self.columns))
            self._cached = ((f, g), block)
        return self._cached[1]

    def __getitem__(self, i: int):
        import torch

        f, g, r = self._index[i]
        x = torch.from_numpy(np.array(self.block(f, g)[r], np.float32))
        label = self.labels.get(self.label_names[i], -1)
        return x, torch.tensor(label, dtype=torch.int64)


class FauWindowDataset:
    """One item per video: its FAU functionals ``[n_windows, C]`` (float32 tensor,
    NaN -> 0 for AUs the backend did not estimate) and the video id.  The shallow
    FAU CNN trains on whole sequences (full batch), so nothing is sliced here.

    ``paths``: {video_id: results/fau_windows/<video>.parquet}; ``columns``: which
    functionals (default: all of contract.FAU_STAT_COLUMNS; model E picks a subset).
    """

    def __init__(self, paths: dict[str, str], columns: list[str] | None = None):
        from facevox.contract import FAU_STAT_COLUMNS

        self.video_ids = list(paths)
        self.paths = paths
        self.columns = columns or FAU_STAT_COLUMNS
        unknown = [c for c in self.columns if c not in FAU_STAT_COLUMNS]
        if unknown:
            raise FacevoxError(f"unknown FAU functional column(s) {unknown}")

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, i: int):
        import torch

        vid = self.video_ids[i]
        table = pq.read_table(self.paths[vid], columns=["centre_s", *self.columns])
        x = np.nan_to_num(np.stack([table.column(c).to_numpy(zero_copy_only=False) for c in self.columns], 1))
        return torch.from_numpy(x.astype(np.float32)), vid


class FaceClipDataset:
    """Clips of ``clip_len`` consecutive stored crops from aligned-face tables
    (results/faces/<video>.parquet, already at the configured frame stride).

    ``mode="train"``: one random clip per video and epoch (``seed`` + the epoch
    set with :meth:`set_epoch`; a video shorter than the clip repeats its last
    frame).  ``mode="eval"``: consecutive clips covering each video,
    ``ceil(n / clip_len)`` of them (the last one padded the same way), so scores
    can be averaged per video.  Items: ``(clip [3, clip_len, H, W] float32 in
    [0, 1], video_id)``; frames without a face are black.
    """

    def __init__(self, paths: dict[str, str], clip_len: int = 64, mode: str = "train", seed: int = 0):
        if mode not in ("train", "eval"):
            raise FacevoxError(f"FaceClipDataset mode must be train or eval, got {mode!r}")
        self.paths, self.clip_len, self.mode, self.seed, self.epoch = paths, clip_len, mode, seed, 0
        self.lengths = {v: pq.ParquetFile(p).metadata.num_rows for v, p in paths.items()}
        self.items = ([(v, None) for v in paths] if mode == "train" else
                      [(v, k * clip_len) for v in paths for k in range(max(1, -(-self.lengths[v] // clip_len)))])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        import torch

        from facevox.extract.faces import decode_jpeg

        vid, start = self.items[i]
        n = self.lengths[vid]
        if start is None:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            start = int(rng.integers(0, max(1, n - self.clip_len + 1)))
        rows = np.minimum(np.arange(start, start + self.clip_len), n - 1)
        table = pq.read_table(self.paths[vid], columns=["success", "image"])
        images, success = table.column("image"), table.column("success")
        frames = []
        for r in rows:
            data = images[int(r)].as_py()
            frames.append(decode_jpeg(data) if success[int(r)].as_py() and data else None)
        shape = next((f.shape for f in frames if f is not None), None)
        if shape is None:
            raise FacevoxError(f"{self.paths[vid]}: no face in the clip's frames")
        clip = np.stack([f if f is not None else np.zeros(shape, np.uint8) for f in frames])
        return torch.from_numpy(clip).permute(3, 0, 1, 2).float() / 255.0, vid
