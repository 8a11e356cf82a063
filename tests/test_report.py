"""Tests for facevox.report: bootstrap intervals, plots, the run card, and the report CLI."""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import subprocess
from importlib import metadata

import numpy as np
import pandas as pd
import pytest

from facevox.cli.report import register
from facevox.errors import FacevoxError
from facevox.report import bootstrap, plots, run_card
from facevox.training.metrics import ccc, classification_metrics, regression_metrics

CLASSES = ["depression", "normal"]


# --------------------------------------------------------------------------- bootstrap machinery
def test_resample_counts_draw_with_replacement_reproducibly():
    counts = bootstrap.resample_counts(7, 50, seed=3)
    assert counts.shape == (50, 7) and (counts.sum(1) == 7).all() and counts.min() >= 0
    assert (counts == bootstrap.resample_counts(7, 50, seed=3)).all()
    assert (counts != bootstrap.resample_counts(7, 50, seed=4)).any()
    assert (counts.max(1) > 1).any()  # some video drawn twice: with replacement
    assert bootstrap.resample_counts(0, 5, seed=0).shape == (5, 0)


def _random_classification(rng, n, classes):
    return rng.choice(classes, n), rng.choice(classes, n)


@pytest.mark.parametrize("classes", [CLASSES, ["a", "b", "c"]])
def test_confusion_metrics_equal_facevox_metrics(classes):
    rng = np.random.default_rng(0)
    truth, pred = _random_classification(rng, 60, classes)
    pred[pred == classes[-1]] = classes[0]  # a class never predicted: zero_division cases
    k = len(classes)
    cm = np.zeros((k, k))
    for t, p in zip(truth, pred):
        cm[classes.index(t), classes.index(p)] += 1
    expected = classification_metrics(truth, pred, np.zeros(60), classes, classes[0])
    for metric in bootstrap.CLASSIFICATION_STATS:
        assert bootstrap.confusion_metrics(cm, metric) == pytest.approx(expected[metric], abs=1e-12), metric
    assert math.isnan(bootstrap.confusion_metrics(np.zeros((k, k)), "f1_weighted"))


def test_moment_metrics_equal_facevox_metrics_and_edge_cases():
    rng = np.random.default_rng(1)
    t, p = rng.uniform(0, 45, 30), rng.uniform(0, 45, 30)
    sums = bootstrap.moment_rows(t, p).sum(0)
    expected = regression_metrics(t, p)
    for metric in bootstrap.REGRESSION_STATS:
        assert bootstrap.moment_metrics(sums, metric) == pytest.approx(expected[metric], rel=1e-9), metric
    const = bootstrap.moment_rows(t, np.full(30, 3.0)).sum(0)
    assert math.isnan(bootstrap.moment_metrics(const, "pcc"))
    assert bootstrap.moment_metrics(const, "ccc") == pytest.approx(0)
    same = bootstrap.moment_rows(np.full(5, 2.0), np.full(5, 2.0)).sum(0)
    assert bootstrap.moment_metrics(same, "ccc") == 1.0  # identical constants, as facevox.training.metrics.ccc
    one = bootstrap.moment_rows(t[:1], p[:1]).sum(0)
    assert math.isnan(bootstrap.moment_metrics(one, "ccc")) and bootstrap.moment_metrics(one, "mae") > 0


def _cls_table(truth, pred, videos=None, prob=None):
    n = len(truth)
    return pd.DataFrame({"split": "test", "video_id": videos or [f"v{i:03d}" for i in range(n)], "label": truth,
                         "predicted": pred, "prob_positive": prob if prob is not None else np.linspace(0, 1, n)})


def test_resampled_metric_equals_metric_on_repeated_rows():
    """A resample's value is the metric of the drawn videos, duplicates counted."""
    rng = np.random.default_rng(2)
    truth, pred = _random_classification(rng, 25, CLASSES)
    table = _cls_table(truth, pred)
    counts = bootstrap.resample_counts(25, 3, seed=9)
    stats = bootstrap.video_stats(table, "classification", "f1_weighted", sorted(table["video_id"]), CLASSES)
    got = bootstrap.metric_from_stats(counts.astype(float) @ stats, "classification", "f1_weighted", CLASSES)
    for row, value in zip(counts, got):
        idx = np.repeat(np.arange(25), row)
        want = classification_metrics(truth[idx], pred[idx], np.zeros(len(idx)), CLASSES, "depression")
        assert value == pytest.approx(want["f1_weighted"])


