"""Starting a service's child process, and copying its output to its log.

The child is the runner script (:mod:`~p2p_orchestrator.runtime.runner`) under
the service's interpreter (the node's, or its virtual environment's), in the
service's data directory (``home/data/<name>``: files it writes with relative
paths outlive its versions), in a process group of its own, with the channel's
socket as its only inherited descriptor besides the output pipe, an environment
of its own (:func:`service_environment`: none of the node's secrets), and by
default confined by Landlock before the service is imported
(:mod:`~p2p_orchestrator.runtime._sandbox`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import trio

from p2p_orchestrator.runtime._sandbox import temporary_directory
from p2p_orchestrator.runtime.logs import RotatingLog

if TYPE_CHECKING:
    from p2p_orchestrator.runtime.launch import LaunchSpec

__all__ = [
    "PACKAGE_ROOT",
    "RUNNER",
    "Child",
    "base_environment",
    "PopenChild",
    "pump_output",
    "runner_arguments",
    "service_environment",
    "spawn_runner",
    "working_directory",
]

_KEPT = frozenset({"PATH", "LANG", "LANGUAGE", "TZ"})
"""The node's variables a service gets (with ``LC_*``); nothing else of the node's environment."""


class Child(Protocol):
    """A started service process, however it was started (here, or by the fork server)."""

    pid: int

    def open_pidfd(self) -> int:
        """A new pidfd of the process (readable once it exited); the caller closes it."""

    def kill(self) -> None:
        """SIGKILL the process itself (its group is the caller's business)."""

    async def reap(self) -> int:
        """Once it exited (its pidfd is readable): kill what it left in its process group; its return code."""

    async def wait(self) -> int:
        """Wait for it to exit however long it takes; its return code (the last resort)."""

    def close(self) -> None:
        """Release what the handle holds (once the process is reaped, or was never watched)."""


RUNNER = Path(__file__).with_name("runner.py")
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
"""The directory holding ``p2p_orchestrator`` and ``service_framework.py``."""


def runner_arguments(spec: LaunchSpec) -> list[str]:
    """The runner's arguments for ``spec``, but ``--fd`` (the channel's descriptor, given by who starts it)."""
    argv = [
        spec.name,
        "--service-dir",
        str(spec.directory),
        "--parent",
        str(os.getpid()),
        "--root",
        str(PACKAGE_ROOT),
        "--memory-limit-mb",
        str(spec.memory_limit_mb),
        "--max-calls",
        str(spec.max_concurrent_calls),
        "--event-loop",
        spec.event_loop,
    ]
    if spec.sandbox:
        argv += ["--sandbox", *(f"--readable={path}" for path in spec.readable)]
        if not spec.network:
            argv.append("--no-network")
    return argv


def working_directory(spec: LaunchSpec) -> Path:
    """The service process's working directory (its data directory), with its temporary directory made."""
    working = spec.data_directory or spec.directory
    temporary_directory(working).mkdir(mode=0o700, exist_ok=True)
    return working


def spawn_runner(spec: LaunchSpec, fd: int, output: int) -> PopenChild:
    """Start the runner for ``spec`` with a new interpreter: ``fd`` is its channel, ``output`` its stdout/stderr."""
    working = working_directory(spec)
    popen = subprocess.Popen(
        [spec.python, "-I", "-u", str(RUNNER), *runner_arguments(spec), "--fd", str(fd)],
        cwd=working,
        env=service_environment(spec.name, working, spec.environment),
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        pass_fds=(fd,),
        close_fds=True,
        process_group=0,
    )
    return PopenChild(popen)


class PopenChild:
    """A service process the node started itself (its direct child)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.pid = popen.pid
        self._popen = popen

    def open_pidfd(self) -> int:
        return os.pidfd_open(self.pid)

    def kill(self) -> None:
        self._popen.kill()

    async def reap(self) -> int:
        # the child is a zombie now, so its process group id cannot be reused yet:
        # kill whatever it left running in its group, then reap it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        return self._popen.wait()

    async def wait(self) -> int:
        return await trio.to_thread.run_sync(self._popen.wait)

    def close(self) -> None:
        pass  # a Popen holds no descriptor of the process


def service_environment(name: str, data_directory: Path, passed: Iterable[tuple[str, str]]) -> dict[str, str]:
    """A service's environment: none of the node's but ``PATH`` and the locale, and what the operator passes.

    ``HOME`` is its data directory and ``TMPDIR`` the private temporary directory in it.
    """
    env = base_environment()
    env.update(passed)
    env.update(
        HOME=str(data_directory),
        TMPDIR=str(temporary_directory(data_directory)),
        P2P_ORCHESTRATOR_SERVICE=name,
    )
    return env


def base_environment() -> dict[str, str]:
    """What every service process's environment starts from: the node's ``PATH`` and locale, nothing else."""
    env = {key: value for key, value in os.environ.items() if key in _KEPT or key.startswith("LC_")}
    env.setdefault("PATH", os.defpath)
    return env


async def pump_output(stream: trio.lowlevel.FdStream, log: RotatingLog, done: trio.Event) -> None:
    """Copy the child's output into its log until EOF (every writer of the pipe is gone)."""
    try:
        async with stream:
            while chunk := await stream.receive_some(65536):
                log.write(chunk)
    finally:
        done.set()
