"""Scoring new videos with trained models: ``facevox predict-table`` (:func:`predict_table`, a
sheet of videos whose per-video tables exist) and ``facevox predict`` (:func:`predict_videos`,
video files: the extraction stages first).

A new video is not part of the study: it has no label, no split, and nothing of it is fitted.
The model file says how the training fed its model (``preprocessing``, written by the task at
training time: ``Task.preprocessing`` in facevox.training.tasks) and scoring applies exactly
that - never the current configuration's settings - to the video's per-video table:

* ``slices`` (sequence and scikit-learn models on a shard set; the aligned table
  ``results/align/<id>.parquet``): short gaps filled, normalised with the shard set's **train**
  statistics and cut with its length, hop, pad and degree (facevox.dataset.shards.video_slices);
  slices whose still-missing rows exceed the training's ``max_missing_fraction`` are not used,
  the rest NaN -> 0; the slices' class probabilities become the video's by the training
  config's vote (facevox.training.evaluate.aggregate), as evaluation does;
* ``whole`` (protocol ``whole``; aligned tables): the whole sequence, gaps filled, normalised
  with the training's fitted statistics (``models.whole.normalisation``), one prediction;
* ``clips`` / ``faces`` (``results/faces/<id>.parquet``): the clips or frames evaluation picks
  (``eval_clips``, ``eval_frames_per_video``) at the training's ``size``; the mean output times
  ``score_scale``.  A video whose face crops are not the size the training's were is scored
  (the crops are resized as in training) with a note in ``reason``;
* ``fau`` (``results/fau_windows/<id>.parquet``): the window columns, one output per window
  and dimension.

Several model files (the k fold models of a cross-validation, one model): the mean of their
outputs - classification pools every model's slice probabilities before the vote (the same
slices in each: the video's probabilities are the mean of the models', a majority vote counts
every model's slice votes; ``n_items`` is one model's count), regression averages the video
scores, continuous the per-window outputs.

A video that cannot be scored stays in the table: ``status`` ``unscored`` with the ``reason``
(``no_slices``, ``max_missing_fraction``, ``no_rows``, ``no_face``, ``no_windows``,
``excluded_input: ...`` when an extraction stage wrote an excluded record, ``unreadable_video:
...`` when ``facevox predict`` could not extract it, ``model: ...`` when the model refuses it,
e.g. a video longer than JAMFN's ``seq_len``).  Scored videos have ``status`` ``scored``.

The table (:data:`PREDICT_SCHEMAS`, by the task's kind) is written atomically; its metadata
(provenance) names every model file (model, seed, best epoch, SHA-256), the preprocessing of
each, the aggregation and the git commit of facevox's source.

Tests: tests/test_predict.py
"""
from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from facevox.errors import FacevoxError, InputError

log = logging.getLogger("facevox.training.predict")

_TAIL = [pa.field("n_items", pa.int32()), pa.field("status", pa.string()), pa.field("reason", pa.string())]
#: Classification: the positive class's probability and the predicted class per video.
PREDICT_CLASSIFICATION_SCHEMA = pa.schema([pa.field("video_id", pa.string()), pa.field("prob_positive", pa.float64()),
                                           pa.field("predicted", pa.string()), *_TAIL])
#: Regression: the score per video, in label units.
PREDICT_REGRESSION_SCHEMA = pa.schema([pa.field("video_id", pa.string()), pa.field("score", pa.float64()), *_TAIL])
#: Continuous affect: one row per window and dimension (an unscored video: one row per dimension).
PREDICT_CONTINUOUS_SCHEMA = pa.schema([pa.field("video_id", pa.string()), pa.field("dimension", pa.string()),
                                       pa.field("centre_s", pa.float64()), pa.field("pred", pa.float64()), *_TAIL])
PREDICT_SCHEMAS = {"classification": PREDICT_CLASSIFICATION_SCHEMA, "regression": PREDICT_REGRESSION_SCHEMA,
                   "continuous": PREDICT_CONTINUOUS_SCHEMA}

