"""The chat REPL on a prompt-toolkit pipe input with the scripted fake model: turns,
slash commands, approval, undo, Ctrl-C roll-back, completion and the toolbar."""

from __future__ import annotations

import io
import json

import pytest
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from memcli.repl.commands import REGISTRY
from memcli.repl.completer import ChatCompleter, current_token
from memcli.repl.conversation import Conversation
from memcli.repl.engines import StaticEngines
from memcli.repl.render import TurnView
from memcli.repl.session import ChatSession
from memcli.repl.toolbar import fit, toolbar_parts
from memcli.runtime.engine import MemoryEngine
from memcli.runtime.events import Text, WriteDone
from memcli.store.core import TripleStore
from tests.fakes import ScriptedBackend

READ_ANSWER = "({MEM_READ(Rihanna>>record label>>)-->Def Jam}) Def Jam."
GENEVA_WRITE = "({MEM_WRITE-->Lake Geneva>>country>>France})"
CTRL_D = "\x04"


class Chat:
    """A session on the fake model with its output in a string."""

    def __init__(
        self,
        *transcripts: str,
        approve: bool = False,
        hide_calls: bool = False,
        facts: tuple = (("Rihanna", "record label", "Def Jam"),),
    ):
        self.store = TripleStore()
        for fact in facts:
            self.store.add(*fact)
        self.engine = MemoryEngine(ScriptedBackend(*transcripts), self.store)
        self.buffer = io.StringIO()
        console = Console(file=self.buffer, width=80, force_terminal=True, no_color=True)
        self.view = TurnView(console, hide_calls=hide_calls)
        self.conversation = Conversation(
            StaticEngines(self.engine), self.store, approve=approve, session_id="test"
        )
        self.session = ChatSession(self.conversation, self.view)

    def type(self, keys: str) -> str:
        """Type `keys` at the prompt (Ctrl-D at the end leaves); the output so far."""
        with create_pipe_input() as pipe:
            pipe.send_text(keys + CTRL_D)
            self.session.run(input=pipe, output=DummyOutput(), history=InMemoryHistory())
        return self.output

    @property
    def output(self) -> str:
        """What was shown, without the terminal's style codes."""
        from rich.text import Text as RichText

        return RichText.from_ansi(self.buffer.getvalue()).plain

    def facts(self) -> set[tuple[str, str, str]]:
        return {(t.subject, t.relation, t.object) for t in self.store.find()}


# -- turns ----------------------------------------------------------------------------


def test_a_statement_turn_writes_the_fact_as_one_batch_and_acknowledges_it():
    chat = Chat(GENEVA_WRITE)  # a statement gets no generated answer: the write only
    out = chat.type("Lake Geneva is in France.\n")
    assert "Noted: Lake Geneva - country: France." in out
    assert GENEVA_WRITE in out
    assert "stored 1 fact (#2); /undo reverts" in out
    [stored] = chat.store.find(subject="Lake Geneva")
    assert stored.source == "chat test turn 1"
    batch = chat.store.log(limit=1)[0]
    assert batch.kind == "chat" and batch.description.startswith("chat test turn 1:")
    assert chat.conversation.history == [
        {"role": "user", "content": "Lake Geneva is in France."},
        {"role": "assistant", "content": "Noted: Lake Geneva - country: France."},
    ]


def test_read_first_answer_streams_the_call_and_the_results():
    chat = Chat(READ_ANSWER)
    out = chat.type("Which label is Rihanna on?\n")
    assert READ_ANSWER in out
    # A question states nothing: no write call for it.
    assert "MEM_WRITE" not in out
    assert chat.conversation.last.facts_read[0].object == "Def Jam"


def test_each_stated_sentence_gets_its_own_write_with_the_conversation_as_context():
    chat = Chat("Fine.", GENEVA_WRITE, "({MEM_WRITE-->})")
    seen: list[tuple[str, str, str]] = []
    original = chat.engine.write

    def spy(sentence, context="", **kw):
        seen.append((sentence, context, kw["source"]))
        assert kw["dry_run"] is True
        yield from original(sentence, context, **kw)

    chat.engine.write = spy  # type: ignore[method-assign]
    chat.type("Lake Geneva is in France. It is big. Is it deep?\n")
    assert seen == [
        ("Lake Geneva is in France.", "", "chat test turn 1"),
        ("It is big.", "Lake Geneva is in France.", "chat test turn 1"),
    ]
    assert chat.store.count() == 2  # one batch for the whole turn
    assert len([b for b in chat.store.log() if b.kind == "chat"]) == 1


