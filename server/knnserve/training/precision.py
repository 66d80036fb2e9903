"""Which arithmetic the network trains in: bfloat16 autocast where the processor has bf16 instructions, else float32.

Decided at run time, on the machine that trains: the CPU flags in ``/proc/cpuinfo`` (``avx512_bf16``
or ``amx_bf16``), or, where that file is absent, torch's own CPU capability (``AMX`` or
``AVX512_BF16`` in ``torch.backends.cpu.get_cpu_capability()``). Without those instructions torch
would emulate bf16 arithmetic, slower than float32, so ``auto`` falls back to float32 there. The
network's weights stay float32 either way (autocast runs the convolutions and matrix products in
bf16 and keeps the master weights, BatchNorm and the loss in float32), so the exported ONNX graph is
float32 and the parity check compares it with the float32 network.
"""

from __future__ import annotations

from pathlib import Path

from knnserve.errors import InvalidInputError
from knnserve.machine import CPUINFO, cpuinfo_field
from knnserve.training.config import PRECISIONS

BF16_FLAGS: frozenset[str] = frozenset({"avx512_bf16", "amx_bf16"})


def has_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """True where the processor has bf16 instructions (cpuinfo flags, else torch's CPU capability)."""
    flags = cpuinfo_field("flags", cpuinfo)  # None where /proc/cpuinfo cannot be read
    if flags is not None:
        return bool(frozenset(flags.split()) & BF16_FLAGS)
    from knnserve.training import require_torch

    capability = str(require_torch().backends.cpu.get_cpu_capability()).upper()
    return "AMX" in capability or "BF16" in capability


def resolve_precision(requested: str, cpuinfo: Path = CPUINFO) -> str:
    """``auto`` -> ``bf16`` where :func:`has_bf16`, else ``fp32``; ``bf16`` and ``fp32`` as they are."""
    if requested not in PRECISIONS:
        raise InvalidInputError("precision", f"one of {', '.join(PRECISIONS)}", repr(requested))
    if requested == "auto":
        return "bf16" if has_bf16(cpuinfo) else "fp32"
    return requested


__all__ = ["BF16_FLAGS", "has_bf16", "resolve_precision"]
