"""Slices of every video, normalised with train-only statistics, in Parquet shards.

Layout (one folder per feature set)::

    results/shards/<feature_set>/
        manifest.json            parts, slice counts, feature columns, parameters, provenance
        norm.json                the training statistics (slices.NormStats)
        <split>/part-00000.parquet ...

Each part holds up to ``slices_per_part`` slices of one split (written as they
come, so a video's slices may continue in the next part), in row groups
of ``rows_per_group`` slices, with ``contract.shard_schema`` (``features`` is a
fixed-size list [length, C] of float32: one row group decodes straight into a
numpy array, and pandas/DuckDB read the files as they are).  The number of
parts depends on the data, so the rule's output is the folder and the manifest
lists what is in it.

Per video (``build``):

1. per modality, short gaps are filled (slices.interpolate_gaps): the landmark
   columns where ``face_success`` is false, the eGeMAPS columns where
   ``audio_success`` is false, each with ``max_gap`` frames;
2. the statistics are fitted on the **train** videos only (real frames) and
   applied to every split;
3. the video is sliced (slices.slice_video).

A video that yields no slice is named in the manifest's ``left_out`` (reason
``no_slices``; the entry format of facevox.contract.left_out_record), which
training copies into the metrics JSON.

Memory: two passes over the aligned tables (statistics, then slices), one video
and at most one part's slices in memory at a time.

The split guard (splits.check_subject_splits) runs first: a subject in two
splits stops the build with the offending ids listed.

Tests: tests/test_shards.py
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from facevox.config import stage_params
from facevox.contract import (
    ALIGNED_SCHEMA,
    EGEMAPS_COLUMNS,
    FEATURE_SETS,
    LANDMARK_COLUMNS,
    SPLITS,
    left_out_record,
    shard_schema,
)
from facevox.dataset.slices import NormStats, interpolate_gaps, slice_video
from facevox.errors import FacevoxError
from facevox.io import DIR_MODE, read_table, write_json
from facevox.provenance import dumps, provenance


def video_features(aligned: pd.DataFrame, columns: list[str], max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """[T, C] features with short gaps filled per modality, and the still-missing mask [T]."""
    values = aligned[columns].to_numpy(np.float64, copy=True)
    missing = np.zeros(len(aligned), bool)
    for group, flag in ((LANDMARK_COLUMNS, "face_success"), (EGEMAPS_COLUMNS, "audio_success")):
        idx = [i for i, c in enumerate(columns) if c in set(group)]
        if idx:
            filled, still = interpolate_gaps(values[:, idx], aligned[flag].to_numpy(bool), max_gap)
            values[:, idx] = filled
            missing |= still
    return values, missing


def video_slices(aligned: pd.DataFrame, columns: list[str], stats: NormStats, params: dict):
    """The slices of one aligned table as a shard set holds them: short gaps filled per modality
    (``max_gap``), normalised with the train ``stats``, cut by ``length``, ``hop``, ``pad`` and
    ``degree`` (``params``: the ``shards`` section); slices.slice_video's
    ``(slices, n_real, n_missing, starts)``."""
    values, missing = video_features(aligned, columns, params["max_gap"])
    return slice_video(stats.apply(values), missing, params["length"], params["hop"], params["pad"],
                       params["degree"])


def _records(samples: pd.DataFrame, vid: str, slices, n_real, n_missing, starts) -> dict:
    row = samples.loc[vid]
    n = len(slices)
    score = float(row["score"]) if row.get("score") not in (None, "") else np.nan
    return {
        "video_id": [vid] * n,
        "subject_id": [row.get("subject_id")] * n,
        "slice_index": np.arange(n, dtype=np.int32),
        "start_frame": starts.astype(np.int32),
        "n_real": n_real,
        "n_missing": n_missing,
        "label": [row.get("label")] * n,
        "score": np.full(n, score, np.float32),
        "gender": [row.get("gender")] * n,
        "features": slices,
    }


def _table(records: list[dict], schema: pa.Schema) -> pa.Table:
    ftype = schema.field("features").type
    cols = {}
    for name in schema.names:
        if name == "features":
            flat = pa.array(np.concatenate([r[name] for r in records]).reshape(-1).astype(np.float32))
            cols[name] = pa.FixedSizeListArray.from_arrays(
                pa.FixedSizeListArray.from_arrays(flat, ftype.value_type.list_size), ftype.list_size)
        elif isinstance(records[0][name], np.ndarray):
            cols[name] = pa.array(np.concatenate([r[name] for r in records]), type=schema.field(name).type)
        else:
            cols[name] = pa.array([x for r in records for x in r[name]], type=schema.field(name).type)
    return pa.table(cols, schema=schema)


def _take(record: dict, start: int, stop: int) -> dict:
    return {k: v[start:stop] for k, v in record.items()}


class _PartWriter:
    """Streams one split's slices into part files: row groups of ``rows_per_group``
    slices, a new part once ``slices_per_part`` are written.  At most one row
    group's slices (plus the current video's) are held in memory."""

    def __init__(self, out_dir: Path, split: str, schema: pa.Schema, rows_per_group: int, slices_per_part: int):
        self.folder, self.split, self.schema = out_dir / split, split, schema
        self.rows_per_group, self.slices_per_part = rows_per_group, slices_per_part
        self.pending: list[dict] = []
        self.writer, self.in_part, self.parts = None, 0, []

    def _pending(self) -> int:
        return sum(len(r["video_id"]) for r in self.pending)

    def _group_size(self) -> int:
        """A row group never crosses a part's end."""
        return min(self.rows_per_group, self.slices_per_part - self.in_part)

    def add(self, record: dict) -> None:
        self.pending.append(record)
        while self._pending() >= self._group_size():
            self._write_group(self._group_size())

    def _write_group(self, n: int) -> None:
        group, rest, need = [], [], n
        for r in self.pending:
            k = len(r["video_id"])
            if need >= k:
                group.append(r)
                need -= k
            elif need > 0:
                group.append(_take(r, 0, need))
                rest.append(_take(r, need, k))
                need = 0
            else:
                rest.append(r)
        self.pending = rest
        if self.writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"part-{len(self.parts):05d}.parquet"
            self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")
            self.parts.append({"path": f"{self.split}/{path.name}", "slices": 0})
        self.writer.write_table(_table(group, self.schema), row_group_size=n)
        self.parts[-1]["slices"] += n
        self.in_part += n
        if self.in_part >= self.slices_per_part:
            self.writer.close()
            self.writer, self.in_part = None, 0

    def close(self) -> list[dict]:
        while self._pending():
            self._write_group(min(self._pending(), self._group_size()))
        if self.writer is not None:
            self.writer.close()
        return self.parts


