"""Memory snapshots: export as JSON lines, CSV, N-Triples or an SQLite copy; restore
(replace or merge) from JSON lines, CSV or SQLite.

JSON lines and SQLite keep everything (ids, sources, timestamps): exporting and then
restoring gives back exactly the same memory. CSV keeps the facts and their sources, in
the form `memcli mem import` reads.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import quote

from memcli.errors import ImportFailed, MemcliError, UsageError
from memcli.store import csvio, names
from memcli.store.core import TripleStore, check_name
from memcli.store.schema import SQLITE_MAGIC

FORMATS = ("jsonl", "csv", "nt", "sqlite")
_ROWS = """SELECT t.id, s.name, r.name, o.name, t.source, t.created_at, t.updated_at
           FROM triples t
           JOIN entities s ON s.id = t.subject_id
           JOIN relations r ON r.id = t.relation_id
           JOIN entities o ON o.id = t.object_id
           ORDER BY t.id"""
_CSV_ROWS = """SELECT s.name, r.name, o.name, t.source
               FROM triples t
               JOIN entities s ON s.id = t.subject_id
               JOIN relations r ON r.id = t.relation_id
               JOIN entities o ON o.id = t.object_id
               ORDER BY t.id"""
_FIELDS = ("id", "subject", "relation", "object", "source", "created_at", "updated_at")
ENTITY_IRI = "urn:memcli:entity:"
RELATION_IRI = "urn:memcli:relation:"
WIKIDATA_IRI = "http://www.wikidata.org/prop/direct/"


def format_for(path: str | None, requested: str | None) -> str:
    if requested:
        if requested not in FORMATS:
            raise UsageError(f"unknown format {requested!r}; choose one of {', '.join(FORMATS)}")
        return requested
    suffix = Path(path).suffix.lower() if path and path != "-" else ""
    return {".csv": "csv", ".nt": "nt", ".db": "sqlite", ".sqlite": "sqlite"}.get(suffix, "jsonl")


@contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    if path is None or path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    try:
        handle = open(partial, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise MemcliError(f"{path}: cannot write: {exc.strerror}") from None
    try:
        with handle:
            yield handle
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def export(store: TripleStore, path: str | None, fmt: str) -> int:
    """Write the whole memory to `path` (stdout when None or `-`); returns triples written."""
    if fmt == "sqlite":
        if path is None or path == "-":
            raise UsageError("an SQLite export needs -o FILE")
        return _export_sqlite(store, Path(path))
    # One read transaction, so the export is consistent while others write.
    store.db.execute("BEGIN")
    try:
        rows = store.db.execute(_CSV_ROWS if fmt == "csv" else _ROWS)
        with _output(path) as out:
            if fmt == "jsonl":
                return _write_jsonl(out, rows)
            if fmt == "csv":
                return _write_csv(out, rows)
            return _write_nt(store, out, rows)
    finally:
        store.db.execute("COMMIT")


def _write_jsonl(out: IO[str], rows: sqlite3.Cursor) -> int:
    count = 0
    dumps = json.dumps
    write = out.write
    for row in rows:
        write(dumps(dict(zip(_FIELDS, row, strict=True)), ensure_ascii=False) + "\n")
        count += 1
    return count


def _write_csv(out: IO[str], rows: sqlite3.Cursor) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["subject", "relation", "object", "source"])
    count = 0
    while batch := rows.fetchmany(10000):
        writer.writerows(batch)
        count += len(batch)
    return count


def _nt_literal(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _write_nt(store: TripleStore, out: IO[str], rows: sqlite3.Cursor) -> int:
    wikidata = dict(store.db.execute("SELECT name, wikidata_id FROM relations"))
    labelled: set[str] = set()
    label = "<http://www.w3.org/2000/01/rdf-schema#label>"
    count = 0
    for _id, s, r, o, _source, _created, _updated in rows:
        pid = wikidata.get(r)
        rel = f"<{WIKIDATA_IRI}{pid}>" if pid else f"<{RELATION_IRI}{quote(r, safe='')}>"
        s_iri = f"<{ENTITY_IRI}{quote(s, safe='')}>"
        o_iri = f"<{ENTITY_IRI}{quote(o, safe='')}>"
        out.write(f"{s_iri} {rel} {o_iri} .\n")
        for name, iri in ((s, s_iri), (o, o_iri)):
            if name not in labelled:
                labelled.add(name)
                out.write(f"{iri} {label} {_nt_literal(name)} .\n")
        count += 1
    return count


def _export_sqlite(store: TripleStore, target: Path) -> int:
    """A consistent copy through SQLite's backup API, safe while memory is in use."""
    if target.resolve() == store.path.resolve():
        raise UsageError(f"{target}: that is the memory itself")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        copy = sqlite3.connect(partial)
        with copy:
            store.db.backup(copy)
        count = copy.execute("SELECT count(*) FROM triples").fetchone()[0]
        copy.execute("PRAGMA journal_mode = DELETE")
        copy.close()
        partial.replace(target)
    except (OSError, sqlite3.Error) as exc:
        partial.unlink(missing_ok=True)
        raise MemcliError(f"{target}: cannot write snapshot: {exc}") from None
    return count


