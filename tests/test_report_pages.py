"""The report pages: study (composition, settings, exclusions, demo wording), per-video
table, model predictions, timelines / landmark sheet, run card page, the dev-score axis
name and the sample-sheet hint."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from facevox.contract import (
    ALIGNED_FACES_SCHEMA,
    AU_COLUMNS,
    AU_SCHEMA,
    CROP_LANDMARK_X,
    CROP_LANDMARK_Y,
    EGEMAPS_SCHEMA,
    F0_COLUMN,
    LANDMARK_X,
    LANDMARK_Y,
    LANDMARKS_SCHEMA,
)
from facevox.dataset.demo import HEADER, is_demo_sheet
from facevox.errors import InputError
from facevox.io import read_table, write_table
from facevox.provenance import provenance
from facevox.report import plots, run_card, study, timelines, videos

SHEET = ("video_id\tpath\tsubject_id\tsplit\tlabel\tscore\tgender\n"
         "a\ta.mp4\ts1\ttrain\tdepression\t20\tf\n"
         "b\tb.mp4\ts1\ttrain\tnormal\t4\tf\n"
         "c\tc.mp4\ts2\ttest\tdepression\t16\tm\n"
         "d\td.mp4\ts3\ttest\tnormal\t2\tm\n"
         "e\te.mp4\t\t\t\t\t\n")


@pytest.fixture
def sheet(tmp_path):
    path = tmp_path / "samples.tsv"
    path.write_text(SHEET)
    return path


def qa_tsv(tmp_path, excluded=True):
    rows = {"video_id": list("abcde"), "face_found_rate": [1.0, 0.5, 0.25, 0.0, 1.0],
            "video_duration_s": [3.0, 2.0, 4.0, 1.0, 5.0], "audio_status": ["ok"] * 4 + ["silent"],
            "au_backend": ["landmarks"] * 4 + ["pyfeat"], "flags": ["", "", "low_face_rate", "no_face", "audio_silent"]}
    if excluded:
        rows["excluded"] = ["false", "false", "false", "true", "false"]
        rows["excluded_reason"] = ["", "", "", "no face in any frame", ""]
    path = tmp_path / "qa.tsv"
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def classification_run(tmp_path, seed, predicted):
    """metrics + predictions of model lr, seed ``seed``; test videos c (depression), d (normal)."""
    folder = tmp_path / "lr"
    folder.mkdir(exist_ok=True)
    metrics = folder / f"seed{seed}.json"
    metrics.write_text(json.dumps({"model": "lr", "seed": seed, "task": "classification",
                                   "splits": {"test": {"n": 2, "unpredicted": []}}}))
    preds = folder / f"seed{seed}.parquet"
    pd.DataFrame({"split": "test", "video_id": ["c", "d"], "label": ["depression", "normal"],
                  "predicted": predicted, "prob_positive": [0.9, 0.2]}).to_parquet(preds)
    return metrics, preds


# --------------------------------------------------------------------------- study
def test_composition_counts_videos_subjects_labels_genders(sheet):
    header, rows = study.composition(study.read_sheet(sheet))
    assert header == ["split", "videos", "subjects", "depression: videos (subjects)", "normal: videos (subjects)",
                      "gender f", "gender m", "score mean ± sd"]
    by = {r[0]: r for r in rows}
    # train: a, b from one subject s1; scores 20, 4 -> mean 12, sd sqrt(((8)^2 + 8^2) / 1) = 11.31
    assert by["train"] == ["train", 2, 1, "1 (1)", "1 (1)", 2, 0, "12.00 ± 11.31 (n=2)"]
    assert by["test"][:7] == ["test", 2, 2, "1 (1)", "1 (1)", 0, 2]
    assert by["(none)"][:3] == ["(none)", 1, 1] and by["(none)"][-1] == "–"  # e: its own subject, no score
    assert by["all"][:3] == ["all", 5, 4]  # s1, s2, s3 and e (no subject_id) -> 4


def test_exclusions_read_defensively(tmp_path):
    assert study.exclusions(study.read_qa(qa_tsv(tmp_path))) == {"d": "no face in any frame"}
    assert study.exclusions(study.read_qa(qa_tsv(tmp_path, excluded=False))) == {}  # older QA tables
    table = pd.DataFrame({"excluded": ["1", "no"]}, index=["x", "y"])  # no reason column
    assert study.exclusions(table) == {"x": "excluded (no reason recorded)"}
    assert study.exclusions(None) == {}


def test_study_page_sections_and_left_out(tmp_path, sheet):
    metrics, _ = classification_run(tmp_path, 0, ["depression", "normal"])
    rec = json.loads(metrics.read_text())
    rec["splits"]["test"]["unpredicted"] = ["c"]
    rec["left_out"] = [{"split": "train", "reason": "no_slices", "unit": "videos", "count": 1, "videos": {"b": 1}},
                       {"split": "test", "reason": "max_missing_fraction", "unit": "slices", "count": 3,
                        "videos": {"d": 3}}]
    metrics.write_text(json.dumps(rec))
    out = study.study_page(sheet, tmp_path / "study.html", {"source": "videos", "shards": {"length": 300}},
                           qa_tsv(tmp_path), [metrics])
    page = out.read_text()
    for section in ("sheet", "splits", "settings", "excluded"):
        assert f'<section id="{section}">' in page
    assert "no face in any frame" in page and "excluded by QA" in page
    assert "in no split" in page and "lr seed 0" in page  # e has no split; c unpredicted by lr
    assert "left out by lr seed 0" in page and "3 slices: " in page  # the metrics' left_out records
    assert "landmarks: 4, pyfeat: 1" in page  # AU backends used
    assert "demo-warning" not in page and "INVENTED" not in page


def test_study_page_names_the_design_sweeps_and_each_fold_run(tmp_path, sheet):
    metrics, _ = classification_run(tmp_path, 0, ["depression", "normal"])
    rec = json.loads(metrics.read_text())
    rec |= {"name": "lr@C=0.1", "fold": 1, "fold_name": "fold1",
            "cv": {"scheme": "kfold", "folds": 5, "seed": 0, "subjects": 5, "test_subjects": ["s3"]}}
    rec["splits"]["test"]["unpredicted"] = ["c"]
    metrics.write_text(json.dumps(rec))
    config = {"cv": {"scheme": "kfold", "folds": 5, "seed": 0, "dev_fraction": 0.2}, "sweeps": {"lr": {"C": [0.1, 1]}}}
    page = study.study_page(sheet, tmp_path / "s.html", config, qa_tsv(tmp_path), [metrics]).read_text()
    assert "5-fold, subject-grouped, label-stratified cross-validation" in page and "lr: C [0.1, 1]" in page
    assert "lr@C=0.1 fold1 seed 0" in page


def test_demo_wording_only_for_the_demo_sheet(tmp_path, sheet):
    demo = tmp_path / "demo.tsv"
    demo.write_text(HEADER + SHEET)
    assert is_demo_sheet(demo) and not is_demo_sheet(sheet) and not is_demo_sheet(tmp_path / "missing.tsv")
    page = study.study_page(demo, tmp_path / "s.html", {}).read_text()
    assert "demo-warning" in page and "INVENTED" in page
    assert "No QA table" in page


# --------------------------------------------------------------------------- per-video table, model page
def test_video_page_one_row_per_video_with_predictions(tmp_path, sheet):
    m0, p0 = classification_run(tmp_path, 0, ["depression", "depression"])
    m1, p1 = classification_run(tmp_path, 1, ["depression", "normal"])
    probe = tmp_path / "a.json"
    probe.write_text(json.dumps({"video": {"width": 640, "height": 360, "avg_fps": 25.0, "duration_s": 3.0},
                                 "audio": {"codec": "aac"}}))
    page = videos.video_page(sheet, tmp_path / "videos.html", qa_tsv(tmp_path), [probe], [m0, m1], [p0, p1],
                             order=["lr"]).read_text()
    body = page.split("<tbody>")[1]
    assert [f'id="video-{v}"' in body for v in "abcde"] == [True] * 5 and body.count("<tr") == 5
    assert "640×360" in page and "25.00" in page
    assert "depression · 2/2 correct" in page  # c: both seeds right
    assert "depression · 1/2 correct" in page  # d: seed 0 wrong (depression), seed 1 right; tie -> first seen
    assert "excluded: no face in any frame" in page and "in no split" in page
    assert "not evaluated" in page  # a, b are train videos: lr scores test only
    assert "50 %" in page and "low_face_rate" in page
    qa = pd.read_csv(qa_tsv(tmp_path), sep="\t", keep_default_na=False)
    qa[qa["video_id"] != "b"].to_csv(tmp_path / "qa4.tsv", sep="\t", index=False)  # b never reached QA
    page = videos.video_page(sheet, tmp_path / "v4.html", tmp_path / "qa4.tsv").read_text()
    assert "not processed (no QA record)" in page.split('id="video-b"')[1].split("</tr>")[0]


def test_summarise_regression_and_continuous():
    rows = [pd.DataFrame({"predicted": [10.0], "abs_error": [2.0]}), pd.DataFrame({"predicted": [14.0],
                                                                                   "abs_error": [2.0]})]
    assert videos.summarise("regression", rows).text == "12.0 (|err| 2.0)"
    # continuous: per-video CCC of prediction vs trace; x = [1,2,3], y = [1,2,3] -> 1; y = x + 1 ->
    # 2 cov / (var x + var y + 1) = 2 (2/3) / (2/3 + 2/3 + 1) = 4/7
    table = pd.DataFrame({"split": "test", "video_id": "v", "dimension": ["arousal"] * 3 + ["valence"] * 3,
                          "true": [1.0, 2, 3, 1, 2, 3], "pred": [1.0, 2, 3, 2, 3, 4]})
    rows = videos.prediction_rows({"task": "continuous"}, table)
    assert rows.loc[0, "ccc_arousal"] == pytest.approx(1.0) and rows.loc[0, "ccc_valence"] == pytest.approx(4 / 7)
    assert videos.summarise("continuous", [rows]).text == "CCC arousal 1.00, CCC valence 0.57"
    assert videos.summarise("classification", [rows.iloc[:0]]).text == "not predicted"


def test_model_page_rows_per_seed(tmp_path):
    m0, p0 = classification_run(tmp_path, 0, ["depression", "depression"])
    m1, p1 = classification_run(tmp_path, 1, ["depression", "normal"])
    page = videos.model_page("lr", tmp_path / "lr.html", [m0, m1], [p0, p1]).read_text()
    assert "seed 0: predicted" in page and "seed 1: p(positive)" in page
    assert page.count("<tr") == 3  # header + c + d
    assert ">1/2<" in page and ">2/2<" in page
    with pytest.raises(Exception, match="metrics files are of"):
        videos.model_page("svm", tmp_path / "x.html", [m0], [p0])


def qa_with_targets(tmp_path):
    """qa.tsv of a..e with the target columns: a a close choice between two people and the same
    face as c (another subject, another split); c one person; d excluded; b and e from older
    landmarks tables (no target record)."""
    qa = pd.read_csv(qa_tsv(tmp_path), sep="\t", keep_default_na=False, dtype=str)
    qa["target_mode"] = ["dominant", "NA", "dominant", "NA", "NA"]
    qa["target_why"] = ["present in the most frames: 120 of 200 (person 1: 110)", "NA", "the only person", "NA", "NA"]
    qa["n_people"] = ["2", "NA", "1", "NA", "NA"]
    qa["target_present_rate"] = ["0.6", "NA", "0.25", "NA", "NA"]
    qa["other_present_rate"] = ["0.55", "NA", "0.0", "NA", "NA"]
    qa["target_match_distance"] = ["0.3123", "NA", "0.21", "NA", "NA"]
    qa["same_face_as"] = ["c", "NA", "a", "NA", "NA"]
    qa["flags"] = ["multiple_faces,target_choice_close,same_face_other_subject", "",
                   "low_face_rate,same_face_other_subject", "no_face", "audio_silent"]
    path = tmp_path / "qa_targets.tsv"
    qa.to_csv(path, sep="\t", index=False)
    return path


def test_video_page_shows_the_target_person(tmp_path, sheet):
    page = videos.video_page(sheet, tmp_path / "videos.html", qa_with_targets(tmp_path)).read_text()
    assert "<th>target person</th>" in page

    def row(vid):
        return page.split(f'id="video-{vid}"')[1].split("</tr>")[0]

    a = row("a")
    assert "<b>dominant</b>: present in the most frames: 120 of 200 (person 1: 110)" in a
    assert "2 people seen · target on 60 % of frames · others on 55 % · match distance 0.31" in a
    assert "close choice: another person was present almost as often" in a
    assert "same face as c (another subject id, another split)" in a
    c = row("c")
    assert "1 person seen · target on 25 % of frames · others on 0 % · match distance 0.21" in c
    assert "same face as a" in c and "close choice" not in c
    assert "not recorded (landmarks table from before target persons)" in row("b")
    assert "target-note" not in row("e") and "target-note" not in row("d")


def test_video_page_says_when_the_target_was_not_found(tmp_path, sheet):
    qa = pd.read_csv(qa_with_targets(tmp_path), sep="\t", keep_default_na=False, dtype=str)
    qa.loc[2, ["target_mode", "target_why", "n_people", "target_present_rate", "other_present_rate",
               "target_match_distance", "same_face_as", "flags"]] = [
        "reference", "no person matches the reference face ref.jpg (nearest 0.71)", "2", "0.0", "0.8", "NA", "NA",
        "no_face,low_face_rate,multiple_faces,target_not_found"]
    qa.to_csv(tmp_path / "q.tsv", sep="\t", index=False)
    page = videos.video_page(sheet, tmp_path / "v.html", tmp_path / "q.tsv").read_text()
    c = page.split('id="video-c"')[1].split("</tr>")[0]
    assert "<b>reference</b>: no person matches the reference face ref.jpg (nearest 0.71)" in c
    assert "2 people seen · target on 0 % of frames · others on 80 %" in c and "match distance" not in c
    assert "target not found: no frame has the target&#x27;s landmarks" in c


def overlap_tsv(tmp_path, rows=True):
    path = tmp_path / "identity_overlap.tsv"
    text = "kind\tvideo_a\tsubject_a\tsplit_a\tvideo_b\tsubject_b\tsplit_b\tdistance\tcross_split\n"
    if rows:
        text += ("same_face_different_subject\ta\ts1\ttrain\tc\ts2\ttest\t0.3\tTrue\n"
                 "different_face_same_subject\ta\ts1\ttrain\tb\ts1\ttrain\t0.9123\tFalse\n")
    path.write_text(text)
    return path


def test_study_page_lists_the_identity_overlap(tmp_path, sheet):
    config = {"target": {"mode": "dominant", "overlap_distance": 0.6, "on_identity_overlap": "warn"}}
    page = study.study_page(sheet, tmp_path / "s.html", config, overlap_path=overlap_tsv(tmp_path)).read_text()
    splits = page.split('<section id="splits">')[1].split("</section>")[0]
    assert "Same person across videos" in splits
    assert ("2 pair(s) at threshold 0.6 (target.overlap_distance): 1 with one face under two subject ids in "
            "different splits") in splits
    table = splits.split('id="overlap-table"')[1]
    first, second = table.split("<tr>")[2:4]
    assert "LEAK: one face in two splits" in first and "a (s1, train)" in first and "c (s2, test)" in first
    assert ">0.30<" in first
    assert "two faces under one subject id" in second and ">0.91<" in second
    assert "dominant" in page.split('<section id="settings">')[1] and "below 0.6, warn" in page
    # none found: says so, with the threshold
    page = study.study_page(sheet, tmp_path / "s.html", {"target": {"overlap_distance": 0.5}},
                            overlap_path=overlap_tsv(tmp_path, rows=False)).read_text()
    assert "None found: no two videos whose target faces are closer than 0.5 (target.overlap_distance)" in page
    # not given: the table beside qa.tsv (the qa rule's input); none there: not checked
    overlap_tsv(tmp_path)
    page = study.study_page(sheet, tmp_path / "s.html", config, qa_path=qa_tsv(tmp_path)).read_text()
    assert "LEAK: one face in two splits" in page
    (tmp_path / "identity_overlap.tsv").unlink()
    page = study.study_page(sheet, tmp_path / "s.html", config, qa_path=qa_tsv(tmp_path)).read_text()
    assert "Not checked: no identity-overlap table in this run" in page


def test_run_card_records_the_target_mode(tmp_path):
    card = run_card.run_card(tmp_path / "card.json", {"target": {"mode": "reference"}}, tmp_path / "none")
    assert card["target_mode"] == "reference" and card["config"]["target"]["mode"] == "reference"
    page = run_card.run_card_page(tmp_path / "card.json", tmp_path / "card.html").read_text()
    assert "<th>target person (target.mode)</th><td>reference</td>" in page
    assert run_card.run_card(tmp_path / "old.json", {}, tmp_path / "none")["target_mode"] is None


def test_run_card_records_the_openface_model_files_the_au_tables_used(tmp_path):
    from facevox.extract.au_table import au_frame

    df = au_frame([0, 1], [0.0, 0.04], [True, True], [1.0, 1.0], {"AU12_r": np.array([1.0, 2.0])})
    files_a = {"AU_predictors/AU_all_best.txt": "a" * 64, "model/pdms/In-the-wild_aligned_PDM_68.txt": "b" * 64}
    files_b = {**files_a, "AU_predictors/AU_all_best.txt": "c" * 64}  # the list changed between videos
    tables = []
    for name, backend, files in (("v1", "openface_models", files_a), ("v2", "openface_models", files_a),
                                 ("v3", "openface_models", files_b), ("v4", "mediapipe", None)):
        params = {"openface_models_dir": "/of/bin", "model_files": files} if files else {}
        tables.append(tmp_path / f"{name}.parquet")
        write_table(df, tables[-1], AU_SCHEMA, provenance("action_units", params=params, au_backend=backend))
    from facevox.extract.exclusion import write_excluded

    write_excluded(tmp_path / "v5.parquet", AU_SCHEMA, {"stage": "probe", "path": "v5.mp4", "problem": "no video"},
                   "action_units")
    card = run_card.run_card(tmp_path / "card.json", {}, tmp_path / "none", au_tables=[*tables, tmp_path / "v5.parquet"])
    assert card["au_model_files"] == [{"folder": "/of/bin", "files": files_a, "videos": ["v1", "v2"]},
                                      {"folder": "/of/bin", "files": files_b, "videos": ["v3"]}]
    page = run_card.run_card_page(tmp_path / "card.json", tmp_path / "card.html").read_text()
    assert page.count("<h2>OpenFace AU model files</h2>") == 2 and "c" * 64 in page
    assert "/of/bin: 2 video(s) (v1, v2)" in page
    assert run_card.run_card(tmp_path / "c2.json", {}, tmp_path / "none", au_tables=tables[3:])["au_model_files"] is None
    with pytest.raises(InputError, match="typo.parquet: AU table not found"):
        run_card.run_card(tmp_path / "c3.json", {}, tmp_path / "none", au_tables=[tmp_path / "typo.parquet"])


# --------------------------------------------------------------------------- timelines
def write_tracks(tmp_path, pose: bool, n=50):
    t = np.arange(n) / 25.0
    face = np.arange(n) % 10 < 7
    pts = np.tile(np.linspace(10, 90, 68), (n, 1)).astype(np.float32)
    lm = pd.DataFrame({"frame": np.arange(n, dtype=np.int32), "timestamp_s": t, "success": face, "detected": True,
                       "reason": np.where(face, "", "no_face"), "n_faces": face.astype(np.int16),
                       "confidence": np.float32(1), "box_left": np.float32(0), "box_top": np.float32(0),
                       "box_width": np.float32(100), "box_height": np.float32(100),
                       **dict(zip(LANDMARK_X, pts.T)), **dict(zip(LANDMARK_Y, pts.T))})
    write_table(lm, tmp_path / "lm.parquet", LANDMARKS_SCHEMA, provenance("landmarks"))
    aus = pd.DataFrame({"frame": np.arange(n, dtype=np.int32), "timestamp_s": t, "success": face,
                        "confidence": np.float32(1), **{c: np.float32(1) for c in AU_COLUMNS}})
    for f in AU_SCHEMA:  # the AU table's other columns (pose, gaze, blendshapes): not estimated
        if f.name not in aus:
            aus[f.name] = np.float32(np.nan)
    if pose:  # a backend with OpenFace-named pose / gaze columns, radians (contract units)
        for c in ("pose_Rx", "pose_Ry", "pose_Rz", "gaze_angle_x", "gaze_angle_y"):
            aus[c] = np.float32(0.1)
    backend = "mediapipe" if pose else "landmarks"
    write_table(aus[AU_SCHEMA.names], tmp_path / "au.parquet", AU_SCHEMA,
                provenance("action_units", au_backend=backend, au_estimated=["AU04_r", "AU12_r", "AU45_r"]))
    m = 200
    eg = pd.DataFrame({"start_s": np.arange(m) * 0.01, "end_s": np.arange(m) * 0.01 + 0.02,
                       **{f.name: np.float32(0.5) for f in EGEMAPS_SCHEMA if f.name not in ("start_s", "end_s")}})
    eg[F0_COLUMN] = np.where(np.arange(m) % 2 == 0, 30.0, 0.0).astype(np.float32)
    write_table(eg, tmp_path / "eg.parquet", EGEMAPS_SCHEMA, provenance("egemaps"))
    return tmp_path / "lm.parquet", tmp_path / "au.parquet", tmp_path / "eg.parquet"


def _axes_texts(monkeypatch):
    """Capture the figure timelines saves (the texts and titles of its axes)."""
    captured = {}

    def save(fig, out):
        captured["titles"] = [ax.get_title() for ax in fig.axes]
        captured["texts"] = [t.get_text() for ax in fig.axes for t in ax.texts]
        captured["legends"] = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes
                               if ax.get_legend()]
        captured["lines"] = [line.get_ydata() for ax in fig.axes for line in ax.get_lines()]
        return plots.save_figure(fig, out)

    monkeypatch.setattr(timelines, "save_figure", save)
    return captured


def test_timeline_draws_pose_when_the_backend_has_it(tmp_path, monkeypatch):
    lm, au, eg = write_tracks(tmp_path, pose=True)
    got = _axes_texts(monkeypatch)
    out = timelines.timeline_plot("v", lm, au, eg, tmp_path / "t.png")
    assert out.stat().st_size > 10_000
    assert got["titles"][0] == "v: face found in 70 % of 50 frames (AU backend mediapipe)"
    assert got["legends"][0] == ["pose_Rx", "pose_Ry", "pose_Rz", "gaze_angle_x", "gaze_angle_y"]
    assert got["lines"][0][0] == pytest.approx(math.degrees(0.1), rel=1e-5)  # radians drawn in degrees
    assert got["legends"][1] == ["AU04_r", "AU12_r", "AU45_r"]  # only the estimated key AUs
    assert "voiced in 50 % of frames" in got["titles"][4]


def test_timeline_says_what_the_backend_does_not_estimate(tmp_path, monkeypatch):
    lm, au, eg = write_tracks(tmp_path, pose=False)
    got = _axes_texts(monkeypatch)
    timelines.timeline_plot("v", lm, au, eg, tmp_path / "t.png")
    assert "head pose and gaze: not estimated by backend landmarks" in got["texts"]


def test_landmark_sheet_neutral_canvas_or_crops(tmp_path, monkeypatch):
    lm, _, _ = write_tracks(tmp_path, pose=False)
    captured = {}

    def save(fig, out):
        captured["images"] = sum(len(ax.images) for ax in fig.axes)
        captured["title"] = fig.get_suptitle()
        return plots.save_figure(fig, out)

    monkeypatch.setattr(timelines, "save_figure", save)
    timelines.landmark_sheet("v", lm, tmp_path / "s.png")
    assert captured["images"] == 0  # no face image without the crops
    assert captured["title"] == ("v: landmarks of 6 of 35 face frames, on a neutral canvas "
                                 "(no face image: faces.keep_face_images is off)")
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (120, 90, 60)).save(buf, format="JPEG")
    crops = pd.DataFrame({"frame": np.arange(3, dtype=np.int32), "timestamp_s": [0.0, 0.1, 0.2],
                          "success": [True, False, True], "image": [buf.getvalue(), b"", buf.getvalue()],
                          **{c: np.float32(16) for c in CROP_LANDMARK_X + CROP_LANDMARK_Y}})
    write_table(crops, tmp_path / "faces.parquet", ALIGNED_FACES_SCHEMA, provenance("faces"))
    timelines.landmark_sheet("v", lm, tmp_path / "s.png", tmp_path / "faces.parquet")
    assert captured["images"] == 2 and "on the aligned face crop" in captured["title"]


def test_timeline_videos_default_and_explicit(sheet):
    samples = study.read_sheet(sheet)
    assert timelines.timeline_videos(samples, [], 1) == ["a", "c", "e"]  # first of train, test, no split
    assert timelines.timeline_videos(samples, None, 2) == ["a", "b", "c", "d", "e"]
    assert timelines.timeline_videos(samples, ["d", "d"], 2) == ["d"]
    with pytest.raises(Exception, match="not in the sample sheet: zz"):
        timelines.timeline_videos(samples, ["zz"], 2)


# --------------------------------------------------------------------------- run card page, axes, hint
def test_run_card_page(tmp_path):
    bench = tmp_path / "benchmarks"
    (bench / "landmarks").mkdir(parents=True)
    for name, s in (("a", 3.0), ("b", 1.0)):
        (bench / "landmarks" / f"{name}.tsv").write_text(f"s\tcpu_time\tmax_rss\n{s}\t{s / 2}\t100\n")
    (bench / "qa.tsv").write_text("s\tcpu_time\tmax_rss\n2.0\t1.0\t50\n")
    card = tmp_path / "card.json"
    run_card.run_card(card, {"models": {"run": ["lr"]}}, bench)
    record = json.loads(card.read_text())  # what main's run card adds: warnings and left-out totals
    record["study_warnings"] = ["dev split: 1 video"]
    record["training_warnings"] = {"device auto fell back to the CPU": ["lr/seed0"]}
    record["trainings"] = [{"model": "lr", "seed": 0, "device": "cpu", "device_requested": "auto",
                            "left_out": [{"split": "train", "reason": "no_slices", "unit": "videos", "count": 2}]}]
    card.write_text(json.dumps(record))
    page = run_card.run_card_page(card, tmp_path / "card.html").read_text()
    assert "config SHA-256" in page and run_card.config_hash({"models": {"run": ["lr"]}}) in page
    body = page.split('id="stages-table"')[1]
    assert body.index(">landmarks<") < body.index(">qa<")  # longest first
    assert ">4.00<" in body and 'width:240px' in body and 'width:120px' in body  # 4 s = full bar, 2 s = half
    assert "dev split: 1 video" in page and "(lr/seed0)" in page and "cpu (asked auto)" in page
    assert "train: 2 videos (no_slices)" in page
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(InputError, match="not a facevox run card"):
        run_card.run_card_page(bad, tmp_path / "x.html")


def test_dev_score_axis_is_named_by_metric():
    assert plots.dev_score_name("classification", "f1_weighted") == "weighted F1"
    assert plots.dev_score_name("classification", "loss") == "−loss"
    assert plots.dev_score_name("regression") == "−RMSE (score points)"
    assert plots.dev_score_name("continuous") == "mean CCC over dimensions"


def test_missing_sheet_says_to_pass_the_runs_configfile(tmp_path):
    from facevox.samples import sheet_or_hint

    with pytest.raises(InputError, match="pass the same --configfile as the run"):
        sheet_or_hint(tmp_path / "resources/demo/samples.tsv")


def test_model_page_regression_and_continuous(tmp_path):
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"model": "sta_drn", "seed": 0, "task": "regression", "splits": {"test": {}}}))
    p = tmp_path / "p.parquet"
    pd.DataFrame({"split": "test", "video_id": ["c", "d"], "score_true": [16.0, 2.0],
                  "score_pred": [13.0, 6.0]}).to_parquet(p)
    page = videos.model_page("sta_drn", tmp_path / "r.html", [m], [p]).read_text()
    assert "true score" in page and ">3.00<" in page and ">4.00<" in page  # |13 - 16|, |6 - 2|
    m.write_text(json.dumps({"model": "shallow_a", "seed": 0, "task": "continuous", "splits": {"test": {}}}))
    pd.DataFrame({"split": "test", "video_id": "v", "dimension": "arousal", "centre_s": [0.0, 0.1, 0.2],
                  "true": [1.0, 2.0, 3.0], "pred": [2.0, 3.0, 4.0]}).to_parquet(p)
    page = videos.model_page("shallow_a", tmp_path / "c.html", [m], [p]).read_text()
    assert "seed 0: CCC arousal" in page and ">0.57<" in page  # 4/7, as above


@pytest.mark.parametrize("n", [1, 2])
def test_timeline_of_one_or_two_frames_has_a_readable_time_axis(tmp_path, monkeypatch, n):
    """A one-frame video (a recording that stopped, a still saved as .mp4) once made a
    zero-length time axis that matplotlib could not render (issue 29): the axis spans the
    frames plus one frame time, at least timelines.MIN_SPAN_S, and each frame is a dot."""
    lm, au, eg = write_tracks(tmp_path, pose=True, n=n)
    captured = {}

    def save(fig, out):
        captured["xlim"] = fig.axes[-1].get_xlim()
        captured["markers"] = [line.get_marker() for ax in fig.axes[1:3] for line in ax.get_lines()]
        return plots.save_figure(fig, out)

    monkeypatch.setattr(timelines, "save_figure", save)
    out = timelines.timeline_plot("v", lm, au, eg, tmp_path / "t.png")
    assert out.stat().st_size > 10_000
    assert captured["xlim"] == (0.0, pytest.approx(max(timelines.MIN_SPAN_S, (n - 1) / 25 + 1 / 25, 199 * 0.01)))
    assert set(captured["markers"]) == {"o"}
    assert timelines.frame_duration_s(np.array([0.0])) == 1 / 25
    assert timelines.frame_duration_s(np.array([0.0, 1.0, 2.0, 4.0])) == 1.0  # the median step


def test_timeline_of_a_faceless_video_says_no_face_not_not_estimated(tmp_path, monkeypatch):
    """A backend that estimates pose and AUs, on a video with no face on any frame: the panels
    say there was no face, not that the backend does not estimate them."""
    lm, au, eg = write_tracks(tmp_path, pose=True)
    aus, meta = read_table(au)
    aus["success"] = False
    for c in aus.columns:
        if c.startswith(("AU", "pose_", "gaze_")):
            aus[c] = np.float32(np.nan)
    write_table(aus, au, AU_SCHEMA, meta)
    got = _axes_texts(monkeypatch)
    timelines.timeline_plot("v", lm, au, eg, tmp_path / "t.png")
    assert "head pose and gaze: no face found on any of the 50 frames" in got["texts"]
    assert "action units: no face found on any frame" in got["texts"]
    assert not any("not estimated" in t for t in got["texts"])
