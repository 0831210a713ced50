"""`memcli mem`: everything a person can do with memory, without a model."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from memcli.cli.common import DbOption, JsonOption, YesOption
from memcli.cli.output import CLI, Output, counted
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


Work = Callable[..., Any]
WORK: dict[str, Work] = {}  # `memcli mem NAME` and the REPL's `/mem NAME` both run these


def command(name: str | None = None) -> Callable[[Work], Work]:
    """Register `work(store, out, **options)` as `memcli mem NAME`: the work of a
    command, on an open memory, printing through an `Output`. Its options are declared
    once, on `work`. The Typer command adds --db (before --json, else last), opens that
    memory and prints with the CLI's `Output`; the REPL's `/mem` parses the same options
    and calls `work` on the chat's memory with its own (`memcli.repl.mem`)."""

    def register(work: Work) -> Work:
        WORK[name or work.__name__] = work
        app.command(name)(_on_db(work))
        return work

    return register


def _on_db(work: Work) -> Work:
    signature = inspect.signature(work, eval_str=True)
    options = list(signature.parameters.values())[2:]  # after (store, out)
    at = next((i for i, p in enumerate(options) if p.name == "as_json"), len(options))
    db = inspect.Parameter(
        "db", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=DbOption
    )
    options.insert(at, db)

    @functools.wraps(work)
    def run(*, db: Path | None = None, **values: Any) -> Any:
        with open_store(db) as store:
            return work(store, CLI, **values)

    run.__signature__ = signature.replace(parameters=options)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in options}
    return run


def triple_line(t: Fact) -> str:
    return fact_text(t.subject, t.relation, t.object)


def print_triples(out: Output, triples: list[Fact], as_json: bool) -> None:
    if as_json:
        for t in triples:
            out.json(t.as_dict())
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    whole = _short([t.source for t in triples])
    for column in ("id", "subject", "relation", "object", "source"):
        table.add_column(column, justify="right" if column == "id" else "left",
                         no_wrap=column == "source" and whole, overflow="fold")  # fmt: skip
    for t in triples:
        table.add_row(str(t.id), t.subject, t.relation, t.object, t.source)
    out.table(table)


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


def _superseded_note(out: Output, superseded: tuple[Fact, ...], new: Fact) -> None:
    for old in superseded:
        change = update_text(old.subject, old.relation, old.object, new.object)
        out.note(f"superseded {old.id}: {change}")


@command()
def add(
    store: TripleStore,
    out: Output,
    subject: Annotated[str, typer.Argument(help="Who or what the fact is about.")],
    relation: Annotated[str, typer.Argument(help="A relation name, e.g. 'country'.")],
    object: Annotated[str, typer.Argument(help="The value.")],
    source: Annotated[str, typer.Option(help="Where the fact comes from.")] = "manual",
    new_relation: NewRelation = False,
    as_json: JsonOption = False,
) -> None:
    """Add one fact; prints its id. Adding a fact memory already holds changes nothing.

    For a single-valued relation (see `memcli mem relations`) a new object replaces the
    subject's current one, which is kept as history (`memcli mem show ID`)."""
    result = store.add(subject, relation, object, source, new_relation=new_relation)
    if as_json:
        out.json(
            {
                **result.triple.as_dict(),
                "created": result.created,
                "superseded": [t.id for t in result.superseded],
            }
        )
    elif result.created:
        out.print(result.triple.id)
        _superseded_note(out, result.superseded, result.triple)
    else:
        out.print(result.triple.id)
        out.note(f"already in memory as {result.triple.id}: {triple_line(result.triple)}")


@command()
def edit(
    store: TripleStore,
    out: Output,
    triple_id: Annotated[int, typer.Argument(metavar="ID", help="The fact to change.")],
    subject: Annotated[str | None, typer.Option(help="New subject.")] = None,
    relation: Annotated[str | None, typer.Option(help="New relation.")] = None,
    object: Annotated[str | None, typer.Option("--object", help="New object.")] = None,
    new_relation: NewRelation = False,
    as_json: JsonOption = False,
) -> None:
    """Change the subject, relation or object of a fact (its id stays)."""
    if subject is None and relation is None and object is None:
        raise UsageError("say what to change: --subject, --relation and/or --object")
    triple = store.edit(triple_id, subject, relation, object, new_relation=new_relation)
    if as_json:
        out.json(triple.as_dict())
    else:
        out.note(f"edited {triple.id}: {triple_line(triple)}")


@command()
def supersede(
    store: TripleStore,
    out: Output,
    triple_id: Annotated[
        int, typer.Argument(metavar="ID", help="The fact that stopped being true.")
    ],
    object: Annotated[str, typer.Option("--object", help="What is true now.")],
    source: Annotated[str, typer.Option(help="Where the new fact comes from.")] = "manual",
    as_json: JsonOption = False,
) -> None:
    """Replace a fact by a new one with another object, keeping the old one as history
    (for multi-valued relations too: "now works for …"). Prints the new fact's id."""
    result = store.supersede(triple_id, object=object, source=source)
    if as_json:
        out.json({**result.triple.as_dict(), "superseded": [t.id for t in result.superseded]})
        return
    out.print(result.triple.id)
    _superseded_note(out, result.superseded, result.triple)


