"""End to end in a real terminal: `memcli chat` on the bundled model inside tmux (80x24).

Type a fact, then a question about it; the pane must show the write call and the read
call in their styles, and the prompt must still be there.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest
from rich.console import Console
from rich.text import Text

pytestmark = [
    pytest.mark.model,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("tmux") is None,
        reason="tmux is not installed; this end-to-end terminal test needs it "
        "(apt-get install tmux)",
    ),
]

PROMPT = "memcli>"
CYAN, GREEN, MAGENTA = 6, 2, 5


class Pane:
    def __init__(self, home: str):
        self.socket = f"memcli-test-{os.getpid()}"
        command = (
            f"env -u NO_COLOR MEMCLI_HOME={shlex.quote(home)} TERM=xterm-256color "
            f"{shlex.quote(sys.executable)} -m memcli chat"
        )
        self.tmux("new-session", "-d", "-x", "80", "-y", "24", "-s", "chat", command)
        self.tmux("set-option", "-t", "chat", "remain-on-exit", "on")

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if done.returncode != 0:
            raise RuntimeError(f"tmux {args[0]}: {done.stderr.strip()}")
        return done.stdout

    def capture(self, styles: bool = False) -> str:
        return self.tmux("capture-pane", "-p", "-J", *(["-e"] if styles else []), "-t", "chat")

    def type(self, line: str) -> None:
        self.tmux("send-keys", "-t", "chat", "-l", line)
        self.tmux("send-keys", "-t", "chat", "Enter")

    def wait_for(self, predicate, what: str, deadline: float) -> str:
        while True:
            screen = self.capture()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the pane shows:\n{screen}")
            time.sleep(0.2)

    def alive(self) -> bool:
        return self.tmux("list-panes", "-t", "chat", "-F", "#{pane_dead}").strip() == "0"

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def _prompt_after(marker: str):
    def ready(screen: str) -> bool:
        at = screen.rfind(marker)
        return at >= 0 and PROMPT in screen[at:]

    return ready


def _style(pane: str, needle: str, after: str = ""):
    """The style of the first character of `needle` (the first one after `after`)."""
    text = Text.from_ansi(pane)
    at = text.plain.index(needle, text.plain.index(after) if after else 0)
    return text.get_style_at_offset(Console(), at)


def test_chat_in_tmux_writes_a_fact_then_reads_it(tmp_path):
    deadline = time.monotonic() + 60
    pane = Pane(str(tmp_path))
    try:
        pane.wait_for(lambda s: PROMPT in s, "the prompt", deadline)
        pane.type("Lake Geneva is in France.")
        pane.wait_for(_prompt_after("MEM_WRITE"), "the write call", deadline)
        time.sleep(0.3)  # the prompt has taken the terminal back
        pane.type("Which country is Lake Geneva in?")
        pane.wait_for(_prompt_after("MEM_READ"), "the read call", deadline)
        screen = pane.capture(styles=True)
        plain = Text.from_ansi(screen).plain
        print("\n" + plain)  # shown with pytest -s: what a person would see

        # The bundled model may name more than the one fact; this one must be there.
        assert re.search(r"\(\{MEM_WRITE-->[^\n]*Lake Geneva>>country>>France[;}]", plain)
        assert re.search(r"\(\{MEM_READ\(Lake Geneva>>country>>\)-->(\w+;)*France[;}]", plain)
        write = _style(screen, "MEM_WRITE-->")
        read = _style(screen, "MEM_READ(")
        result = _style(screen, "France", after="MEM_READ(")
        assert write.color.number == MAGENTA and write.underline
        assert read.color.number == CYAN and read.italic
        assert result.color.number == GREEN and result.bold
        # The REPL is alive, at its prompt, with the toolbar counting the stored fact.
        assert pane.alive()
        lines = [line for line in plain.splitlines() if line.strip()]
        assert any(line.startswith(PROMPT) for line in lines[-3:])
        assert re.search(r"memory [1-9]\d* facts? │ read [1-9]", plain)
    finally:
        pane.close()
