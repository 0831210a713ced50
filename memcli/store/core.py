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
import threading
from collections import Counter
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
    unreadable,
)
from memcli.store import names, safety
from memcli.store.schema import SCHEMA_VERSION, SINGLE_VALUED, SQLITE_MAGIC, migrate
from memcli.syntax import fact_text

BUSY_TIMEOUT_S = 60.0
MANUAL = "manual"

_TRIPLE_SQL = """
    SELECT t.id, s.name, r.name, o.name, t.source, t.created_at, t.updated_at, t.batch_id,
           t.superseded_at, t.superseded_by, t.superseded_batch
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


# SQL: entity `e` is named by a current fact (as subject or object). Two index searches:
# an OR of the two columns in one subquery scanned the whole table.
NAMED_BY_A_CURRENT_FACT = """(
    EXISTS (SELECT 1 FROM triples WHERE subject_id = e.id AND superseded_at IS NULL)
    OR EXISTS (SELECT 1 FROM triples WHERE object_id = e.id AND superseded_at IS NULL))"""


@dataclass(frozen=True)
class Fact:
    """A fact as memory stores it: the triple, its id, provenance and history (the
    protocol's bare (subject, relation, object) is `memcli.protocol.Triple`)."""

    id: int
    subject: str
    relation: str
    object: str
    source: str
    created_at: str
    updated_at: str
    batch_id: int = field(compare=False)  # bookkeeping: which batch added it
    superseded_at: str | None = None  # when it stopped being current (None: current)
    superseded_by: int | None = None  # the fact that replaced it
    superseded_batch: int | None = field(default=None, compare=False)

    @property
    def current(self) -> bool:
        return self.superseded_at is None

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "subject": self.subject,
            "relation": self.relation,
            "object": self.object,
            "source": self.source,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "current": self.current,
            "superseded_at": self.superseded_at,
            "superseded_by": self.superseded_by,
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
    triple: Fact
    created: bool
    superseded: tuple[Fact, ...] = ()  # facts this addition made no longer current


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


def check_source(source: str) -> str:
    """The source unchanged, or InvalidNameError: a source is printed in listings, so it
    may not hold control characters, escape sequences or bidirectional controls."""
    problem = names.source_problem(source)
    if problem:
        raise InvalidNameError(f"source {_shorten(str(source))} {problem}")
    return source


def _shorten(text: str, width: int = 40) -> str:
    shown = text if len(text) <= width else text[: width - 1] + "…"
    return repr(shown)


class TripleStore:
    """A memory of (subject, relation, object) triples in one SQLite file."""

    def __init__(self, path: str | Path | None = None, *, readonly: bool = False):
        self.path = Path(path) if path is not None else paths.default_db()
        self.db = _connect(self.path, readonly=readonly)
        self._held: str | None = _hold(self.path)
        self._batch: int | None = None
        self._relation_keys: dict[str, int] | None = None

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    @classmethod
    def open_readonly(cls, path: str | Path) -> TripleStore:
        """Open an existing memory (a snapshot, say) without writing to it."""
        return cls(path, readonly=True)

    # -- life cycle -------------------------------------------------------------------

    def close(self) -> None:
        self.db.close()
        if self._held is not None:
            _release(self._held)
            self._held = None

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
            # Ids come from an AUTOINCREMENT counter, so an id given out for a batch that
            # turned out empty (and was dropped) is never given to another batch.
            allocated = db.execute("INSERT INTO batch_ids DEFAULT VALUES").lastrowid
            db.execute("DELETE FROM batch_ids")
            db.execute(
                "INSERT INTO batches (id, kind, description, created_at) VALUES (?, ?, ?, ?)",
                (allocated, kind, description, now()),
            )
            assert allocated is not None
            self._batch = batch_id = allocated
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
                       AND NOT EXISTS (SELECT 1 FROM relations WHERE created_batch = ?)
                       AND NOT EXISTS (SELECT 1 FROM relation_changes WHERE batch_id = ?)
                       AND NOT EXISTS (SELECT 1 FROM triples WHERE superseded_batch = ?)""",
                    (batch_id,) * 5,
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
            """SELECT r.id, r.name, r.wikidata_id, r.cardinality,
                      (SELECT count(*) FROM triples t
                       WHERE t.relation_id = r.id AND t.superseded_at IS NULL)
               FROM relations r ORDER BY r.id"""
        )
        return [
            {"id": i, "name": n, "wikidata_id": w, "cardinality": k, "triples": c}
            for i, n, w, k, c in rows
        ]

    def cardinality(self, relation: str) -> str:
        """'single' (one current object per subject) or 'multi'."""
        row = self.db.execute(
            "SELECT cardinality FROM relations WHERE key = ?", (names.key(relation),)
        ).fetchone()
        if row is None:
            raise UnknownRelationError(relation, self.suggest_relations(relation))
        return row[0]

    def single_valued(self) -> set[int]:
        """Ids of the single-valued relations."""
        return {
            row[0]
            for row in self.db.execute("SELECT id FROM relations WHERE cardinality = 'single'")
        }

    def set_cardinality(self, relations: Sequence[str], single: bool) -> int | None:
        """Make relations single- or multi-valued, as one undoable batch (None when all
        already were). Facts already stored are left as they are: switching a relation to
        single-valued supersedes nothing until the next addition."""
        wanted = "single" if single else "multi"
        ids = [self.relation_id(name) for name in relations]
        label = ", ".join(relations[:3]) + (" …" if len(relations) > 3 else "")
        with self.batch("relation", f"make {label} {wanted}-valued") as batch_id:
            changed = 0
            for rid in dict.fromkeys(ids):
                before = self.db.execute(
                    "SELECT cardinality FROM relations WHERE id = ?", (rid,)
                ).fetchone()[0]
                if before == wanted:
                    continue
                self.db.execute(
                    "INSERT INTO relation_changes (batch_id, relation_id, before, after) "
                    "VALUES (?, ?, ?, ?)",
                    (batch_id, rid, before, wanted),
                )
                self.db.execute("UPDATE relations SET cardinality = ? WHERE id = ?", (wanted, rid))
                changed += 1
        return batch_id if changed else None

    def add_relation(self, name: str) -> tuple[int, bool]:
        """Add a relation name; returns (id, created)."""
        name = check_name(name, "relation")
        existing = self.relation_keys().get(names.key(name))
        if existing is not None:
            return existing, False
        with self.batch("relation", f"add relation {name}"):
            return self.relation_id(name, create=True), True

    def entity_names(self) -> list[str]:
        """Names of the entities that a current fact names (superseded facts keep theirs
        as history, but reads cannot reach them)."""
        sql = f"SELECT name FROM entities e WHERE {NAMED_BY_A_CURRENT_FACT} ORDER BY id"
        return [row[0] for row in self.db.execute(sql)]

    # -- reading ----------------------------------------------------------------------

    def get(self, triple_id: int) -> Fact:
        safety.check_id(triple_id)
        row = self.db.execute(_TRIPLE_SQL + " WHERE t.id = ?", (triple_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no fact with id {triple_id}")
        return Fact(*row)

    def find(
        self,
        subject: str | None = None,
        relation: str | None = None,
        object: str | None = None,
        source: str | None = None,
        limit: int | None = None,
        *,
        history: bool = False,
    ) -> list[Fact]:
        """Current triples matching every given filter: names by key (case- and
        space-insensitive), source as a case-insensitive substring. `history` includes
        superseded ones."""
        where: list[str] = [] if history else ["t.superseded_at IS NULL"]
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
        if safety.check_limit(limit) is not None:
            sql += " LIMIT ?"
            args.append(limit)  # type: ignore[arg-type]
        return [Fact(*row) for row in self.db.execute(sql, args)]

    def lookup(
        self, subject: str | None, relation: str, object: str | None, limit: int = 30
    ) -> list[Fact]:
        """Exact lookup by (subject, relation) or (object, relation), through the indexes."""
        if (subject is None) == (object is None):
            raise UsageError("a lookup needs exactly one of subject and object")
        known, column = (subject, "s") if subject is not None else (object, "o")
        assert known is not None
        rows = self.db.execute(
            _TRIPLE_SQL + f" WHERE {column}.key = ? AND r.key = ? AND t.superseded_at IS NULL"
            " ORDER BY t.id LIMIT ?",
            (names.key(known), names.key(relation), limit),
        )
        return [Fact(*row) for row in rows]

    def facts_about(
        self, entity: str, relation: str | None = None, limit: int | None = 100
    ) -> list[Fact]:
        """Current facts naming `entity` as subject or object (optionally of one relation),
        subject side first."""
        key = names.key(entity)
        where = "t.superseded_at IS NULL AND {side}.key = ?"
        args: list = [key]
        if relation is not None:
            where += " AND r.key = ?"
            args.append(names.key(relation))
        found: list[Fact] = []
        # In index order (by relation), so that LIMIT stops early on an entity with
        # thousands of facts instead of sorting them all (14 -> 0.3 ms at 5,000).
        order = {"s": "t.relation_id, t.object_id", "o": "t.relation_id, t.id"}
        for side in ("s", "o"):
            sql = _TRIPLE_SQL + " WHERE " + where.format(side=side) + f" ORDER BY {order[side]}"
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            found += [Fact(*row) for row in self.db.execute(sql, args)]
        unique = list({t.id: t for t in found}.values())
        return unique[:limit] if limit is not None else unique

    def chain(self, triple_id: int) -> list[Fact]:
        """The succession a fact is part of, oldest first: the facts it replaced, itself,
        and those that replaced it (`Oslo → Bergen → Trondheim`)."""
        fact = self.get(triple_id)
        before: list[Fact] = []
        seen = {fact.id}
        cursor = fact
        while True:
            row = self.db.execute(
                _TRIPLE_SQL + " WHERE t.superseded_by = ? ORDER BY t.id DESC LIMIT 1",
                (cursor.id,),
            ).fetchone()
            if row is None or row[0] in seen:
                break
            cursor = Fact(*row)
            seen.add(cursor.id)
            before.append(cursor)
        after: list[Fact] = []
        cursor = fact
        while cursor.superseded_by is not None and cursor.superseded_by not in seen:
            try:
                cursor = self.get(cursor.superseded_by)
            except NotFoundError:
                break
            seen.add(cursor.id)
            after.append(cursor)
        return [*reversed(before), fact, *after]

    def superseded_in(self, batch_id: int) -> list[Fact]:
        """The facts batch `batch_id` made no longer current (each names its successor)."""
        rows = self.db.execute(
            _TRIPLE_SQL + " WHERE t.superseded_batch = ? ORDER BY t.id", (batch_id,)
        )
        return [Fact(*row) for row in rows]

    def current_objects(self, subject: str, relation: str) -> list[Fact]:
        """The current facts of (subject, relation), by key."""
        rows = self.db.execute(
            _TRIPLE_SQL + " WHERE s.key = ? AND r.key = ? AND t.superseded_at IS NULL"
            " ORDER BY t.id",
            (names.key(subject), names.key(relation)),
        )
        return [Fact(*row) for row in rows]

    def count(self, *, history: bool = False) -> int:
        if history:
            return self.db.execute("SELECT count(*) FROM triples").fetchone()[0]
        return self.db.execute(
            "SELECT count(*) FROM triples WHERE superseded_at IS NULL"
        ).fetchone()[0]

    def revision(self) -> int:
        """Changes whenever memory changes (the newest batch id); caches key on it."""
        return self.db.execute("SELECT coalesce(max(id), 0) FROM batches").fetchone()[0]

    def stats(self) -> dict:
        one = self.db.execute
        return {
            "path": str(self.path),
            "triples": self.count(),
            "superseded": one(
                "SELECT count(*) FROM triples WHERE superseded_at IS NOT NULL"
            ).fetchone()[0],
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
        safety.check_id(triple_id)
        rows = self.db.execute(
            _CHANGE_SQL + " WHERE c.triple_id = ? ORDER BY c.id", (triple_id,)
        ).fetchall()
        changes = [_change(row) for row in rows]
        added = self._addition(triple_id, changes)
        entries = ([added] if added else []) + changes
        if changes and changes[-1].op in ("remove", "unadd"):
            # Removed, then added again with the same id (a restore does that).
            try:
                again = self.get(triple_id)
            except NotFoundError:
                return entries
            at = self.db.execute(
                "SELECT created_at FROM batches WHERE id = ?", (again.batch_id,)
            ).fetchone()
            state = (again.subject, again.relation, again.object)
            entries.append(
                Change(0, again.batch_id, "add", triple_id, None, state, at[0] if at else "")
            )
        return entries

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
        limit = safety.check_limit(limit)
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
        cardinality = [
            Change(0, batch_id, "cardinality", 0, ("", name, before), ("", name, after), at)
            for name, before, after in self.db.execute(
                """SELECT r.name, x.before, x.after FROM relation_changes x
                   JOIN relations r ON r.id = x.relation_id WHERE x.batch_id = ? ORDER BY x.id""",
                (batch_id,),
            )
        ]
        return added + [_change(row) for row in self.db.execute(sql, args)] + cardinality

    def _batch_triples(self, batch_id: int, limit: int | None) -> list[Fact]:
        sql = _TRIPLE_SQL + " WHERE t.batch_id = ? ORDER BY t.id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [Fact(*row) for row in self.db.execute(sql, (batch_id,))]

    def log(self, limit: int | None = 20) -> list[Batch]:
        limit = safety.check_limit(limit)
        sql = """SELECT b.id, b.kind, b.description, b.created_at, b.undone_by,
                        b.added + (SELECT count(*) FROM changes c WHERE c.batch_id = b.id)
                        + (SELECT count(*) FROM relation_changes x WHERE x.batch_id = b.id)
                 FROM batches b ORDER BY b.id DESC"""
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [Batch(*row) for row in self.db.execute(sql)]

    def get_batch(self, batch_id: int) -> Batch:
        safety.check_id(batch_id, "batch")
        row = self.db.execute(
            """SELECT b.id, b.kind, b.description, b.created_at, b.undone_by,
                      b.added + (SELECT count(*) FROM changes c WHERE c.batch_id = b.id)
                        + (SELECT count(*) FROM relation_changes x WHERE x.batch_id = b.id)
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
        """Add one triple; an existing one is returned unchanged with created=False. For a
        single-valued relation the subject's current object (if another) is superseded
        in the same batch."""
        subject = check_name(subject, "subject")
        relation = check_name(relation, "relation")
        object = check_name(object, "object")
        check_source(source)
        existing = self._existing(subject, relation, object)
        if existing is not None:
            return AddResult(existing, False)
        with self.batch("add", f"add {fact_text(subject, relation, object)}"):
            triple, created = self._add_one(subject, relation, object, source, new_relation)
            replaced = self._supersede_others(triple) if created else []
        return AddResult(self.get(triple.id), created, tuple(replaced))

    def supersede(
        self,
        triple_id: int,
        *,
        object: str,
        subject: str | None = None,
        relation: str | None = None,
        source: str = MANUAL,
    ) -> AddResult:
        """Replace a current fact by a new one (another object, by default of the same
        subject and relation), keeping the old one as history. Works for multi-valued
        relations too, for when the text says the old value stopped being true."""
        old = self.get(triple_id)
        if not old.current:
            raise UsageError(
                f"fact {triple_id} is already superseded (by fact {old.superseded_by}); "
                "supersede the current one"
            )
        new = (
            check_name(subject, "subject") if subject is not None else old.subject,
            check_name(relation, "relation") if relation is not None else old.relation,
            check_name(object, "object"),
        )
        check_source(source)
        if [names.key(x) for x in new] == [
            names.key(x) for x in (old.subject, old.relation, old.object)
        ]:
            raise UsageError(f"fact {triple_id} already reads that way; nothing changed")
        label = f"supersede {triple_id}: {old.object} → {new[2]}"
        with self.batch("supersede", label):
            triple, created = self._add_one(*new, source, False)
            replaced = self._supersede_others(triple) if created else []
            if old.id not in {t.id for t in replaced}:
                self._mark_superseded([old.id], triple.id)
                replaced.append(old)
        return AddResult(self.get(triple.id), created, tuple(replaced))

    def _supersede_others(self, triple: Fact) -> list[Fact]:
        """For a single-valued relation, supersede the subject's other current objects by
        `triple`. Returns the facts superseded."""
        rows = self.db.execute(
            """SELECT t.id FROM triples t JOIN relations r ON r.id = t.relation_id
               WHERE r.cardinality = 'single' AND t.superseded_at IS NULL AND t.id != ?
               AND t.subject_id = (SELECT subject_id FROM triples WHERE id = ?)
               AND t.relation_id = (SELECT relation_id FROM triples WHERE id = ?)
               ORDER BY t.id""",
            (triple.id, triple.id, triple.id),
        ).fetchall()
        ids = [row[0] for row in rows]
        if not ids:
            return []
        before = self._triples_by_id(ids)
        self._mark_superseded(ids, triple.id)
        return [before[i] for i in ids]

    def _mark_superseded(self, ids: Sequence[int], by: int) -> None:
        assert self._batch is not None
        stamp = now()
        for tid in ids:
            self.db.execute(
                """INSERT INTO changes (batch_id, op, triple_id, subject, relation, object,
                       source, created_at, updated_at, added_batch,
                       new_subject, new_relation, new_object)
                   SELECT ?, 'supersede', t.id, s.name, r.name, o.name, t.source,
                          t.created_at, t.updated_at, t.batch_id, s.name, r.name, n.name
                   FROM triples t
                   JOIN entities s ON s.id = t.subject_id
                   JOIN relations r ON r.id = t.relation_id
                   JOIN entities o ON o.id = t.object_id
                   JOIN triples b ON b.id = ?
                   JOIN entities n ON n.id = b.object_id
                   WHERE t.id = ?""",
                (self._batch, by, tid),
            )
            self.db.execute(
                """UPDATE triples SET superseded_at = ?, superseded_batch = ?, superseded_by = ?
                   WHERE id = ?""",
                (stamp, self._batch, by, tid),
            )

    def add_many(
        self,
        triples: Iterable[tuple[str, str, str, str]],
        kind: str,
        description: str,
        *,
        new_relation: bool = False,
        supersede: bool = True,
    ) -> tuple[int | None, list[Fact]]:
        """Add (subject, relation, object, source) rows as one batch; returns the batch id
        (None when nothing was new) and the triples created. All or nothing. A new object
        of a single-valued relation supersedes the subject's current one (unless
        `supersede` is False)."""
        rows = [
            (
                check_name(s, "subject"),
                check_name(r, "relation"),
                check_name(o, "object"),
                check_source(source),
            )
            for s, r, o, source in triples
        ]
        created: list[Fact] = []
        with self.batch(kind, description) as batch_id:
            for s, r, o, source in rows:
                triple, is_new = self._add_one(s, r, o, source, new_relation)
                if is_new:
                    if supersede:
                        self._supersede_others(triple)
                    created.append(triple)
        return (batch_id if created else None), [self.get(t.id) for t in created]

    def _existing(self, subject: str, relation: str, object: str) -> Fact | None:
        row = self.db.execute(
            _TRIPLE_SQL
            + " WHERE s.key = ? AND r.key = ? AND o.key = ? AND t.superseded_at IS NULL",
            (names.key(subject), names.key(relation), names.key(object)),
        ).fetchone()
        return Fact(*row) if row else None

    def _add_one(
        self, subject: str, relation: str, object: str, source: str, new_relation: bool
    ) -> tuple[Fact, bool]:
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
                """SELECT id FROM triples WHERE subject_id=? AND relation_id=? AND object_id=?
                   AND superseded_at IS NULL""",
                (sid, rel, oid),
            ).fetchone()
            return self.get(row[0]), False
        return self.get(cur.lastrowid), True  # type: ignore[arg-type]

    def _record_removals(self, where: str, args: Sequence = (), op: str = "remove") -> None:
        self.db.execute(
            f"""INSERT INTO changes (batch_id, op, triple_id, subject, relation, object,
                                     source, created_at, updated_at, added_batch,
                                     superseded_at, superseded_batch, superseded_by)
                SELECT ?, ?, t.id, s.name, r.name, o.name, t.source, t.created_at,
                       t.updated_at, t.batch_id, t.superseded_at, t.superseded_batch,
                       t.superseded_by
                FROM triples t
                JOIN entities s ON s.id = t.subject_id
                JOIN relations r ON r.id = t.relation_id
                JOIN entities o ON o.id = t.object_id
                WHERE {where} ORDER BY t.id""",
            (self._batch, op, *args),
        )

    def edit(
        self,
        triple_id: int,
        subject: str | None = None,
        relation: str | None = None,
        object: str | None = None,
        *,
        new_relation: bool = False,
    ) -> Fact:
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
                f"fact {triple_id} already reads that way (names match ignoring case and "
                "spaces); nothing changed"
            )
        with self.batch("edit", f"edit {triple_id}"):
            rel = self.relation_id(after[1], create=new_relation)
            sid = self.entity_id(after[0], create=True)
            oid = self.entity_id(after[2], create=True)
            clash = self.db.execute(
                """SELECT id FROM triples WHERE subject_id=? AND relation_id=? AND object_id=?
                   AND id != ? AND superseded_at IS NULL AND ?""",
                (sid, rel, oid, triple_id, before.current),
            ).fetchone()
            if clash:
                raise UsageError(f"fact {clash[0]} already states that; nothing changed")
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

    def remove(self, triple_ids: Sequence[int]) -> list[Fact]:
        """Remove triples by id, as one batch; unknown ids are refused (nothing removed)."""
        ids = list(dict.fromkeys(triple_ids))
        found = self._triples_by_id([i for i in ids if 1 <= i <= safety.MAX_INT])
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(f"no fact with id {', '.join(map(str, missing))}; nothing removed")
        if not ids:
            return []
        label = f"rm {', '.join(map(str, ids[:5]))}" + (" …" if len(ids) > 5 else "")
        with self.batch("rm", label):
            self._remove_ids(ids)
        return [found[i] for i in ids]

    def _triples_by_id(self, ids: Sequence[int]) -> dict[int, Fact]:
        found: dict[int, Fact] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(_TRIPLE_SQL + f" WHERE t.id IN ({marks})", chunk):
                found[row[0]] = Fact(*row)
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

    def undo(self, batch_id: int | None = None, *, by: str | None = None) -> Batch:
        """Revert a batch exactly: the latest one not yet undone, or `batch_id` when no
        later batch changed the same triples. Returns the batch that was reverted. `by`
        (who undoes it, e.g. "mcp <client>") heads the undo batch's description."""
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
                        AND b.kind != 'undo'
                   WHERE c2.batch_id > :batch AND (c2.added_batch = :batch OR c2.triple_id IN
                         (SELECT triple_id FROM changes WHERE batch_id = :batch))
                   LIMIT 1""",
                {"batch": batch_id},
            ).fetchone()
            if later:
                raise UndoError(
                    f"batch {later[0]} later changed facts of batch {batch_id}; "
                    f"undo batch {later[0]} first"
                )
            label = f"undo batch {batch_id}: {target.description}"
            with self.batch("undo", f"{by}: {label}" if by else label) as undo_id:
                self._revert(batch_id, undo_id)
                self.db.execute(
                    "UPDATE batches SET undone_by = ? WHERE id = ?", (undo_id, batch_id)
                )
        return self.get_batch(batch_id)

    def _record_state(
        self, batch_id: int, op: str, tid: int, before: tuple[str, str, str] | None = None
    ) -> None:
        """A change row saying fact `tid` now reads as it does (after), and read `before`."""
        t = self.get(tid)
        self.db.execute(
            """INSERT INTO changes (batch_id, op, triple_id, subject, relation, object,
                   source, created_at, updated_at, added_batch,
                   new_subject, new_relation, new_object)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                batch_id,
                op,
                tid,
                *(before or (None, None, None)),
                t.source,
                t.created_at,
                t.updated_at,
                t.batch_id,
                t.subject,
                t.relation,
                t.object,
            ),
        )

    def _revert(self, batch_id: int, undo_id: int) -> None:
        """Undo batch `batch_id`, recording in batch `undo_id` what that changed: the
        facts it took away ('unadd'), put back ('readd'), restored to an earlier state
        ('unedit') or made current again ('unsupersede'), and cardinalities reset."""
        self._record_removals("t.batch_id = ?", (batch_id,), op="unadd")
        self.db.execute("DELETE FROM triples WHERE batch_id = ?", (batch_id,))
        revived = self.db.execute(
            "SELECT id FROM triples WHERE superseded_batch = ? ORDER BY id", (batch_id,)
        ).fetchall()
        try:
            self.db.execute(
                """UPDATE triples SET superseded_at = NULL, superseded_batch = NULL,
                       superseded_by = NULL WHERE superseded_batch = ?""",
                (batch_id,),
            )
        except sqlite3.IntegrityError:
            raise UndoError(
                f"cannot undo batch {batch_id}: a fact it superseded is in memory again "
                "(added later); remove it first"
            ) from None
        for (tid,) in revived:
            self._record_state(undo_id, "unsupersede", tid)
        for relation_id, before in self.db.execute(
            "SELECT relation_id, before FROM relation_changes WHERE batch_id = ? ORDER BY id DESC",
            (batch_id,),
        ).fetchall():
            after = self.db.execute(
                "SELECT cardinality FROM relations WHERE id = ?", (relation_id,)
            ).fetchone()
            if after is None:
                continue
            self.db.execute(
                "INSERT INTO relation_changes (batch_id, relation_id, before, after) "
                "VALUES (?, ?, ?, ?)",
                (undo_id, relation_id, after[0], before),
            )
            self.db.execute(
                "UPDATE relations SET cardinality = ? WHERE id = ?", (before, relation_id)
            )
        rows = self.db.execute(
            """SELECT op, triple_id, subject, relation, object, source, created_at,
                      updated_at, added_batch, superseded_at, superseded_batch, superseded_by
               FROM changes WHERE batch_id = ? AND op IN ('remove', 'edit')
               ORDER BY id DESC""",
            (batch_id,),
        ).fetchall()
        entity_ids: dict[str, int] = {}

        def entity(name: str) -> int:
            if name not in entity_ids:
                entity_ids[name] = self.entity_id(name, create=True)  # type: ignore[assignment]
            return entity_ids[name]

        for op, tid, s, r, o, source, created, updated, added_batch, *past in rows:
            state = (entity(s), self.relation_id(r, create=True), entity(o))
            try:
                if op == "remove":
                    self.db.execute(
                        """INSERT INTO triples (id, subject_id, relation_id, object_id, source,
                               created_at, updated_at, batch_id, superseded_at,
                               superseded_batch, superseded_by)
                           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                        (tid, *state, source, created, updated, added_batch, *past),
                    )
                else:
                    edited = self.get(tid)
                    self.db.execute(
                        """UPDATE triples SET subject_id=?, relation_id=?, object_id=?,
                               source=?, created_at=?, updated_at=?, batch_id=? WHERE id=?""",
                        (*state, source, created, updated, added_batch, tid),
                    )
                    self._record_state(
                        undo_id, "unedit", tid, (edited.subject, edited.relation, edited.object)
                    )
            except sqlite3.IntegrityError:
                raise UndoError(
                    f"cannot undo batch {batch_id}: {fact_text(s, r, o)} is in memory again "
                    "(added later); remove it first"
                ) from None
        self.db.execute(
            """INSERT INTO changes (batch_id, op, triple_id, source, created_at, updated_at,
                   added_batch, new_subject, new_relation, new_object)
               SELECT ?, 'readd', t.id, t.source, t.created_at, t.updated_at, t.batch_id,
                      s.name, r.name, o.name
               FROM triples t
               JOIN entities s ON s.id = t.subject_id
               JOIN relations r ON r.id = t.relation_id
               JOIN entities o ON o.id = t.object_id
               WHERE t.id IN (SELECT triple_id FROM changes WHERE batch_id = ? AND op = 'remove')
               ORDER BY t.id""",
            (undo_id, batch_id),
        )
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


# Memory files this process has open (resolved path -> open stores). SQLite's locks are
# POSIX advisory locks, which a process loses on a file as soon as it closes *any*
# descriptor of it (https://www.sqlite.org/howtocorrupt.html, 2.2). So while a memory is
# open here, another connection to it (a worker thread's) does not read its header with
# open(): that dropped the first connection's lock, and the next process to close its
# connection took itself for the last one and deleted the -wal that our connections went
# on writing to (their writes invisible to every other process from then on).
_OPEN_HERE: Counter[str] = Counter()
_OPEN_LOCK = threading.Lock()


def _open_key(path: Path) -> str:
    return str(path.resolve())


def _hold(path: Path) -> str:
    key = _open_key(path)
    with _OPEN_LOCK:
        _OPEN_HERE[key] += 1
    return key


def _release(key: str) -> None:
    with _OPEN_LOCK:
        _OPEN_HERE[key] -= 1
        if _OPEN_HERE[key] <= 0:
            del _OPEN_HERE[key]


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """Open (creating when missing) a memory file, refusing anything that is not a
    memcli memory this version understands, without writing to it."""
    if readonly and not path.is_file():
        raise DatabaseError(f"{path}: no such memory file")
    if path.is_dir():
        raise DatabaseError(f"{path}: is a directory, not a memory file")
    with _OPEN_LOCK:
        open_here = _OPEN_HERE[_open_key(path)] > 0  # checked when it was first opened
    if open_here:
        pass
    elif path.exists() and path.stat().st_size > 0:
        try:
            with path.open("rb") as handle:
                magic = handle.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise DatabaseError(unreadable(str(path), exc)) from None
        if magic != SQLITE_MAGIC:
            raise DatabaseError(f"{path}: not an SQLite database; file left untouched")
        safety.identify_memory(path, SCHEMA_VERSION)  # read-only: a refusal changes nothing
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"{path}: cannot create: {exc.strerror}") from None
    try:
        if readonly and open_here and Path(f"{path}-wal").exists():
            # What connect_readonly opens a memory in use as, without reading its header.
            db = sqlite3.connect(
                safety.sqlite_uri(path, mode="ro"),
                uri=True,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,
            )
        elif readonly:
            db = safety.connect_readonly(path, timeout=BUSY_TIMEOUT_S)
        else:
            db = sqlite3.connect(
                safety.connect_path(path), timeout=BUSY_TIMEOUT_S, isolation_level=None
            )
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
        if version < 1:
            db.close()
            raise DatabaseError(f"{path}: an older memory; open it with memcli once to upgrade")
        return db  # an older schema is read as it is (see TripleStore.schema_version)
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
                "INSERT INTO relations (name, key, wikidata_id, cardinality) VALUES (?, ?, ?, ?)",
                (
                    (name, names.key(name), pid, "single" if pid in SINGLE_VALUED else "multi")
                    for pid, name in builtin_relations().items()
                ),
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
