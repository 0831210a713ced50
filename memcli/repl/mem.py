"""`/mem`: the `memcli mem` commands on the chat's memory, shown in its view.

The arguments are parsed by the same Click commands as `memcli mem` (the options are
declared once, in `memcli.cli.mem`), and the work is the same functions
(`memcli.cli.mem.WORK`), given the chat's store and an `Output` that writes to the view.
Standard input and output are left alone: nothing reads the chat's own input, so a
command that would ask (rm by match) refuses unless --yes, as it does off a terminal,
and `-` for standard input is refused.
"""

from __future__ import annotations

import shlex
from contextlib import contextmanager
from functools import cache
from io import StringIO
from typing import IO, TYPE_CHECKING, Any, Protocol

import typer
from typer import _click as click

from memcli.cli import mem
from memcli.cli.app import HELP_OPTIONS
from memcli.cli.output import Output, ProgressBar, json_text, plain_console, table_text
from memcli.errors import UsageError
from memcli.store.core import TripleStore

if TYPE_CHECKING:
    from collections.abc import Iterator

    from memcli.repl.render import TurnView


class MemSession(Protocol):
    """What `/mem` uses of a chat."""

    @property
    def view(self) -> TurnView: ...
    @property
    def store(self) -> TripleStore: ...
    def refresh(self) -> None: ...


@cache
def group() -> Any:
    """The Click group of `memcli mem`, built once (the completer reads it too)."""
    return typer.main.get_group(mem.app)


class ViewOutput(Output):
    """`Output` into the chat's view: data as the CLI prints it, at the view's width;
    messages as notes; no one to ask, no progress bar."""

    def __init__(self, view: TurnView):
        self.view = view
        self.console = plain_console(view.console.width)

    @property
    def interactive(self) -> bool:
        return False

    def print(self, data: object) -> None:
        with self.console.capture() as captured:
            self.console.print(data)
        self.view.text(captured.get())

    def table(self, table: Any) -> None:
        self.view.text(table_text(table, self.console))

    def json(self, obj: Any) -> None:
        self.view.text(json_text(obj))

    def note(self, message: str) -> None:
        self.view.note(message)

    def error_line(self, line: str) -> None:
        self.view.note(line)

    def progress(self, label: str) -> ProgressBar:
        return ProgressBar(label, quiet=True)

    @contextmanager
    def stream(self) -> Iterator[IO[str]]:
        text = StringIO()
        yield text
        self.view.text(text.getvalue())


def _help(command: Any, ctx: Any) -> str:
    formatter = ctx.make_formatter()
    click.Command.format_help(command, ctx, formatter)
    return str(formatter.getvalue())


def _values(command: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Click's values as the Typer command would pass them (a repeatable option or an
    argument taking many: a list, or None when none were given and None is the
    default)."""
    values = dict(params)
    for param in command.params:
        value = values.get(param.name)
        if value is not None and (param.multiple or param.nargs == -1):
            values[param.name] = None if param.default is None and not value else list(value)
    return values


def run(session: MemSession, args: str) -> None:
    try:
        argv = shlex.split(args)
    except ValueError as exc:
        raise UsageError(f"/mem {args}: {exc}") from None
    root = group()
    ctx = click.Context(root, info_name="/mem", help_option_names=HELP_OPTIONS)
    if not argv or argv[0] in HELP_OPTIONS:
        session.view.text(_help(root, ctx))
        return
    try:
        name, command, rest = root.resolve_command(ctx, argv)
        if set(HELP_OPTIONS) & set(rest):
            session.view.text(_help(command, click.Context(command, info_name=name, parent=ctx)))
            return
        parsed = command.make_context(name, rest, parent=ctx)
    except click.exceptions.UsageError as exc:
        raise UsageError(f"/mem {argv[0]}: {exc.format_message()}") from None
    values = _values(command, parsed.params)
    db = values.pop("db", None)
    if parsed.get_parameter_source("db") != click.core.ParameterSource.COMMANDLINE:
        db = None  # MEMCLI_DB, say: the chat's memory is the one meant
    if name == "restore" and not (values["merge"] or values["yes"]):
        raise UsageError(
            "/mem restore replaces all of memory: add --yes (or --merge); /mem undo takes it back"
        )
    if "-" in (values.get("file"), values.get("snapshot")):
        raise UsageError(f"/mem {name}: - is the chat's own input; give a file")
    out = ViewOutput(session.view)
    try:
        if db is None:
            mem.WORK[name](session.store, out, **values)
        else:
            with mem.open_store(db) as store:
                mem.WORK[name](store, out, **values)
    except typer.Exit:  # the CLI's exit status (an import --dry-run with errors): shown
        pass
    finally:
        session.refresh()
