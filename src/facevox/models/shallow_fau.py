"""The shallow FAU CNN (models A-E) and its explanations (feature attributions, filters).

Paper: Pandit, Schmitt, Cummins, Schuller, "I see it in your eyes: learnings of the
world's shallowest CNN ..." (shallow_fau_cnn_pandit.txt). Time-continuous arousal /
valence regression from FAU functionals (section 3.2: moving mean and standard
deviation of the 17 AU intensities and the OpenFace confidence over 50 frames, hop 5
frames = one step per 100 ms), plus the speaker-turn channel ("turns": someone speaking).

Input / output (family ``fau``): ``forward(x [B, T, C]) -> [B, T, n_outputs]``, one
prediction per FAU window. ``C = n_features``: 36 columns in
``contract.FAU_STAT_COLUMNS`` order (``AU01_r_mean, AU01_r_std, ..., confidence_std``),
plus ``turns`` as column 37 (``contract.FAU_FEATURE_COLUMNS``, the paper's N x 1768 x 37,
section 4.1): what the pipeline's FAU task feeds, from the fau_windows tables (the share of
each window with voice activity in the audio, facevox.extract.voice_activity). The
constructors' default stays 36 columns, so a model built by hand on the FAU functionals
alone needs no turns.

Models (section 4, Figure 4):

* **A** ``shallow_a`` (4.1): the CNN of the authors' earlier audio study (ref. [80])
  on FAU inputs: stacked Conv1d layers with kernel sizes 50, 30, 20, 5, then a
  time-distributed dense layer. Receptive field (Figure 5): ``sum(T_Fi) + 1 - L =
  50 + 30 + 20 + 5 + 1 - 4 = 102`` steps = 10.2 s (:func:`receptive_field`).
* **B** ``shallow_b`` (4.2): one Conv1d layer with a single filter (``N_F = 1``) of
  ``T_F = 100`` steps, activation ``relu`` or ``linear``, then a time-distributed
  dense layer, which on one filter is a scale and an offset (4.3).
* **C** ``shallow_c`` (4.3): B without the time-distributed dense layer.
* **D** ``shallow_d`` (4.4): B folded into C's topology, eqs. 1-4:
  ``W_D = W_B * w_dense`` (eq. 3), ``b_D = b_B * w_dense + b_dense`` (eq. 4; the
  paper's eq. 4 writes ``B^{Model_B}`` on the left, a typo for ``B^{Model_D}``).
  :func:`fold_b_into_d` does it; D's output equals B's to float rounding.
* **E** ``shallow_e`` (4.5): B on a subset of the input columns (key ``features``:
  column names or indices). ``features=None`` (the default) is the set section 5.2
  found the model relies on: ``confidence_mean``, ``AU05_r_std`` and ``turns``
  (``turns`` only when the input has that channel - the pipeline's 37 columns have it -
  so E also builds on the 36 FAU columns alone). E has B's topology, so :func:`fold_b_into_d` folds it too.

Explanations (section 5.1): :func:`feature_attributions` computes eq. 5 for chosen
output steps, ``a[f, t] = x[f, t0 - T_F/2 + t] * w[f, t] + b / (F * T_F)``, which
sums to the conv's output at ``t0``; :func:`filter_weights` returns the filter as
a [features x time] array and :func:`filter_lags` the input step (relative to the
output step) of each filter column, for heatmaps. A model with the dense layer
(B, E) is folded first, so both describe D's filter, the one the paper plots.

Padding: the paper's outputs have the inputs' length (N x 1768 x 1, section 4.3) and
eq. 5 centres the filter on the output step, so the default ``padding="same"``
zero-pads ``T_F // 2`` steps before and ``T_F - 1 - T_F // 2`` after, exactly eq. 5's
indexing (input steps ``t0 - T_F/2 ... t0 + T_F/2 - 1``). Keras' ``same`` puts the odd
step of an even kernel on the other side (``t0 - 49 ... t0 + 50`` for T_F = 100);
we follow eq. 5. ``padding="causal"`` (``T_F - 1`` steps before, none after) is an
option for real-time use that sees no future input; it is not in the paper.

Multiple outputs: the paper trains one model per dimension ("we predict only one
emotion dimension at a time", 5.1). With ``n_outputs = 2`` models B-E hold one
independent single filter per output (conv with ``n_outputs`` filters; the dense
layer is a per-output scale and offset), which is the paper's pair of single-output
models trained side by side; pass ``n_outputs=1`` for exactly one. Model A shares
its hidden layers across outputs (its final dense layer has ``n_outputs`` units).

Regularisation: section 5.2 adds an L1 penalty on the filter weights for sparser
attribution maps; ``l1`` is its factor (``l1 * sum |W|`` over the conv kernels, not
the biases, like a Keras ``kernel_regularizer``); the paper gives no value, so the
default is 0 (off). ``regularisation()`` returns the penalty (a zero tensor when off);
the trainer adds it to the loss.

Training defaults (section 4): RMSprop, learning rate 0.001, full batch, 2000 epochs,
loss 1 - CCC, weights of the best development-set epoch; ``amp`` off (the paper
trained in float32, and the model is tiny). Keras' RMSprop uses rho = 0.9 where
torch's default alpha is 0.99. :func:`masked_ccc_loss` is the loss with NaN targets
(windows without a label, padding) left out.

Choices where the paper is silent:

* model A's hidden width: 32 filters per layer (``filters``) and ReLU between layers;
  the paper only gives A's kernel sizes (via Figure 5's receptive field);
* initialisation: Keras' defaults (Glorot-uniform kernels, zero biases; the dense
  scale of B is Glorot-uniform for one input and one output, U(-sqrt 3, sqrt 3));
* model D with ``relu``: eqs. 1-4 are written without the activation and hold
  exactly only for ``linear``. For ``relu`` the fold uses ``w * relu(z) =
  sign(w) * relu(|w| z)``: D's filter and bias are scaled by ``|w_dense|`` and D keeps
  ``sign(w_dense)`` and ``b_dense`` as fixed output buffers (``out_sign``,
  ``out_offset``; 1 and 0 after a linear fold or when D is built directly), so D
  still equals B exactly; the eq. 5 attributions then decompose the argument of
  the relu. D built directly by ``create_model("shallow_d")`` is C's topology.
* default activation: ``relu`` for A, B, C and E (the paper's B uses relu and
  tries ``linear`` as a variant, 4.2); ``linear`` for D, the activation for which
  section 5.1 derives eq. 5.

Inputs are the raw functionals: the paper does not normalise them (section 3.2
discusses their ranges "in the absence of a batch-normalisation layer"). NaN
(windows without a face; ``turns`` of windows without audio) must be replaced by the
trainer (0 is what OpenFace writes without a face; facevox.training.tasks.fau enters 0
and counts both); the model does not check for NaN. Outputs are in the labels' scale
(SEWA: about [-1, 1]), unbounded except that C with ``relu`` is non-negative.

Tests: tests/test_models_shallow_fau.py
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facevox.contract import FAU_FEATURE_COLUMNS, FAU_STAT_COLUMNS, TURNS_COLUMN
from facevox.errors import FacevoxError
from facevox.models import register

#: Section 5.2: the features model D "was found to consistently rely on".
PAPER_E_FEATURES = ("confidence_mean", "AU05_r_std", TURNS_COLUMN)
ACTIVATIONS = ("relu", "linear")
PADDINGS = ("same", "causal")

#: Section 4: RMSprop, lr 0.001, full batch, 2000 epochs, loss 1 - CCC.
TRAINING = {
    "optimizer": "rmsprop",
    "lr": 1e-3,
    "batch_size": 0,
    "epochs": 2000,
    "loss": "ccc",
    "amp": False,
}
PAPER = "shallow_fau_cnn_pandit.txt"


def default_feature_names(n_features: int) -> list[str]:
    """Input column names: the 36 FAU functionals, plus ``turns`` for 37, else generic."""
    if n_features == len(FAU_STAT_COLUMNS):
        return list(FAU_STAT_COLUMNS)
    if n_features == len(FAU_FEATURE_COLUMNS):
        return list(FAU_FEATURE_COLUMNS)
    return [f"feature_{i}" for i in range(n_features)]


def resolve_features(features: Sequence[str | int], names: Sequence[str]) -> list[int]:
    """Column indices of ``features`` (names or indices into ``names``), in the given order."""
    if isinstance(features, (str, Integral)) or not len(features):
        raise FacevoxError(f"features: expected a non-empty list of column names or indices, got {features!r}")
    indices = []
    for item in features:
        if isinstance(item, Integral) and not isinstance(item, bool):
            if not 0 <= item < len(names):
                raise FacevoxError(f"features: index {item} is out of range for {len(names)} input columns")
            indices.append(int(item))
        elif isinstance(item, str):
            if item not in names:
                raise FacevoxError(f"features: {item!r} is not an input column; columns: {', '.join(names)}")
            indices.append(list(names).index(item))
        else:
            raise FacevoxError(f"features: {item!r} is neither a column name nor an index")
    if len(set(indices)) != len(indices):
        raise FacevoxError(f"features: a column is listed twice in {list(features)!r}")
    return indices


def pad_sizes(kernel_size: int, padding: str) -> tuple[int, int]:
    """Zero padding (before, after) that keeps T steps: eq. 5's centring, or causal."""
    if padding not in PADDINGS:
        raise FacevoxError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if padding == "causal":
        return kernel_size - 1, 0
    return kernel_size // 2, kernel_size - 1 - kernel_size // 2


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise FacevoxError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def _check_input(x: torch.Tensor, n_features: int, model: str) -> None:
    if x.dim() != 3 or x.shape[-1] != n_features:
        raise FacevoxError(f"{model}: expected input [batch, time, {n_features}], got {list(x.shape)}")


