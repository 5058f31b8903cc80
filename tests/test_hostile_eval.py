"""Hostile inputs to `judgeforge eval`, `eval report`, `eval ablation` and `judgeforge serve`: each user
mistake is one line on stderr, exit status 1, no traceback, before any weights load, and no report
that looks finished.  In-process CLI calls; nothing here loads a model."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
from pathlib import Path

import pytest
from cli_checks import one_line_failure as _one_line_failure

PROMPT = "###Task Description:\nGrade it.\n\n###Response to evaluate:\nhi\n\n###Feedback: "


def _suite(tmp_path: Path, text: str, name: str = "bench.jsonl") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# --------------------------------------------------------------------------- eval


@pytest.mark.parametrize("name,text,match", [
    ("empty.jsonl", "", "no rows"),
    ("empty.json", "[]", "no rows"),
    ("blank.jsonl", json.dumps({"instruction": " ", "gpt4_score": 3}) + "\n", "row 1: .*instruction is empty"),
])
def test_eval_empty_benchmarks_are_refused_before_the_judge_loads(capsys, tmp_path, tiny_model, name, text, match):
    suite = _suite(tmp_path, text, name)
    _one_line_failure(capsys, ["eval", "--judge", tiny_model, "--suite", suite, "--out", tmp_path / "o"], match)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("suite", ["", ",,", " , "])
def test_eval_suite_naming_nothing(capsys, tiny_model, suite):
    _one_line_failure(capsys, ["eval", "--judge", tiny_model, "--suite", suite], "names no benchmark")


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_eval_data_dir_that_is_no_folder_is_refused_not_fetched_around(capsys, tmp_path, tiny_model, kind):
    d = tmp_path / "bench"
    if kind == "file":
        d.write_text("{}")
    _one_line_failure(capsys, ["eval", "--judge", tiny_model, "--suite", "vicuna", "--data-dir", d,
                               "--out", tmp_path / "o"], "--data-dir .*" + ("is a file" if kind == "file" else
                                                                            "no such folder"))
    assert not (tmp_path / "o").exists()


def test_eval_num_shards_below_one(capsys, tiny_model):
    _one_line_failure(capsys, ["eval", "--judge", tiny_model, "--num-shards", "0"], "--num-shards must be >= 1")


@pytest.mark.parametrize("case,match", [("corrupt", "tokenizer.json cannot be read"),
                                        ("missing", "has no tokenizer")])
def test_eval_broken_tokenizer_is_one_line_before_the_weights(capsys, tmp_path, tiny_model, monkeypatch, case,
                                                             match):
    import judgeforge.backends.hf as hf

    judge = shutil.copytree(tiny_model, tmp_path / "judge")
    if case == "corrupt":
        (judge / "tokenizer.json").write_text("{corrupt")
    else:
        for f in ("tokenizer.json", "tokenizer_config.json"):
            (judge / f).unlink()
    monkeypatch.setattr(hf, "load_model", lambda *a, **k: pytest.fail("the weights loaded first"))
    suite = _suite(tmp_path, json.dumps({"instruction": PROMPT, "gpt4_score": 3}) + "\n")
    _one_line_failure(capsys, ["eval", "--judge", judge, "--suite", suite, "--out", tmp_path / "o"], match)
    assert not (tmp_path / "o" / "report.json").exists()


# --------------------------------------------------------------------------- eval report


def _shard_dir(tmp_path: Path, name: str, shard: int, num_shards: int, **cfg) -> Path:
    """A run folder as `eval --out` leaves it (run.json and the shard's cache file), written by hand."""
    from judgeforge.eval.runner import EvalConfig

    d = tmp_path / name
    d.mkdir()
    config = dataclasses.asdict(EvalConfig(judge="j", suite="vicuna", num_shards=num_shards, shard=shard, **cfg))
    (d / "run.json").write_text(json.dumps({"judge": "j", "judge_key": "j", "backend": "hf",
                                            "benchmarks": ["vicuna"], "config": config}))
    fname = "generations.jsonl" if num_shards == 1 else f"generations.shard-{shard}-of-{num_shards}.jsonl"
    (d / fname).write_text("")
    return d


def test_eval_report_refuses_an_incomplete_or_mixed_set_of_shards(capsys, tmp_path):
    s0 = _shard_dir(tmp_path, "s0", 0, 2)
    s1 = _shard_dir(tmp_path, "s1", 1, 2, temperature=0.5)
    out = tmp_path / "m"
    _one_line_failure(capsys, ["eval", "report", s0, "--out", out], "shard 1 of 2 is missing")
    _one_line_failure(capsys, ["eval", "report", s0, s1, "--out", out], "not a shard of the same evaluation.*temperature")
    _one_line_failure(capsys, ["eval", "report", s0, s0, "--out", out], "given twice")
    assert not out.exists()


def test_eval_report_bad_paths(capsys, tmp_path):
    run = _shard_dir(tmp_path, "r", 0, 1)
    (tmp_path / "file").write_text("x")
    _one_line_failure(capsys, ["eval", "report", run, "--out", tmp_path / "file"], "--out .*is a file")
    _one_line_failure(capsys, ["eval", "report", run, "--data-dir", tmp_path / "none"], "--data-dir .*no such folder")
    rj = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**rj, "benchmarks": [5]}))
    _one_line_failure(capsys, ["eval", "report", run], "not a run.json")


