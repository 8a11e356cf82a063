"""facevox.training.checkpoints and the loop's use of it: the resume checkpoint's cadence
(``models.checkpoint_every_s``, fake clock) and contents, resuming to the same weights, a
non-finite loss stopping the run with the last good checkpoint kept, ``models.precision`` and
``models.deterministic``."""
import json
import os

import pytest
import torch

from facevox.dataset.synthetic import planted_shards
from facevox.errors import FacevoxError
from facevox.training import checkpoints, loop
from facevox.training.loop import evaluate, load_checkpoint, resolve_precision, train

#: Small BLSTM on the planted slices (dropout on: the RNG matters); 48 train slices / 8 = 6 batches.
BLSTM = {"protocol": "slices", "hidden_size": 8, "dropout": 0.3, "batch_size": 8, "patience": None}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """24 train / 8 dev / 8 test videos, 2 slices of 300 frames each."""
    return planted_shards(tmp_path_factory.mktemp("planted"), {"train": 24, "dev": 8, "test": 8}, rows=600)


def _params(every_s=0, **over):
    return {"checkpoint_every_s": every_s, "overrides": {"blstm": {**BLSTM, **over}}}


class Killed(Exception):
    pass


def _float_numel(obj) -> int:
    """Floating-point values in the tensors of a nested checkpoint."""
    if torch.is_tensor(obj):
        return obj.numel() if obj.is_floating_point() else 0
    if isinstance(obj, dict):
        return sum(_float_numel(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_float_numel(v) for v in obj)
    return 0


def test_the_checkpoint_is_written_at_most_every_checkpoint_every_s(planted, tmp_path, monkeypatch):
    """Fake clock, 250 s per epoch, checkpoint_every_s 600: written after epochs 4 (750 s since
    the start) and 7 (750 s since epoch 4) of 9; never after the last one (the model file is)."""
    now = [0.0]
    monkeypatch.setattr(checkpoints, "clock", lambda: now[0])
    out = tmp_path / "m.ckpt"
    resume = tmp_path / "m.ckpt.resume" / "last.ckpt"
    on_disk = []

    def tick(epoch, record):
        on_disk.append(load_checkpoint(resume)["state"]["epoch"] if resume.exists() else None)
        now[0] += 250.0

    train("blstm", planted, out, seed=0, params=_params(600, epochs=9), on_epoch_end=tick)
    assert on_disk == [None, None, None, 4, 4, 4, 7, 7, 7]
    assert out.exists() and not resume.parent.exists()


def test_a_run_killed_between_checkpoints_replays_to_the_same_weights(planted, tmp_path, monkeypatch):
    """Killed after epoch 6 with the checkpoint of epoch 4 on disk: the restart runs epochs 5-7
    and ends with exactly the weights (and best epoch) of an uninterrupted run."""
    now = [0.0]
    monkeypatch.setattr(checkpoints, "clock", lambda: now[0])
    params = _params(600, epochs=7)
    full = train("blstm", planted, tmp_path / "full.ckpt", seed=2, params=params)

    def tick_then_kill(epoch, record):
        now[0] += 250.0
        if epoch == 6:
            raise Killed

    out = tmp_path / "killed.ckpt"
    now[0] = 0.0
    with pytest.raises(Killed):
        train("blstm", planted, out, seed=2, params=params, on_epoch_end=tick_then_kill)
    assert load_checkpoint(tmp_path / "killed.ckpt.resume" / "last.ckpt")["state"]["epoch"] == 4
    epochs = []
    resumed = train("blstm", planted, out, seed=2, params=params, on_epoch_end=lambda e, r: epochs.append(e))
    assert epochs == [5, 6, 7]
    assert [h["epoch"] for h in resumed["history"]] == list(range(1, 8))
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in full["history"]]
    assert resumed["best_epoch"] == full["best_epoch"]
    for key, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def test_the_checkpoint_holds_the_best_weights_once(planted, tmp_path):
    """After epoch 1 (the best so far) the best weights are the model's and are not stored again;
    after epoch 3 with lr 0 (epoch 1 stays the best: ties go to the lower dev loss, equal here)
    they are stored once beside the model's.  Adam keeps two values per weight (+ one step per
    tensor), nothing else is stored per weight - no history of weights."""
    resume = tmp_path / "m.ckpt.resume" / "last.ckpt"
    seen = {}

    def look(epoch, record):
        seen[epoch] = load_checkpoint(resume)
        if epoch == 3:
            raise Killed

    with pytest.raises(Killed):
        train("blstm", planted, tmp_path / "m.ckpt", seed=0, params=_params(0, epochs=5, lr=0.0), on_epoch_end=look)
    model = seen[1]["model"]
    n_weights = sum(v.numel() for v in model.values() if v.is_floating_point())
    n_tensors = len(seen[1]["optimizer"]["state"])
    # BiLSTM(136 -> 8) + BiLSTM(25 -> 8) + Linear(32, 2): 2 x 4672 + 2 x 1120 + 66, 2 x 8 + 2 tensors
    assert n_weights == 11_650 and n_tensors == 18
    rng = seen[1].pop("rng")
    assert sorted(rng) == ["numpy", "python", "torch"]  # + "cuda" on a GPU
    assert seen[1]["state"]["best"]["epoch"] == 1 and seen[1]["state"]["best"]["weights"] is None
    assert _float_numel(seen[1]) == 3 * n_weights + n_tensors  # weights + Adam's exp_avg, exp_avg_sq, step
    seen[3].pop("rng")
    best = seen[3]["state"]["best"]
    assert best["epoch"] == 1 and seen[3]["state"]["epoch"] == 3
    assert _float_numel(seen[3]) == 4 * n_weights + n_tensors  # + the best epoch's weights, once
    for key, value in best["weights"].items():
        assert torch.equal(value, seen[3]["model"][key]), key  # lr 0: the weights never moved
    # resuming restores the best weights of a checkpoint that did not store them apart
    m = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(m.parameters())
    path = tmp_path / "r" / "last.ckpt"
    state = {"epoch": 2, "history": [], "best": {"epoch": 2, "score": 1.0, "loss": 0.0,
                                                 "weights": {k: v.clone() for k, v in m.state_dict().items()}},
             "bad_epochs": 0}
    writer = checkpoints.Resume(path, "k", 0)
    writer.write(m, opt, None, torch.amp.GradScaler("cuda", enabled=False), state, torch.device("cpu"))
    assert load_checkpoint(path)["state"]["best"]["weights"] is None
    back = checkpoints.Resume(path, "k", 0).load(m, opt, None, torch.amp.GradScaler("cuda", enabled=False),
                                                 torch.device("cpu"))
    assert back["best"]["epoch"] == 2 and torch.equal(back["best"]["weights"]["weight"], m.weight.detach())
    assert checkpoints.Resume(path, "other key", 0).load(m, opt, None, None, torch.device("cpu")) is None


