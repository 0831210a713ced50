"""Log-probabilities of text appended to a backend's cache, for perplexity.

The `Backend` protocol exposes only the logits of the last position, which is all
generation needs. Scoring needs every position: a backend with a `score(tokens)` method
(`LlamaBackend`: batches that ask llama.cpp for the logits of every token) does it
itself; any other backend (the fakes in the tests) is scored token by token through
`eval` and `logits`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from memcli.errors import ModelError
from memcli.runtime.backend import Backend, log_softmax_at

__all__ = ["TokenScorer", "log_softmax_at"]


class TokenScorer:
    """Appends tokens to `backend`'s cache and returns the log-probability of each given
    everything before it. The cache must hold at least one token."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self._batched: Any = getattr(backend, "score", None)

    def score(self, tokens: Sequence[int]) -> np.ndarray:
        tokens = [int(t) for t in tokens]
        if not tokens:
            return np.zeros(0)
        if self.backend.n_past == 0:
            raise ModelError("scoring needs at least one token of context")
        if self._batched is None:
            return self._one_by_one(tokens)
        return np.asarray(self._batched(tokens))

    def _one_by_one(self, tokens: list[int]) -> np.ndarray:
        out = np.empty(len(tokens))
        for i, token in enumerate(tokens):
            out[i] = log_softmax_at(self.backend.logits(), [token])[0]
            self.backend.eval([token])
        return out
