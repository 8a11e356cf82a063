"""Training throughput and size of every registered model: parameters, train-step time,
items per second (slices / clips / frames / sequences) and peak GPU memory.

One train step = forward, loss, backward and optimiser step on a synthetic batch of
the paper's batch size and input size (the model's registered training config; AMP
fp16 on CUDA as facevox.training.loop uses it).  ``--size paper`` (default on CUDA) uses the
papers' inputs: 300-frame slices of 136 + 25 features, STA-DRN clips of 64 x 224 x 224,
DLGA-CNN faces of 224 x 224, FAU sequences of 3000 windows (5 min at 10 Hz);
``--size small`` (default on CPU) shrinks the vision inputs and batches so a CPU run
takes minutes (stated in the table).  The scikit-learn baselines are timed fitting
2048 slices' statistics (CPU).

    python benchmarks/bench_models.py [--device cpu|cuda] [--out FILE] [--steps N]

Needs only torch, numpy (and scikit-learn for the baselines): it also runs on a bare
GPU machine with ``PYTHONPATH=src``.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from facevox.models import create_model, get_spec, list_models, n_parameters  # noqa: E402

SMALL_VISION = {"sta_drn": {"batch": 1, "clip": (16, 112)}, "dlga_cnn": {"batch": 2, "size": 224}}


def batch_for(name: str, family: str, batch: int, size: str, device):
    """(inputs, target, item count, input description)."""
    g = torch.Generator().manual_seed(0)
    if family == "sequence":
        x = (torch.rand(batch, 300, 136, generator=g), torch.rand(batch, 300, 25, generator=g))
        return x, torch.randint(0, 2, (batch,), generator=g), batch, f"{batch} x 300 x (136 + 25)"
    if family == "clip":
        t, s = (64, 224) if size == "paper" else SMALL_VISION[name]["clip"]
        b = batch if size == "paper" else SMALL_VISION[name]["batch"]
        return (torch.rand(b, 3, t, s, s, generator=g),), torch.rand(b, generator=g), b, f"{b} x 3 x {t} x {s} x {s}"
    if family == "face":
        b = batch if size == "paper" else SMALL_VISION[name]["batch"]
        pts = torch.rand(b, 68, 2, generator=g) * 150 + 37
        return (torch.rand(b, 3, 224, 224, generator=g), pts), torch.rand(b, generator=g), b, f"{b} x 3 x 224 x 224"
    if family == "fau":
        x = torch.rand(1, 3000, 36, generator=g)
        return (x,), torch.rand(1, 3000, 2, generator=g), 1, "1 x 3000 x 36 (full batch)"
    raise ValueError(family)


def loss_for(family: str):
    if family == "sequence":
        return lambda out, y: torch.nn.functional.cross_entropy(out.float(), y)
    if family == "fau":
        from facevox.training.metrics import ccc_loss

        return lambda out, y: ccc_loss(out.float().reshape(-1, 2), y.reshape(-1, 2))
    return lambda out, y: torch.nn.functional.mse_loss(out.float().reshape(-1), y)


def optimiser(model, cfg):
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
    if cfg["optimizer"] == "rmsprop":
        return torch.optim.RMSprop(model.parameters(), lr=cfg["lr"])
    return torch.optim.Adam(model.parameters(), lr=cfg["lr"])


def time_steps(name: str, device, size: str, steps: int) -> dict:
    spec = get_spec(name)
    cfg = spec.training_config()
    batch = cfg["batch_size"] or 1
    torch.manual_seed(0)
    model = create_model(name).to(device).train()
    inputs, target, items, shape = batch_for(name, spec.family, batch, size, device)
    inputs = [t.to(device) for t in inputs]
    target = target.to(device)
    opt, loss_fn = optimiser(model, cfg), loss_for(spec.family)
    amp = device.type == "cuda" and cfg["amp"]
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    def step():
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss = loss_fn(model(*inputs), target)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - t0) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"model": name, "family": spec.family, "params": n_parameters(model), "input": shape,
            "step_ms": 1000 * seconds, "items_per_s": items / seconds, "peak_gib": peak, "amp": amp}


def time_sklearn(name: str, n: int = 2048) -> dict:
    from facevox.models.classical import slice_statistics

    rng = np.random.default_rng(0)
    x = slice_statistics(rng.random((n, 300, 161), dtype=np.float32))
    y = np.arange(n) % 2
    kwargs = {"groups": [np.r_[0:136, 161:297], np.r_[136:161, 297:322]]} if name == "knn_fusion" else {}
    model = create_model(name, **kwargs)
    t0 = time.perf_counter()
    model.fit(x, y)
    seconds = time.perf_counter() - t0
    return {"model": name, "family": "sklearn", "params": None, "input": f"{n} slices -> 322 statistics",
            "step_ms": 1000 * seconds, "items_per_s": n / seconds, "peak_gib": None, "amp": False}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", choices=["paper", "small"])
    ap.add_argument("--steps", type=int)
    ap.add_argument("--models", help="comma-separated subset")
    ap.add_argument("--out", help="Markdown file (default: print only)")
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    size = a.size or ("paper" if device.type == "cuda" else "small")
    steps = a.steps or (20 if device.type == "cuda" else 3)
    names = a.models.split(",") if a.models else list_models()
    rows = []
    for name in names:
        family = get_spec(name).family
        if family == "sklearn":
            if device.type == "cpu":
                rows.append(time_sklearn(name))
        else:
            rows.append(time_steps(name, device, size, steps))
        r = rows[-1] if rows else None
        if r and r["model"] == name:
            print(f"{name:20s} {r['items_per_s']:10.1f} items/s  {r['step_ms']:9.1f} ms/step  "
                  f"{r['params'] or 0:>12,d} params  {r['input']}", flush=True)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    lines = [f"# Model training throughput ({'GPU: ' + gpu if gpu else 'CPU'})", "",
             f"- machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads; "
             f"torch {torch.__version__}; {'AMP fp16' if device.type == 'cuda' else 'fp32'}; "
             f"inputs: {size} size; {steps} timed steps after 2 warm-up steps",
             "- items: slices (sequence), clips (clip), face frames (face), sequences (fau), "
             "slices fitted (sklearn)", "",
             "| model | family | parameters | batch input | ms / step | items / s | peak GPU memory (GiB) |",
             "|---|---|---:|---|---:|---:|---:|"]
    for r in rows:
        params = "-" if r["params"] is None else f"{r['params']:,}"
        peak = "" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
        lines.append(f"| {r['model']} | {r['family']} | {params} | {r['input']} | {r['step_ms']:.1f} | "
                     f"{r['items_per_s']:.1f} | {peak} |")
    text = "\n".join(lines) + "\n"
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
