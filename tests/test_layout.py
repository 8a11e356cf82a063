"""The package's layers, read from the source with ast (no import runs): each module imports
only from its own layer or the layers below it, and no two modules import each other,
directly or through others (function-level imports count too).

Layers, bottom to top (README "Layout"):
core (top-level modules) < extract < dataset < models < training < report < cli
"""
import ast
from pathlib import Path

import pytest
import yaml

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "facevox"
ORDER = ["core", "extract", "dataset", "models", "training", "report", "cli"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    if module == "facevox.__main__":  # `python -m facevox`: the command line
        return "cli"
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ORDER:
        return parts[1]
    return "core"


def imports_of(path: Path) -> set[str]:
    """facevox modules ``path`` imports (``from facevox.x import y`` counts as facevox.x.y when
    that is a module, else facevox.x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "facevox":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import (use `from facevox...`)")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "facevox"}
    return found


FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(p) for p in FILES}
GRAPH = {module_name(p): imports_of(p) for p in FILES}


def test_every_module_imports_only_its_layer_or_below():
    bad = []
    for module, deps in GRAPH.items():
        for dep in deps:
            if dep == "facevox":  # the package itself (__version__)
                continue
            if ORDER.index(layer(dep)) > ORDER.index(layer(module)):
                bad.append(f"{module} ({layer(module)}) imports {dep} ({layer(dep)})")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    # a package's own __init__ is imported by each of its submodules: not an edge back
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in GRAPH.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_layers_are_folders():
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(ORDER[1:])


@pytest.mark.parametrize("rule_file", sorted((SRC.parent / "workflow" / "rules").glob("*.smk")),
                         ids=lambda p: p.name)
def test_every_rule_file_names_its_function_and_test(rule_file):
    """The README's one-hop map: rule file -> facevox function -> tests/test_<stage>.py."""
    text = rule_file.read_text()
    if rule_file.name == "common.smk":
        return
    assert "-> facevox." in text, f"{rule_file.name}: name the function its rules call"
    for test in {w for w in text.split() if w.startswith("tests/test_")}:
        assert (SRC.parent / test.rstrip(",")).exists(), f"{rule_file.name}: {test} does not exist"


def test_conda_env_pins_what_pyproject_pins():
    import tomllib

    project = tomllib.loads((SRC.parent / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((SRC.parent / "envs" / "facevox.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = lambda specs: {s.split("==")[0].strip().lower(): s.split("==")[1].split(";")[0].strip()  # noqa: E731
                          for s in specs if "==" in s}
    # the job environment runs `python -m facevox`: Snakemake and its executor plugins stay outside it
    runner = {"snakemake", "snakemake-executor-plugin-slurm", "snakemake-executor-plugin-slurm-jobstep"}
    assert pins(pip) == {k: v for k, v in pins(project).items() if k not in runner}
