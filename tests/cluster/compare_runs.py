"""Compare the ``results/`` of two runs of the same DAG (local vs SLURM): exit 1 on any difference.

    python tests/cluster/compare_runs.py LOCAL/results SLURM/results

Rules (the README in this folder explains why):

* Every file of the first run must exist in the second and vice versa, except under
  ``logs/`` and ``benchmarks/`` (timestamps, timings, host names), which are skipped, and
  ``report/run_card.html`` (run_card.json as a page: its timings; the JSON is compared).
* Every other file must be byte-identical - features (Parquet), shards, QA, predictions,
  tables, plots - except:
* ``.json`` files that differ in bytes are compared as data, without the volatile fields
  (``VOLATILE``: timings, peak memory, creation time) and with each run's own folder in
  strings (probe's absolute video ``path``) replaced by ``<run>``; ``.tsv`` tables (the
  inputs gate's ``inputs.tsv`` and ``samples.included.tsv`` hold absolute video paths) the same,
  and Parquet excluded records (an unreadable video's path in their metadata);
* ``.ckpt`` model files (``torch.save`` of a dict) are loaded and compared the same way:
  tensors with ``torch.equal``, scikit-learn estimators by their pickled bytes (pickled without
  the memo: ``canonical_pickle``).

Used by tests/cluster/run_slurm_test.sh.
"""
from __future__ import annotations

import io
import json
import math
import pickle
import re
import sys
from pathlib import Path

SKIPPED_DIRS = ("logs", "benchmarks")
#: The run card page renders run_card.json - compared as data below - with its timings (per-rule
#: job times, creation time): a page of measurements of the run, different in every run.
SKIPPED_FILES = ("report/run_card.html",)
#: Field names whose values are measurements of the run, not results.
VOLATILE = re.compile(r"^(seconds|.*_seconds|.*_per_s|max_rss_mb|created_utc)$")


def canonical_pickle(obj) -> bytes:
    """``obj`` pickled without the memo: two equal objects give the same bytes whether or not they
    share equal strings (a forest of 300 trees names its parameters in every tree; which of those
    strings are one object depends on what the process unpickled before - loading one file twice
    gives two memo layouts)."""
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=4)
    pickler.fast = True  # no memo: every object written out in full (estimators are not recursive)
    pickler.dump(obj)
    return buf.getvalue()


def _normalise(value, root: str):
    """``value`` without volatile fields, its run folder written ``<run>``."""
    if isinstance(value, dict):
        return {k: _normalise(v, root) for k, v in value.items() if not VOLATILE.match(str(k))}
    if isinstance(value, (list, tuple)):
        return [_normalise(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(root, "<run>")
    return value


def differences(a, b, where: str = "") -> list[str]:
    """Where two normalised values differ (NaN equals NaN)."""
    import numpy as np
    import torch

    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}.{k}: only in one run" for k in sorted(set(a) ^ set(b), key=str)]
        for key in sorted(set(a) & set(b), key=str):
            out += differences(a[key], b[key], f"{where}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        same = a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        return [] if same else [f"{where}: tensors differ"]
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return [] if a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc") else [
            f"{where}: arrays differ"]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    if type(a) is not type(b):
        return [f"{where}: {type(a).__name__} vs {type(b).__name__}"]
    if isinstance(a, (str, int, float, bool, type(None))):
        return [] if a == b else [f"{where}: {a!r} vs {b!r}"]
    # any other object (a scikit-learn estimator): its pickled state
    return [] if canonical_pickle(a) == canonical_pickle(b) else [f"{where}: {type(a).__name__} objects differ"]


def _load(path: Path):
    if path.suffix == ".json":
        return json.loads(path.read_text())
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)  # our own files


def excluded_records_equal(a: Path, b: Path, root_a: str, root_b: str) -> bool:
    """Two excluded records (facevox.extract.exclusion: a table without rows, the reason in its
    metadata) that say the same, the video's path in each run's own folder."""
    from facevox.io import read_provenance

    meta_a, meta_b = read_provenance(a), read_provenance(b)
    if not (meta_a.get("excluded") and meta_b.get("excluded")):
        return False
    return not differences(_normalise(meta_a, root_a), _normalise(meta_b, root_b))


def compare(first: Path, second: Path) -> tuple[dict[str, int], list[str]]:
    """Counts per kind of equality, and the differences found."""
    def files(root: Path) -> set[Path]:
        return {p.relative_to(root) for p in root.rglob("*")
                if p.is_file() and p.relative_to(root).parts[0] not in SKIPPED_DIRS
                and p.relative_to(root).as_posix() not in SKIPPED_FILES}

    names_a, names_b = files(first), files(second)
    problems = [f"{name}: only in {first}" for name in sorted(names_a - names_b)]
    problems += [f"{name}: only in {second}" for name in sorted(names_b - names_a)]
    counts = {"byte-identical": 0, "equal without volatile fields": 0}
    for name in sorted(names_a & names_b):
        a, b = first / name, second / name
        if a.read_bytes() == b.read_bytes():
            counts["byte-identical"] += 1
            continue
        if name.suffix == ".tsv":  # tables of inputs and sheets: each run's own folder in its paths
            if a.read_text().replace(str(first.parent), "<run>") == b.read_text().replace(str(second.parent), "<run>"):
                counts["equal without volatile fields"] += 1
                print(f"  equal but for the run folder: {name}")
            else:
                problems.append(f"{name}: differs (beyond the run folder in paths)")
            continue
        if name.suffix == ".parquet" and excluded_records_equal(a, b, str(first.parent), str(second.parent)):
            counts["equal without volatile fields"] += 1
            print(f"  excluded record, equal but for the run folder: {name}")
            continue
        if name.suffix not in (".json", ".ckpt"):
            problems.append(f"{name}: bytes differ")
            continue
        found = differences(_normalise(_load(a), str(first.parent)), _normalise(_load(b), str(second.parent)))
        if found:
            problems += [f"{name}{d}" for d in found[:10]]
        else:
            counts["equal without volatile fields"] += 1
            print(f"  equal without volatile fields: {name}")
    return counts, problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    first, second = (Path(p).resolve() for p in argv)
    counts, problems = compare(first, second)
    for problem in problems:
        print(f"  DIFFERS: {problem}")
    print(f"  {counts['byte-identical']} files byte-identical, "
          f"{counts['equal without volatile fields']} equal without volatile fields, {len(problems)} differences "
          f"({', '.join(SKIPPED_DIRS)}/ not compared)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
