"""Documents in Re-DocRED's format: loading, checking, and the gold facts.

A document's text is rebuilt from its tokens by `detokenize` (no space before `,` `.`
`)` `'s` and the like, none after `(` `$`, none around `-` and `/`, paired quotes hugging
what they quote), and a mention's *surface* is the exact span of that text its tokens
cover ("55.5%", "Convention People's Party"). Surfaces are therefore substrings of the
sentence, which is what a write call constrained to spans of the sentence can produce.
Names match case- and space-insensitively (`memcli.store.names.key`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from memcli.errors import MemcliError, NotFoundError, UsageError
from memcli.store import names

DEFAULT_DATA = (
    Path(__file__).resolve().parent.parent.parent.parent
    / "shared"
    / "data"
    / "redocred"
    / "dev_revised.json"
)

_NO_SPACE_BEFORE = frozenset(
    {
        ",",
        ".",
        ";",
        ":",
        ")",
        "]",
        "}",
        "?",
        "!",
        "%",
        "...",
        "..",
        "…",
        "”",
        "’",
        "'s",
        "n't",
        "'m",
        "'ll",
        "'re",
        "'ve",
        "'d",
    }
)
_NO_SPACE_AFTER = frozenset({"(", "[", "{", "$", "£", "€", "#", "“", "‘"})
_JOINERS = frozenset({"-", "/"})
_PAIRED_QUOTES = frozenset({'"', "'"})


class DataError(MemcliError):
    """The data file is not in Re-DocRED's format; the message names the document and
    the field."""


def detokenize(tokens: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The text of `tokens`, and each token's (start, end) character span in it.

    Whitespace-only tokens (a stray no-break space) take no room: their span is empty.
    """
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    glue = True  # no space before the next token
    open_quote = dict.fromkeys(_PAIRED_QUOTES, False)
    for token in tokens:
        text = token.strip()
        if not text:
            spans.append((pos, pos))
            continue
        attach, next_glue = glue, False
        if text in _JOINERS:
            attach = next_glue = True
        elif text.lower() in _NO_SPACE_BEFORE:
            attach = True
        elif text in _NO_SPACE_AFTER:
            next_glue = True
        elif text in _PAIRED_QUOTES:
            if open_quote[text]:
                attach = True
            else:
                next_glue = True
            open_quote[text] = not open_quote[text]
        if parts and not attach:
            parts.append(" ")
            pos += 1
        parts.append(text)
        spans.append((pos, pos + len(text)))
        pos += len(text)
        glue = next_glue
    return "".join(parts), spans


@dataclass(frozen=True)
class Mention:
    sent: int
    start: int  # character offsets in the sentence's text
    end: int
    surface: str
    type: str


@dataclass(frozen=True)
class Entity:
    index: int
    mentions: tuple[Mention, ...]  # in document order

    @property
    def first(self) -> Mention:
        return self.mentions[0]

    @cached_property
    def surfaces(self) -> tuple[str, ...]:
        """Distinct surfaces (by matching key), in document order."""
        seen: dict[str, str] = {}
        for m in self.mentions:
            if m.surface:
                seen.setdefault(names.key(m.surface), m.surface)
        return tuple(seen.values())

    @cached_property
    def keys(self) -> frozenset[str]:
        return frozenset(names.key(s) for s in self.surfaces)

    @cached_property
    def name(self) -> str | None:
        """The name this entity gets in memory: its first surface in the document that
        a memory call can carry; None when there is none."""
        for surface in self.surfaces:
            if names.name_problem(surface) is None:
                return names.clean(surface)
        return None

    @cached_property
    def sentences(self) -> frozenset[int]:
        return frozenset(m.sent for m in self.mentions)


@dataclass(frozen=True)
class LabelledFact:
    """A labelled triple: head and tail are entity indexes."""

    head: int
    relation: str
    tail: int
    relation_id: str
    evidence: tuple[int, ...]


