"""The Python judge API (judgeforge.Judge): prometheus-eval's shape on the real backends.

Models: a tiny scripted judge (real transformers model whose weights make it answer
"Fine; Result: A. Score=3"), the conftest's tiny random model (never parses: the failure
path), and the openai backend against the scripted OpenAI-compatible loopback server
(answers that depend on the input, and retries).
"""

from __future__ import annotations

import re

import pytest

from judgeforge.errors import UserError
from judgeforge.format.prompts import (
    PRESET_RUBRICS,
    Rubric,
    render_absolute,
    render_relative,
    render_rubric,
)

SHORT = {"temperature": 0.0, "max_new_tokens": 12}  # greedy: no top-p sort over 32k logits


class Recording:
    """Wraps a real backend and keeps every request it was asked to generate for."""

    def __new__(cls, inner):
        from judgeforge.backends import Backend

        class _Rec(Backend):
            name = "recording"

            def __init__(self):
                self.inner = inner
                self.calls = []

            def generate(self, requests, sampling, n=1):
                self.calls.append(list(requests))
                return self.inner.generate(requests, sampling, n)

            @property
            def deterministic_greedy(self):
                return self.inner.deterministic_greedy

            def describe(self):
                return "rec:" + self.inner.describe()

        return _Rec()


@pytest.fixture(scope="module")
def hf_backend(scripted_dir):
    from judgeforge.backends import get_backend

    return get_backend("hf", str(scripted_dir), device="cpu")


@pytest.fixture()
def rec(hf_backend):
    return Recording(hf_backend)


def test_single_items_return_one_feedback_and_one_result(rec):
    from judgeforge import Judge

    judge = Judge(backend=rec, sampling=SHORT)
    feedback, score = judge.absolute_grade("What is 2+2?", "4", "helpfulness")
    assert (feedback, score) == ("Fine; Result: A.", 3)
    assert judge.last_errors == [None]
    feedback, winner = judge.relative_grade("What is 2+2?", "4", "5", "helpfulness", reference_answer="4")
    assert (feedback, winner) == ("Fine;", "A")
    # prometheus-eval's names and keyword style
    assert judge.single_absolute_grade(instruction="q", response="r", rubric="honesty", params={"max_tokens": 12, "temperature": 0}) \
        == ("Fine; Result: A.", 3)
    # each call rendered exactly the training prompt
    (a,), (r,), (a2,) = rec.calls
    assert a.mode == "absolute" and a.instruction == render_absolute("What is 2+2?", "4", PRESET_RUBRICS["helpfulness"])
    assert r.mode == "relative"
    assert r.instruction == render_relative("What is 2+2?", "4", "5", PRESET_RUBRICS["helpfulness"], "4")
    assert "###Reference Answer:\n4\n\n###Score Rubric:\n[Does the model provide" in r.instruction
    assert a2.instruction == render_absolute("q", "r", PRESET_RUBRICS["honesty"])


def test_batch_with_and_without_reference_answers_in_one_call(rec):
    from judgeforge import Judge

    judge = Judge(backend=rec, sampling=SHORT)
    instr = ["q1", "q2", "q3"]
    resp = ["r1", "r2", "r3"]
    refs = ["ref1", None, "ref3"]
    feedbacks, scores = judge.absolute_grade(instr, resp, "reasoning", reference_answers=refs)
    assert scores == [3, 3, 3] and feedbacks == ["Fine; Result: A."] * 3
    assert len(rec.calls) == 1 and len(rec.calls[0]) == 3  # one backend call for the batch
    got = [q.instruction for q in rec.calls[0]]
    want = [render_absolute(i, r, PRESET_RUBRICS["reasoning"], ref) for i, r, ref in zip(instr, resp, refs)]
    assert got == want
    assert "###Reference Answer (Score 5):\nref1" in got[0] and "Reference Answer" not in got[1]
    feedbacks, winners = judge.relative_grade(instr, resp, ["b1", "b2", "b3"], "harmlessness", refs)
    assert winners == ["A", "A", "A"] and len(feedbacks) == 3
    assert [q.instruction for q in rec.calls[1]] == [
        render_relative(i, a, b, PRESET_RUBRICS["harmlessness"], ref)
        for i, a, b, ref in zip(instr, resp, ["b1", "b2", "b3"], refs)
    ]


