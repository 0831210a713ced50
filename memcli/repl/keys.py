"""Key bindings for the chat prompt, on top of prompt-toolkit's Emacs defaults.

Enter sends, Ctrl-C clears the line (during a turn: stops the turn), Ctrl-D on an empty
line leaves — those are the defaults. Added here: Alt-Enter (Esc Enter) for a new line
inside a message, Ctrl-Space to open completion, F2 to show or hide memory calls.
"""

from __future__ import annotations

from typing import Protocol

from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent


class _CallsShown(Protocol):
    hide_calls: bool


class Session(Protocol):
    """What the key bindings use of a chat (`memcli.repl.session.ChatSession`)."""

    @property
    def view(self) -> _CallsShown: ...


def chat_key_bindings(session: Session) -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("escape", "enter")
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    @bindings.add("c-space")
    def _complete(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        if buffer.complete_state:
            buffer.complete_next()
        else:
            buffer.start_completion(select_first=False)

    @bindings.add("f2")
    def _toggle_calls(event: KeyPressEvent) -> None:
        session.view.hide_calls = not session.view.hide_calls
        event.app.invalidate()  # the toolbar says which

    return bindings
