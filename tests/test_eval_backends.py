"""Judge backends: hf (tiny real model), openai (real HTTP against the scripted server), retries."""

from __future__ import annotations

import threading
import time

import pytest
from openai_stub import Delay, ScriptedOpenAIServer

from judgeforge.backends import BACKENDS, Request, Sampling, generate_parsed, get_backend
from judgeforge.errors import UserError
from judgeforge.format.prompts import PRESET_RUBRICS, render_absolute, render_relative


def _requests(k: int = 5) -> list[Request]:
    out = []
    for i in range(k):
        if i % 2:
            out.append(Request("relative", render_relative(f"Question {i}?", "yes " * i, "no", PRESET_RUBRICS["honesty"])))
        else:
            out.append(Request("absolute", render_absolute(f"Question {i}?", "word " * (3 * i + 1),
                                                           PRESET_RUBRICS["helpfulness"], "ref")))
    return out


# --------------------------------------------------------------------------- registry


def test_registry_and_unknown_backend():
    assert {"hf", "openai", "vllm"} <= set(BACKENDS)
    with pytest.raises(UserError, match="unknown backend 'opnai'.*did you mean 'openai'"):
        get_backend("opnai", "x")


def test_vllm_missing_is_one_clear_line():
    try:
        import vllm  # noqa: F401
        pytest.skip("vLLM is installed here; the missing-package message cannot be checked")
    except ImportError:
        pass
    with pytest.raises(UserError, match=r"pip install 'judgeforge\[vllm\]'"):
        get_backend("vllm", "some/model")


def test_vllm_prompts_are_checked_against_its_context_before_generation(tokenizer, hf):
    """The vLLM backend's prompt check, without vLLM: the hf backend's token ids, its context rule."""
    from transformers import MistralConfig

    from judgeforge.backends.vllm import PromptBudget, vllm_context
    from judgeforge.errors import PromptTooLong
    from judgeforge.format.chat import resolve_chat_format

    reqs = _requests(5)
    budget = PromptBudget(resolve_chat_format(tokenizer), None)
    ids = budget.encode(reqs)
    assert ids == hf.encode_requests(reqs)  # the same prompts as the hf backend (the training format)
    lengths = [len(p) for p in ids]
    longest = lengths.index(max(lengths))
    cfg = MistralConfig(max_position_embeddings=max(lengths) + 8)
    # the context: max_model_len when given, else the model config's, else the tokenizer's (a known one)
    assert vllm_context(64, config=cfg, tokenizer=tokenizer) == (64, "max_model_len")
    assert vllm_context(None, config=cfg, tokenizer=tokenizer) == (max(lengths) + 8, "max_position_embeddings")
    assert tokenizer.model_max_length > 10**9 and vllm_context(None, tokenizer=tokenizer) == (None, "")
    from transformers import AutoTokenizer

    from judgeforge.tokenization import mistral_v1_tokenizer_dir

    known = AutoTokenizer.from_pretrained(mistral_v1_tokenizer_dir(), model_max_length=512)
    assert vllm_context(None, config=MistralConfig(max_position_embeddings=0), tokenizer=known) == \
        (512, "the tokenizer's model_max_length")
    budget = PromptBudget(resolve_chat_format(tokenizer), *vllm_context(None, config=cfg))
    budget.check(ids, 8)  # exactly fits
    with pytest.raises(PromptTooLong, match=rf"^request {longest}: prompt of {max(lengths)} tokens \+ max_new_tokens 9 "
                                            rf"= {max(lengths) + 9} is over the judge's context of {max(lengths) + 8} "
                                            r"tokens \(max_position_embeddings\); shorten") as e:
        budget.check(ids, 9)
    assert e.value.index == longest
    PromptBudget(resolve_chat_format(tokenizer), None).check(ids, 10**6)  # no known context: vLLM decides


# --------------------------------------------------------------------------- hf


@pytest.fixture(scope="module")
def hf(tiny_model):
    import torch

    b = get_backend("hf", str(tiny_model), engine="generate", batch_size=4)
    torch.manual_seed(0)
    with torch.no_grad():  # larger weights: greedy output that depends on the context, not one token
        for p in b.model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    return b


