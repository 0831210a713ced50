"""The `memcli` Typer app: one module per command group, each thin (parse, call, print).

Every `MemcliError` escaping a command becomes one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from memcli.errors import MemcliError


class MemcliGroup(TyperGroup):
    """Turns any MemcliError from any command into one line on stderr and an exit code,
    for the console script and for CliRunner alike."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
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


def _register() -> None:
    from memcli.cli import ask, mem

    app.add_typer(mem.app, name="mem")
    app.command()(ask.ask)
    app.command()(ask.ingest)
    try:
        from memcli.cli import chat
    except ImportError:
        pass
    else:
        app.command()(chat.chat)
    try:
        from memcli.cli import eval as eval_cli
    except ImportError:
        pass
    else:
        app.add_typer(eval_cli.app, name="eval")
    try:  # command groups added by later work register themselves here
        from memcli.cli import models
    except ImportError:
        pass
    else:
        app.add_typer(models.app, name="models")


_register()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("memcli: interrupted\n")
        sys.exit(130)
