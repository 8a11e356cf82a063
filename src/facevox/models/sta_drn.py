"""STA-DRN: Spatial-Temporal Attention Depression Recognition Network (Pan et al., 2023).

Paper: /work/shared/papers/sta_drn_pan2023.txt.  Input: ``clip [B, 3, T, H, W]``,
aligned face frames as floats in ``[0, 1]`` (64 frames of 224 x 224 in the paper,
Sec. 3.3); output: ``score [B]``, the BDI-II score divided by 63 (the trainer
multiplies by 63).  The last layer is linear, with no activation (the paper names
none; the authors' evaluation script clips negative predictions with a ReLU at test
time, which is not part of the model here).

Map from code to paper
----------------------
* ``AttentionBranch`` - one attention sub-module, Sec. 3.2.1-3.2.2.
  ``F_sp`` (eq. 2) is ``Conv3d(C, C, 3x3x3, groups=K)`` + BN + ReLU, giving the
  ``K`` feature groups of ``C' = C / K`` channels.  ``axis="spatial"``: temporal
  average ``z_s`` (eq. 3, ``[B, C, 1, H, W]``); ``axis="temporal"``: spatial
  average ``z_t`` (eq. 7, ``[B, C, T, 1, 1]``).  ``F_fc`` is the "1x1 convolution
  recommended to replace the fully connected layer" (Sec. 3.2.1), grouped by ``K``,
  then ``group_attention`` applies the softmax of eq. 5 across the ``K`` groups:
  channel ``c`` of every group competes with channel ``c`` of the others at each
  position, so the ``K`` weights of a (channel, position) sum to 1 (eqs. 4 and 8).
  ``forward`` returns the features ``X_s``/``X_t`` and the vector ``s_s``/``s_t``.
* ``STAModule`` - the middle layer of the bottleneck (Sec. 3.1), ``variant``:
  ``"s"``: ``s_s * X_s`` (eq. 6); ``"t"``: ``s_t * X_t`` (eq. 9);
  ``"fusion_f"``: ``s_s * X_s + s_t * X_t`` (feature-wise fusion, eq. 10);
  ``"fusion_v"``: ``(s_s * s_t) * (X_s + X_t)`` (attention-vector fusion,
  eqs. 1, 11-12; ``s_s [.., 1, H, W]`` times ``s_t [.., T, 1, 1]`` broadcasts to
  ``s_st [.., T, H, W]``).  Table 2: ``fusion_v`` with ``K = 2`` is the best
  (MAE/RMSE 6.15/7.98 on AVEC 2013), hence the defaults.
* ``Bottleneck`` - ResNet bottleneck (He et al., 2016): 1x1x1 conv -> BN -> ReLU
  -> STA module -> BN -> ReLU -> 1x1x1 conv (4x expansion) -> BN, plus the
  shortcut, then ReLU (Fig. 2, Table 1).  The stride of a stage's first block is
  applied by the STA module's convolutions and by the projection shortcut.
* ``STADRN`` - Table 1: ``conv1`` 7x7x7, 64 channels, stride (1, 2, 2) + BN +
  ReLU; 3x3x3 max pool, stride (1, 2, 2); four stages (``module2_x`` ..
  ``module5_x``) whose bottleneck widths double from ``width``; the first block of
  stages 3-5 downsamples; adaptive average pool to 1x1x1; ``Linear(., 1)`` ("1-d
  fc").  ``depth`` 18 / 50 / 152 selects the per-stage bottleneck numbers
  [2, 2, 2, 2] / [3, 4, 6, 3] / [3, 8, 36, 3] (Sec. 4.3.2); ``layers`` overrides
  them.

Table 1 versus Table 4: the defaults follow the measured network
-----------------------------------------------------------------
Read literally, Table 1 gives bottleneck widths 16/32/64/128 (outputs 64 .. 512),
2 bottlenecks per stage for STA-18 and stride (1, 2, 2) downsampling.  That
network has 1,773,633 parameters (K = 2, ``fusion_v``), far from the 31.27 M
that Table 4 reports for STA-18.  Every count of Table 4 is reproduced **exactly**
(31,269,569 / 41,407,425 / 78,140,353 for STA-18 / 50 / 152, printed there as
31.27 / 41.41 / 78.14 M) by the structure of the authors' public code
(``stanet_af``) at base width 32 (its scripts use 16, its default is 64).  It
differs from the literal Table 1 in three switches, all constructor arguments:

* ``width=32`` - stage-1 bottleneck width; Table 1's 16 / 16 / 64 are then the
  sizes per group (``C' = width / K = 16``; Table 1 reads as one of the ``K = 2``
  groups).
* ``scale_depth_by_groups=True`` - a stage holds ``layers[i] * K`` bottlenecks
  (so STA-18 with K = 2 has 4 per stage: Table 1's "x 2" per group).
* ``shortcut_kernel=3`` - the projection shortcut (first block of each stage) is a
  3x3x3 convolution + BN; He et al.'s 1x1x1 projection is ``shortcut_kernel=1``.

Parameter counts do not depend on strides, but FLOPs do.  Counting one operation
per multiply-accumulate of the convolutions (bias included) and two per batch-norm
output element, STA-18/50/152 on a 64 x 224 x 224 clip cost 192.65 / 238.04 /
375.50 G with temporal stride 2 in the downsampling blocks (Table 4: 192.71 /
238.16 / 375.69 GFLOPs; pooling and element-wise products make up the rest),
against 348.7 / 464.6 / 956.1 G with the (1, 2, 2) of Table 1.  So
``temporal_stride=2`` is the default (the downsampling blocks of stages 3-5 use
stride (2, 2, 2), as in the authors' code); ``temporal_stride=1`` is Table 1's
caption.  The literal Table 1
network is ``width=16, scale_depth_by_groups=False, shortcut_kernel=1,
temporal_stride=1``.

Assumptions where the paper is silent
-------------------------------------
* ``K = 1``: the softmax of eq. 5 over a single group is identically 1, which would
  make the s and t variants the same plain convolution although Table 2 reports
  different results for k1_s and k1_t; a sigmoid gates the features instead (as in
  the authors' code).
* Biases: the STA convolutions (``F_sp``, ``F_fc``) keep PyTorch's default bias (it
  is needed for Table 4's counts); the other convolutions have none (they are
  followed by BN, as in ResNet).
* Input normalisation: the clip is standardised per channel with the ImageNet
  mean/std (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225) inside ``forward``, as in
  the authors' data loader; callers pass ``[0, 1]`` frames.
* Initialisation: Kaiming-normal (fan-out) convolutions, BN weight 1 / bias 0
  (standard ResNet).  The paper fine-tunes from weights pre-trained on UCF101 and
  CK+ (Sec. 4.2); those are not available, so training starts from scratch.
* ``clip_len`` and ``size`` (the data's clip length and frame size) are accepted
  and stored; the network itself is size-agnostic (adaptive pooling).

Training (``training=`` of the registration, Sec. 4.2)
-------------------------------------------------------
Adam, lr 1e-3, batch 5, 200 epochs; the best-validation checkpoint is kept
("save the weights when the validation loss reaches a historical minimum"), which
is not early stopping, so ``patience`` stays None.  Schedule: cosine annealing
with warm restarts, eq. 13 (``eta_t = 0.5 * 0.001 * (1 + cos(pi * T_cur / T_i))``,
so the rate falls to 0 within a cycle), ``T_0 = 50``, factor 2:
``scheduler="cosine_warm_restarts"``, ``T0=50``, ``T_mult=2`` of the shared loop
(stepped per epoch; restarts after epochs 50 and 150).  Loss: the paper does not name one;
``"mse"`` on the score / 63, as in the
authors' training script (their later script adds SmoothL1, which equals half the
squared error for errors below 1, nearly always so on the 1/63 scale: the sum is
then 1.5 x MSE, the same minimiser).  Test-time video score = mean over the clips covering the
video (Sec. 3.3), done by the clip trainer.

Width: 32 (Table 4) or 16 (the authors' weights)
------------------------------------------------
``width`` is the stage-1 bottleneck width (``features`` in the authors' code).
``width=32`` (default) is the network of Table 4: 31,269,569 parameters (31.27 M)
for STA-18.  The authors' scripts (``train.py``, ``test_update.py``) and their
released ``weights/best.pth`` use ``features=16``: 7,822,785 parameters.  To use
their checkpoint, build ``sta_drn`` with ``width=16`` (everything else at the
defaults) and load it with :func:`load_authors_weights`.

The authors' checkpoint (``load_authors_weights``)
--------------------------------------------------
Their module names differ from ours, and our ``STAModule`` registers the spatial
branch before the temporal one while their block holds the temporal layers first,
so a load by position would silently swap the two branches.  The load therefore
goes through an explicit name map (:func:`authors_key`, built from the module
structure of ``TSSTANet/tsstanet.py`` and ``basic_block.py``, class
``AttentionSpatiotemporalBlock``, of divertingPan/STA-DRN):

==========================================  ===========================================
theirs                                      ours
==========================================  ===========================================
``conv_1``, ``bn1``                         ``stem.0``, ``stem.1``
``layer_<i>.<j>.conv1`` / ``bn1``           ``stages.<i-1>.<j>.reduce.0`` / ``reduce.1``
``...conv2.group_conv_temporal``            ``...sta.temporal.conv``
``...conv2.bn_temporal`` / ``fc_temporal``  ``...sta.temporal.bn`` / ``sta.temporal.fc``
``...conv2.group_conv_spatial``             ``...sta.spatial.conv``
``...conv2.bn_spatial`` / ``fc_spatial``    ``...sta.spatial.bn`` / ``sta.spatial.fc``
``...bn2``                                  ``...sta_bn``
``...conv3`` / ``bn3``                      ``...expand.0`` / ``expand.1``
``...downsample.0`` / ``downsample.1``      ``...shortcut.0`` / ``shortcut.1``
``fc``                                      ``fc``
==========================================  ===========================================

(parameters and batch-norm buffers alike; a ``module.`` prefix of a DataParallel
save is removed).  Any key of theirs the map does not cover, any key of ours the
checkpoint does not fill and any shape that differs fails with the key's name.
Their data loader standardises the ``[0, 1]`` frames with the ImageNet mean/std,
as ``forward`` here does, so the loaded model takes the same ``[0, 1]`` clips;
their test script clips negative scores with a ReLU, which the model does not.

Tests: tests/test_models_sta_drn.py
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from facevox.errors import FacevoxError
from facevox.models import register

VARIANTS = ("s", "t", "fusion_f", "fusion_v")
#: Bottlenecks per stage for the depths of Table 4 (Sec. 4.3.2).
DEPTHS = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3), 152: (3, 8, 36, 3)}
STEM_CHANNELS = 64
EXPANSION = 4
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def group_attention(logits: torch.Tensor, groups: int) -> torch.Tensor:
    """Eq. 5: softmax across the ``groups`` channel groups of ``logits [B, K*C', ...]``.

    Channel ``j * C' + c`` is group ``j``'s weight for channel ``c``; for every ``c``
    and position the ``K`` weights sum to 1.  ``K = 1`` uses a sigmoid instead.
    """
    if groups == 1:
        return torch.sigmoid(logits)
    b, c = logits.shape[:2]
    grouped = logits.reshape(b, groups, c // groups, *logits.shape[2:])
    return torch.softmax(grouped, dim=1).reshape(logits.shape)


class AttentionBranch(nn.Module):
    """Spatial (Sec. 3.2.1) or temporal (Sec. 3.2.2) attention: features and vector."""

    def __init__(self, channels: int, groups: int, axis: str, stride: tuple[int, int, int]):
        super().__init__()
        if axis not in ("spatial", "temporal"):
            raise ValueError(f"axis must be 'spatial' or 'temporal', not {axis!r}")
        self.groups = groups
        self.axis = axis
        self.conv = nn.Conv3d(channels, channels, 3, stride=stride, padding=1, groups=groups)
        self.bn = nn.BatchNorm3d(channels)
        self.fc = nn.Conv3d(channels, channels, 1, groups=groups)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(self.bn(self.conv(x)))                 # eq. 2
        dims = (2,) if self.axis == "spatial" else (3, 4)
        statistics = features.mean(dim=dims, keepdim=True)           # eq. 3 / eq. 7
        return features, group_attention(self.fc(statistics), self.groups)  # eq. 4 / eq. 8


class STAModule(nn.Module):
    """The bottleneck's middle layer: one or two attention branches and their fusion."""

    def __init__(self, channels: int, groups: int, variant: str, stride: tuple[int, int, int]):
        super().__init__()
        self.variant = variant
        self.spatial = AttentionBranch(channels, groups, "spatial", stride) if variant != "t" else None
        self.temporal = AttentionBranch(channels, groups, "temporal", stride) if variant != "s" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.variant == "s":
            x_s, s_s = self.spatial(x)
            return s_s * x_s                                           # eq. 6
        if self.variant == "t":
            x_t, s_t = self.temporal(x)
            return s_t * x_t                                           # eq. 9
        x_s, s_s = self.spatial(x)
        x_t, s_t = self.temporal(x)
        if self.variant == "fusion_f":
            return s_s * x_s + s_t * x_t                               # eq. 10
        return (s_s * s_t) * (x_s + x_t)                               # eqs. 11-12


class Bottleneck(nn.Module):
    """1x1x1 reduce -> STA module -> 1x1x1 expand (x4), with a residual connection."""

    def __init__(self, in_channels: int, width: int, groups: int, variant: str,
                 stride: tuple[int, int, int], shortcut_kernel: int):
        super().__init__()
        out_channels = width * EXPANSION
        self.reduce = nn.Sequential(
            nn.Conv3d(in_channels, width, 1, bias=False), nn.BatchNorm3d(width), nn.ReLU(inplace=True))
        self.sta = STAModule(width, groups, variant, stride)
        self.sta_bn = nn.BatchNorm3d(width)
        self.expand = nn.Sequential(
            nn.Conv3d(width, out_channels, 1, bias=False), nn.BatchNorm3d(out_channels))
        self.shortcut = None
        if stride != (1, 1, 1) or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, shortcut_kernel, stride=stride,
                          padding=shortcut_kernel // 2, bias=False),
                nn.BatchNorm3d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.sta_bn(self.sta(self.reduce(x))))
        out = self.expand(out)
        identity = x if self.shortcut is None else self.shortcut(x)
        return torch.relu(out + identity)