def test_hf_prompt_is_training_format(hf, tokenizer):
    req = _requests(1)[0]
    ids = hf.encode_requests([req])[0]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids[1:]) == req.chat_text()
    # chat(): the model folder's own chat template (the judge template folds the system turn)
    conv = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    cids = hf.encode_conversations([conv])[0]
    assert cids[0] == tokenizer.bos_token_id and cids.count(tokenizer.bos_token_id) == 1
    assert tokenizer.decode(cids[1:]) == "[INST] S\n\nU [/INST]"


def test_hf_batched_left_padding_matches_one_by_one(hf):
    """Greedy on a left-padded batch of different lengths == each prompt alone, unpadded."""
    import torch

    reqs = _requests(5)
    s = Sampling.greedy(12)
    batched = hf.generate_tokens(hf.encode_requests(reqs), s)
    lengths = {len(p) for p in hf.encode_requests(reqs)}
    assert len(lengths) > 1  # the batch really needed padding
    for req, got in zip(reqs, batched):
        ids = torch.tensor([hf.encode_requests([req])[0]])
        with torch.inference_mode():
            ref = hf.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12,
                                    do_sample=False, pad_token_id=0)
        ref = ref[0, ids.shape[1]:].tolist()
        if 2 in ref:
            ref = ref[: ref.index(2)]
        assert got[0] == ref and len(set(ref)) > 3


def test_hf_sampling_n_and_seed(hf):
    reqs = _requests(2)
    s = Sampling(max_new_tokens=5, seed=123)
    a = hf.generate(reqs, s, n=3)
    b = hf.generate(reqs, s, n=3)
    assert [len(x) for x in a] == [3, 3]
    assert a == b  # same seed, same draws
    assert len(set(a[0])) > 1  # three samples, not one copied
    g = hf.generate(reqs, Sampling.greedy(5), n=2)
    assert all(x[0] == x[1] for x in g)


def test_hf_accepts_a_loaded_model(hf):
    from judgeforge.backends.hf import HFBackend

    again = HFBackend(hf.model, tokenizer=hf.tokenizer, batch_size=2)
    reqs = _requests(2)
    assert again.generate(reqs, Sampling.greedy(6)) == hf.generate(reqs, Sampling.greedy(6))


def test_hf_bad_model_path_is_user_error(tmp_path):
    with pytest.raises(UserError, match="judge '.*nope' does not exist"):  # checked before transformers runs
        get_backend("hf", str(tmp_path / "nope"))


# --------------------------------------------------------------------------- openai


def _fast(srv, **kw):
    kw.setdefault("backoff", 0.01)
    kw.setdefault("chat_format", "mistral")
    return get_backend("openai", "judge", base_url=srv.base_url, **kw)


def test_openai_completions_and_chat_bodies():
    seen = []

    def reply(kind, body, call_no):
        seen.append((kind, body))
        return [f"Good. [RESULT] {k + 1}" for k in range(body.get("n", 1))]

    reqs = _requests(2)
    with ScriptedOpenAIServer(reply) as srv:
        out = _fast(srv).generate(reqs, Sampling(seed=5), n=2)
        assert out == [["Good. [RESULT] 1", "Good. [RESULT] 2"]] * 2
        chat_out = _fast(srv, api="chat").generate(reqs[:1], Sampling.greedy(50))
        assert chat_out == [["Good. [RESULT] 1"]]
        conv = [{"role": "user", "content": "write a question"}]
        assert _fast(srv).chat([conv], Sampling()) == [["Good. [RESULT] 1"]]
    comp = [b for k, b in seen if k == "completions"]
    assert sorted(b["prompt"] for b in comp) == sorted(r.chat_text() for r in reqs)
    b = comp[0]
    assert b["model"] == "judge" and b["n"] == 2 and b["max_tokens"] == 1024 and b["seed"] == 5
    assert b["temperature"] == 1.0 and b["top_p"] == 0.9 and b["repetition_penalty"] == 1.03
    chats = [b for k, b in seen if k == "chat"]
    assert chats[0]["messages"] == reqs[0].messages() and chats[0]["temperature"] == 0.0
    assert "repetition_penalty" not in chats[0]  # OpenAI's API rejects it
    assert chats[1]["messages"] == [{"role": "user", "content": "write a question"}]


