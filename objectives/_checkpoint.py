"""Checkpoints inside a trial, kept in an Optuna artifact store.

A trial's training state (model, optimizer, scheduler, gradient scaler, RNG
states, epoch, curves) is saved at the end of an epoch when at least
``every`` seconds have passed since the last save (or since training
started), and never more often than every ``SAVE_COST_FACTOR`` times the last
save's own duration, so that saving costs at most ``1 / SAVE_COST_FACTOR`` of
the training time for any model. A trial shorter than ``every`` seconds never
saves; ``every=0`` saves after every epoch, whatever it costs.

The protocol, with any Optuna artifact store (a crash at any step leaves a
checkpoint that is whole, or the previous one, and names every blob it may
leave behind so that the next owner removes it):

1. **announce**: the system attribute ``stagetune:checkpoint`` keeps its
   ``id`` and ``epoch`` and gains ``pending``, the fresh artifact id about to
   be written;
2. **write** the new state under that id;
3. **point** the attribute at it: ``{"id": new, "epoch": n, "previous": old}``
   (a trial that another worker has already failed refuses either write: the
   new blob is removed, or never written, and the old one kept, since the
   retry points at it);
4. **remove** the blob the trial pointed at before.

A retried trial (its worker was killed, SIGTERM'd, preempted) inherits the
system attributes of the trial it retries, so it finds the pointer, removes
the ``pending`` and ``previous`` blobs a crash may have left (neither is the
one pointed at), loads the pointed state and trains on from the next epoch.
A trial that finishes (complete, pruned, failed by an error) removes its
checkpoint.
"""

from __future__ import annotations

import io
import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stagetune.storage import TrialSystemAttr

if TYPE_CHECKING:
    import optuna
    from optuna.artifacts._protocol import ArtifactStore

#: Trial system attribute pointing at the trial's latest checkpoint.
CHECKPOINT_ATTR = TrialSystemAttr.CHECKPOINT
#: Seconds between checkpoints by default: trials shorter than this never save.
DEFAULT_CHECKPOINT_EVERY = 60.0
#: The next save waits at least this many times the last save's duration.
SAVE_COST_FACTOR = 50.0
#: Version of the checkpoint's layout; another version is not loaded.
FORMAT = 1

_logger = logging.getLogger("stagetune.objectives")


@dataclass(frozen=True)
class CheckpointPolicy:
    """Where and how often trials checkpoint.

    Args:
        store: An Optuna artifact store (``FileSystemArtifactStore``, ``Boto3ArtifactStore``,
            ...); every worker of a search must reach the same one for a retry on another
            machine to resume.
        every: Seconds between checkpoints (at epoch ends); ``0`` saves every epoch.
    """

    store: ArtifactStore
    every: float = DEFAULT_CHECKPOINT_EVERY

    def __post_init__(self) -> None:
        every = self.every
        if isinstance(every, bool) or not isinstance(every, (int, float)) or not every >= 0:
            raise ValueError(f"checkpoint interval must be >= 0 seconds, but got {every!r}.")

    def for_trial(self, trial: optuna.Trial) -> TrialCheckpoint:
        return TrialCheckpoint(self.store, trial, every=float(self.every))