@pytest.mark.parametrize("preset", sorted(PRESET_RUBRICS))
def test_every_preset_renders_its_rubric(rec, preset):
    from judgeforge.judge import Judge

    judge = Judge(backend=rec, sampling=SHORT)
    reqs = judge.absolute_requests(["q"], ["r"], preset)
    assert f"###Score Rubrics:\n{render_rubric(PRESET_RUBRICS[preset])}\n\n###Feedback: " in reqs[0].instruction
    reqs = judge.relative_requests(["q"], ["a"], ["b"], preset)
    assert reqs[0].instruction.endswith(f"###Score Rubric:\n[{PRESET_RUBRICS[preset].criteria}]\n\n###Feedback: ")


def test_custom_rubrics_in_every_form(rec, tmp_path):
    from judgeforge.judge import Judge

    judge = Judge(backend=rec, sampling=SHORT)
    descs = ("bad", "poor", "fair", "good", "great")
    rub = Rubric("Is it concise?", descs)
    as_dict = {"criteria": "Is it concise?", **{f"score{i}_description": d for i, d in enumerate(descs, 1)}}
    rendered = render_rubric(rub)
    forms = [rub, as_dict, rendered]
    texts = {judge.absolute_requests(["q"], ["r"], f)[0].instruction for f in forms}
    assert texts == {render_absolute("q", "r", rub)}
    # one rubric per item, including the alias "factual validity"
    reqs = judge.absolute_requests(["q", "q"], ["r", "r"], [rub, "factual validity"])
    assert reqs[0].instruction == render_absolute("q", "r", rub)
    assert reqs[1].instruction == render_absolute("q", "r", PRESET_RUBRICS["factual_validity"])
    # relative grading needs the criteria only
    rel = judge.relative_requests(["q"], ["a"], ["b"], "Is the response concise?")[0].instruction
    assert rel == render_relative("q", "a", "b", Rubric("Is the response concise?"))
    # a rubric YAML file (judgeforge.format.rubric_file's format)
    from judgeforge.format.rubric_file import rubric_to_yaml

    path = tmp_path / "concise.yaml"
    path.write_text(rubric_to_yaml(rub, name="concise"))
    assert judge.absolute_requests(["q"], ["r"], str(path))[0].instruction == render_absolute("q", "r", rub)
    # and the answers still come back for a custom rubric
    assert judge.absolute_grade(["q"], ["r"], as_dict) == (["Fine; Result: A."], [3])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda j: j.absolute_grade(["q"], ["r"], "helpfulnes"), "did you mean 'helpfulness'"),
        (lambda j: j.absolute_grade(["q"], ["r"], "Is it concise?"), "needs the five score descriptions"),
        (lambda j: j.absolute_grade(["q"], ["r"], {"criteria": "x", "score1_description": "a"}),
         "gives 1 of the 5 score descriptions"),
        (lambda j: j.absolute_grade(["q"], ["r"], {"criterion": "x"}), "did you mean 'criteria'"),
        (lambda j: j.absolute_grade(["q", "q2"], ["r"], "helpfulness"), "responses has 1 items but instructions has 2"),
        (lambda j: j.absolute_grade("q", ["r"], "helpfulness"), "a single instruction needs a single response"),
        (lambda j: j.absolute_grade(["q"], [3], "helpfulness"), "responses[0] must be a string"),
        (lambda j: j.relative_grade(["q"], ["a"], ["b"], ["helpfulness", "honesty"]), "rubric has 2 entries"),
        (lambda j: j.absolute_grade(["q"], ["r"], "helpfulness", params={"temprature": 0}),
         "did you mean 'temperature'"),
        (lambda j: j.absolute_grade(["q"], ["r"], "helpfulness", reference_answers=["a", "b"]),
         "reference_answers has 2 items"),
    ],
)
def test_user_mistakes_are_one_clear_line(rec, call, message):
    from judgeforge.judge import Judge

    judge = Judge(backend=rec, sampling=SHORT)
    with pytest.raises(UserError, match=re.escape(message)):
        call(judge)
    assert rec.calls == []  # nothing was generated


