"""Judge backends: how a rendered judge prompt becomes generated text.

The interface every stage codes against (evaluation, the Judge API and server, data
synthesis with a teacher):

    backend = get_backend("hf", "path/or/hub-id", **options)
    outputs = backend.generate(requests, Sampling(), n=3)   # list (per request) of n strings
    replies = backend.chat([[{"role": "user", "content": "..."}]], Sampling())

    # judge outputs that must parse: failures are regenerated, then returned as failures
    samples = generate_parsed(backend, requests, Sampling(), n=3, retries=10)
    samples[i][j].result   # 1-5 / "A" / "B", or None when it never parsed (.error says why)
    samples[i][j].at_limit  # True: generation stopped at max_new_tokens; False: it ended itself; None: unknown

A :class:`Request` carries the grading mode and the rendered Prometheus instruction (what
the collections call ``instruction``); each backend wraps it itself: ``hf`` and ``vllm``
tokenise :meth:`Request.chat_text` (the exact training format), an OpenAI-compatible
endpoint gets either that text (completions API) or :meth:`Request.messages` (chat API).

Backends (``BACKENDS``; options are keyword arguments of ``get_backend``)
------------------------------------------------------------------------
``hf``  (:class:`judgeforge.backends.hf.HFBackend`)
    transformers.  ``model``: a local folder, a hub id, or an already-loaded model object
    (pass ``tokenizer=`` then; a sweep evaluates an in-memory merge this way).
    Options: ``engine="fast"`` (default: length-sorted batches, static KV cache, CUDA-graph
    decoding on GPUs; greedy output is token-identical to ``generate``; models outside the
    Mistral/Llama family fall back to ``generate``) or ``engine="generate"`` (plain batched
    ``model.generate``, left padding, the reference path); ``batch_size`` (sequences per batch, default 64 on CUDA, 8 on CPU),
    ``dtype`` ("auto": bf16 on CUDA, the checkpoint's dtype on CPU), ``device``,
    ``tokenizer``, ``trust_remote_code`` (off), ``progress`` (a callback ``f(n_done)``),
    ``chat_format`` (mistral | model | raw; default: the judge folder's, else detected from the
    model, see :mod:`judgeforge.format.chat`).
``openai``  (:class:`judgeforge.backends.openai.OpenAIBackend`)
    Any OpenAI-compatible endpoint.  ``model``: the model name the server knows.
    Options: ``base_url`` (default ``$OPENAI_BASE_URL`` or ``http://127.0.0.1:8000/v1``),
    ``api_key`` (default ``$OPENAI_API_KEY``), ``api="completions"`` (default; posts the
    prompt in the judge's chat format to ``/v1/completions``, for local servers such as vLLM
    that serve the judge; ``chat_format`` as for ``hf``, decided from ``tokenizer`` (a local
    tokenizer or judge folder) or ``model`` when it is a local folder, and required for a
    remote model without either) or ``api="chat"`` (posts ``Request.messages()`` to
    ``/v1/chat/completions``, for API models such as GPT-4), ``concurrency`` (parallel
    requests, default 8), ``max_retries`` (default 6; HTTP 408/409/429/5xx, timeouts and
    connection errors are retried with exponential backoff and jitter), ``timeout``
    (seconds per request, default 300), ``backoff`` (first wait, default 1 s),
    ``extra_body`` (merged into every request body).
``vllm``  (:class:`judgeforge.backends.vllm.VLLMBackend`)
    vLLM's offline ``LLM`` when installed (``pip install 'judgeforge[vllm]'``).
    Options: ``tensor_parallel_size``, ``dtype``, ``gpu_memory_utilization``,
    ``max_model_len``, ``seed``, ``chat_format`` (as for ``hf``).

Sampling
--------
:class:`Sampling` defaults to the paper's decoding (temperature 1.0, top-p 0.9, 1,024 new
tokens, repetition penalty 1.03): declared there once, and named :data:`PAPER_SAMPLING` for the
stages that write it elsewhere (a model's generation config, command-line defaults).  ``seed`` makes local sampling reproducible;
``ignore_eos`` generates exactly ``max_new_tokens`` tokens (speed benchmarks only).

Outputs are strings; a backend that knows why an output stopped returns a :class:`Generated` (a
``str`` with ``at_limit``): ``hf`` from the token count (an output of ``max_new_tokens`` tokens never
produced its end token), ``vllm`` and ``openai`` from ``finish_reason`` (``"length"``).  Anything
else reads as unknown (:func:`stopped_at_limit` gives None), never as a guess.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from judgeforge.format.prompts import chat_prompt, check_mode, user_content


@dataclass(frozen=True)
class Sampling:
    """Decoding settings. The defaults are the paper's."""

    temperature: float = 1.0
    top_p: float = 0.9
    max_new_tokens: int = 1024
    repetition_penalty: float = 1.03
    seed: int | None = None
    ignore_eos: bool = False  # always generate max_new_tokens tokens (speed benchmarks)

    @classmethod
    def greedy(cls, max_new_tokens: int | None = None) -> Sampling:
        n = cls.max_new_tokens if max_new_tokens is None else max_new_tokens  # the paper's by default
        return cls(temperature=0.0, top_p=1.0, max_new_tokens=n, repetition_penalty=1.0)

    def decoding(self) -> dict:
        """The four decoding numbers as keyword arguments (transformers' ``generate`` names)."""
        return {"temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens,
                "repetition_penalty": self.repetition_penalty}

    @property
    def is_greedy(self) -> bool:
        return self.temperature <= 0.0

    def with_seed(self, seed: int | None) -> Sampling:
        return replace(self, seed=seed)

    def validate(self, where: str = "sampling") -> Sampling:
        """Raise one :class:`UserError` line for settings no backend can honour (eval and serve
        check the same way); returns self."""
        from judgeforge.errors import UserError

        def number(key: str) -> float:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise UserError(f"{where}: {key} must be a finite number, got {v!r}")
            return v

        if number("temperature") < 0:
            raise UserError(f"{where}: temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < number("top_p") <= 1:
            raise UserError(f"{where}: top_p must be in (0, 1], got {self.top_p}")
        if number("repetition_penalty") <= 0:
            raise UserError(f"{where}: repetition_penalty must be > 0 (1 = none), got {self.repetition_penalty}")
        check_count(where, "max_new_tokens", self.max_new_tokens, minimum=1)
        if self.seed is not None:
            check_count(where, "seed", self.seed, minimum=0)
        return self


def check_count(where: str, key: str, value, *, minimum: int = 1, optional: bool = False,
                maximum: int | None = None) -> None:
    """An integer option (batch size, retries, samples, a seed) that must be ``>= minimum`` (and at most
    ``maximum``, where a larger value is a typo that would run for days)."""
    from judgeforge.errors import UserError

    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{where}: {key} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise UserError(f"{where}: {key} must be at most {maximum:,}, got {value:,}")


def check_generation_options(where: str, *, n: int | None = None, retries: int | None = None,
                             batch_size: int | None = None) -> None:
    """The generation options every entry point takes beside :class:`Sampling` (eval, serve)."""
    check_count(where, "n", n, minimum=1, optional=True)
    check_count(where, "retries", retries, minimum=0, optional=True)
    check_count(where, "batch_size", batch_size, minimum=1, optional=True)


# The Prometheus 2 evaluation protocol: the one place its decoding numbers are written
PAPER_SAMPLING = Sampling()


class Generated(str):
    """A generated text that knows whether generation stopped at ``max_new_tokens`` (``at_limit``:
    True), ended by itself (False) or cannot tell (None).  Everything else treats it as a plain str."""

    def __new__(cls, text: str, at_limit: bool | None = None):
        self = super().__new__(cls, text)
        self.at_limit = at_limit
        return self


def stopped_at_limit(text) -> bool | None:
    """Whether a generated text stopped at ``max_new_tokens``: None for a plain string (unknown)."""
    v = getattr(text, "at_limit", None)
    return v if isinstance(v, bool) else None


def finish_reason_at_limit(reason) -> bool | None:
    """An OpenAI-style ``finish_reason`` (vLLM and OpenAI-compatible servers): "length" means the token
    limit, "stop" an end token or stop string; anything else (or none) is unknown."""
    return {"length": True, "stop": False}.get(reason) if isinstance(reason, str) else None


@dataclass(frozen=True)
class Request:
    """One judge call: a grading mode and the rendered instruction."""

    mode: str
    instruction: str
    system_prompt: str | None = None  # None: the mode's Prometheus system prompt; "" for none

    def __post_init__(self):
        check_mode(self.mode)

    def chat_text(self, chat=None) -> str:
        """``[INST] {system}\\n\\n{instruction} [/INST]`` (BOS is added by the tokenizer), or the text
        of another chat format (a :class:`judgeforge.format.chat.ChatFormat`)."""
        if chat is not None:
            return chat.prompt(self.instruction, self.mode, self.system_prompt)
        return chat_prompt(self.instruction, self.mode, self.system_prompt)

    def messages(self) -> list[dict]:
        """Chat messages for chat APIs: the system prompt folded into the user turn, as in training."""
        return [{"role": "user", "content": user_content(self.instruction, self.mode, self.system_prompt)}]


class Backend:
    """Base class. Subclasses implement :meth:`generate`."""

    name = "base"
    # generate() calls worth running at once from several threads (a server keeps that many batches
    # in flight): 1 for a local model, more for a remote endpoint that waits on the network
    parallel_calls = 1

    def generate(self, requests: list[Request], sampling: Sampling, n: int = 1) -> list[list[str]]:
        """For each request, ``n`` generated continuations (text after ``[/INST]``, special tokens removed)."""
        raise NotImplementedError

    def chat(self, conversations: list[list[dict]], sampling: Sampling, n: int = 1) -> list[list[str]]:
        """Free-form chat (e.g. a teacher writing data): ``n`` replies per conversation.

        Local backends render the conversation with the model's own chat template; an
        OpenAI-compatible endpoint gets the messages as they are.
        """
        raise NotImplementedError

    @property
    def deterministic_greedy(self) -> bool:
        """Whether greedy decoding gives the same text twice (then retrying a failure is pointless)."""
        return True

    @property
    def context_length(self) -> int | None:
        """The most tokens (prompt + answer) the model takes, where known (None: unknown)."""
        return None

    def prompt_lengths(self, requests: list[Request]) -> list[int] | None:
        """Prompt tokens per request, where this backend can count them (None: it cannot)."""
        return None

    def describe(self) -> str:
        """A short identity for caches and reports (backend name + model)."""
        return self.name

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


BACKENDS: dict[str, str] = {
    # name -> "module:Class"
    "hf": "judgeforge.backends.hf:HFBackend",
    "openai": "judgeforge.backends.openai:OpenAIBackend",
    "vllm": "judgeforge.backends.vllm:VLLMBackend",
}


def get_backend(name: str, model, **options) -> Backend:
    import importlib

    from judgeforge.errors import UserError, did_you_mean

    if name not in BACKENDS:
        raise UserError(f"unknown backend '{name}'{did_you_mean(name, BACKENDS)}; choose one of: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(model, **options)


# --------------------------------------------------------------------------- parse-and-retry


@dataclass
class Sample:
    """One judge sample after parsing: ``result`` is None when it never parsed."""

    output: str | None
    result: int | str | None
    feedback: str
    error: str | None
    attempts: int  # generations spent on this sample (1 = parsed or failed at the first try)
    at_limit: bool | None = None  # generation stopped at max_new_tokens (None: the backend cannot tell)

    @property
    def ok(self) -> bool:
        return self.error is None


GIVE_UP_BELOW = 0.1  # a first round with fewer parsed outputs than this share: no retries
GIVE_UP_MIN = 10  # ... when it had at least this many samples (a small round says little)


def _generate_counted(backend: Backend, requests: list[Request], sampling: Sampling, k: int, tick) -> list:
    """``backend.generate`` with its finished batches reported to ``tick`` as generations (prompts x k)."""
    has_hook = hasattr(backend, "progress")
    prev = getattr(backend, "progress", None)
    moved = [0]

    def step(m):
        m = min(m, len(requests) - moved[0])
        moved[0] += m
        tick(m * k, 0)

    if has_hook:
        backend.progress = step
    try:
        texts = backend.generate(requests, sampling, n=k)
    finally:
        if has_hook:
            backend.progress = prev
    tick((len(requests) - moved[0]) * k, 0)
    return texts


def generate_parsed(
    backend: Backend,
    requests: list[Request],
    sampling: Sampling,
    n: int = 1,
    retries: int = 10,
    *,
    strict: bool | str = False,
    on_sample: Callable[[int, int, Sample], None] | None = None,
    on_attempt: Callable[[int, int, Sample, bool], None] | None = None,
    done_attempts: list[list[int]] | None = None,
    progress: Callable[[int, int], None] | None = None,
    give_up_below: float = GIVE_UP_BELOW,
    log: Callable[[str], None] | None = None,
) -> list[list[Sample]]:
    """``n`` parsed samples per request; outputs that do not parse are regenerated.

    Each failing sample is generated again up to ``retries`` times (the paper's harness
    retries 10 times); one that still does not parse comes back with ``result=None`` and
    the parser's reason in ``error`` -- it is never dropped, so failure rates stay honest.
    With greedy decoding on a deterministic backend a retry would return the same text,
    so none is made.  ``sampling.seed`` (when set) is shifted on each retry round, so a
    seeded retry is a new draw.  When fewer than ``give_up_below`` of a first round's
    (at least :data:`GIVE_UP_MIN` new) samples parse, the judge fails nearly everything and
    ten more rounds would only multiply the time: no retry is made and ``log`` says so in one line.

    Callbacks (caches write there): ``on_attempt(i, j, sample, final)`` after every
    generation of request ``i``'s sample ``j``; ``on_sample(i, j, sample)`` once per final
    sample.  ``done_attempts[i][j]``: failed attempts already spent on that sample in an
    earlier, interrupted run (they count against ``retries``).  ``progress(done, retries)``:
    generations finished (live, per batch where the backend reports batches) and retries added
    to the planned total as each retry round starts (the caller plans the first attempts).
    """
    from judgeforge.format.parsing import parse

    if n < 1:
        raise ValueError("n must be >= 1")
    tick = progress or (lambda done, more: None)
    budget = 1 + (0 if sampling.is_greedy and backend.deterministic_greedy else max(0, retries))
    out: list[list[Sample | None]] = [[None] * n for _ in requests]
    attempts = {(i, j): (done_attempts[i][j] if done_attempts else 0) for i in range(len(requests)) for j in range(n)}
    pending = []
    for (i, j), a in attempts.items():
        if a >= budget:  # spent in an earlier run: a failure
            sample = Sample(None, None, "", "no parseable output after the allowed retries", a)
            out[i][j] = sample
            if on_sample is not None:
                on_sample(i, j, sample)
        else:
            pending.append((i, j))
    round_no = 0
    gave_up = False
    while pending:
        if round_no:
            tick(0, len(pending))
        by_req: dict[int, list[int]] = {}
        for i, j in pending:
            by_req.setdefault(i, []).append(j)
        s = sampling if sampling.seed is None or round_no == 0 else sampling.with_seed(sampling.seed + 7919 * round_no)
        counts: dict[int, list[int]] = {}  # requests needing k new samples -> one call per k
        for i in sorted(by_req):
            counts.setdefault(len(by_req[i]), []).append(i)
        made: list[tuple[int, int, Sample, bool]] = []  # the round's generations, reported once it is decided
        for k, idx in sorted(counts.items()):
            texts = _generate_counted(backend, [requests[i] for i in idx], s, k, tick)
            if len(texts) != len(idx) or any(len(t) != k for t in texts):
                raise RuntimeError(f"backend {backend.name} returned the wrong number of outputs")
            for i, outs in zip(idx, texts):
                for j, text in zip(by_req[i], outs):
                    attempts[(i, j)] += 1
                    p = parse(text, requests[i].mode, strict=strict)
                    made.append((i, j, Sample(text, p.result, p.feedback, p.error, attempts[(i, j)],
                                                      stopped_at_limit(text)), p.ok))
        if round_no == 0 and budget > 1 and len(made) >= GIVE_UP_MIN and give_up_below > 0:
            parsed = sum(ok for *_, ok in made)
            if parsed < give_up_below * len(made):
                gave_up = True
                if log is not None:
                    log(f"judgeforge: only {parsed} of {len(made)} outputs parsed on the first attempt; the judge "
                        f"fails nearly everything, so no retries are made (--give-up-below 0 retries anyway)")
        still: list[tuple[int, int]] = []
        for i, j, sample, ok in made:
            final = ok or gave_up or sample.attempts >= budget
            if on_attempt is not None:
                on_attempt(i, j, sample, final)
            if final:
                out[i][j] = sample
                if on_sample is not None:
                    on_sample(i, j, sample)
            else:
                still.append((i, j))
        pending = still
        round_no += 1
    return out  # type: ignore[return-value]
