"""`memcli ask` and `memcli ingest`: the model reading and writing memory."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import closing
from typing import TYPE_CHECKING, Annotated, Any

import typer

from memcli.cli.common import (
    WRITE_BATCH,
    BatchOption,
    DbOption,
    JsonOption,
    ModelChoice,
    model_options,
)
from memcli.cli.output import ProgressBar, counted, json_line, note, safe
from memcli.errors import MemcliError, UsageError
from memcli.store.safety import printable
from memcli.syntax import fact_text

if TYPE_CHECKING:
    from memcli.runtime.events import Event, WriteDone
    from memcli.store.core import TripleStore


@model_options()
def ask(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    no_memory: Annotated[
        bool, typer.Option("--no-memory", help="Answer without reading memory, to compare.")
    ] = False,
    model_choice: ModelChoice = ModelChoice(),
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer one question with memory; prints the answer and the facts it read."""
    from memcli.runtime.events import Done, ReadDone, event_json
    from memcli.store.core import TripleStore

    if not question.strip():
        raise UsageError("the question is empty")
    with TripleStore(db) as store:
        engine = model_choice.open(store, notify=note)
        done: Done | None = None
        try:
            history = [{"role": "user", "content": question}]
            events = (
                engine.answer(history, memory=False)
                if no_memory
                else _answer_from_memory(engine, store, question, history)
            )
            for event in events:
                if as_json:
                    json_line(event_json(event))
                if isinstance(event, Done):
                    done = event
        finally:
            engine.close()
    if as_json or done is None:
        return
    sys.stdout.write(printable(done.text or "(no answer)", keep_newlines=True) + "\n")
    facts = [fact for read in done.reads if isinstance(read, ReadDone) for fact in read.facts]
    if facts:
        sys.stdout.write("\nFacts read:\n")
        for fact in facts:
            sys.stdout.write(
                safe(
                    f"  {fact.id}: {fact_text(fact.subject, fact.relation, fact.object)}"
                    f"  ({fact.source}, {fact.created_at[:10]})"
                )
                + "\n"
            )
    elif not no_memory:
        note("(no facts were read from memory)")


@model_options()
def ingest(
    file: Annotated[str, typer.Argument(metavar="FILE", help="A text file, or - for stdin.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the facts; store nothing.")
    ] = False,
    batch: BatchOption = WRITE_BATCH,
    model_choice: ModelChoice = ModelChoice(),
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Read text sentence by sentence and write the facts it states into memory.

    Each sentence gets one MEM_WRITE call with the preceding text as context; its facts
    are stored as one batch (source: ingest FILE:LINE), so `memcli mem undo` takes back
    the last sentence. Ctrl-C stops cleanly: finished sentences stay, nothing is half
    written.
    """
    from memcli.runtime.events import CallFailed, WriteDone
    from memcli.runtime.sentences import split_sentences
    from memcli.runtime.write_batch import WriteRequest, write_sentences
    from memcli.store.core import TripleStore
    from memcli.store.csvio import decode, read_source

    label, data = read_source(file)
    text = decode(label, data) if data.strip() else ""
    sentences = split_sentences(text)
    if not sentences:
        raise UsageError(f"{label}: no text to ingest")
    name = "<stdin>" if file == "-" else safe(file)  # the facts' source names it
    stored = proposed = done = 0
    started = time.perf_counter()
    with TripleStore(db) as store:
        engine = model_choice.open(store, notify=note)
        progress = ProgressBar("ingesting", len(sentences), unit="sentences")
        texts = [sentence for sentence, _line in sentences]
        requests = (
            WriteRequest(sentence, " ".join(texts[:i]), f"ingest {name}:{line}")
            for i, (sentence, line) in enumerate(sentences)
        )
        try:
            outcomes = write_sentences(engine, requests, batch=batch, dry_run=dry_run)
            with closing(outcomes):  # ends the batch before the engine closes
                for (_sentence, line), outcome in zip(sentences, outcomes, strict=False):
                    for event in outcome.events:
                        if isinstance(event, WriteDone):
                            proposed += len(event.triples)
                            stored += len(event.stored)
                            _print_write(event, line, as_json)
                        elif isinstance(event, CallFailed):
                            note(f"{name}:{line}: {event.message}")
                    if outcome.error is not None:
                        raise outcome.error
                    done += 1
                    progress.update(done)
        except KeyboardInterrupt:
            progress.close()
            note(
                f"interrupted after {done} of {counted(len(sentences), 'sentence')}; "
                "their facts are kept"
            )
            raise typer.Exit(130) from None
        except MemcliError:  # the server went away, say: what is stored stays
            progress.close()
            note(
                f"stopped after {done} of {counted(len(sentences), 'sentence')}; "
                "their facts are kept"
            )
            raise
        finally:
            engine.close()
        progress.close()
    rate = done / max(time.perf_counter() - started, 1e-9)
    verb = "would store" if dry_run else "stored"
    note(
        f"{counted(done, 'sentence')} ({rate:.1f}/s): {counted(proposed, 'fact')} proposed, {verb} "
        f"{proposed if dry_run else stored} new"
    )


def _print_write(event: WriteDone, line: int, as_json: bool) -> None:
    if as_json:
        json_line(
            {
                "line": line,
                "triples": [[t.subject, t.relation, t.object] for t in event.triples],
                "stored": [t.id for t in event.stored],
                "batch_id": event.batch_id,
            }
        )
        return
    for t in event.triples:
        sys.stdout.write(safe(f"{line}: {fact_text(t.subject, t.relation, t.object)}") + "\n")


def _answer_from_memory(
    engine: Any, store: TripleStore, question: str, history: list[dict[str, str]]
) -> Iterator[Event]:
    """As in `memcli chat` (`reading.plan_answer`): the fact the question is about is
    read first; a question about something memory has no such fact of is answered
    "nothing in memory" without generating; others go to the model."""
    from memcli.runtime import reading, writing
    from memcli.runtime.events import Done, Text

    listed = reading.about_answer(store, question) if writing.kind_of(question) == "about" else None
    if listed is not None:  # "Tell me about Marta.": her facts, listed
        yield from listed
        return
    if reading.plan_answer(store, question, lambda: engine) == "absent":
        yield Text(reading.NOTHING_IN_MEMORY)
        yield Done(reading.NOTHING_IN_MEMORY, reading.NOTHING_IN_MEMORY)
        return
    yield from engine.answer(history, memory=True)