def test_openai_retries_500_then_succeeds():
    def reply(kind, body, call_no):
        return (500, {"error": {"message": "overloaded"}}) if call_no <= 2 else "ok [RESULT] 3"

    with ScriptedOpenAIServer(reply) as srv:
        b = _fast(srv, max_retries=3)
        assert b.generate(_requests(1), Sampling()) == [["ok [RESULT] 3"]]
        assert len(srv.requests) == 3 and b.calls == 3


def test_openai_retries_timeouts():
    def reply(kind, body, call_no):
        return Delay(1.5, "late") if call_no == 1 else "fast [RESULT] 2"

    with ScriptedOpenAIServer(reply) as srv:
        b = _fast(srv, timeout=0.4, max_retries=2)
        t = time.time()
        assert b.generate(_requests(1), Sampling()) == [["fast [RESULT] 2"]]
        assert time.time() - t < 1.4  # did not wait for the late answer
        assert len(srv.requests) == 2


def test_openai_gives_up_with_one_line():
    with ScriptedOpenAIServer(lambda k, b, n: (503, "busy")) as srv:
        with pytest.raises(UserError, match=r"failed after 3 attempts \(last: HTTP 503"):
            _fast(srv, max_retries=2).generate(_requests(1), Sampling())
        assert len(srv.requests) == 3
    with ScriptedOpenAIServer(lambda k, b, n: (401, {"error": {"message": "bad key"}})) as srv:
        with pytest.raises(UserError, match="HTTP 401: bad key"):
            _fast(srv, max_retries=5).generate(_requests(1), Sampling())
        assert len(srv.requests) == 1  # not retryable


def test_openai_concurrency_limit_honoured():
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def reply(kind, body, call_no):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.15)
        with lock:
            state["now"] -= 1
        return "x [RESULT] 1"

    with ScriptedOpenAIServer(reply) as srv:
        out = _fast(srv, concurrency=3).generate(_requests(9), Sampling())
    assert len(out) == 9
    assert state["peak"] == 3  # parallel, but never more than the limit


# --------------------------------------------------------------------------- openai: the completions API's chat format


def _sent_prompt(srv, model, **kw) -> str:
    """The exact text the stub received for one absolute request through the completions API."""
    before = len(srv.requests)
    backend = get_backend("openai", str(model), base_url=srv.base_url, backoff=0.01, **kw)
    backend.generate([Request("absolute", "Grade this.")], Sampling.greedy(8))
    (kind, body), = srv.requests[before:]
    assert kind == "completions" and body["model"] == str(model)
    return body["prompt"], backend.describe()


def _sent_prompt_of(tokenizer) -> str:
    with ScriptedOpenAIServer(lambda k, b, n: "ok [RESULT] 3") as srv:
        return _sent_prompt(srv, "g", tokenizer=tokenizer, chat_format="model")[0]


def test_openai_completions_prompt_follows_the_judge_chat_format(smollm2_dir, smollm2_tokenizer, tokenizer,
                                                                  tmp_path):
    from judgeforge.format.prompts import ABS_SYSTEM_PROMPT

    chatml = (f"<|im_start|>system\n{ABS_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\nGrade this.<|im_end|>\n"
              "<|im_start|>assistant\n")
    mistral = f"[INST] {ABS_SYSTEM_PROMPT}\n\nGrade this. [/INST]"  # the server's tokenizer adds <s>
    judge = tmp_path / "judge"  # a judge folder trained with the raw format (its tokenizer and chat_format.json)
    judge.mkdir()
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (judge / f).symlink_to(smollm2_dir / f)
    (judge / "chat_format.json").write_text('{"chat_format": "raw"}')
    saved = tokenizer.chat_template  # the session's Mistral tokenizer, given a template that writes BOS itself
    tokenizer.chat_template = ("{{ bos_token }}{% for m in messages %}{{ '<start_of_turn>' + m['role'] + '\\n' + "
                               "m['content'] + '<end_of_turn>\\n' }}{% endfor %}{{ '<start_of_turn>model\\n' }}")
    try:
        gemma_like = _sent_prompt_of(tokenizer)
    finally:
        tokenizer.chat_template = saved
    assert gemma_like == (  # sent without the BOS, as the server's tokenizer adds one
        f"<start_of_turn>system\n{ABS_SYSTEM_PROMPT}<end_of_turn>\n<start_of_turn>user\nGrade this.<end_of_turn>\n"
        "<start_of_turn>model\n")
    with ScriptedOpenAIServer(lambda k, b, n: "ok [RESULT] 3") as srv:
        # a remote name + its tokenizer: the ChatML template, detected
        assert _sent_prompt(srv, "smol", tokenizer=smollm2_tokenizer) == (chatml, "openai:smol+chat=model")
        # a remote name with the format given; detected from a Mistral tokenizer; an override beats the template
        assert _sent_prompt(srv, "prometheus", chat_format="mistral") == (mistral, "openai:prometheus")
        assert _sent_prompt(srv, "prometheus", tokenizer=tokenizer)[0] == mistral
        assert _sent_prompt(srv, "smol", tokenizer=smollm2_tokenizer, chat_format="mistral")[0] == mistral
        # the judge named by its local folder (as `vllm serve DIR` names it): its tokenizer and chat_format.json
        assert _sent_prompt(srv, judge) == (f"{ABS_SYSTEM_PROMPT}\n\nGrade this.", f"openai:{judge}+chat=raw")


