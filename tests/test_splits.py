"""Tests for facevox.dataset.splits: the subject-leak guard and the stratified split maker."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facevox.contract import SAMPLE_COLUMNS, SPLITS
from facevox.dataset.splits import (
    check_subject_splits,
    make_splits,
    split_counts,
    study_warnings,
    unusable_class_warnings,
)
from facevox.errors import FacevoxError
from facevox.samples import SampleSheetError

RATIOS = np.array([0.7, 0.1, 0.2])


def sheet(rows) -> pd.DataFrame:
    """A sheet as read_samples returns it: indexed by video_id, empty cells None."""
    df = pd.DataFrame(rows, columns=["video_id", "subject_id", "split"])
    df["path"] = [f"/v/{v}.mp4" for v in df["video_id"]]
    for col in SAMPLE_COLUMNS:
        if col not in df:
            df[col] = None
    return df[SAMPLE_COLUMNS].set_index("video_id", drop=False)


# --------------------------------------------------------------------------- the guard
def test_guard_names_the_subject_its_splits_and_videos():
    df = sheet([["a", "s1", "train"], ["b", "s1", "test"], ["c", "s1", "train"],
                ["d", "s2", "dev"], ["e", "s3", "dev"], ["f", "s3", "train"]])
    with pytest.raises(SampleSheetError) as info:
        check_subject_splits(df)
    assert info.value.problems == [
        "subject 's1' is in 2 splits: train (videos a, c); test (video b)",
        "subject 's3' is in 2 splits: train (video f); dev (video e)",
    ]
    assert "2 problem(s)" in str(info.value)


def test_guard_passes_a_clean_sheet():
    df = sheet([["a", "s1", "train"], ["b", "s1", "train"], ["c", "s2", "test"], ["d", "s3", "dev"]])
    assert check_subject_splits(df) is None


def test_guard_ignores_empty_split_and_empty_subject():
    df = sheet([["a", "s1", "train"], ["b", "s1", None], ["c", "s1", ""], ["d", "s1", float("nan")],
                ["e", None, "test"], ["f", "", "dev"], ["g", "s2", "  "]])
    check_subject_splits(df)


def test_guard_reads_video_ids_from_the_index_without_a_column():
    df = sheet([["a", "s1", "train"], ["b", "s1", "dev"]]).drop(columns="video_id")
    with pytest.raises(SampleSheetError, match=r"subject 's1' is in 2 splits: train \(video a\); dev \(video b\)"):
        check_subject_splits(df, where="my.tsv")


# --------------------------------------------------------------------------- rounding rule
def test_split_counts_floor_then_largest_deficit():
    deficit = np.zeros(3)
    # 10 subjects: quotas exactly 7, 1, 2 (0.7 * 10 is not 7.000000000000001)
    assert split_counts(10, RATIOS, deficit).tolist() == [7, 1, 2]
    assert np.allclose(deficit, 0)
    # 3 subjects: quotas 2.1, 0.3, 0.6 -> floors 2, 0, 0; the leftover one goes to test (0.6 > 0.3)
    assert split_counts(3, RATIOS, deficit).tolist() == [2, 0, 1]
    assert np.allclose(deficit, [0.1, 0.3, -0.4])
    # 3 more: floors 2, 0, 0; deficits then 0.2, 0.6, 0.2 -> dev catches up
    assert split_counts(3, RATIOS, deficit).tolist() == [2, 1, 0]
    assert np.allclose(deficit, [0.2, -0.4, 0.2])


# --------------------------------------------------------------------------- make_splits
def synthetic(n_subjects=200, seed=1) -> pd.DataFrame:
    """n subjects with 1-3 videos each; label and gender per subject, 2 x 2 strata."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        label = "depression" if rng.random() < 0.55 else "normal"
        gender = "f" if rng.random() < 0.6 else "m"
        for k in range(int(rng.integers(1, 4))):
            rows.append({"video_id": f"s{s:03d}_v{k}", "path": f"/v/s{s:03d}_{k}.mp4", "subject_id": f"s{s:03d}",
                         "split": None, "label": label, "score": None, "gender": gender, "openface_csv": None})
    return pd.DataFrame(rows, columns=SAMPLE_COLUMNS).set_index("video_id", drop=False)


