"""Shared printing for the CLI: data to stdout, messages to stderr, `--json` as JSON lines."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from memcli.store.safety import printable


class _SafeConsole(Console):
    """A console for data from memory: text is never read as Rich markup (a name such as
    `[/]` is just a name), and strings are printed with control characters escaped."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        safe = (printable(o, keep_newlines=True) if isinstance(o, str) else o for o in objects)
        super().print(*safe, **kwargs)


# Rich honours NO_COLOR itself; soft_wrap keeps long data lines intact when piped.
out = _SafeConsole(soft_wrap=True, highlight=False, markup=False)
err = _SafeConsole(stderr=True, soft_wrap=True, highlight=False, markup=False)


def error(message: str) -> None:
    """One line on stderr, prefixed so it is clear who is talking."""
    text = " ".join(message.split()) if "\n" in message else message
    sys.stderr.write(f"memcli: error: {printable(text)}\n")


def counted(n: int, word: str, plural: str | None = None) -> str:
    """'1 fact', '2 facts': a count and its noun, in the right number."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


def note(message: str) -> None:
    """A message for the person, never data: stderr. Names and paths in it cannot drive
    the terminal: control characters and escape sequences are shown escaped."""
    sys.stderr.write(f"{printable(message, keep_newlines=True)}\n")


def safe(text: object) -> str:
    """Text from memory or from a user path, safe to write to a terminal as it is."""
    return printable(str(text))


def cell(text: object) -> Text:
    """A table cell: escaped (see `safe`) and never read as Rich markup."""
    return Text(printable(str(text)))


_UNSAFE_IN_JSON = re.compile(
    "[\x7f-\x9f\u2028\u2029\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


def json_line(obj: Any) -> None:
    """One JSON object; characters that could drive a terminal (they can only be inside
    strings) are written as \\u escapes, which JSON reads back as the same text."""
    text = json.dumps(obj, ensure_ascii=False)
    sys.stdout.write(_UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def print_table(table: Any) -> None:
    """A Rich table on stdout without the trailing padding Rich leaves on each line."""
    for column in getattr(table, "columns", ()):
        cells = getattr(column, "_cells", None)
        if cells is not None:  # cells from memory: escaped, never markup
            column._cells = [cell(c) if isinstance(c, str) else c for c in cells]
    with out.capture() as captured:
        out.print(table)
    text = "\n".join(line.rstrip() for line in captured.get().splitlines())
    sys.stdout.write(text + "\n")


class ProgressBar:
    """The one progress display: a bar on stderr while stderr is a terminal, nothing
    otherwise (so pipes and tests see only data and messages). `update(done, total)`;
    a `unit` adds a rate ("3.2 sentences/s"). A context manager, or call `close()`."""

    def __init__(self, label: str, total: int | None = None, unit: str | None = None):
        import time

        self.unit = unit
        self.started = time.perf_counter()
        self.bar: Any = None
        self.shown = sys.stderr.isatty() and total != 0
        if not self.shown:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        columns: list[Any] = [TextColumn(label), BarColumn()]
        if total is not None:
            columns.append(MofNCompleteColumn())
        if unit:
            columns.append(TextColumn("{task.fields[rate]}"))
        columns.append(TimeRemainingColumn())
        self.bar = Progress(*columns, console=err, transient=True)
        self.task = self.bar.add_task(label, total=total, rate="")
        self.bar.start()

    def update(self, done: int, total: int | None = None) -> None:
        if self.bar is None:
            return
        import time

        fields: dict[str, Any] = {}
        if self.unit:
            rate = done / max(time.perf_counter() - self.started, 1e-9)
            fields["rate"] = f"{rate:.1f} {self.unit}/s"
        if total is not None:
            fields["total"] = total
        self.bar.update(self.task, completed=done, **fields)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
