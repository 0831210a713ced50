"""`memcli chat` from the command line: scripted with -e or stdin lines (plain text), on
the fake model; and once on the real bundled model."""

from __future__ import annotations

import pytest

from memcli.repl import engines as engines_module
from memcli.repl.engines import StaticEngines
from memcli.runtime.engine import MemoryEngine
from memcli.store.core import TripleStore
from tests.cli_helpers import run
from tests.fakes import ScriptedBackend

GENEVA_WRITE = "({MEM_WRITE-->Lake Geneva>>country>>France})"
GENEVA_READ = "({MEM_READ(Lake Geneva>>country>>)-->France}) France."


@pytest.fixture
def fake_model(monkeypatch):
    """`memcli chat` gets a scripted model instead of loading the bundled one."""
    made: dict = {}

    def install(*transcripts: str) -> dict:
        def background(store, **options):
            made["options"] = options
            made["engine"] = MemoryEngine(ScriptedBackend(*transcripts), store)
            return StaticEngines(made["engine"])

        monkeypatch.setattr(engines_module, "BackgroundEngines", background)
        return made

    return install


def test_execute_runs_turns_and_commands_in_order_as_plain_text(fake_model):
    fake_model(GENEVA_WRITE, GENEVA_READ)
    result = run(
        "chat",
        "-e",
        "Lake Geneva is in France.",
        "-e",
        "/writes",
        "-e",
        "Which country is Lake Geneva in?",
        "-e",
        "/why",
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "\x1b" not in out
    assert (
        out.index(GENEVA_WRITE)
        < out.index("Noted: Lake Geneva - country: France.")
        < (out.index(GENEVA_READ))
    )
    assert "Lake Geneva >> country >> France" in out  # /writes and /why tables
    assert "stored 1 fact (#1); /undo reverts" in result.stderr
    with TripleStore() as store:
        [fact] = store.find()
        assert fact.source.startswith("chat ") and fact.source.endswith(" turn 1")


def test_stdin_lines_are_turns_and_hide_calls_gives_markers(fake_model):
    fake_model(GENEVA_WRITE, GENEVA_READ)
    result = run(
        "chat",
        "--hide-calls",
        input="Lake Geneva is in France.\n\nWhich country is Lake Geneva in?\n",
    )
    assert result.exit_code == 0, result.output
    assert "MEM_" not in result.stdout
    assert "[write: Lake Geneva >> country >> France]" in result.stdout
    assert "[read: France]  France." in result.stdout


def test_errors_are_one_line_and_the_exit_status_says_so(fake_model):
    fake_model("Fine.")
    result = run("chat", "-e", "/nope", "-e", "/help")
    assert result.exit_code == 1
    assert "error: unknown command /nope" in result.stderr
    assert "/writes" in result.stdout  # the chat went on


def test_approve_reads_answers_from_the_following_lines(fake_model):
    fake_model(GENEVA_WRITE)
    result = run("chat", "--approve", input="Lake Geneva is in France.\nn\n/writes\n")
    assert result.exit_code == 0, result.output
    assert "store it?" in result.stderr
    assert "rejected: Lake Geneva >> country >> France" in result.stderr
    with TripleStore() as store:
        assert store.count() == 0


def test_options_reach_the_model_loader_and_no_memory_is_honoured(fake_model):
    made = fake_model("Fine.", GENEVA_WRITE)
    result = run(
        "chat",
        "--no-memory",
        "-m",
        "some.gguf",
        "--threads",
        "2",
        "-e",
        "Lake Geneva is in France.",
    )
    assert result.exit_code == 0, result.output
    assert made["options"] == {
        "engine": None,
        "model": "some.gguf",
        "adapter": None,
        "no_adapter": False,
        "threads": 2,
    }
    assert "MEM_WRITE" not in result.stdout


def test_a_model_that_does_not_load_is_reported_not_a_crash(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file")
    result = run("chat", "-m", str(bad), "-e", "Hello.", "-e", "/help")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "bad.gguf" in lines[0]
    assert "/writes" in result.stdout


@pytest.mark.model
@pytest.mark.slow
def test_real_model_writes_a_stated_fact_and_reads_it_back():
    result = run(
        "chat",
        "-e",
        "Lake Geneva is in France.",
        "-e",
        "Which country is Lake Geneva in?",
        "-e",
        "/why",
    )
    assert result.exit_code == 0, result.output
    assert "({MEM_WRITE-->Lake Geneva>>" in result.stdout
    assert "({MEM_READ(Lake Geneva>>" in result.stdout
    with TripleStore() as store:
        assert store.find(subject="Lake Geneva")


def test_model_switches_to_another_model_and_keeps_the_old_one_on_failure(fake_model):
    made = fake_model("Fine.")
    result = run("chat", "-e", "/model other.gguf", "-e", "/model", "-e", "Hello there?")
    assert result.exit_code == 0, result.output
    assert made["options"]["model"] == "other.gguf"
    assert result.stdout.count("model: ScriptedBackend") == 2
    assert "Fine." in result.stdout


def test_a_failed_model_switch_keeps_the_chat_on_the_current_model(fake_model, monkeypatch):
    from memcli.errors import ModelError

    made = fake_model("Fine.")
    calls = {"n": 0}
    original = engines_module.BackgroundEngines

    def flaky(store, **options):
        calls["n"] += 1
        if calls["n"] == 2:

            class Failed(StaticEngines):
                def answering(self):
                    raise ModelError("model file not found: nope.gguf")

            return Failed(MemoryEngine(ScriptedBackend(""), store))
        return original(store, **options)

    monkeypatch.setattr(engines_module, "BackgroundEngines", flaky)
    result = run("chat", "-e", "/model nope.gguf", "-e", "Hello there?")
    assert result.exit_code == 1
    assert "error: model file not found: nope.gguf" in result.stderr
    assert "Fine." in result.stdout
    assert made["engine"] is not None