def test_openai_completions_for_a_remote_model_needs_its_chat_format():
    with pytest.raises(UserError, match=r"^openai backend: .*chat format of remote model 'gpt' is unknown; pass "
                                        r"--chat_format mistral .*or use --api chat$"):
        get_backend("openai", "gpt")
    with pytest.raises(UserError, match="chat_format model renders 'gpt''s chat template, and no local tokenizer"):
        get_backend("openai", "gpt", chat_format="model")
    with pytest.raises(UserError, match="unknown chat format 'chatml'"):
        get_backend("openai", "gpt", chat_format="chatml")
    assert get_backend("openai", "gpt", api="chat").chat_format is None  # the chat API: the server's own format


# --------------------------------------------------------------------------- generate_parsed


def test_generate_parsed_retries_then_reports_failures():
    """Request 0 parses at the 2nd try; request 1 never parses: it comes back as a failure."""
    calls: dict[str, int] = {}

    def reply(kind, body, call_no):
        key = "abs" if "Question 0?" in body["prompt"] else "rel"
        calls[key] = calls.get(key, 0) + 1
        if key == "abs":
            n = body["n"]
            return ["no tag here"] * n if calls[key] == 1 else ["fine [RESULT] 4"] * n
        return ["[RESULT] maybe"] * body["n"]

    reqs = _requests(2)
    seen = []
    with ScriptedOpenAIServer(reply) as srv:
        res = generate_parsed(_fast(srv), reqs, Sampling(seed=1), n=3, retries=4,
                              on_sample=lambda i, j, s: seen.append((i, j)))
        seeds = sorted({b["seed"] for _, b in srv.requests})
    assert [s.result for s in res[0]] == [4, 4, 4]
    assert [s.attempts for s in res[0]] == [2, 2, 2]
    assert [s.result for s in res[1]] == [None] * 3  # never dropped
    assert all(s.attempts == 5 and "not followed by A or B" in s.error for s in res[1])
    assert calls == {"abs": 2, "rel": 5}
    assert sorted(seen) == [(i, j) for i in range(2) for j in range(3)]
    assert len(seeds) == 5  # each retry round is a new draw


def test_generate_parsed_greedy_local_does_not_retry(hf):
    res = generate_parsed(hf, _requests(2), Sampling.greedy(4), n=2, retries=10)
    assert all(s.attempts == 1 and s.result is None for per in res for s in per)


def test_generate_parsed_gives_up_when_a_judge_fails_nearly_everything():
    """1 of 12 first outputs parse (< 10%): no retries, one line says why; progress counts generations."""
    lines, ticks = [], {"done": 0, "retries": 0}

    def reply(kind, body, call_no):
        return ["fine [RESULT] 4" if "Question 0?" in body["prompt"] else "no tag"] * body["n"]

    def tick(done, more):
        ticks["done"] += done
        ticks["retries"] += more

    with ScriptedOpenAIServer(reply) as srv:
        res = generate_parsed(_fast(srv), _requests(12), Sampling(seed=1), n=1, retries=10, progress=tick,
                              log=lines.append)
        calls = len(srv.requests)
    assert calls == 12 and ticks == {"done": 12, "retries": 0}
    assert [r[0].result for r in res].count(None) == 11 and all(r[0].attempts == 1 for r in res)
    assert len(lines) == 1 and "only 1 of 12 outputs parsed" in lines[0] and "--give-up-below 0" in lines[0]
    # a judge that parses sometimes keeps its retries, and each retry is counted
    with ScriptedOpenAIServer(reply) as srv:
        res = generate_parsed(_fast(srv), _requests(12), Sampling(seed=1), n=1, retries=2, progress=tick,
                              give_up_below=0.0)
    assert all(r[0].attempts == 3 for r in res[1:]) and ticks["retries"] == 22 and ticks["done"] == 12 + 12 + 22


