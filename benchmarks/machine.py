"""What the benchmarks ran on, in one line: CPU model, cores, widest vector unit, BLAS.

>>> isinstance(describe(), str)
True
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe() -> str:
    """e.g. ``Intel(R) Xeon(R) Processor, 2 cores, AVX-512, OpenBLAS 0.3.31 (SkylakeX)``."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    parts = [model, f"{os.cpu_count()} cores", vector, _blas()]
    return ", ".join(p for p in parts if p)


def _blas() -> str | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    # NumPy's BLAS is the one convscope's GEMMs use: list it first
    infos = sorted(threadpool_info(), key=lambda i: "numpy" not in i.get("filepath", ""))
    for info in infos:
        if info.get("user_api") == "blas":
            name = info.get("internal_api", "BLAS")
            name = {"openblas": "OpenBLAS", "mkl": "MKL"}.get(name, name)
            arch = f" ({info['architecture']})" if info.get("architecture") else ""
            return f"{name} {info.get('version', '')}{arch}".strip()
    return None
