"""Storages whose search lock only works on one machine refuse a second machine.

stagetune's search lock spans machines on PostgreSQL (an advisory lock in the
server) and, for SQLite, is as wide as SQLite itself (one machine). For any other
database (MySQL, MariaDB, ...) it is a lock file in this machine's temporary
directory, which workers on other machines never see: two machines would count a
stage's trials at the same time and overshoot its budget. So the first machine to
take the lock on a stage study writes its name on the study, and a worker on any
other machine stops with a one-line error that names the way out (PostgreSQL).
"""

from __future__ import annotations

from typing import Any

from stagetune.storage._errors import StorageError
from stagetune.storage._keys import StudySystemAttr
from stagetune.storage._recovery import machine_identity

#: Study system attribute: the machine (host and boot id) that runs this search.
MACHINE_ATTR = StudySystemAttr.LOCK_MACHINE
#: Backends whose search lock is shared by every machine that reaches the database.
SHARED_LOCK_BACKENDS = frozenset({"postgresql", "sqlite"})


class OtherMachineError(StorageError):
    """A second machine joined a search whose storage has a single-machine lock."""


def this_machine() -> str:
    """``host/boot-id`` of this machine (containers on one host have their own hosts)."""
    machine = machine_identity()
    return f"{machine['host']}/{machine['boot'] or '-'}"


def check_one_machine(storage: Any, study_name: str, backend_name: str) -> None:
    """Under the search lock: record this machine on the study, or refuse another one.

    Does nothing for backends in :data:`SHARED_LOCK_BACKENDS` and for names that
    are not studies (the schema lock).

    Raises:
        OtherMachineError: The study was first locked from another machine.
    """
    if backend_name in SHARED_LOCK_BACKENDS:
        return
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return
    here = this_machine()
    first = storage.get_study_system_attrs(study_id).get(MACHINE_ATTR)
    if first is None:
        storage.set_study_system_attr(study_id, MACHINE_ATTR, here)
    elif first != here:
        raise OtherMachineError(
            f"This {backend_name} storage holds search study {study_name!r}, run from "
            f"machine {first.split('/')[0]!r}: stagetune's search lock on {backend_name} "
            f"only works on one machine; use PostgreSQL for several machines."
        )