@dataclass(frozen=True)
class Document:
    index: int  # position in the data file
    title: str
    sentences: tuple[str, ...]
    entities: tuple[Entity, ...]
    facts: tuple[LabelledFact, ...]
    offsets: tuple[int, ...] = field(default=())  # start of each sentence in `text`

    @property
    def label(self) -> str:
        return f"document {self.index} ({self.title!r})"

    @property
    def text(self) -> str:
        """The sentences joined with single spaces (as `memcli ingest` joins context)."""
        return " ".join(self.sentences)

    def position(self, mention: Mention) -> int:
        """Character offset of `mention` in `text`."""
        return self.offsets[mention.sent] + mention.start

    def write_gold(self, sent: int) -> list[LabelledFact]:
        """The facts a write after sentence `sent` should name: those whose evidence
        includes it and whose two entities are both mentioned in it."""
        return [
            f
            for f in self.facts
            if sent in f.evidence
            and sent in self.entities[f.head].sentences
            and sent in self.entities[f.tail].sentences
        ]

    def storable(self, fact: LabelledFact) -> bool:
        """Both entities have a name memory can hold."""
        return self.entities[fact.head].name is not None and (
            self.entities[fact.tail].name is not None
        )


# -- selecting documents --------------------------------------------------------------------


def parse_docs(spec: str | None, total: int) -> range:
    """`--docs`: None for all, `N` for the first N, `A:B` for A to B-1 (0-based; either
    side may be left out)."""
    if spec is None:
        return range(total)
    text = spec.strip()
    try:
        if ":" in text:
            a, _, b = text.partition(":")
            start = int(a) if a.strip() else 0
            stop = int(b) if b.strip() else total
        else:
            start, stop = 0, int(text)
    except ValueError:
        raise UsageError(f"--docs {spec!r}: expected N or A:B (0-based, B excluded)") from None
    if start < 0 or stop <= start:
        raise UsageError(f"--docs {spec!r}: selects no documents")
    if stop > total:
        raise UsageError(
            f"--docs {spec!r}: out of range, the data file has {total} "
            f"document{'s' if total != 1 else ''}"
        )
    return range(start, stop)


def default_data_path() -> Path | None:
    return DEFAULT_DATA if DEFAULT_DATA.is_file() else None


def resolve_data(path: Path | None) -> Path:
    if path is not None:
        return path
    found = default_data_path()
    if found is None:
        raise UsageError(f"no data file: pass --data FILE (the default {DEFAULT_DATA} is missing)")
    return found


# -- loading --------------------------------------------------------------------------------


def load_raw(path: Path) -> list:
    """The JSON list of documents in `path`, checked only at the top level."""
    if not path.is_file():
        raise NotFoundError(f"data file not found: {path}")
    try:
        data = json.loads(path.read_text("utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of documents, found {_kind(data)}")
    return data


def load_documents(
    path: Path, docs: str | None = None, relations: dict[str, str] | None = None
) -> list[Document]:
    """The documents `docs` selects from `path`, checked and parsed."""
    from memcli.store.core import builtin_relations

    raw = load_raw(path)
    chosen = parse_docs(docs, len(raw))
    relations = relations if relations is not None else builtin_relations()
    return [parse_document(raw[i], i, relations, source=str(path)) for i in chosen]


def _kind(value: object) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), "a value")


