"""STST: spatio-temporal squeeze transformer (Tao et al. 2023, ``stst_tao2023.txt``).

Inputs are one fixed-length slice per sample (Sec. 3.4, L = 300 frames):
``visual [B, T, n_visual]`` (68 dlib landmarks, x_0..x_67 then y_0..y_67) and
``acoustic [B, T, n_acoustic]`` (25 eGeMAPS LLDs), both already min-max
normalised (eq. 5) by the data pipeline; the model does no normalisation.
Output: logits ``[B, n_classes]`` (the paper's softmax lives in the
cross-entropy loss, eq. 17).

Map from the paper to the code
------------------------------
* Token generation (Sec. 3.5, eqs. 6-7, Fig. 2c) -> :class:`TokenEmbedding`:
  "Reshape", a two-layer fully connected map of each frame to ``d_model``,
  then ``X + PE`` with a learned PE (Sec. 4.1.2; Table 3 compares it with the
  sinusoidal one: ``pos_encoding="sinusoidal"``), then dropout ("dropout ...
  in the position encoding", Sec. 4.1.2).  One token per frame, so both
  modalities become ``[B, T, d_model]`` ("uniformity of the data's
  dimensions").
* Spatio-temporal squeeze (eqs. 8-11) -> :class:`SpatioTemporalSqueeze`:
  ``V' = Fusion(ReLU(Space(Time(V)))) + V``.
* Cross attention (eqs. 2-4, 12-13, Algorithm 1 line 3) ->
  :class:`CrossSqueezeAttention`: for the visual stream
  ``X'_v = MultiHead(Q = phi(X_a), K = phi(X_a), V' = Squeeze(phi(X_v)))``;
  the attention pattern comes from the *other* modality, the values (squeezed)
  from the stream's own modality; and symmetrically for the acoustic stream.
  (The paper swaps the letters a/v between Sec. 3.1 and eq. 12; the code
  names streams ``visual``/``acoustic`` and follows the structure of eq. 12:
  Q and K from the other modality, V from the own one.)  As eq. 12 is
  written, there is no residual around the attention: the residual is the one
  inside the value path (eq. 11 / 13).
* MLP with residual (eq. 14) -> :class:`STSTStream` (``X_out = MLP(X') + X'``).
* One STST block (eq. 15) -> :class:`STSTBlock`: both streams updated from the
  same block inputs.  ``n_blocks`` blocks are stacked (K = 2, Table 2), 4
  heads (Sec. 4.1.2).
* Classifier (eq. 16, Sec. 3.7) -> ``STST.classifier``: an MLP of two linear
  layers on ``Concat(visual, acoustic)``.
* Voting over a video's slices (Sec. 3.7) is the trainer's job:
  ``training["vote"] = "majority"``.

Reading of "Time" and "Space" (eq. 8; the paper says only "one-dimensional
convolution", kernel size 3, Sec. 4.1.2)
----------------------------------------------------------------------------
``V`` is a ``T x d_model`` block (frames x token features).  ``Time`` is a
Conv1d whose channels are the ``d_model`` features, sliding along the T frames
(kernel 3: each frame sees the frames "before and after the current moment",
Sec. 3.6).  ``Space`` is its transposed twin: a Conv1d whose channels are the
T frames, sliding along the feature axis of the tokens (kernel 3), i.e. the
1-D convolution applied to ``V`` as it stands, without the transpose the time
convolution needs (the paper attributes the effect of the time/space order
to such a transpose, Sec. 4.3).  Consequences: the space convolution has
``seq_len`` channels, so ``T`` must equal ``seq_len`` (slices always have
exactly L frames, Sec. 3.4), and the space convolution also mixes frames.
The fusion convolution (eq. 10, "a layer of one-dimensional convolution")
is taken to be a Conv1d over time with ``d_model`` channels and the same
kernel size 3.  All convolutions are zero-padded to keep the length.

Ablations (Sec. 4.3, Table 4, Fig. 6)
------------------------------------
``st_mode``: ``"time_space"`` (the paper's STST, eq. 8), ``"space_time"``
(STSTst: space first), ``"sum"`` (STSTadd: ``Time(V) + Space(V)``, then
ReLU and fusion), ``"time"`` (STSTs-: no space convolution), ``"space"``
(STSTt-: no time convolution).  ``squeeze_on``: ``"v"`` (the paper's STST) or
``"qk"`` (STST-QKst: one squeeze block on Q and another on K, V plain).

Choices where the paper is silent (standard options, stated)
------------------------------------------------------------
* ``d_model = 256``: not given; the D-Vlog "Depression Detector" baseline the
  paper compares with (Table 5) uses 256.  Divisible by the 4 heads.
* Hidden width of the token embedding: ``d_model``, ReLU between the two
  layers (the paper uses ReLU in the STST block, eq. 9).
* Layer normalisation: pre-norm as in ViT (the paper's ref. [41]): LayerNorm
  on the stream's own tokens and on the other modality's tokens before the
  attention, on ``X'`` before the MLP, and a final LayerNorm per modality
  before the classifier.  The paper's equations show no normalisation.
* Transformer MLP: ``d_model -> mlp_ratio * d_model -> d_model`` with GELU
  (ViT; ``mlp_ratio = 4``).
* Dropout 0.5 (Sec. 4.1.2: "in the linear layer, the position encoding, and
  the transformer encoder"): after ``X + PE``, on the attention weights,
  after the MLP's hidden activation and output, and between the classifier's
  two linear layers.
* Learned PE: one ``[seq_len, d_model]`` table per modality, initialised
  N(0, 0.02^2) truncated at +-2 std (ViT).  Sinusoidal PE: Vaswani et al.
  (the paper's ref. [39]), ``PE[p, 2i] = sin(p / 10000^(2i/d))``,
  ``PE[p, 2i+1] = cos(p / 10000^(2i/d))``, a non-trainable buffer.
* Eq. 16 concatenates two ``T x d`` sequences but the classifier outputs one
  label per slice; the temporal pooling is not stated.  Each modality's
  tokens are averaged over time (as the Depression Detector baseline does),
  concatenated to ``2 d_model``, then ``Linear(2d, d) -> ReLU -> Dropout ->
  Linear(d, n_classes)``.

Parameters (``n_parameters``) at the paper defaults (n_visual 136, n_acoustic 25,
n_classes 2, seq_len 300): 6,276,978, of which the four space convolutions
(300 -> 300 channels) hold 1,081,200.

Tests: tests/test_models_stst.py
"""
from __future__ import annotations

