"""Shared printing for the CLI: data to stdout, messages to stderr, `--json` as JSON lines."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

# Rich honours NO_COLOR itself; soft_wrap keeps long data lines intact when piped.
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def error(message: str) -> None:
    """One line on stderr, prefixed so it is clear who is talking."""
    text = " ".join(message.split()) if "\n" in message else message
    sys.stderr.write(f"memcli: error: {text}\n")


def note(message: str) -> None:
    """A message for the person, never data: stderr."""
    sys.stderr.write(f"{message}\n")


def json_line(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def print_table(table: Any) -> None:
    """A Rich table on stdout without the trailing padding Rich leaves on each line."""
    with out.capture() as captured:
        out.print(table)
    text = "\n".join(line.rstrip() for line in captured.get().splitlines())
    sys.stdout.write(text + "\n")
