"""``judgeforge data synthesize``: a teacher behind a real OpenAI-compatible HTTP server on 127.0.0.1.

Covers: rows in the Feedback Collection schema that pass the foundation's validator, rejection and
regeneration of bad teacher output, failures reported after N retries, deduplication, resume after a
kill (no row twice, reference answers kept), samples per score, the local ``hf`` teacher path, and
one-line CLI errors.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from openai_stub import ScriptedOpenAIServer

from judgeforge import cli
from judgeforge.data import read_rows, validate_rows
from judgeforge.format.prompts import Rubric, render_absolute
from judgeforge.synth import check_scored

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = Rubric(
    "Does the answer explain the steps clearly?",
    ("No steps.", "One step.", "Some steps.", "Most steps.", "All steps, clearly."),
)
RUBRIC_YAML = """\
criteria: Does the answer explain the steps clearly?
scores:
  1: No steps.
  2: One step.
  3: Some steps.
  4: Most steps.
  5: All steps, clearly.
"""


def _section(text: str, name: str) -> str:
    m = re.search(r"###" + re.escape(name) + r":\n(.*?)(?:\n\n###|\Z)", text, re.DOTALL)
    return m.group(1).strip() if m else ""


class ScriptTeacher:
    """Well-formed answers by default; ``plan[(instruction, score)]`` scripts the successive replies."""

    def __init__(self):
        self.plan: dict[tuple[str, int], list[str]] = {}
        self.calls: list[tuple[str, str, int | None]] = []  # (kind, instruction, score)
        self.contents: list[str] = []

    def good(self, instruction: str, score: int, tag: str = "") -> str:
        return (f"###Response:\nAnswer to {instruction} at level {score}{tag}.\n"
                f"###Feedback:\nThe answer shows level {score} of the rubric. [RESULT] {score}")

    def __call__(self, kind, body, call_no):
        text = body["messages"][-1]["content"]
        self.contents.append(text)
        instruction = _section(text, "Instruction")
        if "Write the reference answer for the instruction below" in text:
            self.calls.append(("reference", instruction, None))
            return f"Reference answer: the model answer to {instruction}."
        m = re.search(r"deserves a score of exactly (\d)", text)
        assert m, text[:200]
        score = int(m.group(1))
        self.calls.append(("scored", instruction, score))
        queue = self.plan.get((instruction, score))
        if queue:
            return queue.pop(0)
        seen = sum(1 for c in self.calls if c[1:] == (instruction, score))
        return self.good(instruction, score, f" (take {seen})" if seen > 1 else "")

    def n(self, kind: str) -> int:
        return sum(1 for c in self.calls if c[0] == kind)


class _Relay:
    """One server for the module (its shutdown takes 0.5 s); each test gets a fresh teacher."""

    target = None

    def __call__(self, kind, body, call_no):
        return self.target(kind, body, call_no)


@pytest.fixture(scope="module")
def server():
    relay = _Relay()
    with ScriptedOpenAIServer(relay) as srv:
        yield srv, relay


@pytest.fixture
def teacher(server):
    srv, relay = server
    t = ScriptTeacher()
    t.url = srv.base_url
    relay.target = t
    yield t
    relay.target = None


@pytest.fixture
def files(tmp_path):
    (tmp_path / "rubric.yaml").write_text(RUBRIC_YAML)
    rows = [
        {"id": "q1", "instruction": "Q1 reset a router"},
        {"id": "q2", "instruction": "Q2 bake bread"},
        {"id": "q3", "instruction": "Q3 change a tyre", "reference_answer": "Loosen, lift, swap, tighten."},
    ]
    (tmp_path / "instr.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "refs.jsonl").write_text(json.dumps({"instruction": "Q2 bake bread",
                                                     "reference_answer": "Mix, knead, proof, bake."}) + "\n")
    return tmp_path


def synth(files, teacher, *extra, out="out.jsonl", instructions="instr.jsonl", capsys=None):
    summary = files / "summary.json"
    if summary.exists():
        summary.unlink()
    argv = ["data", "synthesize", "--teacher", teacher.url, "--teacher-model", "stub", "--rubric",
            str(files / "rubric.yaml"), "--instructions", str(files / instructions), "-o", str(files / out),
            "--summary", str(summary), "-q", "--concurrency", "4", *extra]
    rc = cli.main(argv)
    return rc, (json.loads(summary.read_text()) if summary.exists() else None)


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_rows_validate_and_a_rerun_resumes_after_a_kill(files, teacher, capsys):
    rc, s = synth(files, teacher, "--reference-answers", str(files / "refs.jsonl"))
    assert rc == 0 and s["complete"]
    out = files / "out.jsonl"
    rows = rows_of(out)
    assert len(rows) == 15 and s["new_rows"] == 15 and s["rows_per_score"] == {str(k): 3 for k in range(1, 6)}
    # only q1 needed a reference answer from the teacher (q2: --reference-answers, q3: inline)
    assert teacher.n("reference") == 1 and teacher.n("scored") == 15
    v = validate_rows(read_rows(out))
    assert v.schema == "feedback-collection" and v.ok, v.problems[:3]
    refs = {}
    for r in rows:
        assert r["instruction"] == render_absolute(r["orig_instruction"], r["orig_response"], RUBRIC,
                                                   r["orig_reference_answer"])
        assert r["output"] == f"{r['orig_feedback']} [RESULT] {r['orig_score']}"
        refs.setdefault(r["orig_instruction"], set()).add(r["orig_reference_answer"])
    assert refs == {"Q1 reset a router": {"the model answer to Q1 reset a router."},
                    "Q2 bake bread": {"Mix, knead, proof, bake."},
                    "Q3 change a tyre": {"Loosen, lift, swap, tighten."}}
    assert cli.main(["data", "validate", str(out)]) == 0
    assert "ok, 15 rows (feedback-collection)" in capsys.readouterr().out

    # a rerun finds everything done: no teacher call, the file unchanged
    before = out.read_bytes()
    calls = len(teacher.calls)
    rc, s = synth(files, teacher, "--reference-answers", str(files / "refs.jsonl"))
    assert rc == 0 and s["new_rows"] == 0 and s["teacher_calls"] == 0 and len(teacher.calls) == calls
    assert out.read_bytes() == before

    # a kill: q1's rows never made it and the last row was cut in the middle of its write
    kept = [line for line in before.decode().splitlines() if '"orig_instruction": "Q1 reset a router"' not in line]
    out.write_text("\n".join(kept[:-1]) + "\n" + kept[-1][:57])
    rc, s = synth(files, teacher, "--reference-answers", str(files / "refs.jsonl"))
    assert rc == 0 and s["rows_before"] == 9 and s["new_rows"] == 6
    assert teacher.n("reference") == 1  # q1's reference answer came back from the state file
    rows = rows_of(out)
    assert len(rows) == 15
    assert len({r["id"] for r in rows}) == 15
    assert len({(r["orig_instruction"], r["orig_score"]) for r in rows}) == 15
    assert {r["orig_reference_answer"] for r in rows if r["orig_instruction"].startswith("Q1")} == \
        {"the model answer to Q1 reset a router."}
    assert validate_rows(read_rows(out)).ok


def test_bad_teacher_output_is_rejected_and_regenerated(files, teacher):
    t = teacher
    t.plan[("Q1 reset a router", 2)] = [t.good("Q1 reset a router", 2).replace("[RESULT] 2", "[RESULT] 4")]
    t.plan[("Q1 reset a router", 3)] = ["Sure! The answer has level 3. [RESULT] 3"]
    t.plan[("Q1 reset a router", 1)] = ["###Response:\nA reply [RESULT] 1\n###Feedback:\nok [RESULT] 1"]
    t.plan[("Q2 bake bread", 4)] = ["###Response:\n\n###Feedback:\nNothing there. [RESULT] 4"]
    t.plan[("Q2 bake bread", 5)] = ["###Response:\nA full answer.\n###Feedback:\nGood, I would say five."]
    t.plan[("Q3 change a tyre", 5)] = ["###Response:\nA full answer.\n###Feedback:\n[RESULT] 5"]
    rc, s = synth(files, t, "--reference-answers", str(files / "refs.jsonl"))
    assert rc == 0 and s["complete"] and s["new_rows"] == 15
    assert s["rejected"] == {"empty_feedback": 1, "empty_response": 1, "no_score": 1, "result_in_response": 1,
                             "unparseable": 1, "wrong_score": 1}
    assert s["teacher_calls"] == 1 + 15 + 6
    # the retry told the teacher what went wrong
    retry = [c for c in t.contents if "deserves a score of exactly 2" in c and "Q1 reset" in c][-1]
    assert "An earlier answer was rejected because the feedback ended with [RESULT] 4, not [RESULT] 2" in retry
    rows = rows_of(files / "out.jsonl")
    assert all("[RESULT]" not in r["orig_response"] for r in rows)
    assert validate_rows(read_rows(files / "out.jsonl")).ok


def test_failures_after_retries_are_reported_and_retried_by_the_next_run(files, teacher, capsys):
    bad = teacher.good("Q2 bake bread", 2).replace("[RESULT] 2", "[RESULT] 3")
    teacher.plan[("Q2 bake bread", 2)] = [bad] * 10
    rc, s = synth(files, teacher, "--retries", "2", "--reference-answers", str(files / "refs.jsonl"))
    assert rc == 0 and not s["complete"] and s["new_rows"] == 14
    assert s["failures"] == [{"id": "q2", "score": 2, "attempts": 3, "reasons": ["wrong_score"] * 3}]
    assert sum(1 for c in teacher.calls if c[1:] == ("Q2 bake bread", 2)) == 3
    out = capsys.readouterr().out
    assert "FAILED after 2 retries: 1 item(s)" in out and "q2 score 2: wrong_score, wrong_score, wrong_score" in out
    assert validate_rows(read_rows(files / "out.jsonl")).ok  # what was written is complete and valid

    teacher.plan.clear()
    rc, s = synth(files, teacher, "--reference-answers", str(files / "refs.jsonl"))
    assert rc == 0 and s["complete"] and s["new_rows"] == 1 and s["teacher_calls"] == 1
    assert s["rows_per_score"] == {str(k): 3 for k in range(1, 6)}


def test_duplicates_are_rejected_and_samples_per_score(files, teacher):
    (files / "one.txt").write_text("\nQ9 plant a tree\n\nQ9 plant a tree\n")
    t = teacher
    same = "###Response:\nDig a hole.  Plant it.\n###Feedback:\nTwo steps. [RESULT] {s}"
    t.plan[("Q9 plant a tree", 1)] = [same.format(s=1)]
    t.plan[("Q9 plant a tree", 2)] = [same.replace("Dig", "dig").format(s=2)]  # same text, other case
    t.plan[("Q9 plant a tree", 3)] = [
        "###Response:\nThe model answer to  Q9 plant a tree.\n###Feedback:\nok [RESULT] 3",
    ]
    rc, s = synth(files, t, "--samples-per-score", "2", instructions="one.txt")
    assert rc == 0 and s["complete"]
    assert s["rejected"] == {"duplicate_response": 1, "response_is_reference": 1}
    # the second sample of each score asks again; plan replies are used once, then good ones vary by tag
    rows = rows_of(files / "out.jsonl")
    assert s["new_rows"] == 10 and len(rows) == 10
    norm = [" ".join(r["orig_response"].split()).casefold() for r in rows]
    assert len(set(norm)) == 10
    assert sorted(int(r["orig_score"]) for r in rows) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert len({r["id"] for r in rows}) == 10
    assert any("1 duplicate instruction(s)" in n for n in s["notes"])
    assert validate_rows(read_rows(files / "out.jsonl")).ok


def test_good_default_replies_are_not_duplicates_across_samples(teacher):
    # the scripted default reply is identical for two samples of one score; the second one must be
    # rejected as a duplicate, so the test teacher above varies it -- check the check itself here
    a = check_scored(teacher.good("x", 3), 3)
    b = check_scored(teacher.good("x", 3, " again"), 3)
    assert a.ok and b.ok and a.response != b.response


@pytest.mark.parametrize(
    "text,score,reason",
    [
        ("###Response:\nHi.\n###Feedback:\nFine. [RESULT] 2", 2, None),
        ("Sure!\n### Response:\nHi.\n\n**Feedback:** Fine. [RESULT] 2", 2, None),
        ("###Response:\nHi.\n###Feedback:\nFeedback: Fine. [RESULT] 2.", 2, None),
        ("###Response:\nHi.\n###Feedback:\nFine. [RESULT] 3", 2, "wrong_score"),
        ("###Response:\nHi.\n###Feedback:\nFine.", 2, "no_score"),
        ("###Response:\nHi.\n###Feedback:\nFine. [RESULT] 2-3", 2, "no_score"),
        ("###Feedback:\nFine. [RESULT] 2\n###Response:\nHi.", 2, "unparseable"),
        ("Hi. Fine. [RESULT] 2", 2, "unparseable"),
        ("", 2, "no_output"),
        ("###Response:\n   \n###Feedback:\nFine. [RESULT] 2", 2, "empty_response"),
        ("###Response:\nHi.\n###Feedback:\n [RESULT] 2", 2, "empty_feedback"),
    ],
)
def test_check_scored(text, score, reason):
    got = check_scored(text, score)
    assert got.reason == reason
    if reason is None:
        assert got.response == "Hi." and got.feedback == "Fine."


def test_local_hf_teacher_runs_and_garbage_is_reported(files, tiny_model, capsys):
    """The hf backend path for real: a tiny random model writes garbage, every output is rejected,
    the run ends with one clear line, exit 1, and leaves no empty output behind."""
    (files / "one.jsonl").write_text(json.dumps({"instruction": "Q5 boil an egg", "reference_answer": "Boil."}) + "\n")
    out = files / "hf.jsonl"
    rc = cli.main(["data", "synthesize", "--teacher", str(tiny_model), "--rubric", str(files / "rubric.yaml"),
                   "--instructions", str(files / "one.jsonl"), "-o", str(out), "--retries", "1",
                   "--max-new-tokens", "6", "--batch-size", "5", "-q"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "judgeforge: error: the teacher produced no usable row in 10 calls (unparseable 10)" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_dry_run_prints_the_prompt_and_calls_nothing(files, capsys):
    rc = cli.main(["data", "synthesize", "--rubric", str(files / "rubric.yaml"), "--instructions",
                   str(files / "instr.jsonl"), "-o", str(files / "x.jsonl"), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "3 instructions (0 duplicates dropped), 1 with a reference answer; 15 slots" in out
    assert "deserves a score of exactly 1" in out and "Score 5: All steps, clearly." in out
    assert not (files / "x.jsonl").exists()


CLI_ERRORS = [
    (["--teacher", "gpt-4o"], "--teacher gpt-4o: neither an http(s):// endpoint nor a local model folder"),
    (["--teacher", "http://127.0.0.1:9/v1"], "also pass --teacher-model NAME"),
    (["--teacher", "{url}", "--teacher-model", "m", "--rubric", "{d}/nope.yaml"], "no such rubric file"),
    (["--teacher", "{url}", "--teacher-model", "m", "-o", "{d}/out.json"], "the output must be a .jsonl file"),
    (["--teacher", "{url}", "--teacher-model", "m", "--instructions", "{d}/prompts.jsonl"],
     "row 1: instruction: missing"),
    (["--teacher", "{url}", "--teacher-model", "m", "--reference-answers", "{d}/badrefs.jsonl"],
     "id: 'q7' matches no instruction"),
    (["--teacher", "{url}", "--teacher-model", "m", "--retries", "-1"], "--retries must be >= 0"),
    (["--teacher", "{url}", "--teacher-model", "m", "--samples-per-score", "0"], "--samples-per-score must be >= 1"),
    (["--teacher", "{url}", "--teacher-model", "m", "--bogus"], "unrecognized arguments: --bogus"),
    ([], "--teacher is required"),
]


@pytest.mark.parametrize("extra,expected", CLI_ERRORS, ids=[e for _, e in CLI_ERRORS])
def test_cli_errors_are_one_line(files, teacher, capsys, extra, expected):
    (files / "prompts.jsonl").write_text(json.dumps({"prompt": "hi"}) + "\n")
    (files / "badrefs.jsonl").write_text(json.dumps({"id": "q7", "reference_answer": "x"}) + "\n")
    base = {"--rubric": str(files / "rubric.yaml"), "--instructions": str(files / "instr.jsonl"),
            "-o": str(files / "out.jsonl")}
    extra = [x.format(url=teacher.url, d=files) for x in extra]
    argv = ["data", "synthesize"]
    for k, v in base.items():
        if k not in extra:
            argv += [k, v]
    rc = cli.main(argv + extra)
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("judgeforge: error: ") and expected in err.splitlines()[0], err
    assert "Traceback" not in err
    assert not (files / "out.jsonl").exists() and not teacher.calls


def test_output_of_another_rubric_is_refused(files, teacher, capsys):
    rc, _ = synth(files, teacher, "--reference-answers", str(files / "refs.jsonl"))
    assert rc == 0
    (files / "rubric.yaml").write_text(RUBRIC_YAML.replace("No steps.", "Nothing useful."))
    calls = len(teacher.calls)
    rc, _ = synth(files, teacher)
    err = capsys.readouterr().err
    assert rc == 1 and "row 1 was made with a different rubric" in err and "--force" in err
    assert len(teacher.calls) == calls
    rc, s = synth(files, teacher, "--force", "--reference-answers", str(files / "refs.jsonl"))
    assert rc == 0 and s["rows_before"] == 0 and s["new_rows"] == 15


def test_console_command_error_has_no_traceback(files):
    p = subprocess.run(
        [sys.executable, "-m", "judgeforge", "data", "synthesize", "--teacher", "gpt-4o", "--rubric",
         str(files / "rubric.yaml"), "--instructions", str(files / "instr.jsonl"), "-o", str(files / "o.jsonl")],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("judgeforge: error: --teacher gpt-4o")


def test_reference_answers_kept_in_state_and_the_users_win(files, teacher, capsys):
    """A run that wrote reference answers but no row: the next run reuses them (no new teacher call),
    except where the user now gives one, which wins."""
    for instr in ("Q1 reset a router", "Q2 bake bread", "Q3 change a tyre"):
        for s in range(1, 6):
            teacher.plan[(instr, s)] = ["no sections at all"]
    rc, _ = synth(files, teacher, "--retries", "0")
    assert rc == 1 and "produced no usable row" in capsys.readouterr().err
    assert teacher.n("reference") == 2  # q1, q2 (q3's is inline)
    assert not (files / "out.jsonl").exists()
    teacher.plan.clear()
    rc, s = synth(files, teacher, "--reference-answers", str(files / "refs.jsonl"))
    assert rc == 0 and s["new_rows"] == 15 and teacher.n("reference") == 2
    refs = {r["orig_instruction"]: r["orig_reference_answer"] for r in rows_of(files / "out.jsonl")}
    assert refs == {"Q1 reset a router": "the model answer to Q1 reset a router.",
                    "Q2 bake bread": "Mix, knead, proof, bake.",
                    "Q3 change a tyre": "Loosen, lift, swap, tighten."}
