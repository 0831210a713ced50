"""Token masks for the inside of memory commands, computed by llguidance.

A `ConstrainedDecoder` is built once per model from the model's own vocabulary. For each
command the generation loop calls `start_read(...)` or `start_write(...)`, then per token
`mask()` -> sample -> `advance()` until `is_done()`. Free text outside commands never
touches this module, so constraints cost nothing there.

Grammars are Lark (llguidance dialect) with every allowed name as one alternation inside
a terminal, and the whole body as one terminal, so llguidance compiles it into a single
lazily built automaton: a mask takes about 0.1-0.25 ms (p50) with 100,000 entity names.
One terminal rather than separate lexemes matters: llguidance's lexer is greedy, so with
names "Foo" and "Foo)" separate lexemes would reject "Foo)-->". Compiling a grammar with
100,000 names takes 0.5-0.9 s, so the compiled read grammar is cached per memory version
and each call gets a cheap `deep_copy()` of it; a change to memory costs one rebuild at
the next read (construction releases the GIL, so it could also be done ahead in a thread).

One rule is enforced beside the grammar: a MEM_WRITE must not repeat a triple. That is
done by masking: in the object of a triple whose subject and relation match an earlier
triple, only tokens that keep the object on the way to a span not used yet with them
stay allowed. If every span is used (nothing left), the repeat is let through rather
than leaving no token at all; callers deduplicate anyway.
"""

from __future__ import annotations

import bisect
import json
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from memcli import protocol
from memcli.errors import MemcliError
from memcli.runtime.backend import Backend, Mask
from memcli.store.names import name_problem

if TYPE_CHECKING:
    from llguidance import LLMatcher, LLTokenizer

MAX_QUERIES = protocol.MAX_READ_QUERIES  # the protocol's limit, enforced while decoding
MAX_TRIPLES = 8  # memcli's own limit on one write call (the protocol sets none)
_CACHE_SIZE = 4

# A word: letters/digits with inner joiners (Jean-Paul, O'Brien, 3.5, AT&T), or an
# abbreviation with its dots (U.S.).
WORD = re.compile(r"(?:\w\.){2,}|\w+(?:[-'’.&/]\w+)*")


class GrammarError(MemcliError):
    """A constraint grammar was refused by llguidance (or could not be built)."""


class ConstraintViolation(MemcliError):
    """A token was fed to a command that its grammar does not allow."""


def lark_literal(text: str) -> str:
    """`text` as a Lark string literal (JSON string syntax, which llguidance reads)."""
    return json.dumps(text, ensure_ascii=False)


# The protocol's delimiters as they appear in a grammar (Lark and GBNF both read JSON
# strings) and in the bytes of a call being decoded.
LIT_SEP, LIT_ITEM, LIT_READ_END, LIT_CLOSE = (
    lark_literal(d) for d in (protocol.SEP, protocol.ITEM_SEP, protocol.READ_END, protocol.CLOSE)
)
_SEP_BYTES, _ITEM_BYTES = protocol.SEP.encode(), protocol.ITEM_SEP.encode()
_CLOSE_START = protocol.CLOSE[:1].encode()  # an object ends at `;` or at the `}` of `})`


def _alternation(names: Iterable[str]) -> str:
    return " | ".join(lark_literal(n) for n in names)


def _short(message: str, limit: int = 300) -> str:
    """llguidance quotes the grammar in errors; with 100,000 names that is megabytes."""
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return first if len(first) <= limit else first[:limit] + "..."


def usable_names(names: Iterable[str]) -> list[str]:
    """The distinct names that can appear inside a command, in first-seen order."""
    return [n for n in dict.fromkeys(names) if name_problem(n) is None and n.strip() == n]


# Words that name nothing on their own: a span made only of these is not an entity, and
# two spans sharing only these do not overlap. Pronouns are here too: Re-DocRED never
# labels them as mentions, and a fact about "he" is useless without its referent.
_MINOR_WORDS = frozenset(
    """a an and at by for from in into of on or the to with as is are was were be been
    being has have had it its he him his she her they them their this that these those
    which who whom whose also not""".split()
)


