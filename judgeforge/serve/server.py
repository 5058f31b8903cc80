"""The judge behind HTTP: endpoint logic (rubrics, prompt budget, results) and the server's lifetime."""

from __future__ import annotations

import collections
import json
import math
import threading
import time
from http.server import ThreadingHTTPServer

from judgeforge.errors import UserError
from judgeforge.serve.batching import Batcher, BatchError
from judgeforge.serve.config import HTTPProblem, ServerConfig
from judgeforge.serve.handler import bind, handler_class
from judgeforge.serve.schema import ITEM_FIELDS, openapi_document, schemas, validate

_BATCH_STATUS = {"busy": 503, "closed": 503, "abandoned": 503, "failed": 500, "timeout": 504, "refused": 422}


def client_rubric(rubric, where: str):
    """A rubric a client sent: a preset name, a rendered rubric string or an object -- never a file.

    The check runs before anything could touch the disk, and its answer is the same whether
    or not such a file exists, so a client learns nothing about the server's files.
    """
    from judgeforge.judge import is_rubric_path

    if isinstance(rubric, str):
        key = rubric.strip()
        if is_rubric_path(key):
            raise HTTPProblem(422, f"{where}: the server does not read rubric files named by clients; send "
                                   "a preset name or the rubric itself ({criteria, score1_description ...}), "
                                   "or start the server with --rubric FILE")
        return rubric
    if isinstance(rubric, dict):
        return rubric
    raise HTTPProblem(422, f"{where} must be a preset name or a rubric object {{criteria, score1_description ...}}, "
                           f"not {type(rubric).__name__}")


