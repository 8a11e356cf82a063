"""facevox.training.loop: the one training loop - planted signals are learnt, a killed run resumes
to the same weights, the output model file is complete."""
import json

import numpy as np
import pytest
import torch

from facevox.dataset.synthetic import planted_shards
from facevox.errors import FacevoxError
from facevox.training.loop import evaluate, load_checkpoint, train

#: Paper architectures at small widths, Adam: what learns the planted signal in seconds on a CPU.
SMALL = {
    "stst": {"d_model": 32, "n_blocks": 1, "dropout": 0.0, "optimizer": "adam", "lr": 1e-3,
             "scheduler": "none", "epochs": 25, "batch_size": 8},
    "jamfn": {"protocol": "slices", "num_layers": 1, "hidden_size": 32, "conv_channels": 32, "lr": 3e-3, "epochs": 15,
              "batch_size": 8, "patience": None},
    "depression_detector": {"protocol": "slices", "d_model": 32, "n_layers": 1, "dropout": 0.0, "lr": 1e-3, "epochs": 20,
                            "batch_size": 8},
}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """24 train / 8 dev / 8 test videos of 20 s at 30 fps: 2 slices of 300 frames each."""
    return planted_shards(tmp_path_factory.mktemp("planted"), {"train": 24, "dev": 8, "test": 8}, rows=600)


@pytest.fixture(scope="module")
def planted_many(tmp_path_factory):
    """160 train videos of 10 s: enough slices for the statistics baselines (322 features)."""
    return planted_shards(tmp_path_factory.mktemp("planted_many"), {"train": 160, "dev": 8, "test": 16},
                          rows=300, seed=1)


def _params(name, **extra):
    return {"overrides": {name: {**SMALL.get(name, {}), **extra}}}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["stst", "jamfn", "depression_detector"])
def test_neural_models_learn_the_planted_signal(planted, tmp_path, name):
    params = _params(name)
    train(name, planted, tmp_path / "m.ckpt", seed=0, params=params, threads=2)
    result = evaluate(tmp_path / "m.ckpt", planted, tmp_path / "m.json", tmp_path / "m.parquet", params=params)
    test = result["splits"]["test"]
    # at most one of the 8 held-out videos wrong (by chance: p = 9 / 256 = 0.035); a CPU other than
    # the one the widths were chosen on may round one borderline video the other way
    assert test["n"] == 8 and test["accuracy"] >= 7 / 8, test
    assert json.loads((tmp_path / "m.json").read_text())["splits"]["test"]["accuracy"] == test["accuracy"]


@pytest.mark.slow
def test_statistics_baselines_beat_chance(planted_many, tmp_path):
    for name in ("lr", "svm", "rf"):
        train(name, planted_many, tmp_path / f"{name}.ckpt", seed=0)
        result = evaluate(tmp_path / f"{name}.ckpt", planted_many, tmp_path / f"{name}.json",
                          tmp_path / f"{name}.parquet")
        assert result["splits"]["test"]["accuracy"] > 0.5, (name, result["splits"]["test"])


class Killed(Exception):
    pass


def test_killed_training_resumes_to_the_same_weights(planted, tmp_path):
    """Stopped after epoch 2 (its checkpoint written), started again: resumes at epoch 3 and
    ends with exactly the weights of an uninterrupted run (CPU, fixed seed, dropout on)."""
    params = {**_params("jamfn", epochs=4, patience=None, dropout=0.2), "checkpoint_every_s": 0}  # every epoch
    full = train("jamfn", planted, tmp_path / "full.ckpt", seed=3, params=params)

    def kill_after_two(epoch, record):
        if epoch == 2:
            raise Killed

    out = tmp_path / "killed.ckpt"
    with pytest.raises(Killed):
        train("jamfn", planted, out, seed=3, params=params, on_epoch_end=kill_after_two)
    assert not out.exists() and (tmp_path / "killed.ckpt.resume" / "last.ckpt").exists()
    epochs = []
    resumed = train("jamfn", planted, out, seed=3, params=params, on_epoch_end=lambda e, r: epochs.append(e))
    assert epochs == [3, 4]
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4]
    assert resumed["best_epoch"] == full["best_epoch"]
    for key, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    assert not (tmp_path / "killed.ckpt.resume").exists()


