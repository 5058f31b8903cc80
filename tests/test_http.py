"""judgeforge.http: one keep-alive connection pool and one retry policy, against real servers on 127.0.0.1."""

from __future__ import annotations

import time

import pytest
from openai_stub import ScriptedOpenAIServer

from judgeforge.errors import UserError


def _backend(srv, **kw):
    from judgeforge.backends.openai import OpenAIBackend

    kw.setdefault("backoff", 0.01)
    return OpenAIBackend("stub-model", base_url=srv.base_url, chat_format="mistral", **kw)


def _requests(k):
    from judgeforge.backends import Request

    return [Request("absolute", f"question {i}") for i in range(k)]


def test_connections_are_kept_alive_and_reused():
    from judgeforge.backends import Sampling

    with ScriptedOpenAIServer(lambda kind, body, no: "Feedback: ok [RESULT] 4") as srv:
        b = _backend(srv, concurrency=1)
        assert b.generate(_requests(6), Sampling()) == [["Feedback: ok [RESULT] 4"]] * 6
        b.generate(_requests(2), Sampling())  # a later call reuses the pool too
        assert len(srv.requests) == 8 and srv.connections == 1  # urllib opened one per request
        b.close()
        b4 = _backend(srv, concurrency=4)
        b4.generate(_requests(24), Sampling())
        assert 1 <= srv.connections - 1 <= 4  # at most `concurrency` connections for 24 requests


def test_retry_policy_retryable_statuses_then_success():
    from judgeforge.backends import Sampling

    script = {1: (503, {"error": {"message": "loading"}}), 2: (429, {"error": {"message": "slow down"}}),
              3: (500, "oops")}
    with ScriptedOpenAIServer(lambda kind, body, no: script.get(no, "done")) as srv:
        b = _backend(srv, max_retries=3)
        assert b.generate(_requests(1), Sampling()) == [["done"]]
        assert b.calls == 4 and srv.connections == 1  # error replies keep the connection too


def test_retry_after_is_honoured_and_bad_requests_fail_at_once():
    from judgeforge.backends import Sampling
    from judgeforge.backends.openai import EndpointError

    replies = {1: (429, {"error": {"message": "rate"}}, {"Retry-After": "0.6"})}
    with ScriptedOpenAIServer(lambda kind, body, no: replies.get(no, "ok")) as srv:
        b = _backend(srv, max_retries=2)
        t = time.perf_counter()
        assert b.generate(_requests(1), Sampling()) == [["ok"]]
        assert time.perf_counter() - t >= 0.55  # waited Retry-After, not the 0.01 s backoff
    with ScriptedOpenAIServer(lambda kind, body, no: (401, {"error": {"message": "bad key"}})) as srv:
        b = _backend(srv, max_retries=5)
        with pytest.raises(EndpointError, match=r"HTTP 401: bad key; check the model name") as e:
            b.generate(_requests(1), Sampling())
        assert b.calls == 1 and "\n" not in str(e.value)
    with ScriptedOpenAIServer(lambda kind, body, no: (502, "gateway")) as srv:
        b = _backend(srv, max_retries=2)
        with pytest.raises(EndpointError, match=r"failed after 3 attempts \(last: HTTP 502: gateway\)"):
            b.generate(_requests(1), Sampling())
        assert len(srv.requests) == 3


def test_connection_refused_is_retried_then_one_line():
    import socket

    from judgeforge.http import HTTPClient, HTTPFailure

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    client = HTTPClient(timeout=2, max_retries=2, backoff=0.01)
    with pytest.raises(HTTPFailure, match=r"failed after 3 attempts \(last: cannot connect") as e:
        client.post_json(f"http://127.0.0.1:{port}/v1/completions", {}, where="test")
    assert client.calls == 3 and e.value.status is None


def test_reward_client_uses_the_pool_and_names_the_server():
    from judgeforge.serve.reward import HTTPJudgeReward

    with ScriptedOpenAIServer(lambda kind, body, no: "x") as srv:
        url = srv.base_url.rsplit("/v1", 1)[0]
        reward = HTTPJudgeReward(url, retries=1, backoff=0.01)
        with pytest.raises(UserError, match=r"^reward: the judge server at .* answered HTTP 404: not found$"):
            reward(["p"], ["c"])
        with pytest.raises(UserError):
            reward(["p"], ["c"])
        assert srv.connections == 1


@pytest.mark.parametrize("kw, msg", [({"max_retries": -1}, "max_retries must be an integer >= 0"),
                                     ({"timeout": 0}, "timeout must be a number of seconds > 0")])
def test_bad_options_are_one_line(kw, msg):
    from judgeforge.http import HTTPClient

    with pytest.raises(UserError, match=msg):
        HTTPClient(**kw)
