#!/usr/bin/env python
"""Where the fast engine's time goes on the fixed workload, against what the card can do.

One process, Mistral-7B-v0.2's config with random bf16 weights (as ``eval_speed.py``):

* ceilings: bf16 GEMM TFLOP/s at the prefill's shapes (each projection, and q/k/v and gate/up
  fused), device-to-device copy bandwidth;
* prefill: tokens/s of :meth:`Runner.prefill` per chunk size (``--chunks``, tokens per pass),
  and one chunk under ``torch.profiler``, kernel time by kind (GEMM, attention, the rest);
* decode: ms per step of the captured graph at several slot counts, each slot at the fixed
  workload's mean position; one eager step under the profiler; the Triton attention kernel alone
  (GB/s of cache read) over block sizes, warps and stages; the sampler's ms per step;
* per engine variant (``--variants``: PyTorch or liger kernels, prefill GQA expanded or native, decode
  q/k/v separate or fused, the sampler sorting or the kernel), all of
  the above and the engine end to end on the fixed workload (``--items`` prompts of 1,200 tokens, 256 new,
  EOS ignored, the paper's sampling): seconds, prefill/decode split, the automatic slot count.

    source .carry/shared/device/setup.sh && python scripts/bench/engine_profile.py --out $OUT/prof
    python scripts/bench/engine_profile.py --smoke --out /tmp/prof      # CPU, tiny model: the script runs

Writes ``--out``/engine_profile.json (every number) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).parent))

from eval_speed import EOS, build_model, fixed_workload, log  # noqa: E402


def kind(name: str) -> str:
    n = name.lower()
    if any(k in n for k in ("gemm", "nvjet", "cutlass", "sm90_xmma", "cublas", "matmul")):
        return "gemm"
    if any(k in n for k in ("flash", "fmha", "attention", "decode_kernel", "cudnn")):
        return "attention"
    if any(k in n for k in ("copy", "index", "scatter", "gather", "cat")):
        return "copy/index"
    return "elementwise/other"


def profiled(fn, cuda: bool) -> dict:
    """Kernel (device) time by kind and the 12 largest kernels of one call of ``fn``."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        fn()
        if cuda:
            torch.cuda.synchronize()
    by_kind: dict[str, float] = {}
    rows = []
    for ev in prof.key_averages():
        us = getattr(ev, "device_time_total", 0.0) if cuda else 0.0
        if cuda and ev.device_type.name != "CUDA":
            continue
        if not cuda and ev.key.startswith("aten::"):
            us = ev.self_cpu_time_total
        if us <= 0:
            continue
        by_kind[kind(ev.key)] = by_kind.get(kind(ev.key), 0.0) + us / 1000
        rows.append((us / 1000, ev.count, ev.key[:120]))
    rows.sort(reverse=True)
    return {"ms_by_kind": {k: round(v, 2) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
            "ms_total": round(sum(by_kind.values()), 2),
            "top": [{"ms": round(a, 3), "calls": c, "kernel": k} for a, c, k in rows[:12]]}


def cuda_ms(fn, reps: int) -> float:
    import torch

    fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        fn()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) / reps


def ceilings(model, m: int) -> dict:
    import torch

    cfg = model.config
    h, f, kv = cfg.hidden_size, cfg.intermediate_size, cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads)
    shapes = {"q/o (h->h)": (h, h), "k/v (h->kv)": (h, kv), "gate/up (h->f)": (h, f), "down (f->h)": (f, h),
              "qkv fused": (h, h + 2 * kv), "gate+up fused": (h, 2 * f)}
    out = {}
    for name, (k, n) in shapes.items():
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        ms = cuda_ms(lambda x=x, w=w: torch.nn.functional.linear(x, w), 10)
        out[name] = {"m": m, "k": k, "n": n, "ms": round(ms, 3), "tflops": round(2 * m * k * n / ms / 1e9, 1)}
        del x, w
    buf = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(buf)
    ms = cuda_ms(lambda: dst.copy_(buf), 10)
    out["copy_GBps"] = round(2 * 2**30 / ms / 1e6, 1)  # read + write
    torch.cuda.empty_cache()
    return out


