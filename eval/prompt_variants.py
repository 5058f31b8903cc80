"""What one evaluation job sends to the judge: the rendered prompt and its wrapping, per prompt variant.

``default``
    judgeforge's rendering, the training format: absolute prompts as the benchmark files
    render them (ending ``###Feedback: ``), relative prompts in the paper's wording with the
    pair's reference answer where it has one, Auto-J with its rubric's criteria line, and the
    system prompt folded in front of the instruction with a blank line (``\\n\\n``).
``paper-harness``
    What the paper's evaluation script (prometheus-eval ``eval/run_evaluate.py`` with its data
    loader) sends, byte for byte for a Mistral-template judge such as Prometheus 2:

    * absolute benchmarks (Vicuna, MT Bench, FLASK, Feedback Bench) and the single-response
      prompts of pairs (HHH, MT Bench Human, Preference Bench): the file's own rendered prompt
      (not the package's template), ``.strip().rstrip('",')``, so it ends ``###Feedback:``
      (:func:`judgeforge.format.prompts.harness_file_prompt`);
    * relative prompts: the script's ``RELATIVE_PROMPT`` (rule 3 begins ``Feedback: ``), filled
      with the pair's sections as the script finds them (:func:`harness_sections`: each one
      stripped) and the rubric's first line, stripped; it has no reference answer, so a pair's
      reference is left out, as the script leaves it out;
    * Auto-J: the relative rubric is the empty first line of the script's rubric string and both
      responses are stripped; graded alone, its ``ABSOLUTE_PROMPT`` (a leading newline, a blank
      line after ``###Score Rubrics:``) with the responses as in the file
      (:func:`judgeforge.format.prompts.harness_autoj_absolute`);
    * wrapping: the script puts the system prompt straight in front of the instruction in one
      user turn (the released model's chat template has no system role), nothing between:
      ``[INST] {system}{instruction} [/INST]`` (:func:`judgeforge.format.prompts.harness_chat_prompt`).

The variant is part of every cache key and written into the report (``prompt_variant``).
"""

from __future__ import annotations

from judgeforge.backends import Request
from judgeforge.errors import UserError, did_you_mean
from judgeforge.eval.benchmarks import AUTOJ_FORMAT, AUTOJ_RUBRIC
from judgeforge.format.prompts import (
    ABSOLUTE,
    RELATIVE,
    SYSTEM_PROMPTS,
    harness_autoj_absolute,
    harness_file_prompt,
    render_relative,
)

DEFAULT = "default"
HARNESS = "paper-harness"
PROMPT_VARIANTS = (DEFAULT, HARNESS)


def check_prompt_variant(name: str, where: str = "prompt_variant") -> str:
    if name not in PROMPT_VARIANTS:
        raise UserError(f"{where}: unknown prompt variant '{name}'{did_you_mean(name, PROMPT_VARIANTS)}; "
                        f"use {' or '.join(PROMPT_VARIANTS)}")
    return name


# The sections the script's loader takes out of a rendered prompt (its extract_sections): the text is
# cut at every "###"; a piece is named by the first of these headers it contains (in this order) and
# holds what follows the header's first occurrence up to its second, stripped; a later piece of the
# same name replaces an earlier one.
_SECTION_HEADERS = (("Task Description:\n", "task_description"), ("The instruction to evaluate:\n", "instruction"),
                    ("Response to evaluate:\n", "response"), ("Score Rubrics:\n", "rubric"),
                    ("Feedback:", "feedback"), ("Reference Answer (Score 5):", "reference_answer"))


def harness_sections(prompt: str) -> dict[str, str]:
    """The parts of a rendered absolute prompt as the paper's script finds them (its ``extract_sections``
    rule, applied after its ``.strip().rstrip('",')``): ``instruction``, ``response``, ``rubric``,
    ``reference_answer``, ``task_description``, ``feedback`` where present.  They agree with
    :func:`judgeforge.format.prompts.parse_rendered` up to outer whitespace on the shared benchmark
    files (docs/evaluation.md); a "###" inside a user's text cuts a section short here."""
    found: dict[str, str] = {}
    for piece in harness_file_prompt(prompt).split("###"):
        for header, name in _SECTION_HEADERS:
            probe = header.rstrip("\n")
            if probe in piece:
                parts = piece.split(header)
                found[name] = parts[1].strip() if len(parts) > 1 else ""
                break
    return found


def _harness_pair(item, where: str) -> tuple[str, str, str, str]:
    """(instruction, chosen response, rejected response, rubric first line) as the script reads a pair."""
    if item.chosen is None or item.rejected is None:  # a pair without rendered prompts: its parts, stripped
        return (item.instruction.strip(), item.chosen_response.strip(), item.rejected_response.strip(),
                item.rubric_text.strip().split("\n")[0])
    c, r = harness_sections(item.chosen), harness_sections(item.rejected)
    if "instruction" not in c or "rubric" not in c:
        raise UserError(f"{where}: the paper's script finds no instruction or rubric section in this pair's "
                        "prompt (a '###' in the text?); evaluate it with --prompt_variant default")
    return c["instruction"], c.get("response", ""), r.get("response", ""), c["rubric"].split("\n")[0]


def job_request(item, job: str, variant: str = DEFAULT) -> Request:
    """The request of one job (``abs``, ``rel:A``/``rel:B``, ``a2r:chosen``/``a2r:rejected``) of a
    benchmark item (:class:`judgeforge.eval.benchmarks.Item`) in a prompt variant."""
    check_prompt_variant(variant)
    if job.startswith("rel:"):
        mode = RELATIVE
        chosen_first = job == "rel:A"
        if variant == DEFAULT:
            return Request(mode, item.relative_prompt(chosen_first))
        if item.extra.get("format") == AUTOJ_FORMAT:  # the script's loader: the prompt as it is, responses stripped
            instruction, chosen, rejected, rubric = (item.instruction, item.chosen_response.strip(),
                                                     item.rejected_response.strip(), "")
        else:
            instruction, chosen, rejected, rubric = _harness_pair(item, f"{item.benchmark} item {item.id}")
        a, b = (chosen, rejected) if chosen_first else (rejected, chosen)
        text = render_relative(instruction, a, b, rubric, variant=HARNESS)
    else:
        mode = ABSOLUTE
        if job == "abs":
            text = item.prompt
        elif job in ("a2r:chosen", "a2r:rejected"):
            text = item.chosen if job == "a2r:chosen" else item.rejected
        else:
            raise ValueError(f"unknown job {job!r}")
        if variant == DEFAULT:
            return Request(mode, text)
        if item.extra.get("format") == AUTOJ_FORMAT:
            response = item.chosen_response if job == "a2r:chosen" else item.rejected_response
            text = harness_autoj_absolute(item.instruction, response, AUTOJ_RUBRIC)
        else:
            text = harness_file_prompt(text)
    # one user turn, the system prompt in front with nothing between (no system role of its own)
    return Request(mode, SYSTEM_PROMPTS[mode] + text, system_prompt="")
