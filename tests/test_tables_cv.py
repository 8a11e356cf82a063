"""Tests for the cross-validation, subject-level, Holm and sweep parts of the metric tables
(facevox.report.tables, table_stats, table_rows, table_files): hand-made metrics records and
prediction tables, numbers computed by hand in the comments."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from facevox.errors import FacevoxError
from facevox.report import table_files, table_inputs, table_stats, tables
from facevox.report.bootstrap import holm
from facevox.training.metrics import classification_metrics

D, N = "depression", "normal"
CLASSES = [D, N]
#: 8 subjects, 10 videos: s1 and s5 have two videos each.  Fold 0 holds out s1-s4 (v1-v5),
#: fold 1 holds out s5-s8 (v6-v10).
SUBJECTS = {"v1": "s1", "v2": "s1", "v3": "s2", "v4": "s3", "v5": "s4",
            "v6": "s5", "v7": "s5", "v8": "s6", "v9": "s7", "v10": "s8"}
FOLD_VIDEOS = {0: ["v1", "v2", "v3", "v4", "v5"], 1: ["v6", "v7", "v8", "v9", "v10"]}
FOLD_SUBJECTS = {0: ["s1", "s2", "s3", "s4"], 1: ["s5", "s6", "s7", "s8"]}
TRUTH = {"v1": D, "v2": N, "v3": D, "v4": N, "v5": D, "v6": N, "v7": D, "v8": N, "v9": D, "v10": N}


def flip(label: str) -> str:
    return N if label == D else D


def predictions(videos: list[str], wrong: set[str], split: str = "test") -> pd.DataFrame:
    """A classification prediction table: every video right except those in ``wrong``."""
    pred = [flip(TRUTH[v]) if v in wrong else TRUTH[v] for v in videos]
    return pd.DataFrame({"split": split, "video_id": videos, "label": [TRUTH[v] for v in videos], "predicted": pred,
                         "prob_positive": [0.9 if p == D else 0.1 for p in pred], "n_slices": 1, "votes_positive": 0})


def run(tmp: Path, model: str, seed: int, test: pd.DataFrame, *, fold: int | None = None, dev: dict | None = None,
        variant: dict | None = None, sweep: bool = False, select_by: str = "f1_weighted") -> tuple[Path, Path]:
    """Write one run's metrics JSON (test metrics computed from ``test``) and prediction table."""
    metrics = classification_metrics(test["label"], test["predicted"], test["prob_positive"], CLASSES, D)
    metrics = {k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}
    rec = {"model": model, "seed": seed, "task": "classification", "classes": CLASSES, "positive": D,
           "history": [], "splits": {"test": metrics, "dev": dev or {"n": 4, "f1_weighted": 0.5, "loss": 0.7}},
           "fold": fold, "select_by": select_by}
    if fold is not None:
        rec |= {"fold_name": f"fold{fold}", "cv": {"scheme": "kfold", "folds": 2, "seed": 0, "subjects": 8,
                                                   "test_subjects": FOLD_SUBJECTS[fold]}}
    if variant is not None:
        rec |= {"variant": variant, "sweep": sweep, "name": f"{model}@{table_inputs.variant_label(variant)}"}
    name = f"{model}{'@' + table_inputs.variant_label(variant) if variant else ''}"
    where = f"fold{fold}/" if fold is not None else ""
    path = tmp / "metrics" / name / f"{where}seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    table = tmp / "predictions" / name / f"{where}seed{seed}.parquet"
    table.parent.mkdir(parents=True, exist_ok=True)
    test.to_parquet(table)
    return path, table


def md_table(text: str, first: str) -> tuple[list[str], dict[str, list[str]]]:
    """(header, label -> cells) of the Markdown table whose header starts with ``| first``."""
    lines = text.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith(f"| {first}"))
    header = [c.strip() for c in lines[start].strip("|").split(" | ")]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("| "):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows[cells[0]] = dict(zip(header, cells))
    return header, rows


