"""Where studies live: storage URLs, SQLite/PostgreSQL, locks, stage lineage, crash recovery."""

from stagetune.storage._artifacts import default_artifacts_dir, open_artifacts
from stagetune.storage._buffered import FLUSH_INTERVAL, BufferedStorage
from stagetune.storage._keys import StudyAttr, StudySystemAttr, TrialAttr, TrialSystemAttr
from stagetune.storage._lineage import (
    LINEAGE_KEYS,
    SearchNameError,
    SearchSettings,
    StageLineage,
    read_lineage,
    read_settings,
    search_stages,
    study_name,
    write_attrs,
    write_lineage,
    write_settings,
)
from stagetune.storage._locking import LockTimeoutError, search_lock
from stagetune.storage._recovery import (
    DEFAULT_MAX_AGE,
    INTERRUPTED_ATTR,
    WORKER_ATTR,
    Orphan,
    claim_trial,
    fail_and_retry,
    find_orphans,
    recover_dead_trials,
    retry_callback,
    worker_identity,
)
from stagetune.storage._retry import transient_kind
from stagetune.storage._storage import (
    DEFAULT_STORAGE,
    StorageError,
    open_storage,
    redact,
    sqlite_path,
    storage_url,
)

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_STORAGE",
    "FLUSH_INTERVAL",
    "INTERRUPTED_ATTR",
    "LINEAGE_KEYS",
    "WORKER_ATTR",
    "BufferedStorage",
    "LockTimeoutError",
    "Orphan",
    "SearchNameError",
    "SearchSettings",
    "StageLineage",
    "StorageError",
    "StudyAttr",
    "StudySystemAttr",
    "TrialAttr",
    "TrialSystemAttr",
    "claim_trial",
    "default_artifacts_dir",
    "fail_and_retry",
    "find_orphans",
    "open_artifacts",
    "open_storage",
    "read_lineage",
    "read_settings",
    "recover_dead_trials",
    "redact",
    "retry_callback",
    "search_lock",
    "search_stages",
    "sqlite_path",
    "storage_url",
    "study_name",
    "transient_kind",
    "worker_identity",
    "write_attrs",
    "write_lineage",
    "write_settings",
]
