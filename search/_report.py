"""``stagetune report``: one self-contained HTML page and PNG images of a staged search.

The HTML page draws interactive plots with plotly through ``optuna.visualization``,
with plotly.js inlined, so it opens offline and can be mailed. The PNG images are
drawn with ``optuna.visualization.matplotlib``: plotly's own PNG export (kaleido)
needs a Chrome at run time, matplotlib needs nothing but itself.
"""

from __future__ import annotations

import html
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from stagetune.search._errors import SearchError
from stagetune.search._format import fmt, fmt_range, fmt_signed
from stagetune.search._read import StageSummary, find_range_test, load_stages
from stagetune.storage import SearchSettings, StageLineage

if TYPE_CHECKING:
    import matplotlib.figure
    import optuna
    import plotly.graph_objects as go
    from optuna.storages import BaseStorage


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote.

    Attributes:
        html: The self-contained HTML report.
        image_dir: The folder of the PNG images.
        images: The PNG images, one per plot.
    """

    html: Path
    image_dir: Path
    images: tuple[Path, ...]


@dataclass(frozen=True)
class RangeTestCurve:
    """An LR range test as stored on its study: loss against learning rate."""

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    suggestion: float | None


@dataclass(frozen=True)
class _Stage:
    study: optuna.Study
    summary: StageSummary

    @property
    def lineage(self) -> StageLineage:
        return self.summary.lineage

    @property
    def searched(self) -> list[str]:
        return list(self.lineage.searches)

    def complete(self) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


@dataclass(frozen=True)
class _Plot:
    """One plot, drawn twice: plotly for the HTML page, matplotlib for the PNG."""

    slug: str
    title: str
    plotly: Callable[[], go.Figure]
    png: Callable[[], matplotlib.figure.Figure]


def write_report(storage: BaseStorage, name: str, *, out_dir: str | Path = ".") -> ReportFiles:
    """Write the report of search ``name``: ``<out_dir>/<name>-report.html`` and PNGs.

    Per stage: optimization history, intermediate values (pruning), parameter
    importances, the searched parameters against the metric, and the LR range test
    curve with its suggestion where the stage ran one. Across stages: the best value
    after each stage, and the final hyperparameters beside the plan's defaults.

    Args:
        storage: The search's storage.
        name: The search name.
        out_dir: Directory for the HTML file and the ``<name>-report/`` image folder;
            created when missing.

    Returns:
        The files written.

    Raises:
        SearchError: No search ``name`` in ``storage``, or ``out_dir`` is a file or
            cannot be created or written.
    """
    stages = [_Stage(study, summary) for study, summary in load_stages(storage, name)]
    out = Path(out_dir)
    image_dir = out / f"{name}-report"
    _make_directory(out, image_dir)

    sections: list[str] = []
    images: list[Path] = []
    for stage in stages:
        plots = _stage_plots(stage)
        sections.append(_stage_section(stage, plots))
        images += [
            _save_png(plot, image_dir / f"{stage.lineage.stage}-{plot.slug}.png") for plot in plots
        ]
    across = _best_per_stage_plot(stages)
    if across is not None:
        images.append(_save_png(across, image_dir / "best-per-stage.png"))

    page = _page(name, stages, across, sections)
    html_path = out / f"{name}-report.html"
    html_path.write_text(page, encoding="utf-8")
    return ReportFiles(html_path, image_dir, tuple(images))


def _make_directory(out: Path, image_dir: Path) -> None:
    if out.exists() and not out.is_dir():
        raise SearchError(
            f"Cannot write the report into {str(out)!r}: it is a file, not a directory; "
            f"choose another --out."
        )
    try:
        image_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SearchError(
            f"Cannot write the report into {str(out)!r}: {error.strerror} "
            f"({error.filename}); choose another --out."
        ) from None


# -- what is plotted ---------------------------------------------------------------------


def _stage_plots(stage: _Stage) -> list[_Plot]:
    import optuna.visualization as vis
    import optuna.visualization.matplotlib as mvis

    study = stage.study
    label = stage.lineage.stage
    metric = _metric_name(study)
    plots: list[_Plot] = []
    complete = stage.complete()
    if complete:
        plots.append(
            _Plot(
                "history",
                f"{label}: optimization history",
                lambda: vis.plot_optimization_history(study, target_name=metric),
                lambda: _mpl(lambda: mvis.plot_optimization_history(study, target_name=metric)),
            )
        )
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        plots.append(
            _Plot(
                "intermediate",
                f"{label}: intermediate values (pruned trials stop early)",
                lambda: vis.plot_intermediate_values(study),
                lambda: _mpl(lambda: mvis.plot_intermediate_values(study)),
            )
        )
    searched = [p for p in stage.searched if all(p in t.params for t in complete)]
    if len(complete) >= 2 and searched:
        plots.append(
            _Plot(
                "importance",
                f"{label}: parameter importances",
                lambda: vis.plot_param_importances(study, params=searched),
                lambda: _mpl(lambda: mvis.plot_param_importances(study, params=searched)),
            )
        )
        plots.append(
            _Plot(
                "slice",
                f"{label}: {', '.join(searched)} against the metric",
                lambda: vis.plot_slice(study, params=searched, target_name=metric),
                lambda: _mpl(lambda: mvis.plot_slice(study, params=searched, target_name=metric)),
            )
        )
    curve = range_test_curve(study.user_attrs)
    if curve is not None:
        plots.append(
            _Plot(
                "lr-range-test",
                f"{label}: LR range test",
                lambda: _range_test_plotly(curve),
                lambda: _range_test_png(curve),
            )
        )
    return plots


def range_test_curve(attrs: Mapping[str, Any]) -> RangeTestCurve | None:
    """The LR range test curve in a study's user attributes, if the stage ran one.

    Example:
        >>> range_test_curve({"stagetune_lr_range_test": {
        ...     "lrs": [1e-5, 1e-3], "losses": [2.3, 1.1], "suggestion": 1e-4}}).suggestion
        0.0001
    """
    data = find_range_test(attrs)
    if data is None:
        return None
    lrs, losses = data.get("lrs"), data.get("losses")
    if not isinstance(lrs, Sequence) or not isinstance(losses, Sequence) or not lrs:
        return None
    points = [
        (float(lr), float(loss))
        for lr, loss in zip(lrs, losses, strict=False)
        if loss is not None and math.isfinite(float(loss))
    ]
    suggestion = data.get("suggestion")
    return RangeTestCurve(
        tuple(p[0] for p in points),
        tuple(p[1] for p in points),
        float(suggestion) if isinstance(suggestion, (int, float)) else None,
    )


def _range_test_plotly(curve: RangeTestCurve) -> go.Figure:
    import plotly.graph_objects as go

    figure = go.Figure(go.Scatter(x=curve.lrs, y=curve.losses, mode="lines", name="loss"))
    if curve.suggestion is not None and curve.losses:
        low, high = min(curve.losses), max(curve.losses)
        figure.add_trace(
            go.Scatter(
                x=[curve.suggestion, curve.suggestion],
                y=[low, high],
                mode="lines",
                line={"dash": "dash", "color": "firebrick"},
                name=f"suggestion {curve.suggestion:.3g}",
            )
        )
    figure.update_xaxes(type="log", title="learning rate")
    figure.update_yaxes(title="smoothed training loss")
    return figure


def _range_test_png(curve: RangeTestCurve) -> matplotlib.figure.Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.8))
    axes = figure.add_subplot()
    axes.plot(curve.lrs, curve.losses, label="loss")
    if curve.suggestion is not None:
        axes.axvline(
            curve.suggestion,
            color="firebrick",
            linestyle="--",
            label=f"suggestion {curve.suggestion:.3g}",
        )
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("smoothed training loss")
    axes.set_title("LR range test")
    axes.legend()
    return figure


def _best_per_stage_plot(stages: Sequence[_Stage]) -> _Plot | None:
    # Stages scored by the metric: an LR range test's value is the sweep's loss.
    scored = [s for s in stages if s.summary.range_test is None]
    if not scored:
        return None
    points = best_per_stage(scored[0].study, [s.lineage for s in scored])
    if not points:
        return None
    labels = [label for label, _ in points]
    values = [value for _, value in points]
    metric = _metric_name(scored[0].study)

    def plotly() -> go.Figure:
        import plotly.graph_objects as go

        figure = go.Figure(
            go.Scatter(
                x=labels,
                y=values,
                mode="lines+markers+text",
                text=[f"{v:.4g}" for v in values],
                textposition="top center",
            )
        )
        figure.update_xaxes(title="after stage")
        figure.update_yaxes(title=f"best {metric}")
        return figure

    def png() -> matplotlib.figure.Figure:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6.4, 4.8))
        axes = figure.add_subplot()
        axes.plot(labels, values, marker="o")
        for x, y in zip(labels, values, strict=True):
            axes.annotate(
                f"{y:.4g}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center"
            )
        axes.set_xlabel("after stage")
        axes.set_ylabel(f"best {metric}")
        axes.set_title("Best value after each stage")
        return figure

    return _Plot("best-per-stage", "Best value after each stage", plotly, png)


def best_per_stage(
    first: optuna.Study, lineages: Sequence[StageLineage]
) -> list[tuple[str, float]]:
    """``(label, best value)`` after each stage, starting from the guide's defaults.

    The first point is trial 0 of the first stage when it ran the plan's defaults
    (stagetune queues them first), so the plot shows what tuning gained.
    """
    points: list[tuple[str, float]] = []
    defaults = _defaults(first)
    trials = first.get_trials(deepcopy=False)
    zero = trials[0] if trials else None
    if (
        zero is not None
        and zero.state == TrialState.COMPLETE
        and zero.value is not None
        and all(_same(defaults.get(k), v) for k, v in zero.params.items())
    ):
        points.append(("guide defaults", float(zero.value)))
    for lineage in lineages:
        if lineage.best_value is not None:
            points.append((lineage.stage, float(lineage.best_value)))
    return points


def final_hyperparameters(
    first: optuna.Study, lineages: Sequence[StageLineage]
) -> list[tuple[str, Any, Any, str]]:
    """``(name, final value, plan default, set by)`` for every hyperparameter."""
    defaults = _defaults(first)
    final = dict(defaults)
    set_by = {k: "default" for k in defaults}
    for lineage in lineages:
        for key, value in lineage.best_params.items():
            final[key] = value
            set_by[key] = f"stage {lineage.stage}"
    return [(k, final[k], defaults.get(k), set_by[k]) for k in sorted(final)]


def _defaults(first: optuna.Study) -> dict[str, Any]:
    """The plan's defaults, from the settings on the first stage's study."""
    settings = SearchSettings.from_attrs(first.user_attrs)
    return settings.defaults if settings is not None else {}


# -- drawing -----------------------------------------------------------------------------


def _mpl(draw: Callable[[], Any]) -> matplotlib.figure.Figure:
    """Run an ``optuna.visualization.matplotlib`` function; return its figure."""
    import numpy
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        axes = draw()
    first = axes.flat[0] if isinstance(axes, numpy.ndarray) else axes
    figure: matplotlib.figure.Figure = first.figure
    return figure


def _save_png(plot: _Plot, path: Path) -> Path:
    import matplotlib
    import matplotlib.pyplot as plt

    # optuna's matplotlib plots switch the global style to ggplot: keep that local.
    with matplotlib.rc_context():
        figure = plot.png()
        try:
            figure.savefig(path, dpi=100, bbox_inches="tight")
        finally:
            plt.close(figure)
    return path


def _metric_name(study: optuna.Study) -> str:
    names = study.metric_names
    return names[0] if names else "value"


# -- the page ----------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plots { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
.plot h3 { font-size: 1em; margin: 0.4em 0; } .muted { color: #666; }
"""


