"""The one training loop for every facevox model (``facevox train``), and its checkpoints.

A **task** (facevox.training.tasks) adapts one data family to the loop (batches, loss,
development score, evaluation tables); the loop itself is the same for all:

* seeds: the weights are initialised after ``torch.manual_seed(seed)``; every
  epoch reseeds torch from ``(seed, epoch)`` and shuffles with
  ``numpy.random.default_rng([seed, epoch])``, so an epoch does not depend on
  how the run got there - a resumed run equals an uninterrupted one;
* optimiser and schedule from the model's training config (the paper's
  values, overridable per model in ``config.yaml``): sgd / adam / adamw /
  rmsprop; the schedule (``scheduler``, stepped once per epoch): none, cosine annealing
  (``cosine``: half period ``t_max``, default ``epochs``, down to ``eta_min``) or cosine
  annealing with warm restarts
  (``cosine_warm_restarts``, SGDR, Loshchilov & Hutter 2017; torch's
  CosineAnnealingWarmRestarts: the first cycle lasts ``T0`` epochs, each next one
  ``T_mult`` times longer, the rate falls from ``lr`` towards 0 within a cycle and
  jumps back to ``lr`` at each restart - STA-DRN's eq. 13 with T0 = 50, T_mult = 2
  restarts after epochs 50 and 150 of 200); optional gradient
  clipping, class weights (``balanced``);
* precision (``models.precision``): ``fp32`` (no autocast), ``bf16`` (autocast to bfloat16, no
  gradient scaler; on a CUDA GPU of compute capability >= 8, and on the CPU, where it is slow
  on CPUs without native bfloat16), ``fp16`` (autocast to float16 with a gradient scaler; CUDA
  only - on the CPU the run falls back to fp32 with a warning) or ``auto`` (the default: the
  model's ``amp`` training key as before - fp16 on CUDA when ``amp`` is true, else fp32).  The
  precision used is in the model file and the metrics JSON (``precision``) and the run card;
* determinism (``models.deterministic``, default true): :func:`deterministic_mode` -
  ``torch.use_deterministic_algorithms(True, warn_only=True)`` (an op without a deterministic
  CUDA kernel warns rather than stopping a long run), cuDNN deterministic, no cuDNN
  benchmarking and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` set before CUDA starts, so that a killed
  and resumed CUDA training ends with the weights of an uninterrupted one;
* after every epoch: the development score (``select_by`` of the model's training
  config, else of ``models``, e.g. video-level weighted F1) decides the best epoch, ``patience`` epochs without a better
  one stop the run early (a tie goes to the lower dev loss); at most every
  ``models.checkpoint_every_s`` seconds (0 = every epoch) a resume checkpoint
  (``<out>.resume/last.ckpt``, facevox.training.checkpoints: weights, optimiser, scheduler,
  scaler and RNG states, the best weights once, the history) is written atomically.  A killed
  run started again with the same configuration resumes after the epoch of the last
  checkpoint; a different configuration (or shard set) starts afresh;
* a non-finite training loss (or non-finite weights after an epoch) stops the run with a
  FacevoxError naming the model, seed, epoch and batch and the last finite dev score; the
  resume checkpoint on disk stays the last good one;
* the output ``<out>`` (``results/models/<model>/seed<seed>.ckpt``) holds the
  best epoch's weights (the last epoch's when there is no dev split), the full
  configuration, classes, history and provenance; the resume folder is removed.

The device is chosen inside the job (facevox.training.device.pick_device): the model file and
the metrics JSON record it with the one asked for (``device_requested``), and ``warnings``
says when ``auto`` fell back to the CPU and when the dev split was missing, small, of one class
or gave an undefined score (:func:`dev_doubts`).

Nothing is dropped silently: every slice, window or video the task does not use
(``Task.left_out``: reason, count and the video ids) is logged as one warning line per
reason and split when training starts, kept in the model file and written to the
metrics JSON (``left_out``; per split ``unpredicted`` with ``unpredicted_reasons``).

Tests: tests/test_train.py, tests/test_checkpoints.py
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from facevox.config import stage_params
from facevox.errors import FacevoxError
from facevox.models import create_model, get_spec, n_parameters, parse_variant, split_overrides
from facevox.models.families import FAMILIES, machine_settings, variant_overrides, without_machine_keys
from facevox.provenance import provenance
from facevox.training import checkpoints
from facevox.training.checkpoints import MODEL_FORMAT, load_checkpoint, resume_dir, save
from facevox.training.evaluate import classes_unpredicted
from facevox.training.tasks import make_task
from facevox.training.tasks.base import log_left_out
from facevox.training.trained import TrainedModel, autocast, to_tensor, trained_precision

log = logging.getLogger("facevox.training.loop")

#: What ``models.precision`` may ask for besides ``auto`` (autocast dtypes; fp32 = no autocast).
PRECISIONS = ("fp32", "bf16", "fp16")


def run_settings(params: dict | None) -> dict:
    """The ``models:`` config section with the schema's defaults; the machine keys (GPU slots, the
    checkpoint cadence) from the job's environment where ``params`` does not give them."""
    merged = machine_settings(os.environ)
    for key, value in (params or {}).items():  # the given settings win, key by key (vision.workers)
        merged[key] = {**merged[key], **value} if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return stage_params("models", merged)


