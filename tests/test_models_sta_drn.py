"""facevox.models.sta_drn: STA-DRN (Pan et al., 2023) shapes, attention, fusion, sizes."""
import pytest
import torch
from torch import nn

from facevox.errors import FacevoxError
from facevox.models import create_model, get_spec, n_parameters
from facevox.models.sta_drn import IMAGENET_MEAN, IMAGENET_STD, STADRN, VARIANTS, AttentionBranch, Bottleneck, STAModule

torch.set_num_threads(1)

TINY = {"width": 8, "layers": [1, 1, 1, 1]}  # 2 bottlenecks per stage with K = 2


def test_forward_gives_one_score_per_clip_and_trains():
    torch.manual_seed(0)
    model = create_model("sta_drn", width=8, clip_len=8, size=32)  # depth 18: 4 blocks per stage
    assert [len(stage) for stage in model.stages] == [4, 4, 4, 4]
    clip = torch.rand(2, 3, 8, 32, 32)
    score = model(clip)
    assert score.shape == (2,) and torch.isfinite(score).all()
    score.sum().backward()
    assert model.stages[0][0].sta.spatial.fc.weight.grad.abs().sum() > 0
    assert model.stages[3][3].sta.temporal.fc.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_and_group_count_runs(variant, groups):
    torch.manual_seed(0)
    model = create_model("sta_drn", variant=variant, groups=groups, **TINY).eval()
    sta = model.stages[0][0].sta
    assert (sta.spatial is not None) == (variant != "t")
    assert (sta.temporal is not None) == (variant != "s")
    assert [len(stage) for stage in model.stages] == [groups] * 4  # layers[i] * K
    with torch.no_grad():
        score = model(torch.rand(1, 3, 4, 16, 16))
    assert score.shape == (1,) and torch.isfinite(score).all()


