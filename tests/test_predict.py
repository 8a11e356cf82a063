"""facevox.training.predict and facevox.training.trained: a new video scored with a model file's
own preprocessing gets what evaluation gave the same video in the test split; unscorable videos
are flagged, not dropped; several model files are averaged; the CLI's predict commands."""
import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from facevox.contract import ALIGNED_FACES_SCHEMA, ALIGNED_SCHEMA
from facevox.dataset.synthetic import planted_faces, planted_fau, planted_project, planted_shards, planted_whole_video
from facevox.errors import FacevoxError, InputError
from facevox.io import write_table
from facevox.models import get_spec
from facevox.training.loop import evaluate, train
from facevox.training.predict import predict_table, predict_videos


def _tiny(name, **extra):
    return {"device": "cpu", "overrides": {name: {**get_spec(name).tiny, **extra}}}


STST = _tiny("stst", epochs=2, batch_size=8, optimizer="adam", lr=1e-3, scheduler="none")


def _new_videos(folder, source, vids, prefix="new_"):
    """Copies of ``source/<vid>.parquet`` under new ids in ``folder``, and their sheet (video_id, path only)."""
    folder.mkdir(parents=True, exist_ok=True)
    for vid in vids:
        shutil.copy(source / f"{vid}.parquet", folder / f"{prefix}{vid}.parquet")
    sheet = folder.parent / f"{folder.name}.tsv"
    sheet.write_text("video_id\tpath\n" + "".join(f"{prefix}{v}\t{v}.mp4\n" for v in vids))
    return sheet


def _test_rows(path):
    table = pq.read_table(path).to_pandas()
    return table[table["split"] == "test"].set_index("video_id")


@pytest.fixture(scope="module")
def slices(tmp_path_factory):
    """8 train / 4 dev / 4 test planted videos of 600 rows (2 slices each), a tiny STST and an LR
    trained on them and evaluated."""
    folder = tmp_path_factory.mktemp("slices")
    shards = planted_shards(folder, {"train": 8, "dev": 4, "test": 4}, rows=600)
    train("stst", shards, folder / "stst.ckpt", seed=0, params=STST)
    evaluate(folder / "stst.ckpt", shards, folder / "stst.json", folder / "stst.parquet", params=STST)
    train("lr", shards, folder / "lr.ckpt", seed=0, params={"device": "cpu"})
    evaluate(folder / "lr.ckpt", shards, folder / "lr.json", folder / "lr.parquet", params={"device": "cpu"})
    return folder, shards


@pytest.mark.parametrize("name", ["stst", "lr"])
def test_a_new_video_gets_what_evaluation_gave_it(slices, tmp_path, name):
    """Slice models (torch and scikit-learn): each test video, copied under a new id, gets the test
    split's probability (1e-5) and class; the stored preprocessing is the shard set's own."""
    folder, shards = slices
    expected = _test_rows(folder / f"{name}.parquet")
    sheet = _new_videos(tmp_path / "aligned", folder / "aligned", list(expected.index))
    params = STST if name == "stst" else {"device": "cpu"}
    table = predict_table([folder / f"{name}.ckpt"], sheet, tmp_path / "aligned", tmp_path / "p.parquet",
                          params=params).set_index("video_id")
    assert list(table.index) == [f"new_{v}" for v in expected.index]
    np.testing.assert_allclose(table["prob_positive"].to_numpy(), expected["prob_positive"].to_numpy(),
                               atol=1e-5, rtol=0)
    assert table["predicted"].tolist() == expected["predicted"].tolist()
    assert table["n_items"].tolist() == expected["n_slices"].tolist() == [2, 2, 2, 2]
    assert set(table["status"]) == {"scored"} and set(table["reason"]) == {""}
    pd.testing.assert_frame_equal(pq.read_table(tmp_path / "p.parquet").to_pandas(), table.reset_index())
    prep = torch.load(folder / f"{name}.ckpt", weights_only=False)["preprocessing"]
    assert prep["kind"] == "slices" and prep["sklearn"] == (name == "lr")
    assert prep["norm"] == json.loads((shards / "norm.json").read_text())
    assert prep["shards"] == {"length": 300, "hop": None, "pad": "poly", "degree": 2, "max_gap": 15,
                              "normalisation": "minmax"}
    assert prep["vote"] == ("majority" if name == "stst" else "mean")


