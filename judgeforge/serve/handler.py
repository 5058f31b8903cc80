"""The HTTP layer: the request handler, the listening server and its connection limits.

* At most ``max_connections`` client connections are open (one thread each); one more is
  answered 503 at once and closed, without a thread.
* Deadlines, watched by one thread: a connection must deliver a request line and headers
  within ``header_timeout`` s of the server starting to wait for them (idle keep-alive
  included) and a body within ``body_timeout`` s of its headers; past a deadline the
  connection's reading side is shut, the client gets 408 and the connection is closed.
  ``request_timeout`` (from the headers to the answer) is the endpoint's (504).
* Every error answer, the stdlib's own (400 bad request line, 431, 501) included, is
  JSON: ``{"error": {"status", "message"}}``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from judgeforge.errors import UserError
from judgeforge.serve.config import HTTPProblem
from judgeforge.serve.schema import parse_json

ROUTES_POST = {"/grade/absolute": "absolute", "/grade/relative": "relative", "/reward": "reward"}
ROUTES_GET = ("/health", "/openapi.json", "/")


class _Watch:
    """Per-connection deadline; the server's watchdog shuts reading down when it passes."""

    __slots__ = ("sock", "deadline", "phase", "expired")

    def __init__(self, sock):
        self.sock, self.deadline, self.phase, self.expired = sock, None, "", False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    max_connections = 128

    def __init__(self, *args, **kwargs):
        self._conns: dict[int, _Watch] = {}
        self._conns_lock = threading.Lock()
        self._watch_stop = threading.Event()
        super().__init__(*args, **kwargs)

    def server_activate(self):
        super().server_activate()
        threading.Thread(target=self._watchdog, name="judge-http-watchdog", daemon=True).start()

    def process_request(self, request, client_address):
        with self._conns_lock:
            full = len(self._conns) >= self.max_connections
            if not full:
                self._conns[id(request)] = _Watch(request)
        if full:  # answer in the accept loop: a few bytes into the socket buffer, no thread
            msg = json.dumps({"error": {"status": 503, "message": f"too many open connections (limit "
                                        f"{self.max_connections}, --max-connections); retry later"}}).encode()
            try:
                request.settimeout(0.5)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Retry-After: 1\r\nConnection: close\r\nContent-Length: "
                                + str(len(msg)).encode() + b"\r\n\r\n" + msg)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.pop(id(request), None)
        super().shutdown_request(request)

    def watch(self, request) -> _Watch | None:
        return self._conns.get(id(request))

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    def _watchdog(self) -> None:
        while not self._watch_stop.wait(0.1):
            now = time.monotonic()
            with self._conns_lock:
                late = [w for w in self._conns.values() if w.deadline is not None and now > w.deadline]
            for w in late:
                w.expired, w.deadline = True, None
                try:
                    w.sock.shutdown(socket.SHUT_RD)  # a blocked read returns at once; we can still answer
                except OSError:
                    pass

    def server_close(self):
        self._watch_stop.set()
        super().server_close()


class _Server6(_Server):
    address_family = socket.AF_INET6


