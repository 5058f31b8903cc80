#!/usr/bin/env python3
"""Training speed at 7B: the paper's recipe (baseline) against judgeforge's default, plus LoRA on one GPU.

Every configuration runs the real training path (``judgeforge.train.run.train``: Trainer, DeepSpeed, our
collator, attention and loss) for ``--warmup`` + ``--steps`` optimizer steps, each in its own process
group (``torchrun``) so GPU memory starts empty.  Model: Mistral-7B-v0.2's config with random bf16 weights
created directly partitioned on the GPUs (ZeRO-3's zero.Init) or directly on the GPU (no ZeRO-3); never on
the CPU.  Rows: random tokens whose (row, output) lengths are drawn from train_length_profile.json (the
real Prometheus prompt + GPT-4 feedback lengths, Mistral tokenizer); the same rows for every config.

Configurations (``--configs``, in this order; ``--set NAME:key=value,...`` adds or changes one):

  check        (before the rest) small model on one GPU: varlen attention vs per-sequence sdpa, packed rows
               isolated, liger fused linear CE vs the plain target-only loss (loss and gradients), liger
               RMSNorm/SwiGLU/RoPE vs plain
  check-z3-plain, check-z3-liger   (optional) a small model, 3 steps of ZeRO-3 on --gpus processes without and
               with liger (fused CE inside ZeRO-3's hooks); the per-step losses are compared ("check-z3")
  baseline     the paper's recipe: padded batches of 4 rows per GPU, sdpa, no fused kernels, ZeRO-3, full
               gradient checkpointing, global batch 64 (gradient accumulation 64 / (4 x GPUs))
  default      judgeforge's defaults on the same recipe: padding-free packing of the same 4 rows (varlen
               attention), liger kernels + fused linear CE, ZeRO-3, checkpointing, global batch 64
  budget       default + a token budget per micro-batch (pack_tokens, default 12288) and the accumulation
               that keeps the tokens per optimizer step of the baseline
  default-noliger  default without liger (fallback if a liger kernel misbehaves)
  budget-pf    budget with ZeRO-3 prefetch and reduce buckets of 2.5e8 parameters (auto: 0.9 h^2 = 15M,
               1/14 of a layer)
  budget-zero2 budget with ZeRO-2 (no per-layer all-gathers; ~72 GB of model states per GPU at 2 GPUs:
               for 4+ GPUs)
  lora         1 GPU, no DeepSpeed: LoRA r 256 / alpha 512 / dropout 0.1 on q,k,v,o,gate,up,down,lm_head,
               bf16 base, packing + liger, checkpointing, 4 rows x 4 accumulation

Keys of --set: recipe keys (``pack_tokens=24576``, ``gradient_checkpointing=false``,
``per_device_train_batch_size=8``, ``deepspeed=zero2``, ``gradient_accumulation_steps=2``), ``gpus=N``, and
DeepSpeed JSON overrides as ``ds.zero_optimization.stage3_prefetch_bucket_size=5e8``.  Example, trying two
more variants in the same run:

    --set "b16k:from=budget,pack_tokens=16384" \
    --set "b16k-pf:from=budget-pf,pack_tokens=16384" --configs check,baseline,default,budget,lora,b16k,b16k-pf

Reported per config: non-padding tokens/s/GPU over the timed steps, MFU and HFU, peak GPU memory
(allocated and reserved, max over ranks), padding overhead, step time.

FLOPs (per non-padding token, Mistral-7B-v0.2 shapes; h=4096, kv=1024, ffn=14336, L=32, V=32000):
  forward, decoder = L x 2 x (2h^2 + 2h*kv + 3h*ffn) + attention L x 2 x s x h per token of a length-s row
                     (QK^T and AV, causal: half of 4 s^2 h per row)
  forward, head    = 2hV per *target* token only (judgeforge computes logits only there; counting every
                     token would flatter MFU)
  model FLOPs      = 3 x forward (full fine-tuning); LoRA: 2 x forward (frozen weights get no weight
                     gradients) + 6 x LoRA parameters per token
  hardware FLOPs   = model FLOPs + one more decoder forward when gradient checkpointing recomputes it
  MFU = model FLOPs / s / GPU / peak; HFU likewise with hardware FLOPs; peak bf16 dense: H100/H200 SXM 989 TF.

Targets (issue #3, 2 x H100): default (or the best variant) >= 7,500 non-padding tokens/s/GPU, peak < 75 GiB,
and >= 1.5 x the baseline.

    source ../shared/device/setup.sh && python scripts/bench/train_7b.py --out $OUT/train7b   # 2 GPUs, ~7 min
    python scripts/bench/train_7b.py --smoke --out /tmp/train7b-smoke                        # CPU, tiny model
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROFILE = Path(__file__).with_name("train_length_profile.json")
RECIPE = ROOT / "configs" / "train" / "prometheus2-7b-absolute.yaml"
GIB = 2**30
PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "H800": 989.4, "A100": 312.0, "L40S": 362.0}

SMOKE_MODEL = {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2}
LORA_7B = {
    "r": 256,
    "alpha": 512,
    "dropout": 0.1,
    "merge": False,
    "target_modules": [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
        "lm_head",
    ],
}


def presets(gpus: int, smoke: bool) -> dict[str, dict]:
    common = {
        "gpus": gpus,
        "per_device_train_batch_size": 4,
        "global_batch_size": 64,
        "gradient_accumulation_steps": None,
        "gradient_checkpointing": True,
        "deepspeed": "zero3",
    }
    budget = 2048 if smoke else 12288
    small = (
        SMOKE_MODEL
        if smoke
        else {"hidden": 1024, "layers": 4, "heads": 8, "kv_heads": 2, "intermediate": 2816, "tie": False}
    )
    return {
        "baseline": {**common, "packing": False, "attn_implementation": "sdpa", "kernels": "none"},
        "default": {**common, "packing": True, "attn_implementation": "auto", "kernels": "auto"},
        "budget": {
            **common,
            "packing": True,
            "kernels": "auto",
            "pack_tokens": budget,
            "global_batch_size": None,
            "gradient_accumulation_steps": "match",
        },
        "budget-zero2": {
            **common,
            "packing": True,
            "kernels": "auto",
            "pack_tokens": budget,
            "global_batch_size": None,
            "gradient_accumulation_steps": "match",
            "deepspeed": "zero2",
        },
        "default-noliger": {**common, "packing": True, "attn_implementation": "auto", "kernels": "none"},
        # bigger ZeRO-3 prefetch / reduce buckets ("auto" prefetch: 0.9 h^2 = 15M parameters, 1/14 of a layer)
        "budget-pf": {
            **common,
            "packing": True,
            "kernels": "auto",
            "pack_tokens": budget,
            "global_batch_size": None,
            "gradient_accumulation_steps": "match",
            "ds.zero_optimization.stage3_prefetch_bucket_size": 2.5e8,
            "ds.zero_optimization.reduce_bucket_size": 2.5e8,
        },
        # a small model, 3 steps, ZeRO-3 on --gpus processes, with and without liger: the losses must agree
        "check-z3-plain": {**common, "packing": True, "kernels": "none", "init_from_config": small},
        "check-z3-liger": {**common, "packing": True, "kernels": "auto", "init_from_config": small},
        "lora": {
            "gpus": 1,
            "deepspeed": None,
            "per_device_train_batch_size": 4,
            "global_batch_size": None,
            "gradient_accumulation_steps": 4,
            "packing": True,
            "kernels": "auto",
            "gradient_checkpointing": True,
            "lora": dict(LORA_7B, r=8 if smoke else 256, alpha=16 if smoke else 512),
        },
    }


# --------------------------------------------------------------------------- rows from the length profile


def sample_lengths(n: int, seed: int, mode: str, max_length: int, scale: float = 1.0):
    """(row tokens, output tokens) for n rows drawn from the profile's joint histogram."""
    import numpy as np

    prof = json.loads(PROFILE.read_text())
    width = prof["bin_width"]
    modes = ["absolute", "relative"] if mode == "joint" else [mode]
    hist = [h for m in modes for h in prof["modes"][m]["hist"]]
    counts = np.array([c for _, _, c in hist], dtype=np.float64)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(hist), size=n, p=counts / counts.sum())
    total = np.array([hist[i][0] * width for i in pick]) + rng.integers(0, width, n)
    target = np.array([hist[i][1] * width for i in pick]) + rng.integers(0, width, n)
    total = np.maximum((total * scale).astype(np.int64), 8)
    target = np.clip((target * scale).astype(np.int64), 1, total - 2)
    total = np.minimum(total, max_length)  # overlong: truncate, as the paper's recipe
    target = np.minimum(target, total - 2)
    return total, target


