"""The README's command reference, generated from the Typer app so it cannot drift.

`make docs` rewrites the README's block (cog runs `markdown()`), `make lint` fails when
the block differs from what the app says, and tests/test_docs.py fails when a command
or option is missing from it. Every command is one section: usage, the help text, and
each argument and option with its help, default and environment variable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer

from memcli.cli.app import HELP_OPTIONS, app


def commands(root: Any = None) -> Iterator[tuple[str, Any]]:
    """Every command and group under the app, as ("memcli mem add", click command),
    parents before their children, in the order `--help` lists them."""
    root = root or typer.main.get_command(app)

    def walk(path: str, command: Any) -> Iterator[tuple[str, Any]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            if not sub.hidden:
                yield from walk(f"{path} {name}", sub)

    yield from walk("memcli", root)


def _context(path: str, command: Any) -> Any:
    from typer import _click as click

    parent = None
    for name in path.split()[:-1]:
        parent = click.Context(typer.main.get_command(app), info_name=name, parent=parent)
    return click.Context(
        command, info_name=path.split()[-1], parent=parent, help_option_names=HELP_OPTIONS
    )


def section(path: str, command: Any) -> str:
    ctx = _context(path, command)
    usage = " ".join(["Usage:", path, *command.collect_usage_pieces(ctx)])
    lines = [f"### `{path}`", "", "```", usage, "```", ""]
    if command.help:
        lines += [command.help.strip(), ""]
    records = [
        (param.param_type_name, param.get_help_record(ctx))
        for param in command.get_params(ctx)
        if param is not command.get_help_option(ctx)
    ]
    for kind, record in records:
        if record is None:
            continue
        names, text = record
        text = " ".join(text.split())
        kind_note = "" if kind == "option" else " (argument)"
        lines.append(f"- `{names}`" + (f": {text}" if text else "") + kind_note)
    subcommands = getattr(command, "commands", {})
    if subcommands:
        listed = ", ".join(f"`{name}`" for name, sub in subcommands.items() if not sub.hidden)
        lines.append(f"- commands: {listed}")
    return "\n".join(lines).rstrip() + "\n"


def markdown() -> str:
    """The whole reference: one section per command, for the README."""
    return "\n".join(section(path, command) for path, command in commands())
