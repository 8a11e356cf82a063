"""Importers: features someone else extracted, as facevox aligned tables plus a sample sheet.

Each importer writes one ``<out_dir>/<video_id>.parquet`` per video with exactly
``contract.ALIGNED_SCHEMA`` the way :func:`facevox.io.write_table` writes
(atomic, contract-checked, zstd, provenance in the file metadata) and a sample sheet TSV with
the columns of ``contract.SAMPLE_COLUMNS`` that :func:`facevox.samples.read_samples`
reads back.  In the sheet, ``path`` is the video's **aligned table** (the
features are already extracted; there is no video file), written relative to
the sheet's own folder, as ``read_samples`` resolves it.  Inputs are checked
completely before anything is written: every problem is collected and reported
together in one :class:`ImportProblems` (an :class:`~facevox.errors.InputError`),
one line per problem naming the file, line and id - never a traceback, never
only the first bad row.

:func:`import_dvlog` - the released D-Vlog features (Yoon et al., 2022)
----------------------------------------------------------------------
Layout: ``root/labels.csv`` with the columns ``index,label,duration,gender,fold``
and per row a folder ``root/<index>/`` holding ``<index>_visual.npy`` (T x 136)
and ``<index>_acoustic.npy`` (T x 25), about one row per second.

* ``video_id`` = the ``index`` cell as written; it must match
  ``samples.VIDEO_ID`` and be unique.
* Rows: the two arrays may differ by a few rows; both are **truncated to the
  shorter** (the metadata records each original length and the rows cut).
  Row *k* gets ``index = k`` and ``timestamp_s = k`` (1 Hz: row *k* is the bin
  ``[k, k+1)`` s, as ``align`` with ``rate_hz: 1`` numbers its rows).
* Landmarks: the visual array is **interleaved** ``x0, y0, x1, y1, ...`` (68 dlib
  points); column ``2i`` -> ``x_i`` and column ``2i+1`` -> ``y_i``.
* Faces: a row whose 136 values are all zero (D-Vlog's rows without a face) or
  all NaN has ``face_success = False``, ``face_fraction = 0.0`` and NaN
  landmarks; every other row has ``face_success = True``, ``face_fraction = 1.0``.
* Audio: the acoustic array's 25 columns are the eGeMAPSv02 LLDs in
  opensmile's order (= ``contract.EGEMAPS_COLUMNS``), copied as they are;
  ``audio_success = True`` on every row.
* Values are stored as float32 (the contract's type).
* Sample sheet, one row per ``labels.csv`` row in file order:
  ``subject_id = video_id`` (one vlog per subject as released),
  ``split``: ``train -> train``, ``valid -> dev``, ``test -> test``;
  ``label`` (``depression`` / ``normal``) and ``gender`` (``m`` / ``f``) as given;
  ``score`` and ``openface_csv`` empty.
* Checked: the header has all five columns; every row has as many cells as the
  header; ``index`` is a safe, unique id; ``label``, ``gender``, ``fold`` are
  known values; ``duration`` is a number; both ``.npy`` files exist, can be
  read, hold a numeric 2-D array with at least one row and with 136
  (visual) / 25 (acoustic) columns.

:func:`import_openface_dir` - OpenFace 2.x FeatureExtraction CSVs
-----------------------------------------------------------------
Every ``*.csv`` directly in the folder (sorted by name) is one video.

* ``video_id`` = the file's stem, sanitised: each run of characters other than
  letters, digits, ``.``, ``_`` and ``-`` becomes ``_``; an id that then does not
  start with a letter or digit gets a ``v`` in front; at most 128 characters.
  Two files that give the same id are an error.
* Column names lose OpenFace's leading spaces.  Required: ``frame``,
  ``timestamp``, ``success`` and the 2-D landmarks ``x_0..x_67``, ``y_0..y_67``
  (pixels), all numeric, ``frame`` and ``timestamp`` without empty cells,
  ``frame`` unique (one face per frame).  Rows are sorted by ``frame``.
* The frames become a landmark stream (``frame = OpenFace frame - 1``,
  ``timestamp_s = timestamp``, ``success = (success == 1)``) that goes through
  :func:`facevox.extract.align.align` with ``rate_hz``, so the grid rule is the one of
  stage ``align``.  ``rate_hz='native'``: one row per frame,
  ``index`` = frame - 1, ``timestamp_s`` = OpenFace's timestamp,
  ``face_success = success == 1``, landmarks as written where there is a face
  and NaN where ``success`` is 0.  ``rate_hz=R``: 1/R-second bins, landmarks the
  mean over the bin's frames with a face, ``face_success`` = at least half of
  them had one.
* Audio: OpenFace has none - every eGeMAPS column is NaN and ``audio_success``
  False; the metadata says so (``audio``).
* Sample sheet: ``video_id``, ``path`` (the aligned table), ``openface_csv``
  (the source CSV, so ``action_units.backend: openface`` can use its AUs); the
  other columns empty.

Tests: tests/test_importers.py
"""
from __future__ import annotations

