"""``judgeforge serve``: a judge behind HTTP, for evaluation clients and RLHF reward calls.

::

    judgeforge serve --judge path/to/judge            # http://127.0.0.1:8765

Modules: :mod:`~judgeforge.serve.config` (limits), :mod:`~judgeforge.serve.schema` (the
request schema: validation and the OpenAPI document), :mod:`~judgeforge.serve.batching`
(batching, no HTTP), :mod:`~judgeforge.serve.handler` (HTTP), :mod:`~judgeforge.serve.server`
(endpoint logic), :mod:`~judgeforge.serve.cli` (the command), :mod:`~judgeforge.serve.reward`.

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
score5_description}``, or a rendered rubric string -- never a file path, whatever its JSON
type (422, the same answer whether the file exists or not); the server's ``--rubric`` (a
preset or a rubric YAML file) when absent.
The reward mapping is :mod:`judgeforge.serve.reward`'s: ``(score - 1) / 4`` or a z-score over
the request, then ``scale * x + shift``.

Batching: HTTP handler threads validate and render their items, then queue them; worker
threads (``--inflight-batches``: 1 for local backends, 4 for openai) each take up to
``--max-batch`` queued items (from any number of clients), run them through the judge in
one backend call, and hand each client its own results.  A batch that fails is halved and
retried until the failing item stands alone: it fails its own request only (500).

Limits: a body over ``--max-body-bytes`` -> 413; a body that is not UTF-8 JSON, nested
deeper than 32 levels, with an integer of more than 64 digits or NaN -> 400; more than
``--max-items`` items, missing or mistyped fields, text that is not valid Unicode, a
prompt longer than the judge's context (less ``--max-new-tokens``) -> 422, before
batching; a full queue or ``--max-connections`` open connections -> 503; headers not in
within ``--header-timeout`` or a body within ``--body-timeout`` -> 408, connection closed;
no answer within ``--request-timeout`` -> 504.  Every error is ``{"error": {"status",
"message"}}`` and the server keeps serving.  SIGINT / SIGTERM stop it gracefully: no new
connections, queued work finishes (up to ``--drain-timeout`` seconds), the batch in flight
is waited for, then the process exits 0; a second signal exits 130 at once.  It binds to 127.0.0.1 unless
``--host`` says otherwise; it has no authentication, so do not expose it publicly.
"""

from __future__ import annotations

import sys

from judgeforge.serve.batching import Batcher, BatchError, Job
from judgeforge.serve.cli import main
from judgeforge.serve.config import DEFAULT_PORT, HTTPProblem, ServerConfig
from judgeforge.serve.schema import openapi_document, parse_json, schemas, validate
from judgeforge.serve.server import JudgeServer


def validate_body(kind: str, body, max_items: int = 64) -> dict:
    """Check a decoded body for an endpoint; raises HTTPProblem(422) with one clear line."""
    return validate(kind, body, ServerConfig(max_items=max_items, max_queue=max(4096, max_items)))


__all__ = ["DEFAULT_PORT", "BatchError", "Batcher", "HTTPProblem", "Job", "JudgeServer", "ServerConfig", "main",
           "openapi_document", "parse_json", "schemas", "validate", "validate_body"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
