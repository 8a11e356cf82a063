"""The model-family table and the model catalogue, both importable without torch.

Snakemake reads them at DAG time (which data a training job needs, whether it asks for a
GPU, which config keys make it stale) and so do the training loop, the tasks and the
tables: what a family needs is written here once.

* :data:`FAMILIES` - one :class:`Family` per kind of model: the training task
  (facevox.training.tasks), the metrics table it lands in, the data it trains on (a
  ``sequence`` model's protocol, :data:`PROTOCOLS`, decides between shards and whole
  aligned videos: :func:`family`), whether it
  needs the sample sheet / a score per video, the ``models.*`` config keys it reads beyond
  the common ones, and whether it takes a GPU.
* :func:`catalogue` - every registered model (name -> module, family, display name), read
  from the ``@register(...)`` calls of this package's files with :mod:`ast`, so a model's
  registration is its only entry: adding a model is its file (and, optionally, its
  reported numbers in resources/reference_results.yaml). The name, ``family`` and
  ``display`` of a registration must be literals.

Tests: tests/test_models.py
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from facevox.errors import FacevoxError


@dataclass(frozen=True)
class Family:
    name: str
    #: Training task (module facevox.training.tasks.<task>).
    task: str
    #: Metrics table (facevox.report.tables): classification | regression | continuous.
    table: str
    #: What it trains on: ``shards`` (the shard set), ``faces`` (results/faces, aligned face
    #: crops), ``fau_windows`` (results/fau_windows) or ``align`` (results/align, whole
    #: videos: protocol ``whole``).
    data: str
    #: Reads the sample sheet (splits, scores, labels files) in the training job.
    needs_sheet: bool
    #: Trains only on videos with a ``score`` in the sheet.
    needs_score: bool
    #: ``models.*`` keys it reads beyond the common ones (see :data:`FAMILY_KEYS`).
    reads: tuple[str, ...]
    #: Asks for a GPU (``resources: gpu=1``) unless ``models.device: cpu``.
    gpu: bool
    #: ``torch`` (the loop's gradient training) or ``sklearn`` (one fit).
    estimator: str = "torch"


_SLICE_KEYS = ("max_missing_fraction", "max_memory_gb", "select_by", "positive_label")

FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("sequence", task="slices", table="classification", data="shards", needs_sheet=False,
           needs_score=False, reads=_SLICE_KEYS, gpu=True),
    Family("sklearn", task="slices", table="classification", data="shards", needs_sheet=False,
           needs_score=False, reads=_SLICE_KEYS, gpu=False, estimator="sklearn"),
    Family("clip", task="clips", table="regression", data="faces", needs_sheet=True, needs_score=True,
           reads=("vision",), gpu=True),
    Family("face", task="faces", table="regression", data="faces", needs_sheet=True, needs_score=True,
           reads=("vision",), gpu=True),
    Family("fau", task="fau", table="continuous", data="fau_windows", needs_sheet=True, needs_score=False,
           reads=("affect",), gpu=True),
)}

#: Training protocols of the ``sequence`` family (``protocol=`` in a registration, the
#: paper's; ``models.overrides.<model>.protocol`` changes it):
#:
#: * ``slices`` - fixed-length slices of the shard set, videos by vote (STST's protocol);
#: * ``whole`` - each video's whole aligned sequence (results/align/<video>.parquet, read
#:   with the sheet), zero-padded per batch with the lengths passed to the model, no
#:   slicing (the public D-Vlog code's protocol; task facevox.training.tasks.whole).
#:
#: Every other family has one protocol, its task.
PROTOCOLS = ("slices", "whole")
_WHOLE_KEYS = ("whole", "max_memory_gb", "select_by", "positive_label")

#: ``models.*`` keys that only some families read (each family's ``reads``); every other
#: key but the run-level ones below is read by all.
FAMILY_KEYS = frozenset([*(k for f in FAMILIES.values() for k in f.reads), *_WHOLE_KEYS])
#: ``models.*`` keys (dotted paths) about the machine a training runs on, not its result: GPU slots,
#: how often a resume state is written, the face loader's worker processes (a seed's batches are the
#: same for any number). They reach the job through its environment, set by the Snakefile
#: (:func:`machine_environment`, read back by :func:`machine_settings`), and are not in a job's
#: settings (:func:`job_settings`), so changing one reruns nothing.
MACHINE_KEYS = {"gpu_lock_dir": "FACEVOX_GPU_LOCK_DIR", "jobs_per_gpu": "FACEVOX_JOBS_PER_GPU",
                "gpu_wait_s": "FACEVOX_GPU_WAIT_S", "checkpoint_every_s": "FACEVOX_CHECKPOINT_EVERY_S",
                "vision.workers": "FACEVOX_VISION_WORKERS", "vision.prefetch": "FACEVOX_VISION_PREFETCH"}
#: ``models.*`` keys that say what runs, not how one training runs.
RUN_KEYS = frozenset({"run", "seeds", "threads", "overrides", "min_split_videos", "min_dev_videos",
                      *(k for k in MACHINE_KEYS if "." not in k)})


def _get(cfg: dict, path: str):
    for part in path.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            return KeyError
        cfg = cfg[part]
    return cfg


def machine_environment(models_cfg: dict) -> dict[str, str]:
    """The environment variables that carry :data:`MACHINE_KEYS` to a job (values as JSON)."""
    return {env: json.dumps(value) for key, env in MACHINE_KEYS.items()
            if (value := _get(models_cfg, key)) is not KeyError}


def machine_settings(environ) -> dict:
    """The :data:`MACHINE_KEYS` that ``environ`` sets, as a nested ``models`` section
    (:func:`machine_environment` read back)."""
    found: dict = {}
    for key, env in MACHINE_KEYS.items():
        if env in environ:
            try:
                value = json.loads(environ[env])
            except ValueError:
                raise FacevoxError(f"{env}={environ[env]!r}: not a value of models.{key}") from None
            *parents, last = key.split(".")
            node = found
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
    return found


def without_machine_keys(settings: dict) -> dict:
    """``settings`` (a ``models`` section) without :data:`MACHINE_KEYS`: what a training's result depends on."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in settings.items()}
    for key in MACHINE_KEYS:
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return out


