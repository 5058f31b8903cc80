"""The ``judgeforge`` command.

Each subcommand lives in its own module with a ``main(argv) -> int`` and is imported only
when it runs, so ``judgeforge --help`` answers at once.  A :class:`UserError` anywhere
becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import sys

from judgeforge.errors import run_command  # noqa: F401 - also the launchers' entry

# name -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": ("judgeforge.pipeline.quickstart", "the whole pipeline at tiny scale on the CPU, offline (< 10 min)"),
    "data": ("judgeforge.data.cli", "validate, convert, show and split judge datasets; make mini data"),
    "train": ("judgeforge.train.cli", "fine-tune an expert judge from a YAML recipe (DeepSpeed)"),
    "merge": ("judgeforge.merge.cli", "merge expert judges (mergekit methods, fast linear path)"),
    "eval": ("judgeforge.eval.cli", "evaluate a judge on the paper's benchmarks; build reports"),
    "sweep": ("judgeforge.pipeline.sweep", "sweep merge ratios and methods in memory, with plots"),
    "serve": ("judgeforge.serve", "serve a judge over HTTP (grading and reward endpoints)"),
    "models": ("judgeforge.models", "get a real pretrained base offline (SmolLM2-135M-Instruct) as a model folder"),
}

# (command, subcommand) -> the module whose main(argv) takes it; the wings' subcommands of a core
# command are routed here, so the core never imports a wing
SUBCOMMANDS: dict[tuple[str, str], str] = {
    ("data", "synthesize"): "judgeforge.synth",
    ("data", "pair"): "judgeforge.synth",
    ("data", "from-benchmarks"): "judgeforge.pipeline.benchmark_data",  # reads with the eval stage's reader
}

USAGE = """usage: judgeforge <command> [options]

Fine-tune, merge, evaluate and serve LLM judges (Prometheus 2 and your own).

commands:
{commands}

Run 'judgeforge <command> --help' for a command's options.
"""


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
    return USAGE.format(commands=lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from judgeforge.devices import quiet_deepspeed_on_cpu, quiet_threads

    quiet_threads()  # before torch loads: idle OpenMP threads sleep instead of spinning
    quiet_deepspeed_on_cpu()  # no "Setting accelerator to CPU" warning on every command of a CPU machine
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage(), end="")
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from judgeforge import __version__

        print(f"judgeforge {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        from judgeforge.errors import did_you_mean

        print(f"judgeforge: error: unknown command '{name}'{did_you_mean(name, COMMANDS)}; "
              "run 'judgeforge --help' for the list", file=sys.stderr)
        return 2
    module = SUBCOMMANDS.get((name, argv[1] if len(argv) > 1 else ""), COMMANDS[name][0])
    return run_command(module, argv[1:])


def entry() -> None:  # pragma: no cover - console script shim
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
