"""Where the work runs (:func:`resolve_device`) and in which dtype: the one place that decides it.

bf16 is the format of the Prometheus 2 recipe and the right choice on GPUs.  On a CPU it
is only fast where the processor computes it natively (x86 ``avx512_bf16`` / ``amx_bf16``,
Arm ``bf16``): on an AVX2-only CPU (seen on an AMD EPYC, 2026-12-01) torch multiplies two
1024x1024 bf16 matrices at 0.9 GFLOP/s against 44.6 in fp32, so a bf16 CPU run is 20-50x
slower.  :func:`choose_dtype` picks bf16 where it is native and fp32 elsewhere, and says
why in one line that the commands print first.  An explicit setting always wins.

:func:`quiet_threads` keeps CPU threads from spinning: OpenMP's default wait policy
busy-waits between parallel regions, so under a busy neighbour the spinning threads take
the cores that the other work (and our own slowest thread) needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 AVX-512 BF16, Intel AMX, Arm BF16 (aarch64 "bf16")


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo ``flags`` / ``Features``); empty where unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip().lower() in ("flags", "features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def cpu_bf16_native(flags: frozenset[str] | set[str] | None = None) -> bool:
    """Whether this CPU computes bf16 natively.  ``flags`` injects the capability (tests)."""
    flags = cpu_flags() if flags is None else flags
    if any(f in flags for f in BF16_CPU_FLAGS):
        return True
    if not flags:  # no /proc/cpuinfo (macOS, Windows): ask torch, which checks CPUID itself
        try:
            import torch

            return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        except Exception:  # noqa: BLE001 - an old torch without the probes: take the safe choice
            return False
    return False


@dataclass(frozen=True)
class DtypeChoice:
    name: str  # "bfloat16" | "float32" | "float16"
    reason: str  # one line: why

    @property
    def bf16(self) -> bool:
        return self.name == "bfloat16"

    def torch_dtype(self):
        return torch_dtype(self.name)

    def line(self) -> str:
        return f"dtype: {self.name} ({self.reason})"


# Every spelling of a floating-point dtype a user may write -> torch's name for it: the one map
DTYPE_NAMES = {
    "bf16": "bfloat16", "bfloat16": "bfloat16",
    "fp16": "float16", "float16": "float16", "half": "float16",
    "fp32": "float32", "float32": "float32", "float": "float32",
    "fp64": "float64", "float64": "float64",
}
COMPUTE_DTYPES = ("bfloat16", "float16", "float32")  # what a model may compute in


def _dtype_key(value) -> str:
    return str(value).lower().removeprefix("torch.")


def dtype_name(value, where: str = "dtype") -> str | None:
    """``'bf16'`` / ``'BFloat16'`` / ``torch.bfloat16`` -> ``'bfloat16'`` (None stays None); a
    user's error (one line, with a did-you-mean) for anything that is no floating-point dtype."""
    if value is None:
        return None
    key = _dtype_key(value)
    if key not in DTYPE_NAMES:
        from judgeforge.errors import UserError, did_you_mean

        raise UserError(f"{where}: unknown dtype '{value}'{did_you_mean(key, DTYPE_NAMES)}; "
                        "use bfloat16, float16 or float32")
    return DTYPE_NAMES[key]


def torch_dtype(value, where: str = "dtype"):
    """The ``torch.dtype`` for a name: any spelling :func:`dtype_name` knows, or torch's own name of
    any dtype (``int64``, ``bool``, ``float8_e4m3fn``: what a checkpoint stores).  None stays None,
    a ``torch.dtype`` is returned as it is."""
    import torch

    if value is None or isinstance(value, torch.dtype):
        return value
    key = _dtype_key(value)
    found = getattr(torch, DTYPE_NAMES.get(key, key), None)
    if not isinstance(found, torch.dtype):
        dtype_name(value, where)  # raises the one-line error
    return found


