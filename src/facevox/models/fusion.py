"""Fusion_Concat / Fusion_Add / Fusion_Multiply baselines on D-Vlog.

Paper: the rows Fusion_Concat 62.51/63.21/61.10, Fusion_Add 59.11/60.38/58.11
and Fusion_Multiply 63.48/64.15/63.09 (weighted P/R/F1) of JAMFN
(jamfn_zhou2023.txt, section 4.3, Table 1), which lists them among "the 10
benchmark models proposed by Yoon et al [18]" (the D-Vlog paper, whose text is
not in this project). Neither JAMFN nor STST describes these models; the names
say what they are: two unimodal encoders whose outputs are fused by
concatenation, element-wise sum or element-wise product (the operations JAMFN
section 4.4 cites as Concat [27], Add [25], Multiply [26]), then a classifier.

Architecture (``forward(visual [B, T, 136], acoustic [B, T, 25]) -> logits [B, n_classes]``),
one class :class:`FusionBaseline` with ``mode`` in {concat, add, multiply}:

1. per modality a bidirectional LSTM (:class:`facevox.models.blstm.BiLSTMEncoder`),
   output sequence averaged over time: ``h_v, h_a`` in R^{2 * hidden_size}
   (the same size for both, which add / multiply require);
2. fusion: ``[h_v; h_a]`` (4 * hidden_size), ``h_v + h_a`` or ``h_v * h_a``
   (2 * hidden_size each);
3. head: Linear(fused, head_hidden) -> ReLU -> Dropout -> Linear(head_hidden, n_classes).

Not from the paper (no sizes are given anywhere in our papers; modest
standard choices): BiLSTM encoders with ``hidden_size=128``, one layer, mean
over time; ``head_hidden=128``; ``dropout=0.5``. ``mode`` is fixed by the
registered name, not an override.

Training defaults: the JAMFN protocol (jamfn_zhou2023.txt section 4.2: Adam,
lr 1e-4, weight decay 5e-4, batch 32, 30 epochs, patience 4) - a consistent
choice; the rows above were produced under the D-Vlog paper's protocol, which
we do not have.

Inputs are expected standardised per channel (the trainer's train-set
normalisation). ``seq_len`` is accepted (the trainer passes it) and unused:
any slice length works.

Tests: tests/test_models_baselines.py
"""
from __future__ import annotations

import torch
from torch import nn

from facevox.errors import FacevoxError
from facevox.models import register
from facevox.models.blstm import JAMFN_TRAINING, BiLSTMEncoder, check_pair
from facevox.models.masking import check_lengths

MODES = ("concat", "add", "multiply")

_DEFAULTS = {"hidden_size": 128, "head_hidden": 128, "dropout": 0.5}


class FusionBaseline(nn.Module):
    """Two BiLSTM encoders fused by concatenation, sum or product, then an MLP head."""

    def __init__(self, mode: str = "concat", hidden_size: int = 128, head_hidden: int = 128,
                 dropout: float = 0.5, n_visual: int = 136, n_acoustic: int = 25,
                 n_classes: int = 2, seq_len: int = 300):
        super().__init__()
        if mode not in MODES:
            raise FacevoxError(f"fusion baseline: unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        self.mode = mode
        self.n_visual, self.n_acoustic = n_visual, n_acoustic
        self.visual_encoder = BiLSTMEncoder(n_visual, hidden_size)
        self.acoustic_encoder = BiLSTMEncoder(n_acoustic, hidden_size)
        encoding = self.visual_encoder.out_dim
        self.fused_dim = 2 * encoding if mode == "concat" else encoding
        self.head = nn.Sequential(
            nn.Linear(self.fused_dim, head_hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(head_hidden, n_classes),
        )

    def encode(self, visual: torch.Tensor, acoustic: torch.Tensor, lengths=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Unimodal encodings (h_v, h_a), each [B, 2 * hidden_size] (masked with ``lengths``)."""
        check_pair(f"fusion_{self.mode}", visual, acoustic, self.n_visual, self.n_acoustic)
        lengths = check_lengths(f"fusion_{self.mode}", lengths, *visual.shape[:2])
        return self.visual_encoder(visual, lengths), self.acoustic_encoder(acoustic, lengths)

    def fuse(self, h_v: torch.Tensor, h_a: torch.Tensor) -> torch.Tensor:
        if self.mode == "concat":
            return torch.cat([h_v, h_a], dim=1)
        if self.mode == "add":
            return h_v + h_a
        return h_v * h_a

    def forward(self, visual: torch.Tensor, acoustic: torch.Tensor, lengths=None) -> torch.Tensor:
        return self.head(self.fuse(*self.encode(visual, acoustic, lengths)))


def _builder(mode: str):
    def build(**cfg) -> FusionBaseline:
        return FusionBaseline(mode=mode, **cfg)

    build.__name__ = f"build_fusion_{mode}"
    return build


_PAPER = ("jamfn_zhou2023.txt Table 1 ({} row); architecture and sizes not from the paper; "
          "training: jamfn_zhou2023.txt sec. 4.2")
_TINY = {"hidden_size": 32, "dropout": 0.0}

register(
    "fusion_concat",
    display="Fusion_Concat",
    family="sequence",
    protocol="whole",
    defaults=_DEFAULTS,
    training=JAMFN_TRAINING,
    paper=_PAPER.format("Fusion_Concat"),
    tiny=_TINY,
)(_builder("concat"))
register(
    "fusion_add",
    display="Fusion_Add",
    family="sequence",
    protocol="whole",
    defaults=_DEFAULTS,
    training=JAMFN_TRAINING,
    paper=_PAPER.format("Fusion_Add"),
    tiny=_TINY,
)(_builder("add"))
register(
    "fusion_multiply",
    display="Fusion_Multiply",
    family="sequence",
    protocol="whole",
    defaults=_DEFAULTS,
    training=JAMFN_TRAINING,
    paper=_PAPER.format("Fusion_Multiply"),
    tiny=_TINY,
)(_builder("multiply"))