def _nan_at(monkeypatch, call: int, poison_weights: bool = False):
    """Make the ``call``-th training loss (1-based, counted over the run) NaN - or, with
    ``poison_weights``, fill the model's last weight (head bias) with NaN after that loss (finite itself)."""
    real_make_task, real_create = loop.make_task, loop.create_model
    models, calls = [], [0]

    def create(*args, **kwargs):
        models.append(real_create(*args, **kwargs))
        return models[-1]

    def make_task(*args, **kwargs):
        task = real_make_task(*args, **kwargs)
        real_loss = task.loss

        def loss(cfg, device):
            fn = real_loss(cfg, device)

            def planted(output, target):
                value = fn(output, target)
                if torch.is_grad_enabled():  # a training batch, not the dev evaluation
                    calls[0] += 1
                    if calls[0] == call:
                        if not poison_weights:
                            return value * float("nan")
                        with torch.no_grad():
                            list(models[-1].parameters())[-1].fill_(float("nan"))  # the head bias: not saved for backward
                return value
            return planted
        task.loss = loss
        return task

    monkeypatch.setattr(loop, "make_task", make_task)
    monkeypatch.setattr(loop, "create_model", create)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(planted, tmp_path, monkeypatch):
    """NaN at the 2nd batch of epoch 3 (call 2 * 6 + 2): a FacevoxError naming model, seed, epoch,
    batch and the last finite dev score; the checkpoint on disk is epoch 2's, equal to that of a
    run killed after epoch 2."""
    params = _params(0, epochs=5)
    records = {}

    def kill_after_two(epoch, record):
        records[epoch] = record
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train("blstm", planted, tmp_path / "ref.ckpt", seed=1, params=params, on_epoch_end=kill_after_two)
    good = load_checkpoint(tmp_path / "ref.ckpt.resume" / "last.ckpt")
    _nan_at(monkeypatch, 2 * 6 + 2)
    out = tmp_path / "nan.ckpt"
    with pytest.raises(FacevoxError) as caught:
        train("blstm", planted, out, seed=1, params=params)
    resume = tmp_path / "nan.ckpt.resume" / "last.ckpt"
    assert str(caught.value) == (
        f"blstm seed 1: the training loss is nan at epoch 3, batch 2 of 6 - training stopped; the last finite dev "
        f"score (f1_weighted) was {records[2]['dev_score']:.4f} at epoch 2; the resume checkpoint {resume} "
        f"(epoch 2) is the last good state. A lower lr, grad_clip or precision fp32 (a changed configuration "
        f"starts afresh) may help")
    assert not out.exists()
    kept = load_checkpoint(resume)
    assert kept["state"]["epoch"] == 2 and [h["epoch"] for h in kept["state"]["history"]] == [1, 2]
    for key, value in good["model"].items():
        assert torch.equal(value, kept["model"][key]), key


