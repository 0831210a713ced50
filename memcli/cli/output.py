"""Shared printing for the CLI: data to stdout, messages to stderr, `--json` as JSON lines."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

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


def json_text(obj: Any) -> str:
    """One JSON object; characters that could drive a terminal (they can only be inside
    strings) are written as \\u escapes, which JSON reads back as the same text."""
    text = json.dumps(obj, ensure_ascii=False)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def json_line(obj: Any) -> None:
    """`json_text` as one line on stdout."""
    sys.stdout.write(json_text(obj) + "\n")


def table_text(table: Any, console: Console | None = None) -> str:
    """A Rich table as `console` (default: `out`) renders it, without the trailing
    padding Rich leaves on each line."""
    for column in getattr(table, "columns", ()):
        cells = getattr(column, "_cells", None)
        if cells is not None:  # cells from memory: escaped, never markup
            column._cells = [cell(c) if isinstance(c, str) else c for c in cells]
    console = console or out
    with console.capture() as captured:
        console.print(table)
    return "\n".join(line.rstrip() for line in captured.get().splitlines())


def print_table(table: Any) -> None:
    """A Rich table on stdout (`table_text`)."""
    sys.stdout.write(table_text(table) + "\n")


def plain_console(width: int) -> Console:
    """A console like `out` that renders to text, `width` columns wide, without styles
    (the REPL's `/mem` shows that text in its view)."""
    return _SafeConsole(
        file=io.StringIO(),
        width=width,
        color_system=None,
        force_terminal=False,
        soft_wrap=True,
        highlight=False,
        markup=False,
    )


class ProgressBar:
    """The one progress display: a bar on stderr while stderr is a terminal, nothing
    otherwise (so pipes and tests see only data and messages). `update(done, total)`;
    a `unit` adds a rate ("3.2 sentences/s"). A context manager, or call `close()`."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        unit: str | None = None,
        *,
        quiet: bool = False,
    ):
        import time

        self.unit = unit
        self.started = time.perf_counter()
        self.bar: Any = None
        self.shown = not quiet and sys.stderr.isatty() and total != 0
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


class Output:
    """Where a command's results go, for the work shared by a CLI command and the REPL
    (`memcli.cli.mem`). This one is the CLI's: data on stdout, messages on stderr, a
    progress bar at a terminal, a question when stdin is one. The REPL's `/mem` gives
    one that shows them in its view, with no one to ask (`memcli.repl.mem`)."""

    @property
    def interactive(self) -> bool:
        """Whether a question can be put to a person."""
        from memcli.cli.common import interactive

        return interactive()

    def print(self, data: object) -> None:
        """A line of data."""
        out.print(data)

    def table(self, table: Any) -> None:
        print_table(table)

    def json(self, obj: Any) -> None:
        json_line(obj)

    def note(self, message: str) -> None:
        note(message)

    def error_line(self, line: str) -> None:
        """One of several errors listed before the one-line error that ends a command."""
        err.print(line, markup=False, highlight=False)

    def progress(self, label: str) -> ProgressBar:
        return ProgressBar(label)

    @contextmanager
    def stream(self) -> Iterator[IO[str]]:
        """Where data too large for `print` (an export) is written."""
        yield sys.stdout

    def confirm(self, question: str, refusal: str, *, yes: bool) -> None:
        """`common.confirm`, asking only when `interactive`."""
        from memcli.cli.common import confirm

        confirm(question, refusal, yes=yes, can_ask=self.interactive)


CLI = Output()
