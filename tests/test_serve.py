"""`judgeforge serve`: the real HTTP server on 127.0.0.1 (port 0) with real backends.

* a tiny scripted judge (a real transformers model that always answers
  "Fine; Result: A. Score=3") behind the hf backend;
* the openai backend against tests/openai_stub.py, whose answers depend on each item's
  text, so that mixed-up answers between concurrent clients would show;
* the CLI as a subprocess with the conftest's tiny random model (start, grade, SIGTERM).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import threading
import time

import pytest

GREEDY = {"temperature": 0.0, "max_new_tokens": 12}


# --------------------------------------------------------------------------- helpers


def call(url: str, method: str, path: str, body=None, *, raw: bytes | None = None, headers=None, timeout=60):
    """(status, decoded JSON) of one request on a fresh connection."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, json.loads(payload) if payload else None


def schema_validator(doc: dict, name: str):
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema checks answers against the OpenAPI schemas")
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def server(scripted_dir):
    from judgeforge import Judge
    from judgeforge.serve import JudgeServer, ServerConfig

    judge = Judge(str(scripted_dir), sampling=GREEDY, retries=0, device="cpu", batch_size=8)
    cfg = ServerConfig(port=0, max_batch=8, max_items=6, max_body_bytes=64 * 1024, batch_wait_ms=150)
    with JudgeServer(judge, cfg) as srv:
        yield srv


def _stub_reply(kind, body, call_no):
    """Score = the digit after 'score=' in the response; HTTP 400 for 'FAIL'; relative: the longer one."""
    prompt = body.get("prompt") or body["messages"][-1]["content"]
    if "FAIL" in prompt:
        return 400, {"error": {"message": "scripted failure"}}
    if "###Response A:" in prompt:
        a = prompt.split("###Response A:\n", 1)[1].split("\n\n###Response B:", 1)[0]
        b = prompt.split("###Response B:\n", 1)[1].split("\n\n###", 1)[0]
        return f"A is {len(a)} long, B is {len(b)} long. [RESULT] {'A' if len(a) >= len(b) else 'B'}"
    response = prompt.split("###Response to evaluate:\n", 1)[1].split("\n\n###", 1)[0]
    m = re.search(r"score=(\d)", response)
    return f"Echo: {response} [RESULT] {m.group(1)}" if m else "no grade"


@pytest.fixture(scope="module")
def stub_server():
    from openai_stub import ScriptedOpenAIServer

    from judgeforge import Judge
    from judgeforge.serve import JudgeServer, ServerConfig

    with ScriptedOpenAIServer(_stub_reply) as api:
        judge = Judge("stub-model", backend="openai", base_url=api.base_url, chat_format="mistral", retries=0, concurrency=16,
                      max_retries=0, backoff=0.01)
        cfg = ServerConfig(port=0, max_batch=16, max_items=8, batch_wait_ms=100)
        with JudgeServer(judge, cfg) as srv:
            yield srv


# --------------------------------------------------------------------------- endpoints


def test_health_root_and_openapi_document(server):
    status, health = call(server.url, "GET", "/health")
    assert status == 200 and health["status"] == "ok" and health["model"].startswith("hf:")
    assert health["limits"]["max_items"] == 6
    status, root = call(server.url, "GET", "/")
    assert status == 200 and "POST /reward" in root["endpoints"]
    status, doc = call(server.url, "GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/health", "/openapi.json", "/grade/absolute", "/grade/relative", "/reward"}
    assert set(doc["paths"]["/reward"]) == {"post"} and set(doc["paths"]["/health"]) == {"get"}
    assert doc["components"]["schemas"]["AbsoluteRequest"]["properties"]["items"]["maxItems"] == 6
    schema_validator(doc, "Health").validate(health)


