"""The one HTTP client (httpx): keep-alive connection pool and one retry policy.

Used by the ``openai`` backend (judge and teacher calls), the reward client of
``judgeforge serve`` (:class:`judgeforge.serve.reward.HTTPJudgeReward`) and benchmark
downloads::

    client = HTTPClient(timeout=60, max_retries=6, headers={"Authorization": "Bearer ..."})
    reply = client.post_json("http://127.0.0.1:8000/v1/completions", body, where="openai backend")
    data = client.get_bytes(url, where="vicuna_eval.json")

Connections are kept alive and reused (one TLS handshake per pooled connection, not per
request); the pool holds up to ``max_connections`` (set it to the caller's concurrency).

Retry policy (the only one): HTTP 408, 409, 429 and 5xx, timeouts, connection errors
and replies that are not JSON (``post_json``) are retried up to ``max_retries`` times;
the wait is ``backoff * 2**attempt`` capped at ``backoff_max``, times a jitter in
[0.5, 1), or the server's ``Retry-After`` (seconds, capped at ``backoff_max``).  Any other
HTTP status fails at once.  Failures raise :class:`HTTPFailure` (a one-line
:class:`~judgeforge.errors.UserError`), whose ``status`` is the last HTTP status (None
for a network error) so callers can word their own line.
"""

from __future__ import annotations

import json
import random
import threading
import time

from judgeforge.errors import UserError

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class HTTPFailure(UserError):
    """A request failed for good: a non-retryable status, or every attempt failed."""

    def __init__(self, message: str, *, status: int | None = None, detail: str = "", retryable: bool = False,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.detail, self.retryable = status, detail, retryable
        self.code = code  # the error body's code or type (OpenAI: "context_length_exceeded"), if any


def error_fields(text: str) -> tuple[str, str | None]:
    """``(message, code)`` of a JSON error body: OpenAI's ``{"error": {"message", "type", "code"}}`` or
    vLLM's ``{"object": "error", "message", "type", "code"}``; else the body's start and None.  The code
    is the body's text ``code``, else its ``type``."""
    if not text.strip():
        return "(an empty reply)", None
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text[:300], None
    if not isinstance(obj, dict):
        return text[:300], None
    err = obj.get("error")
    fields = err if isinstance(err, dict) else obj
    msg = fields.get("message") if isinstance(fields, dict) else None
    if msg is None and isinstance(err, str):
        msg = err
    code = next((v for v in (fields.get("code"), fields.get("type")) if isinstance(v, str) and v), None)
    return str(msg or text)[:300], code


def error_detail(text: str) -> str:
    """The message of a JSON error body (:func:`error_fields`), else the body's start."""
    return error_fields(text)[0]


def _retry_after(headers, cap: float) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return min(cap, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None


class HTTPClient:
    """A pooled, keep-alive httpx client with the retry policy above (thread-safe)."""

    def __init__(self, *, timeout: float = 300.0, max_retries: int = 6, backoff: float = 1.0,
                 backoff_max: float = 60.0, headers: dict | None = None, max_connections: int = 16):
        import httpx

        if not isinstance(max_retries, int) or max_retries < 0:
            raise UserError(f"http: max_retries must be an integer >= 0, got {max_retries!r}")
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise UserError(f"http: timeout must be a number of seconds > 0, got {timeout!r}")
        if backoff < 0 or backoff_max < 0:
            raise UserError("http: backoff and backoff_max must be >= 0 seconds")
        self.timeout, self.max_retries = float(timeout), max_retries
        self.backoff, self.backoff_max = float(backoff), float(backoff_max)
        limits = httpx.Limits(max_connections=max(1, max_connections),
                              max_keepalive_connections=max(1, max_connections))
        self._client = httpx.Client(timeout=self.timeout, headers=headers or {}, limits=limits,
                                    follow_redirects=True)
        self.calls = 0  # requests sent, retries included
        self._lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _wait(self, attempt: int, headers) -> float:
        wait = _retry_after(headers, self.backoff_max)
        if wait is None:
            wait = min(self.backoff_max, self.backoff * (2 ** attempt)) * (0.5 + random.random() / 2)
        return wait

    def request(self, method: str, url: str, *, where: str, json_reply: bool = False, **kwargs):
        """One request under the retry policy: the response (or its decoded JSON with ``json_reply``)."""
        import httpx

        last, status = "", None
        for attempt in range(self.max_retries + 1):
            with self._lock:
                self.calls += 1
            headers = None
            try:
                resp = self._client.request(method, url, **kwargs)
                status, headers = resp.status_code, resp.headers
                if resp.status_code >= 400:
                    detail, code = error_fields(resp.text)
                    if resp.status_code not in RETRY_STATUS:
                        raise HTTPFailure(f"{where}: {url}: HTTP {resp.status_code}: {detail}",
                                          status=resp.status_code, detail=detail, code=code)
                    last = f"HTTP {resp.status_code}: {detail}"
                elif not json_reply:
                    return resp
                else:
                    try:
                        return resp.json()
                    except (json.JSONDecodeError, ValueError):
                        last = "the reply is not JSON"
            except httpx.TimeoutException:
                status, last = None, f"no answer within {self.timeout:g} s"
            except httpx.TransportError as e:
                status, last = None, f"cannot connect ({e or type(e).__name__})"
            if attempt < self.max_retries:
                time.sleep(self._wait(attempt, headers))
        raise HTTPFailure(f"{where}: {url}: failed after {self.max_retries + 1} attempts (last: {last})",
                          status=status, detail=last, retryable=True)

    def post_json(self, url: str, body: dict, *, where: str) -> dict:
        return self.request("POST", url, where=where, json_reply=True, json=body)

    def get_bytes(self, url: str, *, where: str) -> bytes:
        return self.request("GET", url, where=where).content


__all__ = ["RETRY_STATUS", "HTTPClient", "HTTPFailure", "error_detail", "error_fields"]
