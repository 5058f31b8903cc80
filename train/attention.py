"""Attention for padding-free packed rows, registered with transformers' AttentionInterface.

A packed micro-batch is one row holding several sequences back to back; position_ids restart
at 0 for each sequence and ``cu_seq_lens_q`` / ``cu_seq_lens_k`` (int32, the cumulative
sequence starts plus the total, as flash-attention's varlen API and transformers'
``DataCollatorWithFlattening`` name them) say where each one starts.  The collator passes
them as model kwargs; transformers hands every model kwarg down to the attention function.

Why our own function: on the lent GPU stack (transformers 5.17, no flash-attn) ``sdpa``
does not isolate packed sequences (their logits differ from the separate sequences' by a
relative 1.09, see DESIGN.md), so packing needs a varlen kernel.  This function uses

* CUDA: ``torch.nn.attention.varlen.varlen_attn`` (causal flash varlen attention in torch
  itself; grouped KV heads directly; has a backward);
* anywhere else (the CPU): one ``scaled_dot_product_attention(is_causal=True)`` call per
  sequence - exact, slower, used by the tests;
* no ``cu_seq_lens`` in the call (generation, a padded batch): plain ``sdpa`` unchanged.

The name is registered only for the attention function, not for mask creation, so
transformers builds no 4-D mask for it (a custom name without a mask function gets none).
"""

from __future__ import annotations

import inspect

NAME = "judgeforge_varlen"
_REGISTERED = False
_VARLEN = None  # (function, its keyword names) once looked up


def register() -> str:
    """Register :func:`varlen_attention` under :data:`NAME` (idempotent); returns the name."""
    global _REGISTERED
    if not _REGISTERED:
        from transformers import AttentionInterface

        AttentionInterface.register(NAME, varlen_attention)
        _REGISTERED = True
    return NAME


def _torch_varlen():
    global _VARLEN
    if _VARLEN is None:
        try:
            from torch.nn.attention.varlen import varlen_attn

            _VARLEN = (varlen_attn, set(inspect.signature(varlen_attn).parameters))
        except ImportError:
            _VARLEN = (None, set())
    return _VARLEN


def cu_seqlens_from_position_ids(position_ids):
    """``[[0,1,2,0,1,0,1,2,3]]`` -> ``tensor([0,3,5,9], int32)`` (positions restart at 0 per sequence)."""
    import torch

    flat = position_ids.reshape(-1)
    starts = torch.nonzero(flat == 0, as_tuple=False).reshape(-1)
    total = torch.tensor([flat.numel()], device=flat.device, dtype=starts.dtype)
    return torch.cat([starts, total]).to(torch.int32)


def varlen_attention(
    module,
    query,
    key,
    value,
    attention_mask,
    dropout: float = 0.0,
    scaling=None,
    sliding_window=None,
    **kwargs,
):
    """transformers attention function: query (B, Hq, T, D), key/value (B, Hkv, T, D) -> (B, T, Hq, D)."""
    import torch

    cu_q = kwargs.get("cu_seq_lens_q")
    cu_k = kwargs.get("cu_seq_lens_k", cu_q)
    if cu_q is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            sliding_window=sliding_window,
            **kwargs,
        )
    if attention_mask is not None and attention_mask.dim() == 2 and not bool(attention_mask.all()):
        raise ValueError("packed rows carry no padding: drop attention_mask when passing cu_seq_lens")
    max_q = int(kwargs.get("max_length_q") or int((cu_q[1:] - cu_q[:-1]).max()))
    max_k = int(kwargs.get("max_length_k") or max_q)
    if sliding_window is not None and max_k > sliding_window:
        raise ValueError(
            f"a packed sequence of {max_k} tokens exceeds the model's sliding window ({sliding_window}); "
            "set packing: false"
        )
    b, hq, t, d = query.shape
    hkv = key.shape[1]
    # (B, H, T, D) -> (B*T, H, D): the sequences of every row, back to back
    q = query.transpose(1, 2).reshape(b * t, hq, d)
    k = key.transpose(1, 2).reshape(b * t, hkv, d)
    v = value.transpose(1, 2).reshape(b * t, hkv, d)
    if dropout:
        raise ValueError("attention dropout is not supported with packed rows; set attention_dropout: 0")
    varlen, params = _torch_varlen()
    if query.is_cuda and varlen is not None:
        out_dtype = q.dtype
        if q.dtype not in (torch.bfloat16, torch.float16):  # flash kernels take 16-bit inputs only
            half = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else torch.bfloat16
            q, k, v = q.to(half), k.to(half), v.to(half)
        extra = {}
        if "window_size" in params:
            extra["window_size"] = (-1, 0)  # causal
        else:  # pragma: no cover - older torch spelled it is_causal
            extra["is_causal"] = True
        if "enable_gqa" in params and hq != hkv:
            extra["enable_gqa"] = True
        if "scale" in params and scaling is not None:
            extra["scale"] = scaling
        out = varlen(q, k, v, cu_q.to(torch.int32), cu_k.to(torch.int32), max_q, max_k, **extra)
        if isinstance(out, tuple):
            out = out[0]
        out = out.to(out_dtype)
    else:
        out = _per_sequence_sdpa(q, k, v, cu_q, scaling)
    return out.reshape(b, t, hq, d), None


def _per_sequence_sdpa(q, k, v, cu, scaling):
    """Exact reference: causal sdpa on each sequence separately.  q (T, Hq, D), k/v (T, Hkv, D).

    The sequences are cut with one ``split`` (its backward is one concatenation), not one slice
    each: a slice's backward writes its gradient into a zero tensor of the whole row, which made
    a CPU training step of a 16-sequence pack spend more time zero-filling than attending."""
    import torch
    import torch.nn.functional as F

    bounds = cu.tolist()
    hq, hkv = q.shape[1], k.shape[1]
    sizes = [max(0, e - s) for s, e in zip(bounds[:-1], bounds[1:])]
    tail = q.shape[0] - bounds[-1]  # trailing tokens outside any sequence (none from our collator)
    parts = [t.split(sizes + ([tail] if tail > 0 else []), dim=0) for t in (q, k, v)]
    pieces = []
    for qs, ks, vs in zip(*(p[: len(sizes)] for p in parts)):
        if qs.shape[0] == 0:
            continue
        qs, ks, vs = (x.transpose(0, 1).unsqueeze(0) for x in (qs, ks, vs))  # (1, H, L, D)
        if hq != hkv:
            ks = ks.repeat_interleave(hq // hkv, dim=1)
            vs = vs.repeat_interleave(hq // hkv, dim=1)
        o = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scaling)
        pieces.append(o.squeeze(0).transpose(0, 1))  # (L, Hq, D)
    if tail > 0:
        pieces.append(torch.zeros_like(parts[0][-1]))
    return torch.cat(pieces, dim=0)