def _page(
    name: str, stages: Sequence[_Stage], across: _Plot | None, sections: Sequence[str]
) -> str:
    from plotly.offline import get_plotlyjs

    first = stages[0].study
    settings = SearchSettings.from_attrs(first.user_attrs)
    metric = _metric_name(first)
    lineages = [s.lineage for s in stages]
    summary = [
        f"<p>Task <b>{_e(settings.task if settings else '?')}</b>, "
        f"{_e(settings.epochs if settings else '?')} epochs per trial, "
        f"{len(stages)} of {lineages[0].n_stages} stages started; metric: "
        f"<b>{_e(metric)}</b> ({_e(first.direction.name.lower())}).</p>",
        _stage_table(stages, metric),
        "<h2>Final hyperparameters</h2>",
        _final_table(first, lineages),
    ]
    if across is not None:
        summary[2:2] = [f"<h2>{_e(across.title)}</h2>", _figure_div(across, "best-per-stage")]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>stagetune report: {_e(name)}</title>",
            f"<style>{_STYLE}</style>",
            f"<script>{get_plotlyjs()}</script>",
            "</head><body>",
            f"<h1>Search <code>{_e(name)}</code></h1>",
            *summary,
            *sections,
            "</body></html>",
        ]
    )


def _stage_table(stages: Sequence[_Stage], metric: str) -> str:
    rows = []
    previous: float | None = None
    for stage in stages:
        lineage, counted = stage.lineage, stage.summary
        best = lineage.best_value  # recorded when the stage closed: blank until then
        change = "" if best is None or previous is None else fmt_signed(best - previous)
        rows.append(
            [
                f"<code>{_e(lineage.stage)}</code>",
                ", ".join(f"{_e(k)} {_e(fmt_range(v))}" for k, v in lineage.searches.items()),
                f"{lineage.budget}{' epochs' if lineage.budget_unit == 'epochs' else ''}",
                str(counted.complete),
                str(counted.pruned),
                str(counted.failed),
                "" if best is None else fmt(best),
                change,
                ", ".join(f"{_e(k)}={_e(fmt(v))}" for k, v in lineage.best_params.items()),
            ]
        )
        if best is not None:
            previous = best
    head = [
        "stage",
        "searches",
        "budget",
        "complete",
        "pruned",
        "failed",
        f"best {metric}",
        "change",
        "best values",
    ]
    return _table(head, rows, numeric={2, 3, 4, 5, 6, 7})


