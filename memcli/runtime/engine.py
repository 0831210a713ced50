"""The generate-read-resume loop, and memory writes from text.

`MemoryEngine.answer` streams an answer; when the model opens a memory call the decoder
switches to token masks (only valid continuations: existing entities, known relations),
the read runs against the store when `)-->` is reached, the results and `})` are
appended on the same KV cache, and generation resumes. `MemoryEngine.write` produces one
`MEM_WRITE` call for a sentence, constrained to spans of that sentence.

Departure from MemLLM, on purpose: when the question names an entity that is in memory,
the answer starts with a read (`read_first`), restricted to the entities named. The
bundled 135M model rarely decides to read by itself; the adapters (recipes/) teach it to.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memcli import protocol
from memcli.protocol import OPEN, ReadQuery, StreamParser
from memcli.runtime import prompts, read_scope
from memcli.runtime.backend import Backend, sync
from memcli.runtime.engine_api import Capabilities, EngineConfig
from memcli.runtime.events import (
    CallFailed,
    CallStart,
    CallText,
    Done,
    Event,
    ReadDone,
    Text,
    Timing,
    WriteDone,
)
from memcli.runtime.reading import entities_named, name_words
from memcli.runtime.writing import PRONOUNS
from memcli.store import names
from memcli.store.core import Fact, TripleStore

if TYPE_CHECKING:
    from memcli.runtime.constraints import Command, ConstrainedDecoder

PREFILL_CHUNK = 32


@dataclass
class _Turn:
    """Book-keeping for one answer."""

    parser: StreamParser = field(default_factory=StreamParser)
    text: list[str] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    reads: list[ReadDone] = field(default_factory=list)
    seen: set = field(default_factory=set)
    call_start: int = 0  # KV position where the current call's `({` begins
    call_prefix: str = ""  # text of that token before `({`, restored if the call goes
    queries: list[ReadQuery] = field(default_factory=list)  # of the call being decoded


class MemoryLogic:
    """The memory side of a turn, the same for every engine (local or remote): which
    entities a message names, running reads (matching, dedup, caps), what to do when a
    read ends (keep its results or drop it), turning a write call into stored triples,
    and the stream of events. An engine adds only how tokens are produced."""

    def __init__(self, store: TripleStore | None, config: EngineConfig | None = None):
        self.store = store
        self.config = config or EngineConfig()

    def mentioned_entities(self, text: str) -> list[str]:
        """Entities in memory named in `text` (any run of up to 8 words)."""
        if self.store is None:
            return []
        found = entities_named(self.store, name_words(text), current=False)
        return sorted(found, key=lambda n: text.lower().find(n.lower()))

    def run_read(self, queries: Sequence[ReadQuery]) -> tuple[list[str], list[Fact]]:
        """Run read queries: exact names first, then approximate ones; results
        deduplicated and capped at 30."""
        from memcli.store.matching import closest, closest_entity

        assert self.store is not None
        facts: list[Fact] = []
        results: list[str] = []
        relation_names = self.store.relation_names()
        for query in queries:
            relation = closest(relation_names, query.relation, self.config.relation_threshold)
            if relation is None:
                continue
            known = query.subject if query.subject is not None else query.object
            assert known is not None
            hits = self._lookup(query, known, relation)
            if not hits:
                near = closest_entity(self.store, known, self.config.entity_threshold)
                if near is not None and names.key(near) != names.key(known):
                    hits = self._lookup(query, near, relation)
            facts += hits
            results += [t.object if query.subject is not None else t.subject for t in hits]
        deduped = protocol.dedupe_results(results)[: protocol.MAX_READ_RESULTS]
        return deduped, list({t.id: t for t in facts}.values())

    def _lookup(self, query: ReadQuery, entity: str, relation: str) -> list[Fact]:
        assert self.store is not None
        if query.subject is not None:
            return self.store.lookup(entity, relation, None)
        return self.store.lookup(None, relation, entity)

    planned_read: list[ReadQuery] | None = None

    def plan_read(self, queries: Sequence[ReadQuery]) -> None:
        """Start the next `answer` with this read instead of letting the model choose the
        query (the chat chooses it by meaning, see `memcli.runtime.reading`)."""
        self.planned_read = list(queries) or None

    def plan_answer(
        self, history: list[dict[str, str]], memory: bool
    ) -> tuple[list[dict[str, str]], bool, list[str]]:
        """The prompt's messages for an answer, whether reads are possible, and the
        entities a forced first read is limited to (empty: no forced read)."""
        memory = memory and self.store is not None
        messages = prompts.answer_messages(history, few_shot=self.config.few_shot, memory=memory)
        can_read = memory and self.store is not None and read_scope.has_facts(self.store)
        forced: list[str] = []
        if can_read and self.config.read_first and history:
            forced = self.mentioned_entities(history[-1]["content"])
        return messages, can_read, forced

    def resolve_read(self, queries: Sequence[ReadQuery], seen: set) -> ReadDone:
        """The model wrote `)-->`: run `queries` (unless they repeat ones in `seen`, which
        is updated). Kept (results to append: `protocol.format_read_results`) or not
        (the call is removed from the text)."""
        keys = {q.key() for q in queries}
        repeated = keys <= seen
        seen |= keys
        results, facts = ([], []) if repeated else self.run_read(queries)
        if not results:
            note = "repeated query" if repeated else "nothing in memory"
            return ReadDone(tuple(queries), (), (), kept=False, note=note)
        return ReadDone(tuple(queries), tuple(results), tuple(facts), kept=True)

    def finish_write(
        self,
        parsed: Sequence[protocol.Triple],
        closed: str,
        sentence: str,
        *,
        source: str = "model",
        dry_run: bool = False,
    ) -> WriteDone:
        """The triples of a closed write call, deduplicated and filtered, stored as one
        batch unless `dry_run`."""
        unique = [t for t in dict.fromkeys(parsed) if _plausible(t)]
        stored: list[Fact] = []
        batch_id = None
        if unique and not dry_run and self.store is not None:
            batch_id, stored = self.store.add_many(
                [(t.subject, t.relation, t.object, source) for t in unique],
                kind="model-write",
                description=f"{source}: {sentence[:60]}",
            )
        return WriteDone(tuple(unique), tuple(stored), batch_id, dry_run, closed)

    def _drop_text(self, turn: _Turn) -> None:
        """Remove the current call from the turn's text, as if never written (a local
        engine also cuts it from its cache; a remote one sends the prompt without it)."""
        turn.parser = StreamParser()
        raw = "".join(turn.raw)
        at = raw.rfind(OPEN)
        turn.raw = [raw[:at]] if at >= 0 else [raw]

    def _feed(self, turn: _Turn, text: str, kind: str = "read") -> Iterator[Event]:
        if not text:
            return
        turn.raw.append(text)
        for event in turn.parser.feed(text):
            yield from self._translate(turn, event, kind)

    def _translate(self, turn: _Turn, event: protocol.Event, kind: str = "read") -> Iterator[Event]:
        if isinstance(event, protocol.TextEvent):
            turn.text.append(event.text)
            yield Text(event.text)
        elif isinstance(event, protocol.CallOpened):
            yield CallStart(event.kind)
        elif isinstance(event, protocol.CallText):
            yield CallText(kind, event.text)
        elif isinstance(event, protocol.ReadQueries):
            turn.queries = list(event.queries)
        elif isinstance(event, protocol.CallError):
            yield CallFailed(event.raw, event.message)


class MemoryEngine(MemoryLogic):
    """A model (any `Backend`) that reads and writes a `TripleStore` while it generates."""

    def __init__(
        self,
        backend: Backend,
        store: TripleStore | None,
        *,
        decoder: ConstrainedDecoder | None = None,
        config: EngineConfig | None = None,
    ):
        super().__init__(store, config)
        self.backend = backend
        self._decoder = decoder
        self._shares: MemoryEngine | None = None  # the engine whose decoder this one uses
        self._no_open: np.ndarray | None = None
        self._no_brace: np.ndarray | None = None

    # -- helpers ------------------------------------------------------------------------

    @property
    def decoder(self) -> ConstrainedDecoder:
        if self._decoder is None and self._shares is not None:
            self._decoder = self._shares.decoder
        if self._decoder is None:
            from memcli.runtime.constraints import ConstrainedDecoder

            self._decoder = ConstrainedDecoder.for_backend(self.backend)
        return self._decoder

    def warm_up(self, kind: str = "", stop: threading.Event | None = None) -> None:
        """Build what the first turn would otherwise wait for: the decoder's tokenizer
        and the free-text masks; with `kind` ("answer" or "write") also put that
        prompt's fixed part (system prompt, examples) in the KV cache, a few tokens at a
        time so that `stop` can end it early. Safe in another thread: it does not touch
        the store."""
        if kind == "write":
            self.backend.token_bytes(0)  # the piece table
            messages = prompts.write_messages("", "", few_shot=self.config.few_shot)[:-1]
        else:
            self._bans()
            self.decoder  # noqa: B018 - built on first access
            if not kind:
                return
            messages = prompts.answer_messages([], few_shot=self.config.few_shot, memory=True)
        backend = self.backend
        tokens = backend.tokenize(backend.apply_chat_template(messages), special=True)
        backend.truncate(0)
        for start in range(0, len(tokens), PREFILL_CHUNK):
            if stop is not None and stop.is_set():
                return
            backend.eval(tokens[start : start + PREFILL_CHUNK])

    # -- the Engine protocol (see engine_api) -------------------------------------------

    @property
    def label(self) -> str:
        label = getattr(self.backend, "label", None)
        if label:
            return str(label)
        path = getattr(self.backend, "model_path", None)
        if path is None:
            return type(self.backend).__name__
        return Path(path).name.removesuffix(".gguf")

    def describe(self) -> dict[str, Any]:
        backend = self.backend
        info: dict[str, Any] = {"engine": "in-process (llama.cpp)", "model": self.label}
        path = getattr(backend, "model_path", None)
        if path is not None:
            info["file"] = str(path)
        info["adapter"] = "none" if self.config.few_shot else "yes (memory adapter)"
        threads = getattr(backend, "threads", None)
        if threads is not None:
            info["threads"] = threads
        info["context"] = f"{backend.n_ctx} tokens"
        return info

    def capabilities(self) -> Capabilities:
        return Capabilities(
            kind="local", constraint="masks", logprobs=True, chat_template="the model file"
        )

    def sharing(self, backend: Backend) -> MemoryEngine:
        """Another engine on `backend` (a second context of the same model) with this
        one's memory, settings and constraint decoder."""
        engine = MemoryEngine(backend, self.store, decoder=self._decoder, config=self.config)
        engine._shares = self
        return engine

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()

    def _bans(self) -> tuple[np.ndarray, np.ndarray]:
        """Masks for free text: no token containing `({` (and, right after a `(`, none
        starting with `{`), so that a removed or capped read cannot be reopened."""
        if self._no_open is None:
            n = self.backend.n_vocab
            pieces = [self.backend.token_bytes(t) for t in range(n)]
            self._no_open = np.array([OPEN.encode() not in p for p in pieces], dtype=bool)
            self._no_brace = self._no_open & np.array(
                [not p.startswith(b"{") for p in pieces], dtype=bool
            )
        assert self._no_brace is not None
        return self._no_open, self._no_brace

    # -- answering ----------------------------------------------------------------------

    def answer(self, history: list[dict[str, str]], *, memory: bool = True) -> Iterator[Event]:
        """Stream the assistant's next message for `history` (role/content dicts)."""
        backend = self.backend
        started = time.perf_counter()
        messages, can_read, mentioned = self.plan_answer(history, memory)
        prompt = backend.apply_chat_template(messages)
        backend.stats.reset()
        sync(backend, backend.tokenize(prompt, special=True))
        turn = _Turn()
        first: float | None = None
        stopped = "length"
        cmd: Command | None = None
        planned, self.planned_read = self.planned_read, None
        if planned and can_read:
            yield from self._planned_read(turn, planned)
        elif mentioned:
            cmd, events = self._open_read(turn, forced=True, entities=mentioned)
            yield from events
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        suppress = False
        for _ in range(self.config.max_tokens):
            if cmd is not None:
                allowed = self.decoder.mask(cmd)
            elif not can_read or suppress or len(turn.reads) >= self.config.max_reads:
                no_open, no_brace = self._bans()
                allowed = no_brace if "".join(turn.raw[-1:]).endswith("(") else no_open
            else:
                allowed = None
            try:
                token = backend.sample(allowed, self.config.temperature)
            except ValueError as exc:  # a mask that allows nothing: stop cleanly
                yield CallFailed("".join(turn.raw), str(exc))
                break
            if first is None:
                first = time.perf_counter() - started
            if cmd is None and token in backend.end_tokens:
                stopped = "end"
                break
            before = backend.n_past
            try:
                backend.eval([token])
            except Exception as exc:  # context window full
                yield CallFailed("", str(exc))
                stopped = "context"
                break
            suppress = False
            piece = utf8.decode(backend.token_bytes(token))
            if cmd is not None:
                self.decoder.advance(cmd, token)
                yield from self._feed(turn, piece)
                if self.decoder.is_done(cmd):
                    cmd = None
                    done, suppress = self._finish_read(turn)
                    yield from done
                continue
            if can_read and len(turn.reads) < self.config.max_reads:
                opened = self._find_open(turn, piece, before)
                if opened is not None:
                    # Offered names: the whole of a small memory, else those the
                    # conversation names (`read_scope`: the cost follows the conversation).
                    said = " ".join([*(m["content"] for m in history), *turn.text])
                    entities, version = (
                        read_scope.read_entities(self.store, said, self.mentioned_entities)
                        if self.store is not None
                        else ([], None)
                    )
                    cmd, events = self._open_read(
                        turn, forced=False, piece=opened, entities=entities, version=version
                    )
                    yield from events
                    continue
            yield from self._feed(turn, piece)
        yield from self._feed(turn, utf8.decode(b"", final=True))
        for event in turn.parser.close():
            yield from self._translate(turn, event)
        stats = backend.stats
        yield Timing.since(started, stats.prompt_tokens, stats.generated_tokens, first)
        yield Done("".join(turn.text).strip(), "".join(turn.raw), stopped, tuple(turn.reads))

    def _planned_read(self, turn: _Turn, queries: Sequence[ReadQuery]) -> Iterator[Event]:
        """Write a read chosen outside the model (`plan_read`) into the text and run it."""
        turn.call_start, turn.call_prefix = self.backend.n_past, ""
        call = protocol.format_read_call(queries)
        # Shown before it is evaluated: the text is known, so the person sees it at
        # once (Enter to first character) while the model reads it.
        yield from self._feed(turn, call)
        self.backend.eval(self.backend.tokenize(call))
        done, _suppress = self._finish_read(turn)
        yield from done

    def _find_open(self, turn: _Turn, piece: str, before: int) -> str | None:
        """If `piece` completes `({`, cut the cache back so it ends exactly there and
        return the part of `piece` kept; else None."""
        previous = "".join(turn.raw[-1:])
        joined = previous[-1:] + piece
        at = joined.find(OPEN)
        if at < 0:
            return None
        cut = at + len(OPEN) - len(previous[-1:])  # end of `({` inside piece
        if at == 0 and previous.endswith("("):
            # `(` came in the previous token: the call starts there.
            turn.call_start = before - 1
            turn.call_prefix = previous[:-1]
        else:
            turn.call_start = before
            turn.call_prefix = piece[: cut - len(OPEN)]
        if cut < len(piece):
            self.backend.truncate(before)
            self.backend.eval(self.backend.tokenize(piece[:cut]))
        return piece[:cut]

    def _open_read(
        self,
        turn: _Turn,
        *,
        forced: bool,
        piece: str = "",
        entities: list[str] | None = None,
        version: Any = None,
    ) -> tuple[Command | None, list[Event]]:
        """Put `({MEM_READ(` in the text (forcing what the model did not write) and start
        the constrained body."""
        assert self.store is not None
        backend = self.backend
        if forced:
            turn.call_start = backend.n_past
            turn.call_prefix = ""
            head = protocol.READ_HEAD
        else:
            head = piece
        rest = protocol.READ_HEAD[len(OPEN) :] if not forced else ""
        if forced:
            backend.eval(backend.tokenize(head))
        elif rest:
            backend.eval(backend.tokenize(rest))
        events = list(self._feed(turn, head + rest))
        try:
            cmd = self.decoder.start_read(
                entities if entities is not None else self.store.entity_names(),
                self.store.relation_names(),
                version=version if entities is not None else self.store.revision(),
            )
        except Exception as exc:  # no grammar possible: drop the call
            self._drop_call(turn)
            events.append(CallFailed(head + rest, str(exc)))
            return None, events
        return cmd, events

    def _finish_read(self, turn: _Turn) -> tuple[list[Event], bool]:
        """The model wrote `)-->`: run the queries, then append results or drop the call.
        Returns the events and whether `({` is suppressed for the next token."""
        done = self.resolve_read(turn.queries, turn.seen)
        if not done.kept:
            self._drop_call(turn)
            turn.reads.append(done)
            return [done], True
        tail = protocol.format_read_results(done.results)
        self.backend.eval(self.backend.tokenize(tail))
        events = list(self._feed(turn, tail, kind="result"))
        turn.reads.append(done)
        events.append(done)
        return events, False

    def _drop_call(self, turn: _Turn) -> None:
        """Remove the current call from the cache and the text, as if never written."""
        self.backend.truncate(turn.call_start)
        if turn.call_prefix:
            self.backend.eval(self.backend.tokenize(turn.call_prefix))
        self._drop_text(turn)

    # -- writing ------------------------------------------------------------------------

    def write(
        self,
        sentence: str,
        context: str = "",
        *,
        source: str = "model",
        dry_run: bool = False,
        entities: Sequence[str] = (),
    ) -> Iterator[Event]:
        """One `MEM_WRITE` call for `sentence` (with the preceding `context`); the triples
        are stored as one batch unless `dry_run`. `entities`: context entities the call
        may name besides the sentence's spans."""
        backend = self.backend
        started = time.perf_counter()
        backend.stats.reset()
        sentence, prompt = self.write_prompt(sentence, context)
        sync(backend, prompt)
        relations = self.store.relation_names() if self.store else []
        cmd = self.decoder.start_write(sentence, relations, entities=entities)
        call = WriteCall(self.decoder, cmd, self.config.max_write_tokens)
        yield from call.take_events()
        first = None
        while call.closed is None:
            token = backend.sample(call.mask(), self.config.temperature)
            first = first if first is not None else time.perf_counter() - started
            backend.eval([token])
            call.accept(token, backend.token_bytes(token))
            yield from call.take_events()
        written = self.finish_write(
            call.parsed, call.closed, sentence, source=source, dry_run=dry_run
        )
        timing = Timing.since(
            started, backend.stats.prompt_tokens, backend.stats.generated_tokens, first
        )
        yield written
        yield timing

    def write_prompt(self, sentence: str, context: str = "") -> tuple[str, list[int]]:
        """The sentence as the write sees it (neutralised: a call in the text is not a
        fact to copy) and the prompt's tokens, up to and including `({MEM_WRITE-->`."""
        sentence = protocol.neutralize(sentence)
        messages = prompts.write_messages(sentence, context, few_shot=self.config.few_shot)
        prompt = self.backend.apply_chat_template(messages) + protocol.WRITE_HEAD
        return sentence, self.backend.tokenize(prompt, special=True)