# --------------------------------------------------------------------------- helpers
def _config_key(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@contextlib.contextmanager
def deterministic_mode(on: bool):
    """With ``on`` (``models.deterministic``): deterministic torch algorithms (warn only),
    cuDNN deterministic without benchmarking and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (kept
    when set) for the block; the torch flags are restored after it."""
    import torch

    if not on:
        yield
        return
    if "CUBLAS_WORKSPACE_CONFIG" not in os.environ and torch.cuda.is_initialized():
        log.warning("models.deterministic: CUDA was initialised before CUBLAS_WORKSPACE_CONFIG was set - "
                    "cuBLAS may not be deterministic in this process")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    cudnn = torch.backends.cudnn
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              cudnn.deterministic, cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        cudnn.deterministic, cudnn.benchmark = before[2], before[3]


def resolve_precision(asked: str, amp: bool, device) -> tuple[str, str | None]:
    """The precision (fp32, bf16, fp16) a training on ``device`` runs in for ``models.precision``
    ``asked`` and the model's ``amp`` key, and a warning line when it is not the one asked."""
    import torch

    if asked == "auto":
        return ("fp16" if amp and device.type == "cuda" else "fp32"), None
    if asked not in PRECISIONS:
        raise FacevoxError(f"models.precision must be auto, {', '.join(PRECISIONS)}, not {asked!r}")
    if asked == "fp16" and device.type != "cuda":
        return "fp32", f"precision fp16 needs a CUDA GPU (autocast with a gradient scaler): trained in fp32 on {device}"
    if asked == "bf16" and device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 8:
        raise FacevoxError(f"models.precision bf16: {device} ({torch.cuda.get_device_name(device)}) has no native "
                           "bfloat16 (compute capability < 8.0); use fp16 or fp32")
    return asked, None


def make_optimizer(params, cfg: dict):
    """The torch optimizer ``cfg["optimizer"]`` names (sgd, adam, adamw, rmsprop) over ``params``, with cfg's rates."""
    import torch

    name = cfg["optimizer"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    raise FacevoxError(f"unknown optimizer {name!r} (sgd, adam, adamw, rmsprop)")


def make_scheduler(optimizer, cfg: dict):
    """The learning-rate scheduler ``cfg["scheduler"]`` names for ``optimizer`` (None for ``none``)."""
    import torch

    if cfg["scheduler"] == "cosine":
        # t_max None: one half period over the run; the public D-Vlog code uses epochs // 5
        # (the rate then rises again: PyTorch's closed form is periodic past T_max)
        t_max = cfg.get("t_max") or cfg["epochs"]
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, int(t_max)),
                                                          eta_min=float(cfg.get("eta_min") or 0.0))
    if cfg["scheduler"] == "cosine_warm_restarts":
        t0, t_mult = cfg["T0"], cfg["T_mult"]
        if isinstance(t0, bool) or not isinstance(t0, int) or t0 < 1:
            raise FacevoxError(f"scheduler cosine_warm_restarts: T0 must be a positive whole number of epochs, "
                               f"got {t0!r}")
        if isinstance(t_mult, bool) or not isinstance(t_mult, int) or t_mult < 1:
            raise FacevoxError(f"scheduler cosine_warm_restarts: T_mult must be a whole number >= 1, got {t_mult!r}")
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=t0, T_mult=t_mult)
    if cfg["scheduler"] == "none":
        return None
    raise FacevoxError(f"unknown scheduler {cfg['scheduler']!r} (none, cosine, cosine_warm_restarts)")


