"""Fixed-length slices of a video's per-frame features, and train-only normalisation.

Gaps (frames without a face)
----------------------------
:func:`interpolate_gaps` fills a run of missing frames linearly, per column,
when the run is at most ``max_gap`` frames long and has a valid frame on both
sides.  Longer runs, and runs at either end of the video, stay NaN and are
counted in each slice's ``n_missing``.

Slicing (:func:`slice_starts`, :func:`slice_video`)
---------------------------------------------------
Slices are ``length`` frames long and start every ``hop`` frames (``hop =
length`` by default: non-overlapping):

* full slices start at ``0, hop, 2 hop, ...`` while ``start + length <= T``;
* if the last full slice ends before the video does, one *tail* slice starts
  at the next hop position and holds the remaining ``T - start`` real frames;
* a video shorter than ``length`` gives one slice starting at 0.

So 650 frames at length 300 give slices at 0, 300 and 600, the last with
``n_real = 50``.  A slice's missing tail is filled according to ``pad``:

* ``poly`` (the STST paper): per column, a least-squares polynomial of degree
  ``degree`` over the slice's real, finite frames, evaluated at the missing
  positions (exact for a polynomial signal of that degree).  A column with
  fewer than ``degree + 1`` finite frames repeats its last finite value (NaN if
  it has none).
* ``zero``: zeros.
* ``drop``: tail slices are not made (a video shorter than ``length`` gives none).

Normalisation (:class:`NormStats`)
----------------------------------
Per feature, fitted on the **training split only**, over real frames (never
padding) with NaN ignored, and saved as JSON that evaluation reuses:

* ``minmax`` (STST eq. 5): ``(x - min) / (max - min)``;
* ``zscore``: ``(x - mean) / std`` (ddof 0).

A feature that is constant on the training split (``max == min``, ``std == 0``)
maps to 0 everywhere instead of NaN/inf; so does a feature with no finite
training value.  A NaN input value (a gap too long to fill) stays NaN.

Tests: tests/test_slices.py
"""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facevox.errors import FacevoxError
from facevox.io import atomic_path

PAD_POLICIES = ("poly", "zero", "drop")
NORM_METHODS = ("minmax", "zscore")


