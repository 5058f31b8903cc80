"""prometheus-eval 0.1.20 call shapes on judgeforge's Judge (a drop-in for migrating scripts).

Change the imports, keep the calls::

    # from prometheus_eval import PrometheusEval
    # from prometheus_eval.vllm import VLLM              (or prometheus_eval.litellm.LiteLLM)
    # from prometheus_eval.prompts import ABSOLUTE_PROMPT, SCORE_RUBRIC_TEMPLATE
    from judgeforge.compat import ABSOLUTE_PROMPT, SCORE_RUBRIC_TEMPLATE, VLLM, LiteLLM, PrometheusEval

    judge = PrometheusEval(model=VLLM(model="prometheus-eval/prometheus-7b-v2.0"),
                           absolute_grade_template=ABSOLUTE_PROMPT)
    feedback, score = judge.single_absolute_grade(instruction=..., response=..., rubric=...,
                                                  reference_answer=..., params={"max_tokens": 1024})
    feedbacks, scores = judge.relative_grade(instructions=[...], responses_A=[...], responses_B=[...],
                                             rubric="...", params={...})

* ``VLLM(model, **vllm_kwargs)``: judgeforge's ``vllm`` backend (``pip install 'judgeforge[vllm]'``);
  ``HF(model, **options)`` is the transformers backend for machines without vLLM.
* ``LiteLLM(name, api_base=None)`` / ``AsyncLiteLLM(name, batch_size, requests_per_minute,
  api_base)``: the ``openai`` backend with the chat API.  A LiteLLM-style name
  (``openai/gpt-4o``, ``openrouter/...``, ``together_ai/...``; see :data:`PROVIDERS`) is routed to
  that provider's OpenAI-compatible URL and key variable unless ``api_base`` is given.
* ``params``: vLLM ``SamplingParams`` names (``max_tokens``, ``temperature``, ``top_p``,
  ``repetition_penalty``, ``seed``; ``best_of`` must be 1; ``use_tqdm`` is ignored).
* Templates: a template string with prometheus-eval's placeholders replaces the default
  wording for every item (as in the package); without one, each item gets the template with
  or without a reference answer according to its own ``reference_answer``.
"""

from __future__ import annotations

import os

from judgeforge.errors import UserError
from judgeforge.format.prompts import ABSOLUTE, RELATIVE, TEMPLATES
from judgeforge.format.user_templates import check_template, fill_template

# the package's own template strings (tests/test_compat.py checks them against the installed files)
ABSOLUTE_PROMPT, ABSOLUTE_PROMPT_WO_REF = TEMPLATES[ABSOLUTE]["prometheus-eval-0.1.20"]
RELATIVE_PROMPT, RELATIVE_PROMPT_WO_REF = TEMPLATES[RELATIVE]["prometheus-eval-0.1.20"]
SCORE_RUBRIC_TEMPLATE = (
    "[{criteria}]\nScore 1: {score1_description}\nScore 2: {score2_description}\n"
    "Score 3: {score3_description}\nScore 4: {score4_description}\nScore 5: {score5_description}"
)

