"""TFN baseline (Tensor Fusion Network, Zadeh et al., EMNLP 2017), bimodal, on D-Vlog.

Paper: the "TFN" row of STST (stst_tao2023.txt section 4.4, Table 5, ref.
[57]) and JAMFN (jamfn_zhou2023.txt Table 1): weighted P/R/F1
61.39/62.26/61.00, copied from the D-Vlog paper (not in this project). STST
only says "TFN is a network structure in multimodal sentiment analysis"; the
structure below is TFN's, reduced from three modalities (language, visual,
acoustic) to the two D-Vlog has.

Architecture (``forward(visual [B, T, 136], acoustic [B, T, 25]) -> logits [B, n_classes]``):

1. Modality embedding subnetworks, one per modality, to ``z_v`` in R^{d_v}
   and ``z_a`` in R^{d_a}:

   * ``subnet="mlp"`` (default; TFN's visual/acoustic subnetworks): features
     averaged over time, then a 3-layer ReLU MLP of ``subnet_hidden`` units
     (the last layer gives the embedding, ``d = subnet_hidden``), dropout
     after each hidden layer;
   * ``subnet="lstm"``: an LSTM of ``subnet_hidden`` units, its outputs
     averaged over time, then Linear to ``subnet_hidden`` + ReLU (TFN's
     language-subnetwork form, offered for the temporal D-Vlog features).

2. Tensor fusion layer (TFN's three-fold product with the language factor
   dropped): ``z = [z_v; 1] (outer) [z_a; 1]``, flattened to
   ``(d_v + 1) * (d_a + 1)`` values. Because of the appended 1s the flattened
   tensor holds the unimodal embeddings themselves (row ``d_v``: ``z_a``;
   column ``d_a``: ``z_v``), the bimodal products ``z_v,i * z_a,j`` and a
   constant 1 (index layout ``i * (d_a + 1) + j``).
3. Inference subnetwork: Dropout -> Linear(fused, inference_hidden) -> ReLU ->
   Linear(inference_hidden, inference_hidden) -> ReLU -> Linear(inference_hidden, n_classes).

Sizes: ``subnet_hidden=32`` and ``inference_hidden=128`` follow the TFN paper's
visual/acoustic subnetworks (32 ReLU units) and its 128-unit inference layers
as we recall them (the TFN paper itself is not in this project; unverified
here); ``dropout=0.2`` is our choice. None of these come from the D-Vlog papers.

Training defaults: the JAMFN protocol (jamfn_zhou2023.txt section 4.2: Adam,
lr 1e-4, weight decay 5e-4, batch 32, 30 epochs, patience 4) - a consistent
choice, not the protocol that produced the row above.

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
from facevox.models.blstm import JAMFN_TRAINING, check_pair
from facevox.models.masking import check_lengths, masked_mean, run_lstm

SUBNETS = ("mlp", "lstm")


class MeanMLPSubnet(nn.Module):
    """Time-averaged features -> three ReLU layers of ``hidden`` units -> [B, hidden]."""

    def __init__(self, n_in: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        return self.net(masked_mean(x, lengths))


class LSTMSubnet(nn.Module):
    """LSTM outputs averaged over time -> Linear + ReLU -> [B, hidden]."""

    def __init__(self, n_in: int, hidden: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(n_in, hidden, batch_first=True)
        self.project = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        return self.project(masked_mean(run_lstm(self.lstm, x, lengths), lengths))


def tensor_fusion(z_v: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
    """Flattened outer product of [z_v; 1] and [z_a; 1]: [B, (d_v + 1) * (d_a + 1)]."""
    ones = z_v.new_ones(z_v.shape[0], 1)
    z_v1 = torch.cat([z_v, ones], dim=1)
    z_a1 = torch.cat([z_a, ones], dim=1)
    return torch.einsum("bi,bj->bij", z_v1, z_a1).flatten(start_dim=1)


@register(
    "tfn",
    display="TFN",
    tiny={"dropout": 0.0},
    family="sequence",
    protocol="whole",
    defaults={"subnet": "mlp", "subnet_hidden": 32, "inference_hidden": 128, "dropout": 0.2},
    training=JAMFN_TRAINING,
    paper="stst_tao2023.txt sec. 4.4 + Table 5 / jamfn_zhou2023.txt Table 1 (TFN row, ref. [57] Zadeh 2017); "
          "sizes from TFN as recalled, not from the D-Vlog papers; training: jamfn_zhou2023.txt sec. 4.2",
)
class TFN(nn.Module):
    """Bimodal Tensor Fusion Network: subnetworks -> [z_v;1] (x) [z_a;1] -> inference MLP."""

    def __init__(self, subnet: str = "mlp", subnet_hidden: int = 32, inference_hidden: int = 128,
                 dropout: float = 0.2, n_visual: int = 136, n_acoustic: int = 25,
                 n_classes: int = 2, seq_len: int = 300):
        super().__init__()
        if subnet not in SUBNETS:
            raise FacevoxError(f"tfn: unknown subnet {subnet!r}; choose one of {', '.join(SUBNETS)}")
        self.n_visual, self.n_acoustic = n_visual, n_acoustic
        make = MeanMLPSubnet if subnet == "mlp" else LSTMSubnet
        self.visual_subnet = make(n_visual, subnet_hidden, dropout)
        self.acoustic_subnet = make(n_acoustic, subnet_hidden, dropout)
        self.fused_dim = (subnet_hidden + 1) * (subnet_hidden + 1)
        self.inference = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(self.fused_dim, inference_hidden), nn.ReLU(),
            nn.Linear(inference_hidden, inference_hidden), nn.ReLU(),
            nn.Linear(inference_hidden, n_classes),
        )

    def embed(self, visual: torch.Tensor, acoustic: torch.Tensor, lengths=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Unimodal embeddings (z_v, z_a), each [B, subnet_hidden] (masked with ``lengths``)."""
        check_pair("tfn", visual, acoustic, self.n_visual, self.n_acoustic)
        lengths = check_lengths("tfn", lengths, *visual.shape[:2])
        return self.visual_subnet(visual, lengths), self.acoustic_subnet(acoustic, lengths)

    def forward(self, visual: torch.Tensor, acoustic: torch.Tensor, lengths=None) -> torch.Tensor:
        return self.inference(tensor_fusion(*self.embed(visual, acoustic, lengths)))
