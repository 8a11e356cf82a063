"""Model registry: ``create_model(name, **cfg)``, ``list_models()``, ``get_spec(name)``.

One file per architecture in this package; each registers itself with
:func:`register`, giving

* ``family`` - what the model consumes and predicts, which decides the
  training task (facevox.training.loop):

  - ``sequence``: ``forward(visual [B, T, Cv], acoustic [B, T, Ca]) -> logits
    [B, n_classes]`` on the slices of a shard set (landmarks + eGeMAPS);
  - ``sklearn``: a scikit-learn estimator over per-slice statistics;
  - ``clip``: ``forward(clip [B, 3, T, H, W]) -> score [B]`` (aligned faces);
  - ``face``: ``forward(image [B, 3, H, W], landmarks [B, 68, 2]) -> score [B]``;
  - ``fau``: ``forward(functionals [B, T, C]) -> [B, T, n_outputs]`` (time-continuous);

* ``defaults`` - the architecture's hyperparameters from its paper (the
  constructor's keyword arguments);
* ``training`` - the paper's optimiser/schedule (keys of :data:`TRAINING_KEYS`);
* ``paper`` - where the numbers come from.

``config.yaml`` overrides either kind of key per model (``models.overrides``);
:func:`split_overrides` tells them apart and rejects unknown keys by name.
"""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from facevox.errors import FacevoxError
from facevox.models.families import (  # noqa: F401 (re-exported)
    FAMILIES,
    PROTOCOLS,
    catalogue,
    display_name,
    family_of,
    parse_variant,
)

#: Training keys every model has (the family's loop reads them); model files override
#: the values their paper gives.
TRAINING_KEYS: dict[str, Any] = {
    "optimizer": "adam",        # sgd | adam | adamw | rmsprop
    "lr": 1e-4,
    "momentum": 0.0,            # sgd / rmsprop
    "weight_decay": 0.0,
    "scheduler": "none",        # none | cosine (over `t_max` epochs) | cosine_warm_restarts (T0, T_mult)
    "t_max": None,              # cosine: epochs per half period (None = `epochs`)
    "eta_min": 0.0,             # cosine: the lowest learning rate
    "T0": 50,                   # cosine_warm_restarts: epochs of the first cycle
    "T_mult": 2,                # cosine_warm_restarts: each cycle is T_mult times longer than the last
    "batch_size": 32,           # 0 = full batch
    "epochs": 30,
    "patience": None,           # early stop after this many epochs without a better dev score
    "class_weights": "none",    # none | balanced (classification)
    "vote": "mean",             # slice -> video: majority | mean (probability)
    "grad_clip": None,          # max gradient norm
    "amp": True,                # mixed precision on CUDA
    "loss": "cross_entropy",    # family-specific: cross_entropy | mse | l1 | ccc
    "protocol": None,           # sequence models: slices | whole (None = the registration's)
    "select_by": None,          # dev metric picking the best epoch (None = models.select_by)
}

#: Dev metrics a classification run can select its best epoch by (as models.select_by).
SELECT_BY = ("f1_weighted", "f1_macro", "accuracy", "auc", "loss")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., Any]
    family: str
    defaults: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    paper: str = ""
    display: str = ""
    #: Small sizes of the architecture (same structure) that the tests train in seconds.
    tiny: dict = field(default_factory=dict)
    #: The paper's protocol (facevox.models.families.PROTOCOLS for sequence models).
    protocol: str = "slices"

    def training_config(self, **overrides) -> dict:
        cfg = {**TRAINING_KEYS, **self.training, **overrides}
        if cfg["protocol"] is None:
            cfg["protocol"] = self.protocol
        return cfg


_REGISTRY: dict[str, ModelSpec] = {}
_loaded = False


def register(name: str, *, family: str, display: str, defaults: dict | None = None, training: dict | None = None,
             paper: str = "", tiny: dict | None = None, protocol: str = "slices"):
    """Class/function decorator: ``@register("stst", family="sequence", display="STST", defaults=...,
    training=..., paper=..., tiny=..., protocol=...)``.  ``name``, ``family``, ``display`` and
    ``protocol`` must be literals: the catalogue (facevox.models.families) reads them without
    importing the file. ``protocol`` (sequence models): ``slices`` or ``whole``, the paper's."""
    if family not in FAMILIES:
        raise ValueError(f"model {name}: unknown family {family!r}")
    unknown = set(training or {}) - set(TRAINING_KEYS)
    if unknown:
        raise ValueError(f"model {name}: unknown training keys {sorted(unknown)}")
    unknown = set(tiny or {}) - set(defaults or {})
    if unknown:
        raise ValueError(f"model {name}: tiny sizes for unknown keys {sorted(unknown)}")

    if family == "sequence" and protocol not in PROTOCOLS:
        raise ValueError(f"model {name}: unknown protocol {protocol!r}")

    def wrap(builder):
        _REGISTRY[name] = ModelSpec(name, builder, family, dict(defaults or {}), dict(training or {}), paper,
                                    display, dict(tiny or {}),
                                    protocol if family == "sequence" else FAMILIES[family].task)
        return builder

    return wrap


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for module in dict.fromkeys(e.module for e in catalogue().values()):
        importlib.import_module(f"{__name__}.{module}")
    _loaded = True


