"""`memcli mem`: everything a person can do with memory, without a model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from memcli.cli.common import DbOption, JsonOption, YesOption, confirm, interactive
from memcli.cli.output import ProgressBar, counted, err, json_line, note, out, print_table
from memcli.errors import MemcliError, UsageError
from memcli.store.core import Batch, Change, Fact, TripleStore
from memcli.syntax import fact_text, update_text

app = typer.Typer(
    help="Inspect and edit memory: add, edit and remove facts, import, export, undo.",
    no_args_is_help=True,
)

NewRelation = Annotated[
    bool, typer.Option("--new-relation", help="Accept a relation name memory does not know yet.")
]


def open_store(db: Path | None) -> TripleStore:
    return TripleStore(db)


def triple_line(t: Fact) -> str:
    return fact_text(t.subject, t.relation, t.object)


def print_triples(triples: list[Fact], as_json: bool) -> None:
    if as_json:
        for t in triples:
            json_line(t.as_dict())
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    whole = _short([t.source for t in triples])
    for column in ("id", "subject", "relation", "object", "source"):
        table.add_column(column, justify="right" if column == "id" else "left",
                         no_wrap=column == "source" and whole, overflow="fold")  # fmt: skip
    for t in triples:
        table.add_row(str(t.id), t.subject, t.relation, t.object, t.source)
    print_table(table)


SHORT = 32  # a value at most this long is kept on one line in a table


def _short(values: list[str]) -> bool:
    """Whether a column's values are all short enough to keep whole: a source such as
    `chat 3f2a turn 12` split as `turn` / `12` reads as two things. The other columns
    (names) wrap at word boundaries around them."""
    return max((len(value) for value in values), default=0) <= SHORT


def _change_text(change: Change) -> str:
    before = fact_text(*change.before) if change.before else ""
    after = fact_text(*change.after) if change.after else ""
    if change.op == "add":
        return f"added {after}"
    if change.op == "remove":
        return f"removed {before}"
    if change.op == "supersede" and change.before and change.after:
        subject, relation, old = change.before
        return f"superseded {update_text(subject, relation, old, change.after[2])}"
    if change.op == "cardinality" and change.before and change.after:
        return f"{change.before[1]}: {change.before[2]}-valued → {change.after[2]}-valued"
    if change.op == "unadd":
        return f"undone: removed {before}"
    if change.op == "readd":
        return f"undone: added back {after}"
    if change.op == "unsupersede":
        return f"undone: current again {after}"
    if change.op == "unedit":
        return f"undone: {before}  →  {after}"
    return f"{before}  →  {after}"


def chain_text(chain: list[Fact]) -> str:
    """`Oslo (until 2026-12-01, batch 7) → Bergen`: a fact's succession of objects."""
    parts = []
    for t in chain:
        if t.current:
            parts.append(t.object)
        else:
            until = (t.superseded_at or "")[:10]
            parts.append(f"{t.object} (until {until}, batch {t.superseded_batch})")
    return " → ".join(parts)


def _superseded_note(superseded: tuple[Fact, ...], new: Fact) -> None:
    for old in superseded:
        change = update_text(old.subject, old.relation, old.object, new.object)
        note(f"superseded {old.id}: {change}")


