"""How the REPL shows a turn: the styles of memory calls as they stream, the compact
markers of --hide-calls, NO_COLOR, and word wrapping in 80 columns."""

from __future__ import annotations

import io

from rich.console import Console
from rich.style import Style
from rich.text import Text

from memcli.repl.conversation import Conversation
from memcli.repl.engines import StaticEngines
from memcli.repl.render import READ_STYLE, RESULT_STYLE, WRITE_STYLE, StreamWriter, TurnView
from memcli.runtime.engine import MemoryEngine
from memcli.runtime.events import CallText, ReadDone
from memcli.runtime.events import Text as TextEvent
from memcli.store.core import TripleStore
from tests.fakes import ScriptedBackend

CYAN, GREEN, MAGENTA = 6, 2, 5  # the standard ANSI colour numbers
READ_ANSWER = "({MEM_READ(Rihanna>>record label>>)-->Def Jam}) Def Jam."
WRITE = "({MEM_WRITE-->Lake Geneva>>country>>France})"


def _console(**kw) -> Console:
    options = {
        "width": 80,
        "force_terminal": True,
        "no_color": False,
        "color_system": "standard",
        **kw,
    }
    return Console(file=io.StringIO(), **options)


def _turn(message: str, *transcripts: str, hide_calls: bool = False, console=None):
    console = console or _console()
    store = TripleStore()
    store.add("Rihanna", "record label", "Def Jam")
    engine = MemoryEngine(ScriptedBackend(*transcripts), store)
    view = TurnView(console, hide_calls=hide_calls)
    conversation = Conversation(StaticEngines(engine), store, session_id="t")
    record = conversation.run_turn(message, view)
    return console.file.getvalue(), record


def _style_of(output: str, needle: str, console: Console) -> Style:
    """The style in effect on the first character of `needle` in rendered output."""
    text = Text.from_ansi(output)
    at = text.plain.index(needle)
    return text.get_style_at_offset(console, at)


def test_read_call_results_and_write_each_have_their_style():
    console = _console()
    out, _ = _turn(
        "Which label is Rihanna on? Lake Geneva is in France.", READ_ANSWER, WRITE, console=console
    )
    read = _style_of(out, "MEM_READ(Rihanna>>record label>>)-->", console)
    result = _style_of(out, "Def Jam})", console)
    write = _style_of(out, "MEM_WRITE-->Lake Geneva>>country>>France})", console)
    answer = _style_of(out, " Def Jam.", console)
    assert (read.color.number, read.italic) == (CYAN, True)
    assert (result.color.number, result.bold) == (GREEN, True)
    assert (write.color.number, write.underline) == (MAGENTA, True)
    assert answer.color is None and not (answer.bold or answer.italic or answer.underline)
    # The whole call keeps its style, up to and including the closing delimiter.
    assert _style_of(out, ")-->Def", console) == read
    assert _style_of(out, "France})", console).color.number == MAGENTA


def test_styles_are_applied_while_the_call_streams():
    """Each piece of a call is written as it arrives, already styled."""
    console = _console()
    writes: list[str] = []
    original = console.file.write

    def spy(data: str) -> int:
        writes.append(data)
        return original(data)

    console.file.write = spy  # type: ignore[method-assign]
    view = TurnView(console)
    view.begin()
    view.show(CallText("read", "({MEM_READ("))
    assert writes and "\x1b[3;36m" in writes[-1] and "MEM_READ(" in writes[-1]
    view.show(CallText("read", "Rihanna"))
    assert "Rihanna" in writes[-1]
    view.show(CallText("result", "Def Jam})"))
    assert "\x1b[1;32m" in writes[-1]


def test_no_color_keeps_calls_apart_without_colour():
    console = _console(no_color=True)
    out, _ = _turn(
        "Which label is Rihanna on? Lake Geneva is in France.", READ_ANSWER, WRITE, console=console
    )
    assert "\x1b[3" + "6m" not in out and "36m" not in out and "32m" not in out
    read = _style_of(out, "MEM_READ(", console)
    result = _style_of(out, "Def Jam})", console)
    write = _style_of(out, "MEM_WRITE", console)
    assert read.italic and result.bold and write.underline
    assert len({read, result, write}) == 3


def test_hide_calls_shows_markers_instead_of_the_raw_calls():
    out, record = _turn(
        "Which label is Rihanna on? Lake Geneva is in France.",
        READ_ANSWER,
        WRITE,
        console=_console(no_color=True),
        hide_calls=True,
    )
    plain = Text.from_ansi(out).plain
    assert "MEM_READ" not in plain and "MEM_WRITE" not in plain
    assert "[read: Def Jam]  Def Jam." in plain
    assert "[write: Lake Geneva >> country >> France]" in plain
    assert record.stored[0].object == "France"


def test_a_read_that_found_nothing_is_marked():
    view = TurnView(_console(no_color=True))
    view.begin()
    view.show(CallText("read", "({MEM_READ(Nobody>>country>>)-->"))
    view.show(ReadDone((), (), (), kept=False, note="nothing in memory"))
    view.show(TextEvent("Hello."))
    view.end()
    assert "--> [nothing in memory] Hello." in Text.from_ansi(view.console.file.getvalue()).plain


def test_plain_output_has_no_escape_codes_and_no_wrapping():
    console = Console(file=io.StringIO(), width=80, color_system=None, force_terminal=False)
    view = TurnView(console, wrap=False)
    view.begin()
    view.show(CallText("read", "({MEM_READ(x>>country>>)-->"))
    view.show(TextEvent("word " * 40))
    view.end()
    out = console.file.getvalue()
    assert "\x1b" not in out
    assert out.count("\n") == 1


def _stream(pieces: list[str], width: int = 80) -> list[str]:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    writer = StreamWriter(console, width)
    for piece in pieces:
        writer.write(piece)
    writer.finish()
    return console.file.getvalue().split("\n")[:-1]


def test_streamed_text_wraps_at_word_boundaries_in_80_columns():
    words = [f"word{i}" for i in range(60)] + ["supercalifragilistic", "end."]
    text = " ".join(words)
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]  # tokens cut mid-word
    lines = _stream(pieces)
    assert all(len(line) <= 80 for line in lines)
    assert " ".join(lines).split() == words  # no word was split
    assert len(lines) > 4


def test_a_word_longer_than_a_line_is_broken_and_newlines_are_kept():
    lines = _stream(["x" * 100, " short\nnext line"], width=40)
    assert lines[0] == "x" * 40 and all(len(line) <= 40 for line in lines)
    assert lines[-1] == "next line"


def test_a_long_call_breaks_between_its_items():
    call = "({MEM_WRITE-->" + ";".join(f"Entity{i}>>country>>Place{i}" for i in range(6)) + "})"
    lines = _stream([call[i : i + 2] for i in range(0, len(call), 2)])
    assert "".join(lines) == call
    assert all(len(line) <= 80 for line in lines)
    assert all(line.endswith(";") for line in lines[:-1])


def test_stored_summary_and_styles_exported():
    assert READ_STYLE != RESULT_STYLE != WRITE_STYLE