def test_openapi_document_is_valid_openapi(server):
    validator = pytest.importorskip("openapi_spec_validator",
                                    reason="openapi-spec-validator (dev extra) checks the document")
    _, doc = call(server.url, "GET", "/openapi.json")
    validator.validate(doc)  # raises on any violation of the OpenAPI 3.1 specification
    broken = json.loads(json.dumps(doc))
    broken["paths"]["/reward"]["post"]["responses"]["200"].pop("description")
    with pytest.raises(Exception, match="description"):  # the validator is not a no-op
        validator.validate(broken)


def test_grading_and_reward_endpoints(server):
    _, doc = call(server.url, "GET", "/openapi.json")
    body = {"rubric": "helpfulness", "items": [
        {"id": "a1", "instruction": "What is 2+2?", "response": "4", "reference_answer": "4"},
        {"id": 7, "instruction": "Name a colour.", "response": "Blue", "rubric": "honesty"},
    ]}
    schema_validator(doc, "AbsoluteRequest").validate(body)
    status, ans = call(server.url, "POST", "/grade/absolute", body)
    assert status == 200, ans
    schema_validator(doc, "AbsoluteResponse").validate(ans)
    assert [r["id"] for r in ans["results"]] == ["a1", 7]
    assert [r["score"] for r in ans["results"]] == [3, 3]
    assert ans["results"][0]["feedback"] == "Fine; Result: A." and ans["results"][0]["error"] is None

    body = {"items": [{"instruction": "Q", "response_a": "x", "response_b": "y", "id": "r"}],
            "rubric": {"criteria": "Is it short?"}}
    status, ans = call(server.url, "POST", "/grade/relative", body)
    assert status == 200, ans
    schema_validator(doc, "RelativeResponse").validate(ans)
    assert ans["results"] == [{"id": "r", "feedback": "Fine;", "error": None, "attempts": 1, "winner": "A"}]

    body = {"items": [{"prompt": "Say hi", "response": "hi", "id": 1},
                      {"prompt": [{"role": "user", "content": "Say hi"}],
                       "response": [{"role": "assistant", "content": "hello"}], "id": 2}],
            "scale": 2.0, "shift": -1.0}
    status, ans = call(server.url, "POST", "/reward", body)
    assert status == 200, ans
    schema_validator(doc, "RewardResponse").validate(ans)
    assert ans["rewards"] == [0.0, 0.0]  # score 3 -> 0.5 -> 2 * 0.5 - 1
    assert [r["score"] for r in ans["results"]] == [3, 3]
    # no rubric anywhere: the server's default (helpfulness) applies
    status, ans = call(server.url, "POST", "/reward", {"items": [{"prompt": "p", "response": "r"}]})
    assert status == 200 and ans["rewards"] == [0.5]


def test_concurrent_clients_are_batched_together(server):
    before = server.batcher.stats()["batches"]
    results, errors = {}, []
    barrier = threading.Barrier(6)

    def client(k):
        barrier.wait()
        body = {"items": [{"id": f"c{k}-{j}", "instruction": f"q{k}", "response": f"r{j}"} for j in range(2)],
                "rubric": "reasoning"}
        status, ans = call(server.url, "POST", "/grade/absolute", body)
        if status != 200:
            errors.append((status, ans))
        else:
            results[k] = ans["results"]

    threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for k in range(6):
        assert [r["id"] for r in results[k]] == [f"c{k}-0", f"c{k}-1"]
        assert all(r["score"] == 3 for r in results[k])
    stats = server.batcher.stats()
    assert stats["batches"] - before < 6  # 12 items from 6 clients took fewer than 6 judge calls
    assert stats["max_batch_seen"] > 2  # a batch held items of more than one client


