"""Bulk import of triples from CSV or TSV: all or nothing, every error located.

The file is read and checked in full before memory is touched; then the good rows go in
as one batch, inside one transaction, so an interrupted import leaves no trace.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

from memcli.errors import ImportFailed, MemcliError, unreadable
from memcli.store import bulk, names, safety
from memcli.store.core import TripleStore, now

REQUIRED = ("subject", "relation", "object")
OPTIONAL = ("source",)
HISTORY = ("id", "superseded_at", "superseded_by")  # in CSV snapshots (`mem export -f csv`)
MAX_REPORTED_ERRORS = 20
MAX_FIELD = 131_072  # csv's own default limit; names are at most 256 characters anyway
MAX_LINE_BYTES = 1 << 20  # a line of CSV or JSON lines; a fact's line is at most ~20 KB
MAX_TEXT_BYTES = 64 << 20  # a text to ingest (at ~10 sentences a second, weeks of work)

Progress = Callable[[int, int], None]


@dataclass
class ImportReport:
    file: str
    rows: int = 0
    added: int = 0
    duplicates_in_file: int = 0
    duplicates_in_memory: int = 0
    superseded: int = 0
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    batch_id: int | None = None
    rejects_file: str | None = None
    dry_run: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Parsed:
    good: list[tuple[int, str, str, str, str]]  # line, subject, relation, object, source
    rejects: list[tuple[int, list[str], str]]  # line, fields, problem
    errors: list[str]
    error_count: int
    duplicates_in_file: int
    # line -> (id, superseded_at, superseded_by), for the history columns of a snapshot
    history: dict[int, tuple[int | None, str | None, int | None]] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)  # the header, as the rejects file's


def read_source(path: str, limit: int = MAX_TEXT_BYTES) -> tuple[str, bytes]:
    """The display name and raw bytes of FILE, or of stdin for `-`; more than `limit`
    bytes (`/dev/zero`, say) is a one-line error, not a full memory."""
    shown = safety.printable(path)
    try:
        if path == "-":
            label, data = "<stdin>", sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as handle:
                label, data = path, handle.read(limit + 1)
    except OSError as exc:
        raise MemcliError(unreadable(shown, exc)) from None
    if len(data) > limit:
        raise MemcliError(
            f"{safety.printable(label)}: larger than {limit >> 20} MiB; split it into smaller files"
        )
    return label, data


def decode(label: str, data: bytes) -> str:
    """UTF-8 text (a BOM is dropped), or a one-line error naming the line."""
    if not data.strip():
        raise ImportFailed([f"{label}: empty file"], 1)
    nul = data.find(b"\x00", 0, 1 << 16)
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise ImportFailed([f"{label}:{line}: binary data (NUL byte); expected CSV text"], 1)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.start + 1].hex()
        raise ImportFailed(
            [f"{label}:{line}: not UTF-8 (byte 0x{bad}); save the file as UTF-8"], 1
        ) from None


class Lines:
    """The lines of FILE (or stdin for `-`), streamed: read in blocks of 1 MiB, never more
    than a block and one line in memory, and a line may be at most MAX_LINE_BYTES. A
    longer line, a NUL byte or bytes that are not UTF-8 end the reading with a one-line
    error naming the line (`mem import /dev/zero` fails at once instead of filling
    memory). A UTF-8 BOM is dropped; line ends are kept, as `csv` wants them."""

    def __init__(self, path: str, limit: int = MAX_LINE_BYTES):
        self.label = "<stdin>" if path == "-" else path
        self.limit = limit
        self.number = 0  # lines read so far
        self.bytes_read = 0
        self.size: int | None = None
        self.unterminated = False  # the last line had no line end
        self._pending: list[str] = []
        shown = safety.printable(path)
        if path == "-":
            self._handle: BinaryIO | None = sys.stdin.buffer
        else:
            try:
                self._handle = open(path, "rb")  # noqa: SIM115 (closed at the end or on error)
            except OSError as exc:
                raise MemcliError(unreadable(shown, exc)) from None
            try:
                info = os.fstat(self._handle.fileno())
                self.size = info.st_size if stat.S_ISREG(info.st_mode) else None
            except OSError:
                self.size = None
        self._stream = self._lines()

    def __iter__(self) -> Iterator[str]:
        while self._pending:
            yield self._pending.pop(0)
        yield from self._stream

    def first_text(self) -> str | None:
        """The first line that is not blank (None for a blank input), left to be read."""
        for line in self._pending:
            if line.strip():
                return line
        for line in self._stream:
            self._pending.append(line)
            if line.strip():
                return line
        return None

    def close(self) -> None:
        if self._handle is not None and self._handle is not sys.stdin.buffer:
            self._handle.close()
        self._handle = None

    def _fail(self, line: int, problem: str) -> ImportFailed:
        self.close()
        return ImportFailed([f"{safety.printable(self.label)}:{line}: {problem}"], 1)

    def _too_long(self, line: int) -> ImportFailed:
        kib = self.limit // 1024
        return self._fail(line, f"line longer than {kib} KiB; not a CSV or JSON lines file?")

    def _lines(self) -> Iterator[str]:
        carry = b""
        first = True
        while self._handle is not None:
            try:
                block = self._handle.read(_BLOCK)
            except OSError as exc:
                self.close()
                raise MemcliError(unreadable(safety.printable(self.label), exc)) from None
            if not block:
                break
            self.bytes_read += len(block)
            data = carry + block if carry else block
            end = data.rfind(b"\n")
            if end < 0:
                end = data.rfind(b"\r")  # lines ended by a lone CR (old Macintosh files)
            if end < 0:
                if len(data) > self.limit:
                    raise self._too_long(self.number + 1)
                carry = data
                continue
            carry = data[end + 1 :]
            if len(carry) > self.limit:
                raise self._too_long(self.number + data.count(b"\n", 0, end + 1) + 1)
            yield from self._decode(data[: end + 1], first)
            first = False
        self.close()
        if carry:
            self.unterminated = True
            yield from self._decode(carry, first)

    def _decode(self, data: bytes, first: bool) -> Iterator[str]:
        nul = data.find(b"\x00")
        if nul >= 0:
            raise self._fail(
                self.number + data.count(b"\n", 0, nul) + 1, "binary data (NUL byte); expected text"
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = data[exc.start : exc.start + 1].hex()
            raise self._fail(
                self.number + data.count(b"\n", 0, exc.start) + 1,
                f"not UTF-8 (byte 0x{bad}); save the file as UTF-8",
            ) from None
        if first and text.startswith("\ufeff"):
            text = text[1:]
        for line in io.StringIO(text, newline=""):  # splits at \n, \r\n and \r, keeps them
            self.number += 1
            yield line


_BLOCK = 1 << 20


def _delimiter(label: str, text: str | Lines) -> str:
    if label.lower().endswith(".tsv"):
        return "\t"
    header = (text.first_text() or "") if isinstance(text, Lines) else text.split("\n", 1)[0]
    return "\t" if "\t" in header and "," not in header else ","


def parse(
    store: TripleStore | None,
    label: str,
    text: str | Lines,
    *,
    new_relation: bool = False,
    progress: Progress | None = None,
    history: bool = False,
) -> _Parsed:
    """Check every row; collect good rows and located errors. Touches no data.
    Without a store (reading a snapshot) every relation name is accepted. `history`
    (restoring a CSV snapshot) reads the id/superseded_at/superseded_by columns; an
    import refuses rows that are superseded facts."""
    delimiter = _delimiter(label, text)
    lines = text if isinstance(text, Lines) else io.StringIO(text, newline="")
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    errors: list[str] = []
    error_count = 0
    good: list[tuple[int, str, str, str, str]] = []
    rejects: list[tuple[int, list[str], str]] = []

    def fail(line: int, problem: str, fields: list[str]) -> None:
        nonlocal error_count
        error_count += 1
        if len(errors) < MAX_REPORTED_ERRORS:
            errors.append(f"{label}:{line}: {problem}")
        rejects.append((line, fields, problem))

    previous = 0
    try:
        header = next(reader, None)
        while header is not None and not header:  # leading blank lines
            previous = reader.line_num
            header = next(reader, None)
    except csv.Error as exc:
        raise ImportFailed([f"{label}:{reader.line_num}: {exc}"], 1) from None
    if header is None:
        raise ImportFailed([f"{label}: empty file"], 1)
    header_line = previous + 1
    columns = [h.strip().lower() for h in header]
    unknown = [c for c in columns if c not in REQUIRED + OPTIONAL + HISTORY]
    missing = [c for c in REQUIRED if c not in columns]
    if missing or unknown or len(set(columns)) != len(columns):
        wanted = ",".join(REQUIRED) + "[,source]"
        raise ImportFailed(
            [f"{label}:{header_line}: header: expected {wanted}, found {','.join(header)!r}"],
            1,
        )
    width = len(columns)
    s_at, r_at, o_at = (columns.index(c) for c in REQUIRED)
    source_at = columns.index("source") if "source" in columns else None
    at_of = {c: columns.index(c) for c in HISTORY if c in columns}
    past: dict[int, tuple[int | None, str | None, int | None]] = {}
    # The file's name, escaped: a name with an escape sequence is no source to store.
    default_source = (
        f"import {safety.printable(Path(label).name)}" if label != "<stdin>" else "import <stdin>"
    )

    # Names repeat a lot in real files: check and normalise each distinct value once.
    checked: dict[str, tuple[str | None, str, str]] = {}  # raw -> (problem, clean, key)

    def check(value: str) -> tuple[str | None, str, str]:
        found = checked.get(value)
        if found is None:
            problem = names.name_problem(value)
            clean = names.clean(value) if problem is None else value
            found = checked[value] = (problem, clean, names.key(clean))
        return found

    relation_keys = store.relation_keys() if store is not None else {}
    relation_ok: dict[str, str | None] = {}
    seen: set[tuple[str, str, str]] = set()
    duplicates = 0
    previous = reader.line_num
    # Progress counts bytes of a streamed file (lines of a text already in memory).
    total = (text.size or 0) if isinstance(text, Lines) else text.count("\n") + 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            fail(reader.line_num, str(exc), [])
            break
        line = previous + 1
        previous = reader.line_num
        if progress is not None and line % 20000 == 0:
            progress(text.bytes_read if isinstance(text, Lines) else line, total)
        if len(fields) != width:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            fail(line, f"expected {width} fields, found {len(fields)}", fields)
            continue
        # The cache looked up inline: three calls a row less (most values repeat).
        s_problem, subject, s_key = checked.get(fields[s_at]) or check(fields[s_at])
        r_problem, relation, r_key = checked.get(fields[r_at]) or check(fields[r_at])
        o_problem, obj, o_key = checked.get(fields[o_at]) or check(fields[o_at])
        if s_problem or r_problem or o_problem:
            column, problem = next(
                (c, p)
                for c, p in zip(REQUIRED, (s_problem, r_problem, o_problem), strict=True)
                if p
            )
            fail(line, f"{column}: {problem}", fields)
            continue
        if r_key not in relation_keys:
            bad = relation_ok.get(relation, "")
            if bad == "":
                bad = relation_ok[relation] = _relation_problem(
                    store, relation, relation_keys, new_relation
                )
            if bad is not None:
                fail(line, bad, fields)
                continue
        if at_of:
            known, past_problem = _history_fields(fields, at_of)
            if past_problem is None and known[1] is not None and not history:
                past_problem = (
                    "superseded_at: a superseded fact (history); `mem restore` reads those"
                )
            if past_problem is not None:
                fail(line, past_problem, fields)
                continue
            if history and any(v is not None for v in known):
                past[line] = known
            if known[1] is not None:
                good.append(
                    (
                        line,
                        subject,
                        relation,
                        obj,
                        fields[source_at].strip()
                        if source_at is not None
                        else f"{default_source}:{line}",
                    )
                )
                continue
        identity = (s_key, r_key, o_key)
        if identity in seen:
            duplicates += 1
            continue
        seen.add(identity)
        source = fields[source_at].strip() if source_at is not None else ""
        source_problem = names.source_problem(source) if source else None
        if source_problem:
            fail(line, f"source: {source_problem}", fields)
            continue
        good.append((line, subject, relation, obj, source or f"{default_source}:{line}"))
    if progress is not None:
        progress(total, total)
    return _Parsed(good, rejects, errors, error_count, duplicates, past, columns)


def _history_fields(
    fields: list[str], at_of: dict[str, int]
) -> tuple[tuple[int | None, str | None, int | None], str | None]:
    """(id, superseded_at, superseded_by) of a CSV snapshot row, or the problem."""
    values = {c: fields[i].strip() or None for c, i in at_of.items()}
    numbers: dict[str, int | None] = {}
    for column in ("id", "superseded_by"):
        text = values.get(column)
        if text is None:
            numbers[column] = None
        elif not text.isdigit() or len(text) > 18 or int(text) < 1:
            return (None, None, None), f"{column}: not a positive integer"
        else:
            numbers[column] = int(text)
    at = values.get("superseded_at")
    if at is not None and names.has_control(at):
        return (None, None, None), "superseded_at: not a single-line string"
    if numbers["superseded_by"] is not None and at is None:
        return (None, None, None), "superseded_at: missing (superseded_by is given)"
    return (numbers["id"], at, numbers["superseded_by"]), None


def _relation_problem(
    store: TripleStore | None, relation: str, keys: dict[str, int], new_relation: bool
) -> str | None:
    if names.key(relation) in keys or new_relation or store is None:
        return None
    suggestions = store.suggest_relations(relation)
    hint = f" (did you mean: {', '.join(suggestions)}?)" if suggestions else ""
    return f"relation: unknown relation {relation!r}{hint}"


def import_triples(
    store: TripleStore,
    path: str,
    *,
    dry_run: bool = False,
    skip_errors: bool = False,
    rejects_path: str | None = None,
    new_relation: bool = False,
    progress: Progress | None = None,
    data: bytes | None = None,
    supersede: bool = False,
) -> ImportReport:
    """Import FILE (or `-`): all or nothing unless `skip_errors`, which imports the good
    rows and writes the rejects (with an `error` column) to `rejects_path`.

    A row giving a single-valued relation another object than an earlier row or than
    memory does for the same subject is a conflict error, unless `supersede`: then the
    rows apply in file order, each superseding the fact before it."""
    text: str | Lines
    if data is None:
        text = Lines(path)
        label = text.label
        if text.first_text() is None:
            text.close()
            raise ImportFailed([f"{safety.printable(label)}: empty file"], 1)
    else:
        label = path
        text = decode(label, data)
    rejects_target: Path | None = None
    if skip_errors and not dry_run:
        # Checked before anything is read: the rejects may not land on memory or the input.
        guarded = safety.protected_files(store.path)
        if path != "-":
            guarded.append((Path(path), "the file being imported"))
        rejects_target = safety.output_target(
            rejects_path or _default_rejects(label), guarded, what="rejects file"
        )
    parsed = parse(store, label, text, new_relation=new_relation, progress=progress)
    total_rows = len(parsed.good) + parsed.duplicates_in_file + parsed.error_count
    conflicts = find_conflicts(store, label, parsed.good)
    superseding: list[tuple[str, str, str, str]] = []
    if conflicts.lines:
        if supersede:
            superseding = [row[1:] for row in parsed.good if row[0] in conflicts.lines]
            parsed.good = [row for row in parsed.good if row[0] not in conflicts.lines]
        else:
            rows_at = {row[0]: row for row in parsed.good}
            for line, problem in conflicts.problems:
                parsed.error_count += 1
                if len(parsed.errors) < MAX_REPORTED_ERRORS:
                    parsed.errors.append(f"{label}:{line}: {problem}")
                parsed.rejects.append((line, _fields_of(rows_at.get(line), parsed.columns),
                                       problem))  # fmt: skip
            # only the rows in conflict go: the first object of a group is no error
            rejected = {line for line, _ in conflicts.problems}
            parsed.good = [row for row in parsed.good if row[0] not in rejected]
    report = ImportReport(
        file=label,
        rows=total_rows,
        duplicates_in_file=parsed.duplicates_in_file,
        errors=parsed.errors,
        error_count=parsed.error_count,
        dry_run=dry_run,
    )
    if dry_run:
        report.duplicates_in_memory = _count_in_memory(store, parsed.good)
        report.added = len(parsed.good) - report.duplicates_in_memory + len(superseding)
        report.superseded = conflicts.replacements if supersede else 0
        return report
    if parsed.error_count and not skip_errors:
        raise ImportFailed(parsed.errors, parsed.error_count)
    if parsed.rejects:
        target = rejects_path or _default_rejects(label)
        assert rejects_target is not None
        _write_rejects(rejects_target, parsed.rejects, parsed.columns)
        report.rejects_file = target
    rows = len(parsed.good) + len(superseding)
    report.batch_id, report.added = bulk_add(
        store,
        [row[1:] for row in parsed.good],
        kind="import",
        description=f"import {label} ({rows} row{'s' if rows != 1 else ''})",
        new_relation=new_relation,
        superseding=superseding,
    )
    report.duplicates_in_memory = rows - report.added
    if report.batch_id is not None:
        report.superseded = store.db.execute(
            "SELECT count(*) FROM triples WHERE superseded_batch = ?", (report.batch_id,)
        ).fetchone()[0]
    return report


@dataclass
class _Conflicts:
    lines: set[int]  # every line of a (subject, single-valued relation) group in conflict
    problems: list[tuple[int, str]]  # (line, problem) for the rows that conflict
    replacements: int  # facts that would be superseded, applying rows in order


def find_conflicts(
    store: TripleStore, label: str, good: list[tuple[int, str, str, str, str]]
) -> _Conflicts:
    """Rows that give a single-valued relation a second object for one subject, against
    an earlier row or against memory's current fact."""
    single = store.single_valued()
    keys = store.relation_keys()
    groups: dict[tuple[str, int], list[tuple[int, str, str, str, str]]] = {}
    if not single:
        return _Conflicts(set(), [], 0)
    # Relation names repeat on every row: look each distinct one up once.
    single_of = {}
    for relation in {row[2] for row in good}:
        rid = keys.get(names.key(relation))
        if rid in single:
            single_of[relation] = rid
    keyed: dict[str, str] = {}

    def key(name: str) -> str:
        found = keyed.get(name)
        if found is None:
            found = keyed[name] = names.key(name)
        return found

    for row in good:
        rid = single_of.get(row[2])
        if rid is not None:
            groups.setdefault((key(row[1]), rid), []).append(row)
    if not groups:
        return _Conflicts(set(), [], 0)
    current: dict[tuple[str, int], tuple[str, str, int]] = {}
    marks = ",".join("?" * len(single))
    query = f"""SELECT s.key, t.relation_id, o.key, o.name, t.id FROM triples t
                JOIN entities s ON s.id = t.subject_id JOIN entities o ON o.id = t.object_id
                WHERE t.superseded_at IS NULL AND t.relation_id IN ({marks})"""
    for s_key, rid, o_key, o_name, tid in store.db.execute(query, sorted(single)):
        if (s_key, rid) in groups:
            current[(s_key, rid)] = (o_key, o_name, tid)
    lines: set[int] = set()
    problems: list[tuple[int, str]] = []
    replacements = 0
    for group_key, rows in groups.items():
        held = current.get(group_key)
        state = held[0] if held else None
        holder = f"{held[1]!r} in memory (fact {held[2]})" if held else ""
        clash = False
        for line, s, r, o, _source in rows:
            o_key = key(o)
            if state is not None and o_key != state:
                replacements += 1
                clash = True
                hint = "--supersede lets the later row win"
                problems.append(
                    (line, f"object: {s} >> {r} is {holder}, and {r!r} is single-valued ({hint})")
                )
            if o_key != state:
                state, holder = o_key, f"{o!r} on line {line}"
        if clash:
            lines.update(row[0] for row in rows)
    problems.sort()
    return _Conflicts(lines, problems, replacements)