def bind(host: str, port: int, handler, max_connections: int = 128) -> ThreadingHTTPServer:
    """A listening server on (host, port); a port in use or out of range is one UserError line."""
    cls = _Server6 if ":" in host else _Server
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UserError(f"--port must be 0-65535 (0 = any free port), got {port!r}")
    try:
        httpd = cls((host, port), handler)
    except (OSError, OverflowError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise UserError(f"cannot listen on {host}:{port}: {reason}; pick another --port (0 = any free port) "
                        "or --host") from None
    httpd.max_connections = max_connections
    return httpd


def handler_class(server):
    """The request handler of a :class:`~judgeforge.serve.server.JudgeServer`."""
    cfg = server.config

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = max(cfg.header_timeout, cfg.body_timeout) + 5  # a fallback; the watchdog is the real limit
        server_version = "judgeforge"
        sys_version = ""

        def log_message(self, *args):  # quiet; errors are answered to the client
            pass

        # ------------------------------------------------------------ deadlines

        def _deadline(self, phase: str, seconds: float | None) -> None:
            w = self.server.watch(self.connection)
            if w is not None:
                w.phase, w.deadline = phase, (None if seconds is None else time.monotonic() + seconds)

        def _expired(self) -> bool:
            w = self.server.watch(self.connection)
            return w is not None and w.expired

        def handle_one_request(self):
            self._deadline("headers", cfg.header_timeout)
            self.started = None
            super().handle_one_request()

        def parse_request(self):
            ok = super().parse_request()
            self._deadline("", None)
            if ok and self._expired():  # the headers were cut off by the deadline
                self.send_error(408)
                return False
            self.started = time.monotonic()
            return ok

        def send_error(self, code, message=None, explain=None):
            # the stdlib's own errors (bad request line, headers too long, unknown method) as JSON
            if self._expired():
                code, message = 408, f"the request line and headers did not arrive within {cfg.header_timeout:g} s"
            self.close_connection = True
            self.request_version = "HTTP/1.1"  # a cut-off request line reads as HTTP/0.9: answer with a status line
            text = message or self.responses.get(code, ("error",))[0]
            self._problem(HTTPProblem(code, str(text)))

        # ------------------------------------------------------------ answers

        def _send(self, status: int, payload, headers: dict | None = None):
            data = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
            server.count(status)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True

        def _problem(self, p: HTTPProblem):
            if p.status in (408, 411):
                self.close_connection = True
            self._send(p.status, {"error": {"status": p.status, "message": p.message}}, p.headers)

        def _path(self) -> str:
            return self.path.split("?", 1)[0].rstrip("/") or "/"

        def do_GET(self):
            path = self._path()
            if path == "/health":
                self._send(200, server.health())
            elif path == "/openapi.json":
                self._send(200, server.openapi_bytes)
            elif path == "/":
                self._send(200, {"service": "judgeforge judge server", "model": server.model_name,
                                 "endpoints": ["GET /health", "GET /openapi.json", "POST /grade/absolute",
                                               "POST /grade/relative", "POST /reward"]})
            elif path in ROUTES_POST:
                self._problem(HTTPProblem(405, f"{path} takes POST with a JSON body", {"Allow": "POST"}))
            else:
                self._problem(HTTPProblem(404, f"no endpoint {path}; see GET /openapi.json"))

        def do_POST(self):
            server.enter()
            try:
                self._post()
            finally:
                server.leave()

        def _post(self):
            path = self._path()
            kind = ROUTES_POST.get(path)
            if kind is None:
                self._drain(self._length(strict=False))
                if path in ROUTES_GET:
                    self._problem(HTTPProblem(405, f"{path} takes GET", {"Allow": "GET"}))
                else:
                    self._problem(HTTPProblem(404, f"no endpoint {path}; see GET /openapi.json"))
                return
            try:
                body = parse_json(self._read_body())
                deadline = (self.started or time.monotonic()) + cfg.request_timeout
                answer = server.handle_post(kind, body, deadline=deadline)
            except HTTPProblem as p:
                self._problem(p)
                return
            except Exception as e:  # a bug: answer 500 in one line, keep serving
                self._problem(HTTPProblem(500, f"internal error: {type(e).__name__}: {e}"))
                return
            self._send(200, answer)

        def handle_expect_100(self):
            # curl asks before sending a large body: refuse an oversized one before it is sent
            length = self._length(strict=False)
            if length > cfg.max_body_bytes:
                self.close_connection = True
                self._problem(self._too_large(length))
                return False
            return super().handle_expect_100()

        # ------------------------------------------------------------ reading

        def _too_large(self, length: int) -> HTTPProblem:
            return HTTPProblem(413, f"the body is {length} bytes, the limit is {cfg.max_body_bytes} "
                                    "(--max-body-bytes); send fewer or shorter items per request")

        def _length(self, strict: bool = True) -> int:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                self.close_connection = True
                if strict:
                    raise HTTPProblem(411, "chunked bodies are not accepted; send a Content-Length")
                return 0
            raw = self.headers.get("Content-Length")
            if raw is None:
                if strict:
                    self.close_connection = True
                    raise HTTPProblem(411, "missing Content-Length header")
                return 0
            try:
                length = int(raw) if len(raw) < 20 else -1
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                if strict:
                    raise HTTPProblem(400, f"bad Content-Length '{raw[:40]}'")
                return 0
            return length

        def _drain(self, length: int, limit: int = 64 << 20) -> None:
            """Read and drop a body so the client sees our answer (not a reset) on a rejected request."""
            if length <= 0:
                return
            if length > limit:
                self.close_connection = True
                return
            self._deadline("body", min(5.0, cfg.body_timeout))
            try:
                left = length
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 16))
                    if not chunk:
                        self.close_connection = True
                        break
                    left -= len(chunk)
            except OSError:
                self.close_connection = True
            finally:
                self._deadline("", None)

        def _read_body(self) -> bytes:
            length = self._length()
            if length > cfg.max_body_bytes:
                self._drain(length)
                raise self._too_large(length)
            self._deadline("body", cfg.body_timeout)
            try:
                data = self.rfile.read(length)
            except OSError:
                data = b""
            finally:
                self._deadline("", None)
            if len(data) < length:
                self.close_connection = True
                if self._expired():
                    raise HTTPProblem(408, f"the body did not arrive within {cfg.body_timeout:g} s "
                                           f"(--body-timeout); {len(data)} of {length} bytes came")
                raise HTTPProblem(400, "the body ended before Content-Length bytes arrived")
            return data

    return Handler