#: Wrong videos per (model, fold, seed).
#: STST: fold 0 seed 1 gets v2 (normal) wrong, everything else right.
#:   fold 0: seed 0 F1w 1; seed 1: depression P 3/4 R 1 F1 6/7, normal P 1 R 1/2 F1 2/3,
#:   weighted (3 * 6/7 + 2 * 2/3) / 5 = 82/105 -> fold mean 187/210 = 0.890476; fold 1: 1.
#:   cell: mean 0.945238, sd |1 - 0.890476| / sqrt 2 = 0.077445.
#:   pooled out of fold, seed 1: 10 videos (5 + 5), depression F1 10/11, normal F1 8/9 ->
#:   89/99; seeds (1 + 89/99) / 2 = 94/99 = 0.949495.
#: LR: fold 0 both seeds v1 wrong (F1w 0.8 each); fold 1 seed 0 v6 wrong (0.8), seed 1 v7
#:   wrong (depression F1 2/3, normal 6/7, weighted (2 * 2/3 + 3 * 6/7) / 5 = 82/105).
#:   fold 0: 0.8, fold 1: (0.8 + 82/105) / 2 = 0.790476; cell mean 0.795238, sd 0.006734.
#:   pooled seed 0: v1, v6 wrong -> both classes F1 0.8 -> 0.8; seed 1: v1, v7 wrong ->
#:   depression P 1 R 3/5 F1 3/4, normal P 5/7 R 1 F1 5/6 -> 19/24; mean 0.795833.
WRONG = {("stst", 0, 0): set(), ("stst", 0, 1): {"v2"}, ("stst", 1, 0): set(), ("stst", 1, 1): set(),
         ("lr", 0, 0): {"v1"}, ("lr", 0, 1): {"v1"}, ("lr", 1, 0): {"v6"}, ("lr", 1, 1): {"v7"}}


@pytest.fixture()
def cv_files(tmp_path):
    runs = [run(tmp_path, model, seed, predictions(FOLD_VIDEOS[fold], wrong), fold=fold)
            for (model, fold, seed), wrong in WRONG.items()]
    return [m for m, _ in runs], [p for _, p in runs]


# --------------------------------------------------------------------------- cross-validation
def test_cv_cells_are_over_folds_and_the_pooled_column_is_out_of_fold(cv_files, tmp_path):
    metrics, preds = cv_files
    out = table_files.write_tables(metrics, preds, None, tmp_path / "t", order=["stst", "lr"], resamples=200,
                                   subjects=SUBJECTS)
    table = out["classification"]
    stst, lr = table.rows
    assert stst.fold_values["f1_weighted"] == pytest.approx({0: 187 / 210, 1: 1.0})
    assert stst.stats["f1_weighted"].mean == pytest.approx((187 / 210 + 1) / 2)
    assert stst.stats["f1_weighted"].sd == pytest.approx((1 - 187 / 210) / math.sqrt(2))
    assert lr.fold_values["f1_weighted"] == pytest.approx({0: 0.8, 1: (0.8 + 82 / 105) / 2})
    assert stst.pooled["f1_weighted"] == pytest.approx(94 / 99)
    assert lr.pooled["f1_weighted"] == pytest.approx((0.8 + 19 / 24) / 2)
    text = (tmp_path / "t" / "classification.md").read_text()
    header, rows = md_table(text, "Model")
    assert header[:4] == ["Model", "Seeds", "Folds", "Videos"]
    assert rows["STST"]["Seeds"] == "2" and rows["STST"]["Folds"] == "2" and rows["STST"]["Videos"] == "10"
    assert rows["STST"]["F1 (weighted)"] == "94.52 \u00b1 7.74 (n=2)"
    assert rows["LR"]["F1 (weighted)"] == "79.52 \u00b1 0.67 (n=2)"
    assert rows["STST"]["F1 (weighted) pooled OOF"] == "94.95"
    assert rows["LR"]["F1 (weighted) pooled OOF"] == "79.58"
    # the per-fold section names the folds with their held-out subjects
    fold_header, fold_rows = md_table(text, "Model | fold0")
    assert fold_header == ["Model", "fold0 (4 subjects held out)", "fold1 (4 subjects held out)"]
    assert fold_rows["STST"]["fold0 (4 subjects held out)"] == "89.05"
    assert fold_rows["LR"]["fold1 (4 subjects held out)"] == "79.05"
    assert "### Per fold: F1 (weighted), test split (mean over the fold's seeds)" in text
    notes = table.notes()
    assert "2-fold cross-validation grouped by subject (8 subjects, 2 folds; split seed 0)" in notes[0]
    assert "fold0 4, fold1 4" in notes[0]
    assert (tmp_path / "t" / "classification.tex").read_text().count("2-fold cross-validation grouped by subject "
                                                                       "(8 subjects, 2 folds") == 1
    html = (tmp_path / "t" / "classification.html").read_text()
    assert "<h3>Per fold: F1 (weighted)" in html and "fold1 (4 subjects held out)" in html
    csv = pd.read_csv(tmp_path / "t" / "classification.csv").set_index("label")
    assert csv.loc["STST", "f1_weighted_fold0"] == pytest.approx(187 / 210)
    assert csv.loc["STST", "f1_weighted_pooled"] == pytest.approx(94 / 99)
    assert csv.loc["LR", "fold1_test_subjects"] == 4 and csv.loc["LR", "n_folds"] == 2