def word_spans(sentence: str) -> list[str]:
    """Every contiguous run of whole words of `sentence`, exactly as written, that is not
    made of minor words alone ("in", "of the" name nothing)."""
    words = [(m.start(), m.end()) for m in WORD.finditer(sentence)]
    spans = (sentence[a:b] for i, (a, _) in enumerate(words) for _, b in words[i:])
    return usable_names(s for s in spans if s.lower().split() and not _only_minor(s))


def write_spans(sentence: str, entities: Sequence[str] = ()) -> list[str]:
    """The names a write for `sentence` may use: its word spans, then the context
    entities (usable ones that are not minor words alone)."""
    extra = [e for e in usable_names(entities) if e.strip() and not _only_minor(e)]
    return list(dict.fromkeys([*word_spans(sentence), *extra]))


def _only_minor(span: str) -> bool:
    return all(w in _MINOR_WORDS for w in re.findall(r"\w+", span.lower()))


def read_grammar(entities: Sequence[str], relations: Sequence[str], head: str = "") -> str:
    """Lark grammar for `[head]` + the body of a read: 1-3 queries, then `)-->`."""
    entities, relations = usable_names(entities), usable_names(relations)
    if not entities:
        raise GrammarError("cannot constrain a memory read: memory has no entities")
    if not relations:
        raise GrammarError("cannot constrain a memory read: no relations are known")
    head_lit = lark_literal(head) + " " if head else ""
    return (
        f"start: {head_lit}BODY\n"
        f"BODY: QUERY ({LIT_ITEM} QUERY){{0,{MAX_QUERIES - 1}}} {LIT_READ_END}\n"
        f"QUERY: ENTITY {LIT_SEP} REL {LIT_SEP} | {LIT_SEP} REL {LIT_SEP} ENTITY\n"
        f"ENTITY: {_alternation(entities)}\n"
        f"REL: {_alternation(relations)}\n"
    )


def write_grammar(
    sentence: str, relations: Sequence[str], head: str = "", entities: Sequence[str] = ()
) -> str:
    """Lark grammar for `[head]` + the body of a write: 0-8 triples over word spans, `})`.

    `entities` are *context entities*: names from the recent conversation that a triple
    may use besides the sentence's spans ("She studied at …" may name the person "she"
    refers to). Names that only minor words make up are left out."""
    relations = usable_names(relations)
    if not relations:
        raise GrammarError("cannot constrain a memory write: no relations are known")
    spans = write_spans(sentence, entities)
    head_lit = lark_literal(head) + " " if head else ""
    if not spans:
        return f"start: {head_lit}{LIT_CLOSE}\n"
    return (
        f"start: {head_lit}BODY\n"
        f"BODY: (TRIPLE ({LIT_ITEM} TRIPLE){{0,{MAX_TRIPLES - 1}}})? {LIT_CLOSE}\n"
        f"TRIPLE: SPAN {LIT_SEP} REL {LIT_SEP} SPAN\n"
        f"SPAN: {_alternation(spans)}\n"
        f"REL: {_alternation(relations)}\n"
    )


@dataclass
class Command:
    """One memory command being decoded: its matcher and the bytes accepted so far."""

    kind: Literal["read", "write"]
    matcher: LLMatcher
    head: bytes
    bitmask: np.ndarray
    spans: list[bytes] = field(default_factory=list)  # sorted; writes only
    data: bytearray = field(default_factory=bytearray)

    @property
    def text(self) -> str:
        """What the model wrote inside the command so far (after the head)."""
        return bytes(self.data[len(self.head) :]).decode("utf-8", errors="replace")


