"""Metrics of the Prometheus 2 paper (scipy for the statistics).

Every function takes plain Python lists and returns plain floats (``None`` where a value
is undefined, e.g. a correlation with a constant input), so reports serialise as JSON.

* :func:`correlations` -- Pearson, Spearman, Kendall tau-b (``scipy.stats``).
* :func:`accuracy` -- the mean of 0/1 outcomes.
* :func:`bootstrap_ci` -- a percentile bootstrap 95% interval (vectorised for the paper's
  statistics in :mod:`judgeforge.eval.bootstrap`, equal to ``scipy.stats.bootstrap``'s).
* :func:`krippendorff_alpha` -- interval alpha over repeated samples (the ``krippendorff``
  package when installed; otherwise an equivalent numpy implementation, tested to agree).
* :func:`transitivity` -- the share of fully judged response triads whose verdicts are not cyclic.
* :func:`position_consistency` -- the share of pairs judged in both orders with the same winner.
* :func:`both_orders_agreement` -- Auto-J's "agreement": a pair is right only when both orders are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence


def _clean(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def correlations(pred: Sequence[float], gold: Sequence[float]) -> dict:
    """``{"pearson", "spearman", "kendall", "n"}``; None when undefined (n < 2 or a constant input)."""
    import warnings

    from scipy import stats

    n = len(pred)
    if n != len(gold):
        raise ValueError("pred and gold differ in length")
    out = {"pearson": None, "spearman": None, "kendall": None, "n": n}
    if n < 2 or len(set(pred)) < 2 or len(set(gold)) < 2:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["pearson"] = _clean(stats.pearsonr(pred, gold)[0])
        out["spearman"] = _clean(stats.spearmanr(pred, gold)[0])
        out["kendall"] = _clean(stats.kendalltau(pred, gold)[0])
    return out


def accuracy(outcomes: Sequence[int | bool]) -> float | None:
    return sum(1 for o in outcomes if o) / len(outcomes) if outcomes else None


def mean(xs) -> float | None:
    return sum(xs) / len(xs) if len(xs) else None


def bootstrap_ci(statistic: Callable, data: Sequence[Sequence], *, n_resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``statistic(*data)``, resampling items (paired across ``data``).

    None when the statistic is undefined on the data or on too many resamples.
    :func:`mean`, :func:`pearson`, :func:`spearman` and :func:`kendall` take the vectorised
    path (:mod:`judgeforge.eval.bootstrap`, the same interval as ``scipy.stats.bootstrap``
    for the same seed); any other callable goes through ``scipy.stats.bootstrap`` one
    resample at a time.
    """
    name = _VECTORISED.get(statistic)
    if name is not None:
        if len(data[0]) < 2 or n_resamples <= 0 or _clean(statistic(*[list(d) for d in data])) is None:
            return None
        from judgeforge.eval.bootstrap import bootstrap_intervals

        return bootstrap_intervals([name], data, n_resamples=n_resamples, seed=seed, level=level)[name]
    return scipy_bootstrap_ci(statistic, data, n_resamples=n_resamples, seed=seed, level=level)