class JudgeServer:
    """The HTTP server around a :class:`~judgeforge.judge.Judge`; usable in-process (tests, notebooks).

    ``JudgeServer(judge, ServerConfig(port=0)).start()`` serves on a background thread;
    ``.url`` is where; ``.stop()`` shuts it down gracefully.  ``judgeforge serve`` runs
    :meth:`serve_forever` on the main thread instead.
    """

    def __init__(self, judge, config: ServerConfig | None = None, *, httpd: ThreadingHTTPServer | None = None):
        from judgeforge.format.prompts import ABSOLUTE
        from judgeforge.judge import resolve_rubric

        self.judge = judge
        self.config = config or ServerConfig()
        self.config.validate()
        rendered = resolve_rubric(self.config.default_rubric, ABSOLUTE, where="the default rubric")
        self.default_criteria = rendered.split("\n", 1)[0]
        self.model_name = judge.describe()
        backend = judge.backend
        parallel = getattr(backend, "parallel_calls", 1)
        workers = self.config.inflight_batches or parallel
        if workers > 1 and parallel == 1:
            raise UserError(f"--inflight-batches {workers}: the {getattr(backend, 'name', 'local')} backend runs one "
                            "batch at a time (one model, one device); it is for remote backends such as openai")
        self.batcher = Batcher(judge.grade, max_batch=self.config.max_batch, max_queue=self.config.max_queue,
                               wait_s=self.config.batch_wait_ms / 1000.0, workers=workers)
        self.context_length = getattr(backend, "context_length", None)
        self.started = time.time()
        self.requests_served: collections.Counter = collections.Counter()  # status code -> count
        self._count_lock = threading.Lock()
        self._active = 0
        self._components = schemas(self.config)
        if httpd is None:
            httpd = bind(self.config.host, self.config.port, handler_class(self), self.config.max_connections)
        else:  # a socket bound before the model was loaded (judgeforge serve)
            httpd.RequestHandlerClass = handler_class(self)
            httpd.max_connections = self.config.max_connections
        self._httpd = httpd
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.openapi_bytes = json.dumps(openapi_document(self.config)).encode("utf-8")

    # ------------------------------------------------------------------ lifetime

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def start(self) -> JudgeServer:
        """Serve on a background thread (returns at once)."""
        self.batcher.start()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="judge-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until :meth:`shutdown` is called from another thread."""
        self.batcher.start()
        self._httpd.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        """Stop accepting connections (call from another thread than serve_forever's)."""
        self._httpd.shutdown()

    def stop(self, drain_timeout: float | None = None) -> int:
        """Graceful stop: no new connections, queued work finishes, in-flight answers are sent.

        Returns once no worker runs the judge any more (so closing it is safe); the number
        of queued items abandoned after ``drain_timeout`` s."""
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

    def count(self, status: int) -> None:
        with self._count_lock:
            self.requests_served[status] += 1

    def enter(self) -> None:
        with self._count_lock:
            self._active += 1

    def leave(self) -> None:
        with self._count_lock:
            self._active -= 1

    def health(self) -> dict:
        c = self.config
        return {
            "status": "ok",
            "model": self.model_name,
            "default_rubric": self.default_criteria,
            "uptime_s": round(time.time() - self.started, 3),
            "limits": {"max_batch": c.max_batch, "max_items": c.max_items, "max_body_bytes": c.max_body_bytes,
                       "max_queue": c.max_queue, "max_connections": c.max_connections,
                       "context_length": self.context_length, "header_timeout": c.header_timeout,
                       "body_timeout": c.body_timeout, "request_timeout": c.request_timeout},
            "batching": self.batcher.stats(),
            "connections": getattr(self._httpd, "open_connections", None),
            "responses": {str(k): v for k, v in sorted(self.requests_served.items())},
        }

    # ------------------------------------------------------------------ endpoint logic

    def _render(self, kind: str, body: dict) -> list:
        """One judge request per item; rubric and prompt-length errors are 422 naming the item."""
        from judgeforge.serve.reward import conversation_to_text

        top = client_rubric(body["rubric"], "rubric") if "rubric" in body else self.config.default_rubric
        out = []
        for n, item in enumerate(body["items"]):
            rubric = client_rubric(item["rubric"], f"items[{n}].rubric") if "rubric" in item else top
            texts = [item[f] for f in ITEM_FIELDS[kind]]
            if kind == "reward":
                texts = [conversation_to_text(texts[0], role="prompt"),
                         conversation_to_text(texts[1], role="completion")]
            ref = [item.get("reference_answer")]
            try:
                if kind == "relative":
                    reqs = self.judge.relative_requests([texts[0]], [texts[1]], [texts[2]], rubric, ref)
                else:
                    reqs = self.judge.absolute_requests([texts[0]], [texts[1]], rubric, ref)
            except UserError as e:
                where = f"items[{n}]" if "rubric" in item else "rubric"
                msg = str(e)
                raise HTTPProblem(422, f"{where}: {msg[len('rubric: '):] if msg.startswith('rubric: ') else msg}") \
                    from None
            out.extend(reqs)
        self._check_lengths(out)
        return out

    def _check_lengths(self, requests: list) -> None:
        """Prompts that cannot fit the judge's context (with room for the answer) are 422, before batching."""
        counter = getattr(self.judge.backend, "prompt_lengths", None)
        if not self.context_length or counter is None:
            return
        lengths = counter(requests)
        if lengths is None:
            return
        room = self.judge.sampling.max_new_tokens
        for n, length in enumerate(lengths):
            if length + room > self.context_length:
                raise HTTPProblem(422, f"items[{n}]: the prompt is {length} tokens, but the judge's context of "
                                       f"{self.context_length} tokens leaves {max(0, self.context_length - room)} "
                                       f"for a prompt after {room} for the answer (--max-new-tokens); shorten "
                                       "the item's texts")

    def prepare(self, kind: str, body) -> tuple[list, dict]:
        """A body's judge requests and reward settings, or HTTPProblem (4xx): everything before batching."""
        validate(kind, body, self.config, self._components)
        reward_settings = {}
        if kind == "reward":
            from judgeforge.serve.reward import check_reward_settings

            reward_settings = dict(normalize=body.get("normalize", "none"), scale=body.get("scale", 1.0),
                                   shift=body.get("shift", 0.0), failure_reward=body.get("failure_reward", 0.0))
            try:
                check_reward_settings(**reward_settings, where="body")
            except UserError as e:
                raise HTTPProblem(422, str(e)) from None
            # a reward must stay a JSON number: |base| <= 1 (none) or sqrt(n - 1) (zscore over n items)
            bound = math.sqrt(max(1, len(body["items"]) - 1)) if reward_settings["normalize"] == "zscore" else 1.0
            if not math.isfinite(abs(reward_settings["scale"]) * bound + abs(reward_settings["shift"])):
                raise HTTPProblem(422, "body: scale and shift overflow the reward (|scale| * "
                                       f"{bound:g} + |shift| is past the largest float); send smaller ones")
        return self._render(kind, body), reward_settings

    def handle_post(self, kind: str, body, deadline: float | None = None) -> dict:
        requests, reward_settings = self.prepare(kind, body)
        deadline = deadline or time.monotonic() + self.config.request_timeout
        try:
            job = self.batcher.submit(requests)
        except BatchError as e:
            raise HTTPProblem(_BATCH_STATUS[e.kind], e.message, {"Retry-After": "1"}) from None
        if not job.done.wait(max(0.0, deadline - time.monotonic())):
            job.fail(BatchError("timeout", f"no answer within {self.config.request_timeout:g} s "
                                           "(--request-timeout); the judge is overloaded or stuck"))
        if job.error is not None:
            raise HTTPProblem(_BATCH_STATUS[job.error.kind], job.error.message)
        results = []
        for item, s in zip(body["items"], job.results):
            r = {"id": item.get("id"), "feedback": s.feedback if s.ok else None, "error": s.error,
                 "attempts": s.attempts}
            r["winner" if kind == "relative" else "score"] = s.result if s.ok else None
            results.append(r)
        if kind != "reward":
            return {"model": self.model_name, "results": results}
        from judgeforge.serve.reward import rewards_from_scores

        rewards = rewards_from_scores([r["score"] for r in results], **reward_settings)
        for r, x in zip(results, rewards):
            r["reward"] = x
        return {"model": self.model_name, "rewards": rewards, "results": results}
