"""Reading facts about processes from ``/proc`` (Linux), without psutil."""

from __future__ import annotations

import os

__all__ = ["ancestry", "clock_ticks", "process_exists", "process_rss_bytes", "process_start_ticks"]


def process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (``/proc/<pid>/stat`` field 22).

    Together with the pid it identifies one process for good: a recycled pid has a
    different start time.  ``None`` when no such process exists (or it is a zombie
    already reaped).
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name (field 2) is in parentheses and may itself hold spaces or ')'
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[19])


def process_rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` (``VmRSS`` of ``/proc/<pid>/status``), or ``None``."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def process_exists(pid: int) -> bool:
    """Whether ``pid`` names a live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] not in (b"Z", b"X")


def ancestry(pid: int, *, limit: int = 64) -> list[int]:
    """``pid``, its process group leader, its parent, its parent's parent... (at most ``limit``)."""
    found: list[int] = []
    while pid > 1 and len(found) < limit:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            break
        fields = stat[stat.rindex(b")") + 2 :].split()
        found += [pid, int(fields[2])]  # the pid and its process group (a service leads its own)
        pid = int(fields[1])
    return found


def clock_ticks() -> int:
    """Clock ticks per second (the unit of :func:`process_start_ticks`)."""
    return os.sysconf("SC_CLK_TCK")
