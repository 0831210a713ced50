"""Training examples for the MemLLM adapter, built from Re-DocRED-format documents.

Every example is a list of (text, trained) segments: their concatenation is exactly the
text the runtime feeds llama.cpp (same prompts, same chat template, same call syntax), and
`trained` says whether the model is taught to produce that segment (loss) or it is
supplied by the prompt or by the system (no loss).

Three kinds, all rendered with `memcli.runtime.prompts`:

- write: one sentence (with the preceding text as context, as `memcli ingest` gives it);
  the prompt ends with `({MEM_WRITE-->`, which the runtime appends itself, and the target
  is the rest of the call with the gold triples whose evidence includes the sentence and
  whose two entities are both mentioned in it, by their surface forms in that sentence.
  Sentences with no labelled fact at all give empty writes, for a share of them.
- read: plain document text (no chat template, as `memcli eval ppl` scores it) of the
  sentence before and the sentence with the first mention of an entity that a gold
  triple links to an entity already named; a read goes just before that mention, spaced
  as `memcli eval ppl` spaces it. Loss on the text and the query, not on the results and
  `})`, which the system appends.
- qa: a question over memory. When the fact is in memory the answer starts with the read
  (whose `({MEM_READ(` the runtime forces, so it has no loss), the results (no loss), then
  the answer. When it is not, the runtime removes the empty read, and the model must say
  "I don't know."

Deterministic: the same files give the same examples in the same order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from memcli import protocol
from memcli.evaluation.data import detokenize  # as `memcli eval` renders documents
from memcli.protocol import ReadQuery, Triple
from memcli.runtime import prompts
from memcli.runtime.constraints import WORD as _WORD  # the write decoder's words

DEFAULT_DATA = (
    Path(__file__).resolve().parent.parent.parent
    / "shared"
    / "data"
    / "redocred"
    / ("dev_revised.json")
)
TRAIN_DOCS = range(0, 400)
VALID_DOCS = range(400, 500)
MAX_TRIPLES = 8
DONT_KNOW = "I don't know."

# Chat template of SmolLM2-Instruct (ChatML), as stored in its GGUF.
IM_START, IM_END = "<|im_start|>", "<|im_end|>"

QUESTION_TEMPLATES = (
    "What is the {relation} of {subject}?",
    "What is {subject}'s {relation}?",
    "Tell me the {relation} of {subject}.",
)


Segment = tuple[str, bool]


@dataclass
class Example:
    kind: str  # "write", "read", "qa"
    doc: int
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(s for s, _ in self.segments)

    @property
    def target(self) -> str:
        return "".join(s for s, trained in self.segments if trained)


# --- documents -------------------------------------------------------------------------


@dataclass
class Mention:
    entity: int
    sent: int
    start: int  # character offsets in the sentence text
    end: int
    text: str


@dataclass
class Document:
    index: int
    title: str
    sentences: list[str]
    mentions: list[Mention]
    labels: list[dict]

    def in_sentence(self, sent: int, entity: int) -> list[Mention]:
        return [m for m in self.mentions if m.sent == sent and m.entity == entity]

    def first_mention(self, entity: int) -> Mention | None:
        found = [m for m in self.mentions if m.entity == entity]
        return min(found, key=lambda m: (m.sent, m.start)) if found else None


def load_documents(path: Path = DEFAULT_DATA) -> list[dict]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def parse_document(raw: dict, index: int) -> Document:
    sentences, offsets = [], []
    for tokens in raw["sents"]:
        text, spans = detokenize(tokens)
        sentences.append(text)
        offsets.append(spans)
    mentions = []
    for entity, ms in enumerate(raw["vertexSet"]):
        for m in ms:
            spans = offsets[m["sent_id"]]
            start, end = spans[m["pos"][0]][0], spans[m["pos"][1] - 1][1]
            text = sentences[m["sent_id"]][start:end]
            mentions.append(Mention(entity, m["sent_id"], start, end, text))
    return Document(index, raw["title"], sentences, mentions, list(raw.get("labels", [])))


def relation_names() -> dict[str, str]:
    from memcli.store.core import builtin_relations

    return dict(builtin_relations())


def _usable_span(sentence: str, mention: Mention) -> bool:
    """The write decoder only allows runs of whole words, exactly as written."""
    if protocol.name_problem(mention.text) is not None:
        return False
    words = [(m.start(), m.end()) for m in _WORD.finditer(sentence)]
    starts = {a for a, _ in words}
    ends = {b for _, b in words}
    return mention.start in starts and mention.end in ends


def _keep(key: str, rate: float) -> bool:
    """A deterministic coin with probability `rate`."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < rate


