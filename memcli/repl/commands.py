"""Slash commands: a small registry, not an if/elif ladder.

Each command is a function `(session, args)` registered with `@command(...)`; `args` is
the rest of the line. The completer and `/help` read the same registry.
"""

from __future__ import annotations

import difflib
import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from memcli.errors import MemcliError, UsageError
from memcli.store import names
from memcli.syntax import fact_text

if TYPE_CHECKING:
    from memcli.repl.conversation import Conversation
    from memcli.repl.render import TurnView
    from memcli.store.core import TripleStore


class Session(Protocol):
    """What a slash command may use of a chat (`memcli.repl.session.ChatSession`, which
    imports this registry; the registry does not import it)."""

    running: bool

    @property
    def conversation(self) -> Conversation: ...
    @property
    def view(self) -> TurnView: ...
    @property
    def store(self) -> TripleStore: ...
    @property
    def engines(self) -> Any: ...
    def refresh(self) -> None: ...
    def switch_model(self, spec: str) -> None: ...


Handler = Callable[[Session, str], None]


@dataclass(frozen=True)
class SlashCommand:
    name: str
    handler: Handler
    summary: str
    usage: str = ""
    aliases: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()  # completions for the argument


class Registry:
    def __init__(self) -> None:
        self._commands: dict[str, SlashCommand] = {}
        self._aliases: dict[str, str] = {}

    def command(
        self,
        name: str,
        summary: str,
        *,
        usage: str = "",
        aliases: Sequence[str] = (),
        choices: Sequence[str] = (),
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._commands[name] = SlashCommand(
                name, handler, summary, usage or f"/{name}", tuple(aliases), tuple(choices)
            )
            for alias in aliases:
                self._aliases[alias] = name
            return handler

        return register

    def get(self, name: str) -> SlashCommand | None:
        name = name.lower()
        return self._commands.get(self._aliases.get(name, name))

    def all(self) -> list[SlashCommand]:
        return list(self._commands.values())

    def names(self) -> list[str]:
        return list(self._commands)

    def suggest(self, name: str) -> str | None:
        """The closest command (or `mem` subcommand) to a mistyped name."""
        name = name.lower()
        if name in mem_subcommands():
            return f"/mem {name}"
        known = [*self._commands, *self._aliases]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        if not close:
            close = [k for k in known if k.startswith(name[:2])][:1] if len(name) >= 2 else []
        if not close:
            return None
        return "/" + self._aliases.get(close[0], close[0])

    def dispatch(self, session: Session, line: str) -> None:
        name, _, args = line.strip()[1:].partition(" ")
        found = self.get(name)
        if found is None:
            hint = self.suggest(name) if name else None
            raise UsageError(
                f"unknown command /{name}"
                + (f"; did you mean {hint}?" if hint else "; /help lists the commands")
            )
        found.handler(session, args.strip())


REGISTRY = Registry()
command = REGISTRY.command


def _on_off(args: str, what: str, current: bool) -> bool:
    value = args.strip().lower()
    if value in ("", "status"):
        return current
    if value in ("on", "yes", "true", "1"):
        return True
    if value in ("off", "no", "false", "0"):
        return False
    raise UsageError(f"/{what} takes on or off, not {args!r}")


# -- help and leaving ---------------------------------------------------------------------


@command("help", "List the commands, or explain one.", usage="/help [COMMAND]", aliases=("?",))
def help_(session: Session, args: str) -> None:
    if args:
        found = REGISTRY.get(args.lstrip("/"))
        if found is None:
            hint = REGISTRY.suggest(args.lstrip("/"))
            raise UsageError(f"no command {args}" + (f"; did you mean {hint}?" if hint else ""))
        session.view.text(f"{found.usage}\n  {found.summary}")
        return
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE, show_header=False, pad_edge=False, show_edge=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for cmd in REGISTRY.all():
        table.add_row(cmd.usage, cmd.summary)
    session.view.print(table)
    session.view.note(
        "Anything else is a message. Facts you state are written to memory (one batch per "
        "turn). Ctrl-C stops a turn, Ctrl-D leaves, F2 shows/hides memory calls."
    )


@command("quit", "Leave the chat (Ctrl-D does too).", aliases=("exit", "q"))
def quit_(session: Session, args: str) -> None:
    session.running = False


# -- what memory did ----------------------------------------------------------------------


@command("why", "The facts read for the last answer: id, source, when added.")
def why(session: Session, args: str) -> None:
    last = session.conversation.last
    if last is None:
        session.view.note("no answer yet")
        return
    facts = last.facts_read
    if facts:
        session.view.facts(facts)
        for fact in facts:
            try:
                chain = session.store.chain(fact.id)
            except MemcliError:
                continue
            earlier = [t for t in chain if t.superseded_by == fact.id]
            if earlier:
                since = (earlier[-1].superseded_at or fact.created_at)[:16].replace("T", " ")
                session.view.note(
                    f"#{fact.id} current since {since}, replacing {earlier[-1].object} "
                    f"(#{earlier[-1].id})"
                )
    else:
        session.view.note("the last answer read nothing from memory")
    for read in last.reads:
        if not read.kept:
            queries = "; ".join(_query_text(q) for q in read.queries)
            session.view.note(f"queried {queries}: {read.note or 'nothing in memory'}")


def _query_text(query: Any) -> str:
    return fact_text(query.subject or "?", query.relation, query.object or "?")


@command("writes", "What the last turn stored in memory.")
def writes(session: Session, args: str) -> None:
    last = session.conversation.last
    if last is None:
        session.view.note("no turn yet")
        return
    if last.stored:
        session.view.facts(last.stored)
        if last.undone:
            session.view.note(f"(undone: turn {last.number}'s batch {last.batch_id} was reverted)")
    else:
        session.view.note(f"turn {last.number} stored nothing")
    stored = {
        (names.key(t.subject), names.key(t.relation), names.key(t.object)) for t in last.stored
    }
    known = [p for p in last.accepted if p.key() not in stored]
    for p in known:
        session.view.note(f"already in memory: {p.line()}")
    for p in last.accepted:
        if p.edited_from:
            session.view.note(f"edited: {p.edited_from} → {p.line()}")
    for p in last.rejected:
        session.view.note(f"rejected: {p.line()}")


@command("undo", "Revert the last turn's writes (again: the turn before).")
def undo(session: Session, args: str) -> None:
    turn = session.conversation.undo_last()
    count = len(turn.stored)
    session.view.note(
        f"undid turn {turn.number}: removed {count} fact{'s' if count != 1 else ''}"
        f" (batch {turn.batch_id})"
    )


# -- memory commands ----------------------------------------------------------------------


def mem_group() -> Any:
    """The Click group behind `memcli mem` (its subcommands and options)."""
    from memcli.repl import mem

    return mem.group()


def mem_subcommands() -> list[str]:
    try:
        return sorted(mem_group().commands)
    except Exception:  # the CLI layer is not importable: no suggestions, no crash
        return []


@command(
    "mem",
    "Memory commands, the same code as `memcli mem` (ls, add, rm, search, show, log, …).",
    usage="/mem ls|add|rm|search|… ARGS",
)
def mem_(session: Session, args: str) -> None:
    from memcli.repl import mem

    mem.run(session, args)


@command(
    "export",
    "Save this conversation (with its memory calls and facts) to FILE: "
    "Markdown, or JSON lines for .jsonl/.json.",
    usage="/export FILE",
)
def export(session: Session, args: str) -> None:
    if not args:
        raise UsageError("/export needs a file name (memory itself: /mem export -o FILE)")
    from memcli.store.safety import atomic_output, output_target, protected_files

    try:
        path = Path(shlex.split(args)[0]).expanduser()
    except (ValueError, IndexError) as exc:
        raise UsageError(f"/export {args}: {exc or 'no file name'}") from None
    # Never onto the memory in use (or its -wal/-shm), never half written.
    target = output_target(path, protected_files(session.store.path), what="export")
    conversation = session.conversation
    turns = [t for t in conversation.turns if t.status == "done"]
    if path.suffix in (".jsonl", ".json"):
        lines = [json.dumps(_turn_json(t), ensure_ascii=False) for t in turns]
        text = "\n".join(lines) + ("\n" if lines else "")
    else:
        text = _markdown(session, turns)
    with atomic_output(target) as handle:
        handle.write(text)
    session.view.note(f"exported {len(turns)} turn{'s' if len(turns) != 1 else ''} to {path}")


def _turn_json(turn: Any) -> dict:
    return {
        "turn": turn.number,
        "started": turn.started,
        "user": turn.message,
        "assistant": turn.answer,
        "raw": turn.raw,
        "facts_read": [f.as_dict() for f in turn.facts_read],
        "write_calls": turn.write_calls,
        "stored": [t.as_dict() for t in turn.stored],
        "batch_id": turn.batch_id,
        "undone": turn.undone,
    }


def _markdown(session: Session, turns: list) -> str:
    conversation = session.conversation
    out = [f"# memcli chat {conversation.session_id}", "", f"model: {session.engines.label}", ""]
    for t in turns:
        out += [
            f"## Turn {t.number}",
            "",
            f"**You:** {t.message}",
            "",
            f"**Assistant:** {t.raw or t.answer}",
            "",
        ]
        for call in t.write_calls:
            out.append(f"- write: `{call}`")
        for f in t.facts_read:
            out.append(f"- read #{f.id}: {fact_text(f.subject, f.relation, f.object)} ({f.source})")
        for s in t.stored:
            out.append(
                f"- stored #{s.id}: {fact_text(s.subject, s.relation, s.object)}"
                + (" (undone)" if t.undone else "")
            )
        out.append("")
    return "\n".join(out)


# -- toggles ------------------------------------------------------------------------------


@command(
    "memory",
    "Read and write memory (on), or chat without it (off).",
    usage="/memory on|off",
    choices=("on", "off"),
)
def memory(session: Session, args: str) -> None:
    conversation = session.conversation
    conversation.memory = _on_off(args, "memory", conversation.memory)
    state = (
        "on: answers read memory, stated facts are written"
        if conversation.memory
        else ("off: no reads, no writes")
    )
    session.view.note(f"memory {state}")


@command(
    "approve",
    "Ask before storing each proposed fact (on) or store them (off).",
    usage="/approve on|off",
    choices=("on", "off"),
)
def approve(session: Session, args: str) -> None:
    conversation = session.conversation
    conversation.approve = _on_off(args, "approve", conversation.approve)
    session.view.note(
        "approval "
        + (
            "on: each proposed fact is shown for yes/no/edit"
            if conversation.approve
            else "off: facts are stored"
        )
    )


@command(
    "model",
    "Show the model, or switch to another (a file or registry name).",
    usage="/model [NAME]",
)
def model(session: Session, args: str) -> None:
    if args:
        session.switch_model(args)
    if not session.engines.ready and session.engines.error is None:
        session.view.note("loading the model…")
    info = session.engines.describe()
    session.view.text("\n".join(f"{key}: {value}" for key, value in info.items()))


@command("clear", "Forget the conversation so far (memory is kept).")
def clear(session: Session, args: str) -> None:
    session.conversation.clear()
    count = session.store.count()
    session.view.note(f"context cleared; memory keeps its {count} fact{'s' if count != 1 else ''}")
