"""The fast engine's continuous batching on the CPU tiny model: refilled and compacted slots keep greedy
tokens equal to plain model.generate, one prefill serves a prompt's n samples, forced stop lengths,
and impossible requests refused before any work."""

from __future__ import annotations

import pytest
import torch
from test_eval_fastgen import prompts, sharpen  # noqa: F401 - the shared fixture

from judgeforge.backends import Sampling
from judgeforge.backends.fastgen import FastGenerator
from judgeforge.backends.plain import plain_generate
from judgeforge.errors import UserError


@pytest.fixture(scope="module")
def model(tiny_model):
    from transformers import AutoModelForCausalLM

    return sharpen(AutoModelForCausalLM.from_pretrained(tiny_model).eval(), seed=1)


def _early_eos(model, prompts):  # noqa: F811
    """A token the model emits at different steps for different prompts: outputs of varied lengths."""
    ref = plain_generate(model, prompts, Sampling.greedy(14), 1, batch_size=6, pad_id=0, eos_id=None)
    best = None
    for tok in {t for r in ref for t in r[0]}:
        stops = [r[0].index(tok) if tok in r[0] else 14 for r in ref]
        if best is None or len(set(stops)) > len(set(best[1])):
            best = (tok, stops)
    assert len(set(best[1])) >= 3, best
    return best[0]


@pytest.mark.parametrize("slots", [2, 16])
def test_refilled_and_compacted_slots_keep_greedy_tokens(model, prompts, slots):  # noqa: F811
    eos = _early_eos(model, prompts)
    s = Sampling.greedy(14)
    ref = plain_generate(model, prompts, s, 1, batch_size=3, pad_id=0, eos_id=eos)
    fast = FastGenerator(model, pad_id=0, eos_id=eos, batch_size=slots)
    fast.check_every = 3
    got = fast.generate(prompts, s, 1)
    assert got == ref
    assert len({len(r[0]) for r in ref}) >= 3  # varied lengths: slots stopped at different steps
    if slots == 2:
        assert fast.stats["batches"] >= 3  # stopped slots were refilled with waiting prompts
    else:
        assert fast.stats.get("compactions", 0) >= 1  # the tail ran on fewer rows


def test_one_prefill_serves_all_samples_and_stop_lengths(model, prompts):  # noqa: F811
    fast = FastGenerator(model, pad_id=0, eos_id=2, batch_size=9)
    stop = [[1, 4, 30], [0, 7, 2], [5, 5, 5]]
    s = Sampling(max_new_tokens=9, ignore_eos=True, seed=3)
    got = fast.generate(prompts[:3], s, 3, stop_at=stop)
    assert [[len(t) for t in per] for per in got] == [[1, 4, 9], [0, 7, 2], [5, 5, 5]]
    assert fast.stats["prefills"] == 1 and fast.stats["batches"] == 1  # 3 prompts, 9 slots: one pass
    assert got[2][0] != got[2][1]  # the samples of a prompt are separate draws
    assert fast.generate(prompts[:3], s, 3, stop_at=stop) == got  # seeded: reproducible


def test_samples_wait_for_slots_and_match_sequential_calls(model, prompts):  # noqa: F811
    """More samples than slots: prompts queue for free slots; greedy with stop lengths equals each alone."""
    stop = [[3, 8], [6, 1], [2, 2], [8, 4]]
    s = Sampling.greedy(8)
    ref = plain_generate(model, prompts[:4], s, 1, batch_size=4, pad_id=0, eos_id=None)
    eos = next(t for t in range(3, 1000) if all(t not in r[0] for r in ref))  # only the forced stops end a row
    fast = FastGenerator(model, pad_id=0, eos_id=eos, batch_size=3)
    got = fast.generate(prompts[:4], s, 2, stop_at=stop)
    assert got == [[ref[i][0][:m] for m in stop[i]] for i in range(4)]


