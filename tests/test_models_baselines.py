"""Neural D-Vlog baselines: depression_detector, blstm, tfn, fusion_{concat,add,multiply}."""
import pytest
import torch

from facevox.errors import FacevoxError
from facevox.models import TRAINING_KEYS, create_model, get_spec, list_models, n_parameters, split_overrides
from facevox.models.tfn import tensor_fusion

torch.set_num_threads(1)

NAMES = ["depression_detector", "blstm", "tfn", "fusion_concat", "fusion_add", "fusion_multiply"]
DATA = {"n_visual": 136, "n_acoustic": 25, "n_classes": 2}
JAMFN = {"optimizer": "adam", "lr": 1e-4, "weight_decay": 5e-4, "batch_size": 32, "epochs": 30, "patience": 4}


def inputs(batch=2, t=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, t, 136, generator=g), torch.randn(batch, t, 25, generator=g)


def build(name, **cfg):
    torch.manual_seed(0)
    return create_model(name, **{**DATA, "seq_len": 300, **cfg}).eval()


def lstm_params(n_in, hidden, directions):
    return directions * (4 * hidden * (n_in + hidden) + 8 * hidden)


def encoder_layer_params(width):  # attention (in/out proj), feed-forward of the same width, two LayerNorms
    return (4 * width * width + 4 * width) + (2 * width * width + 2 * width) + 4 * width


def test_registered_as_sequence_models_with_their_training_protocols():
    assert set(NAMES) <= set(list_models(family="sequence"))
    for name in NAMES[1:]:
        config = get_spec(name).training_config()
        assert {k: config[k] for k in JAMFN} == JAMFN
    detector = get_spec("depression_detector").training_config()
    assert (detector["optimizer"], detector["lr"], detector["weight_decay"]) == ("adam", 1e-4, 0.0)
    assert set(get_spec("tfn").training) <= set(TRAINING_KEYS)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("t", [300, 40])
def test_logits_shape_for_full_and_short_slices(name, t):
    model = build(name, seq_len=t)
    visual, acoustic = inputs(batch=3, t=t)
    with torch.no_grad():
        logits = model(visual, acoustic)
    assert logits.shape == (3, 2)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name, cfg", [("blstm", {"early_fusion": True}), ("tfn", {"subnet": "lstm"}),
                                       ("depression_detector", {"n_classes": 3})])
def test_variants_and_class_count(name, cfg):
    model = build(name, **cfg)
    with torch.no_grad():
        logits = model(*inputs(batch=2, t=40))
    assert logits.shape == (2, cfg.get("n_classes", 2))


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_gradient(name):
    model = build(name).train()
    logits = model(*inputs(batch=4, t=40))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 0, 1])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_parameter_counts_at_defaults_match_the_architecture():
    counts = {name: n_parameters(build(name)) for name in NAMES}
    print("parameters at defaults:", counts)
    bilstm_v, bilstm_a = lstm_params(136, 128, 2), lstm_params(25, 128, 2)
    assert counts["blstm"] == bilstm_v + bilstm_a + (512 * 2 + 2)
    head_in = {"fusion_concat": 512, "fusion_add": 256, "fusion_multiply": 256}
    for name, fused in head_in.items():
        assert counts[name] == bilstm_v + bilstm_a + (fused * 128 + 128) + (128 * 2 + 2)
    mlp = lambda n_in: (n_in * 32 + 32) + 2 * (32 * 32 + 32)  # noqa: E731
    assert counts["tfn"] == mlp(136) + mlp(25) + (1089 * 128 + 128) + (128 * 128 + 128) + (128 * 2 + 2)
    conv_bn = lambda n_in: (n_in * 256 * 16 + 256) + 2 * 256  # noqa: E731
    cross = 3 * (256 * 256 + 256) + (4 * 256 * 256 + 4 * 256)
    assert counts["depression_detector"] == (
        conv_bn(136) + conv_bn(25) + 12 * encoder_layer_params(256) + 2 * cross
        + 6 * encoder_layer_params(512) + (512 * 2 + 2)) == 15_800_322


def test_inputs_must_share_time_and_match_channels():
    model = build("blstm")
    visual, acoustic = inputs(t=40)
    with pytest.raises(FacevoxError, match="share batch and time"):
        model(visual, acoustic[:, :39])
    with pytest.raises(FacevoxError, match="136 visual and 25 acoustic"):
        model(visual[:, :, :100], acoustic)


# --- TFN -------------------------------------------------------------------------------------------

def test_tensor_fusion_by_hand():
    fused = tensor_fusion(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[4.0, 5.0]]))
    # [1,2,3,1] (outer) [4,5,1], row-major
    assert fused.tolist() == [[4, 5, 1, 8, 10, 2, 12, 15, 3, 4, 5, 1]]


