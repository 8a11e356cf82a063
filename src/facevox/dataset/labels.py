"""Time-continuous affect labels (arousal, valence) aligned to the FAU windows.

For the shallow FAU CNN (shallow_fau_cnn_pandit.txt; facevox.models.shallow_fau),
which predicts one value per FAU window (``fau_windows``: a window every ``hop``
frames, ``centre_s`` = time of its centre frame).

Label file (one per video): a CSV with a ``time_s`` column (seconds on the video's
clock, strictly increasing) and one numeric column per dimension (``arousal``,
``valence``, ...); lines starting with ``#`` are comments. Missing columns, an
empty table, non-numeric, NaN or infinite values and time that does not increase
strictly raise :class:`~facevox.errors.InputError` naming the file and the row.

Alignment (:func:`align_labels`): the label of window *k* is the label track
**linearly interpolated** at ``centre_s[k] + delay`` (``numpy.interp``). Windows
whose query time falls outside ``[time_s[0], time_s[-1]]`` get NaN (no
extrapolation); the trainer masks NaN targets out of the loss
(``shallow_fau.masked_ccc_loss``). A tolerance of 1 microsecond at both ends absorbs
float rounding (e.g. 0.1 * k + 4.0 vs 0.1 * (k + 40)).

Delay compensation: annotators react late, so the rating at time ``t + delay``
describes the face at ``t``; the label paired with the window at ``t`` is taken
from ``t + delay``. Per-dimension delays; the defaults are the paper's: 4.0 s for
arousal and 2.8 s for valence (section 4: "optimal delay compensation of 4.0
seconds and 2.8 seconds for arousal and valence respectively, based on our
previous study [80]"). The paper gives the values, not the direction in words;
shifting the labels back in time (this direction) is what delay compensation for
annotator reaction lag means in the works it cites. The last ``delay`` seconds of a
video have no label after the shift (NaN). A dimension without a delay is an error
(give 0 for none) rather than silently unshifted.

Demo labels (:func:`demo_labels`, :func:`write_demo_labels`): a deterministic,
SYNTHETIC label track for a video made from its own FAU windows, for the demo DAG
only; the file's first lines say so. Each dimension is ``tanh`` of a standardised
mix of FAU functionals plus seeded noise (seed = CRC-32 of the video id):

* arousal: mean of z(AU05_r_std), z(confidence_mean), z(AU25_r_mean) (the first two
  are what the paper's model relied on, section 5.2);
* valence: mean of z(AU06_r_mean), z(AU12_r_mean), -z(AU04_r_mean), -z(AU15_r_mean)
  (cheek raiser and lip corner puller up, brow lowerer and lip corner depressor down);

z = standardised over the video, 0 for a constant or all-NaN column (NaN functionals,
windows without a face, count as 0 before standardising). The track is written at
the window centres and delayed by the dimension's delay (value at ``t`` = signal at
``t - delay``, the first value held before the start), so that delay compensation
recovers the signal. The values mean nothing about the person.

Tests: tests/test_affect_labels.py
"""
from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facevox.errors import FacevoxError, InputError
from facevox.io import atomic_path

TIME_COLUMN = "time_s"
AFFECT_DIMENSIONS = ("arousal", "valence")
#: Section 4 of the paper: delay compensation in seconds.
DEFAULT_DELAYS_S = {"arousal": 4.0, "valence": 2.8}
#: Slack at the ends of the label range for float rounding of the query times.
END_TOLERANCE_S = 1e-6

DEMO_HEADER = (
    "# DEMO affect labels, SYNTHETIC: written by facevox from this video's own FAU windows.\n"
    "# They are not annotations and mean nothing; do not report results computed from them.\n"
)
#: Demo signal of each dimension: (sign, FAU window column) terms averaged before tanh.
DEMO_TERMS = {
    "arousal": [(1, "AU05_r_std"), (1, "confidence_mean"), (1, "AU25_r_mean")],
    "valence": [(1, "AU06_r_mean"), (1, "AU12_r_mean"), (-1, "AU04_r_mean"), (-1, "AU15_r_mean")],
}
DEMO_NOISE = 0.1


def label_file(video_id: str, given: str | None, labels_dir: str | None) -> Path:
    """Where a video's label CSV is: the sheet's ``affect_labels`` cell when filled, else
    ``labels_dir/<video_id>.csv`` (config ``models.affect.labels_dir``)."""
    if given:
        return Path(given)
    if not labels_dir:
        raise FacevoxError(f"video {video_id}: the FAU models need affect labels - a sheet column "
                           "affect_labels or models.affect.labels_dir")
    return Path(labels_dir) / f"{video_id}.csv"