def test_impossible_request_is_refused_before_any_work(tiny_model, prompts):  # noqa: F811
    from transformers import AutoModelForCausalLM

    from judgeforge.backends.hf import HFBackend

    m = AutoModelForCausalLM.from_pretrained(tiny_model, max_position_embeddings=len(prompts[3]) + 4).eval()
    fast = FastGenerator(m, pad_id=0, eos_id=2, batch_size=4)
    with pytest.raises(UserError, match=r"request 3 \(id q3\): prompt of \d+ tokens \+ max_new_tokens 5"):
        fast.generate(prompts, Sampling.greedy(5), 1, ids=[f"q{k}" for k in range(len(prompts))])
    assert fast.stats["steps"] == 0 and fast.stats["prefills"] == 0
    assert fast.generate(prompts[:3], Sampling.greedy(4), 1)  # what fits still runs
    b = HFBackend(m, tokenizer=str(tiny_model), engine="generate")
    with pytest.raises(UserError, match="request 3: .* over the judge's context"):
        b.generate_tokens(prompts, Sampling.greedy(5))


def test_cpu_generator_state_untouched_by_seeded_engine(model, prompts):  # noqa: F811
    fast = FastGenerator(model, pad_id=0, eos_id=2, batch_size=2)
    torch.manual_seed(9)
    before = torch.get_rng_state()
    a = fast.generate(prompts[:3], Sampling(1.0, 0.9, 5, 1.03, seed=4), 3, stop_at=[[5, 2, 3]] * 3)
    assert torch.equal(torch.get_rng_state(), before)
    assert [len(t) for t in a[0]] == [5, 2, 3]


def test_attention_choice_on_the_cpu(model):
    """The Triton kernel is a CUDA path (checked on the GPU by scripts/bench/eval_speed.py's kernel_check);
    on the CPU the engine keeps PyTorch's attention, and asking for the kernel or a bad name is an error."""
    from judgeforge.backends.fastgen_attn import kernel_works, sdpa_decode, triton_available

    assert FastGenerator(model, pad_id=0, eos_id=2).runner.attention == "sdpa"
    assert not triton_available(torch.device("cpu"))
    assert kernel_works(torch.device("cpu"), torch.float32, 2, 2, 32) is not None  # no kernel here: the reference
    with pytest.raises(ValueError, match="needs a CUDA device"):
        FastGenerator(model, pad_id=0, eos_id=2, attention="triton")
    with pytest.raises(ValueError, match="auto, triton or sdpa"):
        FastGenerator(model, pad_id=0, eos_id=2, attention="flash")
    # the reference masks every entry past a row's own position: changing them changes nothing
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(2, 2, 2, 8, generator=g), torch.randn(3, 2, 10, 8, generator=g), torch.randn(3, 2, 10, 8, generator=g)
    cur = torch.tensor([3, 9])
    a = sdpa_decode(q, k, v, cur, 10, 8 ** -0.5)
    k2, v2 = k.clone(), v.clone()
    k2[0, :, 4:] = 1e3
    v2[0, :, 4:] = -1e3
    assert torch.allclose(a, sdpa_decode(q, k2, v2, cur, 10, 8 ** -0.5))


def test_layer_kernels_choice_and_the_prefill_marks(model):
    """liger's fused norms/RoPE/SwiGLU are a CUDA path (checked against the model's modules at start, and
    timed by scripts/bench/engine_profile.py on the GPU); on the CPU the engine keeps the model's own
    modules, and asking for liger or a bad name is an error.  A prefill marks each of its slots' rows of
    the repetition penalty's mask with exactly its prompt's tokens (shorter prompts are padded)."""
    from judgeforge.backends.fastgen_ops import _standard_layout

    eng = FastGenerator(model, pad_id=0, eos_id=2)
    assert eng.runner.ops.kind == "torch" and _standard_layout(model) is None
    with pytest.raises(ValueError, match="CUDA device and liger-kernel"):
        FastGenerator(model, pad_id=0, eos_id=2, kernels="liger")
    with pytest.raises(ValueError, match="auto, liger or torch"):
        FastGenerator(model, pad_id=0, eos_id=2, kernels="triton")
    R = eng.runner
    R.cache(5, 32)
    vocab = model.config.vocab_size
    seen = torch.ones(5, vocab, dtype=torch.bool)  # stale marks from earlier sequences
    ps = [[1, 7, 9, 7, 30], [1, 12]]
    with torch.no_grad():
        R.prefill(ps, [[4, 0], [2]], seen=seen)
    for slot, p in ((4, ps[0]), (0, ps[0]), (2, ps[1])):
        assert set(seen[slot].nonzero()[:, 0].tolist()) == set(p)
    assert seen[1].all() and seen[3].all()  # other slots untouched


