"""Scripted fake models for runtime, REPL and evaluation tests (no production module
imports them: tests/test_architecture.py checks)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memcli.runtime.backend import Logits, Mask, Stats, pick_token

ASSISTANT = "<|im_start|>assistant\n"


class FakeBackend:
    """A deterministic scripted model over a small character-level vocabulary.

    After every prompt (any `eval` of tokens it did not sample), it wants to write
    `script` token by token, then EOS. Every other token gets a lower, fixed score
    (lower ids score higher), so under a mask it picks the best allowed token.
    """

    SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    PIECES = ("({", "})", ">>", "-->", "MEM_READ", "MEM_WRITE", "MEM_", "READ", "WRITE")

    def __init__(self, script: str = "", n_ctx: int = 4096, seed: int = 0):
        self.vocab: list[str] = [*self.SPECIAL, *self.PIECES]
        self.vocab += [chr(c) for c in (*range(32, 127), *range(0xA1, 0x100))] + ["\n", "\t"]
        self.vocab += sorted({c for c in script if c not in self.vocab})
        self._ids = {s: i for i, s in enumerate(self.vocab)}
        self._n_ctx = n_ctx
        self._tokens: list[int] = []
        self._script = self.tokenize(script)
        self._pos = 0
        self._pending: int | None = None
        self._rng = np.random.default_rng(seed)
        self.stats = Stats()

    def set_script(self, script: str) -> None:
        for c in script:
            if c not in self._ids:
                raise ValueError(f"character {c!r} not in the fake vocabulary")
        self._script = self.tokenize(script)
        self._pos = 0

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def n_vocab(self) -> int:
        return len(self.vocab)

    @property
    def eos_token(self) -> int:
        return self._ids["<|im_end|>"]

    @property
    def end_tokens(self) -> frozenset[int]:
        return frozenset({self._ids["<|im_end|>"], self._ids["<|endoftext|>"]})

    @property
    def tokens(self) -> list[int]:
        return list(self._tokens)

    @property
    def n_past(self) -> int:
        return len(self._tokens)

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        """Greedy longest match; special tokens only when `special`."""
        out: list[int] = []
        i = 0
        longest = max(len(s) for s in self.vocab)
        while i < len(text):
            for n in range(min(longest, len(text) - i), 0, -1):
                piece = text[i : i + n]
                tok = self._ids.get(piece)
                if tok is not None and (special or piece not in self.SPECIAL):
                    out.append(tok)
                    i += n
                    break
            else:
                raise ValueError(f"character {text[i]!r} not in the fake vocabulary")
        return out

    def detokenize(self, tokens: Sequence[int]) -> str:
        return "".join("" if t < len(self.SPECIAL) else self.vocab[t] for t in tokens)

    def token_bytes(self, token: int) -> bytes:
        return self.detokenize([token]).encode()

    def apply_chat_template(
        self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")

    def eval(self, tokens: Sequence[int]) -> None:
        tokens = list(tokens)
        if not tokens:
            return
        if len(self._tokens) + len(tokens) > self._n_ctx:
            raise ValueError("context window is full")
        sampled = self._pending is not None and tokens[0] == self._pending
        self._pending = None
        if sampled:
            self._pos += 1
        else:
            self._pos = 0
        self.stats.prompt_tokens += len(tokens) - sampled
        self.stats.eval_calls += 1
        self._tokens += tokens

    def logits(self) -> Logits:
        scores = (-np.arange(self.n_vocab) / self.n_vocab).astype(np.float32)
        want = self._script[self._pos] if self._pos < len(self._script) else self.eos_token
        scores[want] = 10.0
        return scores

    def truncate(self, n: int) -> None:
        del self._tokens[n:]
        self._pending = None

    def sample(
        self, allowed: Mask | None = None, temperature: float = 0.0, top_p: float = 1.0
    ) -> int:
        token = pick_token(self.logits(), allowed, temperature, top_p, self._rng)
        self._pending = token
        self.stats.generated_tokens += 1
        return token


class ScriptedBackend(FakeBackend):
    """Wants to produce `transcripts[i]` for the i-th prompt it sees (the last one
    repeats), continuing from whatever text the turn holds so far — including text the
    system inserted, such as read results. Off-script text makes it end the turn."""

    def __init__(self, *transcripts: str, n_ctx: int = 8192):
        super().__init__(script="".join(transcripts) + "éü日本", n_ctx=n_ctx)
        self.transcripts = list(transcripts) or [""]
        self.turns = 0
        self._started_at: int | None = None

    def _assistant_text(self) -> str:
        marker = self.tokenize(ASSISTANT, special=True)
        tokens = self.tokens
        for start in range(len(tokens) - len(marker), -1, -1):
            if tokens[start : start + len(marker)] == marker:
                return self.detokenize(tokens[start + len(marker) :])
        return ""

    def eval(self, tokens):
        sampled = self._pending is not None and list(tokens)[:1] == [self._pending]
        super().eval(tokens)
        marker = self.tokenize(ASSISTANT, special=True)
        tokens = list(tokens)
        if not sampled and any(tokens[i : i + len(marker)] == marker for i in range(len(tokens))):
            self.turns += 1

    @property
    def script(self) -> str:
        return self.transcripts[min(self.turns, len(self.transcripts)) - 1]

    def logits(self):
        scores = -np.arange(self.n_vocab, dtype=np.float32) / self.n_vocab
        done = self._assistant_text()
        want = self.eos_token
        if self.script.startswith(done) and len(done) < len(self.script):
            rest = self.script[len(done) :]
            want = self.tokenize(rest[: max(len(p) for p in self.vocab)])[0]
        scores[want] = 10.0
        return scores
