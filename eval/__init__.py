"""judgeforge.eval: evaluate judges on the Prometheus 2 benchmarks (and your own).

Modules: ``backends`` (the judge-backend interface, ``generate_parsed``), ``hf_backend`` /
``fastgen`` (transformers; the fast engine), ``openai_backend``, ``vllm_backend``,
``benchmarks`` (the eight benchmarks, fetching, users' files), ``runner`` (``evaluate``,
``EvalConfig``), ``cache``, ``scoring`` / ``metrics``, ``report``, ``cli``.
See docs/evaluation.md.
"""
