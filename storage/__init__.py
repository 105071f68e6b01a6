"""Where studies live: storage URLs, SQLite/PostgreSQL, stage lineage, crash recovery."""

from storage._lineage import (
    LINEAGE_KEYS,
    StageLineage,
    read_lineage,
    search_stages,
    study_name,
    write_lineage,
)
from storage._recovery import WORKER_ATTR, claim_trial, recover_dead_trials
from storage._storage import (
    DEFAULT_STORAGE,
    StorageError,
    open_storage,
    redact,
    sqlite_path,
    storage_url,
)

__all__ = [
    "DEFAULT_STORAGE",
    "LINEAGE_KEYS",
    "WORKER_ATTR",
    "StageLineage",
    "StorageError",
    "claim_trial",
    "open_storage",
    "read_lineage",
    "recover_dead_trials",
    "redact",
    "search_stages",
    "sqlite_path",
    "storage_url",
    "study_name",
    "write_lineage",
]
