"""The fast engine's per-layer elementwise work: RMSNorm (with the residual add), RoPE, SwiGLU.

Two implementations with one interface (:class:`LayerOps`):

* ``torch`` (any device, the reference): the model's own RMSNorm and MLP modules and
  rotate-half RoPE in PyTorch, exactly the operations ``model.generate`` runs;
* ``liger`` (CUDA with liger-kernel installed: ``pip install 'judgeforge[liger]'``): liger's
  Triton kernels, one launch each where PyTorch runs 5-10 (the residual add fused into the next
  RMSNorm; RoPE on queries and keys in place; SiLU(gate) * up).  On an H200 with a 7B model PyTorch's
  elementwise and copy kernels were a third of a prefill chunk's GPU time and 18% of a decode
  step's; with liger's the fixed workload ran 17.6 -> 20.5 items/s
  (``scripts/bench/engine_profile.py``, BENCHMARKS.md).

``kernels="auto"`` picks liger when it is importable, the device is CUDA, the model's norms and
MLP are the standard RMSNorm / SiLU-gated ones, and a check on the model's own first-layer modules
agrees with the reference; otherwise (or when the check fails, with a warning) the reference.

:class:`FusedWeights`: the decoding step's q, k and v projections as one matrix product.  At a few
hundred rows a decode step's projections read their weights rather than compute, and the narrow k and
v products ran at 0.9 TB/s on an H200 (256 slots, 7B); one q|k|v product read the same bytes in 0.70 ms
a step instead of 1.18 (a 7B decode step 17.50 -> 17.08 ms).  The fused matrices are copies (1.5 GiB
at 7B), taken only while they fit in a tenth of the free GPU memory, and refreshed from the model's
own modules at every generate call (0.9 ms at 7B), so a model whose weights were changed in place (a
sweep's in-memory merge) is never decoded with stale ones.  Prefill keeps the separate projections
(compute-bound there), and gate|up stays two products: fused, cuBLAS picked a compute-shaped kernel
that was slower (3.13 against 2.83 ms a step).
"""

from __future__ import annotations

import importlib.util
import warnings


def _rotate_half(x):
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def liger_available(device) -> bool:
    return getattr(device, "type", str(device)) == "cuda" and importlib.util.find_spec("liger_kernel") is not None


def _standard_layout(model) -> str | None:
    """Why liger's kernels would not compute what this model's modules compute, or None."""
    cfg = model.config
    if getattr(cfg, "hidden_act", None) not in ("silu", "swish"):
        return f"activation {getattr(cfg, 'hidden_act', None)!r}"
    layer = model.model.layers[0]
    for mod in (layer.input_layernorm, layer.post_attention_layernorm, model.model.norm):
        if not type(mod).__name__.endswith("RMSNorm") or not hasattr(mod, "variance_epsilon"):
            return f"norm {type(mod).__name__}"
    if not all(hasattr(layer.mlp, n) for n in ("gate_proj", "up_proj", "down_proj")):
        return "MLP without gate/up/down projections"
    return None


class LayerOps:
    def __init__(self, model, kernels: str = "auto"):
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        if kernels not in ("auto", "liger", "torch"):
            raise ValueError(f"kernels must be auto, liger or torch, not {kernels!r}")
        self.kind = "torch"
        if kernels != "torch":
            why = None if liger_available(self.device) else "needs a CUDA device and liger-kernel"
            why = why or _standard_layout(model)
            if why is None:
                self.kind = "liger"
                why = self._check(model)
            if why is not None:
                self.kind = "torch"
                if kernels == "liger":
                    raise ValueError(f"kernels='liger': {why}")
                if liger_available(self.device):
                    warnings.warn(f"fast engine: liger kernels not used ({why}); using PyTorch", stacklevel=3)

    # ------------------------------------------------------------------ the four operations

    def norm(self, mod, x):
        if self.kind == "liger":
            from liger_kernel.transformers.functional import liger_rms_norm

            return liger_rms_norm(x, mod.weight, mod.variance_epsilon, 0.0, "llama", False)
        return mod(x)

    def add_norm(self, mod, h, delta):
        """``h + delta`` and ``mod`` (an RMSNorm) of it: (new residual, normed)."""
        if self.kind == "liger":
            from liger_kernel.transformers.functional import liger_fused_add_rms_norm

            y, s = liger_fused_add_rms_norm(delta, h, mod.weight, mod.variance_epsilon, 0.0, "llama", False)
            return s, y
        h = h + delta
        return h, mod(h)

    def rope(self, q, k, cos, sin):
        """q (rows, heads, seq, D), k (rows, kv_heads, seq, D), as views of (rows, seq, heads, D) storage;
        cos/sin (rows or 1, 1, seq, D).  Returns the rotated q, k (liger: in place)."""
        if self.kind == "liger":
            from liger_kernel.transformers.functional import liger_rope

            q, k = liger_rope(q, k, cos[:, 0], sin[:, 0])[:2]
            return q, k
        return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin

    def mlp(self, mod, x):
        if self.kind == "liger":
            from liger_kernel.transformers.functional import liger_swiglu

            return mod.down_proj(liger_swiglu(mod.gate_proj(x), mod.up_proj(x)))
        return mod(x)

    # ------------------------------------------------------------------ the check

    def _check(self, model) -> str | None:
        """The liger path against the reference on the model's first-layer modules and random inputs."""
        import torch

        ref = LayerOps(model, "torch")
        layer = model.model.layers[0]
        cfg = model.config
        heads = cfg.num_attention_heads
        kv = getattr(cfg, "num_key_value_heads", None) or heads
        d = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        tol = 1e-4 if self.dtype == torch.float32 else 3e-2
        g = torch.Generator(device=self.device).manual_seed(0)

        def rnd(*shape):
            return torch.randn(*shape, generator=g, device=self.device, dtype=torch.float32).to(self.dtype)

        try:
            with torch.no_grad():
                h, delta = rnd(2, 5, cfg.hidden_size), rnd(2, 5, cfg.hidden_size)
                pos = torch.arange(5, device=self.device).float()
                inv = 1.0 / (10000 ** (torch.arange(0, d, 2, device=self.device).float() / d))
                emb = torch.cat([pos[:, None] * inv[None]] * 2, dim=-1)
                cos, sin = emb.cos().to(self.dtype)[None, None], emb.sin().to(self.dtype)[None, None]
                q = rnd(2, 5, heads, d).transpose(1, 2)
                k = rnd(2, 5, kv, d).transpose(1, 2)
                want = [ref.norm(layer.input_layernorm, h), *ref.add_norm(layer.post_attention_layernorm, h, delta),
                        ref.mlp(layer.mlp, ref.norm(layer.input_layernorm, h)), *ref.rope(q, k, cos, sin)]
                got = [self.norm(layer.input_layernorm, h), *self.add_norm(layer.post_attention_layernorm, h, delta),
                       self.mlp(layer.mlp, self.norm(layer.input_layernorm, h)),
                       *self.rope(q.clone(), k.clone(), cos, sin)]
                for name, a, b in zip(("norm", "residual", "add_norm", "mlp", "rope q", "rope k"), want, got):
                    if _err(a, b) > tol:
                        return f"{name}: relative error {_err(a, b):.3g} against the reference (tolerance {tol})"
        except Exception as e:  # noqa: BLE001 - any failure means: use the reference
            return f"{type(e).__name__}: {str(e)[:200]}"
        return None


