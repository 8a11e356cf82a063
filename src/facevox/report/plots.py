"""Plots of one model over its seeds, and the QA overview.

Prediction tables (one per model and seed, ``results/predictions/<model>/seed<seed>.parquet``):
classification ``split, video_id, label, predicted, prob_positive`` (facevox.training.evaluate);
regression ``split, video_id, score_true, score_pred``; continuous affect, long
``split, video_id, dimension, true, pred`` (one row per step and dimension) or wide
``split, video_id, <dim>_true, <dim>_pred``.

Plots (:func:`model_plots`, :func:`qa_plot`; PNG through matplotlib's Agg canvas, no
pyplot state): per model over all its seeds, for the chosen split -

* ``confusion.png`` (classification): the confusion matrices of the seeds summed,
  each cell with its count and its share of the true class (colour);
* ``roc.png`` (classification): one ROC curve per seed (``prob_positive``), AUC in the legend;
  under cross-validation (test split) one per seed of the pooled out-of-fold predictions
  (:func:`pooled_out_of_fold`), as the tables pool them (the scatter likewise);
* ``scatter.png`` (regression): predicted against true score per video, seeds by colour,
  the identity line;
* ``ccc.png`` (continuous): CCC per dimension, mean over seeds as a bar, each seed a dot;
* ``filter.png`` / ``attributions.png`` (continuous, single-filter models B-E): the
  first seed's trained filter per dimension as a features x time heatmap (the paper's
  filter figure) and its eq. 5 feature attributions at three time steps of the first
  test video (from the metrics' ``explain`` record);
* ``training.png`` (every model with at least one epoch of finite training loss, i.e.
  not the scikit-learn baselines): training loss per epoch per seed, the development
  score (``dev_score`` of the history) beside it when recorded, the best epoch marked;
* ``qa_overview.png``: face-found rate per video (bars coloured by audio status, the
  QA flag threshold as a line; a histogram beyond 60 videos) and the number of videos
  per audio status.

A plot whose data are missing (no predicted video, one class only) is still written,
with the reason in place of the axes, so the report says why.  The figure helpers
(:func:`new_figure`, :func:`save_figure`, :func:`show_message`) are shared with
facevox.report.timelines.

Tests: tests/test_report.py
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from facevox.errors import FacevoxError, InputError
from facevox.io import atomic_path
from facevox.report.table_stats import pooled_predictions

# =========================================================================== plots
FIG_DPI = 110


def new_figure(width: float = 5.5, height: float = 4.2):
    """A new matplotlib figure (Agg, no pyplot state) of ``width`` x ``height`` inches at :data:`FIG_DPI`."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=FIG_DPI, layout="constrained")


def save_figure(fig, path) -> Path:
    """Write ``fig`` to ``path`` as a PNG on white (atomically) and return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=FIG_DPI, facecolor="white")
    return path


def show_message(ax, text: str) -> None:
    """Turn ``ax`` into a boxed ``text`` (no axes) that says why there is nothing to plot."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=11,
            bbox={"boxstyle": "round", "facecolor": "#f3f3f3", "edgecolor": "#999999"})


def _records(metrics_paths) -> list[dict]:
    from facevox.report.tables import read_metrics

    return [read_metrics(p) for p in metrics_paths]


def _split_table(path, split: str) -> pd.DataFrame:
    table = pd.read_parquet(path)
    if "split" not in table.columns or "video_id" not in table.columns:
        raise InputError(path, "not a facevox prediction table (no split / video_id column)")
    return table[table["split"] == split]