def test_unscorable_videos_are_flagged_not_dropped(slices, tmp_path):
    """No rows: no slice; no face on any row: every slice over max_missing_fraction; an excluded
    record: its reason - each keeps its row, with status unscored."""
    from facevox.extract.exclusion import write_excluded

    folder, _ = slices
    data = tmp_path / "aligned"
    sheet = _new_videos(data, folder / "aligned", ["test000"])
    table = pd.read_parquet(folder / "aligned" / "test001.parquet")
    write_table(table.iloc[:0], data / "empty.parquet", ALIGNED_SCHEMA, {"stage": "test"})
    write_table(table.assign(face_success=False), data / "faceless.parquet", ALIGNED_SCHEMA, {"stage": "test"})
    write_excluded(data / "broken.parquet", ALIGNED_SCHEMA, {"stage": "probe", "path": "broken.mp4",
                                                             "problem": "no video stream"}, "align")
    sheet.write_text(sheet.read_text() + "empty\te.mp4\nfaceless\tf.mp4\nbroken\tb.mp4\n")
    out = predict_table([folder / "stst.ckpt"], sheet, data, tmp_path / "p.parquet", params=STST)
    assert out["video_id"].tolist() == ["new_test000", "empty", "faceless", "broken"]
    assert out["status"].tolist() == ["scored", "unscored", "unscored", "unscored"]
    assert out["reason"].tolist()[1:] == ["no_slices", "max_missing_fraction",
                                          "excluded_input: no video stream (stage probe)"]
    assert out["n_items"].tolist() == [2, 0, 0, 0] and out["prob_positive"].isna().tolist() == [False] + [True] * 3
    assert out["predicted"].isna().tolist() == [False, True, True, True]
    assert pq.read_table(tmp_path / "p.parquet").column("predicted").null_count == 3


def test_fold_models_are_averaged_and_named(slices, tmp_path):
    """Two model files of one model: the mean of their probabilities; the metadata names both (seed,
    SHA-256), their preprocessing and the commit; another model cannot join them."""
    folder, shards = slices
    train("stst", shards, tmp_path / "seed1.ckpt", seed=1, params=STST)
    sheet = _new_videos(tmp_path / "aligned", folder / "aligned", ["test000", "test001", "test002", "test003"])
    one = predict_table([folder / "stst.ckpt"], sheet, tmp_path / "aligned", tmp_path / "a.parquet", params=STST)
    two = predict_table([tmp_path / "seed1.ckpt"], sheet, tmp_path / "aligned", tmp_path / "b.parquet", params=STST)
    both = predict_table([folder / "stst.ckpt", tmp_path / "seed1.ckpt"], sheet, tmp_path / "aligned",
                         tmp_path / "ab.parquet", params=STST)
    np.testing.assert_allclose(both["prob_positive"], (one["prob_positive"] + two["prob_positive"]) / 2, atol=1e-12)
    assert both["n_items"].tolist() == [2, 2, 2, 2]
    meta = json.loads(pq.read_schema(tmp_path / "ab.parquet").metadata[b"facevox"])
    assert [m["seed"] for m in meta["models"]] == meta["seeds"] == [0, 1]
    assert meta["models"][1]["sha256"] == hashlib.sha256((tmp_path / "seed1.ckpt").read_bytes()).hexdigest()
    assert meta["stage"] == "predict" and meta["task"] == "classification" and len(meta["preprocessing"]) == 2
    assert "git_commit" in meta and meta["aggregation"] == "mean of 2 models' outputs"
    with pytest.raises(FacevoxError, match="is model lr.*only the models of one training"):
        predict_table([folder / "stst.ckpt", folder / "lr.ckpt"], sheet, tmp_path / "aligned", tmp_path / "x.parquet",
                      params=STST)