def subject_splits(df: pd.DataFrame) -> pd.Series:
    per_subject = df.groupby("subject_id")["split"].agg(lambda s: sorted(set(s)))
    assert per_subject.map(len).eq(1).all()  # every video of a subject in one split
    return per_subject.map(lambda s: s[0])


def test_make_splits_subject_level_and_stratified():
    df = synthetic()
    out = make_splits(df, seed=0)
    check_subject_splits(out)
    assert out.index.tolist() == df.index.tolist()
    assert out.drop(columns="split").equals(df.drop(columns="split"))
    assert df["split"].isna().all()  # the input is not modified
    by_subject = subject_splits(out)
    assert set(by_subject) == set(SPLITS)
    n = len(by_subject)
    counts = by_subject.value_counts()
    for split, ratio in zip(SPLITS, RATIOS):
        assert abs(counts[split] - ratio * n) <= 2, (split, counts[split], ratio * n)
    first = df.drop_duplicates("subject_id").set_index("subject_id")
    for (label, gender), group in first.groupby(["label", "gender"]):
        stratum = by_subject[group.index].value_counts()
        for split, ratio in zip(SPLITS, RATIOS):
            assert abs(stratum.get(split, 0) - ratio * len(group)) <= 2, (label, gender, split)
    # the documented rule is tighter: each stratum within one subject of its quota
    for stratum_key, group in first.groupby(["label", "gender"]):
        stratum = by_subject[group.index].value_counts()
        assert all(abs(stratum.get(s, 0) - r * len(group)) < 1 for s, r in zip(SPLITS, RATIOS)), stratum_key


def test_make_splits_deterministic_per_seed():
    df = synthetic()
    a, b = make_splits(df, seed=3), make_splits(df, seed=3)
    assert a["split"].tolist() == b["split"].tolist()
    assert make_splits(df, seed=4)["split"].tolist() != a["split"].tolist()
    # the result depends on the content, not the row order
    shuffled = make_splits(df.sample(frac=1.0, random_state=0), seed=3)
    assert shuffled.loc[a.index, "split"].tolist() == a["split"].tolist()


def test_make_splits_overwrites_existing_splits_and_handles_missing_subjects():
    df = sheet([["a", "s1", "test"], ["b", "s1", "train"], ["c", None, "train"], ["d", "", None]])
    out = make_splits(df, ratios=(1, 0, 0))
    assert out["split"].tolist() == ["train"] * 4
    out = make_splits(df, ratios=(0, 0, 1))
    assert out["split"].tolist() == ["test"] * 4


def test_make_splits_exact_counts_small_example():
    # 10 subjects in one stratum, one video each: exactly 7 / 1 / 2
    df = sheet([[f"v{i}", f"s{i}", None] for i in range(10)])
    assert make_splits(df, seed=0)["split"].value_counts().to_dict() == {"train": 7, "test": 2, "dev": 1}


@pytest.mark.parametrize("ratios", [(0.7, 0.3), (0.7, -0.1, 0.4), (0, 0, 0), (0.5, float("nan"), 0.5)])
def test_make_splits_rejects_bad_ratios(ratios):
    with pytest.raises(FacevoxError, match="split ratios"):
        make_splits(sheet([["a", "s1", None]]), ratios=ratios)


# --------------------------------------------------------------------------- degenerate studies
def _study(splits_labels):
    df = sheet([[f"v{i}", f"s{i}", s] for i, (s, _) in enumerate(splits_labels)])
    df["label"] = [lab for _, lab in splits_labels]
    return df


