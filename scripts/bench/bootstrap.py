"""Time the bootstrap intervals of the absolute metrics: scipy.stats.bootstrap one resample at a time
(the old path) against the vectorised path (judgeforge.eval.bootstrap), same data and seed.

    python scripts/bench/bootstrap.py [--n 320] [--resamples 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from judgeforge.eval import metrics


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=320)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    gold = rng.integers(1, 6, a.n).astype(float)
    pred = list(np.clip(gold + rng.normal(0, 1, a.n), 1, 5).round(2))  # means of 3 samples: few ties
    gold = list(gold)
    out = {"n": a.n, "resamples": a.resamples}
    for name in ("pearson", "spearman", "kendall"):
        fn = getattr(metrics, name)
        old = metrics.scipy_bootstrap_ci(fn, [pred, gold], n_resamples=a.resamples, seed=0)
        new = metrics.bootstrap_ci(fn, [pred, gold], n_resamples=a.resamples, seed=0)
        out[name] = {
            "scipy_unvectorised_s": _best(lambda fn=fn: metrics.scipy_bootstrap_ci(
                fn, [pred, gold], n_resamples=a.resamples, seed=0), 1),
            "vectorised_s": _best(lambda fn=fn: metrics.bootstrap_ci(
                fn, [pred, gold], n_resamples=a.resamples, seed=0), a.repeats),
            "max_abs_diff": max(abs(old[0] - new[0]), abs(old[1] - new[1])),
        }
    out["three_intervals_shared_resamples_s"] = _best(
        lambda: metrics.correlation_cis(pred, gold, n_resamples=a.resamples, seed=0), a.repeats)
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