def test_a_checkpoint_of_another_configuration_is_not_resumed(planted, tmp_path, caplog):
    caplog.set_level("INFO", logger="facevox.training.loop")
    out = tmp_path / "m.ckpt"
    with pytest.raises(Killed):
        train("blstm", planted, out, params={"checkpoint_every_s": 0,
                                             "overrides": {"blstm": {"protocol": "slices", "epochs": 3, "hidden_size": 8}}},
              on_epoch_end=lambda e, r: (_ for _ in ()).throw(Killed))
    epochs = []
    train("blstm", planted, out, params={"overrides": {"blstm": {"protocol": "slices", "epochs": 2, "hidden_size": 8}}},
          on_epoch_end=lambda e, r: epochs.append(e))
    assert epochs == [1, 2] and "another configuration" in caplog.text


def test_model_file_holds_what_evaluation_and_reports_need(planted, tmp_path):
    payload = train("blstm", planted, tmp_path / "m.ckpt", seed=1,
                    params={"overrides": {"blstm": {"protocol": "slices", "epochs": 2, "hidden_size": 8}}})
    saved = load_checkpoint(tmp_path / "m.ckpt")
    assert saved["model"] == "blstm" and saved["seed"] == 1 and saved["classes"] == ["depression", "normal"]
    assert saved["arch"]["hidden_size"] == 8 and saved["training"]["epochs"] == 2
    assert saved["training"]["optimizer"] == "adam" and saved["training"]["weight_decay"] == 5e-4  # paper
    assert len(saved["history"]) == 2 and saved["n_parameters"] == payload["n_parameters"] > 0
    assert saved["data_kwargs"] == {"n_visual": 136, "n_acoustic": 25, "n_classes": 2, "seq_len": 300}
    assert saved["provenance"]["tools"]["torch"]


def test_early_stopping_follows_patience(planted, tmp_path):
    # lr 0: the dev score never improves after epoch 1, so patience 2 stops after epoch 3
    payload = train("blstm", planted, tmp_path / "m.ckpt",
                    params={"overrides": {"blstm": {"protocol": "slices", "epochs": 10, "patience": 2, "lr": 0.0, "hidden_size": 8}}})
    assert len(payload["history"]) == 3 and payload["best_epoch"] == 1


def test_bad_settings_are_named(planted, tmp_path):
    with pytest.raises(FacevoxError, match="unknown key 'hiden_size'"):
        train("blstm", planted, tmp_path / "m.ckpt", params={"overrides": {"blstm": {"protocol": "slices", "hiden_size": 8}}})
    with pytest.raises(FacevoxError, match="positive_label 'mdd' is not among the train labels"):
        train("lr", planted, tmp_path / "m.ckpt", params={"positive_label": "mdd"})
    with pytest.raises(FacevoxError, match="not a readable facevox model file"):
        (tmp_path / "junk.ckpt").write_text("junk")
        evaluate(tmp_path / "junk.ckpt", planted, tmp_path / "m.json", tmp_path / "m.parquet")


def test_streaming_pools_cover_every_slice_once_per_epoch(planted):
    from facevox.training.loop import run_settings
    from facevox.training.tasks import SliceClassification

    settings = run_settings({"max_memory_gb": 4 * 300 * 161 * 4 / 2**30})  # room for 4 slices
    task = SliceClassification(planted, settings)
    seen = [y for _, labels in task.batches(np.random.default_rng(0), 3) for y in labels]
    full, labels, _ = SliceClassification(planted, run_settings({})).load("train")
    assert sorted(seen) == sorted(labels.tolist()) and len(seen) == 48


