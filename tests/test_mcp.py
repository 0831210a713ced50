"""`memcli mcp` over the real protocol: the server runs as a subprocess (stdio, and
streamable HTTP on a free loopback port) and the tests talk to it with the `mcp` SDK's
own client. One server per transport for the module; each test uses its own names."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

mcp = pytest.importorskip("mcp")

from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.types import CallToolResult, Implementation  # noqa: E402

from memcli.mcp.server import MemoryServer  # noqa: E402
from memcli.store.core import TripleStore  # noqa: E402
from tests.cli_helpers import run  # noqa: E402

MEMCLI = str(Path(sys.executable).parent / "memcli")
CLIENT_NAME = "pytest-agent"
TOKEN = "s3cret-token"
WRITE_TOOLS = {
    "memory_add",
    "memory_add_many",
    "memory_supersede",
    "memory_edit",
    "memory_remove",
    "memory_undo",
    "memory_ingest",
}
READ_TOOLS = {"memory_search", "memory_facts", "memory_history"}


def memcli_command() -> list[str]:
    if os.access(MEMCLI, os.X_OK):
        return [MEMCLI]
    return [sys.executable, "-m", "memcli"]


def server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMCLI_")}
    env.update(
        MEMCLI_HOME=str(home),
        MEMCLI_CACHE=os.environ.get("MEMCLI_CACHE", str(home / "cache")),
        HF_HUB_OFFLINE="1",
        NO_COLOR="1",
    )
    return env


class Session:
    """An SDK client connected to one server, driven from plain (sync) tests: a loop in a
    background thread owns the connection; each call is a coroutine submitted to it."""

    def __init__(self, connect: Callable[[], Any], timeout: float = 60):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client: Client | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._owner = asyncio.run_coroutine_threadsafe(self._own(connect), self.loop)
        if not self._ready.wait(timeout):
            raise RuntimeError("the MCP client did not connect in time")
        if self._owner.done():
            self._owner.result()  # raises what went wrong

    async def _own(self, connect: Callable[[], Any]) -> None:
        self._stop = asyncio.Event()
        try:
            async with Client(
                connect(), client_info=Implementation(name=CLIENT_NAME, version="1.0")
            ) as client:
                self.client = client
                self._ready.set()
                await self._stop.wait()
        finally:
            self._ready.set()

    def run(self, coro: Coroutine, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, tool: str, **arguments: Any) -> CallToolResult:
        assert self.client is not None
        return self.run(self.client.call_tool(tool, arguments))

    def ok(self, tool: str, **arguments: Any) -> dict:
        result = self.call(tool, **arguments)
        assert not result.is_error, result.content
        assert result.structured_content is not None
        # The server sends results unchecked (clients check them against the compact
        # published schema); here each one is checked against its full TypedDict, and
        # the text content is the same JSON.
        full_result_schema(tool).validate_python(result.structured_content, strict=True)
        assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
        return result.structured_content

    def error(self, tool: str, **arguments: Any) -> str:
        result = self.call(tool, **arguments)
        assert result.is_error, result.structured_content
        return result.content[0].text  # type: ignore[union-attr]

    def close(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        try:
            self._owner.result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def full_result_schema(tool: str) -> Any:
    """A validator for a tool's result: the TypedDict its method returns."""
    from typing import get_type_hints

    from pydantic import TypeAdapter

    return TypeAdapter(get_type_hints(getattr(MemoryServer, tool))["return"])


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*memcli_command(), *args],
        capture_output=True,
        text=True,
        env=server_env(home),
        timeout=60,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mcp-home")


@pytest.fixture(scope="module")
def db(home) -> Path:
    return home / "memory.db"


@pytest.fixture(scope="module")
def stdio(home, db):
    errlog = open(home / "stdio-stderr.txt", "w")  # noqa: SIM115 (closed below)
    params = StdioServerParameters(
        command=memcli_command()[0],
        args=[*memcli_command()[1:], "mcp", "--db", str(db)],
        env=server_env(home),
    )
    session = Session(lambda: stdio_client(params, errlog=errlog))
    yield session
    session.close()
    errlog.close()


def facts_in(db: Path, **filters: str) -> list[tuple[str, str, str]]:
    with TripleStore(db) as store:
        return [(t.subject, t.relation, t.object) for t in store.find(**filters)]


