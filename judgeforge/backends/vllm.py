"""The ``vllm`` backend: vLLM's offline engine, when installed (``pip install 'judgeforge[vllm]'``).

Thin on purpose: vLLM does the batching, paged KV cache and tensor parallelism.  Prompts
are the same token ids as the ``hf`` backend's (the judge's chat format,
:mod:`judgeforge.format.chat`), and generation stops at that format's end token.  This path cannot run on the project's CPU test machines (no vLLM, no
GPU); only the missing-package error is tested there.
"""

from __future__ import annotations

from judgeforge.backends import Backend, Generated, Request, Sampling, finish_reason_at_limit
from judgeforge.errors import UserError


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

        self.chat_format = resolve_chat_format(self.llm.get_tokenizer(), folder=model, override=chat_format)

    def describe(self) -> str:
        return f"vllm:{self.model_id}"

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
        prompts = [{"prompt_token_ids": self.chat_format.encode_prompt(r.chat_text(self.chat_format))} for r in requests]
        outs = self.llm.generate(prompts, self._params(sampling, n), use_tqdm=False)
        return [[_text(c) for c in o.outputs] for o in outs]

    def chat(self, conversations: list[list[dict]], sampling: Sampling, n: int = 1) -> list[list[str]]:
        outs = self.llm.chat(conversations, self._params(sampling, n), use_tqdm=False)
        return [[_text(c) for c in o.outputs] for o in outs]


def _text(completion) -> Generated:
    """A vLLM ``CompletionOutput``'s text, knowing from ``finish_reason`` whether it hit ``max_tokens``."""
    return Generated(completion.text, finish_reason_at_limit(getattr(completion, "finish_reason", None)))
