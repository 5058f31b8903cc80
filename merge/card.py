"""The model card (README.md) of a merged judge: what went in, how, and with which versions."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from judgeforge.hub import card, lineage, read_report
from judgeforge.merge.checkpoint import Checkpoint
from judgeforge.merge.recipe import MergeRecipe


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from judgeforge import __version__

    out = {"judgeforge": __version__}
    for pkg in ("mergekit", "torch", "transformers", "peft", "safetensors"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _fingerprint(ck: Checkpoint) -> str:
    from judgeforge.weights import fingerprint

    return fingerprint(ck)


def model_card(
    recipe: MergeRecipe,
    out: Path,
    *,
    engine: str,
    layouts: list[Checkpoint],
    dtype: str | None,
    seconds: float,
    tokenizer_from: str | None,
    command: str | None = None,
    chat_format: str | None = None,
) -> str:
    from judgeforge.merge.methods import get_method

    m = get_method(recipe.method)
    versions = _versions()
    weights = recipe.resolved_weights
    inputs = list(recipe.models) + ([recipe.base] if recipe.base else [])
    roles = [f"expert {i + 1}" for i in range(len(recipe.models))] + (["base"] if recipe.base else [])
    bases, datasets = lineage(inputs)
    meta = {"base_model": bases, "base_model_relation": "merge" if bases else None, "datasets": datasets,
            "library_name": "transformers", "pipeline_tag": "text-generation",
            "tags": ["judgeforge", "merge", "mergekit" if engine == "mergekit" else "linear-merge", "llm-as-a-judge"]}
    lines = [
        f"# {recipe.name or out.name}",
        "",
        f"A merge of {len(recipe.models)} models made with judgeforge {versions['judgeforge']} "
        f"(engine: {engine}).",
        "",
        "## Inputs",
        "",
        "| role | model | weight | fingerprint (config, headers, sampled data) |",
        "|---|---|---:|---|",
    ]
    for i, (p, role, ck) in enumerate(zip(inputs, roles, layouts)):
        w = weights[i] if weights is not None and i < len(recipe.models) else "-"
        lora = " (LoRA adapter, folded into its base with peft)" if "(LoRA on" in str(ck.path) else ""
        lines.append(f"| {role} | `{p}`{lora} | {w} | {_fingerprint(ck) if not lora else '-'} |")
    params = dict(recipe.parameters or {})
    keep = "that of the inputs"
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines += [
        "",
        "## Method",
        "",
        f"- method: `{m.name}` ({m.pretty}{', ' + m.reference if m.reference else ''})",
        f"- weights: {weights if weights is not None else 'n/a (the method takes none)'}",
        f"- parameters: {params if params else '{}'} (method defaults for the rest: "
        + ", ".join(f"{p.name}={p.default}" for p in m.params if not p.required and p.name not in params)
        + ")",
        f"- merge dtype: {recipe.dtype or keep}; written dtype: {dtype or 'mixed'}",
        f"- seed: {recipe.seed}",
        f"- tokenizer, chat template and config from: `{tokenizer_from or 'none found'}`",
        f"- chat format: {chat_format or 'none recorded (detected from the tokenizer when used)'}",
        f"- took {seconds:.1f} s; created {created}",
        "",
        "## Reproduce",
        "",
        "```",
        command or "judgeforge merge judgeforge_merge.yaml",
        "```",
        "",
        "The resolved recipe is in `judgeforge_merge.yaml` beside this card.",
        "",
        "## Versions",
        "",
    ]
    lines += [f"- {k} {v}" for k, v in versions.items()]
    return card(meta, lines, name=recipe.name or out.name, report=read_report(out / "report.json"))