import csv
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from facevox.extract.align import align
from facevox.contract import (
    ALIGNED_SCHEMA,
    EGEMAPS_COLUMNS,
    LANDMARK_COLUMNS,
    LANDMARK_X,
    LANDMARK_Y,
    N_LANDMARKS,
    SAMPLE_COLUMNS,
)
from facevox.errors import InputError
from facevox.extract.openface import read_openface_table, shown as _shown
from facevox.io import atomic_path, write_table
from facevox.provenance import provenance
from facevox.samples import VIDEO_ID, id_problem

# --------------------------------------------------------------------------- shared

#: D-Vlog's labels.csv columns, and the values each categorical column may hold.
DVLOG_COLUMNS = ("index", "label", "duration", "gender", "fold")
DVLOG_LABELS = ("depression", "normal")
DVLOG_GENDERS = ("m", "f")
#: D-Vlog fold -> facevox split.
DVLOG_FOLDS = {"train": "train", "valid": "dev", "test": "test"}
DVLOG_VISUAL_WIDTH = 2 * N_LANDMARKS  # 136
DVLOG_ACOUSTIC_WIDTH = len(EGEMAPS_COLUMNS)  # 25

#: Columns an OpenFace CSV must have (besides the 136 landmark columns).
OPENFACE_REQUIRED = ("frame", "timestamp", "success")


class ImportProblems(InputError):
    """Everything wrong with an input tree, one line per problem (``.problems``)."""

    def __init__(self, path, problems: list[str], what: str):
        self.problems = problems
        super().__init__(path, f"{len(problems)} problem(s) in the {what}:\n  " + "\n  ".join(problems))


def _sheet_path(target: Path, sheet_dir: Path) -> str:
    """``target`` relative to the sheet's folder (how read_samples resolves it)."""
    return os.path.relpath(target.resolve(), sheet_dir.resolve())


def _write_sheet(rows: list[dict], sheet: Path, header: str) -> pd.DataFrame:
    """Write the sample sheet TSV (atomically) and return it as written."""
    df = pd.DataFrame([[str(r.get(c, "")) for c in SAMPLE_COLUMNS] for r in rows], columns=SAMPLE_COLUMNS)
    for col in SAMPLE_COLUMNS:
        bad = df[col].str.contains(r"[\t\r\n]", regex=True)
        if bad.any():
            raise InputError(sheet, f"cannot write {col} {df.loc[bad, col].iloc[0]!r}: it holds a tab or newline")
    lines = [header, "\t".join(SAMPLE_COLUMNS)]
    lines += ["\t".join(r) for r in df.itertuples(index=False, name=None)]
    with atomic_path(sheet) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return df


def _aligned_arrow(index: np.ndarray, timestamp: np.ndarray, face: np.ndarray,
                   landmarks: np.ndarray, egemaps: np.ndarray, audio: np.ndarray) -> pa.Table:
    """An ALIGNED_SCHEMA table from [n] vectors and [n, 136] / [n, 25] float32 blocks.

    Built column by column in Arrow (NaN -> null, as ``pa.Table.from_pandas`` in
    ``io.write_table`` accepts): 5x faster than going through a 166-column DataFrame.
    """
    landmarks, egemaps = np.asfortranarray(landmarks, np.float32), np.asfortranarray(egemaps, np.float32)
    columns = [
        pa.array(index.astype(np.int32)),
        pa.array(timestamp.astype(np.float64), from_pandas=True),
        pa.array(face),
        pa.array(face.astype(np.float32)),
        pa.array(audio),
        *(pa.array(landmarks[:, j], from_pandas=True) for j in range(landmarks.shape[1])),
        *(pa.array(egemaps[:, j], from_pandas=True) for j in range(egemaps.shape[1])),
    ]
    return pa.Table.from_arrays(columns, schema=ALIGNED_SCHEMA)


# --------------------------------------------------------------------------- D-Vlog

