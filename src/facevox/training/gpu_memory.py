"""How much GPU memory a training needs: :func:`estimate_gpu_memory`, calibrated on measured peaks.

The estimate, in bytes::

    need = SAFETY x (static + activations) + WORKSPACE
    static      = parameters x 16 B        (fp32 weights, gradients, Adam's two moments)
    activations = A_ref x (batch / batch_ref) x (input / input_ref) [x 2 without AMP]

``A_ref`` is the model's measured peak (``torch.cuda.max_memory_allocated`` over training
steps at the paper's batch and input size, AMP fp16, benchmarks/bench_models.py on an H100:
:data:`CALIBRATION`, the table of benchmarks/results/models_gpu_h100.md) less its static
part.  ``input`` per item: ``clip_len x size²`` (clip), ``size²`` (face), ``seq_len x
features`` (sequence), ``n_features`` (fau; its windows per video are not known up
front).  A full-batch model (``batch_size: 0``) is scaled with the benchmark's batch.  A
model missing from the table takes its family's largest activation per item and input
unit, and its parameters are counted on torch's ``meta`` device (no memory).  ``SAFETY``
(1.25) covers the caching allocator's fragmentation (reserved above allocated), and
``WORKSPACE`` (0.25 GiB) cuDNN/cuBLAS workspaces; the CUDA context is not counted, since
the free memory it is compared with is read after the context exists.  An estimate, not a
promise: it errs high, and it is checked once, before training, against the memory free then.

Tests: tests/test_device.py
"""
from __future__ import annotations

import logging

log = logging.getLogger("facevox.training.device")

GIB = 2**30
SAFETY = 1.25
WORKSPACE = GIB // 4
STATIC_BYTES_PER_PARAMETER = 16  # fp32 weights + gradients + Adam m and v

#: Input size per item of the benchmarks (the paper's), per family.
REFERENCE_INPUT = {"sequence": 300 * (136 + 25), "clip": 64 * 224 * 224, "face": 224 * 224, "fau": 36}

#: benchmarks/results/models_gpu_h100.md: model -> (family, parameters, batch, peak GiB).
CALIBRATION = {
    "blstm": ("sequence", 432_130, 32, 0.23),
    "depression_detector": ("sequence", 15_800_322, 32, 0.78),
    "dlga_cnn": ("face", 196_332_442, 32, 4.48),
    "fusion_add": ("sequence", 464_258, 32, 0.23),
    "fusion_concat": ("sequence", 497_026, 32, 0.23),
    "fusion_multiply": ("sequence", 464_258, 32, 0.23),
    "jamfn": ("sequence", 13_468_176, 32, 1.03),
    "shallow_a": ("fau", 114_114, 1, 0.08),
    "shallow_b": ("fau", 7_206, 1, 0.07),
    "shallow_c": ("fau", 7_202, 1, 0.07),
    "shallow_d": ("fau", 7_202, 1, 0.07),
    "shallow_e": ("fau", 406, 1, 0.06),
    "sta_drn": ("clip", 31_269_569, 5, 10.26),
    "stst": ("sequence", 6_276_978, 64, 1.86),
    "tfn": ("sequence", 165_730, 32, 0.07),
}


def input_units(family: str, data_kwargs: dict) -> int | None:
    """Input size of one item (see the module docstring), from the task's model arguments."""
    kw = data_kwargs
    if family == "sequence":
        return int(kw.get("seq_len") or 300) * int(kw.get("n_visual", 136) + kw.get("n_acoustic", 25))
    if family == "clip":
        return int(kw.get("clip_len") or 64) * int(kw.get("size") or 224) ** 2
    if family == "face":
        return int(kw.get("size") or 224) ** 2
    if family == "fau":
        return int(kw.get("n_features") or 36)
    return None


def _activations_per_unit(name: str, family: str) -> float | None:
    """Measured activation bytes per item and input unit: the model's own, else its family's largest."""
    rows = {name: CALIBRATION[name]} if name in CALIBRATION else {
        m: row for m, row in CALIBRATION.items() if row[0] == family}
    if not rows:
        return None
    return max(max(peak * GIB - params * STATIC_BYTES_PER_PARAMETER, 0.0) / (batch * REFERENCE_INPUT[fam])
               for fam, params, batch, peak in rows.values())


def count_parameters(model_name: str, data_kwargs: dict) -> int | None:
    """The model's parameters, counted on torch's meta device (no memory); None when it cannot be built there."""
    import torch

    from facevox.models import create_model, get_spec

    try:
        with torch.device("meta"):
            model = create_model(model_name, **get_spec(model_name).defaults, **data_kwargs)
        return sum(p.numel() for p in model.parameters())
    except Exception as exc:  # an architecture that does real work in __init__
        log.info("device: %s: parameters not countable on the meta device (%s)", model_name, exc)
        return None


def estimate_gpu_memory(model_name: str, family: str, batch_size: int, data_kwargs: dict,
                        amp: bool = True, parameters: int | None = None) -> int | None:
    """Bytes of GPU memory one training step of ``model_name`` needs (module docstring); None if unknown."""
    per_unit = _activations_per_unit(model_name, family)
    units = input_units(family, data_kwargs)
    if per_unit is None or units is None:
        return None
    if parameters is None:
        known = model_name in CALIBRATION
        parameters = CALIBRATION[model_name][1] if known else count_parameters(model_name, data_kwargs)
    if parameters is None:
        return None
    batch = batch_size or (CALIBRATION[model_name][2] if model_name in CALIBRATION else 1)
    activations = per_unit * batch * units * (1 if amp else 2)
    return int(SAFETY * (parameters * STATIC_BYTES_PER_PARAMETER + activations) + WORKSPACE)
