"""The teacher: its prompts (reference answer, scored response + feedback, comparison), the backend
that answers them (:func:`make_teacher`) and its sampling."""

from __future__ import annotations

import os
import re
from pathlib import Path

from judgeforge.errors import UserError
from judgeforge.format.prompts import Rubric, render_rubric

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


def ask(teacher, conversations: list[list[dict]], sampling) -> list[str | None]:
    """One reply per conversation (None when the backend gave nothing)."""
    if not conversations:
        return []
    replies = teacher.chat(conversations, sampling, n=1)
    if len(replies) != len(conversations):
        raise RuntimeError(f"the teacher backend returned {len(replies)} replies for {len(conversations)} requests")
    return [r[0] if r else None for r in replies]