def test_judge_construction_mistakes():
    from judgeforge.judge import Judge

    with pytest.raises(UserError, match="unknown backend 'hff'"):
        Judge("some/model", backend="hff")
    with pytest.raises(UserError, match="needs a model"):
        Judge()
    with pytest.raises(UserError, match="retries must be an integer"):
        Judge("x", backend=Recording(None), retries=-1)


def test_failures_come_back_as_none_with_the_reason(tiny_model):
    """The random tiny model never writes a grade: every item fails, none is dropped."""
    from judgeforge import Judge

    with Judge(str(tiny_model), sampling={"max_new_tokens": 3, "seed": 0}, retries=2, device="cpu") as judge:
        feedbacks, scores = judge.absolute_grade(["q1", "q2"], ["r1", "r2"], "helpfulness")
        assert feedbacks == [None, None] and scores == [None, None]
        assert all(e and "no [RESULT] tag" in e for e in judge.last_errors)
        assert [s.attempts for s in judge.last_samples] == [3, 3]  # 1 + 2 retries
        assert all(isinstance(s.output, str) for s in judge.last_samples)  # the raw text is kept
        # greedy on a deterministic backend: a retry would repeat itself, so none is made
        judge.absolute_grade(["q"], ["r"], "helpfulness", sampling={"temperature": 0, "max_new_tokens": 3})
        assert [s.attempts for s in judge.last_samples] == [1]


def test_shared_backend_is_not_closed_by_the_judge(hf_backend):
    from judgeforge import Judge

    closed = []
    rec = Recording(hf_backend)
    rec.close = lambda: closed.append(True)
    with Judge(backend=rec, sampling=SHORT) as j1:
        assert j1.absolute_grade("q", "r", "honesty")[1] == 3
    assert closed == []
    with pytest.raises(UserError, match="only apply when the Judge builds"):
        Judge(backend=rec, device="cpu")


def _score_from_prompt(body) -> str:
    """Scripted OpenAI endpoint: the score is the digit after 'score=' in the response."""
    prompt = body.get("prompt") or body["messages"][-1]["content"]
    if "###Response A:" in prompt:
        a = prompt.split("###Response A:\n", 1)[1].split("\n\n###Response B:", 1)[0]
        b = prompt.split("###Response B:\n", 1)[1].split("\n\n###", 1)[0]
        return f"Compared. [RESULT] {'A' if len(a) >= len(b) else 'B'}"
    response = prompt.split("###Response to evaluate:\n", 1)[1].split("\n\n###", 1)[0]
    m = re.search(r"score=(\d)", response)
    return f"Feedback for {response}. [RESULT] {m.group(1)}" if m else "no grade here"


def test_openai_backend_answers_follow_the_inputs_and_failures_are_retried():
    from openai_stub import ScriptedOpenAIServer

    from judgeforge import Judge

    calls = {}

    def reply(kind, body, call_no):
        text = _score_from_prompt(body)
        key = body.get("prompt")
        calls[key] = calls.get(key, 0) + 1
        if "flaky" in key and calls[key] == 1:
            return "I cannot decide"  # parses on the second try
        return text

    with ScriptedOpenAIServer(reply) as srv:
        judge = Judge("stub-model", backend="openai", base_url=srv.base_url, chat_format="mistral", retries=2, concurrency=4,
                      backoff=0.01)
        responses = ["score=5 yes", "score=1 no", "flaky score=4", "never parses"]
        feedbacks, scores = judge.absolute_grade(instructions=["q"] * 4, responses=responses, rubric="helpfulness",
                                                 params={"temperature": 1.0, "max_tokens": 32})
        assert scores == [5, 1, 4, None]
        assert feedbacks[0] == "Feedback for score=5 yes." and feedbacks[3] is None
        assert [s.attempts for s in judge.last_samples] == [1, 1, 2, 3]
        assert "no [RESULT] tag" in judge.last_errors[3]
        _, winners = judge.relative_grade(["q", "q"], ["long answer", "a"], ["b", "much longer"], "Is it long?")
        assert winners == ["A", "B"]
