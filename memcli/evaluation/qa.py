"""`eval qa`: answering templated questions from a memory that holds the gold triples.

Memory (a temporary store) is filled with every labelled triple of the chosen documents,
each entity named by its first mention in its document (`Entity.name`). One question is
asked per distinct (subject, relation) pair — "What is the country of Lake Geneva?" —
so a fact with several objects is one question, answered correctly by any of them; a
triple sharing its question with others is not asked twice.

Each question is answered three times, greedily:

- with memory: correct when the visible answer contains, as whole words and compared by
  matching key, a mention surface of a gold object; the read is *correct* when one of
  the answer's read calls asks for the subject (any of its surfaces, or its name in
  memory) with the relation, the object left open;
- without memory (`memory=False`, as `memcli ask --no-memory`): correct as above;
- with the asked fact removed from memory (every triple of that subject and relation,
  put back afterwards): the answer *asserts some entity* when, after its mentions of
  the subject are blanked out, it contains a mention surface of any other entity of
  the question's document(s). That is a hallucination: memory lacks the fact (lower is
  better). Answers that say they do not know (`ABSTAIN`) are counted apart.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter

from memcli.evaluation.data import Document
from memcli.evaluation.metrics import contains_any, ratio
from memcli.runtime.engine_api import Engine
from memcli.runtime.events import Done, ReadDone
from memcli.store import names
from memcli.store.core import TripleStore

Progress = Callable[[int], None]

QUESTION = "What is the {relation} of {subject}?"
ABSTAIN = re.compile(
    r"\b(?:do not know|don't know|does not know|doesn't know|not sure|no information|"
    r"unknown|cannot|can't|unable|not in (?:my )?memory|nothing in (?:my )?memory)\b",
    re.IGNORECASE,
)


@dataclass
class Question:
    subject: str  # the name in memory
    relation: str
    objects: list[str]  # the gold objects' names in memory
    answers: list[str]  # every mention surface of every gold object
    subject_surfaces: list[str]
    others: list[str]  # surfaces of the other entities of the documents
    documents: list[int]

    @property
    def text(self) -> str:
        return QUESTION.format(relation=self.relation, subject=self.subject)


@dataclass
class Answer:
    text: str
    raw: str
    reads: list[dict]

    @classmethod
    def of(cls, done: Done) -> Answer:
        reads = [
            {
                "queries": [[q.subject, q.relation, q.object] for q in r.queries],
                "results": list(r.results),
                "kept": r.kept,
                "note": r.note,
            }
            for r in done.reads
            if isinstance(r, ReadDone)
        ]
        return cls(done.text, done.raw, reads)


@dataclass
class QuestionResult:
    question: Question
    memory: Answer
    no_memory: Answer
    removed: Answer
    correct: bool
    correct_no_memory: bool
    correct_read: bool
    asserts: str | None  # the entity surface asserted with the fact removed
    abstains: bool

    def as_dict(self) -> dict:
        q = self.question
        return {
            "question": q.text,
            "subject": q.subject,
            "relation": q.relation,
            "objects": q.objects,
            "documents": q.documents,
            "memory": vars(self.memory),
            "no_memory": vars(self.no_memory),
            "removed": vars(self.removed),
            "correct": self.correct,
            "correct_no_memory": self.correct_no_memory,
            "correct_read": self.correct_read,
            "asserts": self.asserts,
            "abstains": self.abstains,
        }


@dataclass
class QAReport:
    results: list[QuestionResult]
    total_questions: int
    triples: int
    seconds: float

    def figures(self) -> dict:
        r, n = self.results, len(self.results)
        return {
            "memory_triples": self.triples,
            "questions_total": self.total_questions,
            "questions_asked": n,
            "accuracy_memory": ratio(sum(x.correct for x in r), n),
            "accuracy_no_memory": ratio(sum(x.correct_no_memory for x in r), n),
            "correct_read_rate": ratio(sum(x.correct_read for x in r), n),
            "hallucination_rate": ratio(sum(x.asserts is not None for x in r), n),
            "abstain_rate_removed": ratio(sum(x.abstains for x in r), n),
            "seconds": self.seconds,
            "questions_per_second": ratio(n, self.seconds),
        }

    def summary(self) -> list[tuple[str, str]]:
        f = self.figures()
        return [
            ("triples in memory", str(f["memory_triples"])),
            ("questions asked", f"{f['questions_asked']} of {f['questions_total']}"),
            ("accuracy with memory", f"{f['accuracy_memory']:.3f}"),
            ("accuracy without memory", f"{f['accuracy_no_memory']:.3f}"),
            ("answers with a correct read", f"{f['correct_read_rate']:.3f}"),
            ("fact removed: asserts an entity", f"{f['hallucination_rate']:.3f}"),
            ("fact removed: says it does not know", f"{f['abstain_rate_removed']:.3f}"),
            ("questions per second", f"{f['questions_per_second']:.2f}"),
        ]

    def as_dict(self) -> dict:
        return {
            "mode": "qa",
            "figures": self.figures(),
            "definitions": {
                "correct": "the answer contains a mention surface of a gold object",
                "correct_read": "a read asks for the subject and relation, object open",
                "asserts": "with the fact removed, the answer (subject blanked out) "
                "contains a surface of another entity of the document",
                "abstains": ABSTAIN.pattern,
            },
            "questions": [x.as_dict() for x in self.results],
        }


def gold_rows(docs: Sequence[Document]) -> list[tuple[str, str, str, str]]:
    """(subject, relation, object, source) for every storable labelled triple."""
    rows = []
    for doc in docs:
        for fact in doc.facts:
            head, tail = doc.entities[fact.head], doc.entities[fact.tail]
            if head.name is not None and tail.name is not None:
                rows.append((head.name, fact.relation, tail.name, f"redocred {doc.index}"))
    return rows


def fill_memory(store: TripleStore, docs: Sequence[Document]) -> int:
    """Add the gold triples of `docs`; returns how many distinct triples memory holds."""
    rows = gold_rows(docs)
    if rows:
        store.add_many(rows, kind="import", description="eval: gold triples")
    return store.count()


def build_questions(docs: Sequence[Document]) -> list[Question]:
    """One question per distinct (subject name, relation), in document and label order."""
    found: dict[tuple[str, str], Question] = {}
    for doc in docs:
        for fact in doc.facts:
            head, tail = doc.entities[fact.head], doc.entities[fact.tail]
            if head.name is None or tail.name is None:
                continue
            key = (names.key(head.name), names.key(fact.relation))
            q = found.get(key)
            if q is None:
                q = found[key] = Question(head.name, fact.relation, [], [], [], [], [])
            _extend(q.objects, [tail.name])
            _extend(q.answers, [tail.name, *tail.surfaces])
            _extend(q.subject_surfaces, [head.name, *head.surfaces])
            if doc.index not in q.documents:
                q.documents.append(doc.index)
                subject_keys = {names.key(head.name)}
                _extend(
                    q.others,
                    [
                        s
                        for e in doc.entities
                        if e.index != head.index and not (e.keys & subject_keys)
                        for s in e.surfaces
                    ],
                )
    return list(found.values())


def _extend(items: list[str], new: Sequence[str]) -> None:
    keys = {names.key(i) for i in items}
    for item in new:
        if names.key(item) not in keys:
            keys.add(names.key(item))
            items.append(item)


def sample_questions(questions: list[Question], limit: int | None, seed: int) -> list[Question]:
    """At most `limit` questions, drawn with `random.Random(seed)`, in their order."""
    if limit is None or limit >= len(questions):
        return questions
    chosen = sorted(random.Random(seed).sample(range(len(questions)), limit))
    return [questions[i] for i in chosen]


def asks_for(answer: Answer, q: Question) -> bool:
    subjects = {names.key(s) for s in q.subject_surfaces}
    return any(
        subject is not None
        and obj is None
        and names.key(subject) in subjects
        and names.key(relation) == names.key(q.relation)
        for read in answer.reads
        for subject, relation, obj in read["queries"]
    )


def asserted_entity(text: str, q: Question) -> str | None:
    """An entity of the document (other than the subject) that `text` names."""
    hay = names.key(text)
    for surface in sorted(q.subject_surfaces, key=len, reverse=True):
        key = names.key(surface)
        if key:
            hay = re.sub(r"(?<!\w)" + re.escape(key) + r"(?!\w)", " ", hay)
    return contains_any(hay, q.others)


def _ask(engine: Engine, question: str, memory: bool) -> Answer:
    done = None
    for event in engine.answer([{"role": "user", "content": question}], memory=memory):
        if isinstance(event, Done):
            done = event
    assert done is not None
    return Answer.of(done)


def evaluate_qa(
    engine: Engine,
    docs: Sequence[Document],
    *,
    max_questions: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    clock: Callable[[], float] | None = None,
) -> QAReport:
    """Ask the questions of `docs` against `engine.store`, which must be empty."""
    clock = clock or perf_counter
    store = engine.store
    assert store is not None
    triples = fill_memory(store, docs)
    everything = build_questions(docs)
    asked = sample_questions(everything, max_questions, seed)
    results: list[QuestionResult] = []
    started = clock()
    for q in asked:
        with_memory = _ask(engine, q.text, True)
        without = _ask(engine, q.text, False)
        facts = store.find(subject=q.subject, relation=q.relation)
        store.remove([t.id for t in facts])
        try:
            removed = _ask(engine, q.text, True)
        finally:
            store.add_many(
                [(t.subject, t.relation, t.object, t.source) for t in facts],
                kind="import",
                description="eval: put back",
            )
        results.append(
            QuestionResult(
                q,
                with_memory,
                without,
                removed,
                correct=contains_any(with_memory.text, q.answers) is not None,
                correct_no_memory=contains_any(without.text, q.answers) is not None,
                correct_read=asks_for(with_memory, q),
                asserts=asserted_entity(removed.text, q),
                abstains=bool(ABSTAIN.search(removed.text)),
            )
        )
        if progress is not None:
            progress(len(results))
    return QAReport(results, len(everything), triples, clock() - started)
