"""``judgeforge train RECIPE.yaml [--key value ...]``: fine-tune one expert judge.

Examples::

    judgeforge train configs/train/tiny-cpu.yaml                         # tiny model, CPU, ~1 minute
    judgeforge train configs/train/prometheus2-7b-absolute.yaml --output_dir runs/abs
    deepspeed --num_gpus 8 -m judgeforge.cli train configs/train/prometheus2-7b-relative.yaml
    scripts/train.sh configs/train/prometheus2-7b-joint.yaml             # picks the launcher

Every recipe key can be overridden: ``--learning_rate 2e-5``, ``--lora.r 64``,
``--datasets a.jsonl,b.jsonl``, ``--packing false``.  The recipe is checked before anything
heavy loads; a mistake is one line on stderr and exit status 1.
"""

from __future__ import annotations

import os
import sys

from judgeforge.errors import UserError

USAGE = """usage: judgeforge train [RECIPE.yaml] [--key value ...]

Fine-tune an expert judge (absolute, relative or joint) from a YAML recipe.
Recipes: configs/train/ (prometheus2-7b-{absolute,relative,joint}.yaml, the 8x7B LoRA ones,
tiny-cpu.yaml).  Launch on several GPUs/nodes with scripts/train.sh (see docs/training.md).

recipe keys (override any with --key value; nested: --lora.r 64):
"""


def _strip_launcher_args(argv: list[str]) -> list[str]:
    """Drop ``--local_rank=N`` / ``--local-rank N`` that the deepspeed launcher (and old
    torch.distributed.launch) put first; LOCAL_RANK is in the environment as well."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith(("--local_rank", "--local-rank")):
            if "=" in a:
                value = a.split("=", 1)[1]
            else:
                value = argv[i + 1] if i + 1 < len(argv) else "0"
                i += 1
            os.environ.setdefault("LOCAL_RANK", value)
        else:
            out.append(a)
        i += 1
    return out


def _help_text() -> str:
    from judgeforge.config import help_for
    from judgeforge.train.recipe import LoraRecipe, TrainRecipe

    lora = "\n".join(
        "  " + line.replace("  --", "  --lora.", 1) for line in help_for(LoraRecipe).splitlines()
    )
    return USAGE + help_for(TrainRecipe) + "\n\nlora keys:\n" + lora + "\n"


def _printer():
    """Training progress as plain lines on stderr (judgeforge.progress): one per ``logging_steps`` log,
    and one at least every 30 s of wall time whatever ``logging_steps`` says."""
    from judgeforge.progress import Progress

    prog = Progress(live=False)
    state = {"task": None, "loss": None, "lr": None}

    def show(event: dict) -> None:
        if os.environ.get("RANK", "0") != "0" or event.get("stage") not in ("train", "log") or "step" not in event:
            return
        if state["task"] is None:
            state["task"] = prog.task("judgeforge train", total=event.get("total_steps"), unit="steps")
        if event.get("loss") is not None:
            state["loss"] = event["loss"]
        if event.get("learning_rate") is not None:
            state["lr"] = event["learning_rate"]
        parts = []
        if state["loss"] is not None:
            parts.append(f"loss {state['loss']:.4f}")
        if state["lr"] is not None:
            parts.append(f"lr {state['lr']:.2e}")
        if event.get("tokens_per_s"):
            parts.append(f"{event['tokens_per_s']:,.0f} tok/s")
        task = state["task"]
        logged = event["stage"] == "log" and "loss" in event
        task.update(completed=event["step"], total=event.get("total_steps"), info=", ".join(parts),
                    force_line=logged and event["step"] != state.get("last"))
        if logged:
            state["last"] = event["step"]

    return show


def main(argv: list[str]) -> int:
    argv = _strip_launcher_args(list(argv))
    if any(a in ("-h", "--help") for a in argv):
        print(_help_text(), end="")
        return 0
    path = None
    if argv and not argv[0].startswith("--"):
        path, argv = argv[0], argv[1:]
    if path is None and not argv:
        raise UserError("give a recipe: judgeforge train configs/train/tiny-cpu.yaml (see --help)")
    from judgeforge.train.recipe import load

    recipe = load(path, argv)
    from judgeforge.train.run import train

    final = train(recipe, progress=_printer())
    _close_process_group()  # on success only: a failed rank exits at once and the launcher stops the rest
    if os.environ.get("RANK", "0") == "0":
        print(final)
    return 0


def _close_process_group() -> None:
    """Take the process group down while Python still runs.  Left to the interpreter's exit, gloo's
    worker threads could be destroyed still joinable ("terminate called without an active exception",
    SIGABRT) after a run that had finished and written everything."""
    import sys

    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    try:
        dist.barrier()  # no process leaves while another still talks to it
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":  # `python -m judgeforge.train.cli` (what the launchers in scripts/ run)
    from judgeforge.devices import quiet_deepspeed_on_cpu
    from judgeforge.errors import run_command

    quiet_deepspeed_on_cpu()
    sys.exit(run_command("judgeforge.train.cli", sys.argv[1:]))
