"""The sample sheet: which videos a run covers, and what is known about each.

A TSV (or CSV, by extension) with the columns of ``contract.SAMPLE_COLUMNS``:
``video_id, path, subject_id, split, label, score, gender, openface_csv,
affect_labels``.  Only ``video_id`` and ``path`` must be filled; the rest may be
empty for extraction-only runs.  ``openface_csv`` names an OpenFace 2.x CSV already
computed for the video (used by ``action_units.backend: openface``);
``affect_labels`` its time-continuous label CSV (facevox.dataset.labels; the FAU
models); ``reference`` a picture of the participant's face (an image, or a video with the
time in seconds in ``reference_s``) for ``target.mode: reference`` - a row without one takes
the one of another row of its subject (:func:`reference_of`).
Lines whose first non-blank character is ``#`` are comments (a ``#`` inside a
cell is data: ``take#2.mp4`` is a valid file name).  A relative ``path`` (or ``openface_csv``,
``affect_labels``) is relative to the sheet's own folder.

Validation collects every problem and reports them together, one line per
problem, naming the line of the file as an editor shows it, e.g.
``samples.tsv line 4 (video_id 'v 1'): video_id may only contain letters,
digits, '.', '_' and '-'``.  Checked per row: the id, the files exist, ``split``
is one of ``contract.SPLITS``, ``score`` is a finite number and - given the label
set (config ``labels:``, which also holds ``models.positive_label``) - ``label``
is one of it; a wrong split or label names the nearest valid one (``Normal`` ->
``normal``, ``depressed`` -> ``depression``), so a typo cannot turn a two-class
run into a three-class one.  :func:`facevox.extract.probe.probe_samples` goes further and opens every
file (``facevox check-samples --probe``).
"""
from __future__ import annotations

import difflib
import io
import math
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from facevox.contract import SAMPLE_COLUMNS, SAMPLE_REQUIRED, SPLITS
from facevox.errors import FacevoxError, InputError

#: Safe as a file name on every platform and as a Snakemake wildcard value.
VIDEO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def id_problem(vid: str, line: int, seen: dict[str, int], file_name: str, column: str = "video_id") -> str | None:
    """What is wrong with an id cell (empty, unsafe as a file name, a duplicate), or None.

    A good id is recorded in ``seen`` ({id: line}) for the duplicate check.
    """
    where = f"{file_name} line {line} ({column} {vid!r})"
    if not vid:
        return f"{file_name} line {line}: {column} is empty"
    if not VIDEO_ID.match(vid):
        return (f"{where}: {column} may only contain letters, digits, '.', '_' and '-' "
                "(and must start with a letter or digit)")
    if vid in seen:
        return f"{where}: duplicate {column} (first on line {seen[vid]})"
    seen[vid] = line
    return None


def _resolve(base: Path, value: str) -> str:
    """An absolute path for a sheet cell (relative to the sheet's folder); '' stays ''."""
    if not value:
        return ""
    p = Path(value)
    return str((p if p.is_absolute() else base / p).resolve())


def nearest(value: str, valid: Sequence[str]) -> str:
    """The valid value closest to ``value``: case-insensitive, then by difflib's
    similarity ratio (``Normal`` -> ``normal``, ``depressed`` -> ``depression``)."""
    by_lower = {v.lower(): v for v in valid}
    if value.lower() in by_lower:
        return by_lower[value.lower()]
    return max(valid, key=lambda v: difflib.SequenceMatcher(None, value.lower(), v.lower()).ratio())


def check_label_config(labels: Sequence[str], positive_label: str) -> None:
    """Config ``labels:`` and ``models.positive_label`` agree: two or more distinct
    labels, the positive one among them; a FacevoxError saying what to set otherwise."""
    labels = list(labels)
    if len(labels) < 2 or len(set(labels)) != len(labels) or not all(isinstance(v, str) and v for v in labels):
        raise FacevoxError(f"config labels: needs two or more distinct, non-empty labels, got {labels}")
    if positive_label not in labels:
        raise FacevoxError(f"config models.positive_label {positive_label!r} is not one of labels {labels}; "
                           f"nearest: {nearest(positive_label, labels)!r}")


def label_problem(value: str, labels: Sequence[str] | None, where: str) -> str | None:
    """What is wrong with a label cell (None: fine, empty, or no label set to check against)."""
    if not value or labels is None or value in labels:
        return None
    return (f"{where}: label {value!r} is not one of the configured labels {list(labels)} "
            f"(config `labels:`); nearest valid: {nearest(value, labels)!r}")


