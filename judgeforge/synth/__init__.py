"""Domain data for your own judge: ``judgeforge data synthesize`` and ``judgeforge data pair``.

The recipe of the Prometheus collections, as a tool:

``synthesize``
    The Feedback Collection was built by a teacher (GPT-4) that, for each instruction
    and rubric, wrote a reference answer, then for each score 1-5 a response that
    deserves that score and the feedback that justifies it.  ``synthesize`` does the
    same with any teacher: an OpenAI-compatible endpoint (``--teacher https://...``,
    ``--teacher-model NAME``) or a local Hugging Face model folder (``--teacher DIR``).
    Output rows are in the Feedback Collection schema (the ``instruction`` field is the
    rendered Prometheus prompt, ``output`` is ``"{feedback} [RESULT] {score}"``).

    Bad teacher output is rejected and asked for again (``--retries N`` times): no
    ``###Response`` / ``###Feedback`` sections, an empty response or feedback, no score,
    a score other than the target, a response identical to another response for the same
    instruction (deduplication), a low-score response identical to the reference answer.
    Items still bad after the retries are reported (and retried by the next run).

    Resumable: rows are appended to the output one by one (flushed), a rerun with the same
    ``-o`` skips the (instruction, score) slots already there and never writes a row twice;
    a killed run loses only the teacher calls that were in flight.  Reference answers the
    teacher wrote are kept in a hidden state file beside the output
    (``.NAME.jsonl.state.jsonl``), so every row of an instruction shares one reference.

``pair``
    The Preference Collection paired two of the five responses of an instruction
    (different scores; the better one is the label) and had the teacher write a feedback
    comparing them.  ``pair`` does the same from absolute rows (``synthesize``'s output,
    the Feedback Collection, or judgeforge's absolute schema).  A/B positions are balanced
    (the better response is A in half of the rows, +-1, overall and within each
    instruction).  Without ``--teacher`` the comparative feedback is *composed* from the
    two absolute feedbacks and scores: a weaker choice (the two responses are described
    one after the other instead of compared, and the reasoning leans on absolute scores
    the relative judge never sees); use a teacher for data you will train on seriously.

Python API: :func:`synthesize`, :func:`pair`, :func:`make_teacher`, the teacher prompts
(:func:`reference_messages`, :func:`scored_messages`, :func:`comparison_messages`) and their
checks (:func:`check_reference`, :func:`check_scored`, :func:`check_comparison`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from judgeforge.errors import UserError
from judgeforge.format.prompts import Rubric, render_rubric

SCORES = (1, 2, 3, 4, 5)

# Why a teacher output was rejected (keys of the summary's "rejected" counts).
REASONS = {
    "no_output": "the teacher returned nothing",
    "unparseable": "no '###Response:' and '###Feedback:' sections",
    "empty_response": "the response is empty",
    "empty_feedback": "the feedback is empty",
    "no_score": "the feedback ends with no readable [RESULT] score",
    "wrong_score": "the feedback's [RESULT] is not the target score",
    "result_in_response": "the response contains a [RESULT] tag (sections mixed up)",
    "duplicate_response": "the response repeats another response to the same instruction",
    "response_is_reference": "a response for a score below 5 repeats the reference answer",
    "empty_reference": "the reference answer is empty",
    "result_in_reference": "the reference answer contains a [RESULT] tag",
    "no_verdict": "the comparison ends with no readable [RESULT] A or B",
    "wrong_verdict": "the comparison's [RESULT] is not the better response",
}


# --------------------------------------------------------------------------- teacher prompts

TEACHER_SYSTEM = (
    "You help build training data for an evaluator language model that grades responses against a "
    "score rubric. Follow the requested output format exactly."
)


def _messages(user: str) -> list[dict]:
    # one user turn, the role text in front: some chat templates (Mistral's) reject a system role
    return [{"role": "user", "content": f"{TEACHER_SYSTEM}\n\n{user}"}]


def _rubric_block(rubric: Rubric) -> str:
    return render_rubric(rubric)


def reference_messages(instruction: str, rubric: Rubric) -> list[dict]:
    """Chat messages asking the teacher for the reference answer (the response that earns a 5)."""
    user = (
        "Write the reference answer for the instruction below: the best possible response, one that "
        "fully meets the description of Score 5 in the score rubric.\n\n"
        f"###Instruction:\n{instruction}\n\n"
        f"###Score Rubric:\n{_rubric_block(rubric)}\n\n"
        "Reply with the response only: no title, no preamble, no comments about the rubric or the score."
    )
    return _messages(user)


def scored_messages(
    instruction: str, reference_answer: str, rubric: Rubric, score: int, previous_problem: str | None = None
) -> list[dict]:
    """Chat messages asking for one response that deserves ``score`` and the feedback that justifies it."""
    desc = rubric.descriptions[score - 1]
    user = (
        f"Write one response to the instruction below that deserves a score of exactly {score} under the "
        "score rubric, then the feedback that a strict and fair judge would write about it.\n\n"
        f"###Instruction:\n{instruction}\n\n"
        f"###Reference Answer (Score 5):\n{reference_answer}\n\n"
        f"###Score Rubric:\n{_rubric_block(rubric)}\n\n"
        "Requirements:\n"
        f'1. The response must match the description of Score {score} ("{desc}"): neither better nor worse.\n'
        "2. Write the response as a genuine answer to the instruction. It must not mention scores, the "
        "rubric, or that it is meant to be imperfect, and it must differ from the reference answer"
        + (" in wording" if score == 5 else "")
        + ".\n"
        "3. The feedback assesses the response strictly based on the score rubric, not in general, and "
        f"explains why it earns a {score} rather than a neighbouring score. It must not mention that the "
        "response was written to a target score.\n"
        f'4. End the feedback with "[RESULT] {score}".\n\n'
        "Answer in exactly this format, with nothing before or after:\n"
        "###Response:\n(the response)\n"
        f"###Feedback:\n(the feedback) [RESULT] {score}"
    )
    if previous_problem:
        user += f"\n\nAn earlier answer was rejected because {previous_problem}. Follow the format exactly."
    return _messages(user)


def comparison_messages(
    instruction: str,
    response_a: str,
    response_b: str,
    rubric: Rubric,
    reference_answer: str | None,
    score_a: int,
    score_b: int,
    feedback_a: str,
    feedback_b: str,
    previous_problem: str | None = None,
) -> list[dict]:
    """Chat messages asking for the feedback that compares Response A and Response B under the rubric."""
    better = "A" if score_a > score_b else "B"
    ref = f"###Reference Answer:\n{reference_answer}\n\n" if reference_answer else ""
    user = (
        "Below are an instruction, two responses to it, a reference answer and a score rubric. Graders who "
        f"assessed each response on its own gave Response A a score of {score_a} and Response B a score of "
        f"{score_b}, with the feedback shown.\n\n"
        f"###Instruction:\n{instruction}\n\n"
        f"###Response A:\n{response_a}\n\n"
        f"###Response B:\n{response_b}\n\n"
        f"{ref}"
        f"###Score Rubric:\n{_rubric_block(rubric)}\n\n"
        f"###Feedback on Response A:\n{feedback_a}\n\n"
        f"###Feedback on Response B:\n{feedback_b}\n\n"
        "Write the feedback a fair judge gives when comparing the two responses strictly based on the score "
        "rubric: what they have in common, where they differ, and why Response "
        f"{better} is better. Do not mention the numeric scores or the graders. "
        f'End with "[RESULT] {better}" and write nothing else.'
    )
    if previous_problem:
        user += f"\n\nAn earlier answer was rejected because {previous_problem}. Follow the format exactly."
    return _messages(user)


# --------------------------------------------------------------------------- checking teacher output


@dataclass(frozen=True)
class Checked:
    """A teacher output after checking: ``reason`` is None when it is usable."""

    reason: str | None
    response: str = ""
    feedback: str = ""
    detail: str = ""  # a short human explanation (fed back to the teacher on retry)

    @property
    def ok(self) -> bool:
        return self.reason is None


def _reject(reason: str, detail: str = "") -> Checked:
    return Checked(reason, detail=detail or REASONS[reason])


# "###Response:", "### Feedback", "**Response:**", "## **Feedback**:" at the start of a line
_SECTION = re.compile(
    r"^[ \t]*(?:#{1,4}[ \t]*(?:\*\*)?|\*\*)[ \t]*(response|feedback)\b[ \t]*(?:\*\*)?[ \t]*"
    r"(?::[ \t]*(?:\*\*)?|$)[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
_LABEL = re.compile(r"^\s*(?:#{1,4}\s*)?(?:\*\*)?\s*reference\s+answer\s*(?:\(score 5\))?\s*:?\s*(?:\*\*)?\s*",
                    re.IGNORECASE)
_TAG = re.compile(r"\[\s*RESULT\s*\]", re.IGNORECASE)


def normalize(text: str) -> str:
    """The form used for deduplication: case and whitespace ignored."""
    return " ".join(text.split()).casefold()


def _dedup_key(text: str) -> bytes:
    import hashlib

    return hashlib.blake2b(normalize(text).encode("utf-8"), digest_size=16).digest()


def check_reference(text: str | None) -> Checked:
    if text is None or not text.strip():
        return _reject("no_output" if text is None else "empty_reference")
    ref = _LABEL.sub("", text.strip(), count=1).strip()
    if not ref:
        return _reject("empty_reference")
    if _TAG.search(ref):
        return _reject("result_in_reference")
    return Checked(None, response=ref)


def check_scored(text: str | None, score: int) -> Checked:
    """Split ``###Response: ... ###Feedback: ... [RESULT] n`` and check it against the target score."""
    from judgeforge.format.parsing import parse_absolute

    if text is None or not text.strip():
        return _reject("no_output")
    marks = list(_SECTION.finditer(text))
    first_resp = next((m for m in marks if m.group(1).lower() == "response"), None)
    fb = [m for m in marks if m.group(1).lower() == "feedback" and first_resp and m.start() > first_resp.end()]
    if first_resp is None or not fb:
        return _reject("unparseable")
    last_fb = fb[-1]
    response = text[first_resp.end() : last_fb.start()].strip()
    feedback_part = text[last_fb.end() :]
    if not response:
        return _reject("empty_response")
    if _TAG.search(response):
        return _reject("result_in_response")
    got = parse_absolute(feedback_part)
    if not got.ok:
        if got.feedback.strip() or _TAG.search(feedback_part):
            return _reject("no_score", f"the feedback has no readable [RESULT] score ({got.error})")
        return _reject("empty_feedback")
    if not got.feedback.strip():
        return _reject("empty_feedback")
    if got.result != score:
        return _reject("wrong_score", f"the feedback ended with [RESULT] {got.result}, not [RESULT] {score}")
    return Checked(None, response=response, feedback=got.feedback.strip())


