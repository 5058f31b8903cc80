"""The reward hook: score -> reward mapping, TRL's reward-function signature in process and
over HTTP (a real judge server on 127.0.0.1), and the GRPO example with TRL's GRPOTrainer."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from judgeforge.errors import UserError
from judgeforge.serve.reward import (
    HTTPJudgeReward,
    JudgeReward,
    conversation_to_text,
    judge_reward,
    rewards_from_scores,
    score_to_reward,
)

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- mapping


def test_score_to_reward_and_affine_map():
    assert [score_to_reward(s) for s in (1, 2, 3, 4, 5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert rewards_from_scores([1, 5, None]) == [0.0, 1.0, 0.0]
    assert rewards_from_scores([1, 3, 5], scale=2, shift=-1) == [-1.0, 0.0, 1.0]
    assert rewards_from_scores([2, None], failure_reward=None) == [0.25, None]
    assert rewards_from_scores([2, None], failure_reward=-0.5) == [0.25, -0.5]


def test_zscore_uses_only_graded_items():
    r = rewards_from_scores([1, 3, None, 5], normalize="zscore")
    std = (8 / 3) ** 0.5
    assert r == pytest.approx([-2 / std, 0.0, 0.0, 2 / std])
    assert rewards_from_scores([4, 4, 4], normalize="zscore") == [0.0, 0.0, 0.0]  # std 0
    assert rewards_from_scores([None, None], normalize="zscore", failure_reward=None) == [None, None]
    assert rewards_from_scores([1, 5], normalize="zscore", scale=0.5, shift=1) == [0.5, 1.5]


@pytest.mark.parametrize("kw, msg", [
    ({"normalize": "minmax"}, "normalize must be one of none, zscore"),
    ({"scale": float("nan")}, "scale must be a finite number"),
    ({"shift": "1"}, "shift must be a finite number"),
    ({"failure_reward": True}, "failure_reward must be a finite number or null"),
])
def test_bad_reward_settings(kw, msg):
    with pytest.raises(UserError, match=re.escape(msg)):
        rewards_from_scores([3], **kw)


def test_conversation_to_text():
    assert conversation_to_text("plain") == "plain"
    assert conversation_to_text([{"role": "user", "content": "Hi?"}]) == "Hi?"
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye?"}]
    assert conversation_to_text(conv) == "System: Be brief.\n\nUser: Hi?\n\nAssistant: Hello.\n\nUser: Bye?"
    assert conversation_to_text([{"role": "assistant", "content": "A"}, {"role": "assistant", "content": "B"}],
                                role="completion") == "A\nB"
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "x"}, {"type": "image"},
                                               {"type": "text", "text": "y"}]}]
    assert conversation_to_text(parts, role="completion") == "xy"
    with pytest.raises(UserError, match="a prompt must be a string or a list of chat messages"):
        conversation_to_text({"content": "x"})


# --------------------------------------------------------------------------- in process and over HTTP


def _stub_reply(kind, body, call_no):
    prompt = body.get("prompt") or body["messages"][-1]["content"]
    response = prompt.split("###Response to evaluate:\n", 1)[1].split("\n\n###", 1)[0]
    ref = "with ref" if "###Reference Answer (Score 5):" in prompt else "no ref"
    m = re.search(r"score=(\d)", response)
    return f"{ref}. [RESULT] {m.group(1)}" if m else "no grade"


@pytest.fixture(scope="module")
def stub_judge():
    from openai_stub import ScriptedOpenAIServer

    from judgeforge import Judge

    with ScriptedOpenAIServer(_stub_reply) as api:
        yield Judge("stub-model", backend="openai", base_url=api.base_url, chat_format="mistral", retries=0, concurrency=8,
                    max_retries=0)


@pytest.fixture(scope="module")
def stub_server(stub_judge):
    from judgeforge.serve import JudgeServer, ServerConfig

    with JudgeServer(stub_judge, ServerConfig(port=0, max_items=4, batch_wait_ms=0)) as srv:
        yield srv


PROMPTS = ["p0", [{"role": "user", "content": "p1"}], "p2", "p3", "p4"]
COMPLETIONS = ["score=5", [{"role": "assistant", "content": "score=1"}], "score=4", "nothing", "score=2"]


def test_in_process_reward_function_has_trls_signature(stub_judge):
    fn = judge_reward(stub_judge, rubric="helpfulness")
    assert isinstance(fn, JudgeReward) and fn.__name__ == "judge_reward"
    # TRL passes dataset columns and its own extras as keyword arguments
    rewards = fn(prompts=PROMPTS, completions=COMPLETIONS, completion_ids=[[1]] * 5, trainer_state=None,
                 reference_answer=["r", None, "r", "r", None], log_extra=None)
    assert rewards == [1.0, 0.0, 0.75, 0.0, 0.25]
    assert [r["score"] for r in fn.last_results] == [5, 1, 4, None, 2]
    assert [r["feedback"] for r in fn.last_results] == ["with ref.", "no ref.", "with ref.", None, "no ref."]
    assert fn.last_results[3]["error"]
    assert fn([], []) == []
    with pytest.raises(UserError, match="2 prompts but 1 completions"):
        fn(["a", "b"], ["c"])
    with pytest.raises(UserError, match="did you mean 'reasoning'"):
        judge_reward(stub_judge, rubric="reasoninng")


def test_http_reward_matches_in_process_and_chunks_do_not_change_zscores(stub_judge, stub_server):
    kw = dict(rubric="helpfulness", normalize="zscore", failure_reward=None)
    local = judge_reward(stub_judge, **kw)(PROMPTS, COMPLETIONS)
    remote_fn = judge_reward(stub_server.url, chunk_size=2, **kw)
    assert isinstance(remote_fn, HTTPJudgeReward)
    before = stub_server.batcher.stats()["items"]
    remote = remote_fn(PROMPTS, COMPLETIONS)
    assert remote == pytest.approx(local, nan_ok=True) and remote[3] is None
    assert sum(x for x in remote if x is not None) == pytest.approx(0.0, abs=1e-9)
    assert stub_server.batcher.stats()["items"] - before == 5  # 3 requests of <= 2 items, all graded
    # a custom Rubric object travels as a dict
    from judgeforge.format.prompts import Rubric

    rub = Rubric("Is it right?", ("1", "2", "3", "4", "5"))
    assert judge_reward(stub_server.url + "/reward", rubric=rub)(["q"], ["score=3"]) == [0.5]


def test_http_reward_errors_are_clear():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fn = HTTPJudgeReward(f"http://127.0.0.1:{port}", retries=1, backoff=0.01, timeout=2)
    with pytest.raises(UserError, match=rf"cannot reach the judge server at http://127.0.0.1:{port} after 2 tries"):
        fn(["q"], ["a"])
    with pytest.raises(UserError, match="must start with http://"):
        judge_reward("127.0.0.1:8765")
    with pytest.raises(UserError, match="needs a Judge or an http:// URL"):
        judge_reward(42)


def test_http_reward_reports_a_4xx_from_the_server(stub_server):
    fn = HTTPJudgeReward(stub_server.url, retries=0, chunk_size=10)  # the server takes 4 items per request
    with pytest.raises(UserError, match="answered HTTP 422: too many items: 5 in one request, the limit is 4"):
        fn(PROMPTS, COMPLETIONS)
    with pytest.raises(UserError, match="did you mean 'helpfulness'"):
        HTTPJudgeReward(stub_server.url, rubric="helpfulnes")


# --------------------------------------------------------------------------- GRPO


def test_grpo_example_runs_with_trls_grpo_trainer(tmp_path, capsys):
    pytest.importorskip("trl", reason="TRL's GRPOTrainer runs the example")
    spec = importlib.util.spec_from_file_location("grpo_example", ROOT / "scripts" / "grpo_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    summary = mod.main(["--out", str(tmp_path), "--steps", "2", "--generations", "2",
                        "--max-completion-length", "4", "--judge-max-new-tokens", "12"])
    assert summary["steps"] == 2
    assert summary["reward_calls"] == 2 and summary["completions_graded"] == 4
    out = capsys.readouterr().out
    calls = [eval(m) for m in re.findall(r"reward call \d+: 2 completions, scores (\[.*?\])", out)]  # noqa: S307
    assert len(calls) == 2 and all(s in (2, 4) for c in calls for s in c)  # the scripted judge's grades
    # TRL logged exactly the mean of the rewards our function returned at each step
    logged = [h["reward"] for h in summary["log"] if "reward" in h]
    assert logged == pytest.approx([sum((s - 1) / 4 for s in c) / len(c) for c in calls])
