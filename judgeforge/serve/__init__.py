"""``judgeforge serve``: a judge behind HTTP, for evaluation clients and RLHF reward calls.

::

    judgeforge serve --judge path/to/judge            # http://127.0.0.1:8765

Endpoints (JSON in, JSON out; one request carries a list of items):

``GET  /health``          status, model, queue length and batching counters
``GET  /openapi.json``    the OpenAPI 3.1 description of every endpoint
``POST /grade/absolute``  items ``{instruction, response, reference_answer?, rubric?, id?}``
                          -> ``{feedback, score (1-5 or null), error, attempts, id}``
``POST /grade/relative``  items ``{instruction, response_a, response_b, reference_answer?, rubric?, id?}``
                          -> ``{feedback, winner ("A"/"B" or null), error, attempts, id}``
``POST /reward``          items ``{prompt, response, reference_answer?, rubric?, id?}`` + optional
                          ``normalize`` / ``scale`` / ``shift`` / ``failure_reward``
                          -> ``rewards`` (one float per item) and per-item ``results``

``rubric`` (top level, or per item): a preset name, ``{criteria, score1_description ...
score5_description}``, or a rendered rubric string; the server's ``--rubric`` (a preset or a
rubric YAML file) when absent.
The reward mapping is :mod:`judgeforge.serve.reward`'s: ``(score - 1) / 4`` or a z-score over
the request, then ``scale * x + shift``.

Batching: HTTP handler threads validate and render their items, then queue them; one
worker thread takes up to ``--max-batch`` queued items (from any number of clients),
runs them through the judge in one backend call, and hands each client its own results.

Limits: a body over ``--max-body-bytes`` -> 413; more than ``--max-items`` items,
missing or mistyped fields -> 422; a body that is not JSON -> 400; a full queue -> 503.
Every error is ``{"error": {"status", "message"}}`` and the server keeps serving.
SIGINT / SIGTERM stop it gracefully: no new connections, queued work finishes (up to
``--drain-timeout`` seconds), then the process exits 0.  It binds to 127.0.0.1 unless
``--host`` says otherwise; it has no authentication, so do not expose it publicly.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from judgeforge.errors import UserError, did_you_mean

DEFAULT_PORT = 8765


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_batch: int = 16  # items per backend call
    max_items: int = 64  # items per HTTP request
    max_body_bytes: int = 1 << 20
    max_queue: int = 4096  # items waiting; more -> 503
    batch_wait_ms: float = 5.0  # how long the worker waits for more items when it has fewer than max_batch
    request_timeout: float = 600.0  # seconds a request may wait for its results -> 504
    drain_timeout: float = 30.0  # seconds queued work may take to finish at shutdown
    default_rubric: object = "helpfulness"

    def validate(self) -> None:
        for name in ("max_batch", "max_items", "max_body_bytes", "max_queue"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1")
        if self.batch_wait_ms < 0:
            raise UserError("--batch-wait-ms must be >= 0")
        if self.max_queue < self.max_items:
            raise UserError("--max-queue must be at least --max-items (one full request must fit)")


class HTTPProblem(Exception):
    """An error answered to the client: status code + one clear line."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


# --------------------------------------------------------------------------- the batching queue


class Job:
    """The items of one HTTP request, waiting for the worker."""

    def __init__(self, requests: list):
        self.requests = requests
        self.results: list = [None] * len(requests)
        self.remaining = len(requests)
        self.error: HTTPProblem | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()

    def set(self, i: int, sample) -> None:
        with self._lock:
            self.results[i] = sample
            self.remaining -= 1
            if self.remaining == 0:
                self.done.set()

    def fail(self, problem: HTTPProblem) -> None:
        with self._lock:
            if self.error is None:
                self.error = problem
            self.done.set()


