"""`memcli mcp`: the memory behind the Model Context Protocol, on the official `mcp` SDK
(2.x, whose high-level server is `MCPServer`).

Each tool call runs a plain function of `memcli.mcp.tools`: the quick ones (QUICK:
index reads, small writes) on the event loop's thread with a connection of its own,
the others, and a write while another process holds the lock, on a small pool of
worker threads, each with its own connection to the memory file (SQLite WAL: the CLI,
the REPL and the server read and write it at once; writes wait for the lock, none is
lost). Results go out as the tools build them (`tool_result`). A `MemcliError` becomes
an MCP tool error carrying the CLI's one-line message; the server stays up. The model
for `memory_ingest` is loaded on its first call, in a thread of its own. Logs go to
`mcp.log` in MEMCLI_HOME and, from warnings up, to stderr: on stdio, stdout carries
protocol messages only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import os
import socket
import sqlite3
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pydantic_core
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field
from typing_extensions import NotRequired, TypedDict  # noqa: UP035 (pydantic, on 3.11)

from memcli import paths
from memcli.errors import DatabaseError, MemcliError, UsageError
from memcli.mcp import tools
from memcli.mcp.options import check_bind
from memcli.store.core import TripleStore

log = logging.getLogger("memcli.mcp")

SERVER_NAME = "memcli"
LOG_FILENAME = "mcp.log"
STORE_THREADS = 4
HTTP_PATH = "/mcp"

INSTRUCTIONS = """\
memcli's memory: facts as (subject, relation, object) triples, each with a source and
dates, shared with the person who keeps it (they see and can undo every change with
`memcli mem log` / `memcli mem undo`). Read before you write: memory_search for free
text, memory_facts for one entity. Relations are a fixed vocabulary (the resource
memcli://relations lists them with their cardinality); single-valued ones keep one
current object per subject, so adding a new one supersedes the old (kept as history).
Every write is one batch that memory_undo can revert."""


# Tools that run on the event loop's thread (MemoryServer._quick): index reads and small
# writes (memory_add_many and memory_remove of at most QUICK_ROWS). memory_search (fuzzy
# matching over every entity name), memory_history (a scan of the change log),
# memory_undo (a batch of any size) and memory_ingest (the model) keep to worker
# threads, where SQLite's long statements let the loop serve other calls meanwhile.
QUICK = frozenset(
    {
        "memory_facts",
        "memory_add",
        "memory_add_many",
        "memory_supersede",
        "memory_edit",
        "memory_remove",
    }
)
QUICK_ROWS = 50
READ_TOOLS = frozenset({"memory_search", "memory_facts", "memory_history"})
_LOCKED = object()  # MemoryServer._quick: run it on a worker thread instead


Limit = Annotated[int, Field(ge=1, le=tools.MAX_LIMIT, description="At most this many.")]


# -- what the tools return (their output schemas) ---------------------------------------


class Fact(TypedDict):
    id: int
    subject: str
    relation: str
    object: str
    source: str
    created_at: str
    updated_at: str
    batch_id: int
    current: NotRequired[bool]
    superseded_at: NotRequired[str | None]
    superseded_by: NotRequired[int | None]


class ScoredFact(Fact):
    score: float


class SearchResult(TypedDict):
    query: str
    facts: list[ScoredFact]


class FactsResult(TypedDict):
    entity: str
    relation: str | None
    facts: list[Fact]
    note: NotRequired[str]


class AddResult(TypedDict):
    fact: Fact
    created: bool
    batch_id: int | None
    superseded: list[Fact]


class AddManyResult(TypedDict):
    batch_id: int | None
    created: list[Fact]
    already_in_memory: int
    superseded: list[Fact]


class EditResult(TypedDict):
    fact: Fact
    batch_id: int


class RemoveResult(TypedDict):
    removed: list[Fact]
    batch_id: int


class ChangeEntry(TypedDict):
    id: int
    batch_id: int
    op: str
    triple_id: int
    before: list[str] | None
    after: list[str] | None
    at: str


class BatchEntry(TypedDict):
    id: int
    kind: str
    description: str
    created_at: str
    undone_by: int | None
    changes: int
    details: list[ChangeEntry]


class HistoryResult(TypedDict):
    entity: str | None
    batches: list[BatchEntry]


class BatchInfo(TypedDict):
    id: int
    kind: str
    description: str
    created_at: str
    undone_by: int | None
    changes: int


class UndoResult(TypedDict):
    undone: BatchInfo
    undo_batch_id: int | None


class IngestResult(TypedDict):
    sentences: int
    proposed: int
    stored: list[Fact]
    batch_ids: list[int]
    problems: list[str]


class FactInput(TypedDict):
    subject: Annotated[str, Field(description="Who or what the fact is about.")]
    relation: Annotated[str, Field(description="A relation memory knows, e.g. 'country'.")]
    object: Annotated[str, Field(description="The value.")]
    source: NotRequired[Annotated[str, Field(description="Where this fact comes from.")]]


# -- the server --------------------------------------------------------------------------


@dataclass
class ModelOptions:
    """What `memory_ingest` loads on first use (the CLI's --model/--adapter/...)."""

    model: str | None = None
    adapter: str | None = None
    no_adapter: bool = False
    threads: int | None = None
    engine: str | None = None  # an inference server's URL (`--engine`), else in-process


@dataclass
class MemoryServer:
    """The memory file, the worker threads that use it, and the MCP server over them."""

    db: Path
    read_only: bool = False
    source: str | None = None
    model: ModelOptions = field(default_factory=ModelOptions)

    def __post_init__(self) -> None:
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="memcli-store")
        self._engine_pool = ThreadPoolExecutor(1, thread_name_prefix="memcli-engine")
        self._engine: Any = None
        self._engine_store: TripleStore | None = None
        self._loop_store: TripleStore | None = None
        self._loop_thread: int | None = None
        # Open once here, so that a bad --db is refused before the server starts.
        self._open_store().close()
        self.mcp = self._build()

    # -- stores and threads ---------------------------------------------------------------

    def _open_store(self) -> TripleStore:
        if self.read_only:
            return TripleStore.open_readonly(self.db)
        return TripleStore(self.db)

    def store(self) -> TripleStore:
        """This worker thread's connection to the memory file."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = self._open_store()
        return store

    def loop_store(self) -> TripleStore:
        """The event loop thread's own connection, for QUICK tools. It never waits for
        the write lock (busy timeout 0): while another process holds it, the call goes
        to a worker thread instead, whose connection waits (BUSY_TIMEOUT_S)."""
        if self._loop_store is None:
            store = self._open_store()
            store.db.execute("PRAGMA busy_timeout = 0")
            self._loop_store, self._loop_thread = store, threading.get_ident()
        return self._loop_store

    def close(self) -> None:
        """Close every connection in the thread that opened it (SQLite insists), then
        stop the threads."""
        if self._loop_store is not None and self._loop_thread == threading.get_ident():
            self._loop_store.close()
            self._loop_store = None
        together = threading.Barrier(STORE_THREADS)

        def close_mine() -> None:
            store = getattr(self._local, "store", None)
            if store is not None:
                store.close()
                self._local.store = None
            with contextlib.suppress(threading.BrokenBarrierError):
                together.wait(timeout=5)  # one task per thread

        for job in [self._pool.submit(close_mine) for _ in range(STORE_THREADS)]:
            job.result()
        if self._engine is not None:
            self._engine_pool.submit(self._engine.close).result()
        if self._engine_store is not None:
            self._engine_pool.submit(self._engine_store.close).result()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._engine_pool.shutdown(wait=True, cancel_futures=True)

    async def _in_pool(self, pool: ThreadPoolExecutor, call: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, call)

    async def run(
        self, name: str, fn: Callable[..., Any], *args: Any, rows: int = 1, **kwargs: Any
    ) -> Any:
        """`fn(store, *args, **kwargs)`, on the event loop's thread for QUICK tools (of at
        most QUICK_ROWS `rows`) while memory is not locked by another writer, else on a
        worker thread; a MemcliError comes back as a tool error with the CLI's message."""
        started = time.perf_counter()
        try:
            result: Any = _LOCKED
            if rows <= QUICK_ROWS:
                result = self._quick(name, fn, args, kwargs)
            if result is _LOCKED:
                result = await self._in_pool(self._pool, lambda: fn(self.store(), *args, **kwargs))
        except MemcliError as exc:
            log.info("%s refused in %.1f ms: %s", name, _ms(started), exc)
            return _tool_error(str(exc))
        _log_slow(name, started)
        return tool_result(result)

    def _quick(self, name: str, fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
        """A QUICK tool's result, computed right here on the loop's thread; _LOCKED when
        that would mean waiting for SQLite's lock (nothing was changed: a write runs in
        one transaction, begun before the tool, and a busy read changed nothing).

        Handing every call to a worker thread and back cost 0.3-0.5 ms of CPU a call
        and two thread wake-ups (each a chance to wait for the CPU on a busy machine).
        QUICK tools only read through indexes and write a few rows; they hold the GIL
        throughout, so a worker thread would not let anything else run meanwhile."""
        if name not in QUICK:
            return _LOCKED
        store = self.loop_store()
        writes = name not in READ_TOOLS and not self.read_only
        began = False
        try:
            if not writes:
                return fn(store, *args, **kwargs)
            with store.transaction():  # the write lock, or DatabaseError at once
                began = True
                return fn(store, *args, **kwargs)
        except DatabaseError:
            if writes and not began:  # could not begin: a worker thread will wait
                return _LOCKED
            raise
        except sqlite3.OperationalError as exc:  # busy mid-way: rolled back, changed nothing
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return _LOCKED
            raise

    def actor(self, ctx: Context | None) -> str:
        """'mcp <client name>', from the client's initialize clientInfo."""
        name = _client_name(ctx)
        return f"mcp {name}" if name else "mcp client"

    def default_source(self, ctx: Context | None, given: str | None) -> str:
        if given is not None and given.strip():
            return given.strip()
        return self.source or self.actor(ctx)

    # -- the model for memory_ingest --------------------------------------------------------

    def _load_engine(self) -> Any:
        """The model engine, loaded on first use, in (and only used by) the engine thread."""
        if self._engine is None:
            from memcli.runtime.loader import open_engine

            store = TripleStore(self.db)
            try:
                self._engine = open_engine(
                    store,
                    engine=self.model.engine,
                    model=self.model.model,
                    adapter=self.model.adapter,
                    no_adapter=self.model.no_adapter,
                    threads=self.model.threads,
                    notify=log.info,
                )
            except BaseException:
                store.close()
                raise
            self._engine_store = store
            log.info("memory_ingest: model loaded")
        return self._engine

    async def ingest(self, text: str, source: str, actor: str) -> Any:
        started = time.perf_counter()

        def work() -> dict[str, Any]:
            tools.check_ingest(text)
            engine = self._load_engine()
            assert self._engine_store is not None
            return tools.ingest(engine, self._engine_store, text, source=source, actor=actor)

        try:
            result = await self._in_pool(self._engine_pool, work)
        except MemcliError as exc:
            log.info("memory_ingest refused in %.1f ms: %s", _ms(started), exc)
            return _tool_error(str(exc))
        log.info("memory_ingest done in %.1f ms", _ms(started))
        return tool_result(result)

    # -- the MCP surface --------------------------------------------------------------------

    def _build(self) -> MCPServer:
        read = ToolAnnotations(read_only_hint=True, open_world_hint=False)
        chosen: list[tuple[Callable[..., Any], ToolAnnotations]] = [
            (self.memory_search, read),
            (self.memory_facts, read),
            (self.memory_history, read),
        ]
        if not self.read_only:
            adds = ToolAnnotations(
                read_only_hint=False,
                destructive_hint=False,
                idempotent_hint=True,
                open_world_hint=False,
            )
            changes = ToolAnnotations(
                read_only_hint=False, destructive_hint=True, open_world_hint=False
            )
            chosen += [
                (self.memory_add, adds),
                (self.memory_add_many, adds),
                (self.memory_supersede, changes),
                (self.memory_edit, changes),
                (self.memory_remove, changes),
                (self.memory_undo, changes),
                (self.memory_ingest, ToolAnnotations(read_only_hint=False, open_world_hint=False)),
            ]
        built = []
        for fn, hints in chosen:
            tool = Tool.from_function(fn, annotations=hints, structured_output=True)
            # What clients are shown, and validate each result against, is the compact
            # form. The SDK validates results only against an output_model: without one,
            # the CallToolResult the tool returns (tool_result) goes out as it is. Each
            # result was otherwise checked against the full TypedDicts and dumped twice
            # more (0.5 ms of the server's 3.7 ms a `memory_facts` call); tests/test_mcp.py
            # checks every result it gets against them instead.
            tool.fn_metadata.output_schema = published_schema(tool.fn_metadata.output_schema)
            tool.fn_metadata.output_model = None
            built.append(tool)
        server: MCPServer = MCPServer(
            SERVER_NAME,
            title="memcli memory",
            instructions=INSTRUCTIONS,
            version=_version(),
            log_level="WARNING",
            tools=built,
        )
        self._add_resources(server)
        return server

    def _add_resources(self, server: MCPServer) -> None:
        async def relations() -> str:
            return await self._resource(lambda store: _json(tools.relations(store)))

        async def stats() -> str:
            return await self._resource(lambda store: _json(tools.stats(store)))

        async def snapshot() -> str:
            return await self._resource(_snapshot_jsonl)

        server.resource(
            "memcli://relations",
            name="relations",
            title="Relations",
            description="Every relation memory knows: id, name, Wikidata id, how many "
            "current facts use it, and its cardinality ('single': one current object "
            "per subject, a new one supersedes the old; 'multi': objects accumulate).",
            mime_type="application/json",
        )(relations)
        server.resource(
            "memcli://stats",
            name="stats",
            title="Memory statistics",
            description="How much memory holds (facts, entities, relations, batches), "
            "its file and size.",
            mime_type="application/json",
        )(stats)
        server.resource(
            "memcli://snapshot",
            name="snapshot",
            title="Snapshot export",
            description="The whole memory as JSON lines, one fact per line with ids, "
            "names, sources and timestamps (what `memcli mem export` writes; "
            "`memcli mem restore` reads it back).",
            mime_type="application/x-ndjson",
        )(snapshot)

    async def _resource(self, fn: Callable[[TripleStore], str]) -> str:
        try:
            return await self._in_pool(self._pool, lambda: fn(self.store()))
        except MemcliError as exc:
            raise ResourceError(str(exc)) from None

    # The tools. Their signatures are the JSON schemas clients see; their docstrings the
    # descriptions.

    async def memory_search(
        self,
        query: Annotated[
            str, Field(description="Free text: names of people, places, things, relations.")
        ],
        limit: Limit = 10,
    ) -> SearchResult:
        """Find current facts for a piece of text, best first, with a score (0-100).
        Names are matched as the memory's own reads match them: exactly (ignoring case
        and spacing) where the text names an entity or relation, else approximately
        (misspellings). Use memory_facts to list everything about one entity."""
        return await self.run("memory_search", tools.search, query, limit)

    async def memory_facts(
        self,
        entity: Annotated[str, Field(description="The entity, e.g. 'Marie Curie'.")],
        relation: Annotated[
            str | None, Field(description="Only facts with this relation, e.g. 'employer'.")
        ] = None,
        limit: Limit = 100,
    ) -> FactsResult:
        """The current facts of one entity, as subject or object, oldest first, each with
        its id, source and dates. A misspelt name is matched to the closest entity (the
        result's 'entity' and 'note' say so)."""
        return await self.run("memory_facts", tools.facts, entity, relation, limit)

    async def memory_history(
        self,
        entity: Annotated[
            str | None,
            Field(description="Only changes to facts naming this entity; omit for all."),
        ] = None,
        limit: Annotated[
            int, Field(ge=1, le=tools.MAX_LIMIT, description="At most this many batches.")
        ] = 20,
    ) -> HistoryResult:
        """The change log, newest batch first: who changed what and when (each batch's
        kind, description, date, whether it was undone, and its changes: added,
        edited, superseded, removed). Batch ids are what memory_undo takes."""
        return await self.run("memory_history", tools.history, entity, limit)

    async def memory_add(
        self,
        subject: Annotated[str, Field(description="Who or what the fact is about.")],
        relation: Annotated[
            str,
            Field(description="A relation memory knows (see memcli://relations), e.g. 'country'."),
        ],
        object: Annotated[str, Field(description="The value, e.g. 'Switzerland'.")],
        ctx: Context,
        source: Annotated[
            str | None,
            Field(description="Where the fact comes from (default: 'mcp <your client name>')."),
        ] = None,
        new_relation: Annotated[
            bool, Field(description="Accept a relation name memory does not know yet.")
        ] = False,
    ) -> AddResult:
        """Add one fact (one batch, undoable). Validated as `memcli mem add` validates: an
        unknown relation is refused with the closest known ones named; names may not
        contain memory-command delimiters. A fact memory already holds changes nothing
        (created: false). On a single-valued relation the new fact supersedes the
        subject's current one (returned in 'superseded', kept as history)."""
        return await self.run(
            "memory_add",
            tools.add,
            subject,
            relation,
            object,
            source=self.default_source(ctx, source),
            actor=self.actor(ctx),
            new_relation=new_relation,
        )

    async def memory_add_many(
        self,
        facts: Annotated[
            list[FactInput], Field(min_length=1, description="The facts to add, in order.")
        ],
        ctx: Context,
        source: Annotated[
            str | None,
            Field(description="Source for facts that give none (default: 'mcp <client>')."),
        ] = None,
        new_relation: Annotated[
            bool, Field(description="Accept relation names memory does not know yet.")
        ] = False,
    ) -> AddManyResult:
        """Add several facts as one batch (one memory_undo reverts them all). All or
        nothing: one bad fact (named by its index) and memory is unchanged. Facts
        already in memory are skipped and counted."""
        return await self.run(
            "memory_add_many",
            tools.add_many,
            [dict(f) for f in facts],
            rows=len(facts),
            source=self.default_source(ctx, source),
            actor=self.actor(ctx),
            new_relation=new_relation,
        )

    async def memory_supersede(
        self,
        id: Annotated[int, Field(description="The fact that is no longer current.")],
        object: Annotated[str, Field(description="The new value that replaces its object.")],
        ctx: Context,
        source: Annotated[str | None, Field(description="Where the new value comes from.")] = None,
    ) -> AddResult:
        """Record that a fact changed: a new fact with the same subject and relation and
        the new object becomes current; the old one is kept as history (not deleted).
        Works for any relation ("she moved", "the CEO changed"). One batch, undoable."""
        return await self.run(
            "memory_supersede",
            tools.supersede,
            id,
            object,
            source=self.default_source(ctx, source),
            actor=self.actor(ctx),
        )

    async def memory_edit(
        self,
        id: Annotated[int, Field(description="The fact to change.")],
        ctx: Context,
        subject: Annotated[str | None, Field(description="New subject.")] = None,
        relation: Annotated[str | None, Field(description="New relation.")] = None,
        object: Annotated[str | None, Field(description="New object.")] = None,
        new_relation: Annotated[
            bool, Field(description="Accept a relation name memory does not know yet.")
        ] = False,
    ) -> EditResult:
        """Correct a fact in place (a typo, a wrong relation): its id stays. For a value
        that changed over time use memory_supersede instead, which keeps the old one.
        One batch, undoable."""
        return await self.run(
            "memory_edit",
            tools.edit,
            id,
            subject,
            relation,
            object,
            actor=self.actor(ctx),
            new_relation=new_relation,
        )

    async def memory_remove(
        self,
        ids: Annotated[list[int], Field(min_length=1, description="The facts to remove.")],
        ctx: Context,
    ) -> RemoveResult:
        """Remove facts by id, as one batch (memory_undo brings them back). An unknown id
        removes nothing."""
        return await self.run(
            "memory_remove", tools.remove, ids, rows=len(ids), actor=self.actor(ctx)
        )

    async def memory_undo(
        self,
        ctx: Context,
        batch: Annotated[
            int | None,
            Field(description="The batch to revert (from memory_history); default: the latest."),
        ] = None,
    ) -> UndoResult:
        """Revert a batch of changes exactly, as `memcli mem undo` does: the latest batch
        not yet undone, or the one given when no later batch changed the same facts."""
        return await self.run("memory_undo", tools.undo, batch, actor=self.actor(ctx))

    async def memory_ingest(
        self,
        text: Annotated[str, Field(description="Text stating facts, e.g. notes or a paragraph.")],
        ctx: Context,
        source: Annotated[
            str | None, Field(description="Where the text comes from (default: 'mcp <client>').")
        ] = None,
    ) -> IngestResult:
        """Have memcli's local model read the text sentence by sentence and store the
        facts it states (as `memcli ingest`: constrained to spans of each sentence and
        known relations; one batch per sentence). Returns what was stored. The model is
        loaded on the first call (seconds), and a sentence takes about half a second."""
        return await self.ingest(text, self.default_source(ctx, source), self.actor(ctx))


# Records that results hold by the hundred: clients are shown their field names and types
# in words, not one JSON-schema property each. The SDK's client validates every result
# against the published schema with `jsonschema`, in Python: for 100 facts that took
# 21 ms with a property per field behind $refs, 0.6 ms with records as plain objects.
COMPACT_RECORDS = ("Fact", "ScoredFact", "ChangeEntry")


def published_schema(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """`schema` with $refs inlined and the records of COMPACT_RECORDS compacted to an
    object with required keys and a description of each field."""
    if schema is None:
        return None
    definitions = dict(schema.get("$defs", {}))
    for name in COMPACT_RECORDS:
        if name in definitions:
            definitions[name] = _compact(name, definitions[name])

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(schema)


def _compact(name: str, record: dict[str, Any]) -> dict[str, Any]:
    def kind(prop: dict[str, Any]) -> str:
        if "anyOf" in prop:
            return " or ".join(kind(p) for p in prop["anyOf"])
        if prop.get("type") == "array":
            return f"array of {kind(prop.get('items', {}))}"
        return str(prop.get("type", "any"))

    fields = ", ".join(f"{key} ({kind(prop)})" for key, prop in record["properties"].items())
    return {
        "type": "object",
        "title": name,
        "description": f"{name}: {fields}",
        "required": list(record.get("required", [])),
    }


# -- helpers -------------------------------------------------------------------------------


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


SLOW_CALL_MS = 100.0  # calls that took longer are logged (every call: 5% of a call's CPU)


def _log_slow(name: str, started: float) -> None:
    took = _ms(started)
    if took >= SLOW_CALL_MS:
        log.info("%s took %.1f ms", name, took)
    elif log.isEnabledFor(logging.DEBUG):
        log.debug("%s done in %.1f ms", name, took)


def tool_result(result: dict[str, Any]) -> CallToolResult:
    """A tool's result, built once: the structured content, and the same JSON as text
    for clients that read only text (compact: it travels again inside the message)."""
    text = pydantic_core.to_json(result).decode()  # 0.09 ms for 50 facts; json.dumps 0.27
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=result)


def _tool_error(message: str) -> Any:
    """An MCP tool error (isError) whose text is the CLI's one-line message."""
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def _client_name(ctx: Context | None) -> str | None:
    if ctx is None:
        return None
    try:
        params = ctx.session.client_params
    except (ValueError, AttributeError):
        return None
    info = params.client_info if params is not None else None
    name = info.name if info is not None and info.name else ""
    shown = "".join(ch for ch in name if ch.isprintable())  # it goes into `mem log`
    return " ".join(shown.split())[:80] or None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1)


