"""A chat's turns on the runtime's event streams. No terminal code: the REPL, scripts
(`-e`, stdin), `memcli eval chat`, tests and `make bench` all run turns through
`Conversation.run_turn`.

One turn (see `memcli.runtime.writing.plan_turn` for how a message is split):

1. Each sentence is a statement, a question, chat (greetings, thanks, requests), a
   denial, a hypothetical or an introduction ("My name is Ayla Brandt.": what this
   chat stored about "the user" is then put under the name); pronouns and first person
   are resolved from the context.
2. A question about an entity in memory is answered by the answering engine after a
   read chosen by meaning (`memcli.runtime.reading`); one naming something memory does
   not hold gets "I have nothing about that in memory"; chat goes to the base model
   without the adapter (`chatting()`). With memory off everything goes there.
3. Each statement gets one `MEM_WRITE` call (`engine.write(..., dry_run=True)`, context
   entities allowed); the triples are checked (`writing.checked_triples`: no pronouns,
   subject first, relation by meaning).
4. With approval on, the person accepts, rejects or edits each proposed triple.
5. What is left is stored with one `add_many`: one batch per turn, source
   `chat <session> turn <n>`, so `/undo` (or `memcli mem undo`) reverts exactly the
   turn; an update on a multi-valued relation adds a supersession batch that `/undo`
   reverts with it. A statement turn is answered with an acknowledgement templated from
   what was stored.

If anything interrupts the turn (Ctrl-C, an error), batches it stored are undone and
the turn does not enter the context: it leaves no trace in memory.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from memcli.errors import MemcliError, UndoError
from memcli.runtime import writing
from memcli.runtime.events import (
    CallFailed,
    CallText,
    Done,
    Event,
    ReadDone,
    Text,
    Timing,
    WriteDone,
)
from memcli.runtime.glosses import PERSON_VALUE, value_type
from memcli.runtime.writing import TurnPlan
from memcli.store import names
from memcli.store.core import Fact, TripleStore, check_name
from memcli.syntax import fact_text, update_text

if TYPE_CHECKING:
    from memcli.runtime.engine_api import Engine

BATCH_KIND = "chat"


class Engines(Protocol):
    """Where a conversation gets its models (see `memcli.repl.engines`)."""

    def answering(self) -> Engine: ...
    def writing(self) -> Engine: ...
    def close(self) -> None: ...


class View(Protocol):
    """What a turn reports to as it runs (in the REPL `memcli.repl.render.TurnView`; this
    module does not import it, so the dependency points one way: render → here)."""

    hide_calls: bool

    def begin(self) -> None: ...
    def end(self) -> None: ...
    def show(self, event: Event) -> None: ...
    def note(self, message: str) -> None: ...
    def stored(self, record: TurnRecord) -> None: ...


@dataclass(frozen=True)
class Proposal:
    """A triple a write call proposed for this turn (maybe edited during approval)."""

    subject: str
    relation: str
    object: str
    sentence: str = ""
    edited_from: str | None = None  # the proposal's line before the person edited it
    replaces: str | None = None  # the current object it supersedes (single-valued relation)
    update: bool = False  # its sentence says the old value stopped ("moved to", "now")
    new_relation: bool = False  # its relation is named from the sentence, not yet known

    def line(self) -> str:
        return fact_text(self.subject, self.relation, self.object)

    def shown(self) -> str:
        """The line as the REPL shows it: an update names the value it replaces, a new
        relation says so."""
        if self.replaces:
            return update_text(self.subject, self.relation, self.replaces, self.object)
        return self.line() + (" (new relation)" if self.new_relation else "")

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
    stored: list[Fact] = field(default_factory=list)
    superseded: list[Fact] = field(default_factory=list)  # made history by `stored`
    skipped: list[str] = field(default_factory=list)  # why proposals or sentences were left
    extra_batches: list[int] = field(default_factory=list)  # supersessions, renamings
    renamed: int = 0  # facts about "the user" put under the name the person gave
    batch_id: int | None = None
    undone: bool = False
    status: str = "running"  # "done", "cancelled", "failed"
    tokens_per_second: float | None = None
    first_output_seconds: float | None = None
    chatted: bool = False  # answered by the base model (a turn that needed no memory)
    started: str = field(default_factory=lambda: datetime.now().isoformat(timespec="seconds"))

    @property
    def facts_read(self) -> list[Fact]:
        found: dict[int, Fact] = {}
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
        new_relations: bool = False,
        user: str | None = None,
        session_id: str | None = None,
    ):
        self.engines = engines
        self.store = store
        self.memory = memory
        self.approve = approve
        # A fact no known relation fits: propose a relation named from its sentence
        # (always in approval mode, where the person sees it first), else leave it out.
        self.new_relations = new_relations
        self.session_id = session_id or datetime.now().strftime("%Y%m%d-%H%M%S")
        self.history: list[dict[str, str]] = []
        self.turns: list[TurnRecord] = []
        self._said: list[str] = []  # messages and answers in the context, as text
        from memcli.runtime.writing import Context

        # Who "she" and "it" are (see runtime/writing.py); "I" and "my" are `user` (the
        # name the person gave, else "the user" until they say "My name is …").
        self.user = user
        self.context = Context(user=user, known=self._known_person)
        # The engine for turns that need no memory (greetings, requests): the base model
        # without the memory adapter. Made on first use by `chat_factory`, else taken
        # from `engines.chatting()`, else the answering engine.
        self.chat_factory: Callable[[], Engine] | None = None
        self._chat_engine: Engine | None = None

    # -- state --------------------------------------------------------------------------

    def _known_person(self, first: str) -> str | None:
        """The one person memory knows by this first name (told in an earlier session)."""
        from memcli.runtime.reading import one_person_named

        return one_person_named(self.store, first)

    def source(self, number: int) -> str:
        return f"chat {self.session_id} turn {number}"

    @property
    def last(self) -> TurnRecord | None:
        """The last turn that finished."""
        done = [t for t in self.turns if t.status == "done"]
        return done[-1] if done else None

    def clear(self) -> None:
        """Forget the context (not memory, not the record of turns)."""
        from memcli.runtime.writing import Context

        self.history = []
        self._said = []
        self.context = Context(user=self.context.user, known=self._known_person)

    # -- a turn -------------------------------------------------------------------------

    def run_turn(self, message: str, view: View, review: Reviewer | None = None) -> TurnRecord:
        record = TurnRecord(len(self.turns) + 1, message)
        self.turns.append(record)
        mark = self.store.revision()
        from memcli.runtime.writing import plan_turn

        saved_context = copy.deepcopy(self.context)
        try:
            plan = plan_turn(message, self.context)
            if plan.needs_reply or not self.memory:
                self._answer(record, view, plan)
            if self.memory and plan.statements:
                self._extract(record, view, plan)
                record.proposals = [self._with_replaced(p) for p in record.proposals]
                if self.approve and review is not None and record.proposals:
                    record.accepted = review(list(record.proposals))
                else:
                    record.accepted = list(record.proposals)
                self._store(record, view)
                view.stored(record)
            if self.memory and plan.introductions:
                self._name_the_user(record, view, saved_context.user)
            if self.memory and (plan.statements or plan.skipped or plan.introductions):
                self._acknowledge(record, view, plan)
        except BaseException as exc:
            record.status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
            self.context = saved_context
            self._roll_back(record, mark)
            raise
        for p in record.accepted:  # what the turn was about, for "it" in the next one
            self.context.saw_thing(p.object)
            if value_type(p.relation) == PERSON_VALUE and (p.object not in self.context.persons):
                self.context.persons.append(p.object)  # "Aisha" next is Aisha Khan
        record.status = "done"
        self.history += [
            {"role": "user", "content": message},
            {"role": "assistant", "content": record.raw},
        ]
        self._said += [s for s in (message, record.answer) if s]
        return record

    def _answer(self, record: TurnRecord, view: View, plan: TurnPlan) -> None:
        started = time.perf_counter()
        view.begin()
        for event in self._reply(record, plan):
            view.show(event)
            if record.first_output_seconds is None and _visible(event, view):
                record.first_output_seconds = time.perf_counter() - started
            if isinstance(event, Timing):
                record.tokens_per_second = event.tokens_per_second
            elif isinstance(event, Done):
                record.answer, record.raw, record.reads = event.text, event.raw, event.reads
        view.end()

    def _reply(self, record: TurnRecord, plan: TurnPlan) -> Iterator[Event]:
        """The answer's events: from memory for a question about something in it (the
        read chosen by meaning), "nothing in memory" for a question about something
        else, the base model's own reply for what needs no memory."""
        from memcli.runtime import reading

        history = [*self.history, {"role": "user", "content": record.message}]
        if not self.memory:
            record.chatted = True
            events = self.chatting().answer(self._plain_history(record), memory=False)
            if not plan.questions:
                yield from events
                return
            yield Text(NOT_FROM_MEMORY + " ")
            for event in events:  # the answer is marked as the model's own
                if isinstance(event, Done):
                    event = dataclasses.replace(
                        event,
                        text=f"{NOT_FROM_MEMORY} {event.text}",
                        raw=f"{NOT_FROM_MEMORY} {event.raw}",
                    )
                yield event
            return
        for about in plan.abouts:  # "Tell me about Marta.": her facts, listed
            listed = reading.about_answer(self.store, about.resolved)
            if listed is not None:  # None: it names nothing, the model replies
                yield from listed
                return
        for question in plan.questions:
            how = reading.plan_answer(self.store, question.resolved, self.engines.answering)
            if how == "read":
                yield from self.engines.answering().answer(history, memory=True)
                return
            if how == "absent":
                yield Text(NOTHING_IN_MEMORY)
                yield Done(NOTHING_IN_MEMORY, NOTHING_IN_MEMORY)
                return
        record.chatted = True
        yield from self.chatting().answer(self._plain_history(record), memory=False)

    def chatting(self) -> Engine:
        """The engine for turns that need no memory (the base weights, no adapter)."""
        if self._chat_engine is None:
            chatting = getattr(self.engines, "chatting", None)
            if chatting is not None:
                self._chat_engine = chatting()
            elif self.chat_factory is not None:
                self.engines.writing()  # the loader is done: nothing else loads now
                self._chat_engine = self.chat_factory()
            else:
                self._chat_engine = self.engines.answering()
        return self._chat_engine

    def close_chat_engine(self) -> None:
        """Free the base-model engine if this conversation made one."""
        engine, self._chat_engine = self._chat_engine, None
        if engine is not None and self.chat_factory is not None:
            close = getattr(engine, "close", None) or getattr(
                getattr(engine, "backend", None), "close", None
            )
            if close is not None:
                close()

    def _plain_history(self, record: TurnRecord) -> list[dict[str, str]]:
        """The conversation as plain text (no memory calls), for the base model: the
        earlier turns it answered itself (all of them while memory is off). Answers from
        memory and acknowledgements stay out: a 135M model given "Bergen." before
        "Thanks!" says "Bergen." again."""
        history: list[dict[str, str]] = []
        for turn in self.turns:
            if turn is not record and turn.status == "done" and turn.chatted:
                history += [
                    {"role": "user", "content": turn.message},
                    {"role": "assistant", "content": turn.answer},
                ]
        return [*history[-8:], {"role": "user", "content": record.message}]

    def _extract(self, record: TurnRecord, view: View, plan: TurnPlan) -> None:
        """One dry-run write call per stated sentence (pronouns resolved, the context's
        entities allowed); the proposals checked and deduplicated."""
        engine = self.engines.writing()
        context = self._context()
        relations = self.store.relation_names()
        known = {names.key(r) for r in relations}
        new_relations = self.new_relations or self.approve
        seen: set[tuple[str, str, str]] = set()
        for sentence in plan.statements:
            view.begin()
            call: list[str] = []
            # A sentence whose form states its facts ("X is Swedish") gets no write call.
            events = (
                engine.write(
                    sentence.resolved,
                    context,
                    source=self.source(record.number),
                    dry_run=True,
                    entities=self.context.entities(),
                )
                if sentence.written
                else ()
            )
            for event in events:
                view.show(event)
                if isinstance(event, CallText) and event.kind == "write":
                    call.append(event.text)
                if isinstance(event, WriteDone):
                    triples, skipped = writing.checked_triples(
                        sentence.resolved,
                        [(t.subject, t.relation, t.object) for t in event.triples],
                        relations,
                        people=sentence.people,
                        new_relations=new_relations,
                    )
                    if not new_relations:
                        skipped = [
                            f"{why} (--new-relations or /approve on proposes a new relation)"
                            if why.startswith(writing.NO_RELATION)
                            else why
                            for why in skipped
                        ]
                    record.skipped += skipped
                    wrote = {
                        (names.key(t.subject), names.key(t.object)): t.relation
                        for t in event.triples
                    }
                    for subject, relation, obj in triples:
                        said = wrote.get((names.key(subject), names.key(obj))) or wrote.get(
                            (names.key(obj), names.key(subject))
                        )
                        new = names.key(relation) not in known
                        if new:
                            view.note(
                                "no known relation fits: proposing a new one, "
                                f"{fact_text(subject, relation, obj)}"
                            )
                        elif said is None:
                            view.note(f"from the wording: {fact_text(subject, relation, obj)}")
                        elif names.key(said) != names.key(relation):
                            view.note(f"relation by meaning: {said} → {relation}")
                        proposal = Proposal(
                            subject,
                            relation,
                            obj,
                            sentence.text,
                            update=sentence.update,
                            new_relation=new,
                        )
                        if proposal.key() not in seen:
                            seen.add(proposal.key())
                            record.proposals.append(proposal)
            view.end()
            record.write_calls.append("".join(call))
            context = f"{context} {sentence.resolved}".strip()
            for subject, relation, obj in sentence.facts:  # "my sister Ingrid …"
                proposal = Proposal(subject, relation, obj, sentence.text)
                if proposal.key() not in seen:
                    view.note(f"from the wording: {fact_text(subject, relation, obj)}")
                    seen.add(proposal.key())
                    record.proposals.append(proposal)

    def _acknowledge(self, record: TurnRecord, view: View, plan: TurnPlan) -> None:
        """A short true sentence about what the statements stored (templated from the
        writes, not generated)."""
        replaced = {}
        for index, fact in enumerate(record.stored):
            olds = [t.object for t in record.superseded if t.superseded_by == fact.id]
            if olds:
                replaced[index] = ", ".join(olds)
        stored = [(t.subject, t.relation, t.object) for t in record.stored]
        reasons = [f"{s.text!r}: {writing.SKIP_REASONS[s.kind]}" for s in plan.skipped]
        if not stored and record.accepted:
            text = "I already had that in memory."
        elif not stored and not plan.statements and not plan.skipped:
            text = ""  # an introduction alone
        else:
            text = writing.acknowledge(stored, replaced, [*reasons, *record.skipped])
        if plan.introductions:
            name = plan.introductions[-1].resolved
            moved = (
                f" What you told me about yourself ({_count(record.renamed)}) is now under {name}."
                if record.renamed
                else ""
            )
            text = f"Nice to meet you, {name}.{moved} {text}".strip()
        view.begin()
        view.show(Text(text))
        view.end()
        record.answer = f"{record.answer} {text}".strip()
        record.raw = f"{record.raw} {text}".strip()

    def _context(self) -> str:
        """The conversation so far as plain text, answers without their memory calls
        (the write prompt keeps its tail)."""
        return " ".join(self._said)

    def _store(self, record: TurnRecord, view: View) -> None:
        rows = []
        for p in record.accepted:
            try:
                rows.append(
                    (
                        check_name(p.subject, "subject"),
                        check_name(p.relation, "relation"),
                        check_name(p.object, "object"),
                        self.source(record.number),
                    )
                )
            except Exception as exc:  # a span no name may be: skip it, keep the rest
                view.note(f"skipped {p.line()}: {exc}")
        if not rows:
            return
        batch_id, created = self.store.add_many(
            rows,
            kind=BATCH_KIND,
            description=f"{self.source(record.number)}: {record.message[:50]}",
            new_relation=any(p.new_relation for p in record.accepted),
        )
        record.batch_id, record.stored = batch_id, created
        record.superseded = self.store.superseded_in(batch_id) if batch_id is not None else []
        updates = {p.key() for p in record.accepted if p.update}
        for fact in created:
            # The words say the old value stopped: supersede it even when the relation
            # is multi-valued ("now works for"). Single-valued ones were done above.
            key = (names.key(fact.subject), names.key(fact.relation), names.key(fact.object))
            if key not in updates or self.store.cardinality(fact.relation) == "single":
                continue
            for old in self.store.current_objects(fact.subject, fact.relation):
                if old.id != fact.id and old.id not in {t.id for t in created}:
                    result = self.store.supersede(
                        old.id, object=fact.object, source=self.source(record.number)
                    )
                    record.superseded += [t for t in result.superseded if t.id == old.id]
                    record.extra_batches.append(self.store.revision())
        if record.extra_batches:
            record.superseded = [self.store.get(t.id) for t in record.superseded]

    def _name_the_user(self, record: TurnRecord, view: View, before: str | None) -> None:
        """After "My name is Ayla Brandt.", the facts this chat stored about "the user"
        (told before the name) are about Ayla Brandt: each is edited in place, in
        batches that `/undo` of this turn reverts."""
        name = self.context.user
        if before is not None or not name or names.key(name) == names.key(writing.USER):
            return
        mine = f"chat {self.session_id} turn "
        user = names.key(writing.USER)
        found = {
            f.id: f
            for f in [*self.store.find(subject=writing.USER), *self.store.find(object=writing.USER)]
            if f.source.startswith(mine)
        }
        for fact in found.values():
            try:
                self.store.edit(
                    fact.id,
                    subject=name if names.key(fact.subject) == user else None,
                    object=name if names.key(fact.object) == user else None,
                )
            except MemcliError as exc:  # memory already states it of the name
                view.note(f"kept {fact_text(fact.subject, fact.relation, fact.object)}: {exc}")
                continue
            record.extra_batches.append(self.store.revision())
            record.renamed += 1

    def _with_replaced(self, proposal: Proposal) -> Proposal:
        """The proposal, saying which current object it would supersede, if any."""
        try:
            if self.store.cardinality(proposal.relation) != "single":
                return proposal
        except MemcliError:
            return proposal
        held = [
            t.object
            for t in self.store.current_objects(proposal.subject, proposal.relation)
            if names.key(t.object) != names.key(proposal.object)
        ]
        return dataclasses.replace(proposal, replaces=", ".join(held)) if held else proposal

    def _roll_back(self, record: TurnRecord, mark: int) -> None:
        """Undo every batch this turn stored after `mark` (the store's revision at its
        start), including one committed a moment before an interrupt arrived."""
        prefix = f"{self.source(record.number)}:"
        for extra in reversed(record.extra_batches):
            with contextlib.suppress(MemcliError):
                self.store.undo(extra)
        record.extra_batches = []
        for batch in self.store.log(limit=50):
            if batch.id <= mark:
                break
            if (
                batch.kind == BATCH_KIND
                and batch.undone_by is None
                and (batch.description.startswith(prefix))
            ):
                self.store.undo(batch.id)
        record.batch_id, record.stored = None, []

    # -- undo ---------------------------------------------------------------------------

    def undo_last(self) -> TurnRecord:
        """Revert the writes of the most recent turn that stored something."""
        for turn in reversed(self.turns):
            if (turn.batch_id is not None or turn.extra_batches) and not turn.undone:
                for extra in reversed(turn.extra_batches):
                    self.store.undo(extra)
                if turn.batch_id is not None:
                    self.store.undo(turn.batch_id)
                turn.undone = True
                return turn
        raise UndoError("no turn of this chat stored anything (left to undo)")


