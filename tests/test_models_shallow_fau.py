"""Shallow FAU CNN (facevox.models.shallow_fau): models A-E, the B -> D fold (eqs. 1-4),
eq. 5 attributions on a hand-made filter, receptive fields and L1 regularisation."""
import numpy as np
import pytest
import torch

from facevox.contract import FAU_FEATURE_COLUMNS, FAU_STAT_COLUMNS
from facevox.errors import FacevoxError
from facevox.models import create_model, get_spec, list_models, n_parameters
from facevox.models.shallow_fau import (
    FoldedCNN,
    ShallowCNN,
    StackedCNN,
    ccc_loss,
    feature_attributions,
    filter_lags,
    filter_weights,
    fold_b_into_d,
    masked_ccc_loss,
    receptive_field,
)

torch.set_num_threads(1)
NAMES = ["shallow_a", "shallow_b", "shallow_c", "shallow_d", "shallow_e"]


def inputs(batch=2, steps=160, n_features=36, seed=0):
    """Non-negative like FAU functionals."""
    return torch.rand(batch, steps, n_features, generator=torch.Generator().manual_seed(seed)) * 3


def test_registry_and_paper_training_defaults():
    assert set(NAMES) <= set(list_models("fau"))
    for name in NAMES:
        cfg = get_spec(name).training_config()
        assert (cfg["optimizer"], cfg["lr"], cfg["batch_size"], cfg["epochs"], cfg["loss"]) == \
            ("rmsprop", 1e-3, 0, 2000, "ccc")
    assert get_spec("shallow_b").defaults["kernel_size"] == 100
    assert get_spec("shallow_a").defaults["kernel_sizes"] == [50, 30, 20, 5]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("padding", ["same", "causal"])
def test_time_continuous_output_keeps_length(name, padding):
    torch.manual_seed(0)
    model = create_model(name, n_features=37, n_outputs=2, padding=padding)
    out = model(inputs(steps=130, n_features=37))
    assert out.shape == (2, 130, 2)
    assert torch.isfinite(out).all()


def test_parameter_counts():
    # B: one 36 x 100 filter + bias per output, plus a scale and an offset per output.
    assert n_parameters(create_model("shallow_b")) == 2 * (36 * 100 + 1) + 2 * 2 == 7206
    assert n_parameters(create_model("shallow_b", n_outputs=1, n_features=37)) == 37 * 100 + 1 + 2
    assert n_parameters(create_model("shallow_c")) == 7202
    assert n_parameters(create_model("shallow_d")) == 7202
    assert n_parameters(create_model("shallow_e")) == 2 * (2 * 100 + 1) + 4  # confidence_mean, AU05_r_std
    a = (36 * 32 * 50 + 32) + (32 * 32 * 30 + 32) + (32 * 32 * 20 + 32) + (32 * 32 * 5 + 32) + (32 * 2 + 2)
    assert n_parameters(create_model("shallow_a")) == a == 114_114


def test_model_a_receptive_field_is_ten_seconds():
    model = create_model("shallow_a", activation="linear")
    assert receptive_field(model) == 50 + 30 + 20 + 5 + 1 - 4 == 102
    assert receptive_field(model) / 10.0 == pytest.approx(10.2)  # 10 windows per second (hop 100 ms)
    # Measured: the input steps that reach output step 150 (same padding: 52 before, 49 after).
    x = inputs(batch=1, steps=300).requires_grad_(True)
    model(x)[0, 150, 0].backward()
    reached = torch.nonzero(x.grad[0].abs().sum(1)).ravel()
    assert len(reached) == 102
    assert (reached.min().item(), reached.max().item()) == (150 - 52, 150 + 49)


@pytest.mark.parametrize("padding, first, last", [("same", -50, 49), ("causal", -99, 0)])
def test_model_b_filter_lags_follow_eq5(padding, first, last):
    model = create_model("shallow_b", padding=padding, activation="linear")
    lags = filter_lags(model)
    assert (lags[0], lags[-1], len(lags)) == (first, last, 100)
    # Measured: an impulse at input step 120 moves exactly the outputs 120 - lag.
    x = inputs(batch=1, steps=300)
    bumped = x.clone()
    bumped[0, 120, :] += 1.0
    moved = torch.nonzero((model(bumped) - model(x))[0, :, 0].abs() > 1e-6).ravel()
    assert (moved.min().item(), moved.max().item()) == (120 - last, 120 - first)


