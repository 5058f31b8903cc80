"""`judgeforge eval` end to end: tiny hf judge on the shared files, metrics through a scripted
OpenAI-compatible server, resume after a kill, shards merged by `judgeforge eval report`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from openai_stub import ScriptedOpenAIServer

from judgeforge.cli import main as cli_main
from judgeforge.eval import metrics
from judgeforge.eval.benchmarks import load_benchmark
from judgeforge.format.prompts import parse_rendered

SUITE4 = "vicuna,mt_bench,hhh,autoj"


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_cli_tiny_judge_on_the_shared_files_then_resume(tiny_model, shared_data, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["eval", "--judge", str(tiny_model), "--suite", SUITE4, "--data-dir", str(shared_data), "--limit", "2",
            "--out", str(out), "--greedy", "--max-new-tokens", "6", "--no-fetch", "--bootstrap", "0",
            "--pair-modes", "both", "--no-progress"]
    assert cli_main(argv) == 0
    text = capsys.readouterr().out
    for title in ("Vicuna Bench", "MT Bench", "HHH Alignment", "Auto-J Eval", "Prometheus-2-7B"):
        assert title in text
    report = json.loads((out / "report.json").read_text())
    assert (out / "report.md").read_text() == text
    b = report["benchmarks"]
    assert set(b) == {"vicuna", "mt_bench", "hhh", "autoj"}
    assert b["hhh"]["modes"].keys() == {"relative", "absolute"}
    # a random tiny judge never writes "[RESULT]": every sample is a counted failure, none dropped
    assert b["vicuna"]["modes"]["absolute"]["samples"] == 2 * 3
    assert b["vicuna"]["modes"]["absolute"]["parse_failures"] == 6
    assert b["hhh"]["modes"]["relative"]["parse_failures"] == 2
    assert b["hhh"]["modes"]["absolute"]["samples"] == 4
    gens = _lines(out / "generations.jsonl")
    # vicuna/mt_bench: 2 items x 3 samples; hhh/autoj: 2 relative + 4 single-response jobs; greedy: no retries
    assert len(gens) == 2 * 6 + 2 * (2 + 4)
    assert all(g["attempt"] == 1 and g["final"] for g in gens)
    assert (out / "eval_config.yaml").exists() and json.loads((out / "run.json").read_text())["judge"]
    # the same command again: everything comes from the cache
    assert cli_main(argv) == 0
    capsys.readouterr()
    again = json.loads((out / "report.json").read_text())
    assert again["run"]["jobs_generated"] == 0 and again["run"]["generations"] == 0
    assert len(_lines(out / "generations.jsonl")) == len(gens)
    assert again["benchmarks"]["vicuna"] == report["benchmarks"]["vicuna"]


def test_cli_paper_harness_variant_is_recorded_and_keyed(tiny_model, shared_data, tmp_path, capsys):
    from judgeforge.format.prompts import harness_chat_prompt, harness_file_prompt
    from judgeforge.io import sha256_text

    out = tmp_path / "run"
    base = ["eval", "--judge", str(tiny_model), "--suite", "vicuna", "--data-dir", str(shared_data),
            "--limit", "1", "--out", str(out), "--greedy", "--max-new-tokens", "2", "--samples-absolute", "1",
            "--no-fetch", "--bootstrap", "0", "--no-progress"]
    harness = base + ["--prompt_variant", "paper-harness", "--strict_parse", "harness"]
    assert cli_main(harness) == 0
    text = capsys.readouterr().out
    assert "prompts: paper-harness; parse rule: the paper script's" in text
    report = json.loads((out / "report.json").read_text())
    assert (report["prompt_variant"], report["strict_parse"]) == ("paper-harness", "harness")
    assert json.loads((out / "run.json").read_text())["config"]["prompt_variant"] == "paper-harness"
    gens = _lines(out / "generations.jsonl")
    row = json.loads((shared_data / "vicuna_eval.json").read_text())[0]
    want = harness_chat_prompt(harness_file_prompt(row["instruction"]), "absolute")
    assert [g["prompt_hash"] for g in gens if g["benchmark"] == "vicuna"] == [sha256_text(want)]
    # the same command again reuses everything
    assert cli_main(harness) == 0
    capsys.readouterr()
    assert json.loads((out / "report.json").read_text())["run"]["jobs_generated"] == 0


def test_prompt_variant_and_parse_rule_are_in_the_cache_key():
    from judgeforge.eval.cache import sha256_text, slot_key
    from judgeforge.eval.runner import EvalConfig, protocol_key

    args = ("judge@fp", "vicuna", "0", "abs", 0, "prompthash", "sampling")
    keys = {(v, s): slot_key(*args, protocol_key(EvalConfig(prompt_variant=v, strict_parse=s)))
            for v in ("default", "paper-harness") for s in (False, True, "harness")}
    assert len(set(keys.values())) == 6  # a cached output of one variant or rule is never another's
    # the defaults add nothing: caches written before these options existed keep their keys
    assert keys[("default", False)] == sha256_text("\0".join(["judge@fp", "vicuna", "0", "abs", "0", "prompthash",
                                                                "sampling"]))
    assert protocol_key(EvalConfig(prompt_variant="paper-harness", strict_parse="harness")) == \
        "prompts=paper-harness;parse=harness"


def test_evaluate_an_in_memory_model(tiny_model, shared_data, tokenizer):
    from transformers import AutoModelForCausalLM

    from judgeforge.eval.runner import evaluate

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    res = evaluate(model, "hhh", tokenizer=tokenizer, data_dir=shared_data, limit=1, greedy=True, max_new_tokens=3,
                   fetch=False, bootstrap=0, progress=False, judge_name="merge-0.5", engine="generate")
    assert res["judge"] == "merge-0.5" and res["benchmarks"]["hhh"]["modes"]["relative"]["samples"] == 1


# --------------------------------------------------------------------------- scripted judge over HTTP


def _response_of(prompt: str) -> tuple[str, object]:
    inst = prompt.split("\n\n", 1)[1].rsplit(" [/INST]", 1)[0]
    parts = parse_rendered(inst)
    return parts.mode, parts


def _score_rule(response: str) -> int:
    return len(response) % 5 + 1


class Judge:
    """Absolute: a score from the response length; relative: always "A"; some first answers unparseable."""

    def __init__(self, flaky=()):
        self.flaky = set(flaky)
        self.seen: Counter = Counter()
        self.lock = threading.Lock()

    def __call__(self, kind, body, call_no):
        mode, parts = _response_of(body["prompt"])
        with self.lock:
            self.seen[body["prompt"]] += 1
            first = self.seen[body["prompt"]] == 1
        n = body.get("n", 1)
        if mode == "absolute":
            if first and any(f in parts.response for f in self.flaky):
                return ["I refuse to give a score."] * n
            return [f"Feedback: fine. [RESULT] {_score_rule(parts.response)}"] * n
        return ["Feedback: A is better. [RESULT] A"] * n


def _eval(srv, out, *extra, suite="vicuna,hhh", limit="12"):
    return cli_main(["eval", "--backend", "openai", "--judge", "judge", "--chat_format", "mistral",
                     "--base-url", srv.base_url, "--suite", suite,
                     "--data-dir", DATA, "--limit", limit, "--out", str(out), "--no-fetch", "--bootstrap", "100",
                     "--no-progress", *extra])


DATA = os.environ.get("JUDGEFORGE_SHARED_DATA", str(__import__("conftest").SHARED_DATA))


def test_metrics_end_to_end_through_a_scripted_judge(shared_data, tmp_path, capsys):
    vic = load_benchmark("vicuna", shared_data, limit=12, fetch=False)
    hhh = load_benchmark("hhh", shared_data, limit=12, fetch=False)
    flaky = parse_rendered(vic.items[0].prompt).response[:40]
    judge = Judge(flaky=[flaky])
    with ScriptedOpenAIServer(judge) as srv:
        assert _eval(srv, tmp_path / "r") == 0
    capsys.readouterr()
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    pred = [_score_rule(parse_rendered(it.prompt).response) for it in vic.items]
    gold = [it.gold for it in vic.items]
    m = rep["benchmarks"]["vicuna"]["modes"]["absolute"]
    c = metrics.correlations(pred, gold)
    assert m["pearson"] == pytest.approx(c["pearson"]) and m["kendall"] == pytest.approx(c["kendall"])
    assert m["parse_failures"] == 0 and m["n_scored"] == 12
    lo, hi = m["pearson_ci"]
    assert lo <= m["pearson"] <= hi
    # the flaky item was generated twice (one unparseable attempt, then a parsed one), both cached
    gens = _lines(tmp_path / "r" / "generations.jsonl")
    flaky_recs = [g for g in gens if g["benchmark"] == "vicuna" and g["item"] == vic.items[0].id]
    assert sorted((g["sample"], g["attempt"], g["result"] is not None) for g in flaky_recs) == \
        [(s, a, a == 2) for s in range(3) for a in (1, 2)]
    r = rep["benchmarks"]["hhh"]["modes"]["relative"]
    expect = sum(it.chosen_position(42) == "A" for it in hhh.items) / 12  # the judge always says A
    assert r["accuracy"] == pytest.approx(expect) and r["a_rate"] == 1.0
    rows = {(x["benchmark"], x["metric"]): x for x in rep["comparison"]}
    assert rows[("vicuna", "pearson")]["paper"] == 0.666
    assert rows[("vicuna", "pearson")]["diff"] == pytest.approx(m["pearson"] - 0.666)
    assert rows[("hhh", "accuracy")]["diff"] == pytest.approx(expect - 0.7466)

    # shards: two halves, merged by `judgeforge eval report`, give the same numbers
    with ScriptedOpenAIServer(Judge(flaky=[flaky])) as srv:
        for k in (0, 1):
            assert _eval(srv, tmp_path / f"s{k}", "--num-shards", "2", "--shard", str(k)) == 0
    capsys.readouterr()
    half = json.loads((tmp_path / "s0" / "report.json").read_text())
    assert half["benchmarks"]["vicuna"]["items"] == 6  # a shard reports its own half
    assert cli_main(["eval", "report", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")]) == 0
    assert "Vicuna Bench" in capsys.readouterr().out
    merged = json.loads((tmp_path / "m" / "report.json").read_text())
    for name in ("vicuna", "hhh"):
        assert merged["benchmarks"][name]["modes"] == rep["benchmarks"][name]["modes"]


def test_killed_run_resumes_without_generating_twice(shared_data, tmp_path):
    """A real subprocess is killed mid-run (SIGKILL), then the same command finishes the job."""
    judge = Judge()

    def slow(kind, body, call_no):
        time.sleep(0.05)
        return judge(kind, body, call_no)

    out = tmp_path / "k"
    with ScriptedOpenAIServer(slow) as srv:
        cmd = [sys.executable, "-m", "judgeforge", "eval", "--backend", "openai", "--judge", "judge", "--chat_format", "mistral",
               "--base-url", srv.base_url, "--suite", "hhh", "--data-dir", str(shared_data), "--limit", "30",
               "--out", str(out), "--no-fetch", "--chunk-size", "1", "--concurrency", "1", "--no-progress",
               "--pair-modes", "both"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        gen = out / "generations.jsonl"
        deadline = time.time() + 60
        while time.time() < deadline and (not gen.exists() or len(gen.read_text().splitlines()) < 10):
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        before = len(_lines(gen))
        assert 10 <= before < 90, "the run was not interrupted mid-way"
        served_before = len(srv.requests)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        served_after = len(srv.requests) - served_before
    recs = _lines(gen)
    keys = Counter((r["key"], r["attempt"]) for r in recs)
    assert max(keys.values()) == 1  # no generation written twice
    assert len(recs) == 30 * 3  # 30 pairs: one relative job + two single-response jobs each
    # the second run asked only for what the first had not written (at most one answer lost in the kill)
    assert served_after == len(recs) - before
    assert served_before - before in (0, 1)
    assert json.loads((out / "report.json").read_text())["benchmarks"]["hhh"]["modes"]["relative"]["items"] == 30


def test_user_mistakes_are_one_line(tmp_path, capsys):
    from judgeforge.cli import main

    assert main(["eval", "--judge", "x", "--num-shards", "2", "--shard", "2"]) == 1
    assert "--shard must be in 0..1" in capsys.readouterr().err
    assert main(["eval", "--judge", "x", "--limt", "3"]) == 1
    assert "did you mean 'limit'" in capsys.readouterr().err
    assert main(["eval", "--suite", "hhh"]) == 1
    assert "no judge given" in capsys.readouterr().err
    assert main(["eval", "report", str(tmp_path)]) == 1
    assert "no run.json" in capsys.readouterr().err
    assert main(["eval", "--backend", "openai", "--judge", "remote", "--suite", "hhh", "--data-dir", DATA,
                 "--no-fetch", "--limit", "2"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "chat format of remote model 'remote' is unknown; pass --chat_format" in err


def test_eval_and_sweep_metrics_reach_wandb_offline(shared_data, tmp_path, capsys, monkeypatch):
    """report_to wandb: the metric names land in the offline run files (WANDB_MODE=offline, a tmp WANDB_DIR)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-runs"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    with ScriptedOpenAIServer(Judge()) as srv:
        assert _eval(srv, tmp_path / "r", "--report_to", "wandb", suite="vicuna", limit="10") == 0
    capsys.readouterr()
    runs = list((tmp_path / "wandb-runs").rglob("run-*.wandb"))
    assert len(runs) == 1
    data = _run_file_with(tmp_path / "wandb-runs", b"headline/da")
    for name in (b"vicuna/absolute/pearson", b"vicuna/absolute/n_scored", b"headline/da"):
        assert name in data, name
    # the sweep: one run, a step per point, through the same log_metrics (which drops n/a values: not 0)
    import judgeforge.tracking as T
    from judgeforge.pipeline.sweep import to_wandb

    logged = []
    monkeypatch.setattr(T, "log_metrics", lambda steps, **kw: logged.append((steps, kw)) or "run")
    points = [{"method": "linear", "alpha": 0.5, "da": 0.7, "da_n": 10, "pr": None, "pr_n": 0}]
    result = {"absolute": "a", "relative": "r", "base": None, "suite": "vicuna", "alphas": [0.5],
              "methods": ["linear"], "density": 0.9, "seed": 42, "points": points}
    to_wandb(result, tmp_path / "sweep")
    (steps, kw), = logged
    assert steps[0]["alpha"] == 0.5 and steps[0]["linear/da"] == 0.7 and steps[0]["linear/pr"] is None
    assert kw["job_type"] == "sweep" and kw["config"]["methods"] == ["linear"]
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    from judgeforge.errors import UserError
    from judgeforge.tracking import check_report_to

    with pytest.raises(UserError, match="report_to wandb needs a login"):
        check_report_to("wandb", "eval")


def _run_file_with(folder, needle: bytes, wait_s: float = 10.0) -> bytes:
    """The bytes of the offline run file that holds ``needle`` (wandb's writer process may still be
    flushing it for a moment after run.finish() returns); the last file read when none does."""
    deadline = time.monotonic() + wait_s
    while True:
        data = b"".join(p.read_bytes() for p in folder.rglob("run-*.wandb"))
        if needle in data or time.monotonic() > deadline:
            return data
        time.sleep(0.1)