import math

import torch
from torch import nn

from facevox.errors import FacevoxError
from facevox.models import register

ST_MODES = ("time_space", "space_time", "sum", "time", "space")
SQUEEZE_TARGETS = ("v", "qk")
POS_ENCODINGS = ("learned", "sinusoidal")


def sinusoidal_table(length: int, d_model: int) -> torch.Tensor:
    """``[length, d_model]`` sinusoidal position table (Vaswani et al. 2017)."""
    position = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    table = torch.zeros(length, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq[: d_model // 2])
    return table.float()


class TokenEmbedding(nn.Module):
    """Eqs. 6-7: two-layer FC per frame to ``d_model``, plus position encoding, dropout."""

    def __init__(self, n_inputs: int, d_model: int, seq_len: int, pos_encoding: str, dropout: float):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(n_inputs, d_model), nn.ReLU(), nn.Linear(d_model, d_model))
        if pos_encoding == "learned":
            self.pos = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, seq_len, d_model), std=0.02))
        else:
            self.register_buffer("pos", sinusoidal_table(seq_len, d_model).unsqueeze(0), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.project(x) + self.pos)


class SpatioTemporalSqueeze(nn.Module):
    """Eqs. 8-11: ``V' = Fusion(ReLU(Space(Time(V)))) + V`` on ``V [B, T, d_model]``.

    ``time``: Conv1d(d_model -> d_model) along the frames; ``space``: Conv1d(seq_len ->
    seq_len) along the token features; either is ``None`` when ``st_mode`` leaves it out.
    """

    def __init__(self, d_model: int, seq_len: int, kernel_size: int, st_mode: str):
        super().__init__()
        pad = kernel_size // 2
        self.st_mode = st_mode
        self.time = nn.Conv1d(d_model, d_model, kernel_size, padding=pad) if st_mode != "space" else None
        self.space = nn.Conv1d(seq_len, seq_len, kernel_size, padding=pad) if st_mode != "time" else None
        self.fusion = nn.Conv1d(d_model, d_model, kernel_size, padding=pad)

    def _time(self, v: torch.Tensor) -> torch.Tensor:
        return self.time(v.transpose(1, 2)).transpose(1, 2)

    def _space(self, v: torch.Tensor) -> torch.Tensor:
        return self.space(v)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        if self.st_mode == "time_space":
            st = self._space(self._time(v))
        elif self.st_mode == "space_time":
            st = self._time(self._space(v))
        elif self.st_mode == "sum":
            st = self._time(v) + self._space(v)
        elif self.st_mode == "time":
            st = self._time(v)
        else:
            st = self._space(v)
        fused = self.fusion(torch.relu(st).transpose(1, 2)).transpose(1, 2)
        return fused + v


