"""YAML recipes with CLI overrides, shared by every stage.

A recipe is a YAML mapping whose keys are the fields of a dataclass (nested dataclasses
become nested mappings).  ``--key value`` / ``--key=value`` / ``--a.b value`` on the
command line override keys.  Unknown keys, wrong types and bad values give one clear
line naming the file and the key.  The resolved recipe is written beside each output.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from pathlib import Path

from judgeforge.errors import UserError, did_you_mean


def _unique_key_loader():
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML keeps the
    last silently, so a recipe's earlier line would be ignored without a word)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen = set()
                for key_node, _ in node.value:
                    key = self.construct_object(key_node, deep=True)
                    if not isinstance(key, (str, int, float, bool)):
                        continue  # an unhashable key: the base constructor says what is wrong
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"key '{key}' is given twice in one mapping; keep one", key_node.start_mark)
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return Loader


def read_yaml(path: str | os.PathLike) -> dict:
    import yaml

    p = Path(path)
    if not p.exists():
        raise UserError(f"{path}: no such recipe file; check the path")
    if not p.is_file():
        raise UserError(f"{path}: is a folder, not a recipe file; give a YAML file")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_unique_key_loader())  # noqa: S506 - a SafeLoader
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read the recipe ({e.__class__.__name__}: {e}); give a UTF-8 YAML "
                        "file") from None
    except RecursionError:
        raise UserError(f"{path}: the recipe is nested too deeply; give a plain YAML mapping") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{loc}: invalid YAML ({getattr(e, 'problem', None) or e}); fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe must be a YAML mapping of keys to values")
    return data


def parse_overrides(argv: list[str], where: str = "command line") -> dict:
    """``["--lr", "1e-5", "--lora.r=8"]`` -> ``{"lr": 1e-05, "lora": {"r": 8}}`` (values parsed as YAML)."""
    import yaml

    out: dict = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise UserError(f"{where}: unexpected argument '{arg}'; overrides look like --key value")
        key = arg[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
        else:
            if i + 1 >= len(argv):
                raise UserError(f"{where}: --{key} needs a value")
            i += 1
            raw = argv[i]
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.replace("-", "_").split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
        i += 1
    return out


def deep_update(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_update(out[k], v)
        else:
            out[k] = v
    return out


def _strip_optional(tp):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else tp), True
    return tp, False


def _coerce(value, tp, where: str, key: str):
    tp, optional = _strip_optional(tp)
    if value is None:
        if optional:
            return None
        raise UserError(f"{where}: key '{key}' must not be empty")
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):  # e.g. bool | Literal["auto"]: the first that fits
        errors = []
        for alt in typing.get_args(tp):
            if alt is type(None):
                continue
            try:
                return _coerce(value, alt, where, key)
            except UserError as e:  # "...must be X, got V" -> X
                text = str(e)
                errors.append(text.split(" must be ", 1)[-1].split(", got ", 1)[0])
        raise UserError(f"{where}: key '{key}' must be {' or '.join(errors)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"{where}: key '{key}' must be a mapping")
        return build(tp, value, where, prefix=f"{key}.")
    if tp is typing.Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where}: key '{key}' must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise UserError(f"{where}: key '{key}' must be an integer, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        if isinstance(value, int):
            return value
        raise UserError(f"{where}: key '{key}' must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise UserError(f"{where}: key '{key}' must be a number, got {value!r}")
        number = None
        if isinstance(value, (int, float)):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
        elif isinstance(value, str):  # YAML reads 1e-5 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise UserError(f"{where}: key '{key}' must be a number, got {value!r}")
        if not math.isfinite(number):  # NaN passes every `< 0` check: no recipe number may be NaN or inf
            raise UserError(f"{where}: key '{key}' must be a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise UserError(f"{where}: key '{key}' must be text, got {value!r}")
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (typing.Any,)
        if isinstance(value, str) and "," in value:
            value = [v.strip() for v in value.split(",")]
        if item_tp is str and isinstance(value, (bool, int, float)):  # `names: 5` is no list of names
            raise UserError(f"{where}: key '{key}' must be a list of text (e.g. [a, b], or a, b), got {value!r}")
        if not isinstance(value, (list, tuple)):
            value = [value]
        return [_coerce(v, item_tp, where, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: key '{key}' must be a mapping")
        return dict(value)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise UserError(
                f"{where}: key '{key}' must be one of {', '.join(map(str, choices))}, got {value!r}"
                f"{did_you_mean(str(value), map(str, choices))}"
            )
        return value
    return value


def canonical_keys(cls, data: dict, where: str, prefix: str = "") -> dict:
    """Older key names -> their canonical names, by ``cls.KEY_ALIASES`` (``{alias: canonical}``).

    The one rule: a recipe may use either name, never both in the same mapping (one line naming the
    pair).  Each source (file, command line) is renamed on its own, so ``--epochs 2`` on the command line
    overrides ``num_train_epochs: 1`` in the file."""
    aliases = getattr(cls, "KEY_ALIASES", None) or {}
    if not aliases or not isinstance(data, dict):
        return data
    out: dict = {}
    for key, value in data.items():
        k = str(key).replace("-", "_")
        canon = aliases.get(k, k)
        if canon in out or (canon != k and canon in data):
            raise UserError(f"{where}: '{prefix}{k}' and '{prefix}{canon}' are the same key ('{k}' is the older "
                            f"alias of '{canon}'); keep only '{canon}'")
        out[canon] = value
    return out


def build(cls, data: dict, where: str, prefix: str = ""):
    """Instantiate dataclass ``cls`` from a mapping, with clear errors for unknown/ill-typed keys."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    data = canonical_keys(cls, data, where, prefix)
    kwargs = {}
    for key, value in data.items():
        k = str(key).replace("-", "_")
        if k not in fields:
            hint = getattr(cls, "unknown_key_hint", None)
            extra = hint(k) if callable(hint) else None
            if extra:
                raise UserError(f"{where}: unknown key '{prefix}{key}'; {extra}")
            raise UserError(f"{where}: unknown key '{prefix}{key}'{did_you_mean(k, fields)}; "
                            f"see the recipe reference for the keys")
        kwargs[k] = _coerce(value, hints[k], where, prefix + k)
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise UserError(f"{where}: missing required key '{prefix}{missing[0]}'")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if callable(check):
        check(where)
    return obj


