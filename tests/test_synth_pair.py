"""``judgeforge data pair``: relative rows from absolute ones, as the Preference Collection was built.

Covers: every pair with different scores (or K per instruction), A/B positions balanced overall and per
instruction, labels from the scores, Preference Collection rows that pass the foundation's validator,
composed feedback without a teacher, comparative feedback from a teacher behind a real HTTP server
(a wrong verdict rejected and regenerated), resume, settings checks and one-line errors.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from itertools import combinations
from pathlib import Path

import pytest
from openai_stub import ScriptedOpenAIServer

from judgeforge import cli
from judgeforge.data import read_rows, to_collection_row, validate_rows
from judgeforge.format.prompts import Rubric, render_relative
from judgeforge.format.records import AbsoluteExample
from judgeforge.io import write_jsonl
from judgeforge.synth import plan_pairs

RUBRIC = Rubric("Is the plan safe?", ("Unsafe.", "Risky.", "Mixed.", "Mostly safe.", "Safe."))


def _examples(n_instr: int = 4) -> list[AbsoluteExample]:
    out = []
    for i in range(1, n_instr + 1):
        for s in range(1, 6):
            out.append(AbsoluteExample(f"Plan trip {i}", f"Response {i}.{s}", RUBRIC, f"Reference {i}", s,
                                       f"Feedback on {i}.{s}.", f"t{i}-s{s}"))
    # instruction 1 has a second score-3 response: pairs need different scores, so 14 pairs, not 15
    out.append(AbsoluteExample("Plan trip 1", "Response 1.3b", RUBRIC, "Reference 1", 3, "Feedback on 1.3b.",
                               "t1-s3b"))
    return out


@pytest.fixture
def absolute_file(tmp_path) -> Path:
    p = tmp_path / "abs.jsonl"
    write_jsonl(p, [to_collection_row(ex) for ex in _examples()])
    return p


def pair_cli(inp, out, *extra):
    summary = Path(out).with_suffix(".summary.json")
    rc = cli.main(["data", "pair", str(inp), "-o", str(out), "--summary", str(summary), "-q", *extra])
    return rc, (json.loads(summary.read_text()) if rc == 0 else None)


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check_rows(rows, abs_rows):
    by_resp = {r["orig_response"]: r for r in abs_rows}
    for r in rows:
        a, b = by_resp[r["orig_response_A"]], by_resp[r["orig_response_B"]]
        assert a["orig_instruction"] == b["orig_instruction"] == r["orig_instruction"]
        sa, sb = int(a["orig_score"]), int(b["orig_score"])
        assert (r["orig_score_A"], r["orig_score_B"]) == (str(sa), str(sb)) and sa != sb
        assert r["orig_preference"] == ("A" if sa > sb else "B")
        assert r["output"].endswith(f"[RESULT] {r['orig_preference']}")
        assert r["orig_feedback_A"] == a["orig_feedback"] and r["orig_feedback_B"] == b["orig_feedback"]
        assert r["instruction"] == render_relative(r["orig_instruction"], r["orig_response_A"], r["orig_response_B"],
                                                   Rubric(r["orig_criteria"]), r["orig_reference_answer"])


def test_every_pair_balanced_labelled_and_valid(absolute_file, tmp_path, capsys):
    out = tmp_path / "rel.jsonl"
    rc, s = pair_cli(absolute_file, out)
    assert rc == 0
    rows = rows_of(out)
    per = Counter(r["orig_instruction"] for r in rows)
    assert per == {"Plan trip 1": 14, "Plan trip 2": 10, "Plan trip 3": 10, "Plan trip 4": 10}
    assert s["new_rows"] == 44 and s["feedback"] == "composed" and s["teacher_calls"] == 0
    # every pair of different scores, each exactly once
    pairs = {frozenset((r["orig_response_A"], r["orig_response_B"])) for r in rows}
    expected = {frozenset((x.response, y.response)) for x, y in combinations(_examples(), 2)
                if x.instruction == y.instruction and x.score != y.score}
    assert pairs == expected and len(rows) == len(expected)
    labels = Counter(r["orig_preference"] for r in rows)
    assert labels == {"A": 22, "B": 22} and s["rows_per_score"] == {"A": 22, "B": 22}
    for instr in per:
        c = Counter(r["orig_preference"] for r in rows if r["orig_instruction"] == instr)
        assert abs(c["A"] - c["B"]) <= 1, (instr, c)
    # the better response is not always the one with the higher score at a fixed position
    assert {(r["orig_preference"], int(r["orig_score_A"]) > int(r["orig_score_B"])) for r in rows} == \
        {("A", True), ("B", False)}
    _check_rows(rows, rows_of(absolute_file))
    fb = rows[0]["orig_feedback"]
    assert fb.startswith("Response A: Feedback on") and "Response B: Feedback on" in fb
    assert re.search(r"Response A earns a score of \d and Response B a score of \d", fb)
    v = validate_rows(read_rows(out))
    assert v.schema == "preference-collection" and v.ok, v.problems[:3]
    capsys.readouterr()
    assert cli.main(["data", "validate", str(out)]) == 0
    assert "ok, 44 rows (preference-collection)" in capsys.readouterr().out


def test_pairs_per_instruction_and_seed(tmp_path):
    plans, stats = plan_pairs(_examples(6), pairs_per_instruction=3, seed=1)
    assert len(plans) == 18 and stats["instructions"] == 6
    assert Counter(p.a.instruction for p in plans) == {f"Plan trip {i}": 3 for i in range(1, 7)}
    prefs = Counter(p.preference for p in plans)
    assert prefs == {"A": 9, "B": 9}
    again, _ = plan_pairs(_examples(6), pairs_per_instruction=3, seed=1)
    other, _ = plan_pairs(_examples(6), pairs_per_instruction=3, seed=2)
    assert [p.id for p in again] == [p.id for p in plans]
    assert [p.id for p in other] != [p.id for p in plans]
    # balance holds for odd counts too, overall within one
    plans, _ = plan_pairs(_examples(3), pairs_per_instruction=3, seed=5)
    c = Counter(p.preference for p in plans)
    assert abs(c["A"] - c["B"]) == 1 and sum(c.values()) == 9


def test_rerun_resumes_and_other_settings_are_refused(absolute_file, tmp_path, capsys):
    out = tmp_path / "rel.jsonl"
    rc, s = pair_cli(absolute_file, out, "--pairs-per-instruction", "4")
    assert rc == 0 and s["new_rows"] == 16
    before = out.read_bytes()
    # a kill: the last rows were never written
    lines = before.decode().splitlines(keepends=True)
    out.write_text("".join(lines[:10]))
    rc, s = pair_cli(absolute_file, out, "--pairs-per-instruction", "4")
    assert rc == 0 and s["rows_before"] == 10 and s["new_rows"] == 6
    assert out.read_bytes() == before  # same plan, same rows, nothing twice
    rc, _ = pair_cli(absolute_file, out, "--pairs-per-instruction", "4", "--seed", "7")
    err = capsys.readouterr().err
    assert rc == 1 and "was made with other settings (seed 42 -> 7)" in err and "--force" in err
    rc, s = pair_cli(absolute_file, out, "--pairs-per-instruction", "4", "--seed", "7", "--force")
    assert rc == 0 and s["rows_before"] == 0 and s["new_rows"] == 16


class PairTeacher:
    """Writes a comparison ending in the better response (from the scores in the prompt)."""

    def __init__(self):
        self.calls = 0
        self.first_wrong: set[str] = set()

    def __call__(self, kind, body, call_no):
        self.calls += 1
        text = body["messages"][-1]["content"]
        m = re.search(r"Response A a score of (\d) and Response B a score of (\d)", text)
        better = "A" if int(m.group(1)) > int(m.group(2)) else "B"
        a = re.search(r"###Response A:\n(.*?)\n\n###", text, re.DOTALL).group(1)
        if a in self.first_wrong:
            self.first_wrong.discard(a)
            return f"Both try. Response {better} is worse. [RESULT] {'B' if better == 'A' else 'A'}"
        return f"Both answers address the trip; {a} differs in its safety checks. [RESULT] {better}"


def test_teacher_comparisons_with_rejection(absolute_file, tmp_path):
    t = PairTeacher()
    t.first_wrong = {"Response 2.1", "Response 2.5"}
    out = tmp_path / "rel.jsonl"
    with ScriptedOpenAIServer(t) as srv:
        rc, s = pair_cli(absolute_file, out, "--teacher", srv.base_url, "--teacher-model", "stub",
                         "--concurrency", "4", "--pairs-per-instruction", "5")
    assert rc == 0 and s["complete"] and s["feedback"] == "teacher"
    rows = rows_of(out)
    assert len(rows) == 20
    # the teacher is wrong once for each of two responses, the first time it sees it at position A
    wrong = len({r["orig_response_A"] for r in rows} & {"Response 2.1", "Response 2.5"})
    assert wrong
    assert s["rejected"] == ({"wrong_verdict": wrong} if wrong else {})
    assert s["teacher_calls"] == t.calls == 20 + wrong
    for r in rows:
        assert r["orig_feedback"].startswith("Both answers address the trip; ")
        assert r["output"] == f"{r['orig_feedback']} [RESULT] {r['orig_preference']}"
    _check_rows(rows, rows_of(absolute_file))
    assert validate_rows(read_rows(out)).ok


def test_pair_errors_are_one_line(absolute_file, tmp_path, capsys):
    rel = tmp_path / "rel.jsonl"
    assert pair_cli(absolute_file, rel)[0] == 0
    single = tmp_path / "single.jsonl"
    write_jsonl(single, [to_collection_row(ex) for ex in _examples(2) if ex.score == 3])
    notmine = tmp_path / "notmine.jsonl"
    notmine.write_text('{"a": 1}\n')
    cases = [
        ([str(rel), "-o", str(tmp_path / "x.jsonl")], "holds relative rows (preference-collection)"),
        ([str(single), "-o", str(tmp_path / "x.jsonl")], "no pairs: no instruction has two responses"),
        ([str(absolute_file), "-o", str(notmine)], "exists but was not written by 'judgeforge data pair'"),
        ([str(absolute_file), "-o", str(absolute_file)], "the same file as the input"),
        ([str(absolute_file), "-o", str(tmp_path / "x.jsonl"), "--pairs-per-instruction", "0"],
         "--pairs-per-instruction must be >= 1"),
        ([str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "x.jsonl")], "no such file or folder"),
    ]
    for argv, expected in cases:
        capsys.readouterr()
        rc = cli.main(["data", "pair", *argv])
        err = capsys.readouterr().err
        assert rc == 1, argv
        assert err.startswith("judgeforge: error: ") and expected in err.splitlines()[0], err
        assert "Traceback" not in err
    assert not (tmp_path / "x.jsonl").exists()
    assert notmine.read_text() == '{"a": 1}\n'