class CrossSqueezeAttention(nn.Module):
    """Eqs. 3-4, 12-13: multi-head attention with Q, K from ``x_other`` and V from ``x_self``.

    ``squeeze`` holds the spatio-temporal squeeze block(s): key ``"v"`` (the paper's STST)
    or keys ``"q"`` and ``"k"`` (the STST-QKst ablation).
    """

    def __init__(self, d_model: int, n_heads: int, seq_len: int, kernel_size: int,
                 st_mode: str, squeeze_on: str, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        targets = ("v",) if squeeze_on == "v" else ("q", "k")
        self.squeeze = nn.ModuleDict(
            {t: SpatioTemporalSqueeze(d_model, seq_len, kernel_size, st_mode) for t in targets})
        self.attn_dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)

    def forward(self, x_self: torch.Tensor, x_other: torch.Tensor) -> torch.Tensor:
        q, k, v = self.query(x_other), self.key(x_other), self.value(x_self)
        if "v" in self.squeeze:
            v = self.squeeze["v"](v)
        else:
            q, k = self.squeeze["q"](q), self.squeeze["k"](k)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
        heads = self.attn_dropout(weights) @ v                      # [B, h, T, d/h]
        b, h, t, dh = heads.shape
        return self.out(heads.transpose(1, 2).reshape(b, t, h * dh))


class STSTStream(nn.Module):
    """One modality's half of a block: ``X' = Att(LN(x_self), LN(x_other))``, eq. 14 MLP."""

    def __init__(self, d_model: int, n_heads: int, seq_len: int, kernel_size: int,
                 st_mode: str, squeeze_on: str, mlp_ratio: int, dropout: float):
        super().__init__()
        self.norm_self = nn.LayerNorm(d_model)
        self.norm_other = nn.LayerNorm(d_model)
        self.attention = CrossSqueezeAttention(d_model, n_heads, seq_len, kernel_size, st_mode,
                                               squeeze_on, dropout)
        self.norm_mlp = nn.LayerNorm(d_model)
        hidden = mlp_ratio * d_model
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, d_model), nn.Dropout(dropout))

    def forward(self, x_self: torch.Tensor, x_other: torch.Tensor) -> torch.Tensor:
        attended = self.attention(self.norm_self(x_self), self.norm_other(x_other))
        return self.mlp(self.norm_mlp(attended)) + attended