def test_concurrent_clients_get_their_own_answers(stub_server):
    """Answers depend on the text: any mix-up between clients or items would change them."""
    n_clients, per = 8, 5
    results, errors = {}, []
    barrier = threading.Barrier(n_clients)

    def client(k):
        items = [{"id": k * 100 + j, "instruction": "q", "response": f"client {k} item {j} score={(k + j) % 5 + 1}"}
                 for j in range(per)]
        barrier.wait()
        status, ans = call(stub_server.url, "POST", "/grade/absolute", {"items": items, "rubric": "honesty"})
        if status != 200:
            errors.append(ans)
        else:
            results[k] = ans["results"]

    threads = [threading.Thread(target=client, args=(k,)) for k in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for k in range(n_clients):
        assert [r["id"] for r in results[k]] == [k * 100 + j for j in range(per)]
        assert [r["score"] for r in results[k]] == [(k + j) % 5 + 1 for j in range(per)]
        assert [r["feedback"] for r in results[k]] == [
            f"Echo: client {k} item {j} score={(k + j) % 5 + 1}" for j in range(per)]
    assert stub_server.batcher.stats()["max_batch_seen"] > per


def test_reward_normalisation_and_failures(stub_server):
    items = [{"prompt": "p", "response": "score=5"}, {"prompt": "p", "response": "score=1"},
             {"prompt": "p", "response": "score=3"}, {"prompt": "p", "response": "unparseable"}]
    status, ans = call(stub_server.url, "POST", "/reward", {"items": items})
    assert status == 200 and ans["rewards"] == [1.0, 0.0, 0.5, 0.0]
    assert ans["results"][3]["error"] and ans["results"][3]["score"] is None
    status, ans = call(stub_server.url, "POST", "/reward", {"items": items, "normalize": "zscore",
                                                            "failure_reward": None})
    std = (8 / 3) ** 0.5
    assert status == 200 and ans["rewards"][:3] == pytest.approx([2 / std, -2 / std, 0.0])
    assert ans["rewards"][3] is None
    status, ans = call(stub_server.url, "POST", "/reward", {"items": items[:2], "normalize": "minmax"})
    assert status == 422 and "normalize must be one of none, zscore" in ans["error"]["message"]
    # relative grading through the same server
    status, ans = call(stub_server.url, "POST", "/grade/relative", {"items": [
        {"instruction": "q", "response_a": "short", "response_b": "much longer"}]})
    assert status == 200 and ans["results"][0]["winner"] == "B"


# --------------------------------------------------------------------------- faults


BAD = [
    # (path, body or raw bytes, status, message fragment)
    ("/grade/absolute", b"{not json", 400, "not valid JSON"),
    ("/grade/absolute", b"\xff\xfe", 400, "not UTF-8"),
    ("/grade/absolute", [1, 2], 422, "must be a JSON object"),
    ("/grade/absolute", {"itemz": []}, 422, "unknown field 'itemz' (did you mean 'items'?)"),
    ("/grade/absolute", {"items": []}, 422, "items is empty"),
    ("/grade/absolute", {"items": {"a": 1}}, 422, "items must be a list"),
    ("/grade/absolute", {"items": [{"instruction": "q"}] * 7}, 422, "too many items: 7 in one request, the limit is 6"),
    ("/grade/absolute", {"items": [{"instruction": "q"}]}, 422, "items[0]: missing field 'response'"),
    ("/grade/absolute", {"items": [{"instruction": "q", "response": 5}]}, 422, "items[0].response must be a string"),
    ("/grade/absolute", {"items": [{"instruction": "q", "response": "r", "refrence_answer": "x"}]}, 422,
     "did you mean 'reference_answer'"),
    ("/grade/absolute", {"items": [{"instruction": "q", "response": "r", "id": [1]}]}, 422, "id must be a string"),
    ("/grade/absolute", {"items": [{"instruction": "q", "response": "r"}], "rubric": "helpfullness"}, 422,
     "did you mean 'helpfulness'"),
    ("/grade/absolute", {"items": [{"instruction": "q", "response": "r", "rubric": "Is it short?"}]}, 422,
     "items[0]: absolute grading needs the five score descriptions"),
    ("/grade/relative", {"items": [{"instruction": "q", "response_a": "a"}]}, 422, "missing field 'response_b'"),
    ("/grade/relative", {"items": [{"instruction": "q", "response_a": "a", "response_b": "b",
                                    "rubric": "/etc/rubric.yaml"}]}, 422,
     "items[0].rubric: the server does not read rubric files named by clients"),
    ("/reward", {"items": [{"prompt": [{"content": "x"}], "response": "r"}]}, 422, "items[0].prompt[0]: missing field 'role'"),
    ("/reward", {"items": [{"prompt": "p", "response": "r"}], "scale": "big"}, 422, "scale must be a number, not a string"),
    ("/nope", {"items": []}, 404, "no endpoint /nope"),
    ("/health", {"items": []}, 405, "/health takes GET"),
]


def test_bad_requests_get_clear_4xx_and_the_server_keeps_serving(server):
    for path, body, status, fragment in BAD:
        raw = body if isinstance(body, bytes) else None
        got, ans = call(server.url, "POST", path, None if raw else body, raw=raw)
        assert got == status, (path, body, ans)
        assert ans["error"]["status"] == status and fragment in ans["error"]["message"], ans
    # 413: over --max-body-bytes (64 KiB), rejected before parsing, and the client reads the answer
    big = {"items": [{"instruction": "q", "response": "x" * 70_000}]}
    got, ans = call(server.url, "POST", "/grade/absolute", big)
    assert got == 413 and "the limit is 65536" in ans["error"]["message"]
    # curl's "Expect: 100-continue": an oversized body is refused before it is sent
    with socket.create_connection(server.address, timeout=10) as s:
        s.sendall(b"POST /reward HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\nExpect: 100-continue\r\n\r\n")
        assert s.recv(200).startswith(b"HTTP/1.1 413")
    got, ans = call(server.url, "GET", "/grade/absolute")
    assert got == 405
    # raw garbage and an unknown HTTP method
    for raw, want in ((b"BLAH\r\n\r\n", b""), (b"BREW / HTTP/1.1\r\n\r\n", b"HTTP/1.1 501")):
        with socket.create_connection(server.address, timeout=10) as s:
            s.sendall(raw)
            assert s.recv(100).startswith(want)
    # keep-alive: several requests on one connection, good after bad
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=60)
    for raw, want in ((b"{oops", 400), (json.dumps({"items": [{"instruction": "q", "response": "r"}]}).encode(), 200)):
        conn.request("POST", "/grade/absolute", body=raw)
        resp = conn.getresponse()
        assert resp.status == want
        resp.read()
    conn.close()
    status, health = call(server.url, "GET", "/health")
    assert status == 200 and health["responses"]["400"] >= 3 and health["responses"]["422"] >= 14