@pytest.mark.parametrize("status,payload", [
    (400, {"object": "error", "message": "This model's maximum context length is 4096 tokens. However, you requested "
           "5000 tokens (4900 in the messages, 100 in the completion).", "type": "BadRequestError", "code": 400}),  # vLLM
    (400, {"error": {"message": "This model's maximum context length is 8192 tokens.", "type": "invalid_request_error",
                     "code": "context_length_exceeded"}}),  # OpenAI
    (400, {"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it",
                     "type": "exceed_context_size_error"}}),  # llama.cpp
    (422, {"error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 5000 `inputs` "
           "tokens and 100 `max_new_tokens`", "error_type": "validation"}),  # TGI
])
def test_openai_context_refusals_name_the_request(status, payload):
    """The endpoint's 'prompt over the context' is PromptTooLong naming the request, once (no retry)."""
    from judgeforge.errors import PromptTooLong

    def reply(kind, body, call_no):
        prompt = body.get("prompt") or body["messages"][-1]["content"]
        return (status, payload) if "Question 2?" in prompt else "ok [RESULT] 3"

    with ScriptedOpenAIServer(reply) as srv:
        for api in ("completions", "chat"):
            with pytest.raises(PromptTooLong, match=r"^request 2: the endpoint refused the prompt as over the model's "
                               rf"context \(.*; HTTP {status} from .*\); shorten that input or lower max_new_tokens "
                               r"\(now 100\)$") as got:
                _fast(srv, max_retries=3, api=api).generate(_requests(3), Sampling(max_new_tokens=100))
            assert got.value.index == 2
        assert sum("Question 2?" in (b.get("prompt") or b["messages"][-1]["content"]) for _, b in srv.requests) == 2


def test_http_error_fields_of_both_error_shapes():
    from judgeforge.http import error_fields

    assert error_fields('{"object": "error", "message": "too long", "type": "BadRequestError", "code": 400}') == \
        ("too long", "BadRequestError")  # vLLM: its numeric code is the status; the type names the error
    assert error_fields('{"error": {"message": "m", "type": "invalid_request_error", "code": '
                        '"context_length_exceeded"}}') == ("m", "context_length_exceeded")
    assert error_fields('{"error": "plain"}') == ("plain", None)
    assert error_fields("<html>bad gateway</html>") == ("<html>bad gateway</html>", None)
    assert error_fields("[1, 2]") == ("[1, 2]", None)
    assert error_fields(" ") == ("(an empty reply)", None)


def test_openai_other_refusals_name_the_request():
    """A proxy's 413 is the input's (InputRefused); an unrecognised 400 names the request and says why."""
    from judgeforge.errors import InputRefused, PromptTooLong

    with ScriptedOpenAIServer(lambda k, b, n: (413, "<html>Request Entity Too Large</html>")) as srv:
        with pytest.raises(InputRefused, match=r"^request 0: the endpoint refused the request as too large \(<html>"
                           r"Request Entity Too Large</html>; HTTP 413 from .*\); shorten that input$") as got:
            _fast(srv, max_retries=2).generate(_requests(1), Sampling())
        assert not isinstance(got.value, PromptTooLong) and len(srv.requests) == 1
    with ScriptedOpenAIServer(lambda k, b, n: (400, "")) as srv:
        with pytest.raises(UserError, match=r"HTTP 400 for request 0: \(an empty reply\); the endpoint refused the "
                           r"request: check the request options") as got:
            _fast(srv).generate(_requests(1), Sampling())
        assert not isinstance(got.value, InputRefused)
