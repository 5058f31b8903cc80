#!/usr/bin/env python
"""Judge inference speed on two workloads: the fast engine (continuous batching) against its baselines.

One process, one model, the same prompts for every path:

* a 7B judge with random weights (Mistral-7B-v0.2's config), created on the GPU in bf16;
* ``fixed``: prompts of 1,200 random tokens, exactly 256 new tokens (EOS ignored), one sample
  per prompt, the paper's sampling;
* ``paper``: the paper's protocol: 3 samples per absolute item, up to 1,024 new tokens,
  temperature 1.0 / top-p 0.9 / repetition penalty 1.03, and samples that stop at EOS at
  lengths drawn with their prompt lengths from the real profile
  (``train_length_profile.json``, absolute mode: GPT-4 feedbacks, ~135 tokens), plus a
  ``--long-tail`` fraction of samples that never stop (1,024 tokens).  A random model never
  stops by itself, so every path gets EOS forced at the drawn step (a bench-only hook);
* paths: ``model.generate`` (left-padded batches), transformers' continuous-batching
  manager (what ``generate_batch`` runs; paper workload, per-request stop lengths), the
  static engine as it was (``static_engine.py``), and the current engine
  (``judgeforge.backends.fastgen``, slots chosen from free memory unless ``--batch-size``);
  each engine is warmed up (graph capture) on a few prompts first, then timed;
* a greedy spot-check of the engine against ``model.generate`` token by token (bf16, fp32);
* with ``--judge DIR``: ``judgeforge eval --suite vicuna,mt_bench,hhh,autoj`` end to end on
  that judge folder (``--e2e-limit`` items per benchmark, no retries), timed.

    # one H200, ~7 min (the judge folder only feeds the end-to-end run):
    source .carry/shared/device/setup.sh
    python scripts/gpu/make_judge.py --out /tmp/j7b --tokenizer .carry/tok-mistral-v1
    python scripts/bench/eval_speed.py --judge /tmp/j7b --data-dir .carry/shared/data/prometheus-eval --out $OUT/eval_speed
    python scripts/bench/eval_speed.py --smoke --out /tmp/eval_speed                           # CPU, tiny model

Prints a summary table; writes every number to ``--out``/eval_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
PROFILE = Path(__file__).with_name("train_length_profile.json")
EOS = 2


def log(msg: str) -> None:
    print(f"[eval_speed {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def build_model(smoke: bool, device: str):
    import torch
    from transformers import AutoModelForCausalLM, MistralConfig

    from judgeforge.tiny import MISTRAL_7B_V02, tiny_config

    torch.manual_seed(0)
    if smoke:
        cfg = tiny_config(hidden=64, layers=2, heads=4, kv_heads=2)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).to(device).eval()
        with torch.no_grad():  # larger weights: greedy output varies with the context (a real spot-check)
            for p in model.parameters():
                if p.dim() == 2:
                    p.normal_(0, 0.3)
        return model
    with torch.device(device):  # allocate and initialise on the GPU directly
        model = AutoModelForCausalLM.from_config(MistralConfig(**MISTRAL_7B_V02), dtype=torch.bfloat16)
    return model.eval()


def fixed_workload(k: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    import random

    rng = random.Random(seed)
    return [[1] + [rng.randrange(3, vocab) for _ in range(length - 1)] for _ in range(k)]


def paper_workload(k: int, n: int, max_new: int, long_tail: float, vocab: int, seed: int, scale: float = 1.0):
    """Prompts and per-sample stop lengths drawn from the absolute-mode profile (row = prompt + output)."""
    import random

    prof = json.loads(PROFILE.read_text())
    width = prof["bin_width"]
    hist = prof["modes"]["absolute"]["hist"]
    rng = random.Random(seed)
    prompts, stops = [], []
    for _ in range(k):
        row_b, out_b, _c = rng.choices(hist, weights=[h[2] for h in hist])[0]
        out0 = out_b * width + rng.randrange(width)
        plen = max(16, int((row_b * width + rng.randrange(width) - out0) * scale))
        prompts.append([1] + [rng.randrange(3, vocab) for _ in range(plen - 1)])
        per = []
        for _s in range(n):  # each sample its own length: another feedback from the same bin region
            _r, ob, _c = rng.choices(hist, weights=[h[2] for h in hist])[0]
            m = max(1, int((ob * width + rng.randrange(width)) * scale))
            per.append(max_new if rng.random() < long_tail else min(m, max_new))
        stops.append(per)
    return prompts, stops


def free_gpu():
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def generate_forced(model, prompts, stops, sampling, n, batch):
    """``model.generate`` on left-padded batches of ``batch // n`` prompts, EOS forced at the drawn steps."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    from judgeforge.backends.plain import generation_kwargs, left_pad, trim

    class ForceStop(LogitsProcessor):
        def __init__(self, at, width):
            self.at, self.width = at, width

        def __call__(self, input_ids, scores):
            hit = self.at == (input_ids.shape[1] - self.width)
            if bool(hit.any()):
                scores[hit] = -float("inf")
                scores[hit, EOS] = 0.0
            return scores

    out = []
    per = max(1, batch // n)
    kw = generation_kwargs(sampling, n, 0, EOS)
    for a in range(0, len(prompts), per):
        ids, mask = left_pad(prompts[a:a + per], 0, model.device)
        at = torch.tensor([s for st in stops[a:a + per] for s in st], device=model.device)
        with torch.inference_mode():
            gen = model.generate(input_ids=ids, attention_mask=mask,
                                 logits_processor=LogitsProcessorList([ForceStop(at, ids.shape[1])]), **kw)
        new = gen[:, ids.shape[1]:].tolist()
        out += [[trim(new[r * n + k], EOS, 0) for k in range(n)] for r in range(len(new) // n)]
    return out


def continuous_batching(model, prompts, stops, sampling, n):
    """transformers' continuous-batching manager (what ``generate_batch`` runs), one request per sample,
    each with its drawn stop length as its ``max_new_tokens``."""
    from transformers import GenerationConfig

    gc = GenerationConfig(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0,
                          repetition_penalty=sampling.repetition_penalty, max_new_tokens=sampling.max_new_tokens,
                          eos_token_id=EOS, pad_token_id=0)
    want = {f"r{i}_{k}": len(p) for i, p in enumerate(prompts) for k in range(n)}
    got = {}
    with model.continuous_batching_context_manager(generation_config=gc, block=True, timeout=10) as manager:
        for i, p in enumerate(prompts):
            for k in range(n):
                manager.add_request(list(p), request_id=f"r{i}_{k}", max_new_tokens=max(1, stops[i][k]))
        idle = time.time()
        while len(got) < len(want):
            r = manager.get_result(timeout=1)
            if r is not None and r.is_finished():
                got[r.request_id] = r
                idle = time.time()
            elif r is None and (not manager.is_running() or time.time() - idle > 120):
                raise RuntimeError(f"continuous batching stopped with {len(got)}/{len(want)} requests done")
    return [[list(got[f"r{i}_{k}"].generated_tokens) for k in range(n)] for i in range(len(prompts))]


def kernel_check(model) -> dict:
    """The engine's decode attention (``fastgen_attn``) against its reference on random caches:
    several row counts, lengths and positions, the model's head layout and dtype."""
    import torch

    from judgeforge.backends.fastgen_attn import sdpa_decode, triton_available, triton_decode

    if not triton_available(next(model.parameters()).device):
        return {"ok": False, "skipped": "no triton"}
    cfg = model.config
    n_kv = cfg.num_key_value_heads
    groups = cfg.num_attention_heads // n_kv
    d = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    g = torch.Generator(device="cuda").manual_seed(0)
    rows_out = []
    worst = 0.0
    for dtype in (torch.bfloat16, torch.float32):
        for rows, length in ((1, 64), (7, 300), (64, 1500), (130, 3584)):
            k = torch.randn(rows + 3, n_kv, length, d, device="cuda", dtype=dtype, generator=g)
            v = torch.randn(rows + 3, n_kv, length, d, device="cuda", dtype=dtype, generator=g)
            q = torch.randn(rows, n_kv, groups, d, device="cuda", dtype=dtype, generator=g)
            cur = torch.randint(0, length, (rows,), device="cuda", generator=g)
            cur[0] = length - 1
            ref = sdpa_decode(q, k, v, cur, length, d ** -0.5).float()
            got = triton_decode(q, k, v, cur, d ** -0.5).float()
            err = (got - ref).abs().max().item()
            tol = 2e-2 if dtype == torch.bfloat16 else 1e-4
            worst = max(worst, err / tol)
            rows_out.append({"dtype": str(dtype).split(".")[-1], "rows": rows, "length": length,
                             "max_abs_error": err, "tolerance": tol})
    res = {"ok": worst <= 1.0, "cases": rows_out}
    log(f"kernel check: {'ok' if res['ok'] else 'FAILED'}; max errors "
        f"{[round(r['max_abs_error'], 5) for r in rows_out]}")
    return res


def spot_check(model, prompts, new_tokens: int, label: str, attention: str = "auto") -> dict:
    from judgeforge.backends import Sampling
    from judgeforge.backends.fastgen import FastGenerator
    from judgeforge.backends.plain import plain_generate

    s = Sampling.greedy(new_tokens)
    ref = plain_generate(model, prompts, s, 1, batch_size=len(prompts), pad_id=0, eos_id=EOS)
    fast = FastGenerator(model, pad_id=0, eos_id=EOS, batch_size=max(2, len(prompts) // 2),  # refills too
                         attention=attention)
    got = fast.generate(prompts, s, 1)
    rows = []
    for r, g in zip(ref, got):
        a, b = r[0], g[0]
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
        if first is None and len(a) != len(b):
            first = min(len(a), len(b))
        rows.append({"identical": a == b, "first_difference": first, "tokens": len(a)})
    res = {"label": label, "attention": fast.runner.attention if fast.runner else None,
           "kernels": fast.runner.ops.kind if fast.runner else None,
           "fused": fast.runner.fused.kind if fast.runner else None, "prompts": len(prompts), "identical": sum(r["identical"] for r in rows), "rows": rows}
    log(f"spot-check {label}, {res['attention']} attention, {res['kernels']} kernels: {res['identical']}/{len(rows)} prompts token-identical "
        f"(first differences: {[r['first_difference'] for r in rows]})")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny model, tiny sizes (checks the script runs)")
    ap.add_argument("--out", required=True, help="folder for eval_speed.json")
    ap.add_argument("--workload", choices=("fixed", "paper", "both"), default="both")
    ap.add_argument("--items", type=int, default=None, help="fixed: items timed on the engines (default 512)")
    ap.add_argument("--baseline-items", type=int, default=None, help="fixed: items timed on generate (128)")
    ap.add_argument("--paper-items", type=int, default=None, help="paper: items timed on the engines (128)")
    ap.add_argument("--paper-generate-items", type=int, default=None, help="paper: items on generate (21)")
    ap.add_argument("--paper-cb-items", type=int, default=None, help="paper: items on continuous batching (64)")
    ap.add_argument("--long-tail", type=float, default=0.01, help="paper: fraction of samples that run to 1,024")
    ap.add_argument("--baseline-batch", type=int, default=64, help="generate: sequences per batch")
    ap.add_argument("--batch-size", type=int, default=None, help="engine slots (default: from free memory)")
    ap.add_argument("--no-graphs", action="store_true", help="engines without CUDA graphs (eager decode)")
    ap.add_argument("--spot-checks-only", action="store_true",
                    help="only the greedy spot-checks, each with both attentions, in the model dtype and float32")
    ap.add_argument("--no-sdpa-phase", action="store_true", help="skip the engine with its reference attention")
    ap.add_argument("--phases", type=lambda v: [p for p in v.split(",") if p], default=None,
                    help="only these phases (names as in eval_speed.json, e.g. paper/engine,paper/continuous_batching,"
                         "spot_check; a workload name takes all its phases); default: all")
    ap.add_argument("--time-budget", type=float, default=400.0, help="seconds; later phases are skipped past it")
    ap.add_argument("--judge", default=None, help="judge folder for the end-to-end 'judgeforge eval' run")
    ap.add_argument("--data-dir", default=None, help="benchmark files for the end-to-end run")
    ap.add_argument("--e2e-limit", type=int, default=16, help="items per benchmark in the end-to-end run")
    ap.add_argument("--e2e-timeout", type=float, default=150.0, help="seconds for the end-to-end run")
    ap.add_argument("--e2e-max-new", type=int, default=None, help="end-to-end max new tokens (default: paper's)")
    args = ap.parse_args(argv)

    import torch
    import transformers
    from static_engine import StaticGenerator

    from judgeforge.backends import Sampling
    from judgeforge.backends.fastgen import FastGenerator
    from judgeforge.backends.plain import plain_generate

    t_start = time.time()
    smoke = args.smoke
    device = "cuda" if torch.cuda.is_available() and not smoke else "cpu"

    def sz(v, big, small):
        return v or (small if smoke else big)

    items, base_items = sz(args.items, 512, 8), sz(args.baseline_items, 128, 4)
    p_items, p_gen, p_cb = sz(args.paper_items, 128, 6), sz(args.paper_generate_items, 21, 2), sz(args.paper_cb_items, 64, 4)
    plen, new = (64, 8) if smoke else (1200, 256)
    p_max = 24 if smoke else 1024
    base_batch = 4 if smoke else args.baseline_batch
    graphs = False if args.no_graphs else None
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    res: dict = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "transformers": transformers.__version__, "smoke": smoke,
        "model": "tiny (hidden 64, 2 layers)" if smoke else "Mistral-7B-v0.2 config, random weights, bf16",
        "phases": {}, "spot_checks": []}

    def over_budget(phase: str) -> bool:
        if args.phases and not any(phase == p or phase.startswith(p + "/") for p in args.phases):
            res["phases"][phase] = {"skipped": "not in --phases"}
            return True
        if time.time() - t_start > args.time_budget:
            log(f"skipping {phase}: past the time budget of {args.time_budget:.0f} s")
            res["phases"][phase] = {"skipped": "time budget"}
            return True
        return False

    def save():
        res["total_seconds"] = round(time.time() - t_start, 1)
        (out_dir / "eval_speed.json").write_text(json.dumps(res, indent=2))

    def timed(phase, fn, n_items, tokens, warm=None, engine=None, **extra):
        """Warm up (untimed), then time ``fn``; record items/s, new tokens/s, engine stats."""
        if over_budget(phase):
            return None
        try:
            w = 0.0
            if warm is not None:
                t0 = time.time()
                warm()
                sync()
                w = time.time() - t0
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            if engine is not None:
                engine.timing = True
                engine.stats.update(prefill_seconds=0.0, decode_seconds=0.0)
            t0 = time.time()
            toks = fn()
            sync()
            dt = time.time() - t0
            made = sum(len(t) for per in toks for t in per)
            r = {"items": n_items, "seconds": round(dt, 2), "items_per_s": round(n_items / dt, 3),
                 "new_tokens": made, "new_tokens_per_s": round(made / dt, 1), "warmup_seconds": round(w, 1),
                 **extra}
            if tokens is not None and made != tokens:
                r["token_mismatch"] = f"expected {tokens} new tokens, got {made}"
            if device == "cuda":
                r["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
            if engine is not None:
                r.update({k: (round(v, 2) if isinstance(v, float) else v) for k, v in engine.stats.items()})
                r["slots"] = engine.batch_size
                ops = getattr(getattr(engine, "runner", None), "ops", None)
                if ops is not None:
                    r["kernels"] = ops.kind  # liger's fused norms/RoPE/SwiGLU or PyTorch's
                    r["fused"] = engine.runner.fused.kind  # the decode q/k/v projections fused
            res["phases"][phase] = r
            log(f"{phase}: {r['items_per_s']} items/s ({dt:.1f} s{f', warm-up {w:.1f} s' if warm else ''})")
        except Exception as e:  # noqa: BLE001 - record and go on: the other phases still count
            res["phases"][phase] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
            log(f"{phase} failed: {type(e).__name__}: {e}")
        if device == "cuda":
            torch.cuda.empty_cache()
        save()
        return res["phases"].get(phase)

    def engine(cls, length, **kw):
        e = cls(model, pad_id=0, eos_id=EOS, batch_size=args.batch_size, cuda_graphs=graphs, **kw)
        e.batch_size = e.batch_size or e.auto_batch_size(length)  # the automatic choice, recorded
        return e

    log(f"building the model on {device} ...")
    t0 = time.time()
    model = build_model(smoke, device)
    sync()
    res["model_build_seconds"] = round(time.time() - t0, 1)
    vocab = model.config.vocab_size
    save()
    if device == "cuda":
        res["kernel_check"] = kernel_check(model)
        save()
    if args.spot_checks_only:
        spot = fixed_workload(4, 48 if smoke else 512, vocab, seed=2)
        spot = [p[: len(p) - 7 * i] for i, p in enumerate(spot)]
        for label in (f"model dtype ({model.dtype})", "float32"):
            if label == "float32":
                model = model.float()
            for attention in ("auto", "sdpa"):
                res["spot_checks"].append(spot_check(model, spot, 12 if smoke else 64, label, attention))
                save()
        return 0
    sdpa_too = not args.no_sdpa_phase and res.get("kernel_check", {}).get("ok")

    if args.workload in ("fixed", "both"):
        prompts = fixed_workload(max(items, base_items), plen, vocab, seed=0)
        s = Sampling(temperature=1.0, top_p=0.9, max_new_tokens=new, repetition_penalty=1.03, seed=0, ignore_eos=True)
        res["fixed"] = {"prompt_tokens": plen, "new_tokens": new, "n": 1, "sampling": "paper's, EOS ignored"}
        log(f"fixed workload: {plen} + {new} tokens, n=1")
        timed("fixed/generate", lambda: plain_generate(model, prompts[:base_items], s, 1, batch_size=base_batch,
                                                         pad_id=0, eos_id=EOS), base_items, base_items * new,
              warm=lambda: plain_generate(model, prompts[:2], s, 1, batch_size=2, pad_id=0, eos_id=EOS),
              batch=base_batch)
        fixed_phases = [("fixed/static_engine", StaticGenerator, {}), ("fixed/engine", FastGenerator, {})]
        if sdpa_too:  # the reference attention in the same engine, same run
            fixed_phases.append(("fixed/engine_sdpa", FastGenerator, {"attention": "sdpa"}))
        for name, cls, kw in fixed_phases:
            e = engine(cls, plen + new, **kw)
            timed(name, lambda e=e: e.generate(prompts[:items], s, 1), items, items * new, engine=e,
                  warm=lambda e=e: e.generate(prompts[:e.batch_size], s, 1))
            del e
            free_gpu()  # the next engine's automatic slot count sees this one's memory as free

    if args.workload in ("paper", "both"):
        n = 3
        k = max(p_items, p_gen, p_cb)
        prompts, stops = paper_workload(k, n, p_max, args.long_tail, vocab, seed=1, scale=0.05 if smoke else 1.0)
        s = Sampling(temperature=1.0, top_p=0.9, max_new_tokens=p_max, repetition_penalty=1.03, seed=0)
        flat = [m for st in stops[:p_items] for m in st]
        res["paper"] = {"n": n, "max_new_tokens": p_max, "long_tail": args.long_tail,
                        "prompt_tokens_mean": round(sum(map(len, prompts[:p_items])) / p_items, 1),
                        "prompt_tokens_max": max(map(len, prompts[:p_items])),
                        "output_tokens_mean": round(sum(flat) / len(flat), 1),
                        "samples_at_max": sum(m >= p_max for m in flat)}
        log(f"paper workload: {res['paper']}")
        want = lambda m: sum(x for st in stops[:m] for x in st)  # noqa: E731 - new tokens expected
        longest = max(map(len, prompts)) + p_max
        warm_p, warm_s = prompts[-8:], [[min(x, 16) for x in st] for st in stops[-8:]]
        paper_phases = [("paper/engine", FastGenerator, {}), ("paper/static_engine", StaticGenerator, {})]
        if sdpa_too:
            paper_phases.insert(1, ("paper/engine_sdpa", FastGenerator, {"attention": "sdpa"}))
        for name, cls, kw in paper_phases:
            e = engine(cls, longest, **kw)
            timed(name, lambda e=e: e.generate(prompts[:p_items], s, n, stop_at=stops[:p_items]), p_items,
                  want(p_items), engine=e, warm=lambda e=e: e.generate(warm_p, s, n, stop_at=warm_s))
            del e
            free_gpu()  # the next engine's automatic slot count sees this one's memory as free
        timed("paper/generate", lambda: generate_forced(model, prompts[:p_gen], stops[:p_gen], s, n, base_batch),
              p_gen, want(p_gen), batch=base_batch)

    spot = fixed_workload(4, 48 if smoke else 512, vocab, seed=2)
    spot = [p[: len(p) - 7 * i] for i, p in enumerate(spot)]  # different lengths
    if not over_budget("spot_check"):
        try:
            res["spot_checks"].append(spot_check(model, spot, 12 if smoke else 64, f"model dtype ({model.dtype})"))
        except Exception as e:  # noqa: BLE001
            res["spot_checks"].append({"label": "model dtype", "error": f"{type(e).__name__}: {e}"})
        save()

    if args.workload in ("paper", "both"):  # last on the bf16 model: the manager may swap the attention
        timed("paper/continuous_batching", lambda: continuous_batching(model, prompts[:p_cb], stops[:p_cb], s, n),
              p_cb, None, warm=lambda: continuous_batching(model, warm_p[:2], warm_s[:2], s, n))

    if not over_budget("spot_check_fp32"):
        try:
            model = model.float()
            res["spot_checks"].append(spot_check(model, spot, 12 if smoke else 64, "float32"))
        except Exception as e:  # noqa: BLE001
            res["spot_checks"].append({"label": "float32", "error": f"{type(e).__name__}: {e}"})
        save()
    model = None  # free the GPU for the end-to-end run
    free_gpu()

    if args.judge and not over_budget("eval_end_to_end"):
        cmd = [sys.executable, "-m", "judgeforge", "eval", "--judge", args.judge,
               "--suite", "vicuna,mt_bench,hhh,autoj", "--limit", str(args.e2e_limit), "--retries", "0",
               "--out", str(out_dir / "e2e"), "--bootstrap", "0", "--no-progress"]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir, "--no-fetch"]
        if args.e2e_max_new:
            cmd += ["--max-new-tokens", str(args.e2e_max_new)]
        log(f"end to end: {' '.join(cmd)}")
        t0 = time.time()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.e2e_timeout)
            r = {"rc": p.returncode, "stdout_tail": p.stdout[-1500:], "stderr_tail": p.stderr[-1500:]}
        except subprocess.TimeoutExpired:
            r = {"rc": "timeout", "error": f"over {args.e2e_timeout} s"}
        r.update(command=" ".join(cmd), seconds=round(time.time() - t0, 1))
        res["phases"]["eval_end_to_end"] = r
        log(f"end to end: rc {r['rc']} in {r['seconds']} s")
        save()

    # ---------------------------------------------------------------- summary
    ph = res["phases"]

    def ips(name):
        return ph.get(name, {}).get("items_per_s")

    for wl in ("fixed", "paper"):
        new_e, static_e, sdpa_e = ips(f"{wl}/engine"), ips(f"{wl}/static_engine"), ips(f"{wl}/engine_sdpa")
        if new_e and static_e:
            res[f"{wl}_speedup_over_static"] = round(new_e / static_e, 2)
        if new_e and sdpa_e:
            res[f"{wl}_speedup_over_sdpa_attention"] = round(new_e / sdpa_e, 2)
    save()
    print()
    print(f"eval_speed on {res['device']} ({res['model']})")
    print(f"{'phase':<28}{'items':>6}{'slots':>6}{'seconds':>9}{'items/s':>9}{'tok/s':>9}  notes")
    for name, r in ph.items():
        if "items_per_s" in r:
            note = (f"warm-up {r['warmup_seconds']} s; prefill {r['prefill_seconds']} s, decode "
                    f"{r['decode_seconds']} s; {r.get('graph_captures', 0)} graphs {r.get('capture_seconds', 0)} s"
                    if "prefill_seconds" in r else f"warm-up {r['warmup_seconds']} s")
            if r.get("peak_memory_gib"):
                note += f"; peak {r['peak_memory_gib']} GiB"
            if r.get("token_mismatch"):
                note += f"; {r['token_mismatch']}"
            print(f"{name:<28}{r['items']:>6}{r.get('slots', r.get('batch', '')):>6}{r['seconds']:>9}"
                  f"{r['items_per_s']:>9}{r['new_tokens_per_s']:>9}  {note}")
        elif name == "eval_end_to_end" and "seconds" in r:
            print(f"{name:<28}{'':>21}{r['seconds']:>9}  rc {r['rc']}")
        else:
            print(f"{name:<28}  {r.get('error') or r.get('skipped')}")
    for wl in ("fixed", "paper"):
        if f"{wl}_speedup_over_static" in res:
            print(f"{wl}: engine / static engine = {res[f'{wl}_speedup_over_static']}x")
        if f"{wl}_speedup_over_sdpa_attention" in res:
            print(f"{wl}: engine / engine with sdpa attention = {res[f'{wl}_speedup_over_sdpa_attention']}x")
    for sc in res["spot_checks"]:
        print(f"greedy spot-check {sc['label']} ({sc.get('attention')} attention): " + (f"error {sc['error']}" if "error" in sc else
                                                       f"{sc['identical']}/{sc['prompts']} prompts token-identical"))
    print(f"total {res['total_seconds']} s; results: {out_dir / 'eval_speed.json'}")
    return 0 if all(ips(f"{wl}/engine") for wl in ("fixed", "paper") if args.workload in (wl, "both")) else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
