"""Options shared by several command groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        envvar="MEMCLI_DB",
        help="Memory file to use (default: memory.db in MEMCLI_HOME).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON lines instead of text.")]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="A GGUF file or a registry name (see `memcli models list`); "
        "default: the configured model, else the bundled SmolLM2-135M.",
        show_default=False,
    ),
]
AdapterOption = Annotated[
    str | None,
    typer.Option(
        "--adapter",
        help="A GGUF LoRA adapter to apply (default: the shipped one).",
        show_default=False,
    ),
]
NoAdapterOption = Annotated[
    bool, typer.Option("--no-adapter", help="Run the base model without the memory adapter.")
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        "-t",
        min=1,
        help="CPU threads for the model (default: measured best, or MEMCLI_THREADS).",
        show_default=False,
    ),
]
EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        metavar="URL",
        envvar="MEMCLI_ENGINE",
        help="An OpenAI-compatible inference server (llama-server, vLLM, SGLang, "
        "llama-cpp-python) to run the model on, e.g. http://127.0.0.1:8080; `local` for "
        "in-process. Default: MEMCLI_ENGINE, else the one saved by `memcli models use "
        "--engine`, else in-process. With it, --model is the server's model name.",
        show_default=False,
    ),
]


# -- destructive commands: one meaning for --yes -----------------------------------------

YesOption = Annotated[
    bool,
    typer.Option(
        "--yes", "-y", help="Do not ask first (needed when stdin is not a terminal)."
    ),
]


def interactive() -> bool:
    """Whether a question can be put to a person (stdin is a terminal)."""
    import sys

    return sys.stdin.isatty()


def confirm(question: str, refusal: str, *, yes: bool, can_ask: bool | None = None) -> None:
    """The rule every destructive command follows: with --yes it goes ahead; at a
    terminal it asks (default no); off a terminal (or with `can_ask=False`: the
    REPL's `/mem`, whose input is the chat's) it refuses in one line that names --yes.
    Refused or declined, it changes nothing and exits with 2."""
    from memcli.errors import UsageError

    if yes:
        return
    if not (interactive() if can_ask is None else can_ask):
        raise UsageError(f"{refusal}; pass --yes to do so")
    try:
        confirmed = typer.confirm(question, default=False, err=True)
    except typer.Abort:  # end of input instead of an answer
        confirmed = False
    if not confirmed:
        raise UsageError("not confirmed; nothing changed")
