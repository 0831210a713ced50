"""What the MCP server offers, as plain functions over a `TripleStore`.

Each function validates exactly as the CLI does (the store raises the same
`MemcliError`s, hence the same one-line messages), makes at most one batch, and returns
JSON-ready dicts. `actor` ("mcp <client name>") heads every batch description, so
`memcli mem log` shows which agent made a change; `source` is what each fact records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from memcli.errors import UsageError
from memcli.store import names
from memcli.store.core import Change, Fact, TripleStore, check_name
from memcli.store.matching import (
    ENTITY_THRESHOLD,
    RELATION_THRESHOLD,
    closest,
    closest_entity,
    name_index,
)
from memcli.syntax import fact_text

if TYPE_CHECKING:
    from memcli.runtime.engine_api import Engine

MAX_LIMIT = 1000
MAX_INGEST_CHARS = 200_000
_WORD = re.compile(r"\w[\w'’.&-]*", re.UNICODE)
_MAX_PHRASE_WORDS = 8


def fact(t: Fact) -> dict[str, Any]:
    """A fact as the tools return it: its fields plus the batch that added it."""
    return {**t.as_dict(), "batch_id": t.batch_id}


def _limit(limit: int) -> int:
    if limit < 1 or limit > MAX_LIMIT:
        raise UsageError(f"limit must be between 1 and {MAX_LIMIT} (got {limit})")
    return limit


def _shown(triple: tuple[str, str, str]) -> str:
    return fact_text(*triple)


# -- reading ----------------------------------------------------------------------------


def search_facts(store: TripleStore, query: str, limit: int = 10) -> list[tuple[Fact, float]]:
    """Facts for free text, best first, with a score (0-100).

    Names are matched as the model's reads match them (memcli.store.matching.closest):
    each run of up to 8 words of the query that names an entity or a relation exactly
    (ignoring case and spacing) scores 100; runs of up to 4 words are otherwise matched
    approximately (rapidfuzz ratio, the reads' thresholds). A fact scores by its
    entity's match, raised when its relation is named too. This is the one function to
    extend with meaning-based matching.
    """
    from rapidfuzz import fuzz, process

    words = [w.rstrip(".,'’") for w in _WORD.findall(query)]
    words = [w for w in words if w]
    phrases: list[tuple[int, str]] = []
    for size in range(min(_MAX_PHRASE_WORDS, len(words)), 0, -1):
        for start in range(len(words) - size + 1):
            phrases.append((size, " ".join(words[start : start + size])))
    if query.strip() and all(p != query.strip() for _, p in phrases):
        phrases.insert(0, (len(words), query.strip()))

    entity_scores: dict[str, tuple[str, float]] = {}  # key -> (name, score)
    relation_scores: dict[str, tuple[str, float]] = {}

    def note(table: dict[str, tuple[str, float]], name: str, score: float) -> None:
        key = names.key(name)
        if score > table.get(key, ("", -1.0))[1]:
            table[key] = (name, score)

    relation_by_key = {names.key(r): r for r in store.relation_names()}
    index = name_index(store)
    for size, phrase in phrases:
        key = names.key(phrase)
        if key in relation_by_key:
            note(relation_scores, relation_by_key[key], 100.0)
        if store.entity_id(phrase) is not None:
            note(entity_scores, phrase, 100.0)
            continue
        if size > 4 or len(key) < 4:
            continue
        hit = index.closest_scored(key, ENTITY_THRESHOLD)
        if hit is not None:
            note(entity_scores, *hit)
        near = process.extractOne(
            key, list(relation_by_key), scorer=fuzz.ratio, score_cutoff=RELATION_THRESHOLD
        )
        if near is not None:
            note(relation_scores, relation_by_key[near[0]], float(near[1]))

    scored: dict[int, tuple[Fact, float]] = {}

    def offer(t: Fact, score: float) -> None:
        if score > scored.get(t.id, (t, -1.0))[1]:
            scored[t.id] = (t, score)

    entities = sorted(entity_scores.values(), key=lambda item: -item[1])[:5]
    relations = sorted(relation_scores.values(), key=lambda item: -item[1])[:3]
    for name, score in entities:
        for relation, rel_score in relations:
            for t in store.facts_about(name, relation, limit=limit):
                offer(t, score * (0.8 + 0.2 * rel_score / 100.0))
        for t in store.facts_about(name, limit=limit):
            offer(t, score * 0.8)
    if not entities:
        for relation, rel_score in relations:
            for t in store.find(relation=relation, limit=limit):
                offer(t, rel_score * 0.5)
    best = sorted(scored.values(), key=lambda item: (-item[1], item[0].id))
    return best[:limit]


def search(store: TripleStore, query: str, limit: int = 10) -> dict[str, Any]:
    if not query.strip():
        raise UsageError("the query is empty")
    hits = search_facts(store, query, _limit(limit))
    return {
        "query": query,
        "facts": [{**fact(t), "score": round(score, 1)} for t, score in hits],
    }


def _known_relation(store: TripleStore, relation: str) -> str:
    """The stored relation name closest to `relation` (as the model's reads match), or a
    one-line error naming the closest ones."""
    found = closest(store.relation_names(), relation, RELATION_THRESHOLD)
    if found is None:
        suggestions = store.suggest_relations(relation)
        hint = f" (did you mean: {', '.join(suggestions)}?)" if suggestions else ""
        raise UsageError(f"unknown relation {relation!r}{hint}")
    return found


def facts(
    store: TripleStore, entity: str, relation: str | None = None, limit: int = 100
) -> dict[str, Any]:
    """The current facts naming `entity` as subject or object (optionally with one
    relation); a misspelt entity is matched as the model's reads match it."""
    if not entity.strip():
        raise UsageError("the entity is empty")
    limit = _limit(limit)
    rel = _known_relation(store, relation) if relation is not None else None
    matched = entity
    found = store.facts_about(entity, rel, limit=limit)
    if not found and store.entity_id(entity) is None:
        near = closest_entity(store, entity, ENTITY_THRESHOLD)
        if near is not None:
            matched = near
            found = store.facts_about(near, rel, limit=limit)
    result: dict[str, Any] = {
        "entity": matched,
        "relation": rel,
        "facts": [fact(t) for t in found],
    }
    if names.key(matched) != names.key(entity):
        result["note"] = f"no entity {entity!r}; showing the closest, {matched!r}"
    elif not found:
        result["note"] = f"no current facts about {entity!r}"
    return result


def history(store: TripleStore, entity: str | None = None, limit: int = 20) -> dict[str, Any]:
    """The change log, newest batch first: every batch, or only the changes to facts
    that name `entity` (now or before an edit or removal)."""
    limit = _limit(limit)
    if entity is None or not entity.strip():
        return {"entity": None, "batches": [_batch(store, b.id, None) for b in store.log(limit)]}
    ids = _triples_naming(store, entity)
    by_batch: dict[int, list[Change]] = {}
    for triple_id in sorted(ids):
        for change in store.history(triple_id):
            by_batch.setdefault(change.batch_id, []).append(change)
    newest = sorted(by_batch, reverse=True)[:limit]
    return {"entity": entity, "batches": [_batch(store, b, by_batch[b]) for b in newest]}


def _batch(store: TripleStore, batch_id: int, changes: list[Change] | None) -> dict[str, Any]:
    batch = store.get_batch(batch_id)
    shown = changes if changes is not None else store.batch_changes(batch_id, 50)
    return {**batch.as_dict(), "details": [c.as_dict() for c in shown]}


def _triples_naming(store: TripleStore, entity: str) -> set[int]:
    """Ids of the facts that name `entity` now (superseded ones included) or did before
    an edit or removal (from the change log)."""
    key = names.key(entity)
    ids = {t.id for t in store.find(subject=entity, history=True)}
    ids |= {t.id for t in store.find(object=entity, history=True)}
    pattern = names.clean(entity).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = store.db.execute(
        """SELECT triple_id, subject, object, new_subject, new_object FROM changes
           WHERE subject LIKE :p ESCAPE '\\' OR object LIKE :p ESCAPE '\\'
              OR new_subject LIKE :p ESCAPE '\\' OR new_object LIKE :p ESCAPE '\\'""",
        {"p": pattern},
    )
    for triple_id, *named in rows:
        if any(n is not None and names.key(n) == key for n in named):
            ids.add(triple_id)
    return ids


def relations(store: TripleStore) -> list[dict[str, Any]]:
    return store.relations()


def stats(store: TripleStore) -> dict[str, Any]:
    return store.stats()


# -- writing ----------------------------------------------------------------------------


def add(
    store: TripleStore,
    subject: str,
    relation: str,
    object: str,
    *,
    source: str,
    actor: str,
    new_relation: bool = False,
) -> dict[str, Any]:
    """One fact, as `memcli mem add` adds it: one batch, an existing fact unchanged."""
    triple = (
        check_name(subject, "subject"),
        check_name(relation, "relation"),
        check_name(object, "object"),
    )
    with store.batch("add", f"{actor}: add {_shown(triple)}") as batch_id:
        result = store.add(*triple, source, new_relation=new_relation)
    created = result.created
    return {
        "fact": fact(result.triple),
        "created": created,
        "batch_id": batch_id if created else None,
        "superseded": [fact(t) for t in result.superseded],
    }


def add_many(
    store: TripleStore,
    rows: Sequence[dict[str, Any]],
    *,
    source: str,
    actor: str,
    new_relation: bool = False,
) -> dict[str, Any]:
    """Several facts as one batch, all or nothing; a bad one is named by its index."""
    if not rows:
        raise UsageError("no facts given")
    checked: list[tuple[str, str, str, str]] = []
    for index, row in enumerate(rows):
        try:
            checked.append(
                (
                    check_name(row["subject"], "subject"),
                    check_name(row["relation"], "relation"),
                    check_name(row["object"], "object"),
                    row.get("source") or source,
                )
            )
        except UsageError as exc:
            raise UsageError(f"facts[{index}]: {exc}; memory unchanged") from None
    label = (
        f"{actor}: add {len(checked)} facts"
        if len(checked) > 1
        else (f"{actor}: add {_shown(checked[0][:3])}")
    )
    try:
        batch_id, created = store.add_many(checked, "add", label, new_relation=new_relation)
    except UsageError as exc:
        raise UsageError(f"{exc}; memory unchanged") from None
    return {
        "batch_id": batch_id,
        "created": [fact(t) for t in created],
        "already_in_memory": len({names.key(_shown(r[:3])) for r in checked}) - len(created),
        "superseded": [fact(t) for t in store.superseded_in(batch_id)] if batch_id else [],
    }


def supersede(
    store: TripleStore, fact_id: int, object: str, *, source: str, actor: str
) -> dict[str, Any]:
    """Replace a fact's object with a new current one; the old fact is kept as history."""
    new_object = check_name(object, "object")
    with store.batch("supersede", f"{actor}: supersede {fact_id} with {new_object}") as batch_id:
        result = store.supersede(fact_id, object=new_object, source=source)
    return {
        "fact": fact(result.triple),
        "created": result.created,
        "batch_id": batch_id,
        "superseded": [fact(t) for t in result.superseded],
    }


def edit(
    store: TripleStore,
    fact_id: int,
    subject: str | None = None,
    relation: str | None = None,
    object: str | None = None,
    *,
    actor: str,
    new_relation: bool = False,
) -> dict[str, Any]:
    """Change the subject, relation or object of a fact in place (its id stays)."""
    if subject is None and relation is None and object is None:
        raise UsageError("say what to change: subject, relation and/or object")
    with store.batch("edit", f"{actor}: edit {fact_id}") as batch_id:
        triple = store.edit(fact_id, subject, relation, object, new_relation=new_relation)
    return {"fact": fact(triple), "batch_id": batch_id}


def remove(store: TripleStore, ids: Iterable[int], *, actor: str) -> dict[str, Any]:
    """Remove facts by id as one batch; an unknown id removes nothing."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        raise UsageError("give at least one fact id")
    shown = ", ".join(map(str, wanted[:5])) + (" …" if len(wanted) > 5 else "")
    with store.batch("rm", f"{actor}: rm {shown}") as batch_id:
        removed = store.remove(wanted)
    return {"removed": [fact(t) for t in removed], "batch_id": batch_id}


def undo(store: TripleStore, batch_id: int | None = None, *, actor: str) -> dict[str, Any]:
    """Revert a batch exactly (the latest one by default), as `memcli mem undo` does; the
    undo batch's description names the client."""
    reverted = store.undo(batch_id, by=actor)
    return {"undone": reverted.as_dict(), "undo_batch_id": reverted.undone_by}


def check_ingest(text: str) -> None:
    """Refuse, before any model is loaded, a text memory_ingest will not read."""
    if not text.strip():
        raise UsageError("the text is empty")
    if len(text) > MAX_INGEST_CHARS:
        raise UsageError(
            f"the text is {len(text):,} characters; memory_ingest reads at most "
            f"{MAX_INGEST_CHARS:,} a call (about an hour of the model's time): split it"
        )


def ingest(
    engine: Engine, store: TripleStore, text: str, *, source: str, actor: str
) -> dict[str, Any]:
    """The model reads `text` sentence by sentence (each with the text before it as
    context) and what each states is stored as one batch, as `memcli ingest` does; the
    batch descriptions name the client."""
    from memcli.runtime.events import CallFailed, WriteDone
    from memcli.runtime.sentences import split_sentences

    check_ingest(text)
    sentences = split_sentences(text)
    if not sentences:
        raise UsageError("no text to ingest")
    proposed = 0
    stored: list[Fact] = []
    batch_ids: list[int] = []
    problems: list[str] = []
    context: list[str] = []
    for sentence, line in sentences:
        for event in engine.write(sentence, " ".join(context), source=source, dry_run=True):
            if isinstance(event, WriteDone) and event.triples:
                proposed += len(event.triples)
                batch_id, created = store.add_many(
                    [(t.subject, t.relation, t.object, source) for t in event.triples],
                    kind="model-write",
                    description=f"{actor}: ingest: {sentence[:60]}",
                )
                stored += created
                if batch_id is not None:
                    batch_ids.append(batch_id)
            elif isinstance(event, CallFailed):
                problems.append(f"line {line}: {event.message}")
        context.append(sentence)
    return {
        "sentences": len(sentences),
        "proposed": proposed,
        "stored": [fact(t) for t in stored],
        "batch_ids": batch_ids,
        "problems": problems,
    }
