"""Bad inputs become *excluded* records, not holes in the DAG (config ``on_bad_input``).

A per-video stage that cannot read its input (the file is empty, not media, has no video
stream, is cut off before its first frame: an :class:`~facevox.errors.InputError`) does not
fail: it writes an *excluded* record in place of its output and exits 0, so the job is not
retried (the error is deterministic) and the DAG stays whole.  The record is

* for a Parquet output: the stage's table with no rows and exactly its schema, the reason
  in its provenance under ``excluded``; :func:`facevox.io.read_table` raises
  :class:`~facevox.errors.ExcludedInput` on it, so no reader takes it for a video without
  data;
* for a JSON output (probe, qa_video): ``{"excluded": reason, ...}``.

The reason is ``{"stage", "path", "problem"}`` of the first stage that failed; a stage
whose input is an excluded record writes the same reason again (align after landmarks,
fau_windows after action_units ...).  The probe also excludes a file whose container opens
but holds no video stream (audio only).

The gate (:func:`screen`, rule ``inputs``) reads the probe, egemaps and landmarks records
of every video (every later stage derives from them) and writes ``results/inputs.tsv``
(every video: included or excluded, and why)
and the sheet of the included videos, which the aggregates read (shards, training,
evaluation, export).  ``on_bad_input: exclude`` (the default) lets them run without the excluded
videos; ``fail`` stops the run there, before shards and training, listing every excluded
video with its reason.  A good video's outputs are never touched by another video's fate.

Rule: workflow/rules/inputs.smk · Tests: tests/test_exclusion.py
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa

from facevox.errors import ExcludedInput, FacevoxError, InputError
from facevox.io import atomic_path, read_json, read_provenance, write_json, write_table
from facevox.provenance import provenance

#: Values of config ``on_bad_input``.
ON_BAD_INPUT = ("exclude", "fail")
#: Columns of results/inputs.tsv (one row per video of the sheet, sheet order).
INPUTS_COLUMNS = ["video_id", "status", "stage", "problem", "path"]

log = logging.getLogger("facevox.extract.exclusion")


def record_of(exc: InputError, stage: str) -> dict:
    """The reason an InputError gives: an upstream excluded record is passed on unchanged."""
    if isinstance(exc, ExcludedInput):
        return dict(exc.record)
    return {"stage": stage, "path": exc.path, "problem": exc.problem}


def write_excluded(out, kind, record: dict, stage: str, inputs: dict | None = None) -> None:
    """Write the excluded record of ``stage`` at ``out``: ``kind`` is the output's
    pa.Schema (an empty table of exactly that schema) or ``"json"``."""
    if isinstance(kind, pa.Schema):
        write_table(kind.empty_table(), out, kind, provenance(stage, inputs=inputs, excluded=record))
    elif kind == "json":
        write_json({"excluded": record, "provenance": provenance(stage, inputs=inputs)}, out)
    else:
        raise ValueError(f"write_excluded: unknown output kind {kind!r}")


def exclusion_of(path) -> dict | None:
    """The excluded record of a per-video output (JSON or Parquet), None when it holds data."""
    if str(path).endswith(".json"):
        return read_json(path).get("excluded") or None
    try:
        return read_provenance(path).get("excluded") or None
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(path, f"not a readable Parquet file ({exc})") from None


def describe(record: dict) -> str:
    """One line: the problem, and the stage that met it."""
    return f"{record.get('problem')} (stage {record.get('stage')})"


def screen(sheet, records, out_tsv, out_sheet, on_bad_input: str = "exclude") -> pd.DataFrame:
    """The gate: which videos of ``sheet`` the aggregates read.

    ``records``: per-video outputs (results/<stage>/<video_id>.<ext>, the id is the file's
    stem); a video is excluded when any of its records is, with the reason of the first
    one in the order given.  Writes ``out_tsv`` (INPUTS_COLUMNS, every video of the sheet)
    and ``out_sheet`` (the sheet's rows of the included videos, paths absolute).  With
    ``on_bad_input: fail`` and an excluded video, raises a FacevoxError listing them all
    (Snakemake then removes ``out_tsv``; qa.tsv lists them too).  Returns the inputs table.
    """
    from facevox.samples import read_samples

    if on_bad_input not in ON_BAD_INPUT:
        raise FacevoxError(f"on_bad_input: {on_bad_input!r} is not one of {list(ON_BAD_INPUT)}")
    samples = read_samples(sheet, check_files=False)
    reasons: dict[str, dict] = {}
    known = set(samples.index)
    for path in records:
        vid = Path(path).stem
        if vid not in known:
            raise FacevoxError(f"inputs: {path} is not an output of a video of {sheet}")
        if vid not in reasons and (rec := exclusion_of(path)):
            reasons[vid] = rec
    rows = [{"video_id": vid, "status": "excluded" if vid in reasons else "included",
             "stage": reasons.get(vid, {}).get("stage", ""), "problem": reasons.get(vid, {}).get("problem", ""),
             "path": samples.loc[vid, "path"]} for vid in samples.index]
    table = pd.DataFrame(rows, columns=INPUTS_COLUMNS)
    with atomic_path(out_tsv) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    for vid, rec in reasons.items():
        log.warning("excluded %s: %s", vid, describe(rec))
    if reasons and on_bad_input == "fail":
        raise FacevoxError(f"{len(reasons)} of {len(samples)} input(s) cannot be read (on_bad_input: fail; "
                           "set on_bad_input: exclude to run without them):\n  "
                           + "\n  ".join(f"{vid}: {describe(rec)}" for vid, rec in reasons.items()))
    included = samples.loc[[v for v in samples.index if v not in reasons]]
    with atomic_path(out_sheet) as tmp:
        included.to_csv(tmp, sep="\t", index=False, na_rep="")
    return table


def excluded_so_far(records) -> dict[str, dict]:
    """Per video id (the file's stem), the reason of its first excluded record among the
    ``records`` that exist (a run may have stopped before writing the others)."""
    reasons: dict[str, dict] = {}
    for path in records:
        vid = Path(path).stem
        if vid not in reasons and Path(path).exists():
            try:
                rec = exclusion_of(path)
            except InputError:
                continue
            if rec:
                reasons[vid] = rec
    return reasons


def summary_lines(records, on_bad_input: str = "exclude") -> list[str]:
    """The lines the end of a run prints (Snakefile onsuccess / onerror): how many videos
    were excluded and why, one line each; nothing when none was."""
    reasons = excluded_so_far(records)
    if not reasons:
        return []
    what = ("the run went on without them; listed in results/inputs.tsv, results/qa.tsv and the report"
            if on_bad_input == "exclude" else
            "on_bad_input: fail stops the run before shards and training; listed in results/qa.tsv")
    lines = [f"facevox: {len(reasons)} input(s) EXCLUDED, they cannot be read ({what}):"]
    lines += [f"  {vid}: {describe(rec)}: {rec.get('path')}" for vid, rec in reasons.items()]
    return lines