def test_model_c_is_b_without_the_dense_layer():
    torch.manual_seed(1)
    b = create_model("shallow_b", activation="relu")
    c = create_model("shallow_c", activation="relu")
    assert not c.has_dense and not hasattr(c, "scale")
    assert sorted(n for n, _ in c.named_parameters()) == ["conv.bias", "conv.weight"]
    assert sorted(n for n, _ in b.named_parameters()) == ["conv.bias", "conv.weight", "offset", "scale"]
    assert not any(isinstance(m, torch.nn.Linear) for m in c.modules())
    c.load_state_dict({"conv.weight": b.conv.weight, "conv.bias": b.conv.bias})
    x = inputs()
    with torch.no_grad():
        expected = c(x) * b.scale + b.offset  # B = C, scaled and offset per output (section 4.3)
        assert torch.allclose(b(x), expected, atol=1e-6)
        assert (c(x) >= 0).all()  # relu output of C


@pytest.mark.parametrize("activation", ["linear", "relu"])
@pytest.mark.parametrize("name", ["shallow_b", "shallow_e"])
def test_fold_b_into_d_reproduces_b(activation, name):
    torch.manual_seed(2)
    b = create_model(name, activation=activation)
    with torch.no_grad():
        b.scale.copy_(torch.tensor([-0.7, 1.3]))  # a negative scale: the hard case for relu
        b.offset.copy_(torch.tensor([0.2, -0.4]))
        b.conv.bias.copy_(torch.tensor([0.05, -0.1]))
    d = fold_b_into_d(b)
    assert isinstance(d, FoldedCNN) and not d.has_dense and d.activation == activation
    assert n_parameters(d) == n_parameters(b) - 4
    x = inputs(steps=200)
    with torch.no_grad():
        assert torch.allclose(d(x), b(x), rtol=1e-5, atol=1e-4)  # float32 sums of 3600 terms
    if activation == "linear":  # eqs. 3 and 4 literally
        assert torch.allclose(d.conv.weight, b.conv.weight * b.scale[:, None, None])
        assert torch.allclose(d.conv.bias, torch.tensor([0.05 * -0.7 + 0.2, -0.1 * 1.3 - 0.4]))
        assert torch.equal(d.out_sign, torch.ones(2)) and torch.equal(d.out_offset, torch.zeros(2))
    else:
        assert torch.equal(d.out_sign, torch.tensor([-1.0, 1.0]))
    b64 = b.double()  # folded in float64, D equals B to float64 rounding
    with torch.no_grad():
        assert torch.allclose(fold_b_into_d(b64)(x.double()), b64(x.double()), rtol=0, atol=1e-12)


def test_fold_needs_the_dense_layer():
    with pytest.raises(FacevoxError, match="time-distributed dense"):
        fold_b_into_d(create_model("shallow_c"))


def test_model_e_sees_only_the_chosen_columns():
    torch.manual_seed(3)
    e = create_model("shallow_e", n_features=37, features=["AU05_r_std", 0, "turns"])
    assert e.conv.weight.shape == (2, 3, 100)
    assert e.input_names == ["AU05_r_std", "AU01_r_mean", "turns"]
    chosen = [FAU_STAT_COLUMNS.index("AU05_r_std"), 0, 36]
    x = inputs(steps=120, n_features=37)
    other = x.clone()
    keep = torch.zeros(37, dtype=torch.bool)
    keep[chosen] = True
    other[..., ~keep] = torch.rand_like(other[..., ~keep]) * 10
    with torch.no_grad():
        assert torch.equal(e(other), e(x))
        bumped = x.clone()
        bumped[..., 36] += 1.0
        assert not torch.allclose(e(bumped), e(x))


def test_model_e_paper_default_features():
    assert create_model("shallow_e").input_names == ["confidence_mean", "AU05_r_std"]
    assert create_model("shallow_e", n_features=37).input_names == ["confidence_mean", "AU05_r_std", "turns"]
    # the pipeline's 37 inputs (the FAU task reads contract.FAU_FEATURE_COLUMNS): turns is the last
    assert create_model("shallow_b", n_features=len(FAU_FEATURE_COLUMNS)).feature_names == FAU_FEATURE_COLUMNS
    assert FAU_FEATURE_COLUMNS == [*FAU_STAT_COLUMNS, "turns"]
    with pytest.raises(FacevoxError, match="'turns' is not an input column"):
        create_model("shallow_e", features=["turns"])
    with pytest.raises(FacevoxError, match="index 40 is out of range"):
        create_model("shallow_e", features=[40])
    with pytest.raises(FacevoxError, match="listed twice"):
        create_model("shallow_e", features=[0, "AU01_r_mean"])


def tiny_filter_model() -> ShallowCNN:
    """C with 2 features, one output, T_F = 3, linear: w = [[1, 0, -1], [0.5, 2, 0]], b = 0.6."""
    model = ShallowCNN(n_features=2, n_outputs=1, kernel_size=3, activation="linear", dense=False)
    with torch.no_grad():
        model.conv.weight.copy_(torch.tensor([[[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]]]))
        model.conv.bias.fill_(0.6)
    return model


