"""Felzenszwalb HOG ("FHOG") as dlib computes it, the appearance feature of OpenFace 2.x's AU models.

OpenFace 2.x (``FaceAnalyser/src/Face_utils.cpp``, ``Extract_FHOG_descriptor``) calls
``dlib::extract_fhog_features(img, hog, cell_size=8)`` on the 112x112 aligned face
(:mod:`facevox.extract.au_openface_align`) and flattens the ``rows x cols x 31`` result into one
row: cell by cell in row-major order, the 31 values of a cell together.  This module
re-implements that computation in vectorised numpy, from the definition in dlib 19.x
(``dlib/image_transforms/fhog.h``, ``impl_extract_fhog_features``, the version OpenFace 2.2
bundles).  What it does, step by step:

1. **Cells.**  ``cells = int(H / cell_size + 0.5)`` per axis; the output has ``cells - 2`` rows
   and columns (one cell of border on each side is used only for normalisation), so a 112x112
   face gives 14 cells and a 12x12x31 map.  Pixels ``1 .. min(cells*cell_size, H) - 2`` vote
   (rows and columns alike): the first and last pixel row/column only feed their neighbours'
   central differences.
2. **Gradient.**  ``gx = I[y, x+1] - I[y, x-1]``, ``gy = I[y+1, x] - I[y-1, x]``.  A colour pixel
   uses the channel with the largest ``gx**2 + gy**2``.  Ties between channels follow dlib: its
   8-wide SIMD loop (columns ``1 .. 8k``) keeps the *later* of red, green, blue; the scalar loop
   for the remaining right-most columns keeps the *earlier* one.
3. **Orientation.**  The gradient snaps to the largest ``|dot|`` with nine unit vectors 20 degrees
   apart (dlib's 4-decimal constants, float32): bin ``o`` for a positive dot, ``o + 9`` for a
   negative one, the first ``o`` winning ties (so a purely vertical gradient goes to bin 4 / 13,
   never 5 / 14); a zero gradient votes 0 into bin 0.
4. **Vote.**  The gradient magnitude is split bilinearly between the four cells around the pixel
   (cell centres at ``cell_size * (c + 0.5) - 0.5``); votes outside the cell grid are dropped.
5. **Normalise.**  ``energy[cell] = sum_o (h[o] + h[o+9])**2``; each output cell has four 2x2
   blocks around it, ``N_i = sqrt(sum of the block's energy + 1e-4)``.  With ``u_i = min(h / N_i, 0.2)``
   the 31 features are ``0.5 * sum_i u_i`` for the 18 contrast-sensitive bins, the same with
   ``h[o] + h[o+9]`` for the 9 insensitive bins, and ``0.2357 * sum_o u_i`` (over the 18
   sensitive bins) for the four texture features, block ``i`` = (below-right, above-right,
   below-left, above-left) of the cell.

dlib accumulates in float32; this module in float64, so values agree with dlib to float32
rounding (about 1e-6), not bit for bit.  Tests: tests/test_fhog.py
"""
from __future__ import annotations

import numpy as np

from facevox.errors import FacevoxError

FHOG_BANDS = 31
"""Values per cell: 18 contrast-sensitive + 9 contrast-insensitive orientations + 4 texture."""

# dlib fhog.h, impl_extract_fhog_features: `directions[o] = cos, sin` of 20*o degrees, written
# with 4 decimals and held as matrix<float,2,1>.
_DIRECTIONS = np.array(
    [[1.0000, 0.0000], [0.9397, 0.3420], [0.7660, 0.6428], [0.500, 0.8660], [0.1736, 0.9848],
     [-0.1736, 0.9848], [-0.5000, 0.8660], [-0.7660, 0.6428], [-0.9397, 0.3420]],
    dtype=np.float32,
)
_EPS = 0.0001      # fhog.h: `const float eps = 0.0001;` added to each block's energy
_CLAMP = 0.2       # fhog.h: `nn = 0.2*sqrt(z+eps)`, `min(h, nn)`: a normalised vote is capped at 0.2
_TEXTURE = 0.2357  # fhog.h: `t *= 2*0.2357;` (with the 0.5 of `n = 0.1/nn`: 0.2357 * sum of capped votes)
_SIMD_WIDTH = 8    # fhog.h: `for (x = 1; x < visible_nc - 7; x += 8)` processes 8 columns at a time


