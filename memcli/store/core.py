"""`TripleStore`: the one API over the memory file that the CLI, the runtime and the REPL
all call.

Every change happens inside a batch: a row in `batches` plus one row in `changes` per
triple touched, holding the state before and after, so that `undo` can revert a batch
exactly. Writes take SQLite's write lock up front (`BEGIN IMMEDIATE`) and wait for it
(busy timeout), so several processes can write to one memory at once.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from memcli import paths
from memcli.errors import (
    DatabaseError,
    InvalidNameError,
    NotFoundError,
    UndoError,
    UnknownRelationError,
    UsageError,
)
from memcli.store import names
from memcli.store.schema import SCHEMA_VERSION, SQLITE_MAGIC, migrate

BUSY_TIMEOUT_S = 60.0
MANUAL = "manual"

_TRIPLE_SQL = """
    SELECT t.id, s.name, r.name, o.name, t.source, t.created_at, t.updated_at, t.batch_id
    FROM triples t
    JOIN entities s ON s.id = t.subject_id
    JOIN relations r ON r.id = t.relation_id
    JOIN entities o ON o.id = t.object_id
"""


_CHANGE_SQL = """
    SELECT c.id, c.batch_id, c.op, c.triple_id, c.subject, c.relation, c.object,
           c.new_subject, c.new_relation, c.new_object, b.created_at
    FROM changes c JOIN batches b ON b.id = c.batch_id
"""


def now() -> str:
    """UTC timestamp with milliseconds, ISO 8601 (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Triple:
    id: int
    subject: str
    relation: str
    object: str
    source: str
    created_at: str
    updated_at: str
    batch_id: int = field(compare=False)  # bookkeeping: which batch added it

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "subject": self.subject,
            "relation": self.relation,
            "object": self.object,
            "source": self.source,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Batch:
    id: int
    kind: str
    description: str
    created_at: str
    undone_by: int | None
    changes: int

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "description": self.description,
            "created_at": self.created_at,
            "undone_by": self.undone_by,
            "changes": self.changes,
        }


@dataclass(frozen=True)
class Change:
    id: int
    batch_id: int
    op: str
    triple_id: int
    before: tuple[str, str, str] | None
    after: tuple[str, str, str] | None
    at: str

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "batch_id": self.batch_id,
            "op": self.op,
            "triple_id": self.triple_id,
            "before": list(self.before) if self.before else None,
            "after": list(self.after) if self.after else None,
            "at": self.at,
        }


@dataclass(frozen=True)
class AddResult:
    triple: Triple
    created: bool


def builtin_relations() -> dict[str, str]:
    """The 96 DocRED relations, Wikidata id -> English name (shipped with the package)."""
    text = resources.files("memcli.store").joinpath("rel_info.json").read_text("utf-8")
    return json.loads(text)


def check_name(name: str, field: str) -> str:
    """The cleaned name, or InvalidNameError saying which field and why."""
    problem = names.name_problem(name)
    if problem:
        raise InvalidNameError(f"{field} {_shorten(name)} {problem}")
    return names.clean(name)


def _shorten(text: str, width: int = 40) -> str:
    shown = text if len(text) <= width else text[: width - 1] + "…"
    return repr(shown)


