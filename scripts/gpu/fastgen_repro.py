"""Drive the fast engine through several batches of different lengths with n=3 paper sampling and
print the full traceback of any CUDA-graph capture failure (diagnosis for the GPU-acceptance issue).

    python scripts/gpu/fastgen_repro.py --judge /tmp/judge-7b
"""

from __future__ import annotations

import argparse
import random
import traceback


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--judge", required=True)
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--max-new", type=int, default=64)
    a = ap.parse_args()
    import torch

    from judgeforge.backends import Sampling
    from judgeforge.backends.fastgen import FastGenerator
    from judgeforge.backends.hf import load_model

    model = load_model(a.judge)
    gen = FastGenerator(model, pad_id=0, eos_id=2)
    runner = gen.runner  # the engine's cache and graphs (judgeforge/backends/fastgen_runner.py)
    orig = runner._graph

    def traced(*args, **kw):
        try:
            return orig(*args, **kw)
        except Exception:
            print("CAPTURE FAILED at key", args[:2], "\n", traceback.format_exc(), flush=True)
            raise

    runner._graph = traced
    rnd = random.Random(0)
    prompts = [[1] + [rnd.randrange(3, 32000) for _ in range(rnd.randrange(200, 1800))] for _ in range(a.items)]
    s = Sampling(1.0, 0.9, a.max_new, 1.03, 0)
    for n in (3, 1):
        out = gen.generate(prompts, s, n)
        print("n", n, "ok", len(out), gen.stats, "mem GiB", torch.cuda.max_memory_allocated() / 2**30, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
