"""Tests for facevox.extract.identity_overlap: one face under two subject ids across the splits.

The landmarks tables are hand-made (facevox.io.write_table with contract.LANDMARKS_SCHEMA)
with chosen target embeddings: points of a plane inside the 128-d descriptor space, so every
pairwise distance is known (0.3 apart: one person; 0.9: two people; threshold 0.6)."""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from facevox.cli import main
from facevox.contract import LANDMARK_COLUMNS, LANDMARKS_SCHEMA
from facevox.errors import FacevoxError
from facevox.extract import identity_overlap as io_
from facevox.io import write_table

DIM = 128
BASE = np.full(DIM, 0.05)  # a common offset: distances do not see it


def point(x=0.0, y=0.0, z=0.0) -> list[float]:
    """BASE + x e0 + y e1 + z e2: an embedding whose distances to the others are plain geometry."""
    v = BASE.copy()
    v[:3] += (x, y, z)
    return v.tolist()


def landmarks_table(path, embedding=None, excluded=None, target=True) -> None:
    """Two frames of the target; the provenance's ``target`` record holds ``embedding``
    (``target=False``: an older table without the record; ``excluded``: an excluded record)."""
    if excluded:
        write_table(LANDMARKS_SCHEMA.empty_table(), path, LANDMARKS_SCHEMA,
                    {"stage": "landmarks", "excluded": excluded})
        return
    n = 2
    cols = {"frame": np.arange(n, dtype=np.int32), "timestamp_s": np.arange(n) / 25.0, "success": np.ones(n, bool),
            "detected": np.ones(n, bool), "reason": ["", ""], "n_faces": np.ones(n, np.int16),
            "confidence": np.ones(n, np.float32)}
    cols.update({c: np.full(n, 100.0, np.float32) for c in ["box_left", "box_top", "box_width", "box_height"]})
    cols.update({c: np.full(n, 50.0, np.float32) for c in LANDMARK_COLUMNS})
    meta = {"stage": "landmarks"}
    if target:
        meta["target"] = {"mode": "dominant", "found": embedding is not None, "person": 0, "why": "only person",
                          "n_people": 1, "present_rate": 1.0, "other_present_rate": 0.0, "match_distance": 0.2,
                          "close_choice": False, "embedding": embedding, "n_descriptors": 3, "people": [],
                          "reference": None}
    write_table(pd.DataFrame(cols), path, LANDMARKS_SCHEMA, meta)


#: video -> (subject, split, embedding). v1 ~ v2 0.3 apart (train / test: a leak); v5 0.1 from
#: v1 (both train) and sqrt(0.3^2 + 0.1^2) from v2 (test: a leak); v3 and v4 one subject, two
#: faces sqrt(2^2 + 0.9^2) apart; v6 excluded, v7 written before target records, v8 faceless.
STUDY = {
    "v1": ("s1", "train", point()),
    "v2": ("s2", "test", point(x=0.3)),
    "v3": ("s3", "train", point(y=0.9)),
    "v4": ("s3", "dev", point(x=2.0)),
    "v5": ("s5", "train", point(z=0.1)),
}


@pytest.fixture
def study(tmp_path):
    rows = ["video_id\tpath\tsubject_id\tsplit"]
    paths = []
    for vid, (subject, split, emb) in STUDY.items():
        rows.append(f"{vid}\t{vid}.mp4\t{subject}\t{split}")
        landmarks_table(tmp_path / f"{vid}.parquet", emb)
    rows += ["v6\tv6.mp4\ts6\ttest", "v7\tv7.mp4\ts7\ttest", "v8\tv8.mp4\ts8\tdev"]
    landmarks_table(tmp_path / "v6.parquet", excluded={"stage": "probe", "path": "v6.mp4", "problem": "file is empty"})
    landmarks_table(tmp_path / "v7.parquet", target=False)
    landmarks_table(tmp_path / "v8.parquet", embedding=None)
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("\n".join(rows) + "\n")
    paths = [tmp_path / f"v{i}.parquet" for i in range(1, 9)]
    return sheet, paths