def test_tfn_fused_tensor_holds_unimodal_and_bimodal_terms():
    model = build("tfn")
    seen = {}
    model.inference.register_forward_hook(lambda module, args, out: seen.setdefault("fused", args[0]))
    visual, acoustic = inputs(batch=2, t=40)
    with torch.no_grad():
        z_v, z_a = model.embed(visual, acoustic)
        model(visual, acoustic)
    d_v, d_a = z_v.shape[1], z_a.shape[1]
    assert (d_v, d_a) == (32, 32)
    fused = seen["fused"]
    assert fused.shape == (2, (d_v + 1) * (d_a + 1)) == (2, 1089) and model.fused_dim == 1089
    grid = fused.view(2, d_v + 1, d_a + 1)
    torch.testing.assert_close(grid[:, :d_v, d_a], z_v)      # the 1 appended to z_a keeps z_v
    torch.testing.assert_close(grid[:, d_v, :d_a], z_a)      # the 1 appended to z_v keeps z_a
    torch.testing.assert_close(grid[:, d_v, d_a], torch.ones(2))
    torch.testing.assert_close(grid[:, :d_v, :d_a], z_v[:, :, None] * z_a[:, None, :])


# --- Fusion_* -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, head_in", [("concat", 512), ("add", 256), ("multiply", 256)])
def test_fusion_modes_feed_the_head_the_fused_encodings(mode, head_in):
    model = build(f"fusion_{mode}")
    assert model.mode == mode and model.head[0].in_features == head_in == model.fused_dim
    seen = {}
    model.head.register_forward_hook(lambda module, args, out: seen.setdefault("fused", args[0]))
    visual, acoustic = inputs(batch=2, t=40)
    with torch.no_grad():
        h_v, h_a = model.encode(visual, acoustic)
        model(visual, acoustic)
    assert h_v.shape == h_a.shape == (2, 256)
    expected = {"concat": torch.cat([h_v, h_a], 1), "add": h_v + h_a, "multiply": h_v * h_a}[mode]
    assert torch.equal(seen["fused"], expected)


def test_fusion_mode_is_fixed_by_the_registered_name():
    with pytest.raises(FacevoxError, match="unknown key 'mode'"):
        split_overrides("fusion_add", {"mode": "concat"})


# --- Depression Detector ----------------------------------------------------------------------------

def test_detector_token_counts_from_the_strided_conv():
    model = build("depression_detector")
    for t, n in [(300, 76), (40, 11)]:
        with torch.no_grad():
            x_v, x_a = model.tokens(*inputs(t=t))
        assert x_v.shape == x_a.shape == (2, n, 256)


def test_detector_cross_attention_carries_the_other_modality():
    model = build("depression_detector")
    visual, acoustic = inputs(t=40)
    seen = {}
    model.acoustic_encoder.register_forward_hook(lambda m, a, out: seen.__setitem__("acoustic_encoder", out))
    model.acoustic_to_visual.register_forward_hook(lambda m, a, out: seen.__setitem__("a_to_v", out))

    def run(v, a):
        with torch.no_grad():
            logits = model(v, a)
        return logits, dict(seen)

    base, base_seen = run(visual, acoustic)
    louder, _ = run(visual, acoustic + 0.5)
    moved, moved_seen = run(visual + 0.5, acoustic)
    assert not torch.allclose(base, louder, atol=1e-4)
    assert not torch.allclose(base, moved, atol=1e-4)
    # Changing only the landmarks leaves the acoustic encoder's output alone; the acoustic-query
    # cross-attention (a -> v) is where the visual stream reaches the acoustic one.
    torch.testing.assert_close(moved_seen["acoustic_encoder"], base_seen["acoustic_encoder"])
    assert not torch.allclose(moved_seen["a_to_v"], base_seen["a_to_v"], atol=1e-4)


def test_detector_order_comes_only_from_the_conv_tokens():
    model = build("depression_detector")
    visual, acoustic = inputs(t=300)
    with torch.no_grad():
        # At initialisation the cross-attention is nearly uniform (every query gets about the mean
        # of the values); sharper queries make each cross-attended token depend on its own query.
        for cross in (model.acoustic_to_visual, model.visual_to_acoustic):
            cross.query.weight.mul_(50.0)
        x_v, x_a = model.tokens(visual, acoustic)
        base = model.classify_tokens(x_v, x_a)
        perm = torch.randperm(x_v.shape[1], generator=torch.Generator().manual_seed(1))
        other = torch.randperm(x_v.shape[1], generator=torch.Generator().manual_seed(2))
        same_shuffle = model.classify_tokens(x_v[:, perm], x_a[:, perm])
        split_shuffle = model.classify_tokens(x_v[:, perm], x_a[:, other])
        frames_reversed = model(visual.flip(1), acoustic.flip(1))
    # No positional encoding: a common token permutation leaves the logits unchanged ...
    torch.testing.assert_close(same_shuffle, base, atol=1e-5, rtol=1e-5)
    # ... but the concatenation pairs token i of each stream, so independent shuffles do not,
    assert (split_shuffle - base).abs().max() > 1e-3
    # and reordering the frames changes what the overlapping conv windows see.
    assert not torch.allclose(frames_reversed, base, atol=1e-4)
