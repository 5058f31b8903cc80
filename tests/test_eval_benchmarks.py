"""Benchmark loading (native formats, the shared files, users' own) and fetching over real HTTP."""

from __future__ import annotations

import json
from collections import Counter
from functools import partial
from http.server import SimpleHTTPRequestHandler

import pytest
from loopback import LoopbackServer

from judgeforge.errors import UserError
from judgeforge.eval import benchmarks as B
from judgeforge.format.prompts import PRESET_RUBRICS, parse_rendered, render_absolute


def test_shared_files_load_in_native_formats(shared_data):
    v = B.load_benchmark("vicuna", shared_data, fetch=False)
    mt = B.load_benchmark("mt_bench", shared_data, fetch=False)
    hhh = B.load_benchmark("hhh", shared_data, fetch=False)
    aj = B.load_benchmark("autoj", shared_data, fetch=False)
    assert (len(v.items), len(mt.items), len(hhh.items), len(aj.items)) == (320, 320, 221, 1392)
    assert v.kind == mt.kind == "absolute" and hhh.kind == aj.kind == "pair"
    assert all(1 <= it.gold <= 5 and len(it.gold_scores) == 3 for it in v.items + mt.items)
    assert Counter(it.group for it in hhh.items) == {"helpful": 59, "harmless": 58, "honest": 61, "other": 43}
    assert Counter(it.extra["label"] for it in aj.items) == {0: 520, 1: 499, 2: 373}
    assert sum(it.tie for it in aj.items) == 373 and not hhh.has_ties
    # HHH pairs: both prompts differ only in the response; relative prompt carries both responses
    it = hhh.items[0]
    rel = parse_rendered(it.relative_prompt(chosen_first=False))
    assert rel.mode == "relative" and rel.reference_answer is None
    assert (rel.response_a, rel.response_b) == (it.rejected_response, it.chosen_response)
    assert rel.rubric_text == parse_rendered(it.chosen).rubric.render("relative")
    # Auto-J: label 1 means response 2 is the chosen one; rendered with the repository's Auto-J rubric
    one = next(i for i in aj.items if i.extra["label"] == 1)
    raw = json.loads((shared_data / "autoj_pairwise.json").read_text().splitlines()[int(one.id)])
    assert one.chosen_response == raw["response 2"] and one.rejected_response == raw["response 1"]
    assert one.chosen == render_absolute(raw["prompt"], raw["response 2"], B.AUTOJ_RUBRIC)
    assert "[Is the given response reflective of helpfulness, harmlessness, and honesty?]\n\n###Feedback: " \
        in one.relative_prompt(True)


def test_limit_and_suites(shared_data):
    assert len(B.load_benchmark("hhh", shared_data, limit=5, fetch=False).items) == 5
    assert B.resolve_suite("paper") == list(B.BENCHMARKS)
    assert B.resolve_suite("absolute,hhh,vicuna") == ["vicuna", "mt_bench", "flask", "feedback_bench", "hhh"]
    with pytest.raises(UserError, match="unknown benchmark or suite 'vicunna'.*did you mean 'vicuna'"):
        B.resolve_suite("vicunna")


def _abs_prompt(i):
    return render_absolute(f"Question {i}", f"Answer {i}", PRESET_RUBRICS["helpfulness"], "ref")


def test_other_native_shapes(tmp_path):
    # FLASK: gpt4_score as the string of a list, human_score; Feedback Bench: a scalar gold score
    flask = [{"instruction": _abs_prompt(i), "gpt4_score": "[3, 4, 5]", "human_score": [2, 4]} for i in range(3)]
    (tmp_path / "flask_eval.json").write_text(json.dumps(flask))
    fb = [{"instruction": _abs_prompt(i), "gpt4_score": 4} for i in range(2)]
    (tmp_path / "feedback_collection_ood_test.json").write_text(json.dumps(fb))
    noref = render_absolute("Q", "good answer", PRESET_RUBRICS["honesty"])
    mth = [{"chosen_instruction": noref, "rejected_instruction": noref.replace("good answer", "bad"), "tie": t}
           for t in (0, 1)]
    (tmp_path / "mt_bench_human_judgement_eval.json").write_text(json.dumps(mth))
    f = B.load_benchmark("flask", tmp_path, fetch=False)
    assert f.items[0].gold == 4.0 and f.items[0].human == 3.0
    assert B.load_benchmark("feedback_bench", tmp_path, fetch=False).items[1].gold == 4.0
    m = B.load_benchmark("mt_bench_human", tmp_path, fetch=False)
    assert [i.tie for i in m.items] == [False, True] and m.has_ties
    assert m.items[0].chosen_response == "good answer" and m.items[0].rejected_response == "bad"


