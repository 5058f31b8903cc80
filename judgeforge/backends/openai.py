"""The ``openai`` backend: any OpenAI-compatible HTTP endpoint (through :mod:`judgeforge.http`).

``api="completions"`` (default) posts the judge prompt rendered in the judge's chat format
(:mod:`judgeforge.format.chat`) to ``/v1/completions``: a local server (vLLM, TGI, llama.cpp)
that serves the judge gets exactly the training format.  The format is decided as for the
local backends where a tokenizer is at hand: ``chat_format`` (mistral | model | raw), else the
judge folder's ``chat_format.json``, else detected from the tokenizer -- that of ``tokenizer``
(a local tokenizer or judge folder) or of ``model`` when it names a local folder.  For a remote
model with neither, the format cannot be known and ``chat_format`` is required (mistral or raw;
model needs the tokenizer to render its template): one line says so.  The server adds the BOS
when it tokenises the text, so a template's own leading BOS is not sent twice.
``api="chat"`` posts ``Request.messages()`` to ``/v1/chat/completions``: an API model such as
GPT-4 as a baseline judge (no chat format: the server applies its own).  ``chat()`` always
uses the chat API.

Requests run in a thread pool of ``concurrency`` workers per call over one keep-alive
connection pool (:class:`judgeforge.http.HTTPClient`, reused across calls).  The pool is not
where concurrency is capped: it holds up to ``max(64, concurrency)`` connections, so that
several calls at once (``judgeforge serve --inflight-batches``) are not serialised behind it.  HTTP 408, 409, 429 and 5xx, timeouts and connection errors are retried up
to ``max_retries`` times with exponential backoff (``backoff * 2**attempt``, capped at
``backoff_max``, with jitter; a ``Retry-After`` header is honoured); other HTTP errors (a
bad key, an unknown model) stop at once with one clear line.  A 400 (TGI: 422) that says the prompt
is over the model's context is :class:`~judgeforge.errors.PromptTooLong` naming the request (as the
local backends refuse it; the server answers 422), one that refuses the prompt for its content an
:class:`~judgeforge.errors.InputRefused`; any other 400 names the request and the endpoint's message.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from judgeforge.backends import Backend, Generated, Request, Sampling, finish_reason_at_limit
from judgeforge.errors import InputRefused, PromptTooLong, UserError
from judgeforge.http import RETRY_STATUS, HTTPClient, HTTPFailure

__all__ = ["DEFAULT_BASE_URL", "RETRY_STATUS", "EndpointError", "OpenAIBackend"]
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
        chat_format: str | None = None,
        tokenizer=None,
        trust_remote_code: bool = False,
    ):
        if api not in ("completions", "chat"):
            raise UserError(f"openai backend: api must be 'completions' or 'chat', got '{api}'")
        if concurrency < 1:
            raise UserError("openai backend: concurrency must be >= 1")
        self.model = str(model)
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.api = api
        # the completions API sends rendered text: decided now, so a missing format fails before any request
        self.chat_format = completions_format(self.model, chat_format, tokenizer, trust_remote_code) \
            if api == "completions" else None
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.extra_body = dict(extra_body or {})
        # OpenAI's own API rejects vLLM's repetition_penalty; local servers take it.
        self.send_repetition_penalty = (api == "completions") if send_repetition_penalty is None \
            else send_repetition_penalty
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None
        self._http = HTTPClient(timeout=timeout, max_retries=max_retries, backoff=backoff,
                                backoff_max=backoff_max, headers=headers,
                                max_connections=max(64, concurrency))

    @property
    def calls(self) -> int:
        """HTTP requests sent (retries included)."""
        return self._http.calls

    def close(self) -> None:
        self._http.close()

    def describe(self) -> str:
        fmt = self.chat_format.name if self.chat_format is not None else "mistral"
        return f"openai:{self.model}" + ("" if fmt == "mistral" else f"+chat={fmt}")

    @property
    def deterministic_greedy(self) -> bool:
        return False  # remote servers batch and may not be bit-reproducible

    # ------------------------------------------------------------------ public API

    def generate(self, requests: list[Request], sampling: Sampling, n: int = 1) -> list[list[str]]:
        if self.api == "chat":
            jobs = [("chat", {"messages": r.messages()}) for r in requests]
        else:
            jobs = [("completions", {"prompt": self.prompt_text(r)}) for r in requests]
        return self._run(jobs, sampling, n)

    def chat(self, conversations: list[list[dict]], sampling: Sampling, n: int = 1) -> list[list[str]]:
        return self._run([("chat", {"messages": list(c)}) for c in conversations], sampling, n)

    def prompt_text(self, request: Request) -> str:
        """The text the completions API is sent for ``request``: its chat-format prompt, less a leading BOS
        that the server's tokenizer adds again."""
        text = request.chat_text(self.chat_format)
        tok = self.chat_format.tokenizer
        bos = getattr(tok, "bos_token", None)
        if bos and text.startswith(bos) and _adds_bos(tok):
            text = text[len(bos):]
        return text

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
            return [self._one(kind, payload, sampling, n, k) for k, (kind, payload) in enumerate(jobs)]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs))) as pool:
            futures = [pool.submit(self._one, kind, payload, sampling, n, k) for k, (kind, payload) in enumerate(jobs)]
            return [f.result() for f in futures]

    def _one(self, kind: str, payload: dict, sampling: Sampling, n: int, index: int = 0) -> list[str]:
        texts: list[str] = []
        # a server may return fewer choices than asked (some ignore n): ask again for the rest
        for _ in range(n):
            reply = self._post(kind, self._body(payload, sampling, n - len(texts)), index)
            texts.extend(self._texts(kind, reply))
            if len(texts) >= n:
                return texts[:n]
        raise EndpointError(f"{self.base_url}: the server returned fewer than n={n} choices")

    @staticmethod
    def _texts(kind: str, reply: dict) -> list[str]:
        try:
            choices = sorted(reply["choices"], key=lambda c: c.get("index", 0))
            texts = [c["message"].get("content") if kind == "chat" else c.get("text") for c in choices]
            # finish_reason "length": the reply stopped at max_tokens
            return [Generated(t or "", finish_reason_at_limit(c.get("finish_reason"))) for t, c in zip(texts, choices)]
        except (KeyError, TypeError, AttributeError):
            raise EndpointError(f"unexpected reply from the endpoint (no choices): {str(reply)[:200]}") from None

    def _post(self, kind: str, body: dict, index: int = 0) -> dict:
        url = f"{self.base_url}/{'chat/completions' if kind == 'chat' else 'completions'}"
        try:
            return self._http.post_json(url, body, where="openai backend")
        except HTTPFailure as e:
            refused = refusal(e, index, body.get("max_tokens"), url)
            if refused is not None:
                raise refused from None
            if e.status in (400, 422):
                raise EndpointError(f"{url}: HTTP {e.status} for request {index}: {e.detail}; the endpoint "
                                    "refused the request: check the request options (extra_body, sampling) "
                                    "against what it accepts") from None
            if not e.retryable:
                raise EndpointError(f"{url}: HTTP {e.status}: {e.detail}; check the model name, key and "
                                    "request options") from None
            raise EndpointError(f"{url}: failed after {self.max_retries + 1} attempts (last: {e.detail}); "
                                "is the server up? raise --max-retries or --timeout if it is slow") from None