def log_lines(db: Path) -> list[dict]:
    with TripleStore(db) as store:
        return [b.as_dict() for b in store.log(50)]


# -- the tools and their schemas --------------------------------------------------------


def test_lists_every_tool_with_a_described_schema(stdio):
    listed = stdio.run(stdio.client.list_tools()).tools
    by_name = {tool.name: tool for tool in listed}
    assert set(by_name) == READ_TOOLS | WRITE_TOOLS
    add = by_name["memory_add"]
    assert add.description and "unknown relation" in add.description
    schema = add.input_schema
    assert schema["required"] == ["subject", "relation", "object"]
    for name in ("subject", "relation", "object", "source", "new_relation"):
        assert schema["properties"][name]["description"], name
    assert "ctx" not in schema["properties"]
    assert add.output_schema and "fact" in add.output_schema["properties"]
    assert by_name["memory_search"].annotations.read_only_hint is True
    assert by_name["memory_remove"].annotations.destructive_hint is True
    many = by_name["memory_add_many"].input_schema
    assert many["properties"]["facts"]["type"] == "array"


def test_add_then_read_back_by_entity_and_by_search(stdio, db):
    added = stdio.ok("memory_add", subject="Lake Geneva", relation="country", object="Switzerland")
    assert added["created"] is True
    fact = added["fact"]
    assert (fact["subject"], fact["relation"], fact["object"]) == (
        "Lake Geneva",
        "country",
        "Switzerland",
    )
    assert fact["source"] == f"mcp {CLIENT_NAME}"
    assert fact["created_at"] and added["batch_id"] == fact["batch_id"]
    again = stdio.ok("memory_add", subject="lake  geneva", relation="Country", object="switzerland")
    assert again["created"] is False and again["fact"]["id"] == fact["id"]
    assert again["batch_id"] is None

    found = stdio.ok("memory_facts", entity="LAKE GENEVA")
    assert [f["id"] for f in found["facts"]] == [fact["id"]]
    as_object = stdio.ok("memory_facts", entity="Switzerland", relation="country")
    assert fact["id"] in [f["id"] for f in as_object["facts"]]
    misspelt = stdio.ok("memory_facts", entity="Lake Genva")
    assert misspelt["entity"] == "Lake Geneva" and "closest" in misspelt["note"]

    hits = stdio.ok("memory_search", query="which country is lake genva in?")
    assert hits["facts"][0]["id"] == fact["id"]
    assert 0 < hits["facts"][0]["score"] <= 100

    # The person sees the agent's batch, with the client's name, from the CLI.
    batches = log_lines(db)
    assert any(
        b["description"] == f"mcp {CLIENT_NAME}: add Lake Geneva >> country >> Switzerland"
        for b in batches
    )


def test_bad_arguments_are_tool_errors_with_the_cli_messages(stdio, db, home):
    before = (facts_in(db), log_lines(db))
    message = stdio.error(
        "memory_add", subject="Rihanna", relation="recrod label", object="Def Jam"
    )
    assert message.startswith("unknown relation 'recrod label' (did you mean: record label")
    cli_run = cli(home, "mem", "add", "Rihanna", "recrod label", "Def Jam", "--db", str(db))
    assert cli_run.returncode == 2
    assert cli_run.stderr.strip() == f"memcli: error: {message}"

    bad = stdio.error("memory_add", subject="A >> B", relation="country", object="C")
    assert bad == "subject 'A >> B' contains '>>', a memory-command delimiter"
    empty = stdio.error("memory_add", subject="  ", relation="country", object="C")
    assert empty == "subject '  ' is empty"
    many = stdio.error(
        "memory_add_many",
        facts=[
            {"subject": "Good", "relation": "country", "object": "Fine"},
            {"subject": "Bad;name", "relation": "country", "object": "X"},
        ],
    )
    assert many.startswith("facts[1]: subject 'Bad;name' contains ';'")
    assert stdio.error("memory_edit", id=999999, object="X") == "no fact with id 999999"
    assert stdio.error("memory_remove", ids=[999999]).startswith("no fact with id 999999")
    assert "unknown relation" in stdio.error("memory_facts", entity="X", relation="zzzqqq")
    assert stdio.error("memory_ingest", text="   ") == "the text is empty"  # no model loaded
    assert "at most 200,000" in stdio.error("memory_ingest", text="x" * 200_001)
    schema_error = stdio.call("memory_add", subject="only a subject")
    assert schema_error.is_error
    assert (facts_in(db), log_lines(db)) == before
    # ...and the server is still there.
    assert stdio.ok("memory_facts", entity="Lake Geneva")["entity"] == "Lake Geneva"


