"""What a new user meets besides the README's examples: one-line errors where a prompt
or a minute of retries used to be."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from memcli import paths
from memcli.cli import reference
from memcli.cli.app import app
from memcli.cli.output import counted
from tests.fixtures.gguf_writer import write_gguf

runner = CliRunner()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends


def test_pull_with_the_hub_unreachable_is_one_line_without_retries(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    result = runner.invoke(app, ["models", "pull", "qwen2.5-0.5b", "--no-progress"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Retrying" not in result.stderr
    assert result.stderr.startswith(
        "memcli: error: cannot download bartowski/Qwen2.5-0.5B-Instruct-GGUF/"
        "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf (revision b26a58accf53b1a19fbc555d52fdb224bec473f5): "
        f"cannot reach {endpoint} ("
    )
    assert not list(paths.models_dir().rglob("*"))  # nothing staged


def test_rm_of_a_model_not_downloaded_is_an_error_not_a_question():
    result = runner.invoke(app, ["models", "rm", "qwen2.5-0.5b"], input="y\n")
    assert (result.exit_code, result.stderr) == (
        1,
        "memcli: error: model qwen2.5-0.5b is not downloaded\n",
    )
    model = write_gguf(paths.models_dir() / "qwen2.5-0.5b.gguf")
    refused = runner.invoke(app, ["models", "rm", "qwen2.5-0.5b"], input="y\n")
    assert refused.stderr == f"memcli: error: rm deletes {model}; pass --yes to do so\n"


def test_yes_means_the_same_on_every_destructive_command(tmp_path, monkeypatch):
    """--yes: go ahead. Without it: ask at a terminal, refuse off one, naming --yes."""
    model = write_gguf(paths.models_dir() / "qwen2.5-0.5b.gguf")
    for n in range(2):
        runner.invoke(app, ["mem", "add", f"S{n}", "country", "X"])
    snapshot = tmp_path / "snap.jsonl"
    assert runner.invoke(app, ["mem", "export", "-o", str(snapshot)]).exit_code == 0
    commands = [["mem", "rm", "--object", "X"], ["mem", "restore", str(snapshot)],
                ["models", "rm", "qwen2.5-0.5b"]]  # fmt: skip
    helps = set()
    commands_by_path = dict(reference.commands())
    for command in commands:
        refused = runner.invoke(app, command, input="y\n")
        assert refused.exit_code == 2 and refused.stderr.endswith("; pass --yes to do so\n")
        (param,) = [p for p in commands_by_path[" ".join(["memcli", *command[:2]])].params
                    if "--yes" in p.opts]  # fmt: skip
        helps.add((tuple(param.opts), param.help))
    assert helps == {(("--yes", "-y"), "Do not ask first (needed when stdin is not a terminal).")}
    monkeypatch.setattr("memcli.cli.common.interactive", lambda: True)
    for command in commands:
        declined = runner.invoke(app, command, input="n\n")
        assert declined.exit_code == 2
        assert declined.stderr.endswith("memcli: error: not confirmed; nothing changed\n")
    assert model.exists() and runner.invoke(app, ["mem", "stats"]).stdout.count("triples: 2")
    for command in commands:
        assert runner.invoke(app, [*command, "--yes"]).exit_code == 0, command
    assert not model.exists()


def test_counts_read_as_english():
    assert [counted(n, "fact") for n in (0, 1, 2)] == ["0 facts", "1 fact", "2 facts"]
    assert counted(1, "sentence") == "1 sentence" and counted(3, "entry", "entries") == "3 entries"
    result = runner.invoke(app, ["mem", "add", "Ada", "employer", "Babbage"])
    assert result.exit_code == 0
    removed = runner.invoke(app, ["mem", "rm", "1"])
    assert removed.stderr == "removed 1 fact; `memcli mem undo` restores them\n"
    missing = runner.invoke(app, ["mem", "show", "7"])
    assert missing.stderr == "memcli: error: no fact with id 7\n"


def test_usage_errors_are_one_line_with_a_pointer_to_help():
    result = runner.invoke(app, ["mem", "add", "Ada"])
    assert result.exit_code == 2
    assert result.stderr == (
        "memcli: error: Missing argument 'relation'. (see 'memcli mem add --help')\n"
    )
    unknown = runner.invoke(app, ["mem", "ls", "--bogus"])
    assert unknown.stderr == "memcli: error: No such option: --bogus (see 'memcli mem ls --help')\n"
    assert runner.invoke(app, ["nosuch"]).stderr.count("\n") == 1


def test_a_refused_import_lists_every_error_then_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    rows = [f"S{n},bogus{n},O{n}" for n in range(25)]
    bad.write_text("subject,relation,object\n,country,Y\nB,country,\n" + "\n".join(rows) + "\n")
    result = runner.invoke(app, ["mem", "import", str(bad)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"{bad}:2: subject: is empty"
    assert lines[1] == f"{bad}:3: object: is empty"
    assert lines[2].startswith(f"{bad}:4: relation: unknown relation 'bogus0'")
    assert len(lines) == 20 + 2  # the store's cap, then the count of the rest, then the verdict
    assert lines[-2:] == ["… and 7 more errors", "memcli: error: 27 errors; memory unchanged"]
    assert runner.invoke(app, ["mem", "stats", "--json"]).stdout.count('"triples": 0') == 1


def test_rejects_have_the_input_header_and_conflicts_keep_the_first_row(tmp_path):
    data = tmp_path / "facts.csv"
    data.write_text(
        "relation,subject,object,source\nresidence,Dana,Oslo,a\nresidence,Dana,Bergen,b\n"
        "nope,Ada,X,c\n"
    )
    rejects = tmp_path / "rejects.csv"
    result = runner.invoke(
        app, ["mem", "import", str(data), "--skip-errors", "--rejects", str(rejects)]
    )
    assert result.exit_code == 0, result.output
    import csv

    with rejects.open(newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    assert table[0] == ["line", "error", "relation", "subject", "object", "source"]
    assert [row[0] for row in table[1:]] == ["3", "4"]
    assert table[1][2:] == ["residence", "Dana", "Bergen", "b"]
    assert table[2][2:] == ["nope", "Ada", "X", "c"]
    assert all(len(row) == len(table[0]) for row in table)
    listed = runner.invoke(app, ["mem", "ls", "--json"]).stdout
    assert '"object": "Oslo"' in listed and "Bergen" not in listed