def stage_layers(depth: int, layers: Sequence[int] | None) -> tuple[int, ...]:
    """Bottlenecks per stage from ``layers`` if given, else from ``depth`` (Table 4)."""
    if layers is not None:
        layers = tuple(int(n) for n in layers)
        if len(layers) != 4 or min(layers) < 1:
            raise FacevoxError(f"sta_drn: layers must be 4 positive block counts, got {list(layers)}")
        return layers
    if depth not in DEPTHS:
        raise FacevoxError(f"sta_drn: depth must be one of {sorted(DEPTHS)} (or give layers), got {depth!r}")
    return DEPTHS[depth]


class STADRN(nn.Module):
    """STA-DRN (Fig. 2, Table 1): ``forward(clip [B, 3, T, H, W] in [0, 1]) -> [B]``."""

    def __init__(self, depth: int = 18, layers: Sequence[int] | None = None, variant: str = "fusion_v",
                 groups: int = 2, width: int = 32, scale_depth_by_groups: bool = True,
                 shortcut_kernel: int = 3, temporal_stride: int = 2,
                 clip_len: int = 64, size: int = 224):
        super().__init__()
        if variant not in VARIANTS:
            raise FacevoxError(f"sta_drn: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if groups < 1 or width < 1 or width % groups:
            raise FacevoxError(
                f"sta_drn: width ({width}) must be a positive multiple of groups K ({groups})")
        if shortcut_kernel not in (1, 3):
            raise FacevoxError(f"sta_drn: shortcut_kernel must be 1 or 3, got {shortcut_kernel!r}")
        if temporal_stride not in (1, 2):
            raise FacevoxError(f"sta_drn: temporal_stride must be 1 or 2, got {temporal_stride!r}")
        self.layers = stage_layers(depth, layers)
        self.variant = variant
        self.clip_len = clip_len
        self.size = size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1), persistent=False)

        self.stem = nn.Sequential(
            nn.Conv3d(3, STEM_CHANNELS, 7, stride=(1, 2, 2), padding=3, bias=False),
            nn.BatchNorm3d(STEM_CHANNELS), nn.ReLU(inplace=True),
            nn.MaxPool3d(3, stride=(1, 2, 2), padding=1))
        stages = []
        in_channels = STEM_CHANNELS
        for index, n_blocks in enumerate(self.layers):
            stage_width = width * 2 ** index
            first_stride = (1, 1, 1) if index == 0 else (temporal_stride, 2, 2)
            blocks = []
            for block in range(n_blocks * groups if scale_depth_by_groups else n_blocks):
                stride = first_stride if block == 0 else (1, 1, 1)
                blocks.append(Bottleneck(in_channels, stage_width, groups, variant, stride, shortcut_kernel))
                in_channels = stage_width * EXPANSION
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(in_channels, 1)

        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.dim() != 5 or clip.shape[1] != 3:
            raise FacevoxError(f"sta_drn: expected a clip [B, 3, T, H, W], got shape {list(clip.shape)}")
        x = (clip - self.mean) / self.std
        x = self.stages(self.stem(x))
        return self.fc(self.pool(x).flatten(1)).squeeze(1)