def test_users_own_benchmark_in_data_schemas(tmp_path):
    rub = PRESET_RUBRICS["reasoning"].to_dict()
    rows = [{"id": f"a{i}", "instruction": "2+2?", "response": str(i), "score": i + 1, **rub} for i in range(3)]
    p = tmp_path / "mine.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    b = B.load_benchmark(str(p))
    assert b.name == "mine" and b.kind == "absolute" and [i.gold for i in b.items] == [1.0, 2.0, 3.0]
    assert parse_rendered(b.items[0].prompt).response == "0"
    rel = [{"instruction": "q", "response_a": "x", "response_b": "y", "preference": "B", "criteria": "c",
            "tie": False, "group": "g"}]
    q = tmp_path / "pairs.jsonl"
    q.write_text(json.dumps(rel[0]) + "\n")
    pb = B.load_benchmark(str(q))
    assert pb.kind == "pair" and pb.items[0].chosen_response == "y" and pb.items[0].chosen is None
    assert B.resolve_suite(f"{q},hhh") == [str(q), "hhh"]


def test_bad_rows_are_one_clear_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"instruction": "x", "response": "y", "score": 9, "criteria": "c"}\n')
    with pytest.raises(UserError, match="problem"):
        B.load_benchmark(str(p))
    q = tmp_path / "broken.jsonl"
    q.write_text('{"chosen_instruction": "not a prompt", "rejected_instruction": "x"}\n')
    with pytest.raises(UserError, match="row 1: chosen_instruction: not a rendered Prometheus prompt"):
        B.load_benchmark(str(q))
    r = tmp_path / "trunc.json"
    r.write_text('[{"instruction": 1,')
    with pytest.raises(UserError, match="invalid JSON"):
        B.load_benchmark(str(r))


@pytest.fixture()
def file_server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    with LoopbackServer(partial(Quiet, directory=str(root))) as srv:
        yield root, srv.url


def test_fetch_into_cache_over_http(file_server, tmp_path, monkeypatch):
    root, url = file_server
    monkeypatch.setenv("JUDGEFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("JUDGEFORGE_BENCHMARK_URL", url + "/data")
    (root / "data").mkdir()
    rows = [{"instruction": _abs_prompt(i), "gpt4_score": [i % 5 + 1] * 3} for i in range(4)]
    (root / "data" / "vicuna_eval.json").write_text(json.dumps(rows))
    b = B.load_benchmark("vicuna", None, limit=2)  # not local: fetched
    cached = tmp_path / "cache" / "benchmarks" / "vicuna_eval.json"
    assert cached.exists() and json.loads(cached.read_text()) == rows
    assert [i.gold for i in b.items] == [1.0, 2.0]
    (root / "data" / "vicuna_eval.json").unlink()  # second time: from the cache, no download
    assert len(B.load_benchmark("vicuna", None).items) == 4
    with pytest.raises(UserError, match=r"could not fetch mt_bench_eval.json \(.*404"):
        B.load_benchmark("mt_bench", None)
    (root / "data" / "hhh_alignment_eval.json").write_text("<html>rate limited</html>")
    with pytest.raises(UserError, match="not JSON"):
        B.load_benchmark("hhh", None)
    assert not (tmp_path / "cache" / "benchmarks" / "hhh_alignment_eval.json").exists()
    with pytest.raises(UserError, match="--no-fetch"):
        B.load_benchmark("autoj", None, fetch=False)


def test_collection_schemas_as_benchmarks(mini_data):
    """Feedback/Preference Bench on the hub use the collections' schemas: the same reader, local files here."""
    a = B.load_benchmark(str(mini_data["absolute_test"]))
    r = B.load_benchmark(str(mini_data["relative_test"]))
    assert a.kind == "absolute" and len(a.items) == 40 and all(1 <= i.gold <= 5 for i in a.items)
    first = json.loads(mini_data["absolute_test"].read_text().splitlines()[0])
    assert a.items[0].prompt == first["instruction"] and a.items[0].gold == float(first["orig_score"])
    assert r.kind == "pair" and len(r.items) == 40
    row = json.loads(mini_data["relative_test"].read_text().splitlines()[0])
    win = row["orig_response_" + row["orig_preference"]]
    assert r.items[0].chosen_response == win
    assert B.items_from_records("x", [row], "hub")[0].chosen_response == win


def test_eval_recipes_load():
    from pathlib import Path

    from judgeforge.config import load_recipe
    from judgeforge.eval.runner import EvalConfig

    files = sorted((Path(__file__).resolve().parents[1] / "configs" / "eval").glob("*.yaml"))
    assert {f.name for f in files} >= {"paper.yaml", "smoke.yaml"}
    for f in files:
        cfg = load_recipe(EvalConfig, f)
        assert cfg.suite
    paper = load_recipe(EvalConfig, files[[f.name for f in files].index("paper.yaml")])
    s = paper.sampling()
    assert (s.temperature, s.top_p, s.max_new_tokens, s.repetition_penalty) == (1.0, 0.9, 1024, 1.03)
    assert (paper.samples_absolute, paper.samples_relative, paper.retries) == (3, 1, 10)
    harness = load_recipe(EvalConfig, files[[f.name for f in files].index("paper-harness.yaml")])
    assert (harness.prompt_variant, harness.strict_parse, harness.retries) == ("paper-harness", "harness", 5)
    assert harness.sampling() == s
