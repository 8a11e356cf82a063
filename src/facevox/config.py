"""Configuration: one JSON schema (workflow/schemas/config.schema.yaml) for Snakemake and the CLI.

Each stage takes its section of the config (``config["landmarks"]`` ...);
:func:`stage_params` fills the schema's defaults and validates, so a stage
called from Python, the CLI or a rule sees the same parameters.
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
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _with_defaults(node: dict, value: dict) -> dict:
    """``value`` with the schema's defaults filled in, nested objects included."""
    out = dict(value)
    for key, sub in node.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = sub["default"]
        if sub.get("type") == "object" and "properties" in sub and isinstance(out.get(key), dict):
            out[key] = _with_defaults(sub, out[key])
    return out


def stage_params(section: str, params: dict | None = None) -> dict:
    """``params`` for one config section, with the schema's defaults filled and checked."""
    sub = schema()["properties"].get(section)
    if sub is None:
        raise FacevoxError(f"unknown config section {section!r}")
    if params is not None and not isinstance(params, dict):
        raise FacevoxError(f"config {section}: must be a mapping of settings, got {params!r}")
    merged = _with_defaults(sub, params or {})
    try:
        jsonschema.validate(merged, sub)
    except jsonschema.ValidationError as exc:
        where = ".".join([section, *map(str, exc.absolute_path)])
        raise FacevoxError(f"config {where}: {exc.message}") from None
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
            try:
                jsonschema.validate(out[section], sub)
            except jsonschema.ValidationError as exc:
                raise FacevoxError(f"config {section}: {exc.message}") from None
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