def test_a_model_file_without_its_preprocessing_asks_for_a_retraining(slices, tmp_path):
    folder, _ = slices
    payload = torch.load(folder / "stst.ckpt", weights_only=False)
    del payload["preprocessing"]
    torch.save(payload, tmp_path / "old.ckpt")
    sheet = _new_videos(tmp_path / "aligned", folder / "aligned", ["test000"])
    with pytest.raises(FacevoxError, match="does not record its preprocessing .* retrain the model"):
        predict_table([tmp_path / "old.ckpt"], sheet, tmp_path / "aligned", tmp_path / "p.parquet", params=STST)
    with pytest.raises(FacevoxError, match="model file\\(s\\) not found: .*nope.ckpt"):
        predict_table([tmp_path / "nope.ckpt"], sheet, tmp_path / "aligned", tmp_path / "p.parquet")
    (tmp_path / "aligned" / "new_test000.parquet").unlink()
    with pytest.raises(FacevoxError, match="1 per-video table\\(s\\) missing"):
        predict_table([folder / "stst.ckpt"], sheet, tmp_path / "aligned", tmp_path / "p.parquet", params=STST)


def test_a_whole_video_model_scores_a_new_video_as_evaluation_did(tmp_path):
    """JAMFN (protocol whole, zscore): the test split's probabilities to 1e-5; a video longer than
    the seq_len JAMFN was built for is refused by the model and flagged."""
    sheet = planted_project(tmp_path, {"train": 6, "dev": 2, "test": 4}, rows=120, fps=1.0, seed=2, signal="whole")
    params = {**_tiny("jamfn", epochs=2, batch_size=4, patience=None), "whole": {"normalisation": "zscore"}}
    train("jamfn", tmp_path / "aligned", tmp_path / "m.ckpt", params=params, sheet=sheet)
    evaluate(tmp_path / "m.ckpt", tmp_path / "aligned", tmp_path / "m.json", tmp_path / "m.parquet", params=params,
             sheet=sheet)
    expected = _test_rows(tmp_path / "m.parquet")
    new = _new_videos(tmp_path / "new", tmp_path / "aligned", list(expected.index))
    long = planted_whole_video(150, "normal", np.random.default_rng(0))
    write_table(long, tmp_path / "new" / "long.parquet", ALIGNED_SCHEMA, {"stage": "test"})
    new.write_text(new.read_text() + "long\tlong.mp4\n")
    # the current config's normalisation is not the one used: the model file's is
    table = predict_table([tmp_path / "m.ckpt"], new, tmp_path / "new", tmp_path / "p.parquet",
                          params={**params, "whole": {"normalisation": "none"}}).set_index("video_id")
    scored = table.iloc[:4]
    np.testing.assert_allclose(scored["prob_positive"].to_numpy(), expected["prob_positive"].to_numpy(),
                               atol=1e-5, rtol=0)
    assert scored["predicted"].tolist() == expected["predicted"].tolist() and set(scored["n_items"]) == {1}
    assert table.loc["long", "status"] == "unscored"
    assert table.loc["long", "reason"].startswith("model: JAMFN was built for sequences of at most seq_len=120")
    prep = torch.load(tmp_path / "m.ckpt", weights_only=False)["preprocessing"]
    assert prep["kind"] == "whole" and prep["normalisation"] == "zscore" and len(prep["norm"]["mean"]) == 161


