"""``stagetune dashboard``: served on loopback, browsed in headless Chromium."""

from __future__ import annotations

import selectors
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pytest

from stagetune.search._dashboard import is_loopback
from tests.search_tests.conftest import SmallSearch, keep_screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Browser

#: Seconds to wait for the dashboard to listen, and for a page to show something.
START_TIMEOUT = 60.0
PAGE_TIMEOUT_MS = 30_000


def start_dashboard(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Run ``stagetune dashboard ARGS`` and return it with the first line it prints."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stagetune", "dashboard", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=START_TIMEOUT):
            stop(process)
            pytest.fail(f"the dashboard printed nothing in {START_TIMEOUT} s")
    return process, process.stdout.readline()


def stop(process: subprocess.Popen[str]) -> str:
    """Stop a dashboard process; return what it wrote on stderr."""
    if process.poll() is None:
        process.terminate()
    try:
        _, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate(timeout=20)
    return err


@pytest.fixture(scope="module")
def dashboard_url(small_search: SmallSearch) -> Iterator[str]:
    process, line = start_dashboard("--storage", small_search.url, "--port", "0")
    try:
        assert line.startswith("stagetune: dashboard at http://127.0.0.1:"), line
        yield line.split(" at ", 1)[1].split()[0]
    finally:
        stop(process)


def test_the_url_printed_is_loopback_and_serves(dashboard_url: str) -> None:
    import urllib.request

    assert dashboard_url.startswith("http://127.0.0.1:")
    assert dashboard_url.endswith("/dashboard/")
    with urllib.request.urlopen(
        dashboard_url.replace("/dashboard/", "/api/studies"), timeout=30
    ) as r:
        body = r.read().decode()
    for stage in ("lr", "weight_decay", "regularization"):
        assert f'"browse/{stage}"' in body


def test_stage_studies_notes_and_best_value_in_chromium(
    browser: Browser, dashboard_url: str, small_search: SmallSearch, tmp_path: Path
) -> None:
    study = optuna.load_study(study_name="browse/weight_decay", storage=small_search.url)
    best = study.best_value
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(dashboard_url, timeout=PAGE_TIMEOUT_MS)
        # The study list shows every stage study of the search.
        for stage in small_search.stages:
            page.get_by_text(f"browse/{stage}").wait_for(timeout=PAGE_TIMEOUT_MS)
        page.screenshot(path=tmp_path / "studies.png")

        # A stage study: its page shows the best value ...
        page.get_by_text("browse/weight_decay").click()
        page.get_by_text(f"Best Trial (number={study.best_trial.number})").wait_for(
            timeout=PAGE_TIMEOUT_MS
        )
        assert page.get_by_text(repr(best), exact=True).is_visible()
        page.screenshot(path=tmp_path / "study.png")

        # ... and its note says what the stage searched, what it carried and found.
        page.get_by_role("link", name="Note").click()
        note = page.get_by_text("Stage 2 of 3: weight_decay (done)")
        note.wait_for(timeout=PAGE_TIMEOUT_MS)
        text = page.inner_text("body")
        assert "Practical Tuning Strategy / Step 3" in text
        assert "Carried in (best of earlier stages): lr = " in text
        assert f"Best val_accuracy: {best:.4g} (trial {study.best_trial.number}" in text
        assert "against the previous stage lr" in text
        page.screenshot(path=tmp_path / "note.png")
    finally:
        page.close()
    assert errors == []
    for name in ("studies.png", "study.png", "note.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    keep_screenshot(tmp_path / "note.png", "dashboard.png")


def test_the_first_stage_carries_the_search_note(
    browser: Browser, dashboard_url: str, small_search: SmallSearch
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    try:
        page.goto(dashboard_url, timeout=PAGE_TIMEOUT_MS)
        page.get_by_text("browse/lr").click()
        page.get_by_role("link", name="Note").click()
        page.get_by_text("Search browse").wait_for(timeout=PAGE_TIMEOUT_MS)
        text = page.inner_text("body")
    finally:
        page.close()
    assert "Final hyperparameters:" in text
    assert "Stage 1 of 3: lr (done)" in text


def test_dashboard_opens_the_storage_read_only(tmp_path: Path) -> None:
    import sqlalchemy

    path = tmp_path / "empty.db"
    sqlalchemy.create_engine(f"sqlite:///{path}").dispose()
    path.touch()
    process, _ = start_dashboard("--storage", str(path), "--port", "0")
    err = stop(process)
    assert process.returncode == 2
    assert "holds no Optuna studies (no Optuna tables)" in err
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    assert sqlalchemy.inspect(engine).get_table_names() == []
    engine.dispose()


def test_a_busy_port_is_a_one_line_error(small_search: SmallSearch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process, _ = start_dashboard("--storage", small_search.url, "--port", str(port))
        err = stop(process)
    assert process.returncode == 2
    assert err.startswith(f"stagetune: error: Cannot serve the dashboard on 127.0.0.1:{port}")
    assert "Traceback" not in err


def test_a_public_host_warns_that_there_is_no_authentication(small_search: SmallSearch) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: binding fails, nothing is sent.
    process, _ = start_dashboard("--storage", small_search.url, "--host", "192.0.2.1")
    err = stop(process)
    assert "warning: optuna-dashboard has no authentication" in err
    assert process.returncode == 2


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False), ("::", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