def _default_rejects(label: str) -> str:
    if label == "<stdin>":
        return "import-rejects.csv"
    return str(Path(label).with_suffix("")) + ".rejects.csv"


def _fields_of(row: tuple[int, str, str, str, str] | None, columns: list[str]) -> list[str]:
    """A parsed row's fields back in the file's column order (for a rejects line)."""
    if row is None:
        return []
    value = dict(zip(("subject", "relation", "object", "source"), row[1:], strict=True))
    return [value.get(column, "") for column in columns]


def _write_rejects(
    target: Path, rejects: list[tuple[int, list[str], str]], columns: list[str]
) -> None:
    """Written whole to a temporary file, then renamed onto `target` (checked already):
    `line` and `error`, then the rejected row's fields under the input's own header."""
    with safety.atomic_output(target) as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "error", *columns])
        for line, fields, problem in sorted(rejects, key=lambda reject: reject[0]):
            writer.writerow([line, problem, *fields])


def _count_in_memory(store: TripleStore, rows: list[tuple[int, str, str, str, str]]) -> int:
    entities = dict(store.db.execute("SELECT key, id FROM entities"))
    relations = store.relation_keys()
    candidates = set()
    for _line, s, r, o, _source in rows:
        sid, oid = entities.get(names.key(s)), entities.get(names.key(o))
        rid = relations.get(names.key(r))
        if sid is not None and oid is not None and rid is not None:
            candidates.add((sid, rid, oid))
    if not candidates:
        return 0
    existing = set(store.db.execute("SELECT subject_id, relation_id, object_id FROM triples"))
    return len(candidates & existing)


