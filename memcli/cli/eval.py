"""`memcli eval write|qa|ppl`: measure the model on documents in Re-DocRED's format.

Each command loads the documents, runs the model greedily against a temporary memory
(the user's memory is never touched), prints a summary table, or with `--json` the full
report. The work is in `memcli.evaluation`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from memcli.cli.common import WRITE_BATCH, BatchOption, ModelChoice, model_options

if TYPE_CHECKING:
    from memcli.evaluation.data import Document
    from memcli.runtime.engine import EngineConfig
    from memcli.runtime.engine_api import Engine
    from memcli.store.core import TripleStore

app = typer.Typer(
    help="Measure memory writes, answers from memory, and perplexity with memory "
    "(MemLLM's metrics) on documents in Re-DocRED's format.",
    no_args_is_help=True,
)

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        metavar="FILE",
        help="A JSON file in Re-DocRED's format (default: the development split in "
        "../shared/data/redocred/ next to the repository, when it is there).",
        show_default=False,
    ),
]
DocsOption = Annotated[
    str | None,
    typer.Option(
        "--docs",
        metavar="N|A:B",
        help="Documents to use: N for the first N, A:B for A to B-1 (0-based). Default: all.",
        show_default=False,
    ),
]
ReportOption = Annotated[
    bool, typer.Option("--json", help="Print the full report as JSON instead of the table.")
]


def _load_engine(store: TripleStore, config: EngineConfig, **options: Any) -> Engine:
    """The model under test (tests replace this with a scripted fake)."""
    from memcli.cli.output import note
    from memcli.runtime.loader import open_engine

    return open_engine(store, config=config, notify=note, **options)


@contextmanager
def _session(
    data: Path | None, docs: str | None, config: EngineConfig, model_choice: ModelChoice
) -> Iterator[tuple[list[Document], Engine]]:
    """The chosen documents, and an engine on a fresh temporary memory."""
    from memcli.evaluation.data import load_documents, resolve_data
    from memcli.store.core import TripleStore

    documents = load_documents(resolve_data(data), docs)
    with (
        tempfile.TemporaryDirectory(prefix="memcli-eval-") as folder,
        TripleStore(Path(folder) / "memory.db") as store,
    ):
        engine = _load_engine(store, config, **model_choice.options())
        try:
            yield documents, engine
        finally:
            engine.close()


def _settings(
    data: Path | None, docs: str | None, engine: Engine, model_choice: ModelChoice
) -> dict:
    from dataclasses import asdict

    from memcli.evaluation.data import resolve_data

    info = engine.describe()
    return {
        "data": str(resolve_data(data)),
        "docs": docs,
        "model": info.get("file") or info.get("model") or model_choice.model,
        "adapter": model_choice.adapter,
        "no_adapter": model_choice.no_adapter,
        "threads": info.get("threads", model_choice.threads),
        "engine": asdict(engine.config),
        "runs on": info.get("url") or "in-process",
    }


def _run(label: str, total: int, work: Callable[[Callable[[int], None]], Any]) -> Any:
    from memcli.cli.output import ProgressBar

    with ProgressBar(label, total) as bar:
        return work(bar.update)


def _print(title: str, report: Any, settings: dict, as_json: bool) -> None:
    from memcli.cli.output import json_line, print_table

    if as_json:
        json_line({**report.as_dict(), "settings": settings})
        return
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE, show_header=True, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in report.summary():
        table.add_row(name, value)
    print_table(table)


def _config(max_tokens: int | None = None) -> EngineConfig:
    from memcli.runtime.engine import EngineConfig

    config = EngineConfig(temperature=0.0)
    if max_tokens is not None:
        config.max_tokens = max_tokens
    return config


@app.command()
@model_options()
def write(
    data: DataOption = None,
    docs: DocsOption = None,
    batch: BatchOption = WRITE_BATCH,
    model_choice: ModelChoice = ModelChoice(),
    as_json: ReportOption = False,
) -> None:
    """Score write calls against the labelled triples (precision, recall, F1).

    One MEM_WRITE per sentence with the preceding sentences as context, as `memcli
    ingest --dry-run` makes it; nothing is stored. Gold: the triples whose evidence
    includes the sentence and whose two entities it mentions.
    """
    from memcli.evaluation.write import evaluate_write, sentence_count

    with _session(data, docs, _config(), model_choice) as (documents, engine):
        report = _run(
            "writing",
            sentence_count(documents),
            lambda progress: evaluate_write(engine, documents, progress=progress, batch=batch),
        )
        settings = _settings(data, docs, engine, model_choice)
    _print(f"eval write: {len(documents)} documents", report, settings, as_json)


@app.command()
@model_options()
def qa(
    data: DataOption = None,
    docs: DocsOption = None,
    max_questions: Annotated[
        int | None,
        typer.Option(
            "--max-questions",
            min=1,
            metavar="N",
            help="Ask at most N questions, drawn with --seed.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for drawing questions.")] = 0,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", min=1, help="Longest answer, in tokens.")
    ] = 48,
    model_choice: ModelChoice = ModelChoice(),
    as_json: ReportOption = False,
) -> None:
    """Answer questions from memory holding the labelled triples.

    One question per subject and relation ("What is the country of Lake Geneva?"),
    answered with memory, without it, and with the asked fact removed (does the answer
    still name an entity of the document?).
    """
    from memcli.evaluation.qa import build_questions, evaluate_qa

    with _session(data, docs, _config(max_tokens), model_choice) as (documents, engine):
        total = len(build_questions(documents))
        asked = min(total, max_questions) if max_questions else total
        report = _run(
            "asking",
            asked,
            lambda progress: evaluate_qa(
                engine, documents, max_questions=max_questions, seed=seed, progress=progress
            ),
        )
        settings = {
            **_settings(data, docs, engine, model_choice),
            "max_questions": max_questions,
            "seed": seed,
        }
    _print(f"eval qa: {len(documents)} documents", report, settings, as_json)


@app.command()
@model_options()
def ppl(
    data: DataOption = None,
    docs: DocsOption = None,
    model_choice: ModelChoice = ModelChoice(),
    as_json: ReportOption = False,
) -> None:
    """Perplexity on target entities, with and without memory (MemLLM's metric).

    (a) memory disabled, (b) the model's own read before each target, (c) the gold
    read there. Targets: first mentions of entities that are the object of a labelled
    triple whose subject was mentioned earlier.
    """
    from memcli.errors import UsageError
    from memcli.evaluation.ppl import evaluate_ppl
    from memcli.runtime.engine_api import no_logprobs_message

    with _session(data, docs, _config(), model_choice) as (documents, engine):
        if not engine.capabilities().logprobs:
            raise UsageError(no_logprobs_message(engine))
        report = _run(
            "scoring",
            len(documents),
            lambda progress: evaluate_ppl(engine, documents, progress=progress),
        )
        settings = _settings(data, docs, engine, model_choice)
    _print(f"eval ppl: {len(documents)} documents", report, settings, as_json)


def _load_chat_engine(store: TripleStore, config: EngineConfig, **options: Any) -> Any:
    """The base weights for turns that need no memory, as `memcli chat` uses them: the
    same model without the adapter (None when no adapter is on: the answering engine
    serves). Tests replace this too."""
    if options.get("no_adapter"):
        return None
    from memcli.runtime.engine import EngineConfig as Config

    return _load_engine(store, Config(temperature=0.0), **{**options, "no_adapter": True})


@app.command()
@model_options(engine=False)
def chat(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="Conversations, one JSON object a line (format: "
            "memcli/evaluation/chat.py; recipes/data/chat_dev.jsonl is one).",
        ),
    ],
    max_conversations: Annotated[
        int | None,
        typer.Option(
            "--max-conversations",
            min=1,
            metavar="N",
            help="Only the first N conversations.",
            show_default=False,
        ),
    ] = None,
    model_choice: ModelChoice = ModelChoice(),
    as_json: ReportOption = False,
) -> None:
    """Tell conversations in everyday language to the chat, each in a fresh memory.

    The turns run through the same code as `memcli chat`. Reports facts captured,
    questions answered, updates followed, abstentions on facts never told, writes where
    nothing was stated (spurious), and non-memory prompts answered "I don't know"
    (lower is better for the last two), overall and by category.
    """
    import io

    from rich.console import Console

    from memcli.evaluation.chat import evaluate_chat, load_conversations
    from memcli.repl.conversation import Conversation
    from memcli.repl.engines import StaticEngines
    from memcli.repl.render import TurnView
    from memcli.store.core import TripleStore

    conversations = load_conversations(file)[:max_conversations]
    options = model_choice.options()
    with (
        tempfile.TemporaryDirectory(prefix="memcli-eval-") as folder,
        TripleStore(Path(folder) / "memory.db") as first,
    ):
        engine = _load_engine(first, _config(), **options)
        base = _load_chat_engine(first, _config(), **options)
        try:

            def make(store: TripleStore) -> Conversation:
                engine.store = store
                conversation = Conversation(StaticEngines(engine), store, session_id="eval")
                if base is not None:
                    conversation.chat_factory = lambda: base
                return conversation

            sink = Console(file=io.StringIO(), width=100, color_system=None)
            view = TurnView(sink, sink, hide_calls=True, wrap=False)
            report = _run(
                "conversations",
                len(conversations),
                lambda progress: evaluate_chat(make, conversations, view, progress=progress),
            )
            settings = {
                "file": str(file),
                "conversations": len(conversations),
                "model": model_choice.model,
                "adapter": model_choice.adapter,
                "no_adapter": model_choice.no_adapter,
                "threads": model_choice.threads,
            }
        finally:
            for each in (engine, base):
                close = getattr(each, "close", None) or getattr(
                    getattr(each, "backend", None), "close", None
                )
                if close is not None:
                    close()
    _print(f"eval chat: {len(conversations)} conversations", report, settings, as_json)