def test_a_failing_item_fails_its_own_request_only(stub_server):
    """A bad item batched with other clients' items: its request gets 500 naming it, theirs get 200."""
    before = stub_server.batcher.stats()
    answers: dict = {}
    barrier = threading.Barrier(4)

    def client(k):
        items = [{"instruction": "q", "response": f"FAIL score=2 {k}" if k == 0 and j == 1 else f"score={j + 1}"}
                 for j in range(2)]
        barrier.wait()
        answers[k] = call(stub_server.url, "POST", "/grade/absolute", {"items": items})

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    status, ans = answers[0]
    assert status == 500 and "the judge failed on items[1] of this request" in ans["error"]["message"]
    assert "scripted failure" in ans["error"]["message"]
    for k in (1, 2, 3):
        status, ans = answers[k]
        assert status == 200 and [r["score"] for r in ans["results"]] == [1, 2], ans
    after = stub_server.batcher.stats()
    assert after["failed_items"] - before["failed_items"] == 1
    assert after["retried_batches"] > before["retried_batches"]  # the batch was split, not failed whole


def test_full_queue_is_503_and_stop_finishes_queued_work():
    from openai_stub import Delay, ScriptedOpenAIServer

    from judgeforge import Judge
    from judgeforge.serve import JudgeServer, ServerConfig

    def slow(kind, body, call_no):
        return Delay(0.3, _stub_reply(kind, body, call_no))

    with ScriptedOpenAIServer(slow) as api:
        judge = Judge("stub-model", backend="openai", base_url=api.base_url, chat_format="mistral", retries=0,
                      max_retries=0)
        cfg = ServerConfig(port=0, max_batch=1, max_items=4, max_queue=4, batch_wait_ms=0, inflight_batches=1)
        srv = JudgeServer(judge, cfg).start()
        first: dict = {}
        items = [{"instruction": "q", "response": f"score={k + 1}"} for k in range(4)]
        t = threading.Thread(target=lambda: first.update(ans=call(srv.url, "POST", "/grade/absolute",
                                                                  {"items": items})))
        t.start()
        deadline = time.monotonic() + 10
        while srv.batcher.stats()["queued"] < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        status, ans = call(srv.url, "POST", "/grade/absolute", {"items": items[:2]})
        assert status == 503 and "the server is busy" in ans["error"]["message"]
        srv.stop(drain_timeout=30)  # graceful: the queued items of the first request are still graded
        t.join(30)
        status, ans = first["ans"]
        assert status == 200 and [r["score"] for r in ans["results"]] == [1, 2, 3, 4]
        with pytest.raises(OSError):
            call(srv.url, "GET", "/health", timeout=2)


