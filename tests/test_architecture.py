"""The house rules of docs/architecture.md that a machine can check: no private name crosses a module
boundary, imports at module top unless a comment says why, no module over ~600 lines."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wwtune"
MODULES = sorted(PACKAGE.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_private_name_is_imported_from_another_module(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("wwtune"):
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                assert not private, f"{path.name}:{node.lineno} imports {node.module}.{alias.name}"
            assert not any(part.startswith("_") for part in node.module.split(".")), node.module


def _import_block(lines: list[str], i: int) -> str:
    """Line ``i`` and the run of import and comment lines just above it (where the reason is written)."""
    start = i
    while start > 0 and lines[start - 1].strip().startswith(("from ", "import ", "#")):
        start -= 1
    return "\n".join(lines[start : i + 1])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_inside_functions_say_why(path):
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                assert "lazy" in _import_block(lines, node.lineno - 1), (
                    f"{_module_name(path)}:{node.lineno} imports inside a function without a '# lazy: why'"
                )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_module_over_600_lines(path):
    assert len(path.read_text().splitlines()) <= 600


def test_no_module_shadows_a_name_the_package_exports():
    """``wwtune.summary`` is the spectral summary function: a submodule of the same name would replace
    it (as ``wwtune.<name>``) as soon as anything imported that submodule."""
    import importlib
    import types

    import wwtune

    for path in MODULES:
        importlib.import_module(_module_name(path))
    for name in wwtune.__all__:
        assert not isinstance(getattr(wwtune, name), types.ModuleType), f"wwtune.{name} is a module"


# ------------------------------------------------------------------------------------------ the layer table
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"


def layer_table(text: str) -> list[tuple[int, list[str]]]:
    """The rows of the floors table of docs/architecture.md: ``(floor, [room, ...])`` where a room is a
    path under ``wwtune/`` in backticks (``spectral/`` a folder, ``score.py`` a module)."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].isdigit():
            rows.append((int(cells[0]), re.findall(r"`([\w/.]+)`", cells[2])))
    return rows


def floor_of(module: str, table: list[tuple[int, list[str]]]) -> int:
    """The floor of a module (``wwtune.report.plots``): its own file's row, else its folder's."""
    path = module.replace(".", "/")
    candidates = [path + ".py", path + "/__init__.py"] if module != "wwtune" else ["wwtune/__init__.py"]
    for floor, rooms in table:
        if any("wwtune/" + room in candidates for room in rooms):
            return floor
    best = None
    for floor, rooms in table:
        for room in rooms:
            if room.endswith("/") and (path + "/").startswith("wwtune/" + room):
                if best is None or len(room) > len(best[1]):
                    best = (floor, room)
    if best is None:
        raise LookupError(f"{module} is in no room of docs/architecture.md's floors table: add it there")
    return best[0]


def _under_type_checking(node: ast.If) -> bool:
    test = node.test
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING"


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> list[tuple[str, int]]:
    """Every wwtune module ``module`` imports, with its line: at the top, inside functions, anywhere
    (only ``if TYPE_CHECKING:`` blocks are left out: they never run). ``from wwtune.x import name`` is
    the module ``wwtune.x.name`` when that is a module, else ``wwtune.x``."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _under_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    package = module.split(".") if is_package else module.split(".")[:-1]
                    package = package[: len(package) - child.level + 1]
                    base = ".".join(package + ([base] if base else []))
                for alias in child.names:
                    name = f"{base}.{alias.name}"
                    found.append((name if name in known else base, child.lineno))
            visit(child)

    visit(ast.parse(source))
    return [(t, line) for t, line in found if (t == "wwtune" or t.startswith("wwtune.")) and t != module]


def import_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, list[tuple[str, int]]]:
    """``{module: [(imported module, line), ...]}`` for ``{module: (source, is_package)}``."""
    known = set(sources)
    return {m: imports_of(src, m, pkg, known) for m, (src, pkg) in sources.items()}


def package_sources() -> dict[str, tuple[str, bool]]:
    return {_module_name(p): (p.read_text(), p.name == "__init__.py") for p in MODULES}


Graph = dict[str, list[tuple[str, int]]]
Table = list[tuple[int, list[str]]]


def up_floor_imports(graph: Graph, table: Table) -> list[str]:
    """One line per import that runs up the floors table."""
    bad = []
    for module, targets in sorted(graph.items()):
        for target, line in targets:
            if floor_of(target, table) > floor_of(module, table):
                bad.append(
                    f"{module}:{line} imports {target} (floor {floor_of(target, table)} is above "
                    f"floor {floor_of(module, table)})"
                )
    return bad


def circles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """The import circles: every strongly connected group of more than one module (Tarjan)."""
    edges = {m: sorted({t for t, _ in targets if t in graph}) for m, targets in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return found


def test_every_module_has_a_floor_in_the_architecture_doc():
    table = layer_table(ARCHITECTURE.read_text())
    assert [floor for floor, _ in table] == sorted(floor for floor, _ in table), "floors listed bottom first"
    for path in MODULES:
        floor_of(_module_name(path), table)


def test_imports_only_run_down_the_floors():
    """docs/architecture.md's floors table: a module imports only modules on its floor or below, in-function
    imports included (a lazy import saves time, it does not change the layering)."""
    bad = up_floor_imports(import_graph(package_sources()), layer_table(ARCHITECTURE.read_text()))
    assert not bad, "\n".join(bad)


def test_no_import_circle():
    found = circles(import_graph(package_sources()))
    assert not found, "import circles: " + "; ".join(" ↔ ".join(group) for group in found)


def test_the_checks_catch_an_up_floor_import_and_a_circle():
    """The two checks above on the real tree plus one deliberately added import each."""
    table = layer_table(ARCHITECTURE.read_text())
    sources = package_sources()
    # the maths importing the CLI, tucked inside a function
    src, pkg = sources["wwtune.spectral.esd"]
    sources["wwtune.spectral.esd"] = (src + "\n\ndef _f():\n    from wwtune.cli import main  # lazy\n", pkg)
    bad = up_floor_imports(import_graph(sources), table)
    assert len(bad) == 1 and bad[0].startswith("wwtune.spectral.esd:") and "imports wwtune.cli" in bad[0]
    # the record importing the ranking that imports it: a circle, even inside a function
    sources = package_sources()
    src, pkg = sources["wwtune.record"]
    added = "\n\ndef _g():\n    from wwtune.ranking import best_trial  # lazy\n"
    sources["wwtune.record"] = (src + added, pkg)
    assert ["wwtune.ranking", "wwtune.record"] in circles(import_graph(sources))


def test_the_bundled_tasks_know_only_the_task_contract():
    known = {_module_name(p) for p in MODULES}
    for path in sorted((PACKAGE.parent / "objectives").glob("*.py")):
        targets = {t for t, _ in imports_of(path.read_text(), f"objectives.{path.stem}", False, known)}
        allowed = {"wwtune.objective", "wwtune.exceptions", "wwtune.training"}  # training: balance / freeze
        assert targets <= allowed, f"{path.name} imports {targets}"
