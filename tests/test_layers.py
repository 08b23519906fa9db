"""The documented layers hold: docs/guide.md#layout names every module and its layer, and no
import (lazy ones inside functions included) points up that table or closes a circle."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "gankit"
GUIDE = ROOT / "docs" / "guide.md"


def documented_layers() -> dict[str, int]:
    """{"training/loop.py": 8, ...} from the guide's layout table."""
    text = GUIDE.read_text().split("## Layout", 1)[1]
    block = text.split("```text", 1)[1].split("```", 1)[0]
    rows = re.findall(r"^(\d+)\s+(\S+\.py)\s", block, flags=re.M)
    assert rows, "docs/guide.md#layout has no table of layers"
    return {path: int(layer) for layer, path in rows}


def module_name(path: str) -> str:
    """ "training/loop.py" -> "gankit.training.loop"; "metrics/__init__.py" -> "gankit.metrics"."""
    parts = ["gankit", *path.removesuffix(".py").split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: str) -> str:
    return path.split("/")[0] if "/" in path else ""


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every gankit module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            base = node.module or ""  # `from P import m`: the module P.m, else P's attribute m
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name.startswith("gankit") and name not in modules:
                name = name.rpartition(".")[0]  # an attribute of a module: the module
            if name in modules:
                found.add(name)
    return found


def graph() -> tuple[dict[str, str], dict[str, set[str]]]:
    files = {str(p.relative_to(PACKAGE)): p for p in sorted(PACKAGE.rglob("*.py"))}
    names = {module_name(path): path for path in files}
    edges = {module_name(path): imports_of(file, set(names)) for path, file in files.items()}
    return names, edges


def test_the_guide_names_every_module_and_only_those():
    on_disk = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")}
    documented = set(documented_layers())
    assert sorted(on_disk - documented) == [], "modules missing from docs/guide.md#layout"
    assert sorted(documented - on_disk) == [], "docs/guide.md#layout names missing modules"


def upward_imports(layers: dict[str, int], edges: dict[str, set[str]], names: dict[str, str]):
    found = []
    for source, targets in edges.items():
        path = names[source]
        for target in targets:
            other = names.get(target, "__init__.py")
            same_package = package_of(path) and package_of(path) == package_of(other)
            if not same_package and layers[other] >= layers[path]:
                found.append(f"{path} (layer {layers[path]}) imports {other} ({layers[other]})")
    return sorted(found)


def test_no_import_points_up_the_documented_layers():
    names, edges = graph()
    assert upward_imports(documented_layers(), edges, names) == []


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import circles (Tarjan's strongly connected components of more than one module, or
    a module importing itself)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_lazy_imports_included():
    _, edges = graph()
    edges.pop("gankit", None)  # the package's API imports from every layer, by design
    assert cycles(edges) == []


@pytest.mark.parametrize(
    "source, statement, wanted",
    [
        ("sampling.py", "from gankit.export import load_export", "sampling.py (layer 5) imports"),
        ("config.py", "from gankit.data import DATASETS", "config.py (layer 2) imports"),
        ("metrics/suite.py", "import gankit.evaluation", "metrics/suite.py (layer 6) imports"),
    ],
)
def test_an_upward_import_or_a_circle_would_be_caught(source, statement, wanted):
    """The checks above fail on the imports that made the circles this table once had."""
    names, edges = graph()
    layers = documented_layers()
    extra = PACKAGE / "_probe.py"
    try:
        extra.write_text(f"def lazy():\n    {statement}\n")
        probe = imports_of(extra, set(names))
    finally:
        extra.unlink()
    edges[module_name(source)] |= probe
    assert any(line.startswith(wanted) for line in upward_imports(layers, edges, names))


def test_a_circle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
