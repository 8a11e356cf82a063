"""The ``landmarks`` action-unit backend: geometric AU estimates from the 68 landmarks, no weights.

:func:`geometric_aus` gives AU01, AU02, AU04, AU05, AU12, AU15, AU25, AU26 and AU45
from the landmarks table's points of its target (the other AUs stay NaN).  Confidence:
1.0 on frames with a face.  The stage that runs it: facevox.extract.action_units.

The geometric AUs
-----------------
dlib's 68 points: jaw 0-16, right brow 17-21, left brow 22-26, nose 27-35,
right eye 36-41, left eye 42-47, outer lip 48-59, inner lip 60-67 ("right" is
the subject's right, on the image's left).

*Eye frame.*  Each eye's centre is the midpoint of its two corners (36/39 and
42/45): the corners stay put when the lids move, so a blink does not shift the
reference that the brows are measured from.  Every frame's points are moved
into a frame with its origin midway between the eye centres, x along the eye
line (towards the left eye), y perpendicular to it (down, towards the mouth),
and the inter-ocular distance (IOD, between the eye centres) as unit:
``P' = R(-theta) (P - E) / IOD`` with ``theta`` the eye line's angle.  The
measures below are thus free of in-plane rotation, scale and position.  With
``X_i, Y_i`` the coordinates of point i in this frame (the eye centres lie at
Y = 0; a smaller Y is higher in the face) and ``|i-j|`` a distance:

=====  ==================  ==================================  ====  ==========
AU     action              measure m                           dir.  full scale
=====  ==================  ==================================  ====  ==========
AU01   inner brow raise    -(Y21 + Y22) / 2                     +     0.15
AU02   outer brow raise    ((Y36 - Y17) + (Y45 - Y26)) / 2      +     0.15
AU04   brow lower          -mean(Y17..Y26) + (X22 - X21)        -     0.15
AU05   upper lid raise     -(Y37 + Y38 + Y43 + Y44) / 4         +     0.05
AU12   lip corner pull     (X54 - X48) + c                      +     0.40
AU15   lip corner depress  -c                                   +     0.08
AU25   lips part           Y66 - Y62                            +     0.30
AU26   jaw drop            |8-33|                               +     0.40
AU45   blink               EAR                                  -     0.25
=====  ==================  ==================================  ====  ==========

* AU01/AU02: the brow points' height above the eye centres (inner brow ends
  21, 22) or above the outer eye corners (outer brow ends 17, 26).
* AU04 is the brows' mean height above the eye line plus the gap between the
  inner brow ends: the brow lowerer pulls the brows both down and together, so
  the measure *decreases* (dir. -).
* AU05: the upper lids' height above the eye line.
* ``c = (Y51 + Y57) / 2 - (Y48 + Y54) / 2`` is the lip corners' height above
  the lip centre (midpoint of 51 and 57), which a jaw drop leaves unchanged (the
  corners move about half as far as the lower lip).  AU12 adds the mouth width.
* AU25: the inner lip gap; AU26: the chin-to-nose-base distance.
* ``EAR`` (eye aspect ratio) = mean over both eyes of
  ``(|37-41| + |38-40|) / (2 |36-39|)`` (left eye: 43-47, 44-46, 42-45); it
  falls as the lids close.

Value: ``AU = 5 * clip(dir * (m - b) / full_scale, 0, 1)``, so 0 is neutral and
5 a change of ``full_scale`` (in IOD units; EAR units for AU45) or more, to look
like OpenFace's 0-5 intensities.  The full scales are rough anthropometric
sizes of a strong action (IOD ~ 63 mm: ~9 mm of brow raise, ~3 mm of lid
raise, a mouth ~45 % wider, ~25 mm of jaw drop, an EAR falling from ~0.3 open
to ~0.05 shut), not a calibration against FACS coders.  ``b`` is the
per-video neutral baseline (facevox.extract.au_table.face_quantile): the
``baseline_quantile`` quantile (config, default 0.1) of m over the frames with
a face for an increasing measure, the ``1 - baseline_quantile`` quantile for a
decreasing one.  This assumes each AU
is inactive in most of a video's frames; where it is not (someone who smiles
through a short clip), the baseline is that expression and the values are
relative to it.  AU05 uses the median instead: lid height has blinks (~5-10 %
of frames) in its low tail, which a low quantile would take for neutral.

Tests: tests/test_action_units.py
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from facevox.contract import points_from_columns
from facevox.extract.au_table import au_frame, face_quantile

#: ``au_scale`` metadata of this backend: what the numbers mean.
AU_SCALE = "landmark geometry: inter-ocular-normalised change from the neutral baseline, 0-5"

#: AU column -> (direction of the measure, full-scale change, neutral baseline):
#: see the module docstring for the measures.
GEOMETRIC_AUS = {
    "AU01_r": (+1, 0.15, "quantile"),
    "AU02_r": (+1, 0.15, "quantile"),
    "AU04_r": (-1, 0.15, "quantile"),
    "AU05_r": (+1, 0.05, "median"),
    "AU12_r": (+1, 0.40, "quantile"),
    "AU15_r": (+1, 0.08, "quantile"),
    "AU25_r": (+1, 0.30, "quantile"),
    "AU26_r": (+1, 0.40, "quantile"),
    "AU45_r": (-1, 0.25, "quantile"),
}
#: Intensity of a full-scale change (OpenFace's maximum).
MAX_INTENSITY = 5.0


def eye_frame(points: np.ndarray) -> np.ndarray:
    """Points [N, 68, 2] (pixels) in the eye frame of each row: origin midway between
    the eye centres (corner midpoints 36/39, 42/45), x along the eye line towards
    the left eye, y perpendicular (down the face), unit = inter-ocular distance."""
    right = (points[:, 36] + points[:, 39]) / 2
    left = (points[:, 42] + points[:, 45]) / 2
    d = left - right
    iod = np.hypot(d[:, 0], d[:, 1])[:, None]
    cos, sin = d[:, :1] / iod, d[:, 1:] / iod
    q = points - ((left + right) / 2)[:, None, :]
    x = (q[..., 0] * cos + q[..., 1] * sin) / iod
    y = (q[..., 1] * cos - q[..., 0] * sin) / iod
    return np.stack([x, y], axis=-1)


def geometric_measures(p: np.ndarray) -> dict[str, np.ndarray]:
    """The measure m of each geometric AU (module docstring) from eye-frame points [N, 68, 2]."""
    X, Y = p[..., 0], p[..., 1]

    def dist(i, j):
        return np.hypot(X[:, i] - X[:, j], Y[:, i] - Y[:, j])

    def ear(e):  # eye aspect ratio of the eye whose points are e[0..5]
        return (dist(e[1], e[5]) + dist(e[2], e[4])) / (2 * dist(e[0], e[3]))

    corner_raise = (Y[:, 51] + Y[:, 57]) / 2 - (Y[:, 48] + Y[:, 54]) / 2
    return {
        "AU01_r": -(Y[:, 21] + Y[:, 22]) / 2,
        "AU02_r": ((Y[:, 36] - Y[:, 17]) + (Y[:, 45] - Y[:, 26])) / 2,
        "AU04_r": -Y[:, 17:27].mean(axis=1) + (X[:, 22] - X[:, 21]),
        "AU05_r": -(Y[:, 37] + Y[:, 38] + Y[:, 43] + Y[:, 44]) / 4,
        "AU12_r": (X[:, 54] - X[:, 48]) + corner_raise,
        "AU15_r": -corner_raise,
        "AU25_r": Y[:, 66] - Y[:, 62],
        "AU26_r": dist(8, 33),
        "AU45_r": (ear(range(36, 42)) + ear(range(42, 48))) / 2,
    }


def geometric_aus(landmarks_df: pd.DataFrame, baseline_quantile: float = 0.1) -> tuple[pd.DataFrame, list[str]]:
    """Geometric AU intensities (module docstring) from a landmark table (``LANDMARKS_SCHEMA``
    columns frame, timestamp_s, success, x_*, y_*); returns the AU table and its estimated columns."""
    n = len(landmarks_df)
    points = points_from_columns(landmarks_df)
    with np.errstate(divide="ignore", invalid="ignore"):
        measures = geometric_measures(eye_frame(points))
    ok = landmarks_df["success"].to_numpy(bool) & np.all([np.isfinite(m) for m in measures.values()], axis=0)
    values = {}
    if ok.any():  # else every row is NaN
        for col, (direction, full_scale, neutral) in GEOMETRIC_AUS.items():
            m = measures[col]
            q = 0.5 if neutral == "median" else baseline_quantile if direction > 0 else 1 - baseline_quantile
            baseline = face_quantile(m, ok, q)
            values[col] = MAX_INTENSITY * np.clip(direction * (m - baseline) / full_scale, 0, 1)
    df = au_frame(landmarks_df["frame"], landmarks_df["timestamp_s"], ok, np.ones(n), values)
    return df, list(GEOMETRIC_AUS)