@register(
    "sta_drn",
    display="STA-DRN",
    tiny={"width": 8, "layers": [1, 1, 1, 1]},
    family="clip",
    defaults={
        "depth": 18,
        "layers": None,
        "variant": "fusion_v",
        "groups": 2,
        "width": 32,
        "scale_depth_by_groups": True,
        "shortcut_kernel": 3,
        "temporal_stride": 2,
    },
    training={
        "optimizer": "adam",
        "lr": 1e-3,
        "scheduler": "cosine_warm_restarts",
        "T0": 50,
        "T_mult": 2,
        "batch_size": 5,
        "epochs": 200,
        "loss": "mse",
    },
    paper="sta_drn_pan2023.txt: Sec. 3 (eqs. 1-12), Table 1, Table 2 (K=2, fusion_v), "
          "Table 4 (depths, parameter counts), Sec. 4.2 (training)",
)
def build_sta_drn(**cfg) -> STADRN:
    return STADRN(**cfg)


# --------------------------------------------------------------------------- the authors' checkpoint
#: Their layer names inside one bottleneck -> ours (see the module docstring).
_BLOCK_NAMES = {
    "conv1": "reduce.0", "bn1": "reduce.1",
    "conv2.group_conv_temporal": "sta.temporal.conv", "conv2.bn_temporal": "sta.temporal.bn",
    "conv2.fc_temporal": "sta.temporal.fc",
    "conv2.group_conv_spatial": "sta.spatial.conv", "conv2.bn_spatial": "sta.spatial.bn",
    "conv2.fc_spatial": "sta.spatial.fc",
    "bn2": "sta_bn", "conv3": "expand.0", "bn3": "expand.1",
    "downsample.0": "shortcut.0", "downsample.1": "shortcut.1",
}
_TOP_NAMES = {"conv_1": "stem.0", "bn1": "stem.1", "fc": "fc"}
_TENSORS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_BLOCK_KEY = re.compile(r"layer_([1-4])\.(\d+)\.(.+)\.(" + "|".join(_TENSORS) + r")")
_TOP_KEY = re.compile(r"(conv_1|bn1|fc)\.(" + "|".join(_TENSORS) + r")")