# --------------------------------------------------------------------------- FLOPs


def model_shape(smoke: bool) -> dict:
    if smoke:
        h = SMOKE_MODEL["hidden"]
        return {
            "h": h,
            "kv": h // SMOKE_MODEL["heads"] * SMOKE_MODEL["kv_heads"],
            "ffn": 2 * h,
            "layers": SMOKE_MODEL["layers"],
            "vocab": 32000,
        }
    from judgeforge.tiny import MISTRAL_7B_V02 as c

    return {
        "h": c["hidden_size"],
        "kv": c["num_key_value_heads"] * c["head_dim"],
        "ffn": c["intermediate_size"],
        "layers": c["num_hidden_layers"],
        "vocab": c["vocab_size"],
    }


def row_flops(s: int, t: int, shape: dict, *, lora_params: int = 0, checkpointing: bool = True):
    """(model FLOPs, hardware FLOPs) to train on one row of s tokens with t targets."""
    h, kv, ffn, L, V = shape["h"], shape["kv"], shape["ffn"], shape["layers"], shape["vocab"]
    dense = L * 2 * (2 * h * h + 2 * h * kv + 3 * h * ffn) * s
    attn = L * 2 * s * s * h  # causal: QK^T and AV over the lower triangle
    head = 2 * h * V * t
    fwd_dec, fwd = dense + attn, dense + attn + head
    if lora_params:
        model = 2 * fwd + 6 * lora_params * s
    else:
        model = 3 * fwd
    hw = model + (fwd_dec if checkpointing else 0)
    return model, hw


# --------------------------------------------------------------------------- child: one configuration


def child(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    sys.path.insert(0, str(ROOT))
    if spec["name"] == "check":
        return check_kernels(spec)
    import torch
    from transformers import TrainerCallback

    from judgeforge.train import dataset as D
    from judgeforge.train.recipe import load
    from judgeforge.train.run import train

    total, target = sample_lengths(spec["rows"], spec["seed"], spec["mix"], spec["max_length"], spec["scale"])
    rows = D.synthetic_rows(total, target / total, seed=spec["seed"])
    rows.n_prompt = total - target  # exact target counts (synthetic_rows rounds a fraction)
    rank = int(os.environ.get("RANK", 0))
    cuda = torch.cuda.is_available()

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.t = [], None

        def _now(self):
            if cuda:
                torch.cuda.synchronize()
            return time.perf_counter()

        def on_train_begin(self, args, state, control, **kw):
            self.t = self._now()
            self.t_begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            now = self._now()
            self.times.append(now - self.t)
            self.t = now

    timer = StepTimer()
    t0 = time.perf_counter()
    recipe = load(spec["recipe_path"], spec["overrides"])
    train(recipe, synthetic=rows, callbacks=[timer], save=False)
    trace = [
        json.loads(line)
        for line in (Path(recipe.output_dir) / f"rows-rank{rank}.jsonl").read_text().splitlines()
    ]
    warm = spec["warmup"]
    shape = spec["shape"]
    tok = pad = n_rows = 0
    mf = hf = 0.0
    for entry in trace:
        if entry["step"] <= warm:
            continue
        for micro in entry["rows"]:
            lens = [int(total[i]) for i in micro]
            tok += sum(lens)
            pad += (len(lens) * max(lens) - sum(lens)) if not spec["packing"] else 0
            n_rows += len(lens)
            for i in micro:
                m, h = row_flops(
                    int(total[i]),
                    int(target[i]),
                    shape,
                    lora_params=spec["lora_params"],
                    checkpointing=spec["checkpointing"],
                )
                mf += m
                hf += h
    alloc = torch.cuda.max_memory_allocated() if cuda else 0
    reserved = torch.cuda.max_memory_reserved() if cuda else 0
    vals = torch.tensor([tok, pad, n_rows, mf, hf], dtype=torch.float64)
    mem = torch.tensor([alloc, reserved], dtype=torch.float64)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dev = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
        vals, mem = vals.to(dev), mem.to(dev)
        dist.all_reduce(vals, op=dist.ReduceOp.SUM)
        dist.all_reduce(mem, op=dist.ReduceOp.MAX)
        vals, mem = vals.cpu(), mem.cpu()
    if rank == 0:
        timed = timer.times[warm:]
        res = {
            "name": spec["name"],
            "gpus": spec["gpus"],
            "steps_timed": len(timed),
            "step_s": timed,
            "tokens": vals[0].item(),
            "padding_tokens": vals[1].item(),
            "rows": vals[2].item(),
            "model_flops": vals[3].item(),
            "hw_flops": vals[4].item(),
            "peak_allocated_gib": mem[0].item() / GIB,
            "peak_reserved_gib": mem[1].item() / GIB,
            "wall_s": time.perf_counter() - t0,
            "first_step_s": timer.times[0] if timer.times else None,
            "setup_s": timer.t_begin - t0 if hasattr(timer, "t_begin") else None,
            "device": torch.cuda.get_device_name() if cuda else "cpu",
            "recipe_overrides": spec["overrides"],
        }
        Path(spec["result"]).write_text(json.dumps(res, indent=2))


# --------------------------------------------------------------------------- child: kernel checks


def check_kernels(spec: dict) -> None:
    """Numerical checks of the fast paths against the reference paths (see the module doc)."""
    import torch

    from judgeforge.tiny import tiny_config
    from judgeforge.train.attention import register
    from judgeforge.train.loss import target_loss_sum

    out: dict = {"name": "check"}
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    torch.manual_seed(0)
    if cuda:
        cfg = tiny_config(hidden=1024, layers=4, heads=8, kv_heads=2, intermediate=2816, tie=False)
        lens = [700, 1300, 257, 950]
    else:
        cfg = tiny_config(hidden=64, layers=2, heads=4, kv_heads=2)
        lens = [70, 130, 25, 95]
    from transformers import AutoModelForCausalLM

    def make(attn):
        torch.manual_seed(0)
        with dev:  # a copy of the config each time: from_config records the attention in it
            return AutoModelForCausalLM.from_config(copy.deepcopy(cfg), dtype=dtype, attn_implementation=attn)

    varlen_m, sdpa_m = make(register()), make("sdpa")
    ids = torch.randint(3, 32000, (1, sum(lens)), device=dev)
    pos = torch.cat([torch.arange(n, device=dev) for n in lens])[None]
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device=dev)
    kw = dict(
        position_ids=pos, cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=max(lens), max_length_k=max(lens)
    )

    def rel(a, b):
        return ((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-12)).item()

    with torch.no_grad():
        packed = varlen_m(input_ids=ids, **kw).logits[0]
        sep = torch.cat([sdpa_m(input_ids=ids[:, cu[j] : cu[j + 1]]).logits[0] for j in range(len(lens))])
        sdpa_packed = sdpa_m(input_ids=ids, position_ids=pos).logits[0]
        ids2 = ids.clone()
        ids2[0, 1 : lens[0]] = (ids2[0, 1 : lens[0]] + 11) % 32000
        packed2 = varlen_m(input_ids=ids2, **kw).logits[0]
    out["varlen_vs_separate_rel"] = rel(packed, sep)
    out["sdpa_packed_vs_separate_rel"] = rel(sdpa_packed, sep)  # informational: sdpa alone need not isolate
    out["isolation_max_abs_change"] = (packed2[lens[0] :] - packed[lens[0] :]).abs().max().item()
    out["varlen_kernel"] = "torch varlen_attn" if cuda else "per-sequence sdpa (CPU)"

    labels = ids.clone()
    for j in range(len(lens)):
        labels[0, cu[j] : cu[j] + lens[j] * 3 // 4] = -100

    def loss_and_grads(model, fused):
        model.zero_grad()
        s, n = target_loss_sum(model, {"input_ids": ids, **kw}, labels, fused=fused)
        (s / n).backward()
        return (s / n).detach(), {
            k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None
        }

    l_plain, g_plain = loss_and_grads(varlen_m, False)
    liger_ok = False
    if cuda:
        try:
            import liger_kernel  # noqa: F401

            liger_ok = True
        except ImportError:
            out["liger"] = "not installed"
    if liger_ok:
        l_fused, g_fused = loss_and_grads(varlen_m, True)
        out["fused_ce_loss_rel"] = abs(l_fused.item() - l_plain.item()) / abs(l_plain.item())
        out["fused_ce_grad_rel_max"] = max(rel(g_fused[k], g_plain[k]) for k in g_plain)
        from liger_kernel.transformers.monkey_patch import _apply_liger_kernel

        state = {k: v.clone() for k, v in varlen_m.state_dict().items()}
        _apply_liger_kernel(
            "mistral",
            rope=True,
            rms_norm=True,
            swiglu=True,
            cross_entropy=False,
            fused_linear_cross_entropy=False,
        )
        patched = make(register())
        patched.load_state_dict(state)
        l_patched, g_patched = loss_and_grads(patched, True)
        out["liger_model_loss_rel"] = abs(l_patched.item() - l_plain.item()) / abs(l_plain.item())
        out["liger_model_grad_rel_max"] = max(rel(g_patched[k], g_plain[k]) for k in g_plain)
    tol = 3e-2 if cuda else 1e-4
    out["pass"] = bool(
        out["varlen_vs_separate_rel"] < tol
        and out["isolation_max_abs_change"] < (1e-3 if cuda else 1e-6)
        and (not liger_ok or (out["fused_ce_loss_rel"] < 1e-2 and out["liger_model_loss_rel"] < 2e-2))
    )
    Path(spec["result"]).write_text(json.dumps(out, indent=2))


# --------------------------------------------------------------------------- parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ds_file(name: str | None, overrides: dict, work: Path, tag: str) -> str | None:
    if name is None:
        return None
    from judgeforge.train.recipe import resolve_deepspeed_path

    path = resolve_deepspeed_path(name)
    if not overrides:
        return str(path)
    cfg = json.loads(path.read_text())
    for dotted, value in overrides.items():
        node = cfg
        keys = dotted.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    out = work / f"ds-{tag}.json"
    out.write_text(json.dumps(cfg, indent=2))
    return str(out)


def parse_set(items: list[str], table: dict) -> None:
    import yaml

    for item in items:
        name, _, body = item.partition(":")
        entry = {}
        for part in filter(None, (p.strip() for p in body.split(","))):
            key, _, raw = part.partition("=")
            entry[key.strip()] = yaml.safe_load(raw)
        base = entry.pop("from", name if name in table else "default")
        table[name] = {**copy.deepcopy(table[base]), **entry}


def plan_config(name: str, cfg: dict, a, work: Path, total, target) -> dict:
    """The child's spec: recipe overrides for this configuration."""
    import numpy as np

    from judgeforge.train.dataset import plan_micro_batches

    cfg = dict(cfg)
    gpus = int(cfg.pop("gpus"))
    ds_over = {k[3:]: cfg.pop(k) for k in list(cfg) if k.startswith("ds.")}
    ds = _ds_file(cfg.pop("deepspeed", None), ds_over, work, name)
    lora = cfg.pop("lora", None)
    if cfg.get("gradient_accumulation_steps") == "match":
        # the baseline's tokens per optimizer step: 64 rows; per micro-batch under the token budget: measured
        plan = plan_micro_batches(total, 4, cfg["pack_tokens"], seed=a.seed)
        per_micro = float(np.mean([total[b].sum() for b in plan]))
        cfg["gradient_accumulation_steps"] = max(1, round(64 * float(total.mean()) / (per_micro * gpus)))
    model = cfg.pop("init_from_config", None) or (
        {"preset": "mistral-7b-v0.2"} if not a.smoke else SMOKE_MODEL
    )
    overrides = {
        "model": None,
        "init_from_config": model,
        "tokenizer": None,
        "output_dir": str(work / name),
        "max_steps": a.warmup + a.steps,
        "save_steps": 0,
        "logging_steps": 1,
        "report_to": "none",
        "log_rows": True,
        "warmup_ratio": 0.0,
        "deepspeed": ds,
        "lora": lora,
        "overwrite_output_dir": True,
        "max_length": a.max_length,
        "seed": a.seed,
        **cfg,
    }
    lora_params = 0
    if lora:
        shape = model_shape(a.smoke)
        h, kv, ffn, L, V, r = (
            shape["h"],
            shape["kv"],
            shape["ffn"],
            shape["layers"],
            shape["vocab"],
            lora["r"],
        )
        per_layer = r * ((h + h) * 2 + (h + kv) * 2 + (h + ffn) * 3)
        lora_params = L * per_layer + r * (h + V)
    return {
        "name": name,
        "gpus": gpus,
        "overrides": overrides,
        "recipe_path": str(RECIPE),
        "rows": a.rows,
        "seed": a.seed,
        "mix": a.mix,
        "max_length": a.max_length,
        "scale": a.scale,
        "warmup": a.warmup,
        "packing": bool(cfg.get("packing", True)),
        "checkpointing": bool(cfg.get("gradient_checkpointing", True)),
        "lora_params": lora_params,
        "shape": model_shape(a.smoke),
        "result": str(work / f"{name}.result.json"),
    }


def run_child(spec: dict, work: Path, timeout: float, smoke: bool) -> dict:
    path = work / f"{spec['name']}.spec.json"
    path.write_text(json.dumps(spec))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(spec.get("gpus", 1)),
        "--master_port",
        str(_port()),
        str(Path(__file__).resolve()),
        "--child",
        str(path),
    ]
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(ROOT))
    if str(ROOT) not in env["PYTHONPATH"].split(os.pathsep):
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env["PYTHONPATH"]
    if smoke:
        env["OMP_NUM_THREADS"] = "1"
    env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    log = work / f"{spec['name']}.log"
    t0 = time.perf_counter()
    with open(log, "w") as f:
        try:
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT, timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    wall = time.perf_counter() - t0
    res_path = Path(spec["result"])
    if rc == 0 and res_path.exists():
        res = json.loads(res_path.read_text())
        res["process_wall_s"] = wall
        return res
    lines = log.read_text(errors="replace").splitlines()
    errors = [
        ln
        for ln in lines
        if ("Error" in ln or "error:" in ln) and "elastic" not in ln and "ChildFailedError" not in ln
    ]
    return {
        "name": spec["name"],
        "error": f"exit {rc}",
        "log_tail": errors[-6:] + lines[-25:],
        "process_wall_s": wall,
    }


