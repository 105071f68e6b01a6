from __future__ import annotations

import math
import struct
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pytest

from stagetune.search import SearchError
from stagetune.search._cli import main
from stagetune.search._report import (
    ReportFiles,
    best_per_stage,
    range_test_curve,
    write_report,
)
from stagetune.storage import (
    StageLineage,
    StudyAttr,
    open_storage,
    read_lineage,
    write_lineage,
)
from tests.search_tests.conftest import SmallSearch, keep_screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Browser

PLOTS_PER_STAGE = ("history", "intermediate", "importance", "slice")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def external_references(page: str) -> list[str]:
    """``src``/``href`` values of the page's elements (script bodies are not elements)."""

    class Links(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.found += [f"{tag} {v}" for k, v in attrs if k in ("src", "href") and v]

    parser = Links()
    parser.feed(page)
    return parser.found


def test_external_references_sees_a_script_source() -> None:
    assert external_references('<p><script src="https://x/p.js"></script>') == [
        "script https://x/p.js"
    ]


@pytest.fixture(scope="module")
def report(small_search: SmallSearch, tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    storage = open_storage(small_search.url, read_only=True)
    return write_report(storage, small_search.name, out_dir=tmp_path_factory.mktemp("report"))


def test_report_files(report: ReportFiles, small_search: SmallSearch) -> None:
    assert report.html.name == "browse-report.html"
    expected = [f"{s}-{p}.png" for s in small_search.stages for p in PLOTS_PER_STAGE]
    assert [p.name for p in report.images] == [*expected, "best-per-stage.png"]
    for image in report.images:
        assert image.parent == report.image_dir
        width, height = png_size(image)
        assert width > 300 and height > 200


def test_report_is_self_contained_with_every_plot_and_table(
    report: ReportFiles, small_search: SmallSearch
) -> None:
    page = report.html.read_text(encoding="utf-8")
    assert external_references(page) == []
    for stage in small_search.stages:
        for plot in PLOTS_PER_STAGE:
            assert f'id="plot-{stage}-{plot}"' in page
    assert 'id="plot-best-per-stage"' in page
    lr = optuna.load_study(study_name="browse/lr", storage=small_search.url)
    best_lr = lr.user_attrs["stagetune_best_params"]["lr"]
    # Final hyperparameters beside the guide's defaults, and who set them.
    row = f'<td><code>lr</code></td><td class="num">{best_lr:.4g}</td>'
    assert f'{row}<td class="num">0.001</td><td>stage lr</td>' in page
    assert '<td><code>batch_size</code></td><td class="num">64</td><td class="num">64</td>' in page


def test_report_renders_in_chromium_without_console_errors(
    browser: Browser, report: ReportFiles, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 1400})
    problems: list[str] = []
    page.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        page.goto(report.html.as_uri(), wait_until="load", timeout=60_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.plotly-graph-div')]"
            ".every(div => div.querySelector('.main-svg'))",
            timeout=60_000,
        )
        drawn = page.eval_on_selector_all(
            ".plotly-graph-div", "divs => divs.filter(d => d.querySelector('.main-svg')).length"
        )
        page.screenshot(path=tmp_path / "report.png")
    finally:
        page.close()
    assert problems == []
    assert drawn == 3 * len(PLOTS_PER_STAGE) + 1
    assert png_size(tmp_path / "report.png") == (1200, 1400)
    keep_screenshot(tmp_path / "report.png", "report.png")


def test_best_value_after_each_stage_starts_at_the_guide_defaults(
    small_search: SmallSearch,
) -> None:
    studies = [
        optuna.load_study(study_name=f"browse/{s}", storage=small_search.url)
        for s in small_search.stages
    ]
    lineages = [read_lineage(s) for s in studies]
    assert all(lineages)
    points = best_per_stage(studies[0], [lin for lin in lineages if lin is not None])
    assert points[0] == ("guide defaults", studies[0].trials[0].value)
    assert points[1:] == [
        (s, study.best_value) for s, study in zip(small_search.stages, studies, strict=True)
    ]


def test_range_test_curve_is_plotted_with_its_suggestion(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = optuna.create_study(study_name="rt/lr_range_test", storage=url)
    write_lineage(
        study,
        StageLineage(
            search="rt",
            stage="lr_range_test",
            index=0,
            n_stages=1,
            searches={},
            carried={},
            budget=1,
            plan="p",
            done=True,
        ),
    )
    lrs = [10 ** (-7 + i * 0.1) for i in range(60)]
    losses = [2.3 - 0.02 * i if i < 50 else 2.3 + (i - 50) ** 2 for i in range(60)]
    losses[-1] = math.inf  # diverged: not drawn
    study.set_user_attr(StudyAttr.RANGE_TEST, {"lrs": lrs, "losses": losses, "suggestion": 3e-3})

    files = write_report(open_storage(url, read_only=True), "rt", out_dir=tmp_path)
    assert [p.name for p in files.images] == ["lr_range_test-lr-range-test.png"]
    page = files.html.read_text(encoding="utf-8")
    assert 'id="plot-lr_range_test-lr-range-test"' in page
    assert "suggestion 0.003" in page
    curve = range_test_curve(study.user_attrs)
    assert curve is not None
    assert len(curve.lrs) == len(curve.losses) == 59
    assert curve.suggestion == 3e-3


def test_report_keeps_the_global_matplotlib_style(
    small_search: SmallSearch, tmp_path: Path
) -> None:
    import matplotlib

    before = dict(matplotlib.rcParams)
    write_report(open_storage(small_search.url, read_only=True), "browse", out_dir=tmp_path)
    assert dict(matplotlib.rcParams) == before


def test_report_cli(
    small_search: SmallSearch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["report", "--storage", small_search.url, "--name", "browse", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"stagetune: report {tmp_path / 'browse-report.html'}" in out
    assert f"13 PNG images in {tmp_path / 'browse-report'}" in out
    assert main(["report", "--storage", small_search.url, "--name", "nope"]) == 2
    assert "No search named 'nope'" in capsys.readouterr().err


def test_missing_search_is_an_error(small_search: SmallSearch, tmp_path: Path) -> None:
    with pytest.raises(SearchError, match="No search named 'nope'"):
        write_report(open_storage(small_search.url, read_only=True), "nope", out_dir=tmp_path)