class Batcher:
    """One worker thread that drains queued items into batches of at most ``max_batch``.

    ``run(requests) -> samples`` is called with items of any number of jobs; results go
    back to each job in order.  Counters (batches, items, largest batch, a histogram of
    batch sizes) are exposed for /health and the tests.
    """

    def __init__(self, run, *, max_batch: int = 16, max_queue: int = 4096, wait_s: float = 0.005):
        self.run = run
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.wait_s = wait_s
        self._pending: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._closed = False
        self._abort = False
        self.batches = 0
        self.items = 0
        self.failed_batches = 0
        self.max_batch_seen = 0
        self.sizes: collections.Counter = collections.Counter()
        self.busy = False
        self._thread = threading.Thread(target=self._loop, name="judge-batcher", daemon=True)

    def start(self) -> Batcher:
        self._thread.start()
        return self

    @property
    def queued(self) -> int:
        return len(self._pending)

    def submit(self, requests: list) -> Job:
        job = Job(requests)
        if not requests:
            job.done.set()
            return job
        with self._cv:
            if self._closed:
                raise HTTPProblem(503, "the server is shutting down; retry against a running server")
            if len(self._pending) + len(requests) > self.max_queue:
                raise HTTPProblem(503, f"the server is busy ({len(self._pending)} items queued, limit "
                                       f"{self.max_queue}); retry later", {"Retry-After": "1"})
            self._pending.extend((job, i) for i in range(len(requests)))
            self._cv.notify()
        return job

    def _take(self) -> list | None:
        with self._cv:
            while not self._pending:
                if self._closed:
                    return None
                self._cv.wait()
            if self._abort:
                return None
            if len(self._pending) < self.max_batch and self.wait_s > 0 and not self._closed:
                deadline = time.monotonic() + self.wait_s
                while len(self._pending) < self.max_batch and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
            n = min(self.max_batch, len(self._pending))
            taken = [self._pending.popleft() for _ in range(n)]
            self.busy = True
            return taken

    def _loop(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            # items of a job that already failed (e.g. its other half hit an error) are skipped
            live = [(job, i) for job, i in taken if job.error is None]
            try:
                if live:
                    samples = self.run([job.requests[i] for job, i in live])
                    if len(samples) != len(live):
                        raise RuntimeError(f"the judge returned {len(samples)} results for {len(live)} items")
            except Exception as e:  # the judge failed: these clients get a 500, the server goes on
                self.failed_batches += 1
                problem = HTTPProblem(500, f"the judge failed on this batch: {type(e).__name__}: {e}")
                for job, _ in live:
                    job.fail(problem)
            else:
                for (job, i), sample in zip(live, samples):
                    job.set(i, sample)
            with self._cv:
                self.batches += 1
                self.items += len(taken)
                self.max_batch_seen = max(self.max_batch_seen, len(taken))
                self.sizes[len(taken)] += 1
                self.busy = False
                self._cv.notify_all()

    def close(self, drain_timeout: float = 30.0) -> int:
        """Refuse new work, finish queued work for up to ``drain_timeout`` s; returns items abandoned."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._thread.is_alive():
            self._thread.join(max(0.0, drain_timeout))
        abandoned = 0
        with self._cv:
            self._abort = True
            while self._pending:
                job, _ = self._pending.popleft()
                job.fail(HTTPProblem(503, "the server shut down before this request was graded"))
                abandoned += 1
            self._cv.notify_all()
        return abandoned

    def stats(self) -> dict:
        return {
            "queued": self.queued,
            "batches": self.batches,
            "items": self.items,
            "failed_batches": self.failed_batches,
            "max_batch_seen": self.max_batch_seen,
            "batch_sizes": {str(k): v for k, v in sorted(self.sizes.items())},
        }


# --------------------------------------------------------------------------- request validation

ENDPOINT_FIELDS = {
    "absolute": {"required": ("instruction", "response"), "optional": ("reference_answer", "rubric", "id")},
    "relative": {"required": ("instruction", "response_a", "response_b"),
                 "optional": ("reference_answer", "rubric", "id")},
    "reward": {"required": ("prompt", "response"), "optional": ("reference_answer", "rubric", "id")},
}
TOP_FIELDS = {
    "absolute": ("items", "rubric"),
    "relative": ("items", "rubric"),
    "reward": ("items", "rubric", "normalize", "scale", "shift", "failure_reward"),
}


def _type_name(v) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(v), type(v).__name__)


def validate_body(kind: str, body, max_items: int) -> dict:
    """Check a decoded JSON body for an endpoint; raises HTTPProblem(422) with one clear line."""
    spec = ENDPOINT_FIELDS[kind]
    if not isinstance(body, dict):
        raise HTTPProblem(422, f"the body must be a JSON object with an 'items' list, not {_type_name(body)}")
    for key in body:
        if key not in TOP_FIELDS[kind]:
            raise HTTPProblem(422, f"unknown field '{key}'{did_you_mean(key, TOP_FIELDS[kind])}; "
                                   f"this endpoint takes: {', '.join(TOP_FIELDS[kind])}")
    if "items" not in body:
        raise HTTPProblem(422, "missing field 'items': send {\"items\": [{...}, ...]}")
    items = body["items"]
    if not isinstance(items, list):
        raise HTTPProblem(422, f"'items' must be a list, not {_type_name(items)}")
    if not items:
        raise HTTPProblem(422, "'items' is empty; send at least one item")
    if len(items) > max_items:
        raise HTTPProblem(422, f"too many items: {len(items)} in one request, the limit is {max_items} "
                               "(--max-items); split the request")
    allowed = spec["required"] + spec["optional"]
    for n, item in enumerate(items):
        where = f"items[{n}]"
        if not isinstance(item, dict):
            raise HTTPProblem(422, f"{where} must be an object, not {_type_name(item)}")
        for key in item:
            if key not in allowed:
                raise HTTPProblem(422, f"{where}: unknown field '{key}'{did_you_mean(key, allowed)}; "
                                       f"items take: {', '.join(allowed)}")
        for key in spec["required"]:
            if key not in item:
                raise HTTPProblem(422, f"{where}: missing field '{key}' (required: {', '.join(spec['required'])})")
            v = item[key]
            if kind == "reward" and key in ("prompt", "response") and isinstance(v, list):
                _check_messages(v, f"{where}.{key}")
            elif not isinstance(v, str):
                raise HTTPProblem(422, f"{where}.{key} must be a string, not {_type_name(v)}")
        ref = item.get("reference_answer")
        if ref is not None and not isinstance(ref, str):
            raise HTTPProblem(422, f"{where}.reference_answer must be a string or null, not {_type_name(ref)}")
        item_id = item.get("id")
        if isinstance(item_id, bool) or not (item_id is None or isinstance(item_id, (str, int))):
            raise HTTPProblem(422, f"{where}.id must be a string, an integer or null, not {_type_name(item['id'])}")
    return body


def _check_messages(msgs: list, where: str) -> None:
    for k, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or "content" not in m:
            raise HTTPProblem(422, f"{where}[{k}] must be a chat message {{\"role\": ..., \"content\": ...}}")


# --------------------------------------------------------------------------- the server


class JudgeServer:
    """The HTTP server around a :class:`~judgeforge.judge.Judge`; usable in-process (tests, notebooks).

    ``JudgeServer(judge, ServerConfig(port=0)).start()`` serves on a background thread;
    ``.url`` is where; ``.stop()`` shuts it down gracefully.  ``judgeforge serve`` runs
    :meth:`serve_forever` on the main thread instead.
    """

    def __init__(self, judge, config: ServerConfig | None = None, *, httpd: ThreadingHTTPServer | None = None):
        self.judge = judge
        self.config = config or ServerConfig()
        self.config.validate()
        from judgeforge.format.prompts import ABSOLUTE
        from judgeforge.judge import resolve_rubric

        rendered = resolve_rubric(self.config.default_rubric, ABSOLUTE, where="the default rubric")
        self.default_criteria = rendered.split("\n", 1)[0]
        self.model_name = judge.describe()
        self.batcher = Batcher(judge.grade, max_batch=self.config.max_batch, max_queue=self.config.max_queue,
                               wait_s=self.config.batch_wait_ms / 1000.0)
        self.started = time.time()
        self.requests_served = collections.Counter()  # status code -> count
        self._count_lock = threading.Lock()
        self._active = 0
        self._active_lock = threading.Lock()
        if httpd is None:
            httpd = _bind(self.config.host, self.config.port, self._handler_class())
        else:  # a socket bound before the model was loaded (judgeforge serve)
            httpd.RequestHandlerClass = self._handler_class()
        self._httpd = httpd
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._openapi = json.dumps(openapi_document(self.config)).encode("utf-8")

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    def start(self) -> JudgeServer:
        """Serve on a background thread (returns at once)."""
        self.batcher.start()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="judge-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until :meth:`shutdown` is called from another thread."""
        if not self.batcher._thread.is_alive():
            self.batcher.start()
        self._httpd.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        """Stop accepting connections (call from another thread than serve_forever's)."""
        self._httpd.shutdown()

    def stop(self, drain_timeout: float | None = None) -> int:
        """Graceful stop: no new connections, queued work finishes, in-flight answers are sent."""
        if self._stopped:
            return 0
        self._stopped = True
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        # close the listening socket now: new clients are refused at once instead of waiting in the
        # backlog; connections already open keep their own sockets and get their answers
        self._httpd.server_close()
        drain = self.config.drain_timeout if drain_timeout is None else drain_timeout
        abandoned = self.batcher.close(drain)
        deadline = time.monotonic() + 5.0
        while self._active and time.monotonic() < deadline:  # let handler threads write their answers
            time.sleep(0.01)
        return abandoned

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def health(self) -> dict:
        c = self.config
        return {
            "status": "ok",
            "model": self.model_name,
            "default_rubric": self.default_criteria,
            "uptime_s": round(time.time() - self.started, 3),
            "limits": {"max_batch": c.max_batch, "max_items": c.max_items, "max_body_bytes": c.max_body_bytes,
                       "max_queue": c.max_queue},
            "batching": self.batcher.stats(),
            "responses": {str(k): v for k, v in sorted(self.requests_served.items())},
        }

    # ------------------------------------------------------------------ endpoint logic

    def _rubric(self, body: dict, item: dict):
        return item.get("rubric", body.get("rubric", self.config.default_rubric))

    def _render(self, kind: str, body: dict) -> list:
        """Requests for the items; rubric/prompt errors become 422 naming the item."""
        from judgeforge.judge import is_rubric_path
        from judgeforge.serve.reward import conversation_to_text

        out = []
        for n, item in enumerate(body["items"]):
            rubric = self._rubric(body, item)
            if isinstance(rubric, str) and is_rubric_path(rubric.strip()):
                where = f"items[{n}].rubric" if "rubric" in item else "rubric"
                raise HTTPProblem(422, f"{where}: the server does not read rubric files named by clients; send "
                                       "the rubric itself ({criteria, score1_description ...}) or start the "
                                       "server with --rubric FILE")
            try:
                if kind == "absolute":
                    reqs = self.judge.absolute_requests([item["instruction"]], [item["response"]], rubric,
                                                        [item.get("reference_answer")])
                elif kind == "relative":
                    reqs = self.judge.relative_requests([item["instruction"]], [item["response_a"]],
                                                        [item["response_b"]], rubric, [item.get("reference_answer")])
                else:
                    prompt = conversation_to_text(item["prompt"], role="prompt")
                    response = conversation_to_text(item["response"], role="completion")
                    reqs = self.judge.absolute_requests([prompt], [response], rubric, [item.get("reference_answer")])
            except UserError as e:
                where = f"items[{n}]" if "rubric" in item else "rubric"
                msg = str(e)
                if msg.startswith("rubric: "):
                    msg = msg[len("rubric: "):]
                raise HTTPProblem(422, f"{where}: {msg}") from None
            out.extend(reqs)
        return out

    def handle_post(self, kind: str, body) -> dict:
        validate_body(kind, body, self.config.max_items)
        reward_settings = {}
        if kind == "reward":
            from judgeforge.serve.reward import check_reward_settings

            reward_settings = dict(normalize=body.get("normalize", "none"), scale=body.get("scale", 1.0),
                                   shift=body.get("shift", 0.0), failure_reward=body.get("failure_reward", 0.0))
            try:
                check_reward_settings(**reward_settings, where="body")
            except UserError as e:
                raise HTTPProblem(422, str(e)) from None
        requests = self._render(kind, body)
        job = self.batcher.submit(requests)
        if not job.done.wait(self.config.request_timeout):
            job.fail(HTTPProblem(504, f"no answer within {self.config.request_timeout:g} s; the judge is "
                                      "overloaded or stuck"))
        if job.error is not None:
            raise job.error
        items = body["items"]
        results = []
        for item, s in zip(items, job.results):
            r = {"id": item.get("id"), "feedback": s.feedback if s.ok else None, "error": s.error,
                 "attempts": s.attempts}
            if kind == "relative":
                r["winner"] = s.result if s.ok else None
            else:
                r["score"] = s.result if s.ok else None
            results.append(r)
        answer = {"model": self.model_name, "results": results}
        if kind == "reward":
            from judgeforge.serve.reward import rewards_from_scores

            rewards = rewards_from_scores([r["score"] for r in results], **reward_settings)
            for r, x in zip(results, rewards):
                r["reward"] = x
            answer = {"model": self.model_name, "rewards": rewards, "results": results}
        return answer

    # ------------------------------------------------------------------ HTTP plumbing

    def _handler_class(self):
        server = self
        routes_post = {"/grade/absolute": "absolute", "/grade/relative": "relative", "/reward": "reward"}
        routes_get = ("/health", "/openapi.json", "/")

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 300  # seconds an idle keep-alive connection (or a stalled upload) may hold a thread
            server_version = "judgeforge"
            sys_version = ""

            def log_message(self, *args):  # quiet; errors are answered to the client
                pass

            def _send(self, status: int, payload, headers: dict | None = None):
                data = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
                with server._count_lock:
                    server.requests_served[status] += 1
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
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _problem(self, p: HTTPProblem):
                self._send(p.status, {"error": {"status": p.status, "message": p.message}}, p.headers)

            def _path(self) -> str:
                path = self.path.split("?", 1)[0]
                return path.rstrip("/") or "/"

            def do_GET(self):
                path = self._path()
                if path == "/health":
                    self._send(200, server.health())
                elif path == "/openapi.json":
                    self._send(200, server._openapi)
                elif path == "/":
                    self._send(200, {"service": "judgeforge judge server", "model": server.model_name,
                                     "endpoints": ["GET /health", "GET /openapi.json", "POST /grade/absolute",
                                                   "POST /grade/relative", "POST /reward"]})
                elif path in routes_post:
                    self._problem(HTTPProblem(405, f"{path} takes POST with a JSON body", {"Allow": "POST"}))
                else:
                    self._problem(HTTPProblem(404, f"no endpoint {path}; see GET /openapi.json"))

            def do_POST(self):
                with server._active_lock:
                    server._active += 1
                try:
                    self._post()
                finally:
                    with server._active_lock:
                        server._active -= 1

            def _post(self):
                path = self._path()
                kind = routes_post.get(path)
                if kind is None:
                    self._drain(int(self.headers.get("Content-Length") or 0))
                    if path in routes_get:
                        self._problem(HTTPProblem(405, f"{path} takes GET", {"Allow": "GET"}))
                    else:
                        self._problem(HTTPProblem(404, f"no endpoint {path}; see GET /openapi.json"))
                    return
                try:
                    body = self._read_json()
                    answer = server.handle_post(kind, body)
                except HTTPProblem as p:
                    self._problem(p)
                    return
                except Exception as e:  # a bug: answer 500, keep serving
                    self._problem(HTTPProblem(500, f"internal error: {type(e).__name__}: {e}"))
                    return
                self._send(200, answer)

            def handle_expect_100(self):
                # curl asks before sending a large body: refuse an oversized one before it is sent
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = 0
                limit = server.config.max_body_bytes
                if length > limit:
                    self.close_connection = True
                    self._problem(HTTPProblem(413, f"the body is {length} bytes, the limit is {limit} "
                                                   "(--max-body-bytes); send fewer or shorter items per request"))
                    return False
                return super().handle_expect_100()

            def _drain(self, length: int, limit: int = 64 << 20) -> None:
                """Read and drop a body so the client sees our answer (not a reset) on a rejected request."""
                if length <= 0:
                    return
                if length > limit:
                    self.close_connection = True
                    return
                self.connection.settimeout(5.0)
                try:
                    left = length
                    while left > 0:
                        chunk = self.rfile.read(min(left, 1 << 16))
                        if not chunk:
                            break
                        left -= len(chunk)
                except OSError:
                    self.close_connection = True

            def _read_json(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    self.close_connection = True
                    raise HTTPProblem(411, "chunked bodies are not accepted; send a Content-Length")
                raw_len = self.headers.get("Content-Length")
                if raw_len is None:
                    self.close_connection = True
                    raise HTTPProblem(411, "missing Content-Length header")
                try:
                    length = int(raw_len)
                    if length < 0:
                        raise ValueError
                except ValueError:
                    self.close_connection = True
                    raise HTTPProblem(400, f"bad Content-Length '{raw_len}'") from None
                limit = server.config.max_body_bytes
                if length > limit:
                    self._drain(length)
                    raise HTTPProblem(413, f"the body is {length} bytes, the limit is {limit} (--max-body-bytes); "
                                           "send fewer or shorter items per request")
                data = self.rfile.read(length)
                if len(data) < length:
                    self.close_connection = True
                    raise HTTPProblem(400, "the body ended before Content-Length bytes arrived")
                try:
                    return json.loads(data.decode("utf-8"))
                except UnicodeDecodeError:
                    raise HTTPProblem(400, "the body is not UTF-8 text") from None
                except json.JSONDecodeError as e:
                    raise HTTPProblem(400, f"the body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") \
                        from None

        return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class _Server6(_Server):
    address_family = socket.AF_INET6


def _bind(host: str, port: int, handler) -> ThreadingHTTPServer:
    cls = _Server6 if ":" in host else _Server
    try:
        return cls((host, port), handler)
    except OSError as e:
        reason = e.strerror or str(e)
        raise UserError(f"cannot listen on {host}:{port}: {reason}; pick another --port (0 = any free port) "
                        "or --host") from None


# --------------------------------------------------------------------------- OpenAPI


def openapi_document(config: ServerConfig | None = None) -> dict:
    """The OpenAPI 3.1 description of the server (its schemas are JSON Schema 2020-12)."""
    from judgeforge import __version__
    from judgeforge.format.prompts import PRESET_RUBRICS

    c = config or ServerConfig()
    ref = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731
    nullable_str = {"type": ["string", "null"]}
    item_id = {"type": ["string", "integer", "null"], "description": "echoed back in the result"}
    messages = {"type": "array", "items": {"type": "object", "required": ["role", "content"],
                                           "properties": {"role": {"type": "string"}, "content": {}}}}

    def item(required: dict, extra: dict | None = None) -> dict:
        props = dict(required)
        props.update({"reference_answer": {**nullable_str, "description": "a reference answer (score 5)"},
                      "rubric": {**ref("Rubric"), "description": "overrides the request's rubric for this item"},
                      "id": item_id})
        props.update(extra or {})
        return {"type": "object", "required": list(required), "properties": props, "additionalProperties": False}

    def items_of(name: str) -> dict:
        return {"type": "array", "minItems": 1, "maxItems": c.max_items, "items": ref(name)}

    def request(item_name: str, extra: dict | None = None) -> dict:
        props = {"rubric": ref("Rubric"), "items": items_of(item_name)}
        props.update(extra or {})
        return {"type": "object", "required": ["items"], "properties": props, "additionalProperties": False}

    result_common = {"id": item_id,
                     "feedback": {**nullable_str, "description": "null when the grade failed"},
                     "error": {**nullable_str, "description": "why the output never parsed (null on success)"},
                     "attempts": {"type": "integer", "minimum": 1, "description": "generations spent"}}
    score = {"type": ["integer", "null"], "minimum": 1, "maximum": 5}

    def result(extra: dict) -> dict:
        props = {**result_common, **extra}
        return {"type": "object", "required": list(props), "properties": props}

    def response(result_name: str, extra: dict | None = None) -> dict:
        props = {"model": {"type": "string"}, "results": {"type": "array", "items": ref(result_name)}}
        props.update(extra or {})
        return {"type": "object", "required": list(props), "properties": props}

    schemas = {
        "Rubric": {
            "description": ("A preset name (" + ", ".join(PRESET_RUBRICS) + "), an object with criteria and five "
                            "score descriptions, or a rendered rubric string ('[criteria]\\nScore 1: ...'). "
                            "Relative grading uses the criteria only. Default: the server's --rubric."),
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "object", "required": ["criteria"], "additionalProperties": False,
                 "properties": {"criteria": {"type": "string"},
                                **{f"score{i}_description": {"type": "string"} for i in range(1, 6)}}},
            ],
        },
        "AbsoluteItem": item({"instruction": {"type": "string"}, "response": {"type": "string"}}),
        "RelativeItem": item({"instruction": {"type": "string"}, "response_a": {"type": "string"},
                              "response_b": {"type": "string"}}),
        "RewardItem": item({"prompt": {"oneOf": [{"type": "string"}, messages]},
                            "response": {"oneOf": [{"type": "string"}, messages]}}),
        "AbsoluteRequest": request("AbsoluteItem"),
        "RelativeRequest": request("RelativeItem"),
        "RewardRequest": request("RewardItem", {
            "normalize": {"type": "string", "enum": ["none", "zscore"], "default": "none",
                          "description": "none: (score-1)/4; zscore: (score-mean)/std over this request"},
            "scale": {"type": "number", "default": 1.0, "description": "reward = scale * base + shift"},
            "shift": {"type": "number", "default": 0.0},
            "failure_reward": {"type": ["number", "null"], "default": 0.0,
                               "description": "the reward of an item whose grade failed"},
        }),
        "AbsoluteResult": result({"score": score}),
        "RelativeResult": result({"winner": {"type": ["string", "null"], "enum": ["A", "B", None]}}),
        "RewardResult": result({"score": score, "reward": {"type": ["number", "null"]}}),
        "AbsoluteResponse": response("AbsoluteResult"),
        "RelativeResponse": response("RelativeResult"),
        "RewardResponse": response("RewardResult", {"rewards": {"type": "array",
                                                                "items": {"type": ["number", "null"]}}}),
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["status", "message"],
            "properties": {"status": {"type": "integer"}, "message": {"type": "string"}}}}},
        "Health": {"type": "object", "required": ["status", "model", "limits", "batching"], "properties": {
            "status": {"type": "string", "enum": ["ok"]}, "model": {"type": "string"},
            "default_rubric": {"type": "string", "description": "the criteria line of the server's --rubric"},
            "uptime_s": {"type": "number"}, "limits": {"type": "object"}, "batching": {"type": "object"},
            "responses": {"type": "object"}}},
    }

    def error(desc: str) -> dict:
        return {"description": desc, "content": {"application/json": {"schema": ref("Error")}}}

    post_errors = {
        "400": error("the body is not valid JSON"),
        "413": error(f"the body is larger than {c.max_body_bytes} bytes"),
        "422": error(f"a missing or mistyped field, an unknown rubric, or more than {c.max_items} items"),
        "500": error("the judge failed on the batch"),
        "503": error("the queue is full or the server is shutting down"),
        "504": error("no answer within the request timeout"),
    }

    def post(summary: str, req: str, resp: str, op: str) -> dict:
        return {"post": {
            "operationId": op, "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref(req)}}},
            "responses": {"200": {"description": "one result per item, in order",
                                  "content": {"application/json": {"schema": ref(resp)}}}, **post_errors},
        }}

    return {
        "openapi": "3.1.0",
        "info": {"title": "judgeforge judge server", "version": __version__,
                 "description": "Prometheus-style LLM judge: absolute (1-5) and relative (A/B) grading with "
                                "feedback, and rewards for RLHF. Requests from concurrent clients are batched."},
        "paths": {
            "/health": {"get": {"operationId": "health", "summary": "liveness, model and batching counters",
                                "responses": {"200": {"description": "the server is up",
                                                      "content": {"application/json": {"schema": ref("Health")}}}}}},
            "/openapi.json": {"get": {"operationId": "openapi", "summary": "this document",
                                      "responses": {"200": {"description": "the OpenAPI document",
                                                            "content": {"application/json": {"schema": {
                                                                "type": "object"}}}}}}},
            "/grade/absolute": post("grade responses on a 1-5 rubric, with feedback", "AbsoluteRequest",
                                    "AbsoluteResponse", "gradeAbsolute"),
            "/grade/relative": post("choose the better of two responses (A or B), with feedback",
                                    "RelativeRequest", "RelativeResponse", "gradeRelative"),
            "/reward": post("one reward per (prompt, response): the absolute score mapped to a float",
                            "RewardRequest", "RewardResponse", "reward"),
        },
        "components": {"schemas": schemas},
    }


