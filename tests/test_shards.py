"""facevox.dataset.shards + facevox.dataset.datasets: slices in Parquet shards, train-only statistics, lazy datasets."""
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from facevox.contract import ALIGNED_SCHEMA, EGEMAPS_COLUMNS, LANDMARK_COLUMNS, shard_schema
from facevox.dataset import shards
from facevox.dataset.datasets import SliceDataset
from facevox.dataset.slices import NormStats
from facevox.errors import FacevoxError
from facevox.io import write_table
from facevox.samples import SampleSheetError

COLUMNS = LANDMARK_COLUMNS + EGEMAPS_COLUMNS


def aligned_table(n, seed, offset=0.0):
    rng = np.random.default_rng(seed)
    data = {
        "index": np.arange(n, dtype=np.int32),
        "timestamp_s": np.arange(n) / 30.0,
        "face_success": np.ones(n, bool),
        "face_fraction": np.ones(n, np.float32),
        "audio_success": np.ones(n, bool),
    }
    values = rng.normal(offset, 1.0, (n, len(COLUMNS))).astype(np.float32)
    data.update({c: values[:, i] for i, c in enumerate(COLUMNS)})
    return pd.DataFrame(data)[ALIGNED_SCHEMA.names]


def project(tmp_path, lengths, splits, subjects=None, offsets=None):
    rows, paths = [], {}
    for i, (n, split) in enumerate(zip(lengths, splits)):
        vid = f"v{i}"
        path = tmp_path / "aligned" / f"{vid}.parquet"
        write_table(aligned_table(n, i, (offsets or {}).get(vid, 0.0)), path, ALIGNED_SCHEMA, {"stage": "test"})
        paths[vid] = str(path)
        rows.append({"video_id": vid, "path": str(path), "subject_id": (subjects or {}).get(vid, f"s{i}"),
                     "split": split, "label": "depression" if i % 2 else "normal", "score": None,
                     "gender": "f", "openface_csv": ""})
    return pd.DataFrame(rows).set_index("video_id", drop=False), paths


def test_build_counts_layout_and_train_only_stats(tmp_path):
    samples, paths = project(tmp_path, [650, 320, 300, 200], ["train", "train", "dev", "test"])
    out = tmp_path / "shards"
    manifest = shards.build(samples, paths, out, params={"rows_per_group": 2})
    assert manifest["splits"]["train"]["slices"] == 3 + 2 and manifest["splits"]["dev"]["slices"] == 1
    assert manifest["splits"]["test"]["slices"] == 1 and manifest["columns"] == COLUMNS
    part = out / manifest["splits"]["train"]["parts"][0]["path"]
    pf = pq.ParquetFile(part)
    assert pf.schema_arrow.remove_metadata() == shard_schema(300, 161)
    assert pf.num_row_groups == 3  # 5 slices, 2 per row group
    df = pd.read_parquet(part)  # pandas reads it as it is
    assert df["video_id"].tolist() == ["v0"] * 3 + ["v1"] * 2
    assert df["n_real"].tolist() == [300, 300, 50, 300, 20]
    # Statistics from train only: identical whatever the test video holds.
    stats = NormStats.load(out / "norm.json")
    assert stats.videos == ["v0", "v1"] and stats.n_frames == 650 + 320
    samples2, paths2 = project(tmp_path / "b", [650, 320, 300, 200], ["train", "train", "dev", "test"],
                               offsets={"v3": 1000.0})
    shards.build(samples2, paths2, tmp_path / "shards2")
    assert NormStats.load(tmp_path / "shards2" / "norm.json") == stats


def test_dataset_reads_lazily_with_exact_values(tmp_path):
    samples, paths = project(tmp_path, [650, 300], ["train", "test"])
    out = tmp_path / "shards"
    shards.build(samples, paths, out, params={"rows_per_group": 2})
    ds = SliceDataset(out, "train")
    assert len(ds) == 3 and ds.labels == {"normal": 0}
    x, y = ds[1]
    assert tuple(x.shape) == (300, 161) and str(x.dtype) == "torch.float32" and int(y) == 0
    stats = NormStats.load(out / "norm.json")
    raw = aligned_table(650, 0)[COLUMNS].to_numpy(np.float64)
    np.testing.assert_allclose(x.numpy(), stats.apply(raw[300:600]), rtol=1e-6)
    # min-max on train: every real training value lies in [0, 1]
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert ds.video_ids == ["v0"] * 3 and ds.video_index.tolist() == [0, 0, 0]


def test_subject_in_two_splits_stops_the_build(tmp_path):
    samples, paths = project(tmp_path, [300, 300], ["train", "test"], subjects={"v0": "same", "v1": "same"})
    with pytest.raises(SampleSheetError, match="same"):
        shards.build(samples, paths, tmp_path / "shards")


def test_no_train_split_is_an_error(tmp_path):
    samples, paths = project(tmp_path, [300], ["test"])
    with pytest.raises(FacevoxError, match="train"):
        shards.build(samples, paths, tmp_path / "shards")


def test_run_swaps_the_whole_folder_in(tmp_path):
    """run() builds under a temporary name: a rebuild leaves no part of the previous one."""
    import os

    from facevox.io import DIR_MODE

    samples, paths = project(tmp_path, [650, 300], ["train", "test"])
    sheet = tmp_path / "samples.tsv"
    samples[["video_id", "path", "subject_id", "split", "label"]].assign(
        path=[str(tmp_path / "v.mp4")] * 2).to_csv(sheet, sep="\t", index=False)
    (tmp_path / "v.mp4").write_bytes(b"x")
    out = tmp_path / "shards"
    (out / "train").mkdir(parents=True)
    (out / "train" / "part-00099.parquet").write_bytes(b"stale")
    shards.run(sheet, tmp_path / "aligned", out, {"slices_per_part": 1})
    assert sorted(p.name for p in (out / "train").iterdir()) == ["part-00000.parquet", "part-00001.parquet",
                                                                  "part-00002.parquet"]
    assert os.stat(out).st_mode & 0o777 == DIR_MODE
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".shards.tmp")]
