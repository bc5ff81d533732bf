"""Starting a service's child process, and copying its output to its log.

The child is the runner script (:mod:`~p2p_orchestrator.runtime.runner`) under
the service's interpreter (the node's, or its virtual environment's), in the
service's data directory (``home/data/<name>``: files it writes with relative
paths outlive its versions), in a process group of its own, with the channel's
socket as its only inherited descriptor besides the output pipe.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import trio

import p2p_orchestrator
from p2p_orchestrator.runtime.logs import RotatingLog

if TYPE_CHECKING:
    from p2p_orchestrator.runtime.process import LaunchSpec

__all__ = ["PACKAGE_ROOT", "RUNNER", "pump_output", "spawn_runner"]

RUNNER = Path(__file__).with_name("runner.py")
PACKAGE_ROOT = Path(p2p_orchestrator.__file__).resolve().parent.parent
"""The directory holding ``p2p_orchestrator`` and ``service_framework.py``."""


def spawn_runner(spec: LaunchSpec, fd: int, output: int) -> subprocess.Popen[bytes]:
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
    env = {**os.environ, "P2P_ORCHESTRATOR_SERVICE": spec.name}
    return subprocess.Popen(
        argv,
        cwd=spec.data_directory or spec.directory,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        pass_fds=(fd,),
        close_fds=True,
        process_group=0,
    )


async def pump_output(stream: trio.lowlevel.FdStream, log: RotatingLog, done: trio.Event) -> None:
    """Copy the child's output into its log until EOF (every writer of the pipe is gone)."""
    try:
        async with stream:
            while chunk := await stream.receive_some(65536):
                log.write(chunk)
    finally:
        done.set()
