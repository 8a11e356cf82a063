"""Importers: features someone else extracted, as facevox aligned tables plus a sample sheet.

What every importer shares.  The importers themselves are one module per format:
:func:`facevox.dataset.import_dvlog.import_dvlog` (the released D-Vlog features)
and :func:`facevox.dataset.import_openface.import_openface_dir` (OpenFace 2.x
CSVs); :mod:`facevox.dataset.exporters` writes the D-Vlog layout back out.

Each importer writes one ``<out_dir>/<video_id>.parquet`` per video with exactly
``contract.ALIGNED_SCHEMA`` the way :func:`facevox.io.write_table` writes
(atomic, contract-checked, zstd, provenance in the file metadata) and a sample sheet TSV with
the columns of ``contract.SAMPLE_COLUMNS`` that :func:`facevox.samples.read_samples`
reads back (:func:`write_sample_sheet`).  In the sheet, ``path`` is the video's **aligned table** (the
features are already extracted; there is no video file), written relative to
the sheet's own folder, as ``read_samples`` resolves it (:func:`sheet_path`).  Inputs are checked
completely before anything is written: every problem is collected and reported
together in one :class:`ImportProblems` (an :class:`~facevox.errors.InputError`),
one line per problem naming the file, line and id - never a traceback, never
only the first bad row.

:func:`use_aligned` takes such a table into the pipeline (``source: aligned``).

Rule: workflow/rules/align.smk (use_aligned) · Tests: tests/test_importers.py
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from facevox.contract import ALIGNED_SCHEMA, SAMPLE_COLUMNS
from facevox.errors import InputError
from facevox.io import atomic_path


class ImportProblems(InputError):
    """Everything wrong with an input tree, one line per problem (``.problems``)."""

    def __init__(self, path, problems: list[str], what: str):
        self.problems = problems
        super().__init__(path, f"{len(problems)} problem(s) in the {what}:\n  " + "\n  ".join(problems))


def sheet_path(target: Path, sheet_dir: Path) -> str:
    """``target`` as a sheet cell: relative to the sheet's folder (how read_samples resolves it)."""
    return os.path.relpath(target.resolve(), sheet_dir.resolve())


def write_sample_sheet(rows: list[dict], sheet: Path, header: str) -> pd.DataFrame:
    """Write an import's sample sheet TSV (``header`` line first, atomically); return it as written."""
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


def aligned_table_from_arrays(index: np.ndarray, timestamp: np.ndarray, face: np.ndarray,
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


def use_aligned(src, out) -> int:
    """Take an imported aligned table into the pipeline (``source: aligned``): check it
    against the contract, then copy it atomically.  Returns its row count."""
    import shutil

    from facevox.io import read_table

    df, _ = read_table(src, ALIGNED_SCHEMA)
    with atomic_path(out) as tmp:
        shutil.copyfile(src, tmp)
    return len(df)
