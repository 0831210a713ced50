"""Reading an SQLite snapshot only after verifying it whole.

A snapshot replaces all of memory, so a damaged one must be refused before anything is
touched: it is opened read-only (by a percent-encoded URI: `%`, `#` and `?` in a file
name are just characters), checked by SQLite (`PRAGMA integrity_check`), compared with
the schema this memcli writes, and counted (every fact must name entities and a relation
the file holds, each entity's stored key must match its name, every field must have the
type and form memcli writes). An older snapshot is upgraded in memory, never on disk.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from memcli.errors import DatabaseError, ImportFailed
from memcli.store import names, safety
from memcli.store.schema import SCHEMA_VERSION, migrate

MAX_REPORTED_ERRORS = 20
_TEXT_FIELDS = ("source", "created_at", "updated_at")


def read_sqlite(path: Path, rows_sql: str, now: str) -> list[tuple]:
    """The rows `rows_sql` selects from the snapshot at `path`, once the file has passed
    every check; otherwise DatabaseError/ImportFailed and nothing was read into memory."""
    shown = safety.printable(str(path))
    try:
        db = safety.connect_readonly(path)
    except sqlite3.Error as exc:
        raise DatabaseError(f"{shown}: cannot open snapshot: {exc}; memory unchanged") from None
    try:
        db.execute("BEGIN")  # one read transaction: the file cannot change while read
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            raise _corrupt(shown, exc) from None
        if version > SCHEMA_VERSION:
            raise DatabaseError(
                f"{shown}: a snapshot from a newer memcli (schema {version}, this one knows "
                f"{SCHEMA_VERSION}); upgrade memcli. Memory unchanged"
            )
        if version < 1 or "_memcli_migrations" not in tables:
            raise DatabaseError(
                f"{shown}: an SQLite database, but not a memcli snapshot; memory unchanged"
            )
        _integrity(db, shown)
        if version < SCHEMA_VERSION:
            db = _upgraded_copy(db, shown, now)
        _schema(db, shown)
        return _verified_rows(db, shown, rows_sql)
    except (sqlite3.Error, UnicodeDecodeError) as exc:  # text that is not UTF-8: damaged
        raise _corrupt(shown, exc) from None
    finally:
        db.close()


def _corrupt(shown: str, exc: Exception) -> DatabaseError:
    return DatabaseError(
        f"{shown}: damaged snapshot ({' '.join(str(exc).split())}); memory unchanged"
    )


def _integrity(db: sqlite3.Connection, shown: str) -> None:
    problems = [" ".join(str(row[0]).split()) for row in db.execute("PRAGMA integrity_check(5)")]
    if problems != ["ok"]:
        raise DatabaseError(
            f"{shown}: damaged snapshot (SQLite integrity check: {problems[0]}"
            + (f"; and {len(problems) - 1} more" if len(problems) > 1 else "")
            + "); memory unchanged"
        )


def _upgraded_copy(db: sqlite3.Connection, shown: str, now: str) -> sqlite3.Connection:
    """An in-memory copy of an older snapshot, migrated to this memcli's schema."""
    copy = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("COMMIT")
    db.backup(copy)
    db.close()
    try:
        migrate(copy, now)
    except sqlite3.Error as exc:
        copy.close()
        raise DatabaseError(
            f"{shown}: cannot upgrade this older snapshot ({exc}); memory unchanged"
        ) from None
    copy.execute("BEGIN")
    return copy


def _reference_columns() -> dict[str, list[str]]:
    ref = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(ref, "")
        tables = [r[0] for r in ref.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: [c[1] for c in ref.execute(f"PRAGMA table_info({t!r})")] for t in tables}
    finally:
        ref.close()


def _schema(db: sqlite3.Connection, shown: str) -> None:
    for table, columns in _reference_columns().items():
        if table.startswith("sqlite_"):
            continue
        have = {c[1] for c in db.execute(f"PRAGMA table_info({table!r})")}
        if not have:
            raise DatabaseError(
                f"{shown}: not a complete memcli snapshot (no table {table}); memory unchanged"
            )
        missing = [c for c in columns if c not in have]
        if missing:
            raise DatabaseError(
                f"{shown}: not a complete memcli snapshot (table {table} lacks "
                f"{', '.join(missing)}); memory unchanged"
            )


# What no source or time may hold (see names.source_problem), as a GLOB class, so that
# SQLite checks a million rows at C speed: controls, line separators, bidi controls.
_BAD_TEXT = "*[\x01-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*"


def _verified_rows(db: sqlite3.Connection, shown: str, rows_sql: str) -> list[tuple]:
    one = db.execute
    # One pass over the facts: how many, how many with a field that is not text, and how
    # many with text no source or time may hold.
    total, mistyped, bad_text = one(
        """SELECT count(*),
                  coalesce(sum(typeof(source) != 'text' OR typeof(created_at) != 'text'
                               OR typeof(updated_at) != 'text'), 0),
                  coalesce(sum(source GLOB :bad OR created_at GLOB :bad OR updated_at GLOB :bad
                               OR instr(source, char(0)) > 0 OR length(source) > :longest), 0)
           FROM triples""",
        {"bad": _BAD_TEXT, "longest": names.MAX_SOURCE_LENGTH},
    ).fetchone()
    if mistyped:
        raise DatabaseError(
            f"{shown}: damaged snapshot ({mistyped} fact(s) with a source or "
            "time that is not text); memory unchanged"
        )
    errors: list[str] = []
    count = 0

    def fail(problem: str) -> None:
        nonlocal count
        count += 1
        if len(errors) < MAX_REPORTED_ERRORS:
            errors.append(f"{shown}: {problem}")

    if bad_text:
        for tid, source in one(
            """SELECT id, source FROM triples
               WHERE source GLOB :bad OR created_at GLOB :bad OR updated_at GLOB :bad
                  OR instr(source, char(0)) > 0 OR length(source) > :longest
               ORDER BY id LIMIT :shown""",
            {"bad": _BAD_TEXT, "longest": names.MAX_SOURCE_LENGTH, "shown": MAX_REPORTED_ERRORS},
        ):
            problem = names.source_problem(source)
            fail(
                f"fact {tid}: source {problem}"
                if problem
                else f"fact {tid}: created_at or updated_at is not a single-line string"
            )
        count += bad_text - min(bad_text, MAX_REPORTED_ERRORS)
    rows = list(one(rows_sql))
    if len(rows) != total:
        fail(
            f"{total - len(rows)} of {total} facts name an entity or relation the file "
            "lacks (damaged)"
        )
    # Every name a fact uses, once: it must be one memcli accepts, and match its key (a
    # changed byte in a name shows here; a changed key is caught by its index).
    used = {row[2] for row in rows}
    for table, sql in (
        ("entity", "SELECT id, name, key FROM entities"),
        ("relation", "SELECT id, name, key FROM relations"),
    ):
        for rowid, name, key in one(sql):
            if table == "relation" and name not in used:
                continue
            if not isinstance(name, str) or not isinstance(key, str):
                fail(f"{table} {rowid}: name is not text (damaged)")
                continue
            problem = names.name_problem(name)
            if problem:
                fail(f"{table} {rowid}: {safety.printable(name)!r} {problem}")
            elif names.key(name) != key:
                fail(
                    f"{table} {rowid}: name {safety.printable(name)!r} does not match its "
                    "key (damaged)"
                )
    if errors:
        raise ImportFailed(errors, count)
    return rows
