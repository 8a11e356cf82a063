"""Streamed face clips (facevox.training.tasks.face_frames): decoded frames/s per core of the
loader, and peak RSS of a STA-DRN training epoch (tiny model) on six synthetic face tables of
``--long`` minutes against six of ``--short`` minutes (30 fps, 224 x 224 crops).

Synthetic tables: a pool of 32 distinct 224 x 224 JPEG crops (a disc on a gradient with
noise, quality 90) reused row after row - generation stays fast, decoding costs what a real
crop of that size costs; one row in 100 without a face; row groups of 256 rows (as the faces
stage writes them).  Each measurement runs in its own process (``ru_maxrss`` of it and of
its largest DataLoader worker).

    .venv/bin/python benchmarks/bench_face_loader.py [--long 25] [--short 4] [--out benchmarks/results/face_loader.md]
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FPS, SIZE = 30, 224


def generate(folder: Path, minutes: float, n_videos: int = 6) -> Path:
    """Six face tables of ``minutes`` each and their sheet (all train, scores 0..63)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from facevox.contract import ALIGNED_FACES_SCHEMA, CROP_LANDMARK_X, CROP_LANDMARK_Y, FACES_ROW_GROUP_ROWS
    from facevox.extract.faces import encode_jpeg

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    pool = []
    for k in range(32):
        img = np.stack([(xx + k * 3) % 256, (yy + k * 5) % 256, (xx + yy) // 2 % 256], -1).astype(np.float32)
        img[(xx - 112) ** 2 + (yy - 112) ** 2 < (40 + k) ** 2] = 200
        pool.append(encode_jpeg(np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8), 90))
    n = int(minutes * 60 * FPS)
    (folder / "faces").mkdir(parents=True, exist_ok=True)
    rows = ["video_id\tpath\tsubject_id\tsplit\tlabel\tscore\tgender"]
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    for v in range(n_videos):
        vid = f"train{v:03d}"
        success = np.arange(n) % 100 != 99
        columns = {"frame": pa.array(np.arange(n, dtype=np.int32)), "timestamp_s": pa.array(np.arange(n) / FPS),
                   "success": pa.array(success),
                   "image": pa.array([pool[i % 32] if ok else b"" for i, ok in enumerate(success)], pa.binary())}
        for k, (cx, cy) in enumerate(zip(CROP_LANDMARK_X, CROP_LANDMARK_Y)):
            columns[cx] = pa.array(np.full(n, 112 + 70 * np.cos(angles[k]), np.float32))
            columns[cy] = pa.array(np.full(n, 112 + 70 * np.sin(angles[k]), np.float32))
        table = pa.table([columns[f.name] for f in ALIGNED_FACES_SCHEMA], schema=ALIGNED_FACES_SCHEMA)
        pq.write_table(table, folder / "faces" / f"{vid}.parquet", row_group_size=FACES_ROW_GROUP_ROWS,
                       compression="zstd")
        rows.append(f"{vid}\tfaces/{vid}.parquet\tsubj{v}\ttrain\t\t{v * 10.0:.1f}\tf")
    sheet = folder / "samples.tsv"
    sheet.write_text("\n".join(rows) + "\n")
    return sheet


def _peak_mib() -> tuple[float, float]:
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def run_epoch(folder: Path, workers: int, clips_per_video: int, batch: int = 2) -> dict:
    """One STA-DRN (tiny) training epoch through the task, in this process."""
    import torch

    from facevox.models import create_model
    from facevox.training.loop import run_settings
    from facevox.training.tasks import make_task

    torch.set_num_threads(2)
    settings = run_settings({"vision": {"clip_len": 64, "size": SIZE, "clips_per_video": clips_per_video,
                                        "workers": workers, "prefetch": 2}})
    t0 = time.perf_counter()
    task = make_task("clip", folder / "faces", settings, folder / "samples.tsv")
    index_s = time.perf_counter() - t0
    model = create_model("sta_drn", width=8, layers=[1, 1, 1, 1], **task.model_kwargs("clip"))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = task.loss({"loss": "mse"}, "cpu")
    t0, steps = time.perf_counter(), 0
    for (clips,), target in task.batches(np.random.default_rng([0, 1]), batch):
        loss = loss_fn(model(clips), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    main, child = _peak_mib()
    return {"steps": steps, "epoch_s": time.perf_counter() - t0, "index_s": index_s, "peak_main_mib": main,
            "peak_worker_mib": child}


def run_throughput(folder: Path, seconds: float = 15.0) -> dict:
    """Random 64-frame clips read and decoded in this process (one thread): frames per CPU second."""
    import cv2
    import torch

    from facevox.training.tasks.face_frames import FaceReader, index_video

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    index = index_video("train000", folder / "faces" / "train000.parquet")
    reader, rng = FaceReader(SIZE), np.random.default_rng(0)
    c0, t0 = time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        start = int(rng.integers(0, index.n_faces - 64))
        reader.read(index, np.arange(start, start + 64), landmarks=False)
    cpu = time.process_time() - c0
    return {"frames": reader.frames_decoded, "cpu_s": cpu, "frames_per_cpu_s": reader.frames_decoded / cpu,
            "rows_read_per_frame": reader.rows_read / reader.frames_decoded}


def child(*args) -> dict:
    out = subprocess.run([sys.executable, __file__, *map(str, args)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--long", type=float, default=25.0)
    p.add_argument("--short", type=float, default=4.0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--clips-per-video", type=int, default=2)
    p.add_argument("--batch", type=int, default=2,
                   help="clips per step (on the CPU a batch's activations count in the RSS: 2 keeps them small)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/face_loader.md"))
    p.add_argument("--_epoch", nargs=4, help=argparse.SUPPRESS)
    p.add_argument("--_throughput", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a._epoch:
        print(json.dumps(run_epoch(Path(a._epoch[0]), int(a._epoch[1]), int(a._epoch[2]), int(a._epoch[3]))))
        return
    if a._throughput:
        print(json.dumps(run_throughput(Path(a._throughput))))
        return
    cpu = next((ln.split(":", 1)[1].strip() for ln in subprocess.run(["lscpu"], capture_output=True, text=True)
                .stdout.splitlines() if ln.startswith("Model name")), platform.processor())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in (a.short, a.long):
            folder = Path(tmp) / f"m{minutes:g}"
            t0 = time.perf_counter()
            generate(folder, minutes)
            gen_s = time.perf_counter() - t0
            size_mb = sum(f.stat().st_size for f in (folder / "faces").glob("*.parquet")) / 2**20
            res = {"gen_s": gen_s, "table_mib": size_mb / 6,
                   "epoch": child("--_epoch", folder, a.workers, a.clips_per_video, a.batch)}
            if minutes == a.long:
                res["throughput"] = child("--_throughput", folder)
            results[minutes] = res
            print(minutes, json.dumps(res), file=sys.stderr)
    short, long_ = results[a.short], results[a.long]
    ratio = long_["epoch"]["peak_main_mib"] / short["epoch"]["peak_main_mib"]
    lines = [
        "# Streamed face clips (issue 31): loader throughput and epoch memory", "",
        f"CPU: {cpu} ({subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores visible); "
        f"python {platform.python_version()}; `benchmarks/bench_face_loader.py --long {a.long:g} "
        f"--short {a.short:g} --workers {a.workers} --clips-per-video {a.clips_per_video} --batch {a.batch}`.", "",
        "Synthetic tables: 30 fps, 224 x 224 crops, 32 distinct JPEGs (q 90) reused row after row, "
        "1 row in 100 without a face, row groups of 256 rows. Epoch: STA-DRN tiny (width 8, layers 1-1-1-1), "
        f"clip_len 64, size 224, batch {a.batch}, {a.clips_per_video} clips per video, six train videos, "
        f"models.vision.workers {a.workers}, prefetch 2, torch threads 2; each run in its own process.", "",
        "| tables | rows / video | MiB / table | index s | epoch steps | epoch s | peak RSS main MiB "
        "| peak RSS worker MiB |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for minutes, r in results.items():
        e = r["epoch"]
        lines.append(f"| 6 x {minutes:g} min | {int(minutes * 60 * FPS)} | {r['table_mib']:.0f} | {e['index_s']:.2f} "
                     f"| {e['steps']} | {e['epoch_s']:.1f} | {e['peak_main_mib']:.0f} | {e['peak_worker_mib']:.0f} |")
    t = long_["throughput"]
    lines += ["", f"Peak RSS (main process), {a.long:g}-minute over {a.short:g}-minute tables: {ratio:.3f} "
              f"(target within 10 %, <= 3 GB).", "",
              f"Loader throughput (one process, one thread, random 64-frame clips of a {a.long:g}-minute table, "
              f"no resize): {t['frames_per_cpu_s']:.0f} decoded frames per CPU second "
              f"({t['frames']} frames in {t['cpu_s']:.1f} s CPU; {t['rows_read_per_frame']:.2f} Parquet rows read "
              f"per decoded frame) - target >= 400.", ""]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
