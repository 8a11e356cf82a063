"""STST (facevox.models.stst): shapes, ablation structure, position encodings, cross
attention, conv axes and parameter counts."""
from __future__ import annotations

import math

import pytest
import torch

from facevox.errors import FacevoxError
from facevox.models import create_model, get_spec, n_parameters
from facevox.models.stst import STST, SpatioTemporalSqueeze, STSTStream

torch.set_num_threads(1)

# A tiny configuration for fast tests (the architecture switches are the paper's).
TINY = dict(n_visual=4, n_acoustic=3, n_classes=2, seq_len=5, d_model=8, n_heads=2,
            mlp_ratio=2, n_blocks=1)


def tiny(**overrides) -> STST:
    torch.manual_seed(0)
    return create_model("stst", **{**TINY, **overrides}).eval()


def tiny_inputs(batch: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, TINY["seq_len"], TINY["n_visual"], generator=g), \
        torch.rand(batch, TINY["seq_len"], TINY["n_acoustic"], generator=g)


def test_registry_entry_has_paper_defaults():
    spec = get_spec("stst")
    assert spec.family == "sequence"
    assert spec.defaults["n_blocks"] == 2 and spec.defaults["n_heads"] == 4
    assert spec.defaults["kernel_size"] == 3 and spec.defaults["dropout"] == 0.5
    assert spec.defaults["pos_encoding"] == "learned"
    cfg = spec.training_config()
    assert (cfg["optimizer"], cfg["momentum"], cfg["weight_decay"], cfg["lr"]) == ("sgd", 0.5, 1e-3, 1e-3)
    assert (cfg["scheduler"], cfg["batch_size"], cfg["epochs"]) == ("cosine", 64, 600)
    assert (cfg["vote"], cfg["loss"]) == ("majority", "cross_entropy")


def test_output_shape_at_paper_size():
    torch.manual_seed(0)
    model = create_model("stst", n_visual=136, n_acoustic=25, n_classes=2, seq_len=300).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 300, 136), torch.rand(2, 300, 25))
    assert logits.shape == (2, 2)
    assert torch.isfinite(logits).all()
    print("stst parameters at paper defaults:", n_parameters(model))
    assert n_parameters(model) == 6_276_978


def test_output_shape_short_sequence():
    torch.manual_seed(0)
    model = create_model("stst", seq_len=40, n_classes=3, d_model=16).eval()
    with torch.no_grad():
        logits = model(torch.rand(3, 40, 136), torch.rand(3, 40, 25))
    assert logits.shape == (3, 3)


def test_wrong_input_shape_is_a_user_error():
    model = tiny()
    visual, acoustic = tiny_inputs()
    with pytest.raises(FacevoxError, match=r"visual must be \[batch, 5, 4\]"):
        model(visual[:, :4], acoustic)
    with pytest.raises(FacevoxError, match=r"acoustic must be \[batch, 5, 3\]"):
        model(visual, acoustic[..., :2])
    with pytest.raises(FacevoxError, match="st_mode='diagonal'"):
        tiny(st_mode="diagonal")
    with pytest.raises(FacevoxError, match="not divisible"):
        tiny(n_heads=3)


