"""An Optuna storage with fewer database round trips for a running trial.

Optuna's RDB storage (through its ``_CachedStorage`` wrapper) commits every
``trial.report`` and reloads the study's unfinished trials, with all their
reports, on every ``trial.should_prune``. On SQLite that costs several
milliseconds per epoch. This storage changes two things and nothing else:

* **Reports and user attributes of a running trial are written behind**: the
  first report of a trial is committed at once (a running trial shows its
  progress); later ones are kept in memory and committed in one transaction
  with the first report that comes ``flush_interval`` seconds or more after
  the oldest unwritten one, and always before the trial's state changes
  (complete, pruned, failed). Reads through this storage see them at once. A
  process that dies mid-trial loses the running trial's reports since its last
  commit (about ``flush_interval`` seconds of them); that trial is failed and
  re-run anyway. Nothing of a finished trial is ever lost: its state
  is committed after everything it wrote. Only writes to trials that this
  storage created or set running are held; a write to any other trial goes to
  the database at once, so it fails at the call when the trial does not exist
  or has finished (``KeyError``, ``UpdateFinishedTrialError``), as Optuna's do.
* **Reads of finished trials ask the database one small question** ("has any
  trial finished since?") instead of reloading the unfinished ones; finished
  trials never change, so the answer is exact, not a cache that may be stale.

Everything else (system attributes, parameters, states, heartbeats, studies)
goes straight to the database as before.

Both rely on Optuna's private ``_CachedStorage`` and table models, so
``pyproject.toml`` allows only the Optuna releases this was tested with, and
``_optuna_internals.py`` lists (and a test checks) every private name used.
Measured with ``benchmarks/overhead.py``: without this class (WAL and
``synchronous=NORMAL`` alone) SQLite costs about three times as much per trial,
well above the 5%-of-a-1-second-trial target (see docs/storage.md).
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import functools
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage, _CachedStorage
from optuna.trial import TrialState

if TYPE_CHECKING:
    import sqlalchemy.engine
    import sqlalchemy.sql
    from optuna.trial import FrozenTrial

#: Seconds a running trial's reports may wait in memory before they are committed.
FLUSH_INTERVAL = 1.0

_FINISHED = frozenset(state for state in TrialState if state.is_finished())


@dataclass
class _Pending:
    """Unwritten reports and user attributes of one trial."""

    since: float
    intermediate: dict[int, float] = field(default_factory=dict)
    user_attrs: dict[str, Any] = field(default_factory=dict)

    def merge_older(self, older: _Pending) -> None:
        """Take back ``older``'s values that this one has not overwritten."""
        self.since = min(self.since, older.since)
        self.intermediate = {**older.intermediate, **self.intermediate}
        self.user_attrs = {**older.user_attrs, **self.user_attrs}