def build(samples: pd.DataFrame, aligned_paths: dict[str, str], out_dir, params: dict | None = None) -> dict:
    """Slice, normalise and shard every video of ``samples`` with a split; return the manifest."""
    from facevox.dataset.splits import check_subject_splits

    p = stage_params("shards", params)
    feature_set = p["feature_set"]
    columns = FEATURE_SETS[feature_set]
    check_subject_splits(samples)
    videos = [v for v in samples.index if samples.loc[v, "split"] in SPLITS]
    if not any(samples.loc[v, "split"] == "train" for v in videos):
        raise FacevoxError("shards: no video of the sample sheet is in the train split; "
                           "normalisation statistics come from train only")
    split_of = {v: samples.loc[v, "split"] for v in videos}

    def features(vid):
        aligned, _ = read_table(aligned_paths[vid], ALIGNED_SCHEMA)
        return video_features(aligned, columns, p["max_gap"])

    def train_frames():
        for vid in videos:
            if split_of[vid] == "train":
                values, _ = features(vid)
                yield vid, values  # NaN (unfilled gaps) is skipped column by column

    # Two passes, one video in memory at a time: the statistics, then the slices.
    stats = NormStats.fit(train_frames(), columns, p["normalisation"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats.save(out_dir / "norm.json")

    schema = shard_schema(p["length"], len(columns))
    meta = provenance("shards", params=p, inputs={})
    schema = schema.with_metadata({b"facevox": dumps(meta).encode()})
    manifest = {"feature_set": feature_set, "columns": columns, "length": p["length"],
                "norm": "norm.json", "params": p, "splits": {}, "left_out": []}
    for split in SPLITS:
        n_slices = 0
        split_videos = [v for v in videos if split_of[v] == split]

        writer = _PartWriter(out_dir, split, schema, p["rows_per_group"], p["slices_per_part"])
        unsliced = []
        for vid in split_videos:
            aligned, _ = read_table(aligned_paths[vid], ALIGNED_SCHEMA)
            sl, n_real, n_missing, starts = video_slices(aligned, columns, stats, p)
            if len(sl):
                writer.add(_records(samples, vid, sl, n_real, n_missing, starts))
                n_slices += len(sl)
            else:
                unsliced.append(vid)
        parts = writer.close()
        if unsliced:  # named, so training and the tables can say which videos are missing
            manifest["left_out"].append(left_out_record(split, "no_slices", "videos", dict.fromkeys(unsliced, 1)))
        manifest["splits"][split] = {"videos": len(split_videos), "slices": n_slices, "parts": parts}
    write_json(manifest, out_dir / "manifest.json")
    return manifest


def read_manifest(shard_dir) -> dict:
    """The shard set's manifest.json (columns, splits, slice length, left-out items)."""
    path = Path(shard_dir) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FacevoxError(f"{path}: not a facevox shard manifest ({exc})") from None


def run(sheet, aligned_dir, out_dir, params: dict | None = None) -> dict:
    """The rule's entry: the sample sheet, the folder of aligned tables, the shard folder."""
    from facevox.samples import read_samples

    samples = read_samples(sheet)
    paths = {v: str(Path(aligned_dir) / f"{v}.parquet") for v in samples.index}
    out_dir = Path(out_dir)
    # Build the whole folder under a temporary name, then swap it in: a killed job
    # never leaves a folder with some parts of this run and some of the last.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        manifest = build(samples, paths, tmp, params)
        os.chmod(tmp, DIR_MODE)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest
