"""`eval write`: the model's MEM_WRITE calls against the labelled triples.

Every sentence gets one write with the preceding sentences of its document as context,
exactly as `memcli ingest` makes them (`MemoryEngine.write(..., dry_run=True)`, so
nothing is stored). The sentences are the data set's own, not re-split.

Gold for a sentence: the labelled triples whose evidence includes it and whose two
entities are both mentioned in it. A predicted triple matches a gold one when the
relation names match and its subject and object each equal (by matching key) one of the
mention surfaces of the gold head and tail. Predictions and gold are paired one to one
(a maximum matching), so two spellings of one fact count once; precision, recall and F1
are micro-averaged over triples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from time import perf_counter

from memcli.evaluation.data import Document, LabelledFact
from memcli.evaluation.metrics import PRF, max_matching, ratio
from memcli.protocol import Triple
from memcli.runtime.engine_api import Engine
from memcli.runtime.events import CallFailed
from memcli.runtime.write_batch import WriteRequest, write_sentences
from memcli.store import names

Progress = Callable[[int], None]


@dataclass
class SentenceResult:
    document: int
    sentence: int
    predicted: list[Triple]
    gold: list[tuple[str, str, str]]  # head name, relation, tail name (for the report)
    matched: list[tuple[int, int]]  # (predicted index, gold index)
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "document": self.document,
            "sentence": self.sentence,
            "predicted": [[t.subject, t.relation, t.object] for t in self.predicted],
            "gold": [list(g) for g in self.gold],
            "correct": [
                [t.subject, t.relation, t.object]
                for t in (self.predicted[i] for i, _ in self.matched)
            ],
            "failures": self.failures,
        }


@dataclass
class WriteReport:
    sentences: list[SentenceResult]
    seconds: float

    @property
    def prf(self) -> PRF:
        return PRF(
            sum(len(s.matched) for s in self.sentences),
            sum(len(s.predicted) for s in self.sentences),
            sum(len(s.gold) for s in self.sentences),
        )

    @property
    def failed(self) -> int:
        return sum(1 for s in self.sentences if s.failures)

    @property
    def empty(self) -> int:
        return sum(1 for s in self.sentences if not s.predicted and not s.failures)

    def figures(self) -> dict:
        prf, n = self.prf, len(self.sentences)
        return {
            "documents": len({s.document for s in self.sentences}),
            "sentences": n,
            "gold_triples": prf.gold,
            "predicted_triples": prf.predicted,
            "correct_triples": prf.correct,
            "precision": prf.precision,
            "recall": prf.recall,
            "f1": prf.f1,
            "parse_failure_rate": ratio(self.failed, n),
            "empty_call_rate": ratio(self.empty, n),
            "gold_empty_rate": ratio(sum(1 for s in self.sentences if not s.gold), n),
            "seconds": self.seconds,
            "sentences_per_second": ratio(n, self.seconds),
        }

    def summary(self) -> list[tuple[str, str]]:
        f = self.figures()
        return [
            ("documents", str(f["documents"])),
            ("sentences", str(f["sentences"])),
            ("gold triples", str(f["gold_triples"])),
            ("predicted triples", str(f["predicted_triples"])),
            ("correct triples", str(f["correct_triples"])),
            ("precision", f"{f['precision']:.3f}"),
            ("recall", f"{f['recall']:.3f}"),
            ("F1", f"{f['f1']:.3f}"),
            ("calls that failed to parse", f"{f['parse_failure_rate']:.3f}"),
            ("empty calls", f"{f['empty_call_rate']:.3f}"),
            ("sentences with no gold triple", f"{f['gold_empty_rate']:.3f}"),
            ("sentences per second", f"{f['sentences_per_second']:.2f}"),
        ]

    def as_dict(self) -> dict:
        return {
            "mode": "write",
            "figures": self.figures(),
            "sentences": [s.as_dict() for s in self.sentences],
        }


def matches(doc: Document, triple: Triple, fact: LabelledFact) -> bool:
    return (
        names.key(triple.relation) == names.key(fact.relation)
        and names.key(triple.subject) in doc.entities[fact.head].keys
        and names.key(triple.object) in doc.entities[fact.tail].keys
    )


def match_triples(
    doc: Document, predicted: Sequence[Triple], gold: Sequence[LabelledFact]
) -> list[tuple[int, int]]:
    """(predicted index, gold index) pairs of a maximum one-to-one matching."""
    return max_matching(len(predicted), len(gold), lambda p, g: matches(doc, predicted[p], gold[g]))


def sentence_count(docs: Sequence[Document]) -> int:
    return sum(len(d.sentences) for d in docs)


def evaluate_write(
    engine: Engine,
    docs: Sequence[Document],
    *,
    progress: Progress | None = None,
    clock: Callable[[], float] | None = None,
    batch: int = 1,
) -> WriteReport:
    """`batch`: sentences decoded together (`runtime.write_batch`); the same calls."""
    clock = clock or perf_counter
    results: list[SentenceResult] = []
    started = clock()
    where = [(doc, i) for doc in docs for i in range(len(doc.sentences))]
    requests = [
        WriteRequest(doc.sentences[i], " ".join(doc.sentences[:i]), f"eval {doc.index}:{i}")
        for doc, i in where
    ]
    with closing(write_sentences(engine, requests, batch=batch, dry_run=True)) as outcomes:
        for (doc, i), outcome in zip(where, outcomes, strict=True):
            written = outcome.done
            predicted: list[Triple] = list(written.triples) if written is not None else []
            failures = [e.message for e in outcome.events if isinstance(e, CallFailed)]
            if outcome.error is not None:
                failures.append(str(outcome.error))
            gold = doc.write_gold(i)
            matched = match_triples(doc, predicted, gold)
            results.append(
                SentenceResult(
                    doc.index,
                    i,
                    predicted,
                    [(_name(doc, f.head), f.relation, _name(doc, f.tail)) for f in gold],
                    matched,
                    failures,
                )
            )
            if progress is not None:
                progress(len(results))
    return WriteReport(results, clock() - started)


def _name(doc: Document, entity: int) -> str:
    e = doc.entities[entity]
    return e.name or (e.surfaces[0] if e.surfaces else f"#{entity}")
