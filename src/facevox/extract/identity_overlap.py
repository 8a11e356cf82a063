"""Stage ``identity_overlap``: the same person across videos, whatever the sheet's subject ids say.

Every video's landmarks table records one identity embedding of its target person (the mean
dlib face descriptor, provenance ``target.embedding``: facevox.extract.landmarks).  This
aggregate compares every pair of videos of the sample sheet (Euclidean distance of the two
embeddings, vectorised: 600 videos, 180k pairs, in milliseconds) and writes
``results/identity_overlap.tsv`` (:data:`COLUMNS`), one row per suspicious pair:

* ``same_face_different_subject`` - the two targets are one face (distance below
  ``target.overlap_distance``, 0.6: the descriptor's usual threshold) under DIFFERENT
  subject ids.  ``cross_split`` is true when both videos are in a split (train / dev /
  test) and the splits differ: one participant recorded twice under two ids, a leak
  between the splits that no subject-id check can see.  Within one split (or with a video
  in no split) it is still listed, with ``cross_split`` false: the subject count is wrong
  but no model is tested on a face it trained on;
* ``different_face_same_subject`` - the two targets of the SAME subject id are farther apart
  than that distance: likely the wrong person was chosen in one of them (the interviewer,
  a friend; see its QA ``target_why``) or a video is under the wrong subject id.

A video without a subject id is its own subject (as the split composition counts it).
Excluded records (facevox.extract.exclusion) and tables without an embedding (no face at
all, or written before the target record existed) are skipped and counted in the log.

``target.on_identity_overlap``: ``warn`` (the default) logs one warning line per pair;
``fail`` raises a :class:`~facevox.errors.FacevoxError` (rc 2) listing every cross-split
pair with its distance and what to do.  The rule's output is an input of the ``inputs``
gate, so ``fail`` stops the run before shards and training; the ``qa`` rule reads it too
(flag ``same_face_other_subject``, column ``same_face_as`` of ``results/qa.tsv``) and the
run's last lines list the cross-split pairs (:func:`summary_lines`, Snakefile onsuccess /
onerror).

Rule: workflow/rules/identity_overlap.smk · Tests: tests/test_identity_overlap.py
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from facevox.contract import SPLITS
from facevox.errors import FacevoxError, InputError
from facevox.io import atomic_path, read_provenance
from facevox.samples import subjects_of

#: Columns of results/identity_overlap.tsv.
COLUMNS = ["kind", "video_a", "subject_a", "split_a", "video_b", "subject_b", "split_b", "distance", "cross_split"]
#: Values of ``kind``.
KINDS = {
    "same_face_different_subject": "one face under two subject ids",
    "different_face_same_subject": "two faces under one subject id",
}
#: Values of config ``target.on_identity_overlap``.
ON_IDENTITY_OVERLAP = ("warn", "fail")
#: Default of config ``target.overlap_distance`` (dlib's threshold for its descriptor).
OVERLAP_DISTANCE = 0.6

log = logging.getLogger("facevox.extract.identity_overlap")


def embeddings(landmarks_paths, known=None, missing_ok: bool = False) -> tuple[dict[str, np.ndarray], dict[str, list]]:
    """Per video (the file's stem), its target embedding from the landmarks table's
    provenance, and the skipped videos: ``{"excluded": [...], "no_embedding": [...]}``.
    ``known``: the sheet's video ids (another stem is an error); ``missing_ok``: skip files
    that do not exist or cannot be read (the end-of-run summary: a run may have stopped
    before writing them)."""
    found: dict[str, np.ndarray] = {}
    skipped: dict[str, list] = {"excluded": [], "no_embedding": []}
    for path in landmarks_paths:
        vid = Path(path).stem
        if known is not None and vid not in known:
            raise FacevoxError(f"identity_overlap: {path} is not the landmarks table of a video of the sheet")
        if missing_ok and not Path(path).exists():
            continue
        try:
            meta = read_provenance(path)
        except (OSError, pa.ArrowInvalid) as exc:
            if missing_ok:
                continue
            raise InputError(path, f"not a readable Parquet file ({exc})") from None
        if meta.get("excluded"):
            skipped["excluded"].append(vid)
            continue
        target = meta.get("target")
        vector = target.get("embedding") if isinstance(target, dict) else None
        if not vector:
            skipped["no_embedding"].append(vid)
            continue
        vector = np.asarray(vector, np.float64)
        if vector.ndim != 1 or not np.isfinite(vector).all():
            if missing_ok:
                continue
            raise InputError(path, f"target.embedding is not a finite vector (shape {vector.shape})")
        found[vid] = vector
    sizes = {len(v) for v in found.values()}
    if len(sizes) > 1:
        raise FacevoxError(f"identity_overlap: embeddings of different lengths {sorted(sizes)}: the landmarks "
                           "tables were written by different identity models; rerun the landmarks stage")
    return found, skipped


def pairwise_distances(matrix: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``matrix`` (n x d) as an n x n array
    (|a|^2 + |b|^2 - 2 a.b, one matrix product; clipped at 0 against rounding)."""
    matrix = np.asarray(matrix, np.float64)
    sq = np.einsum("ij,ij->i", matrix, matrix)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (matrix @ matrix.T)
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def find_pairs(samples: pd.DataFrame, vectors: dict[str, np.ndarray],
               overlap_distance: float = OVERLAP_DISTANCE) -> pd.DataFrame:
    """The suspicious pairs (:data:`COLUMNS`) among the videos of ``vectors``; ``samples``:
    the sheet indexed by video_id (columns subject_id, split). Sorted: the cross-split pairs
    first, then by kind, then by distance."""
    if not overlap_distance > 0:
        raise FacevoxError(f"target.overlap_distance must be > 0, got {overlap_distance!r}")
    videos = [v for v in samples.index if v in vectors]  # sheet order
    if len(videos) < 2:
        return pd.DataFrame(columns=COLUMNS)
    subjects = subjects_of(samples).loc[videos].to_numpy(dtype=object)
    splits = np.array([_cell(samples.loc[v, "split"]) for v in videos], dtype=object)
    dist = pairwise_distances(np.stack([vectors[v] for v in videos]))
    ia, ib = np.triu_indices(len(videos), k=1)
    d = dist[ia, ib]
    same_subject = subjects[ia] == subjects[ib]
    same_face = d < overlap_distance
    keep = (same_face & ~same_subject) | (~same_face & same_subject)
    ia, ib, d, same_subject = ia[keep], ib[keep], d[keep], same_subject[keep]
    in_split = np.isin(splits[ia], SPLITS) & np.isin(splits[ib], SPLITS)
    names = np.asarray(videos, dtype=object)
    table = pd.DataFrame({
        "kind": np.where(same_subject, "different_face_same_subject", "same_face_different_subject"),
        "video_a": names[ia], "subject_a": subjects[ia], "split_a": splits[ia],
        "video_b": names[ib], "subject_b": subjects[ib], "split_b": splits[ib],
        "distance": np.round(d, 4),
        "cross_split": in_split & (splits[ia] != splits[ib]) & ~same_subject,
    }, columns=COLUMNS)
    table = table.sort_values(["cross_split", "kind", "distance", "video_a", "video_b"],
                              ascending=[False, False, True, True, True], kind="stable")
    return table.reset_index(drop=True)


def describe(row) -> str:
    """One line of a pair: both videos with subject and split, the distance."""
    return (f"{row['video_a']} (subject {row['subject_a']}, {row['split_a'] or 'no split'}) and "
            f"{row['video_b']} (subject {row['subject_b']}, {row['split_b'] or 'no split'}): "
            f"distance {float(row['distance']):.3f}")


def warning_line(row, overlap_distance: float) -> str:
    """The run-time warning of one pair: what it is and what to check."""
    if row["kind"] == "same_face_different_subject":
        what = ("the same face under two subject ids in different splits (a leak between the splits)"
                if row["cross_split"] else "the same face under two subject ids")
        todo = "give both videos one subject_id (and one split) if they are one person"
    else:
        what = "two different faces under one subject id"
        todo = "check each video's QA target_why (the wrong person chosen?) and its subject_id"
    return f"identity overlap: {what}: {describe(row)} (threshold {overlap_distance:g}); {todo}"


def leak_error(leaks: pd.DataFrame, overlap_distance: float) -> FacevoxError:
    """The error of ``on_identity_overlap: fail``: every cross-split pair and what to do."""
    lines = [describe(row) for _, row in leaks.iterrows()]
    return FacevoxError(
        f"{len(leaks)} pair(s) of videos in different splits show the same face under different subject ids "
        f"(target embeddings closer than target.overlap_distance {overlap_distance:g}; "
        "target.on_identity_overlap: fail) - one participant recorded twice under two ids leaks between the "
        "splits:\n  " + "\n  ".join(lines) + "\nGive the two videos of one person the same subject_id and one "
        "split (or drop one); if they are different people (twins, a look-alike, the wrong target person: see "
        "their QA target_why), lower target.overlap_distance below their distance or set "
        "target.on_identity_overlap: warn. Listed in results/identity_overlap.tsv when the run goes on.")


def read_overlap(path) -> pd.DataFrame:
    """``results/identity_overlap.tsv`` (:data:`COLUMNS`; ``cross_split`` as bool)."""
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(path, f"not a readable identity-overlap table ({exc})") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise InputError(path, f"not an identity-overlap table (lacks columns {missing})")
    table["cross_split"] = table["cross_split"].str.strip().str.lower().isin({"true", "1", "yes"})
    table["distance"] = pd.to_numeric(table["distance"], errors="coerce")
    return table[COLUMNS]


def run(sheet, landmarks_paths, out, overlap_distance: float = OVERLAP_DISTANCE,
        on_identity_overlap: str = "warn") -> pd.DataFrame:
    """Compare every pair of the videos' target embeddings; write ``out`` (results/identity_overlap.tsv,
    atomically; also in fail mode, before raising) and return the pairs."""
    from facevox.samples import read_samples

    if on_identity_overlap not in ON_IDENTITY_OVERLAP:
        raise FacevoxError(f"target.on_identity_overlap: {on_identity_overlap!r} is not one of "
                           f"{list(ON_IDENTITY_OVERLAP)}")
    samples = read_samples(sheet, check_files=False)
    vectors, skipped = embeddings(landmarks_paths, known=set(samples.index))
    pairs = find_pairs(samples, vectors, overlap_distance)
    with atomic_path(out) as tmp:
        pairs.to_csv(tmp, sep="\t", index=False)
    n = len(vectors)
    log.info("identity_overlap: %d videos compared (%d pairs); skipped %d excluded, %d without a target embedding%s; "
             "%d pair(s) found (threshold %g): %d cross-split", n, n * (n - 1) // 2, len(skipped["excluded"]),
             len(skipped["no_embedding"]),
             f" ({', '.join(skipped['no_embedding'])})" if skipped["no_embedding"] else "",
             len(pairs), overlap_distance, int(pairs["cross_split"].sum()) if len(pairs) else 0)
    for _, row in pairs.iterrows():
        log.warning("%s", warning_line(row, overlap_distance))
    leaks = pairs[pairs["cross_split"].astype(bool)] if len(pairs) else pairs
    if on_identity_overlap == "fail" and len(leaks):
        raise leak_error(leaks, overlap_distance)
    return pairs


def summary_lines(samples: pd.DataFrame, landmarks_paths, overlap_distance: float = OVERLAP_DISTANCE,
                  on_identity_overlap: str = "warn") -> list[str]:
    """The lines the end of a run prints (Snakefile onsuccess / onerror): the cross-split pairs
    of one face under two subject ids among the landmarks tables written so far, one line
    each; nothing when there is none."""
    vectors, _ = embeddings(landmarks_paths, missing_ok=True)
    pairs = find_pairs(samples, vectors, overlap_distance)
    leaks = pairs[pairs["cross_split"].astype(bool)] if len(pairs) else pairs
    if not len(leaks):
        return []
    what = ("target.on_identity_overlap: warn - QA flag same_face_other_subject"
            if on_identity_overlap == "warn" else
            "target.on_identity_overlap: fail stops the run before shards and training")
    lines = [f"facevox: {len(leaks)} pair(s) of videos in different splits show the SAME FACE under different "
             f"subject ids (distance below {overlap_distance:g}; {what}; results/identity_overlap.tsv):"]
    lines += [f"  {describe(row)}" for _, row in leaks.iterrows()]
    return lines
