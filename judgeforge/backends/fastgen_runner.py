"""The model side of the fast engine: a slot KV cache, prefill into slots, one decoding step, CUDA graphs.

The cache is ``(layers, slots, kv_heads, length, head_dim)``.  A slot holds one sequence,
left-aligned: the token at position ``p`` has its keys and values at index ``p``, so a
slot can be refilled with a new sequence at any time (continuous batching) without
touching the others.  :meth:`Runner.prefill` runs a group of prompts once (right-padded,
causal attention, so padding is never seen by a real token) and copies each prompt's
keys/values into as many slots as it has samples.  :meth:`Runner.step` decodes one token
for every slot, each at its own position, attending over only the first ``length``
cache entries (the caller buckets it to the longest filled slot).  On GPUs the step is a
captured CUDA graph per (slots, length) key.

It reuses the model's own modules (embeddings, projections, LM head; RMSNorms and MLPs too unless
liger's fused kernels stand in for them, :mod:`judgeforge.backends.fastgen_ops`; the decoding step's
q|k|v product runs on a fused copy of the three projections' weights where it fits,
:class:`~judgeforge.backends.fastgen_ops.FusedWeights`) and re-implements only attention around the
cache, so it covers the Mistral/Llama family.  A prefill runs the last layer's attention output,
MLP and final norm only at each prompt's last position: the rest of that layer feeds nothing but
the cache, which its keys and values have already filled (3% of a 7B prefill's products).
"""

from __future__ import annotations

import time
import warnings


