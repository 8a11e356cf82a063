"""Depression Detector baseline (Yoon et al., AAAI 2022, the D-Vlog paper) on D-Vlog.

Paper: the "Depression Detector" row of STST (stst_tao2023.txt section 4.4,
Table 5, ref. [23]) and JAMFN (jamfn_zhou2023.txt Table 1, ref. [18]):
weighted P/R/F1 65.40/65.57/63.50. STST describes it only as "a multimodal
fusion depression detection network based on a cross-transformer encoder";
the D-Vlog paper itself is not in this project. The structure and sizes below
follow the public reimplementation summarised in /work/shared/papers/README.md
("Depression Detector ... as reimplemented publicly"), written here from that
description, not copied.

Architecture (``forward(visual [B, T, 136], acoustic [B, T, 25]) -> logits [B, n_classes]``):

1. Downsampling, per modality: Conv1d(C -> d_model, kernel 16, stride 4,
   padding 8) + BatchNorm1d, giving ``N = floor(T / 4) + 1`` tokens
   (T=300 -> 76, T=40 -> 11);
2. unimodal transformer encoders, per modality: ``n_layers`` post-norm
   encoder layers (d_model, ``n_heads`` heads, feed-forward width d_model,
   ReLU, dropout ``attention_dropout``);
3. two cross-attentions, each preceded by per-modality linear q/k/v maps:
   acoustic queries over visual keys/values (a -> v) and visual queries over
   acoustic keys/values (v -> a); multi-head attention, ``n_heads`` heads, no
   residual (as in the reimplementation);
4. concatenation of the two cross-attended sequences along features (2 * d_model
   per token; token i of one stream is paired with token i of the other);
5. joint transformer encoder: ``n_layers`` layers of width 2 * d_model,
   ``n_heads`` heads, feed-forward 2 * d_model;
6. mean over tokens, Dropout(0.5), Linear(2 * d_model, n_classes).

There is no positional encoding: all temporal order the model sees comes from
the strided convolutions (whose windows overlap); everything after step 1 is
equivariant to a common permutation of the token sequences, and the mean in
step 6 makes the logits invariant to it.

Defaults and where they come from: d_model 256, 4 heads, kernel 16, stride 4,
dropout 0.5 before the classifier (README description of the reimplementation);
``n_layers=6`` per encoder, feed-forward widths d_model / 2 * d_model, the
per-modality q/k/v linear maps and ``attention_dropout=0.1`` (PyTorch's encoder
default) are the reimplementation's values, not stated in any of our papers.

Deviations: the reimplementation ends in one logit (binary cross-entropy);
facevox's sequence family wants ``n_classes`` logits (cross-entropy), so the
last layer is Linear(2 * d_model, n_classes).

Training defaults: Adam, lr 1e-4 - our choice (none of our papers gives the
Depression Detector's training setup; 1e-4 with Adam is also the JAMFN
section 4.2 setting); batch 32 and 30 epochs are facevox's TRAINING_KEYS
defaults, also chosen, not from a paper.

Inputs are expected standardised per channel (the trainer's train-set
normalisation). Any T >= 1 works; visual and acoustic must share T.
``seq_len`` is accepted (the trainer passes it) and unused.

Tests: tests/test_models_baselines.py
"""
from __future__ import annotations

import torch
from torch import nn

from facevox.errors import FacevoxError
from facevox.models import register
from facevox.models.blstm import check_pair
from facevox.models.masking import check_lengths, masked_mean, padding_mask


def _encoder(width: int, n_heads: int, n_layers: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d_model=width, nhead=n_heads, dim_feedforward=width,
                                       dropout=dropout, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=n_layers, enable_nested_tensor=False)