def test_cv_statistics_resample_subjects(cv_files, tmp_path):
    metrics, preds = cv_files
    table = table_files.write_tables(metrics, preds, None, tmp_path / "t", resamples=200,
                                     subjects=SUBJECTS)["classification"]
    stst = next(r for r in table.rows if r.model == "stst")
    ci = stst.ci["f1_weighted"]
    assert (ci["unit"], ci["units"], ci["videos"]) == ("subject", 8, 10)
    assert ci["estimate"] == pytest.approx(94 / 99)  # the CI is that of the pooled out-of-fold value
    lr = next(r for r in table.rows if r.model == "lr")
    assert table.reference == "STST" and lr.paired["f1_weighted"]["unit"] == "subject"
    assert lr.paired["f1_weighted"]["difference"] == pytest.approx((0.8 + 19 / 24) / 2 - 94 / 99)
    assert any("percentile bootstrap over subjects (8 subjects, all their videos drawn together)" in n
               for n in table.notes())
    # without a sheet the unit is the video and the notes say so
    bare = table_files.write_tables(metrics, preds, None, tmp_path / "u", resamples=50)["classification"]
    assert bare.rows[0].ci["f1_weighted"]["unit"] == "video"
    assert any("percentile bootstrap over videos" in n for n in bare.notes())


def test_sheet_subjects(tmp_path):
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("video_id\tpath\tsubject_id\nv1\ta.mp4\ts1\nv2\tb.mp4\ts1\nv3\tc.mp4\t\n")
    # a video without a subject_id is its own subject, as facevox.dataset.splits has it
    assert tables.sheet_subjects(sheet) == {"v1": "s1", "v2": "s1", "v3": "v3"}


def test_fold_and_fixed_records_do_not_mix(cv_files, tmp_path):
    metrics, _ = cv_files
    fixed, _ = run(tmp_path / "fixed", "svm", 0, predictions(FOLD_VIDEOS[0], set()))
    with pytest.raises(FacevoxError, match=re.escape(f"cannot share a table: {metrics[0]} is fold 0, {fixed} is the "
                                                     f"fixed split")):
        table_files.write_tables([*metrics, fixed], [], None, tmp_path / "t")


def test_a_video_in_two_folds_is_an_error(tmp_path):
    runs = [run(tmp_path, "stst", 0, predictions(FOLD_VIDEOS[0], set()), fold=0),
            run(tmp_path, "stst", 0, predictions(FOLD_VIDEOS[1] + ["v5"], set()), fold=1)]
    with pytest.raises(FacevoxError, match="video v5 is in the test split of fold 0 .* and of fold 1"):
        table_files.write_tables([m for m, _ in runs], [p for _, p in runs], None, tmp_path / "t")


