"""Optuna callbacks after every finished trial, and how they reach worker processes.

``StagedSearch(callbacks=[...])`` calls each with ``(study, frozen_trial)`` after every
trial its process finishes, as ``study.optimize(callbacks=...)`` does. Worker processes
(``--workers``, ``run_workers``) get them pickled; a tracker that cannot be pickled
(optuna-integration's ``MLflowCallback`` holds a lock) goes in a :class:`PerProcess`,
which builds it in each process on first use.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from stagetune.search._errors import SearchError

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


class PerProcess:
    """A callback built by ``factory`` in each process that uses it.

    Args:
        factory: Returns the callback; it must pickle (a module-level function, a class,
            or ``functools.partial`` of one).

    Example:
        >>> import functools
        >>> from optuna_integration.mlflow import MLflowCallback  # doctest: +SKIP
        >>> tracker = PerProcess(  # doctest: +SKIP
        ...     functools.partial(MLflowCallback, tracking_uri="sqlite:///mlflow.db")
        ... )
    """

    def __init__(self, factory: Callable[[], Callable[[optuna.Study, FrozenTrial], None]]):
        self.factory = factory
        self._callback: Callable[[optuna.Study, FrozenTrial], None] | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self._callback is None:
            self._callback = self.factory()
        self._callback(study, trial)

    def __getstate__(self) -> dict[str, Any]:
        return {"factory": self.factory, "_callback": None}


def check_picklable(callbacks: Sequence[Any]) -> None:
    """Raise a :class:`SearchError` naming the fix if a callback cannot reach a worker."""
    for callback in callbacks:
        try:
            pickle.dumps(callback)
        except Exception as error:
            name = type(callback).__name__
            raise SearchError(
                f"The callback {name} cannot be sent to worker processes ({error}); "
                f"wrap it as stagetune.search.PerProcess(functools.partial({name}, ...)) "
                f"so that each worker builds its own."
            ) from None
