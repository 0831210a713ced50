"""`memcli mcp`: tool-call round trips against calling the store in process, at 100,000
facts (the same size with --quick, fewer calls).

- stdio: one SDK client (`mcp.Client`) talking to `memcli mcp --db DB` launched as a
  subprocess, calling `memory_facts` (a random entity of the memory) and `memory_add`
  (a new fact each time) one after the other; p50 and p99 of the wall time of each
  call, against `TripleStore.facts_about` / `TripleStore.add` for the same arguments
  in this process (the store call alone: what the protocol, the transport, the JSON and
  the worker thread add is the difference).
- HTTP: `memcli mcp --http 127.0.0.1:0`, 8 SDK clients at once (one session each, all
  calling concurrently), the same two tools; p50 and p99 of each call's wall time, and
  the calls per second of all eight together.

Goal (issue #15): p99 under 10 ms at 100,000 facts.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Row, generate_triples, percentile, row, speed_ratio, venv_script
from memcli.store.core import TripleStore

FACTS = 100_000
CALLS = {False: 1000, True: 100}
HTTP_CLIENTS = 8
P99_GOAL_MS = 10.0
SEED = 20260115


def _say(message: str) -> None:
    sys.stderr.write(f"  mcp: {message}\n")
    sys.stderr.flush()


def run(quick: bool, *, n: int = FACTS, calls: int | None = None) -> list[Row]:
    calls = calls or CALLS[quick]
    with tempfile.TemporaryDirectory(prefix="memcli-bench-mcp-") as tmp:
        return _run(Path(tmp), n, calls)


def _run(tmp: Path, n: int, calls: int) -> list[Row]:
    home = tmp / "home"
    home.mkdir()
    db = tmp / "memory.db"
    _say(f"building a memory of {n:,} facts")
    triples = generate_triples(n, SEED)
    with TripleStore(db) as store:
        store.add_many([(s, r, o, "bench") for s, r, o in triples], "import", "bench")
    rng = random.Random(SEED)
    entities = [rng.choice(triples)[rng.choice((0, 2))] for _ in range(calls)]
    env = dict(os.environ, MEMCLI_HOME=str(home), NO_COLOR="1")
    env.pop("MEMCLI_DB", None)
    command = [*venv_script("memcli", "memcli"), "mcp", "--db", str(db)]

    _say(f"{calls} calls of each tool in process")
    local, local_cpu = _in_process(db, entities, calls)
    _say(f"{calls} calls of each tool over stdio")
    stdio, stdio_cpu = asyncio.run(_stdio(command, env, entities, calls))
    _say(f"{calls} calls of each tool from {HTTP_CLIENTS} HTTP clients at once")
    http, rates, http_cpu = _http(command, env, entities, calls)

    rows: list[Row] = []
    size = f"{n // 1000}k" if n % 1000 == 0 else str(n)
    for tool in ("memory_facts", "memory_add"):
        for q in (50, 99):
            ours = percentile(stdio[tool], q)
            base = percentile(local[tool], q)
            rows.append(_latency_row(f"{tool} p{q} over stdio vs store in process, {size} facts",
                                     ours, base, q))
        for q in (50, 99):
            ours = percentile(http[tool], q)
            base = percentile(local[tool], q)
            rows.append(
                _latency_row(
                    f"{tool} p{q}, {HTTP_CLIENTS} concurrent HTTP clients vs store in process, "
                    f"{size} facts",
                    ours,
                    base,
                    q,
                )
            )
        rows.append(
            row(
                f"{tool} calls/s, {HTTP_CLIENTS} concurrent HTTP clients together",
                rates[tool],
                None,
                "calls/s",
            )
        )
        # CPU time, which other load on the machine does not inflate as it does wall time.
        server_cpu, client_cpu = stdio_cpu[tool]
        for name, ours in (
            (f"{tool} CPU a call, memcli mcp over stdio (mean) vs store in process", server_cpu),
            (f"{tool} CPU a call, the SDK's client over stdio (mean) vs store in process",
             client_cpu),
            (f"{tool} CPU a call, memcli mcp with {HTTP_CLIENTS} HTTP clients (mean) vs store",
             http_cpu[tool]),
        ):
            base = local_cpu[tool]
            rows.append(row(name, ours, base, "ms", ratio=speed_ratio(ours, base)))
    return rows


def _latency_row(name: str, ours_ms: float, base_ms: float, q: int) -> Row:
    goal = f"ours < {P99_GOAL_MS:g} ms" if q == 99 else ""
    return row(
        name,
        ours_ms,
        base_ms,
        "ms",
        ratio=speed_ratio(ours_ms, base_ms),
        goal=goal,
        ok=(ours_ms < P99_GOAL_MS) if q == 99 else None,
    )


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def _in_process(
    db: Path, entities: list[str], calls: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Wall times (ms) of each store call, and the mean CPU ms a call."""
    cpu: dict[str, float] = {}
    with TripleStore(db) as store:
        started = time.process_time()
        facts = [_timed(lambda e=e: store.facts_about(e, limit=100)) for e in entities]
        cpu["memory_facts"] = (time.process_time() - started) * 1000 / len(entities)
        started = time.process_time()
        adds = [
            _timed(lambda i=i: store.add(f"Local {i}", "country", "Iceland", "bench"))
            for i in range(calls)
        ]
        cpu["memory_add"] = (time.process_time() - started) * 1000 / calls
    return {"memory_facts": facts, "memory_add": adds}, cpu