#: Preprocessing kind -> (the task's kind, the per-video table it reads: the extraction output).
KINDS = {"slices": ("classification", "aligned"), "whole": ("classification", "aligned"),
         "clips": ("regression", "faces"), "faces": ("regression", "faces"), "fau": ("continuous", "fau_windows")}
SCORED, UNSCORED = "scored", "unscored"


# --------------------------------------------------------------------------- the models, one video
# Each reads the video's per-video table once and gives one (outputs, note, extra) per model: the
# fold models of a cross-validated training share the read, and differ in their own normalisation.
def _slice_outputs(models: list, vid: str, path: Path, settings: dict) -> list:
    """Per model, class probabilities [n, K] of the video's usable slices."""
    from facevox.contract import ALIGNED_SCHEMA
    from facevox.dataset.shards import video_slices
    from facevox.dataset.slices import NormStats
    from facevox.io import read_table
    from facevox.training.tasks.slices import SLICE_PARAMS, slice_inputs, too_missing

    for model in models:
        lacking = [k for k in SLICE_PARAMS if k not in model.preprocessing["shards"]]
        if lacking:
            raise FacevoxError(f"{model.path}: the shard set it was trained on did not record {lacking} in its "
                               "manifest - rebuild the shards and retrain to score new videos")
    table, _ = read_table(path, ALIGNED_SCHEMA)
    results = []
    for model in models:
        prep = model.preprocessing
        slices, n_real, n_missing, _ = video_slices(table, prep["columns"], NormStats(**prep["norm"]), prep["shards"])
        if not len(slices):
            results.append((None, "no_slices", {}))
            continue
        keep = ~too_missing(n_missing, n_real, prep["max_missing_fraction"])
        if not keep.any():
            results.append((None, "max_missing_fraction", {}))
            continue
        x = slices[keep]
        x = np.where(np.isnan(x), np.float32(0), x)
        size = model.batch_size
        probs = [model.predict(slice_inputs(x[i:i + size], prep["visual"], prep["acoustic"], prep["sklearn"]))
                 for i in range(0, len(x), size)]
        results.append((np.concatenate(probs), "", {}))
    return results


def _whole_outputs(models: list, vid: str, path: Path, settings: dict) -> list:
    """Per model, class probabilities [1, K] of the whole video."""
    from facevox.dataset.slices import NormStats
    from facevox.training.tasks.whole import aligned_features, whole_inputs

    read: dict = {}
    results = []
    for model in models:
        prep = model.preprocessing
        key = (tuple(prep["columns"]), prep["max_gap"])
        if key not in read:
            read[key] = aligned_features(path, prep["columns"], prep["max_gap"])[0]
        values = read[key]
        if not len(values):
            results.append((None, "no_rows", {}))
            continue
        x, _ = whole_inputs(values, NormStats(**prep["norm"]) if prep["norm"] else None)
        inputs = (x[None][..., prep["visual"]], x[None][..., prep["acoustic"]], np.array([len(x)], np.int64))
        try:
            results.append((model.predict(inputs), "", {}))
        except FacevoxError as exc:  # e.g. JAMFN: longer than the seq_len it was built for
            results.append((None, f"model: {exc}", {}))
    return results