def test_parameter_count_tiny_config_by_hand():
    # d=8, seq_len=5, kernel 3, 2 heads, mlp 2*d, one block.
    d, L = 8, 5
    linear = lambda i, o: i * o + o  # noqa: E731
    conv = lambda c: c * c * 3 + c   # noqa: E731
    layer_norm = 2 * d
    embed_visual = linear(4, d) + linear(d, d) + L * d          # 40 + 72 + 40 = 152
    embed_acoustic = linear(3, d) + linear(d, d) + L * d        # 32 + 72 + 40 = 144
    squeeze = conv(d) + conv(L) + conv(d)                       # time 200 + space 80 + fusion 200
    stream = 3 * layer_norm + 4 * linear(d, d) + squeeze + linear(d, 2 * d) + linear(2 * d, d)
    assert stream == 48 + 288 + 480 + 144 + 136 == 1096
    classifier = linear(2 * d, d) + linear(d, 2)                # 136 + 18
    total = embed_visual + embed_acoustic + 2 * stream + 2 * layer_norm + classifier
    assert total == 2674
    model = tiny()
    print("stst parameters, tiny config:", n_parameters(model))
    assert n_parameters(model) == 2674
    # Ablations: no space conv (-80 per stream), squeeze on Q and K (+480 per stream),
    # sinusoidal PE (no 5 x 8 table per modality).
    assert n_parameters(tiny(st_mode="time")) == 2674 - 2 * conv(L)
    assert n_parameters(tiny(st_mode="space")) == 2674 - 2 * conv(d)
    assert n_parameters(tiny(squeeze_on="qk")) == 2674 + 2 * squeeze
    assert n_parameters(tiny(pos_encoding="sinusoidal")) == 2674 - 2 * L * d


@pytest.mark.parametrize("st_mode, has_time, has_space", [
    ("time_space", True, True), ("space_time", True, True), ("sum", True, True),
    ("time", True, False), ("space", False, True)])
@pytest.mark.parametrize("squeeze_on, targets", [("v", ["v"]), ("qk", ["q", "k"])])
def test_ablation_switches_change_structure_and_run(st_mode, has_time, has_space, squeeze_on, targets):
    model = tiny(st_mode=st_mode, squeeze_on=squeeze_on)
    attention = model.blocks[0].visual.attention
    assert sorted(attention.squeeze) == sorted(targets)
    for block in attention.squeeze.values():
        assert (block.time is not None) == has_time
        assert (block.space is not None) == has_space
        assert block.fusion.kernel_size == (3,)
        if has_time:
            assert (block.time.in_channels, block.time.kernel_size) == (8, (3,))
        if has_space:
            assert (block.space.in_channels, block.space.kernel_size) == (5, (3,))
    visual, acoustic = tiny_inputs()
    with torch.no_grad():
        assert model(visual, acoustic).shape == (2, 2)


def _shift_squeeze(st_mode: str) -> SpatioTemporalSqueeze:
    """Squeeze block whose time conv delays by one frame, space conv shifts features by
    one, and fusion conv is the identity (all biases 0)."""
    block = SpatioTemporalSqueeze(d_model=3, seq_len=4, kernel_size=3, st_mode=st_mode)
    with torch.no_grad():
        for conv, tap in ((block.time, 0), (block.space, 0), (block.fusion, 1)):
            if conv is None:
                continue
            conv.weight.zero_()
            conv.bias.zero_()
            for c in range(conv.in_channels):
                conv.weight[c, c, tap] = 1.0
    return block


def test_time_conv_runs_along_frames_and_space_conv_along_features():
    v = torch.arange(1.0, 13.0).view(1, 4, 3)  # [B, T=4, d=3], all positive (ReLU is identity)

    def shift_frames(x):   # out[t] = x[t-1], zero at t=0
        return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)

    def shift_features(x):  # out[:, :, j] = x[:, :, j-1], zero at j=0
        return torch.cat([torch.zeros_like(x[..., :1]), x[..., :-1]], dim=2)

    with torch.no_grad():
        assert torch.equal(_shift_squeeze("time")(v), shift_frames(v) + v)
        assert torch.equal(_shift_squeeze("space")(v), shift_features(v) + v)
        assert torch.equal(_shift_squeeze("time_space")(v), shift_features(shift_frames(v)) + v)
        assert torch.equal(_shift_squeeze("sum")(v), shift_frames(v) + shift_features(v) + v)
    # eq. 8 written out for the first token: V_ts[0] = 0 (no frame before t=0), so V'[0] = V[0];
    # at t=1 the delayed frame [1, 2, 3] shifted along features is [0, 1, 2].
    out = _shift_squeeze("time_space")(v).detach()
    assert out[0, 0].tolist() == [1.0, 2.0, 3.0]
    assert out[0, 1].tolist() == [4.0 + 0, 5.0 + 1, 6.0 + 2]


