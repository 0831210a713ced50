"""The remote engine: the same memory loop on an OpenAI-compatible inference server
(llama.cpp's llama-server, llama-cpp-python's server, vLLM, SGLang).

Only `/v1/completions` with a raw prompt is used, never the chat endpoint, so that the
memory calls, the prompt format and the prefix the server caches stay under memcli's
control: the chat template is applied here (the one in `MEMCLI_CHAT_TEMPLATE` or saved
with `memcli models use --engine URL --template ...`, else the server's `/props`, else
the model's own GGUF file when it is on this machine).

One answer:

1. free text streams from the server; memcli watches the text for `({`, and when a read
   may start there it closes the stream (the server stops generating);
2. the body of the read is generated under a constraint (see below), the read runs here
   (`MemoryLogic.resolve_read`: the same matching, dedup and caps as in-process), then
   `results})` is appended and generation resumes on the prompt plus everything so far,
   so the server's prefix cache evaluates only the new tokens;
3. a forced first read (the question names an entity in memory) comes first, as
   in-process.

Memory calls keep their guarantees with, per server (found at connect time):

- "gbnf": a GBNF grammar the server enforces (llama-server, llama-cpp-python's server);
- "llguidance": a Lark grammar in llguidance's dialect (vLLM with the `guidance`
  structured-outputs backend, SGLang with `--grammar-backend llguidance`, llama-server
  built with llguidance, which wants the `%llguidance {}` line);
- "logit_bias": memcli's own llguidance masks, sent one token at a time as logit biases
  (needs the model's vocabulary: its GGUF file here, else a llama-server's `/tokenize`
  and `/detokenize`, `ServerVocab`);
- "logprobs": for servers that give log-probabilities but ignore `logit_bias`: one token
  at a time with the top 20 log-probabilities, of which memcli takes the most probable
  token its mask allows (none allowed: the longest allowed token that begins one of
  them, else the mask's first allowed token).

On a llama-server every request names its slot (`id_slot`, with `cache_prompt`): a
chat's answers keep slot 0 and its writes the next one when there are two or more, so
each keeps its prompt cached (`for_writing`).

Grammars are built from the candidates a call can need (the memory's entities named in
the conversation; the spans of the sentence) and validated locally before they are sent
(`grammars.py`). Everything the server says is checked: a read names only what the
grammar allowed, or the call is dropped.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from memcli import protocol
from memcli.errors import MemcliError, ModelError, UsageError
from memcli.protocol import OPEN, ReadQuery
from memcli.runtime import prompts, read_scope
from memcli.runtime.engine import EngineConfig, MemoryLogic, WriteText, _Turn
from memcli.runtime.engine_api import Capabilities
from memcli.runtime.events import CallFailed, Done, Event, Timing

if TYPE_CHECKING:
    from memcli.catalog import EngineSpec
    from memcli.runtime.constraints import Command, ConstrainedDecoder
    from memcli.runtime.grammars import CheckedGrammar
    from memcli.store.core import TripleStore

TEMPLATE_ENV = "MEMCLI_CHAT_TEMPLATE"
TOKENIZER_ENV = "MEMCLI_ENGINE_TOKENIZER"
CONSTRAINT_ENV = "MEMCLI_ENGINE_CONSTRAINT"
SLOT_ENV = "MEMCLI_ENGINE_SLOT"  # llama-server: the slot answers use (N), or `auto`
CONSTRAINTS = ("gbnf", "llguidance", "logit_bias", "logprobs")
CLIENT_MASKS = ("logit_bias", "logprobs")  # memcli's own masks, one token per request
VOCAB_BATCH = 4096  # token ids a /detokenize request reads the bytes of
VOCAB_SEPARATOR = "\u241e"  # between them (SYMBOL FOR RECORD SEPARATOR)
TOP_LOGPROBS = 20  # how many of the most probable tokens "logprobs" asks for (vLLM's cap)
DEFAULT_TIMEOUT = 120.0
RETRY_DELAYS = (0.25, 0.5, 1.0)  # backoff for idempotent steps (connecting, GETs)
MAX_BODY_TOKENS = 96  # the longest read body: 3 queries of long names
WHOLE_MEMORY_NAMES = 2000  # a model-initiated read may name any entity up to this many
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ServerError(ModelError):
    """The inference server is down, slow, refused a request or broke a stream."""


# -- HTTP ----------------------------------------------------------------------------------


@dataclass
class Sent:
    """One request as sent (kept for tests and benchmarks: `Http.log`)."""

    method: str
    path: str
    body: dict | None
    status: int | None = None


class Http:
    """A small HTTP/1.1 client on `http.client` with one kept-alive connection, SSE
    streaming, one-line errors, and retries with backoff for idempotent steps only."""

    def __init__(self, base: str, timeout: float = DEFAULT_TIMEOUT, api_key: str | None = None):
        parts = urlsplit(base)
        self.base = base
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.api_key = api_key
        self.log: list[Sent] = []
        self.keep_log = 200
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self._conn = cls(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _timed_out(self) -> ServerError:
        """The connection is closed (a late answer would belong to no request)."""
        self.close()
        return ServerError(f"the engine at {self.base} did not answer within {self.timeout:g} s")

    def _record(self, sent: Sent) -> None:
        self.log.append(sent)
        del self.log[: -self.keep_log]

    def _send(
        self, method: str, path: str, body: dict | None, *, retry: bool
    ) -> http.client.HTTPResponse:
        headers = {"Accept": "application/json, text/event-stream"}
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        sent = Sent(method, path, body)
        self._record(sent)
        delays = (0.0, *RETRY_DELAYS) if retry else (0.0,)
        reused = self._conn is not None
        attempt = 0
        while True:
            try:
                conn = self._connection()
                conn.request(method, self.prefix + path, body=data, headers=headers)
                response = conn.getresponse()
                sent.status = response.status
                return response
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if reused:  # a kept-alive connection the server had closed: open anew
                    reused = False
                    continue
                error: OSError | http.client.HTTPException = exc
            except TimeoutError:
                raise self._timed_out() from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                error = exc
            attempt += 1
            if attempt >= len(delays):
                reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
                raise ServerError(f"cannot reach the engine at {self.base}: {reason}") from None
            time.sleep(delays[attempt])

    def _fail(self, response: http.client.HTTPResponse, path: str) -> ServerError:
        try:
            text = response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            text = ""
        self.close()
        message = text.strip()
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            inner = data.get("error", data.get("detail", data.get("message", data)))
            if isinstance(inner, dict):
                inner = inner.get("message", inner)
            message = inner if isinstance(inner, str) else json.dumps(inner)[:200]
        message = " ".join(message.split())[:200] or response.reason
        return ServerError(
            f"the engine at {self.base} refused {path}: HTTP {response.status} {message}"
        )

    def get(self, path: str) -> Any:
        """GET a JSON document (retried); None when the server has no such path."""
        response = self._send("GET", path, None, retry=True)
        if response.status in (404, 405):
            response.read()
            return None
        if response.status >= 400:
            raise self._fail(response, path)
        return self._json(response, path)

    def post(self, path: str, body: dict, *, retry: bool = False) -> Any:
        response = self._send("POST", path, body, retry=retry)
        if response.status >= 400:
            raise self._fail(response, path)
        return self._json(response, path)

    def _json(self, response: http.client.HTTPResponse, path: str) -> Any:
        try:
            raw = response.read()
        except TimeoutError:
            raise self._timed_out() from None
        except (OSError, http.client.HTTPException):
            self.close()
            raise ServerError(f"the engine at {self.base} cut the response to {path} off") from None
        if response.will_close:
            self.close()
        try:
            return json.loads(raw)
        except ValueError:
            raise ServerError(f"the engine at {self.base} sent no JSON for {path}") from None

    def stream(self, path: str, body: dict) -> Generator[dict, None, None]:
        """POST with `stream: true`; yields each server-sent event's JSON. Closing the
        generator early closes the connection, which stops the server's generation.
        A stream that ends before `[DONE]` (or a final chunk) raises `ServerError`."""
        response = self._send("POST", path, {**body, "stream": True}, retry=True)
        if response.status >= 400:
            raise self._fail(response, path)
        finished = False
        complete = False
        try:
            while True:
                try:
                    line = response.readline()
                except TimeoutError:
                    raise ServerError(
                        f"the engine at {self.base} stopped sending for {self.timeout:g} s"
                    ) from None
                except (OSError, http.client.HTTPException):
                    line = b""
                if not line:
                    break
                text = line.decode("utf-8", "replace").strip()
                if not text.startswith("data:"):
                    continue
                payload = text[5:].strip()
                if payload == "[DONE]":
                    complete = True
                    break
                try:
                    event = json.loads(payload)
                except ValueError:
                    raise ServerError(
                        f"the engine at {self.base} sent a broken event: {payload[:80]}"
                    ) from None
                if isinstance(event, dict) and "error" in event:
                    inner = event["error"]
                    message = inner.get("message", inner) if isinstance(inner, dict) else inner
                    raise ServerError(f"the engine at {self.base} failed: {message}")
                choices = event.get("choices") or [{}]
                if choices[0].get("finish_reason"):
                    finished = True
                yield event
            if not (complete or finished):
                raise ServerError(f"the engine at {self.base} cut the response off mid-stream")
        finally:
            if complete and not response.will_close:
                response.read()  # the rest of the chunked body, so the connection is reused
            else:
                self.close()


# -- chat templates ------------------------------------------------------------------------


class ChatTemplate:
    """A Jinja chat template rendered here, as llama-cpp-python renders it in-process
    (the same text reaches the model either way)."""

    def __init__(self, template: str, source: str, bos: str = "", eos: str = ""):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.source = source
        self.template = template
        try:
            self._formatter = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)
        except Exception as exc:  # jinja2's TemplateSyntaxError and friends
            raise ModelError(f"chat template from {source}: {exc}") from None

    def render(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
        self._formatter.add_generation_prompt = add_generation_prompt
        try:
            return self._formatter(messages=list(messages)).prompt  # type: ignore[arg-type]
        except Exception as exc:
            raise ModelError(f"chat template from {self.source}: {exc}") from None


def template_from(spec: str) -> ChatTemplate:
    """`chatml`, a GGUF file (its template), or a Jinja file."""
    if spec.strip().lower() == "chatml":
        return ChatTemplate(CHATML, "chatml")
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UsageError(f"chat template {spec!r}: no such file (or give `chatml`)")
    if path.suffix == ".gguf":
        return _gguf_template(path)
    return ChatTemplate(path.read_text(encoding="utf-8"), str(path))


def _gguf_template(path: Path) -> ChatTemplate:
    from memcli.catalog import read_gguf_info

    template = read_gguf_info(path).chat_template
    if not template:
        raise ModelError(f"{path.name} has no chat template; set {TEMPLATE_ENV}=chatml or a file")
    return ChatTemplate(template, path.name)


# -- the model's vocabulary, when its file is here ------------------------------------------


class LocalVocab:
    """The served model's vocabulary from its GGUF file (no weights): tokenization,
    token bytes and llguidance's tokenizer, for client-side masks and free-text bans."""

    def __init__(self, path: Path):
        import llama_cpp

        from memcli.runtime.grammars import vocab_only_model

        self.path = path
        try:
            self._model = vocab_only_model(path)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot read the vocabulary of {path.name}: {exc}") from None
        self._lib = llama_cpp
        self.vocab_ptr = self._model.vocab
        self.n_vocab = self._model.n_vocab()
        self.eos_token = self._model.token_eos()
        self.bos_token = self._model.token_bos()
        self._pieces: list[bytes] | None = None

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return self._model.tokenize(text.encode(), add_bos=False, special=special)

    def close(self) -> None:
        self._model.close()

    def pieces(self) -> list[bytes]:
        if self._pieces is None:
            import ctypes

            buf = ctypes.create_string_buffer(256)
            out = []
            for t in range(self.n_vocab):
                n = self._lib.llama_token_to_piece(self.vocab_ptr, t, buf, 256, 0, False)
                out.append(buf.raw[: max(n, 0)])
            self._pieces = out
        return self._pieces

    def token_text(self, token: int) -> str:
        return self._model.token_get_text(token)

    def decoder(self) -> ConstrainedDecoder:
        import warnings

        from llguidance.llamacpp import lltokenizer_from_vocab

        from memcli.runtime.constraints import ConstrainedDecoder

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            tokenizer = lltokenizer_from_vocab(self.vocab_ptr, eos_token=self.eos_token)
        return ConstrainedDecoder(tokenizer, self.n_vocab)