def choose_dtype(requested: str | bool | None = "auto", *, cuda: bool | None = None,
                 flags: frozenset[str] | set[str] | None = None, what: str = "compute") -> DtypeChoice:
    """The dtype to compute in: an explicit ``requested`` as given; ``"auto"`` (or None) follows the
    hardware: bf16 on a GPU that has it, bf16 on a CPU that computes it natively, fp32 otherwise.
    ``cuda`` and ``flags`` inject the device and the CPU capability (tests)."""
    if requested not in (None, "auto"):
        if isinstance(requested, bool):  # a recipe's bf16: true / false
            name = "bfloat16" if requested else "float32"
        else:
            name = DTYPE_NAMES.get(str(requested).lower())
        if name not in COMPUTE_DTYPES:
            from judgeforge.errors import UserError

            raise UserError(f"unknown dtype {requested!r}; use auto, bf16, fp16 or fp32")
        return DtypeChoice(name, "set explicitly")
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if cuda:
        import torch

        if torch.cuda.is_bf16_supported():
            return DtypeChoice("bfloat16", "GPU with native bf16")
        return DtypeChoice("float32", "this GPU has no bf16")
    if cpu_bf16_native(flags):
        return DtypeChoice("bfloat16", "CPU with native bf16 (avx512_bf16/amx_bf16)")
    return DtypeChoice("float32", "no native bf16 on this CPU, avx512_bf16/amx_bf16 absent: bf16 would run "
                                  "20-50x slower; set bf16: true to force it")


def load_dtype(requested: str | None = "auto", *, cuda: bool, stored: str | None,
               flags: frozenset[str] | set[str] | None = None) -> DtypeChoice:
    """The dtype to load a saved model in for inference.  ``auto``: bf16 on GPUs; on a CPU the
    checkpoint's own dtype (``stored``), except 16-bit weights on a CPU without native bf16,
    which load as fp32 (same values, 20-50x faster matmuls)."""
    if requested not in (None, "auto") or cuda:
        return choose_dtype(requested, cuda=cuda, flags=flags)
    stored = DTYPE_NAMES.get(str(stored).lower(), "float32") if stored else "float32"
    stored = stored if stored in COMPUTE_DTYPES else "float32"
    if stored in ("bfloat16", "float16") and not cpu_bf16_native(flags):
        return DtypeChoice("float32", f"{stored} weights, but no native bf16 on this CPU, avx512_bf16/"
                                      "amx_bf16 absent: computing in fp32; pass dtype=bfloat16 to force it")
    return DtypeChoice(stored, "the checkpoint's dtype")


def resolve_device(device: str | None = "auto") -> str:
    """Where the work runs: ``auto`` (or None, "") -> ``cuda`` when torch sees a GPU, else ``cpu``;
    anything else as given, except a ``cuda`` device on a machine without one (a user's error)."""
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    from judgeforge.errors import UserError

    try:
        torch.device(str(device))
    except (RuntimeError, ValueError):
        raise UserError(f"device '{device}' is not a device; use auto, cpu, cuda or cuda:N") from None
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{device}' asked for, but torch sees no GPU; use --device cpu")
    return str(device)


def quiet_threads() -> None:
    """OpenMP threads that sleep instead of spinning when idle.  Call before torch is imported
    (the wait policy is read when the OpenMP runtime loads); a value the user set is kept."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


_CPU_NOTICE = "Setting accelerator to CPU"


def _drop_cpu_notice(record) -> bool:
    """DeepSpeed's warning that it found no accelerator: dropped when torch sees no GPU either, i.e. when
    judgeforge knows it runs on the CPU (the warning would only repeat that on every command)."""
    if not str(record.msg).startswith(_CPU_NOTICE):
        return True
    import sys

    torch = sys.modules.get("torch")  # DeepSpeed's logger needs torch, so it is loaded when this runs
    return torch is None or bool(torch.cuda.is_available())


def quiet_deepspeed_on_cpu() -> None:
    """Install the filter on DeepSpeed's logger before DeepSpeed loads (logging keeps it by name)."""
    import logging

    logger = logging.getLogger("DeepSpeed")
    if _drop_cpu_notice not in logger.filters:
        logger.addFilter(_drop_cpu_notice)