def interpolate_gaps(values: np.ndarray, valid: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Fill short runs of invalid frames linearly; return (values, still_missing [T] bool).

    ``values`` [T, C]; ``valid`` [T] bool (e.g. face_success).  Invalid frames'
    values are ignored (set to NaN first), so a tracker's junk never leaks in.
    """
    values = np.where(valid[:, None], np.asarray(values, np.float64), np.nan)
    missing = ~valid.copy()
    t = len(valid)
    i = 0
    while i < t:
        if valid[i]:
            i += 1
            continue
        j = i
        while j < t and not valid[j]:
            j += 1
        # run of invalid frames i..j-1
        if i > 0 and j < t and j - i <= max_gap:
            w = (np.arange(i, j) - (i - 1)) / (j - (i - 1))
            values[i:j] = values[i - 1] + w[:, None] * (values[j] - values[i - 1])
            missing[i:j] = False
        i = j
    return values, missing


def slice_starts(n_frames: int, length: int, hop: int | None = None, pad: str = "poly") -> list[tuple[int, int]]:
    """(start, n_real) of every slice of a video of ``n_frames`` frames (see module docstring)."""
    hop = hop or length
    if length < 1 or hop < 1:
        raise FacevoxError(f"slices: length and hop must be >= 1 (got {length}, {hop})")
    if pad not in PAD_POLICIES:
        raise FacevoxError(f"slices: pad must be one of {PAD_POLICIES}, got {pad!r}")
    if n_frames <= 0:
        return []
    starts = [(s, length) for s in range(0, n_frames - length + 1, hop)]
    if pad != "drop":
        if not starts:
            starts = [(0, n_frames)]
        elif starts[-1][0] + length < n_frames:
            s = starts[-1][0] + hop
            starts.append((s, n_frames - s))
    return starts


def _poly_fill(block: np.ndarray, n_real: int, degree: int) -> np.ndarray:
    """Fill rows n_real.. of block [L, C] per column from a polynomial fit of rows ..n_real."""
    length = len(block)
    scale = max(n_real - 1, 1)  # fit on x in [0, 1]: well conditioned
    x = np.arange(n_real, dtype=np.float64) / scale
    x_new = np.arange(n_real, length, dtype=np.float64) / scale
    y = block[:n_real]
    ok = np.isfinite(y)
    full = ok.all(axis=0) & (n_real >= degree + 1)
    if full.any():  # every column without a gap: one least-squares solve for all of them
        coef = np.polynomial.polynomial.polyfit(x, y[:, full], degree)
        block[n_real:, full] = np.polynomial.polynomial.polyval(x_new, coef).T
    for c in np.flatnonzero(~full):
        good = ok[:, c]
        if good.sum() >= degree + 1:
            coef = np.polynomial.polynomial.polyfit(x[good], y[good, c], degree)
            block[n_real:, c] = np.polynomial.polynomial.polyval(x_new, coef)
        else:
            block[n_real:, c] = y[good, c][-1] if good.any() else np.nan
    return block


def slice_video(values: np.ndarray, missing: np.ndarray | None = None, length: int = 300,
                hop: int | None = None, pad: str = "poly", degree: int = 2):
    """Cut [T, C] features into slices.

    Returns ``(slices [N, length, C] float32, n_real [N], n_missing [N], starts [N])``;
    ``n_missing`` counts real frames that are still NaN (gaps too long to fill).
    """
    values = np.asarray(values, np.float64)
    t, c = values.shape
    missing = np.zeros(t, bool) if missing is None else np.asarray(missing, bool)
    spans = slice_starts(t, length, hop, pad)
    out = np.zeros((len(spans), length, c), np.float32)
    n_real = np.zeros(len(spans), np.int32)
    n_missing = np.zeros(len(spans), np.int32)
    for k, (start, real) in enumerate(spans):
        block = np.zeros((length, c))
        block[:real] = values[start:start + real]
        if real < length and pad == "poly":
            block = _poly_fill(block, real, degree)
        out[k] = block
        n_real[k] = real
        n_missing[k] = int(missing[start:start + real].sum())
    return out, n_real, n_missing, np.array([s for s, _ in spans], np.int64)


@dataclass
class NormStats:
    """Per-feature statistics of the training split, and how to apply them."""

    method: str
    columns: list[str]
    minimum: list[float]
    maximum: list[float]
    mean: list[float]
    std: list[float]
    n_frames: int
    videos: list[str]

    @classmethod
    def fit(cls, tables, columns: list[str], method: str = "minmax") -> NormStats:
        """Fit on the real frames of the *training* videos: ``tables`` is a dict
        {video_id: [T, C]} or an iterable of (video_id, [T, C]) pairs.

        Streaming: one video at a time is combined into per-column running
        minimum, maximum, count, mean and sum of squared deviations (Chan et al.'s
        pairwise update), so memory does not grow with the corpus.
        """
        if method not in NORM_METHODS:
            raise FacevoxError(f"normalisation method must be one of {NORM_METHODS}, got {method!r}")
        c = len(columns)
        count, mean, m2 = np.zeros(c), np.zeros(c), np.zeros(c)
        lo, hi = np.full(c, np.inf), np.full(c, -np.inf)
        rows, videos = 0, []
        for vid, values in (tables.items() if isinstance(tables, dict) else tables):
            a = np.asarray(values, np.float64).reshape(-1, c)
            videos.append(vid)
            rows += len(a)
            n_b = np.isfinite(a).sum(axis=0)
            if not n_b.any():
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of this video
                mean_b = np.nanmean(a, axis=0)
                m2_b = np.nansum((a - mean_b) ** 2, axis=0)
                lo = np.fmin(lo, np.nanmin(a, axis=0))
                hi = np.fmax(hi, np.nanmax(a, axis=0))
            has = n_b > 0
            total = count + n_b
            delta = np.where(has, mean_b - mean, 0.0)
            safe = np.maximum(total, 1)
            mean = np.where(has, mean + delta * n_b / safe, mean)
            m2 = np.where(has, m2 + np.nan_to_num(m2_b) + delta**2 * count * n_b / safe, m2)
            count = total
        if not videos:
            raise FacevoxError("normalisation: no training videos to fit statistics on")
        empty = count == 0
        stats = [np.where(empty, np.nan, lo), np.where(empty, np.nan, hi), np.where(empty, np.nan, mean),
                 np.where(empty, np.nan, np.sqrt(m2 / np.maximum(count, 1)))]
        return cls(method, list(columns), *[s.tolist() for s in stats], int(rows), sorted(videos))

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Normalise [..., C]; constant or empty training columns give 0, never NaN/inf."""
        values = np.asarray(values, np.float64)
        if self.method == "minmax":
            lo, span = np.asarray(self.minimum), np.asarray(self.maximum) - np.asarray(self.minimum)
        else:
            lo, span = np.asarray(self.mean), np.asarray(self.std)
        usable = np.isfinite(lo) & np.isfinite(span) & (span > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (values - np.where(usable, lo, 0.0)) / np.where(usable, span, 1.0)
        return np.where(usable, out, 0.0).astype(np.float32)

    def save(self, path) -> None:
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path) -> NormStats:
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise FacevoxError(f"{path}: not a facevox normalisation file ({exc})") from None