def confusion_plot(records: list[dict], out, split: str = "test") -> Path:
    """Confusion matrices of the seeds, summed; colour = share of the true class."""
    fig = new_figure(5.2, 4.4)
    ax = fig.subplots()
    model = records[0]["model"]
    mats = [r["splits"].get(split, {}).get("confusion_matrix") for r in records]
    mats = [m for m in mats if m]
    if not mats:
        unpredicted = sum(len(r["splits"].get(split, {}).get("unpredicted", [])) for r in records)
        show_message(ax, f"{model}: no video of the {split} split was predicted\n"
                     f"({unpredicted} unpredicted over {len(records)} seed(s):\nno usable slice)")
        return save_figure(fig, out)
    labels = mats[0]["labels"]
    total = np.sum([np.asarray(m["matrix"], float) for m in mats if m["labels"] == labels], 0)
    share = total / np.maximum(total.sum(1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(total[i, j])}\n({100 * share[i, j]:.0f} %)", ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black", fontsize=11)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{model}: {split}, {len(mats)} seed(s) summed ({int(total.sum())} videos)", fontsize=10)
    return save_figure(fig, out)


def roc_plot(records: list[dict], tables: list[pd.DataFrame], out) -> Path:
    """One ROC curve per seed from ``prob_positive``."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig = new_figure()
    ax = fig.subplots()
    model = records[0]["model"]
    drawn = 0
    for rec, table in zip(records, tables):
        positive = rec.get("positive")
        is_pos = (table["label"].astype(str) == str(positive)).to_numpy()
        if not 0 < is_pos.sum() < len(is_pos):
            continue
        fpr, tpr, _ = roc_curve(is_pos, table["prob_positive"].to_numpy(float))
        auc = roc_auc_score(is_pos, table["prob_positive"].to_numpy(float))
        ax.plot(fpr, tpr, lw=1.6, label=f"{run_label(rec)} (AUC {auc:.3f}, n={len(table)})")
        drawn += 1
    if not drawn:
        show_message(ax, f"{model}: no ROC curve - the split's predicted videos\nhold one class only (or none)")
        return save_figure(fig, out)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel(f"true positive rate ({records[0].get('positive')})")
    ax.set_title(f"{model}: ROC per seed", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, out)


def scatter_plot(records: list[dict], tables: list[pd.DataFrame], out) -> Path:
    """Predicted against true score per video, seeds by colour."""
    fig = new_figure(5.0, 4.6)
    ax = fig.subplots()
    model = records[0]["model"]
    if not any(len(t) for t in tables):
        show_message(ax, f"{model}: no predicted video in this split")
        return save_figure(fig, out)
    lo, hi = math.inf, -math.inf
    for rec, table in zip(records, tables):
        t, p = table["score_true"].to_numpy(float), table["score_pred"].to_numpy(float)
        if not len(t):
            continue
        lo, hi = min(lo, np.nanmin(t), np.nanmin(p)), max(hi, np.nanmax(t), np.nanmax(p))
        ax.scatter(t, p, s=18, alpha=0.7, label=f"{run_label(rec)} (n={len(t)})")
    pad = 0.05 * max(hi - lo, 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], ls="--", color="grey", lw=1, label="identity")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("true score")
    ax.set_ylabel("predicted score")
    ax.set_title(f"{model}: predicted vs true", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return save_figure(fig, out)


def ccc_plot(records: list[dict], out, split: str = "test") -> Path:
    """CCC per dimension: mean over seeds (bar) and every seed (dots)."""
    fig = new_figure(5.0, 4.0)
    ax = fig.subplots()
    model = records[0]["model"]
    per_dim: dict[str, list[float]] = {}
    for rec in records:
        for dim, value in (rec["splits"].get(split, {}).get("ccc") or {}).items():
            if value is not None and math.isfinite(value):
                per_dim.setdefault(dim, []).append(float(value))
    if not per_dim:
        show_message(ax, f"{model}: no CCC in the {split} split")
        return save_figure(fig, out)
    dims = sorted(per_dim)
    ax.bar(range(len(dims)), [np.mean(per_dim[d]) for d in dims], color="#9ecae1", label="mean over seeds")
    for i, d in enumerate(dims):
        ax.scatter([i] * len(per_dim[d]), per_dim[d], color="#08519c", zorder=3, s=20)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(dims)), dims)
    ax.set_ylabel("CCC")
    ax.set_ylim(min(-0.1, min(min(v) for v in per_dim.values()) - 0.05), 1)
    ax.set_title(f"{model}: CCC per dimension ({split}; dots = seeds)", fontsize=10)
    return save_figure(fig, out)


def _heatmap(ax, values: np.ndarray, features: list[str], lags: list[int], title: str):
    limit = float(np.abs(values).max()) or 1.0
    image = ax.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest",
                      extent=(lags[0] - 0.5, lags[-1] + 0.5, len(features) - 0.5, -0.5))
    ax.set_yticks(range(len(features)), features, fontsize=6)
    ax.set_xlabel("window offset from the output step (eq. 5: t - T_F/2)")
    ax.set_title(title, fontsize=9)
    return image


def filter_plot(record: dict, out) -> Path:
    """The trained filter per dimension: features x time, diverging colours around 0."""
    explain = record["explain"]
    dims = list(explain["filters"])
    fig = new_figure(6.0 * len(dims), 7.0)
    axes = fig.subplots(1, len(dims), squeeze=False)[0]
    for ax, dim in zip(axes, dims):
        image = _heatmap(ax, np.asarray(explain["filters"][dim]), explain["features"], explain["lags"],
                         f"{record['model']} seed {record['seed']}: filter for {dim}")
        fig.colorbar(image, ax=ax, shrink=0.6, label="weight")
    return save_figure(fig, out)


def attribution_plot(record: dict, out) -> Path:
    """Eq. 5 feature attributions of the first dimension at its three recorded time steps."""
    explain = record["explain"]
    dim = next(iter(explain["attributions"]))
    att = explain["attributions"][dim]
    values = np.asarray(att["values"])
    fig = new_figure(5.0 * len(values), 7.0)
    axes = fig.subplots(1, len(values), squeeze=False)[0]
    for ax, v, t in zip(axes, values, att["centre_s"]):
        image = _heatmap(ax, v, explain["features"], explain["lags"],
                         f"{dim} attributions, {att['video_id']} at {t:.1f} s (sum {v.sum():.3f})")
        fig.colorbar(image, ax=ax, shrink=0.6)
    return save_figure(fig, out)


def _finite(value) -> float:
    """A history value as a float; NaN for missing / non-numeric / infinite (an
    undefined development score is recorded as -inf)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else math.nan


