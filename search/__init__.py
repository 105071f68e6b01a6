"""Staged searches: what users call from scripts, the CLI and the dashboard."""

from search._search import SearchError, SearchResult, StagedSearch, StageSummary, search_status

__all__ = ["SearchError", "SearchResult", "StageSummary", "StagedSearch", "search_status"]