def fhog_shape(height: int, width: int, cell_size: int = 8) -> tuple[int, int]:
    """Rows and columns of :func:`fhog`'s output for an image of ``height`` x ``width`` pixels.

    ``int(n / cell_size + 0.5) - 2`` per axis (never below 0): dlib's border convention, one
    cell on each side used only for normalisation.  112 x 112 with cells of 8 -> (12, 12).
    """
    if cell_size < 2:
        raise FacevoxError(f"fhog: cell_size must be an integer >= 2, got {cell_size!r}")
    cells = [int(n / cell_size + 0.5) for n in (height, width)]
    return max(cells[0] - 2, 0), max(cells[1] - 2, 0)


def _planes(image: np.ndarray, order: str) -> np.ndarray:
    """The image as float64 planes [c, H, W], colour planes in the order red, green, blue."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        planes = image[None]
    elif image.ndim == 3 and image.shape[2] == 3:
        if order not in ("bgr", "rgb"):
            raise FacevoxError(f"fhog: order must be 'bgr' or 'rgb', got {order!r}")
        planes = np.moveaxis(image, 2, 0)
        if order == "bgr":
            planes = planes[::-1]
    else:
        raise FacevoxError(f"fhog: expected an image [H, W] or [H, W, 3], got shape {image.shape}")
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise FacevoxError(f"fhog: expected an integer or float image, got dtype {image.dtype}")
    planes = planes.astype(np.float64)
    if not np.isfinite(planes).all():
        raise FacevoxError("fhog: the image contains NaN or infinite values")
    return planes


def _gradient(planes: np.ndarray, vis_r: int, vis_c: int) -> tuple[np.ndarray, np.ndarray]:
    """Central differences at pixels [1, vis) of each axis, from the strongest channel (dlib's ties)."""
    gx = planes[:, 1:vis_r, 2:vis_c + 1] - planes[:, 1:vis_r, 0:vis_c - 1]
    gy = planes[:, 2:vis_r + 1, 1:vis_c] - planes[:, 0:vis_r - 1, 1:vis_c]
    if planes.shape[0] == 1:
        return gx[0], gy[0]
    energy = gx * gx + gy * gy
    # columns 1 .. last_simd run through dlib's SIMD loop (ties: later channel), the rest scalar
    # (ties: earlier channel).  Pick the first maximum over (b, g, r) resp. (r, g, b).
    n_simd = (vis_c - 1) // _SIMD_WIDTH * _SIMD_WIDTH
    later = 2 - np.argmax(energy[::-1], axis=0)
    earlier = np.argmax(energy, axis=0)
    pick = np.where(np.arange(vis_c - 1)[None, :] < n_simd, later, earlier)
    gx = np.take_along_axis(gx, pick[None], axis=0)[0]
    gy = np.take_along_axis(gy, pick[None], axis=0)[0]
    return gx, gy


def _orientation(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """dlib's bin (0..17) of each gradient: largest |dot| with the nine directions, first wins."""
    dots = (gx.astype(np.float32)[..., None] * _DIRECTIONS[:, 0]
            + gy.astype(np.float32)[..., None] * _DIRECTIONS[:, 1])
    best = np.argmax(np.abs(dots), axis=-1)
    dot = np.take_along_axis(dots, best[..., None], axis=-1)[..., 0]
    return np.where(dot > 0, best, np.where(dot < 0, best + 9, 0))


def _weights(n_pixels: int, cell_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For pixels 1..n_pixels: the lower cell index (in a grid padded by one cell) and the two weights."""
    pos = (np.arange(1, n_pixels + 1) + 0.5) / cell_size - 0.5
    low = np.floor(pos)
    frac = pos - low
    return low.astype(np.int64) + 1, 1.0 - frac, frac


def _histograms(image: np.ndarray, cell_size: int, order: str) -> np.ndarray:
    """Orientation histograms [cells_r, cells_c, 18] of the image (step 1-4 of the module doc)."""
    planes = _planes(image, order)
    height, width = planes.shape[1:]
    cells_r, cells_c = (int(n / cell_size + 0.5) for n in (height, width))
    vis_r = min(cells_r * cell_size, height) - 1
    vis_c = min(cells_c * cell_size, width) - 1
    gx, gy = _gradient(planes, vis_r, vis_c)
    magnitude = np.sqrt(gx * gx + gy * gy)
    bins = _orientation(gx, gy)
    row, row_lo, row_hi = _weights(vis_r - 1, cell_size)
    col, col_lo, col_hi = _weights(vis_c - 1, cell_size)
    padded_c = cells_c + 2
    hist = np.zeros((cells_r + 2) * padded_c * 18)
    for dr, wr in ((0, row_lo), (1, row_hi)):
        for dc, wc in ((0, col_lo), (1, col_hi)):
            index = ((row + dr)[:, None] * padded_c + (col + dc)[None, :]) * 18 + bins
            hist += np.bincount(index.ravel(), (wr[:, None] * wc[None, :] * magnitude).ravel(),
                                minlength=hist.size)
    return hist.reshape(cells_r + 2, padded_c, 18)[1:-1, 1:-1]


def fhog(image: np.ndarray, cell_size: int = 8, order: str = "bgr") -> np.ndarray:
    """dlib's Felzenszwalb HOG of ``image`` as an array [rows, cols, 31] (float64).

    ``image``: [H, W] grey or [H, W, 3] colour, uint8 or float (used as given: dlib reads 8-bit
    pixels; OpenFace passes the uint8 aligned face).  ``order``: the channel order of a colour
    image, ``"bgr"`` (OpenCV's, as OpenFace passes it) or ``"rgb"``; it only decides which channel
    wins a tie in gradient strength.  ``rows, cols = fhog_shape(H, W, cell_size)``; an image with
    fewer than 3 cells on an axis gives an empty [0, 0, 31] map, as dlib does.  Band layout:
    0-17 contrast-sensitive orientations (20 degrees each, 0 = gradient pointing to +x, 4 = +y,
    i.e. down the image), 18-26 contrast-insensitive, 27-30 texture (see the module doc).
    """
    rows, cols = fhog_shape(*np.shape(image)[:2], cell_size=cell_size)
    if rows == 0 or cols == 0:
        _planes(image, order)  # still reject bad input
        return np.zeros((0, 0, FHOG_BANDS))
    hist = _histograms(image, cell_size, order)
    energy = np.square(hist[:, :, :9] + hist[:, :, 9:]).sum(axis=2)
    blocks = energy[:-1, :-1] + energy[1:, :-1] + energy[:-1, 1:] + energy[1:, 1:]
    # the four blocks of output cell (y, x) = histogram cell (y+1, x+1), in dlib's order
    block_sums = np.stack([blocks[1:, 1:], blocks[:-1, 1:], blocks[1:, :-1], blocks[:-1, :-1]])
    inv_norm = 1.0 / np.sqrt(block_sums + _EPS)[..., None]       # [4, rows, cols, 1]
    centre = hist[1:-1, 1:-1]                                     # [rows, cols, 18]
    sensitive = np.minimum(centre[None] * inv_norm, _CLAMP)       # [4, rows, cols, 18]
    insensitive = np.minimum((centre[:, :, :9] + centre[:, :, 9:])[None] * inv_norm, _CLAMP)
    out = np.empty((rows, cols, FHOG_BANDS))
    out[:, :, :18] = 0.5 * sensitive.sum(axis=0)
    out[:, :, 18:27] = 0.5 * insensitive.sum(axis=0)
    out[:, :, 27:] = _TEXTURE * np.moveaxis(sensitive.sum(axis=3), 0, 2)
    return out


def fhog_vector(image: np.ndarray, cell_size: int = 8, order: str = "bgr") -> np.ndarray:
    """:func:`fhog` flattened as OpenFace's ``Extract_FHOG_descriptor`` does: [rows * cols * 31].

    OpenFace walks the cells row by row (``hog[y][x]``, ``y`` the row) and writes the 31 values of
    each cell together, i.e. the C-order ravel of the [rows, cols, 31] map; 12 * 12 * 31 = 4464
    values for the 112x112 aligned face.  (OpenFace's loop bounds swap rows and columns, which
    only matters for non-square maps; those raise here rather than guess.)
    """
    hog = fhog(image, cell_size=cell_size, order=order)
    if hog.shape[0] != hog.shape[1]:
        raise FacevoxError(
            f"fhog_vector: OpenFace's flattening is defined for square maps only, got {hog.shape[0]}x{hog.shape[1]} "
            "cells (pass a square face image)"
        )
    return hog.reshape(-1)