def test_automatic_slot_count_from_free_memory(model, monkeypatch):
    """The slot count on a GPU (none here: the three memory readings are what torch.cuda would report; the
    real path ran on the H200, BENCHMARKS.md): the cache of each slot at the bucketed length fits in the free
    memory, plus what the allocator holds unused, less 8% of the card (at least 4 GiB); 8..256, by 8."""
    eng = FastGenerator(model, pad_id=0, eos_id=2)
    eng.cuda, eng.bucket = True, 128
    per_token = eng.runner.bytes_per_token()
    gib = 2**30

    def slots(free, total, reserved=0, allocated=0, length=1456):
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, total))
        monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: reserved)
        monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: allocated)
        return eng.auto_batch_size(length)

    row = per_token * 1536  # 1,456 tokens bucketed to 1,536
    assert slots(4 * gib + 100 * row, 40 * gib) == 96  # reserve 4 GiB (8% of 40 is less); 100 rows -> 96
    assert slots(int(0.08 * 200 * gib) + 100 * row, 200 * gib) == 96  # reserve 8% of a 200 GiB card
    assert slots(4 * gib + 60 * row, 40 * gib, reserved=40 * row, allocated=0) == 96  # held unused counts
    assert slots(gib, 40 * gib) == 8 and slots(10**15, 2 * 10**15) == 256


@pytest.mark.parametrize("sampling", [Sampling.greedy(6), Sampling(1.0, 0.9, 6, 1.03, seed=0)])
def test_a_judge_whose_logits_are_not_finite_is_one_line(tiny_model, prompts, sampling):  # noqa: F811
    """Weights changed in memory (a sweep's merge) to overflow: the engine names the request instead of a
    sampler's traceback (sampled) or tokens argmax'ed out of NaN (greedy)."""
    from transformers import AutoModelForCausalLM

    from judgeforge.errors import NonFiniteLogits

    m = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    with torch.no_grad():
        m.model.norm.weight.fill_(1e30)  # finite weights, logits beyond float32
        m.lm_head.weight.mul_(1e20)
    fast = FastGenerator(m, pad_id=0, eos_id=2, batch_size=4)
    with pytest.raises(NonFiniteLogits, match=r"logits are NaN or inf for request \d \(sample 1, 0 tokens in\).*"
                                              r"torch.float32 overflows.*--dtype float32"):
        fast.generate(prompts, sampling, 1)


def test_eval_of_a_checkpoint_with_nan_weights_is_one_line(capsys, tmp_path, tiny_model):
    import re

    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(tiny_model)
    with torch.no_grad():
        m.model.layers[1].mlp.down_proj.weight[0, 0] = float("nan")
    judge = tmp_path / "judge"
    m.save_pretrained(judge)
    for f in tiny_model.iterdir():
        if not (judge / f.name).exists():
            (judge / f.name).write_bytes(f.read_bytes())
    suite = tmp_path / "b.jsonl"
    suite.write_text('{"instruction": "Grade it.", "response": "hi", "gpt4_score": 3}\n')
    from judgeforge.cli import main

    rc = main([str(a) for a in ["eval", "--judge", judge, "--suite", suite, "--out", tmp_path / "o"]])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err, err
    last = [line for line in err.splitlines() if line.strip()][-1]  # after the loader's progress bar
    assert re.fullmatch(r"judgeforge: error: the judge '.*judge': weight 'model.layers.1.mlp.down_proj.weight' holds "
                        r"NaN or inf; the checkpoint is broken .*: rebuild it", last), last
    assert not (tmp_path / "o" / "report.json").exists()
