"""Training throughput of protocol ``whole`` vs ``slices`` at D-Vlog size (synthetic, one run each).

    python benchmarks/bench_whole.py OUT_DIR [--videos 961] [--steps 12] [--batch 8] [--model depression_detector]
                                             [--tiny] [--threads 2]

Writes a D-Vlog-sized synthetic project (961 videos at 1 Hz, 647 / 102 / 212 train / dev /
test as the released folds, lengths uniform in 120-1080 rows: mean 600 s, ~160 h like
D-Vlog; facevox.dataset.synthetic.planted_video), its 300-row shard set, then times
``--steps`` optimiser steps (Adam, cross-entropy, the model at its paper size) on the batches
of each task (facevox.training.tasks.whole / .slices) after one warm-up step, in the same
process on the same machine. Prints and writes ``OUT_DIR/bench_whole.json``: seconds per
step, videos or slices per second, real rows per second, the extrapolated seconds per
epoch and the peak resident memory after each protocol.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def make_project(out: Path, n: int, seed: int = 0) -> Path:
    from facevox.contract import ALIGNED_SCHEMA
    from facevox.dataset.synthetic import planted_video
    from facevox.io import write_table

    sheet = out / "samples.tsv"
    if sheet.exists():
        return sheet
    rng = np.random.default_rng(seed)
    counts = {"train": round(n * 647 / 961), "dev": round(n * 102 / 961)}
    counts["test"] = n - counts["train"] - counts["dev"]
    lines = ["video_id\tpath\tsubject_id\tsplit\tlabel\tscore\tgender\n"]
    for split, count in counts.items():
        for i in range(count):
            vid, label = f"{split}{i:04d}", ("depression" if i % 2 else "normal")
            rows = int(rng.integers(120, 1081))
            write_table(planted_video(rows, label, rng, fps=1.0), out / "aligned" / f"{vid}.parquet", ALIGNED_SCHEMA,
                        {"stage": "synthetic"})
            lines.append(f"{vid}\taligned/{vid}.parquet\tsubj_{vid}\t{split}\t{label}\t\t{'fm'[i % 2]}\n")
    sheet.write_text("".join(lines))
    return sheet


def time_steps(task, model_name: str, batch: int, steps: int, tiny: bool = False) -> dict:
    import torch

    from facevox.models import create_model, get_spec

    torch.manual_seed(0)
    sizes = get_spec(model_name).tiny if tiny else {}
    model = create_model(model_name, **sizes, **task.model_kwargs("sequence")).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    it = task.batches(np.random.default_rng(0), batch)
    times, items, rows = [], 0, 0
    for step in range(steps + 1):
        t0 = time.perf_counter()
        inputs, labels = next(it)
        tensors = [torch.from_numpy(np.ascontiguousarray(x)) for x in inputs]
        loss = loss_fn(model(*tensors), torch.from_numpy(labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:  # the first step warms up (allocations, first reads)
            times.append(time.perf_counter() - t0)
            items += len(labels)
            rows += int(inputs[2].sum()) if len(inputs) == 3 else inputs[0].shape[0] * inputs[0].shape[1]
    seconds = float(np.sum(times))
    return {"steps": steps, "seconds_per_step": seconds / steps, "items_per_s": items / seconds,
            "real_rows_per_s": rows / seconds, "items_per_epoch": task.n_train(),
            "seconds_per_epoch": task.n_train() / (items / seconds),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--videos", type=int, default=961)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--model", default="depression_detector")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="the model at its registration's tiny sizes")
    args = parser.parse_args(argv)

    import torch

    from facevox.config import stage_params
    from facevox.dataset.shards import run as build_shards
    from facevox.training.tasks.slices import SliceClassification
    from facevox.training.tasks.whole import WholeClassification

    torch.set_num_threads(args.threads)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sheet = make_project(args.out_dir, args.videos)
    shards = args.out_dir / "shards"
    if not (shards / "manifest.json").exists():
        build_shards(sheet, args.out_dir / "aligned", shards, {"length": 300})
    prepared = time.perf_counter() - t0
    settings = stage_params("models", {})
    result = {"videos": args.videos, "model": args.model, "tiny": args.tiny, "batch": args.batch,
              "threads": args.threads, "prepare_seconds": prepared}
    result["whole"] = time_steps(WholeClassification(sheet, args.out_dir / "aligned", settings), args.model,
                                 args.batch, args.steps, args.tiny)
    result["slices"] = time_steps(SliceClassification(shards, settings), args.model, args.batch, args.steps,
                                  args.tiny)
    (args.out_dir / "bench_whole.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