# --------------------------------------------------------------------------- the loop
def train(model_name: str, data, out, *, seed: int = 0, params: dict | None = None,
          threads: int = 1, sheet=None, on_epoch_end=None) -> dict:
    """Train ``model_name`` and write ``out``; return the saved payload.

    ``data``: the shard folder (sequence / sklearn models), the aligned-face folder
    (clip / face) or the FAU-window folder (fau), the last two with the sample
    ``sheet``.  ``params``: the ``models:`` section of the config;
    ``on_epoch_end(epoch, record)`` is called after each epoch (and its resume
    checkpoint when one was due: facevox.training.checkpoints) - progress hooks.
    """
    import torch

    torch.set_num_threads(max(1, int(threads)))
    settings = run_settings(params)
    spec = get_spec(model_name)
    base_name, variant = parse_variant(model_name)  # a sweep variant (stst@lr=0.0001): its model and values
    arch_over, train_over = split_overrides(model_name, variant_overrides(settings["overrides"], model_name))
    cfg = spec.training_config(**train_over)
    task = make_task(spec.family, data, settings, sheet, cfg["protocol"])
    left_out = task.left_out()
    log_left_out(model_name, left_out)
    data_kwargs = task.model_kwargs(spec.family)
    arch = {**spec.defaults, **arch_over}
    out = Path(out)
    started = time.perf_counter()
    base = {"format": MODEL_FORMAT, "model": base_name, "name": model_name, "variant": variant or None,
            "sweep": bool(variant), "family": spec.family, "seed": seed,
            "arch": arch, "training": cfg, "settings": {k: v for k, v in settings.items() if k != "overrides"},
            "task": task.kind, "paper": spec.paper, "left_out": left_out, **task.describe()}
    if FAMILIES[spec.family].estimator == "sklearn":
        payload = _train_sklearn(spec, task, arch, data_kwargs, seed, base)
    else:
        with deterministic_mode(settings["deterministic"]):
            payload = _train_torch(spec, task, arch, data_kwargs, cfg, seed, settings, base, out, on_epoch_end)
    payload["train_seconds"] = time.perf_counter() - started
    payload["preprocessing"] = task.preprocessing(cfg)  # what scoring a new video needs (training.predict)
    payload["provenance"] = provenance("train", params={"model": model_name, "seed": seed, "arch": arch,
                                                        "training": cfg}, inputs={})
    save(payload, out)
    shutil.rmtree(resume_dir(out), ignore_errors=True)
    return payload


def dev_doubts(dev: dict, table, score: float, min_videos: int) -> list[str]:
    """Why the dev split may not pick a sound epoch, one line each (text before the first ``:``
    is the kind): fewer than ``min_videos`` videos (``models.min_dev_videos``; a job run by the
    workflow uses the schema default, since the setting never reruns a training), one class
    only (classification; the prediction table's ``label``), an undefined score (NaN, e.g.
    AUC of one class: the epochs then compete on dev loss only)."""
    out = []
    n = int(dev.get("n", 0) or 0)
    if n < min_videos:
        out.append(f"dev split too small: {n} video(s), fewer than models.min_dev_videos ({min_videos}) - "
                   f"the best epoch and early stopping rest on them")
    if table is not None and "label" in getattr(table, "columns", ()) and table["label"].nunique() == 1:
        out.append(f"dev split of one class: every dev video is {table['label'].iloc[0]!r} - the dev score "
                   f"says little about the other class")
    if score == -math.inf:
        out.append("dev score undefined: NaN (e.g. AUC of a one-class dev split) - epochs compete on dev loss only")
    return out


