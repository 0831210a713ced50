"""The benchmark harness itself, at toy sizes: rows keep the contract, values are sane.
No timing assertions: this machine's speed is not what is tested."""

from __future__ import annotations

import csv
import io
import json
import math

from rich.console import Console

from bench import __main__ as runner
from bench import bench_store
from bench.common import ROW_FIELDS, generate_csv, generate_triples, percentile, row
from memcli.store import names
from memcli.store.core import TripleStore, builtin_relations
from memcli.store.schema import SINGLE_VALUED


def test_generated_triples_are_deterministic_distinct_and_valid(tmp_path):
    first = generate_triples(3000, seed=7)
    assert first == generate_triples(3000, seed=7)
    assert first != generate_triples(3000, seed=8)
    assert len(first) == 3000
    keys = {tuple(names.key(part) for part in t) for t in first}
    assert len(keys) == 3000
    relations = set(builtin_relations().values())
    for s, r, o in first:
        assert r in relations
        assert names.name_problem(s) is None and names.name_problem(o) is None
    single = {builtin_relations()[p] for p in SINGLE_VALUED}
    held = [(s, r) for s, r, _o in first if r in single]
    assert held and len(held) == len(set(held))  # importable: no single-valued conflicts
    entities = {t[0] for t in first} | {t[2] for t in first}
    assert len(entities) < 600  # a pool of about n/10 names, with repeats
    assert any(not e.isascii() for e in entities)
    assert any("," in e or '"' in e for e in entities)

    path = tmp_path / "t.csv"
    assert generate_csv(path, 500, seed=1) == 500
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["subject", "relation", "object"]
    assert [tuple(r) for r in rows[1:]] == generate_triples(500, seed=1)


def test_percentile_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([3.0], 99) == 3.0


def test_store_bench_rows_keep_the_contract():
    rows = bench_store.run(quick=True, n=2000, lookups=200, startup_runs=1, repeat=1)
    assert [r["name"].split(": ")[0] for r in rows] == [
        "import 2k CSV",
        "import 2k CSV",
        "lookup(s, r) p50",
        "lookup(s, r) p99",
        "lookup(s, r) p99 CPU time",
        "lookup(r, o) p50",
        "lookup(r, o) p99",
        "lookup(r, o) p99 CPU time",
        "start-up, mem ls --limit 1",
        "export 2k CSV",
    ]
    for r in rows:
        assert tuple(r) == ROW_FIELDS
        assert r["unit"] in ("s", "µs")
        assert isinstance(r["ours"], float) and math.isfinite(r["ours"]) and r["ours"] > 0
        if r["baseline"] is not None:  # None only without the sqlite3 shell
            assert r["baseline"] > 0
            assert r["ratio"] == r["baseline"] / r["ours"]
        if not r["goal"]:
            assert r["ok"] is None
        elif r["baseline"] is not None or "p99" in r["name"]:
            assert r["ok"] in (True, False)
    p50, p99 = rows[2]["ours"], rows[3]["ours"]
    assert p50 <= p99
    json.dumps(rows)


def test_runner_reports_a_failing_module_as_skipped(monkeypatch):
    def boom(quick):
        raise RuntimeError("no model")

    monkeypatch.setattr(bench_store, "run", boom)
    rows = runner.run_module("bench_store", quick=True)
    assert len(rows) == 1
    assert rows[0]["name"] == "store: skipped (RuntimeError: no model)"
    assert rows[0]["ok"] is None

    rows = runner.run_module("bench_no_such_module", quick=True)
    assert rows[0]["name"].startswith("no_such_module: skipped (cannot import: ")


def test_runner_fills_missing_ok_from_the_goal():
    found = {
        "name": "x",
        "ours": 9.0,
        "baseline": 10.0,
        "unit": "tok/s",
        "ratio": 0.9,
        "goal": "ratio >= 0.95",
    }
    assert runner.normalize(found, "decoding")["ok"] is False
    assert runner.normalize({**found, "goal": "ratio ≥ 0.5"}, "decoding")["ok"] is True
    assert runner.normalize({**found, "goal": "fast"}, "decoding")["ok"] is None


def test_runner_table_and_saved_json(tmp_path):
    rows = [
        row(
            "import 2k CSV: speed vs sqlite3 .import",
            1.5,
            0.25,
            "s",
            ratio=0.25 / 1.5,
            goal="ratio ≥ 0.5",
            ok=False,
        ),
        row(
            "lookup(s, r) p99: speed vs indexed plain table",
            123.4,
            None,
            "µs",
            goal="p99 < 1000 µs",
            ok=True,
        ),
    ]
    console = Console(file=io.StringIO(), width=120)
    console.print(runner.table(rows))
    text = console.file.getvalue()
    assert "import 2k CSV" in text and "1.50" in text and "0.167" in text and "✗" in text
    assert "123" in text and "–" in text

    path = runner.save({"machine": {"cores": 1}, "quick": True, "rows": rows}, tmp_path)
    assert json.loads(path.read_text(encoding="utf-8"))["rows"] == rows
    assert (tmp_path / "latest.json").read_text(encoding="utf-8") == path.read_text("utf-8")


def test_scale_bench_rows_keep_the_contract(tmp_path, monkeypatch):
    from bench import bench_scale

    monkeypatch.setattr(bench_scale, "CACHE", tmp_path / "cache")
    assert bench_scale.run(quick=True) == []  # full `make bench` only
    rows = bench_scale.run(False, big=3000, small=1000, lookups=100, startup_runs=1)
    assert len(rows) == 9  # lookups ×6, the spelling fallback, start-up ×2
    for r in rows:
        assert tuple(r) == ROW_FIELDS
        assert r["ours"] > 0 and r["baseline"] > 0
    assert (tmp_path / "cache").is_dir()  # built once, then reused
    built = sorted(p.name for p in (tmp_path / "cache").iterdir())
    version = bench_scale.SCHEMA_VERSION
    assert built == [f"memory-1000-v{version}.db", f"memory-3000-v{version}.db"]
    with TripleStore(tmp_path / "cache" / f"memory-3000-v{version}.db") as store:
        assert store.count() == 3000
        assert len(store.entity_names()) <= 300
