"""Approximate matching of entity and relation names (rapidfuzz), for `mem search` and
for memory reads whose names are not spelled exactly as stored."""

from __future__ import annotations

from dataclasses import dataclass

from memcli.store import names
from memcli.store.core import TripleStore

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


def search(store: TripleStore, text: str, limit: int = 10, cutoff: float = 50.0) -> list[Match]:
    """Entities and relations whose names resemble `text`, best first."""
    from rapidfuzz import fuzz, process, utils

    from memcli.store.safety import check_limit

    check_limit(limit)

    found: list[Match] = []
    for kind, sql, count_sql in (
        (
            "entity",
            # Entities that only superseded facts name are history: not found.
            """SELECT id, name FROM entities e WHERE
               EXISTS (SELECT 1 FROM triples WHERE subject_id = e.id AND superseded_at IS NULL)
               OR EXISTS (SELECT 1 FROM triples
                          WHERE object_id = e.id AND superseded_at IS NULL)""",
            # Two index searches (an OR of the two columns scanned the whole table).
            """SELECT (SELECT count(*) FROM triples WHERE subject_id = :id
                       AND superseded_at IS NULL)
                    + (SELECT count(*) FROM triples WHERE object_id = :id
                       AND superseded_at IS NULL AND subject_id != :id)""",
        ),
        (
            "relation",
            "SELECT id, name FROM relations",
            "SELECT count(*) FROM triples WHERE relation_id = :id AND superseded_at IS NULL",
        ),
    ):
        rows = store.db.execute(sql).fetchall()
        choices = [name for _id, name in rows]
        hits = process.extract(
            text,
            choices,
            scorer=fuzz.WRatio,
            processor=utils.default_process,
            limit=limit,
            score_cutoff=cutoff,
        )
        for name, score, index in hits:
            row_id = rows[index][0]
            used = store.db.execute(count_sql, {"id": row_id}).fetchone()[0]
            found.append(Match(kind, name, float(score), used))
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