def list_models(family: str | None = None) -> list[str]:
    _load_all()
    return sorted(n for n, s in _REGISTRY.items() if family is None or s.family == family)


def get_spec(name: str) -> ModelSpec:
    """The registration (ModelSpec) of the model ``name`` (a sweep variant's: its model's); an error
    listing the known models."""
    _load_all()
    name = parse_variant(name)[0]
    if name not in _REGISTRY:
        raise FacevoxError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def split_overrides(name: str, overrides: dict | None) -> tuple[dict, dict]:
    """(architecture kwargs, training kwargs) from one model's override mapping."""
    spec = get_spec(name)
    arch, train = {}, {}
    for key, value in (overrides or {}).items():
        if key in spec.defaults:
            arch[key] = value
        elif key == "protocol" and (spec.family != "sequence" or value not in PROTOCOLS):
            allowed = ", ".join(PROTOCOLS) if spec.family == "sequence" else spec.protocol
            raise FacevoxError(f"models.overrides.{name}: protocol {value!r} is not one this model can "
                               f"train with ({allowed})")
        elif key == "select_by" and value not in SELECT_BY:
            raise FacevoxError(f"models.overrides.{name}: select_by {value!r} is not one of {', '.join(SELECT_BY)}")
        elif key in TRAINING_KEYS:
            train[key] = value
        else:
            close = difflib.get_close_matches(str(key), [*spec.defaults, *TRAINING_KEYS], n=1, cutoff=0.6)
            raise FacevoxError(
                f"models.overrides.{name}: unknown key {key!r}"
                + (f" (did you mean {close[0]!r}?)" if close else "") + "; architecture keys: "
                f"{', '.join(sorted(spec.defaults)) or '-'}; training keys: {', '.join(TRAINING_KEYS)}")
    return arch, train


def check_overrides(overrides: dict | None) -> None:
    """Every ``models.overrides`` entry names a known model and only its keys (what
    :func:`split_overrides` accepts); all problems in one FacevoxError.

    The workflow calls this when it builds the DAG, so a typo fails the dry run
    instead of the training job (whose old outputs Snakemake deletes first).
    Imports the overridden models' modules (torch) - only when there are overrides.
    """
    problems = []
    for name, keys in (overrides or {}).items():
        known = catalogue()
        if parse_variant(name)[0] not in known:
            close = difflib.get_close_matches(str(name), known, n=1, cutoff=0)
            problems.append(f"models.overrides: unknown model {name!r} (nearest: {close[0]!r}); "
                            f"known: {', '.join(sorted(known))}")
            continue
        if not isinstance(keys, dict):
            problems.append(f"models.overrides.{name}: must be a mapping of keys to values, got {keys!r}")
            continue
        try:
            split_overrides(name, keys)
        except FacevoxError as exc:
            problems.append(str(exc))
    if len(problems) == 1:
        raise FacevoxError(f"config: {problems[0]}")
    if problems:
        raise FacevoxError(f"config: {len(problems)} problem(s) in models.overrides:\n  " + "\n  ".join(problems))


def check_sweeps(sweeps: dict | None) -> None:
    """Every ``sweeps:`` entry names a known model and only its setting keys (what
    :func:`split_overrides` accepts, with each listed value); all problems in one FacevoxError
    naming ``sweeps.<model>``.  Run when the DAG is built, before the variants' overrides are checked."""
    problems = []
    for name, grid in (sweeps or {}).items():
        if name not in catalogue():
            problems.append(f"sweeps: unknown model {name!r}; known: {', '.join(sorted(catalogue()))}")
            continue
        for key, values in (grid or {}).items():
            for value in values if isinstance(values, list) else [values]:
                try:
                    split_overrides(name, {key: value})
                except FacevoxError as exc:
                    problems.append(str(exc).replace(f"models.overrides.{name}:", f"sweeps.{name}:", 1))
                    break
    if problems:
        raise FacevoxError("config: " + "\n  ".join(problems))


def create_model(name: str, **cfg):
    """Build model ``name`` with its paper defaults, updated by ``cfg``.

    ``cfg`` may also carry the data-dependent sizes the builder takes (e.g.
    ``n_visual``, ``n_acoustic``, ``n_classes``, ``seq_len``); any other key
    must be one of the model's defaults.
    """
    spec = get_spec(name)
    return spec.builder(**{**spec.defaults, **cfg})


def n_parameters(model) -> int:
    """Trainable parameters of a torch module."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