def _face_outputs(models: list, vid: str, path: Path, settings: dict) -> list:
    """Per model, scores [n] of the clips (clips) or frames (faces) evaluation picks.  The models
    that pick the same crops at the same size and batch size (a training's fold models) share one
    pass over them: each batch is decoded once and scored by each of them, then dropped."""
    from facevox.training.tasks.clips import eval_clip_rows
    from facevox.training.tasks.face_frames import (
        FaceItem,
        FaceItems,
        FaceReader,
        face_batches,
        index_video,
        loader_workers,
        video_batches,
    )
    from facevox.training.tasks.faces import eval_frame_rows

    index = index_video(vid, path)
    if index.n_faces == 0:
        return [(None, "no_face", {}) for _ in models]
    groups: dict[tuple, tuple[str, list, list[int]]] = {}
    for i, model in enumerate(models):
        vision = model.preprocessing["vision"]
        if model.preprocessing["kind"] == "clips":
            kind, rows = "clip", eval_clip_rows(index.n_faces, int(vision["clip_len"]), vision["eval_clips"])
        else:
            kind, rows = "frame", [np.array([r]) for r in eval_frame_rows(index.n_faces,
                                                                          vision["eval_frames_per_video"])]
        key = (kind, tuple(tuple(np.asarray(r).tolist()) for r in rows), vision["size"], model.batch_size)
        groups.setdefault(key, (kind, rows, []))[2].append(i)
    scores: list[list[float]] = [[] for _ in models]
    for (_, _, size, batch_size), (kind, rows, members) in groups.items():
        data = FaceItems([index], [FaceItem(0, np.asarray(r), None) for r in rows], size, kind)
        for batch in face_batches(data, video_batches([vid] * len(rows), batch_size),
                                  loader_workers(settings["vision"]), int(settings["vision"].get("prefetch", 2))):
            for i in members:
                out = models[i].predict((batch,) if kind == "clip" else tuple(batch))
                scores[i].extend(np.asarray(out, np.float64).tolist())
    results = []
    for model, out in zip(models, scores):
        prep, want = model.preprocessing, model.preprocessing["vision"]["size"]
        size = FaceReader(want).crop_size(index)
        note = "" if size == prep.get("crop_size") else \
            f"face crops of {size} px, the training's were {prep.get('crop_size')} px (resized to {want})"
        results.append((np.array(out), note, {}))
    return results


def _fau_outputs(models: list, vid: str, path: Path, settings: dict) -> list:
    """Per model, outputs [T, D] of every window."""
    from facevox.io import read_table
    from facevox.training.tasks.fau import window_inputs

    table, _ = read_table(path)
    if not len(table):
        return [(None, "no_windows", {}) for _ in models]
    centres = {"centre_s": table["centre_s"].to_numpy(np.float64)}
    return [(np.asarray(m.predict((window_inputs(table, m.preprocessing["columns"])[None],)))[0], "", centres)
            for m in models]


OUTPUTS = {"slices": _slice_outputs, "whole": _whole_outputs, "clips": _face_outputs, "faces": _face_outputs,
           "fau": _fau_outputs}


# --------------------------------------------------------------------------- the models together
def check_models(models: list) -> dict:
    """What the model files share (FacevoxError when they cannot be averaged: another model,
    task, classes or dimensions, or a file without its preprocessing): the first one's
    preprocessing."""
    if not models:
        raise FacevoxError("predict: no model file given")
    first = models[0].preprocessing
    if first.get("kind") not in KINDS:
        raise FacevoxError(f"{models[0].path}: unknown preprocessing kind {first.get('kind')!r}")
    for m in models[1:]:
        prep = m.preprocessing
        for key in ("kind", "classes", "positive", "dimensions"):
            if prep.get(key) != first.get(key):
                raise FacevoxError(f"predict: {m.path} has {key} {prep.get(key)!r}, {models[0].path} "
                                   f"{first.get(key)!r} - only the models of one training (e.g. its fold models) "
                                   "are averaged")
        if m.name != models[0].name:
            raise FacevoxError(f"predict: {m.path} is model {m.name}, {models[0].path} {models[0].name} - "
                               "only the models of one training (e.g. its fold models) are averaged")
    return first


