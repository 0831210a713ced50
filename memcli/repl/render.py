"""Rendering a turn's events with Rich, as they stream.

Memory calls get their own styles, applied live while the call is being generated: the
read query, the results the system appends, and writes each look different. Each style
also differs without colour (italic, bold, underline), so the calls stay apart under
NO_COLOR, which Rich honours. With `hide_calls` a call is shown as a short marker once it
is complete.

Long answers are wrapped at word boundaries as they stream: a word that starts close to
the right margin is held back until it ends (or no longer fits), so nothing is split by
the terminal's own wrapping in an 80-column window.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Console
from rich.style import Style
from rich.text import Text

from memcli.runtime.events import (
    CallFailed,
    CallStart,
    CallText,
    Done,
    Event,
    ReadDone,
    Timing,
    WriteDone,
)
from memcli.runtime.events import (
    Text as TextEvent,
)
from memcli.store.safety import printable
from memcli.syntax import fact_text, update_text

if TYPE_CHECKING:
    from memcli.repl.conversation import Proposal, TurnRecord
    from memcli.store.core import Fact

READ_STYLE = Style(color="cyan", italic=True)
RESULT_STYLE = Style(color="green", bold=True)
WRITE_STYLE = Style(color="magenta", underline=True)
MARKER_STYLE = Style(color="blue", dim=True)
NOTE_STYLE = Style(dim=True)
ERROR_STYLE = Style(color="red", bold=True)
CALL_STYLES = {"read": READ_STYLE, "result": RESULT_STYLE, "write": WRITE_STYLE}

HOLD_COLUMNS = 16  # a word starting this close to the margin waits until it is complete
BREAK_AFTER = ";"  # besides spaces: between the items of a memory call


class StreamWriter:
    """Styled text pieces to a console as they arrive, wrapped at word boundaries
    (`width=None`: no wrapping, for pipes)."""

    def __init__(self, console: Console, width: int | None):
        self.console = console
        self.width = width
        self.column = 0
        self.held: list[tuple[str, Style | None]] = []
        self.held_cells = 0
        self.in_word = False

    def write(self, text: str, style: Style | None = None) -> None:
        if not text:
            return
        if self.width is None:
            self._emit([(text, style)])
            self.column = 0 if text.endswith("\n") else self.column + cell_len(text)
            return
        out: list[tuple[str, Style | None]] = []
        for char in text:
            self._place(char, style, out)
            if char in BREAK_AFTER:  # a call's items may go on the next line
                self._release(out)
                self.in_word = False
        self._emit(out)

    def _place(self, char: str, style: Style | None, out: list) -> None:
        assert self.width is not None
        width = self.width
        if char == "\n":
            self._release(out)
            out.append(("\n", None))
            self.column, self.in_word = 0, False
            return
        if char.isspace():
            self._release(out)
            self.in_word = False
            if self.column >= width:
                out.append(("\n", None))
                self.column = 0
            elif self.column > 0:
                out.append((char, style))
                self.column += 1
            return
        cells = cell_len(char)
        if self.held:
            self.held.append((char, style))
            self.held_cells += cells
            if self.column + self.held_cells > width and self.column > 0:
                out.append(("\n", None))
                self.column = 0
                self._release(out)
            return
        if not self.in_word and self.column >= width - HOLD_COLUMNS and self.column > 0:
            self.held, self.held_cells, self.in_word = [(char, style)], cells, True
            return
        if self.column + cells > width:  # a word longer than the margin allows: break it
            out.append(("\n", None))
            self.column = 0
        out.append((char, style))
        self.column += cells
        self.in_word = True

    def _release(self, out: list) -> None:
        """Put out the held word: on this line if it fits, else on the next."""
        if not self.held:
            return
        assert self.width is not None
        if self.column + self.held_cells > self.width and self.column > 0:
            out.append(("\n", None))
            self.column = 0
        out.extend(self.held)
        self.column += self.held_cells
        self.held, self.held_cells = [], 0

    def _emit(self, pieces: list[tuple[str, Style | None]]) -> None:
        if not pieces:
            return
        merged: list[tuple[str, Style | None]] = []
        for piece, style in pieces:
            if merged and merged[-1][1] == style:
                merged[-1] = (merged[-1][0] + piece, style)
            else:
                merged.append((piece, style))
        text = Text()
        for piece, style in merged:
            text.append(piece, style)
        self.console.print(text, end="", soft_wrap=True, highlight=False)
        self.console.file.flush()

    def finish(self) -> None:
        """End the current line (releasing any held word)."""
        out: list[tuple[str, Style | None]] = []
        self._release(out)
        if self.column > 0:
            out.append(("\n", None))
        self._emit(out)
        self.column, self.in_word = 0, False


class TurnView:
    """Everything the REPL shows: streamed turns on `console`, notes and errors on
    `err_console` (the same console in a terminal; stderr when output is piped)."""

    def __init__(
        self,
        console: Console,
        err_console: Console | None = None,
        *,
        hide_calls: bool = False,
        wrap: bool = True,
    ):
        self.console = console
        self.err_console = err_console or console
        self.hide_calls = hide_calls
        self.wrap = wrap
        self.stream = StreamWriter(console, console.width if wrap else None)

    # -- streaming ----------------------------------------------------------------------

    def begin(self) -> None:
        self.stream = StreamWriter(self.console, self.console.width if self.wrap else None)

    def end(self) -> None:
        self.stream.finish()

    def show(self, event: Event) -> None:
        """Render one runtime event."""
        if isinstance(event, TextEvent):
            self.stream.write(event.text)
        elif isinstance(event, CallText):
            if not self.hide_calls:
                self.stream.write(event.text, CALL_STYLES.get(event.kind))
        elif isinstance(event, ReadDone):
            self._read_done(event)
        elif isinstance(event, WriteDone):
            if self.hide_calls and event.triples:
                lines = "; ".join(fact_text(t.subject, t.relation, t.object) for t in event.triples)
                self._marker(f"[write: {lines}]")
        elif isinstance(event, CallFailed):
            self._marker(f"[memory call failed: {event.message}]")
        elif isinstance(event, CallStart | Timing | Done):
            pass

    def _read_done(self, event: ReadDone) -> None:
        if self.hide_calls:
            shown = "; ".join(event.results) if event.kept else "nothing"
            self._marker(f"[read: {shown}]")
            self.stream.write(" ")
        elif not event.kept:
            self._marker(f" [{event.note or 'nothing in memory'}]")
            self.stream.write(" ")

    def _marker(self, text: str) -> None:
        self.stream.write(text, MARKER_STYLE)

    # -- messages -----------------------------------------------------------------------

    def note(self, message: str) -> None:
        self.stream.finish()
        self.err_console.print(
            Text(printable(message, keep_newlines=True), NOTE_STYLE),
            soft_wrap=True,
            highlight=False,
        )

    def error(self, message: str) -> None:
        self.stream.finish()
        self.err_console.print(
            Text(f"error: {printable(message)}", ERROR_STYLE),
            soft_wrap=False,
            highlight=False,
            overflow="fold",
        )

    def text(self, message: str) -> None:
        """Plain output (command results) on the main console, as is."""
        self.stream.finish()
        if message:
            text = printable(message.rstrip("\n"), keep_newlines=True)
            self.console.print(Text(text), soft_wrap=True, highlight=False)

    def print(self, renderable: Any) -> None:
        self.stream.finish()
        self.console.print(renderable, highlight=False)

    def proposal(self, proposal: Proposal, index: int, total: int) -> None:
        self.stream.finish()
        line = Text(f"  {index}/{total}  ")
        line.append(proposal.shown(), WRITE_STYLE)
        self.err_console.print(line, soft_wrap=True, highlight=False)

    def stored(self, record: TurnRecord) -> None:
        """The one line after a turn's writes: what was stored, how to undo it."""
        if not record.accepted:
            if record.proposals:
                self.note("nothing stored")
            return
        if not record.stored:
            self.note(
                "nothing new to store: memory already holds "
                + ("it" if len(record.accepted) == 1 else "them")
            )
            return
        new_ids = {t.id: t for t in record.stored}
        for old in record.superseded:
            new = new_ids.get(old.superseded_by or 0)
            if new is not None:
                change = update_text(old.subject, old.relation, old.object, new.object)
                self.note(f"updated {change}")
        ids = ", ".join(f"#{t.id}" for t in record.stored)
        count = len(record.stored)
        self.note(f"stored {count} fact{'s' if count != 1 else ''} ({ids}); /undo reverts")

    def cancelled(self) -> None:
        self.stream.finish()
        self.err_console.print()  # past the ^C the terminal echoed
        self.err_console.print(
            Text("stopped; nothing from this turn was kept", NOTE_STYLE), highlight=False
        )

    def facts(self, triples: Iterable[Fact], *, with_source: bool = True) -> None:
        """One fact a line (`#id subject >> relation >> object`), its source and when it
        was added on a dim line below: reads well in 80 columns, and in a pipe."""
        self.stream.finish()
        for t in triples:
            line = Text(f"#{t.id} ", NOTE_STYLE)
            line.append(printable(fact_text(t.subject, t.relation, t.object)))
            self.console.print(line, highlight=False, overflow="fold")
            if with_source:
                added = t.created_at[:16].replace("T", " ")
                self.console.print(
                    Text(printable(f"   {t.source} · added {added}"), NOTE_STYLE),
                    highlight=False,
                    overflow="fold",
                )