def check_comparison(text: str | None, better: str) -> Checked:
    from judgeforge.format.parsing import parse_relative

    if text is None or not text.strip():
        return _reject("no_output")
    got = parse_relative(text)
    if not got.ok:
        if not got.feedback.strip():
            return _reject("empty_feedback")
        return _reject("no_verdict", f"the comparison has no readable [RESULT] A or B ({got.error})")
    if not got.feedback.strip():
        return _reject("empty_feedback")
    if got.result != better:
        return _reject("wrong_verdict", f"it ended with [RESULT] {got.result}, but Response {better} is better")
    return Checked(None, feedback=got.feedback.strip())


# --------------------------------------------------------------------------- the teacher


def make_teacher(
    teacher: str,
    *,
    model: str | None = None,
    api_key_env: str | None = None,
    concurrency: int = 8,
    max_retries: int = 6,
    timeout: float = 300.0,
    batch_size: int | None = None,
    dtype: str = "auto",
):
    """A judge backend for the teacher: ``http(s)://...`` -> ``openai``; a local model folder -> ``hf``.

    A hub id (``owner/name``) is loaded by the ``hf`` backend too.  An API model is reached through
    its OpenAI-compatible URL and ``model`` (e.g. ``https://api.openai.com/v1`` + ``gpt-4o``).
    """
    from judgeforge.backends import get_backend

    if re.match(r"^https?://", teacher):
        if not model:
            raise UserError(
                f"--teacher {teacher} is an endpoint; also pass --teacher-model NAME "
                "(the model it serves, e.g. gpt-4o or the name vLLM was started with)"
            )
        api_key = None
        if api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise UserError(f"--api-key-env {api_key_env}: the environment variable is not set")
        return get_backend(
            "openai", model, base_url=teacher, api_key=api_key, api="chat", concurrency=concurrency,
            max_retries=max_retries, timeout=timeout,
        )
    path = Path(teacher)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise UserError(f"--teacher {teacher}: the folder holds no config.json; pass a Hugging Face "
                            "model folder or an http(s):// endpoint")
    elif path.exists():
        raise UserError(f"--teacher {teacher}: is a file; pass a model folder or an http(s):// endpoint")
    elif not re.match(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$", teacher):
        raise UserError(
            f"--teacher {teacher}: neither an http(s):// endpoint nor a local model folder; for an API model "
            f"pass its endpoint and name, e.g. --teacher https://api.openai.com/v1 --teacher-model {teacher}"
        )
    return get_backend("hf", teacher, batch_size=batch_size, dtype=dtype)


def teacher_sampling(temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 2048,
                     seed: int | None = None):
    from judgeforge.backends import Sampling

    # repetition_penalty 1.0: OpenAI's own API rejects the parameter, and a teacher needs none
    return Sampling(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                    repetition_penalty=1.0, seed=seed)


def _ask(teacher, conversations: list[list[dict]], sampling) -> list[str | None]:
    """One reply per conversation (None when the backend gave nothing)."""
    if not conversations:
        return []
    replies = teacher.chat(conversations, sampling, n=1)
    if len(replies) != len(conversations):
        raise RuntimeError(f"the teacher backend returned {len(replies)} replies for {len(conversations)} requests")
    return [r[0] if r else None for r in replies]


# --------------------------------------------------------------------------- inputs


@dataclass
class Instruction:
    key: str  # the id of the input row, or a hash of the text
    text: str
    reference_answer: str | None = None
    where: str = ""


def _instruction_key(text: str) -> str:
    from judgeforge.io import sha256_text

    return "i" + sha256_text(text)[:10]


def read_instructions(path: str | os.PathLike) -> tuple[list[Instruction], int]:
    """Instructions from ``.txt`` (one per line) or ``.jsonl/.json/.csv/.parquet`` rows with an ``instruction``
    field (optional ``id``, ``reference_answer``).  Returns (instructions, number of duplicates dropped)."""
    from judgeforge.data import read_rows

    p = Path(path)
    if not p.exists():
        raise UserError(f"{path}: no such instructions file; check the path")
    items: list[Instruction] = []
    if p.suffix.lower() == ".txt":
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise UserError(f"{path}: undecodable text (not UTF-8); re-save the file as UTF-8") from None
        for n, line in enumerate(lines, start=1):
            if line.strip():
                items.append(Instruction(_instruction_key(line.strip()), line.strip(), None, f"{path}: line {n}"))
    else:
        from judgeforge.errors import did_you_mean

        rows = read_rows(p)
        ids: dict[str, str] = {}
        for row in rows:
            if row.error:
                raise UserError(f"{row.where}: {row.error}")
            d = row.data
            text = d.get("instruction")
            if text is None:
                hint = did_you_mean("instruction", [k for k in d if isinstance(k, str)])
                raise UserError(f"{row.where}: instruction: missing{hint}; each row needs an 'instruction' field "
                                "(optional: 'id', 'reference_answer')")
            if not isinstance(text, str) or not text.strip():
                raise UserError(f"{row.where}: instruction: must be non-empty text")
            rid = d.get("id")
            if rid is not None and str(rid).strip():
                rid = str(rid).strip()
                if rid in ids:
                    raise UserError(f"{row.where}: id: duplicate id '{rid}' (first at {ids[rid]}); ids must be unique")
                ids[rid] = row.where
            else:
                rid = _instruction_key(text.strip())
            ref = d.get("reference_answer")
            if ref is not None and not isinstance(ref, str):
                raise UserError(f"{row.where}: reference_answer: must be text")
            items.append(Instruction(rid, text.strip(), ref.strip() if ref and ref.strip() else None, row.where))
    if not items:
        raise UserError(f"{path}: holds no instructions")
    seen: set[str] = set()
    out = []
    for it in items:
        if it.text in seen:
            continue
        seen.add(it.text)
        out.append(it)
    return out, len(items) - len(out)


def read_reference_answers(path: str | os.PathLike, instructions: list[Instruction]) -> int:
    """Attach reference answers from a file (rows with ``reference_answer`` and ``id`` or ``instruction``)."""
    from judgeforge.data import read_rows

    if not Path(path).exists():
        raise UserError(f"{path}: no such reference-answers file; check the path")
    by_id = {it.key: it for it in instructions}
    by_text = {it.text: it for it in instructions}
    n = 0
    for row in read_rows(path):
        if row.error:
            raise UserError(f"{row.where}: {row.error}")
        d = row.data
        ref = d.get("reference_answer")
        if not isinstance(ref, str) or not ref.strip():
            raise UserError(f"{row.where}: reference_answer: missing or empty; each row needs the answer text")
        target = None
        if d.get("id") is not None:
            target = by_id.get(str(d["id"]).strip())
            if target is None:
                raise UserError(f"{row.where}: id: '{d['id']}' matches no instruction; check the ids")
        elif isinstance(d.get("instruction"), str):
            target = by_text.get(d["instruction"].strip())
            if target is None:
                raise UserError(f"{row.where}: instruction: matches no instruction in the instructions file")
        else:
            raise UserError(f"{row.where}: give 'id' or 'instruction' to say which instruction the answer is for")
        target.reference_answer = ref.strip()
        n += 1
    return n


# --------------------------------------------------------------------------- output file + state


def state_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(f".{out.name}.state.jsonl")


def _iter_own_output(out: Path):
    """Rows of a jsonl file this tool appends to, streamed; a partial last line (a write cut by a
    kill) is cut off the file first, a complete last row gets its newline."""
    from judgeforge.io import read_log, repair_log_tail

    repair_log_tail(out)
    yield from read_log(out, bad_line=lambda lineno: UserError(
        f"{out}: line {lineno} is not a JSON row; the file was not written by this tool or is "
        "damaged; use a new -o or pass --force to start over"))


def RowWriter(path: Path):
    """Appends rows to a jsonl file one by one, flushed, so a kill loses nothing written."""
    from judgeforge.io import AppendLog

    return AppendLog(path)


def _rubric_fingerprint(rubric: Rubric) -> str:
    from judgeforge.io import sha256_text

    return sha256_text(json.dumps(rubric.to_dict(), sort_keys=True))[:16]


# --------------------------------------------------------------------------- summary


@dataclass
class Summary:
    command: str
    output: str
    rows_per_score: dict = field(default_factory=dict)  # in the whole file after this run
    new_rows: int = 0
    rows_before: int = 0
    teacher_calls: int = 0
    rejected: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)  # {"id", "score"/"pair", "attempts", "reasons"}
    notes: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {
            "command": self.command,
            "output": self.output,
            "complete": self.complete,
            "rows_before": self.rows_before,
            "new_rows": self.new_rows,
            "rows": self.rows_before + self.new_rows,
            "rows_per_score": {str(k): v for k, v in sorted(self.rows_per_score.items(), key=lambda kv: str(kv[0]))},
            "teacher_calls": self.teacher_calls,
            "rejected": dict(sorted(self.rejected.items())),
            "failures": self.failures,
            "notes": self.notes,
            **self.extra,
        }

    def render(self, retries: int | None = None) -> str:
        lines = [f"{self.command}: {self.new_rows} new rows, {self.rows_before + self.new_rows} in all -> {self.output}"]
        if self.rows_per_score:
            keys = sorted(self.rows_per_score, key=str)
            head = "score" if self.command == "synthesize" else "label"
            lines.append(f"  {head:<8}" + "".join(f"{str(k):>7}" for k in keys))
            lines.append("  rows    " + "".join(f"{self.rows_per_score[k]:>7}" for k in keys))
        lines.append(f"  teacher calls: {self.teacher_calls}")
        if self.rejected:
            total = sum(self.rejected.values())
            parts = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items(), key=lambda kv: -kv[1]))
            lines.append(f"  rejected teacher outputs: {total} ({parts})")
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.failures:
            lines.append(
                f"  FAILED after {retries if retries is not None else 'all'} retries: {len(self.failures)} item(s); "
                "rerun the same command to try them again:"
            )
            for f in self.failures[:20]:
                what = f"score {f['score']}" if "score" in f else f.get("what", "")
                lines.append(f"    {f['id']} {what}: {', '.join(f['reasons'])}")
            if len(self.failures) > 20:
                lines.append(f"    ... and {len(self.failures) - 20} more (see --summary)")
        return "\n".join(lines)


