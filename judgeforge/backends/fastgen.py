"""The fast generation engine of the ``hf`` backend (``engine="fast"``): continuous batching.

Why ``model.generate`` is slow for judge evaluation (1,000-2,000-token prompts, outputs
that stop at EOS anywhere between ~50 and 1,024 tokens, 3 samples per item): its dynamic
KV cache grows by concatenation, its loop pays Python and launch overhead per layer per
token, and a static batch decodes until its longest row stops.  This engine:

* keeps ``slots`` sequences in a preallocated KV cache (:mod:`judgeforge.backends.fastgen_runner`);
  a slot whose sequence stops (EOS or ``max_new_tokens``) is refilled with the next waiting
  prompt (longest first), in groups, so the GPU stays full on variable-length outputs;
* prefills a prompt once for all of its ``n`` samples (its keys/values are copied into
  ``n`` slots);
* decodes each step with every slot attending over its own length (a Triton kernel,
  :mod:`judgeforge.backends.fastgen_attn`, on GPUs with Triton; elsewhere PyTorch's attention
  over the filled part of the cache, its length bucketed to the longest filled slot), as one
  CUDA graph per slot count (per (slots, length) without Triton) on GPUs, eager elsewhere;
  when no prompt is waiting and few slots are busy, the busy ones move to the front and
  the step runs on fewer rows (the tail of long samples);
* runs RMSNorm with its residual add, RoPE and SwiGLU as liger-kernel's fused kernels when
  installed on CUDA (checked against the model's modules at start; :mod:`judgeforge.backends.fastgen_ops`),
  and the decoding step's q, k and v projections as one product on a fused copy of their weights
  where GPU memory allows (refreshed from the model at every call);
* samples on the GPU with the same processors as ``generate`` (repetition penalty,
  temperature, top-p; greedy = argmax), from the engine's own generator: in one Triton kernel
  without a sort where it agrees with the reference at start (:mod:`judgeforge.backends.fastgen_sample`),
  else sorted then drawn by ``multinomial``.

It covers the Mistral/Llama family (rotary, grouped KV heads, no sliding window inside the
sequence); anything else falls back to plain ``generate`` with a warning.  Greedy output is
the same tokens as ``generate`` (tested on CPU with a tiny model; ``scripts/bench/eval_speed.py``
spot-checks a 7B model on a GPU).  A request whose prompt plus ``max_new_tokens`` exceeds the
model's context is refused, naming it, before any generation (:func:`check_context`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

from judgeforge.backends import Sampling
from judgeforge.errors import PromptTooLong

SUPPORTED = ("mistral", "llama", "qwen2")
# below this top-p the sampling kernel's float32 sums could not tell 1 - top_p from the whole mass (about
# 1e-6 apart at a 150,000-token vocabulary) and might remove every token; the sort keeps the likeliest
MIN_KERNEL_TOP_P = 1e-4


def unsupported_reason(model) -> str | None:
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in SUPPORTED:
        return f"model type {getattr(cfg, 'model_type', None)!r} is not one of {', '.join(SUPPORTED)}"
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "layers") or not hasattr(model, "lm_head"):
        return "unexpected module layout"
    rot = getattr(inner, "rotary_emb", None)
    if rot is None or not hasattr(rot, "inv_freq"):
        return "no rotary embedding with inv_freq"
    rope = getattr(cfg, "rope_scaling", None) or {}
    rtype = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else "default"
    if rtype not in (None, "default"):
        return f"rope scaling '{rtype}'"
    if getattr(cfg, "use_sliding_window", True) and getattr(cfg, "sliding_window", None):
        return "sliding-window attention"
    attn = inner.layers[0].self_attn
    for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
        if not hasattr(attn, name):
            return f"attention without {name}"
    return None


def process_logits(logits, seen, sampling: Sampling, eos_id: int | None = None):
    """The logits ``generate`` samples from: min-new-tokens (``ignore_eos``), repetition penalty
    (``seen``: a (rows, vocab) mask of the tokens in each sequence), then temperature and top-p
    when sampling.  Matches transformers' processors of the same names (tested)."""
    import torch

    if sampling.ignore_eos and eos_id is not None:
        logits = logits.clone()
        logits[:, eos_id] = -math.inf
    if sampling.repetition_penalty != 1.0 and seen is not None:
        p = sampling.repetition_penalty
        logits = torch.where(seen, torch.where(logits < 0, logits * p, logits / p), logits)
    if sampling.is_greedy:
        return logits
    if sampling.temperature != 1.0:
        logits = logits / sampling.temperature
    if sampling.top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(logits, descending=False)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cum <= (1 - sampling.top_p)
        remove[:, -1] = False  # keep at least one token
        logits = logits.masked_fill(remove.scatter(1, sorted_idx, remove), -math.inf)
    return logits


