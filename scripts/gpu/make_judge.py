"""A random-weight judge folder with Mistral-7B-v0.2's architecture, for GPU acceptance runs and benches.

    python scripts/gpu/make_judge.py --out /tmp/judge-7b [--seed 0] [--tokenizer DIR|mistral-v1] [--perturb-of DIR]

Built on the GPU in bf16 and saved as safetensors with the Mistral v1 tokenizer, so every stage
loads it as it would load Mistral-7B-Instruct-v0.2.  ``--perturb-of DIR`` writes a second "expert":
DIR's weights plus small seeded noise (a stand-in fine-tune, for merges).  ``--layers`` shrinks it.
"""

from __future__ import annotations

import argparse
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer", default="mistral-v1")
    ap.add_argument("--perturb-of", default=None, help="copy this folder's weights plus noise (std 1e-3)")
    ap.add_argument("--layers", type=int, default=None, help="fewer layers (default: the 7B's 32)")
    a = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, MistralConfig

    from judgeforge.tiny import MISTRAL_7B_V02
    from judgeforge.tokenization import load_tokenizer

    t0 = time.time()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(a.seed)
    if a.perturb_of:
        model = AutoModelForCausalLM.from_pretrained(a.perturb_of, dtype=torch.bfloat16, device_map=dev)
        g = torch.Generator(device=dev).manual_seed(a.seed)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=g, device=dev, dtype=torch.float32).mul_(1e-3).to(p.dtype))
    else:
        cfg = dict(MISTRAL_7B_V02)
        if a.layers:
            cfg["num_hidden_layers"] = a.layers
        with torch.device(dev):
            model = AutoModelForCausalLM.from_config(MistralConfig(**cfg), dtype=torch.bfloat16)
    model.generation_config.pad_token_id = 0
    model.save_pretrained(a.out, safe_serialization=True, max_shard_size="5GB")
    load_tokenizer(a.tokenizer).save_pretrained(a.out)
    n = sum(p.numel() for p in model.parameters())
    print(f"make_judge: {a.out}: {n / 1e9:.2f}B parameters in {time.time() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
