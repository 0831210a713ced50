"""Large imports: the index-rebuilding path gives exactly what inserting through the live
indexes gives, and a killed import of 200,000 rows leaves memory as it was, wherever
it is killed (while parsing, inserting, rebuilding indexes or committing)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from memcli.store import bulk
from memcli.store.core import TripleStore
from memcli.store.csvio import import_triples

ROWS = (
    "subject,relation,object\n"
    "Ada,country,England\n"  # already current in memory: skipped
    "Ada,employer,Babbage\n"
    "Oslo,country,Norway\n"  # superseded in memory: a new current fact
    "Bob,country,England\n"
    "bob,country,england\n"  # the same fact as the row before, by key
    "Carl,residence,Bergen\n"
    "New One,part of,Other New\n"
)


def _memory(path) -> TripleStore:
    store = TripleStore(path)
    store.add("Ada", "country", "England")
    store.add("Oslo", "country", "Norway")
    store.add("Dana", "residence", "Rome")
    old = store.find(subject="Oslo")[0]
    store.supersede(old.id, object="Norway (kingdom)")
    return store


def _state(store: TripleStore) -> tuple:
    triples = store.db.execute(
        # Not ids: a row skipped through the live unique index leaves a gap in the ids
        # (AUTOINCREMENT), the rebuilding path none; order and everything else agree.
        """SELECT subject_id, relation_id, object_id, source, batch_id,
                  superseded_at IS NULL FROM triples ORDER BY id"""
    ).fetchall()
    entities = store.db.execute("SELECT id, name, key FROM entities ORDER BY id").fetchall()
    indexes = store.db.execute(
        "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'triples' ORDER BY name"
    ).fetchall()
    return triples, entities, indexes


@pytest.mark.parametrize("threshold", [1, 10**9])
def test_rebuilding_indexes_equals_live_inserts(tmp_path, monkeypatch, threshold):
    csv_path = tmp_path / "f.csv"
    csv_path.write_text(ROWS, encoding="utf-8")
    results = {}
    for name, limit in (("live", 10**9), ("rebuild", threshold)):
        monkeypatch.setattr(bulk, "REBUILD_MIN_ROWS", limit)
        store = _memory(tmp_path / f"{name}.db")
        before = _state(store)
        report = import_triples(store, str(csv_path))
        results[name] = (report.added, report.duplicates_in_memory, _state(store))
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        store.undo()
        assert _state(store)[0] == before[0]  # undo gives the facts back exactly
        store.close()
    assert results["live"] == results["rebuild"]
    assert results["live"][:2] == (5, 1)


def test_rebuild_path_keeps_indexes_and_uniqueness(tmp_path, monkeypatch):
    monkeypatch.setattr(bulk, "REBUILD_MIN_ROWS", 1)
    csv_path = tmp_path / "f.csv"
    csv_path.write_text(
        "subject,relation,object\n" + "".join(f"E{i},country,P{i % 7}\n" for i in range(500)),
        encoding="utf-8",
    )
    with TripleStore(tmp_path / "m.db") as store:
        assert import_triples(store, str(csv_path)).added == 500
        plan = store.db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM triples WHERE object_id = 3 AND relation_id = 1"
        ).fetchall()
        assert "triples_object_relation" in str(plan)
        with pytest.raises(sqlite3.IntegrityError):
            store.db.execute(
                "INSERT INTO triples (subject_id, relation_id, object_id, source, created_at,"
                " updated_at, batch_id) SELECT subject_id, relation_id, object_id, source,"
                " created_at, updated_at, batch_id FROM triples WHERE id = 1"
            )
        assert store.lookup("E42", "country", None)[0].object == "P0"


def _big_csv(path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("subject,relation,object\n")
        for i in range(n):
            handle.write(f"Entity {i},country,Place {i % 1000}\n")


def _import(csv_path, db) -> subprocess.Popen:
    env = {**os.environ, "MEMCLI_DB": str(db)}
    return subprocess.Popen(
        [sys.executable, "-m", "memcli", "mem", "import", str(csv_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_import_of_200k_killed_anywhere_is_all_or_nothing(tmp_path):
    n = 200_000
    csv_path = tmp_path / "big.csv"
    _big_csv(csv_path, n)
    # How long a whole import takes here, to kill the others at fractions of it.
    timed = tmp_path / "timed.db"
    TripleStore(timed).close()
    start = time.monotonic()
    assert _import(csv_path, timed).wait(timeout=600) == 0
    whole = time.monotonic() - start
    outcomes = []
    for fraction in (0.4, 0.7, 0.85, 0.95):
        db = tmp_path / f"m{fraction}.db"
        with TripleStore(db) as store:
            store.add("Before", "country", "Import")
        proc = _import(csv_path, db)
        time.sleep(whole * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check = sqlite3.connect(db)
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        check.close()
        with TripleStore(db) as store:
            count = store.count()
            assert count in (1, n + 1), f"killed at {fraction:.0%}: {count} facts"
            kinds = [b.kind for b in store.log()]
            assert kinds == (["add"] if count == 1 else ["import", "add"])
            assert store.lookup("Before", "country", None)[0].object == "Import"
            names = store.db.execute("SELECT count(*) FROM entities").fetchone()[0]
            assert names == (2 if count == 1 else 2 + n + 1000)
            indexes = store.db.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'triples'"
                " AND sql IS NOT NULL"
            ).fetchone()[0]
            assert indexes == 5  # none left dropped by a kill mid-rebuild
        outcomes.append(count)
    assert 1 in outcomes  # at least one kill landed inside the import
