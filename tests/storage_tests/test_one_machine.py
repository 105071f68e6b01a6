"""MySQL and other databases without a cross-machine lock refuse a second machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from stagetune.storage import open_storage
from stagetune.storage._one_machine import MACHINE_ATTR, check_one_machine, this_machine

ROOT = Path(__file__).resolve().parents[2]
FROM_OTHER_HOST = """
import sys
from stagetune.storage import open_storage
from stagetune.storage._one_machine import check_one_machine
try:
    check_one_machine(open_storage(sys.argv[1]), "s/lr", "mysql")
except Exception as error:
    print(f"{type(error).__name__}: {error}")
"""


def test_a_shared_lock_backend_records_nothing(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    study = optuna.create_study(storage=storage, study_name="s/lr")
    check_one_machine(storage, "s/lr", "sqlite")
    check_one_machine(storage, "s/lr", "postgresql")
    assert MACHINE_ATTR not in storage.get_study_system_attrs(study._study_id)


def test_a_second_machine_is_refused_with_one_line(sqlite_url: str) -> None:
    """The storage is SQLite here; the check runs as it would for a MySQL URL."""
    storage = open_storage(sqlite_url)
    study = optuna.create_study(storage=storage, study_name="s/lr")
    check_one_machine(storage, "s/lr", "mysql")
    check_one_machine(storage, "s/lr", "mysql")  # the same machine again: fine
    check_one_machine(storage, "schema", "mysql")  # not a study: nothing to check
    assert storage.get_study_system_attrs(study._study_id)[MACHINE_ATTR] == this_machine()
    argv = [
        "unshare", "--uts", "sh", "-c", 'hostname stagetune-other && exec "$@"', "sh",
        sys.executable, "-c", FROM_OTHER_HOST, sqlite_url,
    ]  # fmt: skip
    try:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    except OSError as error:
        pytest.skip(f"cannot run unshare here: {error}")
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"cannot make a UTS namespace here (run as root): {done.stderr.strip()}")
    assert done.stdout.strip() == (
        "OtherMachineError: This mysql storage holds search study 's/lr', run from machine "
        f"{this_machine().split('/')[0]!r}: stagetune's search lock on mysql only works on "
        "one machine; use PostgreSQL for several machines."
    ), done.stderr
