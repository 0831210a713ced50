"""The triple store against plain SQLite tools on the same realistic CSV (1M triples;
100k with --quick). Every ratio is speed: baseline time / our time, above 1 = faster.

- import: `memcli mem import FILE --db DB` (the CLI, a whole process: parsing, name
  checks, dedup, entity ids, the triple indexes, the undo log) vs the sqlite3 shell
  doing the same work in SQL (`.import` into a staging table, then deduplicating
  `INSERT … SELECT`s into an empty memory file: see `_same_work_sql`); and, for scale,
  vs `.import --csv --skip 1` into a plain unindexed `t(subject, relation, object)`.
- lookup(s, r) / lookup(r, o): `TripleStore.lookup` in process (default limit 30) vs
  `SELECT ... WHERE subject=? AND relation=? ORDER BY rowid LIMIT 30` (and the object
  twin) on the plain table indexed on (subject, relation) and (object, relation), for
  the same 10,000 keys of randomly chosen existing triples; p50 and p99 in µs, and p99
  of CPU time too (on a shared machine the wall-clock p99 mostly measures preemption).
- start-up: `memcli mem ls --limit 1` vs `sqlite-utils rows DB triples --limit 1` on
  the imported memory, interleaved, median of 10.
- export: `memcli mem export -o X.csv` vs `sqlite3 -csv -header DB "SELECT subject,
  relation, object, source FROM facts ORDER BY id" > X.csv`.

Imports and exports are the best of 3 runs (1 run at 1M triples).
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    Row,
    generate_csv,
    measure,
    percentile,
    row,
    run_command,
    speed_ratio,
    speed_row,
    sqlite3_shell,
    venv_script,
)
from memcli.store.core import TripleStore

SIZES = {False: 1_000_000, True: 100_000}
LOOKUPS = 10_000
STARTUP_RUNS = 10
LOOKUP_P99_GOAL_US = 1000.0
SEED = 20240501
_PLAIN_INDEXES = (
    "CREATE INDEX t_subject_relation ON t(subject, relation)",
    "CREATE INDEX t_object_relation ON t(object, relation)",
)


def _say(message: str) -> None:
    sys.stderr.write(f"  store: {message}\n")
    sys.stderr.flush()


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def _size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def run(
    quick: bool,
    *,
    n: int | None = None,
    lookups: int = LOOKUPS,
    startup_runs: int = STARTUP_RUNS,
    repeat: int | None = None,
) -> list[Row]:
    """Rows for import, lookups, start-up and export at 1M triples (quick: 100k), each
    import and export the best of `repeat` runs (default: 3, or 1 above 200k triples).
    `n`, `lookups`, `startup_runs` and `repeat` shrink it further for tests."""
    n = n or SIZES[quick]
    repeat = repeat or (1 if n > 200_000 else 3)
    with tempfile.TemporaryDirectory(prefix="memcli-bench-store-") as tmp:
        return _run(Path(tmp), n, lookups, startup_runs, repeat)


def _run(tmp: Path, n: int, lookups: int, startup_runs: int, runs: int) -> list[Row]:
    env = dict(os.environ, MEMCLI_HOME=str(tmp / "home"), NO_COLOR="1")
    env.pop("MEMCLI_DB", None)
    memcli = venv_script("memcli", "memcli")
    shell = sqlite3_shell()
    size = _size_label(n)
    csv_path = tmp / "triples.csv"
    ours_db, plain_db, sql_db = tmp / "memory.db", tmp / "plain.db", tmp / "sql.db"

    _say(f"writing {n:,} triples to CSV")
    n = generate_csv(csv_path, n, SEED)
    rows: list[Row] = []

    # -- import -------------------------------------------------------------------------
    _say(f"import ×{runs}: memcli mem import")
    ours = measure(
        lambda: run_command(
            [*memcli, "mem", "import", str(csv_path), "--db", str(ours_db)], env=env
        ),
        repeat=runs,
        setup=lambda: _remove_db(ours_db),
    ).best
    with TripleStore(ours_db) as store:
        if store.count() != n:
            raise RuntimeError(f"memcli imported {store.count()} triples, expected {n}")
    base = same_work = None
    if shell:
        plain_import = [
            shell,
            str(plain_db),
            "CREATE TABLE t(subject, relation, object)",
            f".import --csv --skip 1 {csv_path} t",
        ]
        _say(f"import ×{runs}: sqlite3 .import --csv into a bare table")
        base = measure(
            lambda: run_command(plain_import, env=env),
            repeat=runs,
            setup=lambda: _remove_db(plain_db),
        ).best
        _say(f"import ×{runs}: sqlite3 .import to staging + deduplicating INSERT … SELECT")
        same_work = measure(
            lambda: run_command([shell, str(sql_db), *_same_work_sql(csv_path)], env=env),
            repeat=runs,
            setup=lambda: _empty_memory(sql_db),
        ).best
        with TripleStore(sql_db) as store:
            if store.count() != n:
                raise RuntimeError(f"the sqlite3 script stored {store.count()}, expected {n}")
    rows.append(
        speed_row(
            f"import {size} CSV: speed vs sqlite3 shell doing the same work "
            "(.import to staging, deduplicating INSERT … SELECT into memcli's indexed schema)",
            ours,
            same_work,
            "s",
            0.5,
        )
    )
    rows.append(
        speed_row(f"import {size} CSV: speed vs sqlite3 .import into a bare table", ours, base, "s")
    )

    # -- lookups ------------------------------------------------------------------------
    _say(f"lookups: {lookups:,} by (subject, relation), {lookups:,} by (relation, object)")
    rows += _lookups(ours_db, plain_db if shell else None, n, lookups)

    # -- start-up -----------------------------------------------------------------------
    _say(f"start-up ×{startup_runs}: memcli mem ls vs sqlite-utils rows")
    sqlite_utils = venv_script("sqlite-utils", "sqlite_utils")
    ours_cmd = [*memcli, "mem", "ls", "--limit", "1", "--db", str(ours_db)]
    base_cmd = [*sqlite_utils, "rows", str(ours_db), "triples", "--limit", "1"]
    run_command(ours_cmd, env=env)  # warm the page cache and .pyc files for both
    run_command(base_cmd, env=env)
    ours_runs, base_runs = [], []
    for _ in range(startup_runs):  # interleaved, so drift hits both alike
        ours_runs.append(measure(lambda: run_command(ours_cmd, env=env), 1).best)
        base_runs.append(measure(lambda: run_command(base_cmd, env=env), 1).best)
    ours, base = statistics.median(ours_runs), statistics.median(base_runs)
    rows.append(
        speed_row(
            "start-up, mem ls --limit 1: speed vs sqlite-utils rows",
            ours,
            base,
            "s",
            0.5,
            goal="ratio ≥ 0.5 (≤ 2× time)",
        )
    )

    # -- export -------------------------------------------------------------------------
    ours_csv, plain_csv = tmp / "export.csv", tmp / "plain-export.csv"
    _say(f"export ×{runs}: memcli mem export")
    ours = measure(
        lambda: run_command(
            [*memcli, "mem", "export", "-o", str(ours_csv), "--db", str(ours_db)], env=env
        ),
        repeat=runs,
    ).best
    if _count_lines(ours_csv) != n + 1:
        raise RuntimeError(f"memcli exported {_count_lines(ours_csv) - 1} rows, expected {n}")
    base = None
    if shell:
        _say(f"export ×{runs}: sqlite3 -csv")
        query = "SELECT subject, relation, object, source FROM facts ORDER BY id"
        base = measure(
            lambda: run_command(
                [shell, "-csv", "-header", str(ours_db), query], stdout=plain_csv, env=env
            ),
            repeat=runs,
        ).best
    rows.append(speed_row(f"export {size} CSV: speed vs sqlite3 -csv", ours, base, "s", 0.5))
    return rows


def _empty_memory(path: Path) -> None:
    """A new memory file (memcli's schema, indexes and relations), nothing in it."""
    _remove_db(path)
    TripleStore(path).close()


def _same_work_sql(csv_path: Path) -> list[str]:
    """The sqlite3 shell doing an import's work in SQL, as commands for its arguments:
    `.import` into a staging table, then, in one transaction, a batch row, the distinct
    entities by key (lower(trim(name)): SQL has no NFC/casefold) and the triples by
    joining the staging rows to entities and relations, `INSERT OR IGNORE` through
    memcli's unique index on current facts (and its other indexes), each with a source
    naming its line, as memcli stores it."""
    stamp = "2026-01-01T00:00:00.000Z"
    return [
        "PRAGMA synchronous = NORMAL",
        "PRAGMA cache_size = -262144",  # what memcli's bulk insert uses too
        "CREATE TEMP TABLE staging(subject TEXT, relation TEXT, object TEXT)",
        f".import --csv --skip 1 {csv_path} staging",
        "BEGIN IMMEDIATE",
        "INSERT INTO batches (id, kind, description, created_at) "
        f"VALUES (1, 'import', 'import {csv_path.name}', '{stamp}')",
        "INSERT OR IGNORE INTO entities (name, key) "
        "SELECT subject, lower(trim(subject)) FROM staging "
        "UNION ALL SELECT object, lower(trim(object)) FROM staging",
        "INSERT OR IGNORE INTO triples (subject_id, relation_id, object_id, source, "
        "created_at, updated_at, batch_id) "
        f"SELECT s.id, r.id, o.id, 'import {csv_path.name}:' || (t.rowid + 1), "
        f"'{stamp}', '{stamp}', 1 FROM staging t "
        "JOIN entities s ON s.key = lower(trim(t.subject)) "
        "JOIN relations r ON r.key = lower(trim(t.relation)) "
        "JOIN entities o ON o.key = lower(trim(t.object))",
        "UPDATE batches SET added = (SELECT count(*) FROM triples WHERE batch_id = 1)",
        "COMMIT",
    ]


def _lookups(ours_db: Path, plain_db: Path | None, n: int, count: int) -> list[Row]:
    """p50/p99 latency of `TripleStore.lookup` both ways round, against the same query on
    a plain table with the two obvious indexes, for the same existing keys."""
    rng = random.Random(SEED)
    store = TripleStore(ours_db)
    try:
        ids = [rng.randint(1, n) for _ in range(count)]
        keys = [
            store.db.execute(
                "SELECT subject, relation, object FROM facts WHERE id = ?", (i,)
            ).fetchone()
            for i in ids
        ]
        by_subject = [(s, r) for s, r, _o in keys]
        by_object = [(r, o) for _s, r, o in keys]
        warm = min(200, count)
        for s, r in by_subject[:warm]:
            store.lookup(s, r, None)
        ours_sr = _latencies(lambda k: store.lookup(k[0], k[1], None), by_subject)
        for r, o in by_object[:warm]:
            store.lookup(None, r, o)
        ours_ro = _latencies(lambda k: store.lookup(None, k[0], k[1]), by_object)
    finally:
        store.close()

    base_sr = base_ro = None
    if plain_db is not None:
        plain = sqlite3.connect(plain_db)
        try:
            for statement in _PLAIN_INDEXES:
                plain.execute(statement.replace("INDEX", "INDEX IF NOT EXISTS"))
            plain.commit()
            by_sr = (
                "SELECT rowid, subject, relation, object FROM t "
                "WHERE subject = ? AND relation = ? ORDER BY rowid LIMIT 30"
            )
            by_ro = (
                "SELECT rowid, subject, relation, object FROM t "
                "WHERE relation = ? AND object = ? ORDER BY rowid LIMIT 30"
            )
            for key in by_subject[:warm]:
                plain.execute(by_sr, key).fetchall()
            base_sr = _latencies(lambda k: plain.execute(by_sr, k).fetchall(), by_subject)
            for key in by_object[:warm]:
                plain.execute(by_ro, key).fetchall()
            base_ro = _latencies(lambda k: plain.execute(by_ro, k).fetchall(), by_object)
        finally:
            plain.close()

    rows = []
    for label, ours, base in (
        ("lookup(s, r)", ours_sr, base_sr),
        ("lookup(r, o)", ours_ro, base_ro),
    ):
        for q, clock in ((50, 0), (99, 0), (99, 1)):
            mine = percentile(ours[clock], q)
            theirs = percentile(base[clock], q) if base is not None else None
            has_goal = q == 99 and clock == 0
            rows.append(
                row(
                    f"{label} p{q}{' CPU time' if clock else ''}: speed vs indexed plain table",
                    mine,
                    theirs,
                    "µs",
                    ratio=speed_ratio(mine, theirs),
                    goal=f"p99 < {LOOKUP_P99_GOAL_US:g} µs" if has_goal else "",
                    ok=mine < LOOKUP_P99_GOAL_US if has_goal else None,
                )
            )
    return rows


def _latencies(call: Callable[[Any], list], keys: list) -> tuple[list[float], list[float]]:
    """Microseconds per call, one key at a time, as wall-clock time and as this thread's
    CPU time (which leaves out time the scheduler gave to other processes: on a busy
    machine wall-clock p99 measures the scheduler). Every key must find something."""
    wall, cpu = time.perf_counter, time.thread_time
    walls, cpus = [], []
    for key in keys:
        start, start_cpu = wall(), cpu()
        found = call(key)
        cpus.append((cpu() - start_cpu) * 1e6)
        walls.append((wall() - start) * 1e6)
        if not found:
            raise RuntimeError(f"lookup of existing key {key!r} found nothing")
    return walls, cpus
