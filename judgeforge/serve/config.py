"""The server's settings (:class:`ServerConfig`), its error type and the decoding checks.

Every limit here is a documented answer: a body over ``max_body_bytes`` -> 413, more than
``max_items`` items -> 422, a full queue or ``max_connections`` open connections -> 503, a
request line and headers not in within ``header_timeout`` s (idle keep-alive included) or a
body not in within ``body_timeout`` s -> 408 and the connection closed, no answer within
``request_timeout`` s of the request's headers -> 504.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from judgeforge.errors import UserError

DEFAULT_PORT = 8765
MAX_JSON_DEPTH = 32  # nesting of arrays/objects in a body; deeper -> 400
MAX_NUMBER_DIGITS = 64  # digits of one JSON integer; longer -> 400


_ONE_LINE = {ord(c): repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


class HTTPProblem(Exception):
    """An error answered to the client: status code + one clear line."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        # one line, always: a client's text echoed in a message (a field name, a rubric) keeps its
        # line breaks escaped
        message = message.translate(_ONE_LINE)
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_batch: int = 16  # items per backend call
    max_items: int = 64  # items per HTTP request
    max_body_bytes: int = 1 << 20
    max_queue: int = 4096  # items waiting; more -> 503
    batch_wait_ms: float = 5.0  # how long a worker waits for more items when it has fewer than max_batch
    request_timeout: float = 600.0  # seconds from a request's headers to its answer -> 504
    drain_timeout: float = 30.0  # seconds queued work may take to finish at shutdown
    max_connections: int = 128  # open client connections (one thread each); more -> 503 and closed
    header_timeout: float = 10.0  # seconds for a request line + headers, idle keep-alive included -> 408
    body_timeout: float = 60.0  # seconds for a body to arrive once its headers are in -> 408
    inflight_batches: int | None = None  # batches the judge runs at once; None: the backend's own default
    default_rubric: object = "helpfulness"

    def validate(self) -> None:
        for name in ("max_batch", "max_items", "max_body_bytes", "max_queue", "max_connections"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UserError(f"--{name.replace('_', '-')} must be an integer >= 1, got {v!r}")
        if self.inflight_batches is not None and (not isinstance(self.inflight_batches, int)
                                                  or self.inflight_batches < 1):
            raise UserError(f"--inflight-batches must be an integer >= 1, got {self.inflight_batches!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise UserError(f"--port must be 0-65535 (0 = any free port), got {self.port!r}")
        if not (math.isfinite(self.batch_wait_ms) and self.batch_wait_ms >= 0):
            raise UserError("--batch-wait-ms must be a finite number >= 0")
        for name in ("request_timeout", "header_timeout", "body_timeout"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise UserError(f"--{name.replace('_', '-')} must be a number of seconds > 0, got {v!r}")
        if not (math.isfinite(self.drain_timeout) and self.drain_timeout >= 0):
            raise UserError("--drain-timeout must be a number of seconds >= 0")
        if self.max_queue < self.max_items:
            raise UserError("--max-queue must be at least --max-items (one full request must fit)")

