"""The package's layers, read from the source with ast (no import runs): each module imports
only from its own layer or the layers below it, and no two modules import each other,
directly or through others (function-level imports count too).

Layers, bottom to top (README "Layout"):
core (top-level modules) < extract < dataset < models < training < report < cli
"""
import ast
import re
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


def test_every_module_fits_one_reading():
    """No module over 600 lines: a module that outgrows one reading is split by concept."""
    long = {str(p.relative_to(SRC)): n for p in FILES if (n := len(p.read_text().splitlines())) > 600}
    assert not long, f"modules over 600 lines: {long}"


def private_uses(path: Path) -> list[str]:
    """``_name`` of a facevox module used in ``path``: imported (``from facevox.x import _y``) or
    reached through a module (``x._y`` where ``x`` is a facevox module imported there)."""
    tree = ast.parse(path.read_text(), str(path))
    modules, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "facevox":
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"{path.name}:{node.lineno}: from {node.module} import {a.name}")
                elif f"{node.module}.{a.name}" in MODULES:
                    modules[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "facevox":
                    modules[a.asname or a.name.split(".")[0]] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("setattr") and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant) and str(node.args[1].value).startswith("_")
                and not str(node.args[1].value).startswith("__")):  # monkeypatch.setattr(obj, "_name", ...)
            found.append(f"{path.name}:{node.lineno}: setattr(..., {node.args[1].value!r})")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = ast.unparse(node.value)
            if base in modules or (base.split(".")[0] in modules and base.startswith("facevox")):
                found.append(f"{path.name}:{node.lineno}: {base}.{node.attr}")
    return found


def test_no_private_name_is_used_across_modules():
    """What a module offers to others is public; ``_names`` stay inside their module (in src/, the
    tests and the benchmarks alike)."""
    root = SRC.parent
    files = [*FILES, *sorted((root / "tests").rglob("*.py")), *sorted((root / "benchmarks").glob("*.py")),
             root / "docs" / "generate.py"]
    found = [use for path in files for use in private_uses(path)]
    assert not found, "\n".join(found)


def test_every_rule_file_names_functions_that_exist():
    """The `# -> facevox.x.y` line of each rule file names functions the code has."""
    missing = []
    for rule_file in sorted((SRC.parent / "workflow" / "rules").glob("*.smk")):
        for line in rule_file.read_text().splitlines():
            if not line.startswith("# ->"):
                continue
            for dotted in re.findall(r"facevox(?:\.\w+)+", line):
                module, _, name = dotted.rpartition(".")
                path = SRC.joinpath(*module.split("."))
                path = path.with_suffix(".py") if path.with_suffix(".py").exists() else path / "__init__.py"
                defined = path.exists() and any(
                    isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name
                    for n in ast.parse(path.read_text()).body)
                if not defined and dotted not in MODULES:
                    missing.append(f"{rule_file.name}: {dotted}")
    assert not missing, "\n".join(missing)


def test_what_a_module_offers_others_is_documented():
    """Every function or class another facevox module imports has a docstring (its one line says
    what it does)."""
    defined = {}
    for path in FILES:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined[(module_name(path), node.name)] = ast.get_docstring(node) is not None
    imported = {(node.module, a.name) for path in FILES for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "facevox"
                for a in node.names}
    bare = sorted(f"{m}.{n}" for m, n in imported if defined.get((m, n)) is False)
    assert not bare, f"imported by other modules but undocumented: {bare}"