def _npy_problem(path: Path, width: int) -> tuple[str | None, int]:
    """Why the .npy at ``path`` is unusable (None if it is fine), and its row count.

    Reads the header only (memory map): shape, dtype and that the file is long enough.
    """
    if not path.is_file():
        return f"file not found: {path}", 0
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any reason a file cannot be read is reported
        return f"{path.name} cannot be read as a .npy array ({type(exc).__name__}: {exc})", 0
    try:
        if not isinstance(arr, np.ndarray):
            return f"{path.name} is not a single .npy array", 0
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            return f"{path.name} holds {arr.dtype} values, expected numbers", 0
        if arr.ndim != 2 or arr.shape[1] != width:
            return f"{path.name} has shape {arr.shape}, expected (T, {width})", 0
        if arr.shape[0] == 0:
            return f"{path.name} has no rows", 0
        return None, int(arr.shape[0])
    finally:
        del arr


def _read_labels(labels: Path) -> tuple[list[tuple[int, dict]], list[str]]:
    """labels.csv rows as (line number, {column: stripped cell}), and the problems found."""
    if not labels.is_file():
        raise InputError(labels, "D-Vlog labels.csv not found")
    try:
        with labels.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [c.strip() for c in next(reader, [])]
            missing = [c for c in DVLOG_COLUMNS if c not in header]
            if missing:
                raise ImportProblems(labels, [f"{labels.name}: missing column(s) {missing}; found {header}"],
                                     "D-Vlog labels.csv")
            rows, problems = [], []
            for cells in reader:
                line = reader.line_num
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    problems.append(f"{labels.name} line {line}: {len(cells)} cells, the header has {len(header)}")
                    continue
                rows.append((line, {h: c.strip() for h, c in zip(header, cells)}))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(labels, f"not a readable CSV file ({exc})") from None
    if not rows and not problems:
        problems.append(f"{labels.name}: no rows")
    return rows, problems


