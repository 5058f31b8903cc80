"""Benchmark baseline only: the fast engine as it was before continuous batching (static batches).

A frozen copy of ``judgeforge/backends/fastgen.py`` at 706c8ee (length-sorted static batches, each
sample of a prompt prefilled separately, a batch decodes until its longest row stops), so
``eval_speed.py`` can time it beside the current engine in one run.  The only change: ``stop_at``
(forced EOS at given lengths, as the current engine's bench hook).  Not part of the package.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

from judgeforge.backends import Sampling
from judgeforge.backends.fastgen import process_logits, unsupported_reason
from judgeforge.backends.fastgen_ops import _rotate_half


class StaticGenerator:
    def __init__(self, model, *, pad_id: int, eos_id: int | None, batch_size: int | None = None,
                 cuda_graphs: bool | None = None, bucket: int = 128, prefill_tokens: int = 16384):
        import torch

        self.model = model
        self.pad_id = pad_id
        self.eos_id = eos_id
        self.reason = unsupported_reason(model)
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.cuda = self.device.type == "cuda"
        self.use_graphs = self.cuda if cuda_graphs is None else bool(cuda_graphs and self.cuda)
        self.batch_size = batch_size
        self.bucket = bucket if self.use_graphs else 1
        self.prefill_tokens = prefill_tokens
        self.stats = {"graph_captures": 0, "capture_seconds": 0.0, "batches": 0}
        self.timing = False  # True: synchronise per batch and add prefill/decode seconds to stats
        if self.reason is None:
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
        self._kv = None  # (k, v): (layers, rows, kv_heads, length, head_dim)
        self._graphs: dict = {}
        self._pool = None
        self._gen = None  # the sampling generator (see _generator)
        self._torch = torch

    # ------------------------------------------------------------------ public

    def generate(self, prompts: list[list[int]], sampling: Sampling, n: int = 1,
                 progress: Callable[[int], None] | None = None,
                 stop_at: list[list[int]] | None = None) -> list[list[list[int]]]:
        """For each prompt, ``n`` lists of new tokens (up to, not including, EOS)."""
        if self.reason is not None:
            from judgeforge.backends.plain import plain_generate

            warnings.warn(f"fast engine: {self.reason}; using model.generate", stacklevel=2)
            return plain_generate(self.model, prompts, sampling, n, batch_size=self.batch_size or 8,
                                  pad_id=self.pad_id, eos_id=self.eos_id, progress=progress)
        if sampling.is_greedy and n > 1 and stop_at is None:
            once = self.generate(prompts, sampling, 1, progress)
            return [[list(per[0]) for _ in range(n)] for per in once]
        if not sampling.is_greedy:  # a seed of its own, else one drawn from torch's CPU generator
            seed = sampling.seed
            self._generator(seed if seed is not None else int(self._torch.randint(2**62, (1,)).item()))
        rows = [(i, k) for i in range(len(prompts)) for k in range(n)]
        rows.sort(key=lambda r: -len(prompts[r[0]]))  # longest first: the first batch sizes the cache
        bsz = self.batch_size or self.auto_batch_size(max(len(p) for p in prompts) + sampling.max_new_tokens)
        out: list[list[list[int] | None]] = [[None] * n for _ in prompts]
        for start in range(0, len(rows), bsz):
            chunk = rows[start:start + bsz]
            force = [stop_at[i][k] for i, k in chunk] if stop_at is not None else None
            toks = self._run_batch([prompts[i] for i, _ in chunk], sampling, bsz, force)
            for (i, k), t in zip(chunk, toks):
                out[i][k] = t
            if progress is not None:
                done = {i for i, _ in chunk if all(x is not None for x in out[i])}
                progress(len(done))
        return out  # type: ignore[return-value]

    def auto_batch_size(self, length: int) -> int:
        if not self.cuda:
            return 8
        torch = self._torch
        free, _total = torch.cuda.mem_get_info(self.device)
        if self._kv is not None:
            free += self._kv[0].numel() * self._kv[0].element_size() * 2
        per_row = 2 * self.n_layers * self.n_kv * self.head_dim * self._bucketed(length) * self.dtype.itemsize
        rows = int(0.55 * free / per_row)
        return max(8, min(256, rows // 8 * 8))

    # ------------------------------------------------------------------ internals

    def _clock(self) -> float:
        import time

        if self.timing and self.cuda:
            self._torch.cuda.synchronize()
        return time.time()

    def _bucketed(self, length: int) -> int:
        return int(math.ceil(length / self.bucket) * self.bucket)

    def _cache(self, rows: int, length: int):
        torch = self._torch
        if self._kv is None or self._kv[0].shape[1] < rows or self._kv[0].shape[3] < length:
            self._kv = None
            # The graphs read the old cache: drop them, and their memory pool with them.  A pool whose
            # graphs are all gone is being released; capturing into it again trips the allocator
            # ("use_count > 0 INTERNAL ASSERT FAILED", seen on an H200, torch 2.11), so new graphs get a
            # new pool.
            self._graphs.clear()
            self._pool = None
            if self.cuda:
                torch.cuda.empty_cache()
            shape = (self.n_layers, rows, self.n_kv, length, self.head_dim)
            # zeros, not empty: masked slots must hold finite values (0 * NaN would leak into sums)
            self._kv = (torch.zeros(shape, dtype=self.dtype, device=self.device),
                        torch.zeros(shape, dtype=self.dtype, device=self.device))
        k, v = self._kv
        return k[:, :rows, :, :length], v[:, :rows, :, :length]

    def _rope(self, positions):
        """cos, sin for positions (rows, seq) -> (rows, 1, seq, head_dim), as the model's rotary module."""
        torch = self._torch
        freqs = positions.float()[..., None] * self.inv_freq.float().to(positions.device)[None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = (emb.cos() * self.rope_scaling).to(self.dtype)[:, None]
        sin = (emb.sin() * self.rope_scaling).to(self.dtype)[:, None]
        return cos, sin

    def _qkv(self, layer, x, cos, sin):
        b, s, _ = x.shape
        attn = layer.self_attn
        q = attn.q_proj(x).view(b, s, self.n_heads, self.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(b, s, self.n_kv, self.head_dim).transpose(1, 2)
        v = attn.v_proj(x).view(b, s, self.n_kv, self.head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        return q, k, v

    def _prefill(self, ids, start, kc, vc):
        """Run the prompts (rows, P) through the model, writing K/V at [0, P); logits of the last position."""
        torch = self._torch
        import torch.nn.functional as F

        rows, plen = ids.shape
        ar = torch.arange(plen, device=self.device)
        positions = (ar[None, :] - start[:, None]).clamp(min=0)
        # query i sees keys j <= i that are not padding; a padding query sees only itself
        causal = ar[None, :] <= ar[:, None]
        valid = ar[None, :] >= start[:, None]
        mask = (causal[None] & valid[:, None, :]) | torch.eye(plen, dtype=torch.bool, device=self.device)[None]
        mask = mask[:, None]
        cos, sin = self._rope(positions)
        h = self.model.model.embed_tokens(ids)
        for li, layer in enumerate(self.layers):
            x = layer.input_layernorm(h)
            q, k, v = self._qkv(layer, x, cos, sin)
            kc[li, :, :, :plen] = k
            vc[li, :, :, :plen] = v
            if self.groups > 1:
                k = k[:, :, None].expand(rows, self.n_kv, self.groups, plen, self.head_dim).reshape(
                    rows, self.n_heads, plen, self.head_dim)
                v = v[:, :, None].expand(rows, self.n_kv, self.groups, plen, self.head_dim).reshape(
                    rows, self.n_heads, plen, self.head_dim)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
            o = o.transpose(1, 2).reshape(rows, plen, self.n_heads * self.head_dim)
            h = h + layer.self_attn.o_proj(o)
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        h = self.model.model.norm(h[:, -1:])
        return self.model.lm_head(h)[:, 0].float()

    def _step(self, tok, cur, pos, valid, kc, vc):
        """One decoding step for all rows: token (rows,), cache slot ``cur`` (1,), positions (rows,)."""
        torch = self._torch
        import torch.nn.functional as F

        rows = tok.shape[0]
        length = kc.shape[3]
        h = self.model.model.embed_tokens(tok[:, None])
        cos, sin = self._rope(pos[:, None])
        ar = torch.arange(length, device=self.device)
        mask = (valid & (ar[None, :] <= cur))[:, None, None, :]  # (rows, 1, 1, length)
        for li, layer in enumerate(self.layers):
            x = layer.input_layernorm(h)
            q, k, v = self._qkv(layer, x, cos, sin)
            kl, vl = kc[li], vc[li]
            kl.index_copy_(2, cur, k)
            vl.index_copy_(2, cur, v)
            # grouped heads: the query heads that share a KV head become that head's query rows
            qg = q.reshape(rows, self.n_kv, self.groups, self.head_dim)
            o = F.scaled_dot_product_attention(qg, kl, vl, attn_mask=mask, scale=self.scale)
            o = o.reshape(rows, 1, self.n_heads * self.head_dim)
            h = h + layer.self_attn.o_proj(o)
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return self.model.lm_head(self.model.model.norm(h))[:, 0].float()

    def _graph_step(self, rows: int, length: int, kc, vc):
        """A captured CUDA graph of :meth:`_step` for (rows, length) and its static buffers."""
        key = (rows, length)
        if key in self._graphs:
            return self._graphs[key]
        import time

        torch = self._torch
        t0 = time.time()
        bufs = {
            "tok": torch.zeros(rows, dtype=torch.long, device=self.device),
            "cur": torch.full((1,), length - 1, dtype=torch.long, device=self.device),
            "pos": torch.zeros(rows, dtype=torch.long, device=self.device),
            "valid": torch.ones(rows, length, dtype=torch.bool, device=self.device),
        }
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(2):
                self._step(bufs["tok"], bufs["cur"], bufs["pos"], bufs["valid"], kc, vc)
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            bufs["out"] = self._step(bufs["tok"], bufs["cur"], bufs["pos"], bufs["valid"], kc, vc)
        torch.cuda.synchronize()
        self.stats["graph_captures"] += 1
        self.stats["capture_seconds"] += time.time() - t0
        self._graphs[key] = (graph, bufs)
        return self._graphs[key]

    def _generator(self, seed: int | None = None):
        """The engine's own random generator, reseeded when ``seed`` is given (each call of
        :meth:`generate`, as ``generate`` users seed torch).  Sampling never draws from the device's
        default generator, which every CUDA-graph capture registers: a capture that fails half-way
        leaves that one marked as capturing, and every later draw from it raises ("Offset increment
        outside graph capture encountered unexpectedly")."""
        torch = self._torch
        if self._gen is None:
            self._gen = torch.Generator(device=self.device)
        if seed is not None:
            self._gen.manual_seed(seed)
        return self._gen

    def _next_token(self, logits, seen, sampling: Sampling):
        logits = process_logits(logits, seen, sampling, self.eos_id)
        if sampling.is_greedy:
            return logits.argmax(dim=-1)
        return self._torch.multinomial(logits.softmax(dim=-1), 1, generator=self._generator())[:, 0]

    def _run_batch(self, prompts: list[list[int]], sampling: Sampling, bsz: int, force=None) -> list[list[int]]:
        torch = self._torch
        with torch.no_grad():
            return self._run_batch_nograd(prompts, sampling, bsz, force)

    def _run_batch_nograd(self, prompts: list[list[int]], sampling: Sampling, bsz: int, force) -> list[list[int]]:
        torch = self._torch
        real = len(prompts)
        # graphs need fixed shapes: pad a batch with copies; a small remainder decodes eagerly instead
        use_graph = self.use_graphs and real > bsz // 2
        rows = bsz if use_graph else real
        batch = list(prompts) + [prompts[0]] * (rows - real)
        longest = max(len(p) for p in batch)
        plen = self._bucketed(longest)  # the cache is bucketed; the prefill runs on the real length only
        off = plen - longest
        max_new = sampling.max_new_tokens
        length = plen + max_new
        kc, vc = self._cache(rows, length)
        graph = None
        if use_graph:
            try:
                graph = self._graph_step(rows, length, kc, vc)
            except Exception as e:  # noqa: BLE001 - keep going, eagerly
                self.use_graphs = False
                self._graphs.clear()
                self._pool = None
                self.stats["graph_error"] = f"{type(e).__name__}: {e}"
                warnings.warn(f"fast engine: CUDA graph capture failed ({e}); decoding eagerly", stacklevel=2)
        self.stats["batches"] += 1
        ids = torch.full((rows, longest), self.pad_id, dtype=torch.long)
        for r, p in enumerate(batch):
            ids[r, longest - len(p):] = torch.tensor(p, dtype=torch.long)
        ids = ids.to(self.device)
        start = torch.tensor([plen - len(p) for p in batch], dtype=torch.long, device=self.device)
        valid = torch.arange(length, device=self.device)[None, :] >= start[:, None]
        chunk = max(1, self.prefill_tokens // longest)
        t0 = self._clock()
        logits = torch.cat([
            self._prefill(ids[a:a + chunk], start[a:a + chunk] - off, kc[:, a:a + chunk, :, off:plen],
                          vc[:, a:a + chunk, :, off:plen])
            for a in range(0, rows, chunk)
        ])
        t1 = self._clock()
        seen = None
        if sampling.repetition_penalty != 1.0:
            seen = torch.zeros(rows, logits.shape[-1], dtype=torch.bool, device=self.device)
            seen.scatter_(1, ids, True)  # like generate: the prompt, padding included
        out = torch.full((rows, max_new), self.pad_id, dtype=torch.long, device=self.device)
        finished = torch.zeros(rows, dtype=torch.bool, device=self.device)
        if graph is not None:
            g, bufs = graph
            bufs["valid"].copy_(valid)
        check_eos = self.eos_id is not None and (not sampling.ignore_eos or force is not None)
        if force is not None:
            force_t = torch.tensor(force + [-1] * (rows - real), device=self.device)
        for t in range(max_new):
            nxt = self._next_token(logits, seen, sampling)
            if force is not None:
                nxt = torch.where(force_t == t, torch.full_like(nxt, self.eos_id), nxt)
            if check_eos:
                nxt = torch.where(finished, torch.full_like(nxt, self.pad_id), nxt)
                finished |= nxt == self.eos_id
            out[:, t] = nxt
            if seen is not None:
                seen.scatter_(1, nxt[:, None], True)
            if t == max_new - 1 or (check_eos and t % 16 == 15 and bool(finished[:real].all())):
                break
            cur = plen + t
            if graph is not None:
                bufs["tok"].copy_(nxt)
                bufs["cur"].fill_(cur)
                bufs["pos"].copy_(cur - start)
                g.replay()
                logits = bufs["out"].clone()
            else:
                cur_t = torch.tensor([cur], dtype=torch.long, device=self.device)
                logits = self._step(nxt, cur_t, cur - start, valid, kc, vc)
        res = out[:real].tolist()
        if self.timing:
            t2 = self._clock()
            self.stats["prefill_seconds"] = self.stats.get("prefill_seconds", 0.0) + t1 - t0
            self.stats["decode_seconds"] = self.stats.get("decode_seconds", 0.0) + t2 - t1
        toks = []
        for r in res:
            if check_eos and self.eos_id in r:
                r = r[: r.index(self.eos_id)]
            toks.append(r)
        return toks
