"""judgeforge: fine-tune, merge, evaluate and serve LLM judges (Prometheus 2 and your own).

Light at import time: heavy libraries (torch, transformers, DeepSpeed) load only when a
stage runs.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "Judge"]


def __getattr__(name):
    if name == "Judge":
        from judgeforge.judge import Judge

        return Judge
    raise AttributeError(f"module 'judgeforge' has no attribute {name!r}")