def test_study_warnings_of_the_12_video_7_1_2_split():
    """The issue's study: 7 train, 1 dev (one class), 2 test videos; a configured label unused."""
    df = _study([("train", "depression")] * 4 + [("train", "normal")] * 3 + [("dev", "normal")]
                + [("test", "depression"), ("test", "normal")] + [("", "normal")] * 2)
    assert study_warnings(df, ["depression", "normal", "anxious"]) == [
        "split dev: 1 video(s), fewer than models.min_dev_videos (4) - too few to pick the best epoch or "
        "stop early on",
        "split dev: one class only ('normal', 1 video(s)) - AUC undefined, F1 of one class",
        "split test: 2 video(s), fewer than models.min_split_videos (3) - its metrics rest on very few videos",
        "label 'anxious' (config labels): no video of the sheet has it",
    ]
    assert study_warnings(df, ["depression", "normal"], min_split_videos=2, min_dev_videos=1) == [
        "split dev: one class only ('normal', 1 video(s)) - AUC undefined, F1 of one class"]


def test_study_warnings_no_dev_label_without_train_and_sound_studies():
    df = _study([("train", "normal")] * 3 + [("test", "depression"), ("test", "normal"), ("test", "normal")])
    assert study_warnings(df, ["depression", "normal"]) == [
        "split train: one class only ('normal', 3 video(s)) - AUC undefined, F1 of one class",
        "split dev: no video - training keeps the last epoch, no early stopping (give some subjects split dev)",
        "label 'depression': no train video has it - models cannot learn it",
    ]
    sound = _study([("train", "depression"), ("train", "normal")] * 2 + [("dev", "depression"), ("dev", "normal")] * 2
                   + [("test", "depression"), ("test", "normal"), ("test", "normal")])
    assert study_warnings(sound, ["depression", "normal"]) == []
    no_labels = _study([("train", None)] * 3 + [("dev", None)] * 4 + [("test", None)] * 3)
    assert study_warnings(no_labels, ["depression", "normal"]) == []  # regression study: no label checks
    assert study_warnings(_study([("", "normal")] * 3), ["depression", "normal"]) == []  # nothing trained


def test_study_warnings_a_class_whose_videos_are_all_unusable():
    """The only test videos of a class have no face (their QA records, known when the DAG is
    built from an earlier run): one line naming them and why; a class with one usable video,
    or a split of one class (its own warning), gets none."""
    df = _study([("train", "depression"), ("train", "normal")] * 2 + [("dev", "depression"), ("dev", "normal")] * 2
                + [("test", "depression"), ("test", "normal"), ("test", "normal")])
    unusable = {"v9": "no face in any frame", "v10": "excluded: file is empty (0 bytes) (stage probe)"}
    assert study_warnings(df, ["depression", "normal"]) == []
    assert unusable_class_warnings(df, unusable) == [
        "split test: every 'normal' video is unusable for the face models (v9: no face in any frame; v10: excluded: "
        "file is empty (0 bytes) (stage probe)) - they cannot predict the class: AUC undefined, the tables mark "
        "the row '[no normal video]'"]
    assert unusable_class_warnings(df, {"v9": "no face in any frame"}) == []
    assert unusable_class_warnings(df, {}) == []


def test_split_command_reads_ratios_and_refuses_bad_ones(tmp_path):
    """`facevox split --ratios` takes train,dev,test shares; words instead of numbers are a usage
    error naming the argument (rc 2, no traceback), as is a bad `import-openface --rate-hz`."""
    import subprocess
    import sys

    from facevox.cli import rate_hz_arg, ratios_arg

    assert ratios_arg("0.5,0.25,0.25") == (0.5, 0.25, 0.25)
    assert rate_hz_arg("native") == "native" and rate_hz_arg("1") == 1.0
    for argv, word in ((["split", "s.tsv", "o.tsv", "--ratios", "a,b"], "--ratios: not comma-separated numbers"),
                       (["import-openface", "f", "o", "s.tsv", "--rate-hz", "abc"], "--rate-hz: 'native' or a positive"),
                       (["import-openface", "f", "o", "s.tsv", "--rate-hz", "0"], "--rate-hz: 'native' or a positive")):
        done = subprocess.run([sys.executable, "-m", "facevox", *argv], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 2 and word in done.stderr and "Traceback" not in done.stderr, done.stderr