# --------------------------------------------------------------------------- the command


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="judgeforge serve",
        description="Serve a judge over HTTP: POST /grade/absolute, /grade/relative, /reward; "
                    "GET /health, /openapi.json. Binds to 127.0.0.1 unless --host says otherwise.",
    )
    p.add_argument("--judge", required=True, metavar="MODEL",
                   help="the judge: a model folder or hub id (or the model name an openai endpoint knows)")
    p.add_argument("--backend", default="hf", help="hf (default), vllm or openai")
    p.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a backend option (repeatable), e.g. engine=fast, dtype=bfloat16, base_url=...")
    p.add_argument("--chat_format", "--chat-format", choices=("mistral", "model", "raw"), default=None,
                   help="hf backend: how prompts are wrapped (default: the judge folder's, else from the model)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free port)")
    p.add_argument("--rubric", default="helpfulness",
                   help="rubric for requests that name none: a preset (helpfulness, harmlessness, honesty, "
                        "factual_validity, reasoning) or a rubric YAML file (docs/domain-judges.md)")
    p.add_argument("--max-batch", type=int, default=16, help="items per judge call, across clients (default 16)")
    p.add_argument("--max-items", type=int, default=64, help="items per request; more -> 422 (default 64)")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="body size limit; more -> 413 (default 1 MiB)")
    p.add_argument("--max-queue", type=int, default=4096, help="items waiting; more -> 503 (default 4096)")
    p.add_argument("--batch-wait-ms", type=float, default=5.0,
                   help="how long the worker waits to fill a batch (default 5 ms)")
    p.add_argument("--request-timeout", type=float, default=600.0, help="seconds before a request gets 504")
    p.add_argument("--drain-timeout", type=float, default=30.0,
                   help="seconds queued work may take to finish when the server is stopped")
    p.add_argument("--retries", type=int, default=2,
                   help="regenerate an unparseable output this many times (default 2; the paper used 10)")
    p.add_argument("--strict", action="store_true", help="the paper's strict parser instead of the tolerant one")
    g = p.add_argument_group("decoding (defaults: the paper's)")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--top-p", type=float, default=0.9)
    g.add_argument("--max-new-tokens", type=int, default=1024)
    g.add_argument("--repetition-penalty", type=float, default=1.03)
    g.add_argument("--greedy", action="store_true", help="greedy decoding (temperature 0)")
    g.add_argument("--seed", type=int, default=None)
    return p


