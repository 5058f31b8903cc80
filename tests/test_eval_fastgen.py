"""The fast hf engine against plain model.generate (the reference path), on the CPU tiny model."""

from __future__ import annotations

import pytest
import torch

from judgeforge.backends import Request, Sampling
from judgeforge.backends.fastgen import FastGenerator, process_logits, sorted_top_p, unsupported_reason
from judgeforge.backends.plain import plain_generate
from judgeforge.format.prompts import PRESET_RUBRICS, render_absolute, render_relative


def sharpen(model, std: float = 0.3, seed: int = 0):
    """Larger random weights: the tiny model's greedy output then varies with the context
    (with the default init it repeats one token, which would make equality tests weak)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, std)
    return model


@pytest.fixture(scope="module")
def model(tiny_model):
    from transformers import AutoModelForCausalLM

    return sharpen(AutoModelForCausalLM.from_pretrained(tiny_model).eval())


@pytest.fixture(scope="module")
def prompts(tokenizer):
    reqs = []
    for i in range(6):  # different lengths (left padding inside a batch), both modes
        if i % 3 == 2:
            reqs.append(Request("relative", render_relative(f"Q{i}", "a " * i, "b", PRESET_RUBRICS["honesty"])))
        else:
            reqs.append(Request("absolute", render_absolute(f"Question {i}?", "words " * (5 * i + 1),
                                                           PRESET_RUBRICS["helpfulness"])))
    ids = [tokenizer(r.chat_text())["input_ids"] for r in reqs]
    assert len({len(x) for x in ids}) > 3
    return ids


@pytest.mark.parametrize("bucket,batch", [(1, 4), (128, 3)])
def test_greedy_tokens_identical_to_generate(model, prompts, bucket, batch):
    s = Sampling.greedy(12)
    ref = plain_generate(model, prompts, s, 1, batch_size=4, pad_id=0, eos_id=2)
    fast = FastGenerator(model, pad_id=0, eos_id=2, batch_size=batch)
    fast.bucket = bucket  # the GPU path buckets the cache length; the tokens must not change
    assert fast.reason is None and not fast.use_graphs
    assert fast.generate(prompts, s, 1) == ref
    assert all(len(r[0]) == 12 and len(set(r[0])) > 3 for r in ref)  # varied output, not one token


def test_greedy_with_repetition_penalty_and_eos(model, prompts):
    s = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=12, repetition_penalty=1.3)
    ref = plain_generate(model, prompts, s, 2, batch_size=6, pad_id=0, eos_id=2)
    got = FastGenerator(model, pad_id=0, eos_id=2, batch_size=6).generate(prompts, s, 2)
    assert got == ref and all(r[0] == r[1] for r in got)
    # an EOS id the model emits early: both paths stop at the same place
    toks = ref[0][0]
    k = next(i for i in range(1, len(toks)) if toks[i] not in toks[:i])
    ref2 = plain_generate(model, prompts, s, 1, batch_size=6, pad_id=0, eos_id=toks[k])
    got2 = FastGenerator(model, pad_id=0, eos_id=toks[k], batch_size=6).generate(prompts, s, 1)
    assert got2 == ref2 and ref2[0][0] == toks[:k]


def test_sampling_n_seed_and_fixed_length(model, prompts):
    fast = FastGenerator(model, pad_id=0, eos_id=2, batch_size=8)
    s = Sampling(max_new_tokens=6, ignore_eos=True)
    torch.manual_seed(0)
    a = fast.generate(prompts[:2], s, 3)
    torch.manual_seed(0)
    b = fast.generate(prompts[:2], s, 3)
    assert a == b and all(len(t) == 6 for per in a for t in per)
    assert len({tuple(t) for t in a[0]}) == 3  # three draws, not one repeated


def test_processors_match_transformers():
    from transformers.generation.logits_process import (
        MinNewTokensLengthLogitsProcessor,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopPLogitsWarper,
    )

    torch.manual_seed(1)
    ids = torch.randint(0, 50, (3, 12))
    logits = torch.randn(3, 50) * 3
    seen = torch.zeros(3, 50, dtype=torch.bool).scatter_(1, ids, True)
    s = Sampling(temperature=0.7, top_p=0.8, repetition_penalty=1.2, max_new_tokens=5, ignore_eos=True)
    ref = MinNewTokensLengthLogitsProcessor(12, 5, eos_token_id=2)(ids, logits.clone())
    ref = RepetitionPenaltyLogitsProcessor(1.2)(ids, ref)
    ref = TopPLogitsWarper(0.8)(ids, TemperatureLogitsWarper(0.7)(ids, ref))
    got = process_logits(logits.clone(), seen, s, eos_id=2)
    assert torch.equal(torch.isinf(got), torch.isinf(ref))
    assert torch.allclose(got[~torch.isinf(got)], ref[~torch.isinf(ref)])
    assert torch.isinf(got).any() and not torch.isinf(got).all(dim=1).any()


def test_the_engine_samples_from_the_processors_distribution():
    """The engine draws top-p samples in sorted order (no scatter back): the same distribution as
    softmax(process_logits(...)), ties and all, and a seeded draw reproduces."""
    torch.manual_seed(2)
    logits = torch.randn(4, 40) * 2
    logits[1, :10] = 1.5  # ties at the top-p boundary
    seen = torch.rand(4, 40) < 0.2
    s = Sampling(temperature=0.8, top_p=0.7, repetition_penalty=1.1, max_new_tokens=5)
    want = process_logits(logits.clone(), seen, s, eos_id=2).softmax(dim=-1)
    probs, idx = sorted_top_p(logits.clone(), seen, s, eos_id=2)
    got = torch.zeros_like(probs).scatter_(1, idx, probs)
    got = got / got.sum(dim=-1, keepdim=True)
    assert torch.allclose(got, want, atol=1e-6)
    assert ((want > 0).sum(dim=-1) < 40).all()  # top-p removed something in every row

    class Eng:  # the engine's draw (the reference sampler), on its own seeded generator
        _torch, eos_id = torch, 2

        def _generator(self):
            return self.g

        def _sampler_kind(self):
            return "torch"

    e = Eng()
    draws = []
    for _ in range(2):
        e.g = torch.Generator().manual_seed(7)
        draws.append([FastGenerator._next_token(e, logits.clone(), seen, s).tolist() for _ in range(3)])
    assert draws[0] == draws[1]
    assert all(want[r, t] > 0 for row in draws[0] for r, t in enumerate(row))


def test_unsupported_models_fall_back_to_generate(tiny_model, prompts):
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(tiny_model, sliding_window=8).eval()
    assert "sliding" in unsupported_reason(m)
    s = Sampling.greedy(5)
    with pytest.warns(UserWarning, match="using model.generate"):
        got = FastGenerator(m, pad_id=0, eos_id=2).generate(prompts[:2], s, 1)
    assert got == plain_generate(m, prompts[:2], s, 1, pad_id=0, eos_id=2)


def test_hf_backend_uses_the_fast_engine_by_default(tiny_model):
    from judgeforge.backends import get_backend

    b = get_backend("hf", str(tiny_model))
    reqs = [Request("absolute", render_absolute("q", "r", PRESET_RUBRICS["honesty"]))]
    assert b.engine == "fast"
    ref = get_backend("hf", str(tiny_model), engine="generate")
    assert b.generate(reqs, Sampling.greedy(8)) == ref.generate(reqs, Sampling.greedy(8))
    assert b._fast is not None and b._fast.stats["batches"] == 1


def test_the_gpu_acceptance_sequence_on_the_cpu(model, prompts):
    """The call sequence that crashed the paper run on an H200 (GPU-acceptance issue): one engine,
    several generate calls (a second benchmark, retries), a later call that needs a bigger cache
    (its graphs and their memory pool are dropped together), remainder batches, n=3 samples.
    Greedy tokens equal plain generate in every call; sampled calls reproduce with their seed."""
    fast = FastGenerator(model, pad_id=0, eos_id=2, batch_size=4)
    fast._pool = object()  # stands in for a CUDA graph pool handle (graphs are off on the CPU)
    short, long_ = prompts[:3], [p + p[1:] for p in prompts]  # the second call needs a longer cache
    for batch, new in ((short, 8), (long_, 12), (short, 10)):
        s = Sampling.greedy(new)
        assert fast.generate(batch, s, 3) == plain_generate(model, batch, s, 3, batch_size=4, pad_id=0, eos_id=2)
    assert fast._pool is None and not fast._graphs  # the growth dropped graphs and pool together
    paper = Sampling(1.0, 0.9, 10, 1.03, seed=5)
    first = fast.generate(long_, paper, 3)
    assert fast.generate(long_, paper, 3) == first  # reseeded per call
    assert fast.generate(long_, paper.with_seed(6), 3) != first
    assert fast.stats["batches"] >= 8


def test_sampling_never_draws_from_the_default_generator(model, prompts):
    """A failed CUDA-graph capture leaves the device's default generator unusable, so the engine samples
    from its own: drawing must not advance torch's global stream."""
    fast = FastGenerator(model, pad_id=0, eos_id=2, batch_size=4)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    fast.generate(prompts[:2], Sampling(1.0, 0.9, 6, 1.0, seed=1), 2)
    assert torch.equal(torch.get_rng_state(), before)
