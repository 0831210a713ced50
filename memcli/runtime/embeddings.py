"""Sentence embeddings for matching by meaning: a question to the relation it asks about
("Where does Dana live?" -> `residence`), a statement's wording to the relation it states.

MemLLM matches relations approximately with dense embeddings (Contriever) and
thresholds; memcli does the same with all-MiniLM-L6-v2 (Apache-2.0), converted once to
GGUF and shipped in `memcli/models/` (see `memcli/models/EMBEDDINGS.md`), run by
llama.cpp in-process: no torch at run time, about 2 ms a short text on one core.
Relation names are embedded once and kept in a small file in the cache folder
(`MEMCLI_CACHE`; rebuilt when missing), since embedding the 96 DocRED names takes about
a second on one core.

The model loads on first use (about 0.1 s; the REPL does it in its background warm-up).
`llama_cpp` is imported only here, inside the functions that need it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from memcli import paths
from memcli.errors import ModelError

EMBEDDING_MODEL = "all-minilm-l6-v2-q8_0.gguf"
_CACHE_SIZE = 4096

Vectors = npt.NDArray[np.float32]


def embedding_model_path() -> Path:
    """The shipped embedding model (package data in memcli/models/)."""
    path = paths.shipped(EMBEDDING_MODEL)
    if path is None:
        raise ModelError(f"the embedding model {EMBEDDING_MODEL} is missing from memcli/models/")
    return path


def relation_text(relation: str) -> str:
    """How a relation name is put to the embedding model: as a noun phrase about someone
    (measured on 20 everyday questions against the 96 DocRED names: top-1 13/20, top-3
    19/20 with this wording)."""
    return f"the {relation} of someone"


class Embedder:
    """Normalised embeddings of short texts, with an LRU cache of the texts seen."""

    def __init__(self, path: Path | None = None, threads: int = 1, *, persist: bool = True):
        self.path = path
        self.threads = threads
        self.persist = persist
        self._llama: Any = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._kept: dict[str, np.ndarray] | None = None  # persisted texts (relations)

    def _kept_file(self) -> Path:
        import hashlib

        from memcli.paths import cache_dir

        path = self.path or embedding_model_path()
        stat = path.stat()
        tag = hashlib.sha256(f"{path.name}:{stat.st_size}".encode()).hexdigest()[:16]
        return cache_dir() / f"embeddings-{tag}.npz"

    def _load_kept(self) -> dict[str, np.ndarray]:
        if self._kept is None:
            self._kept = {}
            if self.persist:
                try:
                    with np.load(self._kept_file()) as data:
                        texts = [str(t) for t in data["texts"]]
                        self._kept = dict(zip(texts, data["vectors"], strict=True))
                except (OSError, KeyError, ValueError):
                    self._kept = {}
        return self._kept

    def _save_kept(self) -> None:
        if not self.persist or not self._kept:
            return
        target = self._kept_file()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_suffix(".tmp.npz")
            texts = list(self._kept)
            np.savez(
                temporary, texts=np.array(texts), vectors=np.stack([self._kept[t] for t in texts])
            )
            temporary.replace(target)
        except OSError:
            pass  # a cache: without it the names are embedded again next time

    def _model(self) -> Any:
        if self._llama is None:
            import llama_cpp

            path = self.path or embedding_model_path()
            try:
                self._llama = llama_cpp.Llama(
                    model_path=str(path),
                    embedding=True,
                    n_ctx=256,
                    n_batch=256,
                    n_ubatch=256,
                    n_threads=self.threads,
                    n_threads_batch=self.threads,
                    pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                    verbose=False,
                )
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"cannot load the embedding model {path}: {exc}") from exc
        return self._llama

    def warm_up(self) -> None:
        self._model()

    def embed(self, texts: Sequence[str], *, keep: bool = False) -> Vectors:
        """One unit-length row per text (texts longer than 256 tokens are cut). `keep`:
        also remember them across processes (for relation names)."""
        with self._lock:
            if keep:
                kept = self._load_kept()
                for text in texts:
                    if text not in self._cache and text in kept:
                        self._cache[text] = kept[text]
            missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
            if missing:
                model = self._model()
                for text in missing:
                    vector = np.asarray(model.embed(text, truncate=True), dtype=np.float32)
                    if vector.ndim > 1:  # per-token output: pool it here
                        vector = vector.mean(axis=0)
                    norm = float(np.linalg.norm(vector))
                    self._cache[text] = vector / norm if norm > 0 else vector
                    while len(self._cache) > _CACHE_SIZE:
                        self._cache.popitem(last=False)
                if keep:
                    kept = self._load_kept()
                    kept.update({t: self._cache[t] for t in missing if t in self._cache})
                    self._save_kept()
            for text in texts:
                self._cache.move_to_end(text)
            if not texts:
                return np.zeros((0, 0), dtype=np.float32)
            return np.stack([self._cache[t] for t in texts]).astype(np.float32, copy=False)

    def similarity(
        self, text: str, others: Sequence[str], *, keep_others: bool = False
    ) -> npt.NDArray[np.float32]:
        """Cosine similarity of `text` to each of `others` (`keep_others`: remember their
        vectors across processes, see `embed`)."""
        if not others:
            return np.zeros(0, dtype=np.float32)
        question = self.embed([text])[0]
        return self.embed(list(others), keep=keep_others) @ question

    def close(self) -> None:
        with self._lock:
            if self._llama is not None:
                close = getattr(self._llama, "close", None)
                if close is not None:
                    close()
                self._llama = None


def rank_relations(
    question: str,
    relations: Sequence[str],
    embedder: Embedder | None = None,
    *,
    glosses: bool = False,
    aliases: bool = False,
) -> list[tuple[str, float]]:
    """All `relations` by similarity of their names' meaning to `question`, best first.
    With `glosses`, a relation scores the better of its name and its gloss
    (`glosses.GLOSSES`): on the train split of recipes/chat_data.py that picks the right
    relation for 16 of 19 statement wordings instead of 13, but for 9 of 13 questions
    instead of 11, so reads use names only and writes use glosses. With `aliases`, the
    best of its name and its other names (`glosses.ALIASES`), as reads do."""
    from memcli.runtime.glosses import ALIASES, GLOSSES

    embedder = embedder or shared_embedder()
    relations = list(relations)
    scores = embedder.similarity(question, [relation_text(r) for r in relations], keep_others=True)
    named = [(i, a) for i, r in enumerate(relations) if aliases for a in ALIASES.get(r, ())]
    if named:  # a relation is as close as the closest of its names
        by_alias = embedder.similarity(
            question, [relation_text(a) for _, a in named], keep_others=True
        )
        scores = scores.copy()
        for (i, _), score in zip(named, by_alias, strict=True):
            scores[i] = max(scores[i], score)
    glossed = [i for i, r in enumerate(relations) if glosses and r in GLOSSES]
    if glossed:  # a relation is as close as the closer of its name and its gloss
        by_gloss = embedder.similarity(
            question, [GLOSSES[relations[i]] for i in glossed], keep_others=True
        )
        scores = scores.copy()
        scores[glossed] = np.maximum(scores[glossed], by_gloss)
    order = sorted(range(len(relations)), key=lambda i: -float(scores[i]))
    return [(relations[i], float(scores[i])) for i in order]


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> Embedder:
    """The process-wide embedder on the shipped model (made on first call, loaded on
    first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            import atexit

            _shared = Embedder()
            # Closed before the interpreter tears llama_cpp down (else its __del__ runs
            # after the library is gone and prints "Exception ignored ..." at exit).
            atexit.register(_shared.close)
        return _shared
