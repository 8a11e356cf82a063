"""DLGA-CNN (facevox.models.dlga_cnn): patch centres, patch cropping, WSPP, ablations, sizes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facevox.errors import FacevoxError
from facevox.models import create_model, get_spec, n_parameters
from facevox.models.dlga_cnn import (
    ABLATIONS,
    DLGACNN,
    WSPP,
    ChannelMaxPool,
    LALModule,
    extract_patches,
    patch_centres,
    patch_origins,
    wspp_weights,
)

torch.set_num_threads(1)

#: Narrow widths (paper patch size, vector sizes and WSPP) so that every variant runs in milliseconds.
NARROW = dict(base_width=4, global_channels=16, attention_channels=8, attention_hidden=8, head_hidden=16)


def face_landmarks(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 68, 2, generator=g) * size


def test_patch_centres_hand_placed():
    # landmark i (0-based) at (2i, 3i): a single point i gives (2i, 3i), the midpoint of (a, b) gives
    # (a + b, 1.5 (a + b)); the mouth corners 48 and 54 are (96, 144) and (108, 162).
    landmarks = torch.stack([2 * torch.arange(68.0), 3 * torch.arange(68.0)], dim=1)
    expected = torch.tensor([
        # 16 single points, paper 19 37 39 22 23 26 44 46 28 30 49 51 59 53 55 57 (1-based)
        (36, 54), (72, 108), (76, 114), (42, 63), (44, 66), (50, 75), (86, 129), (90, 135),
        (54, 81), (58, 87), (96, 144), (100, 150), (116, 174), (104, 156), (108, 162), (112, 168),
        # midpoints of paper (20,38) (42,41) (25,45) (47,48) (18,59) (27,57)
        (56, 84), (81, 121.5), (68, 102), (93, 139.5), (75, 112.5), (82, 123),
        # mouth corners: paper 49 + (-16, -16) and 55 + (+16, -16)
        (80, 128), (124, 146),
    ])
    got = patch_centres(landmarks)
    assert got.shape == (24, 2)
    assert torch.equal(got, expected)
    # numpy in, numpy out, leading batch dimensions kept
    batch = np.broadcast_to(landmarks.numpy(), (2, 3, 68, 2))
    np.testing.assert_array_equal(patch_centres(batch), np.broadcast_to(expected.numpy(), (2, 3, 24, 2)))


def test_cheek_points_go_outwards_and_up_and_scale_with_size():
    landmarks = torch.zeros(68, 2)
    landmarks[48] = torch.tensor([80.0, 150.0])   # image-left mouth corner (paper 49)
    landmarks[54] = torch.tensor([144.0, 150.0])  # image-right mouth corner (paper 55)
    centres = patch_centres(landmarks)
    assert centres[22].tolist() == [64.0, 134.0]
    assert centres[23].tolist() == [160.0, 134.0]
    # a 112-pixel face: the 16-pixel offset becomes 8 (halved landmarks, halved centres)
    model = DLGACNN(size=112, **NARROW)
    assert model.cheek_offset == 8.0
    assert torch.equal(patch_centres(landmarks / 2, model.cheek_offset), centres / 2)


def test_patch_origins_on_the_28x28_map_are_clamped():
    # 224 image -> 28x28 map (divide by 8); a 6x6 patch starts at floor(u + 0.5) - 3, clamped to [0, 22]
    centres = torch.tensor([[0.0, 0.0], [223.0, 223.0], [112.0, 40.0], [20.0, 219.0]])
    origins = patch_origins(centres, image_size=224, map_size=28, patch_size=6)
    assert origins.dtype == torch.long
    assert origins.tolist() == [[0, 0], [22, 22], [11, 2], [0, 22]]


def test_extract_patches_cuts_the_map_at_the_origins():
    c, h, w = 2, 28, 28
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    features = torch.stack([1000 * k + 100 * ys + xs for k in range(c)]).float()[None]  # [1, 2, 28, 28]
    origins = torch.tensor([[[11, 2], [22, 22], [0, 22]]])  # (x0, y0)
    patches = extract_patches(features, origins, 6)
    assert patches.shape == (1, 3, 2, 6, 6)
    for j, (x0, y0) in enumerate(origins[0].tolist()):
        assert torch.equal(patches[0, j], features[0, :, y0:y0 + 6, x0:x0 + 6])
    # the bottom-right clamped patch ends on the map's last row and column (27)
    assert patches[0, 1, 1, :, 5].tolist() == [1000 + 100 * y + 27 for y in range(22, 28)]


def test_wspp_length_weights_and_values():
    wspp = WSPP((25, 51, 102, 204))
    # floor(2048 / w) bins per window: 81 + 40 + 20 + 10 (the paper rounds this to 150)
    assert wspp.output_length(2048) == 81 + 40 + 20 + 10 == 151
    assert wspp.output_length(1536) == 61 + 30 + 15 + 7 == 113   # LA-CNN alone
    assert wspp.output_length(512) == 20 + 10 + 5 + 2 == 37       # GA-CNN alone
    # Lazebnik et al.: finest level 1/2, then 1/4, and 1/8 for the two coarsest
    assert wspp_weights((25, 51, 102, 204)) == [0.5, 0.25, 0.125, 0.125]
    out = wspp(torch.arange(2048.0)[None])
    assert out.shape == (1, 151)
    k = torch.arange(81.0)
    assert torch.equal(out[0, :81], 0.5 * (25 * k + 24))
    assert torch.equal(out[0, 81:121], 0.25 * (51 * k[:40] + 50))
    assert torch.equal(out[0, 121:141], 0.125 * (102 * k[:20] + 101))
    assert torch.equal(out[0, 141:], 0.125 * (204 * k[:10] + 203))
    with pytest.raises(FacevoxError, match="longer than the 100-d"):
        wspp.output_length(100)


def test_channel_max_pool_takes_groups_of_four():
    x = torch.tensor([3.0, 1, 4, 1, 5, 9, 2, 6]).view(1, 8, 1, 1).expand(2, 8, 3, 3)
    out = ChannelMaxPool(4)(x)
    assert out.shape == (2, 2, 3, 3)
    assert out[0, :, 0, 0].tolist() == [4.0, 9.0]


def test_lal_module_weights_the_vector_by_a_scalar():
    torch.manual_seed(0)
    lal = LALModule(channels=10, patch_size=6, local_dim=64, attention_channels=8, attention_hidden=8)
    patch = torch.rand(3, 10, 6, 6)
    rho = lal(patch)
    pa2 = torch.relu(lal.conv2(torch.relu(lal.conv1(patch))))
    alpha = lal.gate(pa2)
    phi = torch.relu(lal.vector(pa2.flatten(1)))
    assert alpha.shape == (3, 1) and bool(((alpha > 0) & (alpha < 1)).all())
    assert rho.shape == (3, 64)
    torch.testing.assert_close(rho, alpha * phi)
    assert lal.conv2.kernel_size == (1, 1) and lal.conv1.kernel_size == (3, 3)


@pytest.mark.parametrize("size", [224, 48])
def test_forward_shapes_narrow(size):
    model = DLGACNN(size=size, **NARROW).eval()
    image = torch.rand(2, 3, size, size)
    landmarks = face_landmarks(2, size)
    landmarks[1, :10] = torch.tensor([-50.0, size + 80.0])  # far outside the image: patches are clamped
    with torch.no_grad():
        features = model.backbone(image)
        vector = model.lga_features(image, landmarks)
        score = model(image, landmarks)
    assert features.shape == (2, 8 * 4 + 2 * 4, size // 8, size // 8)  # Conv4_2 (32) + CMP (8)
    assert vector.shape == (2, 24 * 64 + 512)
    assert score.shape == (2,) and bool(torch.isfinite(score).all())


def test_forward_paper_model_at_224():
    torch.manual_seed(0)
    model = create_model("dlga_cnn").eval()
    assert model.map_size == 28 and model.backbone.out_channels == 640
    with torch.no_grad():
        score = model(torch.rand(1, 3, 224, 224), face_landmarks(1, 224))
    assert score.shape == (1,) and bool(torch.isfinite(score).all())


def test_backward_reaches_both_branches():
    torch.manual_seed(0)
    model = DLGACNN(size=48, **NARROW)
    score = model(torch.rand(4, 3, 48, 48), face_landmarks(4, 48))
    (score ** 2).mean().backward()
    for param in (model.backbone.conv1.weight, model.lal[0].conv1.weight, model.lal[23].gate.fc2.weight,
                  model.gal.conv6.weight, model.fc1.weight):
        assert param.grad is not None and float(param.grad.abs().sum()) > 0


# Table 3 row -> (feature-map channels, LA present, GA present, head input length) for NARROW widths
ABLATION_STRUCTURE = {
    "LA-CNN (CMP-)": (32, True, False, 1536),
    "LA-CNN (CMP+)": (40, True, False, 1536),
    "A1": (32, True, False, 113),
    "B1": (40, True, False, 113),
    "GA-CNN": (40, False, True, 512),
    "C1": (40, False, True, 37),
    "D1": (32, True, True, 2048),
    "E1": (40, True, True, 2048),
    "F1": (32, True, True, 151),
    "G1": (40, True, True, 151),
}


@pytest.mark.parametrize("row", list(ABLATION_STRUCTURE))
def test_ablation_rows_build_run_and_differ(row):
    assert set(ABLATIONS) == set(ABLATION_STRUCTURE)
    model = create_model("dlga_cnn", size=48, **NARROW, **ABLATIONS[row]).eval()
    channels, local, glob, head_in = ABLATION_STRUCTURE[row]
    assert model.backbone.out_channels == channels
    assert (model.lal is not None) == local and (model.gal is not None) == glob
    assert (model.wspp is not None) == ABLATIONS[row]["use_wspp"]
    assert model.fc1.in_features == head_in
    if local:
        assert model.lal[5].conv1.in_channels == channels
    with torch.no_grad():
        score = model(torch.rand(2, 3, 48, 48), face_landmarks(2, 48))
    assert score.shape == (2,)
    full = create_model("dlga_cnn", size=48, **NARROW)
    assert (n_parameters(model) == n_parameters(full)) == (row == "G1")


def test_parameter_count_of_the_paper_model():
    with torch.device("meta"):
        model = create_model("dlga_cnn")

    def conv(c_in, c_out, k):
        return c_in * c_out * k * k + c_out

    def fc(n_in, n_out):
        return n_in * n_out + n_out

    backbone = conv(3, 64, 3) + conv(64, 128, 3) + conv(128, 256, 3) + conv(256, 512, 3) + conv(512, 512, 3)
    gate_local = conv(640, 128, 1) + fc(128 * 3 * 3, 64) + fc(64, 1)
    lal = conv(640, 640, 3) + conv(640, 640, 1) + fc(640 * 6 * 6, 64) + gate_local
    gal = conv(640, 512, 3) + fc(512 * 14 * 14, 512) + conv(512, 128, 1) + fc(128 * 7 * 7, 64) + fc(64, 1)
    head = fc(151, 1024) + fc(1024, 1)
    assert n_parameters(model.backbone) == backbone == 3_910_784
    assert n_parameters(model.lal) == 24 * lal == 137_467_416
    assert n_parameters(model.gal) == gal == 54_797_569
    assert n_parameters(model) == backbone + 24 * lal + gal + head == 196_332_442


def test_registry_entry():
    spec = get_spec("dlga_cnn")
    assert spec.family == "face"
    train = spec.training_config()
    assert (train["optimizer"], train["lr"], train["weight_decay"], train["batch_size"], train["loss"]) == \
        ("adam", 1e-6, 5e-4, 32, "mse")
    assert spec.defaults["wspp_windows"] == [25, 51, 102, 204]
    assert all(spec.defaults[key] for key in ("use_cmp", "use_local", "use_global", "use_wspp"))


def test_bad_configurations_and_inputs_are_refused():
    with pytest.raises(FacevoxError, match="both false"):
        DLGACNN(use_local=False, use_global=False, **NARROW)
    with pytest.raises(FacevoxError, match="multiple of 8"):
        DLGACNN(size=40, **NARROW)
    with pytest.raises(FacevoxError, match="multiple of 8"):
        DLGACNN(size=100, **NARROW)
    model = DLGACNN(size=48, **NARROW)
    with pytest.raises(FacevoxError, match=r"image must be \[B, 3, 48, 48\]"):
        model(torch.rand(1, 3, 64, 64), face_landmarks(1, 64))
    with pytest.raises(FacevoxError, match="landmarks must be"):
        model(torch.rand(1, 3, 48, 48), torch.zeros(1, 24, 2))
    landmarks = face_landmarks(1, 48)
    landmarks[0, 30] = float("nan")
    with pytest.raises(FacevoxError, match="NaN"):
        model(torch.rand(1, 3, 48, 48), landmarks)