class ConstrainedDecoder:
    """Builds and runs command grammars for one model vocabulary."""

    def __init__(self, tokenizer: LLTokenizer, n_vocab: int | None = None):
        self.tokenizer = tokenizer
        self.n_vocab = n_vocab or tokenizer.vocab_size
        self._pieces = [tokenizer.decode_bytes([t]) for t in range(tokenizer.vocab_size)]
        closers = [t for t, p in enumerate(self._pieces) if _ITEM_BYTES in p or _CLOSE_START in p]
        self._closers = np.array(closers, dtype=np.int64)
        self._templates: OrderedDict[Any, LLMatcher] = OrderedDict()

    @classmethod
    def for_backend(cls, backend: Backend) -> ConstrainedDecoder:
        return cls(tokenizer_for(backend), backend.n_vocab)

    # -- starting commands --------------------------------------------------------------

    def start(self, kind: Literal["read", "write"], **kwargs: Any) -> Command:
        """`start("read", entities=..., relations=...)` or `start("write", sentence=...,
        relations=...)`; see `start_read` and `start_write`."""
        if kind == "read":
            return self.start_read(**kwargs)
        if kind == "write":
            return self.start_write(**kwargs)
        raise ValueError(f"unknown command kind {kind!r}")

    def start_read(
        self,
        entities: Sequence[str],
        relations: Sequence[str],
        *,
        version: Any = None,
        head: str = "",
    ) -> Command:
        """A read body (after `({MEM_READ(`, or after `({` with `head="MEM_READ("`).

        `version` identifies the memory contents (e.g. the store's change counter); without
        it the names themselves are hashed to find a cached grammar.
        """
        names_key = version if version is not None else (tuple(entities), tuple(relations))
        key = ("read", head, names_key)
        template = self._templates.get(key)
        if template is None:
            template = self.compile(read_grammar(entities, relations, head))
            self._templates[key] = template
            while len(self._templates) > _CACHE_SIZE:
                self._templates.popitem(last=False)
        else:
            self._templates.move_to_end(key)
        return self._command("read", template.deep_copy(), head)

    def start_write(
        self,
        sentence: str,
        relations: Sequence[str],
        *,
        head: str = "",
        entities: Sequence[str] = (),
    ) -> Command:
        """A write body (after `({MEM_WRITE-->`) whose entities are spans of `sentence`
        (and the context `entities`, see `write_grammar`)."""
        matcher = self.compile(write_grammar(sentence, relations, head, entities))
        cmd = self._command("write", matcher, head)
        cmd.spans = sorted(s.encode() for s in write_spans(sentence, entities))
        return cmd

    def compile(self, lark: str) -> LLMatcher:
        """An `LLMatcher` for a Lark grammar; a bad grammar raises `GrammarError`.

        Building the matcher is llguidance's validation (`validate_grammar` costs as much,
        so it is not done twice); llguidance reports errors as a state, never a crash.
        """
        from llguidance import LLMatcher, LLParserLimits

        # The default lexer fuel stops at ~150,000 names; the cost is linear in the
        # names, so allow ~3M names' worth and keep the other limits.
        limits = LLParserLimits(initial_lexer_fuel=20_000_000)
        try:
            grammar = LLMatcher.grammar_from_lark(lark)
            matcher = LLMatcher(self.tokenizer, grammar, log_level=0, limits=limits)
        except (ValueError, RuntimeError, TypeError) as e:
            raise GrammarError(f"invalid command grammar: {_short(str(e))}") from e
        if matcher.is_error():
            raise GrammarError(f"invalid command grammar: {_short(matcher.get_error())}")
        return matcher

    def _command(self, kind: Literal["read", "write"], matcher: LLMatcher, head: str) -> Command:
        from llguidance.numpy import allocate_token_bitmask

        bitmask = allocate_token_bitmask(1, self.tokenizer.vocab_size)
        return Command(kind, matcher, head.encode(), bitmask)

    # -- stepping -----------------------------------------------------------------------

    def mask(self, cmd: Command) -> Mask:
        """Boolean mask over the model's vocabulary of the tokens allowed next."""
        from llguidance.numpy import fill_next_token_bitmask

        fill_next_token_bitmask(cmd.matcher, cmd.bitmask)
        if cmd.matcher.is_error():
            raise ConstraintViolation(f"constraint failed: {cmd.matcher.get_error()}")
        bits = np.unpackbits(cmd.bitmask[0].view(np.uint8), bitorder="little")
        allowed = bits[: self.n_vocab].view(np.bool_)
        if len(allowed) < self.n_vocab:
            allowed = np.concatenate([allowed, np.zeros(self.n_vocab - len(allowed), bool)])
        if cmd.kind == "write":
            self._forbid_repeats(cmd, allowed)
        return allowed

    def advance(self, cmd: Command, token: int) -> None:
        if not cmd.matcher.consume_token(token):
            raise ConstraintViolation(
                f"token {token} ({self._pieces[token]!r}) not allowed after "
                f"{bytes(cmd.data)!r}: {cmd.matcher.get_error()}"
            )
        cmd.data += self._pieces[token]

    def is_done(self, cmd: Command) -> bool:
        """True once the command's closing delimiter has been accepted."""
        return cmd.matcher.is_stopped()

    def _forbid_repeats(self, cmd: Command, allowed: Mask) -> None:
        *done, current = bytes(cmd.data[len(cmd.head) :]).split(_ITEM_BYTES)
        parts = current.split(_SEP_BYTES)
        if len(parts) != 3:
            return
        subject, relation, obj = parts
        seen = {t[2] for t in (d.split(_SEP_BYTES) for d in done) if t[:2] == [subject, relation]}
        # An object may not overlap its subject ("Obama" >> ... >> "Obama was born"), nor
        # an earlier object of the same subject and relation ("Brazil and grew quickly").
        taken = [subject, *seen]
        viable = [s for s in cmd.spans if s not in seen and not any(_overlaps(s, t) for t in taken)]
        if len(viable) == len(cmd.spans):
            return
        exact = set(viable)
        removed = []
        for token in np.flatnonzero(allowed):
            piece = self._pieces[token]
            ends = (piece.find(_ITEM_BYTES), piece.find(_CLOSE_START))
            cut = min((i for i in ends if i >= 0), default=-1)
            if cut >= 0:
                ok = obj + piece[:cut] in exact
            else:
                prefix = obj + piece
                i = bisect.bisect_left(viable, prefix)
                ok = i < len(viable) and viable[i].startswith(prefix)
            if not ok:
                allowed[token] = False
                removed.append(token)
        if removed and not allowed.any():
            allowed[removed] = True


