"""The import order of DESIGN.md, between the packages and inside each of them.

Between packages: spaces, storage -> objectives -> search -> the ``stagetune`` face;
a package imports another only through its public face (``stagetune.spaces``, not
``stagetune.spaces._guide``), and so do ``benchmarks/`` and ``examples/``.

Inside a package: its modules form the layers of :data:`LAYERS`, bottom first; a
module imports only modules of lower layers (any import: at the top, in a function
or under ``TYPE_CHECKING``), so that no two modules import each other, however
indirectly. A new module must be placed in :data:`LAYERS`: put it just above the
highest module it imports.

The four folders install as ``stagetune.spaces``, ``stagetune.storage``, ... (one import
name); an import of a bare ``search``/``storage``/... is an error of its own.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"spaces", "storage", "objectives", "search"}
#: The packages each package may import (``stagetune`` is the lazy top-level face).
ALLOWED = {
    "spaces": set(),
    "storage": set(),
    "objectives": {"spaces", "storage"},
    "search": {"spaces", "storage", "objectives"},
    "stagetune": {"spaces", "storage", "objectives", "search"},
}
#: Folders of scripts that use stagetune as a user does: public names only.
USERS = ("benchmarks", "examples")

#: Each package's modules in layers, bottom first: a module imports lower layers only.
LAYERS: dict[str, list[set[str]]] = {
    "spaces": [
        {"_params", "_guide"},
        {"_range", "_scaling", "_direction"},
        {"_plan"},
        {"_profiles"},
        {"_config"},
        {"__init__"},
    ],
    "storage": [
        {"_keys", "_errors"},  # every name stored on a study or trial; StorageError
        {"_lineage", "_recovery", "_retry", "_optuna_internals"},
        {"_one_machine"},  # refusing a second machine where the lock spans one
        {"_locking"},
        {"_rdb", "_buffered"},  # the RDB storage with retries; the write-behind cache
        {"_storage"},
        {"_artifacts"},  # the artifact store beside the database
        {"__init__"},
    ],
    "objectives": [
        {"_config", "_tasks", "_device", "_checkpoint"},
        {"_optim", "_mnist1d", "_model_file"},
        {"_train"},
        {"_diagnosis"},
        {"_objective"},
        {"_final", "_range_test"},
        {"_builtin", "_function"},  # the built-in tasks; a train function of the user's
        {"__init__"},
    ],
    "search": [
        {"_errors", "_signals", "_format", "_budget"},  # SearchError; signals; how values
        # are shown; epoch accounting
        {"_trial", "_stages", "_placement", "_callbacks"},  # one claimed trial; what each
        # stage kind does; which device each worker gets; callbacks into worker processes
        {"_barrier"},  # one stage among any number of workers
        {"_read"},  # the read side: a search's stage studies, one summary per stage
        {"_notes", "_resume", "_report", "_export", "_dashboard", "_models"},
        {"_search"},  # StagedSearch
        {"_workers", "_asktell"},  # N processes of one search; trials run outside
        {"__init__", "_cli"},  # the face; the command, imported by nothing but __main__
        {"__main__"},
    ],
    "stagetune": [{"__init__", "__main__"}],
}


@dataclass(frozen=True)
class Import:
    """One import of ours: the file, the package and module imported, and the name."""

    where: str
    package: str  # "spaces", ..., or "stagetune" for the top-level face
    module: str | None  # a module of that package, "__init__" for its face
    text: str


def imports_of(path: Path, package: str | None) -> Iterator[Import]:
    """The imports of stagetune's modules in ``path`` (``package``: the one it is in)."""
    where = str(path.relative_to(ROOT))
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _resolve(where, alias.name.split("."), [], alias.name)
        elif isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".") if node.module else []
            if node.level:  # relative: inside the package the file is in
                if package is None:
                    continue
                parts = ["stagetune", package, *parts]
            names = [alias.name for alias in node.names]
            text = f"from {'.' * node.level}{node.module or ''} import ..."
            yield from _resolve(where, parts, names, text)


