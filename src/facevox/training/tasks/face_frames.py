"""Face crops streamed from the aligned-face tables (results/faces/<video>.parquet) for the
vision tasks (clips: STA-DRN; faces: DLGA-CNN): a job holds only the batches it works on.

* :func:`index_video` - once per video and task (the task's constructor): the table's row
  groups and its successful frames, kept in memory as *runs* of consecutive face rows
  (a few numbers per video, whatever its length: no sidecar file to keep in step with a
  re-extracted table).  Face frame ``k`` of a video is the ``k``-th row with ``success``.
* :class:`FaceReader` - the crops of some face frames: reads only the row groups holding
  them (``ParquetFile.read_row_group``; a row group over :data:`GROUP_BYTES` - tables
  written before the faces stage bounded them - is streamed in :data:`STREAM_ROWS`-row
  batches and only the wanted rows kept), decodes the JPEGs and resizes to ``size``.
  A crop that does not decode (truncated - no JPEG end marker - or corrupt) is a
  :class:`FacevoxError` naming the table, the row and the frame: a face table with a bad
  crop is a broken faces stage output to re-extract, not noise to train around.
* :class:`FaceItems` - the items of an epoch or an evaluation split (video, face frames,
  jitter drawn beforehand) as a map-style dataset; :func:`face_batches` runs it through a
  ``torch.utils.data.DataLoader`` (``models.vision.workers`` processes, ``prefetch``
  batches each, pinned memory for a CUDA device) in the order given, so a batch's
  contents depend only on the items, never on the number of workers.  An error in a
  worker (or a worker killed) comes back as a FacevoxError naming the batch's videos.

Augmentation (:func:`draw_jitter`, :func:`apply_jitter`): the random numbers are drawn in
the main process, in the same order as the in-memory loader drew them before, and handed
to the workers with the item.

Tests: tests/test_face_loader.py, tests/test_tasks.py
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from facevox.contract import CROP_LANDMARK_X, CROP_LANDMARK_Y
from facevox.errors import FacevoxError

#: A row group holding more (uncompressed) bytes than this is streamed, not read whole.
GROUP_BYTES = 64 << 20
#: Rows per streamed batch of an oversized row group.
STREAM_ROWS = 256
#: Open Parquet files kept per process (the reader's memory does not grow with the videos).
OPEN_FILES = 4
#: Seconds a DataLoader waits for a worker's batch before giving up (a stuck worker: no hang).
WORKER_TIMEOUT_S = 600
LANDMARK_COLUMNS = [c for pair in zip(CROP_LANDMARK_X, CROP_LANDMARK_Y) for c in pair]


@dataclass
class VideoIndex:
    """Where a video's face frames are in its table: runs of consecutive ``success`` rows."""

    video: str
    path: Path
    #: first table row of each run of face rows, and the face frames before it
    run_start: np.ndarray
    run_before: np.ndarray
    n_faces: int
    n_rows: int

    def rows(self, faces) -> np.ndarray:
        """Table row numbers of face frames ``faces`` (0 .. n_faces - 1)."""
        faces = np.asarray(faces, np.int64)
        if len(faces) and (faces.min() < 0 or faces.max() >= self.n_faces):
            raise FacevoxError(f"{self.path}: face frame out of range 0..{self.n_faces - 1}")
        run = np.searchsorted(self.run_before, faces, side="right") - 1
        return self.run_start[run] + (faces - self.run_before[run])