def _classification_rows(vid: str, results: list, prep: dict) -> list[dict]:
    from facevox.training.evaluate import aggregate

    scored = [out for out, _, _ in results if out is not None]
    notes = "; ".join(dict.fromkeys(r for out, r, _ in results if out is not None and r))
    if not scored:
        return [{"video_id": vid, "prob_positive": math.nan, "predicted": None, "n_items": 0,
                 "status": UNSCORED, "reason": results[0][1]}]
    pooled = np.concatenate(scored)
    row = aggregate([vid] * len(pooled), pooled, prep["vote"]).iloc[0]
    return [{"video_id": vid, "prob_positive": float(row["probs"][prep["classes"].index(prep["positive"])]),
             "predicted": prep["classes"][int(row["class"])], "n_items": len(scored[0]), "status": SCORED,
             "reason": notes}]


def _regression_rows(vid: str, results: list, models: list) -> list[dict]:
    scores = [float(np.mean(out)) * float(m.preprocessing["vision"]["score_scale"])
              for (out, _, _), m in zip(results, models) if out is not None]
    notes = "; ".join(dict.fromkeys(r for out, r, _ in results if out is not None and r))
    if not scores:
        return [{"video_id": vid, "score": math.nan, "n_items": 0, "status": UNSCORED, "reason": results[0][1]}]
    n = next(len(out) for out, _, _ in results if out is not None)
    return [{"video_id": vid, "score": float(np.mean(scores)), "n_items": n, "status": SCORED, "reason": notes}]


def _continuous_rows(vid: str, results: list, prep: dict) -> list[dict]:
    scored = [(out, extra) for out, _, extra in results if out is not None]
    if not scored:
        return [{"video_id": vid, "dimension": d, "centre_s": math.nan, "pred": math.nan, "n_items": 0,
                 "status": UNSCORED, "reason": results[0][1]} for d in prep["dimensions"]]
    mean = np.mean([out for out, _ in scored], axis=0)
    centres = scored[0][1]["centre_s"]
    return [{"video_id": vid, "dimension": d, "centre_s": float(c), "pred": float(p), "n_items": len(centres),
             "status": SCORED, "reason": ""}
            for k, d in enumerate(prep["dimensions"]) for c, p in zip(centres, mean[:, k])]


def score_videos(models: list, tables: dict, out, settings: dict, inputs: dict | None = None) -> pd.DataFrame:
    """Score every video of ``tables`` (video id -> its per-video table, or an unreadable-input
    reason string) with the loaded ``models`` (facevox.training.trained.TrainedModel, averaged)
    and write the table to ``out``; ``inputs``: what the metadata says the videos came from."""
    from facevox.extract.exclusion import describe, exclusion_of
    from facevox.io import write_table
    from facevox.provenance import git_state, provenance

    prep = check_models(models)
    kind, _ = KINDS[prep["kind"]]
    rows: list[dict] = []
    for vid, path in tables.items():
        if isinstance(path, str):  # the extraction could not read the video
            results = [(None, path, {})]
        elif (excluded := exclusion_of(path)):
            results = [(None, f"excluded_input: {describe(excluded)}", {})]
        else:
            results = OUTPUTS[prep["kind"]](models, vid, Path(path), settings)
        if kind == "classification":
            rows += _classification_rows(vid, results, prep)
        elif kind == "regression":
            rows += _regression_rows(vid, results, models)
        else:
            rows += _continuous_rows(vid, results, prep)
        if rows[-1]["status"] == UNSCORED:
            log.warning("predict %s: not scored: %s", vid, rows[-1]["reason"])
    schema = PREDICT_SCHEMAS[kind]
    table = pd.DataFrame(rows, columns=schema.names).astype({"n_items": "int32"})
    described = [{"path": str(m.path), "model": m.name, "seed": m.payload["seed"],
                  "best_epoch": m.payload.get("best_epoch"), "sha256": m.sha256()} for m in models]
    meta = provenance("predict", params={"models": [d["model"] for d in described]}, inputs=inputs or {},
                      models=described, seeds=[d["seed"] for d in described], task=kind,
                      preprocessing=[m.preprocessing for m in models],
                      aggregation=("one model" if len(models) == 1 else f"mean of {len(models)} models' outputs"),
                      git_commit=git_state()["commit"])
    write_table(table, out, schema, meta)
    return table


