"""The `Engine` protocol: what every front end (the CLI, the REPL, the evaluation, the MCP
server) may use of a model with memory. It works at the level of events
(`runtime/events.py`), not tokens, so that a model run in-process (`MemoryEngine` on a
token-level `Backend`) and a model behind an inference server (`RemoteEngine`) are
interchangeable. Anything token-level (a KV cache, full logits) stays private to the
local engine; what a front end needs of it is asked through `capabilities()`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from threading import Event as StopFlag
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from memcli.store.matching import ENTITY_THRESHOLD, RELATION_THRESHOLD

if TYPE_CHECKING:
    from memcli.runtime.events import Event
    from memcli.store.core import TripleStore


@dataclass
class EngineConfig:
    """How every engine decodes a turn: token budgets, reads, sampling, and how closely a
    read's names must match memory's (the thresholds of `memcli.store.matching`)."""

    max_tokens: int = 200
    max_write_tokens: int = 160
    max_reads: int = 3
    temperature: float = 0.0
    few_shot: bool = True
    read_first: bool = True
    entity_threshold: float = ENTITY_THRESHOLD
    relation_threshold: float = RELATION_THRESHOLD


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do, found when it is made (for a server: at connect time).

    `constraint` says how memory calls are kept well formed: "masks" (memcli's own
    llguidance masks on full logits, in-process), "llguidance" (a `%llguidance` Lark
    grammar the server enforces), "gbnf" (a GBNF grammar the server enforces),
    "logit_bias" (memcli's masks sent one token at a time as logit biases), "logprobs"
    (one token at a time, the best allowed one among the server's top log-probabilities).
    """

    kind: str  # "local" or "remote"
    constraint: str
    logprobs: bool = False  # every position's log-probabilities (`eval ppl`)
    prefix_cache: bool = True  # a resumed prompt costs only its new tokens
    tokenizer: str = "local"  # "local" (the model's vocabulary here) or "server"
    chat_template: str = ""  # where the chat template comes from
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        return data


@runtime_checkable
class Engine(Protocol):
    """A model that answers and writes with a memory (`store`), yielding events."""

    store: TripleStore | None
    config: EngineConfig

    @property
    def label(self) -> str:
        """The model's name for people ("smollm2-135m +adapter", "qwen2.5-7b @ host")."""
        ...

    def answer(self, history: list[dict[str, str]], *, memory: bool = True) -> Iterator[Event]:
        """Stream the assistant's next message for `history` (role/content dicts)."""
        ...

    def write(
        self,
        sentence: str,
        context: str = "",
        *,
        source: str = "model",
        dry_run: bool = False,
        entities: Sequence[str] = (),
    ) -> Iterator[Event]:
        """One MEM_WRITE call for `sentence`; its triples stored unless `dry_run`.
        `entities`: names from the conversation a triple may use besides the spans of
        `sentence` (the person a pronoun refers to)."""
        ...

    def mentioned_entities(self, text: str) -> list[str]: ...

    def describe(self) -> dict[str, Any]:
        """What is loaded or connected, as label -> value rows for `/model` and `info`."""
        ...

    def capabilities(self) -> Capabilities: ...

    def warm_up(self, kind: str = "answer", stop: StopFlag | None = None) -> None:
        """Prepare for the first turn of `kind` ("answer" or "write"): build masks, put
        the fixed part of the prompt in the cache. May run in another thread."""
        ...

    def close(self) -> None: ...


def no_logprobs_message(engine: Engine) -> str:
    return (
        f"eval ppl needs every token's log-probability, which {engine.label} "
        f"({engine.capabilities().kind} engine) does not give; run it on a local model"
    )
