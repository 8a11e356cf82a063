"""A fake D-Vlog tree: the real layout and column names, random numbers inside.

    python benchmarks/make_fake_dvlog.py OUT_DIR [--n 960] [--seed 0] [--min-t 60] [--max-t 600]

Writes::

    OUT_DIR/labels.csv                 index,label,duration,gender,fold
    OUT_DIR/<index>/<index>_visual.npy     [Tv, 136] float32, x0,y0,x1,y1,... (interleaved)
    OUT_DIR/<index>/<index>_acoustic.npy   [Ta, 25]  float32, eGeMAPS LLDs in opensmile's order

* ``index`` = 0 .. n-1; ``fold`` train/valid/test in D-Vlog's proportions
  647:102:212, scaled to ``n`` by largest remainder (n = 961 gives exactly those
  counts) and shuffled; ``label`` depression with probability 555/961 (D-Vlog's
  share), else normal; ``gender`` f with probability 0.6, else m.
* T ~ uniform integer in [min_t, max_t] rows (one per second); one of the two
  arrays gets 0-3 extra rows at random, so visual and acoustic T differ by 0-3.
  ``duration`` = T + a uniform fraction of a second, two decimals.
* Landmarks: a 68-point face template (dlib's point order: jaw, brows, nose,
  eyes, lips) of 180-320 px width placed in a 1280x720 frame; its centre does a
  random walk (2 px steps, kept inside the frame), its scale a small one, and
  each point jitters by 0.7 px.  About a third of the videos have 1-3 runs of
  1-10 rows without a face, written as all zeros as in D-Vlog.
* Acoustic: each of the 25 columns is Gaussian around a plausible level for that
  LLD; the ``*_sma3nz`` columns are 0 on the ~35% of rows that are "unvoiced".

Also importable: ``make_fake_dvlog(out_dir, n, seed, min_t, max_t)`` (the tests
load this file with importlib; facevox itself does not ship fake data).
The output depends only on the arguments.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

#: D-Vlog's released fold sizes and depressed share.
DVLOG_FOLD_COUNTS = {"train": 647, "valid": 102, "test": 212}
DEPRESSED_SHARE = 555 / 961
FEMALE_SHARE = 0.6

#: (mean, std) of each eGeMAPS LLD, in contract.EGEMAPS_COLUMNS order.
ACOUSTIC_LEVELS = [
    (0.6, 0.4), (-12.0, 5.0), (20.0, 6.0), (-0.02, 0.02), (-0.005, 0.005), (0.3, 0.2),
    (25.0, 10.0), (8.0, 8.0), (5.0, 8.0), (2.0, 8.0),
    (30.0, 6.0), (0.02, 0.01), (1.2, 0.4), (5.0, 3.0), (3.0, 5.0), (15.0, 8.0),
    (550.0, 120.0), (900.0, 300.0), (-80.0, 40.0), (1600.0, 250.0), (850.0, 300.0), (-80.0, 40.0),
    (2600.0, 250.0), (800.0, 300.0), (-80.0, 40.0),
]
#: Columns 10.. (``*_sma3nz``) are only defined on voiced rows (0 elsewhere).
VOICED_ONLY_FROM = 10


def face_template() -> np.ndarray:
    """[68, 2] landmark template in dlib's order, unit face width, centred on (0, 0), y down."""
    pts = np.zeros((68, 2))
    t = np.linspace(0, np.pi, 17)
    pts[0:17] = np.c_[-0.5 * np.cos(t), -0.05 + 0.55 * np.sin(t)]  # jaw, left temple -> chin -> right
    s = np.linspace(0, np.pi, 5)
    pts[17:22] = np.c_[np.linspace(-0.40, -0.08, 5), -0.30 - 0.05 * np.sin(s)]  # left brow
    pts[22:27] = np.c_[np.linspace(0.08, 0.40, 5), -0.30 - 0.05 * np.sin(s)]  # right brow
    pts[27:31] = np.c_[np.zeros(4), np.linspace(-0.18, 0.08, 4)]  # nose bridge
    pts[31:36] = np.c_[np.linspace(-0.10, 0.10, 5), 0.14 + 0.02 * np.sin(s)]  # nostrils
    e = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    for first, cx in ((36, -0.20), (42, 0.20)):  # eyes: outer/inner corner, lids
        pts[first:first + 6] = np.c_[cx - 0.08 * np.cos(e), -0.15 - 0.03 * np.sin(e)]
    m = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    pts[48:60] = np.c_[-0.20 * np.cos(m), 0.30 - 0.08 * np.sin(m)]  # outer lips
    i = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    pts[60:68] = np.c_[-0.12 * np.cos(i), 0.30 - 0.03 * np.sin(i)]  # inner lips
    return pts


