"""The `memcli` Typer app: one module per command group, each thin (parse, call, print).

Every `MemcliError` escaping a command becomes one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from memcli.errors import MemcliError


class MemcliGroup(TyperGroup):
    """Turns any MemcliError from any command into one line on stderr and an exit code,
    for the console script and for CliRunner alike."""

    def invoke(self, ctx):  # ctx: click's Context, as vendored by typer
        try:
            return super().invoke(ctx)
        except MemcliError as exc:
            from memcli.cli.output import error

            error(str(exc))
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    name="memcli",
    cls=MemcliGroup,
    help="A local language model with an explicit, editable memory of facts (MemLLM).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
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
