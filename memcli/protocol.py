"""The MemLLM memory-command language: formatting, parsing, and a streaming parser.

Calls, verbatim from MemLLM (Modarressi et al., 2025):

    ({MEM_WRITE-->Lake Geneva>>country>>Switzerland;Lake Geneva>>country>>France})
    ({MEM_READ(Rihanna>>record label>>;>>performer>>Loud Tour)-->Def Jam;Rihanna})

The model writes a read call up to and including `)-->`; the system appends the results
and `})`.

Names and ambiguity. Every delimiter is matched leftmost, as a streaming parser must
(it cannot look ahead), and names are stripped of surrounding whitespace. A valid name
(see `name_problem`) is non-empty, has no line break, contains none of `({`, `})`,
`-->`, `>>`, `;`, and additionally:

- does not end with `>`: `a>` followed by `>>` reads `a>>>b`, which leftmost matching
  splits as `a` / `>b`. (A name may *begin* with `>`: `a>>>b` is `a` and `>b`.)
- does not end with `--`: followed by `>>` it would form `-->`, and `x)--` followed by
  `>>` would end a read query early at `)-->`.

`(`, `)`, `{`, `}` and `-` are otherwise allowed anywhere in a name: with leftmost
matching `a}` + `})` is `a}})` and `x)` + `)-->` is `x))-->`, both unambiguous. Line
breaks are refused inside a call, so a runaway call ends at the end of its line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from memcli import syntax
from memcli.errors import MemcliError
from memcli.syntax import ARROW, CLOSE, DELIMITERS, ITEM_SEP, OPEN, SEP

__all__ = ["ARROW", "CLOSE", "DELIMITERS", "ITEM_SEP", "OPEN", "SEP"]  # defined in syntax
READ_HEAD = "({MEM_READ("
WRITE_HEAD = "({MEM_WRITE-->"
READ_END = ")" + ARROW
MAX_READ_QUERIES = 3
MAX_READ_RESULTS = 30

LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")

CallKind = Literal["read", "write"]
State = Literal["text", "read_query", "read_results", "write"]


class ProtocolError(MemcliError):
    """A memory call that does not follow the grammar; `offset` is where, in characters."""

    def __init__(self, message: str, offset: int | None = None):
        self.offset = offset
        super().__init__(message if offset is None else f"{message} at offset {offset}")


def name_problem(name: str) -> str | None:
    """Why `name` cannot appear in a memory call, or None if it can."""
    if not name:
        return "is empty"
    if name != name.strip():
        return "has surrounding whitespace"
    if any(c in LINE_BREAKS for c in name):
        return "contains a line break"
    return syntax.delimiter_problem(name)


# A memory call in text a person typed or a file holds: from an opening `({` and a call
# name up to its `})`, or up to the end of its line (calls never span lines).
_CALL_IN_TEXT = re.compile(
    r"\(\{\s*MEM_(?:READ|WRITE)[^\n]*?(?:\}\)|$)", re.IGNORECASE | re.MULTILINE
)
_BROKEN = ((OPEN, "( {"), (CLOSE, "} )"), (ARROW, "->"), (SEP, "> >"))


def neutralize(text: str) -> str:
    """User or file text as it may enter a prompt: every memory call in it is removed
    (the model never sees a call it did not write, so nothing a person types or a file
    holds is ever run as one), and the delimiters left are broken up: `({` becomes
    `( {`, `})` `} )`, `-->` `->` and `>>` `> >`. Text without them is returned as it is."""
    if not any(d in text for d in (OPEN, CLOSE, ARROW, SEP)) and "mem_" not in text.lower():
        return text
    text = _CALL_IN_TEXT.sub("", text)
    changed = True
    while changed:
        changed = False
        for delimiter, broken in _BROKEN:
            if delimiter in text:
                text = text.replace(delimiter, broken)
                changed = True
    return text


def normalize(name: str) -> str:
    """Case- and whitespace-insensitive form of a name, for deduplication: the store's
    matching key (`syntax.key`), so a read deduplicates exactly as memory matches."""
    return syntax.key(name)


@dataclass(frozen=True)
class Triple:
    """A fact: (subject, relation, object)."""

    subject: str
    relation: str
    object: str


@dataclass(frozen=True)
class ReadQuery:
    """`subject>>relation>>object` with exactly one of subject and object left as None."""

    subject: str | None
    relation: str
    object: str | None

    def __post_init__(self) -> None:
        if (self.subject is None) == (self.object is None):
            raise ProtocolError("a read query needs exactly one of subject or object")

    @property
    def missing(self) -> Literal["subject", "object"]:
        return "subject" if self.subject is None else "object"

    @property
    def entity(self) -> str:
        """The entity that is given (the subject or the object)."""
        return self.subject if self.subject is not None else self.object  # type: ignore[return-value]

    def key(self) -> tuple[str | None, str, str | None]:
        """Identity for deduplicating queries, ignoring case and whitespace."""
        return (
            None if self.subject is None else normalize(self.subject),
            normalize(self.relation),
            None if self.object is None else normalize(self.object),
        )


@dataclass(frozen=True)
class WriteCall:
    triples: tuple[Triple, ...]


@dataclass(frozen=True)
class ReadCall:
    queries: tuple[ReadQuery, ...]
    results: tuple[str, ...]


# --- formatting -------------------------------------------------------------------------


def _check(name: str, what: str) -> str:
    problem = name_problem(name)
    if problem:
        raise ProtocolError(f"{what} {name!r} {problem}")
    return name


def _item(subject: str | None, relation: str, obj: str | None) -> str:
    parts = (("subject", subject), ("relation", relation), ("object", obj))
    return SEP.join("" if name is None else _check(name, what) for what, name in parts)


def format_write(triples: Iterable[Triple]) -> str:
    """`({MEM_WRITE-->s>>r>>o;...})`; no triples give the empty write."""
    return (
        WRITE_HEAD + ITEM_SEP.join(_item(t.subject, t.relation, t.object) for t in triples) + CLOSE
    )


def format_read_call(queries: Sequence[ReadQuery]) -> str:
    """The part of a read the model writes: `({MEM_READ(q;q)-->`."""
    if not 1 <= len(queries) <= MAX_READ_QUERIES:
        raise ProtocolError(f"a read takes 1 to {MAX_READ_QUERIES} queries, not {len(queries)}")
    return (
        READ_HEAD
        + ITEM_SEP.join(_item(q.subject, q.relation, q.object) for q in queries)
        + READ_END
    )


def dedupe_results(results: Iterable[str]) -> list[str]:
    """Results without case/whitespace duplicates, first form kept, capped at 30."""
    seen: set[str] = set()
    out: list[str] = []
    for r in results:
        if len(out) == MAX_READ_RESULTS:
            break
        if (key := normalize(r)) not in seen:
            seen.add(key)
            out.append(r)
    return out


def format_read_results(results: Iterable[str]) -> str:
    """The part of a read the system writes: `r;r})`, deduplicated and capped."""
    return ITEM_SEP.join(_check(r, "result") for r in dedupe_results(results)) + CLOSE


def format_read(queries: Sequence[ReadQuery], results: Iterable[str]) -> str:
    """A whole read call, queries and results."""
    return format_read_call(queries) + format_read_results(results)


# --- parsing ----------------------------------------------------------------------------


def _pieces(text: str, sep: str, start: int, end: int) -> list[tuple[str, int]]:
    """`text[start:end]` split on `sep`, each piece with its offset in `text`."""
    out, i = [], start
    while (j := text.find(sep, i, end)) >= 0:
        out.append((text[i:j], i))
        i = j + len(sep)
    out.append((text[i:end], i))
    return out


def _name(piece: str, offset: int, what: str) -> str:
    name = piece.strip()
    offset += len(piece) - len(piece.lstrip())
    problem = name_problem(name)
    if problem:
        raise ProtocolError(f"{what} {name!r} {problem}" if name else f"{what} is empty", offset)
    return name


def _check_body(text: str, start: int, end: int) -> None:
    for i in range(start, end):
        if text[i] in LINE_BREAKS:
            raise ProtocolError("line break inside a call", i)


def _parse_triples(text: str, start: int, end: int) -> list[Triple]:
    _check_body(text, start, end)
    if not text[start:end].strip():
        return []
    triples = []
    for piece, off in _pieces(text, ITEM_SEP, start, end):
        parts = _pieces(text, SEP, off, off + len(piece))
        if len(parts) != 3:
            raise ProtocolError(
                f"a triple is subject>>relation>>object, found {len(parts)} part(s) in "
                f"{piece.strip()!r}",
                off,
            )
        (sp, so), (rp, ro), (op, oo) = parts
        triples.append(
            Triple(_name(sp, so, "subject"), _name(rp, ro, "relation"), _name(op, oo, "object"))
        )
    return triples


def _parse_queries(text: str, start: int, end: int) -> list[ReadQuery]:
    _check_body(text, start, end)
    if not text[start:end].strip():
        raise ProtocolError("a read needs at least one query", start)
    pieces = _pieces(text, ITEM_SEP, start, end)
    if len(pieces) > MAX_READ_QUERIES:
        raise ProtocolError(
            f"a read takes at most {MAX_READ_QUERIES} queries, found {len(pieces)}",
            pieces[MAX_READ_QUERIES][1],
        )
    queries = []
    for piece, off in pieces:
        parts = _pieces(text, SEP, off, off + len(piece))
        if len(parts) != 3:
            raise ProtocolError(
                f"a query is subject>>relation>>object, found {len(parts)} part(s) in "
                f"{piece.strip()!r}",
                off,
            )
        (sp, so), (rp, ro), (op, oo) = parts
        subject = _name(sp, so, "subject") if sp.strip() else None
        relation = _name(rp, ro, "relation")
        obj = _name(op, oo, "object") if op.strip() else None
        if subject is None and obj is None:
            raise ProtocolError("a query needs a subject or an object, found neither", off)
        if subject is not None and obj is not None:
            raise ProtocolError(
                "a query leaves the subject or the object empty, found both filled", off
            )
        queries.append(ReadQuery(subject, relation, obj))
    return queries


def _parse_results(text: str, start: int, end: int) -> list[str]:
    _check_body(text, start, end)
    if not text[start:end].strip():
        return []
    return [_name(p, o, "result") for p, o in _pieces(text, ITEM_SEP, start, end)]


def _call_span(text: str, head: str, end_mark: str, start: int) -> tuple[int, int]:
    """Start of the body after `head` and the offset of the first `end_mark`."""
    if not text.startswith(head, start):
        raise ProtocolError(f"expected {head!r}", start)
    body = start + len(head)
    end = text.find(end_mark, body)
    if end < 0:
        raise ProtocolError(f"missing {end_mark!r}", len(text))
    return body, end


def _finish(text: str, after: int) -> None:
    if text[after:].strip():
        raise ProtocolError("unexpected text after the call", after)


def _lead(text: str) -> int:
    return len(text) - len(text.lstrip())


def parse_write(text: str) -> list[Triple]:
    """The triples of a complete `MEM_WRITE` call (surrounding whitespace allowed)."""
    body, end = _call_span(text, WRITE_HEAD, CLOSE, _lead(text))
    triples = _parse_triples(text, body, end)
    _finish(text, end + len(CLOSE))
    return triples


def parse_read(text: str) -> tuple[list[ReadQuery], list[str]]:
    """The queries and results of a complete `MEM_READ` call, results as written."""
    body, arrow = _call_span(text, READ_HEAD, READ_END, _lead(text))
    queries = _parse_queries(text, body, arrow)
    results_at = arrow + len(READ_END)
    end = text.find(CLOSE, results_at)
    if end < 0:
        raise ProtocolError(f"missing {CLOSE!r}", len(text))
    results = _parse_results(text, results_at, end)
    _finish(text, end + len(CLOSE))
    return queries, results


def parse_call(text: str) -> ReadCall | WriteCall:
    """Parse a complete read or write call."""
    start = _lead(text)
    if text.startswith(READ_HEAD, start):
        queries, results = parse_read(text)
        return ReadCall(tuple(queries), tuple(results))
    if text.startswith(WRITE_HEAD, start):
        return WriteCall(tuple(parse_write(text)))
    raise ProtocolError(f"expected {READ_HEAD!r} or {WRITE_HEAD!r}", start)


# --- streaming --------------------------------------------------------------------------


@dataclass(frozen=True)
class TextEvent:
    """Plain text outside calls."""

    text: str


@dataclass(frozen=True)
class CallOpened:
    """A call head (`({MEM_READ(` or `({MEM_WRITE-->`) is complete."""

    kind: CallKind


@dataclass(frozen=True)
class CallText:
    """Raw characters of a call, head included, as they arrive."""

    text: str


@dataclass(frozen=True)
class ReadQueries:
    """`)-->` arrived: the runtime must now run these queries and feed the results."""

    queries: tuple[ReadQuery, ...]


@dataclass(frozen=True)
class ReadResults:
    results: tuple[str, ...]


@dataclass(frozen=True)
class WriteTriples:
    triples: tuple[Triple, ...]


@dataclass(frozen=True)
class CallClosed:
    kind: CallKind
    raw: str


@dataclass(frozen=True)
class CallError:
    """A malformed or unfinished call; the parser is back in text mode."""

    raw: str
    message: str


Event = (
    TextEvent
    | CallOpened
    | CallText
    | ReadQueries
    | ReadResults
    | WriteTriples
    | CallClosed
    | CallError
)
_HEADS: dict[str, tuple[CallKind, State]] = {
    READ_HEAD: ("read", "read_query"),
    WRITE_HEAD: ("write", "write"),
}


class StreamParser:
    """Turns model text, in chunks of any size, into events.

    Invariants: the events do not depend on how the text is chunked (apart from how
    text is split between adjacent TextEvent/CallText), and the TextEvent and CallText
    texts, concatenated, are exactly the text fed. Only a possible call head (a trailing
    prefix of `({MEM_READ(` / `({MEM_WRITE-->`) is held back.
    """

    def __init__(self) -> None:
        self._state: State = "text"
        self._kind: CallKind = "read"
        self._pending = ""  # a possible call head, held back in text mode
        self._raw = ""  # the call so far
        self._body = 0  # where the current section of the call starts in _raw

    @property
    def state(self) -> State:
        return self._state

    @property
    def in_call(self) -> bool:
        return self._state != "text"

    def feed(self, chunk: str) -> list[Event]:
        out: list[Event] = []
        for c in chunk:
            if self._state == "text":
                self._text(c, out)
            else:
                self._call(c, out)
        return _merge(out)

    def close(self) -> list[Event]:
        """End of text: flush held-back text; an unfinished call becomes a CallError."""
        out: list[Event] = []
        if self._state != "text":
            self._error(ProtocolError(f"unfinished {self._kind} call", len(self._raw)), out)
        elif self._pending:
            out.append(TextEvent(self._pending))
            self._pending = ""
        return out

    def _text(self, c: str, out: list[Event]) -> None:
        buf = self._pending + c
        while buf:
            if buf in _HEADS:
                self._kind, self._state = _HEADS[buf]
                self._raw, self._body, self._pending = buf, len(buf), ""
                out += [CallOpened(self._kind), CallText(buf)]
                return
            if any(h.startswith(buf) for h in _HEADS):
                self._pending = buf
                return
            out.append(TextEvent(buf[0]))
            buf = buf[1:]
        self._pending = ""

    def _error(self, e: ProtocolError, out: list[Event]) -> None:
        out.append(CallError(self._raw, str(e)))
        self._state, self._raw = "text", ""

    def _call(self, c: str, out: list[Event]) -> None:
        if c in LINE_BREAKS:
            self._error(ProtocolError("line break inside a call", len(self._raw)), out)
            self._text(c, out)
            return
        self._raw += c
        out.append(CallText(c))
        raw = self._raw
        try:
            if self._state == "read_query":
                if raw.endswith(READ_END):
                    queries = _parse_queries(raw, self._body, len(raw) - len(READ_END))
                    self._state, self._body = "read_results", len(raw)
                    out.append(ReadQueries(tuple(queries)))
            elif raw.endswith(CLOSE) and len(raw) - self._body >= len(CLOSE):
                end = len(raw) - len(CLOSE)
                if self._kind == "write":
                    out.append(WriteTriples(tuple(_parse_triples(raw, self._body, end))))
                else:
                    out.append(ReadResults(tuple(_parse_results(raw, self._body, end))))
                out.append(CallClosed(self._kind, raw))
                self._state, self._raw = "text", ""
        except ProtocolError as e:
            self._error(e, out)


def _merge(events: list[Event]) -> list[Event]:
    """Join adjacent TextEvents, and adjacent CallTexts."""
    out: list[Event] = []
    for e in events:
        last = out[-1] if out else None
        if isinstance(e, TextEvent) and isinstance(last, TextEvent):
            out[-1] = TextEvent(last.text + e.text)
        elif isinstance(e, CallText) and isinstance(last, CallText):
            out[-1] = CallText(last.text + e.text)
        else:
            out.append(e)
    return out
