"""Tests for facevox.report.tables and facevox.report.table_files: metric tables from hand-made
metrics JSONs (all three tasks), exact cell strings, ordering, the separate "reported" columns,
LaTeX sanity."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facevox.errors import FacevoxError, InputError
from facevox.report import table_files, table_inputs, tables
from facevox.report.bootstrap import bootstrap_ci

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = ROOT / "resources" / "reference_results.yaml"
CLASSES = ["depression", "normal"]


# --------------------------------------------------------------------------- fixtures
def classification_json(model, seed, test, variant=None, n=10):
    split = {"n": n, "unpredicted": [], **test} if test else {"n": 0, "accuracy": math.nan,
                                                              "unpredicted": ["a", "b"]}
    rec = {"model": model, "seed": seed, "family": "sequence", "task": "classification", "classes": CLASSES,
           "positive": "depression", "best_epoch": 1, "n_parameters": 123, "history": [],
           "splits": {"test": split, "dev": {"n": n, "accuracy": 0.5}}}
    if variant is not None:
        rec["variant"] = variant
    return rec


def write(path: Path, rec: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))  # NaN written as NaN, as facevox.io.write_json does
    return path


def cls_metrics(acc, f1, auc=0.8):
    return {"accuracy": acc, "precision_weighted": acc, "recall_weighted": acc, "f1_weighted": f1,
            "f1_macro": f1, "auc": auc}


@pytest.fixture()
def classification_files(tmp_path):
    """stst: 3 seeds (F1 0.70/0.72/0.74, AUC NaN in one), its sinusoidal variant (1 seed),
    lr: 1 seed, jamfn: 2 seeds without any predicted test video."""
    recs = [classification_json("stst", s, cls_metrics(a, f, auc)) for s, a, f, auc in
            [(0, 0.70, 0.70, 0.80), (1, 0.71, 0.72, math.nan), (2, 0.72, 0.74, 0.90)]]
    recs.append(classification_json("stst", 0, cls_metrics(0.6, 0.65), variant={"pos_encoding": "sinusoidal"}))
    recs.append(classification_json("lr", 0, cls_metrics(0.707, 0.5)))
    recs += [classification_json("jamfn", s, None) for s in (0, 1)]
    return [write(tmp_path / "metrics" / f"{r['model']}{'_v' if 'variant' in r else ''}" / f"seed{r['seed']}.json",
                  r) for r in recs]


def md_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| Model"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0]] = cells
    return rows


def md_header(text: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith("| Model"))
    return [c.strip() for c in line.strip("|").split(" | ")]


# --------------------------------------------------------------------------- cells
@pytest.mark.parametrize("values, metric, expected", [
    ([0.6947, 0.7070, 0.7193], tables.METRICS["classification"][0], "70.70 \u00b1 1.23 (n=3)"),
    ([0.7070], tables.METRICS["classification"][0], "70.70 \u00b1 \u2013 (n=1)"),
    ([math.nan, 0.7070], tables.METRICS["classification"][0], "70.70 \u00b1 \u2013 (n=1)"),
    ([], tables.METRICS["classification"][0], "\u2013"),
    ([0.7, 0.8], tables.METRICS["classification"][5], "0.750 \u00b1 0.071 (n=2)"),  # AUC: fraction, 3 decimals
    ([6.0, 7.0], tables.METRICS["regression"][0], "6.50 \u00b1 0.71 (n=2)"),  # MAE: points, 2 decimals
], ids=["three-seeds", "one-seed", "nan-left-out", "none", "auc", "mae"])
def test_format_cell(values, metric, expected):
    assert table_files.format_cell(tables.summarise(values), metric) == expected


def test_format_cell_latex_and_sd_is_sample_sd():
    s = tables.summarise([0.70, 0.72, 0.74])
    assert s.n == 3 and s.mean == pytest.approx(0.72) and s.sd == pytest.approx(0.02)  # ddof 1 (ddof 0: 0.0163)
    acc = tables.METRICS["classification"][0]
    assert table_files.format_cell(s, acc, latex=True) == r"72.00 $\pm$ 2.00 (n=3)"
    assert table_files.format_cell(tables.summarise([0.7]), acc, latex=True) == r"70.00 $\pm$ -- (n=1)"


@pytest.mark.parametrize("overrides, label", [
    (None, ""),
    ({"pos_encoding": "sinusoidal"}, "pos_encoding=sinusoidal"),
    ({"use_wspp": False, "use_cmp": False}, "use_cmp=false, use_wspp=false"),
    ({"kernel_sizes": [3, 5]}, "kernel_sizes=[3, 5]"),
    ({"lr": 1.0e-5}, "lr=1e-05"),
    ("my label", "my label"),
])
def test_variant_label(overrides, label):
    assert table_inputs.variant_label(overrides) == label


def test_table_tasks_from_model_families():
    assert tables.table_tasks(["sta_drn", "lr", "stst"]) == ["classification", "regression"]
    assert tables.table_tasks(["shallow_b"]) == ["continuous"]


# --------------------------------------------------------------------------- classification table
def test_classification_table_cells_order_and_reported(classification_files, tmp_path):
    out = tmp_path / "tables"
    table_files.write_tables(classification_files, [], REFERENCES, out, order=["stst", "lr"])
    assert sorted(p.name for p in out.iterdir()) == ["classification.csv", "classification.html",
                                                    "classification.md", "classification.tex"]
    text = (out / "classification.md").read_text()
    header = md_header(text)
    assert header[:9] == ["Model", "Seeds", "Videos", "Acc", "P (weighted)", "R (weighted)", "F1 (weighted)",
                          "F1 (macro)", "AUC"]
    # reported: own columns after ours, labelled with data set and split, plus the source
    assert header[9:] == ["Acc [reported D-Vlog test]", "P (weighted) [reported D-Vlog test]",
                          "R (weighted) [reported D-Vlog test]", "F1 (weighted) [reported D-Vlog test]", "Source"]
    rows = md_rows(text)
    # order: models.run order (stst, lr), base row before its variant, unlisted models (jamfn) last
    assert list(rows) == ["STST", "STST [pos_encoding=sinusoidal]", "LR", "JAMFN"]
    stst = dict(zip(header, rows["STST"]))
    assert stst["Seeds"] == "3" and stst["Videos"] == "10"
    assert stst["Acc"] == "71.00 \u00b1 1.00 (n=3)"
    assert stst["F1 (weighted)"] == "72.00 \u00b1 2.00 (n=3)"
    assert stst["AUC"] == "0.850 \u00b1 0.071 (n=2)"  # the NaN seed is left out of n
    assert stst["F1 (weighted) [reported D-Vlog test]"] == "75.00"
    assert stst["Acc [reported D-Vlog test]"] == "70.70"
    assert stst["Source"] == "stst_tao2023.txt Tables 2 and 5"
    variant = dict(zip(header, rows["STST [pos_encoding=sinusoidal]"]))
    assert variant["Acc"] == "60.00 \u00b1 \u2013 (n=1)"
    assert variant["Acc [reported D-Vlog test]"] == "61.61"  # STST Table 3
    lr = dict(zip(header, rows["LR"]))
    assert lr["Acc"] == "70.70 \u00b1 \u2013 (n=1)" and lr["Acc [reported D-Vlog test]"] == "\u2013"
    jamfn = dict(zip(header, rows["JAMFN"]))
    # no predicted video: our cells empty, the reported number still shown beside them
    assert jamfn["F1 (weighted)"] == "\u2013" and jamfn["F1 (weighted) [reported D-Vlog test]"] == "68.25"
    assert jamfn["Videos"] == "0 (+2 unpred.)"
    assert not [h for h in header if "CI" in h]  # no predictions given -> no CI column


def test_reported_numbers_never_enter_our_statistics(classification_files, tmp_path):
    table_files.write_tables(classification_files, [], REFERENCES, tmp_path, order=["stst", "lr"])
    csv = pd.read_csv(tmp_path / "classification.csv", keep_default_na=True).set_index("label")
    assert csv.loc["STST", "f1_weighted_mean"] == pytest.approx(0.72)
    assert csv.loc["STST", "f1_weighted_sd"] == pytest.approx(0.02)
    assert csv.loc["STST", "f1_weighted_n"] == 3
    assert csv.loc["STST", "f1_weighted_reported_D-Vlog_test"] == pytest.approx(0.75)
    assert csv.loc["JAMFN", "f1_weighted_n"] == 0 and math.isnan(csv.loc["JAMFN", "f1_weighted_mean"])
    assert csv.loc["JAMFN", "f1_weighted_reported_D-Vlog_test"] == pytest.approx(0.6825)
    # without the YAML the same table, minus the reported columns
    table_files.write_tables(classification_files, [], None, tmp_path / "bare", order=["stst", "lr"])
    bare = pd.read_csv(tmp_path / "bare" / "classification.csv").set_index("label")
    assert not [c for c in bare.columns if "reported" in c]
    ours = [c for c in bare.columns if c.endswith(("_mean", "_sd", "_n"))]
    pd.testing.assert_frame_equal(bare[ours], csv[ours])


def test_table_with_bootstrap_ci_from_predictions(tmp_path):
    rng = np.random.default_rng(3)
    videos = [f"v{i}" for i in range(40)]
    truth = rng.choice(CLASSES, 40)
    metrics, preds = [], []
    for seed in range(2):
        pred = np.where(rng.random(40) < 0.75, truth, np.where(truth == CLASSES[0], CLASSES[1], CLASSES[0]))
        table = pd.DataFrame({"split": "test", "video_id": videos, "label": truth, "predicted": pred,
                              "prob_positive": rng.random(40), "n_slices": 1, "votes_positive": 0})
        from facevox.training.metrics import classification_metrics

        m = classification_metrics(table["label"], table["predicted"], table["prob_positive"], CLASSES,
                                   "depression")
        metrics.append(write(tmp_path / "m" / f"seed{seed}.json", classification_json("stst", seed, m, n=40)))
        preds.append(tmp_path / "p" / f"seed{seed}.parquet")
        preds[-1].parent.mkdir(exist_ok=True)
        table.to_parquet(preds[-1])
    out = table_files.write_tables(metrics, preds, None, tmp_path / "t", resamples=200, seed=5)
    row = out["classification"].rows[0]
    direct = bootstrap_ci([pd.read_parquet(p) for p in preds], "classification", "f1_weighted", classes=CLASSES,
                          resamples=200, seed=5)
    assert row.ci["f1_weighted"] == direct
    assert direct["estimate"] == pytest.approx(row.stats["f1_weighted"].mean)  # the cell's mean, recomputed
    assert direct["low"] < direct["estimate"] < direct["high"]
    header = md_header((tmp_path / "t" / "classification.md").read_text())
    assert "F1 (weighted) 95 % CI" in header
    cells = dict(zip(header, md_rows((tmp_path / "t" / "classification.md").read_text())["STST"]))
    assert cells["F1 (weighted) 95 % CI"] == f"[{100 * direct['low']:.2f}, {100 * direct['high']:.2f}]"


# --------------------------------------------------------------------------- regression and continuous
def test_regression_table(tmp_path):
    files = []
    for seed, (mae, rmse, pcc, ccc) in enumerate([(6.0, 8.0, 0.70, 0.60), (7.0, 9.0, 0.72, 0.62)]):
        rec = {"model": "sta_drn", "seed": seed, "task": "regression", "family": "clip", "history": [],
               "splits": {"test": {"n": 50, "mae": mae, "rmse": rmse, "pcc": pcc, "ccc": ccc}}}
        files.append(write(tmp_path / f"sta{seed}.json", rec))
    rec = {"model": "dlga_cnn", "seed": 0, "task": "regression", "history": [], "variant": "use_wspp=false",
           "splits": {"test": {"n": 50, "mae": 7.5, "rmse": 9.5, "pcc": math.nan, "ccc": 0.4}}}
    files.append(write(tmp_path / "dlga.json", rec))
    table_files.write_tables(files, [], REFERENCES, tmp_path / "t", order=["dlga_cnn", "sta_drn"])
    text = (tmp_path / "t" / "regression.md").read_text()
    header = md_header(text)
    assert header[3:7] == ["MAE", "RMSE", "PCC", "CCC"]
    rows = md_rows(text)
    assert list(rows) == ["DLGA-CNN [use_wspp=false]", "STA-DRN"]
    sta = dict(zip(header, rows["STA-DRN"]))
    assert sta["MAE"] == "6.50 \u00b1 0.71 (n=2)" and sta["PCC"] == "0.710 \u00b1 0.014 (n=2)"
    # both AVEC data sets as separate reported columns, printed with the paper's two decimals
    assert sta["RMSE [reported AVEC2013 test]"] == "7.98" and sta["RMSE [reported AVEC2014 test]"] == "7.75"
    assert sta["CCC [reported AVEC2014 test]"] == "0.73"
    dlga = dict(zip(header, rows["DLGA-CNN [use_wspp=false]"]))
    assert dlga["PCC"] == "\u2013" and dlga["RMSE [reported AVEC2013 test]"] == "8.74"  # Table 3, E1
    assert dlga["Source"] == "dlga_cnn_he2021.txt Table 3 (E1); dlga_cnn_he2021.txt Table 4 (E2)"


def test_continuous_table(tmp_path):
    files = [write(tmp_path / f"s{seed}.json",
                   {"model": "shallow_b", "seed": seed, "task": "continuous", "history": [],
                    "splits": {"test": {"n": 4, "ccc": {"valence": v, "arousal": a}}}})
             for seed, (a, v) in enumerate([(0.41, 0.33), (0.45, 0.31)])]
    table_files.write_tables(files, [], REFERENCES, tmp_path / "t")
    text = (tmp_path / "t" / "continuous.md").read_text()
    header = md_header(text)
    assert header == ["Model", "Seeds", "Videos", "CCC arousal", "CCC valence"]  # no reported data: no column
    row = dict(zip(header, md_rows(text)["Shallow CNN B"]))
    assert row["CCC arousal"] == "0.430 \u00b1 0.028 (n=2)" and row["CCC valence"] == "0.320 \u00b1 0.014 (n=2)"


def test_one_table_per_task_and_mismatches(classification_files, tmp_path):
    reg = write(tmp_path / "reg.json", {"model": "sta_drn", "seed": 0, "task": "regression",
                                        "splits": {"test": {"n": 3, "mae": 1.0}}})
    out = table_files.write_tables(classification_files + [reg], [], None, tmp_path / "t")
    assert list(out) == ["classification", "regression"]
    with pytest.raises(FacevoxError, match="metrics of a task without a table"):
        table_files.write_tables([reg], [], None, tmp_path / "u", tasks=["classification"])
    dup = write(tmp_path / "dup.json", classification_json("stst", 0, cls_metrics(0.5, 0.5)))
    with pytest.raises(FacevoxError, match="stst \\[base\\] seed 0 has more than one metrics file"):
        table_files.write_tables(classification_files + [dup], [], None, tmp_path / "v")
    with pytest.raises(FacevoxError, match="1 metrics files but 2 prediction tables"):
        table_files.write_tables([reg], [reg, reg], None, tmp_path / "w")
    with pytest.raises(InputError, match="missing task"):
        table_files.write_tables([write(tmp_path / "bad.json", {"model": "x", "seed": 0, "splits": {}})], [], None,
                            tmp_path / "x")


# --------------------------------------------------------------------------- LaTeX / HTML
def _strip_escaped(text: str) -> str:
    return re.sub(r"\\[{}&%$#_]", "", text)


def test_latex_is_balanced(classification_files, tmp_path):
    table_files.write_tables(classification_files, [], REFERENCES, tmp_path, order=["stst", "lr"])
    tex = (tmp_path / "classification.tex").read_text()
    assert tex.count("\\begin{") == tex.count("\\end{") == 2
    assert tex.index("\\begin{table}") < tex.index("\\begin{tabular}") < tex.index("\\end{tabular}") \
        < tex.index("\\end{table}")
    bare = _strip_escaped(tex)
    depth = 0
    for ch in bare:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    assert bare.count("$") % 2 == 0
    for cmd in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert tex.count(cmd) == 1
    spec = re.search(r"\\begin\{tabular\}\{([a-z]+)\}", tex).group(1)
    body = tex[tex.index("\\toprule"):tex.index("\\bottomrule")]
    rows = [line for line in body.splitlines() if line.endswith("\\\\")]
    assert len(rows) == 2 + 4  # group row, header row, 4 data rows
    for line in rows:
        cells = _strip_escaped(line).count("&") + 1
        spans = sum(int(n) - 1 for n in re.findall(r"\\multicolumn\{(\d+)\}", line))
        assert cells + spans == len(spec), line
    assert "stst\\_tao2023.txt" in tex and "72.00 $\\pm$ 2.00 (n=3)" in tex
    assert "\\multicolumn{4}{c}{reported (D-Vlog test)}" in tex


def test_html_marks_reported_cells(classification_files, tmp_path):
    table_files.write_tables(classification_files, [], REFERENCES, tmp_path, order=["stst", "lr"])
    page = (tmp_path / "classification.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<tr>") == 1 + 4
    assert "<td class='num rep first-rep'>70.70</td>" in page
    assert "72.00 \u00b1 2.00 (n=3)" in page and "never part of our means" in page


# --------------------------------------------------------------------------- references
def test_reference_yaml_values_and_units():
    refs = tables.load_references(REFERENCES)
    get = {(r.model, r.variant, r.dataset, r.metric): r for r in refs}
    assert get[("stst", "", "D-Vlog", "f1_weighted")].value == pytest.approx(0.75)
    assert get[("jamfn", "", "D-Vlog", "precision_weighted")].value == pytest.approx(0.6818)
    assert get[("knn_fusion", "", "D-Vlog", "f1_weighted")].value == pytest.approx(0.5425)
    assert get[("sta_drn", "", "AVEC2014", "rmse")].value == pytest.approx(7.75)
    assert get[("sta_drn", "groups=1, variant=s", "AVEC2013", "mae")].value == pytest.approx(7.97)
    assert get[("dlga_cnn", "", "AVEC2013", "rmse")].value == pytest.approx(8.39)
    assert get[("dlga_cnn", "", "AVEC2014", "mae")].value == pytest.approx(6.51)
    # every D-Vlog baseline row of JAMFN Table 1 that facevox implements
    baselines = {"lr", "svm", "rf", "knn_fusion", "blstm", "tfn", "fusion_concat", "fusion_add", "fusion_multiply",
                 "depression_detector", "jamfn", "stst"}
    assert baselines <= {r.model for r in refs if r.task == "classification" and r.variant == ""}
    assert all(r.source and r.dataset and r.split == "test" for r in refs)
    assert not [r for r in refs if r.task == "continuous"]


@pytest.mark.parametrize("entry, message", [
    ("{model: lr, task: classification, dataset: D, split: test, paper: p, table: t, values: {f1: 50}}",
     "metric 'f1' is not a classification table column"),
    ("{model: lr, task: classification, dataset: D, split: test, paper: p, values: {f1_weighted: 50}}",
     "missing table"),
    ("{model: lr, task: classification, dataset: D, split: test, paper: p, table: t, values: {f1_weighted: x}}",
     "must be a number"),
])
def test_reference_yaml_errors(tmp_path, entry, message):
    path = tmp_path / "refs.yaml"
    path.write_text(f"entries:\n  - {entry}\n")
    with pytest.raises(InputError, match=message):
        tables.load_references(path)


def test_reference_yaml_duplicate(tmp_path):
    entry = "{model: lr, task: classification, dataset: D, split: test, paper: p, table: t%s, values: {auc: 0.5}}"
    path = tmp_path / "refs.yaml"
    path.write_text(f"entries:\n  - {entry % 1}\n  - {entry % 2}\n")
    with pytest.raises(InputError, match="auc of lr \\[base\\] on D test is also given by p t1"):
        tables.load_references(path)


# --------------------------------------------------------------------------- nothing dropped silently
def test_notes_name_unpredicted_videos_left_out_items_and_warnings(tmp_path):
    """'(+1 unpred.)' is backed by a note naming the video and why; every left-out entry of the
    metrics JSON (any split) and every training warning is a note, with the seeds when not all."""
    left = [{"split": "train", "reason": "max_missing_fraction", "unit": "slices", "count": 8,
             "videos": {"v1": 5, "v2": 3}},
            {"split": "test", "reason": "no_slices", "unit": "videos", "count": 1, "videos": {"v9": 1}}]
    files = []
    for seed in (0, 1):
        rec = classification_json("stst", seed, cls_metrics(0.7, 0.7))
        rec["splits"]["test"] |= {"unpredicted": ["v9"], "unpredicted_reasons": {"v9": "no_slices"}}
        rec["left_out"] = left
        rec["warnings"] = ["device auto: no CUDA GPU visible, trained on the CPU"] if seed == 1 else []
        files.append(write(tmp_path / f"stst{seed}.json", rec))
    table_files.write_tables(files, [], REFERENCES, tmp_path / "t", order=["stst"])
    text = (tmp_path / "t" / "classification.md").read_text()
    row = dict(zip(md_header(text), md_rows(text)["STST"]))
    assert row["Videos"] == "10 (+1 unpred.)"
    notes = [line[2:] for line in text.splitlines() if line.startswith("- STST: ")]
    assert notes == [
        "STST: unpredicted in the test split: v9 (no_slices)",
        "STST: left out, train split: 8 slices left out (over models.max_missing_fraction still missing): "
        "v1 (5), v2 (3)",
        "STST: left out, test split: 1 video left out (no slice (shorter than one slice)): v9",
        "STST: warning: device auto: no CUDA GPU visible, trained on the CPU (seed 1)",
    ]
    csv = pd.read_csv(tmp_path / "t" / "classification.csv")
    assert csv.loc[0, "unpredicted_videos"] == "v9"
    assert csv.loc[0, "left_out"].startswith("train split: 8 slices left out")


# --------------------------------------------------------------------------- paired comparisons
def _regression_run(tmp_path, model, seed, truth, pred, variant=None):
    videos = [f"v{i:02d}" for i in range(len(truth))]
    table = pd.DataFrame({"split": "test", "video_id": videos, "score_true": truth, "score_pred": pred,
                          "n_clips": 1})
    err = pred - truth
    rec = {"model": model, "seed": seed, "task": "regression", "family": "clip", "history": [],
           "splits": {"test": {"n": len(truth), "mae": float(np.abs(err).mean()),
                               "rmse": float(np.sqrt((err ** 2).mean())), "pcc": 0.5, "ccc": 0.5}}}
    if variant is not None:
        rec["variant"] = variant
    name = f"{model}{'_v' if variant else ''}"
    path = tmp_path / "p" / name / f"seed{seed}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path)
    return write(tmp_path / "m" / name / f"seed{seed}.json", rec), path


@pytest.fixture()
def paired_files(tmp_path):
    """sta_drn (error 1 on every video, 2 seeds), dlga_cnn (error 4, 2 seeds), its variant (the same
    predictions as sta_drn, seed 0 only)."""
    rng = np.random.default_rng(8)
    truth = rng.uniform(0, 40, 30)
    sign = rng.choice([-1.0, 1.0], 30)
    runs = [_regression_run(tmp_path, "sta_drn", s, truth, truth + sign * 1.0) for s in (0, 1)]
    runs += [_regression_run(tmp_path, "dlga_cnn", s, truth, truth + sign * 4.0) for s in (0, 1)]
    runs.append(_regression_run(tmp_path, "dlga_cnn", 0, truth, truth + sign * 1.0, variant="use_wspp=false"))
    return [m for m, _ in runs], [p for _, p in runs]


def test_every_row_is_paired_against_the_best_row(paired_files, tmp_path):
    metrics, preds = paired_files
    out = table_files.write_tables(metrics, preds, None, tmp_path / "t", resamples=200, seed=1,
                              order=["sta_drn", "dlga_cnn"])
    table = out["regression"]
    assert table.reference == "STA-DRN"  # RMSE 1.00 against 4.00 and 1.00 (tie: the earlier row)
    text = (tmp_path / "t" / "regression.md").read_text()
    header = md_header(text)
    assert header[8:12] == ["\u0394 RMSE vs ref (95 % CI)", "p (RMSE)", "p (Holm, RMSE)", "Sig. (RMSE)"]
    rows = md_rows(text)
    assert rows["STA-DRN"][8:12] == ["reference", "\u2013", "\u2013", "\u2013"]
    # dlga_cnn is worse by 3 points on every video: the interval is [+3, +3], p = 2 / 201;
    # Holm over the table's m = 2 tests: the smaller p doubled, 4 / 201 = 0.0199 < 0.05
    assert rows["DLGA-CNN"][8:12] == ["+3.00 [+3.00, +3.00]", "0.010", "0.020", "yes, worse"]
    # the variant equals the reference on the seed they share (0): no difference, p = 1 (Holm: max(4 / 201, 1))
    assert rows["DLGA-CNN [use_wspp=false]"][8:12] == ["+0.00 [+0.00, +0.00]", "1.000", "1.000", "no"]
    pair = next(r for r in table.rows if r.variant).paired["rmse"]
    assert pair["seeds"] == [0] and pair["videos"] == 30
    assert any("Paired comparison against the reference row STA-DRN" in n for n in table.notes())
    assert any("Holm's step-down method over the family of all m = 2 paired tests" in n for n in table.notes())
    csv = pd.read_csv(tmp_path / "t" / "regression.csv")
    dlga = csv[(csv["model"] == "dlga_cnn") & csv["variant"].isna()].iloc[0]
    assert dlga["rmse_diff"] == pytest.approx(3.0) and dlga["rmse_diff_p"] == pytest.approx(2 / 201)
    assert dlga["rmse_diff_p_holm"] == pytest.approx(4 / 201)
    assert bool(dlga["rmse_diff_significant"]) and dlga["paired_reference"] == "STA-DRN"
    tex = (tmp_path / "t" / "regression.tex").read_text()
    spec = re.search(r"\\begin\{tabular\}\{([a-z]+)\}", tex).group(1)
    body = tex[tex.index("\\toprule"):tex.index("\\bottomrule")]
    for line in [x for x in body.splitlines() if x.endswith("\\\\")]:
        spans = sum(int(n) - 1 for n in re.findall(r"\\multicolumn\{(\d+)\}", line))
        assert _strip_escaped(line).count("&") + 1 + spans == len(spec), line
    assert "yes, worse" in (tmp_path / "t" / "regression.html").read_text()


def test_the_reference_can_be_a_named_baseline(paired_files, tmp_path):
    metrics, preds = paired_files
    table = table_files.write_tables(metrics, preds, None, tmp_path / "t", resamples=200,
                                reference="dlga_cnn")["regression"]
    assert table.reference == "DLGA-CNN"
    sta = next(r for r in table.rows if r.model == "sta_drn")
    assert sta.paired["rmse"]["difference"] == pytest.approx(-3.0) and sta.paired["rmse"]["better"] == "a"
    # (difference, p, p Holm, verdict): Holm over the two rows compared with DLGA-CNN, both p = 2 / 201
    assert table_files.format_paired(sta.paired["rmse"], tables.METRICS["regression"][1])[2:] == ("0.020",
                                                                                                  "yes, better")
    by_label = table_files.write_tables(metrics, preds, None, tmp_path / "u", resamples=50,
                                   reference="DLGA-CNN [use_wspp=false]")["regression"]
    assert by_label.reference == "DLGA-CNN [use_wspp=false]"
    with pytest.raises(FacevoxError, match="paired reference 'stst' is none of the rows"):
        table_files.write_tables(metrics, preds, None, tmp_path / "v", reference="stst")
    # without prediction tables: no paired columns
    bare = table_files.write_tables(metrics, [], None, tmp_path / "w")["regression"]
    assert not bare.has_paired
    assert not [h for h in md_header((tmp_path / "w" / "regression.md").read_text()) if "vs ref" in h]
    assert "vs ref" not in (tmp_path / "w" / "regression.html").read_text()
    assert not [c for c in pd.read_csv(tmp_path / "w" / "regression.csv").columns if "_diff" in c]


def test_a_row_whose_split_lost_a_class_is_marked(tmp_path):
    """The only 'normal' test videos were unpredicted (no face): the Videos cell says
    '[no normal video]', a note says why the metrics are of one class, the CSV names the class."""
    rec = classification_json("stst", 0, cls_metrics(0.7, 0.7, auc=math.nan))
    rec["splits"]["test"] |= {"unpredicted": ["v8", "v9"], "unpredicted_reasons": {"v8": "no_slices", "v9": "no_slices"},
                              "classes_unpredicted": {"normal": ["v8", "v9"]}}
    table_files.write_tables([write(tmp_path / "stst0.json", rec)], [], REFERENCES, tmp_path / "t", order=["stst"])
    text = (tmp_path / "t" / "classification.md").read_text()
    row = dict(zip(md_header(text), md_rows(text)["STST"]))
    assert row["Videos"] == "10 (+2 unpred.) [no normal video]"
    assert ("- STST: class 'normal' has no predicted video in the test split (v8, v9: unpredicted): the row's "
            "metrics are of the other class(es) only, AUC undefined") in text
    csv = pd.read_csv(tmp_path / "t" / "classification.csv")
    assert csv.loc[0, "classes_unpredicted"] == "normal"
