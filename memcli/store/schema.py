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


# Wikidata ids of the DocRED relations that hold one current object per subject: those
# with Wikidata's single-value constraint and those a person expects to change rather
# than accumulate (someone lives in one place at a time). The rest stay multi-valued.
SINGLE_VALUED = frozenset(
    {
        "P6",  # head of government
        "P19",  # place of birth
        "P20",  # place of death
        "P22",  # father
        "P25",  # mother
        "P35",  # head of state
        "P36",  # capital
        "P159",  # headquarters location
        "P171",  # parent taxon
        "P403",  # mouth of the watercourse
        "P488",  # chairperson
        "P551",  # residence
        "P569",  # date of birth
        "P570",  # date of death
        "P571",  # inception
        "P576",  # dissolved, abolished or demolished
        "P577",  # publication date
        "P580",  # start time
        "P582",  # end time
        "P585",  # point in time
        "P740",  # location of formation
        "P1198",  # unemployment rate
    }
)


def _v2_supersede(db: sqlite3.Connection) -> None:
    """Relation cardinality, and superseded facts kept as history.

    A fact is current while `superseded_at` is NULL; a superseded one records when, by
    which batch and by which fact it stopped being current. Only current facts must be
    unique, so a value can come back (Oslo, then Bergen, then Oslo again) as a new fact.
    """
    _script(
        db,
        """
        ALTER TABLE relations ADD COLUMN cardinality TEXT NOT NULL DEFAULT 'multi';
        ALTER TABLE triples ADD COLUMN superseded_at TEXT;
        ALTER TABLE triples ADD COLUMN superseded_batch INTEGER;
        ALTER TABLE triples ADD COLUMN superseded_by INTEGER;
        ALTER TABLE changes ADD COLUMN superseded_at TEXT;
        ALTER TABLE changes ADD COLUMN superseded_batch INTEGER;
        ALTER TABLE changes ADD COLUMN superseded_by INTEGER;
        DROP INDEX triples_subject_relation_object;
        CREATE UNIQUE INDEX triples_current
            ON triples(subject_id, relation_id, object_id) WHERE superseded_at IS NULL;
        CREATE INDEX triples_past
            ON triples(subject_id, relation_id) WHERE superseded_at IS NOT NULL;
        CREATE INDEX triples_superseded_batch
            ON triples(superseded_batch) WHERE superseded_batch IS NOT NULL;
        -- Cardinality changes, so that `undo` can revert them like any batch.
        CREATE TABLE relation_changes (
            id INTEGER PRIMARY KEY,
            batch_id INTEGER NOT NULL REFERENCES batches(id),
            relation_id INTEGER NOT NULL REFERENCES relations(id),
            before TEXT NOT NULL,
            after TEXT NOT NULL
        );
        CREATE INDEX relation_changes_batch ON relation_changes(batch_id);
        DROP VIEW facts;
        CREATE VIEW facts AS
            SELECT t.id, s.name AS subject, r.name AS relation, o.name AS object,
                   t.source, t.created_at, t.updated_at, t.batch_id,
                   t.superseded_at IS NULL AS current, t.superseded_at, t.superseded_by
            FROM triples t
            JOIN entities s ON s.id = t.subject_id
            JOIN relations r ON r.id = t.relation_id
            JOIN entities o ON o.id = t.object_id;
        """,
    )
    marks = ",".join("?" * len(SINGLE_VALUED))
    db.execute(
        f"UPDATE relations SET cardinality = 'single' WHERE wikidata_id IN ({marks})",
        sorted(SINGLE_VALUED),
    )


def _v3_batch_ids(db: sqlite3.Connection) -> None:
    """Batch ids are never reused: a reported id that turned out empty stays taken."""
    _script(
        db,
        """
        CREATE TABLE batch_ids (id INTEGER PRIMARY KEY AUTOINCREMENT);
        INSERT INTO batch_ids (id) SELECT coalesce(max(id), 0) FROM batches WHERE id > 0;
        """,
    )


MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("initial", _v1_initial),
    ("supersede", _v2_supersede),
    ("batch ids", _v3_batch_ids),
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