class BufferedStorage(_CachedStorage):
    """Optuna's cached RDB storage with written-behind reports and cheap finished-trial reads.

    Args:
        backend: The RDB storage that holds the data.
        flush_interval: Seconds a running trial's reports and user attributes
            may stay in memory (0 writes each at once, like Optuna).

    Example:
        >>> import optuna, tempfile, os
        >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "b.db")
        >>> storage = BufferedStorage(optuna.storages.RDBStorage(url))
        >>> study = optuna.create_study(storage=storage)
        >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        >>> len(optuna.load_study(study_name=study.study_name, storage=url).trials)
        2
    """

    def __init__(self, backend: RDBStorage, *, flush_interval: float = FLUSH_INTERVAL) -> None:
        super().__init__(backend)
        if not flush_interval >= 0:
            raise ValueError(f"flush_interval must be >= 0, but got {flush_interval!r}.")
        self.flush_interval = flush_interval
        self._pending: dict[int, _Pending] = {}
        self._pending_lock = threading.Lock()
        self._reported: set[int] = set()
        #: Trials this storage created running or set running: their writes may be held.
        self._running_here: set[int] = set()
        self._confirmed: dict[tuple[int, tuple[TrialState, ...]], int] = {}
        self._sqlite_file = _sqlite_file(backend)
        self._version_connection: tuple[int, sqlite3.Connection] | None = None
        self._version_lock = threading.Lock()
        _flush_at_exit(self)

    # -- what callers of an RDBStorage expect ------------------------------------------

    @property
    def backend(self) -> RDBStorage:
        """The RDB storage underneath."""
        return self._backend

    @property
    def url(self) -> str:
        return str(self._backend.url)

    @property
    def engine(self) -> sqlalchemy.engine.Engine:
        return self._backend.engine

    def __getattr__(self, name: str) -> Any:
        # Anything else an RDBStorage has (scoped_session, heartbeat settings, ...).
        backend = self.__dict__.get("_backend")
        if backend is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(backend, name)

    def __getstate__(self) -> dict[Any, Any]:
        self.flush()
        state = super().__getstate__()
        for unpicklable in ("_pending_lock", "_version_lock", "_version_connection"):
            del state[unpicklable]
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._pending_lock = threading.Lock()
        self._version_lock = threading.Lock()
        self._version_connection = None
        _flush_at_exit(self)

    # -- writes held back ----------------------------------------------------------------

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        if not self._hold(
            trial_id, lambda p: p.intermediate.__setitem__(step, intermediate_value)
        ):
            super().set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        json.dumps(value)  # a value the database cannot hold fails here, not at the flush
        if not self._hold(trial_id, lambda p: p.user_attrs.__setitem__(key, value), report=False):
            super().set_trial_user_attr(trial_id, key, value)

    def _hold(
        self, trial_id: int, write: Callable[[_Pending], object], *, report: bool = True
    ) -> bool:
        """Hold a write to a trial that this storage set running; ``False``: not held.

        Writes to any other trial (one that does not exist, is finished, or runs
        in another process) go to the database at once, so that they fail at the
        call as Optuna's do (``KeyError``, ``UpdateFinishedTrialError``).
        """
        now = time.monotonic()
        with self._pending_lock:
            if trial_id not in self._running_here:
                return False
            pending = self._pending.setdefault(trial_id, _Pending(since=now))
            write(pending)
            due = now - pending.since >= self.flush_interval
            if report and trial_id not in self._reported:
                # A trial's first report goes out at once: a running trial shows progress.
                self._reported.add(trial_id)
                due = True
        if due:
            self.flush(trial_id)
        return True

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        trial_id = super().create_new_trial(study_id, template_trial)
        if template_trial is None or template_trial.state == TrialState.RUNNING:
            with self._pending_lock:
                self._running_here.add(trial_id)
        return trial_id

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        # Everything the trial wrote is committed before its new state.
        self.flush(trial_id)
        with self._pending_lock:
            self._reported.discard(trial_id)
            self._running_here.discard(trial_id)
        changed = super().set_trial_state_values(trial_id, state=state, values=values)
        if changed and state == TrialState.RUNNING:
            with self._pending_lock:
                self._running_here.add(trial_id)
        return changed

    def flush(self, trial_id: int | None = None) -> None:
        """Commit the held reports and user attributes (of one trial, or of all).

        One transaction per trial. On an error the values are held again and
        the error propagates; after ``UpdateFinishedTrialError`` (another worker
        already failed the trial) that trial's values are dropped instead, since
        no later flush could write them.
        """
        with self._pending_lock:
            ids = list(self._pending) if trial_id is None else [trial_id]
            batches = [(i, self._pending.pop(i)) for i in ids if i in self._pending]
        for index, (held_id, pending) in enumerate(batches):
            try:
                self._retrying("flush", self._write, held_id, pending)
            except BaseException as error:
                # Another worker finished the trial (failed it as orphaned): its
                # held values can never be written, so they are dropped.
                dropped = isinstance(error, UpdateFinishedTrialError)
                with self._pending_lock:
                    if dropped:  # later writes to it go to the database and fail there
                        self._running_here.discard(held_id)
                    for again_id, again in batches[index + dropped :]:
                        newer = self._pending.get(again_id)
                        if newer is None:
                            self._pending[again_id] = again
                        else:
                            newer.merge_older(again)
                raise

    def _write(self, trial_id: int, pending: _Pending) -> None:
        """One transaction: check the trial is running, replace the held steps and keys."""
        import sqlalchemy
        from optuna.storages._rdb import models

        trials = models.TrialModel.__table__
        values = models.TrialIntermediateValueModel.__table__
        attrs = models.TrialUserAttributeModel.__table__
        with self._backend.engine.begin() as connection:
            state = connection.execute(
                sqlalchemy.select(trials.c.state).where(trials.c.trial_id == trial_id)
            ).scalar_one_or_none()
            if state is None:
                raise KeyError(f"No trial with trial_id {trial_id} exists.")
            self._backend.check_trial_is_updatable(trial_id, state)
            if pending.intermediate:
                steps = sorted(pending.intermediate)
                connection.execute(
                    sqlalchemy.delete(values).where(
                        values.c.trial_id == trial_id, values.c.step.in_(steps)
                    )
                )
                rows = []
                for step in steps:
                    stored, kind = (
                        models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(
                            pending.intermediate[step]
                        )
                    )
                    rows.append(
                        {
                            "trial_id": trial_id,
                            "step": step,
                            "intermediate_value": stored,
                            "intermediate_value_type": kind,
                        }
                    )
                connection.execute(sqlalchemy.insert(values), rows)
            if pending.user_attrs:
                keys = sorted(pending.user_attrs)
                connection.execute(
                    sqlalchemy.delete(attrs).where(
                        attrs.c.trial_id == trial_id, attrs.c.key.in_(keys)
                    )
                )
                connection.execute(
                    sqlalchemy.insert(attrs),
                    [
                        {
                            "trial_id": trial_id,
                            "key": key,
                            "value_json": json.dumps(pending.user_attrs[key]),
                        }
                        for key in keys
                    ],
                )

    def _retrying(self, name: str, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)``, retried like the RDB storage's own calls while the
        database is busy or the connection was lost (see ``stagetune.storage._retry``)."""
        from stagetune.storage._retry import _call_with_retry

        if not hasattr(self._backend, "retry_for"):
            return function(*args)
        return _call_with_retry(
            self._backend, name, lambda _backend, *rest: function(*rest), args, {}
        )

    # -- reads see the held writes ---------------------------------------------------------

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._with_pending(super().get_trial(trial_id))

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        trials = self._finished_trials(study_id, states)
        if trials is None:
            trials = super().get_all_trials(study_id, deepcopy=False, states=states)
        if self._pending:
            trials = [self._with_pending(trial) for trial in trials]
        return copy.deepcopy(trials) if deepcopy else trials

    def _with_pending(self, trial: FrozenTrial) -> FrozenTrial:
        with self._pending_lock:
            pending = self._pending.get(trial._trial_id)
            if pending is None:
                return trial
            trial = copy.copy(trial)
            trial.intermediate_values = {**trial.intermediate_values, **pending.intermediate}
            trial.user_attrs = {**trial.user_attrs, **pending.user_attrs}
        return trial

    def _finished_trials(
        self, study_id: int, states: Container[TrialState] | None
    ) -> list[FrozenTrial] | None:
        """Finished trials from the cache when no trial of ``states`` finished since it was filled.

        Returns ``None`` (read the usual way) unless every state asked for is
        a finished one and the database confirms that the cache is complete.
        """
        if states is None:
            return None
        wanted = [state for state in TrialState if state in states]
        if not wanted or not all(state in _FINISHED for state in wanted):
            return None
        key = (study_id, tuple(wanted))
        version = self._data_version()
        if version is None or self._confirmed.get(key) != version:
            with self._lock:
                study = self._studies.get(study_id)
                if study is None or not study.trials:
                    return None
                unfinished = set(study.unfinished_trial_ids)
                last_finished = study.last_finished_trial_id
            if self._finished_since(study_id, wanted, unfinished, last_finished):
                return None
            if version is not None:
                # Nothing committed since `version` can have finished a trial.
                self._confirmed[key] = version
        with self._lock:
            study = self._studies[study_id]
            return sorted(
                (t for t in study.trials.values() if t.state in states),
                key=lambda t: t.number,
            )

    def _data_version(self) -> int | None:
        """SQLite's ``PRAGMA data_version`` on a connection of our own: it changes whenever
        any other connection (another worker, or this process's pool) commits. ``None``
        for other databases, where every check asks the database."""
        if self._sqlite_file is None:
            return None
        with self._version_lock:
            try:
                owner = self._version_connection
                if owner is None or owner[0] != os.getpid():  # not across a fork
                    connection = sqlite3.connect(self._sqlite_file, check_same_thread=False)
                    self._version_connection = owner = (os.getpid(), connection)
                return int(owner[1].execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:
                return None

    def _finished_since(
        self, study_id: int, states: list[TrialState], unfinished: set[int], last_finished: int
    ) -> bool:
        """Whether a trial of ``states`` exists that the cache has as unfinished or not at all."""
        return bool(
            self._retrying(
                "get_all_trials", self._query_finished, study_id, states, unfinished, last_finished
            )
        )

    def _query_finished(
        self, study_id: int, states: list[TrialState], unfinished: set[int], last_finished: int
    ) -> bool:
        with self._backend.engine.connect() as connection:
            row = connection.execute(
                _finished_since_query(),
                {
                    "study_id": study_id,
                    "states": states,
                    "unfinished": sorted(unfinished),
                    "last_finished": last_finished,
                },
            ).first()
        return row is not None


@functools.cache
def _finished_since_query() -> sqlalchemy.sql.Select[Any]:
    """One cached, parameterised SELECT ... LIMIT 1 (a small fraction of an ORM query's cost)."""
    import sqlalchemy
    from optuna.storages._rdb import models

    trials = models.TrialModel.__table__.c
    return (
        sqlalchemy.select(trials.trial_id)
        .where(
            trials.study_id == sqlalchemy.bindparam("study_id"),
            trials.state.in_(sqlalchemy.bindparam("states", expanding=True)),
            sqlalchemy.or_(
                trials.trial_id.in_(sqlalchemy.bindparam("unfinished", expanding=True)),
                trials.trial_id > sqlalchemy.bindparam("last_finished"),
            ),
        )
        .limit(1)
    )


def _sqlite_file(backend: RDBStorage) -> str | None:
    """The file of a SQLite storage, or ``None`` (other databases, in-memory, URI names)."""
    url = backend.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if "uri" in url.query or not os.path.isfile(url.database):
        return None
    return url.database


def _flush_at_exit(storage: BufferedStorage) -> None:
    """Flush what a storage still holds when the interpreter exits (e.g. ask without tell)."""
    reference = weakref.ref(storage)

    def flush() -> None:
        alive = reference()
        if alive is not None:
            with contextlib.suppress(Exception):  # nothing can be reported at exit
                alive.flush()

    atexit.register(flush)
