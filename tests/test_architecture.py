"""The house rules of docs/architecture.md that a machine can check: no private name crosses a module
boundary, imports at module top unless a comment says why, no module over ~600 lines."""

import ast
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