# --------------------------------------------------------------------------- Holm
def test_holm_adjusts_every_paired_test_of_the_table(tmp_path):
    """Four models on the fixed split, 40 videos: the three compared with the best row are a
    family of m = 3; p_holm is holm() of the raw p column and 'Sig.' follows p_holm."""
    videos = [f"h{i:02d}" for i in range(40)]
    for i, v in enumerate(videos):
        TRUTH[v] = D if i % 2 else N
    try:
        runs = []
        for model, wrong in [("stst", set()), ("lr", set(videos[:2])), ("svm", set(videos[:6])),
                             ("rf", set(videos[:14]))]:
            runs += [run(tmp_path, model, seed, predictions(videos, wrong)) for seed in (0, 1)]
        table = table_files.write_tables([m for m, _ in runs], [p for _, p in runs], None, tmp_path / "t",
                                         order=["stst", "lr", "svm", "rf"], resamples=300, seed=2)["classification"]
    finally:
        for v in videos:
            TRUTH.pop(v)
    assert table.reference == "STST" and table.holm_m == 3
    compared = [r for r in table.rows if not r.is_reference]
    raw = [r.paired["f1_weighted"]["p_value"] for r in compared]
    adjusted = [r.paired["f1_weighted"]["p_holm"] for r in compared]
    assert adjusted == pytest.approx(holm(raw))
    # by hand: RF (14 errors) has the smallest p, then SVM (6), then LR (2): Holm multiplies them by
    # 3, 2 and 1, each at least the one before (here 2 * p_SVM > 3 * p_RF)
    p_lr, p_svm, p_rf = raw
    assert p_rf < p_svm < p_lr and 2 * p_svm > 3 * p_rf
    assert adjusted == pytest.approx([p_lr, 2 * p_svm, 3 * p_rf])
    assert [r.paired["f1_weighted"]["significant"] for r in compared] == [False, True, True]
    for r in compared:
        pair = r.paired["f1_weighted"]
        assert pair["significant"] == (pair["p_holm"] < 0.05)
        assert pair["better"] == ("b" if pair["significant"] else "")
    csv = pd.read_csv(tmp_path / "t" / "classification.csv").set_index("label")
    assert csv.loc[["LR", "SVM", "RF"], "f1_weighted_diff_p_holm"].tolist() == pytest.approx(holm(raw))
    notes = " ".join(table.notes())
    assert "Holm's step-down method over the family of all m = 3 paired tests" in notes
    assert "'Sig.' says yes when p (Holm) < 0.05" in notes


# --------------------------------------------------------------------------- sweeps
def test_choose_on_dev():
    assert table_stats.choose_on_dev([0.7, 0.9, 0.9], "f1_weighted") == 1  # ties: the earlier
    assert table_stats.choose_on_dev([0.7, 0.5, math.nan], "loss") == 1  # lower is better
    assert table_stats.choose_on_dev([math.nan], "rmse") is None
    rec = {"splits": {"dev": {"ccc": {"arousal": 0.4, "valence": 0.2}, "loss": 0.3}}}
    assert table_stats.dev_score(rec, "ccc_mean") == pytest.approx(0.3)
    assert table_stats.dev_score(rec, "loss") == pytest.approx(0.3)
    assert math.isnan(table_stats.dev_score(rec, "f1_weighted"))


