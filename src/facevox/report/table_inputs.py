"""Metric tables, their inputs: the metrics JSON of each run (:func:`read_metrics`, checked;
:func:`split_values`, one split's numbers), the table columns (:data:`METRICS`, a
:class:`Metric` each), variant labels (:func:`variant_label`) and the papers' reported
numbers (:func:`load_references`).  What the tables make of them: facevox.report.tables.

Metrics JSON keys read here: ``model``, ``seed``, ``task``, ``splits`` (required), ``variant``
(a label or the mapping of overrides), and for cross-validation and sweeps ``fold`` (null:
the fixed split), ``cv`` (checked by facevox.report.table_stats.check_cv), ``sweep`` and
``select_by`` (required with ``sweep: true``).

Reference YAML (``load_references``): ``entries`` of ``model``, optional ``variant`` (a
mapping of overrides, labelled by :func:`variant_label`, or a label string), ``task``,
``dataset``, ``split``, ``paper``, ``table``, ``values`` (metric -> number as printed:
classification in percent, converted here to fractions) and an optional ``note``. Two
entries giving the same (model, variant, dataset, split, metric) are an error.

Tests: tests/test_tables.py, tests/test_tables_cv.py
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from facevox.errors import FacevoxError, InputError
from facevox.io import read_json
from facevox.report.table_stats import check_cv, number

#: The task families, one table each, in table order.
TASKS = ("classification", "regression", "continuous")


@dataclass(frozen=True)
class Metric:
    """A column of a metric table: its key in the metrics JSON, label, display scale and decimals."""
    key: str
    label: str
    scale: float = 1.0  # displayed value = stored value * scale
    decimals: int = 2


METRICS = {
    "classification": (Metric("accuracy", "Acc", 100), Metric("precision_weighted", "P (weighted)", 100),
                       Metric("recall_weighted", "R (weighted)", 100), Metric("f1_weighted", "F1 (weighted)", 100),
                       Metric("f1_macro", "F1 (macro)", 100), Metric("auc", "AUC", 1, 3)),
    "regression": (Metric("mae", "MAE"), Metric("rmse", "RMSE"), Metric("pcc", "PCC", 1, 3),
                   Metric("ccc", "CCC", 1, 3)),
}


def continuous_metric(dimension: str) -> Metric:
    """The column of a continuous-affect dimension: ``ccc_<dimension>``, 3 decimals."""
    return Metric(f"ccc_{dimension}", f"CCC {dimension}", 1, 3)


def variant_label(overrides: Mapping | str | None) -> str:
    """A variant's row label: sorted ``key=value`` pairs joined by ", " ("" for none)."""
    if overrides is None:
        return ""
    if isinstance(overrides, str):
        return overrides.strip()
    if not isinstance(overrides, Mapping):
        raise FacevoxError(f"a variant is a mapping of overrides or a label, not {overrides!r}")
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(overrides.items()))


# --------------------------------------------------------------------------- inputs
def read_metrics(path) -> dict:
    """One metrics JSON, checked; ``variant`` normalised to a label, ``fold`` (None: the fixed
    split) and ``sweep`` (bool) set, ``_path`` added."""
    rec = read_json(path)
    missing = [k for k in ("model", "seed", "task", "splits") if k not in rec]
    if missing:
        raise InputError(path, f"not a facevox metrics file (missing {', '.join(missing)})")
    if rec["task"] not in TASKS:
        raise InputError(path, f"unknown task {rec['task']!r} (one of {', '.join(TASKS)})")
    if not isinstance(rec["splits"], dict):
        raise InputError(path, "`splits` must be a mapping of split -> metrics")
    rec["variant"] = variant_label(rec.get("variant"))
    rec["_path"] = str(path)
    check_cv(rec, path)
    rec["fold"] = rec.get("fold")
    rec["sweep"] = rec.get("sweep") is True
    if rec["sweep"] and not isinstance(rec.get("select_by"), str):
        raise InputError(path, "a sweep run (`sweep: true`) needs `select_by`, the dev metric its grid is chosen by")
    return rec


def split_values(record: dict, split: str) -> dict[str, float]:
    """The numeric metrics of one split; continuous ``ccc: {dim: v}`` becomes ``ccc_<dim>``."""
    values = {}
    for key, value in (record["splits"].get(split) or {}).items():
        if isinstance(value, Mapping) and key == "ccc":
            values.update({f"ccc_{dim}": number(v) for dim, v in value.items()})
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            values[key] = float(value)
    return values


@dataclass(frozen=True)
class Reference:
    """One reported number of resources/reference_results.yaml (:func:`load_references`)."""
    model: str
    variant: str
    task: str
    dataset: str
    split: str
    metric: str
    value: float  # in the units of our metrics JSON (classification: fraction)
    source: str
    note: str = ""


def load_references(path) -> list[Reference]:
    """The reported results of ``path`` (see the module docstring), checked."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(path, f"not a readable YAML file ({exc})") from None
    entries = (doc or {}).get("entries")
    if not isinstance(entries, list):
        raise InputError(path, "expected a top-level `entries:` list")
    refs, seen = [], {}
    for i, e in enumerate(entries):
        where = f"entry {i + 1} ({e.get('model', '?') if isinstance(e, dict) else e!r})"
        if not isinstance(e, dict):
            raise InputError(path, f"{where}: not a mapping")
        missing = [k for k in ("model", "task", "dataset", "split", "paper", "table", "values") if k not in e]
        if missing:
            raise InputError(path, f"{where}: missing {', '.join(missing)}")
        if e["task"] not in TASKS:
            raise InputError(path, f"{where}: unknown task {e['task']!r}")
        known = {m.key for m in METRICS.get(e["task"], ())}
        for metric, value in (e["values"] or {}).items():
            if e["task"] == "continuous" and not metric.startswith("ccc_") or e["task"] != "continuous" \
                    and metric not in known:
                raise InputError(path, f"{where}: metric {metric!r} is not a {e['task']} table column")
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise InputError(path, f"{where}: {metric} must be a number, got {value!r}")
            scale = 100.0 if e["task"] == "classification" and metric != "auc" else 1.0
            ref = Reference(str(e["model"]), variant_label(e.get("variant")), e["task"], str(e["dataset"]),
                            str(e["split"]), metric, float(value) / scale, f"{e['paper']} {e['table']}",
                            str(e.get("note") or "").strip())
            key = (ref.model, ref.variant, ref.dataset, ref.split, metric)
            if key in seen:
                raise InputError(path, f"{where}: {metric} of {ref.model} [{ref.variant or 'base'}] on "
                                       f"{ref.dataset} {ref.split} is also given by {seen[key]}")
            seen[key] = ref.source
            refs.append(ref)
    return refs
