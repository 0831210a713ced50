"""`memcli mcp`: serve memory to other agents over the Model Context Protocol."""

from __future__ import annotations

from typing import Annotated

import typer

from memcli.cli.common import DbOption, ModelChoice, model_options
from memcli.cli.output import note


@model_options()
def mcp(
    http: Annotated[
        str | None,
        typer.Option(
            "--http",
            metavar="[HOST:]PORT",
            help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio "
            "(HOST: 127.0.0.1 unless given; PORT 0 picks a free one).",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="MEMCLI_MCP_TOKEN",
            help="With --http: every request must carry 'Authorization: Bearer TOKEN'. "
            "Required to listen on a non-loopback address.",
            show_default=False,
        ),
    ] = None,
    read_only: Annotated[
        bool,
        typer.Option("--read-only", help="Offer only the reading tools; never write memory."),
    ] = False,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="Source recorded on facts an agent writes without one "
            "(default: 'mcp <client name>').",
            show_default=False,
        ),
    ] = None,
    model_choice: ModelChoice = ModelChoice(),
    db: DbOption = None,
) -> None:
    """Serve memory over the Model Context Protocol, for any agent on this machine.

    Tools: memory_search, memory_facts, memory_history, and (unless --read-only)
    memory_add, memory_add_many, memory_supersede, memory_edit, memory_remove,
    memory_undo, memory_ingest (the model, loaded on first use; --engine for a server). Resources:
    memcli://relations, memcli://stats, memcli://snapshot. Every change is a batch that
    `memcli mem log` shows with the client's name and `memcli mem undo` reverts.
    Stdio by default (what desktop clients launch); logs go to mcp.log in MEMCLI_HOME.
    """
    from memcli import paths
    from memcli.errors import UsageError
    from memcli.mcp.options import check_bind, parse_http

    address = parse_http(http) if http is not None else None
    if address is None and token:
        raise UsageError("--token is for --http; a stdio server is reached only by its parent")
    if address is not None:
        check_bind(address[0], token)
    from memcli.mcp.server import (
        MemoryServer,
        ModelOptions,
        serve_http,
        serve_stdio,
        setup_logging,
    )

    setup_logging()
    server = MemoryServer(
        db=db if db is not None else paths.default_db(),
        read_only=read_only,
        source=source,
        model=ModelOptions(**model_choice.options()),
    )
    if address is None:
        serve_stdio(server)
        return
    host, port = address
    serve_http(server, host, port, token, lambda url: note(f"memcli mcp: serving {url}"))