def test_context_of_a_later_turn_holds_the_earlier_messages_and_answers():
    chat = Chat(GENEVA_WRITE, "({MEM_WRITE-->})")
    contexts: list[str] = []
    original = chat.engine.write

    def spy(sentence, context="", **kw):
        contexts.append(context)
        yield from original(sentence, context, **kw)

    chat.engine.write = spy  # type: ignore[method-assign]
    chat.type("Lake Geneva is in France.\nIt is large.\n")
    assert contexts == ["", "Lake Geneva is in France. Noted: Lake Geneva - country: France."]


# -- Ctrl-C ---------------------------------------------------------------------------


def _interrupt_after(events, predicate):
    for event in events:
        yield event
        if predicate(event):
            raise KeyboardInterrupt


def test_ctrl_c_during_the_answer_stops_the_turn_and_keeps_the_repl():
    chat = Chat("Noted at length.", GENEVA_WRITE)
    original = chat.engine.answer
    calls = {"n": 0}

    def answer(history, memory=True):
        calls["n"] += 1
        events = original(history, memory=memory)
        if calls["n"] == 1:
            return _interrupt_after(events, lambda e: isinstance(e, Text))
        return events

    chat.engine.answer = answer  # type: ignore[method-assign]
    before = chat.facts()
    out = chat.type("Hello there. Lake Geneva is in France.\n/writes\n")
    assert "stopped; nothing from this turn was kept" in out
    assert chat.facts() == before
    assert chat.conversation.history == []
    assert "no turn yet" in out


def test_ctrl_c_mid_turn_rolls_back_writes_of_that_turn():
    chat = Chat(GENEVA_WRITE, "({MEM_WRITE-->Lake Geneva>>country>>Switzerland})", GENEVA_WRITE)
    original = chat.engine.write
    calls = {"n": 0}

    def write(sentence, context="", **kw):
        calls["n"] += 1
        events = original(sentence, context, **kw)
        if calls["n"] == 2:  # the second sentence of the first turn
            return _interrupt_after(events, lambda e: isinstance(e, WriteDone))
        return events

    chat.engine.write = write  # type: ignore[method-assign]
    before = chat.facts()
    out = chat.type("Lake Geneva is in France. It borders Switzerland.\n")
    assert "stopped" in out
    assert chat.facts() == before
    assert chat.store.find(source="chat test") == []


def test_ctrl_c_just_after_the_batch_was_committed_still_rolls_it_back(monkeypatch):
    chat = Chat(GENEVA_WRITE, GENEVA_WRITE)
    original = chat.store.add_many
    calls = {"n": 0}

    def add_many(*args, **kwargs):
        result = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # after COMMIT, before the REPL knew the batch id
        return result

    monkeypatch.setattr(chat.store, "add_many", add_many)
    before = chat.facts()
    chat.type("Lake Geneva is in France.\n")
    assert chat.facts() == before
    undone = [b for b in chat.store.log() if b.kind == "chat"]
    assert undone and all(b.undone_by for b in undone)
    # The REPL goes on: the same message again is stored normally.
    chat.type("Lake Geneva is in France.\n")
    assert ("Lake Geneva", "country", "France") in chat.facts()


def test_no_error_ends_the_repl(monkeypatch):
    chat = Chat("Fine.")

    def broken(history, memory=True):
        raise RuntimeError("boom")
        yield

    monkeypatch.setattr(chat.engine, "answer", broken)
    out = chat.type("Hello there.\n/help\n")
    assert "error: unexpected RuntimeError: boom" in out
    assert "/why" in out  # /help ran after the failure
    assert chat.session.errors == 1


# -- slash commands -------------------------------------------------------------------


def test_why_lists_the_facts_read_with_id_source_and_date():
    chat = Chat(READ_ANSWER)
    out = chat.type("Which label is Rihanna on?\n/why\n")
    why = out.split("/why")[-1] if "/why" in out else out
    assert "Rihanna >> record label >> Def Jam" in why
    assert "manual" in why
    fact = chat.store.find(subject="Rihanna")[0]
    assert fact.created_at[:10] in why


