"""Memory at scale (full `make bench` only; `--quick` skips it): lookups and `mem ls`
start-up on a memory of 10,000,000 facts against the same on a memory of 10,000.

The big memory is built once, in SQL (not through the CLI: that is the import row's
job), and cached in bench/results/cache/ (ignored by git; delete it at will, it is
rebuilt, about a minute or two). 1,000,000 entities, each the subject of 10 facts over
10 multi-valued DocRED relations, objects spread by a multiplicative hash; the small
memory is the same recipe at 10,000 facts.

- lookup(s, r) and lookup(r, o) p50/p99 in µs: `TripleStore.lookup` for 10,000 keys of
  randomly chosen existing facts, at 10M vs at 10k facts (ratio = small / big time;
  1 = no slower at scale). Goal: p99 < 1 ms at 10M.
  The big file is read once first (the OS page cache holds it, as for a memory in use);
  p99 of CPU time too (on a shared machine the wall-clock p99 measures the scheduler).
- start-up: `memcli mem ls --limit 1`, a whole process, median of 10 interleaved runs,
  10M vs 10k, wall-clock and CPU time. Goal: unchanged (ratio ≥ 0.9).
"""

from __future__ import annotations

import os
import random
import resource
import statistics
import sys
import tempfile
from pathlib import Path

from bench.bench_store import _latencies
from bench.common import Row, measure, percentile, row, run_command, speed_ratio, venv_script
from memcli.store.core import TripleStore
from memcli.store.schema import SCHEMA_VERSION, SINGLE_VALUED

CACHE = Path(__file__).parent / "results" / "cache"
BIG, SMALL = 10_000_000, 10_000
FACTS_PER_SUBJECT = 10
LOOKUPS = 10_000
STARTUP_RUNS = 10
SEED = 20261201


def _say(message: str) -> None:
    sys.stderr.write(f"  scale: {message}\n")
    sys.stderr.flush()