def correlation_cis(pred, gold, *, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """``{"pearson": ci, "spearman": ci, "kendall": ci}`` from one set of resamples (as three bootstrap_ci calls)."""
    from judgeforge.eval.bootstrap import bootstrap_intervals

    full = correlations(pred, gold)
    names = [k for k in ("pearson", "spearman", "kendall") if full[k] is not None]
    out = dict.fromkeys(("pearson", "spearman", "kendall"))
    if names:
        out.update(bootstrap_intervals(names, [pred, gold], n_resamples=n_resamples, seed=seed, level=level))
    return out


def scipy_bootstrap_ci(statistic: Callable, data: Sequence[Sequence], *, n_resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float] | None:
    """:func:`bootstrap_ci` through ``scipy.stats.bootstrap(vectorized=False)``: any statistic, slowly."""
    import warnings

    import numpy as np
    from scipy import stats

    arrays = [np.asarray(d, dtype=float) for d in data]
    n = len(arrays[0])
    if n < 2 or n_resamples <= 0:
        return None

    def stat(*xs):
        v = statistic(*[list(x) for x in xs])
        return np.nan if v is None else v

    if _clean(stat(*arrays)) is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap(tuple(arrays), stat, paired=True, vectorized=False, n_resamples=n_resamples,
                              confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    lo, hi = _clean(res.confidence_interval.low), _clean(res.confidence_interval.high)
    if lo is None or hi is None:
        # a few degenerate resamples (constant input): take the percentiles of the defined ones
        dist = np.asarray(res.bootstrap_distribution, dtype=float)
        dist = dist[np.isfinite(dist)]
        if len(dist) < 0.9 * n_resamples:
            return None
        lo, hi = (float(np.percentile(dist, q)) for q in (100 * (1 - level) / 2, 100 * (1 + level) / 2))
    return lo, hi


def pearson(pred, gold) -> float | None:
    return correlations(pred, gold)["pearson"]


def spearman(pred, gold) -> float | None:
    return correlations(pred, gold)["spearman"]


def kendall(pred, gold) -> float | None:
    return correlations(pred, gold)["kendall"]


_VECTORISED = {mean: "mean", pearson: "pearson", spearman: "spearman", kendall: "kendall"}


# --------------------------------------------------------------------------- agreement


def krippendorff_alpha(samples: Sequence[Sequence[float | None]]) -> float | None:
    """Interval Krippendorff's alpha; ``samples[i]`` = the judge's scores for item i (None = missing).

    The judge's k samples play the raters.  Items with fewer than two values do not count.
    """
    import numpy as np

    if not samples:
        return None
    k = max(len(s) for s in samples)
    data = np.full((k, len(samples)), np.nan)
    for j, s in enumerate(samples):
        for i, v in enumerate(s):
            if v is not None:
                data[i, j] = float(v)
    usable = (~np.isnan(data)).sum(axis=0) >= 2
    if usable.sum() < 1:
        return None
    values = data[:, usable]
    if len(np.unique(values[~np.isnan(values)])) < 2:
        return None  # no variation at all: alpha is undefined
    try:
        import krippendorff
    except ImportError:
        return _clean(_alpha_interval(values))
    return _clean(krippendorff.alpha(reliability_data=values, level_of_measurement="interval"))


def _alpha_interval(data) -> float:
    """Interval alpha from the pairable values: 1 - D_o / D_e (Krippendorff 2011)."""
    import numpy as np

    units = [col[~np.isnan(col)] for col in data.T]
    units = [u for u in units if len(u) >= 2]
    all_vals = np.concatenate(units)
    n = len(all_vals)
    d_o = 0.0
    for u in units:
        diff = (u[:, None] - u[None, :]) ** 2
        d_o += diff.sum() / (len(u) - 1)
    d_o /= n
    d_e = ((all_vals[:, None] - all_vals[None, :]) ** 2).sum() / (n * (n - 1))
    return 1.0 - d_o / d_e


def position_consistency(first: Sequence[str | None], second: Sequence[str | None]) -> dict:
    """Pairs judged in both orders: ``first[i]`` / ``second[i]`` name the winner *by identity*
    (e.g. "chosen"/"rejected", already mapped back from A/B), None when unparsed.

    ``consistency`` counts agreeing pairs over all pairs (an unparsed verdict is inconsistent);
    ``consistency_parsed`` only over pairs with both verdicts parsed.
    """
    both = [(a, b) for a, b in zip(first, second) if a is not None and b is not None]
    agree = sum(1 for a, b in both if a == b)
    return {
        "consistency": agree / len(first) if first else None,
        "consistency_parsed": agree / len(both) if both else None,
        "pairs": len(first),
        "pairs_parsed": len(both),
    }


def both_orders_agreement(first: Sequence[str | None], second: Sequence[str | None],
                          ties: Sequence[bool]) -> dict:
    """Auto-J's pairwise "agreement" over pairs judged in both orders.

    ``first[i]`` / ``second[i]``: the winner by identity ("chosen"/"rejected", None when unparsed) in
    each order; ``ties[i]``: the gold label is a tie.  The two verdicts combine into one: the winner
    when both orders name it, "tie" when they disagree, nothing when either failed to parse.

    ``agreement_no_tie``: pairs without a gold tie whose combined verdict is "chosen" (both orders
    right), over all such pairs.  ``agreement_with_tie``: all pairs, a gold tie being right when the
    orders disagree.  Unparsed verdicts count as wrong.  None when there are no pairs.
    """
    combined = []
    for a, b in zip(first, second):
        combined.append(None if a is None or b is None else (a if a == b else "tie"))
    no_tie = [c == "chosen" for c, t in zip(combined, ties) if not t]
    with_tie = [c == ("tie" if t else "chosen") for c, t in zip(combined, ties)]
    return {
        "agreement_no_tie": sum(no_tie) / len(no_tie) if no_tie else None,
        "agreement_with_tie": sum(with_tie) / len(with_tie) if with_tie else None,
        "agreement_pairs": len(with_tie),
    }


def transitivity(edges: Sequence[tuple[str, str, str]]) -> dict:
    """``edges``: (group, winner, loser) verdicts.  A triad is three responses of one group whose
    three pairs were all judged; it is transitive when its verdicts form no cycle."""
    from itertools import combinations

    by_group: dict[str, dict[frozenset, str]] = {}
    for g, w, lo in edges:
        if w == lo:
            continue
        by_group.setdefault(g, {})[frozenset((w, lo))] = w
    triads = transitive = 0
    for verdicts in by_group.values():
        nodes = sorted({x for pair in verdicts for x in pair})
        for a, b, c in combinations(nodes, 3):
            pairs = [frozenset((a, b)), frozenset((b, c)), frozenset((a, c))]
            if not all(p in verdicts for p in pairs):
                continue
            triads += 1
            wins = {a: 0, b: 0, c: 0}
            for p in pairs:
                wins[verdicts[p]] += 1
            if sorted(wins.values()) == [0, 1, 2]:  # a cycle gives 1, 1, 1
                transitive += 1
    return {"transitivity": transitive / triads if triads else None, "triads": triads}
