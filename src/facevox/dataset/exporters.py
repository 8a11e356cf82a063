"""Exporters: facevox aligned tables in the layout other people's code reads.

:func:`export_dvlog` - the D-Vlog release layout
------------------------------------------------
What the public D-Vlog loaders read (read for facts in AllenYolk/depression-detection,
``datasets/dvlog.py``, and other loaders built on it): ``labels.csv``, split
naively on ``,`` line by line (the header line is skipped because its fold is
not a fold), cell 0 the id, cell 1 the label (``label == "depression"`` is 1,
anything else 0), cell 3 the gender, cell 4 the fold; per id
``<id>/<id>_visual.npy`` [T, 136] and ``<id>/<id>_acoustic.npy`` [T, 25],
``np.load``-ed, both cut to the shorter T and concatenated (visual first).
The loaders do not interpret the 136 visual values; facevox writes them in
``dvlog.export_order`` (default interleaved ``x0, y0, x1, y1, ...``; see
:mod:`facevox.dataset.import_dvlog` for how an import tells the two orders apart).

Written into ``out_dir``:

* ``<id>/<id>_visual.npy`` - float32 [T, 136]: the table's landmarks in
  ``export_order``; a row without a face (``face_success`` false, or a NaN
  landmark) is all zeros, as in D-Vlog.
* ``<id>/<id>_acoustic.npy`` - float32 [T, 25]: the eGeMAPS columns in
  ``contract.EGEMAPS_COLUMNS`` order; NaN (rows without audio) becomes 0, so the
  loaders never feed a NaN to a model (counted in ``export.json``).
* ``labels.csv`` - ``index,label,duration,gender,fold``, one row per sheet row
  in sheet order: ``index`` = video_id; ``label`` = ``depression`` for
  ``positive_label``, ``normal`` for the one other label (D-Vlog is binary:
  more than two labels, or an empty one, is an error); ``duration`` = T
  seconds (1 Hz rows), two decimals; ``gender`` ``m`` / ``f`` / empty;
  ``fold``: ``train -> train``, ``dev -> valid``, ``test -> test`` (every row
  needs a split - the loaders select by fold).  No cell needs quoting (ids are
  ``samples.VIDEO_ID``s), so the naive split reads it right.  Written last, so
  it is the complete-export marker (the rule's output).
* ``subjects.csv`` - ``index,subject_id`` when some subject id of the sheet
  is not its video_id (an empty one becomes the video_id, the split code's
  rule): what ``dvlog.subjects`` reads back on import.  A sheet whose subject
  ids are all its video ids (e.g. a D-Vlog import without a subjects file) gets
  none, so re-importing the export warns again.
* ``export.json`` - provenance: settings, label map, per video the rows,
  no-face rows, acoustic values filled and the first row's index.

The tables must be 1 Hz (``align.rate_hz: 1``): consecutive ``index`` values
with ``timestamp_s == index``.  A table whose first row is not second 0 is
written from its first row (``first_index`` in ``export.json``).

Round trip: ``import_dvlog(export_dvlog(x))`` gives back x's tables exactly
(values are float32 in both) when x is in the D-Vlog layout's range: rows
``0..T-1``, ``face_fraction`` 0 or 1, ``audio_success`` everywhere, landmarks
not all zero on a face row (an imported D-Vlog release is); and the sheet's
``video_id, subject_id, split, label, gender``.  Outside it: ``face_fraction``
becomes 0/1 by ``face_success``, rows without audio come back as zeros with
``audio_success``.

Rule: workflow/rules/export.smk · Tests: tests/test_exporters.py
"""
from __future__ import annotations

import csv
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from facevox.config import stage_params
from facevox.contract import ALIGNED_SCHEMA, EGEMAPS_COLUMNS, check_table, points_from_columns
from facevox.dataset.import_dvlog import DVLOG_COLUMNS, DVLOG_FOLDS, visual_from_points
from facevox.dataset.importers import ImportProblems
from facevox.io import atomic_path, read_table, write_json
from facevox.provenance import provenance
from facevox.samples import read_samples

#: facevox split -> D-Vlog fold (the inverse of import_dvlog.DVLOG_FOLDS).
DVLOG_SPLITS = {split: fold for fold, split in DVLOG_FOLDS.items()}


