"""The DeepSpeed JSONs a recipe names, by path or by name, in a checkout or a wheel install."""

from __future__ import annotations

from pathlib import Path

from judgeforge.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[1]


def shipped_deepspeed_configs() -> dict[str, Path]:
    """The DeepSpeed JSONs shipped with the package (``judgeforge/train/deepspeed/``, which in the
    checkout is a link to ``configs/deepspeed/``, the one copy), by name: zero2, zero3, ..."""
    from importlib.resources import files

    folder = files("judgeforge.train") / "deepspeed"
    if not folder.is_dir():  # pragma: no cover - a broken install
        return {}
    return {f.name[: -len(".json")]: Path(str(f)) for f in folder.iterdir() if f.name.endswith(".json")}


def resolve_deepspeed_path(value: str, where: str = "recipe") -> Path:
    """A DeepSpeed JSON by path, or by name (zero2, zero3, zero3_offload) from the shipped configs;
    ``configs/deepspeed/NAME.json`` also finds the shipped copy when run outside the checkout (a
    wheel install)."""
    p = Path(value).expanduser()
    candidates = [p]
    if not p.is_absolute():
        candidates.append(REPO_ROOT / p)
    shipped = shipped_deepspeed_configs()
    if p.suffix == "" and "/" not in value and value in shipped:
        candidates.append(shipped[value])
    elif p.suffix == ".json" and p.parent.as_posix() == "configs/deepspeed" and p.stem in shipped:
        candidates.append(shipped[p.stem])
    for c in candidates:
        if c.is_file():
            import json

            try:
                data = json.loads(c.read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError) as e:
                raise UserError(f"{where}: deepspeed: '{value}' is not a readable JSON file "
                                f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); fix it or use "
                                "configs/deepspeed/zero2.json") from None
            if not isinstance(data, dict):
                raise UserError(f"{where}: deepspeed: '{value}' must be a JSON mapping of DeepSpeed settings")
            return c.resolve()
    raise UserError(
        f"{where}: deepspeed: '{value}' does not exist; use configs/deepspeed/zero2.json, zero3.json, "
        "zero3_offload.json or null"
    )
