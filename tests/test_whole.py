"""Protocol ``whole`` (facevox.training.tasks.whole, facevox.models.masking): whole videos,
padded per batch, masked in the model; the registry's protocol per model."""
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from facevox.dataset.synthetic import F0_COLUMN, planted_project
from facevox.errors import FacevoxError
from facevox.models import create_model, get_spec, split_overrides
from facevox.models.families import family, protocol_of
from facevox.models.masking import lstm_packed, lstm_unpacked, run_lstm
from facevox.training.loop import evaluate, train

MASKED = ["depression_detector", "blstm", "tfn", "fusion_concat", "fusion_add", "fusion_multiply", "jamfn"]


@pytest.fixture(scope="module")
def whole_set(tmp_path_factory):
    """32 train / 8 dev / 16 test videos of 1200 rows at 1 Hz; the label is in the whole-video F0 mean only."""
    folder = tmp_path_factory.mktemp("whole")
    sheet = planted_project(folder, {"train": 32, "dev": 8, "test": 16}, rows=1200, fps=1.0, seed=4, signal="whole")
    return sheet, folder / "aligned"


def test_registry_protocols_are_the_papers():
    assert {n: protocol_of(n) for n in ["stst", *MASKED, "lr"]} == {
        "stst": "slices", **{n: "whole" for n in MASKED}, "lr": "slices"}
    assert get_spec("jamfn").training_config()["protocol"] == "whole"
    assert get_spec("jamfn").training_config(protocol="slices")["protocol"] == "slices"
    fam = family("depression_detector")
    assert (fam.task, fam.data, fam.needs_sheet) == ("whole", "align", True)
    over = {"overrides": {"depression_detector": {"protocol": "slices"}}}
    assert family("depression_detector", over).data == "shards" and protocol_of("depression_detector", over) == "slices"
    with pytest.raises(FacevoxError, match=r"protocol 'whole' is not one this model can train with \(slices\)"):
        split_overrides("lr", {"protocol": "whole"})
    with pytest.raises(FacevoxError, match="protocol 'wole'"):
        split_overrides("blstm", {"protocol": "wole"})


def test_the_signal_is_in_no_300_row_window(whole_set):
    """The planted set's property, measured: the whole-video F0 mean separates the classes
    perfectly; the best threshold on the mean of any 300-row window does not come close."""
    sheet, aligned = whole_set
    samples = pd.read_csv(sheet, sep="\t").query("split == 'train'")
    whole, windows, wlabels = [], [], []
    for vid, label in zip(samples["video_id"], samples["label"]):
        f0 = pq.read_table(aligned / f"{vid}.parquet", columns=[F0_COLUMN]).column(0).to_numpy()
        whole.append((f0.mean(), label))
        for start in range(0, len(f0) - 299, 100):
            windows.append(f0[start:start + 300].mean())
            wlabels.append(label == "depression")
    assert min(m for m, lab in whole if lab == "depression") > max(m for m, lab in whole if lab == "normal")
    windows, wlabels = np.array(windows), np.array(wlabels)
    best = max(((windows > t) == wlabels).mean() for t in np.unique(windows))
    assert best < 0.75, best


@pytest.mark.parametrize("name", MASKED)
def test_padding_does_not_change_a_masked_models_logits(name):
    """Pad a video by 100 zero rows (in a batch with a longer one): same logits as alone."""
    torch.manual_seed(0)
    model = create_model(name, **get_spec(name).tiny, n_visual=136, n_acoustic=25, n_classes=2, seq_len=400).eval()
    visual, acoustic = torch.randn(1, 157, 136), torch.randn(1, 157, 25)
    with torch.no_grad():
        alone = model(visual, acoustic)
        padded = model(torch.cat([visual, torch.zeros(1, 100, 136)], 1), torch.cat([acoustic, torch.zeros(1, 100, 25)], 1),
                       torch.tensor([157]))
        batch = model(torch.cat([torch.cat([visual, torch.zeros(1, 100, 136)], 1), torch.randn(1, 257, 136)]),
                      torch.cat([torch.cat([acoustic, torch.zeros(1, 100, 25)], 1), torch.randn(1, 257, 25)]),
                      torch.tensor([157, 257]))
        unmasked = model(torch.cat([visual, torch.zeros(1, 100, 136)], 1), torch.cat([acoustic, torch.zeros(1, 100, 25)], 1))
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(batch[:1], alone, atol=1e-5, rtol=0)
    assert (unmasked - alone).abs().max() > 1e-5  # without the lengths the zeros do count