def index_video(video: str, path) -> VideoIndex:
    """The :class:`VideoIndex` of one aligned-face table (reads its ``success`` column only)."""
    path = Path(path)
    try:
        success = pq.read_table(path, columns=["success"]).column("success").to_numpy(zero_copy_only=False)
    except (OSError, ValueError, KeyError) as exc:
        raise FacevoxError(f"{path}: not a readable aligned-face table ({exc})") from None
    ok = np.asarray(success, bool)
    edges = np.diff(np.concatenate([[False], ok, [False]]).astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = ends - starts
    before = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return VideoIndex(video, path, starts.astype(np.int64), before, int(lengths.sum()), len(ok))


class FaceReader:
    """Reads face crops of chosen face frames from the tables, a row group at a time.

    Counters (this process): ``row_groups_read``, ``rows_read`` (rows taken out of Parquet),
    ``frames_decoded``."""

    def __init__(self, size: int):
        self.size = int(size)
        self.row_groups_read = self.rows_read = self.frames_decoded = 0
        self._files: dict[Path, pq.ParquetFile] = {}
        self._pid = os.getpid()

    def _file(self, path: Path) -> pq.ParquetFile:
        if self._pid != os.getpid():  # a forked worker opens its own handles
            self._files, self._pid = {}, os.getpid()
        if path not in self._files:
            if len(self._files) >= OPEN_FILES:
                self._files.pop(next(iter(self._files)))
            self._files[path] = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        return self._files[path]

    def _read_rows(self, path: Path, rows: np.ndarray, columns: list[str]) -> dict[str, list]:
        """Columns of the sorted distinct table ``rows``, read group by group."""
        pf = self._file(path)
        meta = pf.metadata
        bounds = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
        groups = np.searchsorted(bounds, rows, side="right") - 1
        out: dict[str, list] = {c: [] for c in columns}
        for g in np.unique(groups):
            local = rows[groups == g] - bounds[g]
            self.row_groups_read += 1
            if meta.row_group(int(g)).total_byte_size <= GROUP_BYTES:
                table = pf.read_row_group(int(g), columns=columns, use_threads=False)
                self.rows_read += table.num_rows
                taken = table.take(local)
            else:
                parts, offset = [], 0
                for batch in pf.iter_batches(batch_size=STREAM_ROWS, row_groups=[int(g)], columns=columns,
                                             use_threads=False):
                    self.rows_read += batch.num_rows
                    inside = local[(local >= offset) & (local < offset + batch.num_rows)]
                    if len(inside):
                        parts.append(batch.take(inside - offset))
                    offset += batch.num_rows
                    if offset > local[-1]:
                        break
                import pyarrow as pa

                taken = pa.Table.from_batches(parts)
            for c in columns:
                out[c].extend(taken.column(c).to_pylist() if c in ("image", "frame")
                              else taken.column(c).to_numpy().tolist())
        return out

    def read(self, index: VideoIndex, faces, landmarks: bool = True):
        """Face frames ``faces`` of a video (repeats allowed, any order): (images [k, 3, S, S]
        float in 0..1, landmarks [k, 68, 2] float32 in the resized crop, or None)."""
        import torch

        from facevox.extract.faces import decode_jpeg

        rows = index.rows(faces)
        wanted, inverse = np.unique(rows, return_inverse=True)
        columns = ["frame", "image"] + (LANDMARK_COLUMNS if landmarks else [])
        data = self._read_rows(index.path, wanted, columns)
        decoded = []
        for row, frame, blob in zip(wanted, data["frame"], data["image"]):
            image = None
            if blob and blob[-2:] == b"\xff\xd9":  # a truncated JPEG decodes to grey without complaint
                try:
                    image = decode_jpeg(blob)
                except Exception:  # noqa: BLE001 - any decoder failure is the same bad crop
                    image = None
            if image is None or image.ndim != 3 or image.shape[0] != image.shape[1]:
                what = "truncated" if blob and blob[-2:] != b"\xff\xd9" else "undecodable"
                raise FacevoxError(f"{index.path}: row {int(row)} (frame {frame}) holds a {what} face crop JPEG "
                                   f"- re-run the faces stage for video {index.video}")
            decoded.append(image)
            self.frames_decoded += 1
        frames = np.stack(decoded)[inverse]  # [k, H, W, 3] uint8
        stored = frames.shape[1]
        tensor = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
        if stored != self.size:
            tensor = torch.nn.functional.interpolate(tensor, size=(self.size, self.size), mode="bilinear",
                                                     antialias=True, align_corners=False)
        xy = None
        if landmarks:
            flat = np.array([[data[c][i] for c in LANDMARK_COLUMNS] for i in range(len(wanted))], np.float32)
            xy = flat.reshape(len(wanted), 68, 2)[inverse] * (self.size / stored)
        return tensor.clamp(0, 1), xy

    def crop_size(self, index: VideoIndex) -> int | None:
        """The stored size (pixels) of a video's face crops, from its first face frame (None: no face)."""
        from facevox.extract.faces import decode_jpeg

        if index.n_faces == 0:
            return None
        blob = self._read_rows(index.path, index.rows([0]), ["image"])["image"][0]
        try:
            return int(decode_jpeg(blob).shape[0])
        except Exception:  # noqa: BLE001 - any decoder failure is the same bad crop
            raise FacevoxError(f"{index.path}: the first face crop does not decode - re-run the faces stage for "
                               f"video {index.video}") from None

    def load(self, index: VideoIndex, landmarks: bool = True):
        """Every face frame of a video (for small tables and tests: the whole video in memory)."""
        if index.n_faces == 0:
            raise FacevoxError(f"{index.path}: no frame with a face")
        return self.read(index, np.arange(index.n_faces), landmarks)


class VideoFrames:
    """A task's face tables by video (:class:`VideoIndex`), every face frame of one on demand."""

    def __init__(self, index: dict[str, VideoIndex], size: int):
        self.index, self.reader = index, FaceReader(size)

    def load(self, vid: str):
        """(images [n, 3, S, S], landmarks [n, 68, 2]) of every face frame of ``vid`` - whole
        video in memory: for small tables and tests, the tasks stream (:class:`FaceItems`)."""
        return self.reader.load(self.index[vid])


# --------------------------------------------------------------------------- augmentation
#: dlib 68-point indices mirrored left <-> right (jaw, brows, nose base, eyes, mouth).
MIRROR_68 = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])


def draw_jitter(rng: np.random.Generator, amount: float = 0.1, flip: bool | None = None) -> tuple:
    """The random numbers of one :func:`jitter`: (flipped, brightness, contrast, saturation)."""
    flipped = bool(rng.integers(2)) if flip is None else flip
    b, c, s = rng.uniform(1 - amount, 1 + amount, 3)
    return flipped, float(b), float(c), float(s)


