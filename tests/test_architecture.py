"""The architecture as checks beside `lint-imports`: SQL only in the store, small modules and functions.

`lint-imports` (contracts in pyproject.toml) holds the layers; these hold what import contracts
cannot see: a module outside `monitor/store` that builds queries, and code grown too big to read.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "monitor"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
# What a module outside the store may take from SQLAlchemy: handles (and `sqlalchemy.exc`'s errors),
# not query builders.
SQLALCHEMY_HANDLES = frozenset({"Engine", "Connection"})


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def test_the_package_is_where_the_checks_look() -> None:
    names = {_name(p) for p in _modules()}
    assert {"monitor/cycle/runner.py", "monitor/store/tables.py", "monitor/api/app.py"} <= names


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_sql_is_built_only_in_the_store(path: Path) -> None:
    if "store" in path.relative_to(PACKAGE).parts:
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    taken = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").startswith("sqlalchemy")
        and node.module != "sqlalchemy.exc"  # errors may be caught anywhere
        for alias in node.names
    }
    raw = [
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("exec_driver_sql", "execute")
    ]
    plain = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.startswith("sqlalchemy")
    ]
    assert not plain, f"{_name(path)} imports {plain}: take what you need by name"
    assert taken <= SQLALCHEMY_HANDLES, (
        f"{_name(path)} builds SQL with {sorted(taken - SQLALCHEMY_HANDLES)}: "
        "write the query as a function in monitor/store"
    )
    assert not raw, f"{_name(path)} runs statements ({', '.join(raw)}): a function in monitor/store does"


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_modules_and_functions_stay_small(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{_name(path)}: split it by job"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{_name(path)}: {', '.join(long)}: split into named steps"