def compare_losses(a: Path, b: Path) -> dict:
    """Per-step training losses of two runs on the same rows (log.jsonl)."""

    def losses(d: Path):
        try:
            return {
                r["step"]: r["loss"]
                for r in map(json.loads, (d / "log.jsonl").read_text().splitlines())
                if "loss" in r
            }
        except FileNotFoundError:
            return {}

    la, lb = losses(a), losses(b)
    steps = sorted(set(la) & set(lb))
    rel = [abs(la[s] - lb[s]) / abs(la[s]) for s in steps]
    return {
        "name": "check-z3",
        "steps": steps,
        "plain": [la[s] for s in steps],
        "liger": [lb[s] for s in steps],
        "max_rel": max(rel) if rel else None,
        "pass": bool(rel) and max(rel) < 2e-2,
    }


def summarize(res: dict, peak_tflops: float | None) -> dict:
    if "error" in res or res.get("name") == "check":
        return res
    t = sum(res["step_s"])
    g = res["gpus"]
    res["tokens_per_s_per_gpu"] = res["tokens"] / t / g if t else None
    res["padding_fraction"] = (
        res["padding_tokens"] / (res["tokens"] + res["padding_tokens"]) if res["tokens"] else 0
    )
    if peak_tflops:
        res["mfu"] = res["model_flops"] / t / g / (peak_tflops * 1e12)
        res["hfu"] = res["hw_flops"] / t / g / (peak_tflops * 1e12)
    res["mean_step_s"] = t / max(len(res["step_s"]), 1)
    return res