def bulk_add(
    store: TripleStore,
    rows: list[tuple[str, str, str, str]],
    *,
    kind: str,
    description: str,
    new_relation: bool = False,
    exact: list[tuple[int, str, str, str | None, int | None]] | None = None,
    superseding: list[tuple[str, str, str, str]] | None = None,
) -> tuple[int | None, int]:
    """Insert checked (subject, relation, object, source) rows as one batch, fast.
    `exact`, when given, holds (id, created_at, updated_at, superseded_at, superseded_by)
    per row, for restores.
    `superseding` rows are added after, one by one in order, each superseding the
    subject's current object of a single-valued relation.
    Returns (batch id, rows added); duplicates of memory are skipped."""
    db = store.db
    stamp = now()
    # A bulk insert touches index pages all over the file: give it a large page cache
    # (the default 2 MB makes SQLite evict and re-read pages; measured 2x slower).
    cache = db.execute("PRAGMA cache_size").fetchone()[0]
    db.execute("PRAGMA cache_size = -262144")
    try:
        with store.batch(kind, description) as batch_id:
            _, added = _bulk_add(store, rows, stamp, kind, description, new_relation, exact)
            for s, r, o, source in superseding or []:
                result = store.add(s, r, o, source, new_relation=new_relation)
                added += result.created
        return (batch_id if added else None), added
    finally:
        db.execute(f"PRAGMA cache_size = {int(cache)}")