def test_edit_remove_and_undo_are_one_batch_each(stdio, db, home):
    added = stdio.ok("memory_add", subject="Ada Lovelace", relation="employer", object="Babbage")
    fact_id = added["fact"]["id"]
    edited = stdio.ok("memory_edit", id=fact_id, object="Charles Babbage")
    assert edited["fact"]["object"] == "Charles Babbage" and edited["fact"]["id"] == fact_id
    assert facts_in(db, subject="Ada Lovelace") == [("Ada Lovelace", "employer", "Charles Babbage")]
    removed = stdio.ok("memory_remove", ids=[fact_id])
    assert [f["id"] for f in removed["removed"]] == [fact_id]
    assert facts_in(db, subject="Ada Lovelace") == []
    described = [b["description"] for b in log_lines(db)[:2]]
    assert described == [f"mcp {CLIENT_NAME}: rm {fact_id}", f"mcp {CLIENT_NAME}: edit {fact_id}"]

    undone = stdio.ok("memory_undo")
    assert undone["undone"]["id"] == removed["batch_id"]
    assert facts_in(db, subject="Ada Lovelace") == [("Ada Lovelace", "employer", "Charles Babbage")]
    history = stdio.ok("memory_history", entity="ada lovelace")
    kinds = [b["kind"] for b in history["batches"]]
    assert kinds[:4] == ["undo", "rm", "edit", "add"]
    assert history["batches"][1]["undone_by"] == undone["undo_batch_id"]
    # The person undoes what the agent did from the CLI: its edit, the latest left.
    person = cli(home, "mem", "undo", "--db", str(db))
    assert person.returncode == 0, person.stderr
    assert f"mcp {CLIENT_NAME}: edit {fact_id}" in person.stderr
    assert facts_in(db, subject="Ada Lovelace") == [("Ada Lovelace", "employer", "Babbage")]


