"""Child processes, readiness signals and memory figures read from ``/proc``.

Every child started here is stopped when its ``async with`` block ends, on success, error or
cancellation: first politely (its stdin closes, or SIGTERM), then SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import trio

__all__ = [
    "EXAMPLE_DIR",
    "PYTHON",
    "PYTHONPATH",
    "REPO",
    "SCRIPTS_DIR",
    "LineReader",
    "ReadyListener",
    "child",
    "copy_example",
    "cpu_seconds",
    "memory_rollup_mib",
    "own_cpu_seconds",
    "page_cache_write_ms_per_mib",
    "program_argv",
    "program_env",
    "reset_peak_rss",
    "rss_mib",
]

SCRIPTS_DIR = Path(__file__).resolve().parent.parent
REPO = SCRIPTS_DIR.parent
EXAMPLE_DIR = REPO / "examples" / "example_service"
PYTHON = sys.executable

_GRACE = 5.0


def program_argv(module: str, *args: str) -> list[str]:
    """The command line of one of :mod:`benchlib.programs` (run with :func:`program_env`)."""
    return [PYTHON, "-m", f"benchlib.programs.{module}", *args]


PYTHONPATH = f"{SCRIPTS_DIR}{os.pathsep}{REPO}"
"""``scripts/`` (for ``benchlib.programs``) and the repository (this working tree's package)."""


def program_env() -> dict[str, str]:
    """This process's environment with :data:`PYTHONPATH` (the bench programs need it)."""
    return {**os.environ, "PYTHONPATH": PYTHONPATH, "PYTHONDONTWRITEBYTECODE": "1"}


def copy_example(dest: Path) -> Path:
    """A private copy of the example service at ``dest`` (so no run writes into the repository)."""
    shutil.copytree(EXAMPLE_DIR, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@asynccontextmanager
async def child(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    polite: Literal["stdin", "sigterm"] = "stdin",
    stdout: int | None = subprocess.PIPE,
) -> AsyncIterator[trio.Process]:
    """Run ``argv`` for the duration of the block; stop it (and wait for it) when the block ends.

    ``polite="stdin"`` asks the child to exit by closing its stdin (the bench programs exit on
    EOF, which also makes them exit if this process dies); ``"sigterm"`` sends SIGTERM.
    Its stderr is this process's stderr, so its complaints are seen.
    """
    proc = await trio.lowlevel.open_process(
        list(argv), stdin=subprocess.PIPE, stdout=stdout, env=env, pass_fds=tuple(pass_fds)
    )
    try:
        yield proc
    finally:
        with trio.CancelScope(shield=True):
            await _stop(proc, polite)


async def _stop(proc: trio.Process, polite: Literal["stdin", "sigterm"]) -> None:
    if proc.returncode is None:
        if polite == "stdin" and proc.stdin is not None:
            await proc.stdin.aclose()
        else:
            proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(_GRACE):
            await proc.wait()
    if proc.returncode is None:
        print(
            f"bench: child {proc.pid} ({proc.args!r}) did not exit in {_GRACE}s: killing it", file=sys.stderr
        )
        proc.kill()
        await proc.wait()
    if proc.stdin is not None:
        await proc.stdin.aclose()
    if proc.stdout is not None:
        await proc.stdout.aclose()


class LineReader:
    """Reads ``\\n``-terminated lines from a child's stdout."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def line(self) -> str:
        """The next line, without its newline; raises on EOF."""
        while b"\n" not in self._buffer:
            data = await self._stream.receive_some(4096)
            if not data:
                raise EOFError(f"stream ended before a full line (got {bytes(self._buffer)!r})")
            self._buffer += data
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line.decode()


class ReadyListener:
    """A unix socket that started programs connect to, to say "ready <pid>"."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._listener: trio.SocketListener | None = None

    async def __aenter__(self) -> ReadyListener:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(str(self.path))
        sock.listen(16)
        self._listener = trio.SocketListener(sock)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._listener is not None:
            await self._listener.aclose()
        self.path.unlink(missing_ok=True)

    async def wait(self) -> tuple[float, int]:
        """Wait for the next "ready <pid>" message: (``time.perf_counter()`` at arrival, pid)."""
        if self._listener is None:
            raise RuntimeError("ReadyListener used outside 'async with'")
        stream = await self._listener.accept()
        async with stream:
            line = await LineReader(stream).line()
        arrived = time.perf_counter()
        word, _, pid = line.partition(" ")
        if word != "ready" or not pid.isdigit():
            raise ValueError(f"unexpected readiness message {line!r}")
        return arrived, int(pid)


def _status_field(pid: int, name: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``), in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise LookupError(f"/proc/{pid}/status has no {name} field")


def rss_mib(pid: int, field: Literal["VmRSS", "VmHWM"] = "VmRSS") -> float:
    """The resident set size (``VmRSS``) or its peak since the last reset (``VmHWM``), in MiB."""
    return _status_field(pid, field) / 1024


def reset_peak_rss(pid: int) -> None:
    """Reset ``VmHWM`` of ``pid`` to its current RSS (``/proc/<pid>/clear_refs``, Linux 4.0+)."""
    with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as clear_refs:
        clear_refs.write("5")


def memory_rollup_mib(pid: int) -> dict[str, float]:
    """``Rss`` and ``Pss`` of ``pid`` from ``/proc/<pid>/smaps_rollup`` (Linux 4.14+), in MiB.

    The proportional set size counts each resident page divided by the number of processes
    mapping it, so summing it over processes counts shared pages (the interpreter's text,
    shared libraries, copy-on-write pages of a fork) once in all.
    """
    found: dict[str, float] = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
        for line in rollup:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                found[key] = int(rest.split()[0]) / 1024
    if set(found) != {"Rss", "Pss"}:
        raise LookupError(f"/proc/{pid}/smaps_rollup has no Rss or Pss field")
    return found


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """CPU seconds ``pid`` has used so far, user + system, all its threads (``/proc/<pid>/stat``).

    With ``children``, the CPU of its children that ended and were waited for
    (``cutime + cstime``) instead.  The kernel counts in clock ticks (usually 10 ms).
    """
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / _CLOCK_TICKS


def own_cpu_seconds() -> float:
    """CPU seconds this process has used so far, user + system, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def page_cache_write_ms_per_mib(directory: Path, mib: int) -> float:
    """CPU ms per MiB this process spends writing ``mib`` MiB to a new file (then deleted).

    A control for figures that include a node's file writes: on a virtual machine whose free
    pages the host takes back (virtio-balloon free page reporting), the first write into such a
    page costs several times more than into a page the guest kept, and which kind a writer gets
    depends on what was freed when; this shows the state of the machine at the time.
    """
    block = os.urandom(1 << 20)
    path = directory / f"page-cache-control-{os.getpid()}"
    before = own_cpu_seconds()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(mib):
            os.write(fd, block)
    finally:
        os.close(fd)
    spent = own_cpu_seconds() - before
    path.unlink()
    return spent * 1000 / mib