def test_training_refuses_a_subject_in_two_splits(planted, tmp_path):
    """The leakage guard runs in the training job itself: a hand-assembled shard set whose
    test part repeats a train subject is refused, naming the subject."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from facevox.samples import SampleSheetError

    leaky = tmp_path / "shards"
    shutil.copytree(planted, leaky)
    part = next((leaky / "test").glob("part-*.parquet"))
    table = pq.read_table(part)
    subjects = table.column("subject_id").to_pylist()
    subjects[0] = "subj_train000"
    table = table.set_column(table.schema.get_field_index("subject_id"), table.schema.field("subject_id"),
                             pa.array(subjects, pa.string()))
    pq.write_table(table, part)
    with pytest.raises(SampleSheetError, match="subj_train000"):
        train("lr", leaky, tmp_path / "m.ckpt")


# --------------------------------------------------------------------------- nothing dropped silently
def _drop_project(folder):
    """Planted project (6 train / 2 dev / 4 test videos of 600 frames = 2 slices of 300) with one
    example of every slice-level drop path:

    * train001: no face on frames 300-599 -> its 2nd slice is over max_missing_fraction;
    * dev001: empty label -> both its slices have no label;
    * test000: no face at all -> both slices over max_missing_fraction, video unpredicted;
    * test003: 200 frames with ``pad: drop`` -> no slice at all, named by the shard set.
    """
    import pandas as pd

    from facevox.contract import ALIGNED_SCHEMA
    from facevox.dataset.shards import run
    from facevox.dataset.synthetic import planted_project
    from facevox.io import write_table

    sheet = planted_project(folder, {"train": 6, "dev": 2, "test": 4}, rows=600)
    aligned = folder / "aligned"

    def edit(vid, fn):
        table = pd.read_parquet(aligned / f"{vid}.parquet")
        write_table(fn(table), aligned / f"{vid}.parquet", ALIGNED_SCHEMA, {"stage": "test"})

    def no_face(start):
        def fn(t):
            t.loc[t.index >= start, "face_success"] = False
            return t
        return fn

    edit("train001", no_face(300))
    edit("test000", no_face(0))
    edit("test003", lambda t: t.iloc[:200].copy())
    lines = sheet.read_text().splitlines(keepends=True)
    lines = [ln.replace("\tdepression\t", "\t\t") if ln.startswith("dev001\t") else ln for ln in lines]
    sheet.write_text("".join(lines))
    out = folder / "shards"
    run(sheet, aligned, out, {"pad": "drop"})
    return out


def test_every_slice_drop_reaches_the_log_and_the_metrics_json(tmp_path, caplog):
    shards = _drop_project(tmp_path)
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["left_out"] == [{"split": "test", "reason": "no_slices", "unit": "videos", "count": 1,
                                     "videos": {"test003": 1}}]
    caplog.set_level("WARNING", logger="facevox.training.loop")
    train("lr", shards, tmp_path / "m.ckpt", seed=0)
    result = evaluate(tmp_path / "m.ckpt", shards, tmp_path / "m.json", tmp_path / "m.parquet")
    expected = [
        {"split": "test", "reason": "no_slices", "unit": "videos", "count": 1, "videos": {"test003": 1}},
        {"split": "train", "reason": "max_missing_fraction", "unit": "slices", "count": 1,
         "videos": {"train001": 1}},
        {"split": "dev", "reason": "no_label", "unit": "slices", "count": 2, "videos": {"dev001": 2}},
        {"split": "test", "reason": "max_missing_fraction", "unit": "slices", "count": 2,
         "videos": {"test000": 2}},
    ]
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["left_out"] == expected == result["left_out"]
    assert load_checkpoint(tmp_path / "m.ckpt")["left_out"] == expected
    test = saved["splits"]["test"]
    assert test["n"] == 2 and test["unpredicted"] == ["test000", "test003"]
    assert test["unpredicted_reasons"] == {"test000": "max_missing_fraction", "test003": "no_slices"}
    assert test["slices_left_out"] == 2
    assert saved["splits"]["dev"]["unpredicted_reasons"] == {"dev001": "no_label"}
    assert "lr: train split: 1 slice left out (over models.max_missing_fraction still missing): train001 (1)" \
        in caplog.text
    assert "lr: dev split: 2 slices left out (no label the model knows): dev001 (2)" in caplog.text
    assert "lr: test split: 1 video left out (no slice (shorter than one slice)): test003" in caplog.text


def test_an_excluded_input_named_by_the_shard_set_reaches_the_metrics_json(planted, tmp_path):
    """The shard manifest's ``left_out`` entries (e.g. an input the run excluded) are copied
    into the metrics JSON and the unpredicted videos' reasons as they are."""
    import shutil

    shards = tmp_path / "shards"
    shutil.copytree(planted, shards)
    manifest = json.loads((shards / "manifest.json").read_text())
    entry = {"split": "test", "reason": "excluded_input", "unit": "videos", "count": 1, "videos": {"bad": 1}}
    manifest["left_out"] = [entry]
    (shards / "manifest.json").write_text(json.dumps(manifest))
    train("lr", shards, tmp_path / "m.ckpt", seed=0)
    saved = evaluate(tmp_path / "m.ckpt", shards, tmp_path / "m.json", tmp_path / "m.parquet")
    assert saved["left_out"] == [entry]
    assert saved["splits"]["test"]["unpredicted"] == ["bad"]
    assert saved["splits"]["test"]["unpredicted_reasons"] == {"bad": "excluded_input"}