def load_recipe(cls, path: str | os.PathLike | None = None, overrides: list[str] | dict | None = None,
                base: dict | None = None):
    """Recipe = ``base`` <- YAML file <- overrides; validated into ``cls``."""
    data = dict(base or {})
    where = str(path) if path else "recipe"
    data = canonical_keys(cls, data, "defaults")
    if path:
        data = deep_update(data, canonical_keys(cls, read_yaml(path), where))
    if overrides:
        extra = overrides if isinstance(overrides, dict) else parse_overrides(list(overrides))
        data = deep_update(data, canonical_keys(cls, extra, "command line"))
    return build(cls, data, where)


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def dump_recipe(obj, path: str | os.PathLike) -> None:
    import yaml

    from judgeforge.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(obj) if dataclasses.is_dataclass(obj) else obj, sort_keys=False))


def help_for(cls) -> str:
    """A key reference for ``--help``: name, default and the field's doc (``metadata['help']``)."""
    lines = []
    aliases = {v: k for k, v in (getattr(cls, "KEY_ALIASES", None) or {}).items()}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            "(required)" if f.default_factory is dataclasses.MISSING else f.default_factory()
        )
        doc = f.metadata.get("help", "")
        if f.name in aliases:
            doc += f" (alias: {aliases[f.name]})"
        lines.append(f"  --{f.name:<28} {doc} [default: {default}]")
    return "\n".join(lines)