@pytest.mark.parametrize("groups", [2, 4])
def test_attention_is_a_softmax_across_the_k_groups(groups):
    torch.manual_seed(0)
    x = torch.randn(2, 8, 4, 6, 5)
    spatial = AttentionBranch(8, groups, "spatial", (1, 1, 1)).eval()
    temporal = AttentionBranch(8, groups, "temporal", (1, 1, 1)).eval()
    with torch.no_grad():
        x_s, s_s = spatial(x)
        x_t, s_t = temporal(x)
    assert x_s.shape == x_t.shape == (2, 8, 4, 6, 5)
    assert s_s.shape == (2, 8, 1, 6, 5)   # eq. 4: one weight per pixel (averaged over T)
    assert s_t.shape == (2, 8, 4, 1, 1)   # eq. 8: one weight per frame (averaged over H, W)
    for s in (s_s, s_t):
        per_group = s.reshape(2, groups, 8 // groups, *s.shape[2:])
        torch.testing.assert_close(per_group.sum(dim=1), torch.ones_like(per_group[:, 0]))
        assert (s > 0).all() and (s < 1).all()
    # Softmax runs across the groups, not within one: a group's own weights do not sum to 1.
    assert not torch.allclose(s_t.reshape(2, groups, -1).sum(-1), torch.ones(2, groups))


def test_k1_attention_is_a_sigmoid_of_the_pooled_statistics():
    torch.manual_seed(0)
    branch = AttentionBranch(4, 1, "temporal", (1, 1, 1)).eval()
    x = torch.randn(1, 4, 3, 5, 5)
    with torch.no_grad():
        features, attention = branch(x)
        expected = torch.sigmoid(branch.fc(features.mean(dim=(3, 4), keepdim=True)))
    torch.testing.assert_close(attention, expected)


def test_attention_inside_the_network_sums_to_one_per_group():
    torch.manual_seed(0)
    model = create_model("sta_drn", **TINY).eval()
    captured = {}
    branch = model.stages[1][0].sta.spatial  # the downsampling block of module3_x
    branch.register_forward_hook(lambda module, inputs, output: captured.update(s=output[1]))
    with torch.no_grad():
        model(torch.rand(1, 3, 8, 32, 32))
    s = captured["s"]  # spatial vector after the (2, 2, 2) stride: 16 channels, 4 x 4 pixels
    assert s.shape == (1, 16, 1, 4, 4)
    torch.testing.assert_close(s[:, :8] + s[:, 8:], torch.ones(1, 8, 1, 4, 4))


@pytest.mark.parametrize("variant", VARIANTS)
def test_sta_module_output_follows_the_paper_equations(variant):
    torch.manual_seed(0)
    module = STAModule(8, 2, variant, (1, 1, 1)).eval()
    x = torch.randn(2, 8, 4, 5, 5)
    with torch.no_grad():
        out = module(x)
        if variant != "t":
            x_s, s_s = module.spatial(x)
        if variant != "s":
            x_t, s_t = module.temporal(x)
    expected = {
        "s": lambda: s_s * x_s,                          # eq. 6
        "t": lambda: s_t * x_t,                          # eq. 9
        "fusion_f": lambda: s_s * x_s + s_t * x_t,       # eq. 10
        "fusion_v": lambda: (s_s * s_t) * (x_s + x_t),   # eqs. 11-12
    }[variant]()
    torch.testing.assert_close(out, expected)


def test_parameter_counts_by_hand():
    # One branch, C = 8, K = 2: grouped 3x3x3 conv 8*4*27 + 8 bias, BN 2*8, grouped 1x1 fc 8*4 + 8.
    branch = 8 * 4 * 27 + 8 + 2 * 8 + 8 * 4 + 8
    assert branch == 928
    assert n_parameters(STAModule(8, 2, "s", (1, 1, 1))) == branch
    assert n_parameters(STAModule(8, 2, "t", (1, 1, 1))) == branch
    assert n_parameters(STAModule(8, 2, "fusion_f", (1, 1, 1))) == 2 * branch
    assert n_parameters(STAModule(8, 2, "fusion_v", (1, 1, 1))) == 2 * branch
    # K = 4: conv 8*2*27 + 8, BN 16, fc 8*2 + 8.
    assert n_parameters(STAModule(8, 4, "s", (1, 1, 1))) == 432 + 8 + 16 + 16 + 8
    # Bottleneck 64 -> width 8 -> 32 with a 3x3x3 projection shortcut:
    # reduce 64*8 + BN 16, STA 1856, BN 16, expand 8*32 + BN 64, shortcut 64*32*27 + BN 64.
    block = Bottleneck(64, 8, 2, "fusion_v", (1, 1, 1), shortcut_kernel=3)
    assert n_parameters(block) == 528 + 1856 + 16 + 320 + 55296 + 64
    assert n_parameters(Bottleneck(64, 8, 2, "fusion_v", (1, 1, 1), shortcut_kernel=1)) == (
        528 + 1856 + 16 + 320 + 64 * 32 + 64)
    assert Bottleneck(32, 8, 2, "fusion_v", (1, 1, 1), shortcut_kernel=3).shortcut is None


@pytest.mark.parametrize("depth, exact, table4_millions", [
    (18, 31_269_569, 31.27),
    (50, 41_407_425, 41.41),
    (152, 78_140_353, 78.14),
])
def test_paper_width_parameter_counts_match_table_4(depth, exact, table4_millions):
    """Table 4 prints parameters in millions with two decimals, so the tolerance is half
    the last printed digit (0.005 M); the default network in fact lands on the printed
    values after rounding and the exact counts are pinned too.  The literal reading of
    Table 1 (width 16, 2 blocks per stage, 1x1x1 shortcuts) gives 1,773,633 for STA-18:
    Table 1 lists the sizes of one of the K = 2 groups (see the module docstring).
    Built on the meta device: no memory, no forward pass."""
    with torch.device("meta"):
        model = create_model("sta_drn", depth=depth)
    n = n_parameters(model)
    assert abs(n / 1e6 - table4_millions) <= 0.005
    assert n == exact


def test_literal_table_1_network_is_much_smaller():
    with torch.device("meta"):
        model = STADRN(width=16, scale_depth_by_groups=False, shortcut_kernel=1, temporal_stride=1)
    assert [len(stage) for stage in model.stages] == [2, 2, 2, 2]
    assert model.fc.in_features == 512  # Table 1: module5_x ends with 512 channels
    assert n_parameters(model) == 1_773_633


def test_flops_of_sta18_match_table_4_only_with_temporal_downsampling():
    """Multiply-accumulates of convolutions (bias included) plus two operations per BN
    output element, on a 64 x 224 x 224 clip; Table 4 gives 192.71 G for STA-18.  The
    uncounted pooling and element-wise products are under 0.1 %.  Meta device: shapes only."""
    def gflops(model):
        total = []

        def hook(module, inputs, output):
            if isinstance(module, nn.Conv3d):
                total.append(output.numel() * (module.weight[0].numel() + (module.bias is not None)))
            elif isinstance(module, nn.BatchNorm3d):
                total.append(2 * output.numel())
            elif isinstance(module, nn.Linear):
                total.append(output.numel() * module.in_features)

        for module in model.modules():
            module.register_forward_hook(hook)
        model(torch.empty(1, 3, 64, 224, 224))
        return sum(total) / 1e9

    with torch.device("meta"):
        measured = gflops(create_model("sta_drn").eval())
        table1_strides = gflops(create_model("sta_drn", temporal_stride=1).eval())
    assert measured == pytest.approx(192.71, rel=1e-3)
    assert table1_strides > 340


@pytest.mark.parametrize("temporal_stride, frames", [(2, [8, 8, 4, 2, 1]), (1, [8, 8, 8, 8, 8])])
def test_stage_output_shapes_follow_table_1(temporal_stride, frames):
    model = create_model("sta_drn", temporal_stride=temporal_stride, **TINY).eval()
    shapes = []
    for module in (model.stem, *model.stages):
        module.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    with torch.no_grad():
        model(torch.rand(1, 3, 8, 64, 64))
    # conv1 + max pool: /4 spatially; module2_x keeps the size, module3-5_x halve it.
    assert shapes == [
        (1, 64, frames[0], 16, 16),
        (1, 32, frames[1], 16, 16),
        (1, 64, frames[2], 8, 8),
        (1, 128, frames[3], 4, 4),
        (1, 256, frames[4], 2, 2),
    ]


def test_input_is_standardised_and_head_is_linear():
    model = create_model("sta_drn", **TINY).eval()
    seen = {}
    model.stem[0].register_forward_pre_hook(lambda m, inputs: seen.update(x=inputs[0]))
    clip = torch.rand(2, 3, 4, 16, 16)
    with torch.no_grad():
        nn.init.zeros_(model.fc.weight)
        nn.init.constant_(model.fc.bias, -0.25)
        score = model(clip)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(seen["x"], (clip - mean) / std)
    torch.testing.assert_close(score, torch.full((2,), -0.25))  # no final activation


def test_registration_carries_the_paper_settings():
    spec = get_spec("sta_drn")
    assert spec.family == "clip"
    assert spec.defaults["depth"] == 18 and spec.defaults["groups"] == 2
    assert spec.defaults["variant"] == "fusion_v" and spec.defaults["width"] == 32
    training = spec.training_config()
    assert (training["optimizer"], training["lr"], training["batch_size"], training["epochs"]) == (
        "adam", 1e-3, 5, 200)
    assert training["loss"] == "mse" and training["scheduler"] == "cosine_warm_restarts"
    assert (training["T0"], training["T_mult"]) == (50, 2)  # eq. 13
    assert training["vote"] == "mean" and training["patience"] is None


@pytest.mark.parametrize("cfg, message", [
    ({"variant": "fusion"}, "variant must be one of"),
    ({"groups": 4, "width": 6}, "multiple of groups"),
    ({"depth": 34}, "depth must be one of"),
    ({"layers": [2, 2, 2]}, "4 positive block counts"),
    ({"temporal_stride": 3}, "temporal_stride"),
])
def test_bad_configurations_are_rejected(cfg, message):
    with pytest.raises(FacevoxError, match=message):
        create_model("sta_drn", **cfg)


def test_wrong_input_shape_is_rejected():
    model = create_model("sta_drn", **TINY)
    with pytest.raises(FacevoxError, match=r"expected a clip \[B, 3, T, H, W\]"):
        model(torch.rand(1, 1, 4, 16, 16))


# --------------------------------------------------------------------------- the authors' checkpoint
#: The authors' layer names in one bottleneck of stanet_af (TSSTANet/tsstanet.py Bottleneck with
#: basic_block.AttentionSpatiotemporalBlock as conv2), written out here by hand with the tensors each holds.
THEIR_BLOCK = {
    "conv1": ("weight",), "bn1": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
    "conv2.group_conv_temporal": ("weight", "bias"),
    "conv2.bn_temporal": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
    "conv2.fc_temporal": ("weight", "bias"),
    "conv2.group_conv_spatial": ("weight", "bias"),
    "conv2.bn_spatial": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
    "conv2.fc_spatial": ("weight", "bias"),
    "bn2": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
    "conv3": ("weight",), "bn3": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
}
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _their_state_dict(layers=(2, 2, 2, 2), width=8, k=2, seed=0):
    """A state dict in the authors' naming and shapes, random values (BN statistics included)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def put(name, shape, kind):
        if kind == "num_batches_tracked":
            sd[name] = torch.tensor(7)
        elif kind == "running_var":
            sd[name] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[name] = torch.randn(shape, generator=g) * 0.1
    put("conv_1.weight", (64, 3, 7, 7, 7), "weight")
    for kind in BN:
        put(f"bn1.{kind}", () if kind == "num_batches_tracked" else (64,), kind)
    inplanes = 64
    for i, n in enumerate(layers):
        planes = width * 2 ** i
        for j in range(n * k):
            shapes = {"conv1": (planes, inplanes, 1, 1, 1), "conv3": (planes * 4, planes, 1, 1, 1)}
            for branch in ("temporal", "spatial"):
                shapes[f"conv2.group_conv_{branch}"] = (planes, planes // k, 3, 3, 3)
                shapes[f"conv2.fc_{branch}"] = (planes, planes // k, 1, 1, 1)
            for layer, kinds in THEIR_BLOCK.items():
                for kind in kinds:
                    channels = planes * 4 if layer == "bn3" else planes
                    shape = shapes[layer] if kind == "weight" and layer in shapes else (channels,)
                    if layer in shapes and kind == "bias":
                        shape = (planes,)
                    put(f"layer_{i + 1}.{j}.{layer}.{kind}", () if kind == "num_batches_tracked" else shape, kind)
            if j == 0 and (i > 0 or inplanes != planes * 4):  # their _make_layer's rule
                put(f"layer_{i + 1}.0.downsample.0.weight", (planes * 4, inplanes, 3, 3, 3), "weight")
                for kind in BN:
                    put(f"layer_{i + 1}.0.downsample.1.{kind}",
                        () if kind == "num_batches_tracked" else (planes * 4,), kind)
            inplanes = planes * 4
    put("fc.weight", (1, inplanes), "weight")
    put("fc.bias", (1,), "bias")
    return sd


def test_the_name_map_is_explicit_and_keeps_the_branches_apart():
    from facevox.models.sta_drn import authors_key

    assert authors_key("conv_1.weight") == "stem.0.weight"
    assert authors_key("bn1.running_var") == "stem.1.running_var"
    assert authors_key("layer_1.0.bn1.weight") == "stages.0.0.reduce.1.weight"
    assert authors_key("layer_2.3.conv2.group_conv_temporal.weight") == "stages.1.3.sta.temporal.conv.weight"
    assert authors_key("layer_2.3.conv2.fc_spatial.bias") == "stages.1.3.sta.spatial.fc.bias"
    assert authors_key("layer_4.0.downsample.0.weight") == "stages.3.0.shortcut.0.weight"
    assert authors_key("layer_3.1.bn2.num_batches_tracked") == "stages.2.1.sta_bn.num_batches_tracked"
    assert authors_key("fc.bias") == "fc.bias"
    assert authors_key("layer_5.0.conv1.weight") is None and authors_key("dropout.weight") is None


def test_loading_by_the_name_map_reproduces_the_outputs(tmp_path):
    from facevox.models.sta_drn import authors_key, load_authors_weights

    theirs = _their_state_dict(layers=(1, 1, 1, 1), width=8)
    reference = create_model("sta_drn", **TINY).eval()
    with torch.no_grad():  # the weights set one by one through the map
        ours = dict(reference.named_parameters()) | dict(reference.named_buffers())
        for key, value in theirs.items():
            ours[authors_key(key)].copy_(value)
    torch.save({f"module.{k}": v for k, v in theirs.items()}, tmp_path / "best.pth")  # a DataParallel save
    loaded = load_authors_weights(create_model("sta_drn", **TINY), tmp_path / "best.pth").eval()
    clip = torch.rand(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = reference(clip), loaded(clip)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # the temporal branch got the temporal weights (a load by order would swap them)
    torch.testing.assert_close(loaded.stages[1][0].sta.temporal.conv.weight,
                               theirs["layer_2.0.conv2.group_conv_temporal.weight"])
    assert len(theirs) == len(loaded.state_dict())


@pytest.mark.parametrize("change, message", [
    (lambda sd: sd.pop("layer_3.0.conv2.fc_temporal.bias"), r"does not fill: stages\.2\.0\.sta\.temporal\.fc\.bias"),
    (lambda sd: sd.update({"layer_1.0.conv2.attention.weight": torch.zeros(1)}),
     r"without a counterpart in the name map: layer_1\.0\.conv2\.attention\.weight"),
    (lambda sd: sd.update({"fc.weight": torch.zeros(1, 7)}), r"fc\.weight \[1, 7\] -> fc\.weight \[1, 256\]"),
])
def test_an_unmapped_missing_or_misshaped_key_fails_with_its_name(change, message):
    from facevox.models.sta_drn import load_authors_weights

    theirs = _their_state_dict(layers=(1, 1, 1, 1), width=8)
    change(theirs)
    with pytest.raises(FacevoxError, match=message):
        load_authors_weights(create_model("sta_drn", **TINY), theirs)


def test_the_authors_width_is_16_and_table_4_is_32():
    assert n_parameters(create_model("sta_drn", width=16)) == 7_822_785  # their weights/best.pth
    assert n_parameters(create_model("sta_drn")) == 31_269_569  # Table 4, STA-18
    their = _their_state_dict(width=16)
    assert sum(v.numel() for k, v in their.items() if "running" not in k and "num_batches" not in k) == 7_822_785
    with pytest.raises(FacevoxError, match="shapes that differ"):  # width 16 weights into the width 32 default
        from facevox.models.sta_drn import load_authors_weights
        load_authors_weights(create_model("sta_drn"), their)
