"""Staged searches: what users call from scripts, the CLI and the dashboard."""

from stagetune.search._search import (
    SearchError,
    SearchResult,
    StagedSearch,
    StageSummary,
    search_status,
)
from stagetune.search._workers import Interrupted, WorkerExit, run_workers

__all__ = [
    "Interrupted",
    "SearchError",
    "SearchResult",
    "StageSummary",
    "StagedSearch",
    "WorkerExit",
    "run_workers",
    "search_status",
]
