"""A chat's turns on the runtime's event streams: answer with memory, then write to
memory the facts the user stated. No terminal code: the REPL, scripts (`-e`, stdin),
tests and `make bench` all run turns through `Conversation.run_turn`.

One turn:

1. The answer streams from `engine.answer(history)`; reads happen inside it.
2. Each sentence of the user's message that is not a question gets one `MEM_WRITE`
   call (`engine.write(..., dry_run=True)`), with the conversation so far as context.
3. With approval on, the person accepts, rejects or edits each proposed triple.
4. What is left is stored with one `add_many`: one batch per turn, source
   `chat <session> turn <n>`, so `/undo` (or `memcli mem undo`) reverts exactly the turn.

The answer comes first so that it starts streaming at once; the writes need nothing
from it. If anything interrupts the turn (Ctrl-C, an error), batches it stored are
undone and the turn does not enter the context: it leaves no trace in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from memcli.errors import UndoError
from memcli.runtime.events import CallFailed, CallText, Done, ReadDone, Text, Timing, WriteDone
from memcli.store import names
from memcli.store.core import Triple, TripleStore, check_name

if TYPE_CHECKING:
    from memcli.repl.render import TurnView
    from memcli.runtime.engine import MemoryEngine

BATCH_KIND = "chat"


class Engines(Protocol):
    """Where a conversation gets its models (see `memcli.repl.engines`)."""

    def answering(self) -> MemoryEngine: ...
    def writing(self) -> MemoryEngine: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Proposal:
    """A triple a write call proposed for this turn (maybe edited during approval)."""

    subject: str
    relation: str
    object: str
    sentence: str = ""
    edited_from: str | None = None  # the proposal's line before the person edited it

    def line(self) -> str:
        return f"{self.subject} >> {self.relation} >> {self.object}"

    def key(self) -> tuple[str, str, str]:
        return names.key(self.subject), names.key(self.relation), names.key(self.object)


@dataclass
class TurnRecord:
    number: int
    message: str
    answer: str = ""
    raw: str = ""
    reads: tuple[ReadDone, ...] = ()
    write_calls: list[str] = field(default_factory=list)
    proposals: list[Proposal] = field(default_factory=list)
    accepted: list[Proposal] = field(default_factory=list)
    stored: list[Triple] = field(default_factory=list)
    batch_id: int | None = None
    undone: bool = False
    status: str = "running"  # "done", "cancelled", "failed"
    tokens_per_second: float | None = None
    first_output_seconds: float | None = None
    started: str = field(default_factory=lambda: datetime.now().isoformat(timespec="seconds"))

    @property
    def facts_read(self) -> list[Triple]:
        found: dict[int, Triple] = {}
        for read in self.reads:
            if read.kept:
                for fact in read.facts:
                    found.setdefault(fact.id, fact)
        return list(found.values())

    @property
    def rejected(self) -> list[Proposal]:
        kept = {p.key() for p in self.accepted}
        edited = {p.edited_from for p in self.accepted}
        return [p for p in self.proposals if p.key() not in kept and p.line() not in edited]


Reviewer = Callable[[list[Proposal]], list[Proposal]]


class Conversation:
    """The state of one chat: context, toggles and the record of every turn."""

    def __init__(
        self,
        engines: Engines,
        store: TripleStore,
        *,
        memory: bool = True,
        approve: bool = False,
        session_id: str | None = None,
    ):
        self.engines = engines
        self.store = store
        self.memory = memory
        self.approve = approve
        self.session_id = session_id or datetime.now().strftime("%Y%m%d-%H%M%S")
        self.history: list[dict[str, str]] = []
        self.turns: list[TurnRecord] = []
        self._said: list[str] = []  # messages and answers in the context, as text

    # -- state --------------------------------------------------------------------------

    def source(self, number: int) -> str:
        return f"chat {self.session_id} turn {number}"

    @property
    def last(self) -> TurnRecord | None:
        """The last turn that finished."""
        done = [t for t in self.turns if t.status == "done"]
        return done[-1] if done else None

    def clear(self) -> None:
        """Forget the context (not memory, not the record of turns)."""
        self.history = []
        self._said = []

    # -- a turn -------------------------------------------------------------------------

    def run_turn(
        self, message: str, view: TurnView, review: Reviewer | None = None
    ) -> TurnRecord:
        record = TurnRecord(len(self.turns) + 1, message)
        self.turns.append(record)
        mark = self.store.revision()
        try:
            self._answer(record, view)
            if self.memory:
                self._extract(record, view)
                if self.approve and review is not None and record.proposals:
                    record.accepted = review(list(record.proposals))
                else:
                    record.accepted = list(record.proposals)
                self._store(record, view)
                view.stored(record)
        except BaseException as exc:
            record.status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
            self._roll_back(record, mark)
            raise
        record.status = "done"
        self.history += [
            {"role": "user", "content": message},
            {"role": "assistant", "content": record.raw},
        ]
        self._said += [s for s in (message, record.answer) if s]
        return record

    def _answer(self, record: TurnRecord, view: TurnView) -> None:
        engine = self.engines.answering()
        started = time.perf_counter()
        view.begin()
        history = [*self.history, {"role": "user", "content": record.message}]
        for event in engine.answer(history, memory=self.memory):
            view.show(event)
            if record.first_output_seconds is None and _visible(event, view):
                record.first_output_seconds = time.perf_counter() - started
            if isinstance(event, Timing):
                record.tokens_per_second = event.tokens_per_second
            elif isinstance(event, Done):
                record.answer, record.raw, record.reads = event.text, event.raw, event.reads
        view.end()

    def _extract(self, record: TurnRecord, view: TurnView) -> None:
        """One dry-run write call per stated sentence; the proposals, deduplicated."""
        from memcli.runtime.sentences import split_sentences

        sentences = [s for s, _line in split_sentences(record.message)]
        if not any(_states(s) for s in sentences):
            return
        engine = self.engines.writing()
        context = self._context()
        seen: set[tuple[str, str, str]] = set()
        for sentence in sentences:
            if _states(sentence):
                view.begin()
                call: list[str] = []
                for event in engine.write(
                    sentence, context, source=self.source(record.number), dry_run=True
                ):
                    view.show(event)
                    if isinstance(event, CallText) and event.kind == "write":
                        call.append(event.text)
                    if isinstance(event, WriteDone):
                        for t in event.triples:
                            proposal = Proposal(t.subject, t.relation, t.object, sentence)
                            if proposal.key() not in seen:
                                seen.add(proposal.key())
                                record.proposals.append(proposal)
                view.end()
                record.write_calls.append("".join(call))
            context = f"{context} {sentence}".strip()

    def _context(self) -> str:
        """The conversation so far as plain text, answers without their memory calls
        (the write prompt keeps its tail)."""
        return " ".join(self._said)

    def _store(self, record: TurnRecord, view: TurnView) -> None:
        rows = []
        for p in record.accepted:
            try:
                rows.append((
                    check_name(p.subject, "subject"),
                    check_name(p.relation, "relation"),
                    check_name(p.object, "object"),
                    self.source(record.number),
                ))
            except Exception as exc:  # a span no name may be: skip it, keep the rest
                view.note(f"skipped {p.line()}: {exc}")
        if not rows:
            return
        batch_id, created = self.store.add_many(
            rows,
            kind=BATCH_KIND,
            description=f"{self.source(record.number)}: {record.message[:50]}",
        )
        record.batch_id, record.stored = batch_id, created

    def _roll_back(self, record: TurnRecord, mark: int) -> None:
        """Undo every batch this turn stored after `mark` (the store's revision at its
        start), including one committed a moment before an interrupt arrived."""
        prefix = f"{self.source(record.number)}:"
        for batch in self.store.log(limit=50):
            if batch.id <= mark:
                break
            if batch.kind == BATCH_KIND and batch.undone_by is None and (
                batch.description.startswith(prefix)
            ):
                self.store.undo(batch.id)
        record.batch_id, record.stored = None, []

    # -- undo ---------------------------------------------------------------------------

    def undo_last(self) -> TurnRecord:
        """Revert the writes of the most recent turn that stored something."""
        for turn in reversed(self.turns):
            if turn.batch_id is not None and not turn.undone:
                self.store.undo(turn.batch_id)
                turn.undone = True
                return turn
        raise UndoError("no turn of this chat stored anything (left to undo)")


def _states(sentence: str) -> bool:
    """Whether a sentence may state facts: questions do not, so they get no write."""
    return not sentence.rstrip().rstrip("\"'”’)").endswith("?")


def _visible(event: object, view: TurnView) -> bool:
    if isinstance(event, Text):
        return bool(event.text)
    if isinstance(event, CallText):
        return not view.hide_calls
    return isinstance(event, ReadDone | CallFailed) and view.hide_calls