# -- restore -----------------------------------------------------------------------------

Row = tuple[int | None, str, str, str, str, str | None, str | None]


def read_snapshot(path: str) -> list[Row]:
    """Every triple of a snapshot, checked: errors name FILE:LINE: field: problem."""
    if path != "-" and Path(path).is_file():
        with open(path, "rb") as handle:
            if handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC:
                return _read_sqlite(Path(path))
    label, data = csvio.read_source(path)
    if not data.strip():
        return []  # the export of an empty memory
    text = csvio.decode(label, data)
    is_json = label.lower().endswith((".jsonl", ".json", ".ndjson"))
    if is_json or (not label.lower().endswith((".csv", ".tsv")) and text.lstrip()[:1] in "{["):
        return _read_jsonl(label, text)
    return _read_csv(label, text)


def _read_sqlite(path: Path) -> list[Row]:
    snapshot = TripleStore.open_readonly(path)
    try:
        return list(snapshot.db.execute(_ROWS))
    finally:
        snapshot.close()


def _read_jsonl(label: str, text: str) -> list[Row]:
    rows: list[Row] = []
    errors: list[str] = []
    count = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        problem = None
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            obj, problem = None, f"not JSON ({exc.msg})"
        if problem is None and not isinstance(obj, dict):
            problem = "expected a JSON object"
        if problem is None:
            assert isinstance(obj, dict)
            problem = _row_problem(obj)
        if problem:
            count += 1
            if len(errors) < csvio.MAX_REPORTED_ERRORS:
                errors.append(f"{label}:{number}: {problem}")
            continue
        assert isinstance(obj, dict)
        rows.append(
            (
                obj.get("id"),
                names.clean(obj["subject"]),
                names.clean(obj["relation"]),
                names.clean(obj["object"]),
                obj.get("source") or f"restore {Path(label).name}:{number}",
                obj.get("created_at"),
                obj.get("updated_at"),
            )
        )
    if errors:
        raise ImportFailed(errors, count)
    return rows


def _row_problem(obj: dict) -> str | None:
    for field in ("subject", "relation", "object"):
        value = obj.get(field)
        if not isinstance(value, str):
            return f"{field}: missing or not a string"
        problem = names.name_problem(value)
        if problem:
            return f"{field}: {problem}"
    tid = obj.get("id")
    if tid is not None and (not isinstance(tid, int) or isinstance(tid, bool) or tid < 1):
        return "id: not a positive integer"
    for field in ("source", "created_at", "updated_at"):
        value = obj.get(field)
        if value is not None and (not isinstance(value, str) or names.has_control(value)):
            return f"{field}: not a single-line string"
    return None


def _read_csv(label: str, text: str) -> list[Row]:
    parsed = csvio.parse(None, label, text, new_relation=True)
    if parsed.error_count:
        raise ImportFailed(parsed.errors, parsed.error_count)
    return [(None, s, r, o, source, None, None) for _line, s, r, o, source in parsed.good]


def restore(store: TripleStore, path: str, *, merge: bool = False) -> tuple[int | None, int, int]:
    """Replace memory with a snapshot (or add it, with `merge`) as one undoable batch.
    Returns (batch id, triples removed, triples added)."""
    rows = read_snapshot(path)
    ids = [row[0] for row in rows]
    exact = (
        not merge
        and len(set(ids)) == len(ids)
        and all(i is not None and c and u for i, *_m, c, u in rows)
    )
    for _id, s, r, o, *_rest in rows:
        check_name(s, "subject"), check_name(r, "relation"), check_name(o, "object")
    label = "<stdin>" if path == "-" else path
    with store.batch("restore", f"{'merge' if merge else 'restore'} {label}") as batch_id:
        removed = 0 if merge else store.remove_all()
        _, added = csvio.bulk_add(
            store,
            [(s, r, o, source) for _id, s, r, o, source, _c, _u in rows],
            kind="restore",
            description="",
            new_relation=True,
            exact=[(i, c, u) for i, *_m, c, u in rows] if exact else None,  # type: ignore[misc]
        )
    return batch_id, removed, added
