"""Memory snapshots: export as JSON lines, CSV, N-Triples or an SQLite copy; restore
(replace or merge) from JSON lines, CSV or SQLite.

JSON lines and SQLite keep everything (ids, sources, timestamps, superseded facts and
what replaced them): exporting and then restoring gives back exactly the same memory.
CSV keeps the facts, their sources and the succession of superseded facts (`id`,
`superseded_at`, `superseded_by` columns), in a form `memcli mem restore` reads;
`memcli mem import` reads its current facts. N-Triples holds current facts only (RDF
has no place for a fact that is no longer true).
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

from memcli.errors import ImportFailed, MemcliError, UsageError, unreadable
from memcli.store import csvio, names, safety, verify
from memcli.store.core import TripleStore, check_name
from memcli.store.schema import SQLITE_MAGIC

FORMATS = ("jsonl", "csv", "nt", "sqlite")
_ROWS = """SELECT t.id, s.name, r.name, o.name, t.source, t.created_at, t.updated_at,
                  t.superseded_at, t.superseded_by
           FROM triples t
           JOIN entities s ON s.id = t.subject_id
           JOIN relations r ON r.id = t.relation_id
           JOIN entities o ON o.id = t.object_id
           ORDER BY t.id"""
_CSV_ROWS = """SELECT s.name, r.name, o.name, t.source, t.id, t.superseded_at,
                      t.superseded_by
               FROM triples t
               JOIN entities s ON s.id = t.subject_id
               JOIN relations r ON r.id = t.relation_id
               JOIN entities o ON o.id = t.object_id
               ORDER BY t.id"""
_FIELDS = (
    "id",
    "subject",
    "relation",
    "object",
    "source",
    "created_at",
    "updated_at",
    "superseded_at",
    "superseded_by",
)
CSV_HISTORY = ("id", "superseded_at", "superseded_by")
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
def _output(path: str | None, store: TripleStore, stdout: IO[str] | None) -> Iterator[IO[str]]:
    """stdout, or a temporary file beside FILE renamed onto it once complete: FILE is
    never left half written, and may not be (a -wal or -shm of) the memory in use."""
    if path is None or path == "-":
        stream = stdout or sys.stdout
        yield stream
        stream.flush()
        return
    target = safety.output_target(path, safety.protected_files(store.path), what="export")
    with safety.atomic_output(target) as handle:
        yield handle


def export(store: TripleStore, path: str | None, fmt: str, stdout: IO[str] | None = None) -> int:
    """Write the whole memory to `path` (when None or `-`: `stdout`, by default
    sys.stdout); returns triples written."""
    if fmt == "sqlite":
        if path is None or path == "-":
            raise UsageError("an SQLite export needs -o FILE")
        return _export_sqlite(store, Path(path))
    # One read transaction, so the export is consistent while others write.
    store.db.execute("BEGIN")
    try:
        rows = store.db.execute(_CSV_ROWS if fmt == "csv" else _ROWS)
        with _output(path, store, stdout) as out:
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
        item = dict(zip(_FIELDS, row, strict=True))
        if item["superseded_at"] is None:
            del item["superseded_at"], item["superseded_by"]
        write(dumps(item, ensure_ascii=False) + "\n")
        count += 1
    return count


def _write_csv(out: IO[str], rows: sqlite3.Cursor) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["subject", "relation", "object", "source", *CSV_HISTORY])
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
    for _id, s, r, o, _source, _created, _updated, superseded_at, _by in rows:
        if superseded_at is not None:
            continue  # N-Triples holds current facts only
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
    shown = safety.printable(str(target))
    target = safety.output_target(target, safety.protected_files(store.path), what="export")
    partial = safety.temporary_beside(target)
    try:
        copy = sqlite3.connect(safety.connect_path(partial))
        with copy:
            store.db.backup(copy)
        count = copy.execute("SELECT count(*) FROM triples").fetchone()[0]
        copy.execute("PRAGMA journal_mode = DELETE")
        copy.close()
        partial.replace(target)
    except (OSError, sqlite3.Error) as exc:
        partial.unlink(missing_ok=True)
        raise MemcliError(f"{shown}: cannot write snapshot: {exc}") from None
    return count


# -- restore -----------------------------------------------------------------------------

# id, subject, relation, object, source, created_at, updated_at, superseded_at,
# superseded_by (the id, within the snapshot, of the fact that replaced it)
Row = tuple[int | None, str, str, str, str, str | None, str | None, str | None, int | None]


def read_snapshot(path: str) -> list[Row]:
    """Every triple of a snapshot, read whole and checked before anything is replaced:
    errors name FILE:LINE: field: problem (an SQLite file: what is damaged)."""
    if path != "-" and Path(path).is_file():
        try:
            with open(path, "rb") as handle:
                magic = handle.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise MemcliError(unreadable(safety.printable(path), exc)) from None
        if magic == SQLITE_MAGIC:
            return _read_sqlite(Path(path))
    lines = csvio.Lines(path)
    first = lines.first_text()
    if first is None:
        lines.close()
        return []  # the export of an empty memory
    label = safety.printable(lines.label)
    is_json = label.lower().endswith((".jsonl", ".json", ".ndjson"))
    if is_json or (not label.lower().endswith((".csv", ".tsv")) and first.lstrip()[:1] in "{["):
        rows = _read_jsonl(label, lines)
    else:
        rows = _read_csv(label, lines)
    if lines.unterminated:  # every export ends its last line: this file was cut short
        raise ImportFailed(
            [
                f"{label}:{lines.number}: the last line has no line end; the snapshot looks cut "
                "short (if it is complete, end it with a newline)"
            ],
            1,
        )
    return rows


def _read_sqlite(path: Path) -> list[Row]:
    """A verified SQLite snapshot (an older one is upgraded in memory, not on disk)."""
    return verify.read_sqlite(path, _ROWS, csvio.now())


def _read_jsonl(label: str, lines: csvio.Lines) -> list[Row]:
    rows: list[Row] = []
    errors: list[str] = []
    seen_ids: dict[int, int] = {}
    count = 0
    for line in lines:
        number = lines.number
        if not line.strip():
            continue
        problem = None
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            obj, problem = None, f"not JSON ({exc.msg})"
        except RecursionError:
            obj, problem = None, "not JSON memcli writes (nested too deeply)"
        if problem is None and not isinstance(obj, dict):
            problem = "expected a JSON object"
        if problem is None:
            assert isinstance(obj, dict)
            problem = _row_problem(obj)
        if problem is None and obj.get("id") is not None:
            first = seen_ids.setdefault(obj["id"], number)
            if first != number:  # a fact's id names one fact: the file was altered
                problem = f"id: {obj['id']} is also the id on line {first}"
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
                obj.get("superseded_at"),
                obj.get("superseded_by"),
            )
        )
    if errors:
        raise ImportFailed(errors, count)
    return rows


def _row_problem(obj: dict) -> str | None:
    unknown = [f for f in obj if f not in _FIELDS]
    if unknown:  # a damaged or foreign line: a renamed "id" would silently renumber facts
        return f"{safety.printable(str(unknown[0]))!r}: not a field of a memcli snapshot"
    for field in ("subject", "relation", "object"):
        value = obj.get(field)
        if not isinstance(value, str):
            return f"{field}: missing or not a string"
        problem = names.name_problem(value)
        if problem:
            return f"{field}: {problem}"
    for field in ("id", "superseded_by"):
        tid = obj.get(field)
        if tid is not None and (
            not isinstance(tid, int) or isinstance(tid, bool) or not 1 <= tid <= safety.MAX_INT
        ):
            return f"{field}: not a positive integer below 2**63"
    if obj.get("superseded_by") is not None and obj.get("superseded_at") is None:
        return "superseded_at: missing (superseded_by is given)"
    for field in ("source", "created_at", "updated_at", "superseded_at"):
        value = obj.get(field)
        if value is not None and (not isinstance(value, str) or names.has_control(value)):
            return f"{field}: not a single-line string"
    return None


def _read_csv(label: str, text: csvio.Lines) -> list[Row]:
    parsed = csvio.parse(None, label, text, new_relation=True, history=True)
    if parsed.error_count:
        raise ImportFailed(parsed.errors, parsed.error_count)
    rows: list[Row] = []
    for line, s, r, o, source in parsed.good:
        tid, at, by = parsed.history.get(line, (None, None, None))
        rows.append((tid, s, r, o, source, None, None, at, by))
    return rows


def restore(
    store: TripleStore, path: str, *, merge: bool = False, allow_empty: bool = False
) -> tuple[int | None, int, int]:
    """Replace memory with a snapshot (or add it, with `merge`) as one undoable batch.
    The snapshot is read and verified whole first; a snapshot with no facts replaces a
    memory that has some only with `allow_empty`. Returns (batch id, triples removed,
    triples added)."""
    rows = read_snapshot(path)
    if not rows and not merge and not allow_empty:
        held = store.db.execute("SELECT count(*) FROM triples").fetchone()[0]
        if held:
            shown = "<stdin>" if path == "-" else safety.printable(path)
            raise UsageError(
                f"{shown}: the snapshot holds no facts; restoring it would remove all {held} "
                "facts in memory. Pass --allow-empty if that is what you want"
            )
    ids = [row[0] for row in rows]
    exact = (
        not merge
        and len(set(ids)) == len(ids)
        and all(i is not None and c and u for i, _s, _r, _o, _src, c, u, _a, _b in rows)
    )
    for _id, s, r, o, *_rest in rows:
        check_name(s, "subject"), check_name(r, "relation"), check_name(o, "object")
    if merge:
        rows = _new_history(store, rows)
        ids = [row[0] for row in rows]
    label = "<stdin>" if path == "-" else path
    with store.batch("restore", f"{'merge' if merge else 'restore'} {label}") as batch_id:
        removed = 0 if merge else store.remove_all()
        if exact:
            placed = {i: i for i in ids}
        else:
            # Fresh ids, known in advance, so that `superseded_by` can be carried over.
            base = _next_triple_id(store)
            placed = {i: base + n for n, i in enumerate(ids) if i is not None}
        stamp = csvio.now()
        _, added = csvio.bulk_add(
            store,
            [(s, r, o, source) for _id, s, r, o, source, *_rest in rows],
            kind="restore",
            description="",
            new_relation=True,
            exact=[
                (
                    i if exact and i is not None else base + n,  # exact: no id is None
                    c or stamp,
                    u or c or stamp,
                    at,
                    placed.get(by) if by is not None else None,
                )
                for n, (i, _s, _r, _o, _src, c, u, at, by) in enumerate(rows)
            ],
        )
        if exact and added != len(rows):
            # Inside the batch: raising rolls the whole restore back.
            raise ImportFailed(
                [
                    f"{safety.printable(label)}: {len(rows) - added} of its {len(rows)} facts "
                    "repeat another fact of the snapshot (not a snapshot memcli wrote)"
                ],
                1,
            )
    return (batch_id if added or removed else None), removed, added


def _next_triple_id(store: TripleStore) -> int:
    row = store.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'triples'").fetchone()
    top = store.db.execute("SELECT coalesce(max(id), 0) FROM triples").fetchone()[0]
    return max(row[0] if row else 0, top) + 1


def _new_history(store: TripleStore, rows: list[Row]) -> list[Row]:
    """For a merge: the rows, less superseded facts that memory already holds as history
    (same names, same time)."""
    held = {
        (names.key(s), names.key(r), names.key(o), at)
        for s, r, o, at in store.db.execute(
            """SELECT s.name, r.name, o.name, t.superseded_at FROM triples t
               JOIN entities s ON s.id = t.subject_id
               JOIN relations r ON r.id = t.relation_id
               JOIN entities o ON o.id = t.object_id
               WHERE t.superseded_at IS NOT NULL"""
        )
    }
    if not held:
        return rows
    return [
        row
        for row in rows
        if row[7] is None
        or (names.key(row[1]), names.key(row[2]), names.key(row[3]), row[7]) not in held
    ]
