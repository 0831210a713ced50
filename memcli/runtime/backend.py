"""What the generation loop needs from a model (the scripted fake the tests use is
`tests.fakes.FakeBackend`; production code never imports it).

The loop owns decoding: it asks the backend for the logits of the last position, applies
its own token mask (see `constraints.py`) and samples. The backend only keeps the KV
cache in step with `tokens`, so inserted text (read results) costs only its own tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Logits = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]


@dataclass
class Stats:
    """Counters since the backend was made (or `reset()`).

    `prompt_tokens` counts tokens evaluated that the model did not itself sample (the
    prompt, inserted read results); `generated_tokens` counts tokens from `sample()`.
    """

    prompt_tokens: int = 0
    generated_tokens: int = 0
    eval_calls: int = 0
    eval_seconds: float = 0.0

    def reset(self) -> None:
        self.prompt_tokens = self.generated_tokens = self.eval_calls = 0
        self.eval_seconds = 0.0


@runtime_checkable
class Backend(Protocol):
    stats: Stats

    @property
    def n_ctx(self) -> int: ...
    @property
    def n_vocab(self) -> int: ...
    @property
    def eos_token(self) -> int: ...
    @property
    def end_tokens(self) -> frozenset[int]:
        """Every token that ends generation (EOS, end-of-turn)."""
        ...

    @property
    def tokens(self) -> list[int]: ...
    @property
    def n_past(self) -> int: ...

    def tokenize(self, text: str, special: bool = False) -> list[int]: ...
    def detokenize(self, tokens: Sequence[int]) -> str: ...
    def token_bytes(self, token: int) -> bytes: ...
    def apply_chat_template(
        self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True
    ) -> str: ...

    def eval(self, tokens: Sequence[int]) -> None:
        """Append `tokens` to the cache, evaluating only them."""
        ...

    def logits(self) -> Logits:
        """Logits for the next token after `tokens` (a copy)."""
        ...

    def truncate(self, n: int) -> None:
        """Drop everything in the cache after the first `n` tokens."""
        ...

    def sample(
        self, allowed: Mask | None = None, temperature: float = 0.0, top_p: float = 1.0
    ) -> int:
        """Pick the next token from `logits()` among `allowed` (greedy at temperature 0)."""
        ...


def pick_token(
    logits: Logits,
    allowed: Mask | None,
    temperature: float,
    top_p: float,
    rng: np.random.Generator,
) -> int:
    ids: npt.NDArray[np.intp] | None = None
    if allowed is not None:
        ids = np.flatnonzero(allowed[: len(logits)])
        if not len(ids):
            raise ValueError("the token mask allows no token")
        logits = logits[ids]
    if temperature <= 0.0:
        best = int(np.argmax(logits))
    else:
        p = np.exp((logits - logits.max()) / temperature, dtype=np.float64)
        p /= p.sum()
        if top_p < 1.0:
            order = np.argsort(-p)
            keep = order[: int(np.searchsorted(np.cumsum(p[order]), top_p)) + 1]
            q = np.zeros_like(p)
            q[keep] = p[keep]
            p = q / q.sum()
        best = int(rng.choice(len(p), p=p))
    return best if ids is None else int(ids[best])


def log_softmax_at(logits: np.ndarray, tokens: Sequence[int] | np.ndarray) -> np.ndarray:
    """log p(tokens[i]) under the distribution of `logits[i]` (rows), in float64."""
    rows = np.asarray(logits, dtype=np.float64)
    if rows.ndim == 1:
        rows = rows[None, :]
    top = rows.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
    picked = rows[np.arange(len(rows)), np.asarray(tokens, dtype=np.int64)]
    return picked - lse


def sync(backend: Backend, tokens: Sequence[int]) -> int:
    """Make the cache hold exactly `tokens`, keeping the longest common prefix.

    Returns how many tokens were evaluated. At least the last token is re-evaluated so
    that `logits()` belongs to the new sequence.
    """
    cached = backend.tokens
    keep = 0
    for a, b in zip(cached, tokens, strict=False):
        if a != b:
            break
        keep += 1
    keep = min(keep, len(tokens) - 1) if tokens else 0
    backend.truncate(keep)
    backend.eval(tokens[keep:])
    return len(tokens) - keep


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@runtime_checkable
class Sequences(Protocol):
    """Several token sequences ("slots") decoded together on one context: what batched
    writes (`runtime/batch_write.py`) need of a backend that has `sequences(n)`.

    `start` and `push` queue tokens; `decode` evaluates everything queued in one pass of
    the model; then `sample(slot, ...)` picks the next token of each slot that had
    tokens queued, from that slot's own logits. A slot's cache may begin with what
    another slot holds (a shared prefix is evaluated once)."""

    stats: Stats

    @property
    def size(self) -> int: ...
    @property
    def capacity(self) -> int:
        """The most tokens one slot holds (prompt and generated)."""
        ...

    def start(self, slot: int, tokens: Sequence[int]) -> int:
        """Make `slot` hold `tokens`: the longest prefix some slot already holds is
        reused, the rest (at least the last token) queued. Returns how many are queued."""
        ...

    def push(self, slot: int, token: int) -> None:
        """Queue one sampled token after `slot`'s."""
        ...

    def move(self, slot: int, to: int) -> None:
        """Give `slot`'s sequence to the free slot `to` (running sequences are kept in
        the lowest slots)."""
        ...

    def decode(self) -> None: ...

    def sample(
        self,
        slot: int,
        allowed: Mask | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> int: ...

    def close(self) -> None: ...
