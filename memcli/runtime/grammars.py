"""Grammars for memory calls that an inference server enforces, checked here first.

A remote engine asks the server to constrain the body of a call with a grammar: GBNF
(llama.cpp's format: llama-server, llama-cpp-python's server) or Lark in llguidance's
dialect (vLLM and SGLang with the guidance/llguidance backend, llama-server built with
llguidance, behind a `%llguidance {}` line). Both are built from the same candidates as
the in-process masks (`constraints.read_grammar` / `write_grammar`): the entities a read
may name, the spans of the sentence a write may use, the known relations.

A llama.cpp server that cannot parse a grammar may abort (llama-cpp-python's server
segfaults: it hands a NULL sampler to llama.cpp), so every grammar is validated here,
with the same parser, before it is sent: GBNF by llama.cpp itself
(`llama_sampler_init_grammar` over any vocabulary: parsing does not depend on it), Lark
by llguidance. `checked_gbnf` / `checked_lark` are the only ways a remote request gets a
grammar.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from memcli.runtime.constraints import (
    LIT_CLOSE,
    LIT_ITEM,
    LIT_READ_END,
    LIT_SEP,
    MAX_QUERIES,
    MAX_TRIPLES,
    GrammarError,
    read_grammar,
    usable_names,
    write_grammar,
    write_spans,
)

LLGUIDANCE_HEADER = "%llguidance {}\n"


@dataclass(frozen=True)
class CheckedGrammar:
    """A grammar that passed local validation, in `syntax` "gbnf" or "lark"."""

    syntax: str
    text: str


def gbnf_literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _gbnf_alternation(names: Sequence[str]) -> str:
    return " | ".join(gbnf_literal(n) for n in names)


def _repeat(item: str, sep: str, most: int) -> str:
    """`item` then up to `most - 1` more, each after `sep`, without `{m,n}` (which older
    llama.cpp servers do not parse)."""
    tail = ""
    for _ in range(most - 1):
        tail = f"({sep} {item}{(' ' + tail) if tail else ''})?"
    return f"{item} {tail}".strip()


def read_gbnf(entities: Sequence[str], relations: Sequence[str]) -> str:
    """GBNF for the body of a read after `({MEM_READ(`: 1-3 queries, then `)-->`."""
    entities, relations = usable_names(entities), usable_names(relations)
    if not entities:
        raise GrammarError("cannot constrain a memory read: no entity to read about")
    if not relations:
        raise GrammarError("cannot constrain a memory read: no relations are known")
    return (
        f"root ::= {_repeat('query', LIT_ITEM, MAX_QUERIES)} {LIT_READ_END}\n"
        f"query ::= entity {LIT_SEP} rel {LIT_SEP} | {LIT_SEP} rel {LIT_SEP} entity\n"
        f"entity ::= {_gbnf_alternation(entities)}\n"
        f"rel ::= {_gbnf_alternation(relations)}\n"
    )


def write_gbnf(sentence: str, relations: Sequence[str], entities: Sequence[str] = ()) -> str:
    """GBNF for the body of a write after `({MEM_WRITE-->`: 0-8 triples over word spans
    of `sentence` (and the context `entities`, as `constraints.write_grammar`), `})`."""
    relations = usable_names(relations)
    if not relations:
        raise GrammarError("cannot constrain a memory write: no relations are known")
    spans = write_spans(sentence, entities)
    if not spans:
        return f"root ::= {LIT_CLOSE}\n"
    return (
        f"root ::= ({_repeat('triple', LIT_ITEM, MAX_TRIPLES)})? {LIT_CLOSE}\n"
        f"triple ::= span {LIT_SEP} rel {LIT_SEP} span\n"
        f"span ::= {_gbnf_alternation(spans)}\n"
        f"rel ::= {_gbnf_alternation(relations)}\n"
    )


def read_lark(entities: Sequence[str], relations: Sequence[str], *, header: bool) -> str:
    return (LLGUIDANCE_HEADER if header else "") + read_grammar(entities, relations)


def write_lark(
    sentence: str, relations: Sequence[str], *, header: bool, entities: Sequence[str] = ()
) -> str:
    return (LLGUIDANCE_HEADER if header else "") + write_grammar(
        sentence, relations, entities=entities
    )


# -- validation ----------------------------------------------------------------------------

_vocab_lock = threading.Lock()
_vocab_model: Any = None


def vocab_only_model(path: Any) -> Any:
    """llama.cpp's model object for `path` with its vocabulary only (no weights, no
    context): tokenization, token pieces, and a `llama_vocab*`."""
    import llama_cpp
    from llama_cpp._internals import LlamaModel

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    return LlamaModel(path_model=str(path), params=params, verbose=False)


def _parser_vocab() -> Any:
    """A `llama_vocab*` for llama.cpp's grammar parser: the bundled model's, loaded once
    without weights."""
    global _vocab_model
    with _vocab_lock:
        if _vocab_model is None:
            from memcli.catalog import bundled_model_path

            _vocab_model = vocab_only_model(bundled_model_path())
            atexit.register(_vocab_model.close)  # before llama.cpp's module is torn down
        return _vocab_model.vocab


def validate_gbnf(text: str) -> None:
    """Raise `GrammarError` unless llama.cpp's own parser accepts `text` (root `root`)."""
    import llama_cpp

    vocab = _parser_vocab()
    with _stderr_captured() as said:
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, text.encode(), b"root")
    if not sampler:
        reason = next((line.strip() for line in said() if line.strip()), "")
        reason = reason.removeprefix("parse: ")[:160]
        raise GrammarError(
            "llama.cpp cannot parse the memory-call grammar"
            + (f" ({reason})" if reason else "")
            + "; it was not sent"
        )
    llama_cpp.llama_sampler_free(sampler)


@contextlib.contextmanager
def _stderr_captured() -> Iterator[Callable[[], list[str]]]:
    """What llama.cpp writes to file descriptor 2 meanwhile (its parse errors), kept
    off the terminal; the callable returns its lines."""
    saved = os.dup(2)
    lines: list[str] = []
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines += sink.read().decode("utf-8", "replace").splitlines()


def validate_lark(text: str) -> None:
    """Raise `GrammarError` unless llguidance accepts the Lark grammar `text`."""
    from llguidance import LLMatcher

    body = text.removeprefix(LLGUIDANCE_HEADER)
    try:
        error = LLMatcher.validate_grammar(LLMatcher.grammar_from_lark(body))
    except (ValueError, RuntimeError, TypeError) as exc:
        error = str(exc) or type(exc).__name__
    if error:
        first = error.strip().splitlines()[0][:200]
        raise GrammarError(f"llguidance cannot parse the memory-call grammar: {first}")


def checked_gbnf(text: str) -> CheckedGrammar:
    validate_gbnf(text)
    return CheckedGrammar("gbnf", text)


def checked_lark(text: str) -> CheckedGrammar:
    validate_lark(text)
    return CheckedGrammar("lark", text)