@app.command()
def add(
    subject: Annotated[str, typer.Argument(help="Who or what the fact is about.")],
    relation: Annotated[str, typer.Argument(help="A relation name, e.g. 'country'.")],
    object: Annotated[str, typer.Argument(help="The value.")],
    source: Annotated[str, typer.Option(help="Where the fact comes from.")] = "manual",
    new_relation: NewRelation = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add one fact; prints its id. Adding a fact memory already holds changes nothing.

    For a single-valued relation (see `memcli mem relations`) a new object replaces the
    subject's current one, which is kept as history (`memcli mem show ID`)."""
    with open_store(db) as store:
        result = store.add(subject, relation, object, source, new_relation=new_relation)
    if as_json:
        json_line(
            {
                **result.triple.as_dict(),
                "created": result.created,
                "superseded": [t.id for t in result.superseded],
            }
        )
    elif result.created:
        out.print(result.triple.id)
        _superseded_note(result.superseded, result.triple)
    else:
        out.print(result.triple.id)
        note(f"already in memory as {result.triple.id}: {triple_line(result.triple)}")


@app.command()
def edit(
    triple_id: Annotated[int, typer.Argument(metavar="ID", help="The fact to change.")],
    subject: Annotated[str | None, typer.Option(help="New subject.")] = None,
    relation: Annotated[str | None, typer.Option(help="New relation.")] = None,
    object: Annotated[str | None, typer.Option("--object", help="New object.")] = None,
    new_relation: NewRelation = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change the subject, relation or object of a fact (its id stays)."""
    if subject is None and relation is None and object is None:
        raise UsageError("say what to change: --subject, --relation and/or --object")
    with open_store(db) as store:
        triple = store.edit(triple_id, subject, relation, object, new_relation=new_relation)
    if as_json:
        json_line(triple.as_dict())
    else:
        note(f"edited {triple.id}: {triple_line(triple)}")


@app.command()
def supersede(
    triple_id: Annotated[
        int, typer.Argument(metavar="ID", help="The fact that stopped being true.")
    ],
    object: Annotated[str, typer.Option("--object", help="What is true now.")],
    source: Annotated[str, typer.Option(help="Where the new fact comes from.")] = "manual",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replace a fact by a new one with another object, keeping the old one as history
    (for multi-valued relations too: "now works for …"). Prints the new fact's id."""
    with open_store(db) as store:
        result = store.supersede(triple_id, object=object, source=source)
    if as_json:
        json_line({**result.triple.as_dict(), "superseded": [t.id for t in result.superseded]})
        return
    out.print(result.triple.id)
    _superseded_note(result.superseded, result.triple)


@app.command()
def rm(
    ids: Annotated[
        list[int] | None, typer.Argument(metavar="[ID]...", help="Facts to remove.")
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="Remove every fact with this subject.")
    ] = None,
    relation: Annotated[str | None, typer.Option(help="…and this relation.")] = None,
    object: Annotated[str | None, typer.Option("--object", help="…and this object.")] = None,
    yes: YesOption = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would go.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove facts by id, or every fact matching --subject/--relation/--object.
    Removing by match asks first unless --yes; `memcli mem undo` brings them back."""
    by_match = any(v is not None for v in (subject, relation, object))
    if bool(ids) == by_match:
        raise UsageError("give fact ids, or --subject/--relation/--object, not both")
    with open_store(db) as store:
        if ids:
            targets = [store.get(i) for i in dict.fromkeys(ids)]
        else:
            targets = store.find(subject, relation, object)
        if not targets:
            note("nothing matches; nothing removed")
            return
        if dry_run:
            print_triples(targets, as_json)
            note(f"would remove {counted(len(targets), 'fact')}")
            return
        if by_match:
            if interactive() and not yes:
                print_triples(targets[:20], False)
            more = f" (showing 20 of {len(targets)})" if len(targets) > 20 else ""
            confirm(
                f"Remove {counted(len(targets), 'fact')}{more}?",
                f"{counted(len(targets), 'fact')} match (see --dry-run)",
                yes=yes,
            )
        removed = store.remove([t.id for t in targets])
    if as_json:
        for t in removed:
            json_line(t.as_dict())
    note(f"removed {counted(len(removed), 'fact')}; `memcli mem undo` restores them")


@contextmanager
def _every_error() -> Iterator[None]:
    """A refused import or restore lists its errors (up to the store's cap, then how many
    more), one `FILE:LINE: field: problem` a line, then says in one line that memory is
    unchanged."""
    from memcli.errors import ImportFailed

    try:
        yield
    except ImportFailed as exc:
        if len(exc.errors) <= 1:
            raise
        for line in exc.errors:
            err.print(line, markup=False, highlight=False)
        if exc.total > len(exc.errors):
            note(f"… and {exc.total - len(exc.errors)} more errors")
        raise MemcliError(f"{counted(exc.total, 'error')}; memory unchanged") from None


@app.command("ls")
def list_(
    subject: Annotated[str | None, typer.Option(help="Only facts with this subject.")] = None,
    relation: Annotated[str | None, typer.Option(help="Only facts with this relation.")] = None,
    object: Annotated[str | None, typer.Option("--object", help="Only this object.")] = None,
    source: Annotated[str | None, typer.Option(help="Only sources containing this text.")] = None,
    limit: Annotated[int | None, typer.Option(help="Show at most this many.", min=0)] = None,
    history: Annotated[
        bool,
        typer.Option("--history", help="Also list superseded facts, with what replaced them."),
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List current facts, oldest first. Names match ignoring case and spacing."""
    with open_store(db) as store:
        triples = store.find(subject, relation, object, source, limit, history=history)
        if history and not as_json:
            _print_history(store, triples)
            return
    print_triples(triples, as_json)


def _print_history(store: TripleStore, triples: list[Fact]) -> None:
    """Current and superseded facts: `no → 2` names the fact that replaced one (its date
    and batch are in `memcli mem show ID`). Sources are left out to fit 80 columns."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in ("id", "subject", "relation", "object", "current"):
        table.add_column(column, justify="right" if column == "id" else "left",
                         no_wrap=column in ("id", "current"), overflow="fold")  # fmt: skip
    for t in triples:
        state = "yes" if t.current else f"no → {t.superseded_by}"
        table.add_row(str(t.id), t.subject, t.relation, t.object, state)
    print_table(table)


@app.command()
def show(
    triple_id: Annotated[int, typer.Argument(metavar="ID")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one fact with its source and history."""
    with open_store(db) as store:
        triple = store.get(triple_id)
        changes = store.history(triple_id)
        chain = store.chain(triple_id)
    if as_json:
        json_line(
            {
                **triple.as_dict(),
                "history": [c.as_dict() for c in changes],
                "chain": [t.as_dict() for t in chain],
            }
        )
        return
    out.print(f"{triple.id}: {triple_line(triple)}")
    out.print(f"  source:  {triple.source}")
    out.print(f"  added:   {triple.created_at}")
    out.print(f"  changed: {triple.updated_at}")
    if triple.current:
        out.print("  current: yes")
    else:
        out.print(f"  current: no, superseded {triple.superseded_at} by {triple.superseded_by}")
    if len(chain) > 1:
        out.print(f"  values:  {chain_text(chain)}")
    for change in changes:
        out.print(f"  batch {change.batch_id} {change.at}: {_change_text(change)}")


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="What to look for (approximate).")],
    limit: Annotated[int, typer.Option(help="At most this many matches.", min=1)] = 10,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Find entities and relations whose names resemble TEXT, best match first."""
    from memcli.store.matching import search as run_search

    with open_store(db) as store:
        matches = run_search(store, text, limit)
    if as_json:
        for m in matches:
            json_line(m.as_dict())
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in ("score", "kind", "name", "facts"):
        table.add_column(column, justify="right" if column in ("score", "facts") else "left")
    for m in matches:
        table.add_row(f"{m.score:.0f}", m.kind, m.name, str(m.triples))
    print_table(table)


@app.command()
def stats(db: DbOption = None, as_json: JsonOption = False) -> None:
    """How much memory holds, and where it lives."""
    with open_store(db) as store:
        figures = store.stats()
    if as_json:
        json_line(figures)
        return
    for name, value in figures.items():
        out.print(f"{name.replace('_', ' ')}: {value}")


@app.command()
def relations(
    add: Annotated[
        list[str] | None, typer.Option("--add", help="Add a relation name (repeatable).")
    ] = None,
    single: Annotated[
        list[str] | None,
        typer.Option(
            "--single",
            help="Make a relation single-valued: one current object per subject, a new one "
            "supersedes it (repeatable).",
        ),
    ] = None,
    multi: Annotated[
        list[str] | None,
        typer.Option("--multi", help="Make a relation multi-valued (repeatable)."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the relation names memory knows, with their cardinality and how many current
    facts use each; or add relations, or change their cardinality (one undoable batch)."""
    with open_store(db) as store:
        for name in add or []:
            rid, created = store.add_relation(name)
            note(f"added relation {rid}: {name}" if created else f"{name!r} is already known")
        for names_, is_single in ((single, True), (multi, False)):
            if names_:
                batch = store.set_cardinality(names_, is_single)
                kind = "single" if is_single else "multi"
                note(
                    f"{', '.join(names_)}: {kind}-valued"
                    + (f"; batch {batch}" if batch else " already; nothing changed")
                )
        if add or single or multi:
            return
        rows = store.relations()
    if as_json:
        for row in rows:
            json_line(row)
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in ("id", "name", "wikidata", "values", "facts"):
        table.add_column(column, justify="right" if column in ("id", "facts") else "left")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["name"],
            row["wikidata_id"] or "",
            row["cardinality"],
            str(row["triples"]),
        )
    print_table(table)