@pytest.mark.parametrize("layers,bidirectional,dropout", [(3, True, 0.0), (1, False, 0.0), (2, True, 0.5)])
def test_unpacked_lstm_is_the_packed_one(layers, bidirectional, dropout):
    """The CPU path (padded tensors, backward direction reversed within each length) gives the
    packed LSTM's outputs and weight gradients; with dropout, the same in eval mode."""
    torch.manual_seed(0)
    lstm = nn.LSTM(7, 5, num_layers=layers, batch_first=True, bidirectional=bidirectional, dropout=dropout)
    if dropout:
        lstm.eval()
    lengths = torch.tensor([9, 3, 1, 6])
    x = torch.randn(4, 9, 7) * (torch.arange(9)[None, :, None] < lengths[:, None, None])
    packed = lstm_packed(lstm, x, lengths)  # what run_lstm runs on CUDA
    target = torch.randn_like(packed)
    grads = torch.autograd.grad((packed * target).sum(), list(lstm.parameters()))
    unpacked = lstm_unpacked(lstm, x, lengths)
    torch.testing.assert_close(unpacked, packed, atol=1e-6, rtol=0)
    assert (unpacked[1, 3:] == 0).all() and (unpacked[2, 1:] == 0).all()
    for mine, theirs in zip(torch.autograd.grad((unpacked * target).sum(), list(lstm.parameters())), grads):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)
    assert torch.equal(run_lstm(lstm, x, lengths), unpacked)  # what the models run on the CPU


def test_bad_lengths_fail_by_name():
    model = create_model("blstm", **get_spec("blstm").tiny).eval()
    with pytest.raises(FacevoxError, match=r"blstm: lengths must be 2 values in 1\.\.10"):
        model(torch.zeros(2, 10, 136), torch.zeros(2, 10, 25), torch.tensor([3, 11]))
    with pytest.raises(FacevoxError, match="stst: .*protocol slices"):
        create_model("stst", **get_spec("stst").tiny).eval()(torch.zeros(1, 300, 136), torch.zeros(1, 300, 25),
                                                               torch.tensor([300]))


@pytest.mark.slow
def test_a_whole_model_learns_a_whole_video_signal(whole_set, tmp_path):
    sheet, aligned = whole_set
    params = {"whole": {"normalisation": "zscore"},
              "overrides": {"tfn": {"epochs": 30, "batch_size": 8, "lr": 3e-3, "patience": None,
                                    "dropout": 0.0, "weight_decay": 0.0}}}
    payload = train("tfn", aligned, tmp_path / "m.ckpt", seed=0, params=params, sheet=sheet)
    assert payload["training"]["protocol"] == "whole" and payload["data_kwargs"]["seq_len"] == 1200
    result = evaluate(tmp_path / "m.ckpt", aligned, tmp_path / "m.json", tmp_path / "m.parquet", params=params,
                      sheet=sheet)
    test = result["splits"]["test"]
    assert result["protocol"] == "whole" and test["n"] == 16
    # 16 test videos: 15 or more right has probability 17 / 2**16 under chance
    assert test["accuracy"] >= 15 / 16, test
    assert {"f1_weighted", "precision_weighted", "recall_weighted", "f1_positive", "precision_positive",
            "recall_positive"} <= set(test), test
    table = pq.read_table(tmp_path / "m.parquet").to_pandas()
    assert len(table) == 8 + 16 and set(table["n_slices"]) == {1}


def test_whole_task_streams_within_the_memory_budget(whole_set):
    """A budget smaller than one video: nothing is cached, batches are still right."""
    from facevox.config import stage_params
    from facevox.training.tasks.whole import WholeClassification

    sheet, aligned = whole_set
    settings = stage_params("models", {"max_memory_gb": 1e-6})
    task = WholeClassification(sheet, aligned, settings)
    batches = list(task.batches(np.random.default_rng(0), 8))
    assert len(batches) == 4 and task._cached_bytes == 0
    (visual, acoustic, lengths), _ = batches[0]
    assert visual.shape == (8, 1200, 136) and acoustic.shape == (8, 1200, 25) and list(lengths) == [1200] * 8
    assert sorted(np.concatenate([b[1] for b in batches]).tolist()) == [0] * 16 + [1] * 16
    roomy = WholeClassification(sheet, aligned, stage_params("models", {}))
    list(roomy.batches(np.random.default_rng(0), 8))
    assert roomy._cached_bytes == 32 * 1200 * 161 * 4