def _backend_options(pairs: list[str]) -> dict:
    import yaml

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--backend-option '{pair}' must look like KEY=VALUE (e.g. engine=fast)")
        key, raw = pair.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from judgeforge.format.rubric_file import load_rubric

    config = ServerConfig(host=args.host, port=args.port, max_batch=args.max_batch, max_items=args.max_items,
                          max_body_bytes=args.max_body_bytes, max_queue=args.max_queue,
                          batch_wait_ms=args.batch_wait_ms, request_timeout=args.request_timeout,
                          drain_timeout=args.drain_timeout, default_rubric=load_rubric(args.rubric).rubric)
    config.validate()
    if args.retries < 0:
        raise UserError("--retries must be >= 0")
    if args.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be >= 1")
    if not (math.isfinite(args.temperature) and args.temperature >= 0) or not 0 < args.top_p <= 1:
        raise UserError("--temperature must be >= 0 and --top-p in (0, 1]")

    from judgeforge.backends import Sampling
    from judgeforge.judge import Judge

    sampling = Sampling.greedy(args.max_new_tokens) if args.greedy or args.temperature == 0 else Sampling(
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
        repetition_penalty=args.repetition_penalty)
    sampling = sampling.with_seed(args.seed)
    options = _backend_options(args.backend_option)
    if args.backend == "hf":
        options.setdefault("batch_size", args.max_batch)
        options.update({"chat_format": args.chat_format} if args.chat_format else {})

    # Take the port first (fails at once if it is in use), then load the model; connections
    # that arrive meanwhile wait in the listen backlog.
    httpd = _bind(args.host, args.port, BaseHTTPRequestHandler)
    print(f"judgeforge serve: loading {args.judge} ({args.backend} backend) ...", file=sys.stderr, flush=True)
    try:
        judge = Judge(args.judge, backend=args.backend, sampling=sampling, retries=args.retries, strict=args.strict,
                      **options)
    except BaseException:
        httpd.server_close()
        raise
    try:
        server = JudgeServer(judge, config, httpd=httpd)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"judgeforge serve: warning: listening on {args.host}, which other machines can reach; the "
                  "server has no authentication", file=sys.stderr, flush=True)
        stopping = threading.Event()

        def on_signal(signum, frame):
            if stopping.is_set():  # a second Ctrl-C: stop waiting for queued work
                raise KeyboardInterrupt
            stopping.set()
            print(f"judgeforge serve: {signal.Signals(signum).name} received, stopping "
                  "(finishing queued work; press Ctrl-C again to quit at once)", file=sys.stderr, flush=True)
            threading.Thread(target=server.shutdown, daemon=True).start()

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            print(f"judgeforge serve: {server.url}  (model {server.model_name}; POST /grade/absolute, "
                  "/grade/relative, /reward; GET /health, /openapi.json)", flush=True)
            server.serve_forever()
            abandoned = server.stop()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        stats = server.batcher.stats()
        print(f"judgeforge serve: stopped after {stats['items']} items in {stats['batches']} batches"
              + (f"; {abandoned} queued items were not graded" if abandoned else ""), file=sys.stderr, flush=True)
    finally:
        judge.close()
    return 0


__all__ = ["Batcher", "JudgeServer", "ServerConfig", "main", "openapi_document", "validate_body"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