def apply_jitter(images, params: tuple):
    """:func:`draw_jitter`'s flip and colour jitter applied to every image of ``images`` [N, 3, H, W]."""
    import torch

    flipped, b, c, s = params
    if flipped:
        images = torch.flip(images, dims=[-1])
    images = images * b
    mean = images.mean(dim=(-3, -2, -1), keepdim=True)
    images = (images - mean) * c + mean
    gray = (0.299 * images[:, 0:1] + 0.587 * images[:, 1:2] + 0.114 * images[:, 2:3])
    images = gray + (images - gray) * s
    return images.clamp(0, 1)


def jitter(images, rng: np.random.Generator, amount: float = 0.1, flip: bool | None = None):
    """One flip and one brightness/contrast/saturation jitter (each within ±amount) applied to
    every image of ``images`` [N, 3, H, W]; returns (images, flipped)."""
    params = draw_jitter(rng, amount, flip)
    return apply_jitter(images, params), params[0]


def flip_landmarks(xy: np.ndarray, size: int) -> np.ndarray:
    """Landmarks [..., 68, 2] of a horizontally flipped ``size`` x ``size`` crop (points mirrored)."""
    out = xy[..., MIRROR_68, :].copy()
    out[..., 0] = size - 1 - out[..., 0]
    return out


# --------------------------------------------------------------------------- items and batches
@dataclass
class FaceItem:
    """One item: a video (index into :attr:`FaceItems.videos`), its face frames, the jitter
    drawn for it (None: none)."""

    video: int
    faces: np.ndarray
    jitter: tuple | None = None


class FaceItems:
    """Map-style dataset of face items; ``kind`` ``clip``: a clip tensor [3, T, S, S];
    ``frame``: (image [3, S, S], landmarks [68, 2] float32)."""

    def __init__(self, videos: list[VideoIndex], items: list[FaceItem], size: int, kind: str):
        if kind not in ("clip", "frame"):
            raise FacevoxError(f"face items are clips or frames, not {kind!r}")
        self.videos, self.items, self.kind = videos, items, kind
        self.reader = FaceReader(size)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        import torch

        item = self.items[i]
        video = self.videos[item.video]
        try:
            images, xy = self.reader.read(video, item.faces, landmarks=self.kind == "frame")
        except FacevoxError:
            raise
        except Exception as exc:  # noqa: BLE001 - unreadable table: named, not a worker traceback
            raise FacevoxError(f"{video.path}: cannot read face crops of video {video.video} "
                               f"({type(exc).__name__}: {exc})") from None
        if item.jitter is not None:
            images = apply_jitter(images, item.jitter)
            if self.kind == "frame" and item.jitter[0]:
                xy = flip_landmarks(xy, self.reader.size)
        if self.kind == "clip":
            return images.permute(1, 0, 2, 3)  # [3, T, S, S]
        return images[0], torch.from_numpy(np.ascontiguousarray(xy[0])).float()


def video_batches(videos: list[str], batch_size: int) -> list[list[int]]:
    """Batches of item positions for evaluation: one video's (consecutive) items per batch,
    at most ``batch_size`` (0: 1)."""
    step, out, start = max(int(batch_size), 1), [], 0
    while start < len(videos):
        end = start
        while end < len(videos) and videos[end] == videos[start] and end - start < step:
            end += 1
        out.append(list(range(start, end)))
        start = end
    return out


def loader_workers(vision: dict) -> int:
    """DataLoader worker processes: ``models.vision.workers``, or the job's threads - 1 (torch's)."""
    workers = vision.get("workers")
    if workers is None:
        import torch

        return max(0, torch.get_num_threads() - 1)
    return int(workers)


def face_batches(data: FaceItems, batches: list[list[int]], workers: int = 0, prefetch: int = 2,
                 pin_memory: bool = False) -> Iterator:
    """The collated batches of ``data`` (each batch a list of item positions), in that order."""
    import torch

    if not batches:
        return
    loader = torch.utils.data.DataLoader(
        data, batch_sampler=batches, num_workers=workers, prefetch_factor=prefetch if workers else None,
        pin_memory=pin_memory, timeout=WORKER_TIMEOUT_S if workers else 0)
    # No cv2.setNumThreads in the workers: in a child forked after the parent used OpenCV's thread
    # pool (extraction and training in one process), reconfiguring the pool waits forever
    # (tests/test_face_loader.py); torch already runs each worker on one thread.
    it = iter(loader)
    for b in range(len(batches)):
        try:
            batch = next(it)
        except Exception as exc:  # noqa: BLE001 - a worker's failure, its traceback text folded
            if not workers and isinstance(exc, FacevoxError):
                raise
            names = ", ".join(dict.fromkeys(data.videos[data.items[i].video].video for i in batches[b]))
            text = str(exc).strip().splitlines()
            reason = text[-1].split("FacevoxError: ", 1)[-1] if text else type(exc).__name__
            raise FacevoxError(f"face loader: batch of video(s) {names} failed in a worker: {reason}") from None
        yield batch
