"""Run a merge recipe end to end: check, fold LoRA experts, merge, finish the folder atomically.

Order of work (a mistake is found before anything heavy runs):

1. the recipe is checked against the method's own parameter list (mergekit's registry);
2. every input's config and safetensors headers are read and compared (architecture, vocab,
   tensor names, shapes); an existing output is refused unless ``force``;
3. LoRA experts are folded into their base (peft) in a scratch folder;
4. the weights are merged, linear by the streaming fast path, everything else by mergekit's
   ``run_merge``, into a hidden ``.OUT.partial-*`` folder beside the output;
5. the tokenizer, chat template, generation config and config of the first model, the chat
   format the experts were trained with (``chat_format.json``; experts that disagree are refused
   in step 2 unless ``chat_format`` chooses one), a model card and the resolved recipe are added,
   and the folder is renamed to ``OUT``.

A merge killed at any point leaves no ``OUT``; the next merge to the same output removes the
hidden leftovers of a killed one (they carry the dead process's id).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from judgeforge.errors import UserError
from judgeforge.io import atomic_dir
from judgeforge.merge.checkpoint import (
    INDEX_NAME,
    SINGLE_NAME,
    Checkpoint,
    check_compatible,
    inspect_checkpoint,
    is_lora_adapter,
    read_header,
)
from judgeforge.merge.lora import TOKENIZER_FILES, adapter_base, has_tokenizer, merge_lora
from judgeforge.merge.recipe import MergeRecipe

PID_FILE = ".judgeforge-merge.pid"
RECIPE_NAME = "judgeforge_merge.yaml"
LAST_STATS: dict = {}  # timings and byte counts of the latest merge in this process (benchmarks read it)
PAUSE_ENV = "JUDGEFORGE_MERGE_PAUSE"  # test hook: "shard" or "weights"; the process stops there for a kill


def _log(msg: str) -> None:
    print(f"judgeforge merge: {msg}", file=sys.stderr, flush=True)


def _pause(stage: str) -> None:
    """Test hook: announce the stage and wait (up to 120 s) so a test can kill the process here."""
    if os.environ.get(PAUSE_ENV) == stage:
        _log(f"paused at {stage}")
        time.sleep(120)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_partials(out: Path) -> list[Path]:
    """Remove the hidden partial folders of killed merges to ``out`` (same host, dead pid)."""
    removed = []
    if not out.parent.is_dir():
        return removed
    for p in out.parent.glob(f".{out.name}.partial-*"):
        marker = p / PID_FILE
        try:
            host, pid = marker.read_text().split()
            stale = host == socket.gethostname() and not _pid_alive(int(pid))
        except (OSError, ValueError):
            continue
        if stale:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    for p in out.parent.glob(f".{out.name}.lora-*"):
        marker = p / PID_FILE
        try:
            host, pid = marker.read_text().split()
            if host == socket.gethostname() and not _pid_alive(int(pid)):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
        except (OSError, ValueError):
            continue
    return removed


def _mark(folder: Path) -> None:
    (folder / PID_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")


def _check_output(out: Path, recipe: MergeRecipe, inputs: list[str]) -> None:
    from judgeforge.io import check_output_folder

    check_output_folder(recipe.output, "output")  # the text first: an empty one would be the current folder
    ro = out.resolve()
    for p in inputs:
        rp = Path(p).resolve()
        if ro == rp or rp in ro.parents or ro in rp.parents:
            raise UserError(f"output '{out}' overlaps the input '{p}'; write the merge to a new folder")
    if out.exists() and not recipe.force:
        raise UserError(
            f"output '{out}' already exists; pass --force (force: true) to replace it, or pick another -o"
        )


def _written_dtype(folder: Path) -> str | None:
    from judgeforge.merge.checkpoint import ST_DTYPES

    index = folder / INDEX_NAME
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = [SINGLE_NAME]
    header, _ = read_header(folder / files[0])
    header.pop("__metadata__", None)
    floats = sorted({v["dtype"] for v in header.values() if v["dtype"] in ("F64", "F32", "F16", "BF16")})
    return ST_DTYPES[floats[0]][0] if len(floats) == 1 else None


def _finish_folder(tmp: Path, first: Path, donors: list[Path], dtype: str | None) -> Path | None:
    """config + generation config + tokenizer + chat template of the first model that has a tokenizer."""
    cfg = json.loads((first / "config.json").read_text(encoding="utf-8"))
    if dtype:
        cfg["dtype"] = dtype
        if "torch_dtype" in cfg:
            cfg["torch_dtype"] = dtype
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    donor = next((d for d in donors if has_tokenizer(d)), None)
    for name in TOKENIZER_FILES + ("generation_config.json",):
        with contextlib.suppress(FileNotFoundError):
            (tmp / name).unlink()
    if (first / "generation_config.json").is_file():
        shutil.copy(first / "generation_config.json", tmp / "generation_config.json")
    if donor is not None:
        for name in TOKENIZER_FILES:
            if (donor / name).is_file():
                shutil.copy(donor / name, tmp / name)
    return donor


def mergekit_config(recipe: MergeRecipe, paths: list[str], base: str | None) -> dict:
    """The mergekit YAML (as a dict) equivalent to the recipe, inputs already resolved to folders."""
    from judgeforge.merge.methods import FIRST_IS_BASE, get_method

    m = get_method(recipe.method)
    weights = recipe.resolved_weights
    shared, per_model = {}, [dict() for _ in paths]
    for key, value in (recipe.parameters or {}).items():
        if key in m.per_model and isinstance(value, list):
            for i, v in enumerate(value):
                per_model[i][key] = v
        else:
            shared[key] = value
    if weights is not None:
        for i, w in enumerate(weights):
            per_model[i]["weight"] = w
    models = [{"model": p, **({"parameters": pm} if pm else {})} for p, pm in zip(paths, per_model)]
    cfg: dict = {"merge_method": m.name, "models": models}
    if base is not None:
        cfg["base_model"] = base
    elif m.name in FIRST_IS_BASE:
        cfg["base_model"] = paths[0]
    if shared:
        cfg["parameters"] = shared
    if recipe.dtype:
        cfg["dtype"] = recipe.dtype
    if recipe.out_dtype:
        cfg["out_dtype"] = recipe.out_dtype
    return cfg


def run_mergekit(
    cfg: dict, out_dir: Path, *, device: str, seed: int | None, extra: dict | None = None
) -> None:
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    try:
        config = MergeConfiguration.model_validate(cfg)
        opts = {
            "device": device,
            "cuda": device.startswith("cuda"),
            "random_seed": seed,
            "copy_tokenizer": True,
            "write_model_card": False,
            "quiet": True,
            "trust_remote_code": False,
            "safe_serialization": True,
        }
        opts.update(extra or {})
        options = MergeOptions(**opts)
    except Exception as e:  # pydantic validation of the mergekit config / options
        raise UserError(f"mergekit rejected the configuration: {str(e).splitlines()[0]}") from None
    try:
        run_merge(config, str(out_dir), options=options)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"mergekit could not merge: {e}") from None


def _fast_path_ok(recipe: MergeRecipe) -> bool:
    return (
        recipe.method == "linear"
        and recipe.engine != "mergekit"
        and set(recipe.parameters or {}) <= {"normalize"}
    )


def merge(recipe: MergeRecipe, *, command: str | None = None) -> Path:
    """Run ``recipe``; returns the finished output folder."""
    from judgeforge.devices import resolve_device

    if not recipe.output:
        raise UserError("no output folder: pass -o OUT (or output: in the recipe)")
    out = Path(recipe.output)
    named = recipe  # the inputs as the user named them (hub ids stay hub ids in the card and recipe)
    recipe = _local_inputs(recipe)
    inputs = list(recipe.models) + ([recipe.base] if recipe.base else [])
    _check_output(out, recipe, inputs)
    for p in clean_stale_partials(out):
        _log(f"removed {p}, left by an interrupted merge")
    if recipe.engine == "fast" and not _fast_path_ok(recipe):
        raise UserError("engine 'fast' takes only weights and parameters.normalize; use engine: mergekit")
    device = resolve_device(recipe.device)

    # 1) check every input before any heavy work (LoRA experts through their base's layout)
    roles = [f"model {i + 1}" for i in range(len(recipe.models))] + (["base"] if recipe.base else [])
    lora = {p: adapter_base(p, recipe.lora_base) for p in inputs if is_lora_adapter(p)}
    if recipe.lora_base and not lora:
        raise UserError(f"lora_base '{recipe.lora_base}' is given but no expert is a LoRA adapter; remove "
                        "--lora-base (lora_base:), or list the adapter folders")
    layouts: list[Checkpoint] = [inspect_checkpoint(lora.get(p, p), role) for p, role in zip(inputs, roles)]
    for p, ck in zip(inputs, layouts):
        if p in lora:
            ck.path = Path(f"{p} (LoRA on {lora[p]})")
    check_compatible(layouts)
    from judgeforge.format.chat import FORMAT_FILE, agreed_format, save_format

    chat_format = agreed_format(recipe.models, recipe.chat_format, "merge")

    use_fast = _fast_path_ok(recipe)
    scratch: Path | None = None
    t0 = time.perf_counter()
    stats: dict = {}
    try:
        with atomic_dir(out, force=recipe.force) as tmp:
            _mark(tmp)
            resolved = {}
            if lora:
                scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.lora-", dir=out.parent))
                _mark(scratch)
                for i, p in enumerate(lora):
                    _log(f"folding LoRA adapter {p} into {lora[p]}")
                    resolved[p] = merge_lora(p, scratch / f"expert-{i}", base=lora[p], dtype=recipe.dtype)
            paths = [str(resolved.get(p, p)) for p in recipe.models]
            base = str(resolved.get(recipe.base, recipe.base)) if recipe.base else None

            if use_fast:
                from judgeforge.merge.fast_linear import merge_linear

                cks = [inspect_checkpoint(p) for p in paths]
                normalize = bool((recipe.parameters or {}).get("normalize", True))
                _log(f"linear merge of {len(paths)} models on {device} (streaming fast path)")
                stats = merge_linear(
                    cks,
                    recipe.resolved_weights,
                    tmp,
                    normalize=normalize,
                    dtype=recipe.dtype,
                    out_dtype=recipe.out_dtype,
                    device=device,
                    chunk_mb=recipe.chunk_mb,
                    fsync=recipe.fsync,
                    on_shard=lambda _p: _pause("shard"),
                )
                engine = "judgeforge fast linear"
            else:
                cfg = mergekit_config(recipe, paths, base)
                _log(f"{recipe.method} merge of {len(paths)} models on {device} (mergekit)")
                run_mergekit(cfg, tmp, device=device, seed=recipe.seed, extra=recipe.mergekit_options)
                engine = "mergekit"
            _pause("weights")

            first = Path(paths[0])
            donors = [first] + [Path(p) for p in paths[1:]] + ([Path(base)] if base else [])
            dtype = _written_dtype(tmp)
            donor = _finish_folder(tmp, first, donors, dtype)
            with contextlib.suppress(FileNotFoundError):
                (tmp / FORMAT_FILE).unlink()
            if chat_format:
                save_format(tmp, chat_format)
            from judgeforge.merge.card import model_card

            (tmp / "README.md").write_text(
                model_card(
                    named,
                    out,
                    engine=engine,
                    layouts=layouts,
                    dtype=dtype,
                    seconds=time.perf_counter() - t0,
                    tokenizer_from=_label(donor, resolved, inputs),
                    command=command,
                    chat_format=chat_format,
                ),
                encoding="utf-8",
            )
            from judgeforge.config import dump_recipe

            dump_recipe(named, tmp / RECIPE_NAME)
            (tmp / PID_FILE).unlink()
            _chmod_umask(tmp)
            if recipe.fsync:
                _fsync_all(tmp)
    except FileExistsError:
        raise UserError(f"output '{out}' appeared while merging; pass --force to replace it") from None
    except (OSError, EOFError) as e:  # disk full, a shard truncated or removed while merging, ...
        raise UserError(f"merge to '{out}' failed: {e}; nothing was written") from None
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    LAST_STATS.clear()
    LAST_STATS.update(stats, engine=engine, total_seconds=time.perf_counter() - t0, output=str(out))
    _log(
        f"wrote {out} in {time.perf_counter() - t0:.1f} s"
        + (f" ({stats['bytes_written'] / 1e9:.2f} GB)" if stats else "")
    )
    if recipe.push_to_hub:
        from judgeforge.hub import push_folder

        LAST_STATS["hub_url"] = push_folder(out, recipe.hub_model_id, private=recipe.hub_private_repo)
        _log(f"pushed {out} to {recipe.hub_model_id}")
    return out


def _local_inputs(recipe: MergeRecipe) -> MergeRecipe:
    """The recipe with every hub id among its inputs replaced by its downloaded snapshot folder."""
    import dataclasses

    from judgeforge.hub import resolve_model

    models = [resolve_model(p, f"model {i + 1}") for i, p in enumerate(recipe.models)]
    base = resolve_model(recipe.base, "base") if recipe.base else None
    lora_base = resolve_model(recipe.lora_base, "lora_base") if recipe.lora_base else None
    return dataclasses.replace(recipe, models=models, base=base, lora_base=lora_base)


def _label(donor: Path | None, resolved: dict, inputs: list[str]) -> str | None:
    if donor is None:
        return None
    for orig, res in resolved.items():
        if Path(res) == donor:
            return orig
    return str(donor)


def _fsync_all(folder: Path) -> None:
    """Make every file durable before the rename publishes the folder (cheap for shards the fast path
    already synced; mergekit's own writer does not sync)."""
    for f in folder.iterdir():
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _chmod_umask(folder: Path) -> None:
    """Temporary names come with private modes (0700/0600); give the finished folder the usual ones."""
    mask = os.umask(0)
    os.umask(mask)
    folder.chmod(0o777 & ~mask)
    for f in folder.iterdir():
        if f.is_file():
            f.chmod(0o666 & ~mask)
