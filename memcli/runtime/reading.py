"""Reading by meaning: which fact in memory a question in everyday words is about.

Departure from MemLLM (which lets the model write the whole read query and matches its
relation to the store's by embedding similarity): memcli picks the query itself. When a
question names entities in memory, their current facts (as subject and as object) are
the candidates, and the relation is chosen by the embedding similarity of the question to
each candidate's relation name (`embeddings.relation_text`), not by string equality. A
candidate is taken only when its relation is about as close to the question as the
closest of *all* known relations (within `margin`): "Where was Dana born?" is closest to
`place of birth`, so Dana's `residence` is not read for it, and the answer is that
memory has nothing about that. The read is then put in the text in MemLLM's own syntax
(`({MEM_READ(Dana Whitfield>>residence>>)-->Oslo})`) and the model answers after it.

`facts_by_meaning` is the same ranking for other front ends (the MCP server's search).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from memcli.protocol import ReadQuery
from memcli.runtime.embeddings import Embedder, rank_relations, shared_embedder
from memcli.runtime.events import Done, ReadDone, Text
from memcli.runtime.glosses import (
    ANSWERS_ALIKE,
    HUMAN_RELATIONS,
    PERSON_VALUE,
    VALUE_TYPES,
    about_people,
)
from memcli.runtime.writing import names_in
from memcli.store import names
from memcli.store.core import Fact, TripleStore

# Chosen on 60 train conversations of recipes/chat_data.py (never on the dev set), each
# question asked of a memory holding exactly the facts told: margin 0.12 answered 120/120
# and abstained 60/60 (0.06: answered 102/120; 0.18: abstained 54/60).
MARGIN = 0.12
MIN_SCORE = 0.2
# A question whose closest relation is this far off asks for something memory has no
# relation for ("What is Dana's phone number?" 0.33, "... email address?" 0.36,
# "... favourite colour?" 0.32): it is answered "nothing in memory", not with the
# nearest fact. Every question of 200 train conversations came closer (lowest 0.43).
MIN_BEST = 0.36


@dataclass(frozen=True)
class Choice:
    """A fact chosen for a question, with how close its relation is to the question."""

    fact: Fact
    entity: str  # the entity the question names (the fact's subject or object)
    score: float
    best: float  # the closest any known relation came

    @property
    def query(self) -> ReadQuery:
        if names.key(self.fact.subject) == names.key(self.entity):
            return ReadQuery(self.fact.subject, self.fact.relation, None)
        return ReadQuery(None, self.fact.relation, self.fact.object)

    @property
    def result(self) -> str:
        if names.key(self.fact.subject) == names.key(self.entity):
            return self.fact.object
        return self.fact.subject


def _question_text(question: str, entity: str) -> str:
    """The question with the entity's name replaced by "someone": the relation is what is
    left to match (a name's own meaning only adds noise)."""
    lowered = question.lower()
    at = lowered.find(entity.lower())
    if at >= 0:
        return question[:at] + "someone" + question[at + len(entity) :]
    first = entity.split()[0] if " " in entity else ""
    # Asked by first name alone ("What nationality is Marta?", `mentioned_entities`).
    alone = re.search(rf"(?<!\w){re.escape(first)}(?!\w)", question) if first else None
    if alone is None:
        return question
    return question[: alone.start()] + "someone" + question[alone.end() :]


NOTHING_IN_MEMORY = "I have nothing about that in memory."


def plan_answer(store: TripleStore, question: str, answering: Callable[[], object]) -> str:
    """Decide how a question is answered from memory, as `memcli chat` and `memcli ask`
    both do: "read" (the fact it asks for, chosen by meaning, is planned as the first
    read of the engine `answering()` gives), "absent" (it names someone or something,
    but memory has no such fact: answer NOTHING_IN_MEMORY without generating, or even
    waiting for the model) or "open" (it names nothing in memory)."""
    from memcli import protocol

    entities = mentioned_entities(store, question)
    choices = choose_facts(store, question, entities, limit=1) if entities else []
    if choices:
        plan_read = getattr(answering(), "plan_read", None)
        if plan_read is not None:
            plan_read([c.query for c in choices][: protocol.MAX_READ_QUERIES])
        return "read"
    return "absent" if entities or names_in(question) else "open"


MAX_ABOUT = 20  # facts listed for "Tell me about X"
# "Where is Aisha from?" is closest to `ethnic group` and `country of citizenship`, but a
# birthplace answers it as well: any of them that memory holds is a candidate.
WHERE_FROM = re.compile(
    r"^\s*where\s+(?:is|are|was|were|'s)\b.*\bfrom\b|^\s*where\s+(?:does|do|did)\b.*\bcome\s+from\b",
    re.IGNORECASE,
)
ORIGINS = ("place of birth", "country of citizenship", "ethnic group")


def about_reads(store: TripleStore, request: str) -> tuple[str, list[ReadDone]] | None:
    """For a request for everything about a name ("What do you know about Marta?",
    `writing.ABOUT`): the answer listing the current facts of the entity it names (as
    subject and as object, at most MAX_ABOUT), and the reads that found them, one per
    relation and direction, in MemLLM's syntax. None when it names nothing in memory."""
    entities = mentioned_entities(store, request)
    if not entities:
        return None
    entity = entities[0]
    facts = sorted(store.facts_about(entity, limit=MAX_ABOUT), key=lambda f: f.id)  # as told
    if not facts:
        return None
    key = names.key(entity)
    groups: dict[tuple[str, bool], list[Fact]] = {}
    for fact in facts:
        groups.setdefault((fact.relation, names.key(fact.subject) == key), []).append(fact)
    reads = []
    for (relation, forward), found in groups.items():
        query = (
            ReadQuery(found[0].subject, relation, None)
            if forward
            else ReadQuery(None, relation, found[0].object)
        )
        results = tuple(f.object if forward else f.subject for f in found)
        reads.append(ReadDone((query,), results, tuple(found), True))
    listed = "; ".join(f"{f.subject} - {f.relation}: {f.object}" for f in facts)
    return f"From memory: {listed}.", reads


def about_answer(store: TripleStore, request: str) -> tuple[Text, Done] | None:
    """The answer's events for a request for everything about a name, as `memcli chat`
    and `memcli ask` give it: its facts listed (`about_reads`), NOTHING_IN_MEMORY for a
    name memory does not hold, None when the request names nothing (the model replies)."""
    from memcli import protocol

    found = about_reads(store, request)
    if found is None and not names_in(request):
        return None
    text, reads = found or (NOTHING_IN_MEMORY, [])
    raw = "".join(protocol.format_read(r.queries, r.results) for r in reads)
    return Text(text), Done(text, f"{raw} {text}".strip(), reads=tuple(reads))


def _like_prefix(word: str) -> str:
    """A LIKE pattern for keys that start with `word` and a space ("marta %")."""
    return names.key(word).replace("%", "").replace("_", "") + " %"


def choose_facts(
    store: TripleStore,
    question: str,
    entities: Sequence[str],
    *,
    embedder: Embedder | None = None,
    margin: float = MARGIN,
    min_score: float = MIN_SCORE,
    limit: int = 1,
) -> list[Choice]:
    """The facts about `entities` that `question` asks for (best first, at most `limit`);
    empty when none of their relations is close enough in meaning."""
    embedder = embedder or shared_embedder()
    relations = store.relation_names()
    choices: list[Choice] = []
    for entity in entities:
        facts = store.facts_about(entity, limit=200)
        if not facts:
            continue
        text = _question_text(question, entity)
        ranked = dict(rank_relations(text, relations, embedder))
        if _is_person(entity, facts, embedder):
            # About a person, only relations a person can have compete: "Which company is
            # Dana with?" is not a question about a `manufacturer`.
            ranked = {r: x for r, x in ranked.items() if about_people(r)} or ranked
        best = max(ranked.values()) if ranked else 0.0
        if best < MIN_BEST:
            continue
        ranked.update(_named_otherwise(text, ranked, best, embedder))
        closest = max(ranked, key=lambda r: ranked[r])
        held = {f.relation for f in facts}
        alike = () if closest in held else ANSWERS_ALIKE.get(closest, ())
        origin = bool(WHERE_FROM.match(question))
        for fact in facts:
            score = ranked.get(fact.relation)
            if score is None:
                score = rank_relations(text, [fact.relation], embedder)[0][1]
            if fact.relation in alike:  # answers the same question (`ANSWERS_ALIKE`)
                score = max(score, best - margin)
            if origin and fact.relation in ORIGINS:  # "Where is Aisha from?": as the closest
                score = max(score, best)
            if score >= min_score and score >= best - margin:
                choices.append(Choice(fact, entity, score, best))
    choices.sort(key=lambda c: -c.score)
    groups: dict[tuple[str, str], list[Choice]] = {}
    for choice in choices:  # the best (entity, relation) first, all its objects together
        key = (names.key(choice.entity), names.key(choice.fact.relation))
        if key in groups or len(groups) < limit:
            groups.setdefault(key, []).append(choice)
    return [c for group in groups.values() for c in group]


def _named_otherwise(
    text: str, ranked: dict[str, float], best: float, embedder: Embedder
) -> dict[str, float]:
    """The relations one of whose other names (`glosses.ALIASES`) is closer to the
    question than any relation's name, with that score: "What nationality is Dana?" is
    0.93 from "nationality" and 0.60 from `country of citizenship`, while `ethnic group`
    (0.73) is the closest name. Only a name closer than all lifts a relation: "Which
    language is Dana fluent in?" (0.46 from "nationality") stays about languages, and how
    close a question comes to what memory holds (`best`, the margin's and MIN_BEST's
    measure) is still measured on names."""
    lifted = dict(rank_relations(text, list(ranked), embedder, aliases=True))
    return {r: x for r, x in lifted.items() if x > best and x > ranked[r]}


def _is_person(entity: str, facts: Sequence[Fact], embedder: Embedder) -> bool:
    """Whether an entity is a person: the subject of a fact only people have, or a name
    that reads as a person's (`writing.is_person`)."""
    from memcli.runtime.writing import is_person

    key = names.key(entity)
    return any(
        f.relation in HUMAN_RELATIONS and names.key(f.subject) == key for f in facts
    ) or is_person(entity, embedder)


def facts_by_meaning(
    store: TripleStore,
    query: str,
    *,
    limit: int = 10,
    embedder: Embedder | None = None,
) -> list[tuple[Fact, float]]:
    """Current facts matching `query` by meaning, best first, with their scores: the facts
    of the entities it names (exact names, else the closest spelling), ranked by how
    close their relation is to the rest of the query. For search front ends (MCP)."""
    from memcli.store.matching import closest_entity

    embedder = embedder or shared_embedder()
    entities = mentioned_entities(store, query)
    if not entities:
        near = closest_entity(store, query, 80.0)
        entities = [near] if near else []
    scored: dict[int, tuple[Fact, float]] = {}
    for entity in entities:
        text = _question_text(query, entity)
        facts = store.facts_about(entity, limit=200)
        if not facts:
            continue
        sims = dict(
            rank_relations(
                text, list(dict.fromkeys(f.relation for f in facts)), embedder, aliases=True
            )
        )
        for fact in facts:
            score = float(sims[fact.relation])
            if fact.id not in scored or scored[fact.id][1] < score:
                scored[fact.id] = (fact, score)
    return sorted(scored.values(), key=lambda pair: -pair[1])[:limit]


_WORD = re.compile(r"\w[\w'’.-]*")
_POSSESSIVE = re.compile(r"['’]s$")
MAX_NAME_WORDS = 8


def name_words(text: str) -> list[str]:
    """The words of `text` as names are looked up: a possessive "'s" and trailing dots
    and quotes dropped ("Rihanna's" → "Rihanna")."""
    return [_POSSESSIVE.sub("", w).rstrip(".'’") for w in _WORD.findall(text)]


def entities_named(store: TripleStore, words: Sequence[str], *, current: bool) -> list[str]:
    """The entities whose key is that of a run of up to 8 of `words`; with `current`, only
    those in a current fact (as subject or object)."""
    grams = {
        names.key(" ".join(words[i:j]))
        for i in range(len(words))
        for j in range(i + 1, min(i + MAX_NAME_WORDS, len(words)) + 1)
    }
    grams.discard("")
    in_a_fact = (
        """ AND EXISTS (SELECT 1 FROM triples t WHERE t.superseded_at IS NULL
        AND (t.subject_id = e.id OR t.object_id = e.id))"""
        if current
        else ""
    )
    found: list[str] = []
    keys = list(grams)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = store.db.execute(
            f"SELECT e.name FROM entities e WHERE e.key IN ({marks}){in_a_fact}", chunk
        )
        found += [row[0] for row in rows]
    return found


def one_person_named(store: TripleStore, first: str) -> str | None:
    """The one person in memory whose name has more words and starts with `first`
    ("Marta" → "Marta Lindgren"), a person being the subject of a current fact only
    people have (`glosses.HUMAN_RELATIONS`) or the value of one whose value is a person
    (spouse, sibling, chairperson, …); None when there are none or several."""
    if not names.key(first) or " " in names.key(first):
        return None
    having = sorted(HUMAN_RELATIONS)
    valued = sorted(r for r, kind in VALUE_TYPES.items() if kind == PERSON_VALUE)
    rows = store.db.execute(
        f"""SELECT DISTINCT e.name FROM entities e JOIN triples t
        ON (t.subject_id = e.id AND t.relation_id IN
            (SELECT id FROM relations WHERE name IN ({",".join("?" * len(having))})))
        OR (t.object_id = e.id AND t.relation_id IN
            (SELECT id FROM relations WHERE name IN ({",".join("?" * len(valued))})))
        WHERE e.key LIKE ? AND t.superseded_at IS NULL LIMIT 2""",
        (*having, *valued, _like_prefix(first)),
    ).fetchall()
    return rows[0][0] if len(rows) == 1 else None


def mentioned_entities(store: TripleStore, text: str) -> list[str]:
    """Entities in memory that `text` names: any run of up to 8 words, by key (possessive
    "'s" dropped), and a single word that is the first word of exactly one multi-word
    entity named by a current fact ("Dana" for "Dana Whitfield")."""
    words = name_words(text)
    found = entities_named(store, words, current=True)
    taken = {names.key(w) for f in found for w in f.split()}
    capitalised = {w for w in words if w[:1].isupper() and names.key(w) not in taken}
    for word in capitalised:
        matches = store.db.execute(
            """SELECT e.name FROM entities e WHERE e.key LIKE ? AND EXISTS (
                SELECT 1 FROM triples t WHERE t.superseded_at IS NULL
                AND t.subject_id = e.id) LIMIT 2""",
            (_like_prefix(word),),
        ).fetchall()
        if len(matches) == 1:
            found.append(matches[0][0])
    # Longest names first where one contains another ("Aarhus Otters" over "Aarhus").
    found = list(dict.fromkeys(found))
    keep = [
        n
        for n in found
        if not any(n != m and f" {names.key(n)} " in f" {names.key(m)} " for m in found)
    ]
    lowered = text.lower()
    return sorted(keep, key=lambda n: lowered.find(n.lower()) % (len(lowered) + 1))
