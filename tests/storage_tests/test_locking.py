from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stagetune.storage import LockTimeoutError, open_storage, search_lock
from tests.conftest import StorageSupplier

HOLD = """
import sys, time
from stagetune.storage import open_storage, search_lock
storage = open_storage(sys.argv[1])
with search_lock(storage, "s/lr"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_the_lock_excludes_other_workers(storage_supplier: StorageSupplier) -> None:
    url = storage_supplier.url()
    inside = 0
    most = 0
    guard = threading.Lock()

    def worker() -> None:
        nonlocal inside, most
        storage = open_storage(url)
        for _ in range(10):
            with search_lock(storage, "s/lr"):
                with guard:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.002)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert most == 1


def test_a_killed_holder_releases_the_lock(storage_supplier: StorageSupplier) -> None:
    url = storage_supplier.url()
    storage = open_storage(url)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(LockTimeoutError, match="another worker holds it"),
            search_lock(storage, "s/lr", timeout=0.3),
        ):
            pass
        os.kill(holder.pid, signal.SIGKILL)
    finally:
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()
    with search_lock(storage, "s/lr", timeout=30):
        pass


def test_four_processes_create_the_schema_at_once(storage_supplier: StorageSupplier) -> None:
    url = storage_supplier.url()
    code = "import sys; from stagetune.storage import open_storage; open_storage(sys.argv[1])"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors


def test_sqlite_lock_file_lies_next_to_the_database(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'a.db'}")
    with search_lock(storage, "x"):
        assert (tmp_path / "a.db-lock").is_file()
