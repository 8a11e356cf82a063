"""JAMFN: Joint Attention Multi-Scale Fusion Network (Zhou et al., 2023).

Paper: /work/shared/papers/jamfn_zhou2023.txt.  Input: ``visual [B, T, 136]``
(68 dlib landmarks, min-max normalised) and ``acoustic [B, T, 25]`` (eGeMAPS
LLDs); output: ``logits [B, n_classes]`` (cross-entropy, Sec. 3.4).

Map from code to paper
----------------------
* ``JAMFN.visual_lstm`` / ``JAMFN.acoustic_lstm`` - Sec. 3.1, eqs. 1-5:
  BiLSTM_v and BiLSTM_a, ``num_layers=6`` bidirectional layers with
  ``hidden_size=200`` (Sec. 4.2).  Inner layers pass ``[forward, backward]``
  (eq. 3, 400 features) to the next layer; after the last layer the two
  directions are **added** (eq. 4), and all time steps are kept (eq. 5), so
  ``F_m`` is ``[B, T, 200]``.
* ``JAMFN.visual_convs`` / ``JAMFN.acoustic_convs`` - Sec. 3.2, eq. 6: one
  ``Conv1d(200, 512, k, padding=(k-1)//2)`` per modality and kernel size
  ``k in (1, 3, 5)`` (512 output channels, Sec. 4.2), so every scale keeps
  length ``T``.  Eq. 6 has no activation and none is applied.
* ``JointAttentionFusion`` - Sec. 3.3, eqs. 7-12, one module (own weights)
  per scale: ``T_A = FC1(X_A)``, ``T_V = FC2(X_V)`` (``Linear(512, 1)``,
  eqs. 7-8); ``T_Joint = Concat(T_A, T_V)`` is the ``2L`` vector (eq. 9);
  ``T_Mixed = FC3(T_Joint)`` with ``FC3 = Linear(2L, 2L)``, ``L = seq_len``
  (eq. 10); ``Split`` into the acoustic and visual halves (eq. 11); a softmax
  over time per half gives the temporal attention vectors, and
  ``Fusion = softmax(T_A.mixed) * X_A + softmax(T_V.mixed) * X_V`` with the
  weights broadcast over the 512 features (eq. 12).  Each modality's weights
  therefore sum to 1 over the time steps.
* ``JAMFN.forward`` - Sec. 3.4, eqs. 13-14: ``F_out = sum_k Fusion^k``, then
  the linear layer ``head`` gives the logits.

Ablation switches (Sec. 4.4)
----------------------------
* ``multi_scale=False`` (Table 2, "MG removed"): only the first entry of
  ``kernel_sizes`` is used (k=1 by default: a per-frame projection to 512
  channels with no multi-frame receptive field), so there is one modality
  pair.  ``kernel_sizes`` alone reproduces Table 3 (e.g. ``(3, 5)`` is
  "w/o k=1").
* ``fusion`` (Table 4): ``"jaf"`` (the paper's model), ``"add"``
  (``X_A + X_V``), ``"multiply"`` (``X_A * X_V``, element-wise) or
  ``"concat"`` (``[X_A, X_V]`` along features, so the head's input is
  ``2 * conv_channels``) in place of every JAF module.

Assumptions where the paper is silent
-------------------------------------
* Temporal pooling.  Eq. 14 applies one FC to ``F_out`` (``L x H``) without
  saying how time is collapsed.  Because eq. 12 normalises the attention over
  time with a softmax, the standard reading (attention pooling) is used:
  ``F_out`` is **summed over time**, which makes each modality's
  contribution a convex combination of its frames; ``head`` is
  ``Linear(conv_channels, n_classes)``.  The Add/Multiply/Concat ablations
  have no attention weights and use the plain **mean over time** (the same
  pooling with uniform weights).  Flattening ``L x H`` into the FC would be
  the other reading; it is not used.
* Dropout is not mentioned; ``dropout=0.0`` by default.  When set, it is the
  LSTMs' between-layer dropout and is also applied to the pooled features
  before ``head``.
* One JAF module per scale (separate FC1-FC3 weights); separate convolutions
  per modality and scale; biases everywhere (PyTorch defaults).
* Sequences shorter than ``seq_len`` (FC3 is sized for ``2 * seq_len``):
  BiLSTM and convolutions run on the real ``T`` frames; ``T_A`` and ``T_V``
  are zero-padded to ``seq_len`` before FC3, and the softmax runs over the
  first ``T`` positions of each half only, so the weights still sum to 1
  over the real frames.  ``T > seq_len`` raises :class:`FacevoxError`.
* Both modalities must have the same ``T`` (the slicer aligns them).

Training (Sec. 4.2): Adam (eps 1e-8, PyTorch's default), lr 1e-4, weight
decay 5e-4, batch 32, 30 epochs, early stopping with patience 4,
cross-entropy.  Slice-to-video vote ``mean`` is this project's choice (the
paper does not describe slicing).

Tests: tests/test_models_jamfn.py
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from facevox.errors import FacevoxError
from facevox.models import register
from facevox.models.masking import check_lengths, masked_mean, padding_mask, run_lstm, zero_padded

FUSIONS = ("jaf", "add", "multiply", "concat")


class SummedBiLSTM(nn.Module):
    """Multi-layer BiLSTM whose last layer's two directions are added (eqs. 1-5)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0):
        super().__init__()
        self.hidden_size = hidden_size
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers=num_layers, batch_first=True,
                            bidirectional=True, dropout=dropout if num_layers > 1 else 0.0)

    def forward(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        """``x [B, T, input_size]`` -> ``[B, T, hidden_size]`` (forward + backward, eq. 4);
        with ``lengths``, packed, zero past each length."""
        out = run_lstm(self.lstm, x, lengths)  # [B, T, 2 * hidden]: forward then backward (eq. 3)
        return out[..., :self.hidden_size] + out[..., self.hidden_size:]


class JointAttentionFusion(nn.Module):
    """JAF module (Sec. 3.3, eqs. 7-12) for one acoustic/visual pair of one scale."""

    def __init__(self, channels: int, seq_len: int):
        super().__init__()
        self.seq_len = seq_len
        self.fc_acoustic = nn.Linear(channels, 1)      # FC1, eq. 7
        self.fc_visual = nn.Linear(channels, 1)        # FC2, eq. 8
        self.fc_joint = nn.Linear(2 * seq_len, 2 * seq_len)  # FC3, eq. 10

    def forward(self, x_acoustic: torch.Tensor, x_visual: torch.Tensor, lengths=None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``X_A, X_V [B, T, H]`` -> (``Fusion [B, T, H]``, attention ``[B, 2, T]``).

        ``attention[:, 0]`` is softmax(T_A.mixed), ``attention[:, 1]``
        softmax(T_V.mixed); each sums to 1 over time (over each video's first
        ``lengths[b]`` steps: T_A, T_V are zero past them, as for a shorter sequence).
        """
        n_frames = x_acoustic.shape[1]
        if n_frames > self.seq_len:
            raise FacevoxError(
                f"JAMFN was built for sequences of at most seq_len={self.seq_len} frames "
                f"(its JAF layer FC3 is sized 2*seq_len) but got {n_frames}; rebuild it with seq_len={n_frames}")
        pad = self.seq_len - n_frames
        pads = padding_mask(lengths, n_frames, x_acoustic.device)
        t_acoustic = self.fc_acoustic(x_acoustic).squeeze(-1)  # [B, T]
        t_visual = self.fc_visual(x_visual).squeeze(-1)
        if pads is not None:
            t_acoustic, t_visual = t_acoustic.masked_fill(pads, 0), t_visual.masked_fill(pads, 0)
        t_acoustic = nn.functional.pad(t_acoustic, (0, pad))  # [B, L]
        t_visual = nn.functional.pad(t_visual, (0, pad))
        t_mixed = self.fc_joint(torch.cat([t_acoustic, t_visual], dim=1))  # eqs. 9-10: [B, 2L]
        t_acoustic_mixed, t_visual_mixed = t_mixed.split(self.seq_len, dim=1)  # eq. 11
        attention = torch.stack([t_acoustic_mixed[:, :n_frames], t_visual_mixed[:, :n_frames]], dim=1)
        if pads is not None:
            attention = attention.masked_fill(pads[:, None, :], -torch.inf)
        attention = attention.softmax(dim=-1)  # over time, per modality
        fusion = attention[:, 0, :, None] * x_acoustic + attention[:, 1, :, None] * x_visual  # eq. 12
        return fusion, attention


class JAMFN(nn.Module):
    """BiLSTM per modality -> multi-scale Conv1d -> JAF per scale -> sum -> linear head."""

    def __init__(self, n_visual: int = 136, n_acoustic: int = 25, n_classes: int = 2, seq_len: int = 300,
                 hidden_size: int = 200, num_layers: int = 6, conv_channels: int = 512,
                 kernel_sizes: Sequence[int] = (1, 3, 5), multi_scale: bool = True, fusion: str = "jaf",
                 dropout: float = 0.0):
        super().__init__()
        if fusion not in FUSIONS:
            raise FacevoxError(f"jamfn: fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        kernel_sizes = [int(k) for k in kernel_sizes]
        if not kernel_sizes:
            raise FacevoxError("jamfn: kernel_sizes is empty; give at least one odd kernel size")
        even = [k for k in kernel_sizes if k < 1 or k % 2 == 0]
        if even:
            raise FacevoxError(f"jamfn: kernel sizes must be positive and odd to keep the length "
                               f"(Sec. 3.2 'same' padding), got {even}")
        if seq_len < 1:
            raise FacevoxError(f"jamfn: seq_len must be positive, got {seq_len}")
        self.kernel_sizes = kernel_sizes if multi_scale else kernel_sizes[:1]
        self.fusion = fusion
        self.visual_lstm = SummedBiLSTM(n_visual, hidden_size, num_layers, dropout)
        self.acoustic_lstm = SummedBiLSTM(n_acoustic, hidden_size, num_layers, dropout)
        self.visual_convs = nn.ModuleList(
            nn.Conv1d(hidden_size, conv_channels, k, padding=(k - 1) // 2) for k in self.kernel_sizes)
        self.acoustic_convs = nn.ModuleList(
            nn.Conv1d(hidden_size, conv_channels, k, padding=(k - 1) // 2) for k in self.kernel_sizes)
        self.jafs = nn.ModuleList(
            JointAttentionFusion(conv_channels, seq_len) for _ in self.kernel_sizes) if fusion == "jaf" else None
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * conv_channels if fusion == "concat" else conv_channels, n_classes)

    def forward_with_attention(self, visual: torch.Tensor, acoustic: torch.Tensor, lengths=None
                               ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Logits ``[B, n_classes]`` and, for ``fusion="jaf"``, the attention
        ``[B, 2, T]`` (acoustic, visual) of each kernel size (empty otherwise).

        ``lengths`` (protocol whole): real frames per video; the LSTMs run packed,
        their outputs are zero past each length (what the convolutions' own zero
        padding gives a shorter video), the scale outputs are zeroed there again,
        and the JAF softmax / the mean run over the real frames only."""
        if visual.shape[:2] != acoustic.shape[:2]:
            raise FacevoxError(f"jamfn: visual {tuple(visual.shape)} and acoustic {tuple(acoustic.shape)} "
                               "must share batch size and number of frames")
        lengths = check_lengths("jamfn", lengths, *visual.shape[:2])
        f_visual = self.visual_lstm(visual, lengths).transpose(1, 2)  # [B, hidden, T] for Conv1d
        f_acoustic = self.acoustic_lstm(acoustic, lengths).transpose(1, 2)
        f_out = 0
        attention = {}
        for i, k in enumerate(self.kernel_sizes):
            x_visual = zero_padded(self.visual_convs[i](f_visual).transpose(1, 2), lengths)  # eq. 6: [B, T, C]
            x_acoustic = zero_padded(self.acoustic_convs[i](f_acoustic).transpose(1, 2), lengths)
            if self.fusion == "jaf":
                fused, attention[k] = self.jafs[i](x_acoustic, x_visual, lengths)
            elif self.fusion == "add":
                fused = x_acoustic + x_visual
            elif self.fusion == "multiply":
                fused = x_acoustic * x_visual
            else:
                fused = torch.cat([x_acoustic, x_visual], dim=-1)
            f_out = f_out + fused  # eq. 13
        # JAF weights sum to 1 over time, so the sum is attention pooling; the others average.
        pooled = f_out.sum(dim=1) if self.fusion == "jaf" else masked_mean(f_out, lengths)
        return self.head(self.dropout(pooled)), attention  # eq. 14

    def forward(self, visual: torch.Tensor, acoustic: torch.Tensor, lengths=None) -> torch.Tensor:
        return self.forward_with_attention(visual, acoustic, lengths)[0]


#: Section 4.2's optimiser and schedule (the BLSTM / TFN / Fusion_* baselines reuse it).
PAPER_TRAINING = {
    "optimizer": "adam",
    "lr": 1e-4,
    "weight_decay": 5e-4,
    "batch_size": 32,
    "epochs": 30,
    "patience": 4,
}


@register(
    "jamfn",
    display="JAMFN",
    tiny={"num_layers": 1, "hidden_size": 32, "conv_channels": 32},
    family="sequence",
    protocol="whole",
    defaults={
        "hidden_size": 200,
        "num_layers": 6,
        "conv_channels": 512,
        "kernel_sizes": (1, 3, 5),
        "multi_scale": True,
        "fusion": "jaf",
        "dropout": 0.0,
    },
    training={**PAPER_TRAINING, "loss": "cross_entropy", "vote": "mean"},
    paper="jamfn_zhou2023.txt Sec. 3 (eqs. 1-14), Sec. 4.2 (hyperparameters), Sec. 4.4 / Tables 2-4 (ablations)",
)
def build_jamfn(**cfg) -> JAMFN:
    return JAMFN(**cfg)
