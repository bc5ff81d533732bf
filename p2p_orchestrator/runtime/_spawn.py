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

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from p2p_orchestrator.runtime._sandbox import temporary_directory
from p2p_orchestrator.runtime.logs import RotatingLog

if TYPE_CHECKING:
    from p2p_orchestrator.runtime.launch import LaunchSpec

__all__ = ["PACKAGE_ROOT", "RUNNER", "pump_output", "service_environment", "spawn_runner"]

_KEPT = frozenset({"PATH", "LANG", "LANGUAGE", "TZ"})
"""The node's variables a service gets (with ``LC_*``); nothing else of the node's environment."""

RUNNER = Path(__file__).with_name("runner.py")
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
"""The directory holding ``p2p_orchestrator`` and ``service_framework.py``."""


def spawn_runner(spec: LaunchSpec, fd: int, output: int) -> subprocess.Popen[bytes]:
    working = spec.data_directory or spec.directory
    temporary_directory(working).mkdir(mode=0o700, exist_ok=True)
    argv = [
        spec.python,
        "-I",
        "-u",
        str(RUNNER),
        spec.name,
        "--service-dir",
        str(spec.directory),
        "--fd",
        str(fd),
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
    return subprocess.Popen(
        argv,
        cwd=working,
        env=service_environment(spec.name, working, spec.environment),
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        pass_fds=(fd,),
        close_fds=True,
        process_group=0,
    )


def service_environment(name: str, data_directory: Path, passed: Iterable[tuple[str, str]]) -> dict[str, str]:
    """A service's environment: none of the node's but ``PATH`` and the locale, and what the operator passes.

    ``HOME`` is its data directory and ``TMPDIR`` the private temporary directory in it.
    """
    env = {key: value for key, value in os.environ.items() if key in _KEPT or key.startswith("LC_")}
    env.setdefault("PATH", os.defpath)
    env.update(passed)
    env.update(
        HOME=str(data_directory),
        TMPDIR=str(temporary_directory(data_directory)),
        P2P_ORCHESTRATOR_SERVICE=name,
    )
    return env


async def pump_output(stream: trio.lowlevel.FdStream, log: RotatingLog, done: trio.Event) -> None:
    """Copy the child's output into its log until EOF (every writer of the pipe is gone)."""
    try:
        async with stream:
            while chunk := await stream.receive_some(65536):
                log.write(chunk)
    finally:
        done.set()