class STSTBlock(nn.Module):
    """Eq. 15: ``(visual_out, acoustic_out) = (STST(X_v, X_a), STST(X_a, X_v))``."""

    def __init__(self, **stream_kwargs):
        super().__init__()
        self.visual = STSTStream(**stream_kwargs)
        self.acoustic = STSTStream(**stream_kwargs)

    def forward(self, visual: torch.Tensor, acoustic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.visual(visual, acoustic), self.acoustic(acoustic, visual)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise FacevoxError(f"stst: {name}={value!r} is not one of {', '.join(choices)}")


@register(
    "stst",
    display="STST",
    tiny={"d_model": 32, "n_blocks": 1, "dropout": 0.0},
    family="sequence",
    defaults={
        "d_model": 256, "n_blocks": 2, "n_heads": 4, "kernel_size": 3, "mlp_ratio": 4,
        "dropout": 0.5, "pos_encoding": "learned", "st_mode": "time_space", "squeeze_on": "v",
    },
    training={
        "optimizer": "sgd", "momentum": 0.5, "weight_decay": 1e-3, "lr": 1e-3,
        "scheduler": "cosine", "batch_size": 64, "epochs": 600, "vote": "majority",
        "loss": "cross_entropy",
    },
    paper="stst_tao2023.txt: Sec. 3.4-3.7 (eqs. 5-16), Sec. 4.1.2, Tables 2-4, Fig. 6",
)
class STST(nn.Module):
    """Spatio-temporal squeeze transformer: ``forward(visual, acoustic) -> logits [B, n_classes]``."""

    def __init__(self, n_visual: int = 136, n_acoustic: int = 25, n_classes: int = 2, seq_len: int = 300,
                 d_model: int = 256, n_blocks: int = 2, n_heads: int = 4, kernel_size: int = 3,
                 mlp_ratio: int = 4, dropout: float = 0.5, pos_encoding: str = "learned",
                 st_mode: str = "time_space", squeeze_on: str = "v"):
        super().__init__()
        _check_choice("pos_encoding", pos_encoding, POS_ENCODINGS)
        _check_choice("st_mode", st_mode, ST_MODES)
        _check_choice("squeeze_on", squeeze_on, SQUEEZE_TARGETS)
        if d_model % n_heads:
            raise FacevoxError(f"stst: d_model={d_model} is not divisible by n_heads={n_heads}")
        if kernel_size % 2 == 0:
            raise FacevoxError(f"stst: kernel_size={kernel_size} must be odd (length-preserving padding)")
        if n_blocks < 1:
            raise FacevoxError(f"stst: n_blocks={n_blocks} must be at least 1")
        self.n_visual, self.n_acoustic, self.seq_len = n_visual, n_acoustic, seq_len
        self.visual_embedding = TokenEmbedding(n_visual, d_model, seq_len, pos_encoding, dropout)
        self.acoustic_embedding = TokenEmbedding(n_acoustic, d_model, seq_len, pos_encoding, dropout)
        self.blocks = nn.ModuleList(
            STSTBlock(d_model=d_model, n_heads=n_heads, seq_len=seq_len, kernel_size=kernel_size,
                      st_mode=st_mode, squeeze_on=squeeze_on, mlp_ratio=mlp_ratio, dropout=dropout)
            for _ in range(n_blocks))
        self.visual_norm = nn.LayerNorm(d_model)
        self.acoustic_norm = nn.LayerNorm(d_model)
        self.classifier = nn.Sequential(nn.Linear(2 * d_model, d_model), nn.ReLU(), nn.Dropout(dropout),
                                        nn.Linear(d_model, n_classes))

    def _check_inputs(self, visual: torch.Tensor, acoustic: torch.Tensor) -> None:
        for name, x, n in (("visual", visual, self.n_visual), ("acoustic", acoustic, self.n_acoustic)):
            if x.dim() != 3 or x.shape[1] != self.seq_len or x.shape[2] != n:
                raise FacevoxError(
                    f"stst: {name} must be [batch, {self.seq_len}, {n}] (seq_len frames, {n} features); "
                    f"got {list(x.shape)}")

    def encode(self, visual: torch.Tensor, acoustic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token sequences ``[B, T, d_model]`` of both modalities after the last block (eq. 15)."""
        self._check_inputs(visual, acoustic)
        v, a = self.visual_embedding(visual), self.acoustic_embedding(acoustic)
        for block in self.blocks:
            v, a = block(v, a)
        return self.visual_norm(v), self.acoustic_norm(a)

    def forward(self, visual: torch.Tensor, acoustic: torch.Tensor, lengths=None) -> torch.Tensor:
        if lengths is not None:
            raise FacevoxError("stst: its learned position encoding is for fixed-length slices; "
                               "train it with protocol slices (the paper's)")
        v, a = self.encode(visual, acoustic)
        return self.classifier(torch.cat([v.mean(dim=1), a.mean(dim=1)], dim=-1))