def authors_key(key: str) -> str | None:
    """Our state-dict key for one key of the authors' ``stanet_af`` checkpoint (None: not in the map)."""
    match = _TOP_KEY.fullmatch(key)
    if match:
        return f"{_TOP_NAMES[match[1]]}.{match[2]}"
    match = _BLOCK_KEY.fullmatch(key)
    if match and match[3] in _BLOCK_NAMES:
        return f"stages.{int(match[1]) - 1}.{match[2]}.{_BLOCK_NAMES[match[3]]}.{match[4]}"
    return None


def authors_state_dict(theirs: Mapping, model: STADRN, source: str = "checkpoint") -> dict:
    """The authors' state dict renamed to ``model``'s keys, checked: every key of theirs is mapped,
    every key of ``model`` is filled, every shape agrees - else a FacevoxError naming the keys."""
    if model.variant != "fusion_v":
        raise FacevoxError(f"{source}: the authors' checkpoint is stanet_af (variant fusion_v); this model is "
                           f"variant {model.variant!r}")
    ours = model.state_dict()
    renamed, unmapped = {}, []
    for key, value in theirs.items():
        key = key.removeprefix("module.")
        target = authors_key(key)
        if target is None:
            unmapped.append(key)
        else:
            renamed[target] = (key, value)
    problems = []
    if unmapped:
        problems.append(f"keys without a counterpart in the name map: {', '.join(unmapped)}")
    extra = [f"{k} (-> {t})" for t, (k, _) in renamed.items() if t not in ours]
    if extra:
        problems.append(f"keys mapped to layers this model does not have (other depth or layers?): "
                        f"{', '.join(extra)}")
    missing = [k for k in ours if k not in renamed]
    if missing:
        problems.append(f"keys of the model the checkpoint does not fill: {', '.join(missing)}")
    shapes = [f"{k} {list(v.shape)} -> {t} {list(ours[t].shape)}" for t, (k, v) in renamed.items()
              if t in ours and tuple(v.shape) != tuple(ours[t].shape)]
    if shapes:
        problems.append(f"shapes that differ (width 16 for the authors' weights?): {'; '.join(shapes)}")
    if problems:
        raise FacevoxError(f"{source}: not loadable into sta_drn by the STA-DRN name map - " + " | ".join(problems))
    return {t: v for t, (_, v) in renamed.items()}


def load_authors_weights(model: STADRN, checkpoint) -> STADRN:
    """Load the authors' checkpoint (a path to their ``best.pth`` or its state dict) into ``model``
    through the explicit name map; returns ``model``.  Fails loudly (FacevoxError) on an unmapped,
    missing or mis-shaped key."""
    source = "checkpoint"
    if isinstance(checkpoint, (str, Path)):
        source = str(checkpoint)
        try:
            checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same message
            raise FacevoxError(f"{source}: not a readable torch state dict ({exc})") from None
    if not isinstance(checkpoint, Mapping) or not all(torch.is_tensor(v) for v in checkpoint.values()):
        raise FacevoxError(f"{source}: expected a state dict (name -> tensor) as the authors' scripts save it")
    model.load_state_dict(authors_state_dict(checkpoint, model, source), strict=True)
    return model
