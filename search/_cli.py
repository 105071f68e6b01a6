"""The ``stagetune`` command. The only code that reads argv or the environment."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from stagetune.search._errors import SearchError, SearchTimeout, user_errors
from stagetune.search._format import fmt
from stagetune.search._workers import quiet_optuna

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

    from stagetune.search._read import SearchResult, StageSummary

EXIT_USER_ERROR = 2
EXIT_TIMEOUT = 3
#: ``stagetune ask``: the search is finished, no trial to give.
EXIT_SEARCH_DONE = 3
#: ``stagetune ask --timeout``: no trial of the stage became free in time.
EXIT_NO_TRIAL_YET = 4
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block) that point to --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_USER_ERROR,
            f"{self.prog}: error: {message}; see `{self.prog} --help`.\n",
        )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="stagetune",
        description="Staged hyperparameter search, the guide's five steps: LR range test, "
        "learning rate, weight decay, regularization, final run; each stage an Optuna study.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    storage_help = "SQLAlchemy URL or SQLite file (default: sqlite:///stagetune.db)"
    artifacts_help = (
        "directory (or s3://bucket, gs://bucket) for the trained model and checkpoints "
        "(default: DB-artifacts/ beside a SQLite database DB.db; none for other databases)"
    )
    run = commands.add_parser("run", help="run or resume a staged search")
    run.add_argument(
        "--task",
        default="digits-mlp",
        help="a built-in task (`stagetune tasks`; default: digits-mlp) or your own as "
        "module:attribute or path/to/file.py:attribute",
    )
    plan = run.add_mutually_exclusive_group()
    plan.add_argument(
        "--profile", help="profile or recipe whose plan to run (default: the task's)"
    )
    plan.add_argument(
        "--config", metavar="FILE", help="plan file (TOML), see `stagetune profiles NAME`"
    )
    run.add_argument("--storage", help=storage_help)
    run.add_argument("--name", help="search name (default: the task's name)")
    budget = run.add_mutually_exclusive_group()
    budget.add_argument(
        "--budget",
        type=int,
        metavar="N",
        help="compute of the search stages: N trial-equivalents (N x epochs per trial "
        "trained epochs, pruned trials' partial epochs included), split by the stages' "
        "shares (default: the plan's)",
    )
    budget.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help="count N finished trials in every search stage instead of an epoch budget",
    )
    run.add_argument("--epochs", type=int, help="epochs per trial (default: the task's)")
    run.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    run.add_argument(
        "--device",
        help="torch device for every worker, e.g. cpu or cuda:1 (default: spread over the "
        "visible GPUs, else cpu)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument(
        "--workers",
        type=int,
        help="worker processes on this machine (default: 1, or GPUs x --workers-per-gpu); "
        "worker i trains on GPU i mod G; the same command started elsewhere on the same "
        "storage joins them",
    )
    run.add_argument(
        "--gpus",
        help="the visible GPUs to use, e.g. 0,2,3 (indices after CUDA_VISIBLE_DEVICES; "
        "default: all)",
    )
    run.add_argument(
        "--workers-per-gpu",
        type=int,
        metavar="K",
        help="pack K workers on each GPU (small models leave a GPU mostly idle)",
    )
    run.add_argument("--artifacts", metavar="DIR", help=artifacts_help)
    run.add_argument(
        "--checkpoint-every",
        default="60",
        metavar="SECONDS",
        help="seconds between a trial's checkpoints, taken at epoch ends (0: every epoch, "
        "off: none; default: 60, never more than 2%% of training time)",
    )
    run.add_argument(
        "--trial-timeout",
        type=float,
        metavar="SECONDS",
        help="prune a search trial after this much training (checked at epoch ends)",
    )
    run.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="start no trial after this many seconds; exits with code 3, and the same "
        "command resumes",
    )
    run.add_argument(
        "--threads",
        type=int,
        help="torch threads per worker (default: 1 with --workers > 1, else torch's default)",
    )
    run.add_argument(
        "--new",
        action="store_true",
        help="delete an existing search of this name and start it over (refused while "
        "its workers run)",
    )

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
    dashboard.add_argument("--artifacts", metavar="DIR", help=artifacts_help)

    report = commands.add_parser("report", help="write an HTML report and PNG plots")
    report.add_argument("--storage", help=storage_help)
    report.add_argument("--name", default="digits-mlp", help="search name")
    report.add_argument("--out", default=".", help="directory (default: the current one)")

    export = commands.add_parser("export", help="write all stages' trials to CSV or Parquet")
    export.add_argument("--storage", help=storage_help)
    export.add_argument("--name", default="digits-mlp", help="search name")
    export.add_argument("--out", help="a .csv or .parquet file (default: NAME-trials.csv)")
    export.add_argument(
        "--model",
        metavar="FILE",
        help="write the final run's trained model (weights, config, task) to FILE instead",
    )
    export.add_argument("--artifacts", metavar="DIR", help=artifacts_help)

    _ask_tell_parsers(commands, storage_help)

    commands.add_parser("tasks", help="list the built-in tasks")
    profiles = commands.add_parser("profiles", help="list the profiles and recipes")
    profiles.add_argument("name", nargs="?", help="print this profile's plan as a plan file")
    return parser


def _ask_tell_parsers(commands: Any, storage_help: str) -> None:
    """``ask``, ``tell-epoch`` and ``tell``: a job outside stagetune as a worker."""
    ask = commands.add_parser(
        "ask",
        help="claim the next trial of a search's current stage; prints it as JSON "
        f"(exit {EXIT_SEARCH_DONE} when the search is finished)",
    )
    ask.add_argument("--storage", help=storage_help)
    ask.add_argument("--name", required=True, help="search name")
    plan = ask.add_mutually_exclusive_group()
    plan.add_argument(
        "--profile", help="profile whose plan to run (default: the stored one, else mlp)"
    )
    plan.add_argument("--config", metavar="FILE", help="plan file (TOML)")
    ask.add_argument("--trials", type=int, help="trials per search stage (default: the plan's)")
    ask.add_argument("--epochs", type=int, help="epochs per trial (default: stored, else 20)")
    ask.add_argument(
        "--direction", choices=("minimize", "maximize"), help="of the metric (default: minimize)"
    )
    ask.add_argument("--metric", help="name of the metric, for notes and reports")
    ask.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    ask.add_argument(
        "--pid",
        type=int,
        help="process that trains the trial: when it is gone untold, the trial is failed "
        "and retried (default: the process that ran this command)",
    )
    ask.add_argument(
        "--timeout",
        type=float,
        help="seconds to wait while the stage has no free trial (default: no limit); "
        f"then exit {EXIT_NO_TRIAL_YET}",
    )

    epoch = commands.add_parser(
        "tell-epoch", help="report one epoch of an asked trial; prints 'continue' or 'stop'"
    )
    epoch.add_argument("--storage", help=storage_help)
    epoch.add_argument("--name", required=True, help="search name")
    epoch.add_argument("--trial", type=int, required=True, help="trial id from ask")
    epoch.add_argument("--epoch", type=int, required=True, help="epoch, counting from 1")
    epoch.add_argument("--value", type=float, required=True, help="the epoch's metric")
    epoch.add_argument("--train-loss", type=float, help="mean training loss of the epoch")
    epoch.add_argument("--val-loss", type=float, help="validation loss of the epoch")

    tell = commands.add_parser("tell", help="tell an asked trial's final value, or its failure")
    tell.add_argument("--storage", help=storage_help)
    tell.add_argument("--name", required=True, help="search name")
    tell.add_argument("--trial", type=int, required=True, help="trial id from ask")
    result = tell.add_mutually_exclusive_group(required=True)
    result.add_argument("--value", type=float, help="the trial's final metric")
    result.add_argument("--last", action="store_true", help="the last epoch's reported metric")
    result.add_argument("--failed", metavar="REASON", help="the trial failed (why)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 a worker failed, 2 user error,
    3 stopped by --timeout, 130 interrupted by SIGINT, 143 by SIGTERM)."""
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named with the subcommand, whose --help lists what it takes
        command = f"{parser.prog} {args.command}"
        parser.exit(
            EXIT_USER_ERROR,
            f"{command}: error: unrecognized arguments: {' '.join(unknown)}; "
            f"see `{command} --help`.\n",
        )
    try:
        return int(_COMMANDS[args.command](args))
    except SearchTimeout as timeout:
        print(f"stagetune: {timeout}", file=sys.stderr)
        return EXIT_TIMEOUT
    except KeyboardInterrupt as interrupt:
        code = getattr(interrupt, "exit_code", EXIT_INTERRUPTED)
        what = "interrupted" if code == EXIT_INTERRUPTED else f"stopped ({interrupt})"
        print(
            f"stagetune: {what}; running trials were marked FAIL and queued to run again: "
            f"run the same command to resume.",
            file=sys.stderr,
        )
        return int(code)
    except user_errors() as error:
        print(f"stagetune: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR


def entry_point() -> None:
    sys.exit(main())


def _cmd_run(args: argparse.Namespace) -> int:
    from stagetune.objectives import get_task
    from stagetune.search._placement import parse_gpus, worker_count, worker_devices
    from stagetune.search._search import Progress, StagedSearch, task_plan
    from stagetune.search._signals import install_signal_handlers
    from stagetune.search._workers import check_workers
    from stagetune.spaces import default_plan, load_plan

    if args.trials is not None and args.trials < 1:
        raise SearchError(f"--trials must be >= 1, but got {args.trials}.")
    if args.budget is not None and args.budget < 1:
        raise SearchError(f"--budget must be >= 1 (trial-equivalents), but got {args.budget}.")
    if args.workers is not None and args.workers < 1:
        raise SearchError(f"--workers must be >= 1, but got {args.workers}.")
    if args.threads is not None and args.threads < 1:
        raise SearchError(f"--threads must be >= 1, but got {args.threads}.")
    quiet_optuna()
    task = get_task(args.task)
    if args.config:
        plan = load_plan(args.config)
        plan = plan if args.trials is None else plan.with_trials(args.trials)
        plan = plan if args.budget is None else plan.with_budget(args.budget)
    elif args.profile:
        plan = default_plan(args.profile, n_trials=args.trials, budget=args.budget)
    else:
        plan = task_plan(task, n_trials=args.trials, budget=args.budget)
    gpus = parse_gpus(args.gpus) if args.gpus is not None else None
    placement = {"device": args.device, "gpus": gpus, "workers_per_gpu": args.workers_per_gpu}
    args.workers = worker_count(args.workers, **placement)
    devices = worker_devices(args.workers, **placement)
    search = StagedSearch(
        plan,
        task,
        storage=args.storage,
        name=args.name,
        epochs=args.epochs,
        seed=args.seed,
        device=devices[0],
        progress=None if args.quiet else Progress,
        artifacts=args.artifacts,
        checkpoint_every=_seconds_or_off("--checkpoint-every", args.checkpoint_every),
        trial_timeout=args.trial_timeout,
        timeout=args.timeout,
    )
    if args.workers > 1:  # before the storage is opened: a refused count writes nothing
        check_workers(search, args.workers, args.threads or 1)
    # Opens the storage (creating its schema once) and checks the plan, before anything
    # is printed and before any worker starts.
    search.prepare(new=args.new)
    workers = f", {args.workers} workers" if args.workers > 1 else ""
    budget = (
        ""
        if plan.budget is None
        else f", budget {plan.budget} trial-equivalents = {plan.budget * search.epochs} epochs"
    )
    print(
        f"stagetune: search {search.name!r} on {task.name}: "
        f"{' -> '.join(s.name for s in plan.stages)}, {search.epochs} epochs per trial"
        f"{budget}{workers}"
    )
    sys.stdout.flush()
    restore = install_signal_handlers()
    try:
        if args.workers == 1:
            if args.threads is not None:
                import torch

                torch.set_num_threads(args.threads)
            result = search.run()
        else:
            return _run_workers(search, args, task.metric_name, devices)
    finally:
        restore()
    _print_result(result, task.metric_name, search.storage)
    return 0


def _seconds_or_off(option: str, text: str) -> float | None:
    if text == "off":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise SearchError(f"{option} must be seconds >= 0 or off, but got {text!r}.")
    return value


def _run_workers(
    search: Any, args: argparse.Namespace, metric: str, devices: Sequence[str | None]
) -> int:
    from stagetune.search._workers import EXIT_TIMEOUT as WORKER_TIMEOUT
    from stagetune.search._workers import run_workers

    bars = _StorageProgress(search) if not args.quiet else None
    try:
        result, exits = run_workers(
            search,
            args.workers,
            threads=args.threads or 1,
            on_poll=bars.poll if bars is not None else None,
            devices=devices,
        )
    finally:
        if bars is not None:
            bars.close()
    if result is None and exits and all(w.exitcode == WORKER_TIMEOUT for w in exits):
        print(
            f"stagetune: search {search.name!r} stopped after its timeout of "
            f"{search.timeout:g} s; run the same command to resume.",
            file=sys.stderr,
        )
        return EXIT_TIMEOUT
    for worker in exits:
        if worker.exitcode not in (0, WORKER_TIMEOUT):
            print(f"stagetune: warning: {worker.describe()}", file=sys.stderr)
    if result is None:
        print(
            "stagetune: error: the workers stopped before the search finished; see "
            f"`stagetune status --name {search.name}`, then run the same command to resume.",
            file=sys.stderr,
        )
        codes = [w.exitcode for w in exits if w.exitcode > 0]
        return codes[0] if codes else 1
    _print_result(result, metric, search.storage)
    return 0


class _StorageProgress:
    """Progress bars of a search run by worker processes, read from storage."""

    def __init__(self, search: Any) -> None:
        self._search = search
        self._bars: dict[str, Any] = {}

    def poll(self) -> None:
        from stagetune.search._read import search_status
        from stagetune.search._search import Progress

        try:
            stages = search_status(self._search.storage, self._search.name)
        except Exception:
            return  # nothing to show yet (or the database is busy): next time
        plan = self._search.plan.stages
        for index, summary in enumerate(stages):
            bar = self._bars.get(summary.name)
            if bar is None:
                bar = Progress(
                    plan[index],
                    index,
                    len(plan),
                    summary.spent,
                    total=summary.budget,
                    unit=summary.budget_unit[:-1],
                )
                self._bars[summary.name] = bar
            bar.update(summary.spent, summary.best_value)

    def close(self) -> None:
        self.poll()
        for bar in self._bars.values():
            bar.close()


def _stage_lines(
    storage: BaseStorage, stages: Sequence[StageSummary], metric: str
) -> dict[str, tuple[bool, str]]:
    """Per stage: whether it is the range test, and one line on what its kind found."""
    import optuna

    from stagetune.search._stages import stage_line
    from stagetune.storage import StudyAttr

    lines = {}
    for stage in stages:
        study = optuna.load_study(study_name=stage.study_name, storage=storage)
        lines[stage.name] = (StudyAttr.RANGE_TEST in study.user_attrs, stage_line(study, metric))
    return lines


def _print_result(result: SearchResult, metric: str, storage: BaseStorage | None = None) -> None:
    details = _stage_lines(storage, result.stages, metric) if storage is not None else {}
    print(f"\nSearch {result.name!r}: best validation {metric} per stage")
    for stage in result.stages:
        range_test, detail = details.get(stage.name, (False, ""))
        if range_test:  # its value is a loss, not the metric
            print(f"  {stage.name:<16} {detail}")
            continue
        params = ", ".join(f"{k}={fmt(v)}" for k, v in stage.best_params.items())
        print(
            f"  {stage.name:<16} val_{metric}={fmt(stage.best_value)}  {params}  "
            f"({stage.complete} complete, {stage.pruned} pruned)"
        )
        if detail:
            print(f"  {'':<16}   {detail}")
    final = ", ".join(f"{k}={fmt(v)}" for k, v in sorted(result.best_params.items()))
    print(f"Final hyperparameters: {final}")


def _cmd_status(args: argparse.Namespace) -> int:
    from stagetune.search._read import search_status
    from stagetune.storage import open_storage

    quiet_optuna()
    storage = open_storage(args.storage, read_only=True)
    stages = search_status(storage, args.name)
    print(f"Search {args.name!r}")
    for stage in stages:
        _print_stage(stage)
        if stage.orphaned or stage.retried:
            _print_trouble(storage, stage)
    return 0


def _print_trouble(storage: Any, stage: StageSummary) -> None:
    """One line per orphaned trial and per retry, under the stage's line."""
    import optuna

    from stagetune.storage import TrialSystemAttr, find_orphans

    study = optuna.load_study(study_name=stage.study_name, storage=storage)
    for orphan in find_orphans(study):
        print(f"      trial {orphan.number}: orphaned, {orphan.reason}; the next run retries it")
    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    for trial in trials:
        history = trial.system_attrs.get(TrialSystemAttr.RETRY_HISTORY)
        if not history:
            continue
        failed = by_number.get(history[-1])
        why = failed.system_attrs.get(TrialSystemAttr.INTERRUPTED) if failed is not None else None
        cause = f"stopped by {why}" if why else "its worker died"
        print(
            f"      trial {trial.number}: retry of trial {history[-1]} ({cause}), "
            f"{trial.state.name}"
        )


def _print_stage(stage: StageSummary) -> None:
    busy = stage.finished or stage.running or stage.failed
    state = "done" if stage.done else "in progress" if busy else "not started"
    params = ", ".join(f"{k}={fmt(v)}" for k, v in stage.best_params.items()) or "-"
    extra = ""
    if stage.running or stage.failed or stage.retried or stage.waiting:
        orphaned = f" ({stage.orphaned} orphaned)" if stage.orphaned else ""
        extra = (
            f"  [running {stage.running}{orphaned}, waiting {stage.waiting}, "
            f"failed {stage.failed}, retried {stage.retried}]"
        )
    if stage.budget_unit == "epochs":
        spent = (
            f"{stage.epochs_spent}/{stage.budget} epochs, {stage.finished} trials "
            f"({stage.pruned} pruned)"
        )
    else:
        spent = f"{stage.finished}/{stage.budget} finished ({stage.pruned} pruned)"
    print(
        f"  {stage.name:<16} {spent}  {state:<11}  best={fmt(stage.best_value)}  {params}{extra}"
    )


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from stagetune.search._dashboard import is_loopback, serve_dashboard
    from stagetune.storage import open_artifacts, open_storage

    if not 0 <= args.port <= 65535:
        raise SearchError(f"--port must be in 0..65535, but got {args.port}.")
    storage = open_storage(args.storage, read_only=True)
    if not is_loopback(args.host):
        print(
            f"stagetune: warning: optuna-dashboard has no authentication; anyone who can "
            f"reach {args.host}:{args.port} can read, change and delete the studies.",
            file=sys.stderr,
        )

    def ready(url: str) -> None:
        print(f"stagetune: dashboard at {url} (Ctrl-C stops it)", flush=True)

    artifacts = open_artifacts(args.artifacts, args.storage, create=False)
    serve_dashboard(
        storage, host=args.host, port=args.port, on_ready=ready, artifact_store=artifacts
    )
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from stagetune.search._report import write_report
    from stagetune.storage import open_storage

    quiet_optuna()
    files = write_report(open_storage(args.storage, read_only=True), args.name, out_dir=args.out)
    print(f"stagetune: report {files.html}")
    print(f"stagetune: {len(files.images)} PNG images in {files.image_dir}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from stagetune.search._export import export_trials
    from stagetune.storage import open_storage

    quiet_optuna()
    if args.model is not None:
        from stagetune.search._models import export_model
        from stagetune.storage import open_artifacts

        storage = open_storage(args.storage, read_only=True)
        artifacts = open_artifacts(args.artifacts, args.storage, create=False)
        found = export_model(storage, args.name, args.model, artifacts=artifacts)
        print(
            f"stagetune: the final run's model of search {args.name!r} ({found.task}, "
            f"best epoch {found.best_epoch}) written to {args.model}"
        )
        return 0
    out = args.out or f"{args.name}-trials.csv"
    path = export_trials(open_storage(args.storage, read_only=True), args.name, out)
    print(f"stagetune: trials of search {args.name!r} written to {path}")
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from stagetune.objectives import TASKS

    for name, task in sorted(TASKS.items()):
        print(
            f"{name:<20} profile={task.profile:<12} {task.epochs:>3} epochs, "
            f"{task.direction} val {task.metric_name}  {task.description}"
        )
    print("\nYour own model: --task module:attribute or --task path/to/file.py:attribute")
    print("(a stagetune.objectives.Task, or a function returning one; see examples/own_model.py).")
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from stagetune.spaces import PROFILES, get_profile, plan_to_toml

    if args.name:
        profile = get_profile(args.name)
        for note in profile.notes:
            for line in note.splitlines():
                print(f"# {line}")
        print(plan_to_toml(profile.plan()), end="")
        return 0
    titles = (
        ("profile", "Profiles: pick the one for your model's family (--profile NAME)"),
        ("recipe", "Recipes (guide, Common Recipes): a profile with the recipe's values"),
    )
    for kind, title in titles:
        print(f"{title}:")
        for name, profile in PROFILES.items():
            if profile.kind == kind:
                print(f"  {name:<22} for {profile.suits}")
                print(f"  {'':<22}   {profile.description}")
    plan = PROFILES["mlp"].plan()
    stages = " -> ".join(PROFILES["mlp"].order)
    shares = ", ".join(f"{name} {f * 100:g}%" for name, f in plan.stage_fractions().items())
    print(f"Every plan: {stages}; `stagetune profiles NAME` prints one as a plan file.")
    print(
        f"Budget: {plan.budget} trial-equivalents of trained epochs (--budget N), split "
        f"{shares}; the range test and the final run are one trial each."
    )
    return 0


def _cmd_ask(args: argparse.Namespace) -> int:
    import json

    from stagetune.search._asktell import AskTell, NoTrialYet, external_search, parent_pid
    from stagetune.search._search import SearchError
    from stagetune.spaces import default_plan, load_plan

    if args.trials is not None and args.trials < 1:
        raise SearchError(f"--trials must be >= 1, but got {args.trials}.")
    quiet_optuna()
    plan = None
    if args.config:
        plan = load_plan(args.config)
    elif args.profile or args.trials is not None:
        plan = default_plan(args.profile or "mlp")
    if plan is not None and args.trials is not None:
        plan = plan.with_trials(args.trials)
    search = external_search(
        args.storage,
        args.name,
        plan=plan,
        epochs=args.epochs,
        direction=args.direction,
        metric=args.metric,
        seed=args.seed,
    )
    search.prepare()
    session = AskTell(search, owner=args.pid if args.pid is not None else parent_pid())
    try:
        trial = session.ask(timeout=args.timeout)
    except NoTrialYet as error:
        print(f"stagetune: {error}", file=sys.stderr)
        return EXIT_NO_TRIAL_YET
    if trial is None:
        result = search.result()
        done: dict[str, Any] = {"done": True}
        if result is not None:
            done.update(best_value=result.best_value, best_params=result.best_params)
        print(json.dumps(done))
        return EXIT_SEARCH_DONE
    print(json.dumps(trial.to_json()))
    return 0


def _cmd_tell_epoch(args: argparse.Namespace) -> int:
    from stagetune.search._asktell import AskTell, external_search

    quiet_optuna()
    session = AskTell(external_search(args.storage, args.name))
    stop = session.report(
        args.trial, args.epoch, args.value, train_loss=args.train_loss, val_loss=args.val_loss
    )
    print("stop" if stop else "continue")
    return 0


def _cmd_tell(args: argparse.Namespace) -> int:
    from stagetune.search._asktell import AskTell, external_search

    quiet_optuna()
    session = AskTell(external_search(args.storage, args.name))
    if args.failed is not None:
        state = session.fail(args.trial, args.failed)
    else:
        state = session.tell(args.trial, None if args.last else args.value)
    print(state)
    return 0


_COMMANDS = {
    "ask": _cmd_ask,
    "tell-epoch": _cmd_tell_epoch,
    "tell": _cmd_tell,
    "run": _cmd_run,
    "status": _cmd_status,
    "dashboard": _cmd_dashboard,
    "report": _cmd_report,
    "export": _cmd_export,
    "tasks": _cmd_tasks,
    "profiles": _cmd_profiles,
}