class _Checker:
    """Field checks that raise one-line `DataError`s naming the document and field."""

    def __init__(self, source: str, index: int, title: str | None):
        where = f"document {index}" + (f" ({title!r})" if title is not None else "")
        self.prefix = f"{source}: {where}"

    def fail(self, path: str, problem: str) -> DataError:
        return DataError(f"{self.prefix}: {path}: {problem}")

    def get(self, obj: dict, key: str, path: str) -> object:
        if key not in obj:
            raise self.fail(path, "missing")
        return obj[key]

    def as_list(self, value: object, path: str, *, nonempty: bool = False) -> list:
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, found {_kind(value)}")
        if nonempty and not value:
            raise self.fail(path, "is empty")
        return value

    def as_dict(self, value: object, path: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, found {_kind(value)}")
        return value

    def as_str(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, found {_kind(value)}")
        return value

    def index(self, value: object, path: str, size: int, what: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(path, f"expected a whole number, found {_kind(value)}")
        if not 0 <= value < size:
            plural = "entities" if what == "entity" else f"{what}s"
            raise self.fail(path, f"{what} {value} out of range (the document has {size} {plural})")
        return value


def parse_document(
    raw: object, index: int, relations: dict[str, str], source: str = "data"
) -> Document:
    """One document, checked field by field."""
    title_value = raw.get("title") if isinstance(raw, dict) else None
    c = _Checker(source, index, title_value if isinstance(title_value, str) else None)
    doc = c.as_dict(raw, "document")
    title = c.as_str(c.get(doc, "title", "title"), "title")
    sents_raw = c.as_list(c.get(doc, "sents", "sents"), "sents", nonempty=True)
    tokens: list[list[str]] = []
    for i, sent in enumerate(sents_raw):
        words = c.as_list(sent, f"sents[{i}]")
        tokens.append([c.as_str(w, f"sents[{i}][{j}]") for j, w in enumerate(words)])
    rebuilt = [detokenize(words) for words in tokens]
    sentences = tuple(text for text, _ in rebuilt)
    offsets, at = [], 0
    for text in sentences:
        offsets.append(at)
        at += len(text) + 1

    entities = []
    vertex = c.as_list(c.get(doc, "vertexSet", "vertexSet"), "vertexSet")
    for e, raw_mentions in enumerate(vertex):
        mentions = []
        for m, raw_mention in enumerate(c.as_list(raw_mentions, f"vertexSet[{e}]", nonempty=True)):
            path = f"vertexSet[{e}][{m}]"
            mention = c.as_dict(raw_mention, path)
            c.as_str(c.get(mention, "name", f"{path}.name"), f"{path}.name")
            sent = c.index(
                c.get(mention, "sent_id", f"{path}.sent_id"),
                f"{path}.sent_id",
                len(tokens),
                "sentence",
            )
            pos = c.as_list(c.get(mention, "pos", f"{path}.pos"), f"{path}.pos")
            n = len(tokens[sent])
            if (
                len(pos) != 2
                or not all(isinstance(p, int) and not isinstance(p, bool) for p in pos)
                or not 0 <= pos[0] < pos[1] <= n
            ):
                raise c.fail(
                    f"{path}.pos",
                    f"{pos!r} is not a token span [start, end) inside sentence {sent} ({n} tokens)",
                )
            kind = c.as_str(mention.get("type", ""), f"{path}.type")
            spans = [s for s in rebuilt[sent][1][pos[0] : pos[1]] if s[1] > s[0]]
            start = spans[0][0] if spans else 0
            end = spans[-1][1] if spans else 0
            mentions.append(Mention(sent, start, end, sentences[sent][start:end], kind))
        mentions.sort(key=lambda x: (x.sent, x.start, x.end))
        entities.append(Entity(e, tuple(mentions)))

    facts = []
    for i, raw_label in enumerate(c.as_list(c.get(doc, "labels", "labels"), "labels")):
        path = f"labels[{i}]"
        label = c.as_dict(raw_label, path)
        head = c.index(c.get(label, "h", f"{path}.h"), f"{path}.h", len(entities), "entity")
        tail = c.index(c.get(label, "t", f"{path}.t"), f"{path}.t", len(entities), "entity")
        rid = c.as_str(c.get(label, "r", f"{path}.r"), f"{path}.r")
        if rid not in relations:
            raise c.fail(f"{path}.r", f"unknown relation id {rid!r}")
        evidence = c.as_list(label.get("evidence", []), f"{path}.evidence")
        ev = tuple(
            c.index(s, f"{path}.evidence[{k}]", len(tokens), "sentence")
            for k, s in enumerate(evidence)
        )
        facts.append(LabelledFact(head, relations[rid], tail, rid, ev))
    return Document(index, title, sentences, tuple(entities), tuple(facts), tuple(offsets))
