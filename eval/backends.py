"""Judge backends: how a rendered judge prompt becomes generated text.

The interface every stage codes against (evaluation, the Judge API and server, data
synthesis with a teacher):

    backend = get_backend("hf", "path/or/hub-id", **options)
    outputs = backend.generate(requests, Sampling(), n=3)   # list (per request) of n strings

A :class:`Request` carries the grading mode and the rendered Prometheus instruction (what
the collections call ``instruction``); each backend wraps it itself: ``hf`` and ``vllm``
tokenise :meth:`Request.chat_text` (the exact training format), an OpenAI-compatible
endpoint gets either that text (completions API) or :meth:`Request.messages` (chat API).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from judgeforge.prompts import chat_prompt, check_mode, user_content


@dataclass(frozen=True)
class Sampling:
    """Decoding settings. The defaults are the paper's."""

    temperature: float = 1.0
    top_p: float = 0.9
    max_new_tokens: int = 1024
    repetition_penalty: float = 1.03
    seed: int | None = None

    @classmethod
    def greedy(cls, max_new_tokens: int = 1024) -> Sampling:
        return cls(temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens, repetition_penalty=1.0)

    @property
    def is_greedy(self) -> bool:
        return self.temperature <= 0.0

    def with_seed(self, seed: int | None) -> Sampling:
        return replace(self, seed=seed)


@dataclass(frozen=True)
class Request:
    """One judge call: a grading mode and the rendered instruction."""

    mode: str
    instruction: str
    system_prompt: str | None = None  # None: the mode's Prometheus system prompt; "" for none

    def __post_init__(self):
        check_mode(self.mode)

    def chat_text(self) -> str:
        """``[INST] {system}\\n\\n{instruction} [/INST]`` (BOS is added by the tokenizer)."""
        return chat_prompt(self.instruction, self.mode, self.system_prompt)

    def messages(self) -> list[dict]:
        """Chat messages for chat APIs: the system prompt folded into the user turn, as in training."""
        return [{"role": "user", "content": user_content(self.instruction, self.mode, self.system_prompt)}]


class Backend:
    """Base class. Subclasses implement :meth:`generate`."""

    name = "base"

    def generate(self, requests: list[Request], sampling: Sampling, n: int = 1) -> list[list[str]]:
        """For each request, ``n`` generated continuations (text after ``[/INST]``, special tokens removed)."""
        raise NotImplementedError

    def chat(self, conversations: list[list[dict]], sampling: Sampling, n: int = 1) -> list[list[str]]:
        """Free-form chat (e.g. a teacher writing data): ``n`` replies per conversation.

        Local backends render the conversation with the model's own chat template; an
        OpenAI-compatible endpoint gets the messages as they are.
        """
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


BACKENDS: dict[str, str] = {
    # name -> "module:Class"; filled in by the evaluation stage
}


def get_backend(name: str, model: str, **options) -> Backend:
    import importlib

    from judgeforge.errors import UserError, did_you_mean

    if name not in BACKENDS:
        raise UserError(f"unknown backend '{name}'{did_you_mean(name, BACKENDS)}; choose one of: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(model, **options)
