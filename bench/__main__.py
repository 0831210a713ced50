"""`python -m bench [--quick] [--only NAME]`: run every `bench/bench_*.py`, print one
table, save the rows with machine info to bench/results/<timestamp>.json and latest.json.

A module that cannot be imported (a missing optional dependency, no model) or that fails
gives a "skipped" row instead of stopping the others.
"""

from __future__ import annotations

import argparse
import importlib
import json
import operator
import pkgutil
import re
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from bench.common import ROW_FIELDS, Row, machine_info, skipped

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def modules() -> list[str]:
    """Names of the benchmark modules present, e.g. ["bench_decoding", "bench_store"]."""
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))


def run_module(name: str, quick: bool) -> list[Row]:
    label = name.removeprefix("bench_")
    try:
        module = importlib.import_module(f"bench.{name}")
    except Exception as exc:  # an optional dependency missing, say
        return [skipped(label, f"cannot import: {type(exc).__name__}: {exc}")]
    try:
        rows = list(module.run(quick))
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return [skipped(label, f"{type(exc).__name__}: {exc}")]
    return [normalize(found, label) for found in rows]


_GOAL = re.compile(r"^\s*(ratio|ours)\s*(>=|≥|<=|≤|>|<)\s*(-?[0-9.]+)")
_COMPARE = {
    ">=": operator.ge,
    "≥": operator.ge,
    "<=": operator.le,
    "≤": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


def normalize(found: dict, label: str) -> Row:
    """A row with every contract field. A missing `ok` is worked out from a goal like
    "ratio >= 0.9" (else None); other missing fields become None or ""; says so on stderr."""
    missing = [f for f in ROW_FIELDS if f not in found]
    if missing:
        sys.stderr.write(f"{label}: row {found.get('name')!r} lacks {', '.join(missing)}\n")
    result = Row(
        name=str(found.get("name", "?")),
        ours=found.get("ours"),
        baseline=found.get("baseline"),
        unit=str(found.get("unit") or ""),
        ratio=found.get("ratio"),
        goal=str(found.get("goal") or ""),
        ok=found.get("ok"),
    )
    if "ok" not in found:
        match = _GOAL.match(result["goal"])
        value = result[match.group(1)] if match else None  # type: ignore[literal-required]
        if match and isinstance(value, int | float):
            result["ok"] = _COMPARE[match.group(2)](value, float(match.group(3)))
    return result


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table(rows: list[Row]) -> Table:
    result = Table(box=box.SIMPLE_HEAD, title="memcli benchmarks")
    result.add_column("name", overflow="fold")
    for column in ("ours", "baseline"):
        result.add_column(column, justify="right")
    result.add_column("unit")
    result.add_column("ratio", justify="right")
    result.add_column("goal")
    result.add_column("ok", justify="center")
    marks = {True: "[green]✓[/]", False: "[red]✗[/]", None: "–"}
    for r in rows:
        result.add_row(
            r["name"],
            _number(r["ours"]),
            _number(r["baseline"]),
            r["unit"],
            _number(r["ratio"]),
            r["goal"],
            marks[r["ok"]],
        )
    return result


def save(report: dict, results: Path = RESULTS) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(report, ensure_ascii=False, indent=2) + "\n"
    path = results / f"{stamp}.json"
    path.write_text(text, encoding="utf-8")
    (results / "latest.json").write_text(text, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (under 2 minutes)")
    parser.add_argument("--only", metavar="NAME", help="run one module, e.g. store")
    args = parser.parse_args(argv)

    chosen = modules()
    if args.only:
        wanted = args.only if args.only.startswith("bench_") else f"bench_{args.only}"
        if wanted not in chosen:
            names = ", ".join(m.removeprefix("bench_") for m in chosen)
            parser.error(f"no benchmark {args.only!r}; there are: {names}")
        chosen = [wanted]

    rows: list[Row] = []
    seconds: dict[str, float] = {}
    for name in chosen:
        sys.stderr.write(f"{name}{' (quick)' if args.quick else ''}…\n")
        start = time.perf_counter()
        rows += run_module(name, args.quick)
        seconds[name] = round(time.perf_counter() - start, 2)
        sys.stderr.write(f"{name}: {seconds[name]:.1f} s\n")

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    console.print(table(rows))
    report = {
        "machine": machine_info(),
        "quick": args.quick,
        "seconds": seconds,
        "rows": rows,
    }
    path = save(report)
    sys.stderr.write(f"saved {path} and {path.parent / 'latest.json'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