def build(path: Path, facts: int, per_subject: int = FACTS_PER_SUBJECT) -> None:
    """A memory of `facts` facts (a multiple of `per_subject`) at `path`, in SQL."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    entities = facts // per_subject
    partial = path.with_name(path.name + ".partial")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    with TripleStore(partial) as store:
        db = store.db
        marks = ",".join("?" * len(SINGLE_VALUED))
        relations = [
            rid
            for (rid,) in db.execute(
                f"SELECT id FROM relations WHERE wikidata_id NOT IN ({marks}) ORDER BY id",
                sorted(SINGLE_VALUED),
            )
        ][:per_subject]
        db.execute("PRAGMA cache_size = -524288")
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO batches (id, kind, description, created_at) VALUES "
            "(1, 'import', 'bench: built in SQL', '2026-01-01T00:00:00.000Z')"
        )
        db.execute("INSERT INTO batch_ids (id) VALUES (1)")
        db.execute("DELETE FROM batch_ids")
        db.execute(
            """WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
               INSERT INTO entities (id, name, key)
               SELECT i, 'Entity ' || i, 'entity ' || i FROM n""",
            (entities,),
        )
        indexes = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'triples'"
            " AND sql IS NOT NULL"
        ).fetchall()
        for name, _sql in indexes:
            db.execute(f'DROP INDEX "{name}"')
        db.execute("CREATE TEMP TABLE rel (k INTEGER PRIMARY KEY, id INTEGER)")
        db.executemany("INSERT INTO rel VALUES (?, ?)", list(enumerate(relations)))
        # Fact i: subject i % E + 1, relation number i / E, object a hash of i; the
        # (subject, relation) pairs are all distinct, so the facts are.
        db.execute(
            """WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1)
               INSERT INTO triples (subject_id, relation_id, object_id, source, created_at,
                                    updated_at, batch_id)
               SELECT i % :e + 1, (SELECT id FROM rel WHERE k = i / :e),
                      (i * 2654435761 + 7) % :e + 1, 'bench', '2026-01-01T00:00:00.000Z',
                      '2026-01-01T00:00:00.000Z', 1 FROM n""".replace("?", ":f"),
            {"f": facts, "e": entities},
        )
        for _name, sql in indexes:
            db.execute(sql)
        db.execute("UPDATE batches SET added = ? WHERE id = 1", (facts,))
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if store.count() != facts:
            raise RuntimeError(f"built {store.count()} facts, expected {facts}")
    partial.rename(path)
    for suffix in ("-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)


def memory(facts: int, per_subject: int = FACTS_PER_SUBJECT) -> Path:
    """The cached memory of `facts` facts, `per_subject` per entity, built when missing."""
    tail = "" if per_subject == FACTS_PER_SUBJECT else f"-{per_subject}each"
    path = CACHE / f"memory-{facts}{tail}-v{SCHEMA_VERSION}.db"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        _say(f"building a memory of {facts:,} facts in SQL (cached in {CACHE})")
        build(path, facts, per_subject)
    return path


def _keys(path: Path, facts: int, count: int) -> list[tuple[str, str, str]]:
    rng = random.Random(SEED)
    with TripleStore(path) as store:
        return [
            store.db.execute(
                "SELECT subject, relation, object FROM facts WHERE id = ?", (rng.randint(1, facts),)
            ).fetchone()
            for _ in range(count)
        ]


def _lookup_times(path: Path, keys: list[tuple[str, str, str]]) -> dict[str, list[float]]:
    with TripleStore(path) as store:
        found = {}
        for label, call in (
            ("lookup(s, r)", lambda k: store.lookup(k[0], k[1], None)),
            ("lookup(r, o)", lambda k: store.lookup(None, k[1], k[2])),
        ):
            for key in keys[:200]:
                call(key)
            found[label] = _latencies(call, keys)
        return found


def _warm(path: Path) -> None:
    """Read the file once, so that the OS page cache holds it as it would for a memory
    in use (the first lookups would otherwise measure the disk)."""
    with open(path, "rb") as handle:
        while handle.read(1 << 24):
            pass


def _spelling_rows(path: Path, size: str, tries: int = 5) -> list[Row]:
    """A read whose name is misspelt, after memory changed (as after every chat turn):
    the spelling fallback through `NameIndex` (kept in step) vs matching over every
    current name fetched afresh (what reads did before)."""
    from memcli.store.matching import NameIndex, closest

    _say(f"spelling fallback ×{tries} at {size} facts")
    with TripleStore(path) as store:
        (name,) = store.db.execute(  # one from the middle, whatever the size
            "SELECT name FROM entities ORDER BY id LIMIT 1 OFFSET "
            "(SELECT count(*) / 2 FROM entities)"
        ).fetchone()
        typo = name[:-2] + "x" + name[-1]
        index = NameIndex(store)
        index.sync()  # built once per process, on the first miss

        def ours() -> str | None:
            index.revision = None  # as after a write: checked against the file again
            return index.closest(typo, 88.0)

        def theirs() -> str | None:
            return closest(store.entity_names(), typo, 88.0)

        if ours() != theirs():
            raise RuntimeError(f"spelling fallback: {ours()!r} != {theirs()!r}")
        mine = statistics.median(measure(ours, 1).best for _ in range(tries))
        base = statistics.median(measure(theirs, 1).best for _ in range(2))
    return [
        row(
            f"read of a misspelt name after a write, at {size} facts: name index vs all names",
            mine,
            base,
            "s",
            ratio=speed_ratio(mine, base),
            goal="ratio ≥ 5",
            ok=base / mine >= 5,
        )
    ]


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(
    quick: bool,
    *,
    big: int = BIG,
    small: int = SMALL,
    lookups: int = LOOKUPS,
    startup_runs: int = STARTUP_RUNS,
) -> list[Row]:
    if quick:
        return []
    big_db, small_db = memory(big), memory(small)
    size = f"{big // 1_000_000}M" if big >= 1_000_000 else f"{big:,}"
    rows: list[Row] = []
    _say(f"lookups: {lookups:,} each way at {big:,} and at {small:,} facts")
    _warm(big_db)
    at_big = _lookup_times(big_db, _keys(big_db, big, lookups))
    at_small = _lookup_times(small_db, _keys(small_db, small, lookups))
    for label in at_big:
        for q, clock in ((50, 0), (99, 0), (99, 1)):
            mine = percentile(at_big[label][clock], q)
            theirs = percentile(at_small[label][clock], q)
            has_goal = q == 99 and clock == 0
            rows.append(
                row(
                    f"{label} p{q}{' CPU time' if clock else ''} at {size} facts vs at {small:,}",
                    mine,
                    theirs,
                    "µs",
                    ratio=speed_ratio(mine, theirs),
                    goal="p99 < 1000 µs" if has_goal else "",
                    ok=mine < 1000 if has_goal else None,
                )
            )
    rows += _spelling_rows(big_db, size)
    _say(f"start-up ×{startup_runs}: mem ls --limit 1 at {big:,} and at {small:,} facts")
    memcli = venv_script("memcli", "memcli")
    with tempfile.TemporaryDirectory(prefix="memcli-bench-scale-") as tmp:
        env = dict(os.environ, MEMCLI_HOME=str(Path(tmp) / "home"), NO_COLOR="1")
        env.pop("MEMCLI_DB", None)
        commands = [
            [*memcli, "mem", "ls", "--limit", "1", "--db", str(db)] for db in (big_db, small_db)
        ]
        for command in commands:
            run_command(command, env=env)  # page cache, .pyc files
        times: list[list[float]] = [[], []]
        cpu: list[list[float]] = [[], []]
        for _ in range(startup_runs):
            for n, command in enumerate(commands):
                before = _child_cpu()
                times[n].append(measure(lambda c=command: run_command(c, env=env), 1).best)
                cpu[n].append(_child_cpu() - before)
    ours, base = statistics.median(times[0]), statistics.median(times[1])
    ours_cpu, base_cpu = statistics.median(cpu[0]), statistics.median(cpu[1])
    rows.append(
        row(
            f"start-up, mem ls --limit 1, at {size} facts vs at {small:,}",
            ours,
            base,
            "s",
            ratio=speed_ratio(ours, base),
            goal="ratio ≥ 0.9 (unchanged)",
            ok=base / ours >= 0.9,
        )
    )
    rows.append(
        row(
            f"start-up CPU time (user + system), mem ls --limit 1, at {size} facts vs at {small:,}",
            ours_cpu,
            base_cpu,
            "s",
            ratio=speed_ratio(ours_cpu, base_cpu),
        )
    )
    return rows