def check_labels(samples: pd.DataFrame, labels: Sequence[str], what: str) -> None:
    """Every label of an already-built sheet (e.g. an import's) is in ``labels``."""
    problems = [label_problem(v, labels, f"{what} (video_id {vid!r})")
                for vid, v in zip(samples["video_id"], samples["label"]) if isinstance(v, str)]
    problems = [p for p in problems if p]
    if problems:
        raise SampleSheetError(what, problems)


class SampleSheetError(InputError):
    """Every problem of a sample sheet at once, one line each."""
    def __init__(self, path, problems: list[str]):
        self.problems = problems
        super().__init__(path, f"{len(problems)} problem(s) in the sample sheet:\n  " + "\n  ".join(problems))


def read_samples(path, check_files: bool = True, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Read and validate the sample sheet; return it indexed by ``video_id``.

    ``path`` becomes an absolute path; empty optional cells become ``None``.
    ``labels``: the configured label set (config ``labels:``); None leaves labels
    unchecked (a sheet that was validated when the DAG was built).
    ``df.attrs["line"]`` maps each video_id to its line in the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "sample sheet not found")
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        # Keep the file's line numbers of the lines that are data (not comments, not blank).
        kept = [(n, line) for n, line in enumerate(lines, start=1)
                if line.strip() and not line.lstrip().startswith("#")]
        line_numbers = [n for n, _ in kept[1:]]
        df = pd.read_csv(io.StringIO("\n".join(line for _, line in kept)), sep=sep, dtype=str,
                         keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(path, f"sample sheet is not a readable {'CSV' if sep == ',' else 'TSV'} ({exc})") from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in SAMPLE_REQUIRED if c not in df.columns]
    if missing:
        raise SampleSheetError(path, [f"missing required column(s) {missing}; found {list(df.columns)}"])
    unknown = [c for c in df.columns if c not in SAMPLE_COLUMNS]
    for c in SAMPLE_COLUMNS:
        if c not in df.columns:
            df[c] = ""
    df = df[SAMPLE_COLUMNS + unknown].apply(lambda col: col.str.strip())

    problems: list[str] = []
    seen: dict[str, int] = {}
    base = path.resolve().parent
    resolved, openface_resolved, labels_resolved, references_resolved = [], [], [], []
    for i, row in zip(line_numbers, df.itertuples(index=False)):
        vid = row.video_id
        where = f"{path.name} line {i} (video_id {vid!r})"
        problem = id_problem(vid, i, seen, path.name)
        if problem:
            problems.append(problem)
        video = _resolve(base, row.path)
        resolved.append(video)
        if not video:
            problems.append(f"{where}: path is empty")
        elif check_files and not Path(video).is_file():
            problems.append(f"{where}: video file not found: {video}")
        openface = _resolve(base, row.openface_csv)
        openface_resolved.append(openface)
        if openface and check_files and not Path(openface).is_file():
            problems.append(f"{where}: openface_csv file not found: {openface}")
        affect = _resolve(base, row.affect_labels)
        labels_resolved.append(affect)
        if affect and check_files and not Path(affect).is_file():
            problems.append(f"{where}: affect_labels file not found: {affect}")
        reference = _resolve(base, row.reference)
        references_resolved.append(reference)
        if reference and check_files and not Path(reference).is_file():
            problems.append(f"{where}: reference face file not found: {reference}")
        if row.reference_s:
            try:
                ok = math.isfinite(float(row.reference_s)) and float(row.reference_s) >= 0
            except ValueError:
                ok = False
            if not ok:
                problems.append(f"{where}: reference_s must be a time in seconds (>= 0), got {row.reference_s!r}")
            elif not row.reference:
                problems.append(f"{where}: reference_s is given but reference (the video it is a time of) is empty")
        if row.split and row.split not in SPLITS:
            problems.append(f"{where}: split must be one of {list(SPLITS)} or empty, got {row.split!r}; "
                            f"nearest valid: {nearest(row.split, SPLITS)!r}")
        problem = label_problem(row.label, labels, where)
        if problem:
            problems.append(problem)
        if row.score:
            try:
                finite = math.isfinite(float(row.score))
            except ValueError:
                problems.append(f"{where}: score must be a number, got {row.score!r}")
            else:
                if not finite:
                    problems.append(f"{where}: score must be a finite number, got {row.score!r}")
    if df.empty:
        problems.append(f"{path.name}: the sample sheet lists no videos")
    if problems:
        raise SampleSheetError(path, problems)
    df["path"] = resolved
    df["openface_csv"] = openface_resolved
    df["affect_labels"] = labels_resolved
    df["reference"] = references_resolved
    df = df.replace({"": None})
    df = df.set_index("video_id", drop=False)
    df.attrs["line"] = dict(zip(df.index, line_numbers))
    return df


