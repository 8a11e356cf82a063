"""facevox.training.tasks: the face-regression and continuous-affect tasks learn planted signals through
the one training loop (facevox.training.loop); clip sampling and augmentation."""
import numpy as np
import pytest
import torch

from facevox.dataset.synthetic import FAU_SIGNAL, planted_faces, planted_fau
from facevox.training.loop import evaluate, train
from facevox.training.tasks import MIRROR_68, jitter

VISION = {"clip_len": 8, "size": 32, "frames_per_video": 4, "clips_per_video": 2, "eval_frames_per_video": 8}


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Clips whose bright disc grows with the score: 24 train, 6 dev, 8 test videos."""
    folder = tmp_path_factory.mktemp("faces")
    return folder, planted_faces(folder, {"train": 24, "dev": 6, "test": 8}, frames=24, size=48)


@pytest.mark.slow
@pytest.mark.parametrize("name, size, overrides", [
    # one cosine cycle over the 40 epochs of this short run (the paper's warm restarts start with a 50-epoch cycle);
    # lr 2e-3: at 1e-3 the test CCC depended on the CPU (0.50 on an AMD EPYC at seed 0, >= 0.8 on an Intel Xeon),
    # at 2e-3 it was 0.92 / 0.92 / 0.96 for seeds 0 / 1 / 2 on the EPYC
    ("sta_drn", 32, {"width": 8, "layers": [1, 1, 1, 1], "epochs": 40, "batch_size": 8, "lr": 2e-3,
                     "scheduler": "cosine"}),
    ("dlga_cnn", 48, {"base_width": 8, "global_channels": 32, "global_dim": 32, "local_dim": 8,
                      "attention_channels": 8, "attention_hidden": 8, "head_hidden": 32, "epochs": 30,
                      "batch_size": 16, "lr": 1e-3}),
])
def test_face_models_learn_a_planted_score(faces, tmp_path, name, size, overrides):
    folder, sheet = faces
    params = {"vision": {**VISION, "size": size}, "overrides": {name: overrides}}
    train(name, folder / "faces", tmp_path / "m.ckpt", params=params, sheet=sheet, threads=2)
    result = evaluate(tmp_path / "m.ckpt", folder / "faces", tmp_path / "m.json", tmp_path / "m.parquet",
                      params=params, sheet=sheet)
    test = result["splits"]["test"]
    assert result["task"] == "regression" and test["n"] == 8
    assert test["ccc"] >= 0.8, test


@pytest.mark.slow
def test_shallow_b_recovers_a_lagged_linear_filter(tmp_path):
    """arousal = AU12_r_mean[t-3] + 0.6 AU06_r_mean[t-7], annotated 2 s late: after delay
    compensation model B (linear, L1 on the filter) reaches CCC >= 0.9 on held-out videos
    and its filter is largest on exactly those two channels."""
    sheet = planted_fau(tmp_path, {"train": 8, "dev": 3, "test": 3})
    params = {"affect": {"labels_dir": str(tmp_path / "labels"), "delays_s": {"arousal": 2.0, "valence": 2.0}},
              "overrides": {"shallow_b": {"epochs": 200, "activation": "linear", "lr": 0.01, "l1": 0.001}}}
    train("shallow_b", tmp_path / "fau", tmp_path / "b.ckpt", params=params, sheet=sheet)
    result = evaluate(tmp_path / "b.ckpt", tmp_path / "fau", tmp_path / "b.json", tmp_path / "b.parquet",
                      params=params, sheet=sheet)
    assert result["task"] == "continuous"
    assert min(result["splits"]["test"]["ccc"].values()) >= 0.9, result["splits"]["test"]
    explain = result["explain"]
    weight = np.abs(np.array(explain["filters"]["arousal"])).sum(1)
    top = {explain["features"][i] for i in np.argsort(-weight)[:2]}
    assert top == set(FAU_SIGNAL)
    lags = np.array(explain["lags"])
    au12 = np.array(explain["filters"]["arousal"])[explain["features"].index("AU12_r_mean")]
    assert lags[np.argmax(np.abs(au12))] == -3  # the filter looks 3 windows back
    attributions = explain["attributions"]["arousal"]
    assert np.array(attributions["values"]).shape == (3, len(explain["features"]), len(lags))


def test_without_delay_compensation_the_same_model_does_worse(tmp_path):
    """The labels are 2 s late: aligning them with no delay costs CCC (short run, same budget)."""
    sheet = planted_fau(tmp_path, {"train": 6, "dev": 2, "test": 2}, windows=300)
    scores = {}
    for delay in (2.0, 0.0):
        params = {"affect": {"labels_dir": str(tmp_path / "labels"), "delays_s": {"arousal": delay, "valence": delay}},
                  "overrides": {"shallow_c": {"epochs": 60, "activation": "linear", "lr": 0.01, "l1": 0.001,
                                              "kernel_size": 20}}}
        train("shallow_c", tmp_path / "fau", tmp_path / f"{delay}.ckpt", params=params, sheet=sheet)
        result = evaluate(tmp_path / f"{delay}.ckpt", tmp_path / "fau", tmp_path / f"{delay}.json",
                          tmp_path / f"{delay}.parquet", params=params, sheet=sheet)
        scores[delay] = result["splits"]["test"]["ccc_mean"]
    assert scores[2.0] > scores[0.0] + 0.2, scores


def test_clip_jitter_is_one_transform_for_the_whole_clip():
    clip = torch.rand(8, 3, 16, 16)
    rng = np.random.default_rng(0)
    out, flipped = jitter(clip, rng, flip=True)
    assert flipped and out.shape == clip.shape and 0 <= out.min() and out.max() <= 1
    # one brightness/contrast/saturation for all frames: a frame repeated gives identical outputs
    same = clip[:1].repeat(8, 1, 1, 1)
    out, _ = jitter(same, np.random.default_rng(1))
    assert torch.allclose(out, out[:1].expand_as(out))
    # flipping mirrors columns
    plain, _ = jitter(clip, np.random.default_rng(2), amount=0.0, flip=True)
    assert torch.allclose(plain, torch.flip(clip, dims=[-1]))


def test_landmark_mirror_is_an_involution_pairing_left_and_right():
    assert sorted(MIRROR_68.tolist()) == list(range(68))
    assert (MIRROR_68[MIRROR_68] == np.arange(68)).all()
    assert MIRROR_68[36] == 45 and MIRROR_68[48] == 54 and MIRROR_68[0] == 16 and MIRROR_68[30] == 30


# --------------------------------------------------------------------------- nothing dropped silently
def test_faceless_and_scoreless_videos_reach_the_metrics_json(tmp_path):
    """Regression tasks: a video without any face crop and one without a score are left out,
    named with their reason in the model file and the metrics JSON."""
    import json

    import pandas as pd

    from facevox.contract import ALIGNED_FACES_SCHEMA
    from facevox.io import write_table
    from facevox.training.loop import load_checkpoint

    sheet = planted_faces(tmp_path, {"train": 4, "dev": 1, "test": 3}, frames=4, size=16)
    path = tmp_path / "faces" / "test000.parquet"
    table = pd.read_parquet(path).assign(success=False)
    write_table(table[ALIGNED_FACES_SCHEMA.names], path, ALIGNED_FACES_SCHEMA, {"stage": "test"})
    lines = sheet.read_text().splitlines(keepends=True)
    cut = [ln.split("\t") for ln in lines]
    lines = ["\t".join(c[:5] + [""] + c[6:]) if c[0] == "test001" else ln for c, ln in zip(cut, lines)]
    sheet.write_text("".join(lines))
    params = {"vision": {**VISION, "size": 32}, "overrides": {"sta_drn": {
        "width": 4, "layers": [1, 1, 1, 1], "epochs": 1, "batch_size": 8}}}
    train("sta_drn", tmp_path / "faces", tmp_path / "m.ckpt", params=params, sheet=sheet)
    evaluate(tmp_path / "m.ckpt", tmp_path / "faces", tmp_path / "m.json", tmp_path / "m.parquet",
             params=params, sheet=sheet)
    expected = [{"split": "test", "reason": "no_face", "unit": "videos", "count": 1, "videos": {"test000": 1}},
                {"split": "test", "reason": "no_score", "unit": "videos", "count": 1, "videos": {"test001": 1}}]
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["left_out"] == expected == load_checkpoint(tmp_path / "m.ckpt")["left_out"]
    test = saved["splits"]["test"]
    assert test["n"] == 1 and test["unpredicted"] == ["test000"]
    assert test["unpredicted_reasons"] == {"test000": "no_face"}


def train_and_evaluate_shallow_b(tmp_path, sheet) -> dict:
    """One epoch of shallow_b on the planted FAU windows under ``tmp_path``, evaluated: its metrics JSON."""
    import json

    params = {"affect": {"labels_dir": str(tmp_path / "labels"), "delays_s": {"arousal": 2.0, "valence": 2.0}},
              "overrides": {"shallow_b": {"epochs": 1}}}
    train("shallow_b", tmp_path / "fau", tmp_path / "b.ckpt", params=params, sheet=sheet)
    evaluate(tmp_path / "b.ckpt", tmp_path / "fau", tmp_path / "b.json", tmp_path / "b.parquet",
             params=params, sheet=sheet)
    return json.loads((tmp_path / "b.json").read_text())


def test_unlabelled_and_faceless_fau_windows_reach_the_metrics_json(tmp_path):
    """FAU task: windows without any label (annotation ends early) are left out and named;
    windows without a face (NaN functionals, entered as 0) and without audio (NaN turns,
    entered as 0) are counted; the models read the 37 columns, turns the last."""

    import pandas as pd

    from facevox.contract import FAU_STAT_COLUMNS, FAU_WINDOWS_SCHEMA
    from facevox.io import write_table

    sheet = planted_fau(tmp_path, {"train": 2, "dev": 1, "test": 1}, windows=40)
    labels = tmp_path / "labels" / "test000.csv"
    rows = labels.read_text().splitlines(keepends=True)
    labels.write_text("".join(rows[:31]))  # header + 30 rows: windows 30..39 have no label
    path = tmp_path / "fau" / "test000.parquet"
    table = pd.read_parquet(path)
    table.loc[:4, FAU_STAT_COLUMNS] = np.nan  # windows 0..4: no face
    table["turns"] = np.float32(0.5)
    table.loc[20:26, "turns"] = np.nan  # windows 20..26: no audio (the other videos: none at all)
    write_table(table[FAU_WINDOWS_SCHEMA.names], path, FAU_WINDOWS_SCHEMA, {"stage": "test"})
    saved = train_and_evaluate_shallow_b(tmp_path, sheet)
    assert saved["left_out"] == [{"split": "test", "reason": "no_label", "unit": "windows", "count": 10,
                                  "videos": {"test000": 10}}]
    assert saved["splits"]["test"]["windows_no_face"] == 5
    assert saved["splits"]["dev"]["windows_no_face"] == 0
    assert saved["splits"]["test"]["windows_no_audio"] == 7
    assert saved["splits"]["dev"]["windows_no_audio"] == 40  # planted_fau writes no turns
    assert len(saved["feature_names"]) == 37 and saved["feature_names"][-1] == "turns"
    assert torch.load(tmp_path / "b.ckpt", weights_only=False)["data_kwargs"]["n_features"] == 37


def test_fau_windows_of_a_video_the_au_stage_excluded_are_left_out_and_named(tmp_path):
    """A video whose action_units stage wrote an excluded record (and so its fau_windows) is not
    read as a video without windows: the FAU task leaves it out, names it in the metrics JSON
    (reason excluded_input) and trains on the others."""

    from facevox.contract import FAU_WINDOWS_SCHEMA
    from facevox.extract.exclusion import write_excluded

    sheet = planted_fau(tmp_path, {"train": 3, "dev": 1, "test": 1}, windows=40)
    record = {"stage": "action_units", "path": "train001.mp4", "problem": "MediaPipe could not read it"}
    write_excluded(tmp_path / "fau" / "train001.parquet", FAU_WINDOWS_SCHEMA, record, "fau_windows")
    saved = train_and_evaluate_shallow_b(tmp_path, sheet)
    assert {"split": "train", "reason": "excluded_input", "unit": "videos", "count": 1,
            "videos": {"train001": 1}} in saved["left_out"]


def test_eval_clip_placement_by_hand():
    from facevox.training.tasks.clips import eval_clip_rows

    starts = lambda rows: [int(r[0]) for r in rows]  # noqa: E731
    # spread (STA-DRN's ValDataset): ceil(n / L) clips, step L - (s L - n) / (s - 1), last ends at n - 1
    assert starts(eval_clip_rows(150, 64, "spread")) == [0, 43, 86]
    assert starts(eval_clip_rows(130, 64, "spread")) == [0, 33, 66]
    assert starts(eval_clip_rows(128, 64, "spread")) == [0, 64]
    assert starts(eval_clip_rows(200, 64, "spread")) == [0, 45, 90, 136]  # step 45.33, truncated
    assert all(r[-1] == 149 and len(r) == 64 for r in eval_clip_rows(150, 64, "spread")[-1:])
    short = eval_clip_rows(40, 64, "spread")
    assert len(short) == 1 and short[0].tolist() == [i * 40 // 64 for i in range(64)]
    # consecutive: back to back, the last padded with the last frame
    rows = eval_clip_rows(150, 64, "consecutive")
    assert starts(rows) == [0, 64, 128] and rows[-1].tolist() == list(range(128, 150)) + [149] * 42
    with pytest.raises(Exception, match="eval_clips must be one of consecutive, spread"):
        eval_clip_rows(10, 4, "random")


def test_spread_clips_are_what_the_clip_task_evaluates(faces):
    from facevox.training.loop import run_settings
    from facevox.training.tasks import make_task

    folder, sheet = faces
    seen = {}
    for placement in ("consecutive", "spread"):
        settings = run_settings({"vision": {**VISION, "clip_len": 10, "eval_clips": placement}})
        task = make_task("clip", folder / "faces", settings, sheet)
        clips = []

        def predict(inputs, clips=clips):
            clips.extend(inputs[0])
            return np.zeros(len(inputs[0]))
        vid = task.videos["test"][0]
        task.videos["test"] = [vid]
        task.evaluate_split(predict, "test", {}, 2)
        frames, _ = task.frames.load(vid)
        seen[placement] = clips
        assert len(frames) == 24
    assert len(seen["consecutive"]) == 3 and len(seen["spread"]) == 3
    frames, _ = task.frames.load(vid)
    # spread: clips start at 0, 7, 14 (step 10 - (30 - 24) / 2); the last ends at the last frame
    torch.testing.assert_close(seen["spread"][1], frames[7:17].permute(1, 0, 2, 3))
    torch.testing.assert_close(seen["spread"][2], frames[14:24].permute(1, 0, 2, 3))
    torch.testing.assert_close(seen["consecutive"][2][:, -1], frames[23])  # padded with the last frame