@dataclass(frozen=True)
class Entry:
    name: str
    module: str
    family: str
    display: str
    #: The paper's training protocol (:data:`PROTOCOLS` for ``sequence`` models, else the task).
    protocol: str = ""


def _literal(node, what: str, where: str):
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise FacevoxError(f"{where}: the {what} of a @register(...) must be a literal") from None


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Entry]:
    """Every model registered in this package's files, found without importing them."""
    entries: dict[str, Entry] = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name in ("__init__.py", "families.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register"):
                continue
            where = f"{path.name}:{node.lineno}"
            if not node.args:
                raise FacevoxError(f"{where}: @register(...) needs the model name first")
            kw = {k.arg: k.value for k in node.keywords}
            name = _literal(node.args[0], "name", where)
            if "family" not in kw or "display" not in kw:
                raise FacevoxError(f"{where}: @register({name!r}) needs family= and display=")
            family = _literal(kw["family"], "family", where)
            if family not in FAMILIES:
                raise FacevoxError(f"{where}: model {name!r} has unknown family {family!r}; "
                                   f"known: {', '.join(FAMILIES)}")
            if name in entries:
                raise FacevoxError(f"{where}: model {name!r} is registered twice")
            protocol = _literal(kw["protocol"], "protocol", where) if "protocol" in kw else "slices"
            if family != "sequence":
                protocol = FAMILIES[family].task
            elif protocol not in PROTOCOLS:
                raise FacevoxError(f"{where}: model {name!r} has unknown protocol {protocol!r}; "
                                   f"known: {', '.join(PROTOCOLS)}")
            entries[name] = Entry(name, path.stem, family, _literal(kw["display"], "display", where), protocol)
    return entries


def known_models() -> list[str]:
    return sorted(catalogue())


# --------------------------------------------------------------------------- sweep variants
#: Separates a model from its sweep values in a variant's name (``stst@lr=0.0001,dropout=0.1``).
VARIANT_MARK = "@"


def _value_text(value) -> str:
    if isinstance(value, str):
        bad = [c for c in (",", "=", "/", VARIANT_MARK, " ") if c in value] or value in ("true", "false", "null")
        if bad or not value:
            raise FacevoxError(f"sweeps: the value {value!r} cannot be part of a variant's name "
                               "(no ',', '=', '/', '@' or spaces; not empty, true, false or null)")
        try:
            json.loads(value)
        except ValueError:
            return value
        raise FacevoxError(f"sweeps: the value {value!r} reads as a number; give it as one")
    return json.dumps(value, separators=(",", ":"))


def variant_name(model: str, values: dict) -> str:
    """The name of one sweep point: ``model@key=value,...`` in the order of ``values``, each value
    as JSON (``0.0001``, ``[3,5]``, ``true``) or a bare word - readable, stable, a valid path part."""
    for key in values:
        if not str(key).isidentifier():
            raise FacevoxError(f"sweeps.{model}: {key!r} is not a model setting name")
    return model + VARIANT_MARK + ",".join(f"{k}={_value_text(v)}" for k, v in values.items())