class CrossAttention(nn.Module):
    """Queries from one stream, keys/values from the other, each through its own linear map first."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.attention = nn.MultiheadAttention(d_model, n_heads, batch_first=True)

    def forward(self, queries: torch.Tensor, context: torch.Tensor, pads=None) -> torch.Tensor:
        out, _ = self.attention(self.query(queries), self.key(context), self.value(context), need_weights=False,
                                key_padding_mask=pads)
        return out


@register(
    "depression_detector",
    display="Depression Detector",
    tiny={"d_model": 32, "n_layers": 1, "dropout": 0.0},
    family="sequence",
    protocol="whole",
    defaults={"d_model": 256, "n_heads": 4, "n_layers": 6, "kernel_size": 16, "stride": 4,
              "attention_dropout": 0.1, "dropout": 0.5},
    training={"optimizer": "adam", "lr": 1e-4},
    paper="stst_tao2023.txt sec. 4.4 + Table 5 / jamfn_zhou2023.txt Table 1 (Depression Detector row); "
          "architecture: papers/README.md (public reimplementation of Yoon et al. 2022); lr: our choice",
)
class DepressionDetector(nn.Module):
    """Conv downsampling -> unimodal encoders -> a->v and v->a cross-attention -> joint encoder -> mean."""

    def __init__(self, d_model: int = 256, n_heads: int = 4, n_layers: int = 6, kernel_size: int = 16,
                 stride: int = 4, attention_dropout: float = 0.1, dropout: float = 0.5,
                 n_visual: int = 136, n_acoustic: int = 25, n_classes: int = 2, seq_len: int = 300):
        super().__init__()
        if d_model % n_heads:
            raise FacevoxError(f"depression_detector: d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_visual, self.n_acoustic = n_visual, n_acoustic
        self.visual_downsample = self._downsample(n_visual, d_model, kernel_size, stride)
        self.acoustic_downsample = self._downsample(n_acoustic, d_model, kernel_size, stride)
        self.visual_encoder = _encoder(d_model, n_heads, n_layers, attention_dropout)
        self.acoustic_encoder = _encoder(d_model, n_heads, n_layers, attention_dropout)
        self.acoustic_to_visual = CrossAttention(d_model, n_heads)
        self.visual_to_acoustic = CrossAttention(d_model, n_heads)
        self.joint_encoder = _encoder(2 * d_model, n_heads, n_layers, attention_dropout)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * d_model, n_classes)

    @staticmethod
    def _downsample(n_in: int, d_model: int, kernel_size: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv1d(n_in, d_model, kernel_size=kernel_size, stride=stride, padding=kernel_size // 2),
            nn.BatchNorm1d(d_model),
        )

    def tokens(self, visual: torch.Tensor, acoustic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Step 1: conv + BatchNorm tokens (x_v, x_a), each [B, N, d_model]."""
        check_pair("depression_detector", visual, acoustic, self.n_visual, self.n_acoustic)
        x_v = self.visual_downsample(visual.transpose(1, 2)).transpose(1, 2)
        x_a = self.acoustic_downsample(acoustic.transpose(1, 2)).transpose(1, 2)
        return x_v, x_a

    def token_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Tokens of a video of ``lengths`` rows: floor((T + 2 * (k // 2) - k) / stride) + 1."""
        conv = self.visual_downsample[0]
        k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        return torch.div(lengths + 2 * p - k, s, rounding_mode="floor") + 1

    def classify_tokens(self, x_v: torch.Tensor, x_a: torch.Tensor, token_lengths=None) -> torch.Tensor:
        """Steps 2-6: logits [B, n_classes] from the token sequences; with ``token_lengths``
        no attention looks at a padded token and the mean is over the real ones."""
        pads = padding_mask(token_lengths, x_v.shape[1], x_v.device)
        u_v = self.visual_encoder(x_v, src_key_padding_mask=pads)
        u_a = self.acoustic_encoder(x_a, src_key_padding_mask=pads)
        joint = torch.cat([self.acoustic_to_visual(u_a, u_v, pads), self.visual_to_acoustic(u_v, u_a, pads)], dim=2)
        pooled = masked_mean(self.joint_encoder(joint, src_key_padding_mask=pads), token_lengths)
        return self.classifier(self.dropout(pooled))

    def forward(self, visual: torch.Tensor, acoustic: torch.Tensor, lengths=None) -> torch.Tensor:
        """``lengths`` (protocol whole): real rows per video. The tokens of the real rows are
        the same whatever follows them (the convolution's own padding is zeros too, and
        BatchNorm in eval mode is per token), so masking the later tokens makes the logits
        independent of the batch padding."""
        lengths = check_lengths("depression_detector", lengths, *visual.shape[:2])
        x_v, x_a = self.tokens(visual, acoustic)
        return self.classify_tokens(x_v, x_a, None if lengths is None else self.token_lengths(lengths))