# --------------------------------------------------------------------------- eval ablation


def _report_dir(tmp_path: Path, name: str, report) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "report.json").write_text(report if isinstance(report, str) else json.dumps(report))
    return d


def _mode(value, key="pearson", n=40):
    return {"items": n, "n_scored": n, "samples": n, "parse_failures": 0, "parse_failure_rate": 0.0, key: value}


@pytest.mark.parametrize("report,match", [
    ([1, 2], "a JSON list"),
    ({"judge": "x", "benchmarks": [1]}, "no 'benchmarks' object"),
    ({"benchmarks": {"vicuna": {"modes": {"absolute": "x"}}}}, "vicuna.*'modes'"),
    ({"benchmarks": {"vicuna": {"kind": "absolute", "modes": {"absolute": _mode("high")}}}},
     "vicuna/absolute: 'pearson' is 'high'"),
])
def test_ablation_damaged_reports(capsys, tmp_path, report, match):
    d = _report_dir(tmp_path, "r", report)
    _one_line_failure(capsys, ["eval", "ablation", "--run", f"merged={d}"], match)


def test_ablation_run_names_and_output(capsys, tmp_path):
    d = _report_dir(tmp_path, "r", {"benchmarks": {"vicuna": {"kind": "absolute", "modes": {"absolute": _mode(.5)}}}})
    _one_line_failure(capsys, ["eval", "ablation", "--run", f"={d}"], "name is empty")
    _one_line_failure(capsys, ["eval", "ablation", "--run", f"merged={d}", "--run", f"merged={d}"], "given twice")
    _one_line_failure(capsys, ["eval", "ablation", "--run", f"merged={d}", "-o", tmp_path], "is a folder")


def test_ablation_diff_is_blank_when_the_mean_is_over_none_of_the_papers_benchmarks():
    from judgeforge.eval.ablation import ablation_markdown

    mini = {"benchmarks": {"mine_abs": {"kind": "absolute", "modes": {"absolute": _mode(0.9)}},
                           "mine_rel": {"kind": "pair", "modes": {"relative": _mode(0.62, "accuracy")}}}}
    paper = {"benchmarks": {"vicuna": {"kind": "absolute", "modes": {"absolute": _mode(0.5)}},
                            "hhh": {"kind": "pair", "modes": {"relative": _mode(0.8, "accuracy")}}}}
    md = ablation_markdown({"merged": mini, "joint": paper})
    cells = next(r for r in md.splitlines() if r.startswith("| weight merging (merged) |")).split(" | ")
    assert cells[1] == "0.900 (n=40/40) over mine_abs" and cells[3] == "0.624" and cells[4] == ""
    assert cells[5] == "62.0 (n=40/40) over mine_rel" and cells[7] not in ("", "-") and cells[8] == ""
    cells = next(r for r in md.splitlines() if r.startswith("| joint training (joint) |")).split(" | ")
    assert cells[4] == f"{0.5 - float(cells[3]):+.3f}" and cells[8] != ""  # over vicuna / hhh: compared
    assert "A diff is left blank when the mean is over none of the paper's benchmarks" in md


# --------------------------------------------------------------------------- serve


@pytest.mark.parametrize("argv,match", [
    (["--port", "abc"], "serve: argument --port: invalid int value"),
    (["--bogus"], "serve: unrecognized arguments: --bogus"),
    (["--chat_format", "klingon"], "invalid choice: 'klingon'"),
])
def test_serve_usage_errors_are_one_line(capsys, tiny_model, argv, match):
    _one_line_failure(capsys, ["serve", "--judge", tiny_model, *argv], match)


def test_serve_checks_the_judge_folder_before_taking_the_port(capsys, tmp_path, tiny_model):
    judge = shutil.copytree(tiny_model, tmp_path / "judge")
    (judge / "chat_format.json").write_text("{corrupt")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = str(s.getsockname()[1])  # were the port taken first, the line would be about the port
        _one_line_failure(capsys, ["serve", "--judge", judge, "--port", busy], "chat_format.json: not a chat format")
        _one_line_failure(capsys, ["serve", "--judge", tmp_path / "none", "--port", busy], "does not exist")
    _one_line_failure(capsys, ["serve"], "required: --judge")
