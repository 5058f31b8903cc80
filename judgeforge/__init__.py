"""judgeforge: fine-tune, merge, evaluate and serve LLM judges (Prometheus 2 and your own).

Light at import time: heavy libraries (torch, transformers, DeepSpeed) load only when a
stage runs.
"""

import os as _os

__version__ = "0.1.0"

# In a source checkout that is on sys.path but not installed (e.g. a GPU machine with only
# PYTHONPATH set), train/, merge/ and eval/ sit beside this package: let them import as
# judgeforge.train / .merge / .eval, exactly as pyproject's package-dir maps them.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.exists(_os.path.join(_root, "pyproject.toml")) and _os.path.exists(
    _os.path.join(_root, "train", "__init__.py")
):
    __path__.append(_root)  # noqa: F821 - the package's own __path__

__all__ = ["__version__", "Judge"]


def __getattr__(name):
    if name == "Judge":
        from judgeforge.judge import Judge

        return Judge
    raise AttributeError(f"module 'judgeforge' has no attribute {name!r}")
