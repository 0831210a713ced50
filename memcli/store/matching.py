"""Approximate matching of entity and relation names (rapidfuzz), for `mem search` and
for memory reads whose names are not spelled exactly as stored."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from memcli.store import names
from memcli.store.core import NAMED_BY_A_CURRENT_FACT, TripleStore

ENTITY_THRESHOLD = 88.0
RELATION_THRESHOLD = 85.0


@dataclass(frozen=True)
class Match:
    kind: str  # "entity" or "relation"
    name: str
    score: float
    triples: int

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "score": round(self.score, 1),
            "triples": self.triples,
        }


class NameIndex:
    """The matching keys of every entity of one memory file, for approximate names at
    scale: fetched whole once, then kept in step cheaply. After additions (every chat
    turn) only the rows above the last id seen are read; when a count shows that an
    entity went away (a removal, an undo, a restore) it is read whole again. At
    1,000,000 entities a miss costs one rapidfuzz pass over the keys (~0.13 s here)
    instead of fetching every current name and normalising it (~1.6 s)."""

    def __init__(self, store: TripleStore):
        self.store = store
        self.revision: int | None = None
        self.ids: list[int] = []
        self.keys: list[str] = []

    def sync(self) -> None:
        revision = self.store.revision()
        if revision == self.revision:
            return
        db = self.store.db
        if self.ids:
            row = db.execute("SELECT key FROM entities WHERE id = ?", (self.ids[-1],)).fetchone()
            if row is None or row[0] != self.keys[-1]:  # the newest went, or its id was
                self._read_from(0)  # given again
        self._read_from(self.ids[-1] if self.ids else 0)
        (count,) = db.execute("SELECT count(*) FROM entities").fetchone()
        if count != len(self.ids):  # others went
            self._read_from(0)
        self.revision = revision

    def _read_from(self, after: int) -> None:
        """Read the entities above id `after` (0: all of them, afresh)."""
        if after == 0:
            self.ids, self.keys = [], []
        rows = self.store.db.execute(
            "SELECT id, key FROM entities WHERE id > ? ORDER BY id", (after,)
        ).fetchall()
        self.ids += [r[0] for r in rows]
        self.keys += [r[1] for r in rows]

    def closest(self, name: str, threshold: float, tries: int = 5) -> str | None:
        """The current entity (named by a current fact) spelled most like `name`, at or
        above `threshold` (0-100, rapidfuzz ratio of the matching keys), or None."""
        found = self.closest_scored(name, threshold, tries)
        return found[0] if found else None

    def closest_scored(
        self, name: str, threshold: float, tries: int = 5
    ) -> tuple[str, float] | None:
        """`closest`, with its score."""
        from rapidfuzz import fuzz, process

        self.sync()
        wanted = names.key(name)
        hits = process.extract(
            wanted, self.keys, scorer=fuzz.ratio, score_cutoff=threshold, limit=tries
        )
        for _key, score, index in hits:
            row = self.store.db.execute(
                f"SELECT name FROM entities e WHERE id = ? AND {NAMED_BY_A_CURRENT_FACT}",
                (self.ids[index],),
            ).fetchone()
            if row is not None:
                return str(row[0]), float(score)
        return None


def names_starting(store: TripleStore, typed: str, limit: int = 50) -> list[str]:
    """Current entity names for completing `typed`: those whose key starts with its key
    (through the key index, in key order), then those that contain it, at most `limit`.
    Costs the same at a million entities as at ten for a prefix that matches."""
    prefix = names.key(typed) + (" " if typed[-1:].isspace() and typed.strip() else "")
    found = [
        row[0]
        for row in store.db.execute(
            f"""SELECT name FROM entities e WHERE key >= ? AND key < ?
                AND {NAMED_BY_A_CURRENT_FACT} ORDER BY key LIMIT ?""",
            (prefix, prefix + "\U0010ffff", limit),
        )
    ]
    if prefix and len(found) < limit:
        found += [
            row[0]
            for row in store.db.execute(
                f"""SELECT name FROM entities e WHERE instr(key, ?) > 1
                    AND {NAMED_BY_A_CURRENT_FACT} ORDER BY key LIMIT ?""",
                (prefix, limit - len(found)),
            )
        ]
    return found


_INDEXES: weakref.WeakKeyDictionary[TripleStore, NameIndex] = weakref.WeakKeyDictionary()


def name_index(store: TripleStore) -> NameIndex:
    """The `NameIndex` of `store`, made on first use; it lives as long as the store."""
    index = _INDEXES.get(store)
    if index is None:
        index = _INDEXES[store] = NameIndex(store)
    return index


def closest_entity(store: TripleStore, name: str, threshold: float) -> str | None:
    """The current entity of `store` spelled most like `name` (see `NameIndex`): what the
    model's reads, `search_facts` and MCP fall back to when a name is not stored exactly."""
    return name_index(store).closest(name, threshold)


def search(store: TripleStore, text: str, limit: int = 10, cutoff: float = 50.0) -> list[Match]:
    """Entities and relations whose names resemble `text`, best first."""
    from rapidfuzz import fuzz, process, utils

    from memcli.store.safety import check_limit

    check_limit(limit)

    found: list[Match] = []
    # Entities: over the name index's keys (kept in step with memory, not fetched whole
    # per search); those that only superseded facts name are history, not found.
    index = name_index(store)
    index.sync()
    hits = process.extract(
        text,
        index.keys,
        scorer=fuzz.WRatio,
        processor=utils.default_process,
        limit=min(limit * 4 + 16, len(index.keys)) or 1,  # room for history's names
        score_cutoff=cutoff,
    )
    for _key, score, at in hits:
        row = store.db.execute(
            # Two index searches (an OR of the two columns scanned the whole table).
            """SELECT name,
                      (SELECT count(*) FROM triples WHERE subject_id = e.id
                       AND superseded_at IS NULL)
                    + (SELECT count(*) FROM triples WHERE object_id = e.id
                       AND superseded_at IS NULL AND subject_id != e.id)
               FROM entities e WHERE id = ?""",
            (index.ids[at],),
        ).fetchone()
        if row is not None and row[1]:
            found.append(Match("entity", row[0], float(score), row[1]))
            if len(found) == limit:  # entities only, so far
                break
    rows = store.db.execute("SELECT id, name FROM relations").fetchall()
    for name, score, at in process.extract(
        text,
        [name for _id, name in rows],
        scorer=fuzz.WRatio,
        processor=utils.default_process,
        limit=limit,
        score_cutoff=cutoff,
    ):
        (used,) = store.db.execute(
            "SELECT count(*) FROM triples WHERE relation_id = ? AND superseded_at IS NULL",
            (rows[at][0],),
        ).fetchone()
        found.append(Match("relation", name, float(score), used))
    found.sort(key=lambda m: (-m.score, m.kind, m.name))
    return found[:limit]


def closest(choices: list[str], name: str, threshold: float) -> str | None:
    """The choice most like `name` at or above `threshold` (0-100), exact key first."""
    from rapidfuzz import fuzz, process

    wanted = names.key(name)
    for choice in choices:
        if names.key(choice) == wanted:
            return choice
    hit = process.extractOne(
        wanted, choices, scorer=fuzz.ratio, processor=names.key, score_cutoff=threshold
    )
    return hit[0] if hit else None
