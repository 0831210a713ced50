"""`memcli mcp`: tool-call round trips against calling the store directly in process, and
against a tool that does nothing (what the protocol itself costs), at 100,000 facts (the
same size with --quick, fewer calls).

The server is `memcli mcp`'s own (`MemoryServer` and its transports, as `memcli mcp` and
`memcli mcp --http` run them) started as a subprocess by `python -m bench.bench_mcp
serve`, which adds one tool, `bench_noop(entity)`: it validates its argument and returns
a one-field result through the same path as the memory tools, without touching memory.

- stdio: one SDK client (`mcp.Client`), each round calling `memory_facts` (a random
  entity of the memory), `memory_add` (a new fact), `bench_noop`, and the store in this
  process (`TripleStore.facts_about` / `TripleStore.add`, the same arguments), in an
  order that rotates, so that all four see the same load on the machine. p50 and p99 of
  each call's wall time; the CPU time of each call in the server (its threads' run time
  from /proc) and in the client (this process), and of the store call in process.
- HTTP: the server with `--http 127.0.0.1:0`, 8 SDK clients at once (one session each,
  all calling concurrently), one tool at a time: p50 and p99 of each call's wall time,
  the calls per second of all eight together, and the CPU time a call of the server and
  of the clients (all eight in this process). With every process on one core, a call
  waits for the other seven: p50 is about 8 / (calls per second). Then the same eight
  clients paced, each calling 20 times a second (160 calls/s in all, a third of what the
  server answers back to back): the latency an agent sees while seven others use the
  server, rather than how long a queue of eight takes.

Goal (issue #15): p99 under 10 ms at 100,000 facts, over stdio and with 8 HTTP clients.
Wall times depend on the load on the machine; CPU times much less.
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
from typing import Annotated, Any

from pydantic import Field

from bench.common import Row, generate_triples, percentile, row, speed_ratio
from memcli.store.core import TripleStore

FACTS = 100_000
CALLS = {False: 1000, True: 100}
HTTP_CLIENTS = 8
PACED_RATE = 20.0  # calls/s of each HTTP client in the paced rows (160/s in all)
P99_GOAL_MS = 10.0
SEED = 20260115
NOOP = "bench_noop"
TOOLS = ("memory_facts", "memory_add")
ROOT = Path(__file__).resolve().parent.parent


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
    command = [sys.executable, "-m", "bench.bench_mcp", "serve", str(db)]

    _say(f"{calls} rounds over stdio: memory_facts, memory_add, {NOOP}, the store in process")
    stdio = asyncio.run(_stdio(command, env, db, entities))
    _say(f"{calls} calls of each tool from {HTTP_CLIENTS} HTTP clients at once")
    http = _http(command, env, entities)

    size = f"{n // 1000}k" if n % 1000 == 0 else str(n)
    rows: list[Row] = []
    rows += _latency_rows(" over stdio", stdio.wall, stdio, size)
    for q in (50, 99):
        rows.append(
            row(
                f"{NOOP} p{q} over stdio (the protocol alone: a tool that does nothing)",
                percentile(stdio.wall[NOOP], q),
                None,
                "ms",
            )
        )
    # CPU time, which other load on the machine does not inflate as it does wall time.
    for tool in TOOLS:
        for side, name in (("server", "memcli mcp"), ("client", "the SDK's client")):
            ours, base = stdio.cpu(side, tool), stdio.cpu(side, NOOP)
            rows.append(
                row(
                    f"{tool} CPU a call over stdio, {name}, vs {NOOP}",
                    ours,
                    base,
                    "ms",
                    ratio=speed_ratio(ours, base),
                )
            )
        rows.append(
            row(
                f"{tool} CPU a call, the store in process",
                stdio.cpu("client", f"local {tool}"),
                None,
                "ms",
            )
        )

    rows += _latency_rows(f", {HTTP_CLIENTS} concurrent HTTP clients", http.wall, stdio, size)
    for q in (50, 99):
        rows.append(
            row(
                f"{NOOP} p{q}, {HTTP_CLIENTS} concurrent HTTP clients",
                percentile(http.wall[NOOP], q),
                None,
                "ms",
            )
        )
    paced = f", {HTTP_CLIENTS} HTTP clients paced at {PACED_RATE:g} calls/s each"
    rows += _latency_rows(paced, http.paced, stdio, size)
    for tool in TOOLS:
        ours, base = http.rates[tool], http.rates[NOOP]
        rows.append(
            row(
                f"{tool} calls/s, {HTTP_CLIENTS} concurrent HTTP clients together, vs {NOOP}",
                ours,
                base,
                "calls/s",
                ratio=speed_ratio(base, ours),
            )
        )
        ours, base = http.cpu[tool], http.cpu[NOOP]
        rows.append(
            row(
                f"{tool} CPU a call, memcli mcp with {HTTP_CLIENTS} HTTP clients, vs {NOOP}",
                ours,
                base,
                "ms",
                ratio=speed_ratio(ours, base),
            )
        )
        ours, base = http.client_cpu[tool], http.client_cpu[NOOP]
        rows.append(
            row(
                f"{tool} CPU a call, the {HTTP_CLIENTS} SDK clients over HTTP, vs {NOOP}",
                ours,
                base,
                "ms",
                ratio=speed_ratio(ours, base),
            )
        )
    return rows


def _latency_rows(how: str, walls: dict[str, list[float]], stdio: _Stdio, size: str) -> list[Row]:
    """p50 and p99 of each memory tool's calls (`how`: " over stdio", ", 8 ..."), each
    against the same call to the store in process."""
    return [
        _latency_row(
            f"{tool} p{q}{how} vs store in process, {size} facts",
            percentile(walls[tool], q),
            percentile(stdio.wall[f"local {tool}"], q),
            q,
        )
        for tool in TOOLS
        for q in (50, 99)
    ]


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


# -- CPU time of the server -------------------------------------------------------------


def _cpu_ms(pid: int | None) -> float | None:
    """CPU time (ms) a process's threads have run so far: the sum of their schedstat run
    times (nanoseconds), else user + system time in clock ticks; None off Linux."""
    if pid is None:
        return None
    try:
        total = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue
        if total:
            return total / 1e6
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _child_server() -> int | None:
    """The pid of the server this process started (the stdio client's child)."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if parent == me and b"bench.bench_mcp" in cmdline:
            return int(entry.name)
    return None


# -- stdio --------------------------------------------------------------------------------


class _Stdio:
    """Wall times (ms) of each call, by tool; CPU ms by side ('server', 'client') and
    tool, summed over the calls."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.cpu_sum: dict[tuple[str, str], float | None] = {}

    def note(self, tool: str, wall: float, client: float, server: float | None) -> None:
        self.wall.setdefault(tool, []).append(wall)
        self.cpu_sum[("client", tool)] = (self.cpu_sum.get(("client", tool)) or 0.0) + client
        so_far = self.cpu_sum.get(("server", tool), 0.0)
        self.cpu_sum[("server", tool)] = (
            None if server is None or so_far is None else so_far + server
        )

    def cpu(self, side: str, tool: str) -> float | None:
        total = self.cpu_sum.get((side, tool))
        return None if total is None else total / len(self.wall[tool])


async def _stdio(command: list[str], env: dict[str, str], db: Path, entities: list[str]) -> _Stdio:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.types import Implementation

    params = StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=str(ROOT))
    out = _Stdio()
    with open(os.devnull, "w") as errlog, TripleStore(db) as store:
        transport = stdio_client(params, errlog=errlog)
        info = Implementation(name="bench", version="0")
        async with Client(transport, client_info=info) as client:
            for entity in entities[:20]:  # warm up: the connections, the caches
                await client.call_tool("memory_facts", {"entity": entity})
                await client.call_tool(NOOP, {"entity": entity})
            server = _child_server()

            async def remote(tool: str, arguments: dict[str, Any]) -> None:
                server_before, client_before = _cpu_ms(server), time.process_time()
                start = time.perf_counter()
                result = await client.call_tool(tool, arguments)
                wall = (time.perf_counter() - start) * 1000
                client_ms = (time.process_time() - client_before) * 1000
                server_after = _cpu_ms(server)
                assert not result.is_error, result.content
                spent = (
                    None
                    if server_before is None or server_after is None
                    else server_after - server_before
                )
                out.note(tool, wall, client_ms, spent)

            def local(tool: str, fn: Callable[[], Any]) -> None:
                client_before = time.process_time()
                start = time.perf_counter()
                fn()
                wall = (time.perf_counter() - start) * 1000
                out.note(tool, wall, (time.process_time() - client_before) * 1000, None)

            for i, entity in enumerate(entities):
                calls: list[Callable[[], Any]] = [
                    lambda e=entity: remote("memory_facts", {"entity": e}),
                    lambda i=i: remote(
                        "memory_add",
                        {"subject": f"Stdio {i}", "relation": "country", "object": "Iceland"},
                    ),
                    lambda e=entity: remote(NOOP, {"entity": e}),
                    lambda e=entity: local(
                        "local memory_facts", lambda: store.facts_about(e, limit=100)
                    ),
                    lambda i=i: local(
                        "local memory_add",
                        lambda: store.add(f"Local {i}", "country", "Iceland", "bench"),
                    ),
                ]
                shift = i % len(calls)
                for call in calls[shift:] + calls[:shift]:
                    done = call()
                    if done is not None:
                        await done
    return out


# -- HTTP ---------------------------------------------------------------------------------


class _Http:
    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.rates: dict[str, float] = {}
        self.cpu: dict[str, float | None] = {}
        self.client_cpu: dict[str, float] = {}
        self.paced: dict[str, list[float]] = {}


def _http(command: list[str], env: dict[str, str], entities: list[str]) -> _Http:
    process = subprocess.Popen(
        [*command, "--http", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(ROOT),
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
            raise RuntimeError("the bench's memcli mcp --http did not start")
        return asyncio.run(_http_clients(url, entities, process.pid))
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


async def _http_clients(url: str, entities: list[str], server: int) -> _Http:
    from mcp import Client
    from mcp.types import Implementation

    out = _Http()
    share = max(1, len(entities) // HTTP_CLIENTS)
    clients = [
        Client(url, client_info=Implementation(name=f"bench-{i}", version="0"))
        for i in range(HTTP_CLIENTS)
    ]
    entered = [await client.__aenter__() for client in clients]
    try:
        for client in entered:
            await client.call_tool("memory_facts", {"entity": entities[0]})
            await client.call_tool(NOOP, {"entity": entities[0]})
        for tool in (*TOOLS, NOOP):
            walls: list[float] = []
            before, client_before = _cpu_ms(server), time.process_time()
            start = time.perf_counter()
            await asyncio.gather(
                *(
                    _drive_one(
                        client, tool, entities[i * share : (i + 1) * share], f"Http{i}", walls
                    )
                    for i, client in enumerate(entered)
                )
            )
            out.rates[tool] = share * HTTP_CLIENTS / (time.perf_counter() - start)
            out.client_cpu[tool] = (
                (time.process_time() - client_before) * 1000 / (share * HTTP_CLIENTS)
            )
            after = _cpu_ms(server)
            out.cpu[tool] = (
                None
                if before is None or after is None
                else (after - before) / (share * HTTP_CLIENTS)
            )
            out.wall[tool] = walls
        for tool in TOOLS:  # paced: each client PACED_RATE calls a second, phases spread
            paced: list[float] = []
            await asyncio.gather(
                *(
                    _drive_one(
                        client,
                        tool,
                        entities[i * share : (i + 1) * share],
                        f"Paced{i}",
                        paced,
                        rate=PACED_RATE,
                        phase=i / (PACED_RATE * HTTP_CLIENTS),
                    )
                    for i, client in enumerate(entered)
                )
            )
            out.paced[tool] = paced
    finally:
        for client in reversed(entered):
            await client.__aexit__(None, None, None)
    return out


async def _drive_one(
    client: Any,
    tool: str,
    entities: list[str],
    label: str,
    out: list[float],
    *,
    rate: float | None = None,
    phase: float = 0.0,
) -> None:
    """Calls `tool` once for each entity, back to back, or at `rate` calls a second
    (starting `phase` seconds in; a call that falls behind goes at once)."""
    begun = time.perf_counter() + phase
    for i, entity in enumerate(entities):
        if rate is not None:
            wait = begun + i / rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
        arguments = (
            {"subject": f"{label} {i}", "relation": "country", "object": "Iceland"}
            if tool == "memory_add"
            else {"entity": entity}
        )
        start = time.perf_counter()
        result = await client.call_tool(tool, arguments)
        out.append((time.perf_counter() - start) * 1000)
        assert not result.is_error, result.content


# -- the bench's server --------------------------------------------------------------------


async def bench_noop(
    entity: Annotated[str, Field(description="Any text; it is sent back.")],
) -> Any:
    """Does nothing: the cost of a tool call itself (the bench's baseline)."""
    from memcli.mcp.server import tool_result

    return tool_result({"entity": entity})


def serve(argv: list[str]) -> None:
    """`python -m bench.bench_mcp serve DB [--http HOST:PORT]`: `memcli mcp --db DB` (the
    same server and transports) with one more tool, `bench_noop`."""
    from memcli.mcp import server as mcp_server
    from memcli.mcp.options import parse_http

    db = Path(argv[0])
    http = argv[argv.index("--http") + 1] if "--http" in argv else None
    mcp_server.setup_logging()
    memory = mcp_server.MemoryServer(db=db)
    memory.mcp.add_tool(bench_noop, name=NOOP, structured_output=False)
    if http is None:
        mcp_server.serve_stdio(memory)
        return
    host, port = parse_http(http)
    mcp_server.serve_http(
        memory,
        host,
        port,
        None,
        lambda url: sys.stderr.write(f"memcli mcp: serving {url}\n"),
    )


if __name__ == "__main__":
    if sys.argv[1:2] != ["serve"]:
        sys.exit("usage: python -m bench.bench_mcp serve DB [--http HOST:PORT]")
    serve(sys.argv[2:])
