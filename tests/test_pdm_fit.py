"""facevox.extract.pdm_fit: OpenFace's PDM fitted to 2-D landmarks (PDM::CalcParams' algorithm).

A small PDM (6 points, 2 modes) is built here; with OPENFACE_MODELS pointing at an OpenFace
model folder (or at In-the-wild_aligned_PDM_68.txt itself) the real 68-point PDM is fitted too."""
import os
from pathlib import Path

import numpy as np
import pytest

from facevox.errors import FacevoxError
from facevox.extract.au_mediapipe_geometry import rotation_xyz
from facevox.extract.au_openface_models import PDM, read_pdm
from facevox.extract.pdm_fit import fit_pdm, shape_2d

# 6 points (x, y, z), not coplanar, roughly centred on 0.
POINTS = np.array([[-30.0, -20.0, 5.0], [30.0, -20.0, 5.0], [0.0, 0.0, -20.0],
                   [-20.0, 30.0, 0.0], [20.0, 30.0, 0.0], [0.0, 45.0, 8.0]])
# Mode 0 opens the "mouth" (points 3, 4 apart in x), mode 1 moves point 5 down and forward.
MODES = np.zeros((6, 3, 2))
MODES[3, 0, 0], MODES[4, 0, 0] = -1.0, 1.0
MODES[5, 1, 1], MODES[5, 2, 1] = 1.0, 0.5


def small_pdm(eigen_values=(1e12, 1e12)) -> PDM:
    mean = POINTS.T.reshape(-1)                      # x of all points, then y, then z
    comp = MODES.transpose(1, 0, 2).reshape(18, 2)   # the same layout, one column a mode
    return PDM(mean_shape=mean, princ_comp=comp, eigen_values=np.asarray(eigen_values, float), path=Path("small"))


GLOBAL = np.array([2.0, 0.1, -0.2, 0.3, 50.0, -20.0])
LOCAL = np.array([1.5, -0.8])


def test_rotation_xyz_is_rx_ry_rz():
    c, s = np.cos(0.3), np.sin(0.3)
    np.testing.assert_allclose(rotation_xyz([0.0, 0.0, 0.3]), [[c, -s, 0], [s, c, 0], [0, 0, 1]], atol=1e-15)
    np.testing.assert_allclose(rotation_xyz([0.3, 0.0, 0.0]), [[1, 0, 0], [0, c, -s], [0, s, c]], atol=1e-15)
    np.testing.assert_allclose(rotation_xyz([0.0, 0.3, 0.0]), [[c, 0, s], [0, 1, 0], [-s, 0, c]], atol=1e-15)
    assert rotation_xyz(np.zeros((4, 2, 3))).shape == (4, 2, 3, 3)


def test_shape_2d_by_hand():
    pdm = small_pdm()
    # no rotation, scale 2, shift (10, 20): point 0 (-30, -20) -> (-50, -20)
    out = shape_2d([2.0, 0, 0, 0, 10.0, 20.0], [0.0, 0.0], pdm)
    assert out.shape == (6, 2)
    np.testing.assert_allclose(out[0], [-50.0, -20.0])
    # mode 0 = 3 moves point 3 to x = -23 -> 2 * -23 + 10 = -36; point 5 untouched: (10, 110)
    out = shape_2d([2.0, 0, 0, 0, 10.0, 20.0], [3.0, 0.0], pdm)
    np.testing.assert_allclose(out[[3, 5]], [[-36.0, 80.0], [10.0, 110.0]])
    # rz = 90 degrees: (x, y) -> (-y, x); point 1 (30, -20) -> (20, 30) -> scale 1, shift 0
    out = shape_2d([1.0, 0, 0, np.pi / 2, 0.0, 0.0], [0.0, 0.0], pdm)
    np.testing.assert_allclose(out[1], [20.0, 30.0], atol=1e-12)
    # ry = 90 degrees: x' = z, so point 2 (0, 0, -20) -> x = -20
    out = shape_2d([1.0, 0, np.pi / 2, 0, 0.0, 0.0], [0.0, 0.0], pdm)
    np.testing.assert_allclose(out[2], [-20.0, 0.0], atol=1e-12)
    # frames at once
    both = shape_2d(np.tile(GLOBAL, (2, 1)), np.tile(LOCAL, (2, 1)), pdm)
    np.testing.assert_allclose(both[1], shape_2d(GLOBAL, LOCAL, pdm))


def test_recovers_known_parameters():
    pdm = small_pdm()
    glob, loc = fit_pdm(shape_2d(GLOBAL, LOCAL, pdm), pdm)
    np.testing.assert_allclose(glob, GLOBAL, atol=1e-6)
    np.testing.assert_allclose(loc, LOCAL, atol=1e-6)


