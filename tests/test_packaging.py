"""One import name: the wheel installs ``stagetune`` and nothing else at the top level.

A user's own ``storage.py`` or ``search.py``, or another distribution that owns a
top-level ``spaces`` package, must not shadow or be shadowed by stagetune's packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "stagetune", "search", "spaces", "objectives", "storage"]


def _pip(*args: str, cwd: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """stagetune's wheel, built from a copy of the sources (no build files in the checkout)."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    _pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), ".", cwd=source)
    (built,) = out.glob("stagetune-*.whl")
    return built


def _python(code: str, *, cwd: Path, path: Path | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": str(path)} if path else dict(os.environ)
    env.pop("PYTHONSAFEPATH", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_wheel_installs_only_stagetune(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        names = set(archive.namelist())
    assert {t for t in tops if not t.endswith(".dist-info")} == {"stagetune"}
    assert len([t for t in tops if t.endswith(".dist-info")]) == 1
    for package in ["search", "spaces", "objectives", "storage"]:
        assert f"stagetune/{package}/__init__.py" in names
        assert f"stagetune/{package}/py.typed" in names
    assert "stagetune/py.typed" in names


def test_a_script_beside_its_own_storage_and_search_modules(tmp_path: Path) -> None:
    """The user's ``storage.py`` and ``search.py`` stay theirs; stagetune still imports."""
    (tmp_path / "storage.py").write_text("WHOSE = 'mine'\n")
    (tmp_path / "search.py").write_text("WHOSE = 'mine too'\n")
    (tmp_path / "train.py").write_text(
        "import search\n"
        "import storage\n"
        "from stagetune import StagedSearch, default_plan\n"
        "from stagetune.storage import open_storage\n"
        "s = StagedSearch(default_plan('mlp'), 'digits-mlp', "
        "storage=open_storage('sqlite:///t.db'), name='beside')\n"
        "print(storage.WHOSE, '|', search.WHOSE, '|', s.name, type(s).__module__)\n"
    )
    done = subprocess.run(
        [sys.executable, "train.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "mine | mine too | beside stagetune.search._search"


def test_installs_beside_a_distribution_that_owns_spaces(tmp_path: Path, wheel: Path) -> None:
    """Another distribution's top-level ``spaces`` (as Hugging Face's) and stagetune both
    import from one site directory, and neither wrote into the other's files."""
    other = tmp_path / "other"
    (other / "spaces").mkdir(parents=True)
    (other / "spaces" / "__init__.py").write_text("OWNER = 'someone else'\n")
    (other / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "other-spaces"\nversion = "1.0"\n'
        '[tool.setuptools]\npackages = ["spaces"]\n'
    )
    site = tmp_path / "site"
    _pip(
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--target",
        str(site),
        str(other),
        cwd=tmp_path,
    )
    _pip("install", "--no-deps", "--target", str(site), str(wheel), cwd=tmp_path)
    # bin/ holds the `stagetune` console script that pip --target writes beside packages
    tops = sorted(p.name for p in site.iterdir() if not p.name.endswith(".dist-info"))
    assert tops == ["bin", "spaces", "stagetune"]
    assert sorted(p.name for p in (site / "bin").iterdir()) == ["stagetune"]
    out = _python(
        "import spaces, stagetune, stagetune.spaces as s\n"
        "print(spaces.OWNER, '|', stagetune.__file__, '|', s.default_plan('mlp').stages[1].name)",
        cwd=tmp_path,
        path=site,
    )
    owner, where, stage = (part.strip() for part in out.split("|"))
    assert owner == "someone else"
    assert where == str(site / "stagetune" / "__init__.py")
    assert stage == "lr"
