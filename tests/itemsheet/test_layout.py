"""The sub-packages of `itemsheet` keep the rules their docstrings state.

Read from the source with `ast`, so a rule is checked for every module, imported or not,
and for imports inside functions too. Each failure is a sentence naming the module and
the import or call that breaks the rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ITEMSHEET = Path(__file__).resolve().parents[2] / "itemsheet"

# Which other sub-packages of `itemsheet` each one may import: they point one way.
MAY_IMPORT = {
    "sheet": set(),
    "files": {"sheet"},
    "sandbox": {"sheet"},
    "jobs": {"sheet", "files"},
    "housekeeping": {"sheet", "files"},
    "downloads": {"sheet", "files", "sandbox", "jobs"},
    "runs": {"sheet", "files", "sandbox", "jobs"},
}
# Nothing in `itemsheet` imports the frameworks or the service's entry points.
NOWHERE = {"prefect", "fastapi", "starlette", "api", "flows", "cli", "orchestration"}
NOWHERE |= {"deployments"}
# What may not be imported where no database is touched.
NO_DATABASE = {"sqlalchemy", "db"}
NO_DATABASE_PACKAGES = ("sheet", "files", "sandbox")
ENDS_A_TRANSACTION = {"commit", "rollback"}


def _modules() -> list[Path]:
    return sorted(ITEMSHEET.rglob("*.py"))


def _name(path: Path) -> str:
    return ".".join(path.relative_to(ITEMSHEET.parent).with_suffix("").parts)


def _imports(path: Path) -> Iterator[str]:
    """Every module an import statement of `path` names, at any depth of the code."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "itemsheet":
                yield from (f"itemsheet.{alias.name}" for alias in node.names)
            else:
                yield node.module


def _calls(path: Path) -> Iterator[ast.Call]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            yield node


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _package(path: Path) -> str | None:
    parts = path.relative_to(ITEMSHEET).parts
    return parts[0] if len(parts) > 1 else None


def test_every_module_is_in_a_sub_package_with_a_rule() -> None:
    loose = [_name(p) for p in ITEMSHEET.glob("*.py") if p.name != "__init__.py"]
    assert loose == [], f"{', '.join(loose)} belong in a sub-package of itemsheet"
    packages = {p.name for p in ITEMSHEET.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(MAY_IMPORT), "the sub-packages are not those this test knows"
    for package in packages:
        doc = ast.get_docstring(ast.parse((ITEMSHEET / package / "__init__.py").read_text()))
        assert doc, f"itemsheet.{package} has no docstring stating its rule"


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_no_framework_or_entry_point_is_imported(path: Path) -> None:
    for module in _imports(path):
        assert module.split(".")[0] not in NOWHERE, (
            f"{_name(path)} imports {module}; itemsheet imports no framework and no entry point"
        )


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_packages_import_one_way(path: Path) -> None:
    package = _package(path)
    if package is None:
        return
    allowed = MAY_IMPORT[package] | {package}
    for module in _imports(path):
        parts = module.split(".")
        if parts[0] == "itemsheet" and len(parts) > 1:
            assert parts[1] in allowed, (
                f"{_name(path)} imports {module}, but itemsheet.{package} may import only"
                f" {', '.join(sorted(f'itemsheet.{p}' for p in allowed))}"
            )


@pytest.mark.parametrize(
    "path", [p for p in _modules() if _package(p) in NO_DATABASE_PACKAGES], ids=_name
)
def test_no_database_where_none_is_touched(path: Path) -> None:
    for module in _imports(path):
        assert module.split(".")[0] not in NO_DATABASE, (
            f"{_name(path)} imports {module}; itemsheet.{_package(path)} touches no database"
        )


@pytest.mark.parametrize("path", [p for p in _modules() if _package(p) == "jobs"], ids=_name)
def test_jobs_leave_the_transaction_to_the_caller(path: Path) -> None:
    for call in _calls(path):
        callee = _callee(call)
        assert callee != "session_scope", (
            f"{_name(path)} calls session_scope() on line {call.lineno}; in itemsheet.jobs"
            " the caller owns the transaction"
        )
        assert callee not in ENDS_A_TRANSACTION, (
            f"{_name(path)} calls .{callee}() on line {call.lineno}; in itemsheet.jobs"
            " the caller owns the transaction"
        )


@pytest.mark.parametrize("path", [p for p in _modules() if _package(p) == "downloads"], ids=_name)
def test_downloads_only_read(path: Path) -> None:
    for call in _calls(path):
        callee = _callee(call)
        if callee == "session_scope":
            read_only = any(
                kw.arg == "write" and isinstance(kw.value, ast.Constant) and kw.value.value is False
                for kw in call.keywords
            )
            assert read_only, (
                f"{_name(path)} calls session_scope() on line {call.lineno} without"
                " write=False; itemsheet.downloads only reads"
            )
        assert callee not in ENDS_A_TRANSACTION, (
            f"{_name(path)} calls .{callee}() on line {call.lineno}; itemsheet.downloads only reads"
        )


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """The readers above find an import inside a function and a method call's name."""
    source = tmp_path / "sample.py"
    source.write_text(
        "def f(session):\n"
        "    from sqlalchemy import select\n"
        "    from itemsheet import jobs\n"
        "    session.commit()\n"
    )

    assert list(_imports(source)) == ["sqlalchemy", "itemsheet.jobs"]
    assert [_callee(call) for call in _calls(source)] == ["commit"]