def table(results: dict, baseline: str = "baseline") -> str:
    base = results.get(baseline, {}).get("tokens_per_s_per_gpu")
    lines = [
        f"{'config':<14} {'gpus':>4} {'tok/s/GPU':>10} {'vs base':>8} {'MFU':>6} {'HFU':>6} "
        f"{'peak alloc':>10} {'peak rsvd':>10} {'pad':>5} {'step s':>7}"
    ]
    for name, r in results.items():
        if name.startswith("check"):
            continue
        if "error" in r:
            lines.append(f"{name:<14} FAILED ({r['error']}); see {name}.log")
            continue
        tps = r.get("tokens_per_s_per_gpu") or 0
        ratio = f"{tps / base:.2f}x" if base and name != baseline else "-"
        mfu = f"{r['mfu'] * 100:.1f}%" if r.get("mfu") is not None else "-"
        hfu = f"{r['hfu'] * 100:.1f}%" if r.get("hfu") is not None else "-"
        lines.append(
            f"{name:<14} {r['gpus']:>4} {tps:>10,.0f} {ratio:>8} {mfu:>6} {hfu:>6} "
            f"{r['peak_allocated_gib']:>8.1f}Gi {r['peak_reserved_gib']:>8.1f}Gi "
            f"{r['padding_fraction'] * 100:>4.0f}% {r['mean_step_s']:>7.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="folder for results.json, logs and per-config files (required)")
    p.add_argument("--smoke", action="store_true", help="CPU: tiny model, lengths / 8, 2 gloo processes")
    p.add_argument("--gpus", type=int, default=2, help="processes for the multi-GPU configs (default 2)")
    p.add_argument(
        "--configs",
        default="check,baseline,default,budget,lora",
        help="comma-separated, run in this order (presets: check, baseline, default, budget, "
        "budget-zero2, lora, and names from --set)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME:key=value,...",
        help="define or change a config (from=PRESET to copy one)",
    )
    p.add_argument("--steps", type=int, default=2, help="timed optimizer steps per config")
    p.add_argument("--warmup", type=int, default=1, help="untimed optimizer steps first")
    p.add_argument("--rows", type=int, default=1200, help="rows drawn from the length profile")
    p.add_argument(
        "--mix",
        default="absolute",
        choices=["absolute", "relative", "joint"],
        help="which rows of the length profile",
    )
    p.add_argument("--max-length", type=int, default=4096)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--peak-tflops", type=float, default=None, help="bf16 dense peak per GPU (default: by name)"
    )
    p.add_argument("--timeout", type=float, default=300, help="seconds per config")
    p.add_argument(
        "--budget-s",
        type=float,
        default=480,
        help="start no config after this many seconds; a running one is stopped at budget + 60 s",
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a.child)
    if not a.out:
        p.error("--out is required")
    sys.path.insert(0, str(ROOT))
    t_start = time.perf_counter()
    a.scale = 1 / 8 if a.smoke else 1.0
    if a.smoke:
        a.max_length = min(a.max_length, 1024)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    work = out
    total, target = sample_lengths(a.rows, a.seed, a.mix, a.max_length, a.scale)
    table_cfg = presets(a.gpus, a.smoke)
    parse_set(a.set, table_cfg)
    names = [n.strip() for n in a.configs.split(",") if n.strip()]
    unknown = [n for n in names if n != "check" and n not in table_cfg]
    if unknown:
        sys.exit(f"unknown config(s): {', '.join(unknown)}; presets: check, {', '.join(table_cfg)}")
    peak = a.peak_tflops
    device = "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            device = torch.cuda.get_device_name()
            peak = peak or next((v for k, v in PEAK_TFLOPS.items() if k in device), None)
    except ImportError:
        pass
    results: dict = {}
    meta = {
        "device": device,
        "peak_tflops": peak,
        "args": {k: v for k, v in vars(a).items() if k != "child"},
        "rows_mean_tokens": float(total.mean()),
        "rows_p50": float(sorted(total)[len(total) // 2]),
        "rows_mean_targets": float(target.mean()),
        "configs": {},
    }
    print(
        f"device {device}; {a.rows} rows, mean {total.mean():.0f} tokens ({target.mean():.0f} targets); "
        f"configs {', '.join(names)}",
        flush=True,
    )
    for name in names:
        elapsed = time.perf_counter() - t_start
        if elapsed > a.budget_s:
            results[name] = {
                "name": name,
                "error": f"skipped: {elapsed:.0f}s of the {a.budget_s:.0f}s budget used",
            }
            continue
        if name == "check":
            spec = {"name": "check", "gpus": 1, "result": str(work / "check.result.json")}
        else:
            spec = plan_config(name, table_cfg[name], a, work, total, target)
            meta["configs"][name] = spec["overrides"]
        print(f"--- {name} ...", flush=True)
        res = summarize(
            run_child(spec, work, min(a.timeout, max(a.budget_s + 60 - elapsed, 30)), a.smoke), peak
        )
        results[name] = res
        if "error" in res:
            print(
                f"    {name} FAILED: {res['error']}\n      " + "\n      ".join(res.get("log_tail", [])[:6]),
                flush=True,
            )
        elif name == "check":
            print("    " + json.dumps({k: v for k, v in res.items() if k != "name"}), flush=True)
        else:
            print(
                f"    {res['tokens_per_s_per_gpu']:,.0f} tok/s/GPU, peak {res['peak_reserved_gib']:.1f} GiB "
                f"reserved, steps {[round(s, 2) for s in res['step_s']]}, "
                f"process {res['process_wall_s']:.0f}s",
                flush=True,
            )
        (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
        if name != "check" and not name.startswith("check-"):
            print(table(results), flush=True)  # so far (a command cut short still shows the numbers)
    if "check-z3-plain" in results and "check-z3-liger" in results:
        results["check-z3"] = compare_losses(work / "check-z3-plain", work / "check-z3-liger")
        print("--- check-z3: " + json.dumps(results["check-z3"]), flush=True)
    print()
    print(table(results))
    base = results.get("baseline", {}).get("tokens_per_s_per_gpu")
    best = max(
        (
            (r.get("tokens_per_s_per_gpu") or 0, n)
            for n, r in results.items()
            if n not in ("baseline", "lora") and not n.startswith("check") and "error" not in r
        ),
        default=(0, None),
    )
    if base and best[1]:
        ok = results[best[1]]
        print(
            f"\nbest multi-GPU: {best[1]} {best[0]:,.0f} tok/s/GPU = {best[0] / base:.2f}x baseline; targets "
            f">= 7,500 tok/s/GPU: {'yes' if best[0] >= 7500 else 'NO'}, "
            f">= 1.5x: {'yes' if best[0] / base >= 1.5 else 'NO'}, "
            f"peak < 75 GiB: {'yes' if ok['peak_reserved_gib'] < 75 else 'NO'}"
        )
    meta["wall_s"] = time.perf_counter() - t_start
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"results: {out / 'results.json'} ({meta['wall_s']:.0f}s)")


if __name__ == "__main__":
    main()