def _err(a, b) -> float:
    return ((a.float() - b.float()).abs().max() / a.float().abs().max().clamp(min=1.0)).item()


FUSE_CHOICES = ("auto", "none", "qkv")


class FusedWeights:
    """Each layer's q, k and v projection weights stacked into one matrix, for the decoding step (see the
    module's docstring).

    ``fuse``: ``auto`` (CUDA, while the copies fit in a tenth of the free GPU memory; elsewhere not: the CPU
    path stays the model's own modules), ``none``, ``qkv``.  Fused only where every layer's three
    projections are plain ``nn.Linear`` of one dtype whose biases are all present or all absent (not a LoRA
    wrapper, a quantised layer, ...); ``why`` says why not."""

    def __init__(self, model, fuse: str = "auto"):
        import torch

        if fuse not in FUSE_CHOICES:
            raise ValueError(f"fuse must be one of {', '.join(FUSE_CHOICES)}, not {fuse!r}")
        self._torch = torch
        self.mods = [(layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj)
                     for layer in model.model.layers]
        p = next(model.parameters())
        self.bytes = sum(m.weight.numel() * m.weight.element_size() for ms in self.mods for m in ms)
        self.why: str | None = None
        if fuse == "none" or (fuse == "auto" and p.device.type != "cuda"):
            self.why = "not asked for" if fuse == "none" else "not on a CUDA device"
        else:
            self.why = self._not_fusable()
            if self.why is None and fuse == "auto" and self.bytes > 0.1 * torch.cuda.mem_get_info(p.device)[0]:
                self.why = f"{self.bytes / 2**30:.1f} GiB of copies would not fit in a tenth of the free GPU memory"
        self.on = self.why is None
        if not self.on:
            self.bytes = 0
        self.w = [torch.empty(sum(m.weight.shape[0] for m in ms), ms[0].weight.shape[1], dtype=p.dtype,
                              device=p.device) for ms in self.mods] if self.on else []
        self.b = [torch.empty(w.shape[0], dtype=p.dtype, device=p.device) if ms[0].bias is not None else None
                  for ms, w in zip(self.mods, self.w)]

    @property
    def kind(self) -> str:
        return "qkv" if self.on else "none"

    def _not_fusable(self) -> str | None:
        torch = self._torch
        for ms in self.mods:
            if any(type(m) is not torch.nn.Linear for m in ms):
                return f"not plain nn.Linear ({', '.join(sorted({type(m).__name__ for m in ms}))})"
            if len({(m.weight.dtype, m.weight.device, m.weight.shape[1]) for m in ms}) != 1:
                return "projections of different dtypes, devices or input sizes"
            if len({m.bias is None for m in ms}) != 1:
                return "some projections have a bias and some do not"
        return None

    def refresh(self) -> None:
        """Copy the model's current weights into the fused matrices (in place: captured graphs stay valid)."""
        torch = self._torch
        with torch.no_grad():
            for ms, w, b in zip(self.mods, self.w, self.b):
                torch.cat([m.weight for m in ms], dim=0, out=w)
                if b is not None:
                    torch.cat([m.bias for m in ms], dim=0, out=b)

    def project(self, li: int, x):
        """Layer ``li``'s q|k|v of ``x`` in one product."""
        import torch.nn.functional as F

        return F.linear(x, self.w[li], self.b[li])
