"""facevox.extract.fhog (dlib's Felzenszwalb HOG) and facevox.extract.au_openface_align
(OpenFace 2.x's aligned, masked face), on images and shapes whose results are worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from facevox.errors import FacevoxError
from facevox.extract.au_openface_align import (
    LIFTED_LANDMARKS,
    RIGID_LANDMARKS,
    align_face,
    face_mask,
    mean_shape_2d,
    similarity_to,
)
from facevox.extract.fhog import fhog, fhog_shape, fhog_vector

# --------------------------------------------------------------------------- fhog


def _step(columns_left: int, low: int = 0, high: int = 100, size: int = 24) -> np.ndarray:
    """A size x size grey image: `low` in columns < columns_left, `high` from there on."""
    image = np.full((size, size), low, dtype=np.uint8)
    image[:, columns_left:] = high
    return image


# Hand derivation shared by the edge tests (24x24, cells of 8: 3x3 cells, one output cell = cell (1, 1)).
# Pixels 1..22 vote.  A pixel at x has position p = (x + 0.5) / 8 - 0.5 and gives 1 - frac(p) to cell
# floor(p), frac(p) to the next one.  Summed over the rows y = 1..22, cell row 0 gets
# (0.6875 + 0.8125 + 0.9375) + (0.9375 + 0.8125 + ... + 0.0625) = 2.4375 + 4 = 6.4375, cell row 1 gets
# 4 + 4 = 8, cell row 2 again 6.4375 (symmetric).
ROW_WEIGHT = (6.4375, 8.0, 6.4375)


def test_shape_follows_dlibs_border_convention():
    # int(112 / 8 + 0.5) = 14 cells, minus one border cell on each side -> 12
    assert fhog_shape(112, 112) == (12, 12)
    assert fhog(np.zeros((112, 112), np.uint8)).shape == (12, 12, 31)
    # rounding: 20 / 8 + 0.5 = 3.0 -> 3 cells -> 1; 19 / 8 + 0.5 = 2.875 -> 2 cells -> 0 (empty, as dlib)
    assert fhog_shape(20, 27) == (1, 1)
    assert fhog(np.zeros((19, 40), np.uint8)).shape == (0, 0, 31)
    assert fhog(np.zeros((112, 112, 3), np.uint8)).shape == (12, 12, 31)


def test_constant_image_has_no_gradient_so_every_feature_is_zero():
    # zero gradients -> empty histograms -> min(0 / sqrt(0 + 1e-4), 0.2) = 0 in all 31 bands
    out = fhog(np.full((40, 48), 137, np.uint8))
    assert out.shape == (3, 4, 31)
    assert np.array_equal(out, np.zeros((3, 4, 31)))


def test_vertical_edge_through_the_centre_cell_saturates_bin_0():
    # Step 0 -> 100 between columns 11 and 12: gradient (100, 0) at x = 11 and x = 12, i.e. direction 0
    # (dot 100 with (1, 0), |dot| < 100 with the others).  x = 11: p = 0.9375 -> 0.0625 to cell column 0,
    # 0.9375 to column 1; x = 12: p = 1.0625 -> 0.9375 to column 1, 0.0625 to column 2.  So the centre cell
    # holds 8 * 187.5 = 1500 in bin 0; 1500 / sqrt(block energy ~3.7e6) = 0.78 > 0.2: all four normalised
    # votes are clipped at 0.2 -> 0.5 * 4 * 0.2 = 0.4 in bins 0 and 18 (insensitive 0), and 0.2357 * 0.2 in
    # each texture band.
    out = fhog(_step(12))
    assert out.shape == (1, 1, 31)
    expected = np.zeros(31)
    expected[0] = expected[18] = 0.4
    expected[27:] = 0.2357 * 0.2
    np.testing.assert_allclose(out[0, 0], expected, rtol=0, atol=1e-12)


def test_falling_edge_votes_opposite_orientation_and_same_insensitive_bin():
    # 100 -> 0: gradient (-100, 0): -dot with direction 0 wins -> bin 0 + 9; insensitive bin 0 (18) unchanged
    out = fhog(_step(12, low=100, high=0))
    expected = np.zeros(31)
    expected[9] = expected[18] = 0.4
    expected[27:] = 0.2357 * 0.2
    np.testing.assert_allclose(out[0, 0], expected, rtol=0, atol=1e-12)


def test_horizontal_edge_ties_between_bins_4_and_5_go_to_4():
    # gradient (0, 100): dot with (0.1736, 0.9848) and (-0.1736, 0.9848) are both 98.48; dlib keeps the first
    # (bin 4, 80 degrees), never 5.  Same numbers as the vertical edge with rows and columns swapped.
    out = fhog(_step(12).T.copy())
    expected = np.zeros(31)
    expected[4] = expected[18 + 4] = 0.4
    expected[27:] = 0.2357 * 0.2
    np.testing.assert_allclose(out[0, 0], expected, rtol=0, atol=1e-12)


def test_edge_in_the_border_cell_gives_unclipped_normalisation():
    # Step between columns 3 and 4: gradient 100 at x = 3 (p = -0.0625: 0.9375 to cell column 0) and x = 4
    # (p = 0.0625: 0.9375 to column 0, 0.0625 to column 1).  Per unit row weight: column 0 gets 187.5,
    # column 1 gets 6.25.  Histogram (bin 0 only), rows x columns:
    #   [[6.4375 * 187.5, 6.4375 * 6.25, 0], [8 * 187.5, 8 * 6.25, 0], [same as row 0]]
    h = np.array([[w * 187.5, w * 6.25, 0.0] for w in ROW_WEIGHT])
    energy = h ** 2
    centre = h[1, 1]  # 50
    # the four 2x2 blocks of the centre cell, dlib's order: below-right, above-right, below-left, above-left
    z = [energy[1:3, 1:3].sum(), energy[0:2, 1:3].sum(), energy[1:3, 0:2].sum(), energy[0:2, 0:2].sum()]
    assert z[0] == z[1] == 50 ** 2 + (6.4375 * 6.25) ** 2  # 4118.804931640625
    votes = [min(centre / math.sqrt(zi + 1e-4), 0.2) for zi in z]
    assert votes[0] == votes[1] == 0.2                      # 50 / 64.18 = 0.78: clipped
    assert votes[2] == pytest.approx(0.02595506, abs=1e-8)  # 50 / sqrt(3711043.24): not clipped
    out = fhog(_step(4))[0, 0]
    assert out[0] == pytest.approx(0.5 * sum(votes), abs=1e-12)
    assert out[18] == pytest.approx(0.5 * sum(votes), abs=1e-12)
    np.testing.assert_allclose(out[27:], [0.2357 * v for v in votes], rtol=0, atol=1e-12)
    assert np.count_nonzero(out[1:18]) == 0 and np.count_nonzero(out[19:27]) == 0


def test_colour_uses_the_channel_with_the_strongest_gradient():
    grey = _step(12)
    colour = np.zeros((24, 24, 3), np.uint8)
    colour[:, :, 1] = grey            # green carries the edge of 100
    colour[:, 12:, 0] = 30            # blue has a weaker edge: ignored
    np.testing.assert_allclose(fhog(colour), fhog(grey), rtol=0, atol=1e-12)


def _sensitive_mirror(bins):
    # mirroring x maps direction angle a to 180 - a: bin b -> (9 - b) mod 18, insensitive o -> (9 - o) mod 9
    return [(9 - b) % 18 for b in bins]


def test_horizontal_flip_mirrors_cells_orientations_and_texture_blocks():
    image = np.random.default_rng(7).uniform(0, 255, (112, 112))  # float: no exact orientation ties
    out, flipped = fhog(image), fhog(image[:, ::-1])
    order = _sensitive_mirror(range(18)) + [18 + (9 - o) % 9 for o in range(9)] + [29, 30, 27, 28]
    np.testing.assert_allclose(flipped[:, ::-1][:, :, order], out, rtol=0, atol=1e-12)


def test_half_turn_reverses_gradients_and_swaps_diagonal_blocks():
    image = np.random.default_rng(8).uniform(0, 255, (112, 112, 3))
    out, turned = fhog(image), fhog(np.rot90(image, 2))
    order = [(b + 9) % 18 for b in range(18)] + list(range(18, 27)) + [30, 29, 28, 27]
    np.testing.assert_allclose(turned[::-1, ::-1][:, :, order], out, rtol=0, atol=1e-12)


def test_vector_is_row_major_cells_with_31_values_each():
    image = np.random.default_rng(9).integers(0, 256, (112, 112, 3)).astype(np.uint8)
    hog, vector = fhog(image), fhog_vector(image)
    assert vector.shape == (12 * 12 * 31,)
    r, c, o = 3, 7, 29
    assert vector[(r * 12 + c) * 31 + o] == hog[r, c, o]
    with pytest.raises(FacevoxError, match="square"):
        fhog_vector(np.zeros((112, 96), np.uint8))


@pytest.mark.parametrize("bad", [np.zeros((8, 8, 8, 1)), np.zeros((32, 32, 2)), np.full((32, 32), np.nan)])
def test_bad_images_are_refused(bad):
    with pytest.raises(FacevoxError, match="fhog"):
        fhog(bad)


# --------------------------------------------------------------------------- alignment


def _rotation(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def _synthetic_mean_shape() -> np.ndarray:
    """68 points in 'mm' (not OpenFace's PDM): jaw 0..16 on a half circle of radius 60 below y = 0,
    brows 17..26 on the line y = -40, the other 41 points on a grid inside."""
    jaw = [(60 * math.cos(math.pi - math.pi * i / 16), 60 * math.sin(math.pi * i / 16)) for i in range(17)]
    brows = [(-45 + 10 * j, -40.0) for j in range(10)]
    inner = [(-30 + 10 * (k % 7), -25 + 10 * (k // 7)) for k in range(41)]
    return np.array(jaw + brows + inner, dtype=np.float64)


def test_similarity_to_recovers_scale_rotation_translation():
    src = _synthetic_mean_shape()
    a_true = 1.7 * _rotation(-23.0)
    t_true = np.array([312.5, -41.25])
    a, t = similarity_to(src, src @ a_true.T + t_true)
    np.testing.assert_allclose(a, a_true, rtol=0, atol=1e-9)
    np.testing.assert_allclose(t, t_true, rtol=0, atol=1e-9)


def test_similarity_to_never_reflects_and_uses_the_rms_scale_ratio():
    src = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    mirrored = src * [-1.0, 1.0]
    a, _ = similarity_to(src, mirrored)
    assert np.linalg.det(a) > 0
    # both sets have the same RMS radius, so the scale is exactly 1: A is a pure rotation
    np.testing.assert_allclose(a @ a.T, np.eye(2), atol=1e-12)
    with pytest.raises(FacevoxError, match="coincide"):
        similarity_to(np.ones((5, 2)), src[[0, 1, 2, 0, 1]])
    with pytest.raises(FacevoxError, match=r"\[3, 2\]"):
        similarity_to(src, src[:2])


def test_mean_shape_accepts_openfaces_flat_layout():
    shape = _synthetic_mean_shape()
    flat = np.concatenate([shape[:, 0], shape[:, 1], np.zeros(68)])  # 68 x, 68 y, 68 z
    np.testing.assert_array_equal(mean_shape_2d(flat), shape)
    np.testing.assert_array_equal(mean_shape_2d(flat[:, None]), shape)
    with pytest.raises(FacevoxError, match="204"):
        mean_shape_2d(np.zeros(200))


@pytest.mark.parametrize("rigid", [True, False])
def test_align_face_puts_a_similar_copy_on_the_scaled_mean_shape(rigid):
    mean = _synthetic_mean_shape()
    landmarks = mean @ (2.3 * _rotation(17.0)).T + [420.0, 260.0]
    frame = np.full((600, 800, 3), 200, np.uint8)
    face = align_face(frame, landmarks, mean, rigid=rigid)
    # centroid -> (56, 56), mean shape scaled by 0.7 around it
    expected = 0.7 * (mean - mean.mean(axis=0)) + 56
    np.testing.assert_allclose(face.landmarks, expected, rtol=0, atol=1e-9)
    assert face.image.shape == (112, 112, 3) and face.image.dtype == np.uint8
    # constant frame: 200 inside the mask, 0 outside
    assert np.array_equal(face.image[face.mask], np.full((face.mask.sum(), 3), 200, np.uint8))
    assert not face.image[~face.mask].any()


def test_mask_is_the_face_outline_with_brows_lifted_30_pixels():
    mean = _synthetic_mean_shape()
    face = align_face(np.full((400, 400), 90, np.uint8), mean * 1.5 + 200, mean)
    cx, cy = 0.7 * mean.mean(axis=0)
    brow_y = 56 + 0.7 * -40 - cy                # aligned brow line before the lift
    jaw_bottom = 56 + 0.7 * 60 - cy             # landmark 8
    assert face.image.shape == (112, 112)
    assert face.mask[56, 56] and face.image[56, 56] == 90
    assert face.mask[math.ceil(brow_y) - 25, 56]          # above the brows, inside the 30 px lift
    assert not face.mask[math.floor(brow_y) - 31, 56]     # above the lifted brows
    assert face.mask[math.floor(jaw_bottom), 56]
    assert not face.mask[math.floor(jaw_bottom) + 1, 56]  # below the chin
    assert not face.mask[0, 0] and not face.mask[111, 111]
    np.testing.assert_array_equal(face_mask(face.landmarks), face.mask)
    assert len(LIFTED_LANDMARKS) == 12 and len(RIGID_LANDMARKS) == 24


def test_align_face_refuses_missing_landmarks_and_bad_frames():
    mean = _synthetic_mean_shape()
    landmarks = mean + 100
    with pytest.raises(FacevoxError, match="NaN"):
        align_face(np.zeros((300, 300), np.uint8), np.where(np.arange(68)[:, None] == 5, np.nan, landmarks), mean)
    with pytest.raises(FacevoxError, match=r"\[68, 2\]"):
        align_face(np.zeros((300, 300), np.uint8), landmarks[:51], mean)
    with pytest.raises(FacevoxError, match="uint8"):
        align_face(np.zeros((300, 300), np.float32), landmarks, mean)


def whole_grid_mask(polygon, height, width):
    """The mask's definition, pixel by pixel over the whole grid: even-odd crossings, or within
    1e-9 px of an edge."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    inside = np.zeros((height, width), bool)
    on_edge = np.zeros((height, width), bool)
    for (ax, ay), (bx, by) in zip(polygon, np.roll(polygon, -1, axis=0)):
        with np.errstate(divide="ignore", invalid="ignore"):
            inside ^= ((ay > ys) != (by > ys)) & (xs < ax + (ys - ay) * (bx - ax) / (by - ay))
        length2 = (bx - ax) ** 2 + (by - ay) ** 2
        if length2 == 0:
            on_edge |= (xs == ax) & (ys == ay)
            continue
        t = np.clip(((xs - ax) * (bx - ax) + (ys - ay) * (by - ay)) / length2, 0.0, 1.0)
        on_edge |= np.hypot(xs - ax - t * (bx - ax), ys - ay - t * (by - ay)) <= 1e-9
    return inside | on_edge


def test_mask_rasteriser_matches_its_definition_on_random_polygons():
    from facevox.extract.au_openface_align import polygon_mask

    rng = np.random.default_rng(7)
    for k in range(300):
        n = int(rng.integers(3, 25))
        # integer and half-pixel vertices put pixels exactly on edges; some vertices off the image
        poly = (rng.integers(-5, 118, size=(n, 2)).astype(float) if k % 3 == 0
                else rng.uniform(-10, 122, size=(n, 2)) if k % 3 == 1
                else np.round(rng.uniform(0, 112, size=(n, 2)) * 2) / 2)
        assert np.array_equal(polygon_mask(poly, 112, 112), whole_grid_mask(poly, 112, 112)), k
