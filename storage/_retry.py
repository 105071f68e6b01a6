"""Retrying storage calls that failed only because the database was busy.

SQLite answers "database is locked" when another connection held the write lock
for longer than the busy timeout; PostgreSQL can abort a transaction with a
deadlock or serialization failure, or drop a connection. In each case nothing
was committed, so running the same storage call again is safe. Optuna turns
these errors into a failed trial (and, when ``tell`` fails, an orphaned RUNNING
trial behind ``AssertionError("Should not reach.")``); stagetune's storage
retries each call instead, for up to ``retry_for`` seconds
(:class:`~stagetune.storage._rdb.RetryingRDBStorage` wraps the calls listed here).
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Container
from types import SimpleNamespace
from typing import Any, TypeVar

_logger = logging.getLogger("stagetune.storage")
T = TypeVar("T")

#: Seconds a storage call keeps retrying a busy or lost database before it gives up.
RETRY_FOR = 600.0

_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")
#: PostgreSQL SQLSTATEs: serialization_failure, deadlock_detected, lock_not_available.
_POSTGRES_BUSY = frozenset({"40001", "40P01", "55P03"})

#: RDBStorage methods that each run in one transaction, so that a failed call
#: committed nothing and can run again.
_RETRIED = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_all_studies",
    "create_new_trial",
    "set_trial_param",
    "get_trial_param",
    "set_trial_state_values",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial_params",
    "get_trial",
    "get_all_trials",
    "get_n_trials",
    "get_best_trial",
    "record_heartbeat",
    "_get_stale_trial_ids",
    # the read that _CachedStorage.get_all_trials makes on its backend directly, past
    # the public methods above (a cut connection there ended a worker)
    "_get_trials",
)

#: PostgreSQL's too_many_connections (max_connections, or a role's or database's
#: CONNECTION LIMIT), and the texts of the same refusal from servers and drivers.
_POSTGRES_FULL = "53300"
_FULL = ("too many clients", "too many connections", "remaining connection slots are reserved")

#: A dropped connection may have committed (the answer to COMMIT was lost):
#: creating a trial again could create two, so that call is not retried then.
_NOT_RETRIED_AFTER_DISCONNECT = frozenset({"create_new_trial", "create_new_study"})


def transient_kind(error: BaseException) -> str | None:
    """``"busy"``, ``"full"``, ``"disconnect"`` or ``None``: whether ``error`` is worth retrying.

    ``"full"``: the server refused a new connection (all ``max_connections`` in
    use, e.g. by many workers); nothing ran, and a connection frees up when
    another worker's lock or trial ends.

    Looks through the chain of causes, since Optuna wraps SQLAlchemy's errors
    in ``StorageInternalError``.
    """
    import sqlalchemy.exc

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlalchemy.exc.DBAPIError):
            orig = current.orig
            message = str(orig).lower()
            if any(text in message for text in _SQLITE_BUSY):
                return "busy"
            code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
            if code in _POSTGRES_BUSY:
                return "busy"
            if code == _POSTGRES_FULL or any(text in message for text in _FULL):
                return "full"
            if current.connection_invalidated:
                return "disconnect"
        current = current.__cause__ or current.__context__
    return None


_state = threading.local()
_WHAT = {
    "busy": "busy (locked)",
    "full": "out of connections (max_connections)",
    "disconnect": "unreachable",
}


def call_retrying(
    name: str, function: Callable[[], T], *, retry_for: float, kinds: Container[str]
) -> T:
    """``function()``, run again while it fails with an error of ``kinds`` (see
    :func:`transient_kind`), for up to ``retry_for`` seconds, e.g. to connect
    while the server has no free connection."""
    return _call_with_retry(
        SimpleNamespace(retry_for=retry_for), name, lambda _: function(), (), {}, kinds=kinds
    )


def _call_with_retry(
    storage: Any,
    name: str,
    method: Callable[..., Any],
    args: Any,
    kwargs: Any,
    *,
    kinds: Container[str] = ("busy", "full", "disconnect"),
) -> Any:
    if getattr(_state, "depth", 0):
        # An outer storage call retries as a whole; inner calls do not retry on their own.
        return method(storage, *args, **kwargs)
    deadline = time.monotonic() + storage.retry_for
    attempt = 0
    while True:
        _state.depth = 1
        try:
            return method(storage, *args, **kwargs)
        except Exception as error:
            kind = transient_kind(error)
            if (
                kind not in kinds
                or (kind == "disconnect" and name in _NOT_RETRIED_AFTER_DISCONNECT)
                or time.monotonic() >= deadline
            ):
                raise
            attempt += 1
            if attempt == 1 or attempt % 10 == 0:
                what = _WHAT.get(kind or "", kind)
                _logger.warning(
                    "stagetune: the database is %s during %s; retrying (attempt %d, up to %.0f s)",
                    what,
                    name,
                    attempt,
                    storage.retry_for,
                )
        finally:
            _state.depth = 0
        time.sleep(min(0.05 * 2**attempt, 2.0) * (0.5 + random.random()))


def _retrying(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _call_with_retry(self, name, method, args, kwargs)

    return wrapper
