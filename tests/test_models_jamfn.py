"""JAMFN (src/facevox/models/jamfn.py): shapes, eqs. 4 and 7-12, ablation switches, sizes."""
import pytest
import torch

from facevox.errors import FacevoxError
from facevox.models import create_model, get_spec, n_parameters
from facevox.models.jamfn import JAMFN, JointAttentionFusion, SummedBiLSTM

torch.set_num_threads(1)

TINY = dict(n_visual=3, n_acoustic=2, n_classes=2, seq_len=4, hidden_size=2, num_layers=2,
            conv_channels=3, kernel_sizes=(1, 3))


def lstm_params(n_in: int, hidden: int) -> int:
    """One direction of one PyTorch LSTM layer: 4 gates x (W_ih, W_hh) + b_ih + b_hh."""
    return 4 * hidden * (n_in + hidden) + 8 * hidden


@pytest.fixture(scope="module")
def paper_model():
    torch.manual_seed(0)
    return create_model("jamfn", n_visual=136, n_acoustic=25, n_classes=2, seq_len=300).eval()


@pytest.mark.parametrize("n_frames", [300, 40])
def test_output_shape_paper_defaults(paper_model, n_frames):
    with torch.no_grad():
        logits, attention = paper_model.forward_with_attention(torch.rand(2, n_frames, 136),
                                                               torch.rand(2, n_frames, 25))
    assert logits.shape == (2, 2)
    assert torch.isfinite(logits).all()
    assert sorted(attention) == [1, 3, 5]
    assert all(a.shape == (2, 2, n_frames) for a in attention.values())


def test_bilstm_directions_summed(paper_model):
    for lstm, n_in in ((paper_model.visual_lstm, 136), (paper_model.acoustic_lstm, 25)):
        assert (lstm.lstm.hidden_size, lstm.lstm.num_layers, lstm.lstm.bidirectional) == (200, 6, True)
        assert lstm.lstm.input_size == n_in
    assert all(c.in_channels == 200 and c.out_channels == 512 for c in paper_model.visual_convs)
    torch.manual_seed(1)
    small = SummedBiLSTM(input_size=3, hidden_size=5, num_layers=2)
    x = torch.randn(2, 7, 3)
    with torch.no_grad():
        both, _ = small.lstm(x)
        out = small(x)
    assert both.shape == (2, 7, 10) and out.shape == (2, 7, 5)
    torch.testing.assert_close(out, both[..., :5] + both[..., 5:])


def test_conv_same_padding_keeps_length(paper_model):
    assert [c.kernel_size for c in paper_model.acoustic_convs] == [(1,), (3,), (5,)]
    assert [c.padding for c in paper_model.acoustic_convs] == [(0,), (1,), (2,)]  # Sec. 3.2


def test_jaf_attention_sums_to_one_on_forward():
    torch.manual_seed(2)
    model = JAMFN(**TINY).eval()
    for n_frames in (4, 2):  # full seq_len and a shorter sequence
        with torch.no_grad():
            _, attention = model.forward_with_attention(torch.randn(3, n_frames, 3), torch.randn(3, n_frames, 2))
        assert sorted(attention) == [1, 3]
        for weights in attention.values():
            assert weights.shape == (3, 2, n_frames)
            assert (weights > 0).all()
            torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2))


