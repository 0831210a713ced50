"""The chat loop: a prompt-toolkit prompt in a terminal, or lines from stdin / `-e` when
input or output is not a terminal (same turns, plain text), so a chat can be scripted.

Every line is either a slash command (see `commands`) or a message (a turn, see
`conversation`). No error ends the loop: a `MemcliError` or any unexpected exception is
reported in one line and the next prompt comes. Ctrl-C during a turn stops that turn
(its writes are rolled back); Ctrl-C at the prompt clears the line; Ctrl-D leaves.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from memcli import paths
from memcli.errors import MemcliError, UsageError
from memcli.repl.commands import REGISTRY, Registry
from memcli.repl.conversation import Conversation, Proposal
from memcli.repl.render import TurnView
from memcli.store import names
from memcli.store.core import TripleStore, check_name
from memcli.syntax import SEP

PROMPT = "memcli> "


@dataclass
class ChatOptions:
    engine: str | None = None
    model: str | None = None
    adapter: str | None = None
    no_adapter: bool = False
    threads: int | None = None
    db: Path | None = None
    hide_calls: bool = False
    approve: bool = False
    new_relations: bool = False
    user: str | None = None
    memory: bool = True
    execute: list[str] = field(default_factory=list)


class ChatSession:
    """One chat: a conversation, a view, the slash commands, and where input comes from.

    `engines` is anything with `answering()`, `writing()`, `ready`, `error`, `label`,
    `describe()` and `close()` (see `memcli.repl.engines`).
    """

    def __init__(
        self,
        conversation: Conversation,
        view: TurnView,
        *,
        registry: Registry = REGISTRY,
        options: ChatOptions | None = None,
    ):
        self.conversation = conversation
        self.view = view
        self.registry = registry
        self.options = options or ChatOptions()
        self.running = True
        self.errors = 0
        self.memory_size = 0
        self._lines: Iterator[str] | None = None  # script input, also for approval
        self._ask_session: Any = None
        self.refresh()

    @property
    def store(self) -> TripleStore:
        return self.conversation.store

    @property
    def engines(self) -> Any:
        return self.conversation.engines

    def refresh(self) -> None:
        """Re-read what the toolbar shows from memory, when memory changed (a count of
        10,000,000 facts takes a second)."""
        revision = self.store.revision()
        if getattr(self, "_counted", None) != revision:
            self.memory_size = self.store.count()
            self._counted = revision

    def entity_names(self, typed: str) -> list[str]:
        """Entity names completing `typed` (through the store's key index: as quick at a
        million entities as at ten)."""
        from memcli.store.matching import names_starting

        return names_starting(self.store, typed, limit=50)

    # -- one line -----------------------------------------------------------------------

    def handle(self, line: str) -> None:
        """Run one line (command or message); report any error in one line."""
        line = line.strip()
        if not line:
            return
        try:
            if line.startswith("/"):
                self.registry.dispatch(self, line)
            else:
                self.conversation.run_turn(line, self.view, review=self.review)
        except KeyboardInterrupt:
            self.view.cancelled()
        except MemcliError as exc:
            self.errors += 1
            self.view.error(str(exc))
        except Exception as exc:  # a bug: say so in one line, keep the chat
            self.errors += 1
            self.view.error(f"unexpected {type(exc).__name__}: {exc}{_logged(exc)}")
        finally:
            self.refresh()

    # -- approval -----------------------------------------------------------------------

    def review(self, proposals: list[Proposal]) -> list[Proposal]:
        """Show each proposed fact; the person keeps (y), drops (n), edits (e) it, keeps
        it and the rest (a) or drops it and the rest (q)."""
        accepted: list[Proposal] = []
        total = len(proposals)
        for index, proposal in enumerate(proposals, 1):
            self.view.proposal(proposal, index, total)
            while True:
                answer = self.ask("store it? [Y]es [n]o [e]dit [a]ll [q]uit: ").strip().lower()
                if answer in ("", "y", "yes"):
                    accepted.append(proposal)
                elif answer in ("a", "all"):
                    return accepted + proposals[index - 1 :]
                elif answer in ("q", "quit"):
                    return accepted
                elif answer in ("e", "edit"):
                    edited = self._edit(proposal)
                    if edited is None:
                        continue
                    accepted.append(edited)
                elif answer not in ("n", "no"):
                    self.view.note("answer y, n, e, a or q")
                    continue
                break
        return accepted

    def _edit(self, proposal: Proposal) -> Proposal | None:
        while True:
            text = self.ask("edit (subject >> relation >> object): ", proposal.line()).strip()
            if not text:
                return None
            try:
                edited = self.parse_fact(
                    text,
                    proposal.sentence,
                    new_relation=(proposal.relation if proposal.new_relation else None),
                )
                return replace(edited, edited_from=proposal.line())
            except MemcliError as exc:
                self.view.error(str(exc))

    def parse_fact(
        self, text: str, sentence: str = "", new_relation: str | None = None
    ) -> Proposal:
        """A fact the person typed; its relation must be known, or be `new_relation` (the
        new one proposed for the fact being edited)."""
        parts = [p.strip() for p in text.split(SEP)]
        if len(parts) != 3:
            raise UsageError("write it as subject >> relation >> object")
        subject = check_name(parts[0], "subject")
        relation = check_name(parts[1], "relation")
        obj = check_name(parts[2], "object")
        known = names.key(relation) in self.store.relation_keys()
        if (
            not known
            and new_relation is not None
            and names.key(relation) == names.key(new_relation)
        ):
            return Proposal(subject, relation, obj, sentence, new_relation=True)
        if not known:
            hint = self.store.suggest_relations(relation)
            raise UsageError(
                f"unknown relation {relation!r}"
                + (f" (did you mean: {', '.join(hint)}?)" if hint else "")
            )
        return Proposal(subject, relation, obj, sentence)

    def ask(self, message: str, default: str = "") -> str:
        """A line from the person: the prompt in a terminal, else the next input line
        (end of input answers no)."""
        if self._lines is not None:
            self.view.note(message.rstrip())
            return next(self._lines, "n")
        if self._ask_session is None:
            from prompt_toolkit import PromptSession

            prompt = getattr(self, "_prompt", None)
            self._ask_session = PromptSession(
                input=prompt.input if prompt else None,
                output=prompt.output if prompt else None,
            )
        return self._ask_session.prompt(message, default=default)

    # -- models -------------------------------------------------------------------------

    def switch_model(self, spec: str) -> None:
        from memcli.repl.engines import BackgroundEngines

        opts = self.options
        fresh = BackgroundEngines(
            self.store,
            engine=opts.engine,
            model=spec,
            adapter=opts.adapter,
            no_adapter=opts.no_adapter,
            threads=opts.threads,
        )
        try:
            fresh.answering()
        except BaseException:
            fresh.close()
            raise
        old = self.conversation.engines
        self.conversation.engines = fresh
        self.conversation.clear()  # another model: another tokenizer and cache
        from memcli.repl.conversation import base_engine_factory

        self.conversation.close_chat_engine()
        self.conversation.chat_factory = base_engine_factory(fresh, self.store)
        close = getattr(old, "close", None)
        if close is not None:
            close()

    # -- loops --------------------------------------------------------------------------

    def run_lines(self, lines: Iterable[str]) -> int:
        """Script mode: each line is typed at the prompt. Exit status 1 if any failed."""
        self._lines = iter(lines)
        self._wait_loaded()
        for line in self._lines:
            self.handle(line.rstrip("\n"))
            if not self.running:
                break
        return 1 if self.errors else 0

    def run(self, *, input: Any = None, output: Any = None, history: Any = None) -> int:
        """The interactive loop on a prompt-toolkit prompt (tests pass a pipe input and
        `DummyOutput`)."""
        # After the load: prompt-toolkit probes the terminal on fd 1 when it makes its
        # output, and while llama.cpp loads, fd 1 is /dev/null (it would then draw the
        # prompt nowhere, for good).
        self._wait_loaded()
        self._prompt = self._prompt_session(input, output, history)
        listeners = getattr(self.engines, "listeners", None)
        if listeners is not None:
            listeners.append(self._redraw)
        self._ask_session = None  # approval questions share this prompt's input
        self._lines = None
        if self.banner:
            self.view.note(self.banner)
        while self.running:
            self._report_load_failure()
            try:
                line = self._prompt.prompt(PROMPT)
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            self.handle(line)
        return 0

    def _prompt_session(self, input: Any, output: Any, history: Any) -> Any:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
        from prompt_toolkit.history import FileHistory
        from prompt_toolkit.styles import Style

        from memcli.repl.completer import ChatCompleter
        from memcli.repl.keys import chat_key_bindings
        from memcli.repl.toolbar import toolbar_text

        if history is None:
            history = FileHistory(str(paths.history_file()))
        return PromptSession(
            history=history,
            completer=ChatCompleter(self.registry, self.entity_names),
            complete_while_typing=True,
            auto_suggest=AutoSuggestFromHistory(),
            bottom_toolbar=lambda: toolbar_text(self),
            key_bindings=chat_key_bindings(self),
            style=Style.from_dict({"prompt": "bold", "bottom-toolbar": "noreverse"}),
            input=input,
            output=output,
        )

    def _redraw(self) -> None:
        """Called from the loader thread: the toolbar shows the model's new state."""
        prompt = getattr(self, "_prompt", None)
        if prompt is not None and prompt.app.is_running:
            prompt.app.invalidate()  # thread-safe

    _load_reported = False
    banner = ""

    def _wait_loaded(self) -> None:
        """Nothing may be printed while llama.cpp loads a model (see `engines`)."""
        wait = getattr(self.engines, "wait_loaded", None)
        if wait is not None:
            wait()

    def _report_load_failure(self) -> None:
        error = getattr(self.engines, "error", None)
        if error is not None and not self._load_reported:
            self._load_reported = True
            message = str(error) if isinstance(error, MemcliError) else repr(error)
            self.view.error(f"the model did not load: {message}")


