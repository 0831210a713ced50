"""Log-probabilities of text appended to a backend's cache, for perplexity.

The `Backend` protocol exposes only the logits of the last position, which is all
generation needs. Scoring needs every position: for `LlamaBackend` the tokens are
decoded in batches that ask llama.cpp for the logits of every token (the batch flag
that `Llama(logits_all=True)` would set for the whole context, here only for the
batches scored, without its n_ctx x n_vocab buffer). Any other backend (the fakes in
the tests) is scored token by token through `eval` and `logits`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from memcli.errors import ModelError
from memcli.runtime.backend import Backend

_ROWS = 64  # rows of logits turned into log-probabilities at a time


def log_softmax_at(logits: np.ndarray, tokens: Sequence[int] | np.ndarray) -> np.ndarray:
    """log p(tokens[i]) under the distribution of `logits[i]` (rows), in float64."""
    rows = np.asarray(logits, dtype=np.float64)
    if rows.ndim == 1:
        rows = rows[None, :]
    top = rows.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
    picked = rows[np.arange(len(rows)), np.asarray(tokens, dtype=np.int64)]
    return picked - lse


class TokenScorer:
    """Appends tokens to `backend`'s cache and returns the log-probability of each given
    everything before it. The cache must hold at least one token."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self._llm: Any = getattr(backend, "_llm", None)

    def score(self, tokens: Sequence[int]) -> np.ndarray:
        tokens = [int(t) for t in tokens]
        if not tokens:
            return np.zeros(0)
        if self.backend.n_past == 0:
            raise ModelError("scoring needs at least one token of context")
        if self._llm is None:
            return self._one_by_one(tokens)
        return self._batched(tokens)

    def _one_by_one(self, tokens: list[int]) -> np.ndarray:
        out = np.empty(len(tokens))
        for i, token in enumerate(tokens):
            out[i] = log_softmax_at(self.backend.logits(), [token])[0]
            self.backend.eval([token])
        return out

    def _batched(self, tokens: list[int]) -> np.ndarray:
        import llama_cpp

        backend, llm = self.backend, self._llm
        if llm.n_tokens + len(tokens) > llm.n_ctx():
            raise ModelError(
                f"context window full ({llm.n_tokens} + {len(tokens)} > {llm.n_ctx()})"
            )
        out = np.empty(len(tokens))
        out[0] = log_softmax_at(backend.logits(), tokens[:1])[0]  # also settles a truncation
        n_vocab = backend.n_vocab
        llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
        for at in range(0, len(tokens), llm.n_batch):
            chunk = tokens[at : at + llm.n_batch]
            n_past = llm.n_tokens
            llm._batch.set_batch(batch=chunk, n_past=n_past, logits_all=True)
            llm._ctx.decode(llm._batch)
            llm.input_ids[n_past : n_past + len(chunk)] = chunk
            llm.n_tokens += len(chunk)
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits(llm.ctx), shape=(len(chunk), n_vocab)
            )
            # Row i predicts the token after chunk[i]; the last row predicts past the end.
            following = tokens[at + 1 : at + len(chunk) + 1]
            for r in range(0, len(following), _ROWS):
                rows = logits[r : min(r + _ROWS, len(following))]
                out[at + 1 + r : at + 1 + r + len(rows)] = log_softmax_at(
                    rows, following[r : r + len(rows)]
                )
        llm._requires_eval = False
        for name, value in (("_pending", None), ("_stale", False)):
            if hasattr(backend, name):
                setattr(backend, name, value)
        backend.stats.prompt_tokens += len(tokens)
        backend.stats.eval_calls += 1
        return out
