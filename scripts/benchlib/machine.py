"""Facts about the machine and the software a run measured on."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

__all__ = ["machine_facts"]

_LIBRARIES = ("trio", "libp2p", "cbor2", "supervisor", "psutil", "py-spy")


def _first_line(path: str, prefix: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def machine_facts() -> dict[str, Any]:
    """CPU, memory, kernel, Python and library versions, and the load when the run started."""
    memory = _first_line("/proc/meminfo", "MemTotal")
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _first_line("/proc/cpuinfo", "model name"),
        "memory_mib": int(memory.split()[0]) // 1024 if memory else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "libraries": {name: _version(name) for name in _LIBRARIES},
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }
