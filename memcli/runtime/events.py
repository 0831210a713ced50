"""The typed events a turn yields, in order. The runtime never prints: the REPL and the
CLI render these (and `--json` prints them as JSON lines)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from memcli.protocol import ReadQuery
from memcli.protocol import Triple as CallTriple
from memcli.store.core import Fact


@dataclass(frozen=True)
class Text:
    """Answer text as it streams (never part of a memory call)."""

    text: str


@dataclass(frozen=True)
class CallStart:
    kind: str  # "read" or "write"


@dataclass(frozen=True)
class CallText:
    """Raw characters of a memory call as they are generated (for live highlighting)."""

    kind: str
    text: str


@dataclass(frozen=True)
class ReadDone:
    """A read was run. `kept` is False when it found nothing (or repeated an earlier
    query) and was removed from the text, as MemLLM does."""

    queries: tuple[ReadQuery, ...]
    results: tuple[str, ...]
    facts: tuple[Fact, ...]
    kept: bool
    note: str = ""


@dataclass(frozen=True)
class WriteDone:
    """A write call closed: the triples it named, and those stored (new to memory)."""

    triples: tuple[CallTriple, ...]
    stored: tuple[Fact, ...] = ()
    batch_id: int | None = None
    dry_run: bool = False
    raw: str = ""  # the call as finally read (an unfinished last item is dropped)


@dataclass(frozen=True)
class CallFailed:
    raw: str
    message: str


@dataclass(frozen=True)
class Timing:
    prompt_tokens: int
    generated_tokens: int
    seconds: float
    first_token_seconds: float | None
    tokens_per_second: float

    @classmethod
    def since(
        cls, started: float, prompt_tokens: int, generated: int, first: float | None
    ) -> Timing:
        """The figures of a turn or write that began at `started` (`time.perf_counter`)."""
        seconds = time.perf_counter() - started
        rate = generated / seconds if seconds > 0 else 0.0
        return cls(prompt_tokens, generated, seconds, first, rate)


@dataclass(frozen=True)
class Done:
    """The turn ended. `text` is the visible answer; `raw` includes the memory calls."""

    text: str
    raw: str
    stopped: str = "end"  # "end", "length", "context"
    reads: tuple[ReadDone, ...] = field(default_factory=tuple)


Event = Text | CallStart | CallText | ReadDone | WriteDone | CallFailed | Timing | Done


def event_json(event: Event) -> dict:
    """One event as a JSON-ready dict with its type name."""
    data = asdict(event)
    data = {"event": type(event).__name__.lower(), **data}
    return data