def _snapshot_jsonl(store: TripleStore) -> str:
    from memcli.store import snapshots

    with tempfile.TemporaryDirectory(prefix="memcli-mcp-") as folder:
        target = Path(folder) / "snapshot.jsonl"
        snapshots.export(store, str(target), "jsonl")
        return target.read_text("utf-8")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("memcli")
    except PackageNotFoundError:
        return ""


def setup_logging() -> Path:
    """INFO and up to mcp.log in MEMCLI_HOME, WARNING and up to stderr; never stdout."""
    target = paths.home() / LOG_FILENAME
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    to_file = logging.FileHandler(target, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    to_file.setLevel(logging.INFO)
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setFormatter(logging.Formatter("memcli mcp: %(levelname)s: %(message)s"))
    to_stderr.setLevel(logging.WARNING)
    root.addHandler(to_file)
    root.addHandler(to_stderr)
    root.setLevel(logging.INFO)
    for noisy in ("httpx", "httpx2", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return target


# -- transports ------------------------------------------------------------------------


class BearerToken:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>`."""

    def __init__(self, app: Any, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                reason = "missing" if not given else "wrong"
                log.warning("refused an HTTP request with a %s token", reason)
                body = (
                    b'{"error": "unauthorized: this memcli mcp server needs '
                    b'Authorization: Bearer <token>"}'
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b'Bearer realm="memcli"'),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


MAX_LINE = 1 << 26  # one JSON-RPC message (a large memory_add_many, say)


class _PipeLines:
    """Lines from a pipe, read by the event loop itself. The SDK's stdio transport reads
    and writes through worker threads (one hop for each line and each flush); on this
    machine that was 1.4 of the 5.9 ms a tool call took over stdio."""

    def __init__(self, fd: int):
        self.fd = fd

    def __aiter__(self) -> Any:
        return self._lines()

    async def _lines(self) -> Any:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_LINE)
        pipe = os.fdopen(self.fd, "rb", buffering=0, closefd=False)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        while line := await reader.readline():
            yield line.decode("utf-8", "replace")


class _PipeWriter:
    """Whole lines to a pipe, written at once (a client reads what it asked for)."""

    def __init__(self, fd: int):
        self.fd = fd

    async def write(self, text: str) -> None:
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[os.write(self.fd, data) :]

    async def flush(self) -> None:
        return None


def _pipes_usable() -> bool:
    try:
        return all(stat.S_ISFIFO(os.fstat(fd).st_mode) for fd in (0, 1))
    except OSError:
        return False


def serve_stdio(server: MemoryServer) -> None:
    """Serve on stdin/stdout. While serving, fd 0 reads /dev/null and fd 1 goes to
    stderr, so nothing but protocol messages can reach the client (as the SDK does)."""
    import anyio
    from mcp.server.stdio import stdio_server

    log.info("serving %s over stdio (read-only: %s)", server.db, server.read_only)
    lowlevel = getattr(server.mcp, "_lowlevel_server", None)
    if lowlevel is None or not _pipes_usable():  # a file, a terminal: the SDK's own way
        try:
            anyio.run(server.mcp.run_stdio_async)
        finally:
            server.close()
        return
    wire_in, wire_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)

    async def run() -> None:
        async with stdio_server(_PipeLines(wire_in), _PipeWriter(wire_out)) as (reader, writer):  # type: ignore[arg-type]
            await lowlevel.run(reader, writer, lowlevel.create_initialization_options())

    try:
        anyio.run(run)
    finally:
        server.close()
        os.dup2(wire_in, 0)
        os.dup2(wire_out, 1)


def serve_http(
    server: MemoryServer,
    host: str,
    port: int,
    token: str | None,
    announce: Callable[[str], None],
) -> None:
    """Streamable HTTP on host:port (0: any free port); `announce` is told the URL."""
    import anyio
    import uvicorn

    check_bind(host, token)
    # One JSON response per POST, not an SSE stream: a call from a handshake-era client
    # took 13 ms with the stream, 6.4 ms without (the tools send no progress).
    app: Any = server.mcp.streamable_http_app(
        host=host, streamable_http_path=HTTP_PATH, json_response=True
    )
    if token:
        app = BearerToken(app, token)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say
    # they are TCP, and with Nagle on every response body waited ~40 ms for an ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", access_log=False, lifespan="on"
    )
    http = uvicorn.Server(config)
    # Listening before the URL is announced: a client told it connects at once, and a
    # socket only bound refuses it (seen under load: the test's first call failed).
    sock.listen(config.backlog)
    url = f"http://{shown}:{bound}{HTTP_PATH}"
    log.info("serving %s over HTTP at %s (read-only: %s)", server.db, url, server.read_only)
    announce(url)
    try:
        anyio.run(functools.partial(http.serve, sockets=[sock]))
    finally:
        sock.close()
        server.close()
