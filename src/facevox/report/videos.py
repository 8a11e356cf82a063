"""The per-video table (:func:`video_page`) and each model's video-level predictions
(:func:`model_page`) for the report.

Per video (one row per sample-sheet video, sortable and searchable): subject, split,
label, score, gender, duration, resolution and frame rate (``results/probe/<video>.json``),
face-found rate, audio status, AU backend and QA flags (``results/qa.tsv``), the target
person (:func:`target_cell`: the ``target_*`` columns of ``qa.tsv`` - how and why the person
was chosen, how many people were seen, the shares of frames with the target and with
others, the match distance, and a visible note when the choice was close, the target was
not found or the same face is another subject's video in another split), whether it
was used or excluded and why (:func:`facevox.report.study.exclusions`, or "in no split"),
and per model its prediction summarised over the seeds (:func:`summarise`):

* classification - the class most seeds predicted and ``k/n`` seeds correct;
* regression - the mean predicted score over seeds and its absolute error;
* continuous affect - the video's CCC per dimension (mean over seeds), prediction
  against the label trace over the video's steps (:func:`facevox.training.metrics.ccc`).

The prediction tables are those of ``results/predictions/<model>/seed<seed>.parquet``
(see facevox.report.plots for their columns); every split is shown, not only the split
the metric tables report.

Tests: tests/test_report_pages.py
"""
from __future__ import annotations

import html
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from facevox.errors import FacevoxError, InputError
from facevox.report.pages import Cell, fmt, table, write_page
from facevox.report.study import NO_SPLIT, exclusions, read_qa, read_sheet


def prediction_rows(record: dict, table_: pd.DataFrame) -> pd.DataFrame:
    """One row per predicted video of one (model, seed): ``video_id, split, true, predicted,
    correct`` (classification; ``prob_positive`` too), ``true, predicted, abs_error``
    (regression) or ``true`` / ``predicted`` = "<dim>" and ``ccc_<dim>`` (continuous)."""
    task = record["task"]
    if "video_id" not in table_.columns or "split" not in table_.columns:
        raise InputError(record.get("_path", "predictions"), "prediction table lacks split / video_id")
    if task == "classification":
        out = table_[["video_id", "split"]].copy()
        out["true"] = table_["label"].astype(str)
        out["predicted"] = table_["predicted"].astype(str)
        out["correct"] = out["true"] == out["predicted"]
        out["prob_positive"] = pd.to_numeric(table_.get("prob_positive"), errors="coerce")
        return out.reset_index(drop=True)
    if task == "regression":
        out = table_[["video_id", "split"]].copy()
        out["true"] = pd.to_numeric(table_["score_true"], errors="coerce")
        out["predicted"] = pd.to_numeric(table_["score_pred"], errors="coerce")
        out["abs_error"] = (out["predicted"] - out["true"]).abs()
        return out.reset_index(drop=True)
    from facevox.training.metrics import ccc

    if "dimension" in table_.columns:
        long = table_
    else:
        dims = [c[: -len("_true")] for c in table_.columns if c.endswith("_true")]
        long = pd.concat([pd.DataFrame({"split": table_["split"], "video_id": table_["video_id"], "dimension": d,
                                        "true": table_[f"{d}_true"], "pred": table_[f"{d}_pred"]}) for d in dims])
    rows = []
    for (vid, split), part in long.groupby(["video_id", "split"], sort=False):
        row = {"video_id": str(vid), "split": split}
        for dim, d in part.groupby("dimension", sort=True):
            row[f"ccc_{dim}"] = ccc(d["true"].to_numpy(float), d["pred"].to_numpy(float))
        rows.append(row)
    return pd.DataFrame(rows)


