"""The ``vllm`` backend: vLLM's offline engine, when installed (``pip install 'judgeforge[vllm]'``).

Thin on purpose: vLLM does the batching, paged KV cache and tensor parallelism.  Prompts
are the same token ids as the ``hf`` backend's (the judge's chat format,
:mod:`judgeforge.format.chat`), and generation stops at that format's end token.  This path cannot run on the project's CPU test machines (no vLLM, no
GPU); there the missing-package error and :class:`PromptBudget` (the prompt-length check, with a
real tokenizer) are tested.

A request whose prompt plus ``max_new_tokens`` cannot fit the context vLLM runs with is refused
with one line naming it (:func:`judgeforge.backends.fastgen.check_context`, as the ``hf`` backend
does), before any generation: never cut by vLLM or failed half-way through a batch.
"""

from __future__ import annotations

from judgeforge.backends import Backend, Generated, Request, Sampling, finish_reason_at_limit
from judgeforge.backends.fastgen import check_context, config_context
from judgeforge.errors import UserError

_NO_LIMIT = 10**9  # transformers' tokenizers say model_max_length = 1e30 when they do not know it


def vllm_context(max_model_len: int | None = None, engine=None, config=None, tokenizer=None) -> tuple[int | None, str]:
    """The context a vLLM engine runs with and where that number comes from: ``max_model_len``
    when given, else the length the engine settled on (its ``model_config.max_model_len``),
    else the model config's ``max_position_embeddings`` (as the ``hf`` backend), else the
    tokenizer's ``model_max_length``; (None, "") when none is known."""
    if max_model_len:
        return int(max_model_len), "max_model_len"
    decided = getattr(getattr(engine, "model_config", None), "max_model_len", None)
    if isinstance(decided, int) and decided > 0:
        return decided, "vLLM's max_model_len; lower it with --backend-option max_model_len=N"
    n = config_context(config)
    if n:
        return n, "max_position_embeddings"
    n = getattr(tokenizer, "model_max_length", None)
    if isinstance(n, int) and 0 < n < _NO_LIMIT:
        return n, "the tokenizer's model_max_length"
    return None, ""


class PromptBudget:
    """The vLLM backend's prompts, without vLLM: token ids in the judge's chat format, counted
    and checked against the context (``vllm_context``) before anything reaches the engine."""

    def __init__(self, chat_format, context: int | None, source: str = "max_position_embeddings"):
        self.chat_format = chat_format
        self.context = context
        self.source = source

    def encode(self, requests: list[Request]) -> list[list[int]]:
        return [self.chat_format.encode_prompt(r.chat_text(self.chat_format)) for r in requests]

    def check(self, prompts: list[list[int]], max_new_tokens: int) -> None:
        check_context(prompts, max_new_tokens, self.context, source=self.source)


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, model, *, tensor_parallel_size: int = 1, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.9, max_model_len: int | None = None, seed: int = 0,
                 trust_remote_code: bool = False, chat_format: str | None = None, **engine_options):
        try:
            import vllm
        except ImportError:
            raise UserError("the vllm backend needs vLLM: pip install 'judgeforge[vllm]' "
                            "(or use --backend hf)") from None
        if not isinstance(model, str):
            raise UserError("the vllm backend loads the judge itself: pass a folder or hub id, not a model object")
        self.model_id = model
        self._vllm = vllm
        self.llm = vllm.LLM(model=model, tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                            seed=seed, trust_remote_code=trust_remote_code, **engine_options)
        from judgeforge.format.chat import resolve_chat_format

        tokenizer = self.llm.get_tokenizer()
        self.chat_format = resolve_chat_format(tokenizer, folder=model, override=chat_format)
        engine = getattr(self.llm, "llm_engine", None)
        config = getattr(getattr(engine, "model_config", None), "hf_config", None)
        self.budget = PromptBudget(self.chat_format, *vllm_context(max_model_len, engine, config, tokenizer))

    def describe(self) -> str:
        return f"vllm:{self.model_id}"

    @property
    def context_length(self) -> int | None:
        return self.budget.context

    def prompt_lengths(self, requests: list[Request]) -> list[int]:
        return [len(p) for p in self.budget.encode(requests)]

    def _params(self, sampling: Sampling, n: int):
        kw = dict(n=n, max_tokens=sampling.max_new_tokens, repetition_penalty=sampling.repetition_penalty,
                  seed=sampling.seed, ignore_eos=sampling.ignore_eos,
                  stop_token_ids=[self.chat_format.eos_id] if self.chat_format.eos_id is not None else None)
        if sampling.is_greedy:
            kw.update(temperature=0.0)
        else:
            kw.update(temperature=sampling.temperature, top_p=sampling.top_p)
        return self._vllm.SamplingParams(**kw)

    def generate(self, requests: list[Request], sampling: Sampling, n: int = 1) -> list[list[str]]:
        ids = self.budget.encode(requests)
        self.budget.check(ids, sampling.max_new_tokens)
        outs = self.llm.generate([{"prompt_token_ids": p} for p in ids], self._params(sampling, n), use_tqdm=False)
        return [[_text(c) for c in o.outputs] for o in outs]

    def chat(self, conversations: list[list[dict]], sampling: Sampling, n: int = 1) -> list[list[str]]:
        outs = self.llm.chat(conversations, self._params(sampling, n), use_tqdm=False)
        return [[_text(c) for c in o.outputs] for o in outs]


def _text(completion) -> Generated:
    """A vLLM ``CompletionOutput``'s text, knowing from ``finish_reason`` whether it hit ``max_tokens``."""
    return Generated(completion.text, finish_reason_at_limit(getattr(completion, "finish_reason", None)))