def _choice(key: str, options: Sequence[str]) -> str:
    digest = hashlib.sha256(key.encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]


# --- chat rendering --------------------------------------------------------------------


def render_chat(messages: Iterable[dict[str, str]]) -> str:
    """ChatML with the generation prompt, as SmolLM2's template renders it."""
    text = "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)
    return text + f"{IM_START}assistant\n"


# --- writes ----------------------------------------------------------------------------


def gold_writes(doc: Document, sent: int, relations: dict[str, str]) -> list[Triple]:
    """Labelled triples with `sent` as evidence and both entities mentioned in it, by their
    first surface form in the sentence; in order of the subject's and object's position."""
    found: list[tuple[int, int, Triple]] = []
    sentence = doc.sentences[sent]
    for label in doc.labels:
        if sent not in label.get("evidence", []):
            continue
        heads = [m for m in doc.in_sentence(sent, label["h"]) if _usable_span(sentence, m)]
        tails = [m for m in doc.in_sentence(sent, label["t"]) if _usable_span(sentence, m)]
        relation = relations.get(label["r"])
        if not heads or not tails or relation is None:
            continue
        h = min(heads, key=lambda m: m.start)
        t = min(tails, key=lambda m: m.start)
        if protocol.normalize(h.text) == protocol.normalize(t.text):
            continue
        found.append((h.start, t.start, Triple(h.text, relation, t.text)))
    found.sort(key=lambda item: (item[0], item[1], item[2].relation))
    return list(dict.fromkeys(t for _, _, t in found))[:MAX_TRIPLES]


def write_example(
    doc: Document, sent: int, triples: Sequence[Triple], max_context: int | None = None
) -> Example:
    """`max_context` shortens the context (to whole sentences, at most that many
    characters), as the runtime does (`prompts.trim_context`, 300 characters)."""
    context = " ".join(doc.sentences[:sent])
    if max_context is not None:
        kept: list[str] = []
        for previous in reversed(doc.sentences[:sent]):
            if len(previous) + sum(len(k) + 1 for k in kept) > max_context:
                break
            kept.insert(0, previous)
        context = " ".join(kept)
    messages = prompts.write_messages(doc.sentences[sent], context, few_shot=False)
    call = protocol.format_write(triples)
    head = protocol.WRITE_HEAD
    assert call.startswith(head)
    return Example(
        "write",
        doc.index,
        [(render_chat(messages) + head, False), (call[len(head) :] + IM_END, True)],
    )


def write_examples(
    doc: Document, relations: dict[str, str], empty_rate: float, max_context: int | None = None
) -> list[Example]:
    out = []
    stated = {s for label in doc.labels for s in label.get("evidence", [])}
    for sent in range(len(doc.sentences)):
        triples = gold_writes(doc, sent, relations)
        if triples:
            out.append(write_example(doc, sent, triples, max_context))
        elif sent not in stated and _keep(f"empty:{doc.index}:{sent}", empty_rate):
            out.append(write_example(doc, sent, [], max_context))
    return out


# --- reads in running text -------------------------------------------------------------


def _entity_name(doc: Document, entity: int) -> str | None:
    first = doc.first_mention(entity)
    if first is None or protocol.name_problem(first.text) is not None:
        return None
    return first.text


def read_examples(doc: Document, relations: dict[str, str], limit: int) -> list[Example]:
    """At most `limit` per document, in text order."""
    out: list[Example] = []
    done: set[int] = set()
    firsts = {e: doc.first_mention(e) for e in {label["t"] for label in doc.labels}}
    candidates = []
    for label in doc.labels:
        t, h = label["t"], label["h"]
        tm, hm = firsts.get(t), doc.first_mention(h)
        relation = relations.get(label["r"])
        if tm is None or hm is None or relation is None or t in done:
            continue
        # the subject must be named earlier in the window (this sentence or the one before)
        if not (hm.sent == tm.sent - 1 or (hm.sent == tm.sent and hm.end <= tm.start)):
            continue
        subject = _entity_name(doc, h)
        if subject is None or protocol.name_problem(tm.text) is not None:
            continue
        results = [
            name
            for other in doc.labels
            if other["h"] == h
            and other["r"] == label["r"]
            and (name := _entity_name(doc, other["t"])) is not None
        ]
        results = protocol.dedupe_results(results)
        if tm.text not in results:
            continue
        done.add(t)
        candidates.append((tm.sent, tm.start, subject, relation, results, tm))
    candidates.sort(key=lambda c: (c[0], c[1]))
    for sent, start, subject, relation, results, _ in candidates[:limit]:
        before = " ".join(doc.sentences[max(0, sent - 1) : sent])
        sentence = doc.sentences[sent]
        prefix = (before + " " if before else "") + sentence[:start]
        rest = sentence[start:]
        if prefix.endswith(" "):  # the call takes the target's place, spaced as it was
            rest = " " + rest
        call = protocol.format_read_call([ReadQuery(subject, relation, None)])
        out.append(
            Example(
                "read",
                doc.index,
                [
                    (prefix + call, True),
                    (protocol.format_read_results(results), False),
                    (rest, True),
                ],
            )
        )
    return out


