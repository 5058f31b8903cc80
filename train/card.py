"""The model card (README.md) of a trained expert, in the Hub's conventions: ``base_model``,
``datasets``, ``library_name``, ``tags`` and, when the folder holds an eval ``report.json``, the numbers."""

from __future__ import annotations

from pathlib import Path

from judgeforge.hub import card, is_hub_id, read_report

MODE = {"absolute": "absolute grading (feedback + a 1-5 score)", "relative": "relative grading (feedback + A or B)",
        "joint": "absolute and relative grading"}


def expert_card(recipe, results: dict, folder: Path) -> str:
    import yaml

    from judgeforge.config import to_dict

    base = recipe.model if recipe.model and is_hub_id(recipe.model) and not Path(recipe.model).exists() else None
    datasets = [d for d in recipe.dataset_sources() if not d.startswith("mini:") and is_hub_id(d)
                and not Path(d).exists()]
    meta = {
        "base_model": base,
        "datasets": datasets,
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["judgeforge", "llm-as-a-judge", "prometheus", f"{recipe.expert}-grading",
                 *(["lora"] if recipe.lora is not None else [])],
    }
    name = Path(recipe.output_dir).name
    start = f"`{recipe.model}`" if recipe.model else "a randomly initialised model (init_from_config)"
    body = [
        f"# {name}",
        "",
        f"A Prometheus 2-style {recipe.expert} expert judge ({MODE[recipe.expert]}), fine-tuned from {start} "
        "with judgeforge.",
        "",
        f"- data: {', '.join(f'`{d}`' for d in recipe.dataset_sources())}",
        f"- steps: {results.get('global_step')}, rows seen: {results.get('rows_seen')}, "
        f"final train loss: {results.get('train_loss', float('nan')):.4f}",
        "",
        "## Recipe",
        "",
        "Reproduce with `judgeforge train train_recipe.yaml` (this file, beside the weights):",
        "",
        "```yaml",
        yaml.safe_dump(to_dict(recipe), sort_keys=False).rstrip(),
        "```",
    ]
    return card(meta, body, name=name, report=read_report(folder / "report.json"))
