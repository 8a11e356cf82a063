"""facevox.dataset.folds: subject-grouped, label-stratified folds; LOSO; each fold's dev part carved from its
training subjects; the fold sheet (rule fold_sheet)."""
import json

import pandas as pd
import pytest

from facevox.dataset.folds import assignments, carve_dev, describe, fold_sheet, run
from facevox.errors import FacevoxError
from facevox.samples import read_samples


def cohort(subjects: int = 20, videos: int = 3, depressed_every: int = 3) -> pd.DataFrame:
    """``subjects`` people with ``videos`` videos each; every ``depressed_every``-th person is depressed."""
    rows = []
    for s in range(subjects):
        label = "depression" if s % depressed_every == 0 else "normal"
        for v in range(videos):
            rows.append({"video_id": f"s{s:02d}_v{v}", "path": "x.mp4", "subject_id": f"s{s:02d}",
                         "split": "train", "label": label})
    return pd.DataFrame(rows).set_index("video_id", drop=False)


def split_subjects(samples, assignment, split):
    return {s for s, where in assignment.items() if where == split}


def test_kfold_never_puts_a_subject_in_two_folds_and_covers_everyone_once():
    samples = cohort()
    folds = assignments(samples, {"scheme": "kfold", "folds": 5, "seed": 0, "dev_fraction": 0.2})
    assert len(folds) == 5
    tests = [split_subjects(samples, a, "test") for a in folds]
    assert set().union(*tests) == set(samples["subject_id"])  # every subject tested once
    assert sum(len(t) for t in tests) == 20
    for i, a in enumerate(folds):
        # each fold's sheet: a subject's videos all in one split, the held-out subjects never in train or dev
        sheet = fold_sheet(samples, a)
        assert (sheet.groupby("subject_id")["split"].nunique() == 1).all()
        assert set(sheet.loc[sheet["split"] == "test", "subject_id"]) == tests[i]
        dev = split_subjects(samples, a, "dev")
        assert dev and not dev & tests[i]  # dev carved from the training subjects only
    # stratified: 7 depressed of 20 subjects over 5 folds -> 1 or 2 depressed per fold
    depressed = set(samples.loc[samples["label"] == "depression", "subject_id"])
    assert sorted(len(t & depressed) for t in tests) == [1, 1, 1, 2, 2]


def test_loso_has_one_fold_per_subject():
    samples = cohort(subjects=6, videos=2)
    folds = assignments(samples, {"scheme": "loso", "seed": 0, "dev_fraction": 0.2})
    assert len(folds) == 6
    assert [split_subjects(samples, a, "test") for a in folds] == [{f"s{s:02d}"} for s in range(6)]
    info = describe(folds[2], 2, {"scheme": "loso", "folds": 5, "seed": 0, "dev_fraction": 0.2})
    assert info["fold"] == 2 and info["fold_name"] == "fold2"
    assert info["cv"]["folds"] == 6 and info["cv"]["subjects"] == 6 and info["cv"]["test_subjects"] == ["s02"]


def test_the_dev_part_is_stratified_and_keeps_each_class_in_train():
    strata = {f"d{i}": "depression" for i in range(5)} | {f"n{i}": "normal" for i in range(10)}
    dev = carve_dev(list(strata), strata, 0.2, seed=0, fold=0)
    # round(0.2 * 5) = 1 depressed, round(0.2 * 10) = 2 normal
    assert sum(s.startswith("d") for s in dev) == 1 and sum(s.startswith("n") for s in dev) == 2
    # one subject per class: none can be spared - no dev part
    assert carve_dev(["d0", "n0"], strata, 0.2, 0, 0) == set()
    # too few for a 20 % share: one subject of the largest class with two or more goes to dev
    assert carve_dev(["d0", "n0", "n1"], strata, 0.2, 0, 0) <= {"n0", "n1"}
    assert len(carve_dev(["d0", "n0", "n1"], strata, 0.2, 0, 0)) == 1


def test_the_assignment_depends_only_on_content_and_seed():
    samples = cohort()
    cv = {"scheme": "kfold", "folds": 4, "seed": 3, "dev_fraction": 0.2}
    shuffled = samples.sample(frac=1, random_state=1)
    assert assignments(samples, cv) == assignments(shuffled, cv)
    assert assignments(samples, cv) != assignments(samples, {**cv, "seed": 4})


def test_rows_without_a_split_stay_out_and_fixed_has_no_folds():
    samples = cohort(subjects=4, videos=1)
    samples.loc["s03_v0", "split"] = None
    folds = assignments(samples, {"scheme": "loso", "seed": 0, "dev_fraction": 0.2})
    assert len(folds) == 3 and all("s03" not in a for a in folds)
    assert fold_sheet(samples, folds[0]).loc["s03_v0", "split"] == ""
    assert assignments(samples, {"scheme": "fixed"}) == []


@pytest.mark.parametrize("cv, message", [
    ({"scheme": "kfold", "folds": 30}, "2 <= folds <= the sheet's 20 subjects"),
    ({"scheme": "bootstrap"}, "cv.scheme must be one of"),
])
def test_impossible_folds_are_clear_errors(cv, message):
    with pytest.raises(FacevoxError, match=message):
        assignments(cohort(), cv)


def test_the_fold_sheet_rule_rewrites_splits_by_subject(tmp_path):
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("video_id\tpath\tsubject_id\tsplit\tlabel\n"
                     "a1\tvideos/a1.mp4\tA\ttrain\tdepression\na2\tvideos/a2.mp4\tA\ttrain\tdepression\n"
                     "b1\tvideos/b1.mp4\tB\tdev\tnormal\nc1\tvideos/c1.mp4\tC\ttest\tnormal\n")
    out = tmp_path / "folds" / "fold0.tsv"
    run(sheet, out, json.dumps({"A": "test", "B": "train", "C": "dev"}))
    written = read_samples(out, check_files=False)
    assert written["split"].to_dict() == {"a1": "test", "a2": "test", "b1": "train", "c1": "dev"}
    assert written.loc["a1", "path"] == str(tmp_path / "videos" / "a1.mp4")  # absolute, as the included sheet
    with pytest.raises(FacevoxError, match="not JSON"):
        run(sheet, out, "{A: test")
