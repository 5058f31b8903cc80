"""``synthesize``: Feedback Collection rows (a response per score 1-5 and its feedback) for every
(instruction, score, sample) slot not yet in the output."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from judgeforge.errors import UserError
from judgeforge.format.prompts import Rubric
from judgeforge.synth.checks import SCORES, check_reference, check_scored, dedup_key, reject
from judgeforge.synth.inputs import Instruction
from judgeforge.synth.jobs import (
    Job,
    RowWriter,
    Summary,
    iter_own_output,
    rubric_fingerprint,
    run_jobs,
    state_path,
)
from judgeforge.synth.teacher import reference_messages, scored_messages, teacher_sampling


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
    fingerprint = rubric_fingerprint(rubric)
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
    for n, row in enumerate(iter_own_output(out) if out.exists() else (), start=1):
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
        responses.setdefault(text, set()).add(dedup_key(row.get("orig_response", "")))
        if row.get("orig_reference_answer"):
            refs.setdefault(text, row["orig_reference_answer"])
        if row.get("id"):
            ids.add(str(row["id"]))
    summary.rows_before = n
    written_by_teacher: dict[str, str] = {}  # reference answers a previous run's teacher wrote
    if state.exists():
        for rec in iter_own_output(state):
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

            failed = run_jobs(
                teacher,
                [Job((it,)) for it in need_ref],
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
            key = dedup_key(checked.response)
            if key in responses.get(it.text, ()):
                return reject("duplicate_response")
            if s < 5 and key == dedup_key(it.reference_answer or ""):
                return reject("response_is_reference")
            return checked

        def on_ok(job, checked):
            it, s, k = job.key
            responses.setdefault(it.text, set()).add(dedup_key(checked.response))
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

        jobs = [Job(t) for t in todo if t[0].text not in ref_failed]
        skipped = len(todo) - len(jobs)
        if skipped:
            summary.notes.append(f"{skipped} slot(s) skipped: their instruction has no reference answer")
        failed = run_jobs(
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