def _bulk_add(
    store: TripleStore,
    rows: list[tuple[str, str, str, str]],
    stamp: str,
    kind: str,
    description: str,
    new_relation: bool,
    exact: list[tuple[int, str, str, str | None, int | None]] | None,
) -> tuple[int | None, int]:
    db = store.db
    with store.batch(kind, description) as batch_id:
        entity_ids: dict[str, int] = dict(db.execute("SELECT key, id FROM entities"))
        next_id = db.execute("SELECT coalesce(max(id), 0) FROM entities").fetchone()[0] + 1
        new_entities: list[tuple[int, str, str]] = []
        by_name: dict[str, int] = {}

        def entity(name: str) -> int:
            nonlocal next_id
            found = by_name.get(name)
            if found is not None:
                return found
            key = names.key(name)
            found = entity_ids.get(key)
            if found is None:
                found = entity_ids[key] = next_id
                new_entities.append((next_id, name, key))
                next_id += 1
            by_name[name] = found
            return found

        relation_ids: dict[str, int] = {}

        def relation(name: str) -> int:
            found = relation_ids.get(name)
            if found is None:
                found = relation_ids[name] = store.relation_id(name, create=new_relation)
            return found

        values: list[tuple]
        if exact is None:
            first_new = next_id
            for s, r, o, _source in rows:  # each distinct name once, then plain lookups
                if s not in by_name:
                    entity(s)
                if o not in by_name:
                    entity(o)
                if r not in relation_ids:
                    relation(r)
            ids, rids = by_name, relation_ids
            quads = [(ids[s], rids[r], ids[o], source) for s, r, o, source in rows]
            db.executemany("INSERT INTO entities (id, name, key) VALUES (?, ?, ?)", new_entities)
            added = bulk.insert_current(db, quads, stamp, batch_id, first_new)
            return (batch_id if added else None), added
        else:
            values = [
                (
                    tid,
                    entity(s),
                    relation(r),
                    entity(o),
                    source,
                    created,
                    updated,
                    batch_id,
                    at,
                    batch_id if at is not None else None,
                    by,
                )
                for (s, r, o, source), (tid, created, updated, at, by) in zip(
                    rows, exact, strict=True
                )
            ]
            db.executemany("INSERT INTO entities (id, name, key) VALUES (?, ?, ?)", new_entities)
            before = db.total_changes
            db.executemany(
                """INSERT OR IGNORE INTO triples (id, subject_id, relation_id, object_id,
                       source, created_at, updated_at, batch_id, superseded_at,
                       superseded_batch, superseded_by)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                values,
            )
        added = db.total_changes - before
    return (batch_id if added else None), added
