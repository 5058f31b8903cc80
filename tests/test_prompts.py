"""The judge format is byte-identical to the official one.

(a) every rendered prompt in the shared benchmark files is rebuilt from its parts;
(b) the templates, system prompts and rubric presets equal the prometheus-eval 0.1.20 strings.
"""

from __future__ import annotations

import json

import pytest
from official import official_prompts

from judgeforge.errors import UserError
from judgeforge.format import prompts as P


def _benchmark_prompts(shared_data):
    out = []
    for name in ("vicuna_eval.json", "mt_bench_eval.json"):
        for row in json.loads((shared_data / name).read_text()):
            out.append((name, True, row["instruction"]))
    for row in json.loads((shared_data / "hhh_alignment_eval.json").read_text()):
        out.append(("hhh", False, row["chosen_instruction"]))
        out.append(("hhh", False, row["rejected_instruction"]))
    return out


def test_every_benchmark_prompt_rebuilds_byte_for_byte(shared_data):
    items = _benchmark_prompts(shared_data)
    with_ref = sum(1 for _, ref, _ in items if ref)
    assert (with_ref, len(items) - with_ref) == (640, 442)
    for name, has_ref, text in items:
        parts = P.parse_rendered(text, where=name)
        assert parts.mode == P.ABSOLUTE
        # the benchmark files use the default absolute wording
        assert parts.variant == P.DEFAULT_VARIANT[P.ABSOLUTE] == "collection"
        assert (parts.reference_answer is not None) == has_ref
        rubric = parts.rubric
        assert rubric.descriptions is not None and len(rubric.descriptions) == 5
        # rebuilt from the *parts* through the public renderer, not from the rubric text
        rebuilt = P.render_absolute(parts.instruction, parts.response, rubric, parts.reference_answer)
        assert rebuilt == text


def test_templates_equal_prometheus_eval_0_1_20():
    off = official_prompts()
    assert P.ABS_SYSTEM_PROMPT == off.ABS_SYSTEM_PROMPT
    assert P.REL_SYSTEM_PROMPT == off.REL_SYSTEM_PROMPT
    v = "prometheus-eval-0.1.20"
    assert P.get_template("absolute", reference=True, variant=v) == off.ABSOLUTE_PROMPT
    assert P.get_template("absolute", reference=False, variant=v) == off.ABSOLUTE_PROMPT_WO_REF
    assert P.get_template("relative", reference=True, variant="paper") == off.RELATIVE_PROMPT
    assert P.get_template("relative", reference=False, variant="paper") == off.RELATIVE_PROMPT_WO_REF
    # the default relative wording is the package's (= the paper appendix's)
    assert P.get_template("relative", reference=True) == off.RELATIVE_PROMPT
    assert off.SCORE_RUBRIC_TEMPLATE.format(
        criteria="C", **{f"score{i}_description": f"d{i}" for i in range(1, 6)}
    ) == P.render_rubric(P.Rubric("C", ("d1", "d2", "d3", "d4", "d5")))


def test_absolute_variants_differ_only_in_rule_3():
    a = P.get_template("absolute", reference=True, variant="collection")
    b = P.get_template("absolute", reference=True, variant="prometheus-eval-0.1.20")
    assert a.replace('follows: "Feedback: (write', 'follows: "(write') == b
    assert a != b


@pytest.mark.parametrize("name", ["helpfulness", "harmlessness", "honesty", "factual_validity", "reasoning"])
def test_rubric_presets_equal_official(name):
    off = official_prompts()
    assert P.get_rubric(name).render("absolute") == off.load_rubric(name, "absolute")
    assert P.get_rubric(name).render("relative") == off.load_rubric(name, "relative")


def test_rendering_fills_every_placeholder_with_the_official_format():
    off = official_prompts()
    rub = P.get_rubric("honesty")
    ours = P.render_relative("Q {x}", "A text", "B text", rub, "ref", variant="paper")
    theirs = off.RELATIVE_PROMPT.format(
        instruction="Q {x}", response_A="A text", response_B="B text", reference_answer="ref",
        rubric=rub.render("relative"),
    )
    assert ours == theirs
    # braces inside user text stay literal (str.format would choke or substitute)
    assert "Q {x}" in ours and "{" not in ours.replace("Q {x}", "")


def test_latest_relative_wording_is_available_by_name():
    latest = P.render_relative("I", "a", "b", P.Rubric("crit"), "ref", variant="latest")
    assert "go straight to the point" in latest
    assert '[RESULT] (Either "A" or "B")' in latest
    assert latest.endswith("###Score Rubric:\n[crit]\n\n###Feedback: ")
    assert P.parse_rendered(latest).render() == latest
    noref = P.render_relative("I", "a", "b", P.Rubric("crit"), variant="latest")
    assert "###Reference Answer:" not in noref


def test_relative_prompts_round_trip():
    for variant in ("paper", "latest"):
        for ref in (None, "the reference"):
            text = P.render_relative("Do X.", "resp A\n\nmore", "resp B", P.Rubric("Is it good?"), ref, variant=variant)
            parts = P.parse_rendered(text)
            assert parts.mode == P.RELATIVE
            assert (parts.response_a, parts.response_b, parts.reference_answer) == ("resp A\n\nmore", "resp B", ref)
            assert parts.rubric.criteria == "Is it good?"
            assert parts.render() == text


def test_chat_wrapping_folds_the_system_prompt_into_the_user_turn():
    text = P.chat_prompt("###Task", "absolute")
    assert text == f"[INST] {P.ABS_SYSTEM_PROMPT}\n\n###Task [/INST]"
    assert P.chat_prompt("x", "relative", system_prompt="") == "[INST] x [/INST]"


def test_chat_template_matches_the_training_format(tokenizer):
    msgs = [
        {"role": "system", "content": P.REL_SYSTEM_PROMPT},
        {"role": "user", "content": "###Task"},
        {"role": "assistant", "content": "Good. [RESULT] A"},
    ]
    rendered = tokenizer.apply_chat_template(msgs, tokenize=False)
    assert rendered == "<s>" + P.chat_prompt("###Task", "relative") + "Good. [RESULT] A</s>"
    folded = tokenizer.apply_chat_template(P.messages_for("###Task", "relative"), tokenize=False)
    assert folded == "<s>" + P.chat_prompt("###Task", "relative")


def test_unknown_variant_and_mode_are_user_errors():
    with pytest.raises(UserError, match="did you mean 'paper'"):
        P.get_template("relative", reference=True, variant="papr")
    with pytest.raises(UserError, match="absolute' or 'relative"):
        P.get_template("pairwise", reference=True)
    with pytest.raises(UserError, match="no score descriptions"):
        P.render_absolute("i", "r", P.Rubric("crit"))