def _has_curve(record: dict) -> bool:
    return any(math.isfinite(_finite(h.get("train_loss"))) for h in record.get("history") or [])


def run_label(record: dict) -> str:
    """``seed 0``; under cross-validation ``fold2 seed 0``, or ``seed 0, pooled out of fold`` (a curve's legend)."""
    if record.get("pooled"):
        return f"seed {record['seed']}, pooled out of fold"
    return f"{record['fold_name']} seed {record['seed']}" if record.get("fold_name") else f"seed {record['seed']}"


def pooled_out_of_fold(records: list[dict], tables: list) -> tuple[list[dict], list]:
    """Under cross-validation, one (record, test table) per seed: every fold's held-out rows concatenated
    (each video once, predicted by the fold that held its subject out) - the ROC curve and scatter of the
    pooled out-of-fold predictions the tables report, pooled by the tables' own rule
    (facevox.report.table_stats.pooled_predictions: a seed lacking one of the folds is left out); without
    folds ``(records, tables)`` as given."""
    if not any(r.get("fold") is not None for r in records):
        return records, tables
    folds = sorted({r["fold"] for r in records})
    pooled, _ = pooled_predictions(list(zip(records, tables)), "test", f"plots of {records[0]['model']}", folds)
    first: dict[int, dict] = {}
    for rec in records:
        first.setdefault(rec["seed"], rec)
    return ([{**first[s], "pooled": True, "fold": None, "fold_name": None} for s in pooled],
            [pooled[s] for s in pooled])


#: Readable names of the development metrics (models.select_by and the tasks' own scores).
METRIC_NAMES = {"f1_weighted": "weighted F1", "accuracy": "accuracy", "auc": "AUC", "loss": "loss",
                "f1": "F1", "uar": "unweighted average recall"}