# --------------------------------------------------------------------------- bootstrap_ci known cases
def test_bootstrap_ci_contains_true_accuracy():
    """400 videos, each predicted correctly with probability 0.8: the population accuracy
    is 0.8 and the 95 % interval's width is about 2 * 1.96 * sqrt(0.8 * 0.2 / 400) = 0.078."""
    rng = np.random.default_rng(11)
    truth = rng.choice(CLASSES, 400)
    wrong = rng.random(400) >= 0.8
    pred = np.where(wrong, np.where(truth == CLASSES[0], CLASSES[1], CLASSES[0]), truth)
    ci = bootstrap.bootstrap_ci([_cls_table(truth, pred)], "classification", "accuracy", classes=CLASSES,
                             resamples=1000, seed=0)
    assert ci["estimate"] == pytest.approx(1 - wrong.mean())
    assert ci["low"] < 0.8 < ci["high"]
    assert ci["high"] - ci["low"] == pytest.approx(0.078, abs=0.015)
    assert (ci["valid"], ci["videos"], ci["seeds"], ci["resamples"]) == (1000, 400, 1, 1000)


def test_bootstrap_ci_degenerate_cases_are_exact():
    truth = np.array(CLASSES * 10)
    perfect = bootstrap.bootstrap_ci([_cls_table(truth, truth)], "classification", "f1_weighted", resamples=100)
    assert (perfect["low"], perfect["estimate"], perfect["high"]) == (1.0, 1.0, 1.0)
    t = np.arange(30, dtype=float)
    table = pd.DataFrame({"split": "test", "video_id": [f"v{i}" for i in range(30)], "score_true": t,
                          "score_pred": t + 2.0})
    bias = bootstrap.bootstrap_ci([table], "regression", "mae", resamples=100)
    assert bias["low"] == pytest.approx(2.0) and bias["high"] == pytest.approx(2.0)


def test_bootstrap_ci_reproducible_by_seed_and_paired_over_seeds():
    rng = np.random.default_rng(5)
    truth, pred = _random_classification(rng, 80, CLASSES)
    table = _cls_table(truth, pred)
    args = dict(task="classification", metric="f1_weighted", classes=CLASSES, resamples=300)
    a = bootstrap.bootstrap_ci([table], seed=1, **args)
    assert a == bootstrap.bootstrap_ci([table], seed=1, **args)
    assert (a["low"], a["high"]) != (lambda b: (b["low"], b["high"]))(bootstrap.bootstrap_ci([table], seed=2, **args))
    # two identical seeds: the same drawn videos for both, so the seed mean is unchanged
    both = bootstrap.bootstrap_ci([table, table.sample(frac=1, random_state=0)], seed=1, **args)
    assert (both["low"], both["high"], both["estimate"]) == pytest.approx((a["low"], a["high"], a["estimate"]))
    assert both["seeds"] == 2


def test_bootstrap_ci_seed_mean_and_unpredicted_videos():
    rng = np.random.default_rng(6)
    truth, pred = _random_classification(rng, 50, CLASSES)
    t0 = _cls_table(truth, pred)
    t1 = t0.iloc[5:]  # seed 1 left 5 videos unpredicted
    ci = bootstrap.bootstrap_ci([t0, t1], "classification", "accuracy", classes=CLASSES, resamples=200)
    acc0 = (t0["label"] == t0["predicted"]).mean()
    acc1 = (t1["label"] == t1["predicted"]).mean()
    assert ci["estimate"] == pytest.approx((acc0 + acc1) / 2)
    assert ci["videos"] == 50