def _cell(value) -> str:
    """A sheet cell as a string ('' for an empty one: read_samples gives None or NaN)."""
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _save_npy(array: np.ndarray, path: Path) -> None:
    """``np.save`` to ``path`` atomically (through a file handle: np.save would add .npy to the temp name)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def _table_problem(path: Path) -> str | None:
    """Why the aligned table at ``path`` cannot be exported (None if it can); reads two columns."""
    if not path.is_file():
        return f"aligned table not found: {path}"
    try:
        check_table(pq.read_schema(path).empty_table(), ALIGNED_SCHEMA, path.name)
        cols = pq.read_table(path, columns=["index", "timestamp_s"])
    except (OSError, pa.ArrowInvalid) as exc:
        return f"{path.name} is not a readable Parquet file ({exc})"
    except ValueError as exc:
        return str(exc)
    index = cols.column("index").to_numpy(zero_copy_only=False).astype(np.int64)
    t = cols.column("timestamp_s").to_numpy(zero_copy_only=False)
    if len(index) == 0:
        return f"{path.name} has no rows"
    if not (np.all(np.diff(index) == 1) and np.array_equal(t, index.astype(np.float64))):
        return (f"{path.name} is not a 1 Hz table (D-Vlog rows are seconds: consecutive index and "
                "timestamp_s == index); align it with align.rate_hz: 1")
    return None


def _label_map(labels: list[str], positive_label: str) -> tuple[dict[str, str], list[str]]:
    """Sheet label -> D-Vlog label (``depression`` / ``normal``), and the problems."""
    others = sorted({lab for lab in labels if lab and lab != positive_label})
    if len(others) > 1:
        return {}, [f"D-Vlog labels are binary: the sheet has {positive_label!r} (positive) and "
                    f"{len(others)} other labels {others}; one other label can become 'normal'"]
    mapping = {positive_label: "depression", **{lab: "normal" for lab in others}}
    return mapping, []


def export_dvlog(sheet, aligned_dir, out_dir, params: dict | None = None, positive_label: str = "depression",
                 workers: int | None = None) -> dict:
    """Write the sheet's videos in the D-Vlog layout (rules in the module docstring).

    ``sheet``: a sample sheet (its ``path`` column is not used: the tables are
    ``aligned_dir/<video_id>.parquet``); ``params``: the config section ``dvlog``
    (``export_order``); ``positive_label``: the sheet's label that becomes
    ``depression`` (``models.positive_label``).  Every problem (labels, splits,
    genders, missing or non-1 Hz tables) is reported together before anything is
    written, as one :class:`~facevox.dataset.importers.ImportProblems`.
    Returns the ``export.json`` record.
    """
    p = stage_params("dvlog", params)
    order = p["export_order"]
    sheet, aligned_dir, out_dir = Path(sheet), Path(aligned_dir), Path(out_dir)
    samples = read_samples(sheet, check_files=False)[["subject_id", "split", "label", "gender"]].map(_cell)
    labels, problems = _label_map([lab for lab in samples["label"] if lab], positive_label)
    for vid, row in samples.iterrows():
        where = f"{sheet.name} video {vid!r}"
        if not row["label"]:
            problems.append(f"{where}: label is empty (D-Vlog's loaders read every label but 'depression' as 0)")
        if not row["split"]:
            problems.append(f"{where}: split is empty (D-Vlog's loaders select videos by fold)")
        if row["gender"] not in ("", "m", "f"):
            problems.append(f"{where}: gender must be 'm', 'f' or empty for D-Vlog, got {row['gender']!r}")
        problem = _table_problem(aligned_dir / f"{vid}.parquet")
        if problem:
            problems.append(f"{where}: {problem}")
    if problems:
        raise ImportProblems(sheet, problems, "D-Vlog export")

    def one(vid: str) -> dict:
        df, meta = read_table(aligned_dir / f"{vid}.parquet", ALIGNED_SCHEMA)
        points = points_from_columns(df)
        no_face = ~df["face_success"].to_numpy(bool) | np.isnan(points).any(axis=(1, 2))
        points[no_face] = 0.0
        visual = visual_from_points(points, order).astype(np.float32)
        acoustic = df[EGEMAPS_COLUMNS].to_numpy(np.float32, copy=True)
        missing = np.isnan(acoustic)
        acoustic[missing] = 0.0
        folder = out_dir / vid
        _save_npy(visual, folder / f"{vid}_visual.npy")
        _save_npy(acoustic, folder / f"{vid}_acoustic.npy")
        return {"rows": int(len(df)), "first_index": int(df["index"].iloc[0]), "no_face_rows": int(no_face.sum()),
                "acoustic_values_filled": int(missing.sum()), "source_stage": meta.get("stage")}

    out_dir.mkdir(parents=True, exist_ok=True)
    vids = list(samples.index)
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        per_video = dict(zip(vids, pool.map(one, vids)))

    # Only when the sheet knows more than "each video is its own subject": a file of video ids
    # would silence the import's warning without telling the split guard anything.
    has_subjects = bool(((samples["subject_id"] != "") & (samples["subject_id"] != samples.index)).any())
    if has_subjects:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["index", "subject_id"])
        writer.writerows([vid, row["subject_id"] or vid] for vid, row in samples.iterrows())
        with atomic_path(out_dir / "subjects.csv") as tmp:
            tmp.write_text(buf.getvalue(), encoding="utf-8")
    record = provenance(
        "export_dvlog", params={**p, "positive_label": positive_label}, inputs={"sheet": sheet},
        layout="D-Vlog: labels.csv + <id>/<id>_visual.npy [T, 136] / _acoustic.npy [T, 25], float32, 1 Hz",
        landmark_order=order, labels=labels, subjects_file="subjects.csv" if has_subjects else None,
        videos=len(vids), per_video=per_video,
    )
    write_json(record, out_dir / "export.json")
    lines = [",".join(DVLOG_COLUMNS)]
    lines += [",".join([vid, labels[row["label"]], f"{per_video[vid]['rows']:.2f}", row["gender"],
                        DVLOG_SPLITS[row["split"]]]) for vid, row in samples.iterrows()]
    with atomic_path(out_dir / "labels.csv") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return record