def _load_models(model_paths, settings: dict) -> list:
    from facevox.training.trained import TrainedModel

    paths = [model_paths] if isinstance(model_paths, (str, Path)) else list(model_paths)
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise FacevoxError(f"predict: model file(s) not found: {', '.join(missing)}")
    return [TrainedModel.load(p, settings) for p in paths]


def predict_table(model_paths, sheet, data, out, *, params: dict | None = None, threads: int = 1) -> pd.DataFrame:
    """Score the videos of ``sheet`` (a TSV with ``video_id`` and ``path``; no label or split
    needed) from their per-video tables ``data/<video_id>.parquet`` (aligned tables for slice and
    whole-video models, face tables for clip / face models, FAU windows for fau models) with the
    model file(s) ``model_paths`` (several: the mean of their outputs); write the table to ``out``
    (:data:`PREDICT_SCHEMAS`) and return it.  ``params``: the ``models:`` section (device)."""
    import torch

    from facevox.samples import read_samples
    from facevox.training.loop import run_settings

    torch.set_num_threads(max(1, int(threads)))
    settings = run_settings(params)
    models = _load_models(model_paths, settings)
    check_models(models)
    samples = read_samples(sheet, check_files=False)
    data = Path(data)
    tables = {str(v): data / f"{v}.parquet" for v in samples.index}
    missing = [str(p) for p in tables.values() if not p.is_file()]
    if missing:
        raise FacevoxError(f"predict: {len(missing)} per-video table(s) missing in {data}: {', '.join(missing[:5])}"
                           + (" ..." if len(missing) > 5 else ""))
    return score_videos(models, tables, out, settings, {"sheet": sheet})


def predict_videos(model_paths, videos, out, *, ids=None, work=None, config=None, threads: int = 1,
                   extract=None) -> pd.DataFrame:
    """Score video files: the per-video extraction stages the models' family needs
    (facevox.extract.chain, with ``config``'s stage settings; the face crops are kept for clip /
    face models) into ``work`` (None: a temporary folder, removed after), then
    :func:`score_videos`.  ``ids``: the videos' ids (default: the file stems); ``config``'s
    ``models:`` section gives the device.  ``extract``: the extraction function (chain.run)."""
    import torch

    from facevox.config import load_config
    from facevox.training.loop import run_settings

    if extract is None:
        from facevox.extract.chain import run as extract
    videos = [Path(v) for v in videos]
    ids = [str(i) for i in ids] if ids else [v.stem for v in videos]
    if len(ids) != len(videos):
        raise FacevoxError(f"predict: {len(ids)} id(s) for {len(videos)} video(s) - give one --ids entry per video")
    if len(set(ids)) != len(ids):
        raise FacevoxError(f"predict: video ids must differ (give --ids): {', '.join(sorted(ids))}")
    missing = [str(v) for v in videos if not v.is_file()]
    if missing:
        raise FacevoxError(f"predict: video file(s) not found: {', '.join(missing)}")
    torch.set_num_threads(max(1, int(threads)))
    cfg = load_config(config)
    settings = run_settings(cfg["models"])
    models = _load_models(model_paths, settings)
    output = KINDS[check_models(models)["kind"]][1]
    if output == "faces" and not cfg["faces"]["keep_face_images"]:
        log.info("predict: face crops kept for the model (faces.keep_face_images) in the work folder")
        cfg["faces"] = {**cfg["faces"], "keep_face_images": True}
    with tempfile.TemporaryDirectory(prefix="facevox-predict-") as tmp:
        folder = Path(work) if work is not None else Path(tmp)
        tables: dict = {}
        for vid, video in zip(ids, videos):
            try:
                tables[vid] = extract(video, folder, cfg, vid=vid, outputs=[output])[output]
            except InputError as exc:  # no video stream, not a video: named in the table
                tables[vid] = f"unreadable_video: {exc.problem}"
        return score_videos(models, tables, out, settings, dict(zip(ids, videos)))