def test_an_agents_undo_names_the_client_in_the_log(stdio, db, home):
    added = stdio.ok(
        "memory_add", subject="Grace Hopper", relation="employer", object="Remington Rand"
    )
    undone = stdio.ok("memory_undo", batch=added["batch_id"])
    newest = log_lines(db)[0]
    assert (newest["id"], newest["kind"]) == (undone["undo_batch_id"], "undo")
    assert newest["description"] == (
        f"mcp {CLIENT_NAME}: undo batch {added['batch_id']}: "
        f"mcp {CLIENT_NAME}: add Grace Hopper >> employer >> Remington Rand"
    )
    shown = cli(home, "mem", "log", "--json", "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    assert lines[0]["description"] == newest["description"]
    # A person's undo from the CLI names nobody: only agents are named.
    again = stdio.ok(
        "memory_add", subject="Grace Hopper", relation="employer", object="Remington Rand"
    )
    person = cli(home, "mem", "undo", "--db", str(db))
    assert person.returncode == 0, person.stderr
    assert log_lines(db)[0]["description"].startswith(f"undo batch {again['batch_id']}: ")


def test_calls_wait_for_a_writer_holding_the_lock_and_reads_do_not(stdio, db):
    """Another process holds memory's write lock: reads answer at once (WAL), a write
    waits for the lock (on a worker thread) and is stored once it is released."""
    assert stdio.client is not None
    holder = TripleStore(db)
    try:
        holder.db.execute("BEGIN IMMEDIATE")
        pending = asyncio.run_coroutine_threadsafe(
            stdio.client.call_tool(
                "memory_add", {"subject": "Locked Out", "relation": "country", "object": "Peru"}
            ),
            stdio.loop,
        )
        read = stdio.ok("memory_facts", entity="Lake Geneva")  # answered meanwhile
        assert read["facts"]
        assert not pending.done()  # it cannot have been stored: the lock is held
        assert facts_in(db, subject="Locked Out") == []
        holder.db.execute("COMMIT")
    finally:
        if holder.db.in_transaction:
            holder.db.execute("ROLLBACK")
        holder.close()
    result = pending.result(60)
    assert not result.is_error, result.content
    assert facts_in(db, subject="Locked Out") == [("Locked Out", "country", "Peru")]


def test_writes_stay_visible_after_the_server_opens_more_connections(tmp_path):
    """The server opens connections as its threads need them. Each used to read the
    file's header with open(), and closing that dropped the process's SQLite locks: the
    next process to close a connection deleted the -wal the server went on writing to,
    and nobody else saw its writes again."""
    home = tmp_path / "home"
    home.mkdir()
    db = tmp_path / "memory.db"
    params = StdioServerParameters(
        command=memcli_command()[0],
        args=[*memcli_command()[1:], "mcp", "--db", str(db)],
        env=server_env(home),
    )
    errlog = open(tmp_path / "stderr.txt", "w")  # noqa: SIM115 (closed below)
    session = Session(lambda: stdio_client(params, errlog=errlog))
    try:
        session.ok("memory_add", subject="Oslo", relation="country", object="Norway")
        session.ok("memory_search", query="Oslo")  # a worker thread's connection
        session.ok("memory_history")
        assert facts_in(db, subject="Oslo") == [("Oslo", "country", "Norway")]  # open, close
        session.ok("memory_add", subject="Bergen", relation="country", object="Norway")
        assert facts_in(db, subject="Bergen") == [("Bergen", "country", "Norway")]
        assert Path(f"{db}-wal").exists()
    finally:
        session.close()
        errlog.close()
    assert len(facts_in(db, object="Norway")) == 2


def test_add_many_is_one_batch_and_undo_takes_it_back(stdio, db):
    result = stdio.ok(
        "memory_add_many",
        facts=[
            {"subject": "Toyota", "relation": "country", "object": "Japan"},
            {
                "subject": "Toyota",
                "relation": "founded by",
                "object": "Kiichiro Toyoda",
                "source": "company history",
            },
            {"subject": "Toyota", "relation": "country", "object": "Japan"},
        ],
        source="press kit",
    )
    assert len(result["created"]) == 2 and result["already_in_memory"] == 0
    assert {f["source"] for f in result["created"]} == {"press kit", "company history"}
    assert {f["batch_id"] for f in result["created"]} == {result["batch_id"]}
    assert stdio.ok("memory_undo", batch=result["batch_id"])["undone"]["id"] == result["batch_id"]
    assert facts_in(db, subject="Toyota") == []


def test_a_large_add_many_and_remove_run_on_a_worker_thread_as_one_batch_each(stdio, db):
    from memcli.mcp.server import QUICK_ROWS

    many = [
        {"subject": f"Moon {i}", "relation": "part of", "object": "Jupiter system"}
        for i in range(QUICK_ROWS + 10)
    ]
    added = stdio.ok("memory_add_many", facts=many)
    assert len(added["created"]) == len(many)
    assert {f["batch_id"] for f in added["created"]} == {added["batch_id"]}
    removed = stdio.ok("memory_remove", ids=[f["id"] for f in added["created"]])
    assert len(removed["removed"]) == len(many)
    assert facts_in(db, object="Jupiter system") == []
    assert [b["id"] for b in log_lines(db)[:2]] == [removed["batch_id"], added["batch_id"]]


def test_single_valued_relations_supersede(stdio, db):
    first = stdio.ok("memory_add", subject="Marie Curie", relation="residence", object="Warsaw")
    second = stdio.ok("memory_add", subject="Marie Curie", relation="residence", object="Paris")
    assert [f["id"] for f in second["superseded"]] == [first["fact"]["id"]]
    current = stdio.ok("memory_facts", entity="Marie Curie", relation="residence")
    assert [f["object"] for f in current["facts"]] == ["Paris"]

    multi = stdio.ok("memory_add", subject="Marie Curie", relation="employer", object="ESPCI")
    moved = stdio.ok("memory_supersede", id=multi["fact"]["id"], object="University of Paris")
    assert moved["fact"]["object"] == "University of Paris"
    assert [f["id"] for f in moved["superseded"]] == [multi["fact"]["id"]]
    employers = stdio.ok("memory_facts", entity="Marie Curie", relation="employer")
    assert [f["object"] for f in employers["facts"]] == ["University of Paris"]
    stdio.ok("memory_undo", batch=moved["batch_id"])
    employers = stdio.ok("memory_facts", entity="Marie Curie", relation="employer")
    assert [f["object"] for f in employers["facts"]] == ["ESPCI"]


def test_sees_writes_from_the_cli_while_running_and_loses_none(stdio, db, home):
    done = cli(home, "mem", "add", "Mount Fuji", "country", "Japan", "--db", str(db))
    assert done.returncode == 0, done.stderr
    seen = stdio.ok("memory_facts", entity="Mount Fuji")["facts"]
    assert [f["object"] for f in seen] == ["Japan"]

    def person(i: int) -> None:
        with TripleStore(db) as store:
            store.add(f"Person {i}", "country of citizenship", "Iceland", "cli")

    with ThreadPoolExecutor(4) as pool:
        people = [pool.submit(person, i) for i in range(15)]
        for i in range(15):
            stdio.ok(
                "memory_add",
                subject=f"Agent {i}",
                relation="country of citizenship",
                object="Iceland",
            )
        for job in people:
            job.result()
    citizens = facts_in(db, object="Iceland")
    assert len(citizens) == 30


def test_resources_relations_stats_and_snapshot(stdio, db):
    listed = stdio.run(stdio.client.list_resources()).resources
    assert {str(r.uri) for r in listed} == {
        "memcli://relations",
        "memcli://stats",
        "memcli://snapshot",
    }
    relations = json.loads(
        stdio.run(stdio.client.read_resource("memcli://relations")).contents[0].text
    )
    by_name = {r["name"]: r for r in relations}
    assert by_name["residence"]["cardinality"] == "single"
    assert by_name["country"]["cardinality"] == "multi"
    stats = json.loads(stdio.run(stdio.client.read_resource("memcli://stats")).contents[0].text)
    with TripleStore(db) as store:
        assert stats["triples"] == store.count()
    snapshot = stdio.run(stdio.client.read_resource("memcli://snapshot")).contents[0].text
    rows = [json.loads(line) for line in snapshot.splitlines()]
    assert any(r["subject"] == "Lake Geneva" for r in rows)


def test_stdout_carries_only_protocol_messages(home, db):
    """A raw session over the pipes: every line the server writes to stdout is JSON-RPC,
    even when a tool fails."""
    requests = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw-pipe", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {
                "name": "memory_add",
                "arguments": {"subject": "X", "relation": "nope", "object": "Y"},
            },
        },
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {
                "name": "memory_add",
                "arguments": {"subject": "Raw", "relation": "country", "object": "Pipe"},
            },
        },
    ]
    process = subprocess.Popen(
        [*memcli_command(), "mcp", "--db", str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=server_env(home),
        text=True,
    )
    assert process.stdin and process.stdout
    answers: dict[int, dict] = {}
    for request in requests:
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        if "id" in request:
            while request["id"] not in answers:
                message = json.loads(process.stdout.readline())
                assert message["jsonrpc"] == "2.0"
                if "id" in message:
                    answers[message["id"]] = message
    process.stdin.close()
    rest = process.stdout.read()
    assert process.wait(30) == 0, process.stderr.read() if process.stderr else ""
    for line in rest.splitlines():
        assert json.loads(line)["jsonrpc"] == "2.0"
    assert answers[2]["result"]["isError"] is True
    assert answers[3]["result"]["structuredContent"]["fact"]["source"] == "mcp raw-pipe"
    assert log_lines(db)[0]["description"] == "mcp raw-pipe: add Raw >> country >> Pipe"
    logged = (home / "mcp.log").read_text()
    assert "memory_add refused" in logged and "unknown relation 'nope'" in logged


# -- read-only and HTTP -----------------------------------------------------------------


def test_read_only_offers_only_reading_tools(tmp_path, home, db):
    errlog = open(tmp_path / "stderr.txt", "w")  # noqa: SIM115 (closed below)
    params = StdioServerParameters(
        command=memcli_command()[0],
        args=[*memcli_command()[1:], "mcp", "--read-only", "--db", str(db)],
        env=server_env(home),
    )
    before = (facts_in(db), log_lines(db))
    session = Session(lambda: stdio_client(params, errlog=errlog))
    try:
        names = {t.name for t in session.run(session.client.list_tools()).tools}
        assert names == READ_TOOLS
        refused = session.call("memory_add", subject="A", relation="country", object="B")
        assert refused.is_error
        assert session.ok("memory_facts", entity="Lake Geneva")["facts"]
    finally:
        session.close()
        errlog.close()
    assert (facts_in(db), log_lines(db)) == before


def start_http(home: Path, db: Path, *args: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [*memcli_command(), "mcp", "--http", "127.0.0.1:0", "--db", str(db), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=server_env(home),
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        if line.startswith("memcli mcp: serving "):
            return process, line.split()[-1]
    process.kill()
    raise RuntimeError(f"the HTTP server did not start: {process.stderr.read()}")


@pytest.fixture(scope="module")
def http_server(home, db):
    process, url = start_http(home, db, "--token", TOKEN)
    yield url
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def http_session(url: str, token: str | None) -> Session:
    import httpx2

    def connect():
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers))

    return Session(connect, timeout=30)


def test_http_with_the_token_reads_and_writes(http_server, db):
    session = http_session(http_server, TOKEN)
    try:
        names = {t.name for t in session.run(session.client.list_tools()).tools}
        assert names == READ_TOOLS | WRITE_TOOLS
        added = session.ok("memory_add", subject="Kyiv", relation="country", object="Ukraine")
        assert added["fact"]["source"] == f"mcp {CLIENT_NAME}"
        assert facts_in(db, subject="Kyiv") == [("Kyiv", "country", "Ukraine")]
        assert session.ok("memory_facts", entity="kyiv")["facts"][0]["id"] == added["fact"]["id"]
    finally:
        session.close()


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_http_refuses_a_missing_or_wrong_token(http_server, token):
    import httpx2

    headers = {"Accept": "application/json, text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = httpx2.post(http_server, json=body, headers=headers, timeout=10)
    assert response.status_code == 401
    assert "Bearer" in response.headers["www-authenticate"]
    with pytest.raises(Exception):  # noqa: B017 - the SDK raises its own transport error
        http_session(http_server, token).close()


def test_http_refuses_a_public_bind_without_a_token(db):
    refused = run("mcp", "--http", "0.0.0.0:0", "--db", str(db))
    assert refused.exit_code == 2
    assert refused.stderr.startswith("memcli: error: refusing to listen on 0.0.0.0")
    assert refused.stderr.count("\n") == 1
    bad_port = run("mcp", "--http", "127.0.0.1:99999")
    assert bad_port.exit_code == 2 and "expected [HOST:]PORT" in bad_port.stderr
    assert run("mcp", "--token", "x").exit_code == 2


def test_bench_rows_keep_the_contract():
    """`make bench`'s MCP rows, on a small memory: its server (memcli mcp's, plus a
    no-op tool) over stdio and HTTP, every row with the fields the table needs."""
    from bench import bench_mcp
    from bench.common import ROW_FIELDS

    rows = bench_mcp.run(True, n=300, calls=8)
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names))
    for found in rows:
        assert set(ROW_FIELDS) <= set(found), found
        assert found["ours"] is None or found["ours"] > 0, found
    assert any(n.startswith("bench_noop p99 over stdio") for n in names)
    assert any(n.startswith("memory_facts p99 over stdio vs store in process") for n in names)
    assert any("8 concurrent HTTP clients" in n for n in names)
    assert any(n.startswith("memory_add p99, 8 HTTP clients paced at 20 calls/s") for n in names)


# -- the model ------------------------------------------------------------------------


@pytest.mark.model
@pytest.mark.slow
def test_ingest_stores_what_the_model_reads(stdio, db):
    result = stdio.ok("memory_ingest", text="Rihanna is signed to Def Jam Recordings.")
    assert result["sentences"] == 1
    assert result["stored"], result
    for fact in result["stored"]:
        assert fact["source"] == f"mcp {CLIENT_NAME}"
    ids = {f["id"] for f in result["stored"]}
    with TripleStore(db) as store:
        assert ids <= {t.id for t in store.find()}
        batch = store.get_batch(result["batch_ids"][0])
    assert batch.kind == "model-write"
    assert batch.description.startswith(f"mcp {CLIENT_NAME}: ingest: Rihanna")