def test_bootstrap_ci_continuous_long_and_wide_agree():
    rng = np.random.default_rng(7)
    rows = []
    for v in range(6):
        for dim in ("arousal", "valence"):
            tt = rng.normal(0, 0.3, 40)
            rows.append(pd.DataFrame({"split": "test", "video_id": f"c{v}", "dimension": dim, "true": tt,
                                      "pred": 0.5 * tt + rng.normal(0, 0.2, 40)}))
    long = pd.concat(rows, ignore_index=True)
    a = long[long["dimension"] == "arousal"].reset_index(drop=True)
    va = long[long["dimension"] == "valence"].reset_index(drop=True)
    wide = pd.DataFrame({"split": "test", "video_id": a["video_id"], "arousal_true": a["true"],
                         "arousal_pred": a["pred"], "valence_true": va["true"], "valence_pred": va["pred"]})
    ci_long = bootstrap.bootstrap_ci([long], "continuous", "ccc_arousal", resamples=200)
    ci_wide = bootstrap.bootstrap_ci([wide], "continuous", "ccc_arousal", resamples=200)
    assert ci_long == pytest.approx(ci_wide)
    assert ci_long["estimate"] == pytest.approx(ccc(a["true"], a["pred"]))  # pooled over the steps
    assert ci_long["low"] < ci_long["estimate"] < ci_long["high"]
    with pytest.raises(FacevoxError, match="ccc_<dimension>"):
        bootstrap.bootstrap_ci([long], "continuous", "mae")


def test_bootstrap_ci_without_videos_is_undefined():
    empty = _cls_table([], [])
    ci = bootstrap.bootstrap_ci([empty], "classification", "f1_weighted", classes=CLASSES, resamples=10)
    assert ci["valid"] == 0 and math.isnan(ci["low"]) and math.isnan(ci["estimate"])