def base_engine_factory(engines: Any, store: TripleStore) -> Callable[[], Engine] | None:
    """For the REPL's engines: make the base model (no adapter) on first need, in its own
    small context, for turns that need no memory. None when there is nothing to make:
    no adapter in use (the answering engine is the base), a remote engine, or engines
    that are not loaded from options (tests)."""
    options = getattr(engines, "options", None)
    if not isinstance(options, dict) or options.get("no_adapter") or options.get("engine"):
        return None

    def make() -> Engine:
        from memcli.runtime.loader import load_engine

        answering = engines.answering()
        if getattr(answering, "config", None) is not None and answering.config.few_shot:
            return answering  # no adapter: the answering engine is the base model
        return load_engine(
            store,
            model=options.get("model"),
            no_adapter=True,
            threads=options.get("threads"),
            n_ctx=2048,
        )

    return make


NOTHING_IN_MEMORY = "I have nothing about that in memory."  # = reading.NOTHING_IN_MEMORY


def _count(n: int) -> str:
    return f"{n} fact" if n == 1 else f"{n} facts"


NOT_FROM_MEMORY = "(not from memory)"


def _visible(event: object, view: View) -> bool:
    if isinstance(event, Text):
        return bool(event.text)
    if isinstance(event, CallText):
        return not view.hide_calls
    return isinstance(event, ReadDone | CallFailed) and view.hide_calls
