"""The fast engine's fused decode q|k|v projection and its trimmed prefill, on the CPU tiny
model: the same greedy tokens as plain model.generate, weights changed in place between calls are picked
up, and a model whose projections cannot be fused keeps the separate ones, saying why."""

from __future__ import annotations

import pytest
import torch
from test_eval_fastgen import prompts, sharpen  # noqa: F401 - the shared fixture

from judgeforge.backends import Sampling
from judgeforge.backends.fastgen import FastGenerator
from judgeforge.backends.fastgen_ops import FusedWeights
from judgeforge.backends.plain import plain_generate


@pytest.fixture()
def model(tiny_model):
    from transformers import AutoModelForCausalLM

    return sharpen(AutoModelForCausalLM.from_pretrained(tiny_model).eval(), seed=2)


def test_fused_decode_keeps_greedy_tokens_and_follows_in_place_changes(model, prompts):  # noqa: F811
    s = Sampling.greedy(10)
    fast = FastGenerator(model, pad_id=0, eos_id=2, batch_size=4, fuse="qkv")
    assert fast.runner.fused.kind == "qkv"
    assert fast.generate(prompts, s, 1) == plain_generate(model, prompts, s, 1, batch_size=6, pad_id=0, eos_id=2)
    # an in-place change of the weights (as a sweep's in-memory merge makes) reaches the fused copies
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.k_proj.weight.mul_(-1.5)
            layer.self_attn.v_proj.weight.mul_(0.5)
    ref = plain_generate(model, prompts, s, 1, batch_size=6, pad_id=0, eos_id=2)
    got = fast.generate(prompts, s, 1)
    assert got == ref
    # the fused matrices are the model's weights, stacked
    w = fast.runner.fused.w[0]
    attn = model.model.layers[0].self_attn
    assert torch.equal(w, torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))


def test_fused_decode_step_agrees_with_the_separate_projections(model):
    """One decoding step's logits with and without fusing (the same cache, positions and tokens)."""
    plain = FastGenerator(model, pad_id=0, eos_id=2, batch_size=3, fuse="none").runner
    fused = FastGenerator(model, pad_id=0, eos_id=2, batch_size=3, fuse="qkv").runner
    fused.fused.refresh()
    ps = [[1, 5, 9, 11, 40], [1, 7], [1, 3, 3, 8]]
    outs = []
    for R in (plain, fused):
        R.cache(3, 16)
        with torch.no_grad():
            R.prefill(ps, [[0], [1], [2]])
            tok = torch.tensor([17, 4, 60])
            cur = torch.tensor([len(p) for p in ps])
            outs.append(R.step(tok, cur, 3, 16))
    assert plain.fused.kind == "none"
    assert torch.allclose(outs[0], outs[1], atol=1e-5, rtol=1e-5)


def test_prefill_logits_come_from_each_prompts_last_position(model):
    """The trimmed last layer: each prompt's first-token logits equal a full forward pass's at its end."""
    R = FastGenerator(model, pad_id=0, eos_id=2, batch_size=3).runner
    ps = [[1, 5, 9, 11, 40, 2, 8], [1, 7], [1, 3, 3, 8]]
    R.cache(3, 16)
    with torch.no_grad():
        _, logits = R.prefill(ps, [[0], [1], [2]])
        for j, p in enumerate(ps):
            want = model(torch.tensor([p])).logits[0, -1].float()
            assert torch.allclose(logits[j], want, atol=1e-4, rtol=1e-4), j


def test_what_cannot_be_fused_stays_separate(model):
    with pytest.raises(ValueError, match="fuse must be one of auto, none, qkv, not 'all'"):
        FastGenerator(model, pad_id=0, eos_id=2, fuse="all")
    assert FusedWeights(model, "auto").kind == "none"  # the CPU path is the model's own modules

    class Wrapped(torch.nn.Module):  # a LoRA-style wrapper: not a plain nn.Linear
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.weight = inner.weight
            self.bias = None

        def forward(self, x):
            return self.inner(x)

    attn = model.model.layers[1].self_attn
    attn.v_proj = Wrapped(attn.v_proj)
    f = FusedWeights(model, "qkv")
    assert f.kind == "none" and "not plain nn.Linear (Linear, Wrapped)" in f.why
    attn.v_proj = attn.v_proj.inner
    attn.q_proj.bias = torch.nn.Parameter(torch.zeros(attn.q_proj.out_features))
    f = FusedWeights(model, "qkv")
    assert f.kind == "none" and "some projections have a bias" in f.why


