"""What each merge method accepts, read from mergekit's own registry.

Nothing here lists methods by hand: a method added to mergekit works by name, with its
parameters, scopes and defaults, as soon as mergekit registers it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from judgeforge.errors import UserError, did_you_mean

# Methods whose first model is the base when no base is given (base + exactly one other model).
FIRST_IS_BASE = ("slerp", "nearswap", "arcee_fusion")


@dataclass(frozen=True)
class ParamInfo:
    name: str
    # "shared": one value for the merge; "input": one per model; "non_base": one per non-base model
    scope: str
    required: bool
    default: object


@dataclass(frozen=True)
class MethodInfo:
    name: str
    pretty: str
    reference: str | None
    base: str  # "required" | "optional" | "ignored" | "forbidden"
    min_inputs: int
    max_inputs: int | None
    params: tuple[ParamInfo, ...]

    def param(self, name: str) -> ParamInfo | None:
        return next((p for p in self.params if p.name == name), None)

    @property
    def per_model(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if p.scope != "shared")

    @property
    def uses_base(self) -> bool:
        return self.base in ("required", "optional")

    def default(self, name: str):
        p = self.param(name)
        return None if p is None or p.required else p.default


def _info(method) -> MethodInfo:
    spec = method.spec
    params = tuple(
        ParamInfo(p.name, p.scope.value, p.required, None if p.required else p.default)
        for p in spec.parameters
    )
    c = spec.contract
    return MethodInfo(
        spec.name,
        spec.pretty_name or spec.name,
        spec.reference_url,
        c.base.value,
        c.min_inputs,
        c.max_inputs,
        params,
    )


def all_methods() -> dict[str, MethodInfo]:
    from mergekit.merge_methods import registered_methods

    return {m.spec.name: _info(m) for m in registered_methods()}


def get_method(name: str, where: str = "method") -> MethodInfo:
    known = _cached_names()  # a misspelt name is answered from the cached listing, before mergekit loads
    if known is not None and name not in known:
        raise UserError(
            f"{where}: unknown merge method '{name}'{did_you_mean(name, known)}; "
            "run 'judgeforge merge --list-methods' for the list"
        )
    methods = all_methods()
    if name not in methods:
        raise UserError(
            f"{where}: unknown merge method '{name}'{did_you_mean(name, methods)}; "
            "run 'judgeforge merge --list-methods' for the list"
        )
    return methods[name]


def _cached_names() -> list[str] | None:
    path = _listing_path()
    if path is None or not path.exists():
        return None
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _listing_path():
    """Where the listing of this mergekit install is cached (None when mergekit is not installed)."""
    import importlib.util
    import os

    from judgeforge.io import sha256_text
    from judgeforge.tokenization import cache_root

    spec = importlib.util.find_spec("mergekit")  # finds the package without importing it
    if spec is None or not spec.origin:
        return None
    key = sha256_text(f"{spec.origin}:{os.stat(spec.origin).st_mtime_ns}")[:16]
    return cache_root() / f"merge-methods-{LISTING_FORMAT}-{key}.txt"


def describe_methods() -> str:
    """The ``--list-methods`` text.  Built from mergekit's registry (seconds: it imports torch and
    mergekit) once per mergekit version, then read from the cache so the listing answers at once."""
    path = _listing_path()
    if path is not None and path.exists():
        return path.read_text(encoding="utf-8")
    text = _describe(all_methods())
    if path is not None:
        try:
            from judgeforge.io import atomic_write_text

            atomic_write_text(path, text)
        except OSError:  # a read-only home: list without caching
            pass
    return text


LISTING_FORMAT = 2  # bump when _describe's wording changes, so old cached listings are not shown


def _describe(methods: dict[str, MethodInfo]) -> str:
    lines = []
    for m in sorted(methods.values(), key=lambda m: m.name):
        params = ", ".join(
            f"{p.name}{'' if p.scope == 'shared' else '[per model]'}"
            + ("" if p.required else f"={p.default}")
            for p in m.params
        )
        if m.name in FIRST_IS_BASE and m.base == "required":
            base = "base: --base, or else the first model"
        else:
            base = {
                "required": "needs --base",
                "optional": "base optional",
                "ignored": "no base",
                "forbidden": "no base",
            }[m.base]
        lines.append(f"  {m.name:<18} {m.pretty} ({base}); parameters: {params or '-'}")
    return "\n".join(lines)


UNIT_FRACTIONS = ("density",)  # parameters that are a fraction of the weights kept: (0, 1]


def check_param_value(method: str, key: str, value, where: str):
    """Validate (and coerce) one parameter value with mergekit's own type for it."""
    from mergekit.merge_methods import get

    spec = next(p for p in get(method).spec.parameters if p.name == key)
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if isinstance(v, dict):  # mergekit conditional parameter ({filter:, value:}): checked by mergekit
            out.append(v)
            continue
        try:
            checked = spec.validate(v)
        except Exception as e:  # pydantic ValidationError
            first = str(e).splitlines()[-1].strip() if str(e) else type(e).__name__
            raise UserError(
                f"{where}: parameters.{key} = {v!r} is not a valid {spec.value_type.__name__} ({first})"
            ) from None
        if isinstance(checked, float) and not math.isfinite(checked):
            raise UserError(f"{where}: parameters.{key} must be a finite number, got {v!r}")
        if key in UNIT_FRACTIONS and isinstance(checked, (int, float)) and not 0 < checked <= 1:
            raise UserError(f"{where}: parameters.{key} is the fraction of weights kept: it must be in (0, 1], "
                            f"got {v!r}")
        if key == "t" and isinstance(checked, (int, float)) and not 0 <= checked <= 1:
            raise UserError(f"{where}: parameters.t interpolates from the first model (0) to the second (1): it "
                            f"must be in [0, 1], got {v!r}")
        out.append(checked)
    return out if isinstance(value, list) else out[0]
