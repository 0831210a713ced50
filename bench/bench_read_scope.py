"""Read constraints at scale: a read the model opens right after a write, on a memory of
1,000,000 entities (100,000 with --quick), with the names `read_scope` offers (those
the question names, found through the key index) against the grammar over every
entity that memcli built before (rebuilt after each change of memory).

- ready: from a write's return (`store.add`) to the read's constraint being ready
  (`read_entities` + `ConstrainedDecoder.start_read`), median of 5 writes (baseline:
  `entity_names()` + a full grammar for the new revision, after 1 write).
- memory: growth of this process's resident set while the constraint is built and
  held (VmRSS; ours measured first, so the baseline's allocations cannot hide it).
- mask p50/p99: `ConstrainedDecoder.mask` over random walks through reads (40 walks),
  wall-clock and CPU time.

The memory file is built in SQL and cached in bench/results/cache/ (see bench_scale);
each run writes to a copy. Needs the bundled model's vocabulary (its GGUF file).
"""

from __future__ import annotations

import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_scale import memory
from bench.common import Row, row, speed_ratio
from memcli.runtime import read_scope
from memcli.runtime.constraints import ConstrainedDecoder
from memcli.runtime.engine import MemoryLogic
from memcli.store.core import TripleStore

SIZES = {False: 1_000_000, True: 100_000}
WRITES = 5
WALKS = 40
QUESTION = "Which country is Entity 4242 in, and what about Entity 77?"


def _say(message: str) -> None:
    sys.stderr.write(f"  read_scope: {message}\n")
    sys.stderr.flush()


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _walk_masks(
    decoder: ConstrainedDecoder, start: Any, walks: int, seed: int
) -> tuple[list[float], list[float]]:
    """Mask times (s) over `walks` random walks through reads started by `start()`, as
    wall-clock and as this thread's CPU time (on a shared machine the wall-clock p99
    mostly measures preemption)."""
    rng = random.Random(seed)
    times, cpu_times = [], []
    for _ in range(walks):
        cmd = start()
        for _step in range(400):
            if decoder.is_done(cmd):
                break
            t, c = time.perf_counter(), time.thread_time()
            allowed = decoder.mask(cmd)
            cpu_times.append(time.thread_time() - c)
            times.append(time.perf_counter() - t)
            choices = np.flatnonzero(allowed)
            decoder.advance(cmd, int(rng.choice(choices)))
    return times, cpu_times


def run(quick: bool) -> list[Row]:
    from memcli.runtime.llama_backend import LlamaBackend, bundled_model_path

    n = SIZES[quick]
    backend = LlamaBackend(bundled_model_path(), n_ctx=512)
    try:
        return _run(n, ConstrainedDecoder.for_backend(backend))
    finally:
        backend.close()  # after the decoder's last use: its tokenizer reads the vocabulary


def _run(n: int, decoder: ConstrainedDecoder) -> list[Row]:
    size = f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"
    cached = memory(n, per_subject=1)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="memcli-bench-scope-") as tmp:
        db = Path(tmp) / "memory.db"
        shutil.copyfile(cached, db)
        with TripleStore(db) as store:
            logic = MemoryLogic(store)
            relations = store.relation_names()
            _say(f"ours: {WRITES} writes, each followed by a read's constraint, {n:,} entities")
            rss = _rss_mb()
            ready = []
            for k in range(WRITES):
                store.add(f"Entity {k + 11}", "country", f"Entity {k + 5000}")
                start = time.perf_counter()
                entities, version = read_scope.read_entities(
                    store, QUESTION, logic.mentioned_entities
                )
                decoder.start_read(entities, relations, version=version)
                ready.append(time.perf_counter() - start)
            assert sorted(entities) == ["Entity 4242", "Entity 77"], entities
            ours_mb = _rss_mb() - rss
            ours_masks = _walk_masks(
                decoder,
                lambda e=entities, v=version: decoder.start_read(e, relations, version=v),
                WALKS,
                1,
            )
            _say(f"baseline: a grammar over all {n:,} entities after a write")
            rss = _rss_mb()
            full = []
            for k in range(1):
                store.add(f"Entity {k + 31}", "country", f"Entity {k + 6000}")
                start = time.perf_counter()
                names = store.entity_names()
                revision = store.revision()
                decoder.start_read(names, relations, version=revision)
                full.append(time.perf_counter() - start)
            base_mb = _rss_mb() - rss
            base_masks = _walk_masks(
                decoder, lambda: decoder.start_read(names, relations, version=revision), WALKS, 1
            )
    ours, base = statistics.median(ready) * 1e3, statistics.median(full) * 1e3
    rows.append(
        row(
            f"read ready after a write, {size} entities: names the question gives vs "
            "a grammar over all entities",
            ours,
            base,
            "ms",
            ratio=speed_ratio(ours, base),
            goal="ours < 50 ms",
            ok=ours < 50,
        )
    )
    rows.append(
        row(
            f"read constraint's extra resident memory, {size} entities: question's "
            "names vs all entities",
            ours_mb,
            base_mb,
            "MB",
            ratio=speed_ratio(max(ours_mb, 0.1), base_mb),
            goal="ours < 200 MB",
            ok=ours_mb < 200,
        )
    )
    for q, clock in ((50, 0), (99, 0), (99, 1)):
        mine = float(np.percentile(ours_masks[clock], q)) * 1e3
        theirs = float(np.percentile(base_masks[clock], q)) * 1e3
        has_goal = q == 99 and clock == 0
        rows.append(
            row(
                f"mask time p{q}{' CPU time' if clock else ''} in a read, {size} "
                "entities: question's names vs all entities",
                mine,
                theirs,
                "ms",
                ratio=speed_ratio(mine, theirs),
                goal="ours < 1 ms" if has_goal else "",
                ok=mine < 1 if has_goal else None,
            )
        )
    return rows
