"""``judgeforge merge``: merge expert judges from a recipe or from the command line.

    judgeforge merge configs/merge/prometheus2-7b-linear.yaml [--key value ...]
    judgeforge merge --method linear --weights 0.5,0.5 ABS_EXPERT REL_EXPERT -o OUT [--force]
    judgeforge merge --method dare_linear --base BASE --density 0.9 --lambda 1.95 ABS REL -o OUT
    judgeforge merge --list-methods

Any other ``--name value`` is a recipe key (``--chunk-mb 64``) or a method parameter
(``--epsilon 0.1`` for della); ``judgeforge merge --list-methods`` shows each method's.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from judgeforge.cli_args import ArgumentParser
from judgeforge.errors import UserError


def _parser() -> argparse.ArgumentParser:
    from judgeforge.config import help_for
    from judgeforge.merge.recipe import MergeRecipe

    p = ArgumentParser(
        prog="judgeforge merge",
        description="Merge expert judges (any mergekit method; linear merges stream at disk speed).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="recipe keys (YAML, or --key value on the command line):\n"
        + help_for(MergeRecipe)
        + "\n\nexamples:\n  judgeforge merge --weights 0.5,0.5 experts/abs experts/rel -o judges/linear\n"
        "  judgeforge merge configs/merge/prometheus2-7b-linear.yaml --models experts/abs,experts/rel\n"
        "  judgeforge merge --list-methods",
    )
    S = argparse.SUPPRESS
    p.add_argument("inputs", nargs="*", help="a recipe YAML, or the expert model folders to merge (in order)")
    p.add_argument("-o", "--output", default=S, help="output folder (must not exist unless --force)")
    p.add_argument("--method", default=S, help="merge method (default linear); see --list-methods")
    p.add_argument("--weights", default=S, help="comma-separated weights, one per model (e.g. 0.5,0.5)")
    p.add_argument("--base", default=S, help="base model folder (task_arithmetic, ties, dare_*, della*)")
    p.add_argument("--density", type=float, default=S, help="fraction of each task vector KEPT (DARE: 1 - p)")
    p.add_argument(
        "--lambda",
        dest="lambda_",
        metavar="LAMBDA",
        type=float,
        default=S,
        help="scale of the merged task vector",
    )
    p.add_argument("--t", type=float, default=S, help="slerp interpolation factor (0 = first model)")
    p.add_argument("--normalize", default=S, choices=("true", "false"), help="divide by the weights' sum")
    p.add_argument("--dtype", default=S, help="merge dtype: bf16, fp16, fp32 (default: the inputs')")
    p.add_argument("--out-dtype", default=S, help="dtype of the written weights (default: the merge dtype)")
    p.add_argument("--seed", type=int, default=S, help="random seed for DARE/DELLA masks (default 42)")
    p.add_argument(
        "--engine",
        default=S,
        choices=("auto", "fast", "mergekit"),
        help="auto: linear -> streaming fast path, others -> mergekit; or force one",
    )
    p.add_argument("--device", default=S, help="auto (GPU if any), cpu, cuda, cuda:N")
    p.add_argument("--lora-base", default=S, help="base model folder for LoRA experts")
    p.add_argument("--chat_format", "--chat-format", default=S, choices=("mistral", "model", "raw"),
                   help="the merged judge's chat format (default: the experts' chat_format.json, which must agree)")
    p.add_argument("--force", action="store_true", default=S, help="replace an existing output folder")
    p.add_argument("--list-methods", action="store_true", help="list the merge methods and their parameters")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout (output, engine, inputs, "
                   "method, weights, dtype, bytes, seconds, hub url) instead of the output path")
    return p


def _split_unknown(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[list[str], list[str]]:
    """Separate ``--name value`` pairs that argparse does not know (recipe keys, method parameters)."""
    known = set(parser._option_string_actions)
    rest, extra = [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and a != "--" and a.split("=", 1)[0] not in known:
            if "=" in a:
                extra.append(a)
            else:
                if i + 1 >= len(argv):
                    raise UserError(f"command line: {a} needs a value")
                extra += [a, argv[i + 1]]
                i += 1
        else:
            rest.append(a)
        i += 1
    return rest, extra


def _from_mergekit_yaml(data: dict, where: str) -> dict:
    """A mergekit YAML (merge_method: + models:) as a judgeforge recipe mapping."""
    unsupported = [
        k for k in ("slices", "modules", "tokenizer", "tokenizer_source", "chat_template") if data.get(k)
    ]
    if unsupported:
        raise UserError(
            f"{where}: mergekit key '{unsupported[0]}' is not supported by judgeforge merge; run "
            "mergekit-yaml on this file directly"
        )
    models = data.get("models") or []
    out: dict = {"method": data["merge_method"], "parameters": dict(data.get("parameters") or {})}
    base = data.get("base_model")
    entries = []
    for m in models:
        entry = m if isinstance(m, dict) else {"model": m}
        if base is not None and entry.get("model") == base:
            continue  # the base is given once, under base
        entries.append(entry)
    out["models"] = [e["model"] for e in entries]
    if base is not None:
        from judgeforge.merge.methods import FIRST_IS_BASE

        if data["merge_method"] in FIRST_IS_BASE:
            out["models"] = [base] + out["models"]
        else:
            out["base"] = base
    per: dict[str, list] = {}
    for i, e in enumerate(entries):
        for k, v in (e.get("parameters") or {}).items():
            per.setdefault(k, [None] * len(entries))[i] = v
    for k, vals in per.items():
        if any(v is None for v in vals):
            raise UserError(f"{where}: parameter '{k}' is set for some models but not all; set it for each")
        if k == "weight":
            out["weights"] = vals
        else:
            out["parameters"][k] = vals
    for k in ("dtype", "out_dtype"):
        if data.get(k):
            out[k] = data[k]
    return out


def build_recipe(argv: list[str]):
    """Parse ``argv`` into a checked :class:`MergeRecipe` (or None for --list-methods)."""
    from judgeforge.config import build, deep_update, parse_overrides, read_yaml
    from judgeforge.merge.recipe import MergeRecipe

    parser = _parser()
    rest, extra = _split_unknown(parser, argv)
    ns = parser.parse_args(rest)
    if ns.list_methods:
        return None
    args = vars(ns)
    inputs = args.pop("inputs")
    args.pop("list_methods")
    args.pop("json")

    data: dict = {}
    where = "command line"
    if len(inputs) == 1 and inputs[0].endswith((".yaml", ".yml")) and not Path(inputs[0]).is_dir():
        where = inputs[0]
        data = read_yaml(inputs[0])
        if "merge_method" in data:
            data = _from_mergekit_yaml(data, where)
    elif inputs:
        data["models"] = inputs
    cli: dict = {}
    params: dict = {}
    for key, value in args.items():
        if key == "lambda_":
            params["lambda"] = value
        elif key in ("density", "t", "normalize"):
            params[key] = value == "true" if key == "normalize" else value
        elif key == "weights":
            try:
                cli["weights"] = [float(w) for w in str(value).split(",") if w.strip()]
            except ValueError:
                raise UserError(
                    f"command line: --weights {value}: give numbers separated by commas, e.g. 0.5,0.5"
                ) from None
        else:
            cli[key] = value
    if extra:
        fields = {f.name for f in dataclasses.fields(MergeRecipe)}
        for key, value in parse_overrides(extra).items():
            if key in fields:
                cli[key] = value
            else:
                params[key] = value
    if params:
        cli["parameters"] = params
    data = deep_update(data, cli)
    if "models" not in data:
        raise UserError(
            "nothing to merge: give a recipe YAML or the expert folders, e.g. "
            "judgeforge merge --weights 0.5,0.5 ABS REL -o OUT"
        )
    return build(MergeRecipe, data, where)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe = build_recipe(argv)
    if recipe is None:
        from judgeforge.merge.methods import describe_methods

        print("merge methods (from mergekit's registry):")
        print(describe_methods())
        return 0
    from judgeforge.merge.core import merge

    out = merge(recipe, command="judgeforge merge " + shlex.join([a for a in argv if a != "--json"]))
    if "--json" in argv:
        import json

        from judgeforge.merge.core import LAST_STATS

        print(json.dumps(summary(recipe, out, LAST_STATS), indent=2))
    else:
        print(out)
    return 0


def summary(recipe, out, stats: dict) -> dict:
    """What ``--json`` prints: the merge as done, machine-readable."""
    return {"output": str(out), "method": recipe.method, "models": list(recipe.models), "base": recipe.base,
            "weights": recipe.resolved_weights, "parameters": dict(recipe.parameters or {}),
            "dtype": recipe.dtype, "out_dtype": recipe.out_dtype, "engine": stats.get("engine"),
            "bytes_written": stats.get("bytes_written"), "seconds": round(stats.get("total_seconds", 0.0), 3),
            "hub_url": stats.get("hub_url"), "card": str(out / "README.md")}
