"""Fixtures for browsing a search: one small real search, headless Chromium, screenshots."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.search_tests.nothing_lost import kill_all

if TYPE_CHECKING:
    from playwright.sync_api import Browser

#: Debian's Chromium; Playwright drives it and never downloads a browser of its own.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ("--no-sandbox", "--disable-background-networking", "--disable-gpu")
#: When set, browser tests also save their screenshots there (README: docs/).
SCREENSHOTS_ENV = "STAGETUNE_SCREENSHOTS"


@pytest.fixture(autouse=True)
def _no_worker_left_behind() -> Iterator[None]:
    """Stop every worker process a test started and left running (a failing test)."""
    yield
    kill_all()


@dataclass(frozen=True)
class SmallSearch:
    """A finished real search in a SQLite file."""

    url: str
    name: str
    stages: tuple[str, ...]


@pytest.fixture(scope="session")
def small_search(tmp_path_factory: pytest.TempPathFactory) -> SmallSearch:
    """The MLP plan's three search stages, 4 trials of 4 epochs per stage, on digits (a few
    seconds); tests/search_tests/test_stages.py browses the whole five-step plan."""
    import torch

    from stagetune.search import StagedSearch
    from stagetune.spaces import core_plan

    url = f"sqlite:///{tmp_path_factory.mktemp('browse') / 'search.db'}"
    plan = core_plan("mlp", n_trials=4)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        StagedSearch(plan, "digits-mlp", storage=url, name="browse", epochs=4, progress=None).run()
    finally:
        torch.set_num_threads(threads)
    return SmallSearch(url, "browse", tuple(s.name for s in plan.stages))


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium through Playwright (``bash .ci/chromium.sh`` installs it)."""
    if not CHROMIUM.is_file():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: `bash .ci/chromium.sh` installs Debian's chromium "
            "(apt-get); it could not be installed on this machine"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield launched
        finally:
            launched.close()


def keep_screenshot(path: Path, name: str) -> None:
    """Copy a screenshot to ``$STAGETUNE_SCREENSHOTS/<name>`` when that is set."""
    target = os.environ.get(SCREENSHOTS_ENV)
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / name)