def _logged(exc: BaseException) -> str:
    """Append the traceback to the chat error log; return where it is."""
    try:
        log = paths.home() / "chat-errors.log"
        with log.open("a", encoding="utf-8") as f:
            f.write("".join(traceback.format_exception(exc)) + "\n")
    except OSError:
        return ""
    return f" (details in {log})"


def run_chat(options: ChatOptions) -> int:
    """`memcli chat`: open memory, start loading the model, and run the loop."""
    from memcli.repl.engines import BackgroundEngines

    interactive = not options.execute and sys.stdin.isatty() and sys.stdout.isatty()
    store = TripleStore(options.db)
    engines = BackgroundEngines(
        store,
        engine=options.engine,
        model=options.model,
        adapter=options.adapter,
        no_adapter=options.no_adapter,
        threads=options.threads,
    )
    conversation = Conversation(
        engines,
        store,
        memory=options.memory,
        approve=options.approve,
        new_relations=options.new_relations,
        user=options.user,
    )
    from memcli.repl.conversation import base_engine_factory

    conversation.chat_factory = base_engine_factory(engines, store)
    try:
        if interactive:
            console = Console(highlight=False)
            view = TurnView(console, hide_calls=options.hide_calls)
            session = ChatSession(conversation, view, options=options)
            count = session.memory_size
            session.banner = (
                f"memcli chat · {count} fact{'s' if count != 1 else ''} in "
                f"{store.path} · /help · Ctrl-D leaves"
            )
            return session.run()
        plain: dict[str, Any] = {
            "highlight": False,
            "color_system": None,
            "force_terminal": False,
            "soft_wrap": True,
        }
        view = TurnView(
            Console(file=sys.stdout, **plain),
            Console(file=sys.stderr, **plain),
            hide_calls=options.hide_calls,
            wrap=False,
        )
        session = ChatSession(conversation, view, options=options)
        lines: Iterable[str] = options.execute or sys.stdin
        return session.run_lines(lines)
    finally:
        conversation.close_chat_engine()
        conversation.engines.close()  # /model may have replaced `engines`
        if conversation.engines is not engines:
            engines.close()
        store.close()
