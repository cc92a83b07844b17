"""The layout is the pipeline: each stage's subpackage imports only from itself and
the stages below it, and no module imports another that imports it back (directly or
round a longer circle). Read from the source with ``ast``: every import counts, the
lazy ones inside functions and under ``TYPE_CHECKING`` included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import torchup

SRC = Path(__file__).resolve().parents[1] / "src" / "torchup"

# bottom to top; a module may import its own layer and every layer before it
LAYERS: tuple[tuple[str, ...], ...] = (
    ("torchup.errors", "torchup._paths", "torchup.runner"),
    ("torchup.interpreters",),
    ("torchup.hardware",),
    ("torchup.profiles",),
    ("torchup.index",),
    ("torchup.choose",),
    ("torchup.check",),
    ("torchup.export",),
    ("torchup.envs",),
    ("torchup.render",),
    ("torchup.cli", "torchup.__main__", "torchup"),
)
# the in-target scripts run under another Python with the standard library alone
SCRIPTS = (
    "torchup.interpreters.probe",
    "torchup.interpreters.tags",
    "torchup.check.verify_probe",
    "torchup.check.doctor_probe",
    "torchup.check.probe_helpers",
    "torchup.profiles.node_probe",
)
HELPERS = "torchup.check.probe_helpers"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every torchup module ``path`` imports (``from torchup.x import y`` counts as
    ``torchup.x.y`` when that is a module, else ``torchup.x``)."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "torchup")
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            if module.split(".")[0] != "torchup":
                continue
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                found.add(candidate if candidate in MODULES else module)
    return found - {module_name(path)}


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def layer(module: str) -> int:
    best = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or module.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def test_every_module_has_a_layer() -> None:
    for name in MODULES:
        layer(name)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_later_stage(module: str) -> None:
    upward = sorted(
        f"{target} (layer {layer(target)})"
        for target in GRAPH[module]
        if layer(target) > layer(module) and target != "torchup"
    )
    assert upward == [], f"{module} (layer {layer(module)}) imports {upward}"


def test_only_the_version_is_taken_from_the_package_root() -> None:
    """``from torchup import __version__`` is the one import of the root from below it
    (the root imports nothing eagerly, so it pulls in no stage)."""
    for name, path in MODULES.items():
        if layer(name) == len(LAYERS) - 1:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "torchup":
                assert [a.name for a in node.names] == ["__version__"], name


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target == "torchup" or target not in graph:
                continue
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_in_target_scripts_import_only_the_standard_library(script: str) -> None:
    """(The two check probes name the shared helpers for type checkers only, under
    ``if MYPY:``; torchup sends the helpers' text ahead of theirs, and the interpreter
    probe's ahead of the profile probe's.)"""
    allowed = {HELPERS} if script.startswith("torchup.check.") and script != HELPERS else set()
    if script == "torchup.profiles.node_probe":
        allowed = {"torchup.interpreters.probe"}
    assert GRAPH[script] <= allowed, f"{script} imports {GRAPH[script] - allowed}"


def _functions(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_the_check_probes_share_their_metadata_helpers_instead_of_repeating_them() -> None:
    from torchup.check import probe_source

    shared = _functions(HELPERS)
    assert {"headers", "read_text", "normalize", "listdir"} <= shared
    for probe in ("verify_probe", "doctor_probe"):
        assert _functions(f"torchup.check.{probe}") & shared == set(), probe
        source = probe_source(f"{probe}.py")
        assert source.startswith(MODULES[HELPERS].read_text(encoding="utf-8")), probe
        compile(source, probe, "exec")  # one program


def test_public_functions_are_not_shadowed_by_modules() -> None:
    """No submodule shares a public function's name, so ``torchup.plan`` stays the
    function after anything imports anything (it was the module ``torchup.plan`` once
    that had been imported)."""
    import importlib

    for name in MODULES:
        if not name.endswith(("probe", "__main__")):
            importlib.import_module(name)
    for name in ("plan", "pythons", "detect", "install", "verify", "doctor"):
        assert callable(getattr(torchup, name)), name
        assert f"torchup.{name}" not in MODULES, name


# STYLE: split a function before ~80 lines, a module before ~600; a class that grew
# past 200 lines is several responsibilities under one name
LONGEST = {ast.FunctionDef: 80, ast.AsyncFunctionDef: 80, ast.ClassDef: 200}
LONGEST_MODULE = 700


def too_long(source: str) -> list[tuple[str, int]]:
    """Each function or class in ``source`` longer than its limit, with its length
    (from ``def``/``class`` to its last line; decorators and the docstring count)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        limit = LONGEST.get(type(node))
        if limit is not None:
            assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > limit:
                found.append((node.name, length))
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_function_over_80_lines_and_no_class_over_200(module: str) -> None:
    source = MODULES[module].read_text(encoding="utf-8")
    assert too_long(source) == [], f"{module}: split these along their steps"
    assert source.count("\n") <= LONGEST_MODULE, f"{module} is over {LONGEST_MODULE} lines"


def test_the_length_check_counts_lines() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(80))
    assert too_long(f"def f():\n{body}\n") == [("f", 81)]
    assert too_long(f"def f():\n{body[: body.rindex(chr(10))]}\n") == []
    method = "\n".join(f"    def m{i}(self):\n        pass" for i in range(101))
    assert too_long(f"class C:\n{method}\n") == [("C", 203)]