def test_fused_biases(model, prompts):  # noqa: F811
    """Projections with biases (Qwen2's q/k/v): the fused product adds the stacked biases."""
    g = torch.Generator().manual_seed(0)
    for layer in model.model.layers:
        for m in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
            m.bias = torch.nn.Parameter(torch.randn(m.out_features, generator=g) * 0.5)
    s = Sampling.greedy(8)
    fast = FastGenerator(model, pad_id=0, eos_id=2, batch_size=4, fuse="qkv")
    assert fast.runner.fused.b[0] is not None
    assert fast.generate(prompts, s, 1) == plain_generate(model, prompts, s, 1, batch_size=6, pad_id=0, eos_id=2)


def _threshold_keep(probs, top_p):
    """The kernel's top-p rule (fastgen_sample, step 3) in PyTorch: remove every token whose probability is
    at most t, the largest probability with (sum of the probabilities <= t) <= 1 - top_p, found by
    bisection over the float bit patterns; then, of the tie group just above t, the lowest-index
    members while the sum stays <= 1 - top_p (a bisection over the index)."""
    bits = probs.view(torch.int32)
    rows, vocab = probs.shape
    lo = torch.full((rows,), -1, dtype=torch.int32)
    hi = probs.max(-1).values.view(torch.int32).clone()
    for _ in range(31):
        mid = lo + (hi - lo) // 2
        ok = torch.where(bits <= mid[:, None], probs, 0.0).sum(-1) <= 1 - top_p
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    vstar = torch.where(bits > lo[:, None], bits, torch.iinfo(torch.int32).max).min(-1).values
    base = torch.where(bits <= lo[:, None], probs, 0.0).sum(-1)
    col = torch.arange(vocab)[None]
    cut, chi = torch.zeros(rows, dtype=torch.long), torch.full((rows,), vocab)
    for _ in range(vocab.bit_length() + 1):
        mid = (cut + chi + 1) // 2
        g = torch.where((bits == vstar[:, None]) & (col < mid[:, None]), probs, 0.0).sum(-1)
        ok = base + g <= 1 - top_p
        cut, chi = torch.where(ok, mid, cut), torch.where(ok, chi, mid - 1)
    return (bits > lo[:, None]) & ((bits != vstar[:, None]) | (col >= cut[:, None]))


@pytest.mark.parametrize("top_p", [0.9, 0.5, 0.999, 1e-6])
def test_the_sampling_kernels_top_p_rule_keeps_what_the_sort_keeps(top_p):
    """The rule the GPU sampler uses instead of sorting selects the same tokens as sorted_top_p (the
    reference), on peaked, flat and heavy-tailed rows, with and without ties (bf16 logits tie often);
    the most likely token is always kept."""
    from judgeforge.backends.fastgen import sorted_top_p

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 3000, generator=g) * torch.tensor([0.1, 0.5, 1, 2, 4, 8, 16, 1, 1, 3, 0.01, 30])[:, None]
    logits[7, :2000] = -float("inf")  # a row that is mostly masked out
    tied = logits.bfloat16().float()  # as a bf16 model's logits: many equal values
    assert (tied[2].unique().numel()) < 1500
    for x in (logits, tied):
        s = Sampling(1.0, top_p, 8, 1.0)
        sp, idx = sorted_top_p(x, None, s)
        want = torch.zeros(x.shape, dtype=torch.bool).scatter_(1, idx, sp > 0)
        got = _threshold_keep(x.softmax(-1), top_p)
        assert (got != want).sum(-1).max().item() <= 1  # at most a boundary token within float rounding
        assert got[torch.arange(12), x.argmax(-1)].all()
        assert (got == want).all(-1).float().mean() >= 0.9


def test_sampler_choice_on_the_cpu(model, prompts):  # noqa: F811
    """The sampling kernel is a CUDA path (checked against the reference at start on the GPU,
    scripts/bench/engine_profile.py times both); on the CPU the engine sorts, and asking for the kernel
    or a bad name is an error."""
    from judgeforge.backends.fastgen import sampler_works

    assert sampler_works(torch.device("cpu"), 100) == "needs a CUDA device and the triton package"
    with pytest.raises(ValueError, match="sampler='triton' needs a CUDA device"):
        FastGenerator(model, pad_id=0, eos_id=2, sampler="triton")
    with pytest.raises(ValueError, match="sampler must be auto, torch or triton, not 'fast'"):
        FastGenerator(model, pad_id=0, eos_id=2, sampler="fast")
    fast = FastGenerator(model, pad_id=0, eos_id=2, batch_size=4)
    fast.generate(prompts[:2], Sampling(1.0, 0.9, 4, 1.03, seed=1), 2)
    assert fast.stats["sampler"] == "torch"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the Triton sampling kernel runs on a CUDA GPU only")
def test_sampling_kernel_agrees_with_the_reference_on_the_gpu():
    from judgeforge.backends.fastgen import sampler_works

    assert sampler_works(torch.device("cuda"), 32000) is None
