"""Configuration: one JSON schema (workflow/schemas/config.schema.yaml) for Snakemake and the CLI.

Each stage takes its section of the config (``config["landmarks"]`` ...);
:func:`stage_params` fills the schema's defaults and validates, so a stage
called from Python, the CLI or a rule sees the same parameters.

:func:`check_workflow_config` is what the Snakefile runs instead of Snakemake's
``validate``: the same defaults filled in place, but every problem is one short line
(``config <section>.<key>: ...``, an unknown key with the nearest valid one, a bad value
with what is allowed) and the message says which files to fix - not the schema and the
whole configuration that ``snakemake.utils.validate`` prints.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml

from facevox.errors import FacevoxError

#: The repository root: facevox is installed editable from its workflow repo.
ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"


@lru_cache(maxsize=1)
def schema() -> dict:
    # libyaml's parser when PyYAML has it (~9x faster: every stage process reads the schema)
    return yaml.load(SCHEMA_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _with_defaults(node: dict, value: dict) -> dict:
    """``value`` with the schema's defaults filled in, nested objects included."""
    out = dict(value)
    for key, sub in node.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = sub["default"]
        if sub.get("type") == "object" and "properties" in sub and isinstance(out.get(key), dict):
            out[key] = _with_defaults(sub, out[key])
    return out


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 4] + " ..."


def problem_line(error: jsonschema.ValidationError, root: tuple = ()) -> list[str]:
    """One jsonschema error as short lines naming the key (``config a.b: ...``)."""
    from facevox.samples import nearest

    path = [*root, *map(str, error.absolute_path)]
    where = "config " + ".".join(path) if path else "config"
    inst, kind = error.instance, error.validator
    if kind == "additionalProperties" and isinstance(inst, dict):
        valid = list(error.schema.get("properties", {}))
        lines = []
        for key in [k for k in inst if k not in valid]:
            hint = f"; nearest valid: {nearest(str(key), valid)!r}" if valid else ""
            lines.append(f"{where}: unknown key {key!r}{hint} (valid: {', '.join(valid)})")
        if lines:
            return lines
    if kind == "enum":
        return [f"{where}: {_short(inst)} is not one of {', '.join(map(str, error.validator_value))}"]
    if kind == "type":
        return [f"{where}: {_short(inst)} is not of type {error.validator_value}"]
    message = error.message if len(error.message) <= 200 else error.message[:196] + " ..."
    return [f"{where}: {message}"]


def config_problems(cfg: dict, sub: dict | None = None, root: tuple = ()) -> list[str]:
    """Every schema problem of ``cfg`` (the whole config, or the section ``sub`` of the schema
    at ``root``) as short lines, in key order."""
    node = schema() if sub is None else sub
    validator = jsonschema.validators.validator_for(node)(node)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: [str(p) for p in e.absolute_path])
    return [line for e in errors for line in problem_line(e, root)]


def check_workflow_config(config: dict, files=()) -> dict:
    """Fill the schema's defaults into ``config`` (in place, nested sections included, as
    Snakemake's ``validate(..., set_default=True)``) and raise a FacevoxError listing every
    problem on one line each, ending with where to fix them (``files``: the config files)."""
    config.update(_with_defaults(schema(), config))
    problems = config_problems(config)
    if problems:
        # Snakemake lists the Snakefile's `configfile:` beside the same file given on the command line
        # (as the user wrote each; one name per file)
        named = {}
        for f in files:
            named.setdefault(Path(f).resolve(), str(f))
        where = ", ".join(named.values()) or "config.yaml"
        raise FacevoxError(f"{len(problems)} problem(s) in the configuration:\n  " + "\n  ".join(problems)
                           + f"\nFix them in {where} or the --config values given (every key and its default: "
                           f"{SCHEMA_PATH.relative_to(ROOT)})")
    return config


def stage_params(section: str, params: dict | None = None) -> dict:
    """``params`` for one config section, with the schema's defaults filled and checked."""
    sub = schema()["properties"].get(section)
    if sub is None:
        raise FacevoxError(f"unknown config section {section!r}")
    if params is not None and not isinstance(params, dict):
        raise FacevoxError(f"config {section}: must be a mapping of settings, got {params!r}")
    merged = _with_defaults(sub, params or {})
    problems = config_problems(merged, sub, (section,))
    if problems:
        raise FacevoxError("; ".join(problems))
    return merged


def load_config(path=None) -> dict:
    """A config file's stage sections, validated, defaults filled (``samples`` optional)."""
    cfg = {}
    if path is not None:
        try:
            cfg = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise FacevoxError(f"cannot read config {path}: {exc}") from None
    unknown = set(cfg) - set(schema()["properties"])
    if unknown:
        raise FacevoxError(f"config {path}: unknown key(s) {sorted(unknown)}")
    out = {k: v for k, v in cfg.items() if k == "samples"}
    for section, sub in schema()["properties"].items():
        if sub.get("type") == "object":
            out[section] = stage_params(section, cfg.get(section))
        elif section != "samples":
            out[section] = cfg.get(section, sub.get("default"))
            problems = config_problems(out[section], sub, (section,))
            if problems:
                raise FacevoxError("; ".join(problems))
    return out


def json_option(text: str | None, option: str = "--params") -> dict:
    """A command-line option holding a JSON object (empty -> {}), with a clear error."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FacevoxError(f"{option} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise FacevoxError(f"{option} must be a JSON object")
    return value