def _resolve(where: str, parts: list[str], names: list[str], text: str) -> Iterator[Import]:
    if parts[0] in OURS:  # a bare top-level name: never installed
        yield Import(where, parts[0], "bare", text)
        return
    if parts[0] != "stagetune":
        return
    if len(parts) == 1:  # `import stagetune` / `from stagetune import X`
        for name in names or ["__init__"]:
            if name in OURS:
                yield Import(where, name, "__init__", text)
            else:
                yield Import(where, "stagetune", "__init__", text)
        return
    package = parts[1]
    if len(parts) > 2:
        yield Import(where, package, parts[2], text)
        return
    folder = ROOT / package
    for name in names or ["__init__"]:
        module = name if (folder / f"{name}.py").is_file() else "__init__"
        yield Import(where, package, module, text)


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def imported_packages(package: str) -> dict[str, set[str]]:
    """The other packages of ours that ``package`` imports, with the files that do."""
    found: dict[str, set[str]] = {}
    for path in _files(package):
        for imp in imports_of(path, package):
            if imp.package != package:
                found.setdefault(imp.package, set()).add(imp.where)
    return found


def upward_imports(package: str) -> list[str]:
    """Imports of a module of ``package`` from the same or a higher layer."""
    layer = {module: i for i, layer in enumerate(LAYERS[package]) for module in layer}
    wrong = []
    for path in _files(package):
        importer = path.stem
        for imp in imports_of(path, package):
            if imp.package != package or imp.module is None:
                continue
            if layer.get(imp.module, len(LAYERS[package])) >= layer[importer]:
                wrong.append(f"{imp.where} imports {package}.{imp.module} ({imp.text})")
    return wrong


#: Benchmarks that measure a private module's steps from inside, by design: file -> modules.
WHITE_BOX = {
    # times the stage barrier's claim, lock and wait in each of up to 64 worker processes
    "benchmarks/scale.py": {"search._barrier"},
}


def private_imports(folder: str, package: str | None) -> list[str]:
    """Imports in ``folder`` of another package's private modules (``stagetune.X._y``)."""
    return [
        f"{imp.where}: {imp.package}.{imp.module} ({imp.text})"
        for path in _files(folder)
        for imp in imports_of(path, package)
        if imp.package != package
        and imp.module not in (None, "__init__")
        and f"{imp.package}.{imp.module}" not in WHITE_BOX.get(_relative(path), set())
    ]


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_one_way(package: str) -> None:
    folder = package if package in OURS else "stagetune"
    found = imported_packages(folder)
    forbidden = {k: v for k, v in found.items() if k not in ALLOWED[package]}
    assert forbidden == {}, f"{package} imports {forbidden}"


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_every_module_has_a_layer(package: str) -> None:
    modules = {path.stem for path in _files(package)}
    placed = set().union(*LAYERS[package])
    assert modules - placed == set(), (
        f"place these modules of {package} in LAYERS (tests/test_imports.py), "
        f"just above the highest module they import"
    )
    assert placed - modules == set(), f"LAYERS names modules that {package} no longer has"


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_modules_import_only_lower_layers(package: str) -> None:
    assert upward_imports(package) == []


@pytest.mark.parametrize("folder", sorted(OURS | set(USERS)))
def test_other_packages_are_imported_by_public_names(folder: str) -> None:
    """Packages, benchmarks and examples use another package's face, not its ``_modules``."""
    assert private_imports(folder, folder if folder in OURS else None) == []


def test_bare_names_are_errors() -> None:
    """Code and tests import ``stagetune.X``: a bare ``search`` import only works by
    accident, from the repository's root, and never from an installed wheel."""
    bare = [
        f"{imp.where}: {imp.text}"
        for folder in ["stagetune", *sorted(OURS), "tests", *USERS]
        for path in _files(folder)
        for imp in imports_of(path, folder if folder in OURS else None)
        if imp.module == "bare"
    ]
    assert bare == []


def test_the_checks_see_violations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for folder, name, text in [
        ("spaces", "_bad.py", "from stagetune.search import StagedSearch\n"),
        ("search", "_errors.py", "def f():\n    from stagetune.search._cli import main\n"),
        ("search", "_cli.py", "from stagetune.search import _errors\n"),
        ("search", "_signals.py", "from . import _signals\n"),
        ("benchmarks", "bench.py", "from stagetune.search._search import task_plan\n"),
    ]:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert imported_packages("spaces") == {"search": {"spaces/_bad.py"}}
    assert upward_imports("search") == [
        "search/_errors.py imports search._cli (from stagetune.search._cli import ...)",
        "search/_signals.py imports search._signals (from . import ...)",
    ]
    assert private_imports("benchmarks", None) == [
        "benchmarks/bench.py: search._search (from stagetune.search._search import ...)"
    ]
