"""Shards at D-Vlog scale: import + shard a fake 960-id D-Vlog tree; stream a ~1 GB shard set.

    python benchmarks/bench_shards.py [--n 960] [--gb 1.0] [--work DIR] [--out benchmarks/results/shards.md]

Each step runs in its own process; its wall time and peak RSS (ru_maxrss) are
reported.  The last step iterates a SliceDataset over a synthetic shard set of
about ``--gb`` GB (random features, so zstd cannot shrink it) and compares its
peak memory with the set's size: the dataset reads one row group at a time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

STEP = """
import json, resource, sys, time
t = time.perf_counter()
{body}
print(json.dumps({{"wall_s": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  **globals().get("extra", {{}})}}))
"""


def step(body: str) -> dict:
    out = subprocess.run([sys.executable, "-c", STEP.format(body=body)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=960)
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=str(HERE / "results" / "shards.md"))
    a = ap.parse_args(argv)
    work = Path(a.work or tempfile.mkdtemp(prefix="facevox-bench-"))
    rows = []

    r = step(f"""
sys.path.insert(0, {str(HERE)!r})
from make_fake_dvlog import make_fake_dvlog
make_fake_dvlog({str(work / 'dvlog')!r}, n={a.n}, seed=0, min_t=60, max_t=600)""")
    rows.append((f"make fake D-Vlog tree ({a.n} ids, T 60-600)", r))
    r = step(f"""
from facevox.dataset.import_dvlog import import_dvlog
import_dvlog({str(work / 'dvlog')!r}, {str(work / 'aligned')!r}, {str(work / 'samples.tsv')!r})""")
    rows.append(("import_dvlog", r))
    r = step(f"""
from facevox.dataset.shards import run
m = run({str(work / 'samples.tsv')!r}, {str(work / 'aligned')!r}, {str(work / 'shards')!r})
print({{k: v['slices'] for k, v in m['splits'].items()}}, file=sys.stderr)""")
    rows.append(("shards (slices, train-only min-max, Parquet)", r))
    shard_mb = sum(f.stat().st_size for f in (work / "shards").rglob("*.parquet")) / 2**20

    # A ~1 GB shard set: random features (incompressible), 300 x 161 float32 per slice.
    n_slices = int(a.gb * 2**30 / (300 * 161 * 4))
    r = step(f"""
import numpy as np
from pathlib import Path
from facevox.dataset import shards
from facevox.contract import FEATURE_SETS, shard_schema
import pyarrow.parquet as pq
root = Path({str(work / 'big')!r}); (root / 'train').mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0); schema = shard_schema(300, 161); parts = []
per_part = 512
for k in range(0, {n_slices}, per_part):
    n = min(per_part, {n_slices} - k)
    rec = {{'video_id': [f'v{{k + i}}' for i in range(n)], 'subject_id': [f's{{k + i}}' for i in range(n)],
           'slice_index': np.zeros(n, np.int32), 'start_frame': np.zeros(n, np.int32),
           'n_real': np.full(n, 300, np.int32), 'n_missing': np.zeros(n, np.int32),
           'label': ['depression' if i % 2 else 'normal' for i in range(n)], 'score': np.full(n, np.nan, np.float32),
           'gender': ['f'] * n, 'features': rng.random((n, 300, 161), dtype=np.float32)}}
    path = root / 'train' / f'part-{{len(parts):05d}}.parquet'
    pq.write_table(shards._table([rec], schema), path, compression='zstd', row_group_size=64)
    parts.append({{'path': f'train/{{path.name}}', 'slices': n}})
(root / 'manifest.json').write_text(json.dumps({{'feature_set': 'landmarks_egemaps',
    'columns': FEATURE_SETS['landmarks_egemaps'], 'length': 300,
    'splits': {{'train': {{'videos': {n_slices}, 'slices': {n_slices}, 'parts': parts}}}}}}))""")
    rows.append((f"write synthetic shard set ({n_slices} slices)", r))
    big_mb = sum(f.stat().st_size for f in (work / "big").rglob("*.parquet")) / 2**20
    r = step(f"""
import resource
from facevox.dataset.datasets import SliceDataset
import torch
ds = SliceDataset({str(work / 'big')!r}, 'train')
extra = {{"base_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}
loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=False, num_workers=0)
total = 0.0
for x, y in loader:
    total += float(x[:, 0, 0].sum())
print(len(ds), file=sys.stderr)""")
    rows.append((f"iterate SliceDataset over the {big_mb:.0f} MB set (batch 64, in order)", r))

    lines = [
        "# Shards at D-Vlog scale",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}. "
        f"Each step in its own process; peak RSS = ru_maxrss of that process.",
        "",
        "| step | wall s | peak RSS MB |",
        "|---|---:|---:|",
        *[f"| {name} | {r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} |" for name, r in rows],
        "",
        f"D-Vlog-scale shards on disk: {shard_mb:.0f} MB. Synthetic set on disk: {big_mb:.0f} MB; "
        f"iterating it peaked at {rows[-1][1]['peak_rss_mb']:.0f} MB of RSS, of which "
        f"{rows[-1][1]['base_rss_mb']:.0f} MB were there before the first slice (Python, torch, the index): "
        f"the iteration itself added {rows[-1][1]['peak_rss_mb'] - rows[-1][1]['base_rss_mb']:.0f} MB.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
