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

from facevox.dataset.shards import read_manifest
from facevox.errors import FacevoxError


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
