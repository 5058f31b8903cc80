"""``pair``: Preference Collection rows from absolute rows, A/B balanced; the comparative feedback
written by a teacher, or composed from the two absolute feedbacks."""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from judgeforge.errors import UserError
from judgeforge.format.prompts import Rubric
from judgeforge.synth.checks import check_comparison, normalize
from judgeforge.synth.jobs import Job, RowWriter, Summary, iter_own_output, run_jobs, state_path
from judgeforge.synth.teacher import comparison_messages, teacher_sampling


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
    for row in iter_own_output(out) if out.exists() else ():
        have.add(str(row.get("id")))
        labels[row.get("orig_preference")] += 1
    existing = sum(labels.values())
    if out.exists() and state.exists():
        recs = [r for r in iter_own_output(state) if "settings" in r]
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

            failed = run_jobs(
                teacher, [Job((p,)) for p in todo], build,
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