TINY_X = np.array([[1, 0], [2, 1], [3, 0], [4, 2]], dtype=np.float64)  # [T=4, F=2]


def test_eq5_attributions_hand_computed():
    model = tiny_filter_model()
    assert list(filter_lags(model)) == [-1, 0, 1]
    # y_t0 = sum_f sum_t x[f, t0 - 1 + t] w[f, t] + b; each term gets b / (F T_F) = 0.1.
    scores = feature_attributions(model, TINY_X, [0, 1, 3])
    assert scores.shape == (3, 2, 3)
    np.testing.assert_allclose(scores[0], [[0.1, 0.1, -1.9], [0.1, 0.1, 0.1]])  # x[-1] is padding
    np.testing.assert_allclose(scores[1], [[1.1, 0.1, -2.9], [0.1, 2.1, 0.1]])
    np.testing.assert_allclose(scores[2], [[3.1, 0.1, 0.1], [0.1, 4.1, 0.1]])
    np.testing.assert_allclose(scores.sum(axis=(1, 2)), [-1.4, 0.6, 7.6])
    y = model(torch.tensor(TINY_X, dtype=torch.float32)[None])[0, :, 0]
    np.testing.assert_allclose(y.detach().numpy(), [-1.4, 0.6, -0.9, 7.6], atol=1e-6)
    assert feature_attributions(model, TINY_X, 2).shape == (2, 3)  # one time step -> [F, T_F]
    with pytest.raises(FacevoxError, match=r"in \[0, 4\)"):
        feature_attributions(model, TINY_X, 4)


def test_attributions_of_b_sum_to_its_output():
    torch.manual_seed(4)
    b = create_model("shallow_b", activation="linear")
    x = inputs(batch=1, steps=150)
    steps = [0, 75, 149]
    scores = feature_attributions(b, x[0], steps, output=1)
    assert scores.shape == (3, 36, 100)
    expected = b(x)[0, steps, 1].detach().double().numpy()
    np.testing.assert_allclose(scores.sum(axis=(1, 2)), expected, rtol=1e-5, atol=1e-5)


def test_filter_weights_are_ds_filter():
    torch.manual_seed(5)
    b = create_model("shallow_b", activation="linear")
    w = filter_weights(b, output=1)
    assert w.shape == (36, 100) and w.dtype == np.float64
    np.testing.assert_allclose(w, (b.conv.weight[1] * b.scale[1]).detach().double().numpy(), rtol=1e-6)
    c = create_model("shallow_c")
    np.testing.assert_array_equal(filter_weights(c), c.conv.weight[0].detach().double().numpy())
    with pytest.raises(FacevoxError, match="model A"):
        filter_weights(create_model("shallow_a"))
    with pytest.raises(FacevoxError, match="output 2 is out of range"):
        filter_weights(c, output=2)


@pytest.mark.parametrize("name", ["shallow_a", "shallow_b", "shallow_d"])
def test_l1_regularisation(name):
    off = create_model(name)
    assert off.regularisation().item() == 0.0
    on = create_model(name, l1=0.01)
    kernels = [m.weight for m in on.modules() if isinstance(m, torch.nn.Conv1d)]
    penalty = on.regularisation()
    assert penalty.item() == pytest.approx(0.01 * sum(k.abs().sum().item() for k in kernels), rel=1e-5)
    penalty.backward()
    assert all(torch.allclose(k.grad, 0.01 * torch.sign(k)) for k in kernels)


def test_masked_ccc_loss_ignores_unlabelled_windows():
    pred = torch.tensor([[[0.1, 0.5], [0.4, 0.2], [0.9, 0.7], [0.3, 0.0]]])
    target = torch.tensor([[[0.0, 0.4], [0.5, float("nan")], [1.0, 0.9], [float("nan"), 0.1]]])
    expected = (ccc_loss(torch.tensor([0.1, 0.4, 0.9]), torch.tensor([0.0, 0.5, 1.0]))
                + ccc_loss(torch.tensor([0.5, 0.7, 0.0]), torch.tensor([0.4, 0.9, 0.1]))) / 2
    assert masked_ccc_loss(pred, target).item() == pytest.approx(expected.item())
    assert masked_ccc_loss(target.nan_to_num(0.3), target.nan_to_num(0.3)).item() == pytest.approx(0.0, abs=1e-6)


def test_bad_settings_are_named():
    with pytest.raises(FacevoxError, match="activation must be one of"):
        create_model("shallow_b", activation="tanh")
    with pytest.raises(FacevoxError, match="padding must be one of"):
        create_model("shallow_c", padding="valid")
    with pytest.raises(FacevoxError, match=r"expected input \[batch, time, 36\]"):
        create_model("shallow_b")(torch.zeros(1, 10, 37))
    assert isinstance(create_model("shallow_a"), StackedCNN)