def dev_score_name(task: str, select_by: str | None = None) -> str:
    """What the history's ``dev_score`` is, by task (facevox.training.tasks ``score``):
    classification - ``select_by`` (loss negated); regression - negated RMSE;
    continuous - mean CCC over the dimensions."""
    if task == "regression":
        return "−RMSE (score points)"
    if task == "continuous":
        return "mean CCC over dimensions"
    name = METRIC_NAMES.get(select_by or "f1_weighted", str(select_by).replace("_", " "))
    return "−loss" if select_by == "loss" else name


def training_plot(records: list[dict], out, select_by: str | None = None) -> Path:
    """Training loss (and the development score, when recorded) per epoch and seed; the
    score's axis is named by its metric (:func:`dev_score_name`)."""
    from matplotlib.ticker import MaxNLocator

    with_dev = any(math.isfinite(_finite(h.get("dev_score"))) for r in records for h in r.get("history") or [])
    fig = new_figure(9.0 if with_dev else 5.5, 4.0)
    axes = fig.subplots(1, 2 if with_dev else 1, squeeze=False)[0]
    model = records[0]["model"]
    for rec in records:
        hist = rec.get("history") or []
        epochs = [h["epoch"] for h in hist]
        line, = axes[0].plot(epochs, [_finite(h.get("train_loss")) for h in hist], marker="o", ms=3,
                             label=f"seed {rec['seed']}")
        if with_dev:
            dev = [_finite(h.get("dev_score")) for h in hist]
            axes[1].plot(epochs, dev, marker="o", ms=3, color=line.get_color(), label=f"seed {rec['seed']}")
            best = rec.get("best_epoch")
            if best in epochs and math.isfinite(dev[epochs.index(best)]):
                axes[1].scatter([best], [dev[epochs.index(best)]], s=90, facecolors="none",
                                edgecolors=line.get_color(), zorder=3)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("training loss")
    axes[0].set_title(f"{model}: training loss", fontsize=10)
    axes[0].legend(fontsize=8)
    if with_dev:
        name = dev_score_name(records[0].get("task", "classification"), select_by)
        axes[1].set_ylabel(f"development {name}")
        axes[1].set_title(f"development {name} (circle: best epoch)", fontsize=10)
    return save_figure(fig, out)


def model_plots(metrics_paths, predictions_paths, out_dir, split: str = "test",
                select_by: str | None = None) -> list[Path]:
    """Every plot of one model (all its seeds) into ``out_dir``; returns the files written.

    ``predictions_paths[i]`` belongs to ``metrics_paths[i]``.
    """
    records = _records(metrics_paths)
    if not records:
        raise FacevoxError("plots: no metrics file given")
    if len({r["model"] for r in records}) != 1 or len({r["task"] for r in records}) != 1:
        raise FacevoxError("plots: the metrics files must be of one model (and task): "
                           + ", ".join(sorted({f"{r['model']} ({r['task']})" for r in records})))
    if len(predictions_paths) != len(records):
        raise FacevoxError(f"plots: {len(records)} metrics files but {len(predictions_paths)} prediction tables")
    tables = [_split_table(p, split) for p in predictions_paths]
    task = records[0]["task"]
    curves = pooled_out_of_fold(records, tables) if split == "test" else (records, tables)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if task == "classification":
        written.append(confusion_plot(records, out_dir / "confusion.png", split))
        written.append(roc_plot(*curves, out_dir / "roc.png"))
    elif task == "regression":
        written.append(scatter_plot(*curves, out_dir / "scatter.png"))
    else:
        written.append(ccc_plot(records, out_dir / "ccc.png", split))
        explained = [r for r in records if (r.get("explain") or {}).get("filters")]
        if explained:
            written.append(filter_plot(explained[0], out_dir / "filter.png"))
            if explained[0]["explain"].get("attributions"):
                written.append(attribution_plot(explained[0], out_dir / "attributions.png"))
    if any(_has_curve(r) for r in records):
        written.append(training_plot([r for r in records if _has_curve(r)], out_dir / "training.png",
                                     select_by))
    return written


