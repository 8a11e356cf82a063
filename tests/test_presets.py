"""config/paper/<paper>.yaml: each paper preset validates against the schema, names a source
for every value, builds its models, and the loop picks up its optimiser and schedule."""
import math
import re
from pathlib import Path

import pytest
import torch
import yaml

from facevox.config import load_config
from facevox.models import TRAINING_KEYS, check_overrides, create_model, get_spec, split_overrides
from facevox.training.loop import make_optimizer, make_scheduler

PAPER = Path(__file__).resolve().parents[1] / "config" / "paper"
PRESETS = sorted(p.name for p in PAPER.glob("*.yaml") if p.name not in ("dvlog.yaml", "avec_vision.yaml"))
#: item 3 of issue 17 adds the warm-restart scheduler (keys T0, T_mult) to the shared loop
WARM_RESTARTS = "T0" in TRAINING_KEYS


def _needs_warm_restarts(name):
    text = (PAPER / name).read_text()
    if "cosine_warm_restarts" in text and not WARM_RESTARTS:
        pytest.skip("needs the cosine_warm_restarts scheduler (issue 17 item 3)")


def test_one_preset_per_paper():
    assert PRESETS == ["dlga_cnn_he2021.yaml", "dvlog_yoon2022.yaml", "jamfn_zhou2023.yaml",
                       "shallow_fau_pandit.yaml", "sta_drn_pan2023.yaml", "stst_tao2023.yaml"]


@pytest.mark.parametrize("name", PRESETS)
def test_every_value_names_its_source(name):
    """Each key: value line of a model's overrides carries a comment (sec. / main.py / ...)."""
    lines = (PAPER / name).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "overrides:")
    for line in lines[start + 1:]:
        if re.match(r"^\s+\w+:\s*[^\s&*]", line) and not line.strip().startswith("#"):
            assert "#" in line and re.search(r"sec\.|main\.py|config\.yaml|dvlog\.py|facevox|registration|paper",
                                             line.split("#", 1)[1]), line


@pytest.mark.parametrize("name", PRESETS)
def test_preset_validates_and_builds_its_models(name):
    _needs_warm_restarts(name)
    raw = yaml.safe_load((PAPER / name).read_text())
    cfg = load_config(PAPER / name)  # schema: unknown keys and bad values fail here
    overrides = cfg["models"]["overrides"]
    check_overrides(overrides)
    assert set(overrides) == set(raw["models"]["run"])
    for model in raw["models"]["run"]:
        spec = get_spec(model)
        arch, training = split_overrides(model, overrides[model])
        built = create_model(model, **spec.tiny, **arch)
        params = [p for p in built.parameters()] or [torch.nn.Parameter(torch.zeros(1))]
        full = spec.training_config(**training)
        optimizer = make_optimizer(params, full)
        assert type(optimizer).__name__.lower() == full["optimizer"]
        assert optimizer.param_groups[0]["lr"] == pytest.approx(raw["models"]["overrides"][model]["lr"])
        scheduler = make_scheduler(optimizer, full)
        assert (scheduler is None) == (full["scheduler"] == "none")


def _lr_sequence(name, model, epochs):
    raw = yaml.safe_load((PAPER / name).read_text())
    _, training = split_overrides(model, raw["models"]["overrides"][model])
    full = get_spec(model).training_config(**training)
    optimizer = make_optimizer([torch.nn.Parameter(torch.zeros(1))], full)
    scheduler = make_scheduler(optimizer, full)
    lrs = []
    for _ in range(epochs):  # as the loop: the epoch's rate, then one step
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_dvlog_schedule_is_the_public_codes():
    """Cosine, T_max = 300 // 5 = 60, eta_min = 1e-4 / 20: down to 5e-6 at epoch 60, up again at 120."""
    lrs = _lr_sequence("dvlog_yoon2022.yaml", "depression_detector", 300)
    expected = [5e-6 + (1e-4 - 5e-6) * (1 + math.cos(math.pi * e / 60)) / 2 for e in range(300)]
    assert lrs == pytest.approx(expected, rel=1e-6)
    assert lrs[60] == pytest.approx(5e-6) and lrs[120] == pytest.approx(1e-4)


def test_sta_drn_warm_restarts_over_200_epochs():
    """SGDR (Loshchilov & Hutter), T0 = 50, T_mult = 2: restarts at epochs 50 and 150."""
    _needs_warm_restarts("sta_drn_pan2023.yaml")
    lrs = _lr_sequence("sta_drn_pan2023.yaml", "sta_drn", 200)
    expected = []
    for e in range(200):
        start, period = (0, 50) if e < 50 else (50, 100) if e < 150 else (150, 200)
        expected.append(1e-3 * (1 + math.cos(math.pi * (e - start) / period)) / 2)
    assert lrs == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert lrs[50] == lrs[150] == pytest.approx(1e-3)
