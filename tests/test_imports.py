"""The import direction of DESIGN.md: spaces, storage -> objectives -> search.

The four folders install as ``stagetune.spaces``, ``stagetune.storage``, ... (one import
name); an import of a bare ``search``/``storage``/... is an error of its own.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"spaces", "storage", "objectives", "search"}
ALLOWED = {
    "spaces": set(),
    "storage": set(),
    "objectives": {"spaces"},
    "search": {"spaces", "storage", "objectives"},
}


def imported_packages(package: str) -> dict[str, set[str]]:
    """The other packages of ours that ``package`` imports, with the files that do."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                if parts[0] in OURS:  # a bare top-level name: never installed
                    found.setdefault(parts[0], set()).add(str(path.relative_to(ROOT)))
                elif parts[0] == "stagetune" and len(parts) > 1 and parts[1] != package:
                    top = parts[1]
                    if top in OURS:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", sorted(OURS))
def test_imports_go_one_way(package: str) -> None:
    forbidden = {k: v for k, v in imported_packages(package).items() if k not in ALLOWED[package]}
    assert forbidden == {}, f"{package} imports {forbidden}"


def test_bare_names_are_errors() -> None:
    """Code and tests import ``stagetune.X``: a bare ``search`` import only works by
    accident, from the repository's root, and never from an installed wheel."""
    bare: list[str] = []
    for folder in ["stagetune", *sorted(OURS), "tests", "benchmarks", "examples"]:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                where = path.relative_to(ROOT)
                bare += [f"{where}: {n}" for n in names if n.split(".")[0] in OURS]
    assert bare == []


def test_the_check_sees_a_violation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "spaces"
    fake.mkdir()
    (fake / "_bad.py").write_text("from stagetune.search import StagedSearch\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert imported_packages("spaces") == {"search": {"spaces/_bad.py"}}