def _overlaps(span: bytes, other: bytes) -> bool:
    """Whether two spans share a word (other than minor words such as "of", "the")."""

    def words(text: bytes) -> set[str]:
        return set(re.findall(r"\w+", text.decode("utf-8", "replace").lower())) - _MINOR_WORDS

    return bool(words(span) & words(other))


def tokenizer_for(backend: Backend) -> LLTokenizer:
    """llguidance's tokenizer for `backend`'s vocabulary (about 0.25 s for 49k tokens).

    llama.cpp backends are read through their `llama_vocab`; any other backend through
    `token_bytes`, with byte-less tokens treated as special (never allowed in a grammar).
    """
    from llguidance import LLTokenizer, TokenizerWrapper

    vocab = getattr(backend, "vocab_ptr", None)
    if vocab is not None:
        import warnings

        from llguidance.llamacpp import lltokenizer_from_vocab

        with warnings.catch_warnings():  # it calls llama_token_get_attr, now deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            return lltokenizer_from_vocab(vocab, eos_token=backend.eos_token)

    class _Vocab:
        eos_token_id = backend.eos_token
        bos_token_id = None
        tokens = [backend.token_bytes(t) or b"\xff<special_%d>" % t for t in range(backend.n_vocab)]
        special_token_ids = [t for t, b in enumerate(tokens) if b.startswith(b"\xff")]

        def __call__(self, text: bytes | str) -> list[int]:
            if isinstance(text, bytes):
                text = text.decode("utf-8", errors="replace")
            return backend.tokenize(text)

    return LLTokenizer(TokenizerWrapper(_Vocab()))
