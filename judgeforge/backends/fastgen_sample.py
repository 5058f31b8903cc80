"""The fast engine's sampler on the GPU: repetition penalty, temperature, top-p and the draw in one kernel.

The reference (:func:`judgeforge.backends.fastgen.sorted_top_p` then ``torch.multinomial``, any
device) sorts every row of logits to find top-p's kept set: on an H200 at 256 slots and a 32,000-token
vocabulary that was 1.07 ms a decoding step (0.58 ms of it the radix sort, the rest 20 small kernels),
6% of a 7B step.  :func:`triton_sample` does the same draw in one Triton program per row, without
sorting:

1. the processed logits ``z`` (EOS masked under ``ignore_eos``, the repetition penalty on seen
   tokens, divided by the temperature, in that order, as ``process_logits``) into a scratch row;
2. the probabilities ``p = exp(z - max) / sum`` into the same row;
3. top-p's threshold: the reference removes the tokens of the ascending sort while its cumulative
   sum is at most ``1 - top_p``, that is every token whose probability is at most ``t``, the largest
   probability with ``F(t) = sum of the p_j <= t`` at most ``1 - top_p``; ``t`` is found by bisection
   over the bit patterns of non-negative floats (31 passes over the row, which stays in the L2 cache).
   Ties: the reference's sort is stable, so of the group of equal probabilities just above ``t`` it
   also removes the lowest-index members while its sum stays at most ``1 - top_p``; a second
   bisection, over the index, finds that cut (bf16 logits tie often).  The most likely token is
   always kept, as in the reference;
4. the draw: among kept tokens, the largest ``p_i / E_i`` with ``E_i ~ Exp(1)`` (an exponential
   race: token ``i`` wins with probability ``p_i`` over the kept mass, what ``multinomial`` draws),
   from Philox numbers keyed by a seed drawn from the engine's generator, so a seeded call repeats.

Same distribution as the reference; the kept set can differ only where a cumulative sum lies within
float rounding of ``1 - top_p`` (the sums run in another order).  :func:`judgeforge.backends.fastgen.sampler_works` checks the kernel
against the reference at start (kept sets on random logits at the model's vocabulary, and draw
frequencies on a small one); the engine keeps the reference when it does not agree.
"""

from __future__ import annotations

import functools

BLOCK = 4096
ITERS = 31  # bisection steps: the bit patterns of probabilities in [0, 1] span under 2**30