def _final_table(first: optuna.Study, lineages: Sequence[StageLineage]) -> str:
    rows = [
        [f"<code>{_e(k)}</code>", _e(fmt(final)), _e(fmt(default)), _e(by)]
        for k, final, default, by in final_hyperparameters(first, lineages)
    ]
    return _table(["hyperparameter", "final", "guide default", "set by"], rows, numeric={1, 2})


def _stage_section(stage: _Stage, plots: Sequence[_Plot]) -> str:
    lineage = stage.lineage
    carried = ", ".join(f"{k}={fmt(v)}" for k, v in sorted(lineage.carried.items()))
    parts = [
        f'<h2 id="stage-{_e(lineage.stage)}">Stage {lineage.index + 1}: '
        f"<code>{_e(lineage.stage)}</code></h2>",
        f"<p>Study <code>{_e(stage.study.study_name)}</code>; "
        f"{'done' if lineage.done else 'not finished'}; carried in: "
        f"{_e(carried) or 'nothing'}.</p>",
    ]
    if not plots:
        parts.append('<p class="muted">No finished trial to plot yet.</p>')
    divs = [
        f'<div class="plot"><h3>{_e(p.title)}</h3>'
        f"{_figure_div(p, f'{lineage.stage}-{p.slug}')}</div>"
        for p in plots
    ]
    parts.append(f'<div class="plots">{"".join(divs)}</div>')
    return "\n".join(parts)


def _figure_div(plot: _Plot, div_id: str) -> str:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        figure = plot.plotly()
    figure.update_layout(title=None, margin={"l": 50, "r": 20, "t": 30, "b": 40}, height=380)
    text: str = figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=f"plot-{div_id}",
        config={"displaylogo": False, "responsive": True},
    )
    return text


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: set[int]) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b)
    return bool(a == b)


def _e(value: Any) -> str:
    return html.escape(str(value))
