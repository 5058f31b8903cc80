"""Outputs cut at max_new_tokens: backends know it (hf from token counts, openai from finish_reason), the
generation cache keeps it, and the report says so beside the parse failures (old caches: unknown)."""

from __future__ import annotations

import json

import pytest
from openai_stub import ScriptedOpenAIServer

from judgeforge.backends import Backend, Request, Sampling, generate_parsed
from judgeforge.cli import main as cli_main
from judgeforge.eval.runner import evaluate
from judgeforge.format.prompts import PRESET_RUBRICS, render_absolute

REQ = Request("absolute", render_absolute("Question?", "An answer.", PRESET_RUBRICS["helpfulness"], "ref"))
# the scripted judge answers "Fine; Result: A. Score=3" in 9 tokens, then EOS
ANSWER_TOKENS = 9


@pytest.mark.parametrize("engine", ["generate", "fast"])
def test_hf_outputs_know_whether_they_stopped_at_the_limit(scripted_dir, engine):
    from judgeforge.backends.hf import HFBackend

    hf = HFBackend(str(scripted_dir), engine=engine)
    if engine == "fast":
        assert hf._fast_engine().reason is None  # the fast engine itself runs on the CPU (no fallback)
    at = {}
    for m in (4, ANSWER_TOKENS, ANSWER_TOKENS + 1):
        s = generate_parsed(hf, [REQ], Sampling.greedy(m))[0][0]
        at[m] = (s.result, s.at_limit, len(hf.tokenizer(s.output, add_special_tokens=False)["input_ids"]))
    # cut at 4 tokens: no verdict; 9 tokens within a limit of 9: EOS never came (though it parses);
    # a limit of 10 leaves room for the EOS
    assert at == {4: (None, True, 4), 9: (3, True, 9), 10: (3, False, 9)}


def test_a_backend_of_plain_strings_is_unknown():
    class Plain(Backend):
        def generate(self, requests, sampling, n=1):
            return [["no verdict"] * n for _ in requests]

    s = generate_parsed(Plain(), [REQ], Sampling.greedy(8))[0][0]
    assert s.result is None and s.at_limit is None


def _eval_hf(judge, data, out, **kw):
    return evaluate(str(judge), "vicuna", data_dir=str(data), limit=2, greedy=True, out=str(out), fetch=False,
                    bootstrap=0, progress=False, **kw)


def test_report_of_cut_outputs_says_raise_max_new_tokens(scripted_dir, shared_data, tmp_path, capsys):
    for k in (0, 1):  # two shards, merged below by `judgeforge eval report`
        res = _eval_hf(scripted_dir, shared_data, tmp_path / f"s{k}", max_new_tokens=4, num_shards=2, shard=k)
        m = res["benchmarks"]["vicuna"]["modes"]["absolute"]
        assert (m["parse_failures"], m["failures_at_limit"], m["failures_limit_unknown"]) == (3, 3, 0)
    gens = [json.loads(x) for x in (tmp_path / "s0" / "generations.shard-0-of-2.jsonl").read_text().splitlines()]
    assert gens and all(g["at_limit"] is True for g in gens)

    assert cli_main(["eval", "report", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")]) == 0
    md = capsys.readouterr().out
    note = ("Vicuna Bench (absolute): 6 of 6 parse failures stopped at max_new_tokens=4 before [RESULT]: "
            "raise --max-new-tokens (the paper uses 1024)")
    assert note in md.splitlines()
    assert "| parse failures | at token limit | missing |" in md
    assert "| 6 (100.00%) | 6 | 0 |" in md
    rep = json.loads((tmp_path / "m" / "report.json").read_text())
    assert rep["token_limit_notes"] == [note] and rep["max_new_tokens"] == 4
    assert rep["benchmarks"]["vicuna"]["modes"]["absolute"]["failures_at_limit"] == 6

    # a cache written before at_limit existed: the same failures, their stop reason unknown, no advice
    for k in (0, 1):
        old = tmp_path / f"old{k}"
        old.mkdir()
        (old / "run.json").write_text((tmp_path / f"s{k}" / "run.json").read_text())
        name = f"generations.shard-{k}-of-2.jsonl"
        lines = [json.loads(x) for x in (tmp_path / f"s{k}" / name).read_text().splitlines()]
        (old / name).write_text("".join(json.dumps({a: v for a, v in g.items() if a != "at_limit"}) + "\n"
                                        for g in lines))
    assert cli_main(["eval", "report", str(tmp_path / "old0"), str(tmp_path / "old1")]) == 0
    md = capsys.readouterr().out
    assert "| 6 (100.00%) | unknown | 0 |" in md and "stopped at max_new_tokens" not in md
    old = json.loads((tmp_path / "old0" / "report.json").read_text())
    assert old["token_limit_notes"] == []
    assert old["benchmarks"]["vicuna"]["modes"]["absolute"]["failures_limit_unknown"] == 6


def test_openai_finish_reason_length_vs_stop(shared_data, tmp_path):
    with ScriptedOpenAIServer(lambda kind, body, n: "Feedback: the response is", finish_reason="length") as srv:
        def run(out):
            return evaluate("judge", "vicuna", backend="openai", api="chat", base_url=srv.base_url,
                            data_dir=str(shared_data), limit=2, out=str(out), fetch=False, bootstrap=0,
                            progress=False, retries=0)

        cut = run(tmp_path / "length")
        srv.finish_reason = "stop"
        stopped = run(tmp_path / "stop")
    m = cut["benchmarks"]["vicuna"]["modes"]["absolute"]
    assert (m["parse_failures"], m["failures_at_limit"]) == (6, 6)
    assert cut["token_limit_notes"] == ["Vicuna Bench (absolute): 6 of 6 parse failures stopped at "
                                        "max_new_tokens=1024 before [RESULT]: raise --max-new-tokens, or read "
                                        "the outputs: a judge that repeats itself never writes [RESULT]"]
    m = stopped["benchmarks"]["vicuna"]["modes"]["absolute"]
    assert (m["parse_failures"], m["failures_at_limit"], m["failures_limit_unknown"]) == (6, 0, 0)
    assert stopped["token_limit_notes"] == []
    assert "| 6 (100.00%) | 0 | 0 |" in (tmp_path / "stop" / "report.md").read_text()


def test_sweep_log_says_when_failures_were_cut(scripted_dir, shared_data, tmp_path):
    from judgeforge.pipeline.sweep import sweep

    twin = tmp_path / "twin"  # a second expert folder (links to the same files): one folder twice is refused
    twin.mkdir()
    for f in scripted_dir.iterdir():
        (twin / f.name).symlink_to(f)
    lines = []
    sweep(scripted_dir, twin, alphas=[0.5], methods=["linear"], suite="vicuna", out=tmp_path / "sw",
          device="cpu", eval_options={"data_dir": str(shared_data), "limit": 1, "greedy": True, "max_new_tokens": 4,
                                      "bootstrap": 0, "progress": False, "fetch": False},
          log=lines.append)
    assert ("judgeforge sweep: linear-0.5: Vicuna Bench (absolute): 3 of 3 parse failures stopped at "
            "max_new_tokens=4 before [RESULT]: raise --max-new-tokens (the paper uses 1024)") in lines