def import_dvlog(root, out_dir, sample_sheet_out, workers: int | None = None) -> pd.DataFrame:
    """Import the released D-Vlog features (rules in the module docstring).

    Writes ``out_dir/<video_id>.parquet`` (ALIGNED_SCHEMA, 1 Hz) for every row of
    ``root/labels.csv`` and the sample sheet ``sample_sheet_out``; returns the
    sheet as written (strings, ``path`` relative to the sheet's folder).  Raises
    :class:`ImportProblems` listing every bad row before writing anything (an
    array whose header checks out but whose data then fails to load is reported
    after the other tables are written, and the sheet is not written).
    ``workers`` threads write the tables (default: the CPU count, at most 8).
    """
    root, out_dir, sheet = Path(root), Path(out_dir), Path(sample_sheet_out)
    labels = root / "labels.csv"
    rows, problems = _read_labels(labels)

    seen: dict[str, int] = {}
    videos = []  # (video_id, row, visual path, acoustic path, where)
    for line, row in rows:
        vid = row["index"]
        where = f"{labels.name} line {line} (index {vid!r})"
        row_problems = [p for p in [id_problem(vid, line, seen, labels.name, "index")] if p]
        for col, allowed in (("label", DVLOG_LABELS), ("gender", DVLOG_GENDERS), ("fold", tuple(DVLOG_FOLDS))):
            if row[col] not in allowed:
                row_problems.append(f"{where}: {col} must be one of {list(allowed)}, got {row[col]!r}")
        try:
            float(row["duration"])
        except ValueError:
            row_problems.append(f"{where}: duration must be a number, got {row['duration']!r}")
        if vid and VIDEO_ID.match(vid):
            visual = root / vid / f"{vid}_visual.npy"
            acoustic = root / vid / f"{vid}_acoustic.npy"
            for path, width in ((visual, DVLOG_VISUAL_WIDTH), (acoustic, DVLOG_ACOUSTIC_WIDTH)):
                problem, _ = _npy_problem(path, width)
                if problem:
                    row_problems.append(f"{where}: {problem}")
            videos.append((vid, row, visual, acoustic, where))
        problems += row_problems
    if problems:
        raise ImportProblems(labels, problems, "D-Vlog tree")

    out_dir.mkdir(parents=True, exist_ok=True)

    def one(video) -> str | None:
        """Write one video's table; return a problem line if its arrays cannot be read."""
        vid, _, visual_path, acoustic_path, where = video
        try:
            visual = np.load(visual_path, allow_pickle=False)
            acoustic = np.load(acoustic_path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - reported with the id, like the checks above
            return f"{where}: arrays cannot be read ({type(exc).__name__}: {exc})"
        table, summary = _dvlog_table(visual, acoustic)
        meta = provenance(
            "import_dvlog", params={"rate_hz": 1},
            inputs={"labels": labels, "visual": visual_path, "acoustic": acoustic_path},
            source="D-Vlog released features", **summary,
        )
        write_table(table, out_dir / f"{vid}.parquet", ALIGNED_SCHEMA, meta)
        return None

    # Parquet encoding releases the GIL: threads overlap the writes (order does not matter,
    # each video is its own file; the sheet below keeps labels.csv's order).
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        read_problems = [p for p in pool.map(one, videos) if p]
    sheet_rows = [{"video_id": vid, "path": _sheet_path(out_dir / f"{vid}.parquet", sheet.parent),
                   "subject_id": vid, "split": DVLOG_FOLDS[row["fold"]], "label": row["label"],
                   "score": "", "gender": row["gender"], "openface_csv": ""}
                  for vid, row, *_ in videos]
    if read_problems:
        raise ImportProblems(labels, read_problems, "D-Vlog tree")
    header = ("# D-Vlog released features imported by facevox.dataset.importers.import_dvlog; "
              "path = the aligned table (1 Hz), subject_id = video_id, split valid -> dev")
    return _write_sheet(sheet_rows, sheet, header)


def _dvlog_table(visual: np.ndarray, acoustic: np.ndarray) -> tuple[pa.Table, dict]:
    """One D-Vlog video's arrays as an aligned table, and the summary for its metadata.

    ``visual`` [Tv, 136] interleaved x/y, ``acoustic`` [Ta, 25] eGeMAPS LLDs;
    both are cut to ``min(Tv, Ta)`` rows (see the module docstring for the rules).
    """
    n_visual, n_acoustic = len(visual), len(acoustic)
    n = min(n_visual, n_acoustic)
    vis = np.asarray(visual[:n], np.float64)
    no_face = (vis == 0).all(axis=1) | np.isnan(vis).all(axis=1)
    landmarks = np.concatenate([vis[:, 0::2], vis[:, 1::2]], axis=1).astype(np.float32)
    landmarks[no_face] = np.nan
    egemaps = np.asarray(acoustic[:n], np.float32)
    rows = np.arange(n)
    table = _aligned_arrow(rows, rows.astype(np.float64), ~no_face, landmarks, egemaps, np.ones(n, bool))
    summary = {
        "n_rows": int(n),
        "visual_rows": int(n_visual),
        "acoustic_rows": int(n_acoustic),
        "truncated_visual_rows": int(n_visual - n),
        "truncated_acoustic_rows": int(n_acoustic - n),
        "no_face_rows": int(no_face.sum()),
        "landmark_order": "visual column 2i -> x_i, 2i+1 -> y_i (de-interleaved)",
    }
    return table, summary


# --------------------------------------------------------------------------- OpenFace

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_video_id(name: str) -> str:
    """``name`` made into a ``samples.VIDEO_ID`` (rule in the module docstring)."""
    vid = _UNSAFE.sub("_", name)
    if not vid[:1].isalnum() or not vid[:1].isascii():
        vid = "v" + vid
    return vid[:128]


def _read_openface(path: Path) -> tuple[pd.DataFrame | None, list[str]]:
    """The landmark stream of one OpenFace CSV (LANDMARKS_SCHEMA's columns it needs), or problems."""
    raw, problems = read_openface_table(path, [*OPENFACE_REQUIRED, *LANDMARK_X, *LANDMARK_Y])
    if raw is not None and raw.empty:
        problems = ["no rows"]
    if problems:
        return None, [f"{path.name}: {p}" for p in problems]
    raw = raw.sort_values("frame", kind="stable")
    lm = pd.DataFrame({
        "frame": raw["frame"].to_numpy(np.int64) - 1,
        "timestamp_s": raw["timestamp"].to_numpy(np.float64),
        "success": raw["success"].to_numpy(np.float64) == 1,
    })
    points = raw[LANDMARK_COLUMNS].to_numpy(np.float64)
    return pd.concat([lm, pd.DataFrame(points, columns=LANDMARK_COLUMNS)], axis=1), []


def _no_audio() -> pd.DataFrame:
    return pd.DataFrame({c: np.zeros(0) for c in ["start_s", "end_s", *EGEMAPS_COLUMNS]})


def import_openface_dir(folder, out_dir, sample_sheet_out, rate_hz="native") -> pd.DataFrame:
    """Import every OpenFace 2.x CSV in ``folder`` (rules in the module docstring).

    Writes ``out_dir/<video_id>.parquet`` (ALIGNED_SCHEMA) per CSV and the sample
    sheet ``sample_sheet_out``; returns the sheet as written.  Raises
    :class:`ImportProblems` listing every unusable file before writing anything.
    """
    folder, out_dir, sheet = Path(folder), Path(out_dir), Path(sample_sheet_out)
    if not folder.is_dir():
        raise InputError(folder, "OpenFace folder not found")
    files = sorted(p for p in folder.glob("*.csv") if p.is_file())
    if not files:
        raise InputError(folder, "no *.csv file in the folder")
    problems, streams, owner = [], [], {}
    for path in files:
        vid = safe_video_id(path.stem)
        if vid in owner:
            problems.append(f"{path.name}: video_id {vid!r} is also the id of {owner[vid].name}; rename one")
            continue
        owner[vid] = path
        lm, file_problems = _read_openface(path)
        problems += file_problems
        if lm is not None:
            streams.append((vid, path, lm))
    if problems:
        raise ImportProblems(folder, problems, "OpenFace folder")

    sheet_rows = []
    for vid, path, lm in streams:
        df = align(lm, _no_audio(), rate_hz)
        out = out_dir / f"{vid}.parquet"
        meta = provenance(
            "import_openface", params={"rate_hz": rate_hz}, inputs={"openface_csv": path},
            source="OpenFace 2.x FeatureExtraction CSV", n_rows=int(len(df)), n_frames=int(len(lm)),
            no_face_frames=int((~lm["success"]).sum()),
            audio="none: OpenFace CSVs carry no audio features; eGeMAPS columns are NaN, audio_success False",
        )
        write_table(df, out, ALIGNED_SCHEMA, meta)
        sheet_rows.append({"video_id": vid, "path": _sheet_path(out, sheet.parent),
                           "openface_csv": _sheet_path(path, sheet.parent)})
    header = ("# OpenFace 2.x CSVs imported by facevox.dataset.importers.import_openface_dir; "
              "path = the aligned table (no audio), openface_csv = the source CSV")
    return _write_sheet(sheet_rows, sheet, header)


def use_aligned(src, out) -> int:
    """Take an imported aligned table into the pipeline (``source: aligned``): check it
    against the contract, then copy it atomically.  Returns its row count."""
    import shutil

    from facevox.io import read_table

    df, _ = read_table(src, ALIGNED_SCHEMA)
    with atomic_path(out) as tmp:
        shutil.copyfile(src, tmp)
    return len(df)


def dvlog_samples(root) -> pd.DataFrame:
    """The sample sheet a D-Vlog import will write, from ``labels.csv`` alone (cheap:
    no array is read), indexed by video_id - what the workflow needs at parse time.
    The full checks run in :func:`import_dvlog`."""
    labels = Path(root) / "labels.csv"
    rows, problems = _read_labels(labels)
    seen: dict[str, int] = {}
    problems += [p for line, row in rows for p in [id_problem(row["index"], line, seen, labels.name, "index")] if p]
    problems += [f"{labels.name} line {line}: fold must be one of {list(DVLOG_FOLDS)}, got {row['fold']!r}"
                 for line, row in rows if row["fold"] not in DVLOG_FOLDS]
    if problems:
        raise ImportProblems(labels, problems, "D-Vlog labels.csv")
    df = pd.DataFrame([{"video_id": row["index"], "subject_id": row["index"], "split": DVLOG_FOLDS[row["fold"]],
                        "label": row["label"], "gender": row["gender"]} for _, row in rows])
    return df.set_index("video_id", drop=False)


def openface_samples(folder) -> pd.DataFrame:
    """The videos an OpenFace-folder import will write (ids from the CSV names), indexed
    by video_id, with no split: what the workflow needs at parse time."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "OpenFace folder not found")
    ids: dict[str, str] = {}
    for csv_path in sorted(folder.glob("*.csv")):
        vid = safe_video_id(csv_path.stem)
        if vid in ids:
            raise InputError(folder, f"{csv_path.name} and {ids[vid]} both become video_id {vid!r}")
        ids[vid] = csv_path.name
    if not ids:
        raise InputError(folder, "no *.csv file in the OpenFace folder")
    df = pd.DataFrame({"video_id": list(ids), "subject_id": None, "split": None, "label": None, "gender": None})
    return df.set_index("video_id", drop=False)
