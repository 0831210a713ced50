"""Running the CLI in-process, with data (stdout) and messages (stderr) kept apart."""

from __future__ import annotations

from typer.testing import CliRunner

from memcli.cli.app import app


def run(*args: str, input: str | None = None):
    result = CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)
    return result