def flops_per_token(model, ctx: int) -> float:
    """Matmul FLOPs of one token at context ``ctx`` (projections, MLP, LM head not counted: prefill
    computes it for the last token only; attention scores and values at half the context, causal)."""
    cfg = model.config
    per_layer = sum(p.numel() for n, p in model.model.layers[0].named_parameters() if p.dim() == 2)
    attn = 2 * 2 * cfg.hidden_size * ctx / 2
    return cfg.num_hidden_layers * (2 * per_layer + attn)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny model, tiny sizes")
    ap.add_argument("--prompt", type=int, default=1200)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--items", type=int, default=256, help="prompts for the end-to-end engine run")
    ap.add_argument("--chunks", default="4096,8192,16384,32768", help="prefill tokens per pass to time")
    ap.add_argument("--rows", default="256,224,128,32", help="slot counts for the decode step timings")
    ap.add_argument("--variants", default="torch,auto",
                    help="engine variants, comma-separated KERNELS[/GQA[/FUSE[/SAMPLER]]]: kernels torch|liger|auto, "
                         "prefill GQA expand|native, decode q/k/v fused auto|none|qkv, sampler auto|torch|triton "
                         "(default: the engine's)")
    ap.add_argument("--skip-ceilings", action="store_true")
    ap.add_argument("--kernel-variants", action="store_true", help="also sweep the Triton decode kernel's launch settings")
    ap.add_argument("--end-to-end", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--loop-profile", action="store_true", help="profile a short generate call (gaps, sampler)")
    args = ap.parse_args(argv)

    import torch

    from judgeforge.backends import Sampling
    from judgeforge.backends.fastgen import FastGenerator

    cuda = torch.cuda.is_available() and not args.smoke
    dev = "cuda" if cuda else "cpu"
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    plen, new = (48, 8) if args.smoke else (args.prompt, args.new)
    res: dict = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
                 "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "prompt": plen, "new": new}

    def save():
        (out_dir / "engine_profile.json").write_text(json.dumps(res, indent=2))

    def section(name, fn, into=res, label=""):
        """``into[name] = fn()``, or the error it raised (the other sections still run); logged and saved."""
        t0 = time.time()
        try:
            into[name] = fn()
        except Exception as e:  # noqa: BLE001 - record, go on with the other sections
            into[name] = {"error": f"{type(e).__name__}: {str(e)[:400]}"}
        log(f"{label}{name} ({time.time() - t0:.1f} s): {json.dumps(into[name])[:600]}")
        save()

    model = build_model(args.smoke, dev)
    vocab = model.config.vocab_size
    rows_list = [int(r) for r in args.rows.split(",")] if not args.smoke else [8, 4]
    max_rows = max(rows_list)
    prompts = fixed_workload(max(args.items, 64), plen, vocab, seed=0)
    s = Sampling(temperature=1.0, top_p=0.9, max_new_tokens=new, repetition_penalty=1.03, seed=0, ignore_eos=True)
    if cuda and not args.skip_ceilings:
        section("ceilings", lambda: ceilings(model, 16384))

    def run_variant(variant: str) -> None:
        kernels, gqa, fuse, sampler = (variant.split("/") + ["", "", ""])[:4]
        eng = FastGenerator(model, pad_id=0, eos_id=EOS, batch_size=None, kernels=kernels, fuse=fuse or "auto",
                            sampler=sampler or "auto")
        R = eng.runner
        R.prefill_gqa = gqa or R.prefill_gqa
        R.fused.refresh()
        v = res.setdefault("variants", {}).setdefault(variant, {"kernels": R.ops.kind, "attention": R.attention,
                                                                 "prefill_gqa": R.prefill_gqa, "fused": R.fused.kind,
                                                                 "fused_gib": round(R.fused.bytes / 2**30, 2)})
        length = eng._bucketed(plen + new)
        if cuda:
            free, total = torch.cuda.mem_get_info()
            res["memory"] = {"free_gib": round(free / 2**30, 1), "total_gib": round(total / 2**30, 1),
                             "auto_slots_fixed": eng.auto_batch_size(plen + new), "bytes_per_token": R.bytes_per_token()}
        R.cache(max_rows, length)

        def sub(name, fn):
            section(name, fn, into=v, label=f"{variant} ")

        def prefill_rates(R=R):
            out = {}
            chunks = [int(c) for c in args.chunks.split(",")] if not args.smoke else [96, 192]
            for c in chunks:
                k = max(1, c // plen)
                def fn(k=k):
                    return R.prefill(prompts[:k], [[j] for j in range(k)])

                ms = cuda_ms(fn, 3) if cuda else _cpu_ms(fn)
                tok = k * plen
                out[str(c)] = {"prompts": k, "tokens": tok, "ms": round(ms, 1), "tokens_per_s": round(tok / ms * 1e3),
                               "tflops": round(tok * flops_per_token(model, plen) / ms / 1e9, 1)}
            return out

        def decode_rates(R=R, length=length):
            out = {}
            cur0 = plen + new // 2  # the fixed workload's mean position
            w_gb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e9
            for rows in rows_list:
                tok = torch.randint(3, vocab, (rows,), device=dev)
                cur = torch.full((rows,), cur0, dtype=torch.long, device=dev)
                def fn(t=tok, c=cur, r=rows):
                    return R.decode(t, c, r, length)

                ms = cuda_ms(fn, 20) if cuda else _cpu_ms(fn)
                kv_gb = rows * (cur0 + 1) * R.bytes_per_token() / 1e9
                out[str(rows)] = {"ms_per_step": round(ms, 2), "kv_read_gb": round(kv_gb, 1), "weights_gb": round(w_gb, 1),
                                  "GBps": round((kv_gb + w_gb) / ms * 1e3, 1)}
            return out

        with torch.no_grad():
            sub("prefill", prefill_rates)
            k = max(1, (eng.prefill_tokens if not args.smoke else 192) // plen)
            sub("prefill_profile", lambda R=R, k=k: {"prompts": k, **profiled(
                lambda: R.prefill(prompts[:k], [[j] for j in range(k)]), cuda)})
            sub("decode", decode_rates)
            tok = torch.randint(3, vocab, (max_rows,), device=dev)
            cur = torch.full((max_rows,), plen + new // 2, dtype=torch.long, device=dev)
            sub("decode_step_profile", lambda R=R, length=length: {"rows": max_rows, **profiled(
                lambda: R.step(tok, cur, max_rows, length), cuda)})
            if cuda and R.attention == "triton" and args.kernel_variants:
                sub("attention_kernel", lambda R=R: kernel_variants(R, max_rows, plen + new // 2))
            logits = torch.randn(max_rows, vocab, device=dev)
            seen = torch.zeros(max_rows, vocab, dtype=torch.bool, device=dev)
            eng._generator(0)
            def fn():
                return eng._next_token(logits, seen, s)

            def samplers(eng=eng):  # the reference (sort) and the kernel, whichever this variant decodes with
                chosen = eng.sampler
                from judgeforge.backends.fastgen import sampler_works

                out = {"rows": max_rows, "engine_uses": eng._sampler_kind(), "check": sampler_works(eng.device, vocab)}
                for kind in ("torch", "triton") if eng.sampler == "triton" else (eng.sampler,):
                    eng.sampler = kind
                    out[kind] = {"ms_per_step": round(cuda_ms(fn, 20) if cuda else _cpu_ms(fn), 3), **profiled(fn, cuda)}
                eng.sampler = chosen if chosen != "auto" else out["engine_uses"]
                return out

            sub("sampler", samplers)
            sub("refresh_fused", lambda R=R: {"gib": round(R.fused.bytes / 2**30, 2),
                                              "ms": round(cuda_ms(R.fused.refresh, 3) if cuda else _cpu_ms(R.fused.refresh), 2)})

        def end_to_end(eng=eng):
            eng.batch_size = eng.auto_batch_size(plen + new) if cuda else 8
            items = prompts[:args.items] if not args.smoke else prompts[:16]
            eng.generate(items[:8], s, 1)  # warm-up: graphs
            eng.timing = True
            eng.stats.update(prefill_seconds=0.0, decode_seconds=0.0, steps=0)
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.time()
            got = eng.generate(items, s, 1)
            if cuda:
                torch.cuda.synchronize()
            dt = time.time() - t0
            peak = round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None
            # the same decoding steps without the scheduler (graph replays and the sampler only): what the
            # scheduler's bookkeeping and host syncs cost
            rows = eng.batch_size
            tok = torch.randint(3, vocab, (rows,), device=dev)
            cur = torch.full((rows,), plen, dtype=torch.long, device=dev)
            seen = torch.zeros(rows, vocab, dtype=torch.bool, device=dev)
            if cuda:
                torch.cuda.synchronize()
            t1 = time.time()
            for i in range(new - 1):
                tok = eng._next_token(R.decode(tok, cur + i, rows, length), seen, s)
            if cuda:
                torch.cuda.synchronize()
            return {"items": len(items), "slots": rows, "seconds": round(dt, 2), "sampler": eng.sampler,
                    "items_per_s": round(len(items) / dt, 2), "new_tokens": sum(len(g[0]) for g in got),
                    "prefill_seconds": round(eng.stats["prefill_seconds"], 2),
                    "decode_seconds": round(eng.stats["decode_seconds"], 2), "steps": eng.stats["steps"],
                    "bare_decode_seconds": round(time.time() - t1, 2), "peak_gib": peak}

        R.kv = None
        R.drop_graphs()
        if cuda:
            torch.cuda.empty_cache()
        if args.end_to_end:
            sub("end_to_end", end_to_end)
        if args.loop_profile:  # the scheduler loop: device time against wall time (gaps), sampler kernels
            def loop():
                eng.batch_size = max_rows
                items = prompts[:max_rows]
                short = Sampling(temperature=1.0, top_p=0.9, max_new_tokens=32, repetition_penalty=1.03, seed=0,
                                 ignore_eos=True)
                eng.generate(items[:8], short, 1)
                eng.timing = False
                t0 = time.time()
                p = profiled(lambda: eng.generate(items, short, 1), cuda)
                return {"rows": max_rows, "new_tokens": 32, "wall_ms": round((time.time() - t0) * 1e3, 1), **p}
            sub("loop_profile", loop)
        R.kv = None
        R.drop_graphs()
        if cuda:
            torch.cuda.empty_cache()
    for variant in args.variants.split(","):
        run_variant(variant)
    print(json.dumps(res, indent=1)[:6000])
    return 0


def _cpu_ms(fn) -> float:
    fn()
    t0 = time.time()
    fn()
    return (time.time() - t0) * 1e3


def kernel_variants(R, rows: int, pos: int) -> dict:
    """The Triton decode kernel alone on one layer's cache, over launch parameters (GB/s of keys+values read)."""
    import torch

    from judgeforge.backends.fastgen_attn import _kernel

    kc, vc = R.kv[0][0], R.kv[1][0]
    q = torch.randn(rows, R.n_kv, R.groups, R.head_dim, device="cuda", dtype=R.dtype)
    cur = torch.full((rows,), pos, dtype=torch.long, device="cuda")
    o = torch.empty_like(q)
    gb = 2 * rows * R.n_kv * (pos + 1) * R.head_dim * R.dtype.itemsize / 1e9
    out = {"rows": rows, "position": pos, "gb_per_layer": round(gb, 3)}
    g_pad = max(16, 1 << (R.groups - 1).bit_length())
    for block in (32, 64, 128):
        for warps in (2, 4, 8):
            for stages in (1, 2, 3, 4):
                def fn(block=block, warps=warps, stages=stages):
                    _kernel()[(rows, R.n_kv)](
                        q, kc, vc, o, cur, R.scale * 1.4426950408889634,
                        q.stride(0), q.stride(1), q.stride(2), kc.stride(0), kc.stride(1), kc.stride(2),
                        vc.stride(0), vc.stride(1), vc.stride(2), o.stride(0), o.stride(1), o.stride(2),
                        GROUPS=R.groups, G_PAD=g_pad, D=R.head_dim, BLOCK=block, num_warps=warps,
                        num_stages=stages, PREC="tf32")
                try:
                    ms = cuda_ms(fn, 10)
                    out[f"b{block}_w{warps}_s{stages}"] = {"ms": round(ms, 3), "GBps": round(gb / ms * 1e3, 1)}
                except Exception as e:  # noqa: BLE001 - a configuration this GPU cannot run
                    out[f"b{block}_w{warps}_s{stages}"] = {"error": f"{type(e).__name__}"}
    best = min((v["ms"], k) for k, v in out.items() if isinstance(v, dict) and "ms" in v)
    out["best"] = best[1]
    return out


if __name__ == "__main__":
    sys.exit(main())