@functools.lru_cache(maxsize=1)
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def sample_kernel(L, SEEN, P, OUT, LO, SEED, V, s_l, s_seen, s_p, eos, penalty, temperature, one_minus_p,
                      HAS_SEEN: tl.constexpr, MASK_EOS: tl.constexpr, TEMP: tl.constexpr, TOP_P: tl.constexpr,
                      BLOCK: tl.constexpr, ITERS: tl.constexpr, CITERS: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        lrow = L + row * s_l
        prow = P + row * s_p
        # 1. processed logits and their max
        m_vec = tl.full([BLOCK], float("-inf"), tl.float32)
        for start in range(0, V, BLOCK):
            col = start + tl.arange(0, BLOCK)
            msk = col < V
            z = tl.load(lrow + col, mask=msk, other=float("-inf")).to(tl.float32)
            if MASK_EOS:
                z = tl.where(col == eos, float("-inf"), z)
            if HAS_SEEN:
                sn = tl.load(SEEN + row * s_seen + col, mask=msk, other=0)
                z = tl.where(sn != 0, tl.where(z < 0, z * penalty, z / penalty), z)
            if TEMP:
                z = z / temperature
            tl.store(prow + col, z, mask=msk)
            m_vec = tl.maximum(m_vec, z)
        m = tl.max(m_vec, 0)
        tl.debug_barrier()
        # 2. probabilities
        s_vec = tl.zeros([BLOCK], tl.float32)
        for start in range(0, V, BLOCK):
            col = start + tl.arange(0, BLOCK)
            z = tl.load(prow + col, mask=col < V, other=float("-inf"))
            s_vec += tl.exp(z - m)
        total = tl.sum(s_vec, 0)
        tl.debug_barrier()
        for start in range(0, V, BLOCK):
            col = start + tl.arange(0, BLOCK)
            msk = col < V
            z = tl.load(prow + col, mask=msk, other=float("-inf"))
            tl.store(prow + col, tl.exp(z - m) / total, mask=msk)
        tl.debug_barrier()
        # 3. top-p's threshold (bit pattern): tokens at or below it are removed
        lo = tl.full([], -1, tl.int32)
        if TOP_P:
            hi = (tl.exp(m - m) / total).to(tl.int32, bitcast=True)  # the most likely token's probability
            for _ in range(ITERS):
                mid = lo + (hi - lo) // 2
                f_vec = tl.zeros([BLOCK], tl.float32)
                for start in range(0, V, BLOCK):
                    col = start + tl.arange(0, BLOCK)
                    p = tl.load(prow + col, mask=col < V, other=0.0)
                    f_vec += tl.where(p.to(tl.int32, bitcast=True) <= mid, p, 0.0)
                ok = tl.sum(f_vec, 0) <= one_minus_p
                lo = tl.where(ok, mid, lo)
                hi = tl.where(ok, hi, mid)
        # ties: the sort (stable) orders equal probabilities by index, so of the group just above the
        # threshold it removes the lowest-index members while the running sum stays <= 1 - top_p
        vstar = tl.full([], -1, tl.int32)
        cut = tl.full([], 0, tl.int32)
        if TOP_P:
            v_vec = tl.full([BLOCK], 2147483647, tl.int32)
            f_vec = tl.zeros([BLOCK], tl.float32)
            for start in range(0, V, BLOCK):
                col = start + tl.arange(0, BLOCK)
                msk = col < V
                p = tl.load(prow + col, mask=msk, other=0.0)
                b = p.to(tl.int32, bitcast=True)
                v_vec = tl.minimum(v_vec, tl.where(msk & (b > lo), b, 2147483647))
                f_vec += tl.where(b <= lo, p, 0.0)
            vstar = tl.min(v_vec, 0)
            base = tl.sum(f_vec, 0)
            chi = tl.full([], 0, tl.int32) + V
            for _ in range(CITERS):
                mid = (cut + chi + 1) // 2
                g_vec = tl.zeros([BLOCK], tl.float32)
                for start in range(0, V, BLOCK):
                    col = start + tl.arange(0, BLOCK)
                    p = tl.load(prow + col, mask=col < V, other=0.0)
                    g_vec += tl.where((p.to(tl.int32, bitcast=True) == vstar) & (col < mid), p, 0.0)
                ok = base + tl.sum(g_vec, 0) <= one_minus_p
                cut = tl.where(ok, mid, cut)
                chi = tl.where(ok, chi, mid - 1)
        tl.store(LO + row * 3, lo)
        tl.store(LO + row * 3 + 1, vstar)
        tl.store(LO + row * 3 + 2, cut)
        # 4. the draw: an exponential race among the kept tokens
        seed = tl.load(SEED)
        best = tl.full([], -1.0, tl.float32)
        best_i = tl.full([], 0, tl.int64)
        for start in range(0, V, BLOCK):
            col = start + tl.arange(0, BLOCK)
            msk = col < V
            p = tl.load(prow + col, mask=msk, other=0.0)
            b = p.to(tl.int32, bitcast=True)
            kept = msk & (b > lo) & ((b != vstar) | (col >= cut))
            u = tl.rand(seed, (row * V + col).to(tl.int32))
            score = tl.where(kept, p / -tl.log(u), -1.0)
            top = tl.max(score, 0)
            at = tl.argmax(score, 0).to(tl.int64)
            take = top > best
            best_i = tl.where(take, start + at, best_i)
            best = tl.where(take, top, best)
        tl.store(OUT + row, best_i)

    return sample_kernel


def triton_sample(logits, seen, sampling, eos_id, generator, debug: dict | None = None):
    """One token per row of ``logits`` (rows, vocab), float32, as the reference draws it (module docstring).
    ``seen``: the repetition penalty's (rows, vocab) bool mask or None.  ``debug``: filled with the
    probabilities and the kept set (for the check)."""
    import torch

    rows, vocab = logits.shape
    logits = logits if logits.stride(-1) == 1 else logits.contiguous()
    dev = logits.device
    probs = torch.empty(rows, vocab, dtype=torch.float32, device=dev)
    out = torch.empty(rows, dtype=torch.long, device=dev)
    lo = torch.empty(rows, 3, dtype=torch.int32, device=dev)  # per row: threshold, tie group, tie cut
    seed = torch.randint(0, 2**62, (1,), generator=generator, device=dev)
    penalty = float(sampling.repetition_penalty)
    has_seen = seen is not None and penalty != 1.0
    s = seen.view(torch.uint8) if has_seen else probs
    mask_eos = bool(sampling.ignore_eos and eos_id is not None)
    _kernel()[(rows,)](
        logits, s, probs, out, lo, seed, vocab, logits.stride(0), s.stride(0) if has_seen else 0, probs.stride(0),
        int(eos_id) if mask_eos else -1, penalty, float(sampling.temperature or 1.0), float(1 - sampling.top_p),
        HAS_SEEN=has_seen, MASK_EOS=mask_eos, TEMP=sampling.temperature not in (None, 1.0),
        TOP_P=sampling.top_p < 1.0, BLOCK=BLOCK, ITERS=ITERS, CITERS=vocab.bit_length() + 1, num_warps=8)
    if debug is not None:
        debug.update(probs=probs, kept=kept_mask(probs, lo))
    return out


def kept_mask(probs, cut):
    """The kept set from the kernel's probabilities and its per-row (threshold, tie group, tie cut)."""
    import torch

    b = probs.view(torch.int32)
    col = torch.arange(probs.shape[1], device=probs.device)[None]
    return (b > cut[:, :1]) & ((b != cut[:, 1:2]) | (col >= cut[:, 2:3]))