def test_writes_and_undo_revert_the_last_turn_only():
    chat = Chat(GENEVA_WRITE, "({MEM_WRITE-->Lake Geneva>>country>>Switzerland})")
    chat.type("Lake Geneva is in France.\nLake Geneva is in Switzerland.\n/writes\n/undo\n")
    out = chat.output
    assert "Lake Geneva >> country >> Switzerland" in out.split("/writes")[-1] or (
        "Switzerland" in out
    )
    assert "undid turn 2: removed 1 fact" in out
    assert ("Lake Geneva", "country", "France") in chat.facts()
    assert ("Lake Geneva", "country", "Switzerland") not in chat.facts()
    chat.type("/undo\n/undo\n")
    assert "undid turn 1" in chat.output
    assert "error: no turn of this chat stored anything" in chat.output
    assert chat.facts() == {("Rihanna", "record label", "Def Jam")}


def test_unknown_commands_get_the_closest_match():
    chat = Chat("Fine.")
    out = chat.type("/wirtes\n/ls\n/zzzzzz\n")
    assert "unknown command /wirtes; did you mean /writes?" in out
    assert "unknown command /ls; did you mean /mem ls?" in out
    assert "unknown command /zzzzzz; /help lists the commands" in out


def test_mem_runs_the_memcli_mem_commands_on_the_same_memory():
    chat = Chat("Fine.")
    out = chat.type(
        '/mem add "Lake Geneva" country France\n/mem ls --subject "lake geneva"\n'
        "/mem search rihana\n/mem rm --subject Rihanna\n/mem ls --bogus\n"
    )
    assert ("Lake Geneva", "country", "France") in chat.facts()
    assert "Lake Geneva   country    France   manual" in out
    assert "Rihanna" in out.split("search rihana")[-1]
    assert "match (see --dry-run); pass --yes to do so" in out  # never asks on its own input
    assert "error: /mem ls: No such option: --bogus" in out
    assert chat.session.memory_size == 2  # the toolbar's count follows


def test_memory_off_neither_reads_nor_writes_and_clear_forgets_context():
    chat = Chat("Fine.", GENEVA_WRITE)
    chat.type("/memory off\nLake Geneva is in France.\n")
    assert "MEM_WRITE" not in chat.output
    assert chat.store.count() == 1
    assert len(chat.conversation.history) == 2
    chat.type("/memory\n/clear\n")
    assert "memory off: no reads, no writes" in chat.output
    assert "context cleared; memory keeps its 1 fact" in chat.output
    assert chat.conversation.history == []


def test_export_writes_the_conversation(tmp_path):
    chat = Chat(READ_ANSWER, GENEVA_WRITE)
    md, jsonl = tmp_path / "chat.md", tmp_path / "chat.jsonl"
    chat.type(
        f"Which label is Rihanna on?\nLake Geneva is in France.\n/export {md}\n/export {jsonl}\n"
    )
    text = md.read_text()
    assert "**You:** Which label is Rihanna on?" in text
    assert READ_ANSWER in text
    assert "stored #2: Lake Geneva >> country >> France" in text
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["turn"] for r in rows] == [1, 2]
    assert rows[0]["facts_read"][0]["object"] == "Def Jam"
    assert rows[1]["stored"][0]["subject"] == "Lake Geneva"


def test_the_prompt_is_made_only_once_the_model_has_loaded(monkeypatch):
    """llama.cpp points fd 1 at /dev/null while it loads a model; a prompt-toolkit
    output made then draws nowhere (seen as a chat that never showed its prompt)."""
    chat = Chat()
    order: list[str] = []
    engines = chat.conversation.engines
    monkeypatch.setattr(engines, "wait_loaded", lambda: order.append("loaded"), raising=False)
    real = chat.session._prompt_session

    def made(*args, **kwargs):
        order.append("prompt made")
        return real(*args, **kwargs)

    monkeypatch.setattr(chat.session, "_prompt_session", made)
    chat.type("")
    assert order[:2] == ["loaded", "prompt made"]


def test_help_model_and_quit():
    chat = Chat("Fine.")
    out = chat.type("/help\n/help undo\n/model\n/quit\nnever sent\n")
    for name in (
        "/why",
        "/writes",
        "/undo",
        "/mem",
        "/export",
        "/memory",
        "/approve",
        "/model",
        "/clear",
        "/quit",
    ):
        assert name in out
    assert "Revert the last turn's writes" in out
    assert "model: ScriptedBackend" in out
    assert chat.conversation.turns == []  # /quit left before "never sent"


# -- approval -------------------------------------------------------------------------