def fold_counts(n: int) -> dict[str, int]:
    """D-Vlog's fold proportions scaled to ``n`` (largest remainder, ties in fold order)."""
    total = sum(DVLOG_FOLD_COUNTS.values())
    quotas = {f: n * c / total for f, c in DVLOG_FOLD_COUNTS.items()}
    counts = {f: int(np.floor(q)) for f, q in quotas.items()}
    order = sorted(quotas, key=lambda f: -(quotas[f] - counts[f]))  # stable: fold order on ties
    for f in order[: n - sum(counts.values())]:
        counts[f] += 1
    return counts


def fake_visual(rng: np.random.Generator, t: int, width: int = 1280, height: int = 720) -> np.ndarray:
    """[t, 136] float32 interleaved landmarks: a random-walking template, some no-face runs."""
    template = face_template()
    scale = rng.uniform(180, 320) * np.exp(np.cumsum(rng.normal(0, 0.005, t)))
    centre = np.array([width / 2, height / 2]) + rng.normal(0, [80, 40])
    walk = centre + np.cumsum(rng.normal(0, 2.0, (t, 2)), axis=0)
    margin = 0.6 * scale[:, None]
    walk = np.clip(walk, margin, np.array([width, height]) - margin)
    pts = walk[:, None, :] + scale[:, None, None] * template[None] + rng.normal(0, 0.7, (t, 68, 2))
    visual = pts.reshape(t, 136).astype(np.float32)  # (x0, y0, x1, y1, ...)
    if rng.random() < 1 / 3:
        for _ in range(rng.integers(1, 4)):
            start, length = int(rng.integers(0, t)), int(rng.integers(1, 11))
            visual[start:start + length] = 0.0
    return visual


def fake_acoustic(rng: np.random.Generator, t: int) -> np.ndarray:
    """[t, 25] float32 eGeMAPS-like LLDs; voiced-only columns 0 on unvoiced rows."""
    mean, std = np.array(ACOUSTIC_LEVELS).T
    values = rng.normal(mean, std, (t, len(mean)))
    values[:, 0] = np.abs(values[:, 0])  # loudness >= 0
    unvoiced = rng.random(t) < 0.35
    values[unvoiced, VOICED_ONLY_FROM:] = 0.0
    return values.astype(np.float32)


def make_fake_dvlog(out_dir, n: int = 960, seed: int = 0, min_t: int = 60, max_t: int = 600) -> Path:
    """Write the fake tree (see the module docstring) to ``out_dir``; return ``out_dir/labels.csv``."""
    if n < 1 or not 1 <= min_t <= max_t:
        raise ValueError(f"need n >= 1 and 1 <= min_t <= max_t, got n={n}, min_t={min_t}, max_t={max_t}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    folds = np.array([f for f, c in fold_counts(n).items() for _ in range(c)])
    rng.shuffle(folds)
    rows = []
    for index in range(n):
        t = int(rng.integers(min_t, max_t + 1))
        extra = int(rng.integers(0, 4))
        t_visual, t_acoustic = (t + extra, t) if rng.random() < 0.5 else (t, t + extra)
        folder = out / str(index)
        folder.mkdir(exist_ok=True)
        np.save(folder / f"{index}_visual.npy", fake_visual(rng, t_visual))
        np.save(folder / f"{index}_acoustic.npy", fake_acoustic(rng, t_acoustic))
        label = "depression" if rng.random() < DEPRESSED_SHARE else "normal"
        gender = "f" if rng.random() < FEMALE_SHARE else "m"
        duration = f"{t + rng.random():.2f}"
        rows.append([str(index), label, duration, gender, str(folds[index])])
    labels = out / "labels.csv"
    with labels.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["index", "label", "duration", "gender", "fold"])
        writer.writerows(rows)
    return labels


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--n", type=int, default=960, help="number of videos (default 960)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-t", type=int, default=60, help="shortest video, rows (= seconds)")
    ap.add_argument("--max-t", type=int, default=600, help="longest video, rows (= seconds)")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    labels = make_fake_dvlog(args.out_dir, args.n, args.seed, args.min_t, args.max_t)
    print(f"wrote {labels} and {args.n} video folders in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