#: Above this many videos the QA plot shows a histogram instead of one bar per video.
QA_MAX_BARS = 60
AUDIO_COLOURS = {"ok": "#4daf4a", "truncated": "#984ea3", "silent": "#ff7f00", "too_short": "#a65628",
                 "no_audio_stream": "#e41a1c"}


def qa_plot(qa_tsv, out) -> Path:
    """Face-found rate per video and the audio status of the videos (results/qa.tsv)."""
    from matplotlib.ticker import MaxNLocator

    from facevox.extract.qa import LOW_FACE_RATE

    try:
        qa = pd.read_csv(qa_tsv, sep="\t", keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise InputError(qa_tsv, f"not a readable QA table ({exc})") from None
    missing = {"video_id", "face_found_rate", "audio_status"} - set(qa.columns)
    if missing:
        raise InputError(qa_tsv, f"QA table lacks columns {sorted(missing)}")
    rate = pd.to_numeric(qa["face_found_rate"], errors="coerce").to_numpy()
    status = qa["audio_status"].astype(str).replace("", "unknown")
    fig = new_figure(10.0, max(3.8, 0.28 * len(qa) + 1.2) if len(qa) <= QA_MAX_BARS else 4.2)
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    if len(qa) == 0:
        show_message(left, "no videos in the QA table")
    elif len(qa) <= QA_MAX_BARS:
        y = np.arange(len(qa))[::-1]
        colours = [AUDIO_COLOURS.get(s, "#999999") for s in status]
        left.barh(y, rate, color=colours)
        left.set_yticks(y, qa["video_id"].astype(str), fontsize=8)
        for yi, r in zip(y, rate):
            left.text(min(r, 1.0) + 0.01, yi, f"{100 * r:.0f} %", va="center", fontsize=7)
        left.set_xlim(0, 1.12)
        left.set_xlabel("face-found rate (bar colour: audio status)")
    else:
        left.hist(rate, bins=np.linspace(0, 1, 21), color="#377eb8")
        left.set_xlabel("face-found rate")
        left.set_ylabel("videos")
    if len(qa):
        from matplotlib.patches import Patch

        left.axvline(LOW_FACE_RATE, color="red", ls="--", lw=1, label=f"flag threshold ({LOW_FACE_RATE:g})")
        handles = [left.get_legend_handles_labels()[0][0]]
        if len(qa) <= QA_MAX_BARS:
            handles += [Patch(color=AUDIO_COLOURS.get(s, "#999999"), label=f"audio {s}") for s in dict.fromkeys(status)]
        left.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4,
                    frameon=False)
        left.set_title(f"face found per video ({int((rate < LOW_FACE_RATE).sum())} of {len(qa)} below threshold)",
                       fontsize=10)
    counts = status.value_counts()
    right.bar(range(len(counts)), counts.to_numpy(), color=[AUDIO_COLOURS.get(s, "#999999") for s in counts.index])
    right.set_xticks(range(len(counts)), counts.index, fontsize=9)
    for i, c in enumerate(counts.to_numpy()):
        right.text(i, c, str(int(c)), ha="center", va="bottom", fontsize=9)
    right.set_ylabel("videos")
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    present = qa["audio_present"].astype(str).str.lower().isin(["true", "1"]).sum() if "audio_present" in qa else 0
    right.set_title(f"audio status (audio present in {present} of {len(qa)})", fontsize=10)
    if "au_backend" in qa and len(qa):  # which estimator produced the AUs, pose and gaze
        used = qa["au_backend"].astype(str).replace("", "NA").value_counts()
        fig.suptitle("action units: " + ", ".join(f"{b} backend ({n} of {len(qa)} videos)" for b, n in used.items()),
                     fontsize=10)
    return save_figure(fig, out)
