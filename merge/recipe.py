"""The merge recipe: which experts, which method, which weights and parameters, where to write.

```yaml
method: linear                 # any mergekit method: judgeforge merge --list-methods
models: [experts/absolute, experts/relative]   # HF model folders, LoRA adapter folders or hub ids
weights: [1.0, 1.0]            # one per model (methods with a weight parameter)
base: null                     # base model (task_arithmetic, ties, dare_*, della*, ...)
parameters: {normalize: true}  # method parameters; a list gives one value per model
dtype: bfloat16                # merge dtype (mergekit's dtype:); null keeps the inputs'
output: judges/my-judge
```

Every key can be overridden on the command line (``--weights 0.3,0.7``, ``--parameters.density 0.9``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from judgeforge.devices import dtype_name
from judgeforge.errors import UserError, did_you_mean
from judgeforge.weights import is_lora_adapter


def _f(default=dataclasses.MISSING, help: str = "", factory=None):
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class MergeRecipe:
    models: list[str] = _f(
        help="expert model folders (HF model or LoRA adapter), in order; the first "
        "gives the tokenizer, chat template and config"
    )
    method: str = _f("linear", "merge method, any of mergekit's (see --list-methods)")
    weights: list[float] | None = _f(None, "one weight per model (default 1.0 each)")
    base: str | None = _f(None, "base model folder for task-vector methods (task_arithmetic, ties, dare_*)")
    parameters: dict = _f(
        help="method parameters, e.g. {density: 0.9, lambda: 1.95}; a list = one per model", factory=dict
    )
    dtype: str | None = _f(None, "dtype the merge runs in (bfloat16, float16, float32); null = the inputs'")
    out_dtype: str | None = _f(None, "dtype of the written weights; null = the merge dtype")
    output: str | None = _f(None, "output folder (must not exist unless force)")
    force: bool = _f(False, "replace an existing output folder")
    seed: int = _f(42, "random seed (DARE / DELLA masks)")
    engine: Literal["auto", "fast", "mergekit"] = _f(
        "auto", "auto: linear merges take the streaming fast path, others mergekit; or force one"
    )
    device: str = _f("auto", "where the arithmetic runs: auto (GPU if any), cpu, cuda, cuda:N")
    lora_base: str | None = _f(
        None, "base model folder for LoRA experts (default: their adapter_config.json)"
    )
    push_to_hub: bool = _f(False, "upload the merged folder (with its card) to hub_model_id")
    hub_model_id: str | None = _f(None, "the hub repository to push to (owner/name)")
    hub_private_repo: bool = _f(False, "create the hub repository as private")
    chunk_mb: float = _f(256.0, "fast path: host buffer per input chunk, in MiB")
    fsync: bool = _f(True, "fsync every output file before the folder is renamed into place")
    mergekit_options: dict = _f(help="extra mergekit MergeOptions, e.g. {low_cpu_memory: true}", factory=dict)
    name: str | None = _f(None, "title of the model card (default: the output folder's name)")
    chat_format: str | None = _f(
        None, "the merged judge's chat format (mistral | model | raw); default: the one the experts' "
        "chat_format.json record, which must agree"
    )

    def validate(self, where: str) -> None:
        from judgeforge.merge.methods import FIRST_IS_BASE, check_param_value, get_method

        if not self.models:
            raise UserError(f"{where}: 'models' is empty; list the expert folders to merge")
        m = get_method(self.method, where)
        self.dtype = dtype_name(self.dtype, f"{where}: dtype")
        self.out_dtype = dtype_name(self.out_dtype, f"{where}: out_dtype")
        if len(self.models) == 1 and self.base is None and not is_lora_adapter(self.models[0]):
            raise UserError(f"{where}: only one model ('{self.models[0]}') to merge, which would copy it; list "
                            "at least two experts (models: [A, B])")
        if self.seed is not None and self.seed < 0:
            raise UserError(f"{where}: seed must be an integer >= 0, got {self.seed}")
        if len(set(self.models)) != len(self.models):
            raise UserError(f"{where}: a model is listed twice in 'models'")
        if self.base is not None and self.base in self.models:
            raise UserError(
                f"{where}: base '{self.base}' is also listed in 'models'; list it only under 'base'"
            )
        if self.base is not None and not m.uses_base:
            raise UserError(
                f"{where}: method '{m.name}' does not use a base model; remove 'base' "
                "(task_arithmetic, ties, dare_linear, ... use one)"
            )
        if m.base == "required" and self.base is None and m.name not in FIRST_IS_BASE:
            raise UserError(
                f"{where}: method '{m.name}' needs a base model; set base: /path/to/base (--base)"
            )
        n_inputs = len(self.models) + (self.base is not None)
        if n_inputs < m.min_inputs or (m.max_inputs is not None and n_inputs > m.max_inputs):
            want = (
                f"exactly {m.min_inputs}"
                if m.min_inputs == m.max_inputs
                else f"at least {m.min_inputs}" + (f" and at most {m.max_inputs}" if m.max_inputs else "")
            )
            raise UserError(f"{where}: method '{m.name}' takes {want} models (base included), got {n_inputs}")

        params = dict(self.parameters or {})
        if "weight" in params:
            raise UserError(
                f"{where}: give weights with 'weights: [..]' (one per model), not parameters.weight"
            )
        known = {p.name for p in m.params}
        for key in params:
            if key not in known:
                raise UserError(
                    f"{where}: method '{m.name}' has no parameter '{key}'{did_you_mean(key, known)}; "
                    f"it takes: {', '.join(sorted(known)) or 'none'}"
                )
        for key, value in params.items():
            self.parameters[key] = check_param_value(m.name, key, value, where)
            if key in m.per_model and isinstance(value, list) and len(value) != len(self.models):
                raise UserError(
                    f"{where}: parameters.{key} has {len(value)} values for {len(self.models)} models; "
                    "give one per model or a single value"
                )
        if m.param("weight") is None:
            if self.weights is not None:
                raise UserError(
                    f"{where}: method '{m.name}' takes no weights; remove 'weights' (see its "
                    f"parameters: {', '.join(sorted(known)) or 'none'})"
                )
        else:
            if self.weights is not None and len(self.weights) != len(self.models):
                raise UserError(
                    f"{where}: {len(self.weights)} weights for {len(self.models)} models; give one "
                    "weight per model, in the order of 'models'"
                )
            normalize = params.get("normalize", m.default("normalize"))
            normalize = (
                params.get("normalize_weights", m.default("normalize_weights"))
                if normalize is None
                else normalize
            )
            if normalize and self.weights is not None and abs(sum(self.weights)) < 1e-8:
                raise UserError(
                    f"{where}: weights {self.weights} sum to zero, but method '{m.name}' divides by "
                    "their sum (normalize: true); change the weights or set parameters.normalize: false"
                )
        for p in m.params:
            if p.required and p.name != "weight" and p.name not in params:
                raise UserError(
                    f"{where}: method '{m.name}' needs parameter '{p.name}' (e.g. --{p.name} 0.5)"
                )
        if self.engine == "fast" and m.name != "linear":
            raise UserError(
                f"{where}: engine 'fast' does only linear merges; use engine: auto or mergekit for '{m.name}'"
            )
        if self.chunk_mb <= 0:
            raise UserError(f"{where}: chunk_mb must be positive")
        if self.chat_format is not None:
            from judgeforge.format.chat import check_format

            check_format(self.chat_format, f"{where}: chat_format")
        if self.push_to_hub or self.hub_model_id:
            from judgeforge.hub import check_repo_id

            if self.push_to_hub and not self.hub_model_id:
                raise UserError(f"{where}: push_to_hub needs hub_model_id (owner/name); set --hub_model_id")
            check_repo_id(self.hub_model_id, f"{where}: hub_model_id")

    @property
    def resolved_weights(self) -> list[float] | None:
        from judgeforge.merge.methods import get_method

        if get_method(self.method).param("weight") is None:
            return None
        return list(self.weights) if self.weights is not None else [1.0] * len(self.models)
