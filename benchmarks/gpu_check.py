"""GPU check of the real training loop (facevox.training.loop) - run where a GPU is: device choice,
AMP, checkpoints, evaluation - and the loop's own throughput next to bench_models.py's
bare train steps.

    PYTHONPATH=src python benchmarks/gpu_check.py OUT_DIR

Planted shard set (24/8/8 videos, 2 slices each); STST and JAMFN at paper size
(paper batch sizes), 5 epochs each with AMP; the shallow FAU CNN (model B) on planted
FAU windows.  Prints one JSON line per model and writes OUT_DIR/gpu_check.json.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from facevox.dataset.synthetic import planted_fau, planted_shards  # noqa: E402
from facevox.training.loop import evaluate, train  # noqa: E402


def main(out: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = Path(out)
    shards = planted_shards(root / "planted", {"train": 48, "dev": 8, "test": 8}, rows=900)
    rows = []
    for name, over in [("stst", {"epochs": 5, "optimizer": "adam", "scheduler": "none", "dropout": 0.1}),
                       ("jamfn", {"epochs": 5, "patience": None}),
                       ("depression_detector", {"epochs": 5})]:
        params = {"overrides": {name: over}}
        payload = train(name, shards, root / f"{name}.ckpt", params=params, threads=4)
        result = evaluate(root / f"{name}.ckpt", shards, root / f"{name}.json", root / f"{name}.parquet", params=params)
        history = payload["history"]
        rows.append({"model": name, "device": payload["device"], "amp": payload["amp"],
                     "items_per_s_last_epoch": round(history[-1]["items_per_s"], 1),
                     "test_accuracy": result["splits"]["test"]["accuracy"], "best_epoch": payload["best_epoch"]})
        print(json.dumps(rows[-1]), flush=True)
    sheet = planted_fau(root / "fau", {"train": 8, "dev": 3, "test": 3})
    params = {"affect": {"labels_dir": str(root / "fau" / "labels"), "delays_s": {"arousal": 2.0, "valence": 2.0}},
              "overrides": {"shallow_b": {"epochs": 200, "activation": "linear", "lr": 0.01, "l1": 0.001}}}
    payload = train("shallow_b", root / "fau" / "fau", root / "b.ckpt", params=params, sheet=sheet)
    result = evaluate(root / "b.ckpt", root / "fau" / "fau", root / "b.json", root / "b.parquet", params=params,
                      sheet=sheet)
    rows.append({"model": "shallow_b", "device": payload["device"], "amp": payload["amp"],
                 "seconds": round(payload["train_seconds"], 1), "test_ccc": result["splits"]["test"]["ccc"]})
    print(json.dumps(rows[-1]), flush=True)
    (root / "gpu_check.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
