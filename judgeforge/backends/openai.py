"""The ``openai`` backend: any OpenAI-compatible HTTP endpoint (stdlib HTTP only).

``api="completions"`` (default) posts ``Request.chat_text()`` to ``/v1/completions``: a
local server (vLLM, TGI, llama.cpp) that serves the judge gets exactly the training
format.  ``api="chat"`` posts ``Request.messages()`` to ``/v1/chat/completions``: an API
model such as GPT-4 as a baseline judge.  ``chat()`` always uses the chat API.

Requests run in a thread pool of ``concurrency`` workers.  HTTP 408, 409, 429 and 5xx,
timeouts and connection errors are retried up to ``max_retries`` times with exponential
backoff (``backoff * 2**attempt``, capped at ``backoff_max``, with jitter; a
``Retry-After`` header is honoured); other HTTP errors (a bad key, an unknown model) stop
at once with one clear line.
"""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from judgeforge.backends import Backend, Request, Sampling
from judgeforge.errors import UserError

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


class EndpointError(UserError):
    """The endpoint failed for good (after retries, or with a non-retryable status)."""


class OpenAIBackend(Backend):
    name = "openai"
    parallel_calls = 4  # a server in front keeps this many batches in flight

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api: str = "completions",
        concurrency: int = 8,
        max_retries: int = 6,
        timeout: float = 300.0,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
        extra_body: dict | None = None,
        send_repetition_penalty: bool | None = None,
    ):
        if api not in ("completions", "chat"):
            raise UserError(f"openai backend: api must be 'completions' or 'chat', got '{api}'")
        if concurrency < 1:
            raise UserError("openai backend: concurrency must be >= 1")
        self.model = str(model)
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.api = api
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.extra_body = dict(extra_body or {})
        # OpenAI's own API rejects vLLM's repetition_penalty; local servers take it.
        self.send_repetition_penalty = (api == "completions") if send_repetition_penalty is None \
            else send_repetition_penalty
        self.calls = 0  # HTTP requests sent (retries included)
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"openai:{self.model}"

    @property
    def deterministic_greedy(self) -> bool:
        return False  # remote servers batch and may not be bit-reproducible

    # ------------------------------------------------------------------ public API

    def generate(self, requests: list[Request], sampling: Sampling, n: int = 1) -> list[list[str]]:
        if self.api == "chat":
            jobs = [("chat", {"messages": r.messages()}) for r in requests]
        else:
            jobs = [("completions", {"prompt": r.chat_text()}) for r in requests]
        return self._run(jobs, sampling, n)

    def chat(self, conversations: list[list[dict]], sampling: Sampling, n: int = 1) -> list[list[str]]:
        return self._run([("chat", {"messages": list(c)}) for c in conversations], sampling, n)

    # ------------------------------------------------------------------ internals

    def _body(self, payload: dict, sampling: Sampling, n: int) -> dict:
        body = {"model": self.model, **payload, "n": n, "max_tokens": sampling.max_new_tokens}
        if sampling.is_greedy:
            body["temperature"] = 0.0
        else:
            body["temperature"] = sampling.temperature
            body["top_p"] = sampling.top_p
        if self.send_repetition_penalty and sampling.repetition_penalty != 1.0:
            body["repetition_penalty"] = sampling.repetition_penalty
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.ignore_eos:
            body["ignore_eos"] = True
        body.update(self.extra_body)
        return body

    def _run(self, jobs: list[tuple[str, dict]], sampling: Sampling, n: int) -> list[list[str]]:
        if not jobs:
            return []
        if len(jobs) == 1 or self.concurrency == 1:
            return [self._one(kind, payload, sampling, n) for kind, payload in jobs]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs))) as pool:
            futures = [pool.submit(self._one, kind, payload, sampling, n) for kind, payload in jobs]
            return [f.result() for f in futures]

    def _one(self, kind: str, payload: dict, sampling: Sampling, n: int) -> list[str]:
        texts: list[str] = []
        # a server may return fewer choices than asked (some ignore n): ask again for the rest
        for _ in range(n):
            reply = self._post(kind, self._body(payload, sampling, n - len(texts)))
            texts.extend(self._texts(kind, reply))
            if len(texts) >= n:
                return texts[:n]
        raise EndpointError(f"{self.base_url}: the server returned fewer than n={n} choices")

    @staticmethod
    def _texts(kind: str, reply: dict) -> list[str]:
        try:
            choices = sorted(reply["choices"], key=lambda c: c.get("index", 0))
            if kind == "chat":
                return [c["message"].get("content") or "" for c in choices]
            return [c.get("text") or "" for c in choices]
        except (KeyError, TypeError, AttributeError):
            raise EndpointError(f"unexpected reply from the endpoint (no choices): {str(reply)[:200]}") from None

    def _post(self, kind: str, body: dict) -> dict:
        url = f"{self.base_url}/{'chat/completions' if kind == 'chat' else 'completions'}"
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            with self._lock:
                self.calls += 1
            wait = None
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                detail = _error_text(e)
                if e.code not in RETRY_STATUS:
                    raise EndpointError(f"{url}: HTTP {e.code}: {detail}; check the model name, key and "
                                        "request options") from None
                last = f"HTTP {e.code}: {detail}"
                wait = _retry_after(e)
            except TimeoutError:
                last = f"no answer within {self.timeout:g} s"
            except urllib.error.URLError as e:
                if isinstance(e.reason, (TimeoutError, socket.timeout)):
                    last = f"no answer within {self.timeout:g} s"
                else:
                    last = f"cannot connect ({e.reason})"
            except (ConnectionError, OSError) as e:
                last = f"connection failed ({e})"
            except json.JSONDecodeError:
                last = "the reply is not JSON"
            if attempt < self.max_retries:
                if wait is None:
                    wait = min(self.backoff_max, self.backoff * (2 ** attempt))
                    wait *= 0.5 + random.random() / 2
                time.sleep(wait)
        raise EndpointError(f"{url}: failed after {self.max_retries + 1} attempts (last: {last}); "
                            "is the server up? raise --max-retries or --timeout if it is slow")


def _error_text(e: urllib.error.HTTPError) -> str:
    try:
        raw = e.read().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - best effort
        return e.reason if isinstance(e.reason, str) else str(e)
    try:
        obj = json.loads(raw)
        msg = obj.get("error", {}).get("message") if isinstance(obj.get("error"), dict) else obj.get("error")
        return str(msg or raw)[:200]
    except (json.JSONDecodeError, AttributeError):
        return raw[:200]


def _retry_after(e: urllib.error.HTTPError) -> float | None:
    value = e.headers.get("Retry-After") if e.headers else None
    try:
        return min(60.0, float(value)) if value is not None else None
    except ValueError:
        return None
