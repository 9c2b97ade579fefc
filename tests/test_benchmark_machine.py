"""benchmarks/machine.py: what a benchmark row records of the CPU it ran on."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))

import machine  # noqa: E402

# Abridged from the two 2-core machines this project runs on (docs/performance.md).
AMD_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme sse sse2 avx f16c avx2 fma bmi2
processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme sse sse2 avx f16c avx2 fma bmi2
"""
INTEL_AVX512 = """processor\t: 0
model name\t: Intel(R) Xeon(R) CPU @ 2.60GHz
flags\t\t: fpu avx avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni
"""


def test_parse_cpuinfo_model_and_avx512():
    assert machine.parse_cpuinfo(AMD_AVX2) == ("AMD EPYC 7B13", False)
    assert machine.parse_cpuinfo(INTEL_AVX512) == ("Intel(R) Xeon(R) CPU @ 2.60GHz", True)


def test_parse_cpuinfo_does_not_guess():
    # avx512bw alone is not the foundation set, and a text without flags says nothing
    assert machine.parse_cpuinfo("model name : X\nflags : avx2 avx512bw\n") == ("X", False)
    assert machine.parse_cpuinfo("processor : 0\n") == (None, None)


def test_describe_records_isa_limits(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    row = machine.describe()
    assert row["isa_limits"] == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert set(row) == {"machine", "cpu", "avx512", "isa_limits"}
    assert row["cpu"]
