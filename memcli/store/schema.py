"""The memory file's schema, as an ordered list of migrations recorded in the file.

`PRAGMA user_version` holds the number of migrations applied, so a file written by a
newer memcli (more migrations than this one knows) is refused untouched. Tables are
plain, with named columns, so sqlite3, sqlite-utils and Datasette read them directly;
the `facts` view shows triples by name.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

SQLITE_MAGIC = b"SQLite format 3\x00"


def _script(db: sqlite3.Connection, sql: str) -> None:
    """Run `;`-separated statements inside the caller's transaction (executescript
    would commit it)."""
    for statement in sql.split(";\n"):
        if statement.strip():
            db.execute(statement)


def _v1_initial(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE entities (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            key TEXT NOT NULL UNIQUE
        );
        CREATE TABLE relations (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            key TEXT NOT NULL UNIQUE,
            wikidata_id TEXT,
            created_batch INTEGER
        );
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            description TEXT NOT NULL,
            created_at TEXT NOT NULL,
            added INTEGER NOT NULL DEFAULT 0, -- triples this batch added (see triples.batch_id)
            undone_by INTEGER
        );
        CREATE TABLE triples (
            id INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: history refers to ids
            subject_id INTEGER NOT NULL REFERENCES entities(id),
            relation_id INTEGER NOT NULL REFERENCES relations(id),
            object_id INTEGER NOT NULL REFERENCES entities(id),
            source TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            batch_id INTEGER NOT NULL
        );
        CREATE UNIQUE INDEX triples_subject_relation_object
            ON triples(subject_id, relation_id, object_id);
        CREATE INDEX triples_object_relation ON triples(object_id, relation_id);
        CREATE INDEX triples_batch ON triples(batch_id);
        -- One row per edited or removed triple: the state before (subject..added_batch)
        -- and after (new_*; empty for 'remove'). An added triple's state is its row in
        -- triples, whose batch_id names the batch that added it: a million-row import
        -- costs no copy here.
        CREATE TABLE changes (
            id INTEGER PRIMARY KEY,
            batch_id INTEGER NOT NULL REFERENCES batches(id),
            op TEXT NOT NULL,
            triple_id INTEGER NOT NULL,
            subject TEXT,
            relation TEXT,
            object TEXT,
            source TEXT,
            created_at TEXT,
            updated_at TEXT,
            added_batch INTEGER,
            new_subject TEXT,
            new_relation TEXT,
            new_object TEXT
        );
        CREATE INDEX changes_batch ON changes(batch_id);
        CREATE INDEX changes_triple ON changes(triple_id);
        CREATE INDEX changes_added_batch ON changes(added_batch);
        CREATE VIEW facts AS
            SELECT t.id, s.name AS subject, r.name AS relation, o.name AS object,
                   t.source, t.created_at, t.updated_at, t.batch_id
            FROM triples t
            JOIN entities s ON s.id = t.subject_id
            JOIN relations r ON r.id = t.relation_id
            JOIN entities o ON o.id = t.object_id;
        """,
    )


MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("initial", _v1_initial),
]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection, now: str) -> None:
    """Apply every migration the file lacks, each in its own transaction."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        db.execute(
            "CREATE TABLE IF NOT EXISTS _memcli_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
    for number, (name, step) in enumerate(MIGRATIONS, start=1):
        if number <= version:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            if db.execute("PRAGMA user_version").fetchone()[0] >= number:
                db.execute("ROLLBACK")
                continue
            step(db)
            db.execute(
                "INSERT INTO _memcli_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (number, name, now),
            )
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
