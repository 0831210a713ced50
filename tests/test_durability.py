"""Memory survives what real use throws at it: concurrent writers and a killed import."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from memcli.store.core import TripleStore

WRITER = """
import sys
from memcli.store.core import TripleStore
store = TripleStore(sys.argv[1])
tag = sys.argv[2]
for i in range(int(sys.argv[3])):
    store.add(f"{tag} entity {i}", "country", f"{tag} place {i % 97}")
store.close()
"""


@pytest.mark.slow
def test_two_processes_writing_at_once_both_succeed(tmp_path):
    db = tmp_path / "m.db"
    TripleStore(db).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), tag, "5000"])
        for tag in ("left", "right")
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    with TripleStore(db) as store:
        assert store.count() == 10_000
        assert len(store.find(source="manual")) == 10_000


@pytest.mark.slow
def test_import_killed_part_way_leaves_all_or_nothing(tmp_path):
    csv_path = tmp_path / "big.csv"
    with open(csv_path, "w", encoding="utf-8") as handle:
        handle.write("subject,relation,object\n")
        for i in range(200_000):
            handle.write(f"Entity {i},country,Place {i % 1000}\n")
    db = tmp_path / "m.db"
    with TripleStore(db) as store:
        store.add("Before", "country", "Import")
    wal = tmp_path / "m.db-wal"
    env = {**os.environ, "MEMCLI_DB": str(db)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "memcli", "mem", "import", str(csv_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Wait until the import is writing its transaction, then kill it hard.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if wal.exists() and wal.stat().st_size > 2_000_000:
            break
        time.sleep(0.01)
    killed_while_running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed_while_running, "the import finished before it could be killed"
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()
    with TripleStore(db) as store:
        assert store.count() in (1, 200_001)
        assert store.count() == 1  # killed before COMMIT: nothing of it
        assert [b.kind for b in store.log()] == ["add"]
