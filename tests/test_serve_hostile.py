"""Hostile input against `judgeforge serve`: every case a documented 4xx in one line, nothing lost.

The judge here is a scripted Backend with the real Mistral tokenizer (so prompt lengths are
real token counts) whose answers depend on the text; the server is the real HTTP server on
127.0.0.1.  The signal tests run the CLI as a subprocess in front of tests/openai_stub.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from test_serve import call

from judgeforge.backends import Backend

ROOT = Path(__file__).resolve().parents[1]
GOOD = {"instruction": "q", "response": "r"}


class ScriptedBackend(Backend):
    """Answers 'ok [RESULT] 3'; 'EXPLODE' in a prompt raises, 'SLOW' sleeps 2 s; real token counts."""

    name = "scripted"

    def __init__(self, tokenizer, context: int = 2048):
        self.tokenizer = tokenizer
        self._context = context

    @property
    def context_length(self):
        return self._context

    def prompt_lengths(self, requests):
        return [len(x) for x in self.tokenizer([r.chat_text() for r in requests])["input_ids"]]

    def generate(self, requests, sampling, n=1):
        for r in requests:
            if "EXPLODE" in r.instruction:
                raise RuntimeError("scripted explosion")
        if any("SLOW" in r.instruction for r in requests):
            time.sleep(2.0)
        return [["ok [RESULT] 3"] * n for _ in requests]


@pytest.fixture(scope="module")
def hostile(tokenizer):
    from judgeforge import Judge
    from judgeforge.serve import JudgeServer, ServerConfig

    judge = Judge(ScriptedBackend(tokenizer), sampling={"temperature": 0.0, "max_new_tokens": 64}, retries=0)
    cfg = ServerConfig(port=0, max_batch=8, max_items=4, max_body_bytes=256 * 1024, batch_wait_ms=20,
                       header_timeout=0.6, body_timeout=0.6, request_timeout=1.0, max_connections=6)
    with JudgeServer(judge, cfg) as srv:
        yield srv


def j(o) -> bytes:
    return json.dumps(o).encode()


def nested(depth: int) -> bytes:
    return b'{"items": [' + b"[" * depth + b"]" * depth + b"]}"


HOSTILE = [
    # (case, path, raw body, status, message fragment)
    ("rubric as a list (path)", "/grade/absolute", j({"rubric": ["/etc/r.yaml"], "items": [GOOD]}), 422,
     "rubric must be a preset name or a rubric object"),
    ("item rubric as a list", "/grade/absolute", j({"items": [{**GOOD, "rubric": ["/etc/r.yaml"]}]}), 422,
     "items[0].rubric must be a preset name or a rubric object"),
    ("relative rubric list", "/grade/relative", j({"rubric": ["r.yaml"], "items": [
        {"instruction": "q", "response_a": "a", "response_b": "b"}]}), 422, "rubric must be a preset name"),
    ("reward rubric list", "/reward", j({"rubric": ["r.yaml"], "items": [{"prompt": "p", "response": "r"}]}), 422,
     "rubric must be a preset name"),
    ("rubric path string", "/reward", j({"rubric": "/etc/r.yaml", "items": [{"prompt": "p", "response": "r"}]}), 422,
     "rubric: the server does not read rubric files named by clients"),
    ("rubric null", "/grade/absolute", j({"rubric": None, "items": [GOOD]}), 422, "rubric must be a preset name"),
    ("rubric number", "/grade/absolute", j({"items": [{**GOOD, "rubric": 5}]}), 422, "items[0].rubric must be"),
    ("lone surrogate", "/grade/absolute", b'{"items": [{"instruction": "q", "response": "a\\ud800b"}]}', 422,
     "items[0].response: the text is not valid Unicode (a lone surrogate \\ud800 at character 1)"),
    ("surrogate in id", "/grade/absolute", b'{"items": [{"instruction": "q", "response": "r", "id": "\\udfff"}]}',
     422, "items[0].id: the text is not valid Unicode"),
    ("surrogate in a message", "/reward",
     b'{"items": [{"prompt": [{"role": "user", "content": [{"text": "\\ud83d"}]}], "response": "r"}]}', 422,
     "items[0].prompt[0].content[0].text: the text is not valid Unicode"),
    ("surrogate in a key", "/grade/absolute", b'{"items": [{"instruction": "q", "response": "r", "\\ud800": 1}]}',
     422, "items[0] (a field name): the text is not valid Unicode"),
    ("prompt over the context", "/grade/absolute", j({"items": [GOOD, {"instruction": "q",
                                                                      "response": "word " * 30_000}]}), 422,
     "items[1]: the prompt is"),
    ("deep nesting", "/grade/absolute", nested(100_000), 400, "nested too deeply"),
    ("nesting just over the limit", "/grade/absolute", nested(40), 400, "at most 32 levels"),
    ("5000-digit integer", "/reward", b'{"items": [{"prompt": "p", "response": "r"}], "scale": ' + b"7" * 5000
     + b"}", 400, "5000-digit number"),
    ("NaN", "/reward", b'{"items": [{"prompt": "p", "response": "r"}], "scale": NaN}', 400, "NaN, which is not JSON"),
    ("infinite float", "/reward", b'{"items": [{"prompt": "p", "response": "r"}], "shift": 1e999}', 422,
     "shift must be a finite number"),
    ("reward past the largest float", "/reward", j({"items": [{"prompt": "p", "response": "r"}], "scale": 1.7e308,
                                                    "shift": 1.7e308}), 422, "scale and shift overflow the reward"),
    ("boolean as number", "/reward", j({"items": [{"prompt": "p", "response": "r"}], "scale": True}), 422,
     "scale must be a number, not a boolean"),
    ("empty rubric", "/grade/absolute", j({"rubric": "", "items": [GOOD]}), 422, "rubric is empty"),
    ("line break in a field name (found by the fuzz)", "/grade/absolute", j({"items": [GOOD], "a\nb": 1}), 422,
     "unknown field 'a\\nb'"),
]


def test_hostile_inputs_are_one_line_4xx_and_nothing_is_lost(hostile, tmp_path):
    before = hostile.batcher.stats()
    for case, path, raw, status, fragment in HOSTILE:
        got, ans = call(hostile.url, "POST", path, raw=raw)
        msg = ans["error"]["message"]
        assert got == status and ans["error"]["status"] == status, (case, ans)
        assert fragment in msg, (case, msg)
        assert "\n" not in msg and "Traceback" not in msg, (case, msg)
    # a rubric path gets the same answer whether the file exists and parses or not
    from judgeforge.format.prompts import Rubric
    from judgeforge.format.rubric_file import rubric_to_yaml

    real = tmp_path / "rubric.yaml"
    real.write_text(rubric_to_yaml(Rubric("Kind?", ("a", "b", "c", "d", "e"))))
    (tmp_path / "broken.yaml").write_text("{{{")
    answers = {call(hostile.url, "POST", "/grade/absolute", {"rubric": p, "items": [GOOD]})[1]["error"]["message"]
               for p in (str(real), str(tmp_path / "broken.yaml"), str(tmp_path / "missing.yaml"))}
    assert len(answers) == 1
    # nothing was batched by any of them, and the server still grades
    assert hostile.batcher.stats()["items"] == before["items"]
    got, ans = call(hostile.url, "POST", "/grade/absolute", {"items": [GOOD, GOOD]})
    assert got == 200 and [r["score"] for r in ans["results"]] == [3, 3]


def test_a_bad_item_and_a_slow_batch_hurt_only_their_own_request(hostile):
    answers: dict = {}
    barrier = threading.Barrier(3)

    def client(k, items):
        barrier.wait()
        answers[k] = call(hostile.url, "POST", "/grade/absolute", {"items": items})

    bodies = {0: [GOOD, {"instruction": "q", "response": "EXPLODE"}], 1: [GOOD], 2: [GOOD, GOOD]}
    threads = [threading.Thread(target=client, args=kv) for kv in bodies.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert answers[0][0] == 500 and "items[1] of this request: RuntimeError: scripted explosion" in \
        answers[0][1]["error"]["message"]
    assert answers[1][0] == 200 and answers[2][0] == 200 and len(answers[2][1]["results"]) == 2
    # the total request deadline: a batch slower than --request-timeout -> 504 (the server goes on)
    got, ans = call(hostile.url, "POST", "/grade/absolute", {"items": [{"instruction": "q", "response": "SLOW"}]})
    assert got == 504 and "no answer within 1 s" in ans["error"]["message"]


def _read_all(s: socket.socket, limit: float) -> bytes:
    s.settimeout(limit)
    out = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def test_slow_and_idle_connections_are_cut_and_capped(hostile):
    t0 = time.monotonic()
    with socket.create_connection(hostile.address, timeout=5) as s:  # slowloris: headers a byte at a time
        for b in b"POST /reward HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 30:
            try:
                s.send(bytes([b]))
            except OSError:
                break
            time.sleep(0.05)
        got = _read_all(s, 3)
    assert got.startswith(b"HTTP/1.1 408") and b"did not arrive within 0.6 s" in got, got
    assert time.monotonic() - t0 < 3
    with socket.create_connection(hostile.address, timeout=5) as s:  # a body that stalls
        s.sendall(b"POST /reward HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"items\"")
        got = _read_all(s, 3)
    assert got.startswith(b"HTTP/1.1 408") and b"the body did not arrive within 0.6 s" in got, got
    with socket.create_connection(hostile.address, timeout=5) as s:  # an idle connection is closed
        t1 = time.monotonic()
        assert _read_all(s, 3) == b"" and time.monotonic() - t1 < 2
    # the connection cap: 6 open connections, the 7th is answered 503 at once
    idle = [socket.create_connection(hostile.address, timeout=5) for _ in range(6)]
    try:
        time.sleep(0.1)
        with socket.create_connection(hostile.address, timeout=5) as s:
            got = _read_all(s, 2)
        assert got.startswith(b"HTTP/1.1 503") and b"too many open connections (limit 6" in got, got
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 5
    while hostile.health()["connections"] and time.monotonic() < deadline:
        time.sleep(0.05)
    got, _ = call(hostile.url, "GET", "/health")
    assert got == 200


def test_fuzz_the_request_parser(hostile):
    """Random bytes and random JSON through parse + validate + render: a value or a 4xx, nothing else."""
    hypothesis = pytest.importorskip("hypothesis", reason="hypothesis (dev extra) fuzzes the parser")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from judgeforge.serve import HTTPProblem, parse_json

    # text from every Unicode category, lone surrogates included (hypothesis leaves them out by default)
    text = st.text(st.characters(exclude_categories=()), max_size=12)
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | text
    keys = st.sampled_from(["items", "rubric", "instruction", "response", "response_a", "response_b", "prompt",
                            "id", "reference_answer", "scale", "normalize", "criteria", "role", "content"]) | text
    values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(keys, c, max_size=4),
                          max_leaves=8)
    bodies = st.fixed_dictionaries({"items": st.lists(st.dictionaries(keys, values, max_size=5), max_size=3)},
                                   optional={"rubric": values, "scale": values, "normalize": values}) | values
    kinds = st.sampled_from(["absolute", "relative", "reward"])

    def check(kind, raw: bytes):
        try:
            requests, _ = hostile.prepare(kind, parse_json(raw))
        except HTTPProblem as p:
            assert p.status in (400, 422) and "\n" not in p.message and p.message
        else:  # what passed is something the judge can take: encodable prompts, one per item
            assert all(r.chat_text().encode("utf-8") for r in requests)

    # bounded: 200 examples, each within 2 s (on this shared 2-core machine the run takes ~5-25 s)
    @settings(max_examples=200, deadline=timedelta(seconds=2), suppress_health_check=list(HealthCheck),
              database=None, derandomize=True)
    @given(kinds, bodies | st.binary(max_size=200))
    def fuzz(kind, body):
        check(kind, body if isinstance(body, bytes) else json.dumps(body).encode())

    fuzz()
    assert hypothesis.__version__


# --------------------------------------------------------------------------- the command


def test_bad_port_and_backend_options_are_one_line(capsys):
    from judgeforge.cli import main

    for argv, fragment in ((["--port", "99999"], "--port must be 0-65535"),
                           (["--port", "-1"], "--port must be 0-65535"),
                           (["--backend-option", "nope=1"], "the hf backend has no option 'nope'"),
                           (["--backend-option", "batch_sise=4"], "did you mean 'batch_size'"),
                           (["--backend-option", "batch_size=many"], "batch_size must be an integer"),
                           (["--backend", "openai", "--backend-option", "concurrency=x"], "must be an integer"),
                           (["--top-p", "0"], "judgeforge serve: top_p must be in (0, 1], got 0.0"),
                           (["--temperature", "nan"], "temperature must be a finite number"),
                           (["--retries", "-1"], "retries must be an integer >= 0"),
                           (["--header-timeout", "0"], "--header-timeout must be a number of seconds > 0"),
                           (["--inflight-batches", "0"], "--inflight-batches must be an integer >= 1")):
        assert main(["serve", "--judge", "x", *argv]) == 1, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("judgeforge: error: ") and fragment in err[0], (argv, err)


def test_inflight_batches_are_for_remote_backends(tokenizer):
    from judgeforge import Judge
    from judgeforge.errors import UserError
    from judgeforge.serve import JudgeServer, ServerConfig

    judge = Judge(ScriptedBackend(tokenizer), retries=0)
    with pytest.raises(UserError, match="the scripted backend runs one batch at a time"):
        JudgeServer(judge, ServerConfig(port=0, inflight_batches=2))


def _serve(api_url: str, *extra: str) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "judgeforge", "serve", "--judge", "stub-model", "--backend", "openai", "--chat_format", "mistral",
           "--backend-option", f"base_url={api_url}", "--backend-option", "max_retries=0", "--retries", "0",
           "--port", "0", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    line = proc.stdout.readline()
    m = re.search(r"(http://127\.0\.0\.1:\d+)", line)
    if not m:
        proc.kill()
        pytest.fail(f"the server did not start: {line!r} {proc.stderr.read()[-2000:]}")
    return proc, m.group(1)


@pytest.mark.parametrize("signals,code", [(1, 0), (2, 130)])
def test_sigterm_during_generation(signals, code):
    """One SIGTERM while the judge is generating: the batch finishes, its client gets 200, exit 0.
    A second signal: exit 130 at once."""
    from openai_stub import ScriptedOpenAIServer

    with ScriptedOpenAIServer(latency=1.5) as api:
        proc, url = _serve(api.base_url)
        try:
            seen: dict = {}

            def client():
                try:
                    seen["ans"] = call(url, "POST", "/grade/absolute", {"items": [GOOD]}, timeout=20)
                except OSError as e:  # exit 130 drops the connection
                    seen["ans"] = e

            t = threading.Thread(target=client)
            t.start()
            deadline = time.monotonic() + 10
            while api.in_flight == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            t0 = time.monotonic()
            for _ in range(signals):
                proc.send_signal(signal.SIGTERM)
                time.sleep(0.2)
            rc = proc.wait(timeout=20)
            took = time.monotonic() - t0
            t.join(20)
        finally:
            if proc.poll() is None:
                proc.kill()
        err = proc.stderr.read()
        assert rc == code, err
        assert "Traceback" not in err and "terminate called" not in err
        if code == 0:
            status, ans = seen["ans"]
            assert status == 200 and ans["results"][0]["score"] == 3
            assert "stopped after 1 items in 1 batches" in err
        else:
            assert took < 1.2 and "exiting at once (130)" in err


def test_the_http_reward_hook_sends_a_rubric_file_as_the_rubric_itself(hostile, tmp_path):
    """The server reads no client-named files, so the hook reads its own rubric file and sends the content."""
    from judgeforge.format.prompts import Rubric
    from judgeforge.format.rubric_file import rubric_to_yaml
    from judgeforge.serve.reward import judge_reward

    path = tmp_path / "kind.yaml"
    path.write_text(rubric_to_yaml(Rubric("Is it kind?", ("a", "b", "c", "d", "e"))))
    reward = judge_reward(hostile.url, rubric=str(path), retries=0)
    assert reward(["p", "q"], ["r", "s"]) == [0.5, 0.5]


def test_several_batches_in_flight_against_a_slow_remote():
    """--inflight-batches: 3 batches of 2 at once against a 0.5 s endpoint take ~0.5 s, not ~1.5 s."""
    from openai_stub import ScriptedOpenAIServer

    from judgeforge import Judge
    from judgeforge.serve import JudgeServer, ServerConfig

    with ScriptedOpenAIServer(latency=0.5, keep_requests=False) as api:
        judge = Judge("stub-model", backend="openai", base_url=api.base_url, chat_format="mistral", retries=0,
                      max_retries=0, concurrency=2)
        with JudgeServer(judge, ServerConfig(port=0, max_batch=2, batch_wait_ms=0, inflight_batches=3)) as srv:
            t0 = time.monotonic()
            got, ans = call(srv.url, "POST", "/grade/absolute", {"items": [GOOD] * 6})
            took = time.monotonic() - t0
            assert got == 200 and [r["score"] for r in ans["results"]] == [3] * 6
            assert api.in_flight_max == 6 and took < 1.2, (api.in_flight_max, took)
            assert srv.health()["batching"]["workers"] == 3


def test_a_prompt_the_backend_refuses_at_generation_is_422_naming_the_item(scripted_dir):
    """A backend that cannot count prompts before batching (``prompt_lengths`` None, so the server's
    own length check is skipped) refuses an over-long prompt when its batch runs: the client's
    422 naming its item (it was a 500, "the judge failed"), and the other items of the batch run."""
    from judgeforge import Judge
    from judgeforge.backends.hf import HFBackend
    from judgeforge.serve import JudgeServer, ServerConfig

    class Uncounted(HFBackend):
        def prompt_lengths(self, requests):
            return None

    judge = Judge(Uncounted(str(scripted_dir), device="cpu", engine="generate"),
                  sampling={"temperature": 0.0, "max_new_tokens": 12}, retries=0)
    with JudgeServer(judge, ServerConfig(port=0, max_batch=8, batch_wait_ms=0)) as srv:
        assert srv.context_length == 4096
        long = {"instruction": "q", "response": "word " * 4200}
        got, ans = call(srv.url, "POST", "/grade/absolute", {"items": [GOOD, long]})
        msg = ans["error"]["message"]
        assert got == 422 and ans["error"]["status"] == 422, ans
        assert re.fullmatch(r"items\[1\]: prompt of [\d,]+ tokens \+ max_new_tokens 12 = [\d,]+ is over the judge's "
                            r"context of 4,096 tokens \(max_position_embeddings\); shorten that input or lower "
                            r"max_new_tokens", msg), msg
        stats = srv.batcher.stats()
        assert stats["failed_items"] == 1 and stats["items"] == 1  # items[0] was graded, items[1] refused
        got, ans = call(srv.url, "POST", "/grade/absolute", {"items": [GOOD]})
        assert got == 200 and ans["results"][0]["score"] == 3


def _remote_refusals(kind, body, call_no):
    """What real endpoints answer: vLLM's and OpenAI's context-length 400s, a content filter, and a 400 that
    is the operator's (an option the endpoint does not take)."""
    prompt = body.get("prompt") or body["messages"][-1]["content"]
    if "VLLM_LONG" in prompt:
        return 400, {"object": "error", "message": "This model's maximum context length is 4096 tokens. However, you "
                     "requested 5000 tokens (4900 in the messages, 100 in the completion). Please reduce the length "
                     "of the messages or completion.", "type": "BadRequestError", "param": None, "code": 400}
    if "OPENAI_LONG" in prompt:
        return 400, {"error": {"message": "This model's maximum context length is 8192 tokens, however you requested "
                               "9000 tokens. Please reduce your prompt; or completion length.",
                               "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}
    if "FLAGGED" in prompt:
        return 400, {"error": {"message": "Invalid prompt: your prompt was flagged as potentially violating our "
                               "usage policy.", "type": "invalid_request_error", "code": "invalid_prompt"}}
    if "ODD_OPTION" in prompt:
        return 400, {"object": "error", "message": "Unknown parameter 'best_of_n'", "type": "BadRequestError",
                     "code": 400}
    return "Fine. [RESULT] 4"


def test_the_remote_endpoints_context_refusal_is_422_naming_the_item():
    """An over-long prompt behind the openai backend: the endpoint answers HTTP 400 (vLLM's and OpenAI's real
    error bodies); serve answers 422 naming the item, as for the hf backend (it was a 500, "the judge failed"),
    and the other items of the request's batch are graded.  Another 400 stays the server's, in one clear line."""
    from openai_stub import ScriptedOpenAIServer

    from judgeforge import Judge
    from judgeforge.serve import JudgeServer, ServerConfig

    with ScriptedOpenAIServer(_remote_refusals) as api:
        judge = Judge("stub-model", backend="openai", base_url=api.base_url, chat_format="mistral", retries=0,
                      max_retries=0, sampling={"max_new_tokens": 100})
        with JudgeServer(judge, ServerConfig(port=0, max_batch=8, batch_wait_ms=0)) as srv:
            for marker, said in (("VLLM_LONG", r"maximum context length is 4096 tokens\. However, you requested 5000"),
                                 ("OPENAI_LONG", r"maximum context length is 8192 tokens, however you requested 9000")):
                got, ans = call(srv.url, "POST", "/grade/absolute",
                                {"items": [GOOD, {"instruction": "q", "response": marker}]})
                msg = ans["error"]["message"]
                assert got == 422, ans
                assert re.fullmatch(r"items\[1\]: the endpoint refused the prompt as over the model's context \(This model's "
                                    + said + r".*; HTTP 400 from http://127\.0\.0\.1:\d+/v1/completions\); shorten that "
                                    r"input or lower max_new_tokens \(now 100\)", msg), msg
            got, ans = call(srv.url, "POST", "/grade/absolute", {"items": [{"instruction": "q", "response": "FLAGGED"}]})
            assert got == 422 and ans["error"]["message"].startswith(
                "items[0]: the endpoint refused the prompt for its content (Invalid prompt: your prompt was flagged"), ans
            got, ans = call(srv.url, "POST", "/grade/absolute", {"items": [{"instruction": "q", "response": "ODD_OPTION"}]})
            assert got == 500 and re.search(r"HTTP 400 for request 0: Unknown parameter 'best_of_n'; the endpoint refused "
                                            r"the request: check the request options", ans["error"]["message"]), ans
            got, ans = call(srv.url, "POST", "/grade/absolute", {"items": [GOOD]})
            assert got == 200 and ans["results"][0]["score"] == 4
            stats = srv.batcher.stats()
            assert stats["failed_items"] == 4 and stats["items"] == 3  # GOOD graded beside each long item, and alone