def test_a_doubtful_dev_split_and_the_cpu_fallback_are_warnings_in_the_metrics_json(tmp_path, monkeypatch):
    """One dev video of one class, dev score AUC (undefined), device auto without a GPU: each is
    one warning line in the log, the model file and the metrics JSON."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    shards = planted_shards(tmp_path, {"train": 4, "dev": 1, "test": 2}, rows=300)
    params = {"select_by": "auc", **_params("stst", epochs=2)}
    train("stst", shards, tmp_path / "m.ckpt", seed=0, params=params)
    saved = evaluate(tmp_path / "m.ckpt", shards, tmp_path / "m.json", tmp_path / "m.parquet", params=params)
    assert saved["device"] == "cpu" and saved["device_requested"] == "auto"
    assert saved["warnings"] == [
        "device auto: no CUDA GPU visible, trained on the CPU",
        "dev split too small: 1 video(s), fewer than models.min_dev_videos (4) - the best epoch and early "
        "stopping rest on them",
        "dev split of one class: every dev video is 'normal' - the dev score says little about the other class",
        "dev score undefined: NaN (e.g. AUC of a one-class dev split) - epochs compete on dev loss only",
    ]
    assert json.loads((tmp_path / "m.json").read_text())["warnings"] == saved["warnings"]


def _warm_restart_lr(epoch, lr=1e-3, t0=50, t_mult=2):
    """Eq. 13 of STA-DRN by hand: the rate of 0-based ``epoch`` (cycles of 50, 100, 200 ... epochs)."""
    start, length = 0, t0
    while epoch >= start + length:
        start, length = start + length, length * t_mult
    return 0.5 * lr * (1 + np.cos(np.pi * (epoch - start) / length))


def test_warm_restart_schedule_follows_eq_13_over_200_epochs():
    from facevox.models import get_spec
    from facevox.training.loop import make_scheduler

    cfg = get_spec("sta_drn").training_config()
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([weight], lr=cfg["lr"])
    scheduler = make_scheduler(optimizer, cfg)
    seen = []
    for _ in range(200):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(seen, [_warm_restart_lr(e) for e in range(200)], rtol=1e-9, atol=1e-15)
    # hand values: start, mid first cycle, restarts after epochs 50 and 150, mid second cycle
    assert seen[0] == pytest.approx(1e-3) and seen[25] == pytest.approx(5e-4)
    assert seen[49] == pytest.approx(0.5e-3 * (1 + np.cos(np.pi * 49 / 50)))
    assert seen[50] == pytest.approx(1e-3) and seen[100] == pytest.approx(5e-4)
    assert seen[149] < 1e-6 and seen[150] == pytest.approx(1e-3) and seen[199] == pytest.approx(
        0.5e-3 * (1 + np.cos(np.pi * 49 / 200)))


def test_the_loop_uses_the_warm_restart_schedule(planted, tmp_path):
    params = _params("stst", epochs=7, scheduler="cosine_warm_restarts", T0=2, T_mult=2, lr=1e-3)
    payload = train("stst", planted, tmp_path / "m.ckpt", seed=0, params=params, threads=2)
    lrs = [record["lr"] for record in payload["history"]]
    np.testing.assert_allclose(lrs, [_warm_restart_lr(e, 1e-3, 2, 2) for e in range(7)], rtol=1e-9)
    assert lrs[2] == pytest.approx(1e-3) and lrs[6] == pytest.approx(1e-3)  # restarts after 2 and 2 + 4 epochs
    with pytest.raises(FacevoxError, match="T0 must be a positive whole number"):
        train("stst", planted, tmp_path / "bad.ckpt", params=_params("stst", scheduler="cosine_warm_restarts",
                                                                     T0=0))