def test_a_regression_model_scores_a_new_video_as_evaluation_did(tmp_path, monkeypatch):
    """STA-DRN (tiny) on planted faces: the test scores to 1e-5 (label units); a video without a
    face is flagged; crops of another size are scored with a note."""
    sheet = planted_faces(tmp_path, {"train": 4, "dev": 1, "test": 3}, frames=8, size=16)
    params = {"device": "cpu", "vision": {"clip_len": 4, "size": 16, "clips_per_video": 1},
              "overrides": {"sta_drn": {"width": 4, "layers": [1, 1, 1, 1], "epochs": 1, "batch_size": 4}}}
    train("sta_drn", tmp_path / "faces", tmp_path / "m.ckpt", params=params, sheet=sheet)
    evaluate(tmp_path / "m.ckpt", tmp_path / "faces", tmp_path / "m.json", tmp_path / "m.parquet", params=params,
             sheet=sheet)
    expected = _test_rows(tmp_path / "m.parquet")
    new = _new_videos(tmp_path / "new", tmp_path / "faces", list(expected.index))
    faceless = pd.read_parquet(tmp_path / "faces" / "test000.parquet").assign(success=False)
    write_table(faceless[ALIGNED_FACES_SCHEMA.names], tmp_path / "new" / "faceless.parquet", ALIGNED_FACES_SCHEMA,
                {"stage": "test"})
    planted_faces(tmp_path / "big", {"test": 1}, frames=8, size=24)
    shutil.copy(tmp_path / "big" / "faces" / "test000.parquet", tmp_path / "new" / "big.parquet")
    new.write_text(new.read_text() + "faceless\tf.mp4\nbig\tb.mp4\n")
    table = predict_table([tmp_path / "m.ckpt"], new, tmp_path / "new", tmp_path / "p.parquet",
                          params={"device": "cpu", "vision": {"clip_len": 8, "size": 32}}).set_index("video_id")
    np.testing.assert_allclose(table["score"].iloc[:3].to_numpy(), expected["score_pred"].to_numpy(), atol=1e-5,
                               rtol=0)
    assert table["n_items"].tolist() == [2, 2, 2, 0, 2]  # 8 face frames in clips of 4
    assert table["status"].tolist() == ["scored"] * 3 + ["unscored", "scored"]
    assert table.loc["faceless", "reason"] == "no_face"
    assert table.loc["big", "reason"] == "face crops of 24 px, the training's were 16 px (resized to 16)"
    prep = torch.load(tmp_path / "m.ckpt", weights_only=False)["preprocessing"]
    assert prep["kind"] == "clips" and prep["crop_size"] == 16 and prep["vision"]["clip_len"] == 4
    # two models of one training (fold models, seeds): the mean of their scores, each video's crops
    # decoded once for both
    train("sta_drn", tmp_path / "faces", tmp_path / "m1.ckpt", seed=1, params=params, sheet=sheet)
    other = predict_table([tmp_path / "m1.ckpt"], new, tmp_path / "new", tmp_path / "p1.parquet", params=params)
    from facevox.training.tasks import face_frames
    decodes = []
    real = face_frames.face_batches
    monkeypatch.setattr(face_frames, "face_batches", lambda *a, **k: decodes.append(1) or real(*a, **k))
    both = predict_table([tmp_path / "m.ckpt", tmp_path / "m1.ckpt"], new, tmp_path / "new", tmp_path / "p2.parquet",
                         params=params)
    np.testing.assert_allclose(both["score"].iloc[:3], (table["score"].iloc[:3].to_numpy()
                                                        + other["score"].iloc[:3].to_numpy()) / 2, atol=1e-9)
    assert len(decodes) == 4  # the 4 videos with a face, once each


def test_a_continuous_model_scores_every_window(tmp_path):
    """shallow_b: one row per window and dimension, the test split's outputs to 1e-5."""
    sheet = planted_fau(tmp_path, {"train": 2, "dev": 1, "test": 1}, windows=40)
    params = {"device": "cpu", "affect": {"labels_dir": str(tmp_path / "labels")},
              "overrides": {"shallow_b": {"epochs": 1}}}
    train("shallow_b", tmp_path / "fau", tmp_path / "m.ckpt", params=params, sheet=sheet)
    evaluate(tmp_path / "m.ckpt", tmp_path / "fau", tmp_path / "m.json", tmp_path / "m.parquet", params=params,
             sheet=sheet)
    expected = pq.read_table(tmp_path / "m.parquet").to_pandas().query("split == 'test'")
    new = _new_videos(tmp_path / "new", tmp_path / "fau", ["test000"])
    table = predict_table([tmp_path / "m.ckpt"], new, tmp_path / "new", tmp_path / "p.parquet", params=params)
    assert len(table) == 80 and table["dimension"].tolist() == ["arousal"] * 40 + ["valence"] * 40
    np.testing.assert_allclose(table["pred"], expected["pred"], atol=1e-5, rtol=0)
    np.testing.assert_array_equal(table["centre_s"], expected["centre_s"])
    assert set(table["n_items"]) == {40} and set(table["status"]) == {"scored"}
    prep = torch.load(tmp_path / "m.ckpt", weights_only=False)["preprocessing"]
    assert prep["kind"] == "fau" and prep["dimensions"] == ["arousal", "valence"] and len(prep["columns"]) == 37


