"""A scripted OpenAI-compatible HTTP server on 127.0.0.1, for tests of HTTP clients.

It is a real server (``http.server`` on a loopback port): clients exercise their real
HTTP code, retries and timeouts against it.  Replies come from a Python function:

    def reply(kind, body, call_no) -> str | list[str] | tuple[int, dict | str] | Delay
        (or reply=None: every answer is "[RESULT] 3", for load tests)
        kind: "chat" (POST /v1/chat/completions) or "completions" (POST /v1/completions)
        body: the decoded JSON request
        call_no: 1-based count of requests so far
        return text (or n texts) for a normal answer, (status, payload) or
        (status, payload, headers) for an HTTP error, or Delay(seconds, then) to answer late.

    with ScriptedOpenAIServer(reply) as srv:
        srv.base_url   # "http://127.0.0.1:PORT/v1"
        srv.requests   # every (kind, body) received, in order
        srv.connections  # TCP connections accepted (HTTP/1.1 keep-alive: one per pooled client connection)

``finish_reason`` is every choice's (default "stop"; "length": as cut at max_tokens).
``latency=s`` delays every answer by ``s`` seconds (a remote server's round trip), and
``in_flight_max`` records how many requests were being answered at once, at most.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from loopback import LoopbackServer


@dataclass
class Delay:
    seconds: float
    then: object


class ScriptedOpenAIServer(LoopbackServer):
    def __init__(self, reply=None, model: str = "stub-model", latency: float = 0.0, keep_requests: bool = True,
                 finish_reason: str = "stop"):
        self.reply = reply or (lambda kind, body, call_no: "Fine. [RESULT] 3")
        self.finish_reason = finish_reason
        self.model = model
        self.latency = latency
        self.keep_requests = keep_requests
        self.calls = 0
        self.in_flight = 0
        self.in_flight_max = 0
        self.requests: list[tuple[str, dict]] = []
        self.connections = 0
        self._lock = threading.Lock()
        # a deeper listen backlog than the stdlib's 5: clients that open many connections at
        # once must queue, not be reset
        super().__init__(self._handler(), request_queue_size=128)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def _handler(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real API servers

            def setup(self):
                super().setup()
                with outer._lock:
                    outer.connections += 1

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, payload, headers: dict | None = None):
                data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
                data = data.encode() if isinstance(data, str) else data
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": outer.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "invalid JSON"}})
                    return
                if self.path.endswith("/chat/completions"):
                    kind = "chat"
                elif self.path.endswith("/completions"):
                    kind = "completions"
                else:
                    self._send(404, {"error": {"message": "not found"}})
                    return
                with outer._lock:
                    if outer.keep_requests:
                        outer.requests.append((kind, body))
                    outer.calls += 1
                    call_no = outer.calls
                    outer.in_flight += 1
                    outer.in_flight_max = max(outer.in_flight_max, outer.in_flight)
                try:
                    if outer.latency:
                        time.sleep(outer.latency)
                    self._answer(kind, body, call_no)
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

            def _answer(self, kind, body, call_no):
                result = outer.reply(kind, body, call_no)
                while isinstance(result, Delay):
                    time.sleep(result.seconds)
                    result = result.then
                if isinstance(result, tuple):
                    self._send(*result)
                    return
                texts = [result] if isinstance(result, str) else list(result)
                n = int(body.get("n") or 1)
                if len(texts) < n:
                    texts = (texts * n)[:n]
                if kind == "chat":
                    choices = [
                        {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": outer.finish_reason}
                        for i, t in enumerate(texts[:n])
                    ]
                    obj = "chat.completion"
                else:
                    choices = [{"index": i, "text": t, "finish_reason": outer.finish_reason} for i, t in enumerate(texts[:n])]
                    obj = "text_completion"
                self._send(
                    200,
                    {
                        "id": f"stub-{call_no}",
                        "object": obj,
                        "created": int(time.time()),
                        "model": body.get("model", outer.model),
                        "choices": choices,
                        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                    },
                )

        return Handler