def parse_variant(name: str) -> tuple[str, dict]:
    """``(model, values)`` of a name (:func:`variant_name`); a plain model name gives ``(name, {})``."""
    model, mark, rest = name.partition(VARIANT_MARK)
    if not mark:
        return name, {}
    values, decoder, i = {}, json.JSONDecoder(), 0
    while i < len(rest):
        key, eq, _ = rest[i:].partition("=")
        if not eq or not key.isidentifier():
            raise FacevoxError(f"model {name!r}: not a variant name (model@key=value,...)")
        i += len(key) + 1
        try:
            value, end = decoder.raw_decode(rest, i)
        except ValueError:
            end = rest.find(",", i)
            end = len(rest) if end < 0 else end
            value = rest[i:end]
        if end < len(rest) and rest[end] != ",":
            raise FacevoxError(f"model {name!r}: not a variant name (a value ends at {rest[i:end + 1]!r})")
        values[key], i = value, end + 1
    return model, values


def sweep_variants(sweeps: dict | None) -> dict[str, list[str]]:
    """model -> the names of its sweep's variants (every combination of the values, the keys in the
    order given, the first key's values varying slowest)."""
    import itertools

    out = {}
    for model, grid in (sweeps or {}).items():
        if not isinstance(grid, dict) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
            raise FacevoxError(f"sweeps.{model}: a mapping of setting -> non-empty list of values, got {grid!r}")
        keys = list(grid)
        out[model] = [variant_name(model, dict(zip(keys, combo))) for combo in itertools.product(*grid.values())]
    return out


def run_models(run, sweeps: dict | None) -> list[str]:
    """The models a run trains: ``models.run`` with every swept model replaced by its variants."""
    variants = sweep_variants(sweeps)
    stray = [m for m in variants if m not in run]
    if stray:
        raise FacevoxError(f"config sweeps: {', '.join(stray)} not in models.run (a sweep varies a model the run "
                           "trains)")
    return [v for m in run for v in variants.get(m, [m])]


def variant_overrides(overrides: dict, name: str) -> dict:
    """The overrides of ``name`` under ``models.overrides``: its own entry when there is one, else (a sweep
    variant) its model's entry with the variant's values on top."""
    if name in (overrides or {}):
        return overrides[name] or {}
    model, values = parse_variant(name)
    return {**((overrides or {}).get(model) or {}), **values}


def with_variant_overrides(models_cfg: dict, sweeps: dict | None) -> dict:
    """``models_cfg`` whose ``overrides`` also hold each sweep variant's (:func:`variant_overrides`), keyed by
    the variant's name (so every per-model lookup works on variants)."""
    overrides = dict(models_cfg.get("overrides") or {})
    for names in sweep_variants(sweeps).values():
        for name in names:
            overrides[name] = variant_overrides(overrides, name)
    return {**models_cfg, "overrides": overrides}


def entry(name: str) -> Entry:
    """A registered model's catalogue entry (a sweep variant's name gives its model's)."""
    name = parse_variant(name)[0]
    entries = catalogue()
    if name not in entries:
        raise FacevoxError(f"unknown model {name!r}; known: {', '.join(sorted(entries))}")
    return entries[name]


def family_of(name: str) -> str:
    """A model's family name without importing it."""
    return entry(name).family


def protocol_of(name: str, models_cfg: dict | None = None) -> str:
    """A model's training protocol: ``models.overrides.<name>.protocol`` or its registration's."""
    chosen = ((models_cfg or {}).get("overrides") or {}).get(name, {}).get("protocol")
    return entry(name).protocol if chosen is None else chosen


def family(name: str, models_cfg: dict | None = None) -> Family:
    """A model's :class:`Family`, as its protocol (under ``models_cfg``) feeds it: a
    ``sequence`` model with protocol ``whole`` trains on the aligned tables with the sheet."""
    fam = FAMILIES[family_of(name)]
    protocol = protocol_of(name, models_cfg)
    if fam.name == "sequence" and protocol == "whole":
        return replace(fam, task="whole", data="align", needs_sheet=True, reads=_WHOLE_KEYS)
    return fam


def display_name(name: str) -> str:
    """The name the papers and the tables use (``STST``, ``Depression Detector``...)."""
    entries = catalogue()
    name = parse_variant(name)[0]
    return entries[name].display if name in entries else name


def check_run(names) -> None:
    """Every name in ``models.run`` is a registered model (clear error at DAG time)."""
    known = catalogue()
    names = [parse_variant(n)[0] for n in names]
    unknown = [n for n in names if n not in known]
    if unknown:
        import difflib

        hints = [f"{n!r}" + (f" (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(n, known, 1))
                             else "") for n in unknown]
        raise FacevoxError(f"config models.run: unknown model {', '.join(hints)}; known: {', '.join(sorted(known))}")


def job_settings(name: str, models_cfg: dict) -> dict:
    """The ``models`` settings one (model, seed) job depends on: the keys its family reads and
    its own overrides, so adding a model or seed, or changing another family's settings,
    leaves finished trainings alone."""
    fam = family(name, models_cfg)
    cfg = {k: v for k, v in without_machine_keys(models_cfg).items()
           if k not in RUN_KEYS and (k not in FAMILY_KEYS or k in fam.reads)}
    cfg["overrides"] = {name: (models_cfg.get("overrides") or {}).get(name, {})}
    return cfg
