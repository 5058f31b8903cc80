"""Decode attention for the fast engine: one query token per slot, each slot over its own length.

The reference (:func:`sdpa_decode`, any device) is PyTorch's ``scaled_dot_product_attention``
over the first ``length`` cache entries of every slot with a mask per slot, where ``length``
is the longest filled slot (bucketed): every slot pays for the longest one, and each
(slots, length) bucket is a CUDA graph of its own.

:func:`triton_decode` (CUDA with Triton) reads each slot's keys and values only up to its own
position (``cur + 1``, read on the device, so one captured graph serves every length): one
program per (slot, KV head) streams that head's cache once in blocks of ``BLOCK_N`` keys with
an online softmax, the query heads that share the KV head (grouped-query attention) as the
rows of one small matrix product.  ``scripts/bench/eval_speed.py`` checks it against the
reference on the GPU (``kernel_check``) and times both paths in the same run.
"""

from __future__ import annotations

import functools
import importlib.util

BLOCK_N = 64


def sdpa_decode(q, k, v, cur, length: int, scale: float):
    """q (rows, n_kv, groups, D); k, v the layer's cache (slots, n_kv, L, D); cur (rows,) each slot's
    position (its key/value already written).  Attends over entries [0, length) with entries past
    ``cur`` masked.  Returns (rows, n_kv, groups, D)."""
    import torch
    import torch.nn.functional as F

    rows = q.shape[0]
    kl, vl = k[:rows, :, :length], v[:rows, :, :length]
    ar = torch.arange(length, device=q.device)
    mask = (ar[None, :] <= cur[:, None])[:, None, None, :]  # (rows, 1, 1, length)
    return F.scaled_dot_product_attention(q, kl, vl, attn_mask=mask, scale=scale)


def triton_available(device) -> bool:
    return getattr(device, "type", str(device)) == "cuda" and importlib.util.find_spec("triton") is not None


@functools.lru_cache(maxsize=1)
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def decode_kernel(Q, K, V, Out, CUR, scale_log2,
                      s_qb, s_qh, s_qg, s_kb, s_kh, s_kn, s_vb, s_vh, s_vn, s_ob, s_oh, s_og,
                      GROUPS: tl.constexpr, G_PAD: tl.constexpr, D: tl.constexpr, BLOCK: tl.constexpr,
                      PREC: tl.constexpr):
        b = tl.program_id(0)
        h = tl.program_id(1)
        n_valid = tl.load(CUR + b).to(tl.int32) + 1
        g = tl.arange(0, G_PAD)
        d = tl.arange(0, D)
        gmask = g[:, None] < GROUPS
        q = tl.load(Q + b * s_qb + h * s_qh + g[:, None] * s_qg + d[None, :], mask=gmask, other=0.0)
        m = tl.full([G_PAD], float("-inf"), tl.float32)
        den = tl.zeros([G_PAD], tl.float32)
        acc = tl.zeros([G_PAD, D], tl.float32)
        kb = K + b * s_kb + h * s_kh
        vb = V + b * s_vb + h * s_vh
        for start in range(0, n_valid, BLOCK):
            n = start + tl.arange(0, BLOCK)
            nmask = n < n_valid
            k = tl.load(kb + n[:, None] * s_kn + d[None, :], mask=nmask[:, None], other=0.0)
            s = tl.dot(q, tl.trans(k), input_precision=PREC) * scale_log2  # (G_PAD, BLOCK), in log2 units
            s = tl.where(nmask[None, :], s, float("-inf"))
            m_new = tl.maximum(m, tl.max(s, 1))
            p = tl.exp2(s - m_new[:, None])
            alpha = tl.exp2(m - m_new)
            den = den * alpha + tl.sum(p, 1)
            v = tl.load(vb + n[:, None] * s_vn + d[None, :], mask=nmask[:, None], other=0.0)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PREC)
            m = m_new
        out = acc / den[:, None]
        tl.store(Out + b * s_ob + h * s_oh + g[:, None] * s_og + d[None, :], out.to(Out.dtype.element_ty), mask=gmask)

    return decode_kernel


def triton_decode(q, k, v, cur, scale: float):
    """As :func:`sdpa_decode`, each slot over its own ``cur + 1`` entries (no ``length``)."""
    import torch

    rows, n_kv, groups, dim = q.shape
    q = q.contiguous()
    out = torch.empty_like(q)
    g_pad = max(16, 1 << (groups - 1).bit_length())  # tl.dot wants at least 16 rows
    _kernel()[(rows, n_kv)](
        q, k, v, out, cur, scale * 1.4426950408889634,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2), out.stride(0), out.stride(1), out.stride(2),
        GROUPS=groups, G_PAD=g_pad, D=dim, BLOCK=BLOCK_N, num_warps=4, num_stages=2,
        PREC="ieee" if q.dtype == torch.float32 else "tf32")  # float32 stays float32 (no TF32)
    return out


def kernel_works(device, dtype, n_kv: int, groups: int, dim: int) -> str | None:
    """Run the kernel once on a small random cache and compare with the reference; ``None`` when it
    agrees, else why not (a compile error on this GPU, or a wrong answer): the engine then keeps the
    reference attention instead of failing a user's run."""
    import torch

    try:
        g = torch.Generator(device=device).manual_seed(0)
        k = torch.randn(3, n_kv, 80, dim, device=device, dtype=dtype, generator=g)
        v = torch.randn(3, n_kv, 80, dim, device=device, dtype=dtype, generator=g)
        q = torch.randn(2, n_kv, groups, dim, device=device, dtype=dtype, generator=g)
        cur = torch.tensor([79, 5], device=device)
        err = (triton_decode(q, k, v, cur, dim ** -0.5).float()
               - sdpa_decode(q, k, v, cur, 80, dim ** -0.5).float()).abs().max().item()
    except Exception as e:  # noqa: BLE001 - any failure means: use the reference
        return f"{type(e).__name__}: {str(e)[:200]}"
    tol = 1e-4 if dtype == torch.float32 else 3e-2
    return None if err <= tol else f"max error {err:.3g} against the reference (tolerance {tol})"