# --------------------------------------------------------------------------- the command


def test_serve_command_mistakes_are_one_line(capsys):
    from judgeforge.cli import main

    assert main(["serve", "--judge", "x", "--max-items", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["judgeforge: error: --max-items must be an integer >= 1, got 0"]
    assert main(["serve", "--judge", "x", "--rubric", "helpfulnes"]) == 1
    assert "did you mean 'helpfulness'" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--judge", "x", "--port", str(port)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"judgeforge: error: cannot listen on 127.0.0.1:{port}")
    assert main(["serve", "--judge", "/no/such/judge", "--port", "0"]) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("judgeforge: error: ") and "/no/such/judge" in last and "Traceback" not in err


def test_serve_command_starts_grades_and_stops_on_sigterm(tiny_model, capsys, tmp_path):
    """`judgeforge serve` in this process's main thread (as the console script runs it): the URL
    printed on start, real requests, then SIGTERM -> queued work done, clean exit 0."""
    from judgeforge.cli import main

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    seen: dict = {}

    def client():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                seen["health"] = call(url, "GET", "/health", timeout=5)
                break
            except OSError:
                time.sleep(0.05)
        else:
            return  # the server never came up: no signal, main() returns by itself with an error
        # the random tiny model never writes a grade: the reward is failure_reward, with the reason
        seen["reward"] = call(url, "POST", "/reward", {"items": [{"prompt": "p", "response": "r", "id": "x"}],
                                                        "failure_reward": -1.0})
        os.kill(os.getpid(), signal.SIGTERM)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    from judgeforge.format.prompts import Rubric
    from judgeforge.format.rubric_file import rubric_to_yaml

    rubric_file = tmp_path / "rubric.yaml"
    rubric_file.write_text(rubric_to_yaml(Rubric("Is the reply kind?", ("a", "b", "c", "d", "e"))))
    handler_before = signal.getsignal(signal.SIGTERM)
    code = main(["serve", "--judge", str(tiny_model), "--port", str(port), "--greedy", "--max-new-tokens", "3",
                 "--retries", "0", "--max-batch", "4", "--rubric", str(rubric_file)])
    t.join(10)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"judgeforge serve: {url}" in out.splitlines()[0]
    status, health = seen["health"]
    assert status == 200 and health["model"] == f"hf:{tiny_model}"
    assert health["default_rubric"] == "[Is the reply kind?]"
    status, ans = seen["reward"]
    assert status == 200 and ans["rewards"] == [-1.0]
    assert ans["results"][0]["id"] == "x" and "no [RESULT] tag" in ans["results"][0]["error"]
    assert "SIGTERM received" in err and "stopped after 1 items in 1 batches" in err
    assert signal.getsignal(signal.SIGTERM) is handler_before  # the handlers were put back
    with pytest.raises(OSError):
        call(url, "GET", "/health", timeout=2)