def test_pairs_kinds_distances_and_cross_split(tmp_path, study, caplog):
    sheet, paths = study
    out = tmp_path / "results" / "identity_overlap.tsv"
    with caplog.at_level("INFO", logger="facevox.extract.identity_overlap"):
        pairs = io_.run(sheet, paths, out)
    rows = [tuple(r) for r in pairs[["kind", "video_a", "video_b", "distance", "cross_split"]].itertuples(index=False)]
    assert rows == [
        ("same_face_different_subject", "v1", "v2", 0.3, True),  # train / test: the leak
        ("same_face_different_subject", "v2", "v5", round(math.hypot(0.3, 0.1), 4), True),  # 0.3162
        ("same_face_different_subject", "v1", "v5", 0.1, False),  # both train: a subject count wrong, no leak
        ("different_face_same_subject", "v3", "v4", round(math.hypot(2.0, 0.9), 4), False),  # 2.1932
    ]
    assert pairs.loc[0, ["subject_a", "split_a", "subject_b", "split_b"]].tolist() == ["s1", "train", "s2", "test"]
    # the file: the contract's columns, the same rows; no temporary file beside it
    table = pd.read_csv(out, sep="\t", keep_default_na=False)
    assert list(table.columns) == io_.COLUMNS and len(table) == 4
    assert table.loc[0].tolist() == ["same_face_different_subject", "v1", "s1", "train", "v2", "s2", "test", 0.3, True]
    assert sorted(p.name for p in out.parent.iterdir()) == ["identity_overlap.tsv"]
    assert io_.read_overlap(out)["cross_split"].tolist() == [True, True, False, False]
    messages = [r.getMessage() for r in caplog.records]
    assert ("identity_overlap: 5 videos compared (10 pairs); skipped 1 excluded, 2 without a target embedding "
            "(v7, v8); 4 pair(s) found (threshold 0.6): 2 cross-split") in messages
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 4  # warn: one line per pair
    assert warnings[0] == ("identity overlap: the same face under two subject ids in different splits (a leak "
                           "between the splits): v1 (subject s1, train) and v2 (subject s2, test): distance 0.300 "
                           "(threshold 0.6); give both videos one subject_id (and one split) if they are one person")
    assert warnings[3].startswith("identity overlap: two different faces under one subject id: v3 (subject s3, "
                                  "train) and v4 (subject s3, dev): distance 2.193")


def test_threshold_moves_the_pairs(tmp_path, study):
    sheet, paths = study
    # below 0.2: only v1 ~ v5 (0.1) is one face; v1 ~ v2 (0.3) and v2 ~ v5 are two people now
    pairs = io_.run(sheet, paths, tmp_path / "o.tsv", overlap_distance=0.2)
    assert pairs[["video_a", "video_b", "kind"]].values.tolist() == [
        ["v1", "v5", "same_face_different_subject"], ["v3", "v4", "different_face_same_subject"]]
    # above 2.2 every pair is one face: v3 ~ v4 (one subject) is fine, the others are not
    pairs = io_.run(sheet, paths, tmp_path / "o.tsv", overlap_distance=2.5)
    assert len(pairs) == 9 and set(pairs["kind"]) == {"same_face_different_subject"}


def test_duplicated_video_under_two_ids_in_train_and_test(tmp_path):
    """One recording copied under two subject ids, one in train, one in test: distance 0, a leak."""
    emb = point(x=0.4, y=-0.2)
    landmarks_table(tmp_path / "p1_train.parquet", emb)
    landmarks_table(tmp_path / "p9_test.parquet", emb)
    landmarks_table(tmp_path / "other.parquet", point(y=0.9))  # another person, 0.9 / 1.2 away
    sheet = tmp_path / "s.tsv"
    sheet.write_text("video_id\tpath\tsubject_id\tsplit\np1_train\ta.mp4\tp1\ttrain\np9_test\ta.mp4\tp9\ttest\n"
                     "other\tb.mp4\tp2\ttest\n")
    paths = [tmp_path / f"{v}.parquet" for v in ("p1_train", "p9_test", "other")]
    pairs = io_.run(sheet, paths, tmp_path / "o.tsv")
    assert pairs.values.tolist() == [["same_face_different_subject", "p1_train", "p1", "train", "p9_test", "p9",
                                      "test", 0.0, True]]
    with pytest.raises(FacevoxError) as err:
        io_.run(sheet, paths, tmp_path / "o.tsv", on_identity_overlap="fail")
    text = str(err.value)
    assert text.startswith("1 pair(s) of videos in different splits show the same face under different subject ids")
    assert "p1_train (subject p1, train) and p9_test (subject p9, test): distance 0.000" in text
    assert "same subject_id" in text and "target.on_identity_overlap: warn" in text


def test_fail_mode_lists_every_cross_split_pair_only(tmp_path, study):
    sheet, paths = study
    out = tmp_path / "o.tsv"
    with pytest.raises(FacevoxError) as err:
        io_.run(sheet, paths, out, on_identity_overlap="fail")
    text = str(err.value)
    assert text.startswith("2 pair(s) of videos in different splits")
    assert "v1 (subject s1, train) and v2 (subject s2, test): distance 0.300" in text
    assert "v2 (subject s2, test) and v5 (subject s5, train): distance 0.316" in text
    assert "v1 (subject s1, train) and v5" not in text and "v3" not in text  # not leaks
    assert out.exists()  # written before the error (Snakemake removes a failed job's output)
    # no cross-split pair: fail does not fail
    sheet.write_text(sheet.read_text().replace("v2\tv2.mp4\ts2\ttest", "v2\tv2.mp4\ts2\ttrain"))
    pairs = io_.run(sheet, paths, out, on_identity_overlap="fail")
    assert not pairs["cross_split"].any() and len(pairs) == 4