def sorted_top_p(logits, seen, sampling: Sampling, eos_id: int | None = None):
    """The distribution :func:`process_logits` samples from, in ascending order of probability, without
    scattering back to vocabulary order: (probabilities, unnormalised: top-p's removed tokens are 0;
    the vocabulary index of each).  The kept set is the one ``process_logits`` keeps (the same sort), and
    ``multinomial`` renormalises over it, so the draw has the same distribution in about half the passes
    over the (rows, vocab) logits (tested against ``process_logits``)."""
    from dataclasses import replace

    logits = process_logits(logits, seen, replace(sampling, top_p=1.0), eos_id)
    # stable: equal logits in index order on every device (CUDA's radix sort is stable anyway), the
    # order the sampling kernel's tie rule reproduces (fastgen_sample)
    sorted_logits, idx = logits.sort(dim=-1, descending=False, stable=True)
    probs = sorted_logits.softmax(dim=-1)
    remove = probs.cumsum(dim=-1) <= (1 - sampling.top_p)
    remove[:, -1] = False  # keep at least one token
    return probs.masked_fill_(remove, 0.0), idx


def sampler_works(device, vocab: int) -> str | None:
    """``None`` when the kernel agrees with the reference here, else why not (no Triton, a compile error,
    a wrong answer): the kept sets of random logits (half of them tied, as bf16) at the model's vocabulary
    under penalty, EOS mask, temperature and top-p (at most one boundary token apart, probabilities within
    1e-6), and the draw frequencies of 8,192 rows on 16 tied tokens (within 5 standard deviations of the
    kept distribution)."""
    import importlib.util

    import torch

    from judgeforge.backends.fastgen_sample import triton_sample

    if getattr(device, "type", str(device)) != "cuda" or importlib.util.find_spec("triton") is None:
        return "needs a CUDA device and the triton package"
    try:
        g = torch.Generator(device=device).manual_seed(0)
        logits = torch.randn(8, vocab, device=device, generator=g) * torch.tensor(
            [0.5, 1, 2, 4, 8, 1, 2, 16], device=device)[:, None]
        logits[4:] = logits[4:].bfloat16().float()  # ties, as a bf16 model's logits have
        seen = torch.rand(8, vocab, device=device, generator=g) < 0.05
        for s in (Sampling(1.0, 0.9, 8, 1.03, ignore_eos=True), Sampling(0.7, 0.5, 8, 1.0), Sampling(1.3, 0.999, 8, 1.2)):
            dbg: dict = {}
            triton_sample(logits, seen, s, 2, g, debug=dbg)
            sp, idx = sorted_top_p(logits, seen, s, 2)
            ref_keep = torch.zeros_like(seen).scatter_(1, idx, sp > 0)
            ref_p = process_logits(logits, seen, Sampling(s.temperature, 1.0, 8, s.repetition_penalty,
                                                          ignore_eos=s.ignore_eos), 2).softmax(-1)
            off = (dbg["kept"] != ref_keep).sum(-1).max().item()
            err = (dbg["probs"] - ref_p).abs().max().item()
            if off > 1 or not err <= 1e-6:
                return f"kept sets {off} tokens apart, probabilities {err:.3g} apart (temperature {s.temperature}, top-p {s.top_p})"
        small = torch.tensor([[2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0] * 2], device=device)
        s = Sampling(1.0, 0.8, 8, 1.0)
        want = process_logits(small, None, s).softmax(-1)[0]
        got = triton_sample(small.expand(8192, -1), None, s, None, g)
        freq = torch.bincount(got, minlength=16).float() / 8192
        sd = (want * (1 - want) / 8192).sqrt()
        bad = ((freq - want).abs() > 5 * sd + 1e-9).nonzero().flatten().tolist()
        if bad:
            return f"draw frequencies off the distribution at tokens {bad[:5]}"
    except Exception as e:  # noqa: BLE001 - any failure means: use the reference
        return f"{type(e).__name__}: {str(e)[:200]}"
    return None


def check_context(prompts: list[list[int]], max_new_tokens: int, limit: int | None,
                  ids: list | None = None, source: str = "max_position_embeddings") -> None:
    """One clear line (:class:`PromptTooLong`) for the first request that cannot fit the model's context
    of ``limit`` tokens (``source``: where that number comes from); nothing is ever truncated."""
    if not limit:
        return
    for k, p in enumerate(prompts):
        if len(p) + max_new_tokens > limit:
            name = f"request {k}" + (f" (id {ids[k]})" if ids is not None else "")
            raise PromptTooLong(name, f"prompt of {len(p):,} tokens + max_new_tokens {max_new_tokens:,} = "
                                      f"{len(p) + max_new_tokens:,} is over the judge's context of {limit:,} tokens "
                                      f"({source}); shorten that input or lower max_new_tokens", k)


def config_context(config) -> int | None:
    """The context a transformers model config records (``max_position_embeddings``), or None."""
    n = getattr(config, "max_position_embeddings", None)
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def context_limit(model) -> int | None:
    return config_context(getattr(model, "config", None))


class FastGenerator:
    check_every = 8  # decoding steps between looks at which slots stopped (one host sync each)

    def __init__(self, model, *, pad_id: int, eos_id: int | None, batch_size: int | None = None,
                 cuda_graphs: bool | None = None, bucket: int = 128, prefill_tokens: int = 16384,
                 attention: str = "auto", kernels: str = "auto", fuse: str = "auto", sampler: str = "auto"):
        import torch

        self.model = model
        self.pad_id = pad_id
        self.eos_id = eos_id
        self.reason = unsupported_reason(model)
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.cuda = self.device.type == "cuda"
        self.batch_size = batch_size  # slots; None: from free GPU memory
        self.bucket = bucket if self.cuda else 1
        self.prefill_tokens = prefill_tokens
        self.stats = {"graph_captures": 0, "capture_seconds": 0.0, "batches": 0, "steps": 0, "prefills": 0}
        self.timing = False  # True: synchronise around prefills and add prefill/decode seconds to stats
        use_graphs = self.cuda if cuda_graphs is None else bool(cuda_graphs and self.cuda)
        self.runner = None
        if self.reason is None:
            from judgeforge.backends.fastgen_runner import Runner

            self.runner = Runner(model, use_graphs=use_graphs, stats=self.stats, attention=attention, kernels=kernels,
                                 fuse=fuse)
        self._use_graphs = use_graphs
        self._gen = None  # the sampling generator (see _generator)
        if sampler not in ("auto", "torch", "triton"):
            raise ValueError(f"sampler must be auto, torch or triton, not {sampler!r}")
        if sampler == "triton" and not self.cuda:
            raise ValueError("sampler='triton' needs a CUDA device")
        self.sampler = sampler  # auto: decided at the first sampled call (see _sampler_kind)
        self._torch = torch

    @property
    def use_graphs(self) -> bool:
        return self.runner.use_graphs if self.runner is not None else False

    @use_graphs.setter
    def use_graphs(self, on: bool) -> None:
        if self.runner is not None:
            self.runner.use_graphs = bool(on and self.cuda)

    @property
    def _graphs(self):
        return self.runner._graphs if self.runner is not None else {}

    @property
    def _pool(self):
        return self.runner._pool if self.runner is not None else None

    @_pool.setter
    def _pool(self, value):
        self.runner._pool = value

    # ------------------------------------------------------------------ public

    def generate(self, prompts: list[list[int]], sampling: Sampling, n: int = 1,
                 progress: Callable[[int], None] | None = None, *, ids: list | None = None,
                 stop_at: list[list[int]] | None = None) -> list[list[list[int]]]:
        """For each prompt, ``n`` lists of new tokens (up to, not including, EOS).

        ``ids``: request ids for error messages.  ``stop_at[i][k]`` (benchmarks only): force EOS as
        the token after ``stop_at[i][k]`` new ones, so a random-weight model yields outputs of real lengths."""
        check_context(prompts, sampling.max_new_tokens, context_limit(self.model), ids)
        if not prompts:
            return []
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
        longest = max(len(p) for p in prompts)
        slots = self.batch_size or self.auto_batch_size(longest + sampling.max_new_tokens)
        slots = max(slots, n)
        from judgeforge.backends.fastgen_sched import run

        with self._torch.no_grad():
            return run(self, prompts, sampling, n, slots, progress, stop_at)

    def auto_batch_size(self, length: int) -> int:
        """Slots whose KV cache (``length`` tokens each, bucketed) fits in the free GPU memory less a reserve
        for activations (prefill chunks, sampling, graph pools): 8% of the card, at least 4 GiB.  Memory
        the caching allocator holds unused, and the cache of a previous call, count as free."""
        if not self.cuda:
            return 8
        torch = self._torch
        free, total = torch.cuda.mem_get_info(self.device)
        free += torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        if self.runner.kv is not None:
            free += self.runner.kv[0].numel() * self.runner.kv[0].element_size() * 2
        reserve = max(4 * 2**30, int(0.08 * total))
        per_row = self.runner.bytes_per_token() * self._bucketed(length)
        rows = int((free - reserve) / per_row)
        return max(8, min(256, rows // 8 * 8))

    # ------------------------------------------------------------------ internals

    def _clock(self) -> float:
        import time

        if self.timing and self.cuda:
            self._torch.cuda.synchronize()
        return time.time()

    def _bucketed(self, length: int) -> int:
        return int(math.ceil(length / self.bucket) * self.bucket)

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

    def _sampler_kind(self) -> str:
        """``triton`` (:mod:`judgeforge.backends.fastgen_sample`: one kernel, no sort) where it agrees with
        the reference on this device, else ``torch`` (the reference: sort, then ``multinomial``)."""
        if self.sampler == "auto":
            why = sampler_works(self.device, self.model.lm_head.weight.shape[0]) if self.cuda else "CPU"
            if why is not None and self.cuda:
                warnings.warn(f"fast engine: the sampling kernel is not used ({why}); sorting instead", stacklevel=3)
            self.sampler = "torch" if why else "triton"
            self.stats["sampler"] = self.sampler
        return self.sampler

    def _next_token(self, logits, seen, sampling: Sampling):
        if sampling.is_greedy:
            return process_logits(logits, seen, sampling, self.eos_id).argmax(dim=-1)
        if self._sampler_kind() == "triton" and sampling.top_p >= MIN_KERNEL_TOP_P:
            from judgeforge.backends.fastgen_sample import triton_sample

            return triton_sample(logits, seen, sampling, self.eos_id, self._generator())
        if sampling.top_p < 1.0:
            probs, idx = sorted_top_p(logits, seen, sampling, self.eos_id)
            return idx.gather(1, self._torch.multinomial(probs, 1, generator=self._generator()))[:, 0]
        logits = process_logits(logits, seen, sampling, self.eos_id)
        return self._torch.multinomial(logits.softmax(dim=-1), 1, generator=self._generator())[:, 0]
