#!/usr/bin/env python
"""Judge inference speed: plain ``model.generate`` (baseline) vs judgeforge's hf backend (fast engine).

One run, one process, the same prompts for both paths:

* a 7B judge with random weights (Mistral-7B-v0.2's config), created on the GPU in bf16;
* prompts of ``--prompt-len`` random tokens (1,200), feedback fixed at ``--new-tokens``
  (256) new tokens (EOS ignored), the paper's sampling (temperature 1.0, top-p 0.9,
  repetition penalty 1.03);
* baseline: ``model.generate`` on left-padded batches of ``--baseline-batch`` (64);
* fast: ``judgeforge.backends.fastgen.FastGenerator`` (the hf backend's default engine),
  batch size from free GPU memory unless ``--batch-size``; its warm-up (first batch incl.
  CUDA-graph capture) is timed separately;
* a greedy spot-check: both paths on a few prompts, token by token (bf16, then fp32 when
  time allows).

    python scripts/bench/eval_speed.py --out $OUT/eval_speed            # GPU, ~4-6 min on an H100
    python scripts/bench/eval_speed.py --smoke --out /tmp/eval_speed    # CPU, tiny model, ~1 min

Prints a summary table; writes every number to ``--out``/eval_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _import_eval_package() -> None:
    """Make ``judgeforge.eval`` importable from this checkout even where judgeforge is not
    pip-installed (``eval/`` maps to ``judgeforge.eval`` only through pyproject's package-dir)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        import judgeforge.eval  # noqa: F401

        return
    except ImportError:
        pass
    import importlib.util

    import judgeforge

    spec = importlib.util.spec_from_file_location("judgeforge.eval", ROOT / "eval" / "__init__.py",
                                                  submodule_search_locations=[str(ROOT / "eval")])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["judgeforge.eval"] = mod
    spec.loader.exec_module(mod)
    judgeforge.eval = mod


_import_eval_package()


def log(msg: str) -> None:
    print(f"[eval_speed {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def build_model(smoke: bool, device: str):
    import torch
    from transformers import AutoModelForCausalLM, MistralConfig

    from judgeforge.tiny import MISTRAL_7B_V02, tiny_config

    if smoke:
        cfg = tiny_config(hidden=64, layers=2, heads=4, kv_heads=2)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).to(device).eval()
        with torch.no_grad():  # larger weights: greedy output varies with the context (a real spot-check)
            for p in model.parameters():
                if p.dim() == 2:
                    p.normal_(0, 0.3)
        return model
    cfg = MistralConfig(**MISTRAL_7B_V02)
    torch.manual_seed(0)
    with torch.device(device):  # allocate and initialise on the GPU directly
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    return model.eval()


def make_prompts(k: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    import random

    rng = random.Random(seed)
    return [[rng.randrange(3, vocab) for _ in range(length)] for _ in range(k)]


def sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def spot_check(model, prompts, new_tokens: int, label: str) -> dict:
    from judgeforge.backends import Sampling
    from judgeforge.backends.fastgen import FastGenerator
    from judgeforge.backends.plain import plain_generate

    s = Sampling.greedy(new_tokens)
    ref = plain_generate(model, prompts, s, 1, batch_size=len(prompts), pad_id=0, eos_id=2)
    fast = FastGenerator(model, pad_id=0, eos_id=2, batch_size=len(prompts))
    got = fast.generate(prompts, s, 1)
    rows = []
    for r, g in zip(ref, got):
        a, b = r[0], g[0]
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
        if first is None and len(a) != len(b):
            first = min(len(a), len(b))
        rows.append({"identical": a == b, "first_difference": first, "tokens": len(a)})
    res = {"label": label, "prompts": len(prompts), "identical": sum(r["identical"] for r in rows), "rows": rows}
    log(f"spot-check {label}: {res['identical']}/{len(rows)} prompts token-identical "
        f"(first differences: {[r['first_difference'] for r in rows]})")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny model, tiny sizes (checks the script runs)")
    ap.add_argument("--out", required=True, help="folder for eval_speed.json")
    ap.add_argument("--items", type=int, default=None, help="items timed on the fast path (default 512; smoke 8)")
    ap.add_argument("--baseline-items", type=int, default=None, help="items timed on generate (default 128)")
    ap.add_argument("--baseline-batch", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=None, help="fast path batch (default: from free memory)")
    ap.add_argument("--prompt-len", type=int, default=None, help="prompt tokens (default 1200; smoke 64)")
    ap.add_argument("--new-tokens", type=int, default=None, help="new tokens per item (default 256; smoke 8)")
    ap.add_argument("--no-graphs", action="store_true", help="fast path without CUDA graphs (eager decode)")
    ap.add_argument("--time-budget", type=float, default=480.0, help="seconds; later phases are skipped past it")
    ap.add_argument("--spot-prompts", type=int, default=4)
    args = ap.parse_args(argv)

    import torch
    import transformers

    from judgeforge.backends import Sampling
    from judgeforge.backends.fastgen import FastGenerator
    from judgeforge.backends.plain import plain_generate

    t_start = time.time()
    smoke = args.smoke
    device = "cuda" if torch.cuda.is_available() and not smoke else "cpu"
    items = args.items or (8 if smoke else 512)
    base_items = args.baseline_items or (8 if smoke else 128)
    plen = args.prompt_len or (64 if smoke else 1200)
    new = args.new_tokens or (8 if smoke else 256)
    base_batch = 4 if smoke and args.baseline_batch == 64 else args.baseline_batch
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    res: dict = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "transformers": transformers.__version__, "smoke": smoke,
        "model": "tiny (hidden 64, 2 layers)" if smoke else "Mistral-7B-v0.2 config, random weights, bf16",
        "prompt_tokens": plen, "new_tokens": new, "sampling": "temperature 1.0, top_p 0.9, repetition 1.03, EOS ignored",
        "phases": {},
    }

    def over_budget(phase: str) -> bool:
        if time.time() - t_start > args.time_budget:
            log(f"skipping {phase}: past the time budget of {args.time_budget:.0f} s")
            res["phases"][phase] = {"skipped": "time budget"}
            return True
        return False

    def save():
        res["total_seconds"] = round(time.time() - t_start, 1)
        (out_dir / "eval_speed.json").write_text(json.dumps(res, indent=2))

    log(f"building the model on {device} ...")
    t0 = time.time()
    model = build_model(smoke, device)
    sync()
    res["model_build_seconds"] = round(time.time() - t0, 1)
    vocab = model.config.vocab_size
    prompts = make_prompts(max(items, base_items), plen, vocab, seed=0)
    sampling = Sampling(temperature=1.0, top_p=0.9, max_new_tokens=new, repetition_penalty=1.03, seed=0,
                        ignore_eos=True)
    save()

    # ---------------------------------------------------------------- baseline
    try:
        if not over_budget("baseline_generate"):
            log(f"baseline: model.generate, {base_items} items in batches of {base_batch} ...")
            plain_generate(model, prompts[:2], Sampling(max_new_tokens=2, ignore_eos=True), 1, batch_size=2,
                           pad_id=0, eos_id=2)  # kernel warm-up
            sync()
            t0 = time.time()
            toks = plain_generate(model, prompts[:base_items], sampling, 1, batch_size=base_batch, pad_id=0, eos_id=2)
            sync()
            dt = time.time() - t0
            assert all(len(t[0]) == new for t in toks), "baseline did not generate the fixed number of tokens"
            res["phases"]["baseline_generate"] = {
                "items": base_items, "batch": base_batch, "seconds": round(dt, 2),
                "items_per_s": round(base_items / dt, 3), "new_tokens_per_s": round(base_items * new / dt, 1)}
            log(f"baseline: {base_items / dt:.2f} items/s")
    except Exception as e:  # noqa: BLE001 - record and go on: the other phase still counts
        res["phases"]["baseline_generate"] = {"error": f"{type(e).__name__}: {e}"}
        log(f"baseline failed: {e}")
    if device == "cuda":
        torch.cuda.empty_cache()
    save()

    # ---------------------------------------------------------------- fast engine
    try:
        if not over_budget("hf_fast"):
            fast = FastGenerator(model, pad_id=0, eos_id=2, batch_size=args.batch_size,
                                 cuda_graphs=False if args.no_graphs else None)
            if fast.reason:
                raise RuntimeError(f"fast engine unsupported: {fast.reason}")
            bsz = fast.batch_size or fast.auto_batch_size(plen + new)
            fast.batch_size = bsz
            log(f"fast: batch {bsz}, CUDA graphs {'on' if fast.use_graphs else 'off'}; warm-up batch ...")
            t0 = time.time()
            fast.generate(prompts[:bsz], sampling, 1)
            sync()
            warm = time.time() - t0
            log(f"fast: warm-up {warm:.1f} s (graph capture {fast.stats['capture_seconds']:.1f} s)")
            if not over_budget("hf_fast"):
                log(f"fast: {items} items ...")
                fast.timing = True  # one sync per batch: prefill / decode split
                fast.stats.update(prefill_seconds=0.0, decode_seconds=0.0)
                t0 = time.time()
                toks = fast.generate(prompts[:items], sampling, 1)
                sync()
                dt = time.time() - t0
                assert all(len(t[0]) == new for t in toks), "fast path did not generate the fixed number of tokens"
                res["phases"]["hf_fast"] = {
                    "items": items, "batch": bsz, "cuda_graphs": fast.use_graphs, "seconds": round(dt, 2),
                    "items_per_s": round(items / dt, 3), "new_tokens_per_s": round(items * new / dt, 1),
                    "warmup_seconds": round(warm, 2), "graph_capture_seconds": round(fast.stats["capture_seconds"], 2),
                    "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if device == "cuda" else None,
                    "prefill_seconds": round(fast.stats["prefill_seconds"], 2),
                    "decode_seconds": round(fast.stats["decode_seconds"], 2),
                    "graph_error": fast.stats.get("graph_error")}
                log(f"fast: {items / dt:.2f} items/s (prefill {fast.stats['prefill_seconds']:.1f} s, "
                    f"decode {fast.stats['decode_seconds']:.1f} s)")
            if (fast.use_graphs or smoke) and not over_budget("hf_fast_eager"):
                # the same engine without CUDA graphs, one batch: what the graphs bring
                fast.use_graphs = False
                log(f"fast, eager decode: {bsz} items ...")
                t0 = time.time()
                fast.generate(prompts[:bsz], sampling, 1)
                sync()
                dt = time.time() - t0
                res["phases"]["hf_fast_eager"] = {"items": bsz, "batch": bsz, "seconds": round(dt, 2),
                                                  "items_per_s": round(bsz / dt, 3)}
                log(f"fast, eager decode: {bsz / dt:.2f} items/s")
            del fast
    except Exception as e:  # noqa: BLE001
        res["phases"]["hf_fast"] = {"error": f"{type(e).__name__}: {e}"}
        log(f"fast path failed: {e}")
    if device == "cuda":
        torch.cuda.empty_cache()
    save()

    # ---------------------------------------------------------------- greedy spot-check
    spot_prompts = make_prompts(args.spot_prompts, min(plen, 48 if smoke else 512), vocab, seed=1)
    spot_prompts = [p[: len(p) - 7 * i] for i, p in enumerate(spot_prompts)]  # different lengths: padding
    res["spot_checks"] = []
    for label in ("model dtype", "float32"):
        if label == "float32" and over_budget("spot_check_fp32"):
            continue
        if label == "model dtype" and over_budget("spot_check"):
            break
        try:
            if label == "float32":
                model = model.float()
            res["spot_checks"].append(spot_check(model, spot_prompts, 12 if smoke else 64,
                                                 f"{label} ({next(model.parameters()).dtype})"))
        except Exception as e:  # noqa: BLE001
            res["spot_checks"].append({"label": label, "error": f"{type(e).__name__}: {e}"})
            log(f"spot-check {label} failed: {e}")
        save()

    # ---------------------------------------------------------------- summary
    base = res["phases"].get("baseline_generate", {})
    fast_r = res["phases"].get("hf_fast", {})
    if base.get("items_per_s") and fast_r.get("items_per_s"):
        res["speedup"] = round(fast_r["items_per_s"] / base["items_per_s"], 2)
    save()
    print()
    print(f"eval_speed on {res['device']} ({res['model']}; {plen} prompt + {new} new tokens)")
    print(f"{'path':<28}{'items':>7}{'batch':>7}{'seconds':>9}{'items/s':>9}  notes")
    for name, label in (("baseline_generate", "model.generate (baseline)"), ("hf_fast", "hf backend, fast engine"),
                        ("hf_fast_eager", "fast engine, no CUDA graphs")):
        if name == "hf_fast_eager" and name not in res["phases"]:
            continue
        r = res["phases"].get(name, {})
        if "items_per_s" in r:
            note = (f"warm-up {r['warmup_seconds']} s (capture {r['graph_capture_seconds']} s); prefill "
                    f"{r['prefill_seconds']} s, decode {r['decode_seconds']} s") if "warmup_seconds" in r else ""
            print(f"{label:<28}{r['items']:>7}{r['batch']:>7}{r['seconds']:>9}{r['items_per_s']:>9}  {note}")
        else:
            print(f"{label:<28}  {r.get('error') or r.get('skipped') or 'not run'}")
    if "speedup" in res:
        print(f"speedup: {res['speedup']}x")
    for sc in res["spot_checks"]:
        if "error" in sc:
            print(f"greedy spot-check {sc['label']}: error {sc['error']}")
        else:
            print(f"greedy spot-check {sc['label']}: {sc['identical']}/{sc['prompts']} prompts token-identical")
    print(f"total {res['total_seconds']} s; results: {out_dir / 'eval_speed.json'}")
    ok = "items_per_s" in fast_r and "items_per_s" in base
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