# --------------------------------------------------------------------------- the retry loop


@dataclass
class _Job:
    key: tuple
    attempts: int = 0
    reasons: list = field(default_factory=list)
    last_detail: str | None = None


def _run_jobs(
    teacher,
    jobs: list[_Job],
    build: Callable[[_Job], list[dict]],
    accept: Callable[[_Job, str | None], Checked],
    on_ok: Callable[[_Job, Checked], None],
    *,
    retries: int,
    batch_size: int,
    sampling,
    summary: Summary,
    progress: Callable[[str], None] | None = None,
    label: str = "",
) -> list[_Job]:
    """Ask the teacher for every job, batch by batch; rejected outputs are asked again (a later batch,
    a new seed, the rejection reason told to the teacher) up to ``retries`` times.  Returns the jobs
    that failed for good."""
    queue = list(jobs)
    failed: list[_Job] = []
    import time

    batch_no = 0
    done = 0
    total = len(jobs)
    start = last_shown = time.monotonic()
    while queue:
        batch, queue = queue[:batch_size], queue[batch_size:]
        s = sampling if sampling.seed is None else sampling.with_seed(sampling.seed + 7919 * batch_no)
        batch_no += 1
        replies = _ask(teacher, [build(j) for j in batch], s)
        summary.teacher_calls += len(batch)
        for job, text in zip(batch, replies):
            job.attempts += 1
            checked = accept(job, text)
            if checked.ok:
                on_ok(job, checked)
                done += 1
                continue
            summary.rejected[checked.reason] += 1
            job.reasons.append(checked.reason)
            job.last_detail = checked.detail
            if job.attempts <= retries:
                queue.append(job)
            else:
                failed.append(job)
                done += 1
        now = time.monotonic()
        if progress and (now - last_shown >= 2.0 or not queue):
            last_shown = now
            rate = done / max(now - start, 1e-9)
            eta = f", eta {int((total - done) / rate) // 60}m{int((total - done) / rate) % 60:02d}s" \
                if rate > 0 and queue else ""
            progress(f"{label}{done}/{total} done ({rate:.1f}/s{eta}), {len(failed)} failed, "
                     f"{sum(summary.rejected.values())} rejected so far")
    return failed