def load_predictions(metrics_paths, predictions_paths) -> dict[str, list[tuple[dict, pd.DataFrame]]]:
    """model (a sweep variant: its name) -> [(metrics record, prediction rows)] over its seeds (and
    folds); ``predictions_paths[i]`` belongs to ``metrics_paths[i]``. Under cross-validation a fold's
    rows are its held-out (test) videos only: each video's out-of-fold prediction."""
    from facevox.report.tables import read_metrics

    if len(metrics_paths) != len(predictions_paths):
        raise FacevoxError(f"{len(metrics_paths)} metrics files but {len(predictions_paths)} prediction tables")
    out: dict[str, list] = {}
    for m, p in zip(metrics_paths, predictions_paths):
        rec = read_metrics(m)
        try:
            tab = pd.read_parquet(p)
        except (OSError, ValueError) as exc:
            raise InputError(p, f"not a readable prediction table ({exc})") from None
        if rec.get("fold") is not None:
            tab = tab[tab["split"] == "test"]
        out.setdefault(rec.get("name") or rec["model"], []).append((rec, prediction_rows(rec, tab)))
    return out


def summarise(task: str, rows: list[pd.DataFrame], evaluated: bool = True) -> Cell:
    """One model's prediction on one video over its seeds (each ``rows[i]`` the video's
    rows of one seed; empty when that seed did not predict it). ``evaluated``: the video's
    split is one the model was evaluated on (train videos are not)."""
    rows = [r for r in rows if len(r)]
    if not rows:
        return Cell("not predicted" if evaluated else "not evaluated (split not scored)", sort="", cls="muted")
    if task == "classification":
        predicted = Counter(r["predicted"].iloc[0] for r in rows).most_common(1)[0][0]
        right = sum(bool(r["correct"].iloc[0]) for r in rows)
        cls = "ok" if right == len(rows) else ("bad" if right == 0 else "")
        return Cell(f"{predicted} · {right}/{len(rows)} correct", sort=right / len(rows), cls=cls)
    if task == "regression":
        pred = float(np.mean([r["predicted"].iloc[0] for r in rows]))
        err = float(np.mean([r["abs_error"].iloc[0] for r in rows]))
        return Cell(f"{pred:.1f} (|err| {err:.1f})", sort=err, cls="num")
    dims = sorted(c for c in rows[0].columns if c.startswith("ccc_"))
    values = {d: float(np.nanmean([r[d].iloc[0] for r in rows if d in r])) for d in dims}
    text = ", ".join(f"CCC {d[4:]} {fmt(v)}" for d, v in values.items())
    mean = np.nanmean(list(values.values())) if values else math.nan
    return Cell(text or "–", sort=mean if math.isfinite(mean) else "")


def _probe_info(path) -> dict:
    from facevox.io import read_json

    probe = read_json(path)
    video = probe.get("video") or {}
    w, h = video.get("width"), video.get("height")
    return {"duration_s": video.get("duration_s"), "resolution": f"{w}×{h}" if w and h else None,
            "fps": video.get("avg_fps"), "audio": "yes" if probe.get("audio") else "no"}