@command()
def rm(
    store: TripleStore,
    out: Output,
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
    as_json: JsonOption = False,
) -> None:
    """Remove facts by id, or every fact matching --subject/--relation/--object.
    Removing by match asks first unless --yes; `memcli mem undo` brings them back."""
    by_match = any(v is not None for v in (subject, relation, object))
    if bool(ids) == by_match:
        raise UsageError("give fact ids, or --subject/--relation/--object, not both")
    if ids:
        targets = [store.get(i) for i in dict.fromkeys(ids)]
    else:
        targets = store.find(subject, relation, object)
    if not targets:
        out.note("nothing matches; nothing removed")
        return
    if dry_run:
        print_triples(out, targets, as_json)
        out.note(f"would remove {counted(len(targets), 'fact')}")
        return
    if by_match:
        if out.interactive and not yes:
            print_triples(out, targets[:20], False)
        more = f" (showing 20 of {len(targets)})" if len(targets) > 20 else ""
        out.confirm(
            f"Remove {counted(len(targets), 'fact')}{more}?",
            f"{counted(len(targets), 'fact')} match (see --dry-run)",
            yes=yes,
        )
    removed = store.remove([t.id for t in targets])
    if as_json:
        for t in removed:
            out.json(t.as_dict())
    out.note(f"removed {counted(len(removed), 'fact')}; `memcli mem undo` restores them")


@contextmanager
def _every_error(out: Output) -> Iterator[None]:
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
            out.error_line(line)
        if exc.total > len(exc.errors):
            out.note(f"… and {exc.total - len(exc.errors)} more errors")
        raise MemcliError(f"{counted(exc.total, 'error')}; memory unchanged") from None


