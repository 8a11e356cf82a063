"""Import OpenFace 2.x FeatureExtraction CSVs as facevox aligned tables plus a sample sheet.

What every import writes and checks (one aligned table per video, the sample
sheet, every problem reported together in one ``ImportProblems``):
:mod:`facevox.dataset.importers`.  Reading an OpenFace CSV's columns:
:func:`facevox.extract.openface.read_openface_table` (shared with the OpenFace AU backend).

:func:`import_openface_dir`
---------------------------
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

:func:`openface_samples` lists the videos an import will write from the CSV
names alone (what the workflow needs at parse time).

Rule: workflow/rules/import.smk · Tests: tests/test_importers.py
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from facevox.contract import ALIGNED_SCHEMA, EGEMAPS_COLUMNS, LANDMARK_COLUMNS, LANDMARK_X, LANDMARK_Y
from facevox.dataset.importers import ImportProblems, sheet_path, write_sample_sheet
from facevox.errors import InputError
from facevox.extract.align import align
from facevox.extract.openface import read_openface_table
from facevox.io import write_table
from facevox.provenance import provenance

#: Columns an OpenFace CSV must have (besides the 136 landmark columns).
OPENFACE_REQUIRED = ("frame", "timestamp", "success")
#: Each run of characters a video_id may not hold, which safe_video_id makes one "_".
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
        sheet_rows.append({"video_id": vid, "path": sheet_path(out, sheet.parent),
                           "openface_csv": sheet_path(path, sheet.parent)})
    header = ("# OpenFace 2.x CSVs imported by facevox.dataset.import_openface.import_openface_dir; "
              "path = the aligned table (no audio), openface_csv = the source CSV")
    return write_sample_sheet(sheet_rows, sheet, header)


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