def _keras_init(conv: nn.Conv1d) -> None:
    nn.init.xavier_uniform_(conv.weight)
    nn.init.zeros_(conv.bias)


class StackedCNN(nn.Module):
    """Model A (section 4.1): stacked same-length Conv1d layers, then a time-distributed dense."""

    def __init__(self, n_features: int = 36, n_outputs: int = 2, kernel_sizes: Sequence[int] = (50, 30, 20, 5),
                 filters: int | Sequence[int] = 32, activation: str = "relu", padding: str = "same",
                 l1: float = 0.0):
        super().__init__()
        _check_activation(activation)
        widths = [filters] * len(kernel_sizes) if isinstance(filters, Integral) else list(filters)
        if not kernel_sizes or len(widths) != len(kernel_sizes):
            raise FacevoxError(f"shallow_a: filters {filters!r} does not match kernel_sizes {list(kernel_sizes)!r}")
        self.n_features, self.activation, self.l1 = n_features, activation, float(l1)
        self.kernel_sizes = [int(k) for k in kernel_sizes]
        self.pads = [pad_sizes(k, padding) for k in self.kernel_sizes]
        self.convs = nn.ModuleList()
        for c_in, c_out, k in zip([n_features, *widths[:-1]], widths, self.kernel_sizes):
            self.convs.append(nn.Conv1d(c_in, c_out, k))
            _keras_init(self.convs[-1])
        self.dense = nn.Linear(widths[-1], n_outputs)
        nn.init.xavier_uniform_(self.dense.weight)
        nn.init.zeros_(self.dense.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.n_features, "shallow_a")
        h = x.transpose(1, 2)
        for conv, pad in zip(self.convs, self.pads):
            h = conv(F.pad(h, pad))
            if self.activation == "relu":
                h = F.relu(h)
        return self.dense(h.transpose(1, 2))

    def regularisation(self) -> torch.Tensor:
        """``l1 * sum |W|`` over the conv kernels (section 5.2); 0 when ``l1`` is 0."""
        penalty = self.dense.weight.new_zeros(())
        if self.l1:
            penalty = penalty + self.l1 * sum(conv.weight.abs().sum() for conv in self.convs)
        return penalty