def _cpu_ms(pid: int | None) -> float | None:
    """CPU time (user + system, ms) a process has used so far; None off Linux."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _child_server() -> int | None:
    """The pid of the `memcli mcp` this process started (the stdio client's child)."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if parent == me and b"mcp" in cmdline:
            return int(entry.name)
    return None


def _per_call(before: float | None, after: float | None, calls: int) -> float | None:
    if before is None or after is None:
        return None
    return (after - before) / calls


async def _stdio(
    command: list[str], env: dict[str, str], entities: list[str], calls: int
) -> tuple[dict[str, list[float]], dict[str, tuple[float | None, float]]]:
    """Wall times (ms) of each call, and per tool the mean CPU ms a call of the server
    and of this process (the client)."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.types import Implementation

    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    out: dict[str, list[float]] = {"memory_facts": [], "memory_add": []}
    cpu: dict[str, tuple[float | None, float]] = {}
    with open(os.devnull, "w") as errlog:
        transport = stdio_client(params, errlog=errlog)
        info = Implementation(name="bench", version="0")
        async with Client(transport, client_info=info) as client:
            for entity in entities[:20]:  # warm up: worker threads, their connections
                await client.call_tool("memory_facts", {"entity": entity})
            server = _child_server()
            for tool in ("memory_facts", "memory_add"):
                server_before, client_before = _cpu_ms(server), time.process_time()
                await _drive_one(client, tool, entities[:calls], "Stdio", out)
                cpu[tool] = (
                    _per_call(server_before, _cpu_ms(server), calls),
                    (time.process_time() - client_before) * 1000 / calls,
                )
    return out, cpu


def _http(
    command: list[str], env: dict[str, str], entities: list[str], calls: int
) -> tuple[dict[str, list[float]], dict[str, float], dict[str, float | None]]:
    process = subprocess.Popen(
        [*command, "--http", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stderr is not None
        url = None
        for line in process.stderr:
            if line.startswith("memcli mcp: serving "):
                url = line.split()[-1]
                break
        if url is None:
            raise RuntimeError("memcli mcp --http did not start")
        return asyncio.run(_http_clients(url, entities, calls, process.pid))
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


async def _http_clients(
    url: str, entities: list[str], calls: int, server: int
) -> tuple[dict[str, list[float]], dict[str, float], dict[str, float | None]]:
    """Wall times (ms) of each call, calls/s of all clients together, and the server's
    mean CPU ms a call."""
    from mcp import Client
    from mcp.types import Implementation

    out: dict[str, list[float]] = {"memory_facts": [], "memory_add": []}
    share = max(1, calls // HTTP_CLIENTS)
    clients = [
        Client(url, client_info=Implementation(name=f"bench-{i}", version="0"))
        for i in range(HTTP_CLIENTS)
    ]
    entered = [await client.__aenter__() for client in clients]
    try:
        for client in entered:
            await client.call_tool("memory_facts", {"entity": entities[0]})
        rates: dict[str, float] = {}
        cpu: dict[str, float | None] = {}
        for tool in ("memory_facts", "memory_add"):
            before = _cpu_ms(server)
            start = time.perf_counter()
            await asyncio.gather(
                *(
                    _drive_one(client, tool, entities[i * share : (i + 1) * share], f"Http{i}", out)
                    for i, client in enumerate(entered)
                )
            )
            rates[tool] = share * HTTP_CLIENTS / (time.perf_counter() - start)
            cpu[tool] = _per_call(before, _cpu_ms(server), share * HTTP_CLIENTS)
    finally:
        for client in reversed(entered):
            await client.__aexit__(None, None, None)
    return out, rates, cpu


async def _drive_one(
    client: Any, tool: str, entities: list[str], label: str, out: dict[str, list[float]]
) -> None:
    for i, entity in enumerate(entities):
        arguments = (
            {"entity": entity}
            if tool == "memory_facts"
            else {"subject": f"{label} {i}", "relation": "country", "object": "Iceland"}
        )
        start = time.perf_counter()
        result = await client.call_tool(tool, arguments)
        out[tool].append((time.perf_counter() - start) * 1000)
        assert not result.is_error, result.content
