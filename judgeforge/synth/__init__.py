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

Modules: ``teacher`` (prompts, backend, sampling), ``checks`` (teacher output accepted or
rejected), ``inputs`` (instructions, reference answers), ``jobs`` (output + state files, summary,
the retry loop), ``synthesis`` (``synthesize``), ``pairing`` (``pair``), ``cli`` (the two commands).
"""

from __future__ import annotations

from judgeforge.synth.checks import (
    REASONS,
    SCORES,
    Checked,
    check_comparison,
    check_reference,
    check_scored,
    normalize,
)
from judgeforge.synth.cli import main
from judgeforge.synth.inputs import Instruction, read_instructions, read_reference_answers
from judgeforge.synth.jobs import RowWriter, Summary, state_path
from judgeforge.synth.pairing import PairPlan, compose_feedback, pair, plan_pairs
from judgeforge.synth.synthesis import synthesize
from judgeforge.synth.teacher import (
    TEACHER_SYSTEM,
    comparison_messages,
    make_teacher,
    reference_messages,
    scored_messages,
    teacher_sampling,
)

__all__ = [
    "synthesize", "pair", "plan_pairs", "make_teacher", "read_instructions", "read_reference_answers",
    "reference_messages", "scored_messages", "comparison_messages", "check_reference", "check_scored",
    "check_comparison", "compose_feedback", "Summary", "REASONS",
    # also public, as before the split
    "SCORES", "Checked", "normalize", "main", "Instruction", "RowWriter", "state_path", "PairPlan",
    "TEACHER_SYSTEM", "teacher_sampling",
]