def test_relu_between_squeeze_and_fusion():
    v = -torch.ones(1, 4, 3)
    # time conv only delays frames, so every non-zero V_ts is negative and ReLU zeroes it.
    with torch.no_grad():
        assert torch.equal(_shift_squeeze("time")(v), v)


def test_learned_position_encoding_is_a_parameter():
    model = tiny()
    pos = model.visual_embedding.pos
    assert isinstance(pos, torch.nn.Parameter) and pos.shape == (1, 5, 8)
    assert "visual_embedding.pos" in dict(model.named_parameters())


def test_sinusoidal_position_encoding_is_fixed_closed_form():
    model = tiny(pos_encoding="sinusoidal")
    names = [n for n, _ in model.named_parameters()]
    assert not any(".pos" in n for n in names)
    table = model.visual_embedding.pos[0]
    assert table.shape == (5, 8) and not table.requires_grad
    # d = 8: frequencies 1, 10000^-0.25 = 0.1, 10000^-0.5 = 0.01, 10000^-0.75 = 0.001.
    assert table[0].tolist() == [0.0, 1.0] * 4
    expected_p3 = [math.sin(3), math.cos(3), math.sin(0.3), math.cos(0.3),
                   math.sin(0.03), math.cos(0.03), math.sin(0.003), math.cos(0.003)]
    assert table[3].tolist() == pytest.approx(expected_p3, abs=1e-6)
    assert table[4, 2].item() == pytest.approx(math.sin(0.4), abs=1e-6)
    # In eval mode the embedding is exactly projection + table.
    visual, _ = tiny_inputs()
    emb = model.visual_embedding
    with torch.no_grad():
        assert torch.allclose(emb(visual), emb.project(visual) + table)


def test_cross_attention_weights_come_from_the_other_modality():
    torch.manual_seed(0)
    stream = STSTStream(d_model=8, n_heads=2, seq_len=5, kernel_size=3, st_mode="time_space",
                        squeeze_on="v", mlp_ratio=2, dropout=0.0).eval()
    own = torch.randn(1, 5, 8)
    other_constant = torch.randn(1, 1, 8).expand(1, 5, 8)
    with torch.no_grad():
        out = stream(own, other_constant)
    # Identical Q/K tokens -> uniform attention -> every frame gets the same mix of values,
    # although the stream's own tokens differ from frame to frame.
    assert torch.allclose(out, out[:, :1].expand_as(out), atol=1e-6)
    assert not torch.allclose(own, own[:, :1].expand_as(own))
    # Swapping which tensor is self/other is a different computation.
    with torch.no_grad():
        swapped = stream(other_constant, own)
    assert not torch.allclose(swapped, swapped[:, :1].expand_as(swapped), atol=1e-3)


def test_perturbing_acoustic_changes_visual_stream_block_output():
    model = tiny()
    visual, acoustic = tiny_inputs()
    block = model.blocks[0]
    with torch.no_grad():
        v = model.visual_embedding(visual)
        a = model.acoustic_embedding(acoustic)
        v_out, a_out = block(v, a)
        v_out2, a_out2 = block(v, a + 0.5 * torch.randn_like(a))
        v_out3, a_out3 = block(v + 0.5 * torch.randn_like(v), a)
    assert (v_out - v_out2).abs().max() > 1e-3   # Q/K of the visual stream are acoustic
    assert (a_out - a_out2).abs().max() > 1e-3   # V of the acoustic stream is acoustic
    assert (a_out - a_out3).abs().max() > 1e-3   # Q/K of the acoustic stream are visual


def test_every_parameter_gets_a_gradient_and_eval_is_deterministic():
    model = tiny(n_blocks=2).train()
    visual, acoustic = tiny_inputs(batch=3)
    loss = torch.nn.functional.cross_entropy(model(visual, acoustic), torch.tensor([0, 1, 1]))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(visual, acoustic), model(visual, acoustic))
