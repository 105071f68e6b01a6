"""Staged searches: what users call from scripts, the CLI and the dashboard.

The modules of this package form layers; a module imports only modules below it
(``tests/test_imports.py`` fails otherwise), bottom first:

1. ``_errors`` (``SearchError``), ``_signals`` (SIGINT/SIGTERM as ``Interrupted``),
   ``_format`` (how values are shown), ``_budget`` (stage budgets: counting, claiming
   and capping trained epochs)
2. ``_trial`` (one claimed trial), ``_stages`` (what each stage kind does),
   ``_placement`` (each worker's device), ``_callbacks`` (callbacks for workers)
3. ``_barrier`` (one stage among any number of workers)
4. ``_read`` (the read side: a search's stage studies, one summary per stage)
5. ``_notes``, ``_resume``, ``_report``, ``_export``, ``_dashboard``, ``_models`` (what
   is built on it; the final run's model)
6. ``_search`` (``StagedSearch``: the stages in order)
7. ``_workers`` (N processes of one search), ``_asktell`` (trials run outside the process)
8. this face, and ``_cli`` (the ``stagetune`` command), imported by nothing but
   ``__main__``

docs/architecture.md says what each layer holds.
"""

from stagetune.search._asktell import AskedTrial, AskTell, NoTrialYet
from stagetune.search._budget import trained_epochs
from stagetune.search._callbacks import PerProcess
from stagetune.search._errors import SearchError, SearchTimeout
from stagetune.search._models import load_model
from stagetune.search._read import SearchResult, StageSummary, search_status
from stagetune.search._search import StagedSearch, task_plan
from stagetune.search._signals import Interrupted
from stagetune.search._workers import WorkerExit, run_workers

__all__ = [
    "AskTell",
    "AskedTrial",
    "Interrupted",
    "NoTrialYet",
    "PerProcess",
    "SearchError",
    "SearchResult",
    "SearchTimeout",
    "StageSummary",
    "StagedSearch",
    "WorkerExit",
    "load_model",
    "run_workers",
    "search_status",
    "task_plan",
    "trained_epochs",
]