def _train_sklearn(spec, task, arch, data_kwargs, seed, base) -> dict:
    x, y, _ = task.statistics("train")
    if len(set(y.tolist())) < 2:
        raise FacevoxError(f"{spec.name}: the usable train slices hold one class only")
    model = create_model(spec.name, seed=seed, **arch, **data_kwargs)
    t0 = time.perf_counter()
    model.fit(x, y)
    seconds = time.perf_counter() - t0
    history = [{"epoch": 1, "train_loss": math.nan, "seconds": seconds, "items_per_s": len(x) / max(seconds, 1e-9)}]
    log.info("%s: fitted on %d slices in %.2f s", spec.name, len(x), seconds)
    return {**base, "estimator": model, "data_kwargs": data_kwargs, "history": history, "best_epoch": 1,
            "n_parameters": None, "device": "cpu", "device_requested": "cpu", "warnings": []}


def _train_torch(spec, task, arch, data_kwargs, cfg, seed, settings, base, out: Path, on_epoch_end) -> dict:
    import torch
    from tqdm import tqdm

    from facevox.training.device import check_gpu_memory, pick_device

    device = pick_device(settings["device"], settings=settings)
    check_gpu_memory(spec.name, cfg, data_kwargs, device)  # before the model is built: a clear error
    warnings = []
    if settings["device"] == "auto" and device.type == "cpu":
        warnings.append("device auto: no CUDA GPU visible, trained on the CPU")
    precision, doubt = resolve_precision(settings["precision"], bool(cfg["amp"]), device)
    if doubt:
        warnings.append(doubt)
        log.warning("%s: %s", spec.name, doubt)
    torch.manual_seed(seed)
    model = create_model(spec.name, **arch, **data_kwargs).to(device)
    optimizer = make_optimizer(model.parameters(), cfg)
    scheduler = make_scheduler(optimizer, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")  # bf16 / fp32: no loss scaling
    loss_fn = task.loss(cfg, device)
    has_dev = task.has_dev()
    # the model's own selection metric (a paper preset's) before the run-wide one
    selection = {**settings, "select_by": selected_by(task.kind, cfg, settings)}
    if not has_dev:
        warnings.append("no usable dev data: the last epoch is kept, no early stopping")
        log.warning("%s: %s", spec.name, warnings[-1])

    # the machine keys (checkpoint cadence, GPU slots, loader workers) do not change the training: not in the key
    key_settings = without_machine_keys(base["settings"])
    key = _config_key(base={**base, "settings": key_settings}, data=data_kwargs, content=task.key_text,
                      device=device.type)
    resume = checkpoints.Resume(resume_dir(out) / "last.ckpt", key, settings["checkpoint_every_s"])
    log.info("%s: resume state at most every %g s (models.checkpoint_every_s), precision %s, deterministic %s",
             spec.name, settings["checkpoint_every_s"], precision, settings["deterministic"])
    state = resume.load(model, optimizer, scheduler, scaler, device)
    if state is not None:
        warnings += [w for w in state.get("warnings", []) if w not in warnings]
        log.info("%s: resuming after epoch %d (%s)", spec.name, state["epoch"], resume.path)
    else:
        if resume.path.exists():
            log.info("%s: %s is from another configuration - starting afresh", spec.name, resume.path)
        state = {"epoch": 0, "history": [], "best": None, "bad_epochs": 0}

    trained = TrainedModel.wrap(model, task.postprocess, device, precision)  # the dev evaluation's forward pass

    def stop(what: str, epoch: int, where: str):
        scored = [h for h in state["history"] if math.isfinite(h.get("dev_score", math.nan))]
        last = (f"the last finite dev score ({selection['select_by']}) was {scored[-1]['dev_score']:.4f} at epoch "
                f"{scored[-1]['epoch']}" if scored else "no finite dev score yet")
        kept = (f"the resume checkpoint {resume.path} (epoch {resume.written_epoch}) is the last good state"
                if resume.written_epoch else "no resume checkpoint was written yet")
        return FacevoxError(f"{spec.name} seed {seed}: {what} at epoch {epoch}, {where} - training stopped; {last}; "
                            f"{kept}. A lower lr, grad_clip or precision fp32 (a changed configuration starts "
                            "afresh) may help")

    n_train = task.n_train()
    if n_train == 0:
        raise FacevoxError(f"{task.root}: no usable training data (slices: all over max_missing_fraction?)")
    batch = cfg["batch_size"] or n_train
    n_batches = -(-n_train // batch)
    log.info("%s: %d parameters, %d train items (%s), %d batches/epoch, device %s, precision %s", spec.name,
             n_parameters(model), n_train, task.unit, n_batches, device, precision)
    for epoch in range(state["epoch"] + 1, cfg["epochs"] + 1):
        torch.manual_seed(seed * 100_003 + epoch)
        rng = np.random.default_rng([seed, epoch])
        model.train()
        t0, total, seen = time.perf_counter(), 0.0, 0
        bar = tqdm(total=n_batches, desc=f"{spec.name} epoch {epoch}", file=sys.stderr, mininterval=30,
                   leave=False, disable=None)
        for number, (inputs, labels) in enumerate(task.batches(rng, batch), 1):
            tensors = [to_tensor(t, device) for t in inputs]
            target = to_tensor(labels, device)
            with autocast(device, precision):
                loss = loss_fn(model(*tensors), target)
                if hasattr(model, "regularisation"):
                    loss = loss + model.regularisation()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise stop(f"the training loss is {value}", epoch, f"batch {number} of {n_batches}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg["grad_clip"]:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
            scaler.step(optimizer)
            scaler.update()
            total += value * len(labels)
            seen += len(labels)
            bar.update()
        bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        if not checkpoints.finite_weights(model):
            raise stop("the weights are not finite (NaN / inf)", epoch, f"after its last batch ({n_batches})")
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        record = {"epoch": epoch, "train_loss": total / max(seen, 1), "lr": lr, "seconds": seconds,
                  "items_per_s": seen / max(seconds, 1e-9)}
        improved = True
        if has_dev:
            dev, dev_table = task.evaluate_split(trained.predict, "dev", cfg, batch)
            record["dev"] = {k: dev[k] for k in ("accuracy", "f1_weighted", "auc", "rmse", "mae", "ccc", "ccc_mean")
                             if k in dev}
            score = task.score(dev, selection)
            record["dev_score"], record["dev_loss"] = score, dev.get("loss", 0.0)
            for doubt in dev_doubts(dev, dev_table, score, settings["min_dev_videos"]):
                if not any(w.split(":")[0] == doubt.split(":")[0] for w in warnings):
                    warnings.append(doubt)
                    log.warning("%s: %s (epoch %d)", spec.name, doubt, epoch)
            # a tie on the dev score goes to the epoch with the lower dev loss
            improved = state["best"] is None or (score, -record["dev_loss"]) > (state["best"]["score"],
                                                                                 -state["best"]["loss"])
        if improved:
            state["best"] = {"epoch": epoch, "score": record.get("dev_score"), "loss": record.get("dev_loss"),
                             "weights": copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()})}
            state["bad_epochs"] = 0
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        state["history"].append(record)
        state["warnings"] = warnings
        log.info("%s epoch %d/%d: train loss %.4f, %s, %.1f s, %.1f %s/s", spec.name, epoch, cfg["epochs"],
                 record["train_loss"], f"dev score {record['dev_score']:.4f}" if has_dev else "no dev",
                 seconds, record["items_per_s"], task.unit)
        early = has_dev and cfg["patience"] and state["bad_epochs"] >= cfg["patience"]
        # the last epoch's state goes into the model file itself (train writes it next)
        if resume.due() and epoch < cfg["epochs"] and not early:
            resume.write(model, optimizer, scheduler, scaler, state, device)
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
        if early:
            log.info("%s: early stop after epoch %d (no better dev score for %d epochs)", spec.name, epoch,
                     cfg["patience"])
            break
    best = state["best"] or {"epoch": state["epoch"], "weights": model.state_dict()}
    return {**base, "state_dict": best["weights"], "data_kwargs": data_kwargs, "history": state["history"],
            "best_epoch": best["epoch"], "n_parameters": n_parameters(model), "device": str(device),
            "device_requested": settings["device"], "precision": precision, "amp": precision != "fp32",
            "warnings": warnings}


# --------------------------------------------------------------------------- evaluation
def evaluate(model_path, data, out_json, out_predictions, *, params: dict | None = None,
             threads: int = 1, sheet=None, fold: dict | None = None) -> dict:
    """Metrics of a trained model on the dev and test splits -> JSON + prediction table.

    ``fold``: under cross-validation, what the metrics record says about the fold (``fold``,
    ``fold_name``, ``cv``: facevox.dataset.folds.describe); None for the fixed split."""
    import pandas as pd
    import torch

    from facevox.io import write_json, write_table

    torch.set_num_threads(max(1, int(threads)))
    payload = load_checkpoint(model_path)
    settings = run_settings(params)
    if "positive" in payload:
        settings["positive_label"] = payload["positive"]
    task = make_task(payload["family"], data, settings, sheet, payload["training"].get("protocol"))
    try:
        task.check(payload)
    except FacevoxError as exc:
        raise FacevoxError(f"{model_path}: {exc}") from None
    trained = TrainedModel.from_payload(payload, settings, model_path)
    cfg = payload["training"]
    batch = trained.batch_size
    result = {"model": payload["model"], "name": payload.get("name", payload["model"]),
              "variant": payload.get("variant"), "sweep": bool(payload.get("sweep")),
              "fold": None, "cv": None, **(fold or {}), "select_by": selected_by(task.kind, cfg, settings),
              "seed": payload["seed"], "family": payload["family"], "task": task.kind,
              "protocol": cfg.get("protocol"), "vote": cfg["vote"],
              "best_epoch": payload["best_epoch"],
              "n_parameters": payload["n_parameters"], "train_seconds": payload["train_seconds"],
              "device": payload["device"], "device_requested": payload.get("device_requested"),
              "precision": trained_precision(payload),
              "deterministic": (payload.get("settings") or {}).get("deterministic"),
              "warnings": payload.get("warnings", []), "history": payload["history"], **task.describe(),
              "left_out": task.left_out(), "splits": {}}
    tables = []
    labels = sheet_labels(sheet) if task.kind == "classification" else {}
    for split in task.splits():
        result["splits"][split], table = task.evaluate_split(trained.predict, split, cfg, batch)
        if task.kind == "classification":
            lost = classes_unpredicted(table, result["splits"][split].get("unpredicted") or [], labels)
            result["splits"][split]["classes_unpredicted"] = lost
            for label, videos in lost.items():
                log.warning("%s %s split: class %r has no predicted video (%s: no usable item) - its metrics "
                            "are of the other class(es) only", payload["model"], split, label, ", ".join(videos))
        tables.append(table)
    schema = task.prediction_schema
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=schema.names)
    for field in schema:
        if field.type == "int32":
            table[field.name] = table[field.name].astype("int32")
    if hasattr(task, "explain"):
        result["explain"] = task.explain(trained.model)
    result["provenance"] = provenance("evaluate", params={"model": payload["model"], "seed": payload["seed"]},
                                      inputs={})
    write_table(table[schema.names], out_predictions, schema, result["provenance"])
    write_json(result, out_json)
    return result


def selected_by(kind: str, cfg: dict, settings: dict) -> str:
    """The dev metric a training of task ``kind`` selects its best epoch by (and the tables a sweep
    variant): classification the model's ``select_by`` or ``models.select_by`` (``loss``: the dev
    loss, lower is better), regression ``rmse`` (lower is better), continuous ``ccc_mean``."""
    if kind == "classification":
        return cfg.get("select_by") or settings["select_by"]
    return "rmse" if kind == "regression" else "ccc_mean"


def sheet_labels(sheet) -> dict[str, str]:
    """video id -> label of the sample sheet (``{}`` without a sheet or a label column)."""
    if sheet is None:
        return {}
    from facevox.samples import read_samples

    samples = read_samples(sheet, check_files=False)
    return {} if "label" not in samples.columns else {str(v): lab for v, lab in samples["label"].items()}
