"""prometheus-eval 0.1.20's call shapes on Judge, checked against the installed package's own files.

The package is installed with --no-deps (its __init__ imports fastchat/litellm/vllm), so its
signatures are read from the source with ``ast`` rather than imported; its prompt strings come
from tests/official.py.  Calls run on the scripted tiny judge (a real transformers model) and
on the OpenAI-compatible loopback server.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
from pathlib import Path

import pytest
from official import REASON, official_prompts
from openai_stub import ScriptedOpenAIServer

from judgeforge.errors import UserError

GREEDY = {"max_tokens": 12, "temperature": 0.0, "top_p": 1.0, "repetition_penalty": 1.0, "best_of": 1}


def _source(name: str) -> ast.Module:
    spec = importlib.util.find_spec("prometheus_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(REASON)
    return ast.parse((Path(list(spec.submodule_search_locations)[0]) / f"{name}.py").read_text())


def _signatures(module: str) -> dict[str, list[str]]:
    """``{"Class.method": [parameter names but self]}`` from the package's source."""
    out = {}
    for cls in (n for n in _source(module).body if isinstance(n, ast.ClassDef)):
        for f in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
            a = f.args
            out[f"{cls.name}.{f.name}"] = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs][1:]
    return out


def test_every_official_keyword_is_accepted():
    from judgeforge import compat
    from judgeforge.judge import Judge

    sig = _signatures("judge")
    for method in ("absolute_grade", "relative_grade", "single_absolute_grade", "single_relative_grade"):
        ours = inspect.signature(getattr(Judge, method)).parameters
        for name in sig[f"PrometheusEval.{method}"]:
            assert name in ours and ours[name].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                        inspect.Parameter.KEYWORD_ONLY), (method, name)
    assert sig["PrometheusEval.__init__"] == ["model", "absolute_grade_template", "relative_grade_template"]
    assert list(inspect.signature(compat.PrometheusEval).parameters)[:3] == sig["PrometheusEval.__init__"]
    for module, cls in (("vllm", "VLLM"), ("litellm", "LiteLLM"), ("litellm", "AsyncLiteLLM")):
        official = _signatures(module)[f"{cls}.__init__"]
        ours = [p for p in inspect.signature(getattr(compat, cls)).parameters if p != "vllm_kwargs"]
        assert ours == official, cls


def test_official_default_params_and_templates():
    from judgeforge.backends import Sampling
    from judgeforge.compat import (
        ABSOLUTE_PROMPT,
        ABSOLUTE_PROMPT_WO_REF,
        RELATIVE_PROMPT,
        RELATIVE_PROMPT_WO_REF,
        SCORE_RUBRIC_TEMPLATE,
    )
    from judgeforge.judge import make_sampling

    # batch_completions_with_retries' default params dict, as written in the package
    fn = next(n for n in _source("utils").body if isinstance(n, ast.FunctionDef)
              and n.name == "batch_completions_with_retries")
    default = next(ast.literal_eval(n.value) for n in ast.walk(fn) if isinstance(n, ast.Assign)
                   and isinstance(n.value, ast.Dict))
    assert "best_of" in default and make_sampling(default) == Sampling()  # the paper's decoding
    make_sampling({**default, "use_tqdm": True})
    with pytest.raises(UserError, match=r"best_of=2 is not supported .*set 1"):
        make_sampling({"best_of": 2})
    with pytest.raises(UserError, match="unknown sampling setting 'top_k'"):
        make_sampling({"top_k": 5})
    p = official_prompts()
    assert (ABSOLUTE_PROMPT, ABSOLUTE_PROMPT_WO_REF) == (p.ABSOLUTE_PROMPT, p.ABSOLUTE_PROMPT_WO_REF)
    assert (RELATIVE_PROMPT, RELATIVE_PROMPT_WO_REF) == (p.RELATIVE_PROMPT, p.RELATIVE_PROMPT_WO_REF)
    assert SCORE_RUBRIC_TEMPLATE == p.SCORE_RUBRIC_TEMPLATE


class _Recorder:
    def __new__(cls, inner):
        from judgeforge.backends import Backend

        class _Rec(Backend):
            name = "rec"
            deterministic_greedy = True

            def __init__(self):
                self.calls = []

            def generate(self, requests, sampling, n=1):
                self.calls.extend(requests)
                return inner.generate(requests, sampling, n)

        return _Rec()


@pytest.fixture(scope="module")
def scripted_backend(scripted_dir):
    from judgeforge.backends import get_backend

    return get_backend("hf", str(scripted_dir), device="cpu")