def test_cli_rc_and_options(tmp_path, study, capsys):
    sheet, paths = study
    out = tmp_path / "cli.tsv"
    args = ["identity-overlap", str(sheet), str(out), *map(str, paths)]
    assert main(args) == 0 and len(pd.read_csv(out, sep="\t")) == 4
    assert main([*args, "--on-identity-overlap", "fail"]) == 2
    assert "facevox: error: 2 pair(s) of videos in different splits" in capsys.readouterr().err
    assert main([*args, "--on-identity-overlap", "fail", "--overlap-distance", "0.05"]) == 0  # nothing below 0.05
    # at 0.05 nothing is one face: only the one subject with two videos (v3, v4) is reported
    assert pd.read_csv(out, sep="\t")[["kind", "video_a", "video_b"]].values.tolist() == [
        ["different_face_same_subject", "v3", "v4"]]


def test_summary_lines_read_what_exists(tmp_path, study):
    from facevox.samples import read_samples

    sheet, paths = study
    samples = read_samples(sheet, check_files=False)
    missing = tmp_path / "not_yet.parquet"  # a run that stopped before writing it
    lines = io_.summary_lines(samples, [*paths, missing])
    assert lines[0].startswith("facevox: 2 pair(s) of videos in different splits show the SAME FACE under different "
                               "subject ids (distance below 0.6; target.on_identity_overlap: warn - QA flag "
                               "same_face_other_subject; results/identity_overlap.tsv):")
    assert lines[1:] == ["  v1 (subject s1, train) and v2 (subject s2, test): distance 0.300",
                         "  v2 (subject s2, test) and v5 (subject s5, train): distance 0.316"]
    assert "fail stops the run" in io_.summary_lines(samples, paths, on_identity_overlap="fail")[0]
    assert io_.summary_lines(samples, paths[2:]) == []  # v3 .. v8: no leak


def test_no_subject_id_is_its_own_subject_and_no_split_is_no_leak(tmp_path):
    landmarks_table(tmp_path / "a.parquet", point())
    landmarks_table(tmp_path / "b.parquet", point(x=0.2))
    sheet = tmp_path / "s.tsv"
    sheet.write_text("video_id\tpath\tsubject_id\tsplit\na\ta.mp4\t\ttrain\nb\tb.mp4\t\t\n")
    pairs = io_.run(sheet, [tmp_path / "a.parquet", tmp_path / "b.parquet"], tmp_path / "o.tsv")
    assert pairs.values.tolist() == [["same_face_different_subject", "a", "a", "train", "b", "b", "", 0.2, False]]


def test_bad_inputs_are_clear_errors(tmp_path, study):
    sheet, paths = study
    landmarks_table(tmp_path / "stranger.parquet", point())
    with pytest.raises(FacevoxError, match="stranger.parquet is not the landmarks table of a video of the sheet"):
        io_.run(sheet, [*paths, tmp_path / "stranger.parquet"], tmp_path / "o.tsv")
    landmarks_table(paths[1], [0.1] * 64)  # v2 from another identity model
    with pytest.raises(FacevoxError, match=r"embeddings of different lengths \[64, 128\]"):
        io_.run(sheet, paths, tmp_path / "o.tsv")
    with pytest.raises(FacevoxError, match="on_identity_overlap: 'stop' is not one of"):
        io_.run(sheet, paths, tmp_path / "o.tsv", on_identity_overlap="stop")


def test_distances_are_exact_and_fast():
    rng = np.random.default_rng(0)
    emb = rng.normal(0, 0.1, (600, DIM))  # descriptor-like: norms ~1.1, pair distances ~1.6
    t = time.perf_counter()
    dist = io_.pairwise_distances(emb)
    elapsed = time.perf_counter() - t
    i, j = rng.integers(0, 600, 500), rng.integers(0, 600, 500)
    assert dist[i, j] == pytest.approx(np.linalg.norm(emb[i] - emb[j], axis=1), abs=1e-9)
    assert np.all(np.diag(dist) == 0) and np.allclose(dist, dist.T)
    assert elapsed < 1.0  # 180k pairs: one matrix product
    # 600 videos through find_pairs: 2 planted duplicates among random faces
    emb[598] = emb[3] + 0.01  # v003 test, v598 train
    samples = pd.DataFrame({"subject_id": [f"s{k}" for k in range(600)], "split": ["train", "test"] * 300},
                           index=[f"v{k:03d}" for k in range(600)])
    t = time.perf_counter()
    pairs = io_.find_pairs(samples, dict(zip(samples.index, emb)))
    assert time.perf_counter() - t < 2.0
    assert pairs[["video_a", "video_b", "cross_split"]].values.tolist() == [["v003", "v598", True]]
    assert pairs.loc[0, "distance"] == pytest.approx(0.01 * math.sqrt(DIM), abs=1e-4)  # 0.1131