class WriteText:
    """The text of one MEM_WRITE call after its head, as it arrives in pieces: the text so
    far, the triples parsed from it, the events to report, and where it ends (`closed`:
    it closed, the model ran on, or `finish()` cut it). The same for every engine: a
    local model's tokens (`WriteCall`) and a server's text (`RemoteEngine.write`)."""

    def __init__(self) -> None:
        self.parser = StreamParser()
        self.parser.feed(protocol.WRITE_HEAD)
        self.raw = [protocol.WRITE_HEAD]
        self.parsed: list[protocol.Triple] = []
        self.closed: str | None = None
        self._events: list[Event] = [CallStart("write"), CallText("write", protocol.WRITE_HEAD)]

    def take_events(self) -> list[Event]:
        """The events since the last call."""
        events, self._events = self._events, []
        return events

    def feed(self, piece: str) -> None:
        """The next piece of the call's text."""
        self.raw.append(piece)
        for event in self.parser.feed(piece):
            if isinstance(event, protocol.CallText):
                self._events.append(CallText("write", event.text))
            elif isinstance(event, protocol.WriteTriples):
                self.parsed = list(event.triples)
            elif isinstance(event, protocol.CallError):
                self._events.append(CallFailed(event.raw, event.message))
        call = "".join(self.raw)
        if self._ended(call):
            self.closed = call
        elif protocol.ITEM_SEP in piece and _runs_on(call):
            # The model repeats itself or relates an entity to itself: end the call with
            # what came before instead of spending tokens on more of it.
            self._close(_close_before_last_item(call, keep_last_done=False))

    def finish(self) -> None:
        """No more text (out of tokens, the server stopped): an unclosed call keeps its
        finished triples and drops the one in progress."""
        if self.closed is None:
            self._close(_close_before_last_item("".join(self.raw), keep_last_done=True))

    def _ended(self, call: str) -> bool:
        return call.endswith(protocol.CLOSE)

    def _close(self, closed: str) -> None:
        self.closed = closed
        self.parsed = protocol.parse_write(closed)
        self._events.append(CallText("write", protocol.CLOSE))


