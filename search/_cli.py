"""The ``stagetune`` command. The only code that reads argv or the environment."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search._search import SearchResult, StageSummary

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stagetune",
        description="Staged hyperparameter search: learning rate first, then weight decay, "
        "then regularization, each stage an Optuna study.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    storage_help = "SQLAlchemy URL or SQLite file (default: sqlite:///stagetune.db)"
    run = commands.add_parser("run", help="run or resume a staged search")
    run.add_argument("--task", default="digits-mlp", help="built-in task (default: digits-mlp)")
    run.add_argument("--profile", help="profile whose plan to run (default: the task's)")
    run.add_argument("--storage", help=storage_help)
    run.add_argument("--name", help="search name (default: the task's name)")
    run.add_argument("--trials", type=int, help="trials per stage (default: the profile's)")
    run.add_argument("--epochs", type=int, help="epochs per trial (default: the task's)")
    run.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    run.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")

    status = commands.add_parser("status", help="show each stage's progress")
    status.add_argument("--storage", help=storage_help)
    status.add_argument("--name", default="digits-mlp", help="search name")

    dashboard = commands.add_parser("dashboard", help="open the studies in optuna-dashboard")
    dashboard.add_argument("--storage", help=storage_help)
    dashboard.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address (default: 127.0.0.1; the dashboard has no authentication)",
    )
    dashboard.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one")

    report = commands.add_parser("report", help="write an HTML report and PNG plots")
    report.add_argument("--storage", help=storage_help)
    report.add_argument("--name", default="digits-mlp", help="search name")
    report.add_argument("--out", default=".", help="directory (default: the current one)")

    export = commands.add_parser("export", help="write all stages' trials to CSV or Parquet")
    export.add_argument("--storage", help=storage_help)
    export.add_argument("--name", default="digits-mlp", help="search name")
    export.add_argument("--out", help="a .csv or .parquet file (default: NAME-trials.csv)")

    commands.add_parser("tasks", help="list the built-in tasks")
    commands.add_parser("profiles", help="list the profiles")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 user error, 130 interrupted)."""
    args = _parser().parse_args(argv)
    try:
        return int(_COMMANDS[args.command](args))
    except KeyboardInterrupt:
        print("stagetune: interrupted; run the same command again to resume.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _user_errors() as error:
        print(f"stagetune: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR


def entry_point() -> None:
    sys.exit(main())


def _user_errors() -> tuple[type[BaseException], ...]:
    from objectives import ConfigError, TaskError
    from search._search import SearchError
    from spaces import SpaceError
    from storage import StorageError

    return (SpaceError, StorageError, TaskError, ConfigError, SearchError)


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _cmd_run(args: argparse.Namespace) -> int:
    from objectives import get_task
    from search._search import Progress, SearchError, StagedSearch
    from spaces import default_plan

    if args.trials is not None and args.trials < 1:
        raise SearchError(f"--trials must be >= 1, but got {args.trials}.")
    _quiet_optuna()
    task = get_task(args.task)
    plan = default_plan(args.profile or task.profile, n_trials=args.trials)
    search = StagedSearch(
        plan,
        task,
        storage=args.storage,
        name=args.name,
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
        progress=None if args.quiet else Progress,
    )
    _ = search.storage  # opens (and checks) the storage before anything is printed
    print(
        f"stagetune: search {search.name!r} on {task.name}: "
        f"{' -> '.join(s.name for s in plan.stages)}, {search.epochs} epochs per trial"
    )
    result = search.run()
    _print_result(result, task.metric_name)
    return 0


def _print_result(result: SearchResult, metric: str) -> None:
    print(f"\nSearch {result.name!r}: best validation {metric} per stage")
    for stage in result.stages:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in stage.best_params.items())
        print(
            f"  {stage.name:<16} val_{metric}={_fmt(stage.best_value)}  {params}  "
            f"({stage.complete} complete, {stage.pruned} pruned)"
        )
    final = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(result.best_params.items()))
    print(f"Final hyperparameters: {final}")


def _cmd_status(args: argparse.Namespace) -> int:
    from search._search import search_status
    from storage import open_storage

    _quiet_optuna()
    stages = search_status(open_storage(args.storage, read_only=True), args.name)
    print(f"Search {args.name!r}")
    for stage in stages:
        _print_stage(stage)
    return 0


def _print_stage(stage: StageSummary) -> None:
    state = "done" if stage.done else "in progress" if stage.finished else "not started"
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in stage.best_params.items()) or "-"
    extra = ""
    if stage.running or stage.failed or stage.retried or stage.waiting:
        extra = (
            f"  [running {stage.running}, waiting {stage.waiting}, failed {stage.failed}, "
            f"retried {stage.retried}]"
        )
    print(
        f"  {stage.name:<16} {stage.finished}/{stage.budget} finished "
        f"({stage.pruned} pruned)  {state:<11}  best={_fmt(stage.best_value)}  {params}{extra}"
    )


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from search._dashboard import is_loopback, serve_dashboard
    from storage import open_storage

    if not 0 <= args.port <= 65535:
        raise _search_error(f"--port must be in 0..65535, but got {args.port}.")
    storage = open_storage(args.storage, read_only=True)
    if not is_loopback(args.host):
        print(
            f"stagetune: warning: optuna-dashboard has no authentication; anyone who can "
            f"reach {args.host}:{args.port} can read, change and delete the studies.",
            file=sys.stderr,
        )

    def ready(url: str) -> None:
        print(f"stagetune: dashboard at {url} (Ctrl-C stops it)", flush=True)

    serve_dashboard(storage, host=args.host, port=args.port, on_ready=ready)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from search._report import write_report
    from storage import open_storage

    _quiet_optuna()
    files = write_report(open_storage(args.storage, read_only=True), args.name, out_dir=args.out)
    print(f"stagetune: report {files.html}")
    print(f"stagetune: {len(files.images)} PNG images in {files.image_dir}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from search._export import export_trials
    from storage import open_storage

    _quiet_optuna()
    out = args.out or f"{args.name}-trials.csv"
    path = export_trials(open_storage(args.storage, read_only=True), args.name, out)
    print(f"stagetune: trials of search {args.name!r} written to {path}")
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from objectives import TASKS

    for name, task in sorted(TASKS.items()):
        print(
            f"{name:<22} profile={task.profile:<12} {task.epochs} epochs, {task.direction} "
            f"val {task.metric_name}"
        )
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from spaces import PROFILES

    for name, profile in sorted(PROFILES.items()):
        stages = " -> ".join(s.name for s in profile.build(None).stages)
        print(f"{name:<22} {profile.description}  [{stages}]")
    return 0


def _search_error(message: str) -> Exception:
    from search._search import SearchError

    return SearchError(message)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


_COMMANDS = {
    "run": _cmd_run,
    "status": _cmd_status,
    "dashboard": _cmd_dashboard,
    "report": _cmd_report,
    "export": _cmd_export,
    "tasks": _cmd_tasks,
    "profiles": _cmd_profiles,
}
