"""A tiny OpenAI-compatible endpoint (stdlib http.server on 127.0.0.1) for fast client tests.

It misbehaves on purpose. The behaviour for a request is chosen by the prefix of its task id (the
`X-Proofpilot-Task-Id` header, text before the first '-'):

good: a schema-valid verdict | brokenjson: truncated JSON | offschema: JSON outside the schema |
length: finish_reason "length" | empty: empty content | flaky: broken JSON on the first attempt, then
good | garbage: HTTP 200 with a non-JSON body | err500: HTTP 500 | rl429: HTTP 429 | ctx400: vLLM's
over-context 400 | bad400: another 400 | slow: answers after 2 s | drip: a good answer sent one byte per
0.5 s | huge: a 200 body of `huge_bytes` bytes without a Content-Length | echo401: HTTP 401 whose message
quotes the request's Authorization header (as some proxies do).

A request with `"stream": true` gets its 200 answer as server-sent events, as vLLM streams: one chunk per
`stream_piece` characters of the content, `stream_gap_s` apart, then a usage chunk and `data: [DONE]`.
No response carries vLLM's per-request `metrics`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

CONTEXT_400 = (
    "This model's maximum context length is 2048 tokens. However, your prompt contains at least 2049 "
    "input tokens, which exceeds this limit even without any output tokens."
)


def _completion(content: str, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def _error(status: int, message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


class FakeLLM:
    """Start with `with FakeLLM() as fake:`; `fake.base_url` ends in /v1; `fake.calls` counts per task."""

    def __init__(self, models: tuple[str, ...] = ("fake",)) -> None:
        self.models = models
        self.calls: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.huge_bytes = 256 * 2**20
        self.sent_bytes: Counter[str] = Counter()  # per task: body bytes the `huge` behaviour got out
        self.stream_piece, self.stream_gap_s = 8, 0.02
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, task_id: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.calls[task_id] += 1
            self.bodies.append(body)
            attempt = self.calls[task_id]
        behaviour = task_id.split("-", 1)[0]
        schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
        decision = schema.get("properties", {}).get("decision", {}).get("enum", ["merge"])[0]
        good = json.dumps({"decision": decision, "confidence": 0.75})
        fast_retry = {"retry-after-ms": "10"}
        if behaviour == "flaky":
            behaviour = "brokenjson" if attempt == 1 else "good"
        if behaviour == "slow":
            time.sleep(2.0)
            behaviour = "good"
        if behaviour == "good":
            return 200, {}, json.dumps(_completion(good)).encode()
        if behaviour == "brokenjson":
            return 200, {}, json.dumps(_completion(good[:-7])).encode()
        if behaviour == "offschema":
            return 200, {}, json.dumps(_completion('{"decision":"maybe","confidence":3}')).encode()
        if behaviour == "length":
            return 200, {}, json.dumps(_completion('{"decision":"', "length")).encode()
        if behaviour == "empty":
            return 200, {}, json.dumps(_completion("")).encode()
        if behaviour == "garbage":
            return 200, {}, b"<html>not json</html>"
        if behaviour == "err500":
            return 500, fast_retry, json.dumps(_error(500, "engine died", "InternalServerError")).encode()
        if behaviour == "rl429":
            return 429, fast_retry, json.dumps(_error(429, "slow down", "RateLimitError")).encode()
        if behaviour == "ctx400":
            return 400, {}, json.dumps(_error(400, CONTEXT_400, "BadRequestError")).encode()
        if behaviour == "bad400":
            return 400, {}, json.dumps(_error(400, "temperature must be >= 0", "BadRequestError")).encode()
        raise ValueError(f"unknown fake behaviour {behaviour!r}")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    data = [{"id": m, "object": "model", "owned_by": "fake"} for m in fake.models]
                    self._send(200, {}, json.dumps({"object": "list", "data": data}).encode())
                else:
                    self._send(404, {}, json.dumps(_error(404, "not found", "NotFoundError")).encode())

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if self.path != "/v1/chat/completions":
                    self._send(404, {}, b"{}")
                    return
                if body.get("model") not in fake.models:
                    message = f"The model `{body.get('model')}` does not exist."
                    self._send(404, {}, json.dumps(_error(404, message, "NotFoundError")).encode())
                    return
                task_id = unquote(self.headers.get("X-Proofpilot-Task-Id", "good-anon"))
                behaviour = task_id.split("-", 1)[0]
                if behaviour in ("drip", "huge", "echo401"):
                    with fake._lock:
                        fake.calls[task_id] += 1
                    getattr(self, f"_{behaviour}")(task_id)
                    return
                status, headers, payload = fake.answer(task_id, body)
                if body.get("stream") and status == 200:
                    self._stream(json.loads(payload))
                else:
                    self._send(status, headers, payload)

            def _stream(self, completion: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                choice = completion["choices"][0]
                text, piece = choice["message"]["content"], fake.stream_piece
                parts = [text[i : i + piece] for i in range(0, len(text), piece)] or [""]
                base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                        "model": "fake"}  # fmt: skip
                events = [{**base, "choices": [{"index": 0, "delta": {"content": part},
                                                "finish_reason": None}]} for part in parts]  # fmt: skip
                events[-1]["choices"][0]["finish_reason"] = choice["finish_reason"]
                events.append({**base, "choices": [], "usage": completion["usage"]})
                try:
                    for i, event in enumerate(events):
                        if 0 < i < len(parts):
                            time.sleep(fake.stream_gap_s)
                        self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                        self.wfile.flush()
                    self.wfile.write(b"data: [DONE]\n\n")
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its deadline)
                    return

            def _echo401(self, task_id: str) -> None:
                auth = self.headers.get("Authorization", "")
                message = f"invalid credentials: {auth} (key {auth.split()[-1] if auth else ''})"
                self._send(401, {}, json.dumps(_error(401, message, "AuthenticationError")).encode())

            def _drip(self, task_id: str) -> None:
                payload = json.dumps(_completion('{"decision": "merge", "confidence": 0.5}')).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    for i in range(len(payload)):
                        time.sleep(0.5)
                        self.wfile.write(payload[i : i + 1])
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return

            def _huge(self, task_id: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                filler, left = b" " * 2**20, fake.huge_bytes
                try:
                    while left > 0:
                        self.wfile.write(filler)
                        left -= len(filler)
                        with fake._lock:
                            fake.sent_bytes[task_id] += len(filler)
                except (BrokenPipeError, ConnectionResetError):
                    return

        return Handler