def test_nan_weights_after_an_epoch_stop_the_run_before_any_checkpoint(planted, tmp_path, monkeypatch):
    """Weights turned NaN in the last batch of epoch 1 (its loss finite): stopped at the end of
    epoch 1, nothing written."""
    _nan_at(monkeypatch, 6, poison_weights=True)
    with pytest.raises(FacevoxError, match=r"^blstm seed 0: the weights are not finite \(NaN / inf\) at epoch 1, "
                                           r"after its last batch \(6\) - training stopped; no finite dev score "
                                           r"yet; no resume checkpoint was written yet\."):
        train("blstm", planted, tmp_path / "m.ckpt", seed=0, params=_params(0, epochs=3))
    assert not (tmp_path / "m.ckpt.resume" / "last.ckpt").exists()


def test_precision_is_resolved_and_recorded(planted, tmp_path, monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert resolve_precision("auto", True, cuda) == ("fp16", None)  # amp true on CUDA: as before
    assert resolve_precision("auto", False, cuda) == ("fp32", None)
    assert resolve_precision("auto", True, cpu) == ("fp32", None)
    assert resolve_precision("fp32", True, cuda) == ("fp32", None)
    assert resolve_precision("fp16", False, cuda) == ("fp16", None)  # asked: amp does not matter
    assert resolve_precision("bf16", True, cpu) == ("bf16", None)
    assert resolve_precision("fp16", True, cpu) == (
        "fp32", "precision fp16 needs a CUDA GPU (autocast with a gradient scaler): trained in fp32 on cpu")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    with pytest.raises(FacevoxError, match=r"bf16: cuda:0 \(Tesla V100\) has no native bfloat16"):
        resolve_precision("bf16", True, cuda)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert resolve_precision("bf16", True, cuda) == ("bf16", None)
    with pytest.raises(FacevoxError, match="models.precision must be auto, fp32, bf16, fp16, not 'fp64'"):
        resolve_precision("fp64", True, cpu)

    # bf16 autocast on the CPU: trained, recorded in the model file and the metrics JSON
    params = {**_params(600, epochs=2), "precision": "bf16", "device": "cpu"}
    payload = train("blstm", planted, tmp_path / "bf16.ckpt", seed=0, params=params)
    assert payload["precision"] == "bf16" and payload["amp"] is True
    assert load_checkpoint(tmp_path / "bf16.ckpt")["precision"] == "bf16"
    assert all(v.dtype == torch.float32 for v in payload["state_dict"].values())  # autocast: fp32 weights
    evaluate(tmp_path / "bf16.ckpt", planted, tmp_path / "bf16.json", tmp_path / "bf16.parquet", params=params)
    saved = json.loads((tmp_path / "bf16.json").read_text())
    assert saved["precision"] == "bf16" and saved["deterministic"] is True
    # fp16 on the CPU: fp32 and a warning; the default (auto) on the CPU: fp32
    params = {**_params(600, epochs=1), "precision": "fp16", "device": "cpu"}
    payload = train("blstm", planted, tmp_path / "fp16.ckpt", seed=0, params=params)
    assert payload["precision"] == "fp32" and payload["warnings"] == [
        "precision fp16 needs a CUDA GPU (autocast with a gradient scaler): trained in fp32 on cpu"]
    payload = train("blstm", planted, tmp_path / "auto.ckpt", seed=0, params={**_params(600, epochs=1), "device": "cpu"})
    assert payload["precision"] == "fp32" and payload["amp"] is False and payload["warnings"] == []
    # a model file from before models.precision
    assert loop.trained_precision({"family": "sequence", "amp": True}) == "fp16"
    assert loop.trained_precision({"family": "sequence", "amp": False}) == "fp32"
    assert loop.trained_precision({"family": "sklearn"}) is None


def test_the_run_card_lists_each_trainings_precision(tmp_path):
    from facevox.report import run_card

    metrics = []
    for model, precision in (("stst", "bf16"), ("lr", None)):
        path = tmp_path / f"{model}.json"
        path.write_text(json.dumps({"model": model, "seed": 0, "task": "classification", "splits": {}, "device": "cpu",
                                    "precision": precision}))
        metrics.append(path)
    card = run_card.run_card(tmp_path / "card.json", {}, tmp_path / "none", metrics)
    assert card["trainings"][0]["precision"] == "bf16" and "precision" not in card["trainings"][1]
    page = run_card.run_card_page(tmp_path / "card.json", tmp_path / "card.html").read_text()
    assert "<th>precision</th>" in page and "<td>bf16</td>" in page


def test_deterministic_mode_is_set_for_the_training_and_undone_after(planted, tmp_path, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark)
    assert before[0] is False
    flags = []

    def look(epoch, record):
        flags.append((torch.are_deterministic_algorithms_enabled(),
                      torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.deterministic,
                      torch.backends.cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG")))

    payload = train("blstm", planted, tmp_path / "d.ckpt", params=_params(600, epochs=1), on_epoch_end=look)
    assert flags == [(True, True, True, False, ":4096:8")] and payload["settings"]["deterministic"] is True
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark) == before
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    flags.clear()
    train("blstm", planted, tmp_path / "n.ckpt", params={**_params(600, epochs=1), "deterministic": False},
          on_epoch_end=look)
    assert flags == [(False, False, before[1], before[2], None)]


def test_the_checkpoint_cadence_does_not_change_the_resume_key(planted, tmp_path):
    """A checkpoint written with checkpoint_every_s 0 is resumed by a restart with the default."""
    out = tmp_path / "m.ckpt"
    with pytest.raises(Killed):
        train("blstm", planted, out, params=_params(0, epochs=3),
              on_epoch_end=lambda e, r: (_ for _ in ()).throw(Killed) if e == 2 else None)
    epochs = []
    train("blstm", planted, out, params=_params(600, epochs=3), on_epoch_end=lambda e, r: epochs.append(e))
    assert epochs == [3]
