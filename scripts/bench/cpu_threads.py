"""CPU training speed of a tiny judge by dtype and OpenMP wait policy, quiet and beside a busy neighbour.

    python scripts/bench/cpu_threads.py [--steps 6] [--out runs/bench/cpu_threads.json]

Each configuration runs in a fresh process (the wait policy is read when OpenMP loads): a tiny
Mistral-architecture model (hidden 128, 2 layers, the quickstart's shape) does forward + backward
+ AdamW on 16 rows x 400 tokens.  "busy" starts one bounded busy-loop process per core beside it
for the duration of the run.  Reports wall seconds per step and the process's CPU seconds per step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, os, sys, time, resource
import torch
from judgeforge.tiny import tiny_config
from transformers import AutoModelForCausalLM
dtype = getattr(torch, sys.argv[1]); steps = int(sys.argv[2])
torch.manual_seed(0)
m = AutoModelForCausalLM.from_config(tiny_config(hidden=128, layers=2, max_positions=1024))
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
ids = torch.randint(3, 32000, (16, 400))
def step():
    with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        loss = m(input_ids=ids, labels=ids).loss
    loss.backward(); opt.step(); opt.zero_grad()
step()
t0, c0 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
for _ in range(steps):
    step()
t1, c1 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
print(json.dumps({"wall_per_step": (t1 - t0) / steps, "cpu_per_step": cpu / steps, "threads": torch.get_num_threads()}))
"""

BUSY = "import time\nend = time.time() + {secs}\nwhile time.time() < end:\n    pass\n"


def run(dtype: str, policy: str, busy: bool, steps: int) -> dict:
    env = dict(os.environ)
    if policy == "default":
        env.pop("OMP_WAIT_POLICY", None)
    else:
        env["OMP_WAIT_POLICY"] = policy
    neighbours = []
    if busy:
        for _ in range(os.cpu_count() or 1):
            neighbours.append(subprocess.Popen([sys.executable, "-c", BUSY.format(secs=600)]))
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, dtype, str(steps)], env=env, capture_output=True,
                             text=True, timeout=1800, check=True)
    finally:
        for p in neighbours:
            p.kill()
            p.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--out", default="runs/bench/cpu_threads.json")
    a = ap.parse_args()
    from judgeforge.devices import cpu_bf16_native

    rows = []
    for dtype in a.dtypes.split(","):
        for busy in (False, True):
            for policy in ("default", "PASSIVE"):
                steps = a.steps if dtype == "float32" else max(1, a.steps // 3)
                r = run(dtype, policy, busy, steps)
                r.update(dtype=dtype, policy=policy, neighbour="busy" if busy else "quiet", steps=steps)
                rows.append(r)
                print(f"{dtype:9} {r['neighbour']:5} OMP_WAIT_POLICY={policy:8} "
                      f"{r['wall_per_step']:7.3f} s/step wall, {r['cpu_per_step']:7.3f} CPU-s/step", flush=True)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "cpu_bf16_native": cpu_bf16_native(), "cores": os.cpu_count()}
    with open(a.out, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
