"""facevox.training.tasks.face_frames: the vision tasks stream face crops from the tables by row
group - the same clips and frames as the old whole-video loader, the same batches for any number
of workers, only the rows a clip needs read; bad crops and worker failures are named errors."""
import functools

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from facevox.contract import ALIGNED_FACES_SCHEMA, CROP_LANDMARK_X, CROP_LANDMARK_Y
from facevox.dataset.synthetic import planted_faces
from facevox.errors import FacevoxError
from facevox.extract.faces import decode_jpeg, encode_jpeg
from facevox.io import write_table
from facevox.training.loop import run_settings
from facevox.training.tasks import face_frames as ff
from facevox.training.tasks import make_task
from facevox.training.tasks.clips import eval_clip_rows

FRAMES, STORED = 40, 16
VISION = {"clip_len": 8, "size": 24, "frames_per_video": 5, "clips_per_video": 3, "eval_frames_per_video": 6,
          "workers": 0}


def value_of(row: int) -> int:
    """The grey level planted in table row ``row``."""
    return 10 + 6 * row


def rewrite(path, success=None, row_group_size=4, bad_rows=()):
    """Planted crops -> flat grey ``value_of(row)`` (+ a marker column of 255 at x = 0, so a flip
    shows), ``success`` as given; row groups of ``row_group_size`` rows; ``bad_rows`` truncated."""
    table = pd.read_parquet(path)
    images = []
    for r in range(len(table)):
        img = np.full((STORED, STORED, 3), value_of(r), np.uint8)
        img[:, :2] = 255
        blob = encode_jpeg(img, 100)
        images.append(blob[: len(blob) // 2] if r in bad_rows else blob)
    table["image"] = images
    if success is not None:
        table["success"] = success
        table.loc[~table["success"], "image"] = b""
    write_table(table[ALIGNED_FACES_SCHEMA.names], path, ALIGNED_FACES_SCHEMA, {"stage": "test"},
                row_group_size=row_group_size)


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """4 train, 2 dev videos of 40 rows in row groups of 4; train000 has gaps (rows 3, 10-12
    without a face), dev001 only 5 faces (shorter than a clip)."""
    folder = tmp_path_factory.mktemp("loader")
    sheet = planted_faces(folder, {"train": 4, "dev": 2}, frames=FRAMES, size=STORED)
    for vid in ("train000", "train001", "train002", "train003", "dev000", "dev001"):
        success = np.ones(FRAMES, bool)
        if vid == "train000":
            success[[3, 10, 11, 12]] = False
        if vid == "dev001":
            success[5:] = False
        rewrite(folder / "faces" / f"{vid}.parquet", success)
    return folder / "faces", sheet


def task_of(faces, family="clip", **vision):
    folder, sheet = faces
    return make_task(family, folder, run_settings({"vision": {**VISION, **vision}}), sheet)


@functools.cache
def old_load(path, size):
    """The whole-video loader before streaming (tasks.base._FaceFrames.load), as reference."""
    table = pq.read_table(path)
    success = table.column("success").to_numpy(zero_copy_only=False)
    images = table.column("image").to_pylist()
    xy = np.stack([np.stack([table.column(x).to_numpy(), table.column(y).to_numpy()], 1)
                   for x, y in zip(CROP_LANDMARK_X, CROP_LANDMARK_Y)], 1)
    rows = np.flatnonzero(success)
    frames = np.stack([decode_jpeg(images[i]) for i in rows])
    stored = frames.shape[1]
    tensor = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    tensor = torch.nn.functional.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True,
                                             align_corners=False)
    return tensor.clamp(0, 1), xy[rows] * (size / stored), rows


def old_clip_batches(task, rng, batch_size):
    """ClipRegression.batches before streaming, on :func:`old_load`."""
    items = [v for v in task.videos["train"] for _ in range(task.vision["clips_per_video"])]
    order = rng.permutation(len(items))
    for start in range(0, len(order), batch_size):
        clips = []
        for k in order[start:start + batch_size]:
            frames, _, _ = old_load(task.root / f"{items[k]}.parquet", task.vision["size"])
            first = int(rng.integers(0, max(1, len(frames) - task.clip_len + 1)))
            rows = np.minimum(np.arange(first, first + task.clip_len), len(frames) - 1)
            clip, _ = ff.jitter(frames[rows], rng)
            clips.append(clip.permute(1, 0, 2, 3))
        yield torch.stack(clips)


def old_face_batches(task, rng, batch_size):
    """FaceRegression.batches before streaming, on :func:`old_load`."""
    size = task.vision["size"]
    items = [v for v in task.videos["train"] for _ in range(task.vision["frames_per_video"])]
    order = rng.permutation(len(items))
    for start in range(0, len(order), batch_size):
        images, points = [], []
        for k in order[start:start + batch_size]:
            frames, xy, _ = old_load(task.root / f"{items[k]}.parquet", size)
            i = int(rng.integers(len(frames)))
            image, flipped = ff.jitter(frames[i:i + 1], rng)
            images.append(image[0])
            points.append(ff.flip_landmarks(xy[i:i + 1], size)[0] if flipped else xy[i])
        yield torch.stack(images), torch.from_numpy(np.stack(points)).float()


# --------------------------------------------------------------------------- the index
def test_index_maps_face_frames_to_table_rows(faces):
    folder, _ = faces
    index = ff.index_video("train000", folder / "train000.parquet")
    expected = np.delete(np.arange(FRAMES), [3, 10, 11, 12])
    assert index.n_faces == 36 and index.n_rows == 40
    assert index.run_start.tolist() == [0, 4, 13] and index.run_before.tolist() == [0, 3, 9]
    assert index.rows(np.arange(36)).tolist() == expected.tolist()
    assert index.rows([9, 2, 3, 9]).tolist() == [13, 2, 4, 13]
    with pytest.raises(FacevoxError, match="face frame out of range 0..35"):
        index.rows([36])


def test_a_clip_reads_only_its_row_groups_and_frames(faces):
    """Face frames 5..12 of train000 are rows 6..9, 13..16: row groups 1, 2, 3, 4 (16 rows)
    of the 10 - each frame's grey level is its row's."""
    folder, _ = faces
    index = ff.index_video("train000", folder / "train000.parquet")
    reader = ff.FaceReader(STORED)
    images, xy = reader.read(index, np.arange(5, 13), landmarks=False)
    assert xy is None and images.shape == (8, 3, STORED, STORED)
    levels = (images[:, :, :, 8:].mean(dim=(1, 2, 3)) * 255).round().int().tolist()
    assert levels == [value_of(r) for r in (6, 7, 8, 9, 13, 14, 15, 16)]
    assert (reader.row_groups_read, reader.rows_read, reader.frames_decoded) == (4, 16, 8)
    # a repeated frame (padding) is decoded once
    reader.read(index, [35, 35, 35], landmarks=False)
    assert reader.frames_decoded == 9 and reader.row_groups_read == 5


def test_an_oversized_row_group_is_streamed_not_read_whole(tmp_path, monkeypatch):
    """A table of one row group (as written before the faces stage bounded them), over
    GROUP_BYTES: read in STREAM_ROWS-row batches up to the last wanted row."""
    planted_faces(tmp_path, {"train": 1}, frames=FRAMES, size=STORED)
    path = tmp_path / "faces" / "train000.parquet"
    rewrite(path, row_group_size=None)
    assert pq.ParquetFile(path).metadata.num_row_groups == 1
    monkeypatch.setattr(ff, "GROUP_BYTES", 0)
    monkeypatch.setattr(ff, "STREAM_ROWS", 5)
    reader = ff.FaceReader(STORED)
    images, xy = reader.read(ff.index_video("train000", path), [7, 8, 9, 10, 11])
    levels = (images[:, :, :, 8:].mean(dim=(1, 2, 3)) * 255).round().int().tolist()
    assert levels == [value_of(r) for r in range(7, 12)]
    assert reader.rows_read == 15 and reader.row_groups_read == 1  # batches 0-4, 5-9, 10-14: then stops
    full, full_xy, _ = old_load(path, STORED)
    torch.testing.assert_close(images, full[7:12])
    np.testing.assert_array_equal(xy, full_xy[7:12])


# --------------------------------------------------------------------------- same as before
def test_training_clips_equal_the_old_in_memory_loader(faces):
    task = task_of(faces)
    assert task.frames.load("train000")[0].shape == (36, 3, 24, 24)
    new = [b[0][0] for b in task.batches(np.random.default_rng([3, 1]), 5)]
    old = list(old_clip_batches(task, np.random.default_rng([3, 1]), 5))
    assert [len(b) for b in new] == [5, 5, 2]
    for a, b in zip(new, old, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_training_frames_equal_the_old_in_memory_loader(faces):
    task = task_of(faces, "face")
    new = list(task.batches(np.random.default_rng([0, 2]), 6))
    old = list(old_face_batches(task, np.random.default_rng([0, 2]), 6))
    assert [len(b[1]) for b in new] == [6, 6, 6, 2]
    for (inputs, _), (images, points) in zip(new, old, strict=True):
        torch.testing.assert_close(inputs[0], images, rtol=0, atol=0)
        torch.testing.assert_close(inputs[1], points, rtol=0, atol=0)


def test_workers_do_not_change_the_batches(faces):
    """0 vs 2 worker processes (prefetch 1): identical batches, targets included."""
    runs = {}
    for workers in (0, 2):
        task = task_of(faces, workers=workers, prefetch=1)
        runs[workers] = [(b[0][0], b[1]) for b in task.batches(np.random.default_rng([7, 1]), 4)]
    assert len(runs[0]) == 3
    for (a, ta), (b, tb) in zip(runs[0], runs[2], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(ta, tb, rtol=0, atol=0)


def test_workers_start_after_the_parent_used_opencv_threads(faces):
    """A training in a process that used OpenCV's thread pool before (extraction and training in one
    process, as benchmarks/gpu_check.py does): the forked workers deliver the batches, no hang."""
    import subprocess
    import sys

    folder, sheet = faces
    code = (
        "import numpy as np, cv2\n"
        "img = np.random.default_rng(0).integers(0, 255, (1500, 1500, 3), dtype=np.uint8)\n"
        "for _ in range(3): cv2.GaussianBlur(cv2.resize(img, (900, 900)), (31, 31), 0)  # the pool is up\n"
        "from facevox.training.loop import run_settings\n"
        "from facevox.training.tasks import make_task\n"
        f"vision = {{**{VISION!r}, 'workers': 2, 'prefetch': 1}}\n"
        f"task = make_task('clip', {str(folder)!r}, run_settings({{'vision': vision}}), {str(sheet)!r})\n"
        "print(sum(1 for _ in task.batches(np.random.default_rng([7, 1]), 4)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "3", done.stderr[-2000:]


@pytest.mark.parametrize("placement", ["consecutive", "spread"])
def test_evaluation_clips_are_eval_clip_rows_of_the_face_frames(faces, placement):
    """dev000 (40 faces) and dev001 (5 faces, shorter than a clip: padded / stretched)."""
    task = task_of(faces, eval_clips=placement)
    seen = []

    def predict(inputs):
        seen.append(inputs[0])
        return np.zeros(len(inputs[0]))
    result, table = task.evaluate_split(predict, "dev", {}, 2)
    assert table["video_id"].tolist() == ["dev000", "dev001"]
    expected = []
    for vid in ("dev000", "dev001"):
        frames, _, rows = old_load(task.root / f"{vid}.parquet", 24)
        expected += [frames[r].permute(1, 0, 2, 3) for r in eval_clip_rows(len(rows), 8, placement)]
    clips = [c for batch in seen for c in batch]
    assert table["n_items"].tolist() == [5, 1]
    assert len(clips) == len(expected) == 6
    for a, b in zip(clips, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the short video by hand: frame levels of rows 0..4, padded or stretched to 8
    levels = (clips[-1][:, :, :, 12:].mean(dim=(0, 2, 3)) * 255).round().int().tolist()
    short = [0, 1, 2, 3, 4, 4, 4, 4] if placement == "consecutive" else [i * 5 // 8 for i in range(8)]
    assert levels == [value_of(r) for r in short]


def test_evaluation_frames_are_evenly_spaced_face_frames(faces):
    task = task_of(faces, "face")
    seen = []

    def predict(inputs):
        seen.append(inputs)
        return np.zeros(len(inputs[0]))
    _, table = task.evaluate_split(predict, "dev", {}, 4)
    assert table["n_items"].tolist() == [6, 5] and [len(b[0]) for b in seen] == [4, 2, 4, 1]
    images = torch.cat([b[0] for b in seen])
    levels = (images[:, :, :, 12:].mean(dim=(1, 2, 3)) * 255).round().int().tolist()
    assert levels == [value_of(r) for r in (0, 8, 16, 23, 31, 39, 0, 1, 2, 3, 4)]


# --------------------------------------------------------------------------- bad input
def test_a_faceless_table_is_left_out_not_read(faces, tmp_path):
    folder, sheet = faces
    task = task_of(faces)
    assert task.faceless == [] and task.index["dev001"].n_faces == 5
    planted_faces(tmp_path, {"train": 2, "test": 1}, frames=6, size=STORED)
    rewrite(tmp_path / "faces" / "test000.parquet", np.zeros(6, bool))
    settings = run_settings({"vision": VISION})
    task = make_task("clip", tmp_path / "faces", settings, tmp_path / "samples.tsv")
    assert task.faceless == ["test000"] and task.index["test000"].n_faces == 0
    assert task.videos["test"] == []
    assert {"split": "test", "reason": "no_face", "unit": "videos", "count": 1,
            "videos": {"test000": 1}} in task.left_out()
    with pytest.raises(FacevoxError, match="no frame with a face"):
        task.frames.load("test000")


@pytest.mark.parametrize("workers", [0, 2])
def test_a_truncated_jpeg_is_an_error_naming_table_row_and_video(tmp_path, workers):
    sheet = planted_faces(tmp_path, {"train": 2}, frames=12, size=STORED)
    rewrite(tmp_path / "faces" / "train001.parquet", bad_rows=(5,))
    settings = run_settings({"vision": {**VISION, "workers": workers, "clip_len": 12, "clips_per_video": 1}})
    task = make_task("clip", tmp_path / "faces", settings, sheet)
    with pytest.raises(FacevoxError) as err:
        list(task.batches(np.random.default_rng(0), 2))
    text = str(err.value)
    assert "train001.parquet: row 5 (frame 5) holds a truncated face crop JPEG" in text
    assert "Traceback" not in text
    if workers:
        assert text.startswith("face loader: batch of video(s) ")


def test_a_worker_that_dies_is_an_error_naming_the_video(faces, monkeypatch):
    """A worker process killed mid-batch: a FacevoxError naming the batch's videos, no hang."""
    import os
    import signal

    def die(self, index, faces_, landmarks=True):
        os.kill(os.getpid(), signal.SIGKILL)
    monkeypatch.setattr(ff.FaceReader, "read", die)
    task = task_of(faces, workers=1, prefetch=1)
    task.videos["dev"] = ["dev001"]
    with pytest.raises(FacevoxError, match=r"face loader: batch of video\(s\) dev001 failed in a worker"):
        task.evaluate_split(lambda inputs: np.zeros(len(inputs[0])), "dev", {}, 2)