# what OpenAI, vLLM, llama.cpp and TGI answer (HTTP 400, TGI 422) when a prompt with its max_tokens is over
# the model's context, and when a prompt is refused for its content
_TOO_LONG_CODES = ("context_length_exceeded", "exceed_context_size_error", "string_above_max_length")
_TOO_LONG_TEXT = re.compile(r"maximum context length|maximum model length|too long to fit into the model|"
                            r"exceeds? the available context|context size exceeded|prompt is too long|"
                            r"tokens \+ `max_new_tokens` must be <=", re.I)
_CONTENT_CODES = ("content_filter", "content_policy_violation", "invalid_prompt")


def refusal(e: HTTPFailure, index: int, max_tokens, url: str) -> InputRefused | None:
    """The endpoint's 400/422 as the caller's input refused (:class:`PromptTooLong` naming request ``index``,
    or :class:`InputRefused` for a prompt refused for its content, or a 413: a body too large), else None."""
    if e.status not in (400, 413, 422):
        return None
    name = f"request {index}"
    if e.code in _TOO_LONG_CODES or _TOO_LONG_TEXT.search(e.detail or ""):
        return PromptTooLong(name, f"the endpoint refused the prompt as over the model's context ({e.detail.rstrip('.')}; "
                                   f"HTTP {e.status} from {url}); shorten that input or lower max_new_tokens "
                                   f"(now {max_tokens})", index)
    if e.status == 413:  # a proxy in front refusing the body's size
        return InputRefused(name, f"the endpoint refused the request as too large ({e.detail.rstrip('.')}; HTTP 413 "
                                  f"from {url}); shorten that input", index)
    if e.code in _CONTENT_CODES:
        return InputRefused(name, f"the endpoint refused the prompt for its content ({e.detail.rstrip('.')}; "
                                  f"HTTP {e.status} from {url}); change that input", index)
    return None


def _adds_bos(tokenizer) -> bool:
    ids = tokenizer("x")["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def completions_format(model: str, chat_format: str | None, tokenizer, trust_remote_code: bool = False):
    """The :class:`~judgeforge.format.chat.ChatFormat` the completions API renders prompts in (see the
    module's docstring); a remote model without ``chat_format`` or a tokenizer is one :class:`UserError`."""
    from judgeforge.format.chat import MISTRAL, RAW, ChatFormat, check_format, resolve_chat_format

    override = None if chat_format in (None, "auto") else check_format(chat_format, "openai backend: chat_format")
    folder = model if Path(model).is_dir() else None
    if tokenizer is None:
        tokenizer = folder
    if tokenizer is not None:
        if isinstance(tokenizer, (str, os.PathLike)):
            from judgeforge.tokenization import load_tokenizer

            folder = folder or (str(tokenizer) if Path(tokenizer).is_dir() else None)
            tokenizer = load_tokenizer(tokenizer, trust_remote_code=trust_remote_code)
        return resolve_chat_format(tokenizer, folder=folder, override=override, where=f"openai backend: {model}")
    if override in (MISTRAL, RAW):
        return ChatFormat(override, None, "set explicitly")
    if override:
        raise UserError(f"openai backend: chat_format model renders '{model}''s chat template, and no local tokenizer "
                        "is given; pass --tokenizer DIR (the judge's tokenizer or folder), or use --api chat")
    raise UserError(f"openai backend: the completions API sends the judge prompt chat-formatted, and the chat format "
                    f"of remote model '{model}' is unknown; pass --chat_format mistral (Prometheus' [INST] folding), "
                    "raw, or model with --tokenizer DIR, or use --api chat")