class ShallowCNN(nn.Module):
    """Models B, C and E: one Conv1d filter per output (``N_F = 1``), with or without the
    time-distributed dense layer (a per-output scale and offset)."""

    def __init__(self, n_features: int = 36, n_outputs: int = 2, kernel_size: int = 100,
                 activation: str = "relu", dense: bool = True, padding: str = "same", l1: float = 0.0,
                 features: Sequence[str | int] | None = None, feature_names: Sequence[str] | None = None):
        super().__init__()
        _check_activation(activation)
        if kernel_size < 1:
            raise FacevoxError(f"kernel_size must be >= 1, got {kernel_size}")
        self.feature_names = list(feature_names) if feature_names is not None else default_feature_names(n_features)
        if len(self.feature_names) != n_features:
            raise FacevoxError(f"feature_names has {len(self.feature_names)} names for {n_features} input columns")
        self.feature_indices = (list(range(n_features)) if features is None
                                else resolve_features(features, self.feature_names))
        self.subset = features is not None
        self.register_buffer("columns", torch.tensor(self.feature_indices, dtype=torch.long), persistent=False)
        self.n_features, self.n_outputs = n_features, n_outputs
        self.kernel_size, self.activation, self.padding = int(kernel_size), activation, padding
        self.l1 = float(l1)
        self.pads = pad_sizes(self.kernel_size, padding)
        self.conv = nn.Conv1d(len(self.feature_indices), n_outputs, self.kernel_size)
        _keras_init(self.conv)
        self.has_dense = bool(dense)
        if self.has_dense:
            self.scale = nn.Parameter(torch.empty(n_outputs).uniform_(-math.sqrt(3), math.sqrt(3)))
            self.offset = nn.Parameter(torch.zeros(n_outputs))

    @property
    def input_names(self) -> list[str]:
        """Names of the columns the filter sees, in the order of its rows."""
        return [self.feature_names[i] for i in self.feature_indices]

    def conv_output(self, x: torch.Tensor) -> torch.Tensor:
        """The conv's pre-activation output [B, n_outputs, T] (the bracket of eq. 5 plus b)."""
        _check_input(x, self.n_features, type(self).__name__)
        h = x.transpose(1, 2)
        if self.subset:
            h = h.index_select(1, self.columns)
        return self.conv(F.pad(h, self.pads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv_output(x)
        if self.activation == "relu":
            z = F.relu(z)
        if self.has_dense:
            z = z * self.scale[:, None] + self.offset[:, None]
        return z.transpose(1, 2)

    def regularisation(self) -> torch.Tensor:
        """``l1 * sum |W|`` over the filter (section 5.2); 0 when ``l1`` is 0."""
        if not self.l1:
            return self.conv.weight.new_zeros(())
        return self.l1 * self.conv.weight.abs().sum()


class FoldedCNN(ShallowCNN):
    """Model D (section 4.4): C's topology holding B's input-output mapping.

    ``out_sign`` and ``out_offset`` are fixed buffers, 1 and 0 unless D was folded
    from a relu B (see the module docstring)."""

    def __init__(self, n_features: int = 36, n_outputs: int = 2, kernel_size: int = 100,
                 activation: str = "linear", padding: str = "same", l1: float = 0.0,
                 features: Sequence[str | int] | None = None, feature_names: Sequence[str] | None = None):
        super().__init__(n_features, n_outputs, kernel_size, activation, dense=False, padding=padding, l1=l1,
                         features=features, feature_names=feature_names)
        self.register_buffer("out_sign", torch.ones(n_outputs))
        self.register_buffer("out_offset", torch.zeros(n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.out_sign + self.out_offset


@torch.no_grad()
def fold_b_into_d(model_b: ShallowCNN) -> FoldedCNN:
    """Model D with B's input-output mapping (eqs. 3 and 4); works for B and E."""
    if not isinstance(model_b, ShallowCNN) or not model_b.has_dense:
        raise FacevoxError("fold_b_into_d needs a model with the time-distributed dense layer (shallow_b or shallow_e)")
    d = FoldedCNN(model_b.n_features, model_b.n_outputs, model_b.kernel_size, model_b.activation,
                  model_b.padding, model_b.l1,
                  features=model_b.feature_indices if model_b.subset else None,
                  feature_names=model_b.feature_names)
    d = d.to(device=model_b.conv.weight.device, dtype=model_b.conv.weight.dtype)
    w, b = model_b.conv.weight, model_b.conv.bias
    scale, offset = model_b.scale, model_b.offset
    if model_b.activation == "linear":
        d.conv.weight.copy_(w * scale[:, None, None])          # eq. 3
        d.conv.bias.copy_(b * scale + offset)                   # eq. 4
    else:  # relu: w * relu(z) + c = sign(w) * relu(|w| z) + c
        d.conv.weight.copy_(w * scale.abs()[:, None, None])
        d.conv.bias.copy_(b * scale.abs())
        d.out_sign.copy_(torch.sign(scale))
        d.out_offset.copy_(offset)
    d.train(model_b.training)
    return d


def receptive_field(model: nn.Module) -> int:
    """Input steps one output step sees: ``sum(T_Fi) + 1 - L`` (Figure 5)."""
    if isinstance(model, StackedCNN):
        return sum(model.kernel_sizes) + 1 - len(model.kernel_sizes)
    if isinstance(model, ShallowCNN):
        return model.kernel_size
    raise FacevoxError(f"receptive_field: not a shallow FAU model: {type(model).__name__}")


def _single_filter(model: nn.Module) -> ShallowCNN:
    if isinstance(model, StackedCNN):
        raise FacevoxError("filter explanations need a single-filter model (shallow_b ... shallow_e); "
                           "model A stacks several conv layers")
    if not isinstance(model, ShallowCNN):
        raise FacevoxError(f"not a shallow FAU model: {type(model).__name__}")
    return fold_b_into_d(model) if model.has_dense else model


def _check_output(model: ShallowCNN, output: int) -> None:
    if not 0 <= output < model.n_outputs:
        raise FacevoxError(f"output {output} is out of range: the model has {model.n_outputs} outputs")


@torch.no_grad()
def filter_weights(model: nn.Module, output: int = 0) -> np.ndarray:
    """The trained filter of ``output`` as a [features x time] float64 array.

    Rows follow ``model.input_names``; columns follow :func:`filter_lags`. A model with
    the dense layer (B, E) is folded into D first (eq. 3), as the paper plots D's filter."""
    single = _single_filter(model)
    _check_output(single, output)
    return single.conv.weight[output].detach().cpu().double().numpy()


def filter_lags(model: nn.Module) -> np.ndarray:
    """Input step of each filter column relative to the output step: ``t - T_F/2`` (eq. 5)."""
    single = _single_filter(model)
    before = single.pads[0]
    return np.arange(single.kernel_size) - before


@torch.no_grad()
def feature_attributions(model: nn.Module, x, t0: int | Sequence[int], output: int = 0) -> np.ndarray:
    """Eq. 5 feature attributions of one sequence ``x`` [T, C] (all input columns).

    ``a[f, t] = x[f, t0 + lag_t] * w[f, t] + b / (F * T_F)``, zero input outside the
    sequence (the padding). The attributions of one ``t0`` sum to the conv's output
    there: the model output for a linear D (or C), the relu's argument for relu.
    Returns [F, T_F] for an int ``t0``, [len(t0), F, T_F] for a sequence."""
    single = _single_filter(model)
    _check_output(single, output)
    values = torch.as_tensor(np.asarray(x, np.float64) if not torch.is_tensor(x) else x).double().cpu()
    if values.dim() != 2 or values.shape[1] != single.n_features:
        raise FacevoxError(f"feature_attributions: expected x [time, {single.n_features}], got {list(values.shape)}")
    steps = np.atleast_1d(np.asarray(t0))
    n_steps = values.shape[0]
    if steps.dtype.kind not in "iu" or ((steps < 0) | (steps >= n_steps)).any():
        raise FacevoxError(f"feature_attributions: time steps {steps.tolist()} must be integers in [0, {n_steps})")
    weights = single.conv.weight[output].detach().cpu().double()       # [F, T_F]
    bias = float(single.conv.bias[output])
    n_f, t_f = weights.shape
    padded = F.pad(values[:, single.feature_indices].T, single.pads)  # [F, T + T_F - 1]
    # padded index of input step t0 + lag_t is t0 + t
    windows = torch.stack([padded[:, s:s + t_f] for s in steps.tolist()])
    scores = (windows * weights + bias / (n_f * t_f)).numpy()
    return scores[0] if np.ndim(t0) == 0 else scores


def ccc_loss(pred, target, dim: int = 0):
    """1 - CCC as a differentiable torch loss (mean over the other dimensions)."""
    mp, mt = pred.mean(dim), target.mean(dim)
    vp, vt = pred.var(dim, unbiased=False), target.var(dim, unbiased=False)
    cov = ((pred - mp.unsqueeze(dim)) * (target - mt.unsqueeze(dim))).mean(dim)
    value = 2 * cov / (vp + vt + (mp - mt) ** 2 + 1e-8)
    return (1 - value).mean()


def masked_ccc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - CCC per output over all valid (non-NaN target) steps of the batch, averaged
    over outputs: the section 4 loss with unlabelled windows and padding left out."""
    if pred.shape != target.shape:
        raise FacevoxError(f"masked_ccc_loss: shapes differ {list(pred.shape)} vs {list(target.shape)}")
    losses = []
    for o in range(pred.shape[-1]):
        p, t = pred[..., o].reshape(-1), target[..., o].reshape(-1)
        keep = ~torch.isnan(t)
        if int(keep.sum()) < 2:
            raise FacevoxError(f"masked_ccc_loss: output {o} has fewer than two labelled steps")
        losses.append(ccc_loss(p[keep], t[keep]))
    return torch.stack(losses).mean()


_SHALLOW = {"kernel_size": 100, "activation": "relu", "padding": "same", "l1": 0.0}


@register("shallow_a", display="Shallow CNN A", family="fau", training=TRAINING, paper=f"{PAPER} section 4.1, Figure 5",
          defaults={"kernel_sizes": [50, 30, 20, 5], "filters": 32, "activation": "relu", "padding": "same",
                    "l1": 0.0})
def shallow_a(**kwargs) -> StackedCNN:
    return StackedCNN(**kwargs)


@register("shallow_b", display="Shallow CNN B", family="fau", defaults=_SHALLOW, training=TRAINING,
          paper=f"{PAPER} section 4.2")
def shallow_b(**kwargs) -> ShallowCNN:
    return ShallowCNN(dense=True, **kwargs)


@register("shallow_c", display="Shallow CNN C", family="fau", defaults=_SHALLOW, training=TRAINING,
          paper=f"{PAPER} section 4.3")
def shallow_c(**kwargs) -> ShallowCNN:
    return ShallowCNN(dense=False, **kwargs)


@register("shallow_d", display="Shallow CNN D", family="fau", defaults={**_SHALLOW, "activation": "linear"},
          training=TRAINING,
          paper=f"{PAPER} section 4.4, eqs. 1-4 (fold a trained B with fold_b_into_d)")
def shallow_d(**kwargs) -> FoldedCNN:
    return FoldedCNN(**kwargs)


@register("shallow_e", display="Shallow CNN E", family="fau", defaults={**_SHALLOW, "features": None},
          training=TRAINING,
          paper=f"{PAPER} sections 4.5 and 5.2")
def shallow_e(features: Sequence[str | int] | None = None, n_features: int = 36,
              feature_names: Sequence[str] | None = None, **kwargs) -> ShallowCNN:
    names = list(feature_names) if feature_names is not None else default_feature_names(n_features)
    if features is None:
        features = [f for f in PAPER_E_FEATURES if f != TURNS_COLUMN or TURNS_COLUMN in names]
    return ShallowCNN(n_features=n_features, dense=True, features=features, feature_names=names, **kwargs)
