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


def test_encode_many_equals_row_by_row(tokenizer, mini_data):
    """The batched encoder (one tokenizer call per chunk) gives the ids and prompt lengths of the
    row-by-row rule, boundary-straddling rows and chunk edges included."""
    import judgeforge.tokenization as T
    from judgeforge.data import load_examples
    from judgeforge.format.records import training_row
    from judgeforge.tokenization import encode_many

    def one(prompt, completion):  # the rule, row by row, spelled out
        full = tokenizer(prompt + completion)["input_ids"]
        head = tokenizer(prompt)["input_ids"]
        if full[: len(head)] != head:
            offs = tokenizer(prompt + completion, return_offsets_mapping=True)["offset_mapping"]
            head = full[: sum(1 for (_s, e) in offs if e <= len(prompt))]
        return full + [tokenizer.eos_token_id], len(head)

    rows = [training_row(ex) for ex in load_examples(str(mini_data["absolute_train"]))[:40]]
    pairs = [(r["prompt"], r["completion"]) for r in rows] + [("Score: hel", "lo world"), ("a b", " c"), ("x", "")]
    old = T.ENCODE_CHUNK
    try:
        T.ENCODE_CHUNK = 7  # several chunks, one partly filled
        got = encode_many(tokenizer, [p for p, _ in pairs], [c for _, c in pairs])
    finally:
        T.ENCODE_CHUNK = old
    want = [one(p, c) for p, c in pairs]
    assert got == want
    assert any(w[1] != len(tokenizer(p)["input_ids"]) for w, (p, _) in zip(want, pairs))  # a straddle was hit