# --------------------------------------------------------------------------- synthesize


def synthesize(
    teacher,
    rubric: Rubric,
    instructions: list[Instruction],
    output: str | os.PathLike,
    *,
    samples_per_score: int = 1,
    retries: int = 3,
    batch_size: int = 16,
    sampling=None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Summary:
    """Write Feedback Collection rows for every (instruction, score 1-5, sample) slot not yet in ``output``."""
    from judgeforge.data import to_collection_row
    from judgeforge.format.records import AbsoluteExample

    if rubric.descriptions is None:
        raise UserError("the rubric has no score descriptions; synthesize needs all five")
    if samples_per_score < 1:
        raise UserError("--samples-per-score must be >= 1")
    if retries < 0:
        raise UserError("--retries must be >= 0")
    out = Path(output)
    state = state_path(out)
    sampling = sampling or teacher_sampling()
    fingerprint = _rubric_fingerprint(rubric)
    if force:
        for p in (out, state):
            if p.exists():
                p.unlink()
    summary = Summary("synthesize", str(out))

    # what is already there
    done: Counter = Counter()  # (instruction text, score) -> rows
    responses: dict[str, set[bytes]] = {}  # instruction text -> dedup keys of its responses
    refs: dict[str, str] = {}
    ids: set[str] = set()
    n = 0
    for n, row in enumerate(_iter_own_output(out) if out.exists() else (), start=1):
        crit = row.get("orig_criteria")
        descs = tuple(row.get(f"orig_score{i}_description") for i in SCORES)
        if "orig_instruction" not in row or "orig_score" not in row:
            raise UserError(f"{out}: row {n} is not a Feedback Collection row; use a new -o or pass --force")
        if crit != rubric.criteria or descs != tuple(rubric.descriptions):
            raise UserError(
                f"{out}: row {n} was made with a different rubric (criteria '{str(crit)[:60]}'); write to a new "
                "-o file, or pass --force to start over"
            )
        text = row["orig_instruction"]
        done[(text, int(row["orig_score"]))] += 1
        responses.setdefault(text, set()).add(_dedup_key(row.get("orig_response", "")))
        if row.get("orig_reference_answer"):
            refs.setdefault(text, row["orig_reference_answer"])
        if row.get("id"):
            ids.add(str(row["id"]))
    summary.rows_before = n
    written_by_teacher: dict[str, str] = {}  # reference answers a previous run's teacher wrote
    if state.exists():
        for rec in _iter_own_output(state):
            if rec.get("rubric") == fingerprint and rec.get("instruction") and rec.get("reference_answer"):
                written_by_teacher.setdefault(rec["instruction"], rec["reference_answer"])

    # what is left to do
    todo: list[tuple[Instruction, int, int]] = []  # (instruction, score, sample index)
    for it in instructions:
        for s in SCORES:
            for k in range(done[(it.text, s)], samples_per_score):
                todo.append((it, s, k))
    for it in instructions:
        if it.reference_answer and refs.get(it.text, it.reference_answer) != it.reference_answer:
            summary.notes.append(
                f"{it.key}: rows already written use another reference answer; the new rows keep that one"
            )
    # which reference answer: the one of rows already written (all rows of an instruction agree),
    # else the user's, else one a previous run's teacher wrote, else the teacher writes one now
    need_ref = []
    pending = {id(t[0]) for t in todo}
    for it in instructions:
        if it.text in refs:
            it.reference_answer = refs[it.text]
        elif it.reference_answer is None and it.text in written_by_teacher:
            it.reference_answer = written_by_teacher[it.text]
        elif it.reference_answer is None and id(it) in pending:
            need_ref.append(it)

    writer_state = None
    writer = RowWriter(out)
    try:
        # 1. reference answers
        ref_failed: set[str] = set()
        if need_ref:
            writer_state = RowWriter(state)

            def ref_ok(job, checked):
                it = job.key[0]
                it.reference_answer = checked.response
                writer_state.write({"rubric": fingerprint, "instruction": it.text, "reference_answer": checked.response})

            failed = _run_jobs(
                teacher,
                [_Job((it,)) for it in need_ref],
                lambda job: reference_messages(job.key[0].text, rubric),
                lambda job, text: check_reference(text),
                ref_ok,
                retries=retries, batch_size=batch_size, sampling=sampling, summary=summary, progress=progress,
                label="reference answers: ",
            )
            summary.extra["references_written"] = len(need_ref) - len(failed)
            for job in failed:
                it = job.key[0]
                ref_failed.add(it.text)
                summary.failures.append(
                    {"id": it.key, "what": "reference answer", "attempts": job.attempts, "reasons": job.reasons}
                )

        # 2. responses + feedback for each score
        new_per_score: Counter = Counter()

        def build(job):
            it, s, _ = job.key
            prev = job.last_detail if job.attempts else None
            return scored_messages(it.text, it.reference_answer, rubric, s, prev)

        def accept(job, text):
            it, s, _ = job.key
            checked = check_scored(text, s)
            if not checked.ok:
                return checked
            key = _dedup_key(checked.response)
            if key in responses.get(it.text, ()):
                return _reject("duplicate_response")
            if s < 5 and key == _dedup_key(it.reference_answer or ""):
                return _reject("response_is_reference")
            return checked

        def on_ok(job, checked):
            it, s, k = job.key
            responses.setdefault(it.text, set()).add(_dedup_key(checked.response))
            rid = f"{it.key}-s{s}" + (f"-{k + 1}" if samples_per_score > 1 or k > 0 else "")
            base, n = rid, 1
            while rid in ids:  # an id reused for another instruction text
                n += 1
                rid = f"{base}-r{n}"
            ids.add(rid)
            ex = AbsoluteExample(it.text, checked.response, rubric, it.reference_answer, s, checked.feedback, rid)
            writer.write(to_collection_row(ex))
            new_per_score[s] += 1
            summary.new_rows += 1

        jobs = [_Job(t) for t in todo if t[0].text not in ref_failed]
        skipped = len(todo) - len(jobs)
        if skipped:
            summary.notes.append(f"{skipped} slot(s) skipped: their instruction has no reference answer")
        failed = _run_jobs(
            teacher, jobs, build, accept, on_ok,
            retries=retries, batch_size=batch_size, sampling=sampling, summary=summary, progress=progress,
            label="responses: ",
        )
        for job in failed:
            it, s, k = job.key
            summary.failures.append({"id": it.key, "score": s, "attempts": job.attempts, "reasons": job.reasons})
    finally:
        writer.close()
        if writer_state:
            writer_state.close()
    per = Counter({s: 0 for s in SCORES})
    for (_, s), c in done.items():
        per[s] += c
    per.update(new_per_score)
    summary.rows_per_score = dict(per)
    summary.extra["instructions"] = len(instructions)
    summary.extra["samples_per_score"] = samples_per_score
    return summary


# --------------------------------------------------------------------------- pair


@dataclass
class PairPlan:
    id: str
    a: object  # AbsoluteExample at position A
    b: object  # at position B
    preference: str  # "A" or "B"


def _group_key(ex) -> tuple:
    return (ex.instruction, ex.rubric.criteria, tuple(ex.rubric.descriptions or ()), ex.reference_answer or "")


def plan_pairs(examples: list, pairs_per_instruction: int | None = None, seed: int = 42) -> tuple[list[PairPlan], dict]:
    """Pairs of responses to the same instruction (and rubric) with different scores.

    Every such pair by default (the Preference Collection used all 10 pairs of 5 responses), or
    ``pairs_per_instruction`` drawn at random per instruction.  The better response goes to A in
    every other pair (counted over the whole file, in a seeded random order within an instruction),
    so A and B are balanced overall and within each instruction (+-1).
    """
    rng = random.Random(seed)
    groups: dict[tuple, list] = {}
    for ex in examples:
        groups.setdefault(_group_key(ex), []).append(ex)
    stats = Counter()
    plans: list[PairPlan] = []
    toggle = rng.random() < 0.5  # where the first better response goes
    for n_group, members in enumerate(groups.values(), start=1):
        cands = []
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                x, y = members[i], members[j]
                if x.score == y.score:
                    continue
                if normalize(x.response) == normalize(y.response):
                    stats["skipped_identical_responses"] += 1
                    continue
                cands.append((x, y))
        if not cands:
            stats["instructions_without_pairs"] += 1
            continue
        if pairs_per_instruction and len(cands) > pairs_per_instruction:
            cands = rng.sample(cands, pairs_per_instruction)
        else:
            rng.shuffle(cands)
        for x, y in cands:
            better, worse = (x, y) if x.score > y.score else (y, x)
            if toggle:
                a, b, pref = better, worse, "A"
            else:
                a, b, pref = worse, better, "B"
            toggle = not toggle
            ida = a.id or f"g{n_group}-{members.index(a) + 1}"
            idb = b.id or f"g{n_group}-{members.index(b) + 1}"
            plans.append(PairPlan(f"{ida}~{idb}", a, b, pref))
    stats["instructions"] = len(groups)
    return plans, dict(stats)


def compose_feedback(a, b, preference: str) -> str:
    """The fallback comparative feedback (no teacher): the two absolute feedbacks side by side, then the
    verdict from their scores.  Weaker than a teacher's comparison: nothing is compared directly."""
    fa = a.feedback.strip() if a.feedback else "(no feedback)"
    fb = b.feedback.strip() if b.feedback else "(no feedback)"
    return (
        f"Response A: {fa} Response B: {fb} Judged on their own under the rubric, Response A earns a score of "
        f"{a.score} and Response B a score of {b.score}, so Response {preference} is better."
    )


def pair(
    examples: list,
    output: str | os.PathLike,
    *,
    teacher=None,
    pairs_per_instruction: int | None = None,
    seed: int = 42,
    retries: int = 3,
    batch_size: int = 16,
    sampling=None,
    force: bool = False,
    settings: dict | None = None,
    progress: Callable[[str], None] | None = None,
) -> Summary:
    """Write Preference Collection rows made from absolute examples (resumable like :func:`synthesize`)."""
    from judgeforge.data import to_collection_row
    from judgeforge.format.records import RelativeExample

    out = Path(output)
    state = state_path(out)
    if force:
        for p in (out, state):
            if p.exists():
                p.unlink()
    plans, stats = plan_pairs(examples, pairs_per_instruction, seed)
    settings = dict(settings or {}, seed=seed, pairs_per_instruction=pairs_per_instruction,
                    feedback="teacher" if teacher is not None else "composed")
    summary = Summary("pair", str(out))
    have: set[str] = set()
    labels: Counter = Counter()
    for row in _iter_own_output(out) if out.exists() else ():
        have.add(str(row.get("id")))
        labels[row.get("orig_preference")] += 1
    existing = sum(labels.values())
    if out.exists() and state.exists():
        recs = [r for r in _iter_own_output(state) if "settings" in r]
        if recs and recs[-1]["settings"] != settings:
            old = recs[-1]["settings"]
            diff = ", ".join(f"{k} {old.get(k)!r} -> {v!r}" for k, v in settings.items() if old.get(k) != v)
            raise UserError(f"{out}: was made with other settings ({diff}); write to a new -o file, "
                            "or pass --force to start over")
    elif existing:
        raise UserError(f"{out}: exists but was not written by 'judgeforge data pair' (no state file); "
                        "write to a new -o file or pass --force")
    if not state.exists() or not existing:
        with open(state, "w", encoding="utf-8") as f:
            f.write(json.dumps({"settings": settings}) + "\n")
    summary.rows_before = existing
    todo = [p for p in plans if p.id not in have]
    if not plans:
        raise UserError(
            "no pairs: no instruction has two responses with different scores; pair needs several scored "
            "responses per instruction (e.g. the output of 'judgeforge data synthesize')"
        )

    def row_for(p: PairPlan, feedback: str) -> dict:
        a, b = p.a, p.b
        ex = RelativeExample(
            a.instruction, a.response, b.response, Rubric(a.rubric.criteria, a.rubric.descriptions),
            a.reference_answer, p.preference, feedback, p.id, a.score, b.score,
        )
        row = to_collection_row(ex)
        row["orig_feedback_A"] = a.feedback or ""
        row["orig_feedback_B"] = b.feedback or ""
        return row

    writer = RowWriter(out)
    try:
        if teacher is None:
            for p in todo:
                writer.write(row_for(p, compose_feedback(p.a, p.b, p.preference)))
                labels[p.preference] += 1
                summary.new_rows += 1
        else:

            def build(job):
                p = job.key[0]
                prev = job.last_detail if job.attempts else None
                return comparison_messages(
                    p.a.instruction, p.a.response, p.b.response, p.a.rubric, p.a.reference_answer,
                    p.a.score, p.b.score, p.a.feedback or "", p.b.feedback or "", prev,
                )

            def on_ok(job, checked):
                p = job.key[0]
                writer.write(row_for(p, checked.feedback))
                labels[p.preference] += 1
                summary.new_rows += 1

            failed = _run_jobs(
                teacher, [_Job((p,)) for p in todo], build,
                lambda job, text: check_comparison(text, job.key[0].preference), on_ok,
                retries=retries, batch_size=batch_size, sampling=sampling or teacher_sampling(),
                summary=summary, progress=progress, label="comparisons: ",
            )
            for job in failed:
                summary.failures.append(
                    {"id": job.key[0].id, "what": "comparison", "attempts": job.attempts, "reasons": job.reasons}
                )
    finally:
        writer.close()
    summary.rows_per_score = {k: labels.get(k, 0) for k in ("A", "B")}
    summary.extra.update(stats)
    summary.extra["pairs_planned"] = len(plans)
    summary.extra["feedback"] = settings["feedback"]
    return summary


# --------------------------------------------------------------------------- CLI

SYNTH_EPILOG = """\
rubric file (YAML; see docs/domain-judges.md):
  name: support-resolution        # optional
  description: ...                # optional, for humans
  criteria: Does the reply resolve the customer's problem?
  scores:
    1: ...
    2: ...
    3: ...
    4: ...
    5: ...

instructions: a .txt file (one instruction per line) or .jsonl/.json/.csv/.parquet rows with
'instruction' (optional 'id', 'reference_answer').  --reference-answers: rows with
'reference_answer' and 'id' or 'instruction'; the teacher writes the missing ones.

teachers:
  --teacher https://api.openai.com/v1 --teacher-model gpt-4o      (key from $OPENAI_API_KEY)
  --teacher http://127.0.0.1:8000/v1 --teacher-model NAME          (a vLLM / TGI / llama.cpp server)
  --teacher path/to/hf-model-folder                                (local transformers model)

A rerun with the same -o resumes: finished (instruction, score) slots are skipped, nothing is
written twice.  Exit status 0 when the run ends (failed items are listed, and retried by the next
run); 1 on a user error or when the teacher produced no usable row at all.
"""

PAIR_EPILOG = """\
Input: absolute rows (the output of 'judgeforge data synthesize', the Feedback Collection, or
judgeforge's absolute schema).  Output: Preference Collection rows.  Every pair of responses to
the same instruction with different scores is used unless --pairs-per-instruction K is given;
the better response sits at A in half of the rows.  Without --teacher the comparative feedback is
composed from the two absolute feedbacks (the weaker choice: no direct comparison).
"""


def _teacher_args(p: argparse.ArgumentParser, required: bool) -> None:
    g = p.add_argument_group("teacher")
    g.add_argument("--teacher", required=required, metavar="URL_OR_MODEL",
                   help="an OpenAI-compatible endpoint (http[s]://...) or a local Hugging Face model folder")
    g.add_argument("--teacher-model", default=None, metavar="NAME", help="model name at the endpoint (URL teachers)")
    g.add_argument("--api-key-env", default=None, metavar="VAR",
                   help="environment variable holding the API key (default: OPENAI_API_KEY)")
    g.add_argument("--concurrency", type=int, default=8, help="parallel requests to an endpoint (default 8)")
    g.add_argument("--batch-size", type=int, default=16,
                   help="teacher calls per batch; rows are written after each batch (default 16)")
    g.add_argument("--retries", type=int, default=3, help="regenerate a rejected output up to N times (default 3)")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--max-new-tokens", type=int, default=2048)
    g.add_argument("--timeout", type=float, default=300.0, help="seconds per HTTP request (default 300)")
    g.add_argument("--seed", type=int, default=0, help="sampling seed (shifted per batch; default 0)")


def _parser(cmd: str) -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    if cmd == "synthesize":
        p = argparse.ArgumentParser(
            prog="judgeforge data synthesize", formatter_class=fmt, epilog=SYNTH_EPILOG,
            description="Absolute judge data for your rubric, written by a teacher model "
            "(Feedback Collection schema).",
        )
        p.add_argument("--rubric", required=True, metavar="RUBRIC.yaml", help="rubric YAML file (or a preset name)")
        p.add_argument("--instructions", required=True, metavar="FILE", help="the instructions to answer")
        p.add_argument("--reference-answers", default=None, metavar="FILE",
                       help="reference answers (score 5) for some or all instructions")
        p.add_argument("-o", "--output", required=True, metavar="OUT.jsonl")
        p.add_argument("--samples-per-score", type=int, default=1, metavar="K",
                       help="distinct responses per (instruction, score) (default 1, as the Feedback Collection)")
        p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N instructions")
        _teacher_args(p, required=False)
        p.add_argument("--dry-run", action="store_true",
                       help="check the inputs and print the plan and the first teacher prompt; call no teacher")
    else:
        p = argparse.ArgumentParser(
            prog="judgeforge data pair", formatter_class=fmt, epilog=PAIR_EPILOG,
            description="Relative judge data (Preference Collection schema) from absolute rows.",
        )
        p.add_argument("input", metavar="IN.jsonl", help="absolute rows")
        p.add_argument("-o", "--output", required=True, metavar="OUT.jsonl")
        p.add_argument("--pairs-per-instruction", type=int, default=None, metavar="K",
                       help="pairs drawn per instruction (default: every pair with different scores)")
        _teacher_args(p, required=False)
        p.set_defaults(seed=42)
    p.add_argument("--summary", default=None, metavar="FILE.json", help="also write the summary as JSON")
    p.add_argument("--force", action="store_true", help="start over: delete the output and its state first")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return p


def _parse(cmd: str, argv: list[str]):
    p = _parser(cmd)

    def error(message):  # argparse's usage errors: one line, exit 1, like every user error
        raise UserError(f"data {cmd}: {message}; see 'judgeforge data {cmd} --help'")

    p.error = error  # type: ignore[method-assign]
    return p.parse_args(argv)


def _check_common(args) -> None:
    out = Path(args.output)
    if out.suffix.lower() != ".jsonl":
        raise UserError(f"-o {args.output}: the output must be a .jsonl file")
    if out.is_dir():
        raise UserError(f"-o {args.output}: is a folder; give a .jsonl file name")
    for name in ("retries", "concurrency", "batch_size", "max_new_tokens"):
        v = getattr(args, name)
        if v is None or v < (0 if name == "retries" else 1):
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} must be {'>= 0' if name == 'retries' else '>= 1'}, got {v}")