class TripleStore:
    """A memory of (subject, relation, object) triples in one SQLite file."""

    def __init__(self, path: str | Path | None = None, *, readonly: bool = False):
        self.path = Path(path) if path is not None else paths.default_db()
        self.db = _connect(self.path, readonly=readonly)
        self._batch: int | None = None
        self._relation_keys: dict[str, int] | None = None

    @classmethod
    def open_readonly(cls, path: str | Path) -> TripleStore:
        """Open an existing memory (a snapshot, say) without writing to it."""
        return cls(path, readonly=True)

    # -- life cycle -------------------------------------------------------------------

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> TripleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the write lock from the start; nests."""
        if self.db.in_transaction:
            yield self.db
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise DatabaseError(f"{self.path}: cannot write: {exc}") from None
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            self._relation_keys = None
            raise

    @contextmanager
    def batch(self, kind: str, description: str) -> Iterator[int]:
        """Group every change made inside into one batch (one `undo` reverts it all)."""
        if self._batch is not None:
            yield self._batch
            return
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO batches (kind, description, created_at) VALUES (?, ?, ?)",
                (kind, description, now()),
            )
            assert cur.lastrowid is not None
            self._batch = batch_id = cur.lastrowid
            try:
                yield batch_id
                db.execute(
                    "UPDATE batches SET added = (SELECT count(*) FROM triples WHERE batch_id = ?)"
                    " WHERE id = ?",
                    (batch_id, batch_id),
                )
                # A batch that changed nothing is not worth a line in the log.
                db.execute(
                    """DELETE FROM batches WHERE id = ? AND added = 0 AND kind != 'undo'
                       AND NOT EXISTS (SELECT 1 FROM changes WHERE batch_id = ?)
                       AND NOT EXISTS (SELECT 1 FROM relations WHERE created_batch = ?)""",
                    (batch_id,) * 3,
                )
            finally:
                self._batch = None

    # -- names ------------------------------------------------------------------------

    def entity_id(self, name: str, *, create: bool = False) -> int | None:
        key = names.key(name)
        row = self.db.execute("SELECT id FROM entities WHERE key = ?", (key,)).fetchone()
        if row:
            return row[0]
        if not create:
            return None
        cur = self.db.execute(
            "INSERT INTO entities (name, key) VALUES (?, ?)", (names.clean(name), key)
        )
        return cur.lastrowid

    def relation_keys(self) -> dict[str, int]:
        """Relation key -> id, cached until this store changes relations."""
        if self._relation_keys is None:
            self._relation_keys = dict(self.db.execute("SELECT key, id FROM relations"))
        return self._relation_keys

    def relation_id(self, name: str, *, create: bool = False) -> int:
        """The id of a known relation; unknown ones are refused with suggestions unless
        `create` (the CLI's --new-relation)."""
        key = names.key(name)
        found = self.relation_keys().get(key)
        if found is not None:
            return found
        if not create:
            raise UnknownRelationError(name, self.suggest_relations(name))
        check_name(name, "relation")
        cur = self.db.execute(
            "INSERT INTO relations (name, key, created_batch) VALUES (?, ?, ?)",
            (names.clean(name), key, self._batch),
        )
        self._relation_keys = None
        assert cur.lastrowid is not None
        return cur.lastrowid

    def suggest_relations(self, name: str, limit: int = 3) -> list[str]:
        from rapidfuzz import fuzz, process

        choices = self.relation_names()
        found = process.extract(name, choices, scorer=fuzz.WRatio, limit=limit, score_cutoff=60)
        return [choice for choice, _score, _index in found]

    def relation_names(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT name FROM relations ORDER BY id")]

    def relations(self) -> list[dict]:
        rows = self.db.execute(
            """SELECT r.id, r.name, r.wikidata_id,
                      (SELECT count(*) FROM triples t WHERE t.relation_id = r.id)
               FROM relations r ORDER BY r.id"""
        )
        return [{"id": i, "name": n, "wikidata_id": w, "triples": c} for i, n, w, c in rows]

    def add_relation(self, name: str) -> tuple[int, bool]:
        """Add a relation name; returns (id, created)."""
        name = check_name(name, "relation")
        existing = self.relation_keys().get(names.key(name))
        if existing is not None:
            return existing, False
        with self.batch("relation", f"add relation {name}"):
            return self.relation_id(name, create=True), True

    def entity_names(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT name FROM entities ORDER BY id")]

    # -- reading ----------------------------------------------------------------------

    def get(self, triple_id: int) -> Triple:
        row = self.db.execute(_TRIPLE_SQL + " WHERE t.id = ?", (triple_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no triple with id {triple_id}")
        return Triple(*row)

    def find(
        self,
        subject: str | None = None,
        relation: str | None = None,
        object: str | None = None,
        source: str | None = None,
        limit: int | None = None,
    ) -> list[Triple]:
        """Triples matching every given filter: names by key (case- and space-insensitive),
        source as a case-insensitive substring."""
        where: list[str] = []
        args: list[str | int] = []
        for column, value in (("s", subject), ("r", relation), ("o", object)):
            if value is not None:
                where.append(f"{column}.key = ?")
                args.append(names.key(value))
        if source is not None:
            where.append("t.source LIKE ? ESCAPE '\\'")
            escaped = source.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{escaped}%")
        sql = _TRIPLE_SQL + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY t.id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [Triple(*row) for row in self.db.execute(sql, args)]

    def lookup(
        self, subject: str | None, relation: str, object: str | None, limit: int = 30
    ) -> list[Triple]:
        """Exact lookup by (subject, relation) or (object, relation), through the indexes."""
        if (subject is None) == (object is None):
            raise UsageError("a lookup needs exactly one of subject and object")
        known, column = (subject, "s") if subject is not None else (object, "o")
        assert known is not None
        rows = self.db.execute(
            _TRIPLE_SQL + f" WHERE {column}.key = ? AND r.key = ? ORDER BY t.id LIMIT ?",
            (names.key(known), names.key(relation), limit),
        )
        return [Triple(*row) for row in rows]

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM triples").fetchone()[0]

    def revision(self) -> int:
        """Changes whenever memory changes (the newest batch id); caches key on it."""
        return self.db.execute("SELECT coalesce(max(id), 0) FROM batches").fetchone()[0]

    def stats(self) -> dict:
        one = self.db.execute
        return {
            "path": str(self.path),
            "triples": self.count(),
            "entities": one("SELECT count(*) FROM entities").fetchone()[0],
            "relations": one("SELECT count(*) FROM relations").fetchone()[0],
            "relations_in_use": one("SELECT count(DISTINCT relation_id) FROM triples").fetchone()[
                0
            ],
            "batches": one("SELECT count(*) FROM batches").fetchone()[0],
            "size_bytes": self.path.stat().st_size if self.path.exists() else 0,
            "schema_version": SCHEMA_VERSION,
        }

    def history(self, triple_id: int) -> list[Change]:
        """How a triple came to be: its addition, then every edit and removal."""
        rows = self.db.execute(
            _CHANGE_SQL + " WHERE c.triple_id = ? ORDER BY c.id", (triple_id,)
        ).fetchall()
        changes = [_change(row) for row in rows]
        added = self._addition(triple_id, changes)
        return ([added] if added else []) + changes

    def _addition(self, triple_id: int, changes: list[Change]) -> Change | None:
        """The 'add' entry of a triple: its first recorded state and adding batch."""
        if changes:
            first = self.db.execute(
                "SELECT added_batch FROM changes WHERE id = ?", (changes[0].id,)
            ).fetchone()
            batch, state = first[0], changes[0].before
        else:
            try:
                triple = self.get(triple_id)
            except NotFoundError:
                return None
            batch, state = triple.batch_id, (triple.subject, triple.relation, triple.object)
        at = self.db.execute("SELECT created_at FROM batches WHERE id = ?", (batch,)).fetchone()
        return Change(0, batch, "add", triple_id, None, state, at[0] if at else "")

    def batch_changes(self, batch_id: int, limit: int | None = None) -> list[Change]:
        """What a batch did: the triples it added (as they read now, or when removed),
        then its edits and removals."""
        at = self.get_batch(batch_id).created_at
        added = [
            Change(0, batch_id, "add", t.id, None, (t.subject, t.relation, t.object), at)
            for t in self._batch_triples(batch_id, limit)
        ]
        sql = _CHANGE_SQL + " WHERE c.batch_id = ? ORDER BY c.id"
        args: list = [batch_id]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(max(limit - len(added), 0))
        return added + [_change(row) for row in self.db.execute(sql, args)]

    def _batch_triples(self, batch_id: int, limit: int | None) -> list[Triple]:
        sql = _TRIPLE_SQL + " WHERE t.batch_id = ? ORDER BY t.id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [Triple(*row) for row in self.db.execute(sql, (batch_id,))]

    def log(self, limit: int | None = 20) -> list[Batch]:
        sql = """SELECT b.id, b.kind, b.description, b.created_at, b.undone_by,
                        b.added + (SELECT count(*) FROM changes c WHERE c.batch_id = b.id)
                 FROM batches b ORDER BY b.id DESC"""
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [Batch(*row) for row in self.db.execute(sql)]

    def get_batch(self, batch_id: int) -> Batch:
        row = self.db.execute(
            """SELECT b.id, b.kind, b.description, b.created_at, b.undone_by,
                      b.added + (SELECT count(*) FROM changes c WHERE c.batch_id = b.id)
               FROM batches b WHERE b.id = ?""",
            (batch_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no batch with id {batch_id}")
        return Batch(*row)

    # -- writing ----------------------------------------------------------------------

    def add(
        self,
        subject: str,
        relation: str,
        object: str,
        source: str = MANUAL,
        *,
        new_relation: bool = False,
    ) -> AddResult:
        """Add one triple; an existing one is returned unchanged with created=False."""
        subject = check_name(subject, "subject")
        relation = check_name(relation, "relation")
        object = check_name(object, "object")
        existing = self._existing(subject, relation, object)
        if existing is not None:
            return AddResult(existing, False)
        with self.batch("add", f"add {subject} >> {relation} >> {object}"):
            triple, created = self._add_one(subject, relation, object, source, new_relation)
        return AddResult(triple, created)

    def add_many(
        self,
        triples: Iterable[tuple[str, str, str, str]],
        kind: str,
        description: str,
        *,
        new_relation: bool = False,
    ) -> tuple[int | None, list[Triple]]:
        """Add (subject, relation, object, source) rows as one batch; returns the batch id
        (None when nothing was new) and the triples created. All or nothing."""
        rows = [
            (
                check_name(s, "subject"),
                check_name(r, "relation"),
                check_name(o, "object"),
                source,
            )
            for s, r, o, source in triples
        ]
        created: list[Triple] = []
        with self.batch(kind, description) as batch_id:
            for s, r, o, source in rows:
                triple, is_new = self._add_one(s, r, o, source, new_relation)
                if is_new:
                    created.append(triple)
        return (batch_id if created else None), created

    def _existing(self, subject: str, relation: str, object: str) -> Triple | None:
        row = self.db.execute(
            _TRIPLE_SQL + " WHERE s.key = ? AND r.key = ? AND o.key = ?",
            (names.key(subject), names.key(relation), names.key(object)),
        ).fetchone()
        return Triple(*row) if row else None

    def _add_one(
        self, subject: str, relation: str, object: str, source: str, new_relation: bool
    ) -> tuple[Triple, bool]:
        assert self._batch is not None
        rel = self.relation_id(relation, create=new_relation)
        sid = self.entity_id(subject, create=True)
        oid = self.entity_id(object, create=True)
        stamp = now()
        cur = self.db.execute(
            """INSERT OR IGNORE INTO triples
               (subject_id, relation_id, object_id, source, created_at, updated_at, batch_id)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (sid, rel, oid, source, stamp, stamp, self._batch),
        )
        if cur.rowcount == 0:
            row = self.db.execute(
                "SELECT id FROM triples WHERE subject_id=? AND relation_id=? AND object_id=?",
                (sid, rel, oid),
            ).fetchone()
            return self.get(row[0]), False
        return self.get(cur.lastrowid), True  # type: ignore[arg-type]

    def _record_removals(self, where: str, args: Sequence = ()) -> None:
        self.db.execute(
            f"""INSERT INTO changes (batch_id, op, triple_id, subject, relation, object,
                                     source, created_at, updated_at, added_batch)
                SELECT ?, 'remove', t.id, s.name, r.name, o.name, t.source, t.created_at,
                       t.updated_at, t.batch_id
                FROM triples t
                JOIN entities s ON s.id = t.subject_id
                JOIN relations r ON r.id = t.relation_id
                JOIN entities o ON o.id = t.object_id
                WHERE {where} ORDER BY t.id""",
            (self._batch, *args),
        )

    def edit(
        self,
        triple_id: int,
        subject: str | None = None,
        relation: str | None = None,
        object: str | None = None,
        *,
        new_relation: bool = False,
    ) -> Triple:
        """Change parts of a triple in place (its id stays)."""
        before = self.get(triple_id)
        after = (
            check_name(subject, "subject") if subject is not None else before.subject,
            check_name(relation, "relation") if relation is not None else before.relation,
            check_name(object, "object") if object is not None else before.object,
        )
        if [names.key(x) for x in after] == [
            names.key(x) for x in (before.subject, before.relation, before.object)
        ]:
            raise UsageError(
                f"triple {triple_id} already reads that way (names match ignoring case and "
                "spaces); nothing changed"
            )
        with self.batch("edit", f"edit {triple_id}"):
            rel = self.relation_id(after[1], create=new_relation)
            sid = self.entity_id(after[0], create=True)
            oid = self.entity_id(after[2], create=True)
            clash = self.db.execute(
                """SELECT id FROM triples WHERE subject_id=? AND relation_id=? AND object_id=?
                   AND id != ?""",
                (sid, rel, oid, triple_id),
            ).fetchone()
            if clash:
                raise UsageError(f"triple {clash[0]} already states that; nothing changed")
            stamp = now()
            self.db.execute(
                """INSERT INTO changes (batch_id, op, triple_id, subject, relation, object,
                       source, created_at, updated_at, added_batch,
                       new_subject, new_relation, new_object)
                   VALUES (?, 'edit', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    self._batch,
                    triple_id,
                    before.subject,
                    before.relation,
                    before.object,
                    before.source,
                    before.created_at,
                    before.updated_at,
                    before.batch_id,
                    *after,
                ),
            )
            self.db.execute(
                """UPDATE triples SET subject_id=?, relation_id=?, object_id=?, updated_at=?
                   WHERE id=?""",
                (sid, rel, oid, stamp, triple_id),
            )
            self._collect_orphans()
        return self.get(triple_id)

    def remove(self, triple_ids: Sequence[int]) -> list[Triple]:
        """Remove triples by id, as one batch; unknown ids are refused (nothing removed)."""
        ids = list(dict.fromkeys(triple_ids))
        found = self._triples_by_id(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(
                f"no triple with id {', '.join(map(str, missing))}; nothing removed"
            )
        if not ids:
            return []
        label = f"rm {', '.join(map(str, ids[:5]))}" + (" …" if len(ids) > 5 else "")
        with self.batch("rm", label):
            self._remove_ids(ids)
        return [found[i] for i in ids]

    def _triples_by_id(self, ids: Sequence[int]) -> dict[int, Triple]:
        found: dict[int, Triple] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(_TRIPLE_SQL + f" WHERE t.id IN ({marks})", chunk):
                found[row[0]] = Triple(*row)
        return found

    def _remove_ids(self, ids: Sequence[int]) -> None:
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS _ids (id INTEGER PRIMARY KEY)")
        self.db.execute("DELETE FROM _ids")
        self.db.executemany("INSERT OR IGNORE INTO _ids VALUES (?)", ((i,) for i in ids))
        self._record_removals("t.id IN (SELECT id FROM _ids)")
        self.db.execute("DELETE FROM triples WHERE id IN (SELECT id FROM _ids)")
        self.db.execute("DELETE FROM _ids")
        self._collect_orphans()

    def remove_all(self) -> int:
        """Remove every triple (used by restore), logged in the current batch."""
        assert self._batch is not None
        self._record_removals("1")
        count = self.db.execute("DELETE FROM triples").rowcount
        self._collect_orphans()
        return count

    def _collect_orphans(self) -> None:
        """Entities exist only while a triple names them."""
        self.db.execute(
            """DELETE FROM entities WHERE
               NOT EXISTS (SELECT 1 FROM triples WHERE subject_id = entities.id) AND
               NOT EXISTS (SELECT 1 FROM triples WHERE object_id = entities.id)"""
        )

    # -- undo -------------------------------------------------------------------------

    def undo(self, batch_id: int | None = None) -> Batch:
        """Revert a batch exactly: the latest one not yet undone, or `batch_id` when no
        later batch changed the same triples. Returns the batch that was reverted."""
        with self.transaction():
            if batch_id is None:
                row = self.db.execute(
                    """SELECT id FROM batches WHERE undone_by IS NULL AND kind != 'undo'
                       ORDER BY id DESC LIMIT 1"""
                ).fetchone()
                if row is None:
                    raise UndoError("nothing to undo")
                batch_id = row[0]
            target = self.get_batch(batch_id)
            if target.kind == "undo":
                raise UndoError(f"batch {batch_id} is itself an undo; it cannot be undone")
            if target.undone_by is not None:
                raise UndoError(
                    f"batch {batch_id} was already undone (by batch {target.undone_by})"
                )
            # Later changes to a triple this batch added (added_batch) or changed.
            later = self.db.execute(
                """SELECT c2.batch_id FROM changes c2
                   JOIN batches b ON b.id = c2.batch_id AND b.undone_by IS NULL
                   WHERE c2.batch_id > :batch AND (c2.added_batch = :batch OR c2.triple_id IN
                         (SELECT triple_id FROM changes WHERE batch_id = :batch))
                   LIMIT 1""",
                {"batch": batch_id},
            ).fetchone()
            if later:
                raise UndoError(
                    f"batch {later[0]} later changed triples of batch {batch_id}; "
                    f"undo batch {later[0]} first"
                )
            with self.batch("undo", f"undo batch {batch_id}: {target.description}") as undo_id:
                self._revert(batch_id)
                self.db.execute(
                    "UPDATE batches SET undone_by = ? WHERE id = ?", (undo_id, batch_id)
                )
        return self.get_batch(batch_id)

    def _revert(self, batch_id: int) -> None:
        self.db.execute("DELETE FROM triples WHERE batch_id = ?", (batch_id,))
        rows = self.db.execute(
            """SELECT op, triple_id, subject, relation, object, source, created_at,
                      updated_at, added_batch
               FROM changes WHERE batch_id = ? ORDER BY id DESC""",
            (batch_id,),
        ).fetchall()
        entity_ids: dict[str, int] = {}

        def entity(name: str) -> int:
            if name not in entity_ids:
                entity_ids[name] = self.entity_id(name, create=True)  # type: ignore[assignment]
            return entity_ids[name]

        for op, tid, s, r, o, source, created, updated, added_batch in rows:
            state = (entity(s), self.relation_id(r, create=True), entity(o))
            try:
                if op == "remove":
                    self.db.execute(
                        """INSERT INTO triples (id, subject_id, relation_id, object_id, source,
                               created_at, updated_at, batch_id)
                           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                        (tid, *state, source, created, updated, added_batch),
                    )
                else:
                    self.db.execute(
                        """UPDATE triples SET subject_id=?, relation_id=?, object_id=?,
                               source=?, created_at=?, updated_at=?, batch_id=? WHERE id=?""",
                        (*state, source, created, updated, added_batch, tid),
                    )
            except sqlite3.IntegrityError:
                raise UndoError(
                    f"cannot undo batch {batch_id}: {s} >> {r} >> {o} is in memory again "
                    "(added later); remove it first"
                ) from None
        self._collect_orphans()
        self.db.execute(
            """DELETE FROM relations WHERE created_batch = ?
               AND NOT EXISTS (SELECT 1 FROM triples WHERE relation_id = relations.id)""",
            (batch_id,),
        )
        self._relation_keys = None


def _change(row: tuple) -> Change:
    cid, batch_id, op, tid, s, r, o, ns, nr, no, at = row
    return Change(
        cid,
        batch_id,
        op,
        tid,
        (s, r, o) if s is not None else None,
        (ns, nr, no) if ns is not None else None,
        at,
    )


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """Open (creating when missing) a memory file, refusing anything that is not a
    memcli memory this version understands, without writing to it."""
    if readonly and not path.is_file():
        raise DatabaseError(f"{path}: no such memory file")
    if path.is_dir():
        raise DatabaseError(f"{path}: is a directory, not a memory file")
    if path.exists() and path.stat().st_size > 0:
        try:
            with path.open("rb") as handle:
                magic = handle.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise DatabaseError(f"{path}: cannot read: {exc.strerror}") from None
        if magic != SQLITE_MAGIC:
            raise DatabaseError(f"{path}: not an SQLite database; file left untouched")
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"{path}: cannot create: {exc.strerror}") from None
    try:
        target = f"file:{path.resolve()}?mode=ro" if readonly else str(path)
        db = sqlite3.connect(target, timeout=BUSY_TIMEOUT_S, isolation_level=None, uri=readonly)
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        raise DatabaseError(f"{path}: cannot open memory: {exc}") from None
    if version > SCHEMA_VERSION:
        db.close()
        raise DatabaseError(
            f"{path}: written by a newer memcli (schema {version}, this one knows "
            f"{SCHEMA_VERSION}); upgrade memcli. File left untouched"
        )
    if version > 0 and not _has_table(db, "_memcli_migrations"):
        db.close()
        raise DatabaseError(f"{path}: an SQLite database, but not a memcli memory")
    if version == 0 and _user_tables(db) - {"_memcli_migrations"}:
        db.close()
        raise DatabaseError(f"{path}: an SQLite database, but not a memcli memory")
    if readonly:
        if version < SCHEMA_VERSION:
            db.close()
            raise DatabaseError(f"{path}: an older memory; open it with memcli once to upgrade")
        return db
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = OFF")
        stamp = now()
        migrate(db, stamp)
        if db.execute("SELECT count(*) FROM relations").fetchone()[0] == 0:
            _seed_relations(db)
    except sqlite3.Error as exc:
        db.close()
        raise DatabaseError(f"{path}: cannot prepare memory: {exc}") from None
    return db


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return bool(
        db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
    )


def _user_tables(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _seed_relations(db: sqlite3.Connection) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute("SELECT count(*) FROM relations").fetchone()[0] == 0:
            db.executemany(
                "INSERT INTO relations (name, key, wikidata_id) VALUES (?, ?, ?)",
                ((name, names.key(name), pid) for pid, name in builtin_relations().items()),
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