def _float(value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _pct(value) -> str:
    return f"{100 * value:.0f} %"


def target_cell(q) -> Cell:
    """The target person of one QA row (None: no QA record): mode and why, people seen, the
    target's and the others' share of frames, the match distance; a note (class ``bad``)
    when the choice was close, the target was not found, or its face is another subject's
    in another split (``same_face_as``)."""
    if q is None:
        return Cell("–", cls="muted")
    flags = set((q.get("flags") or "").split(","))
    mode = q.get("target_mode") if "target_mode" in q else None
    if not mode:
        if "excluded" in flags:
            return Cell("–", cls="muted")
        return Cell("not recorded (landmarks table from before target persons)", sort="", cls="muted")
    people = _float(q.get("n_people"))
    present, other = _float(q.get("target_present_rate")), _float(q.get("other_present_rate"))
    match = _float(q.get("target_match_distance"))
    facts = [f"{int(people)} {'person' if people == 1 else 'people'} seen" if people is not None else None,
             f"target on {_pct(present)} of frames" if present is not None else None,
             f"others on {_pct(other)}" if other is not None else None,
             f"match distance {match:.2f}" if match is not None else None]
    parts = [f"<b>{html.escape(str(mode))}</b>"]
    if q.get("target_why"):
        parts[0] += ": " + html.escape(str(q["target_why"]))
    parts.append(html.escape(" · ".join(f for f in facts if f)))
    notes = []
    if "target_choice_close" in flags:
        notes.append("close choice: another person was present almost as often (check the person, or give "
                     "a reference face)")
    if "target_not_found" in flags or (present == 0 and people):
        notes.append("target not found: no frame has the target's landmarks")
    if q.get("same_face_as"):
        notes.append(f"same face as {q['same_face_as'].replace(',', ', ')} (another subject id, another split)")
    parts += [f'<span class="bad target-note">{html.escape(n)}</span>' for n in notes]
    return Cell("<br>".join(parts), sort=people if people is not None else "", raw=True, cls="wide")


def video_page(sheet, out, qa_path=None, probe_paths=(), metrics_paths=(), predictions_paths=(),
               order=()) -> Path:
    """Write the per-video table (HTML). ``probe_paths`` are matched to videos by file stem;
    ``order``: model column order (config models.run)."""
    samples = read_sheet(sheet)
    qa = read_qa(qa_path) if qa_path else None
    excluded = exclusions(qa)
    probes = {Path(p).stem: _probe_info(p) for p in probe_paths}
    models = load_predictions(list(metrics_paths), list(predictions_paths))
    names = [m for m in order if m in models] + sorted(m for m in models if m not in order)
    # what a reader scans first (split, label, used, the models' predictions) on the left;
    # the QA and media columns after, so that the predictions stay in view
    header = ["video", "split", "label", "score", "used", *names, "face found", "audio", "QA flags",
              "target person", "duration (s)", "resolution", "fps", "AU backend", "subject", "gender"]
    rows, ids = [], []
    for vid, s in samples.to_dict("index").items():  # raw cells: None stays None
        probe = probes.get(vid, {})
        q = qa.loc[vid] if qa is not None and vid in qa.index else None
        rate = _float(q["face_found_rate"]) if q is not None and "face_found_rate" in q else None
        duration = _float(q["video_duration_s"]) if q is not None and "video_duration_s" in q else None
        duration = probe.get("duration_s") if duration is None else duration
        flags = (q.get("flags") or "") if q is not None else ""
        if vid in excluded:
            used = Cell(f"excluded: {excluded[vid]}", cls="bad")
        elif qa is not None and q is None:
            used = Cell("not processed (no QA record)", cls="bad")
        elif not s["split"]:
            used = Cell("in no split (features only)", cls="muted")
        else:
            used = Cell("used", cls="ok")
        score = _float(s["score"])
        row = [Cell(vid, sort=vid), s["split"] or NO_SPLIT, s["label"] or "–",
               Cell(f"{score:g}", sort=score, cls="num") if score is not None else "–", used]
        for name in names:
            task = models[name][0][0]["task"]
            scored = {sp for rec, _ in models[name] for sp in (rec.get("splits") or {})}
            folds = any(rec.get("fold") is not None for rec, _ in models[name])  # out of fold: every split
            row.append(summarise(task, [r[r["video_id"] == vid] for _, r in models[name]],
                                 evaluated=s["split"] in scored or (folds and bool(s["split"]))))
        row += [Cell(f"{100 * rate:.0f} %", sort=rate, cls="num") if rate is not None else "–",
                (q.get("audio_status") or "–") if q is not None else probe.get("audio", "–"),
                Cell(flags.replace(",", ", ") or "none", cls="" if flags else "muted"),
                target_cell(q),
                duration if duration is not None else "–", probe.get("resolution") or "–",
                _float(probe.get("fps")) if probe.get("fps") else "–",
                (q.get("au_backend") or "–") if q is not None and "au_backend" in q else "–",
                s["subject_id"] or "–", s["gender"] or "–"]
        rows.append(row)
        ids.append(f"video-{vid}")
    legend = ('<p class="note">One row per video of the sample sheet. Click a column header to sort, type in the box '
              "to filter. Target person: every table of a video describes one person, chosen by identity "
              "(target.mode); the share of frames with that person's landmarks and with other people's faces, "
              "and the mean face-descriptor distance of the target's samples (below 0.6: one person). "
              "Model columns: classification - the class most seeds predicted and how many seeds were "
              "right; regression - the mean predicted score and its absolute error; continuous affect - the "
              "video's CCC per dimension. Every split is shown (a train video's prediction is a fit, not a "
              "test).</p>")
    body = legend + table(header, rows, table_id="videos-table", sortable=True, row_ids=ids)
    return write_page(out, f"Videos ({len(samples)})", body, "videos")


def model_page(model: str, out, metrics_paths, predictions_paths) -> Path:
    """Write one model's table of video-level predictions over its seeds (HTML)."""
    models = load_predictions(list(metrics_paths), list(predictions_paths))
    if set(models) != {model}:
        raise FacevoxError(f"model page {model}: metrics files are of {sorted(models)}")
    seeds = sorted(models[model], key=lambda rs: rs[0]["seed"])
    task = seeds[0][0]["task"]
    frames = [r.assign(seed=rec["seed"]) for rec, r in seeds]
    allrows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    keys = allrows[["video_id", "split"]].drop_duplicates() if len(allrows) else pd.DataFrame(columns=["video_id",
                                                                                                       "split"])
    header = ["video", "split"]
    if task == "classification":
        header += ["true"] + [h for rec, _ in seeds for h in (f"seed {rec['seed']}: predicted",
                                                               f"seed {rec['seed']}: p(positive)")]
        header += ["correct (seeds)"]
    elif task == "regression":
        header += ["true score"] + [f"seed {rec['seed']}: predicted" for rec, _ in seeds] + ["mean |error|"]
    else:
        dims = sorted({c[4:] for c in allrows.columns if c.startswith("ccc_")})
        header += [f"seed {rec['seed']}: CCC {d}" for rec, _ in seeds for d in dims]
    split_rank = {"train": 0, "dev": 1, "test": 2}
    keys = keys.assign(rank=keys["split"].map(split_rank).fillna(3)).sort_values(["rank", "video_id"])
    rows = []
    for vid, split in zip(keys["video_id"], keys["split"]):
        mine = [(rec, r[(r["video_id"] == vid) & (r["split"] == split)]) for rec, r in seeds]
        row = [Cell(vid, sort=vid, title="this video's row: 2. Videos"), split]
        if task == "classification":
            true = next(r["true"].iloc[0] for _, r in mine if len(r))
            row.append(true)
            right = 0
            for _, r in mine:
                if len(r):
                    right += bool(r["correct"].iloc[0])
                    row += [Cell(r["predicted"].iloc[0], cls="ok" if r["correct"].iloc[0] else "bad"),
                            float(r["prob_positive"].iloc[0])]
                else:
                    row += [Cell("not predicted", cls="muted"), "–"]
            n = sum(1 for _, r in mine if len(r))
            row.append(Cell(f"{right}/{n}", sort=right / n if n else ""))
        elif task == "regression":
            true = next(float(r["true"].iloc[0]) for _, r in mine if len(r))
            row.append(true)
            row += [float(r["predicted"].iloc[0]) if len(r) else "–" for _, r in mine]
            errs = [float(r["abs_error"].iloc[0]) for _, r in mine if len(r)]
            row.append(float(np.mean(errs)))
        else:
            row += [float(r[f"ccc_{d}"].iloc[0]) if len(r) and f"ccc_{d}" in r else "–" for _, r in mine for d in dims]
        rows.append(row)
    unpredicted = sorted({(str(v), s) for rec, _ in seeds for s, vals in (rec.get("splits") or {}).items()
                          for v in vals.get("unpredicted") or []})
    parts = [f'<p class="note">{html.escape(model)} ({task}): every video it predicted, per seed, in every split '
             "(train rows are fits). The video's other columns - QA, duration, the other models - are in the "
             "per-video table (<b>2. Videos</b> in the report menu; this page's caption links to it).</p>",
             table(header, rows, table_id="predictions-table", sortable=True)]
    if unpredicted:
        parts.append("<p>Not predicted (no usable slice): " + ", ".join(html.escape(f"{v} ({s})")
                                                                        for v, s in unpredicted) + "</p>")
    return write_page(out, f"{model}: video-level predictions", "\n".join(parts), "model-predictions")
