"""facevox.training.metrics: CCC (numpy and torch), regression metrics."""
import math

import numpy as np
import pytest
import torch

from facevox.models.shallow_fau import ccc_loss
from facevox.training.metrics import ccc, pcc, regression_metrics


def test_ccc_by_hand():
    x, y = [1.0, 2.0, 3.0], [2.0, 2.0, 4.0]
    # means 2 and 8/3; var(x)=2/3, var(y)=8/9; cov = ((-1)(-2/3) + 0 + 1(4/3))/3 = 2/3
    expected = 2 * (2 / 3) / (2 / 3 + 8 / 9 + (2 - 8 / 3) ** 2)
    assert ccc(x, y) == pytest.approx(expected) == pytest.approx(2 / 3)


def test_ccc_edge_cases():
    y = np.array([0.1, 0.5, -0.3, 0.9])
    assert ccc(y, y) == pytest.approx(1.0)
    assert ccc(np.full(4, y.mean()), y) == 0.0              # constant prediction
    assert ccc(2 * y, y) < 1 and ccc(y + 0.5, y) < 1       # scaled / shifted
    assert pcc(2 * y + 0.5, y) == pytest.approx(1.0)       # PCC does not see scale or shift
    assert ccc([1.0, 1.0], [1.0, 1.0]) == 1.0 and math.isnan(ccc([1.0], [2.0]))
    assert ccc([1.0, np.nan, 3.0], [1.0, 5.0, 3.0]) == pytest.approx(1.0)  # NaN pairs dropped


def test_ccc_loss_matches_numpy():
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=50), rng.normal(size=50) + 0.3 * rng.normal(size=50)
    loss = ccc_loss(torch.tensor(p), torch.tensor(t))
    assert loss.item() == pytest.approx(1 - ccc(p, t), abs=1e-6)


def test_regression_metrics_by_hand():
    m = regression_metrics([10, 20, 30], [12, 18, 33])
    assert m["mae"] == pytest.approx(7 / 3) and m["rmse"] == pytest.approx(math.sqrt(17 / 3))
    assert m["n"] == 3 and 0.9 < m["pcc"] <= 1
