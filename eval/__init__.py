"""judgeforge.eval: evaluate judges on the Prometheus 2 benchmarks (and your own).

Modules: ``benchmarks`` (the eight benchmarks, fetching, users' files), ``runner`` (``evaluate``,
``EvalConfig``), ``prompt_variants`` (what each job sends), ``cache``, ``scoring`` / ``metrics``, ``report``, ``cli``.
The generation backends it uses live in the core, :mod:`judgeforge.backends`.
See docs/evaluation.md.
"""