class Runner:
    def __init__(self, model, *, use_graphs: bool, stats: dict, attention: str = "auto", kernels: str = "auto",
                 fuse: str = "auto"):
        import torch

        from judgeforge.backends.fastgen_attn import kernel_works, triton_available
        from judgeforge.backends.fastgen_ops import FusedWeights, LayerOps

        self.model = model
        self._torch = torch
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.cuda = self.device.type == "cuda"
        self.use_graphs = use_graphs
        self.stats = stats
        cfg = model.config
        inner = model.model
        self.layers = list(inner.layers)
        self.n_layers = len(self.layers)
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.groups = self.n_heads // self.n_kv
        self.scale = getattr(self.layers[0].self_attn, "scaling", self.head_dim ** -0.5)
        self.inv_freq = inner.rotary_emb.inv_freq
        self.rope_scaling = float(getattr(inner.rotary_emb, "attention_scaling", 1.0) or 1.0)
        pow2 = self.head_dim & (self.head_dim - 1) == 0
        if attention == "auto":
            attention = "triton" if triton_available(self.device) and pow2 else "sdpa"
            why = kernel_works(self.device, self.dtype, self.n_kv, self.groups, self.head_dim) \
                if attention == "triton" else None
            if why is not None:
                warnings.warn(f"fast engine: the Triton decode kernel is not usable here ({why}); "
                              "using PyTorch attention", stacklevel=3)
                attention = "sdpa"
        elif attention == "triton" and not (triton_available(self.device) and pow2):
            raise ValueError("attention='triton' needs a CUDA device, the triton package and a power-of-2 head size")
        elif attention != "sdpa":
            raise ValueError(f"attention must be auto, triton or sdpa, not {attention!r}")
        self.attention = attention  # triton: each slot over its own length (fastgen_attn)
        self.ops = LayerOps(model, kernels)  # norms, RoPE, SwiGLU: liger's fused kernels or the model's modules
        # prefill attention over grouped KV heads: SDPA's own (enable_gqa: 4% faster prefill at 7B on an
        # H200, no copies) or "expand" (each KV head repeated for its query heads first)
        self.prefill_gqa = "native"
        self.fused = FusedWeights(model, fuse)  # the decoding step's q|k|v as one product
        self.kv = None  # (k, v): (layers, slots, kv_heads, length, head_dim)
        self._graphs: dict = {}
        self._pool = None

    def bytes_per_token(self) -> int:
        return 2 * self.n_layers * self.n_kv * self.head_dim * self.dtype.itemsize

    # ------------------------------------------------------------------ cache

    def cache(self, slots: int, length: int):
        torch = self._torch
        if self.kv is None or self.kv[0].shape[1] < slots or self.kv[0].shape[3] < length:
            self.kv = None
            # The graphs read the old cache: drop them, and their memory pool with them.  A pool whose
            # graphs are all gone is being released; capturing into it again trips the allocator
            # ("use_count > 0 INTERNAL ASSERT FAILED", seen on an H200, torch 2.11), so new graphs get a
            # new pool.
            self.drop_graphs()
            if self.cuda:
                torch.cuda.empty_cache()
            shape = (self.n_layers, slots, self.n_kv, length, self.head_dim)
            # zeros, not empty: masked entries must hold finite values (0 * NaN would leak into sums)
            self.kv = (torch.zeros(shape, dtype=self.dtype, device=self.device),
                       torch.zeros(shape, dtype=self.dtype, device=self.device))
        return self.kv

    def drop_graphs(self) -> None:
        self._graphs.clear()
        self._pool = None

    def move_slots(self, dst: list[int], src: list[int], length: int) -> None:
        """Copy the cache of slots ``src`` into slots ``dst`` (compaction for the tail)."""
        torch = self._torch
        if not dst:
            return
        d = torch.tensor(dst, device=self.device)
        s = torch.tensor(src, device=self.device)
        for c in self.kv:
            c[:, :, :, :length].index_copy_(1, d, c[:, :, :, :length].index_select(1, s))

    # ------------------------------------------------------------------ math

    def _rope(self, positions):
        """cos, sin for positions (rows, seq) -> (rows, 1, seq, head_dim), as the model's rotary module."""
        torch = self._torch
        freqs = positions.float()[..., None] * self.inv_freq.float().to(positions.device)[None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = (emb.cos() * self.rope_scaling).to(self.dtype)[:, None]
        sin = (emb.sin() * self.rope_scaling).to(self.dtype)[:, None]
        return cos, sin

    def _qkv(self, layer, x, cos, sin, li: int | None = None):
        """Queries (rotated), keys (rotated) and values of normed input ``x`` (rows, seq, hidden) as
        (rows, heads, seq, D); ``li`` given: from layer ``li``'s fused q|k|v weights where there are some."""
        b, s, _ = x.shape
        attn = layer.self_attn
        hq, hkv = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        if li is not None and self.fused.on:
            q, k, v = self.fused.project(li, x).split([hq, hkv, hkv], dim=-1)
        else:
            q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
        q = q.view(b, s, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.view(b, s, self.n_kv, self.head_dim).transpose(1, 2)
        v = v.view(b, s, self.n_kv, self.head_dim).transpose(1, 2)
        q, k = self.ops.rope(q, k, cos, sin)
        return q, k, v

    def _layers(self, h, attend, last_norm: bool, keep=None):
        """The decoder layers over hidden states ``h``: ``attend(li, layer, x)`` does attention for normed
        input ``x`` (and writes the cache); returns the final residual stream, or with ``last_norm``
        the model's final norm of it.  ``keep`` (row indices, positions): from the last layer's
        attention output on, only those positions of ``h`` (rows, seq, hidden) go on, and the result
        is (rows, 1, hidden)."""
        ops, layers = self.ops, self.layers
        x = ops.norm(layers[0].input_layernorm, h)
        for li, layer in enumerate(layers):
            a = attend(li, layer, x)
            if keep is not None and li + 1 == len(layers):
                a, h = a[keep][:, None], h[keep][:, None]
            h, x = ops.add_norm(layer.post_attention_layernorm, h, layer.self_attn.o_proj(a))
            m = ops.mlp(layer.mlp, x)
            if li + 1 < len(layers):
                h, x = ops.add_norm(layers[li + 1].input_layernorm, h, m)
            elif last_norm:
                return ops.add_norm(self.model.model.norm, h, m)[1]
            else:
                h = h + m
        return h

    def prefill(self, prompts: list[list[int]], slots: list[list[int]], seen=None):
        """Run ``prompts`` (one pass each) and write their keys/values into ``slots[j]`` (the slots of
        prompt j: one per sample).  ``seen`` (slots, vocab), the repetition penalty's mask: each of those
        slots' rows becomes its prompt's tokens.  Returns (slot index tensor, logits of the last prompt
        position per slot)."""
        torch = self._torch
        import torch.nn.functional as F

        kc, vc = self.kv
        rows, width = len(prompts), max(len(p) for p in prompts)
        ids = torch.tensor([p + [p[0]] * (width - len(p)) for p in prompts], dtype=torch.long, device=self.device)
        last = torch.tensor([len(p) - 1 for p in prompts], device=self.device)
        flat = [s for ss in slots for s in ss]
        dst = torch.tensor(flat, device=self.device)
        src = torch.tensor([j for j, ss in enumerate(slots) for _ in ss], device=self.device)
        cos, sin = self._rope(torch.arange(width, device=self.device)[None])  # (1, 1, width, D): shared
        same = len(flat) == rows  # one slot per prompt: write its keys/values as they are
        if seen is not None:  # padding repeats the prompt's first token, which is seen anyway
            marks = torch.zeros(len(flat), seen.shape[1], dtype=torch.bool, device=self.device)
            seen.index_copy_(0, dst, marks.scatter_(1, ids if same else ids.index_select(0, src), True))

        def attend(li, layer, x):
            q, k, v = self._qkv(layer, x, cos, sin)
            kc[li, :, :, :width].index_copy_(0, dst, k if same else k.index_select(0, src))
            vc[li, :, :, :width].index_copy_(0, dst, v if same else v.index_select(0, src))
            native = self.groups > 1 and self.prefill_gqa == "native"
            if self.groups > 1 and not native:
                k = k[:, :, None].expand(rows, self.n_kv, self.groups, width, self.head_dim).reshape(
                    rows, self.n_heads, width, self.head_dim)
                v = v[:, :, None].expand(rows, self.n_kv, self.groups, width, self.head_dim).reshape(
                    rows, self.n_heads, width, self.head_dim)
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale,
                                               **({"enable_gqa": True} if native else {}))
            return o.transpose(1, 2).reshape(rows, width, self.n_heads * self.head_dim)

        h = self._layers(self.model.model.embed_tokens(ids), attend, last_norm=True,
                         keep=(torch.arange(rows, device=self.device), last))
        logits = self.model.lm_head(h)[:, 0].float()
        return dst, logits.index_select(0, src)

    def step(self, tok, cur, rows: int, length: int):
        """One token for slots [0, rows): input ``tok`` (rows,) at position ``cur`` (rows,); attention over
        cache entries [0, length) (``sdpa``) or over each slot's own ``cur + 1`` entries (``triton``).
        Returns the next logits (rows, vocab)."""
        torch = self._torch
        from judgeforge.backends.fastgen_attn import sdpa_decode, triton_decode

        kc, vc = self.kv
        cos, sin = self._rope(cur[:, None])
        rix = torch.arange(rows, device=self.device)
        own_length = self.attention == "triton"

        def attend(li, layer, x):
            q, k, v = self._qkv(layer, x, cos, sin, li)
            kl, vl = kc[li], vc[li]
            kl[rix, :, cur] = k[:, :, 0]
            vl[rix, :, cur] = v[:, :, 0]
            # grouped heads: the query heads that share a KV head become that head's query rows
            qg = q.reshape(rows, self.n_kv, self.groups, self.head_dim)
            if own_length:
                o = triton_decode(qg, kl, vl, cur, self.scale)
            else:
                o = sdpa_decode(qg, kl, vl, cur, length, self.scale)
            return o.reshape(rows, 1, self.n_heads * self.head_dim)

        x = self._layers(self.model.model.embed_tokens(tok[:, None]), attend, last_norm=True)
        return self.model.lm_head(x)[:, 0].float()

    # ------------------------------------------------------------------ graphs

    def decode(self, tok, cur, rows: int, length: int):
        """:meth:`step`, replayed from a CUDA graph when graphs are on (captured on first use)."""
        if not self.use_graphs:
            return self.step(tok, cur, rows, length)
        try:
            graph, bufs = self._graph(rows, length)
        except Exception as e:  # noqa: BLE001 - keep going, eagerly
            self.use_graphs = False
            self.drop_graphs()
            self.stats["graph_error"] = f"{type(e).__name__}: {e}"
            warnings.warn(f"fast engine: CUDA graph capture failed ({e}); decoding eagerly", stacklevel=2)
            return self.step(tok, cur, rows, length)
        bufs["tok"].copy_(tok)
        bufs["cur"].copy_(cur)
        graph.replay()
        return bufs["out"].clone()

    def _graph(self, rows: int, length: int):
        # triton attention reads each slot's length on the device: one graph per row count serves all
        key = (rows, 0 if self.attention == "triton" else length)
        if key in self._graphs:
            return self._graphs[key]
        torch = self._torch
        t0 = time.time()
        # the capture's warm-up writes garbage at entry length - 1 of every slot: the step this graph is
        # made for has every slot's position <= length - 1, so that entry is unfilled or the current
        # position, which the real replay rewrites before attending
        # (with triton attention, at the cache's last entry, which no sequence reaches: its last token is
        # never fed back, so positions stay <= longest prompt + max_new_tokens - 2)
        at = self.kv[0].shape[3] - 1 if key[1] == 0 else length - 1
        bufs = {"tok": torch.zeros(rows, dtype=torch.long, device=self.device),
                "cur": torch.full((rows,), at, dtype=torch.long, device=self.device)}
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(2):
                self.step(bufs["tok"], bufs["cur"], rows, length)
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            bufs["out"] = self.step(bufs["tok"], bufs["cur"], rows, length)
        torch.cuda.synchronize()
        self.stats["graph_captures"] += 1
        self.stats["capture_seconds"] += time.time() - t0
        self._graphs[key] = (graph, bufs)
        return self._graphs[key]
