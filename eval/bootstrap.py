"""Vectorised percentile bootstrap for the paper's statistics (mean, Pearson, Spearman, Kendall tau-b).

:func:`judgeforge.eval.metrics.bootstrap_ci` used to call ``scipy.stats.bootstrap`` with
``vectorized=False``: one Python call per resample, and each correlation call computed all
three correlations.  Here one set of resamples serves every statistic and each statistic is
a few matrix products over the resamples' *counts*:

* the resamples are scipy's own: ``rng.integers(0, n, (n_resamples, n))`` from
  ``np.random.default_rng(seed)`` (what ``scipy.stats.bootstrap(..., paired=True)`` draws),
  turned into a counts matrix ``C`` (resample x item: how often each item was drawn);
* mean: ``C @ x / n``;
* Pearson: weighted moments ``C @ x``, ``C @ x**2``, ``C @ (x*y)`` of the centred data;
* Spearman: the average rank of item ``a`` inside a resample is
  ``sum_b C[b] * ([x_b < x_a] + [x_b == x_a] / 2) + 1/2``, one product with a fixed
  ``n x n`` matrix, then Pearson of the ranks weighted by ``C``;
* Kendall tau-b: with ``Sx[a, b] = sign(x_a - x_b)``, concordant minus discordant pairs of a
  resample is ``c' (Sx * Sy) c / 2`` and the pairs untied in x are ``c' |Sx| c / 2``.

A resample whose x or y is constant gets NaN, as the unvectorised statistic did (our
``correlations`` returns None there); the interval is then taken exactly as before.
``tests/test_eval_metrics.py`` checks the intervals against ``scipy.stats.bootstrap`` to the seed.
"""

from __future__ import annotations

STATISTICS = ("mean", "pearson", "spearman", "kendall")


def resample_counts(n: int, n_resamples: int, seed: int):
    """The counts matrix of scipy's paired resamples for ``np.random.default_rng(seed)``."""
    import numpy as np

    idx = np.random.default_rng(seed).integers(0, n, (n_resamples, n))
    flat = (idx + n * np.arange(n_resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=n_resamples * n).reshape(n_resamples, n).astype(float)


def _constant_in_resample(C, x):
    """Per resample: whether every drawn item has the same value."""
    import numpy as np

    drawn = C > 0
    return np.where(drawn, x, np.inf).min(axis=1) == np.where(drawn, x, -np.inf).max(axis=1)


def _weighted_pearson(C, X, Y, n: int):
    """Row-wise Pearson of ``X`` and ``Y`` (1-D: shared by every row; 2-D: one row each) weighted by ``C``."""
    import numpy as np

    mx = (C * X).sum(axis=1, keepdims=True) / n if X.ndim == 2 else (C @ X)[:, None] / n
    my = (C * Y).sum(axis=1, keepdims=True) / n if Y.ndim == 2 else (C @ Y)[:, None] / n
    dx, dy = X - mx, Y - my
    sxy = (C * dx * dy).sum(axis=1)
    sxx = (C * dx * dx).sum(axis=1)
    syy = (C * dy * dy).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    return np.clip(r, -1.0, 1.0)


def _ranks(C, x):

    below = (x[:, None] < x[None, :]).astype(float) + 0.5 * (x[:, None] == x[None, :])
    return C @ below + 0.5  # (resample, item): the item's average rank inside the resample


def distribution(name: str, data, C):
    """The bootstrap distribution (one value per resample) of statistic ``name`` over counts ``C``."""
    import numpy as np

    x = np.asarray(data[0], dtype=float)
    n = len(x)
    if name == "mean":
        return C @ x / n
    y = np.asarray(data[1], dtype=float)
    constant = _constant_in_resample(C, x) | _constant_in_resample(C, y)
    if name == "pearson":
        out = _weighted_pearson(C, x - x.mean(), y - y.mean(), n)
    elif name == "spearman":
        out = _weighted_pearson(C, _ranks(C, x), _ranks(C, y), n)
    elif name == "kendall":
        sx, sy = np.sign(x[:, None] - x[None, :]), np.sign(y[:, None] - y[None, :])
        num = ((C @ (sx * sy)) * C).sum(axis=1)
        ux = ((C @ np.abs(sx)) * C).sum(axis=1)
        uy = ((C @ np.abs(sy)) * C).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.clip(num / np.sqrt(ux) / np.sqrt(uy), -1.0, 1.0)
    else:
        raise ValueError(f"unknown bootstrap statistic '{name}'; use one of {', '.join(STATISTICS)}")
    out = np.where(constant, np.nan, out)
    return out


def interval(dist, n_resamples: int, level: float) -> tuple[float, float] | None:
    """The percentile interval, as ``scipy.stats.bootstrap(method="percentile")`` plus our NaN rule."""
    import numpy as np

    alpha = (1 - level) / 2
    if np.isfinite(dist).all():
        lo, hi = np.quantile(dist, [alpha, 1 - alpha])
        return float(lo), float(hi)
    # a few degenerate resamples (constant input): take the percentiles of the defined ones
    dist = dist[np.isfinite(dist)]
    if len(dist) < 0.9 * n_resamples:
        return None
    lo, hi = (float(np.percentile(dist, q)) for q in (100 * alpha, 100 * (1 - alpha)))
    return lo, hi


def bootstrap_intervals(names, data, *, n_resamples: int = 1000, seed: int = 0,
                        level: float = 0.95) -> dict[str, tuple[float, float] | None]:
    """``{name: interval}`` for several statistics over one set of resamples (the same as one call each)."""
    import numpy as np

    n = len(data[0])
    if n < 2 or n_resamples <= 0:
        return dict.fromkeys(names)
    C = resample_counts(n, n_resamples, seed)
    return {name: interval(np.asarray(distribution(name, data, C), dtype=float), n_resamples, level)
            for name in names}