def _progress(args):
    if args.quiet:
        return None

    def show(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)

    return show


def _teacher_from_args(args):
    return make_teacher(
        args.teacher, model=args.teacher_model, api_key_env=args.api_key_env, concurrency=args.concurrency,
        timeout=args.timeout, batch_size=args.batch_size,
    )


def _finish(summary: Summary, args) -> int:
    print(summary.render(args.retries))
    if args.summary:
        from judgeforge.io import atomic_write_json

        atomic_write_json(args.summary, summary.to_dict())
    return 0


def _synthesize_cli(argv: list[str]) -> int:
    from judgeforge.format.rubric_file import load_rubric

    args = _parse("synthesize", argv)
    _check_common(args)
    if args.samples_per_score < 1:
        raise UserError(f"--samples-per-score must be >= 1, got {args.samples_per_score}")
    rf = load_rubric(args.rubric)
    instructions, dups = read_instructions(args.instructions)
    if args.limit is not None:
        if args.limit < 1:
            raise UserError(f"--limit must be >= 1, got {args.limit}")
        instructions = instructions[: args.limit]
    if args.reference_answers:
        read_reference_answers(args.reference_answers, instructions)
    if args.dry_run:
        it = instructions[0]
        print(f"rubric {rf.label}: [{rf.rubric.criteria}]")
        print(f"{len(instructions)} instructions ({dups} duplicates dropped), "
              f"{sum(1 for i in instructions if i.reference_answer)} with a reference answer; "
              f"{len(instructions) * 5 * args.samples_per_score} slots; output {args.output}"
              + (" (exists: a run resumes it)" if Path(args.output).exists() else ""))
        print("--- first teacher prompt (user turn) ---")
        print(scored_messages(it.text, it.reference_answer or "(written by the teacher first)", rf.rubric, 1)[-1]
              ["content"])
        return 0
    if not args.teacher:
        raise UserError("data synthesize: --teacher is required (an http(s):// endpoint or a model folder)")
    teacher = _teacher_from_args(args)
    sampling = teacher_sampling(args.temperature, args.top_p, args.max_new_tokens, args.seed)
    try:
        summary = synthesize(
            teacher, rf.rubric, instructions, args.output, samples_per_score=args.samples_per_score,
            retries=args.retries, batch_size=args.batch_size, sampling=sampling, force=args.force,
            progress=_progress(args),
        )
    finally:
        teacher.close()
    if dups:
        summary.notes.append(f"{dups} duplicate instruction(s) in {args.instructions} were dropped")
    if summary.new_rows == 0 and summary.failures and summary.rows_before == 0:
        print(summary.render(args.retries), file=sys.stderr)
        for p in (Path(args.output), state_path(args.output)):
            if p.exists() and p.stat().st_size == 0:  # leave nothing that looks like an output
                p.unlink()
        reasons = ", ".join(f"{k} {v}" for k, v in summary.rejected.most_common(3))
        raise UserError(
            f"the teacher produced no usable row in {summary.teacher_calls} calls ({reasons}); "
            "check --teacher / --teacher-model (is it an instruction-following model?) and try --dry-run "
            "to see the prompt"
        )
    return _finish(summary, args)


