"""The README and docs/ pages say only what exists: every ``stagetune`` command they show
parses with the real CLI parser, every link and repository path they name is there, every
page is linked from the README, and their Python imports name real objects."""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import shlex
from pathlib import Path

import pytest

from stagetune.search._cli import _parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
DOCS = [README, *PAGES]
#: A backticked path is checked when its first folder is one of the repository's own.
REPO_TOP = {p.name for p in ROOT.iterdir() if not p.name.startswith(".git")} - {".venv"}
TOP_FILES = {"Makefile", "pyproject.toml", "README.md"}

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
COMMAND = re.compile(r"^(?:\.venv/bin/|python -m )?stagetune\s+(?=[a-z-])")
#: Placeholders in a synopsis (``--trials N``, ``[NAME]``): such a command is checked for
#: its subcommand and flags only, not parsed with values.
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*$|[\[\]|]")


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _prose(text: str) -> str:
    """The text outside fenced blocks."""
    return FENCE.sub("", text)


def _commands(text: str) -> list[tuple[str, bool]]:
    """Every ``stagetune ...`` command line, and whether it may hold placeholders.

    Commands in bash blocks are run as written, so they must parse with their values;
    inline code and plain blocks (synopses) may use placeholders."""
    found = []
    for lang, body in FENCE.findall(text):
        body = body.replace("\\\n", " ")
        for line in body.splitlines():
            line = line.strip()
            if COMMAND.match(line):
                found.append((line, lang != "bash"))
    for span in INLINE.findall(_prose(text)):
        if COMMAND.match(span.strip()):
            found.append((span.strip(), True))
    return found


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the CLI has no subcommands")


def _words(command: str) -> list[str]:
    command = re.sub(r"\s+#.*$", "", command)  # a trailing comment
    words = shlex.split(command)
    for stop in (">", "|", "&&", ";"):  # a redirection or the next command
        if stop in words:
            words = words[: words.index(stop)]
    while words and words[0] != "stagetune" and not words[0].endswith("/stagetune"):
        words.pop(0)  # `python -m`
    return words[1:]


@pytest.mark.parametrize("page", DOCS, ids=_id)
def test_every_command_parses_with_the_real_parser(page: Path) -> None:
    parser = _parser()
    commands = _subparsers(parser)
    problems = []
    for command, synopsis in _commands(page.read_text()):
        words = _words(command)
        sub = commands.get(words[0])
        if sub is None:
            problems.append(f"{command!r}: no subcommand {words[0]!r}")
            continue
        flags = [w.split("=")[0] for w in words[1:] if w.startswith("--")]
        missing = [f for f in flags if f not in sub._option_string_actions]
        if missing:
            problems.append(f"{command!r}: {words[0]} has no {', '.join(missing)}")
            continue
        if synopsis and any(PLACEHOLDER.search(w) for w in words):
            continue
        try:
            parser.parse_args(words)
        except SystemExit:
            problems.append(f"{command!r}: does not parse")
    assert not problems, "\n".join(problems)


def test_the_pages_show_commands() -> None:
    """The checker finds what it checks (a regex that matched nothing would pass)."""
    shown = {_words(c)[0] for page in DOCS for c, _ in _commands(page.read_text())}
    assert shown >= {"run", "status", "dashboard", "report", "export", "tasks", "profiles"}


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    heading = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", heading))


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#+\s+(.*)$", _prose(page.read_text()), re.M)
    return {_slug(h) for h in headings}


@pytest.mark.parametrize("page", DOCS, ids=_id)
def test_every_link_exists(page: Path) -> None:
    problems = []
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            problems.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            problems.append(f"{target}: no heading with that anchor in {file.name}")
    assert not problems, "\n".join(problems)


def _repo_paths(text: str) -> set[str]:
    """Paths in the repository that code spans and commands name (``benchmarks/x.py``,
    ``examples/own_model.py:task``, ``tests/search_tests``)."""
    spans = INLINE.findall(_prose(text)) + [
        line for _, body in FENCE.findall(text) for line in body.splitlines()
    ]
    paths = set()
    for span in spans:
        for word in re.split(r"[\s'\"(),=]+", span):
            word = word.split("::")[0]
            word = re.sub(r":\w+$", "", word).rstrip(".;:")
            in_folder = "/" in word and word.split("/")[0] in REPO_TOP
            if (in_folder and not re.search(r"[<*]", word)) or word in TOP_FILES:
                paths.add(word)
    return paths


@pytest.mark.parametrize("page", DOCS, ids=_id)
def test_every_repository_path_exists(page: Path) -> None:
    missing = sorted(p for p in _repo_paths(page.read_text()) if not (ROOT / p).exists())
    assert not missing, f"{_id(page)} names paths that do not exist: {missing}"


def test_the_path_checker_sees_paths() -> None:
    paths = {p for page in DOCS for p in _repo_paths(page.read_text())}
    assert {"benchmarks/overhead.py", "examples/own_model.py"} <= paths


def test_every_page_is_linked_from_the_readme() -> None:
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for target in LINK.findall(README.read_text())
        if not re.match(r"[a-z]+:", target)
    }
    assert PAGES, "no docs/ pages"
    unlinked = [_id(p) for p in PAGES if p.resolve() not in linked]
    assert not unlinked, f"pages the README does not link: {unlinked}"


def test_the_readme_fits_on_a_screen_or_two() -> None:
    assert len(README.read_text().splitlines()) <= 150


@pytest.mark.parametrize("page", DOCS, ids=_id)
def test_python_blocks_parse_and_import_real_names(page: Path) -> None:
    problems = []
    for lang, body in FENCE.findall(page.read_text()):
        if lang != "python":
            continue
        tree = ast.parse(body)  # a SyntaxError names the line
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stagetune"):
                module = importlib.import_module(node.module or "")
                problems += [
                    f"from {node.module} import {a.name}"
                    for a in node.names
                    if not hasattr(module, a.name)
                ]
    assert not problems, "\n".join(problems)


def test_the_readme_own_model_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's own-model block, run as written (in a scratch directory)."""
    blocks = [b for lang, b in FENCE.findall(README.read_text()) if lang == "python"]
    (own,) = [b for b in blocks if "Task(" in b]
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(own, "README.md", "exec"), namespace)
    result = namespace["result"]
    assert (tmp_path / "mine.db").exists()
    assert result.best_value > 0.7  # type: ignore[attr-defined]  # chance is 0.5