def test_jaf_matches_eqs_7_to_12_by_hand():
    jaf = JointAttentionFusion(channels=2, seq_len=3)
    with torch.no_grad():
        # FC1/FC2 read feature 0 and add 1: T_A = X_A[..., 0] + 1, T_V = X_V[..., 0] + 1 (eqs. 7-8).
        for fc in (jaf.fc_acoustic, jaf.fc_visual):
            fc.weight.copy_(torch.tensor([[1.0, 0.0]]))
            fc.bias.fill_(1.0)
        # FC3 swaps the halves: T_A.mixed = T_V, T_V.mixed = T_A (eqs. 10-11).
        jaf.fc_joint.weight.copy_(torch.roll(torch.eye(6), shifts=3, dims=1))
        jaf.fc_joint.bias.zero_()
    x_a = torch.tensor([[[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]])
    x_v = torch.tensor([[[0.0, 5.0], [0.0, 6.0], [0.0, 7.0]]])
    with torch.no_grad():
        fusion, attention = jaf(x_a, x_v)
    # T_V = (1, 1, 1) -> acoustic weights uniform; T_A = (1, 2, 3) -> visual weights softmax(1, 2, 3).
    e = torch.exp(torch.tensor([1.0, 2.0, 3.0]))
    w_v = e / e.sum()
    torch.testing.assert_close(attention[0, 0], torch.full((3,), 1 / 3))
    torch.testing.assert_close(attention[0, 1], w_v)
    expected = x_a[0] / 3 + w_v[:, None] * x_v[0]  # eq. 12
    torch.testing.assert_close(fusion[0], expected)
    # A 2-frame input: T_A, T_V zero-padded to seq_len; softmax over the 2 real frames only.
    with torch.no_grad():
        _, short = jaf(x_a[:, :2], x_v[:, :2])
    e2 = torch.exp(torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(short[0, 0], torch.full((2,), 0.5))
    torch.testing.assert_close(short[0, 1], e2 / e2.sum())


@pytest.mark.parametrize("fusion, head_in", [("jaf", 3), ("add", 3), ("multiply", 3), ("concat", 6)])
def test_fusion_switches(fusion, head_in):
    torch.manual_seed(3)
    model = JAMFN(**{**TINY, "fusion": fusion})
    logits, attention = model.forward_with_attention(torch.randn(2, 4, 3), torch.randn(2, 4, 2))
    assert logits.shape == (2, 2)
    assert model.head.in_features == head_in
    assert (model.jafs is not None) == (fusion == "jaf")
    assert sorted(attention) == ([1, 3] if fusion == "jaf" else [])
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_fusion_ablations_pool_by_mean():
    torch.manual_seed(4)
    model = JAMFN(**{**TINY, "fusion": "add", "kernel_sizes": (1,)}).eval()
    visual, acoustic = torch.randn(2, 4, 3), torch.randn(2, 4, 2)
    with torch.no_grad():
        x_v = model.visual_convs[0](model.visual_lstm(visual).transpose(1, 2)).transpose(1, 2)
        x_a = model.acoustic_convs[0](model.acoustic_lstm(acoustic).transpose(1, 2)).transpose(1, 2)
        torch.testing.assert_close(model(visual, acoustic), model.head((x_a + x_v).mean(1)))


def test_multi_scale_off_uses_one_kernel():
    model = JAMFN(**{**TINY, "multi_scale": False})
    assert model.kernel_sizes == [1]
    assert [c.kernel_size for c in model.visual_convs] == [(1,)]
    assert [c.kernel_size for c in model.acoustic_convs] == [(1,)]
    assert len(model.jafs) == 1
    _, attention = model.forward_with_attention(torch.randn(1, 4, 3), torch.randn(1, 4, 2))
    assert list(attention) == [1]
    assert JAMFN(**{**TINY, "kernel_sizes": (5, 3), "multi_scale": False}).kernel_sizes == [5]


def test_parameter_count_tiny_by_hand():
    # hidden 2, 2 layers: layer 1 reads the features, layer 2 the 2*2 concatenated directions.
    lstm_v = 2 * (lstm_params(3, 2) + lstm_params(4, 2))   # 2 * (56 + 64) = 240
    lstm_a = 2 * (lstm_params(2, 2) + lstm_params(4, 2))   # 2 * (48 + 64) = 224
    convs = 2 * ((3 * 2 * 1 + 3) + (3 * 2 * 3 + 3))       # 2 * (9 + 21) = 60
    jaf = 2 * ((3 + 1) + (3 + 1) + (8 * 8 + 8))           # 2 * 80 = 160 (FC3 is 2L x 2L, L = 4)
    head = 3 * 2 + 2                                      # 8
    assert lstm_v + lstm_a + convs + jaf + head == 692
    assert n_parameters(JAMFN(**TINY)) == 692


def test_parameter_count_paper_defaults(paper_model):
    lstm_v = 2 * (lstm_params(136, 200) + 5 * lstm_params(400, 200))
    lstm_a = 2 * (lstm_params(25, 200) + 5 * lstm_params(400, 200))
    convs = 2 * sum(512 * 200 * k + 512 for k in (1, 3, 5))
    jaf = 3 * (2 * (512 + 1) + 600 * 600 + 600)
    head = 512 * 2 + 2
    assert (lstm_v, lstm_a, convs, jaf, head) == (5_356_800, 5_179_200, 1_846_272, 1_084_878, 1_026)
    assert n_parameters(paper_model) == lstm_v + lstm_a + convs + jaf + head == 13_468_176


def test_registry_entry():
    spec = get_spec("jamfn")
    assert spec.family == "sequence"
    assert spec.defaults == {"hidden_size": 200, "num_layers": 6, "conv_channels": 512,
                             "kernel_sizes": (1, 3, 5), "multi_scale": True, "fusion": "jaf", "dropout": 0.0}
    train = spec.training_config()
    assert {k: train[k] for k in ("optimizer", "lr", "weight_decay", "batch_size", "epochs", "patience",
                                  "loss", "vote")} == {
        "optimizer": "adam", "lr": 1e-4, "weight_decay": 5e-4, "batch_size": 32, "epochs": 30,
        "patience": 4, "loss": "cross_entropy", "vote": "mean"}


@pytest.mark.parametrize("kwargs, message", [
    ({"fusion": "gated"}, "fusion must be one of"),
    ({"kernel_sizes": (1, 2)}, "odd"),
    ({"kernel_sizes": ()}, "empty"),
])
def test_bad_config_raises(kwargs, message):
    with pytest.raises(FacevoxError, match=message):
        JAMFN(**{**TINY, **kwargs})


def test_too_long_or_mismatched_sequence_raises():
    model = JAMFN(**TINY)
    with pytest.raises(FacevoxError, match="seq_len=4"):
        model(torch.randn(1, 5, 3), torch.randn(1, 5, 2))
    with pytest.raises(FacevoxError, match="share batch size and number of frames"):
        model(torch.randn(1, 4, 3), torch.randn(1, 3, 2))


def test_recurrent_parts_run_whole_sequences_through_nn_lstm(monkeypatch):
    """JAMFN's BiLSTMs are one multi-layer ``nn.LSTM`` per modality, never stepped per time step in
    Python: without lengths each runs once over all frames; with lengths the GPU path (packed,
    what cuDNN runs: facevox.models.masking.run_lstm on CUDA) runs once per modality over all real
    frames, and gives the CPU path's logits (padded tensors, one call per layer and direction)."""
    from facevox.models import masking

    torch.manual_seed(3)
    model = JAMFN(n_visual=5, n_acoustic=4, n_classes=2, seq_len=12, hidden_size=6, num_layers=6,
                  conv_channels=4).eval()
    assert [m.num_layers for m in model.modules() if isinstance(m, torch.nn.LSTM)] == [6, 6]
    lengths = torch.tensor([12, 7, 3])
    keep = (torch.arange(12)[None, :, None] < lengths[:, None, None]).float()
    visual, acoustic = torch.randn(3, 12, 5) * keep, torch.randn(3, 12, 4) * keep
    calls = []
    forward = torch.nn.LSTM.forward

    def counted(self, x, *args, **kwargs):
        packed = isinstance(x, torch.nn.utils.rnn.PackedSequence)
        calls.append(("packed", int(x.batch_sizes.sum())) if packed else ("padded", tuple(x.shape[:2])))
        return forward(self, x, *args, **kwargs)

    monkeypatch.setattr(torch.nn.LSTM, "forward", counted)
    with torch.no_grad():
        model(visual, acoustic)
        assert calls == [("padded", (3, 12))] * 2  # slices: one call per modality, all 12 frames
        calls.clear()
        on_cpu = model(visual, acoustic, lengths)
        assert calls == [("padded", (3, 12))] * (2 * 6 * 2)  # CPU: per modality, layer and direction
        calls.clear()
        monkeypatch.setattr(masking, "lstm_unpacked", masking.lstm_packed)  # run_lstm's CUDA branch
        on_gpu_path = model(visual, acoustic, lengths)
    assert calls == [("packed", 12 + 7 + 3)] * 2  # one fused call per modality over every real frame
    torch.testing.assert_close(on_gpu_path, on_cpu, atol=1e-6, rtol=0)
