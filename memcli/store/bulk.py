"""Inserting many checked triples at once, fast, inside the caller's transaction.

A large import into a memory smaller than itself inserts into a `triples` table whose
indexes are dropped first and rebuilt after: SQLite builds an index from sorted keys
faster than it updates one a row at a time in file order (measured at 1,000,000 rows:
6.2 CPU s for the rows and the index builds instead of 10.3). Everything happens in
the caller's transaction, DDL included, so an interrupted import (SIGKILL) leaves the
file as it was. Duplicates of facts already current in memory are found first, through
the indexes while they exist.
"""

from __future__ import annotations

import sqlite3

# Below this many rows, or when memory holds more facts than the rows bring, the rows
# go in through the live indexes (rebuilding the indexes of a large memory to add a few
# facts would cost more than it saves).
REBUILD_MIN_ROWS = 50_000


def insert_current(
    db: sqlite3.Connection,
    rows: list[tuple[int, int, int, str]],
    stamp: str,
    batch_id: int,
    first_new_entity: int,
) -> int:
    """Insert (subject_id, relation_id, object_id, source) rows, distinct among
    themselves, as current facts of `batch_id` created at `stamp`; rows already current
    in memory are skipped. Entities numbered `first_new_entity` or above are new in
    this transaction, so a row naming one cannot be in memory yet. Returns how many
    rows were added."""
    constants = f"'{_literal(stamp)}', '{_literal(stamp)}', {int(batch_id)}"
    insert = (
        "INSERT {mode} INTO triples (subject_id, relation_id, object_id, source, "
        f"created_at, updated_at, batch_id) VALUES (?, ?, ?, ?, {constants})"
    )
    largest = db.execute("SELECT coalesce(max(id), 0) FROM triples").fetchone()[0]
    if len(rows) < REBUILD_MIN_ROWS or largest > len(rows):
        before = db.total_changes
        db.executemany(insert.format(mode="OR IGNORE"), rows)
        return db.total_changes - before
    rows = _not_in_memory(db, rows, first_new_entity)
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'triples' "
        "AND sql IS NOT NULL ORDER BY rowid"
    ).fetchall()
    for name, _sql in indexes:
        db.execute(f'DROP INDEX "{name}"')
    db.executemany(insert.format(mode=""), rows)
    for _name, sql in indexes:
        db.execute(sql)
    return len(rows)


def _not_in_memory(
    db: sqlite3.Connection, rows: list[tuple[int, int, int, str]], first_new_entity: int
) -> list[tuple[int, int, int, str]]:
    """`rows` less those whose fact is current in memory already (only a row naming two
    entities that existed before can be one)."""
    if first_new_entity <= 1:
        return rows
    old = [
        (n, s, r, o)
        for n, (s, r, o, _src) in enumerate(rows)
        if s < first_new_entity and o < first_new_entity
    ]
    if not old:
        return rows
    db.execute(
        "CREATE TEMP TABLE IF NOT EXISTS memcli_candidates "
        "(n INTEGER PRIMARY KEY, s INTEGER, r INTEGER, o INTEGER)"
    )
    try:
        db.executemany("INSERT INTO memcli_candidates VALUES (?, ?, ?, ?)", old)
        held = {
            n
            for (n,) in db.execute(
                """SELECT c.n FROM memcli_candidates c JOIN triples t
                   ON t.subject_id = c.s AND t.relation_id = c.r AND t.object_id = c.o
                   AND t.superseded_at IS NULL"""
            )
        }
    finally:
        db.execute("DELETE FROM memcli_candidates")
    if not held:
        return rows
    return [row for n, row in enumerate(rows) if n not in held]


def _literal(text: str) -> str:
    return text.replace("'", "''")
