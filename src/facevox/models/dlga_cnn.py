"""DLGA-CNN: Deep Local-Global Attention CNN for depression (He, Chan & Wang, 2021).

Paper: /work/shared/papers/dlga_cnn_he2021.txt.  Family ``face``:
``forward(image [B, 3, H, W], landmarks [B, 68, 2]) -> score [B]``.  ``image`` is
an aligned face as floats in ``[0, 1]`` with ``H = W = size`` (224 in the paper,
Sec. 4.2.1); ``landmarks`` are the 68 iBUG points (0-based, dlib/OpenFace order) in
pixel coordinates ``(x, y)`` of that image.  ``score`` is the BDI-II score divided
by 63 (the trainer multiplies by 63); the last layer is linear.

Map from code to paper
----------------------
* ``DepressedCNN`` - Table 2 / Sec. 3.2: Conv1 (64) - Pool1 - Conv2 (128) - Pool2 -
  Conv3 (256) - Pool3 - Conv4_1 (512) - Conv4_2 (512); every conv 3x3, stride 1,
  padding 1, ReLU; every pool 2x2 max, stride 2, so a 224 image gives 28x28 maps
  (stride 8).  ``ChannelMaxPool`` (CMP): max over groups of 4 consecutive channels
  (kernel 4, stride 4, pad 0), 512 -> 128.  Output ``[Conv4_2, CMP]`` concatenated
  on channels: 640 x 28 x 28.  ``base_width`` (64) scales the four widths
  (64/128/256/512), the CMP output and everything after it.
* ``patch_centres`` - Sec. 3.3.1 and Fig. 3: the 24 patch centres from the 68
  landmarks (table below).  ``patch_origins`` maps them to the feature map
  (``x * map / size``, i.e. divided by 8 at 224 -> 28) and returns the top-left
  cell of each 6x6 patch, ``floor(u + 0.5) - 3`` per axis, clamped to
  ``[0, map - 6]`` so every patch lies inside the map; ``extract_patches`` cuts
  them: 24 patches of 640 x 6 x 6 (Sec. 3.3.2).
* ``LALModule`` - one Local Attention Learning module per patch (24, not shared),
  Sec. 3.3.2: ``Pa1 = f(Pa)`` (3x3 conv, C -> C, ReLU), ``Pa2 = f(Pa1)`` (the 1x1
  conv, C -> C, ReLU); branch 1, eq. (1): ``phi = ReLU(FC(flatten(Pa2)))``, 64-d;
  branch 2, eq. (2): ``AttentionGate`` = 2x2 max-pool -> 1x1 conv (128, ReLU) ->
  FC 64 (ReLU) -> FC 1 -> sigmoid, a scalar ``alpha`` in (0, 1); eq. (3):
  ``rho = alpha * phi``.
* ``GALModule`` - Sec. 3.4, Fig. 4: 2x2 max-pool (28 -> 14) -> "Conv6" (3x3,
  C -> 512, ReLU) = ``g`` [512 x 14 x 14]; eq. (4) ``psi = ReLU(FC(flatten(g)))``,
  512-d; eq. (5) the same ``AttentionGate`` on ``g``; eq. (6) ``rho = alpha * psi``.
* LGA-CNN (Sec. 3.4): concatenation of the 24 local ``rho`` and the global one:
  24 x 64 + 512 = 2048, the "[batch_size, 2048]" the paper gives as WSPP input.
* ``WSPP`` - Sec. 3.5, Fig. 6: max pooling over the 2048-vector with windows
  (= strides) 25, 51, 102, 204, concatenated.  Each level is multiplied by its
  weight in the spatial pyramid kernel of Lazebnik et al. (2006) [31] ("the
  original weighting definition"): with levels ``l = 0..L`` from coarsest
  (window 204) to finest (window 25), ``L = 3``, level 0 gets ``1/2**L`` and level
  ``l >= 1`` gets ``1/2**(L - l + 1)``: windows 204/102/51/25 -> 1/8, 1/8, 1/4, 1/2.
  (For the histogram-intersection kernel this weighting of the features is exactly
  the pyramid match kernel, since ``min(w a, w b) = w min(a, b)``.)
* Head, Sec. 3.1: two fully connected layers, ``FC(., 1024)`` + ReLU and
  ``FC(1024, 1)``.  Loss: the Euclidean loss of eq. (7), ``1/(2M) sum (p^ - p)^2``,
  is the mean squared error halved; the registry maps it to ``loss: "mse"``.  The
  factor 1/2 only scales the data gradient by 2, which Adam's normalisation cancels
  except against the coupled L2 term (so ``mse`` with ``weight_decay`` 5e-4 is the
  paper's loss with twice its decay, before the 1/63 label scaling changes that
  ratio again).

The 24 patch centres (Fig. 3, Sec. 3.3.1 steps a-e)
--------------------------------------------------
The paper numbers landmarks 1..68 (the iBUG figure); in code ``i`` is paper
``i + 1``.  Step (a) selects 26 points; the ones used only inside a pair are
18, 20, 25, 27, 38, 41, 42, 45, 47, 48, which leaves the 16 single points of the
text ("we select 16 points from 68 points"), kept in the order of the (a) list:

====  ==================  ============================  ==================
 #    paper point(s)       code (0-based)                region
====  ==================  ============================  ==================
 1-6  19, 37, 39, 22,     18, 36, 38, 21, 22, 25         brows, left eye
      23, 26
 7-8  44, 46              43, 45                         right eye
 9-10 28, 30              27, 29                         nose
11-16 49, 51, 59, 53,     48, 50, 58, 52, 54, 56         mouth
      55, 57
17    mid(20, 38)         mid(19, 37)                    left brow-eye
18    mid(42, 41)         mid(41, 40)                    under left eye
19    mid(25, 45)         mid(24, 44)                    right brow-eye
20    mid(47, 48)         mid(46, 47)                    under right eye
21    mid(18, 59)         mid(17, 58)                    left cheek
22    mid(27, 57)         mid(26, 56)                    right cheek
23    49 + (-16, -16)     48 + (-16, -16)                beside left corner
24    55 + (+16, -16)     54 + (+16, -16)                beside right corner
====  ==================  ============================  ==================

Rows 17-20 are step (b)/(c), rows 21-22 step (d) ("the indexes of the midpoint
are 21, 22") and rows 23-24 the two mouth-corner points ("the indexes of them is
23 and 24").  Choices where the text is unclear:

* Numbering: the paper's indices are 1-based (its procedure is that of [27], whose
  authors point to the 1-based iBUG figure); e.g. 37/46 are the outer eye corners
  and 49/55 the mouth corners only in 1-based numbering.
* Point 24: the text writes ``(U_right - 16, V_right - 16)``, i.e. 16 px towards
  the mouth centre, but also says the two points "have the same distance from the
  mouth corners" and, with points 21-22, cover the cheeks ("eight points ... cover
  eyes and facial cheeks").  We take the mirror image of point 23,
  ``(U_right + 16, V_right - 16)`` (outwards and up, as in [27]'s procedure); the
  literal reading would put point 24 on the upper lip.  "Left" is the image-left
  corner (paper 49).
* The 16-pixel offsets are for a 224-pixel face; at another ``size`` they scale by
  ``size / 224``.
* No further refinement (e.g. shifting brow points) is applied: the text names none.

Assumptions where the paper is silent
-------------------------------------
* Vector transforms ``phi`` (eqs. 1, 4): fully connected layers to 64 (local) and
  512 (global) with ReLU, as in [27] (the paper's "Inspired by [27]"); these are
  the only sizes for which the concatenation is the 2048-d vector of Sec. 3.5.
* Attention nets (eqs. 2, 5): the five listed operations in [27]'s order, with
  [27]'s sizes (1x1 conv to 128, FC 64); the pooled conv map is flattened into the
  first FC.  First LAL conv: 3x3, padding 1 (the paper's kernel for all convs;
  only the second is named 1x1).  Head width 1024 as in [27]'s fc1.
* No batch normalisation or dropout (Table 2 lists conv + ReLU only); weights
  He-normal (fan-in, ReLU gain), biases zero.
* Input normalisation: ``forward`` standardises the ``[0, 1]`` image per channel
  with the ImageNet mean/std, as the other face/clip models of facevox do.
* CMP input: Sec. 3.2 applies CMP to Conv4_1 ("the size of Conv4_1 is
  [512x28x28] ... we use channel max pooling ... Moreover ... the Conv4_2 feature
  map is generated over Conv4_1. After that, the Conv4_2 feature map and the CMP
  are concatenated"), so CMP pools Conv4_1, not Conv4_2.
* Patches are integer crops of the map (no ROI interpolation), the ``round``
  rounds halves up, and the map is ``size / 8`` (``size`` a multiple of 8, at least
  8 x ``patch_size``: 48 for the default 6x6 patches).
* WSPP bins: each window slides with stride = window over the whole vector and
  a trailing remainder shorter than a window is dropped (VALID pooling), so the
  2048-vector gives 81 + 40 + 20 + 10 = **151** values; the paper says 150
  (80 + 40 + 20 + 10 would need 2000 inputs for the 25-window).

Ablations (Tables 3-4)
----------------------
``use_cmp`` (CMP+ / CMP-: without CMP the feature map is Conv4_2 alone, 512
channels), ``use_local`` (LA-CNN), ``use_global`` (GA-CNN), ``use_wspp`` (without
WSPP the concatenated vector feeds the head directly).  ``ABLATIONS`` maps the
rows of Table 3 (A1-G1; the AVEC2014 rows A2-G2 of Table 4 are the same models)
to these switches; the "GA-CNN" rows do not say whether CMP is used: ``use_cmp``
stays on.  A single branch gives 1536 (local) or 512 (global) values to WSPP
(113 or 37 bins).  ``G1`` is the default.

Training (Sec. 4.2.1, 4.3.1)
----------------------------
Adam (beta 0.9/0.999, eps 1e-8 = PyTorch defaults), lr 1e-6, L2 weight decay 5e-4
(coupled, as in TensorFlow's L2 loss), batch 32, trained from scratch.  The paper
trains 50 k iterations (1.6 M samples) with early stopping; how many epochs that
is depends on the frames per video the trainer samples (``epochs ~ 1.6e6 /
training frames``), so ``epochs: 50`` and ``patience: 5`` are our documented
choice, to be set per dataset in config.yaml.

Parameter counts (measured, ``size=224``): 196,332,442 for G1 (backbone 3.91 M,
24 LAL modules 137.47 M, GAL 54.80 M, head 0.16 M).

Tests: tests/test_models_dlga_cnn.py
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from facevox.errors import FacevoxError
from facevox.models import register

N_LANDMARKS = 68
N_PATCHES = 24
#: Pixel size of the face the paper's offsets refer to (Sec. 4.2.1).
REFERENCE_SIZE = 224
#: The mouth-corner offset of Fig. 3(d), in pixels of a 224 image.
CHEEK_OFFSET = 16.0
#: Feature-map stride of Depressed-CNN (three 2x2 max pools).
MAP_STRIDE = 8

# Each centre is (landmark[FIRST] + landmark[SECOND]) / 2 + SHIFT * offset (0-based points).
_SINGLE = [18, 36, 38, 21, 22, 25, 43, 45, 27, 29, 48, 50, 58, 52, 54, 56]
_PAIRS = [(19, 37), (41, 40), (24, 44), (46, 47), (17, 58), (26, 56)]
_CORNERS = [48, 54]
_FIRST = np.array(_SINGLE + [a for a, _ in _PAIRS] + _CORNERS)
_SECOND = np.array(_SINGLE + [b for _, b in _PAIRS] + _CORNERS)
_SHIFT = np.zeros((N_PATCHES, 2))
_SHIFT[22] = (-1.0, -1.0)
_SHIFT[23] = (1.0, -1.0)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

#: Table 3 rows (Table 4: A2-G2, same models) -> ablation switches.
ABLATIONS: dict[str, dict[str, bool]] = {
    "LA-CNN (CMP-)": dict(use_cmp=False, use_local=True, use_global=False, use_wspp=False),
    "LA-CNN (CMP+)": dict(use_cmp=True, use_local=True, use_global=False, use_wspp=False),
    "A1": dict(use_cmp=False, use_local=True, use_global=False, use_wspp=True),
    "B1": dict(use_cmp=True, use_local=True, use_global=False, use_wspp=True),
    "GA-CNN": dict(use_cmp=True, use_local=False, use_global=True, use_wspp=False),
    "C1": dict(use_cmp=True, use_local=False, use_global=True, use_wspp=True),
    "D1": dict(use_cmp=False, use_local=True, use_global=True, use_wspp=False),
    "E1": dict(use_cmp=True, use_local=True, use_global=True, use_wspp=False),
    "F1": dict(use_cmp=False, use_local=True, use_global=True, use_wspp=True),
    "G1": dict(use_cmp=True, use_local=True, use_global=True, use_wspp=True),
}


def patch_centres(landmarks, cheek_offset: float = CHEEK_OFFSET):
    """The 24 patch centres ``[..., 24, 2]`` (x, y) from 68 landmarks ``[..., 68, 2]``.

    Works on numpy arrays and torch tensors, in the landmarks' pixel coordinates;
    ``cheek_offset`` is the mouth-corner offset of points 23-24 (16 px at 224).
    """
    if landmarks.shape[-2:] != (N_LANDMARKS, 2):
        raise FacevoxError(f"patch_centres: landmarks must be [..., 68, 2], got {list(landmarks.shape)}")
    shift = _SHIFT * cheek_offset
    if isinstance(landmarks, torch.Tensor):
        shift = torch.as_tensor(shift, dtype=landmarks.dtype, device=landmarks.device)
        first = torch.as_tensor(_FIRST, device=landmarks.device)
        second = torch.as_tensor(_SECOND, device=landmarks.device)
    else:
        first, second = _FIRST, _SECOND
    return (landmarks[..., first, :] + landmarks[..., second, :]) / 2 + shift


def patch_origins(centres: torch.Tensor, image_size: int, map_size: int, patch_size: int) -> torch.Tensor:
    """Top-left cells ``[..., 2]`` (x0, y0), long, of the patches centred at ``centres``.

    ``centres`` are image pixels; on the map they are ``centres * map_size /
    image_size``; a ``patch_size`` patch starts at ``floor(u + 0.5) - patch_size // 2``
    on each axis, clamped so that the patch lies inside the ``map_size`` map.
    """
    on_map = centres * (map_size / image_size)
    start = torch.floor(on_map + 0.5).long() - patch_size // 2
    return start.clamp(0, map_size - patch_size)


def extract_patches(features: torch.Tensor, origins: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Patches ``[B, P, C, p, p]`` of ``features [B, C, H, W]`` at ``origins [B, P, 2]`` (x0, y0)."""
    steps = torch.arange(patch_size, device=features.device)
    rows = origins[..., 1, None] + steps  # [B, P, p]
    cols = origins[..., 0, None] + steps
    batch = torch.arange(features.shape[0], device=features.device)[:, None, None, None]
    channels_last = features.permute(0, 2, 3, 1)  # [B, H, W, C]
    patches = channels_last[batch, rows[:, :, :, None], cols[:, :, None, :]]  # [B, P, p, p, C]
    return patches.permute(0, 1, 4, 2, 3)


