"""The `memcli` Typer app: one module per command group, each thin (parse, call, print).

Every `MemcliError` escaping a command, and every usage error (a missing argument, an
unknown option), becomes one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any

import typer
from typer import _click as click  # the Click that Typer vendors, whose errors it raises
from typer.core import TyperGroup, TyperOption

from memcli.errors import MemcliError

HELP_OPTIONS = ["-h", "--help"]
_ONE_NEWLINE = re.compile(r"(?<!\n)\n(?!\n)")


def unwrap(text: str | None) -> str | None:
    """Docstrings are wrapped at the source's width; Rich help keeps single newlines, so
    join each paragraph's lines (paragraphs stay apart) and let the terminal wrap."""
    if not text or "\b" in text:  # click's marker for a block kept as written
        return text
    return _ONE_NEWLINE.sub(" ", text.strip())


def _no_type(ctx: Any) -> None:
    return None  # a flag takes no value, so it has no type to show


def _tidy(command: Any) -> None:
    """Help that renders cleanly: whole paragraphs, and no `<bool>` type on flags."""
    command.help = unwrap(command.help)
    # Click makes --help on first use; made now (and cached), it is tidied with the rest.
    command.get_help_option(click.Context(command, help_option_names=HELP_OPTIONS))
    for param in [*command.params, command._help_option]:
        if param is None:
            continue
        param.help = unwrap(getattr(param, "help", None))
        if isinstance(param, TyperOption) and (param.is_flag or param.count):
            param.display_type_rich = _no_type  # type: ignore[method-assign]
    for sub in getattr(command, "commands", {}).values():
        _tidy(sub)


def usage_error(exc: Any) -> typer.Exit:
    """Click's usage error (a five-line box under Rich) as one line with a pointer to
    --help; returns the Exit to raise."""
    from memcli.cli.output import error

    command = exc.ctx.command_path if exc.ctx is not None else "memcli"
    error(f"{exc.format_message()} (see '{command} --help')")
    return typer.Exit(exc.exit_code)


class MemcliGroup(TyperGroup):
    """Turns any MemcliError or usage error from any command into one line on stderr and
    an exit code, for the console script and for CliRunner alike; tidies every command's
    help once, when Typer builds the tree."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        _tidy(self)

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except click.exceptions.UsageError as exc:
            raise usage_error(exc) from None

    def invoke(self, ctx):  # ctx: click's Context, as vendored by typer
        try:
            return super().invoke(ctx)
        except MemcliError as exc:
            from memcli.cli.output import error

            error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except click.exceptions.UsageError as exc:
            raise usage_error(exc) from None


app = typer.Typer(
    name="memcli",
    cls=MemcliGroup,
    help="A local language model with an explicit, editable memory of facts (MemLLM).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": HELP_OPTIONS},
)


def _print_version(value: bool) -> None:
    if value:
        from memcli import __version__

        typer.echo(f"memcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass


def _register() -> None:
    # Each command module imports only typer at load time; models, llama.cpp and the
    # store come in inside the commands, so `memcli mem` starts fast.
    from memcli.cli import ask, chat, mcp, mem, models
    from memcli.cli import eval as eval_cli

    app.command()(chat.chat)
    app.command()(ask.ask)
    app.command()(ask.ingest)
    app.add_typer(mem.app, name="mem")
    app.add_typer(eval_cli.app, name="eval")
    app.add_typer(models.app, name="models")
    app.command()(mcp.mcp)


_register()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("memcli: interrupted\n")
        sys.exit(130)
