"""The pieces of a training step, in-process on the CPU: masking, target-only loss, packing, LoRA targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from judgeforge.train import dataset as D
from judgeforge.train.attention import cu_seqlens_from_position_ids, register
from judgeforge.train.loss import target_loss_sum
from judgeforge.train.recipe import TrainRecipe, load

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rows(tokenizer):
    from judgeforge.data import to_training_rows
    from judgeforge.train.dataset import _mini_examples

    train_rows = to_training_rows(_mini_examples("mini:absolute:6")) + to_training_rows(
        _mini_examples("mini:relative:4")
    )
    recipe = TrainRecipe(model="x/y", max_length=4096)
    return train_rows, D.tokenize(recipe, tokenizer, train_rows, cache_dir=None)


def _items(tok: D.TokenizedRows, idx):
    return [{"rows": [tok.row(i) for i in idx], "row_ids": [tok.row_ids[i] for i in idx]}]


def test_labels_mask_the_prompt(rows, tokenizer):
    text_rows, tok = rows
    batch = D.Collator(packed=False)(_items(tok, [0, 7, 3]))
    for b, i in enumerate([0, 7, 3]):
        ids, n_prompt = tok.row(i)
        labels = batch["labels"][b]
        assert (labels[:n_prompt] == -100).all() and (labels[n_prompt : len(ids)] != -100).all()
        assert (labels[len(ids) :] == -100).all() and (batch["attention_mask"][b, len(ids) :] == 0).all()
        prompt_text = tokenizer.decode(ids[:n_prompt].tolist())
        assert prompt_text.startswith("<s>") and prompt_text.rstrip().endswith("[/INST]")
        target = labels[labels != -100].tolist()
        assert target[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(target[:-1]).strip() == text_rows[i]["completion"].strip()


def test_packed_collator_layout(rows):
    _, tok = rows
    batch = D.Collator(packed=True)(_items(tok, [1, 2, 5]))
    lens = [len(tok.row(i)[0]) for i in (1, 2, 5)]
    assert batch["input_ids"].shape == (1, sum(lens)) and "attention_mask" not in batch
    assert batch["cu_seq_lens_q"].tolist() == [0, lens[0], lens[0] + lens[1], sum(lens)]
    assert batch["max_length_q"] == max(lens) and batch["n_tokens"] == sum(lens)
    pos = batch["position_ids"][0].tolist()
    assert pos[: lens[0]] == list(range(lens[0])) and pos[lens[0]] == 0
    assert cu_seqlens_from_position_ids(batch["position_ids"]).tolist() == batch["cu_seq_lens_q"].tolist()
    # each sequence's first label is masked: no target crosses a sequence boundary
    starts = batch["cu_seq_lens_q"][:-1].tolist()
    assert all(batch["labels"][0, s] == -100 for s in starts)


@pytest.fixture(scope="module")
def models(tiny_model):
    from transformers import AutoModelForCausalLM

    sdpa = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation="sdpa")
    varlen = AutoModelForCausalLM.from_pretrained(
        tiny_model, dtype=torch.float32, attn_implementation=register()
    )
    return sdpa, varlen


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def test_target_only_loss_equals_the_models_own_loss(rows, models):
    _, tok = rows
    model, _ = models
    batch = D.Collator(packed=False)(_items(tok, [0, 4, 8]))
    labels = batch.pop("labels")
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    model.zero_grad()
    ref = model(**inputs, labels=labels).loss
    ref.backward()
    g_ref = _grads(model)
    model.zero_grad()
    s, n = target_loss_sum(model, inputs, labels)
    assert n == int((labels[:, 1:] != -100).sum())
    (s / n).backward()
    torch.testing.assert_close(s / n, ref, rtol=1e-5, atol=1e-6)
    for name, g in _grads(model).items():
        torch.testing.assert_close(g, g_ref[name], rtol=1e-4, atol=1e-6, msg=name)


def test_packed_logits_are_isolated_and_equal_separate_rows(rows, models):
    _, tok = rows
    sdpa, varlen = models
    idx = [2, 6, 9]
    packed = D.Collator(packed=True)(_items(tok, idx))
    kw = {
        k: packed[k]
        for k in (
            "input_ids",
            "position_ids",
            "cu_seq_lens_q",
            "cu_seq_lens_k",
            "max_length_q",
            "max_length_k",
        )
    }
    with torch.no_grad():
        logits = varlen(**kw).logits[0]
        cu = packed["cu_seq_lens_q"].tolist()
        for j, i in enumerate(idx):
            alone = sdpa(input_ids=torch.as_tensor(tok.row(i)[0], dtype=torch.long)[None]).logits[0]
            torch.testing.assert_close(logits[cu[j] : cu[j + 1]], alone, rtol=1e-4, atol=1e-4)
        # change every token of the first sequence: the others' logits must not move
        changed = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in kw.items()}
        changed["input_ids"][0, 1 : cu[1]] = (changed["input_ids"][0, 1 : cu[1]] + 7) % 32000
        logits2 = varlen(**changed).logits[0]
    assert not torch.allclose(logits2[: cu[1]], logits[: cu[1]])
    assert torch.equal(logits2[cu[1] :], logits[cu[1] :])


def test_packed_loss_and_gradients_equal_padded(rows, models):
    _, tok = rows
    sdpa, varlen = models
    idx = [0, 3, 5, 7]
    padded = D.Collator(packed=False)(_items(tok, idx))
    packed = D.Collator(packed=True)(_items(tok, idx))
    results = []
    for model, batch in ((sdpa, padded), (varlen, packed)):
        labels = batch.pop("labels")
        inputs = {k: v for k, v in batch.items() if k not in ("n_tokens", "n_rows")}
        model.zero_grad()
        s, n = target_loss_sum(model, inputs, labels)
        (s / n).backward()
        results.append((s / n, n, _grads(model)))
    (l_pad, n_pad, g_pad), (l_pack, n_pack, g_pack) = results
    assert n_pad == n_pack
    torch.testing.assert_close(l_pack, l_pad, rtol=1e-5, atol=1e-6)
    assert g_pad.keys() == g_pack.keys()
    for name in g_pad:
        torch.testing.assert_close(g_pack[name], g_pad[name], rtol=1e-4, atol=1e-6, msg=name)


def test_micro_batch_plans_cover_every_row_once():
    lengths = np.array([100, 900, 400, 50, 700, 300, 1000, 20, 640])
    fixed = D.plan_micro_batches(lengths, 4, None, seed=1)
    assert [len(b) for b in fixed] == [4, 4, 1]
    assert sorted(i for b in fixed for i in b) == list(range(len(lengths)))
    assert (
        fixed
        == D.plan_micro_batches(lengths, 4, None, seed=1)
        != D.plan_micro_batches(lengths, 4, None, seed=2)
    )
    budget = D.plan_micro_batches(lengths, 4, 1024, seed=1)
    assert sorted(i for b in budget for i in b) == list(range(len(lengths)))
    assert all(lengths[b].sum() <= 1024 for b in budget)


def test_tokenize_shards_merge_to_the_single_process_result(rows, tokenizer, tmp_path):
    text_rows, tok = rows
    recipe = TrainRecipe(model="x/y", max_length=4096)
    # two "processes" writing their shards to one cache folder, then each reading both
    D.tokenize(recipe, tokenizer, text_rows, tmp_path, rank=1, world=2)
    merged = D.tokenize(recipe, tokenizer, text_rows, tmp_path, rank=0, world=2)
    assert merged.row_ids == tok.row_ids and np.array_equal(merged.lengths, tok.lengths)
    assert np.array_equal(merged.n_prompt, tok.n_prompt)
    assert all(np.array_equal(merged.row(i)[0], tok.row(i)[0]) for i in range(len(tok)))
    assert merged.stats["kept"] == len(text_rows)


def test_8x7b_lora_targets_exist_on_a_mixtral(tmp_path):
    """The 8x7B recipes' adapters attach to transformers 5's Mixtral (3-D expert weights) and train."""
    from transformers import AutoModelForCausalLM, MixtralConfig

    from judgeforge.train.run import apply_lora

    cfg = MixtralConfig(
        vocab_size=32000,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation=register())
    recipe = load(
        ROOT / "configs" / "train" / "prometheus2-8x7b-absolute-lora.yaml",
        ["--lora.r", "4", "--lora.alpha", "8"],
    )
    peft_model = apply_lora(model, recipe)
    names = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    for target in ("q_proj", "k_proj", "v_proj", "o_proj", "lm_head"):
        assert any(f"{target}.lora_A" in n for n in names), target
    wrapped = {getattr(m, "parameter_name", None) for m in peft_model.modules()}
    assert {"gate_up_proj", "down_proj"} <= wrapped  # w1+w3 and w2 of the experts
    assert any("experts" in n and "lora_B" in n for n in names)
    assert all("lora_" in n for n in names)
    # peft allows no dropout on 3-D expert weights: they get a second adapter, the rest keeps the paper's 0.1
    assert peft_model.peft_config["default"].lora_dropout == 0.1
    assert peft_model.peft_config["experts"].lora_dropout == 0.0
    ids = torch.randint(3, 32000, (1, 24))
    labels = ids.clone()
    labels[:, :10] = -100
    pos = torch.cat([torch.arange(12), torch.arange(12)])[None]
    cu = torch.tensor([0, 12, 24], dtype=torch.int32)
    s, n = target_loss_sum(
        peft_model,
        {
            "input_ids": ids,
            "position_ids": pos,
            "cu_seq_lens_q": cu,
            "cu_seq_lens_k": cu,
            "max_length_q": 12,
            "max_length_k": 12,
        },
        labels,
    )
    (s / n).backward()
    assert all(
        p.grad is not None for n_, p in peft_model.named_parameters() if p.requires_grad and "lora_B" in n_
    )


def test_lora_on_a_tied_lm_head_is_refused(tiny_model):
    from transformers import AutoModelForCausalLM

    from judgeforge.errors import UserError
    from judgeforge.train.run import apply_lora

    model = AutoModelForCausalLM.from_pretrained(tiny_model)  # tie_word_embeddings: true
    recipe = load(
        ROOT / "configs" / "train" / "tiny-cpu.yaml",
        ["--lora", "{r: 4, alpha: 8, target_modules: [q_proj, lm_head]}"],
    )
    with pytest.raises(UserError, match="tie_word_embeddings"):
        apply_lora(model, recipe)