def rng_state() -> dict[str, Any]:
    """Every random number generator a training loop may draw from."""
    import numpy as np
    import torch

    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class TrialCheckpoint:
    """The checkpoint of one trial: load, save when due, discard.

    Args:
        store: The artifact store.
        trial: The running trial (a retry finds its original's pointer).
        every: Seconds between saves.
    """

    def __init__(self, store: ArtifactStore, trial: optuna.Trial, *, every: float) -> None:
        self._store = store
        self._trial = trial
        self._every = every
        self._last = time.monotonic()
        self._wait = every
        self._current: dict[str, Any] | None = None
        self._read = False  # whether _current holds the stored pointer
        self.saves = 0
        self.save_seconds = 0.0

    def _pointer(self) -> dict[str, Any] | None:
        """The stored pointer, read once (then this object is the only writer).

        A pointer inherited from a crashed run may name blobs that run left behind: one
        it had not finished pointing at (``pending``) and one it had not yet removed
        (``previous``). Neither is the checkpoint, so both are removed here.
        """
        if not self._read:
            trial = self._trial
            pointer = trial.storage.get_trial_system_attrs(trial._trial_id).get(CHECKPOINT_ATTR)
            self._current = pointer if isinstance(pointer, dict) else None
            self._read = True
            for leftover in _leftovers(self._current):
                self._remove(leftover)
        return self._current

    def _point(self, pointer: dict[str, Any]) -> None:
        trial = self._trial
        trial.storage.set_trial_system_attr(trial._trial_id, CHECKPOINT_ATTR, pointer)
        self._current = pointer

    def load(self) -> dict[str, Any] | None:
        """The saved state, or ``None`` (no checkpoint, or one that cannot be read)."""
        import torch

        pointer = self._pointer()
        if pointer is None or pointer.get("id") is None:
            return None
        try:
            with self._store.open_reader(pointer["id"]) as reader:
                data = reader.read()
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
        except Exception as error:  # missing or unreadable: train from the start
            _logger.warning(
                "stagetune: trial %d: checkpoint %s cannot be read (%r); training from epoch 1.",
                self._trial.number,
                pointer.get("id"),
                error,
            )
            return None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            return None
        self._last = time.monotonic()
        return state

    def due(self) -> bool:
        """Whether enough time has passed since the last save (or the start)."""
        return time.monotonic() - self._last >= self._wait

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` (a dict of tensors and plain values) and point the trial at it."""
        import optuna
        import torch

        started = time.monotonic()
        buffer = io.BytesIO()
        torch.save({**state, "format": FORMAT}, buffer)
        buffer.seek(0)
        new_id = f"stagetune-checkpoint-{uuid.uuid4()}"
        old = self._pointer()
        old_id = None if old is None else old.get("id")
        kept = {"id": old_id, "epoch": None if old is None else old.get("epoch")}
        try:  # 1) announce
            self._point({**kept, "pending": new_id})
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # failed by another worker: its retry owns the old one
        self._store.write(new_id, buffer)  # 2) write
        try:  # 3) point
            self._point({"id": new_id, "epoch": state.get("epoch"), "previous": old_id})
        except optuna.exceptions.UpdateFinishedTrialError:
            self._remove(new_id)  # failed by another worker meanwhile
            return
        if old_id is not None:  # 4) remove
            self._remove(old_id)
        now = time.monotonic()
        seconds = now - started
        self.saves += 1
        self.save_seconds += seconds
        self._last = now
        # every=0 asks for every epoch; otherwise saving may cost at most 1/SAVE_COST_FACTOR
        self._wait = max(self._every, SAVE_COST_FACTOR * seconds) if self._every else 0.0

    def discard(self) -> None:
        """Remove the trial's checkpoint, unless another worker already failed the trial
        (its retry resumes from it)."""
        from optuna.trial import TrialState

        trial = self._trial
        pointer = self._pointer()
        if pointer is None:
            return
        if trial.storage.get_trial(trial._trial_id).state != TrialState.RUNNING:
            return
        for artifact_id in (pointer.get("id"), *_leftovers(pointer)):
            if artifact_id is not None:
                self._remove(artifact_id)

    def _remove(self, artifact_id: str) -> None:
        try:
            self._store.remove(artifact_id)
        except Exception as error:  # already gone, or the store is down: it only costs space
            _logger.debug("stagetune: checkpoint %s not removed: %r", artifact_id, error)


def _leftovers(pointer: dict[str, Any] | None) -> list[str]:
    """The blobs a pointer names besides its checkpoint: a crash may have left them."""
    if pointer is None:
        return []
    current = pointer.get("id")
    return [
        pointer[key]
        for key in ("pending", "previous")
        if isinstance(pointer.get(key), str) and pointer[key] != current
    ]
