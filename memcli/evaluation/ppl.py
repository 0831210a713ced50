"""`eval ppl`: MemLLM's headline metric, perplexity on target entities.

Each document's text (its sentences joined with spaces) is tokenized once and scored as
plain text, no chat template. *Targets* are the first mentions of entities that are the
object of a labelled triple whose subject is mentioned earlier; a target's tokens are
those that overlap the mention (with a BPE vocabulary, the word's leading space too).
Three conditions score the same document tokens:

(a) memory disabled: the text alone;
(b) model's reads: memory holds the gold triples of the chosen documents; before each
    target the head `({MEM_READ(` is forced and the model writes the queries with the
    engine's constrained decoder (entities limited to those of memory named in the text
    so far, as the engine's `read_first` limits them to the question), the engine runs
    them and the results and `})` are appended. A read that finds nothing is removed
    again, as in generation;
(c) gold reads: the same place holds the gold call: a query for each labelled
    (subject, relation) that leads to the target, at most 3, and what memory returns.

Calls stay in the context once inserted (as in generate-read-resume), and are never
scored: perplexity is over document tokens, all of them but the first ("overall") or
the targets' only ("target"). A call goes where the target's first token begins,
separated by a space from the text on the side that had one ("in the ({MEM_READ(...)
-->Philippines}) Philippines"). The reported reduction is 1 - ppl(b)/ppl(a) on target
tokens; MemLLM reports 15% (3.51 -> 2.99) and, with gold reads, 2.23.

Without an adapter (few-shot), every document is preceded in all three conditions by
`PPL_SHOT`, one short passage that shows a read call.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter

import numpy as np

from memcli import protocol
from memcli.errors import MemcliError, ModelError
from memcli.evaluation.data import Document, Entity
from memcli.evaluation.metrics import perplexity, ratio
from memcli.evaluation.qa import fill_memory
from memcli.evaluation.scorer import TokenScorer
from memcli.protocol import ReadQuery
from memcli.runtime.backend import sync
from memcli.runtime.engine import MemoryEngine
from memcli.runtime.engine_api import Engine, no_logprobs_message
from memcli.store import names

Progress = Callable[[int], None]

PPL_SHOT = (
    "Rihanna is a singer from Barbados. She is signed to "
    "({MEM_READ(Rihanna>>record label>>)-->Def Jam}) Def Jam.\n\n"
)
MAX_QUERY_TOKENS = 64
CONDITIONS = ("a", "b", "c")


@dataclass
class Target:
    entity: Entity
    start: int  # first token
    end: int  # past the last token
    queries: list[ReadQuery]  # the gold read


@dataclass
class Read:
    """A read call put before a target (or the reason there is none)."""

    queries: list[ReadQuery] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def inserted(self) -> bool:
        return bool(self.results)

    def as_dict(self) -> dict:
        return {
            "queries": [[q.subject, q.relation, q.object] for q in self.queries],
            "results": self.results,
            "note": self.note,
        }


@dataclass
class TargetResult:
    name: str
    surface: str
    tokens: int
    logprob: dict[str, float]
    generated: Read
    gold: Read
    correct_query: bool
    finds_target: bool

    def as_dict(self) -> dict:
        return {
            "entity": self.name,
            "surface": self.surface,
            "tokens": self.tokens,
            "logprob": self.logprob,
            "model_read": self.generated.as_dict(),
            "gold_read": self.gold.as_dict(),
            "correct_query": self.correct_query,
            "finds_target": self.finds_target,
        }


@dataclass
class DocResult:
    index: int
    title: str
    tokens: int = 0  # scored (all but the first)
    logprob: dict[str, float] = field(default_factory=dict)
    targets: list[TargetResult] = field(default_factory=list)
    skipped: str = ""

    def as_dict(self) -> dict:
        return {
            "document": self.index,
            "title": self.title,
            "tokens": self.tokens,
            "logprob": self.logprob,
            "skipped": self.skipped,
            "targets": [t.as_dict() for t in self.targets],
        }


@dataclass
class PplReport:
    documents: list[DocResult]
    triples: int
    seconds: float

    def _scored(self) -> list[DocResult]:
        return [d for d in self.documents if not d.skipped]

    def figures(self) -> dict:
        docs = self._scored()
        targets = [t for d in docs for t in d.targets]
        n_all = sum(d.tokens for d in docs)
        n_target = sum(t.tokens for t in targets)
        out: dict = {
            "documents": len(self.documents),
            "documents_skipped": len(self.documents) - len(docs),
            "memory_triples": self.triples,
            "tokens": n_all,
            "targets": len(targets),
            "target_tokens": n_target,
        }
        for c in CONDITIONS:
            out[f"ppl_{c}"] = perplexity(sum(d.logprob[c] for d in docs), n_all)
            out[f"target_ppl_{c}"] = perplexity(sum(t.logprob[c] for t in targets), n_target)
        out["target_reduction_b"] = 1 - ratio(out["target_ppl_b"], out["target_ppl_a"])
        out["target_reduction_c"] = 1 - ratio(out["target_ppl_c"], out["target_ppl_a"])
        out["model_read_rate"] = ratio(sum(t.generated.inserted for t in targets), len(targets))
        out["model_correct_query_rate"] = ratio(sum(t.correct_query for t in targets), len(targets))
        out["model_finds_target_rate"] = ratio(sum(t.finds_target for t in targets), len(targets))
        out["seconds"] = self.seconds
        out["documents_per_second"] = ratio(len(self.documents), self.seconds)
        return out

    def summary(self) -> list[tuple[str, str]]:
        f = self.figures()
        rows = [
            (
                "documents",
                f"{f['documents']}"
                + (f" ({f['documents_skipped']} skipped)" if f["documents_skipped"] else ""),
            ),
            ("scored tokens", str(f["tokens"])),
            ("targets (tokens)", f"{f['targets']} ({f['target_tokens']})"),
        ]
        labels = {"a": "(a) memory disabled", "b": "(b) model's reads", "c": "(c) gold reads"}
        rows += [
            (f"perplexity, all tokens, {labels[c]}", f"{f[f'ppl_{c}']:.3f}") for c in CONDITIONS
        ]
        rows += [
            (f"perplexity, targets, {labels[c]}", f"{f[f'target_ppl_{c}']:.3f}") for c in CONDITIONS
        ]
        rows += [
            ("target perplexity reduction (a) to (b)", f"{f['target_reduction_b']:.1%}"),
            ("target perplexity reduction (a) to (c)", f"{f['target_reduction_c']:.1%}"),
            ("(b) reads that found something", f"{f['model_read_rate']:.3f}"),
            ("(b) reads with a gold query", f"{f['model_correct_query_rate']:.3f}"),
            ("(b) reads whose results name the target", f"{f['model_finds_target_rate']:.3f}"),
            ("documents per second", f"{f['documents_per_second']:.2f}"),
        ]
        return rows

    def as_dict(self) -> dict:
        return {
            "mode": "ppl",
            "figures": self.figures(),
            "documents": [d.as_dict() for d in self.documents],
        }


class PerplexityRun:
    """Scores documents under the three conditions on one engine (and its memory)."""

    def __init__(self, engine: MemoryEngine):
        assert engine.store is not None
        self.engine = engine
        self.store = engine.store
        self.backend = engine.backend
        self.scorer = TokenScorer(engine.backend)
        shot = PPL_SHOT if engine.config.few_shot else ""
        self.prefix = self.backend.tokenize(shot) if shot else []

    # -- layout ---------------------------------------------------------------------------

    def tokens(self, doc: Document) -> tuple[list[int], list[bytes]]:
        text = doc.text
        tokens = self.backend.tokenize(text)
        pieces = [self.backend.token_bytes(t) for t in tokens]
        if b"".join(pieces) != text.encode():
            raise MemcliError(f"{doc.label}: the model's tokens do not spell the text back")
        return tokens, pieces

    def targets(self, doc: Document, pieces: list[bytes]) -> list[Target]:
        text = doc.text
        ends = np.cumsum([len(p) for p in pieces]).tolist()
        found: list[Target] = []
        for entity in doc.entities:
            if entity.name is None or not entity.first.surface:
                continue
            at = doc.position(entity.first)
            queries: dict[tuple[str, str], ReadQuery] = {}
            for fact in doc.facts:
                head = doc.entities[fact.head]
                if (
                    fact.tail == entity.index
                    and fact.head != fact.tail
                    and head.name is not None
                    and doc.position(head.first) < at
                ):
                    q = ReadQuery(head.name, fact.relation, None)
                    queries.setdefault((names.key(head.name), names.key(fact.relation)), q)
            if not queries:
                continue
            begin = len(text[:at].encode())
            finish = begin + len(entity.first.surface.encode())
            first = bisect.bisect_right(ends, begin)  # first token ending after `begin`
            last = bisect.bisect_left(ends, finish)  # token holding the last byte
            found.append(
                Target(entity, first, last + 1, list(queries.values())[: protocol.MAX_READ_QUERIES])
            )
        found.sort(key=lambda t: (t.start, t.end))
        kept: list[Target] = []
        for t in found:  # the first token has no context; overlapping targets keep the first
            if t.start > 0 and (not kept or t.start >= kept[-1].end):
                kept.append(t)
        return kept

    # -- reads ----------------------------------------------------------------------------

    def _insert(self, text: str) -> None:
        self.backend.eval(self.backend.tokenize(text))

    def gold_read(self, target: Target, lead: str, trail: str) -> Read:
        results, _ = self.engine.run_read(target.queries)
        read = Read(list(target.queries), results)
        if results:
            self._insert(lead + protocol.format_read(target.queries, results) + trail)
        else:
            read.note = "nothing in memory"
        return read

    def model_read(self, preceding: str, lead: str, trail: str) -> Read:
        """Force the head, let the model write the queries, run them, append results."""
        engine, backend = self.engine, self.backend
        mark = backend.n_past
        entities = engine.mentioned_entities(preceding)
        if not entities:
            return Read(note="no entity in memory is named before the target")
        self._insert(lead + protocol.READ_HEAD)
        read = Read()
        try:
            cmd = engine.decoder.start_read(entities, self.store.relation_names())
            for _ in range(MAX_QUERY_TOKENS):
                token = backend.sample(engine.decoder.mask(cmd), 0.0)
                backend.eval([token])
                engine.decoder.advance(cmd, token)
                if engine.decoder.is_done(cmd):
                    break
            else:
                read.note = "the read did not finish"
                backend.truncate(mark)
                return read
            queries, _ = protocol.parse_read(protocol.READ_HEAD + cmd.text + protocol.CLOSE)
        except (MemcliError, ValueError) as exc:
            read.note = f"failed: {exc}"
            backend.truncate(mark)
            return read
        read.queries = queries
        read.results, _ = engine.run_read(queries)
        if read.results:
            self._insert(protocol.format_read_results(read.results) + trail)
        else:
            read.note = "nothing in memory"
            backend.truncate(mark)
        return read

    # -- scoring --------------------------------------------------------------------------

    def score(self, doc: Document) -> DocResult:
        result = DocResult(doc.index, doc.title)
        tokens, pieces = self.tokens(doc)
        if len(tokens) < 2:
            result.skipped = "fewer than two tokens"
            return result
        targets = self.targets(doc, pieces)
        text = doc.text.encode()
        starts = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).tolist()
        per_target: list[dict[str, float]] = [{} for _ in targets]
        reads: dict[str, list[Read]] = {"b": [], "c": []}
        for condition in CONDITIONS:
            sync(self.backend, self.prefix + tokens[:1])
            logprobs = np.zeros(len(tokens))
            pos = 1
            for i, target in enumerate(targets):
                logprobs[pos : target.start] = self.scorer.score(tokens[pos : target.start])
                lead = " " if pieces[target.start][:1].isspace() else ""
                trail = " " if not lead and pieces[target.start - 1][-1:].isspace() else ""
                if condition == "b":
                    preceding = text[: starts[target.start]].decode("utf-8", errors="replace")
                    reads["b"].append(self.model_read(preceding, lead, trail))
                elif condition == "c":
                    reads["c"].append(self.gold_read(target, lead, trail))
                span = self.scorer.score(tokens[target.start : target.end])
                logprobs[target.start : target.end] = span
                per_target[i][condition] = float(span.sum())
                pos = target.end
            logprobs[pos:] = self.scorer.score(tokens[pos:])
            result.logprob[condition] = float(logprobs[1:].sum())
        result.tokens = len(tokens) - 1
        for i, target in enumerate(targets):
            generated = reads["b"][i]
            gold_keys = {q.key() for q in target.queries}
            result.targets.append(
                TargetResult(
                    target.entity.name or "",
                    target.entity.first.surface,
                    target.end - target.start,
                    per_target[i],
                    generated,
                    reads["c"][i],
                    correct_query=any(q.key() in gold_keys for q in generated.queries),
                    finds_target=any(
                        names.key(r) in target.entity.keys
                        or names.key(r) == names.key(target.entity.name or "")
                        for r in generated.results
                    ),
                )
            )
        return result


def evaluate_ppl(
    engine: Engine,
    docs: Sequence[Document],
    *,
    progress: Progress | None = None,
    clock: Callable[[], float] | None = None,
) -> PplReport:
    """Perplexity of `docs` under the three conditions; `engine.store` must be empty.
    Needs an engine that scores tokens (`capabilities().logprobs`): an in-process one."""
    if not isinstance(engine, MemoryEngine) or not engine.capabilities().logprobs:
        raise ModelError(no_logprobs_message(engine))
    assert engine.store is not None
    clock = clock or perf_counter
    triples = fill_memory(engine.store, docs)
    run = PerplexityRun(engine)
    results: list[DocResult] = []
    started = clock()
    for doc in docs:
        try:
            results.append(run.score(doc))
        except (MemcliError, ValueError) as exc:  # e.g. a document longer than the context
            results.append(DocResult(doc.index, doc.title, skipped=str(exc)))
        if progress is not None:
            progress(len(results))
    return PplReport(results, triples, clock() - started)
