"""Tab completion: slash commands, their arguments, and entity names after `/mem`."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from memcli.repl.commands import Registry, mem_group

MAX_NAMES = 50


def current_token(text: str) -> str:
    """The token being typed at the end of `text`, with its opening quote if any."""
    start, quote = 0, ""
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char.isspace():
            start = i + 1
    return text[start:]


def quote_name(name: str) -> str:
    if not name or any(c.isspace() or c in "\"'\\;&|<>" for c in name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name


class ChatCompleter(Completer):
    def __init__(self, registry: Registry, entity_names: Callable[[str], list[str]]):
        """`entity_names(typed)`: the names completing `typed`, best first."""
        self.registry = registry
        self.entity_names = entity_names
        self.paths = PathCompleter(expanduser=True)

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/"):
            return
        if " " not in text:
            yield from self._commands(text)
            return
        name, _, rest = text[1:].partition(" ")
        found = self.registry.get(name)
        if found is None:
            return
        if found.name == "mem":
            yield from self._mem(rest)
        elif found.name == "export":
            yield from self.paths.get_completions(Document(rest), complete_event)
        elif found.name == "help":
            yield from self._commands("/" + rest.lstrip("/"), bare=not rest.startswith("/"))
        elif found.choices and " " not in rest:
            for choice in found.choices:
                if choice.startswith(rest.lower()):
                    yield Completion(choice, -len(rest))

    def _commands(self, typed: str, bare: bool = False) -> Iterator[Completion]:
        for cmd in self.registry.all():
            if ("/" + cmd.name).startswith(typed.lower()):
                shown = cmd.name if bare else "/" + cmd.name
                yield Completion(shown, -(len(typed) - bare), display_meta=cmd.summary)

    def _mem(self, rest: str) -> Iterator[Completion]:
        token = current_token(rest)
        before = rest[: len(rest) - len(token)].split()
        group = mem_group()
        if not before:
            for sub in sorted(group.commands):
                if sub.startswith(token):
                    yield Completion(
                        sub, -len(token), display_meta=group.commands[sub].get_short_help_str(40)
                    )
            return
        sub = group.commands.get(before[0])
        if token.startswith("-") and sub is not None:
            options = sorted({o for p in sub.params for o in p.opts if o.startswith("--")})
            for option in options:
                if option.startswith(token) and option != "--db":
                    yield Completion(option, -len(token))
            return
        typed = token.lstrip("\"'")
        for name in self.entity_names(typed)[:MAX_NAMES]:
            yield Completion(quote_name(name), -len(token), display=name)
