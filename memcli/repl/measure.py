"""Timings of the chat for `make bench`: Enter to first character, and start-up.

`measure_first_char(engine, message)` runs the REPL's own turn code (the conversation and
its view), so it measures what a person sees: the time from Enter to the first character
the turn prints, warm (model loaded, masks built, system prompt in the KV cache, a turn
already taken), with the message itself new to the cache. The turn is stopped at that
character, so nothing is written to memory.

`measure_startup()` starts `memcli chat` in a pseudo-terminal, as a person would, and
times the prompt's appearance and the moment the model has loaded.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from memcli.runtime.engine import MemoryEngine

# A turn that goes through the answering engine with memory, as the measured one does. (A
# greeting would go to the chat engine; in `memcli chat` that is a context of its own, so
# it leaves the answering cache as it is, but here one engine does both jobs, and the
# greeting's other system prompt would evict the one the measured turn reuses.)
WARM_UP_MESSAGE = "What is the record label of Rihanna?"


class _FirstCharacter(Exception):
    """Raised by the output at its first character, to end the turn there."""


class _Sink(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.at: float | None = None

    def write(self, text: str) -> int:
        if text.strip() and self.at is None:
            self.at = time.perf_counter()
            raise _FirstCharacter
        return len(text)

    def isatty(self) -> bool:
        return True


def _first_char(engine: MemoryEngine, message: str, hide_calls: bool) -> float:
    from memcli.repl.conversation import Conversation
    from memcli.repl.engines import StaticEngines
    from memcli.repl.render import TurnView

    sink = _Sink()
    console = Console(file=sink, width=80, force_terminal=True, color_system="standard")
    view = TurnView(console, hide_calls=hide_calls)
    assert engine.store is not None
    conversation = Conversation(StaticEngines(engine), engine.store)
    started = time.perf_counter()
    try:
        conversation.run_turn(message, view)
    except _FirstCharacter:
        assert sink.at is not None
        return sink.at - started
    raise RuntimeError("the turn printed nothing")


def measure_first_char(
    engine: MemoryEngine, message: str, *, repeats: int = 3, hide_calls: bool = False
) -> float:
    """Median seconds from Enter to the first streamed character of the answer to
    `message`, warm. Each try is preceded by a different message, so the cache holds the
    system prompt and examples but not `message`."""
    _first_char(engine, WARM_UP_MESSAGE, hide_calls)  # builds masks, fills the cache
    times = []
    for _ in range(repeats):
        _first_char(engine, WARM_UP_MESSAGE, hide_calls)
        times.append(_first_char(engine, message, hide_calls))
    return statistics.median(times)


def measure_startup(
    argv: list[str] | None = None, *, timeout: float = 60.0, env: dict[str, str] | None = None
) -> dict[str, float]:
    """Start `memcli chat` in a pseudo-terminal (80x24); seconds until the prompt shows
    (`prompt_s`: both model contexts are loaded by then), and until `/model` answers,
    i.e. the warm-up is done too (`warm_s`: masks built, system prompts cached).

    Pass `env` with MEMCLI_HOME pointing at a scratch folder to leave real memory alone.
    """
    import pty
    import select
    import signal
    import struct
    import subprocess

    argv = argv or [sys.executable, "-m", "memcli", "chat"]
    main, child = pty.openpty()
    try:
        import fcntl
        import termios

        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    except (ImportError, OSError):
        pass
    environment = {**os.environ, **(env or {}), "TERM": "xterm-256color"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdin=child,
        stdout=child,
        stderr=child,
        env=environment,
        close_fds=True,
        start_new_session=True,
    )
    os.close(child)
    seen = b""
    result: dict[str, float] = {}

    def read_until(marker: bytes, after: bytes = b"") -> float:
        nonlocal seen
        deadline = started + timeout
        while marker not in seen[seen.find(after) if after else 0 :] or after not in seen:
            left = deadline - time.perf_counter()
            if left <= 0 or proc.poll() is not None:
                raise TimeoutError(f"no {marker!r} from memcli chat; saw {seen[-300:]!r}")
            ready, _, _ = select.select([main], [], [], min(left, 0.1))
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:
                    chunk = b""
                seen += chunk
                if b"\x1b[6n" in chunk:  # prompt-toolkit asks where the cursor is
                    os.write(main, b"\x1b[1;1R")
        return time.perf_counter() - started

    try:
        result["prompt_s"] = read_until(b"memcli>")
        os.write(main, b"/model\r")
        result["warm_s"] = read_until(b"context:")
        # Ctrl-D must reach the next prompt, not the terminal's line discipline.
        read_until(b"memcli>", after=b"context:")
        time.sleep(0.3)
        os.write(main, b"\x04")
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
        os.close(main)
    return result


def main(args: Any = None) -> None:
    """`python -m memcli.repl.measure`: the numbers for the bundled model, with a
    throwaway memory."""
    import tempfile

    from memcli.runtime.loader import load_engine
    from memcli.store.core import TripleStore

    with tempfile.TemporaryDirectory() as home:
        startup = measure_startup(env={"MEMCLI_HOME": home})
        print(
            f"start-up: prompt (model loaded) after {startup['prompt_s']:.2f} s, "
            f"warm after {startup['warm_s']:.2f} s"
        )
        with TripleStore(os.path.join(home, "memory.db")) as store:
            store.add("Lake Geneva", "country", "France")
            engine = load_engine(store)
            plain = measure_first_char(engine, "Tell me something about rivers.")
            read = measure_first_char(engine, "Which country is Lake Geneva in?")
        print(
            f"first character (warm): {plain * 1000:.0f} ms; "
            f"with a read of memory: {read * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