def read_labels(path, dimensions: Sequence[str] = AFFECT_DIMENSIONS) -> pd.DataFrame:
    """``time_s`` and the ``dimensions`` columns (float64) of one label CSV, checked."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "label file not found")
    try:
        raw = pd.read_csv(path, comment="#", dtype=str, skipinitialspace=True, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise InputError(path, f"label file is empty; expected a header with {TIME_COLUMN} and "
                               f"{', '.join(dimensions)}") from None
    except pd.errors.ParserError as exc:
        raise InputError(path, f"not a readable CSV: {exc}") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in (TIME_COLUMN, *dimensions) if c not in raw.columns]
    if missing:
        raise InputError(path, f"missing label column(s) {', '.join(missing)}; found {', '.join(raw.columns)}")
    if raw.empty:
        raise InputError(path, "label file has a header but no rows")
    out = {}
    for col in (TIME_COLUMN, *dimensions):
        text = raw[col].str.strip()
        values = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            shown = raw[col].iloc[row]
            what = "is empty" if pd.isna(shown) or not str(shown).strip() else f"is {shown!r}"
            raise InputError(path, f"column {col!r}, data row {row + 1} {what}: labels must be finite numbers "
                                   f"(no NaN) - {int(bad.sum())} such row(s)")
        out[col] = values
    time = out[TIME_COLUMN]
    step = np.diff(time)
    if (step <= 0).any():
        row = int(np.flatnonzero(step <= 0)[0]) + 1
        raise InputError(path, f"{TIME_COLUMN} must increase strictly: data row {row + 1} ({time[row]} s) "
                               f"follows {time[row - 1]} s")
    return pd.DataFrame(out)


def align_labels(labels: pd.DataFrame, centre_s, delays_s: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Labels at the window centres: ``centre_s`` and every dimension column of ``labels``.

    Window *k* of dimension *d* gets ``labels[d]`` interpolated linearly at
    ``centre_s[k] + delays_s[d]``; NaN outside the label range. ``delays_s`` defaults to
    :data:`DEFAULT_DELAYS_S` and must name every dimension of ``labels``."""
    delays = DEFAULT_DELAYS_S if delays_s is None else delays_s
    if TIME_COLUMN not in labels.columns:
        raise FacevoxError(f"align_labels: labels have no {TIME_COLUMN!r} column")
    dims = [c for c in labels.columns if c != TIME_COLUMN]
    no_delay = [d for d in dims if d not in delays]
    if no_delay:
        raise FacevoxError(f"no delay compensation given for label dimension(s) {', '.join(no_delay)}; "
                           f"set one per dimension in seconds (0 for none)")
    time = labels[TIME_COLUMN].to_numpy(np.float64)
    centres = np.asarray(centre_s, np.float64)
    out = {"centre_s": centres}
    for dim in dims:
        query = centres + float(delays[dim])
        inside = (query >= time[0] - END_TOLERANCE_S) & (query <= time[-1] + END_TOLERANCE_S)
        values = np.interp(np.clip(query, time[0], time[-1]), time, labels[dim].to_numpy(np.float64))
        out[dim] = np.where(inside, values, np.nan)
    return pd.DataFrame(out)


def window_labels(path, fau_windows: pd.DataFrame, dimensions: Sequence[str] = AFFECT_DIMENSIONS,
                  delays_s: Mapping[str, float] | None = None) -> pd.DataFrame:
    """:func:`read_labels` then :func:`align_labels` at ``fau_windows["centre_s"]``."""
    return align_labels(read_labels(path, dimensions), fau_windows["centre_s"], delays_s)


def _standardised(column: np.ndarray) -> np.ndarray:
    values = np.nan_to_num(column.astype(np.float64), nan=0.0)
    std = values.std()
    return np.zeros_like(values) if std == 0 else (values - values.mean()) / std


def demo_labels(fau_windows: pd.DataFrame, video_id: str,
                delays_s: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Synthetic arousal/valence track (``time_s``, ``arousal``, ``valence``) for a video's
    FAU window table; deterministic in (table, video_id). See the module docstring."""
    delays = DEFAULT_DELAYS_S if delays_s is None else delays_s
    if len(fau_windows) == 0:
        raise FacevoxError(f"demo labels for {video_id}: the FAU window table has no rows")
    time = fau_windows["centre_s"].to_numpy(np.float64)
    if len(time) > 1 and (np.diff(time) <= 0).any():
        raise FacevoxError(f"demo labels for {video_id}: window centres do not increase strictly")
    rng = np.random.default_rng(zlib.crc32(video_id.encode()))
    out = {TIME_COLUMN: time}
    for dim in AFFECT_DIMENSIONS:
        drive = np.mean([sign * _standardised(fau_windows[col].to_numpy()) for sign, col in DEMO_TERMS[dim]], axis=0)
        signal = np.tanh(drive + DEMO_NOISE * rng.standard_normal(len(time)))
        out[dim] = np.interp(time - float(delays[dim]), time, signal)  # held at the ends
    return pd.DataFrame(out)


def write_demo_labels(fau_windows: pd.DataFrame | None, path, video_id: str,
                      delays_s: Mapping[str, float] | None = None, why: str = "") -> Path:
    """Write :func:`demo_labels` as a label CSV under :data:`DEMO_HEADER`; return ``path``.

    A video without FAU windows (``fau_windows`` None: its input was excluded, ``why`` says
    why; or a table without rows) gets the header row only, with the reason as a comment:
    no training reads it (an excluded video is in no included sheet), and a reader that
    does gets :func:`read_labels`' "header but no rows"."""
    path = Path(path)
    if fau_windows is None or len(fau_windows) == 0:
        text = (DEMO_HEADER + f"# no labels: {why or 'the FAU window table has no rows'}\n"
                + ",".join([TIME_COLUMN, *AFFECT_DIMENSIONS]) + "\n")
    else:
        table = demo_labels(fau_windows, video_id, delays_s)
        text = DEMO_HEADER + table.to_csv(index=False, float_format="%.6f", lineterminator="\n")
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path