@command("ls")
def list_(
    store: TripleStore,
    out: Output,
    subject: Annotated[str | None, typer.Option(help="Only facts with this subject.")] = None,
    relation: Annotated[str | None, typer.Option(help="Only facts with this relation.")] = None,
    object: Annotated[str | None, typer.Option("--object", help="Only this object.")] = None,
    source: Annotated[str | None, typer.Option(help="Only sources containing this text.")] = None,
    limit: Annotated[int | None, typer.Option(help="Show at most this many.", min=0)] = None,
    history: Annotated[
        bool,
        typer.Option("--history", help="Also list superseded facts, with what replaced them."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List current facts, oldest first. Names match ignoring case and spacing."""
    triples = store.find(subject, relation, object, source, limit, history=history)
    if history and not as_json:
        _print_history(out, triples)
        return
    print_triples(out, triples, as_json)


def _print_history(out: Output, triples: list[Fact]) -> None:
    """Current and superseded facts: `no → 2` names the fact that replaced one (its date
    and batch are in `memcli mem show ID`). Sources are left out to fit 80 columns."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in ("id", "subject", "relation", "object", "current"):
        table.add_column(column, justify="right" if column == "id" else "left",
                         no_wrap=column in ("id", "current"), overflow="fold")  # fmt: skip
    for t in triples:
        state = "yes" if t.current else f"no → {t.superseded_by}"
        table.add_row(str(t.id), t.subject, t.relation, t.object, state)
    out.table(table)


@command()
def show(
    store: TripleStore,
    out: Output,
    triple_id: Annotated[int, typer.Argument(metavar="ID")],
    as_json: JsonOption = False,
) -> None:
    """Show one fact with its source and history."""
    triple = store.get(triple_id)
    changes = store.history(triple_id)
    chain = store.chain(triple_id)
    if as_json:
        out.json(
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


@command()
def search(
    store: TripleStore,
    out: Output,
    text: Annotated[str, typer.Argument(help="What to look for (approximate).")],
    limit: Annotated[int, typer.Option(help="At most this many matches.", min=1)] = 10,
    as_json: JsonOption = False,
) -> None:
    """Find entities and relations whose names resemble TEXT, best match first."""
    from memcli.store.matching import search as run_search

    matches = run_search(store, text, limit)
    if as_json:
        for m in matches:
            out.json(m.as_dict())
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in ("score", "kind", "name", "facts"):
        table.add_column(column, justify="right" if column in ("score", "facts") else "left")
    for m in matches:
        table.add_row(f"{m.score:.0f}", m.kind, m.name, str(m.triples))
    out.table(table)


@command()
def stats(store: TripleStore, out: Output, as_json: JsonOption = False) -> None:
    """How much memory holds, and where it lives."""
    figures = store.stats()
    if as_json:
        out.json(figures)
        return
    for name, value in figures.items():
        out.print(f"{name.replace('_', ' ')}: {value}")


@command()
def relations(
    store: TripleStore,
    out: Output,
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
    as_json: JsonOption = False,
) -> None:
    """List the relation names memory knows, with their cardinality and how many current
    facts use each; or add relations, or change their cardinality (one undoable batch)."""
    for name in add or []:
        rid, created = store.add_relation(name)
        out.note(f"added relation {rid}: {name}" if created else f"{name!r} is already known")
    for names_, is_single in ((single, True), (multi, False)):
        if names_:
            batch = store.set_cardinality(names_, is_single)
            kind = "single" if is_single else "multi"
            out.note(
                f"{', '.join(names_)}: {kind}-valued"
                + (f"; batch {batch}" if batch else " already; nothing changed")
            )
    if add or single or multi:
        return
    rows = store.relations()
    if as_json:
        for row in rows:
            out.json(row)
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
    out.table(table)


@command("import")
def import_(
    store: TripleStore,
    out: Output,
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
    as_json: JsonOption = False,
) -> None:
    """Import facts from CSV/TSV with a header `subject,relation,object[,source]`.

    All or nothing: any bad row aborts the import, every error is reported as
    FILE:LINE: field: problem, and memory is unchanged. Two objects for one subject and a
    single-valued relation are a conflict error unless --supersede. The whole import is
    one batch: `memcli mem undo` takes it back.
    """
    from memcli.store.csvio import import_triples

    with _every_error(out), out.progress("checking rows") as bar:
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
        out.json(report.as_dict())
    for line in report.errors:
        out.error_line(line)
    if report.error_count > len(report.errors):
        out.note(f"… and {report.error_count - len(report.errors)} more errors")
    verb = "would add" if dry_run else "added"
    out.note(
        f"{verb} {report.added} of {counted(report.rows, 'row')}; duplicates: "
        f"{report.duplicates_in_file} in file, {report.duplicates_in_memory} already in memory; "
        f"errors: {report.error_count}"
        + (f"; superseded {report.superseded}" if report.superseded else "")
        + (f" (rejects in {report.rejects_file})" if report.rejects_file else "")
        + (f"; batch {report.batch_id}" if report.batch_id else "")
    )
    if dry_run and report.error_count:
        raise typer.Exit(1)


@command()
def export(
    store: TripleStore,
    out: Output,
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
) -> None:
    """Write a snapshot of memory. jsonl and sqlite keep everything (restore gives back
    exactly the same memory); csv is what `import` reads; nt is N-Triples for RDF tools."""
    from memcli.store import snapshots

    chosen = snapshots.format_for(output, fmt)
    with out.stream() as stream:
        count = snapshots.export(store, output, chosen, stdout=stream)
    out.note(f"exported {counted(count, 'fact')} as {chosen}" + (f" to {output}" if output else ""))


@command()
def restore(
    store: TripleStore,
    out: Output,
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
) -> None:
    """Replace memory with a snapshot (one batch: `memcli mem undo` reverts it).

    The snapshot is read and verified whole before anything changes (an SQLite one by
    SQLite's integrity check, its schema and its counts); a damaged one is refused and
    memory is left as it was. Replacing asks first, or needs --yes when stdin is not a
    terminal; an empty snapshot needs --allow-empty."""
    from memcli.store import snapshots

    held = 0 if merge else store.count()
    if held:
        out.confirm(
            f"Replace all {counted(held, 'fact')} in memory?",
            f"restore replaces all {counted(held, 'fact')} in memory (--merge adds the "
            "snapshot's facts instead; `memcli mem undo` takes either back)",
            yes=yes,
        )
    batch_id, removed, added = snapshots.restore(
        store, snapshot, merge=merge, allow_empty=allow_empty
    )
    out.note(
        f"restored {snapshot}: removed {removed}, added {added}"
        + (f"; batch {batch_id}" if batch_id else "")
    )


@command()
def log(
    store: TripleStore,
    out: Output,
    limit: Annotated[int, typer.Option(help="Show this many batches.", min=1)] = 20,
    batch: Annotated[
        int | None, typer.Option(help="Show the changes of this batch instead.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The change log: every add, edit, removal, import, restore and undo, newest first."""
    if batch is not None:
        store.get_batch(batch)
        changes = store.batch_changes(batch, limit)
        if as_json:
            for c in changes:
                out.json(c.as_dict())
            return
        for c in changes:
            out.print(f"{c.triple_id}: {_change_text(c)}")
        return
    batches = store.log(limit)
    if as_json:
        for b in batches:
            out.json(b.as_dict())
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
    out.table(table)


@command()
def undo(
    store: TripleStore,
    out: Output,
    batch: Annotated[
        int | None, typer.Option(help="Undo this batch (when nothing later depends on it).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Revert the latest batch of changes exactly (a whole import, restore or rm is one)."""
    reverted: Batch = store.undo(batch)
    if as_json:
        out.json(reverted.as_dict())
    out.note(f"undid batch {reverted.id} ({reverted.kind}: {reverted.description})")