# --------------------------------------------------------------------------- plots
def _png_facts(path):
    import matplotlib.image

    img = matplotlib.image.imread(path)
    rgb = img[..., :3]
    non_white = (rgb < 0.95).any(-1).mean()
    colours = len(np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    return img.shape, non_white, colours


def _assert_real_png(path, width_in, height_in=None, min_ink=0.02, min_colours=20):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (h, w, _), ink, colours = _png_facts(path)
    assert w == round(width_in * plots.FIG_DPI)
    if height_in is not None:
        assert h == round(height_in * plots.FIG_DPI)
    assert ink > min_ink and colours > min_colours, (ink, colours)


def _write_model(tmp_path, model="stst", task="classification", seeds=(0, 1), n=30, history=True):
    rng = np.random.default_rng(0)
    metrics, preds = [], []
    for seed in seeds:
        if task == "classification":
            truth, pred = _random_classification(rng, n, CLASSES)
            table = _cls_table(list(truth), list(pred), prob=rng.random(n))
            splits = {"test": classification_metrics(truth, pred, table["prob_positive"], CLASSES, "depression")}
        else:
            t = rng.uniform(0, 40, n)
            table = pd.DataFrame({"split": "test", "video_id": [f"v{i}" for i in range(n)], "score_true": t,
                                  "score_pred": t + rng.normal(0, 5, n)})
            splits = {"test": regression_metrics(t, table["score_pred"])}
        hist = ([{"epoch": e, "train_loss": 1 / e, "dev_score": 0.5 + 0.02 * e} for e in range(1, 6)] if history
                else [{"epoch": 1, "train_loss": math.nan}])
        rec = {"model": model, "seed": seed, "task": task, "classes": CLASSES, "positive": "depression",
               "best_epoch": 4, "history": hist, "splits": splits}
        metrics.append(tmp_path / f"{model}_seed{seed}.json")
        metrics[-1].write_text(json.dumps(rec))
        preds.append(tmp_path / f"{model}_seed{seed}.parquet")
        table.to_parquet(preds[-1])
    return metrics, preds


def test_classification_plots(tmp_path):
    metrics, preds = _write_model(tmp_path)
    written = plots.model_plots(metrics, preds, tmp_path / "plots")
    assert [p.name for p in written] == ["confusion.png", "roc.png", "training.png"]
    _assert_real_png(written[0], 5.2, 4.4)
    _assert_real_png(written[1], 5.5, 4.2)
    _assert_real_png(written[2], 9.0, 4.0)  # loss and development score side by side


def test_sklearn_model_has_no_training_plot_and_empty_split_says_why(tmp_path):
    metrics, preds = _write_model(tmp_path, model="lr", seeds=(0,), n=0, history=False)
    rec = json.loads(metrics[0].read_text())
    rec["splits"]["test"]["unpredicted"] = ["a", "b"]
    metrics[0].write_text(json.dumps(rec))
    written = plots.model_plots(metrics, preds, tmp_path / "plots")
    assert [p.name for p in written] == ["confusion.png", "roc.png"]
    for path in written:  # a message box, not an empty canvas
        _assert_real_png(path, 5.2 if path.name == "confusion.png" else 5.5, min_ink=0.005, min_colours=5)


def test_regression_and_continuous_plots(tmp_path):
    metrics, preds = _write_model(tmp_path, model="sta_drn", task="regression")
    written = plots.model_plots(metrics, preds, tmp_path / "reg")
    assert [p.name for p in written] == ["scatter.png", "training.png"]
    _assert_real_png(written[0], 5.0, 4.6)
    rec = {"model": "shallow_b", "seed": 0, "task": "continuous", "history": [],
           "splits": {"test": {"ccc": {"arousal": 0.4, "valence": 0.3}}}}
    (tmp_path / "c.json").write_text(json.dumps(rec))
    pd.DataFrame({"split": ["test"], "video_id": ["c"], "dimension": ["arousal"], "true": [0.1],
                  "pred": [0.2]}).to_parquet(tmp_path / "c.parquet")
    written = plots.model_plots([tmp_path / "c.json"], [tmp_path / "c.parquet"], tmp_path / "cont")
    assert [p.name for p in written] == ["ccc.png"]
    _assert_real_png(written[0], 5.0, 4.0, min_colours=5)


def test_cross_validation_curves_pool_each_seed_s_folds():
    """Under cross-validation the ROC / scatter curves are per seed over the pooled held-out rows of every fold."""
    records = [{"seed": s, "fold": f, "fold_name": f"fold{f}", "model": "lr", "_path": f"lr/fold{f}/seed{s}.json"}
               for s in (0, 1) for f in (0, 1)]
    tables = [pd.DataFrame({"split": "test", "video_id": [f"v{f}a", f"v{f}b"], "prob_positive": [0.1 * s, 0.2]})
              for s in (0, 1) for f in (0, 1)]
    pooled, pooled_tables = plots.pooled_out_of_fold(records, tables)
    assert [r["seed"] for r in pooled] == [0, 1] and all(r["pooled"] for r in pooled)
    assert list(pooled_tables[1]["video_id"]) == ["v0a", "v0b", "v1a", "v1b"]
    # as the tables pool them: a seed without every fold is left out
    pooled, pooled_tables = plots.pooled_out_of_fold(records[:3], tables[:3])
    assert [r["seed"] for r in pooled] == [0] and list(pooled_tables[0]["video_id"]) == ["v0a", "v0b", "v1a", "v1b"]
    assert plots.run_label(pooled[0]) == "seed 0, pooled out of fold"
    assert plots.run_label(records[3]) == "fold1 seed 1"
    fixed = [{"seed": 0, "model": "lr"}]
    assert plots.pooled_out_of_fold(fixed, tables[:1]) == (fixed, tables[:1])


def test_model_plots_rejects_mixed_models(tmp_path):
    a, pa = _write_model(tmp_path, model="stst", seeds=(0,))
    b, pb = _write_model(tmp_path, model="jamfn", seeds=(0,))
    with pytest.raises(FacevoxError, match="must be of one model"):
        plots.model_plots(a + b, pa + pb, tmp_path / "x")


@pytest.mark.parametrize("n", [5, 80], ids=["bars", "histogram"])
def test_qa_plot(tmp_path, n):
    rng = np.random.default_rng(n)
    qa = pd.DataFrame({"video_id": [f"video_{i}" for i in range(n)], "face_found_rate": rng.random(n).round(4),
                       "audio_present": rng.random(n) > 0.2,
                       "audio_status": rng.choice(["ok", "silent", "no_audio_stream"], n), "flags": "",
                       "au_backend": ["landmarks"] + ["mediapipe"] * (n - 1)})
    qa.to_csv(tmp_path / "qa.tsv", sep="\t", index=False)
    out = plots.qa_plot(tmp_path / "qa.tsv", tmp_path / "qa.png")
    _assert_real_png(out, 10.0)


# --------------------------------------------------------------------------- run card
def _benchmarks(root):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (root / "train" / "stst").mkdir(parents=True)
    (root / "train" / "stst" / "seed0.tsv").write_text(header + "1.5\t0:00:01\t100.0\t0\t0\t0\t0\t0\t0\t1.0\n")
    (root / "train" / "stst" / "seed1.tsv").write_text(header + "2.5\t0:00:02\t300.0\t0\t0\t0\t0\t0\t0\t2.0\n")
    (root / "qa.tsv").write_text(header + "0.25\t0:00:00\t50.0\t0\t0\t0\t0\t0\t0\t0.2\n")


def test_run_card_fields(tmp_path):
    git = shutil.which("git")
    repo = tmp_path / "repo"
    repo.mkdir()
    commit = None
    if git:
        def run(*args):
            return subprocess.run([git, "-C", str(repo), *args], check=True, capture_output=True, text=True)

        run("init", "-q")
        (repo / "f.txt").write_text("x")
        run("add", "f.txt")
        run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
        commit = run("rev-parse", "HEAD").stdout.strip()
    _benchmarks(tmp_path / "bench")
    metrics, _ = _write_model(tmp_path, seeds=(0,))
    config = {"models": {"run": ["stst"], "seeds": [0]}, "report": {"bootstrap_seed": 0}}
    rec = json.loads(metrics[0].read_text())
    rec |= {"device": "cpu", "device_requested": "auto",
            "warnings": ["device auto: no CUDA GPU visible, trained on the CPU"],
            "left_out": [{"split": "train", "reason": "max_missing_fraction", "unit": "slices", "count": 8,
                          "videos": {"v1": 5, "v2": 3}}]}
    metrics[0].write_text(json.dumps(rec))
    study = ["split dev: no video - training keeps the last epoch, no early stopping (give some subjects split dev)"]
    card = run_card.run_card(tmp_path / "card.json", config, tmp_path / "bench", metrics, root=repo,
                             study_warnings=study)
    assert json.loads((tmp_path / "card.json").read_text()) == card
    assert card["format"] == "facevox-run-card/1"
    assert card["git"] == {"commit": commit, "dirty": False if git else None}
    assert card["config_sha256"] == hashlib.sha256(
        json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert card["config_sha256"] != run_card.config_hash({**config, "report": {"bootstrap_seed": 1}})
    assert card["config"] == config
    assert card["packages"]["numpy"] == metadata.version("numpy")
    assert card["packages"]["matplotlib"] == metadata.version("matplotlib")
    assert card["hardware"]["cpu"] and card["hardware"]["cpu_count"] >= 1
    assert isinstance(card["hardware"]["gpus"], list)
    assert card["stages"] == {"qa": {"jobs": 1, "wall_seconds": 0.25, "cpu_seconds": 0.2, "max_rss_mb": 50.0},
                              "train": {"jobs": 2, "wall_seconds": 4.0, "cpu_seconds": 3.0, "max_rss_mb": 300.0}}
    assert card["total_job_wall_seconds"] == 4.25
    assert card["trainings"] == [{"model": "stst", "seed": 0, "task": "classification", "device": "cpu",
                                  "device_requested": "auto", "train_seconds": None, "best_epoch": 4,
                                  "n_parameters": None,
                                  "warnings": ["device auto: no CUDA GPU visible, trained on the CPU"],
                                  "left_out": [{"split": "train", "reason": "max_missing_fraction",
                                                "unit": "slices", "count": 8}]}]
    assert card["study_warnings"] == study
    assert card["training_warnings"] == {"device auto: no CUDA GPU visible, trained on the CPU": ["stst/seed0"]}
    assert run_card.git_state(tmp_path / "bench") == {"commit": None, "dirty": None}  # not a git checkout


def test_run_card_names_each_training_s_fold_and_sweep_variant(tmp_path):
    metrics, _ = _write_model(tmp_path, seeds=(0,))
    rec = json.loads(metrics[0].read_text())
    paths = []
    for fold in (0, 1):
        path = tmp_path / f"fold{fold}.json"
        path.write_text(json.dumps(rec | {"name": "stst@lr=0.0001", "variant": {"lr": 0.0001}, "sweep": True,
                                          "select_by": "f1_weighted", "fold": fold, "fold_name": f"fold{fold}", "warnings": ["w"],
                                          "cv": {"scheme": "kfold", "folds": 2, "seed": 0, "subjects": 4,
                                                 "test_subjects": [f"s{fold}", f"s{fold + 2}"]}}))
        paths.append(path)
    card = run_card.run_card(tmp_path / "card.json", {}, tmp_path / "none", paths, root=tmp_path)
    assert [(t["name"], t["fold"], t["seed"]) for t in card["trainings"]] == [("stst@lr=0.0001", "fold0", 0),
                                                                            ("stst@lr=0.0001", "fold1", 0)]
    assert card["training_warnings"] == {"w": ["stst@lr=0.0001/fold0/seed0", "stst@lr=0.0001/fold1/seed0"]}


# --------------------------------------------------------------------------- CLI
@pytest.fixture()
def parser():
    ap = argparse.ArgumentParser(prog="facevox")
    sub = ap.add_subparsers(dest="command", required=True)

    def command(name, func, helptext, *positionals, params=False):  # the shape of facevox.cli's helper
        p = sub.add_parser(name, help=helptext)
        for arg in positionals:
            p.add_argument(arg)
        p.set_defaults(func=func)
        return p

    register(sub, command)
    return ap


def test_cli_tables_and_plots(parser, tmp_path):
    metrics, preds = _write_model(tmp_path)
    args = parser.parse_args(["tables", str(tmp_path / "t"), "--metrics", *map(str, metrics), "--predictions",
                              *map(str, preds), "--resamples", "50", "--seed", "3", "--order", "jamfn,stst"])
    args.func(args)
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [
        "classification.csv", "classification.html", "classification.md", "classification.tex"]
    csv = pd.read_csv(tmp_path / "t" / "classification.csv")
    assert csv.loc[0, "f1_weighted_ci_resamples"] == 50 and csv.loc[0, "f1_weighted_ci_seed"] == 3
    args = parser.parse_args(["plots", str(tmp_path / "p"), "--metrics", *map(str, metrics),
                              "--predictions", *map(str, preds)])
    args.func(args)
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["confusion.png", "roc.png", "training.png"]


def test_cli_run_card_rejects_bad_config(parser, tmp_path):
    args = parser.parse_args(["run-card", str(tmp_path / "c.json"), "--config-json", "[1]"])
    with pytest.raises(FacevoxError, match="JSON object"):
        args.func(args)
    args = parser.parse_args(["run-card", str(tmp_path / "c.json"), "--config-json", "{}",
                              "--study-warnings-json", "[oops"])
    with pytest.raises(FacevoxError, match="--study-warnings-json is not valid JSON"):
        args.func(args)
    args = parser.parse_args(["run-card", str(tmp_path / "c.json"), "--config-json", "{}", "--qa", "qa.tsv"])
    with pytest.raises(FacevoxError, match="--qa and --sheet go together"):
        args.func(args)


def test_shallow_cnn_filter_and_attribution_heatmaps(tmp_path):
    rng = np.random.default_rng(0)
    features, lags = [f"AU{i:02d}_r_mean" for i in range(6)], list(range(-5, 5))
    explain = {"features": features, "lags": lags,
               "filters": {d: rng.normal(size=(6, 10)).tolist() for d in ("arousal", "valence")},
               "attributions": {"arousal": {"video_id": "v", "steps": [0, 5, 9], "centre_s": [0.0, 0.5, 0.9],
                                            "values": rng.normal(size=(3, 6, 10)).tolist()}}}
    rec = {"model": "shallow_b", "seed": 0, "task": "continuous", "history": [], "explain": explain,
           "splits": {"test": {"ccc": {"arousal": 0.4, "valence": 0.3}}}}
    (tmp_path / "c.json").write_text(json.dumps(rec))
    pd.DataFrame({"split": ["test"], "video_id": ["v"], "dimension": ["arousal"], "true": [0.1],
                  "pred": [0.2]}).to_parquet(tmp_path / "c.parquet")
    written = plots.model_plots([tmp_path / "c.json"], [tmp_path / "c.parquet"], tmp_path / "cont")
    assert [p.name for p in written] == ["ccc.png", "filter.png", "attributions.png"]
    _assert_real_png(written[1], 12.0, 7.0)   # one heatmap per dimension
    _assert_real_png(written[2], 15.0, 7.0)   # three time steps


# --------------------------------------------------------------------------- paired bootstrap
def _reg_table(truth, pred, videos=None):
    return pd.DataFrame({"split": "test", "video_id": videos or [f"v{i:03d}" for i in range(len(truth))],
                         "score_true": truth, "score_pred": pred})


def test_paired_bootstrap_a_better_on_every_video_excludes_zero():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0, 45, 60)
    sign = rng.choice([-1.0, 1.0], 60)
    err_a, err_b = rng.uniform(0, 1.5, 60), rng.uniform(2, 5, 60)  # A's error is smaller on every video
    a = {0: _reg_table(truth, truth + sign * err_a), 1: _reg_table(truth, truth - sign * err_a)}
    b = {0: _reg_table(truth, truth + sign * err_b), 1: _reg_table(truth, truth + err_b)}
    out = bootstrap.paired_bootstrap(a, b, "regression", "mae", resamples=500, seed=0)
    assert out["difference"] == pytest.approx(err_a.mean() - err_b.mean())  # same |error| for both A seeds
    assert out["high"] < 0 and out["significant"] and out["better"] == "a"
    assert out["p_value"] == pytest.approx(2 / 501)  # no resample reaches 0: the smallest p of 500 resamples
    assert (out["seeds"], out["videos"], out["valid"]) == ([0, 1], 60, 500)
    # reversed roles: the same interval mirrored, B is the better one
    rev = bootstrap.paired_bootstrap(b, a, "regression", "mae", resamples=500, seed=0)
    assert (rev["low"], rev["high"]) == pytest.approx((-out["high"], -out["low"]))
    assert rev["better"] == "b"
    # classification: A right on every video, B on 70 %: F1 difference > 0
    truth_c = np.array(CLASSES * 20)
    flip = np.where(truth_c == CLASSES[0], CLASSES[1], CLASSES[0])
    pred_b = np.where(np.arange(40) % 10 < 7, truth_c, flip)
    cls = bootstrap.paired_bootstrap({0: _cls_table(truth_c, truth_c)}, {0: _cls_table(truth_c, pred_b)},
                                     "classification", "accuracy", classes=CLASSES, resamples=300)
    assert cls["difference"] == pytest.approx(0.3) and cls["low"] > 0 and cls["better"] == "a"


def test_paired_bootstrap_identical_models_give_p_one():
    rng = np.random.default_rng(4)
    truth, pred = _random_classification(rng, 50, CLASSES)
    table = _cls_table(truth, pred)
    out = bootstrap.paired_bootstrap({0: table, 1: table}, {0: table.sample(frac=1, random_state=1), 1: table},
                                     "classification", "f1_weighted", classes=CLASSES, resamples=400)
    assert out["p_value"] == 1.0 and (out["difference"], out["low"], out["high"]) == (0.0, 0.0, 0.0)
    assert not out["significant"] and out["better"] == ""


def test_paired_bootstrap_pairs_the_same_seeds_and_videos():
    t = np.arange(20, dtype=float)
    a = {0: _reg_table(t, t + 1), 1: _reg_table(t, t + 1), 2: _reg_table(t, t + 9)}
    b = {1: _reg_table(t[:15], t[:15] + 2), 2: _reg_table(t[:15], t[:15] + 10), 3: _reg_table(t, t)}
    out = bootstrap.paired_bootstrap(a, b, "regression", "mae", resamples=50)
    # seeds 1 and 2 only, videos v000..v014 only (B's union over its seeds):
    # A (1 + 9) / 2 - B (2 + 10) / 2 = -1 on every resample
    assert out["seeds"] == [1, 2] and out["videos"] == 15
    assert (out["difference"], out["low"], out["high"]) == pytest.approx((-1.0, -1.0, -1.0))
    none = bootstrap.paired_bootstrap({0: a[0]}, {3: b[3]}, "regression", "mae", resamples=50)
    assert none["seeds"] == [] and math.isnan(none["difference"]) and not none["significant"]