# --- questions over memory -------------------------------------------------------------


def answer_text(results: Sequence[str]) -> str:
    if len(results) == 1:
        return f" {results[0]}."
    return " " + ", ".join(results[:-1]) + f" and {results[-1]}."


def qa_examples(doc: Document, relations: dict[str, str], absent_rate: float) -> list[Example]:
    """One question per (subject, relation) with gold answers; and, for a share of the
    subjects, one question about a relation they have no fact for."""
    out: list[Example] = []
    grouped: dict[tuple[int, str], list[str]] = {}
    for label in doc.labels:
        if label["r"] not in relations:
            continue
        name = _entity_name(doc, label["t"])
        if name is not None:
            grouped.setdefault((label["h"], label["r"]), []).append(name)
    subjects: dict[int, set[str]] = {}
    for (h, r), objects in grouped.items():
        subjects.setdefault(h, set()).add(r)
        subject = _entity_name(doc, h)
        if subject is None:
            continue
        results = protocol.dedupe_results(objects)
        relation = relations[r]
        question = _choice(f"q:{doc.index}:{h}:{r}", QUESTION_TEMPLATES).format(
            relation=relation, subject=subject
        )
        messages = prompts.answer_messages([{"role": "user", "content": question}], few_shot=False)
        query = protocol.format_read_call([ReadQuery(subject, relation, None)])
        out.append(
            Example(
                "qa",
                doc.index,
                [
                    (render_chat(messages) + protocol.READ_HEAD, False),
                    (query[len(protocol.READ_HEAD) :], True),
                    (protocol.format_read_results(results), False),
                    (answer_text(results) + IM_END, True),
                ],
            )
        )
    ids = sorted(relations)
    for h, present in sorted(subjects.items()):
        subject = _entity_name(doc, h)
        if subject is None or not _keep(f"absent:{doc.index}:{h}", absent_rate):
            continue
        missing = [r for r in ids if r not in present]
        r = _choice(f"absent-r:{doc.index}:{h}", missing)
        question = _choice(f"q:{doc.index}:{h}:{r}", QUESTION_TEMPLATES).format(
            relation=relations[r], subject=subject
        )
        messages = prompts.answer_messages([{"role": "user", "content": question}], few_shot=False)
        out.append(
            Example("qa", doc.index, [(render_chat(messages), False), (DONT_KNOW + IM_END, True)])
        )
    return out


# --- the whole set ---------------------------------------------------------------------


@dataclass
class Mix:
    empty_rate: float = 0.3  # of the sentences with no labelled fact
    reads_per_doc: int = 2
    qa_rate: float = 0.5  # share of (subject, relation) questions kept
    absent_rate: float = 0.5  # share of subjects that get an unanswerable question
    max_context: int | None = None  # characters of write context; None: all (as runtime)


def build_examples(
    raw_docs: Sequence[dict], indices: Iterable[int], mix: Mix | None = None
) -> list[Example]:
    """All examples of the documents `indices`, document by document, kind by kind."""
    mix = mix or Mix()
    relations = relation_names()
    out: list[Example] = []
    for i in indices:
        doc = parse_document(raw_docs[i], i)
        out += write_examples(doc, relations, mix.empty_rate, mix.max_context)
        out += read_examples(doc, relations, mix.reads_per_doc)
        qa = qa_examples(doc, relations, mix.absent_rate)
        out += [
            e
            for n, e in enumerate(qa)
            if e.target.startswith(DONT_KNOW) or _keep(f"qa:{i}:{n}", mix.qa_rate)
        ]
    return out


def main() -> None:
    import argparse
    from collections import Counter

    parser = argparse.ArgumentParser(description="Print a summary of the training examples.")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--show", type=int, default=0, help="print the first N examples")
    args = parser.parse_args()
    docs = load_documents(args.data)
    examples = build_examples(docs, TRAIN_DOCS)
    print(Counter(e.kind for e in examples), "chars", sum(len(e.text) for e in examples))
    for e in examples[: args.show]:
        print(repr(e.segments))


if __name__ == "__main__":
    main()
