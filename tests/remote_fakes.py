"""Loopback HTTP servers for the remote-engine tests: a scripted OpenAI-compatible server
that records every request (to check the request shapes memcli sends to vLLM, SGLang and
llama-server, which cannot run here), and a recording proxy in front of a real server."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What the scripted server answers to one completion request."""

    chunks: list[str] = field(default_factory=list)
    finish: str | None = "stop"
    status: int = 200
    cut: bool = False  # close the stream half way, before any finish_reason or [DONE]
    delay: float = 0.0  # seconds before answering
    top: dict[str, float] | None = None  # the first token's top log-probabilities
    content_format: bool = False  # llama-server's form of them (`content`, with bytes)


Script = Callable[[dict], Reply]


@dataclass
class Recorded:
    method: str
    path: str
    body: Any


def _logprobs(reply: Reply) -> dict:
    assert reply.top is not None
    text = "".join(reply.chunks)
    if reply.content_format:
        return {
            "content": [
                {
                    "token": text,
                    "logprob": max(reply.top.values(), default=0.0),
                    "top_logprobs": [
                        {"token": t, "logprob": v, "bytes": list(t.encode())}
                        for t, v in reply.top.items()
                    ],
                }
            ]
        }
    return {
        "tokens": [text],
        "token_logprobs": [max(reply.top.values(), default=0.0)],
        "top_logprobs": [reply.top],
        "text_offset": [0],
    }


class FakeServer:
    """An OpenAI-compatible server of one `kind` ("vllm", "sglang", "llama-server",
    "llama-cpp-python", "plain") on 127.0.0.1 and a free port."""

    def __init__(
        self,
        kind: str,
        script: Script,
        model: str = "test-model",
        chat_template: str | None = None,
        total_slots: int | None = None,
        vocab: list[bytes] | None = None,
    ):
        self.kind = kind
        self.vocab = vocab  # llama-server's /tokenize and /detokenize over these pieces
        self._ids = {p: t for t, p in reversed(list(enumerate(vocab or []))) if p}
        self._longest = max(map(len, self._ids), default=1)
        self.total_slots = total_slots
        self.script = script
        self.model = model
        self.chat_template = chat_template
        self.requests: list[Recorded] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, data: Any) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.requests.append(Recorded("GET", self.path, None))
                found = server.get(self.path)
                if found is None:
                    self._json(404, {"detail": "Not Found"})
                else:
                    self._json(200, found)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(Recorded("POST", self.path, body))
                if self.path in ("/tokenize", "/detokenize") and server.vocab is not None:
                    self._json(200, server.tokenizer(self.path, body))
                    return
                if self.path != "/v1/completions":
                    self._json(404, {"detail": "Not Found"})
                    return
                reply = server.script(body)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status != 200:
                    self._json(reply.status, {"error": {"message": "scripted failure"}})
                    return
                if not body.get("stream"):
                    choice: dict[str, Any] = {
                        "text": "".join(reply.chunks),
                        "finish_reason": reply.finish,
                    }
                    if reply.top is not None and body.get("logprobs"):
                        choice["logprobs"] = _logprobs(reply)
                    self._json(
                        200,
                        {
                            "model": server.model,
                            "choices": [choice],
                            "usage": {
                                "prompt_tokens": len(body["prompt"]),
                                "completion_tokens": len(reply.chunks),
                            },
                        },
                    )
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for i, chunk in enumerate(reply.chunks):
                        last = i == len(reply.chunks) - 1
                        if reply.cut and last:
                            self.wfile.flush()
                            return
                        finish = reply.finish if last else None
                        data = {
                            "model": server.model,
                            "choices": [{"text": chunk, "finish_reason": finish}],
                        }
                        self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
                        self.wfile.flush()
                    if not reply.chunks:
                        data = {"choices": [{"text": "", "finish_reason": reply.finish}]}
                        self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client closed the stream: as a server would, stop
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def tokenizer(self, path: str, body: dict) -> dict:
        """llama-server's /tokenize (greedy longest match) and /detokenize."""
        assert self.vocab is not None
        if path == "/detokenize":
            joined = b"".join(self.vocab[t] for t in body["tokens"])
            return {"content": joined.decode("utf-8", "replace")}
        data, tokens, at = body["content"].encode(), [], 0
        while at < len(data):
            for end in range(min(len(data), at + self._longest), at, -1):
                if data[at:end] in self._ids:
                    tokens.append(self._ids[data[at:end]])
                    at = end
                    break
            else:
                raise AssertionError(f"cannot tokenize {data[at:]!r}")
        return {"tokens": tokens}

    def get(self, path: str) -> Any:
        if path == "/v1/models":
            model: dict[str, Any] = {"id": self.model, "object": "model"}
            if self.vocab is not None:
                model["meta"] = {"n_vocab": len(self.vocab), "n_ctx_train": 8192}
            return {"object": "list", "data": [model]}
        if path == "/version" and self.kind == "vllm":
            return {"version": "0.11.0"}
        if path == "/get_server_info" and self.kind == "sglang":
            return {"version": "0.5.0", "grammar_backend": "llguidance"}
        if path == "/props" and self.kind == "llama-server":
            props = {
                "chat_template": self.chat_template or "",
                "bos_token": "",
                "eos_token": "<|im_end|>",
                "default_generation_settings": {},
            }
            if self.total_slots is not None:
                props["total_slots"] = self.total_slots
            return props
        if path == "/openapi.json" and self.kind == "llama-cpp-python":
            return {"info": {"title": "🦙 llama.cpp Python API"}, "paths": {}}
        return None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def completions(self) -> list[dict]:
        return [r.body for r in self.requests if r.path == "/v1/completions"]

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class RecordingProxy:
    """Forwards every request to `target` (a real server), streaming the answer back
    unchanged, and records each request's path and JSON body."""

    def __init__(self, target: str):
        from urllib.parse import urlsplit

        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.requests: list[Recorded] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self, method: str) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length) if length else None
                body = json.loads(raw) if raw else None
                proxy.requests.append(Recorded(method, self.path, body))
                conn = http.client.HTTPConnection(*proxy.target, timeout=300)
                headers = {"Content-Type": "application/json"} if raw else {}
                conn.request(method, self.path, body=raw, headers=headers)
                response = conn.getresponse()
                self.send_response(response.status)
                for key in ("Content-Type",):
                    if response.getheader(key):
                        self.send_header(key, response.getheader(key))
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    while True:
                        piece = response.read1(65536)
                        if not piece:
                            break
                        self.wfile.write(piece)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    conn.close()
                self.close_connection = True

            def do_GET(self) -> None:  # noqa: N802
                self._forward("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._forward("POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> RecordingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
