"""The bottom toolbar: model, memory size, the last turn's reads and writes, speed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from memcli.repl.conversation import Conversation
    from memcli.repl.render import TurnView


class Session(Protocol):
    """What the toolbar shows of a chat (`memcli.repl.session.ChatSession`)."""

    @property
    def engines(self) -> Any: ...
    @property
    def conversation(self) -> Conversation: ...
    @property
    def memory_size(self) -> int: ...
    @property
    def view(self) -> TurnView: ...


SEPARATOR = " │ "


def toolbar_parts(session: Session) -> list[str]:
    """The fields, most important first (the narrow-terminal cut drops from the end)."""
    engines = session.engines
    if engines.error is not None:
        model = "model failed: /model"
    elif not getattr(engines, "loaded", True):
        model = f"{engines.label} (loading…)"
    elif not engines.ready:
        model = f"{engines.label} (warming up…)"
    else:
        model = engines.label
    conversation = session.conversation
    facts = session.memory_size
    parts = [
        model,
        f"memory {facts} fact{'s' if facts != 1 else ''}"
        + ("" if conversation.memory else " (off)"),
    ]
    last = conversation.turns[-1] if conversation.turns else None
    if last is not None and last.status == "done":
        reads, wrote = len(last.facts_read), len(last.stored)
        parts.append(f"read {reads} · wrote {wrote}")
        if last.tokens_per_second:
            parts.append(f"{last.tokens_per_second:.0f} tok/s")
    if conversation.approve:
        parts.append("approve")
    if session.view.hide_calls:
        parts.append("calls hidden")
    parts.append("/help")
    return parts


def fit(parts: list[str], width: int) -> str:
    """Join as many fields as fit in `width` columns; shorten the first if it alone
    does not."""
    line = " " + parts[0]
    for part in parts[1:]:
        if len(line) + len(SEPARATOR) + len(part) > width - 1:
            break
        line += SEPARATOR + part
    if len(line) > width:
        line = line[: max(width - 1, 1)] + "…"
    return line


def toolbar_text(session: Session) -> str:
    try:
        from prompt_toolkit.application import get_app

        width = get_app().output.get_size().columns
    except Exception:
        width = 80
    return fit(toolbar_parts(session), width)