def test_sweep_chooses_on_dev_not_on_test(tmp_path):
    """dropout=0.1 has the better dev F1 (0.80 and 0.82) and the worse test F1 (v1, v2 wrong);
    dropout=0.5 the worse dev (0.70, 0.72) and a perfect test: dropout=0.1 is chosen."""
    videos = FOLD_VIDEOS[0] + FOLD_VIDEOS[1]
    runs = [run(tmp_path, "stst", s, predictions(videos, {"v1", "v2"}), variant={"dropout": 0.1}, sweep=True,
                dev={"n": 4, "f1_weighted": dev}) for s, dev in [(0, 0.80), (1, 0.82)]]
    runs += [run(tmp_path, "stst", s, predictions(videos, set()), variant={"dropout": 0.5}, sweep=True,
                 dev={"n": 4, "f1_weighted": dev}) for s, dev in [(0, 0.70), (1, 0.72)]]
    runs += [run(tmp_path, "lr", s, predictions(videos, {"v3"})) for s in (0, 1)]
    table = table_files.write_tables([m for m, _ in runs], [p for _, p in runs], None, tmp_path / "t",
                                     order=["stst", "lr"], resamples=100)["classification"]
    rows = {r.label: r for r in table.rows}
    assert rows["STST [dropout=0.1]"].role == "chosen" and rows["STST [dropout=0.5]"].role == "grid"
    _, cells = md_table((tmp_path / "t" / "classification.md").read_text(), "Model")
    assert cells["STST [dropout=0.1]"]["Dev choice"] == "chosen on dev: F1 (weighted) 81.00"
    assert cells["STST [dropout=0.5]"]["Dev choice"] == "dev: F1 (weighted) 71.00"
    assert cells["LR"]["Dev choice"] == "\u2013"
    # only the chosen row stands for STST: LR (one error) is the best of the two, the grid point is not compared
    assert table.reference == "LR" and set(rows["STST [dropout=0.1]"].paired) == {"f1_weighted"}
    assert not rows["STST [dropout=0.5]"].paired and table.holm_m == 1
    assert any("The test split was not used to choose" in n for n in table.notes())
    # a swept model's name as the reference: its row chosen on dev
    named = table_files.write_tables([m for m, _ in runs], [p for _, p in runs], None, tmp_path / "u",
                                     resamples=50, reference="stst")["classification"]
    assert named.reference == "STST [dropout=0.1]"


def test_cv_sweep_chooses_inside_each_fold(tmp_path):
    """Fold 0: dropout=0.1 has the better dev, fold 1: dropout=0.5. The row 'chosen per fold on
    dev' takes fold 0 of dropout=0.1 (v1 wrong: depression P 1 R 2/3 F1 0.8, normal P 2/3 R 1
    F1 0.8 -> 0.8) and fold 1 of dropout=0.5 (all right: 1)."""
    runs = []
    for fold in (0, 1):
        for variant, wrong, dev in [({"dropout": 0.1}, {"v1"} if fold == 0 else {"v6", "v7"}, 0.9 - 0.3 * fold),
                                    ({"dropout": 0.5}, {"v2", "v3"} if fold == 0 else set(), 0.7)]:
            runs += [run(tmp_path, "stst", s, predictions(FOLD_VIDEOS[fold], wrong), fold=fold, variant=variant,
                         sweep=True, dev={"n": 4, "f1_weighted": dev}) for s in (0, 1)]
    table = table_files.write_tables([m for m, _ in runs], [p for _, p in runs], None, tmp_path / "t",
                                     resamples=50, subjects=SUBJECTS)["classification"]
    assert [r.label for r in table.rows] == ["STST [chosen per fold on dev]", "STST [dropout=0.1]",
                                             "STST [dropout=0.5]"]
    chosen = table.rows[0]
    assert chosen.role == "chosen" and chosen.fold_values["f1_weighted"] == pytest.approx({0: 0.8, 1: 1.0})
    # pooled seed (both alike): v1 wrong of 10 -> depression P 1 R 4/5 F1 8/9, normal P 5/6 R 1 F1 10/11
    assert chosen.pooled["f1_weighted"] == pytest.approx((8 / 9 + 10 / 11) / 2)
    assert [r.selection for r in table.rows] == ["chosen per fold on dev", "chosen in 1/2 folds",
                                                 "chosen in 1/2 folds"]
    note = next(n for n in table.notes() if n.startswith("Sweep of STST"))
    assert "fold0: dropout=0.1 (dev F1 (weighted) 90.00); fold1: dropout=0.5 (dev F1 (weighted) 70.00)" in note
    assert "The test split was not used to choose" in note