def test_approval_accepts_rejects_and_edits_each_proposal():
    write = "({MEM_WRITE-->Lake Geneva>>country>>France;Lake Geneva>>continent>>Europe})"
    chat = Chat(write, approve=True)
    # The second triple is edited (the edit line starts from the proposal's text).
    keys = "Lake Geneva lies in France, Europe.\nn\ne\n" + "\x7f" * len("Europe") + "Asia\n"
    chat.type(keys + "/writes\n")
    assert "1/2" in chat.output and "2/2" in chat.output
    facts = chat.facts()
    assert ("Lake Geneva", "country", "France") not in facts
    assert ("Lake Geneva", "continent", "Asia") in facts
    record = chat.conversation.last
    assert [p.line() for p in record.rejected] == ["Lake Geneva >> country >> France"]
    assert record.stored[0].source == "chat test turn 1"
    assert "rejected: Lake Geneva >> country >> France" in chat.output
    assert (
        "edited: Lake Geneva >> continent >> Europe → Lake Geneva >> continent >> Asia"
        in chat.output
    )


def test_approval_all_and_quit_and_toggle():
    write = "({MEM_WRITE-->Lake Geneva>>country>>France;Lake Geneva>>continent>>Europe})"
    chat = Chat(write, write, write)
    chat.type("/approve on\nLake Geneva lies in France, Europe.\nq\n")
    assert chat.store.count() == 1  # q: nothing of the turn stored
    chat.type("Lake Geneva lies in France, Europe.\na\n")
    assert chat.store.count() == 3
    chat.type("/undo\n/approve off\nLake Geneva lies in France, Europe.\n")
    assert "approval off" in chat.output
    assert chat.store.count() == 3  # stored without asking


def test_an_edit_with_an_unknown_relation_is_refused_and_asked_again():
    chat = Chat(GENEVA_WRITE, approve=True)
    clear = "\x7f" * len("Lake Geneva >> country >> France")
    chat.type(
        "Lake Geneva is in France.\ne\n"
        + clear
        + "Lake Geneva >> sits in >> France\n"
        + clear
        + "Lake Geneva >> country >> Italy\n"
    )
    assert "unknown relation 'sits in'" in chat.output
    assert ("Lake Geneva", "country", "Italy") in chat.facts()


# -- completion and toolbar -----------------------------------------------------------


def _complete(chat: Chat, text: str) -> list[str]:
    completer = ChatCompleter(REGISTRY, chat.session.entity_names)
    return [c.text for c in completer.get_completions(Document(text), None)]  # type: ignore


def test_completion_of_commands_subcommands_and_entity_names():
    chat = Chat(
        "Fine.",
        facts=(("Rihanna", "record label", "Def Jam"), ("Lake Geneva", "country", "France")),
    )
    assert _complete(chat, "/wr") == ["/writes"]
    assert "/mem" in _complete(chat, "/m")
    assert "search" in _complete(chat, "/mem se")
    assert _complete(chat, "/mem ls --subject Ri") == ["Rihanna"]
    assert _complete(chat, '/mem add "Lake G') == ['"Lake Geneva"']
    assert _complete(chat, "/mem rm --sub") == ["--subject"]
    assert _complete(chat, "/approve o") == ["on", "off"]
    assert _complete(chat, "hello") == []
    assert current_token('add "Lake Gen') == '"Lake Gen'


def test_toolbar_shows_model_memory_reads_writes_speed_and_fits_80_columns():
    chat = Chat(READ_ANSWER)
    chat.type("Which label is Rihanna on?\n")
    parts = toolbar_parts(chat.session)
    assert parts[0] == "ScriptedBackend"
    assert parts[1] == "memory 1 fact"
    assert parts[2] == "read 1 · wrote 0"
    assert parts[3].endswith("tok/s")
    line = fit(["a-very-long-model-name " * 5, *parts[1:]], 80)
    assert len(line) <= 80
    assert len(fit(parts, 30)) <= 30


def test_history_goes_to_memcli_home(memcli_home):
    chat = Chat("Fine.")
    with create_pipe_input() as pipe:
        pipe.send_text("/help\n" + CTRL_D)
        chat.session.run(input=pipe, output=DummyOutput())
    assert "/help" in (memcli_home / "history").read_text()


@pytest.mark.parametrize("keys", ["\x03/help\n", "abc\x03/help\n"])
def test_ctrl_c_at_the_prompt_clears_the_line(keys):
    chat = Chat("Fine.")
    out = chat.type(keys)
    assert "/why" in out
    assert chat.conversation.turns == []
