"""A scripted fake model for runtime, REPL and evaluation tests."""

from __future__ import annotations

from memcli.runtime.backend import FakeBackend

ASSISTANT = "<|im_start|>assistant\n"


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
        import numpy as np

        scores = -np.arange(self.n_vocab, dtype=np.float32) / self.n_vocab
        done = self._assistant_text()
        want = self.eos_token
        if self.script.startswith(done) and len(done) < len(self.script):
            rest = self.script[len(done) :]
            want = self.tokenize(rest[: max(len(p) for p in self.vocab)])[0]
        scores[want] = 10.0
        return scores
