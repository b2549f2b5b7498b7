"""The machine facts every benchmark section starts with (figures on these VMs mean
little without the CPU and the load they were measured under)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine_line(short: bool = False) -> str:
    """ "machine: <cpu>, N cores, Python X, load average a b c" (short: the load only)."""
    if short:
        return f"load average {load_average()}"
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load_average()}"
    )