def test_recovers_rigid_only_and_many_frames():
    pdm = small_pdm()
    globs = np.array([GLOBAL, [0.5, -0.3, 0.25, -1.0, 300.0, 200.0], [3.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    locs = np.array([LOCAL, [-2.0, 3.0], [0.0, 0.0]])
    glob, loc = fit_pdm(shape_2d(globs, locs, pdm), pdm)
    assert glob.shape == (3, 6) and loc.shape == (3, 2)
    np.testing.assert_allclose(glob, globs, atol=1e-6)
    np.testing.assert_allclose(loc, locs, atol=1e-6)


def test_missing_point_and_unfittable_frames():
    pdm = small_pdm()
    marks = shape_2d(GLOBAL, LOCAL, pdm)
    one_missing = marks.copy()
    one_missing[2] = 0.0                      # x == 0: OpenFace's missing point
    nan_frame = np.full_like(marks, np.nan)
    two_points = np.zeros_like(marks)
    two_points[:2] = marks[:2]                # 2 points: too few
    glob, loc = fit_pdm(np.stack([one_missing, nan_frame, two_points, marks]), pdm)
    np.testing.assert_allclose(glob[0], GLOBAL, atol=1e-6)
    np.testing.assert_allclose(loc[0], LOCAL, atol=1e-6)
    assert np.isnan(glob[1:3]).all() and np.isnan(loc[1:3]).all()
    np.testing.assert_allclose(glob[3], GLOBAL, atol=1e-6)


def test_a_failed_fit_is_a_nan_frame_and_leaves_the_others_alone():
    pdm = small_pdm((100.0, 100.0))
    marks = shape_2d(GLOBAL, LOCAL, pdm)
    alone = fit_pdm(marks[None], pdm)
    # a face 1e-300 px wide: its normal equations are singular (numpy's LinAlgError for the whole batch);
    # 1e200 px wide: the step overflows to non-finite numbers
    tiny, huge = marks * 1e-300, marks * 1e200
    assert np.isfinite(tiny).all() and np.isfinite(huge).all()
    with np.errstate(all="raise"):   # no overflow warning escapes either
        glob, loc = fit_pdm(np.stack([marks, tiny, huge, marks]), pdm)
    assert np.isnan(glob[1:3]).all() and np.isnan(loc[1:3]).all()
    for i in (0, 3):   # the other frames fitted exactly as alone
        np.testing.assert_allclose(glob[i], alone[0][0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(loc[i], alone[1][0], rtol=0, atol=1e-12)
    glob, loc = fit_pdm(tiny, pdm)
    assert glob.shape == (6,) and np.isnan(glob).all() and np.isnan(loc).all()


def test_regulariser_shrinks_local_parameters():
    marks = shape_2d(GLOBAL, [6.0, -4.0], small_pdm())
    sizes = []
    for eig in (1e12, 100.0, 1.0, 0.01, 1e-6):
        _, loc = fit_pdm(marks, small_pdm((eig, eig)))
        sizes.append(np.abs(loc))
    sizes = np.array(sizes)
    np.testing.assert_allclose(sizes[0], [6.0, 4.0], atol=1e-6)
    assert (np.diff(sizes, axis=0) < 0).all()          # each smaller eigenvalue pulls p further to 0
    assert (sizes[-1] < 1e-3).all()
    # one mode's eigenvalue alone: that mode goes to 0, the other stays (the fit's rigid
    # part and mode 0 take up what they can of point 5's move, so mode 0 is not exactly 6)
    _, loc = fit_pdm(marks, small_pdm((1e12, 1e-6)))
    assert abs(loc[1]) < 1e-3 and 5.0 < loc[0] < 7.0


def test_bad_input():
    pdm = small_pdm()
    with pytest.raises(FacevoxError, match=r"landmarks must be \[6, 2\]"):
        fit_pdm(np.zeros((68, 2)), pdm)
    with pytest.raises(FacevoxError, match="eigenvalues must all be positive"):
        fit_pdm(np.ones((6, 2)), small_pdm((1.0, 0.0)))
    with pytest.raises(FacevoxError, match="6 global and 2 local"):
        shape_2d([1.0, 0, 0, 0, 0], [0.0, 0.0], pdm)
    bad = PDM(mean_shape=np.zeros(17), princ_comp=np.zeros((17, 2)), eigen_values=np.ones(2), path=Path("x"))
    with pytest.raises(FacevoxError, match="not a PDM"):
        fit_pdm(np.ones((6, 2)), bad)


def real_pdm_path():
    root = os.environ.get("OPENFACE_MODELS")
    if not root:
        return None
    root = Path(root)
    for p in (root, root / "model" / "pdms" / "In-the-wild_aligned_PDM_68.txt"):
        if p.is_file():
            return p
    return None


@pytest.mark.skipif(real_pdm_path() is None, reason="OPENFACE_MODELS does not point at OpenFace's 68-point PDM")
def test_real_pdm_reprojects_within_half_a_pixel():
    pdm = read_pdm(real_pdm_path())
    rng = np.random.default_rng(7)
    n = 200
    sd = np.sqrt(pdm.eigen_values)
    locs = rng.normal(0.0, 1.0, (n, sd.size)).clip(-3, 3) * sd
    globs = np.column_stack([rng.uniform(1.0, 4.0, n), rng.uniform(-0.3, 0.3, (n, 3)), rng.uniform(150, 450, (n, 2))])
    marks = shape_2d(globs, locs, pdm)
    glob, loc = fit_pdm(marks, pdm)
    dist = np.linalg.norm(shape_2d(glob, loc, pdm) - marks, axis=2)
    # The regulariser (1 / eigenvalue) keeps the fit from reaching every point exactly:
    # on average each frame's points are within half a pixel (single points up to ~1 px).
    assert dist.mean(axis=1).max() < 0.5
    assert dist.max() < 1.5
    np.testing.assert_allclose(glob[:, 4:], globs[:, 4:], atol=0.05)
    np.testing.assert_allclose(glob[:, 0], globs[:, 0], rtol=0.05)