def subjects_of(samples: pd.DataFrame) -> pd.Series:
    """Each video's subject, indexed as ``samples``: its ``subject_id``, or its video id where that
    is empty, None or NaN (or the sheet has no such column) - a video without a subject is its own
    subject.  The video id is the ``video_id`` column where there is one, else the index.  The one
    rule for folds, tables, the study page and the identity check (facevox.dataset.splits keys such
    videos apart from real subject ids when it draws splits)."""
    vids = samples["video_id"] if "video_id" in samples.columns else pd.Series(samples.index, index=samples.index)
    vids = vids.astype(str)
    if "subject_id" not in samples.columns:
        return vids
    subject = samples["subject_id"]
    missing = subject.isna() | (subject.astype(str).str.strip() == "")
    return subject.astype(object).where(~missing, vids).astype(str)


def seconds_or_none(value) -> float | None:
    """A sheet cell holding seconds (``reference_s``) as a float; None for an empty cell."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    t = float(value)
    return None if math.isnan(t) else t


def reference_of(samples: pd.DataFrame, vid: str, sheet_name: str = "samples") -> tuple[str, float | None, str] | None:
    """The reference face of video ``vid`` for ``target.mode: reference``: (path, time in seconds
    or None, the sheet row that gave it - for messages); the row's own, else the first reference
    of another row of the same subject; None when neither has one."""
    lines = samples.attrs.get("line", {})

    def ref(v):
        row = samples.loc[v]
        if not row.get("reference"):
            return None
        where = f"{sheet_name} line {lines.get(v, '?')} (video_id {v!r})"
        return row["reference"], seconds_or_none(row.get("reference_s")), where

    own = ref(vid)
    if own is not None:
        return own
    subject = samples.loc[vid].get("subject_id")
    if subject:
        for other in samples.index[samples["subject_id"] == subject]:
            found = ref(other)
            if found is not None:
                return found
    return None


def check_references(samples: pd.DataFrame, sheet_name: str = "samples") -> None:
    """Every video has a reference face (its own or its subject's): what ``target.mode:
    reference`` needs; a SampleSheetError naming every row without one."""
    lines = samples.attrs.get("line", {})
    missing = [f"{sheet_name} line {lines.get(v, '?')} (video_id {v!r}): no reference face for this video or "
               f"its subject {samples.loc[v].get('subject_id')!r} (target.mode: reference needs the `reference` "
               "column: an image of the participant, or a video and reference_s)"
               for v in samples.index if reference_of(samples, v, sheet_name) is None]
    if missing:
        raise SampleSheetError(sheet_name, missing)


#: Said when the configured sheet is missing: the usual cause is a command (``snakemake
#: --report``, a rerun) given fewer ``--configfile`` files than the run it follows.
CONFIGFILE_HINT = ("pass the same --configfile as the run (e.g. `snakemake --configfile config.yaml "
                   "my_study.yaml --report results/report.html`, or `make report CONFIG=my_study.yaml`): "
                   "without the overlay, `samples:` is config.yaml's default")


def sheet_or_hint(path, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """:func:`read_samples`, whose "sample sheet not found" error also says to pass the
    run's ``--configfile`` (:data:`CONFIGFILE_HINT`) - what the workflow reads at DAG time."""
    if not Path(path).is_file():
        raise InputError(path, f"sample sheet not found - {CONFIGFILE_HINT}")
    return read_samples(path, labels=labels)


def check_predict_sheet(path, study: pd.DataFrame, study_sheet="samples", reference: bool = False) -> pd.DataFrame:
    """The ``predict:`` sheet (new videos to score: video_id, path) read like a sample sheet, with its
    ``label``, ``score`` and ``split`` cleared - a new video never joins the study; a video id that is
    also in the study sheet is an error naming both sheets (its outputs would be one file for two
    videos); ``reference``: target.mode reference needs a reference face per video (as the study's)."""
    if not Path(path).is_file():
        raise InputError(path, f"predict sheet not found (config predict:) - {CONFIGFILE_HINT}")
    sheet = read_samples(path)
    both = [v for v in sheet.index if v in study.index]
    if both:
        raise SampleSheetError(Path(path).name, [
            f"video_id {v!r} (line {sheet.attrs['line'].get(v, '?')}) is also in the study sheet "
            f"{Path(study_sheet).name}: a video to score needs an id of its own (its per-video outputs are "
            "named by it)" for v in both])
    if reference:
        check_references(sheet, Path(path).name)
    for column in ("label", "score", "split"):
        sheet[column] = None
    return sheet