def test_the_seven_calls_users_write(scripted_backend, scripted_dir):
    from judgeforge.compat import ABSOLUTE_PROMPT, HF, RELATIVE_PROMPT, PrometheusEval

    p = official_prompts()
    rubric = p.SCORE_RUBRIC_TEMPLATE.format(criteria="Is it right?", **{f"score{i}_description": f"d{i}"
                                                                       for i in range(1, 6)})
    rec = _Recorder(scripted_backend)
    judge = PrometheusEval(model=rec, absolute_grade_template=ABSOLUTE_PROMPT,
                           relative_grade_template=RELATIVE_PROMPT)
    fb, scores = judge.absolute_grade(instructions=["q1", "q2"], responses=["r1", "r2"], rubric=rubric,
                                      reference_answers=["a1", "a2"], params=GREEDY)
    assert scores == [3, 3] and fb == ["Fine; Result: A."] * 2
    fb, wins = judge.relative_grade(instructions=["q"], responses_A=["x"], responses_B=["y"], rubric=rubric,
                                    reference_answers=["a"], params=GREEDY)
    assert wins == ["A"]
    assert judge.single_absolute_grade(instruction="q", response="r", rubric=rubric, reference_answer="a",
                                       params=GREEDY)[1] == 3
    assert judge.single_relative_grade(instruction="q", response_A="x", response_B="y", rubric=rubric,
                                       reference_answer="a", params=GREEDY)[1] == "A"
    # each prompt is the package's template.format(...), byte for byte
    assert rec.calls[0].instruction == p.ABSOLUTE_PROMPT.format(instruction="q1", response="r1", rubric=rubric,
                                                                reference_answer="a1")
    assert rec.calls[2].instruction == p.RELATIVE_PROMPT.format(instruction="q", response_A="x", response_B="y",
                                                                rubric=rubric, reference_answer="a")
    # the model wrapper form builds the backend itself (HF: no vLLM on this machine)
    with PrometheusEval(model=HF(str(scripted_dir), device="cpu")) as own:
        assert own.single_absolute_grade("q", "r", "helpfulness", params=GREEDY)[1] == 3
    with pytest.raises(UserError, match=r"^absolute_grade_template: unknown placeholder \{answer\}; a absolute"):
        PrometheusEval(model=rec, absolute_grade_template="{instruction} {response} {rubric} {answer}")
    with pytest.raises(UserError, match=r"^item 0: the template has \{reference_answer\} but this item has none"):
        judge.single_absolute_grade("q", "r", rubric, params=GREEDY)
    with pytest.raises(UserError, match=r"give responses_a= or responses_A="):
        judge.relative_grade(["q"], ["x"], ["y"], rubric, responses_A=["x"])
    with pytest.raises(UserError, match=r"PrometheusEval: model must be VLLM"):
        PrometheusEval(model=3.5)


def test_litellm_form_over_http_and_provider_routing(monkeypatch):
    from judgeforge.compat import AsyncLiteLLM, LiteLLM, PrometheusEval, route

    with ScriptedOpenAIServer(lambda kind, body, no: "Looks fine. [RESULT] B") as srv:
        judge = PrometheusEval(model=LiteLLM("hosted_vllm/stub-model", api_base=srv.base_url))
        fb, win = judge.single_relative_grade(instruction="q", response_A="x", response_B="y",
                                              rubric="Which is better?", params=GREEDY)
        assert win == "B" and fb == "Looks fine."
        kind, body = srv.requests[0]
        assert kind == "chat" and body["model"] == "stub-model" and body["max_tokens"] == 12
        judge = PrometheusEval(model=AsyncLiteLLM("hosted_vllm/stub-model", batch_size=4, api_base=srv.base_url))
        assert judge.relative_grade(instructions=["q"] * 3, responses_A=["x"] * 3, responses_B=["y"] * 3,
                                    rubric="Which?", params=GREEDY)[1] == ["B"] * 3
    monkeypatch.setenv("OPENROUTER_API_KEY", "k1")
    assert route("openrouter/meta-llama/llama-3-70b", None) == ("meta-llama/llama-3-70b", "https://openrouter.ai/api/v1", "k1")
    assert route("my-model", "http://h:1/v1") == ("my-model", "http://h:1/v1", None)
    with pytest.raises(UserError, match=r"^LiteLLM: no provider prefix in 'gpt-4' and no api_base; use one of openai/"):
        route("gpt-4", None)
