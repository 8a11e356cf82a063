"""facevox.training.loop: the one training loop - planted signals are learnt, a killed run resumes
to the same weights, the output model file is complete."""
import json

import numpy as np
import pytest
import torch

from facevox.errors import FacevoxError
from facevox.dataset.synthetic import planted_shards
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
    assert test["n"] == 8 and test["accuracy"] >= 0.9, test
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
    params = _params("jamfn", epochs=4, patience=None, dropout=0.2)
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
        train("blstm", planted, out, params={"overrides": {"blstm": {"protocol": "slices", "epochs": 3, "hidden_size": 8}}},
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
    from facevox.training.tasks import SliceClassification
    from facevox.training.loop import run_settings

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