def wspp_weights(windows: Sequence[int]) -> list[float]:
    """Lazebnik et al.'s pyramid-kernel weight of each window (larger window = coarser level)."""
    top = len(windows) - 1
    levels = {w: level for level, w in enumerate(sorted(windows, reverse=True))}
    return [1.0 / 2 ** top if levels[w] == 0 else 1.0 / 2 ** (top - levels[w] + 1) for w in windows]


class WSPP(nn.Module):
    """Weighted spatial pyramid pooling over a vector (Sec. 3.5): ``[B, L] -> [B, sum L // w]``."""

    def __init__(self, windows: Sequence[int] = (25, 51, 102, 204)):
        super().__init__()
        self.windows = tuple(int(w) for w in windows)
        self.weights = wspp_weights(self.windows)

    def output_length(self, length: int) -> int:
        too_long = [w for w in self.windows if w > length]
        if too_long:
            raise FacevoxError(f"WSPP: windows {too_long} are longer than the {length}-d feature vector")
        return sum(length // w for w in self.windows)

    def forward(self, vector: torch.Tensor) -> torch.Tensor:
        x = vector.unsqueeze(1)  # [B, 1, L]
        levels = [weight * F.max_pool1d(x, w, w).flatten(1) for w, weight in zip(self.windows, self.weights)]
        return torch.cat(levels, dim=1)


class ChannelMaxPool(nn.Module):
    """Max over groups of ``kernel`` consecutive channels (kernel = stride, no padding)."""

    def __init__(self, kernel: int = 4):
        super().__init__()
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x.view(b, c // self.kernel, self.kernel, h, w).amax(dim=2)


def _conv(c_in: int, c_out: int, kernel: int = 3) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)


class DepressedCNN(nn.Module):
    """Table 2: ``[B, 3, S, S] -> [B, 10 w, S/8, S/8]`` (CMP+) or ``[B, 8 w, ...]`` (CMP-), ``w = base_width``."""

    def __init__(self, base_width: int = 64, use_cmp: bool = True):
        super().__init__()
        w = base_width
        self.conv1, self.conv2, self.conv3 = _conv(3, w), _conv(w, 2 * w), _conv(2 * w, 4 * w)
        self.conv4_1, self.conv4_2 = _conv(4 * w, 8 * w), _conv(8 * w, 8 * w)
        self.cmp = ChannelMaxPool(4) if use_cmp else None
        self.out_channels = 8 * w + (2 * w if use_cmp else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        conv4_1 = F.relu(self.conv4_1(x))
        conv4_2 = F.relu(self.conv4_2(conv4_1))
        if self.cmp is None:
            return conv4_2
        return torch.cat([conv4_2, self.cmp(conv4_1)], dim=1)


class AttentionGate(nn.Module):
    """Self-attention net of eqs. (2)/(5): max-pool, conv, two FC, sigmoid -> ``alpha [B, 1]``."""

    def __init__(self, channels: int, spatial: int, attention_channels: int, attention_hidden: int):
        super().__init__()
        pooled = spatial // 2
        self.conv = nn.Conv2d(channels, attention_channels, 1)
        self.fc1 = nn.Linear(attention_channels * pooled * pooled, attention_hidden)
        self.fc2 = nn.Linear(attention_hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(F.max_pool2d(x, 2)))
        return torch.sigmoid(self.fc2(F.relu(self.fc1(x.flatten(1)))))


class LALModule(nn.Module):
    """Local Attention Learning for one patch ``[B, C, p, p]`` -> ``rho [B, local_dim]`` (eqs. 1-3)."""

    def __init__(self, channels: int, patch_size: int, local_dim: int, attention_channels: int,
                 attention_hidden: int):
        super().__init__()
        self.conv1 = _conv(channels, channels, 3)
        self.conv2 = _conv(channels, channels, 1)
        self.vector = nn.Linear(channels * patch_size * patch_size, local_dim)
        self.gate = AttentionGate(channels, patch_size, attention_channels, attention_hidden)

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        pa2 = F.relu(self.conv2(F.relu(self.conv1(patch))))
        phi = F.relu(self.vector(pa2.flatten(1)))
        return self.gate(pa2) * phi


class GALModule(nn.Module):
    """Global Attention Learning on the whole map ``[B, C, M, M]`` -> ``rho [B, global_dim]`` (eqs. 4-6)."""

    def __init__(self, channels: int, map_size: int, global_channels: int, global_dim: int,
                 attention_channels: int, attention_hidden: int):
        super().__init__()
        spatial = map_size // 2
        self.conv6 = _conv(channels, global_channels, 3)
        self.vector = nn.Linear(global_channels * spatial * spatial, global_dim)
        self.gate = AttentionGate(global_channels, spatial, attention_channels, attention_hidden)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        g = F.relu(self.conv6(F.max_pool2d(features, 2)))
        psi = F.relu(self.vector(g.flatten(1)))
        return self.gate(g) * psi


@register(
    "dlga_cnn",
    display="DLGA-CNN",
    family="face",
    defaults={"base_width": 64, "patch_size": 6, "local_dim": 64, "global_channels": 512, "global_dim": 512,
              "attention_channels": 128, "attention_hidden": 64, "head_hidden": 1024,
              "wspp_windows": [25, 51, 102, 204],
              "use_cmp": True, "use_local": True, "use_global": True, "use_wspp": True},
    training={"optimizer": "adam", "lr": 1e-6, "weight_decay": 5e-4, "batch_size": 32, "epochs": 50,
              "patience": 5, "loss": "mse"},
    paper="dlga_cnn_he2021.txt Table 2, sec. 3.2-3.5, eq. (7); ablations Tables 3-4; training sec. 4.2.1 "
          "(epochs/patience: facevox choice for the paper's 50k iterations + early stop)",
)
class DLGACNN(nn.Module):
    """Depressed-CNN -> LA-CNN (24 LAL) + GA-CNN (GAL) -> concat -> WSPP -> FC -> FC -> score [B]."""

    def __init__(self, base_width: int = 64, patch_size: int = 6, local_dim: int = 64, global_channels: int = 512,
                 global_dim: int = 512, attention_channels: int = 128, attention_hidden: int = 64,
                 head_hidden: int = 1024, wspp_windows: Sequence[int] = (25, 51, 102, 204),
                 use_cmp: bool = True, use_local: bool = True, use_global: bool = True, use_wspp: bool = True,
                 size: int = REFERENCE_SIZE):
        super().__init__()
        if not (use_local or use_global):
            raise FacevoxError("dlga_cnn: use_local and use_global are both false; keep at least one branch")
        if size % MAP_STRIDE or size // MAP_STRIDE < patch_size:
            raise FacevoxError(f"dlga_cnn: size {size} must be a multiple of {MAP_STRIDE} and at least "
                               f"{MAP_STRIDE * patch_size} (the {patch_size}x{patch_size} patches on the "
                               f"size/{MAP_STRIDE} feature map)")
        self.size = size
        self.map_size = size // MAP_STRIDE
        self.patch_size = patch_size
        self.cheek_offset = CHEEK_OFFSET * size / REFERENCE_SIZE
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        self.backbone = DepressedCNN(base_width, use_cmp)
        channels = self.backbone.out_channels
        self.lal = nn.ModuleList(
            [LALModule(channels, patch_size, local_dim, attention_channels, attention_hidden)
             for _ in range(N_PATCHES)]) if use_local else None
        self.gal = GALModule(channels, self.map_size, global_channels, global_dim, attention_channels,
                             attention_hidden) if use_global else None
        self.feature_dim = (N_PATCHES * local_dim if use_local else 0) + (global_dim if use_global else 0)
        self.wspp = WSPP(wspp_windows) if use_wspp else None
        head_in = self.wspp.output_length(self.feature_dim) if use_wspp else self.feature_dim
        self.fc1 = nn.Linear(head_in, head_hidden)
        self.fc2 = nn.Linear(head_hidden, 1)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def lga_features(self, image: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """The concatenated local-global vector ``[B, feature_dim]`` (2048 for G1), before WSPP."""
        features = self.backbone((image - self.mean) / self.std)
        parts = []
        if self.lal is not None:
            centres = patch_centres(landmarks.float(), self.cheek_offset)  # float32 even under autocast
            origins = patch_origins(centres, self.size, self.map_size, self.patch_size)
            patches = extract_patches(features, origins, self.patch_size)
            parts.extend(lal(patches[:, j]) for j, lal in enumerate(self.lal))
        if self.gal is not None:
            parts.append(self.gal(features))
        return torch.cat(parts, dim=1)

    def forward(self, image: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or tuple(image.shape[1:]) != (3, self.size, self.size):
            raise FacevoxError(f"dlga_cnn: image must be [B, 3, {self.size}, {self.size}], got {list(image.shape)}")
        if tuple(landmarks.shape) != (image.shape[0], N_LANDMARKS, 2):
            raise FacevoxError(f"dlga_cnn: landmarks must be [{image.shape[0]}, 68, 2], got {list(landmarks.shape)}")
        if self.lal is not None and not bool(torch.isfinite(landmarks).all()):
            raise FacevoxError("dlga_cnn: landmarks contain NaN/inf (frames without a face must be left out)")
        x = self.lga_features(image, landmarks)
        if self.wspp is not None:
            x = self.wspp(x)
        return self.fc2(F.relu(self.fc1(x))).squeeze(-1)