@app.command("import")
def import_(
    file: Annotated[str, typer.Argument(metavar="FILE", help="CSV or TSV file, or - for stdin.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and count; change nothing.")
    ] = False,
    skip_errors: Annotated[
        bool, typer.Option("--skip-errors", help="Import the good rows; write the bad ones out.")
    ] = False,
    rejects: Annotated[
        str | None, typer.Option(help="Where --skip-errors writes rejected rows.")
    ] = None,
    new_relation: NewRelation = False,
    supersede: Annotated[
        bool,
        typer.Option(
            "--supersede",
            help="When rows give a single-valued relation another object for a subject "
            "(than an earlier row or memory), let the later row win; the earlier facts are "
            "kept as history.",
        ),
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import facts from CSV/TSV with a header `subject,relation,object[,source]`.

    All or nothing: any bad row aborts the import, every error is reported as
    FILE:LINE: field: problem, and memory is unchanged. Two objects for one subject and a
    single-valued relation are a conflict error unless --supersede. The whole import is
    one batch: `memcli mem undo` takes it back.
    """
    from memcli.store.csvio import import_triples

    with _every_error(), open_store(db) as store, ProgressBar("checking rows") as bar:
        report = import_triples(
            store,
            file,
            dry_run=dry_run,
            skip_errors=skip_errors,
            rejects_path=rejects,
            new_relation=new_relation,
            progress=bar.update if bar.shown else None,
            supersede=supersede,
        )
    if as_json:
        json_line(report.as_dict())
    for line in report.errors:
        err.print(line, markup=False, highlight=False)
    if report.error_count > len(report.errors):
        note(f"… and {report.error_count - len(report.errors)} more errors")
    verb = "would add" if dry_run else "added"
    note(
        f"{verb} {report.added} of {counted(report.rows, 'row')}; duplicates: "
        f"{report.duplicates_in_file} in file, {report.duplicates_in_memory} already in memory; "
        f"errors: {report.error_count}"
        + (f"; superseded {report.superseded}" if report.superseded else "")
        + (f" (rejects in {report.rejects_file})" if report.rejects_file else "")
        + (f"; batch {report.batch_id}" if report.batch_id else "")
    )
    if dry_run and report.error_count:
        raise typer.Exit(1)


@app.command()
def export(
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="File to write (default: stdout).")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="jsonl (default), csv, nt or sqlite; guessed from the file name when omitted.",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Write a snapshot of memory. jsonl and sqlite keep everything (restore gives back
    exactly the same memory); csv is what `import` reads; nt is N-Triples for RDF tools."""
    from memcli.store import snapshots

    chosen = snapshots.format_for(output, fmt)
    with open_store(db) as store:
        count = snapshots.export(store, output, chosen)
    note(f"exported {counted(count, 'fact')} as {chosen}" + (f" to {output}" if output else ""))


@app.command()
def restore(
    snapshot: Annotated[
        str, typer.Argument(help="A jsonl, csv or sqlite snapshot from `export`, or -.")
    ],
    merge: Annotated[
        bool, typer.Option("--merge", help="Add the snapshot's facts instead of replacing.")
    ] = False,
    yes: YesOption = False,
    allow_empty: Annotated[
        bool,
        typer.Option("--allow-empty", help="Accept a snapshot with no facts (it empties memory)."),
    ] = False,
    db: DbOption = None,
) -> None:
    """Replace memory with a snapshot (one batch: `memcli mem undo` reverts it).

    The snapshot is read and verified whole before anything changes (an SQLite one by
    SQLite's integrity check, its schema and its counts); a damaged one is refused and
    memory is left as it was. Replacing asks first, or needs --yes when stdin is not a
    terminal; an empty snapshot needs --allow-empty."""
    from memcli.store import snapshots

    with open_store(db) as store:
        held = 0 if merge else store.count()
        if held:
            confirm(
                f"Replace all {counted(held, 'fact')} in memory?",
                f"restore replaces all {counted(held, 'fact')} in memory (--merge adds the "
                "snapshot's facts instead; `memcli mem undo` takes either back)",
                yes=yes,
            )
        batch_id, removed, added = snapshots.restore(
            store, snapshot, merge=merge, allow_empty=allow_empty
        )
    note(
        f"restored {snapshot}: removed {removed}, added {added}"
        + (f"; batch {batch_id}" if batch_id else "")
    )


@app.command()
def log(
    limit: Annotated[int, typer.Option(help="Show this many batches.", min=1)] = 20,
    batch: Annotated[
        int | None, typer.Option(help="Show the changes of this batch instead.")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The change log: every add, edit, removal, import, restore and undo, newest first."""
    with open_store(db) as store:
        if batch is not None:
            store.get_batch(batch)
            changes = store.batch_changes(batch, limit)
            if as_json:
                for c in changes:
                    json_line(c.as_dict())
                return
            for c in changes:
                out.print(f"{c.triple_id}: {_change_text(c)}", markup=False)
            return
        batches = store.log(limit)
    if as_json:
        for b in batches:
            json_line(b.as_dict())
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in ("batch", "when (UTC)", "kind", "changes", "description", "undone"):
        table.add_column(column, justify="right" if column in ("batch", "changes") else "left",
                         no_wrap=column != "description", overflow="fold")  # fmt: skip
    for b in batches:
        table.add_row(
            str(b.id),
            b.created_at[:19].replace("T", " "),  # whole to the second; --json has it all
            b.kind,
            str(b.changes),
            b.description,
            f"by {b.undone_by}" if b.undone_by else "",
        )
    print_table(table)


@app.command()
def undo(
    batch: Annotated[
        int | None, typer.Option(help="Undo this batch (when nothing later depends on it).")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revert the latest batch of changes exactly (a whole import, restore or rm is one)."""
    with open_store(db) as store:
        reverted: Batch = store.undo(batch)
    if as_json:
        json_line(reverted.as_dict())
    note(f"undid batch {reverted.id} ({reverted.kind}: {reverted.description})")