def test_predict_videos_extracts_then_scores(slices, tmp_path):
    """``facevox predict``: the extraction asked for the aligned table only, ids default to the file
    stems, a video the extraction cannot read is flagged; missing files are named."""
    folder, _ = slices
    asked = []

    def extract(video, out, cfg, vid, outputs):
        asked.append((video.name, vid, outputs))
        if video.name == "silent.mp4":
            raise InputError(video, "no video stream (audio only)")
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{vid}.aligned.parquet"
        shutil.copy(folder / "aligned" / "test000.parquet", path)
        return {"probe": out / f"{vid}.probe.json", "aligned": path}

    videos = [tmp_path / "interview.mp4", tmp_path / "silent.mp4"]
    for v in videos:
        v.write_bytes(b"")
    table = predict_videos([folder / "stst.ckpt"], videos, tmp_path / "p.parquet", work=tmp_path / "work",
                           config=None, extract=extract)
    assert asked == [("interview.mp4", "interview", ["aligned"]), ("silent.mp4", "silent", ["aligned"])]
    assert table["video_id"].tolist() == ["interview", "silent"]
    assert table["status"].tolist() == ["scored", "unscored"]
    assert table["reason"].tolist() == ["", "unreadable_video: no video stream (audio only)"]
    with pytest.raises(FacevoxError, match="1 id\\(s\\) for 2 video\\(s\\)"):
        predict_videos([folder / "stst.ckpt"], videos, tmp_path / "p.parquet", ids=["a"], extract=extract)
    with pytest.raises(FacevoxError, match="video file\\(s\\) not found: .*gone.mp4"):
        predict_videos([folder / "stst.ckpt"], [tmp_path / "gone.mp4"], tmp_path / "p.parquet", extract=extract)


def test_the_predict_commands(slices, tmp_path, capsys):
    from facevox.cli import main

    folder, _ = slices
    sheet = _new_videos(tmp_path / "aligned", folder / "aligned", ["test000", "test001"])
    rc = main(["predict-table", str(folder / "stst.ckpt"), "--sheet", str(sheet), "--data", str(tmp_path / "aligned"),
               "--out", str(tmp_path / "p.parquet"), "--params", json.dumps(STST)])
    assert rc == 0 and pq.read_table(tmp_path / "p.parquet").num_rows == 2
    (tmp_path / "v.mp4").write_bytes(b"")
    assert main(["predict", str(tmp_path / "none.ckpt"), str(tmp_path / "v.mp4")]) == 2
    assert "facevox: error: predict: model file(s) not found:" in capsys.readouterr().err


def test_extraction_runs_only_the_stages_an_output_needs():
    from facevox.extract.chain import needed

    assert needed(["aligned"]) == ["probe", "egemaps", "landmarks", "aligned"]
    assert needed(["faces"]) == ["probe", "landmarks", "faces"]
    assert needed(["fau_windows"]) == ["probe", "egemaps", "landmarks", "action_units", "fau_windows"]
    with pytest.raises(FacevoxError, match="unknown output"):
        needed(["align"])


def test_predict_runs_the_extraction_a_model_needs_on_a_real_video(slices, talking_video, tmp_path):
    """``facevox predict`` on a real 3-s video with speech: the stages of the aligned table only
    (no AUs, FAU windows, faces or QA), then one slice scored."""
    from facevox.cli import main

    folder, _ = slices
    out = tmp_path / "p.parquet"
    assert main(["predict", str(folder / "stst.ckpt"), str(talking_video), "--ids", "p01", "--out", str(out),
                 "--work", str(tmp_path / "work")]) == 0
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == [
        "p01.aligned.parquet", "p01.egemaps.parquet", "p01.landmarks.parquet", "p01.probe.json"]
    table = pq.read_table(out).to_pandas()
    assert table["video_id"].tolist() == ["p01"] and table["status"].tolist() == ["scored"]
    assert table["n_items"].tolist() == [1]  # 3 s: one slice of 300 rows, its tail padded
