"""Tokenisation for training: the real Mistral v1 tokenizer, masking, EOS, pad, over-long rows."""

from __future__ import annotations

import pytest

from judgeforge.format.prompts import ABS_SYSTEM_PROMPT, chat_prompt
from judgeforge.tokenization import IGNORE_INDEX, EncodeStats, encode_for_training, tokenize_rows

INSTRUCTION = "###Task Description:\nJudge this.\n\n###Feedback: "
OUTPUT = "The response is fine. [RESULT] 4"


def _mistral_common_prompt_ids():
    mc = pytest.importorskip("mistral_common")
    del mc
    from mistral_common.protocol.instruct.messages import SystemMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    tok = MistralTokenizer.v1()
    req = ChatCompletionRequest(messages=[SystemMessage(content=ABS_SYSTEM_PROMPT), UserMessage(content=INSTRUCTION)])
    return tok.encode_chat_completion(req).tokens, tok


def test_prompt_ids_equal_mistral_commons_own_encoding(tokenizer):
    ref_ids, mc = _mistral_common_prompt_ids()
    enc = encode_for_training(tokenizer, chat_prompt(INSTRUCTION, "absolute"), OUTPUT)
    n_prompt = sum(1 for label in enc["labels"] if label == IGNORE_INDEX)
    # everything through [/INST] is exactly mistral-common's chat encoding (system folded in)
    assert enc["input_ids"][:n_prompt] == ref_ids
    # the target is the output followed by EOS, and decodes back to the output
    target = enc["input_ids"][n_prompt:]
    assert target[-1] == tokenizer.eos_token_id == 2
    assert tokenizer.decode(target[:-1]) == OUTPUT
    # mistral-common's raw tokenizer agrees on the output's pieces after the first one
    mc_out = mc.instruct_tokenizer.tokenizer.encode(OUTPUT, bos=False, eos=True)
    assert target[1:] == mc_out[1:]


def test_labels_mask_everything_through_inst(tokenizer):
    enc = encode_for_training(tokenizer, chat_prompt(INSTRUCTION, "relative"), OUTPUT)
    ids, labels = enc["input_ids"], enc["labels"]
    assert ids[0] == tokenizer.bos_token_id == 1
    first = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
    assert tokenizer.decode(ids[:first]).endswith("[/INST]")
    assert labels[first:] == ids[first:]


def test_pad_is_unk(tokenizer):
    assert tokenizer.pad_token_id == tokenizer.unk_token_id == 0
    assert len(tokenizer) == 32000


def test_overlong_rows_are_dropped_or_truncated_and_counted(tokenizer):
    rows = [
        {"id": 1, "prompt": chat_prompt(INSTRUCTION, "absolute"), "completion": OUTPUT},
        {"id": 2, "prompt": chat_prompt(INSTRUCTION + " word" * 300, "absolute"), "completion": OUTPUT},
    ]
    kept, stats = tokenize_rows(tokenizer, rows, max_length=128, overlong="drop")
    assert len(kept) == 1 and stats.dropped_overlong == 1 and stats.dropped_ids == [2]
    assert "1 dropped as longer than max_length" in stats.summary()
    kept, stats = tokenize_rows(tokenizer, rows, max_length=128, overlong="truncate")
    # row 2 truncated inside the prompt keeps no target: dropped, and counted as such
    assert len(kept) == 1 and stats.dropped_no_target == 1
    short = [{"id": 3, "prompt": chat_prompt(INSTRUCTION, "absolute"), "completion": OUTPUT + " more" * 50}]
    kept, stats = tokenize_rows(tokenizer, short, max_length=100, overlong="truncate")
    assert stats.truncated == 1 and len(kept[0]["input_ids"]) == 100


def test_bad_overlong_policy_is_a_user_error(tokenizer):
    from judgeforge.errors import UserError

    with pytest.raises(UserError, match="'drop' or 'truncate'"):
        encode_for_training(tokenizer, "[INST] x [/INST]", "y", 10, "cut", EncodeStats())


def test_tokenizer_matches_sentencepiece_on_real_prompts(tokenizer, shared_data):
    """The offline tokenizer gives SentencePiece's own ids (whitespace runs in code included)."""
    import json
    import os

    import mistral_common
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(
        model_file=os.path.join(os.path.dirname(mistral_common.__file__), "data", "tokenizer.model.v1")
    )
    texts = [r["instruction"] for r in json.loads((shared_data / "mt_bench_eval.json").read_text())]
    texts += [r["chosen_instruction"] for r in json.loads((shared_data / "hhh_alignment_eval.json").read_text())]
    mismatched = [t[:60] for t in texts if tokenizer(t)["input_ids"] != [1] + sp.encode(t)]
    assert mismatched == []
