"""Access to the official ``prometheus-eval`` 0.1.20 strings and parser (a test-only dependency).

Only its ``prompts.py`` and ``parser.py`` are loaded, straight from the installed files:
the package's ``__init__`` imports litellm/vllm, which the tests do not need.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REASON = (
    "prometheus-eval==0.1.20 is a test-only dependency; install it with "
    "'pip install --no-deps prometheus-eval==0.1.20' (.ci/run does)"
)


def _load(name: str):
    spec = importlib.util.find_spec("prometheus_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(REASON)
    path = Path(list(spec.submodule_search_locations)[0]) / f"{name}.py"
    mod_spec = importlib.util.spec_from_file_location(f"_official_{name}", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


def official_prompts():
    return _load("prompts")


def official_parser():
    return _load("parser")
