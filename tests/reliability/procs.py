"""What the reliability suites read about processes, mounts and namespaces from ``/proc``."""

from __future__ import annotations

import os
import time
from pathlib import Path

from p2p_orchestrator.runtime._procfs import process_exists, process_start_ticks

__all__ = [
    "descendants",
    "listening_sockets",
    "mounts",
    "namespaces",
    "processes_working_under",
    "same_process_alive",
    "wait_gone",
]


def _parents() -> dict[int, int]:
    """``{pid: parent pid}`` of every live (not zombie) process."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] not in (b"Z", b"X"):
            found[int(entry)] = int(fields[1])
    return found


def descendants(pid: int | None = None) -> set[int]:
    """Every live process below ``pid`` (default: this process), at any depth."""
    root = os.getpid() if pid is None else pid
    parents = _parents()
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def processes_working_under(root: Path) -> set[int]:
    """Live processes whose working directory is ``root`` or below (services run in their version dir)."""
    prefix = str(root.resolve())
    found = set()
    for pid in _parents():
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd == prefix or cwd.startswith(prefix + os.sep):
            found.add(pid)
    return found


def same_process_alive(pid: int, start_ticks: int) -> bool:
    """Whether the process ``pid`` that started at ``start_ticks`` still runs (a recycled pid does not count)."""
    return process_exists(pid) and process_start_ticks(pid) == start_ticks


def wait_gone(pids: set[int], limit: float) -> set[int]:
    """Poll (a non-child's exit has no event to wait on) until ``pids`` are gone; those still alive."""
    deadline = time.monotonic() + limit
    alive = {pid for pid in pids if process_exists(pid)}
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = {pid for pid in alive if process_exists(pid)}
    return alive


def mounts() -> set[str]:
    """Mount points seen by this process."""
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return {line.split()[4] for line in lines}


def namespaces() -> dict[str, str]:
    """The namespaces this process is in (``/proc/self/ns``)."""
    return {kind: os.readlink(f"/proc/self/ns/{kind}") for kind in ("net", "mnt", "pid", "uts", "ipc")}


def listening_sockets() -> set[str]:
    """Local addresses of this process's listening TCP sockets."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes and fields[3] == "0A":
                found.add(fields[1])
    return found