def _pair_cli(argv: list[str]) -> int:
    from judgeforge.data import load_examples, read_rows, schema_of
    from judgeforge.format.prompts import ABSOLUTE
    from judgeforge.io import sha256_text

    args = _parse("pair", argv)
    _check_common(args)
    if args.pairs_per_instruction is not None and args.pairs_per_instruction < 1:
        raise UserError(f"--pairs-per-instruction must be >= 1, got {args.pairs_per_instruction}")
    if Path(args.input).resolve() == Path(args.output).resolve():
        raise UserError(f"-o {args.output}: the same file as the input; choose another output")
    rows = read_rows(args.input)
    schema = schema_of(rows)
    from judgeforge.data import mode_of

    if mode_of(schema) != ABSOLUTE:
        raise UserError(f"{args.input}: holds relative rows ({schema}); pair needs absolute rows with scores "
                        "(e.g. the output of 'judgeforge data synthesize')")
    examples = load_examples(args.input, schema)
    teacher = _teacher_from_args(args) if args.teacher else None
    digest = sha256_text(Path(args.input).read_text(encoding="utf-8", errors="replace"))[:16] \
        if Path(args.input).is_file() else str(args.input)
    try:
        summary = pair(
            examples, args.output, teacher=teacher, pairs_per_instruction=args.pairs_per_instruction,
            seed=args.seed, retries=args.retries, batch_size=args.batch_size,
            sampling=teacher_sampling(args.temperature, args.top_p, args.max_new_tokens, args.seed),
            force=args.force, settings={"input_sha256": digest}, progress=_progress(args),
        )
    finally:
        if teacher is not None:
            teacher.close()
    return _finish(summary, args)


def main(argv: list[str]) -> int:
    """``judgeforge data synthesize ...`` / ``judgeforge data pair ...`` (argv starts with the subcommand)."""
    if not argv or argv[0] not in ("synthesize", "pair"):
        raise UserError("judgeforge.synth handles 'data synthesize' and 'data pair'")
    if argv[0] == "synthesize":
        return _synthesize_cli(argv[1:])
    return _pair_cli(argv[1:])


__all__: Iterable[str] = [
    "synthesize", "pair", "plan_pairs", "make_teacher", "read_instructions", "read_reference_answers",
    "reference_messages", "scored_messages", "comparison_messages", "check_reference", "check_scored",
    "check_comparison", "compose_feedback", "Summary", "REASONS",
]