class ServerVocab:
    """The served model's vocabulary through llama-server's `/tokenize` and `/detokenize`,
    when its GGUF file is not on this machine: token ids by `/tokenize` (cached per
    text), token bytes by detokenizing every id (`VOCAB_BATCH` ids a request, each
    followed by a separator to split on), cached under the cache folder by server URL
    and model name. A token whose bytes are not whole UTF-8 (byte fallback tokens) comes
    back as U+FFFD and is kept as empty: masks never allow it, so a name that only
    such tokens can spell cannot be read or written through this vocabulary."""

    def __init__(self, client: Http, url: str, model: str, n_vocab: int, props: dict):
        import threading

        # Its own connection, locked: the answering and the writing engine share it.
        self.client = Http(client.base, client.timeout, client.api_key)
        self._lock = threading.Lock()
        self.url = url
        self.model = model
        self.n_vocab = n_vocab
        self.path = f"{url}/tokenize"  # for `describe`
        self._tokenized: dict[tuple[str, bool], list[int]] = {}
        self._pieces: list[bytes] | None = None
        self.eos_token = self._special_id(props.get("eos_token"))
        self.bos_token = self._special_id(props.get("bos_token"))

    def _special_id(self, text: Any) -> int:
        if not isinstance(text, str) or not text:
            return -1
        ids = self.tokenize(text, special=True)
        return ids[0] if len(ids) == 1 else -1

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        key = (text, special)
        cached = self._tokenized.get(key)
        if cached is None:
            with self._lock:
                data = self.client.post(
                    "/tokenize",
                    {"content": text, "add_special": False, "parse_special": special},
                    retry=True,
                )
            tokens = data.get("tokens") if isinstance(data, dict) else None
            if not isinstance(tokens, list) or not all(
                isinstance(t, int) and 0 <= t < self.n_vocab for t in tokens
            ):
                raise ServerError(f"the engine at {self.url} sent no token ids for /tokenize")
            cached = tokens
            if len(self._tokenized) < 50_000:
                self._tokenized[key] = cached
        return list(cached)

    def _detokenize(self, tokens: list[int]) -> str:
        with self._lock:
            data = self.client.post("/detokenize", {"tokens": tokens}, retry=True)
        content = data.get("content") if isinstance(data, dict) else None
        if not isinstance(content, str):
            raise ServerError(f"the engine at {self.url} sent no text for /detokenize")
        return content

    def cache_file(self) -> Path:
        import hashlib

        from memcli.paths import cache_dir

        key = hashlib.sha256(f"{self.url}\n{self.model}".encode()).hexdigest()[:20]
        return cache_dir() / "vocab" / f"{key}.json"

    def pieces(self) -> list[bytes]:
        if self._pieces is None:
            self._pieces = self._cached_pieces() or self._read_pieces()
        return self._pieces

    def _cached_pieces(self) -> list[bytes] | None:
        path = self.cache_file()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if (data.get("url"), data.get("model"), data.get("n_vocab")) != (
                self.url,
                self.model,
                self.n_vocab,
            ):
                return None
            pieces = [bytes.fromhex(h) for h in data["pieces"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return pieces if len(pieces) == self.n_vocab else None

    def _read_pieces(self) -> list[bytes]:
        separator = self.tokenize(VOCAB_SEPARATOR)
        out: list[bytes] = []
        for start in range(0, self.n_vocab, VOCAB_BATCH):
            ids = list(range(start, min(self.n_vocab, start + VOCAB_BATCH)))
            batch: list[int] = []
            for token in ids:
                batch += [token, *separator]
            parts = self._detokenize(batch).split(VOCAB_SEPARATOR)
            if len(parts) != len(ids) + 1:  # a token spells the separator: one at a time
                parts = [self._detokenize([t]) for t in ids] + [""]
            out += [b"" if "\ufffd" in part else part.encode() for part in parts[:-1]]
        path = self.cache_file()
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(
                json.dumps(
                    {
                        "url": self.url,
                        "model": self.model,
                        "n_vocab": self.n_vocab,
                        "pieces": [p.hex() for p in out],
                    }
                ),
                encoding="utf-8",
            )
            temporary.replace(path)
        return out

    def token_text(self, token: int) -> str:
        return self._detokenize([token])

    def close(self) -> None:
        self.client.close()

    def decoder(self) -> ConstrainedDecoder:
        from llguidance import LLTokenizer, TokenizerWrapper

        from memcli.runtime.constraints import ConstrainedDecoder

        vocab = self

        class _Tokens:
            eos_token_id = self.eos_token if self.eos_token >= 0 else 0
            bos_token_id = self.bos_token if self.bos_token >= 0 else None
            tokens = self.pieces()
            special_token_ids: list[int] = []

            def __call__(self, text: bytes) -> list[int]:
                return vocab.tokenize(text.decode("utf-8", "replace"))

        tokenizer = LLTokenizer(TokenizerWrapper(_Tokens()), n_vocab=self.n_vocab)
        return ConstrainedDecoder(tokenizer, self.n_vocab)


def server_vocab(client: Http, info: ServerInfo, listing: dict) -> ServerVocab | None:
    """A `ServerVocab` for a llama-server that says its vocabulary's size (`/v1/models`
    `meta.n_vocab`) and answers `/tokenize`; else None."""
    if info.kind != "llama-server":
        return None
    meta = next(
        (
            m.get("meta")
            for m in listing.get("data") or []
            if isinstance(m, dict) and m.get("id") == info.model
        ),
        None,
    )
    n_vocab = meta.get("n_vocab") if isinstance(meta, dict) else None
    if not isinstance(n_vocab, int) or n_vocab <= 0:
        return None
    vocab: ServerVocab | None = None
    try:
        vocab = ServerVocab(client, info.url, info.model, n_vocab, info.props)
        vocab.tokenize("a")  # answers /tokenize
    except ServerError:
        if vocab is not None:
            vocab.close()
        return None
    return vocab


# -- the server ----------------------------------------------------------------------------


@dataclass
class ServerInfo:
    """What the capability check found."""

    url: str
    kind: str  # "llama-server", "llama-cpp-python", "vllm", "sglang", "openai-compatible"
    model: str
    models: list[str]
    props: dict = field(default_factory=dict)
    version: str = ""
    slots: int = 0  # llama-server's parallel slots (0: unknown, or not a llama-server)


def _slot_count(client: Http, props: dict) -> int:
    """llama-server's slots: `total_slots` of /props, else the length of /slots (which
    a server started with `--no-slots` refuses)."""
    total = props.get("total_slots")
    if isinstance(total, int) and total > 0:
        return total
    try:
        listing = client.get("/slots")
    except ServerError:
        return 0
    return len(listing) if isinstance(listing, list) else 0


def _probe_kind(client: Http) -> tuple[str, dict, str]:
    props = client.get("/props")
    if isinstance(props, dict) and (
        "chat_template" in props or "default_generation_settings" in props
    ):
        return "llama-server", props, str(props.get("build_info", ""))
    version = client.get("/version")
    if isinstance(version, dict) and "version" in version:
        return "vllm", {}, str(version["version"])
    info = client.get("/get_server_info")
    if isinstance(info, dict):
        return "sglang", info, str(info.get("version", ""))
    schema = client.get("/openapi.json")
    if isinstance(schema, dict):
        info = schema.get("info") or {}
        title = str(info.get("title", ""))
        paths = schema.get("paths") or {}
        if "llama.cpp Python" in title or "/extras/tokenize" in paths:
            return "llama-cpp-python", {}, str(info.get("version", ""))
    return "openai-compatible", {}, ""


DEFAULT_CONSTRAINT = {
    "llama-server": "gbnf",
    "llama-cpp-python": "gbnf",
    "vllm": "llguidance",
    "sglang": "llguidance",
}


def grammar_fields(kind: str, grammar: CheckedGrammar) -> dict[str, Any]:
    """The request fields that carry `grammar` to a server of `kind`."""
    if grammar.syntax == "gbnf":
        return {"grammar": grammar.text}
    if kind == "vllm":
        return {"structured_outputs": {"grammar": grammar.text}}
    if kind == "sglang":  # `--grammar-backend llguidance` reads `%llguidance` Lark here
        return {"ebnf": grammar.text}
    return {"grammar": grammar.text}  # llama-server built with llguidance: `%llguidance`


def connect(
    store: TripleStore | None,
    spec: EngineSpec,
    *,
    model: str | None = None,
    config: EngineConfig | None = None,
    notify: Callable[[str], None] | None = None,
    adapter: str | None = None,
    no_adapter: bool = False,
    threads: int | None = None,
    timeout: float | None = None,
    template: str | None = None,
    tokenizer: str | None = None,
    constraint: str | None = None,
    **_: Any,
) -> RemoteEngine:
    """Connect to the server `spec.url`, check it serves `model` and find what it can
    do; raises `ServerError` (one line) when it cannot be used."""
    from memcli.catalog import configured_engine_settings

    if adapter:
        raise UsageError("--adapter applies to an in-process model; a server loads its own")
    del no_adapter, threads, notify
    assert spec.url is not None
    saved = configured_engine_settings()
    client = Http(spec.url, timeout or DEFAULT_TIMEOUT, os.environ.get("MEMCLI_ENGINE_KEY"))
    listing = client.get("/v1/models")
    if not isinstance(listing, dict) or not isinstance(listing.get("data", []), list):
        client.close()
        raise ServerError(f"{spec.url} is not an OpenAI-compatible server (no /v1/models)")
    ids = [str(m.get("id")) for m in (listing.get("data") or []) if isinstance(m, dict)]
    if model is None:
        if not ids:
            raise ServerError(f"the engine at {spec.url} serves no model")
        model = ids[0]
    elif ids and model not in ids:
        raise ServerError(f"the engine at {spec.url} serves {', '.join(ids[:5])}, not {model!r}")
    kind, props, version = _probe_kind(client)
    info = ServerInfo(spec.url, kind, model, ids, props, version)
    if kind == "llama-server":
        info.slots = _slot_count(client, props)
    try:
        slot = _answer_slot(info)
    except UsageError:
        client.close()
        raise

    # The model's file, when it is on this machine: its template and its vocabulary.
    local: Path | None = None
    named = tokenizer or os.environ.get(TOKENIZER_ENV) or saved.get("tokenizer")
    if named:
        local = Path(named).expanduser()
        if local.suffix != ".gguf" or not local.is_file():
            raise UsageError(f"tokenizer {named!r}: not a .gguf file on this machine")
    else:
        for candidate in (props.get("model_path"), model):
            if candidate and str(candidate).endswith(".gguf") and Path(candidate).is_file():
                local = Path(candidate)
                break
    chosen = template or os.environ.get(TEMPLATE_ENV) or saved.get("template")
    if chosen:
        chat = template_from(chosen)
    elif props.get("chat_template"):
        chat = ChatTemplate(
            str(props["chat_template"]),
            f"{spec.url}/props",
            str(props.get("bos_token", "")),
            str(props.get("eos_token", "")),
        )
    elif local is not None:
        chat = _gguf_template(local)
    else:
        raise ModelError(
            f"no chat template for {model} at {spec.url}: set {TEMPLATE_ENV} to the model's "
            "GGUF file, a Jinja file or `chatml` (or `memcli models use --engine URL "
            "--template ...`)"
        )
    vocab: LocalVocab | ServerVocab | None = LocalVocab(local) if local is not None else None
    if vocab is None:
        vocab = server_vocab(client, info, listing)
    if vocab is not None and not chat.source.endswith("/props"):
        chat = ChatTemplate(
            chat.template, chat.source, _special(vocab, "bos"), _special(vocab, "eos")
        )
    wanted = constraint or os.environ.get(CONSTRAINT_ENV) or saved.get("constraint")
    if wanted and wanted not in CONSTRAINTS:
        raise UsageError(f"constraint {wanted!r}: use one of {', '.join(CONSTRAINTS)}")
    notes: list[str] = []
    mode = wanted or DEFAULT_CONSTRAINT.get(kind) or ("logit_bias" if vocab else "")
    if mode in CLIENT_MASKS and vocab is None:
        raise UsageError(
            f"client-side masks need the model's vocabulary: set {TOKENIZER_ENV} to its GGUF file"
        )
    config = config or EngineConfig()
    if local is not None and "memllm" in local.name:
        config.few_shot = False  # memcli's model with the memory adapter folded in
    engine = RemoteEngine(client, store, info, chat, vocab, mode, config=config, slot=slot)
    if mode in ("gbnf", "llguidance") and not wanted and not engine.probe_grammar():
        notes.append(f"the server ignored a {mode} grammar")
        engine.mode = "logit_bias" if vocab is not None else ""
    if engine.mode == "logit_bias" and wanted != "logit_bias" and not engine.probe_logit_bias():
        if engine.probe_logprobs():
            notes.append("the server ignored logit_bias; it gives log-probabilities")
            engine.mode = "logprobs"
        else:
            notes.append("the server ignored logit_bias and gives no log-probabilities")
            engine.mode = ""
    if not engine.mode:
        notes.append("no constraint: memory calls are checked after they are generated")
    engine.notes = tuple(notes)
    return engine


def _answer_slot(info: ServerInfo) -> int | None:
    """The llama-server slot a chat's answers are pinned to (`id_slot`), so that the
    conversation's prefix stays cached there: slot 0, or `MEMCLI_ENGINE_SLOT`; None
    (the server picks) for other servers or with `MEMCLI_ENGINE_SLOT=auto`."""
    if info.kind != "llama-server":
        return None
    wanted = os.environ.get(SLOT_ENV, "").strip().lower()
    if wanted == "auto":
        return None
    if not wanted:
        return 0
    if not wanted.isdigit() or (info.slots and int(wanted) >= info.slots):
        have = f"0 to {info.slots - 1}" if info.slots else "a slot number"
        raise UsageError(f"{SLOT_ENV}={wanted!r}: give {have}, or `auto`")
    return int(wanted)


def _special(vocab: LocalVocab | ServerVocab, which: str) -> str:
    token = vocab.bos_token if which == "bos" else vocab.eos_token
    return vocab.token_text(token) if token >= 0 else ""


# -- the engine ----------------------------------------------------------------------------


@dataclass
class _Progress:
    """Counters of one answer or write."""

    started: float
    generated: int = 0
    prompt_tokens: int = 0
    first: float | None = None
    requests: int = 0

    def timing(self) -> Timing:
        return Timing.since(self.started, self.prompt_tokens, self.generated, self.first)

    def token(self, n: int = 1) -> None:
        self.generated += n
        if self.first is None:
            self.first = time.perf_counter() - self.started


class RemoteEngine(MemoryLogic):
    """An `Engine` on an OpenAI-compatible server (see the module docstring)."""

    def __init__(
        self,
        client: Http,
        store: TripleStore | None,
        server: ServerInfo,
        template: ChatTemplate,
        vocab: LocalVocab | ServerVocab | None,
        mode: str,
        *,
        config: EngineConfig | None = None,
        slot: int | None = None,
    ):
        super().__init__(store, config)
        self.client = client
        self.slot = slot  # llama-server's `id_slot` for every request, None: the server's pick
        self._owns_vocab = True
        self.server = server
        self.template = template
        self.vocab = vocab
        self.mode = mode
        self.notes: tuple[str, ...] = ()
        self.usage: list[dict] = []  # the servers' usage/timings reports, last first
        self._decoder: ConstrainedDecoder | None = None
        self._bans: dict[str, float] | None = None
        self._index: dict[bytes, list[int]] | None = None

    # -- the Engine protocol --------------------------------------------------------------

    @property
    def label(self) -> str:
        name = self.server.model
        if name.endswith(".gguf"):
            name = Path(name).name.removesuffix(".gguf")
        host = urlsplit(self.server.url).netloc
        return f"{name} @ {host}"

    def capabilities(self) -> Capabilities:
        return Capabilities(
            kind="remote",
            constraint=self.mode or "none",
            logprobs=False,
            prefix_cache=True,
            tokenizer="local" if isinstance(self.vocab, LocalVocab) else "server",
            chat_template=self.template.source,
            notes=self.notes,
        )

    def describe(self) -> dict[str, Any]:
        mode = {
            "gbnf": "server-side GBNF grammars",
            "llguidance": "server-side llguidance (Lark) grammars",
            "logit_bias": "client-side masks, one token at a time (logit_bias)",
            "logprobs": "client-side masks, one token at a time (the most probable allowed "
            f"of the server's top {TOP_LOGPROBS} logprobs)",
            "": "none (calls checked after generation)",
        }[self.mode]
        info: dict[str, Any] = {
            "engine": f"remote ({self.server.kind}"
            + (f" {self.server.version}" if self.server.version else "")
            + ")",
            "url": self.server.url,
            "model": self.server.model,
            "memory calls": mode,
            "chat template": self.template.source,
            "tokenizer": (
                str(self.vocab.path)
                if self.vocab is not None
                else "the server's (none here: no client-side masks)"
            ),
        }
        if self.server.kind == "llama-server":
            slots = f" of {self.server.slots}" if self.server.slots else ""
            info["slot"] = (
                f"{self.slot}{slots} (answers; writes on the next slot when there are two)"
                if self.slot is not None
                else f"the server's pick{slots}"
            )
        for i, note in enumerate(self.notes):
            info[f"note {i + 1}"] = note
        return info

    def warm_up(self, kind: str = "", stop: Any = None) -> None:
        """Put the fixed part of the prompt in the server's cache (one prompt token of
        generation); build the client-side decoder when masks are used."""
        if self.mode in CLIENT_MASKS:
            self.decoder  # noqa: B018 - built on first access
        if kind not in ("answer", "write"):
            return
        if kind == "write":
            messages = prompts.write_messages("", "", few_shot=self.config.few_shot)[:-1]
        else:
            messages = prompts.answer_messages([], few_shot=self.config.few_shot, memory=True)
        prompt = self.template.render(messages, add_generation_prompt=False)
        self.client.post("/v1/completions", self._body(prompt, 1), retry=True)

    def close(self) -> None:
        self.client.close()
        if self.vocab is not None and self._owns_vocab:
            self.vocab.close()

    def for_writing(self) -> RemoteEngine:
        """The engine a chat's writes use: on a llama-server with two slots or more, the
        same server on the next slot (so writes and answers each keep their prompt
        cached); else this engine. Shares the vocabulary and the decoder."""
        if self.slot is None or self.server.slots < 2:
            return self
        if self.mode in CLIENT_MASKS:
            self.decoder  # noqa: B018 - built once, for both
            self._piece_index()
        client = Http(self.client.base, self.client.timeout, self.client.api_key)
        writer = RemoteEngine(
            client,
            self.store,
            self.server,
            self.template,
            self.vocab,
            self.mode,
            config=self.config,
            slot=(self.slot + 1) % self.server.slots,
        )
        writer.notes = self.notes
        writer._owns_vocab = False
        writer._decoder = self._decoder
        writer._bans = self._bans
        writer._index = self._index
        return writer

    @property
    def decoder(self) -> ConstrainedDecoder:
        if self._decoder is None:
            assert self.vocab is not None
            self._decoder = self.vocab.decoder()
        return self._decoder

    def probe_grammar(self) -> bool:
        """Whether the server enforces a grammar: a one-token completion that the
        grammar forces to `Q` (validated here like every grammar memcli sends)."""
        from memcli.runtime.grammars import checked_gbnf, checked_lark

        word = "Q"
        if self.mode == "gbnf":
            grammar = checked_gbnf(f'root ::= "{word}"\n')
        else:
            grammar = checked_lark(f'%llguidance {{}}\nstart: "{word}"\n')
        body = {
            **self._body("The letter after P is", 2),
            **grammar_fields(self.server.kind, grammar),
        }
        try:
            data = self.client.post("/v1/completions", body, retry=True)
        except ServerError:
            return False
        return _choice(data).get("text", "").strip() == word

    def probe_logit_bias(self) -> bool:
        """Whether the server honours `logit_bias`: a one-token completion with the token
        of `7` favoured by +100 must be `7`."""
        assert self.vocab is not None
        ids = self.vocab.tokenize("7")
        if len(ids) != 1:
            return True  # no single token to test with: trust the server
        body = self._body("The letter after P is", 1, logit_bias={str(ids[0]): 100.0})
        try:
            data = self.client.post("/v1/completions", body, retry=True)
        except ServerError:
            return False
        return _choice(data).get("text", "") == "7"

    def probe_logprobs(self) -> bool:
        """Whether the server gives the top log-probabilities of a completion's token."""
        body = self._body("The letter after P is", 1, logprobs=TOP_LOGPROBS)
        try:
            data = self.client.post("/v1/completions", body, retry=True)
        except ServerError:
            return False
        return bool(top_pieces(_choice(data)))

    # -- requests -------------------------------------------------------------------------

    def _body(self, prompt: str, max_tokens: int, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.server.model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": self.config.temperature,
            "top_p": 1.0,
        }
        if self.server.kind in ("llama-cpp-python", "llama-server"):
            body["repeat_penalty"] = 1.0  # as in-process; their default is 1.1
        if self.server.kind == "llama-server":
            body["cache_prompt"] = True
            if self.slot is not None:
                body["id_slot"] = self.slot
        body.update(extra)
        return body

    def _stream(
        self, progress: _Progress, body: dict
    ) -> Generator[tuple[str, str | None], None, None]:
        """(text, finish_reason) of each streamed chunk; counts tokens and usage."""
        progress.requests += 1
        with contextlib.closing(self.client.stream("/v1/completions", body)) as events:
            for event in events:
                choice = _choice(event)
                text = choice.get("text") or ""
                if text:
                    progress.token()
                self._note_usage(event, progress)
                yield text, choice.get("finish_reason")

    def _note_usage(self, event: dict, progress: _Progress) -> None:
        usage = event.get("usage")
        timings = event.get("timings")
        if usage or timings:
            report = {"usage": usage, "timings": timings}
            self.usage.insert(0, report)
            del self.usage[20:]
            if isinstance(timings, dict) and "prompt_n" in timings:
                progress.prompt_tokens += int(timings["prompt_n"])
            elif isinstance(usage, dict) and "prompt_tokens" in usage:
                progress.prompt_tokens += int(usage["prompt_tokens"])

    def _free_bans(self) -> dict[str, float]:
        """Logit biases that keep `({` out of free text (with the vocabulary here)."""
        if self.vocab is None:
            return {}
        if self._bans is None:
            self._bans = {
                str(t): -100.0 for t, p in enumerate(self.vocab.pieces()) if OPEN.encode() in p
            }
        return self._bans

    # -- answering ------------------------------------------------------------------------

    def answer(self, history: list[dict[str, str]], *, memory: bool = True) -> Iterator[Event]:
        progress = _Progress(time.perf_counter())
        messages, can_read, forced = self.plan_answer(history, memory)
        prompt = self.template.render(messages)
        conversation = " ".join(m["content"] for m in history)
        turn = _Turn()
        stopped = "length"
        suppress = False
        planned, self.planned_read = self.planned_read, None
        if planned and can_read:
            suppress = not (yield from self._planned(turn, planned))
        elif forced:
            kept = yield from self._read(turn, progress, prompt, forced, forced_head=True)
            suppress = not kept
        while progress.generated < self.config.max_tokens:
            may_read = can_read and not suppress and len(turn.reads) < self.config.max_reads
            outcome = yield from self._free(turn, progress, prompt, may_read)
            suppress = False
            if outcome != "open":
                stopped = outcome
                break
            entities = self._candidates(conversation + " " + "".join(turn.text))
            kept = yield from self._read(turn, progress, prompt, entities, forced_head=False)
            suppress = not kept
        for event in turn.parser.close():
            yield from self._translate(turn, event)
        yield progress.timing()
        yield Done("".join(turn.text).strip(), "".join(turn.raw), stopped, tuple(turn.reads))

    def _candidates(self, text: str) -> list[str]:
        """The entities a read the model opens may name: those of memory named in the
        conversation, or, when memory is small, all of them."""
        found = self.mentioned_entities(text)
        if found or self.store is None:
            return found
        if read_scope.has_facts(self.store) and read_scope.is_small(self.store, WHOLE_MEMORY_NAMES):
            return self.store.entity_names()  # counted up to the limit, never fetched whole
        return []

    def _free(
        self, turn: _Turn, progress: _Progress, prompt: str, may_read: bool
    ) -> Generator[Event, None, str]:
        """Stream free text until the end, the token budget, or `({` (returns "end",
        "length" or "open"; on "open" the text so far ends with `({`)."""
        budget = self.config.max_tokens - progress.generated
        extra: dict[str, Any] = {}
        if not may_read and self.vocab is not None:
            extra["logit_bias"] = self._free_bans()
        body = self._body(prompt + "".join(turn.raw), budget, **extra)
        held = ""
        stream = self._stream(progress, body)
        try:
            for text, finish in stream:
                joined = held + text
                at = joined.find(OPEN)
                if at >= 0:
                    yield from self._feed(turn, joined[:at])
                    if not may_read:
                        return "end"  # no read allowed here: the answer ends before `({`
                    yield from self._feed(turn, OPEN)
                    return "open"
                held = "(" if joined.endswith("(") else ""
                yield from self._feed(turn, joined[: len(joined) - len(held)])
                if finish:
                    yield from self._feed(turn, held)
                    return "length" if finish == "length" else "end"
            yield from self._feed(turn, held)
            return "end"
        finally:
            stream.close()

    def _read(
        self,
        turn: _Turn,
        progress: _Progress,
        prompt: str,
        entities: list[str],
        *,
        forced_head: bool,
    ) -> Generator[Event, None, bool]:
        """A read's head (forced where the model did not write it), its constrained
        body, then the results or the call dropped. Returns whether it was kept."""
        assert self.store is not None
        head = protocol.READ_HEAD if forced_head else protocol.READ_HEAD[len(OPEN) :]
        yield from self._feed(turn, head)
        relations = self.store.relation_names()
        context = prompt + "".join(turn.raw)
        failure: str | None = None
        body_text = ""
        try:
            if not entities:
                raise ModelError("no entity of memory is named in the conversation")
            for piece in self._constrained(progress, context, "read", entities, relations):
                body_text += piece
                yield from self._feed(turn, piece)
                if body_text.endswith(protocol.READ_END):
                    break
        except ServerError:
            raise
        except MemcliError as exc:  # GrammarError, ConstraintViolation: drop the call
            failure = str(exc)
        if failure is None and not body_text.endswith(protocol.READ_END):
            failure = "the read did not close within its token budget"
        if failure is not None:
            self._drop_text(turn)
            yield CallFailed(head + body_text, failure)
            return False
        return (yield from self._resolve(turn))

    def _planned(self, turn: _Turn, queries: Sequence[ReadQuery]) -> Generator[Event, None, bool]:
        """A read chosen outside the model (`plan_read`) written into the text and run."""
        yield from self._feed(turn, protocol.format_read_call(queries))
        return (yield from self._resolve(turn))

    def _resolve(self, turn: _Turn) -> Generator[Event, None, bool]:
        """The read's `)-->` is in the text: run it, then write its results after it (kept)
        or take the call out of the text (nothing found). Whether it was kept."""
        done = self.resolve_read(turn.queries, turn.seen)
        turn.reads.append(done)
        if not done.kept:
            self._drop_text(turn)
            yield done
            return False
        yield from self._feed(turn, protocol.format_read_results(done.results), kind="result")
        yield done
        return True

    # -- constrained bodies ---------------------------------------------------------------

    def _constrained(
        self,
        progress: _Progress,
        context: str,
        kind: str,
        names: Sequence[str],
        relations: Sequence[str],
        entities: Sequence[str] = (),
    ) -> Generator[str, None, None]:
        """The text of a call body after `context`, constrained as the server allows.
        For reads `names` are the entities; for writes `names` is `[sentence]` and
        `entities` the context entities a triple may name besides its spans."""
        from memcli.runtime import grammars

        limit = MAX_BODY_TOKENS if kind == "read" else self.config.max_write_tokens
        if self.mode in CLIENT_MASKS:
            decoder = self.decoder
            cmd = (
                decoder.start_read(names, relations)
                if kind == "read"
                else decoder.start_write(names[0], relations, entities=entities)
            )
            yield from self._masked(progress, context, cmd, limit)
            return
        extra: dict[str, Any] = {}
        if self.mode == "gbnf":
            text = (
                grammars.read_gbnf(names, relations)
                if kind == "read"
                else grammars.write_gbnf(names[0], relations, entities)
            )
            extra = grammar_fields(self.server.kind, grammars.checked_gbnf(text))
        elif self.mode == "llguidance":
            text = (
                grammars.read_lark(names, relations, header=True)
                if kind == "read"
                else grammars.write_lark(names[0], relations, header=True, entities=entities)
            )
            extra = grammar_fields(self.server.kind, grammars.checked_lark(text))
        else:
            extra = {"stop": [protocol.READ_END if kind == "read" else protocol.CLOSE]}
        stream = self._stream(progress, self._body(context, limit, **extra))
        closing = protocol.READ_END if kind == "read" else protocol.CLOSE
        body = ""
        try:
            for text, finish in stream:
                if text:
                    body += text
                    yield text
                if finish:
                    if finish == "stop" and not self.mode and not body.endswith(closing):
                        yield closing  # the stop string was cut from the text
                    return
        finally:
            stream.close()

    def _masked(
        self, progress: _Progress, context: str, cmd: Command, limit: int
    ) -> Generator[str, None, None]:
        """One token at a time: memcli's mask as logit biases, the server's pick checked
        against the mask ("logit_bias"), or the best allowed of the server's most probable
        tokens ("logprobs"). Tokens the mask forces are taken without asking."""
        import numpy as np

        assert self.vocab is not None
        decoder = self.decoder
        pieces = self.vocab.pieces()
        text = b""
        for _ in range(limit):
            allowed = decoder.mask(cmd)
            ids = np.flatnonzero(allowed)
            if not len(ids):
                raise ModelError("the token mask allows no token")
            if len(ids) == 1:
                tokens = [int(ids[0])]
            elif self.mode == "logprobs":
                prompt = context + text.decode("utf-8", "replace")
                tokens = [self._best_allowed(progress, prompt, allowed, ids)]
            else:
                if len(ids) <= len(allowed) - len(ids):
                    bias = {str(int(t)): 100.0 for t in ids}
                else:
                    bias = {str(int(t)): -100.0 for t in np.flatnonzero(~allowed)}
                progress.requests += 1
                data = self.client.post(
                    "/v1/completions",
                    self._body(context + text.decode("utf-8", "replace"), 1, logit_bias=bias),
                    retry=True,
                )
                self._note_usage(data, progress)
                piece = _choice(data).get("text") or ""
                if not piece:
                    raise ModelError("the server's token is not a whole character")
                same = [t for t in self._piece_index().get(piece.encode(), ()) if allowed[t]]
                tokens = same[:1] or self.vocab.tokenize(piece)
            for token in tokens:
                decoder.advance(cmd, token)
                progress.token()
                text += pieces[token]
                yield pieces[token].decode("utf-8", "replace")
            if decoder.is_done(cmd):
                return

    def _best_allowed(self, progress: _Progress, prompt: str, allowed: Any, ids: Any) -> int:
        """The most probable token of the server's top log-probabilities that `allowed`
        allows; none: the longest allowed token that begins one of them; else the
        mask's first allowed token (`ids[0]`)."""
        progress.requests += 1
        data = self.client.post(
            "/v1/completions", self._body(prompt, 1, logprobs=TOP_LOGPROBS), retry=True
        )
        self._note_usage(data, progress)
        choice = _choice(data)
        ranked = top_pieces(choice)
        if not ranked and choice.get("text"):
            ranked = [str(choice["text"]).encode()]
        index = self._piece_index()
        for piece in ranked:
            for token in index.get(piece, ()):
                if allowed[token]:
                    return token
        for piece in ranked:
            for end in range(len(piece) - 1, 0, -1):
                for token in index.get(piece[:end], ()):
                    if allowed[token]:
                        return token
        return int(ids[0])

    def _piece_index(self) -> dict[bytes, list[int]]:
        """Token ids by their bytes (several tokens may spell the same bytes)."""
        if self._index is None:
            assert self.vocab is not None
            index: dict[bytes, list[int]] = {}
            for token, piece in enumerate(self.vocab.pieces()):
                if piece:
                    index.setdefault(piece, []).append(token)
            self._index = index
        return self._index

    # -- writing --------------------------------------------------------------------------

    def write(
        self,
        sentence: str,
        context: str = "",
        *,
        source: str = "model",
        dry_run: bool = False,
        entities: Sequence[str] = (),
    ) -> Iterator[Event]:
        """One MEM_WRITE call for `sentence`, as `MemoryEngine.write` (`entities`: context
        entities the call may name besides the sentence's spans)."""
        sentence = protocol.neutralize(sentence)  # a call in the text is not a fact to copy
        progress = _Progress(time.perf_counter())
        messages = prompts.write_messages(sentence, context, few_shot=self.config.few_shot)
        prompt = self.template.render(messages) + protocol.WRITE_HEAD
        relations = self.store.relation_names() if self.store else []
        call = WriteText()
        yield from call.take_events()
        pieces = self._constrained(progress, prompt, "write", [sentence], relations, entities)
        try:
            for piece in pieces:
                call.feed(piece)
                yield from call.take_events()
                if call.closed is not None:
                    break
        except ServerError:
            raise
        except MemcliError as exc:  # GrammarError, ConstraintViolation: end the call here
            yield CallFailed("".join(call.raw), str(exc))
        finally:
            pieces.close()
        call.finish()
        yield from call.take_events()
        assert call.closed is not None
        yield self.finish_write(call.parsed, call.closed, sentence, source=source, dry_run=dry_run)
        yield progress.timing()


def top_pieces(choice: dict) -> list[bytes]:
    """The bytes of the first generated token's most probable alternatives, most
    probable first, from either log-probability format of `/v1/completions`: the legacy
    one (`top_logprobs: [{text: logprob}]`: vLLM, llama-cpp-python, SGLang) or the chat
    one (`content: [{top_logprobs: [{token, logprob, bytes}]}]`: llama-server)."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return []
    pairs: list[tuple[float, bytes]] = []
    top = logprobs.get("top_logprobs")
    content = logprobs.get("content")
    if isinstance(top, list) and top and isinstance(top[0], dict):
        for text, value in top[0].items():
            if isinstance(value, int | float):
                pairs.append((float(value), str(text).encode()))
    elif isinstance(content, list) and content and isinstance(content[0], dict):
        for item in content[0].get("top_logprobs") or []:
            if not isinstance(item, dict) or not isinstance(item.get("logprob"), int | float):
                continue
            raw = item.get("bytes")
            piece = (
                bytes(raw)
                if isinstance(raw, list) and all(isinstance(b, int) and 0 <= b < 256 for b in raw)
                else str(item.get("token", "")).encode()
            )
            pairs.append((float(item["logprob"]), piece))
    pairs.sort(key=lambda pair: -pair[0])
    return [piece for _, piece in pairs if piece]


def _choice(data: Any) -> dict:
    if not isinstance(data, dict):
        return {}
    choices = data.get("choices")
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        return {}
    return choices[0]