class WriteCall(WriteText):
    """One MEM_WRITE call being decoded after its head, a token at a time under its token
    mask, within `max_tokens`. The same for one sentence (`MemoryEngine.write`) and for
    many decoded together (`write_batch`)."""

    def __init__(self, decoder: ConstrainedDecoder, cmd: Command, max_tokens: int):
        super().__init__()
        self.decoder, self.cmd = decoder, cmd
        self.tokens = 0
        self._left = max_tokens
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        if self._left <= 0:
            self.finish()

    def mask(self) -> np.ndarray:
        return self.decoder.mask(self.cmd)

    def accept(self, token: int, piece_bytes: bytes) -> None:
        """The model chose `token` (whose text is `piece_bytes`)."""
        self.decoder.advance(self.cmd, token)
        self.tokens += 1
        self._left -= 1
        self.feed(self._utf8.decode(piece_bytes))
        if self._left <= 0:
            self.finish()

    def _ended(self, call: str) -> bool:
        return self.decoder.is_done(self.cmd)


def _plausible(triple: protocol.Triple) -> bool:
    """Drop what a small model writes when it runs on: an entity related to itself, or
    to a span that contains it ("Obama" >> ... >> "Obama was born in"), or one that is a
    pronoun or a clause fragment ("Her husband", "She studied physics at the")."""
    subject, obj = names.key(triple.subject), names.key(triple.object)
    if subject == obj or _fragment(triple.subject) or _fragment(triple.object):
        return False
    s_words, o_words = f" {subject} ", f" {obj} "
    return s_words not in o_words and o_words not in s_words


