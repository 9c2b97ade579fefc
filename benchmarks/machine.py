"""What a benchmark row records of the machine it ran on.

Speed here depends on the CPU's model and on whether it has AVX-512 (the two kinds the demo's
times are given for, docs/performance.md), and on any limit put on the code XLA and oneDNN
generate (`XLA_FLAGS=--xla_cpu_max_isa=AVX2 ONEDNN_MAX_CPU_ISA=AVX2`, the AVX2-only stand-in).
Two machines with the same host name and core count can differ in all three, so every row
names them.
"""

from __future__ import annotations

import os
import platform


def parse_cpuinfo(text: str) -> tuple[str | None, bool | None]:
    """(CPU model name, whether it has AVX-512) from the text of /proc/cpuinfo; None where the
    text does not say (no `model name` line; no `flags` line)."""
    model, flags = None, None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and flags is None:
            flags = value.split()
    return model, (None if flags is None else "avx512f" in flags)


def describe() -> dict:
    """`machine` (host, cores, architecture), `cpu` (model name), `avx512`, and `isa_limits`
    (XLA_FLAGS / ONEDNN_MAX_CPU_ISA as set for the run). Off Linux, `cpu` falls back to
    what `platform` reports and `avx512` is None."""
    try:
        with open("/proc/cpuinfo") as f:
            model, avx512 = parse_cpuinfo(f.read())
    except OSError:
        model, avx512 = None, None
    return {
        "machine": f"{platform.node()} {os.cpu_count()} CPUs {platform.machine()}",
        "cpu": model or platform.processor() or platform.machine(),
        "avx512": avx512,
        "isa_limits": {
            k: os.environ[k] for k in ("XLA_FLAGS", "ONEDNN_MAX_CPU_ISA") if k in os.environ
        },
    }
