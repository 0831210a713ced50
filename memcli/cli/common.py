"""Options shared by several command groups."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from memcli.runtime.engine import EngineConfig
    from memcli.runtime.engine_api import Engine
    from memcli.store.core import TripleStore

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        metavar="FILE",
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
        metavar="NAME|FILE",
        help="A GGUF file or a registry name (see `memcli models list`); "
        "default: the configured model, else the bundled SmolLM2-135M.",
        show_default=False,
    ),
]
AdapterOption = Annotated[
    str | None,
    typer.Option(
        "--adapter",
        metavar="FILE",
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
        metavar="N",
        min=1,
        help="CPU threads for the model (default: measured best, or MEMCLI_THREADS).",
        show_default=False,
    ),
]
# Sentences a write decodes together (`memcli.runtime.write_batch.DEFAULT_BATCH`, which
# tests/test_write_batch.py checks this against): the fastest measured on one thread.
WRITE_BATCH = 8
BatchOption = Annotated[
    int,
    typer.Option(
        "--batch",
        min=1,
        metavar="N",
        help=f"Sentences decoded together on a local model, one sequence each, giving the "
        f"same facts as one at a time; {WRITE_BATCH} measured fastest on one thread "
        f"(the sentences/s of --batch 1 on a quiet machine, up to 1.7x when other work "
        f"shares the core; the prompt, not the generation, takes most of the time). "
        f"1: one at a time.",
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


@dataclass(frozen=True)
class ModelChoice:
    """The model a command runs, as --model/--adapter/--no-adapter/--threads/--engine
    give it (`model_options` adds those options to a command)."""

    model: str | None = None
    adapter: str | None = None
    no_adapter: bool = False
    threads: int | None = None
    engine: str | None = None

    def options(self) -> dict[str, Any]:
        """As keywords: those of `runtime.loader.open_engine` (the REPL's ChatOptions
        and the MCP server's ModelOptions take the same)."""
        return asdict(self)

    def open(
        self,
        store: TripleStore | None,
        *,
        config: EngineConfig | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> Engine:
        from memcli.runtime.loader import open_engine

        return open_engine(store, config=config, notify=notify, **self.options())


# (parameter, option, default, ModelChoice field), in the order --help lists them
_MODEL_PARAMETERS = (
    ("model", ModelOption, None, "model"),
    ("adapter", AdapterOption, None, "adapter"),
    ("no_adapter", NoAdapterOption, False, "no_adapter"),
    ("threads", ThreadsOption, None, "threads"),
    ("engine_url", EngineOption, None, "engine"),
)

Command = TypeVar("Command", bound=Callable[..., Any])


def model_options(*, engine: bool = True) -> Callable[[Command], Command]:
    """Give a command the model options in place of its `model_choice: ModelChoice`
    parameter: --model, --adapter, --no-adapter, --threads and (unless `engine=False`)
    --engine, declared once here. The command receives them as one ModelChoice.

    Typer reads a command's parameters from `inspect.signature`, which the command
    returned here carries with those options where `model_choice` stood."""
    wanted = _MODEL_PARAMETERS if engine else _MODEL_PARAMETERS[:-1]

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        params = list(signature.parameters.values())
        at = [p.name for p in params].index("model_choice")
        params[at : at + 1] = [
            inspect.Parameter(
                name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=option
            )
            for name, option, default, _field in wanted
        ]

        @functools.wraps(command)
        def run(*args: Any, **values: Any) -> Any:
            chosen = ModelChoice(
                **{field: values.pop(name, default) for name, _option, default, field in wanted}
            )
            return command(*args, model_choice=chosen, **values)

        run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run  # type: ignore[return-value]

    return decorate


# -- destructive commands: one meaning for --yes -----------------------------------------

YesOption = Annotated[
    bool,
    typer.Option("--yes", "-y", help="Do not ask first (needed when stdin is not a terminal)."),
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