# LiteLLM provider prefix -> (OpenAI-compatible base URL, API key variable)
PROVIDERS = {
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "together_ai": ("https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "mistral": ("https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "deepinfra": ("https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY"),
    "fireworks_ai": ("https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
    "anthropic": ("https://api.anthropic.com/v1", "ANTHROPIC_API_KEY"),
    "hosted_vllm": (None, None),  # LiteLLM's name for your own vLLM server: give api_base
}


# --------------------------------------------------------------------------- model wrappers


class _Spec:
    """What a prometheus-eval model object stood for: which judgeforge backend to build, and how."""

    backend = "hf"

    def __init__(self, model, **options):
        self.model, self.options = model, options

    def build(self):
        from judgeforge.backends import get_backend

        return get_backend(self.backend, self.model, **self.options)


class VLLM(_Spec):
    """``prometheus_eval.vllm.VLLM(model, **vllm_kwargs)``: judgeforge's vllm backend."""

    backend = "vllm"

    def __init__(self, model: str, **vllm_kwargs):
        super().__init__(model, **vllm_kwargs)

    def validate_vllm(self):
        return True


class HF(_Spec):
    """The transformers backend (no vLLM needed): ``HF("prometheus-eval/prometheus-7b-v2.0")``."""


def route(name: str, api_base: str | None) -> tuple[str, str | None, str | None]:
    """``(model, base_url, api_key)`` for a LiteLLM-style name (``provider/model``)."""
    if not isinstance(name, str) or not name.strip():
        raise UserError("LiteLLM: the model name must be a non-empty string such as 'openai/gpt-4o'")
    provider, _, rest = name.partition("/")
    if provider in PROVIDERS and rest:
        url, key_var = PROVIDERS[provider]
        if api_base is None and url is None:
            raise UserError(f"LiteLLM: '{provider}/...' names your own server; pass api_base='http://HOST:PORT/v1'")
        return rest, api_base or url, os.environ.get(key_var) if key_var else None
    if api_base is None:
        raise UserError(f"LiteLLM: no provider prefix in '{name}' and no api_base; use one of "
                        f"{', '.join(p + '/' for p in PROVIDERS)} or pass api_base='http://HOST:PORT/v1'")
    return name, api_base, None


class LiteLLM(_Spec):
    """``prometheus_eval.litellm.LiteLLM(name, api_base=None)``: the openai backend, chat API."""

    backend = "openai"

    def __init__(self, name: str, api_base: str | None = None):
        model, base_url, key = route(name, api_base)
        options = {"base_url": base_url, "api": "chat"}
        if key is not None:
            options["api_key"] = key
        super().__init__(model, **options)
        self.name, self.api_base = name, api_base

    def validate_litellm(self):
        return True


class AsyncLiteLLM(LiteLLM):
    """``AsyncLiteLLM(name, batch_size=100, requests_per_minute=100, api_base=None)``: ``batch_size``
    requests in flight at once (the backend's ``concurrency``); the rate is the server's to enforce
    (429 answers are retried with backoff)."""

    def __init__(self, name: str, batch_size: int = 100, requests_per_minute: int = 100, api_base: str | None = None):
        super().__init__(name, api_base)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise UserError(f"AsyncLiteLLM: batch_size must be an integer >= 1, got {batch_size!r}")
        self.options["concurrency"] = min(batch_size, 64)
        self.batch_size, self.requests_per_minute = batch_size, requests_per_minute


def PrometheusEval(model, absolute_grade_template: str | None = None, relative_grade_template: str | None = None,
                   **judge_options):
    """``PrometheusEval(model=VLLM(...) | LiteLLM(...) | HF(...) | Backend | model id, ...)``: a :class:`Judge`."""
    from judgeforge.backends import Backend
    from judgeforge.judge import Judge

    if isinstance(model, _Spec):
        backend = model.build()
    elif isinstance(model, (Backend, str)):
        backend = model
    else:
        raise UserError(f"PrometheusEval: model must be VLLM(...), LiteLLM(...), HF(...), a Backend or a model id, "
                        f"not {type(model).__name__}; import them from judgeforge.compat")
    judge = Judge(backend, absolute_grade_template=absolute_grade_template,
                  relative_grade_template=relative_grade_template, **judge_options)
    if isinstance(model, _Spec):
        judge._owns_backend = True  # built here: Judge.close() closes it
    return judge


__all__ = [
    "ABSOLUTE_PROMPT", "ABSOLUTE_PROMPT_WO_REF", "HF", "LiteLLM", "AsyncLiteLLM", "PROVIDERS",
    "PrometheusEval", "RELATIVE_PROMPT", "RELATIVE_PROMPT_WO_REF", "SCORE_RUBRIC_TEMPLATE", "VLLM",
    "check_template", "fill_template", "route",
]