def _fragment(name: str) -> bool:
    """A pronoun, or a span that starts with one and goes on in lower case ("Her
    husband", "She studied physics at the"), or ends with a word that cannot end a name
    ("... at the"). Titles keep theirs ("It Happened One Night", "She Loves You")."""
    words = name.split()
    if not words:
        return True
    if words[-1].lower() in _CANNOT_END:
        return True
    first = words[0].lower().strip("'’")
    if first in PRONOUNS:
        return len(words) == 1 or not words[1][:1].isupper()
    return False


_CANNOT_END = frozenset(
    {"the", "a", "an", "of", "at", "in", "to", "for", "and", "with", "on", "by", "from"}
)


def _done_items(call: str) -> list[str]:
    """The finished `s>>r>>o` items of a write call in progress."""
    return call[len(protocol.WRITE_HEAD) :].split(protocol.ITEM_SEP)[:-1]


def _runs_on(call: str) -> bool:
    """Whether the item just finished repeats an earlier one or is implausible."""
    *earlier, last = _done_items(call)
    parts = last.split(protocol.SEP)
    if len(parts) != 3:
        return False
    triple = protocol.Triple(*(p.strip() for p in parts))
    return last in earlier or not _plausible(triple)


def _close_before_last_item(call: str, *, keep_last_done: bool) -> str:
    """The call closed after its finished items (all, or all but the last finished)."""
    items = _done_items(call)
    if not keep_last_done:
        items = items[:-1]
    return protocol.WRITE_HEAD + protocol.ITEM_SEP.join(items) + protocol.CLOSE
