"""supervisord baselines: start and restart the example service as a plain supervised program.

supervisord (from PyPI, the ``bench`` extra) runs with a private configuration in the run's
scratch directory, on a unix socket, and is always shut down when the measurement ends.  The
program is :mod:`benchlib.programs.service_wrapper`, which imports the example service's
``main.py``, awaits ``initialize()`` and then says "ready" on a unix socket; a sample is the time
from the XML-RPC call that ``supervisorctl start`` makes (``supervisor.startProcess``) to that
message.  Calling XML-RPC directly leaves out supervisorctl's own interpreter start-up, as the
project side is an in-process API call too.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from benchlib.model import Context, Measurement
from benchlib.procs import PYTHONPATH, ReadyListener, child, copy_example, program_argv

__all__ = [
    "PROGRAM",
    "install_to_running",
    "install_to_running_trio",
    "restart_latency",
    "supervisord_missing",
]

PROGRAM = "example_service"
_BIN = Path(sys.executable).parent


def _supervisord() -> str | None:
    found = _BIN / "supervisord"
    return str(found) if found.is_file() else shutil.which("supervisord")


async def supervisord_missing(ctx: Context) -> str | None:
    """Why supervisord cannot run here (``None`` when it can)."""
    if importlib.util.find_spec("supervisor") is None or _supervisord() is None:
        return "supervisord is not installed (pip install -e '.[bench]', or make bench)"
    return None


def _config(workdir: Path, service_dir: Path, ready: Path, loop: str) -> str:
    command = " ".join(program_argv("service_wrapper", str(service_dir), str(ready), loop))
    return f"""\
[unix_http_server]
file={workdir / "supervisor.sock"}

[supervisord]
logfile={workdir / "supervisord.log"}
pidfile={workdir / "supervisord.pid"}
childlogdir={workdir}
nodaemon=true
loglevel=warn

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:{PROGRAM}]
command={command}
directory={service_dir}
environment=PYTHONPATH="{PYTHONPATH}",PYTHONDONTWRITEBYTECODE="1"
autostart=false
autorestart=false
startsecs=0
startretries=0
stopsignal=TERM
stopwaitsecs=10
stopasgroup=true
killasgroup=true
stdout_logfile={workdir / "service.log"}
redirect_stderr=true
"""


class Supervisor:
    """XML-RPC calls to our supervisord, each made from a worker thread (they block)."""

    def __init__(self, socket_path: Path) -> None:
        self._socket = socket_path

    def _proxy(self) -> Any:
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self._socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    async def call(self, method: str, *args: Any) -> Any:
        """``supervisor.<method>(*args)``."""

        def blocking() -> Any:
            function: Callable[..., Any] = getattr(self._proxy().supervisor, method)
            return function(*args)

        return await trio.to_thread.run_sync(blocking)

    async def wait_up(self) -> None:
        """Wait until supervisord answers ``getState`` with RUNNING."""
        while True:
            try:
                state = await self.call("getState")
            except (FileNotFoundError, ConnectionRefusedError):  # its socket is not there yet
                state = {}
            if state.get("statename") == "RUNNING":
                return
            await trio.sleep(0.02)


@asynccontextmanager
async def supervised(
    ctx: Context, name: str, loop: str = "asyncio"
) -> AsyncIterator[tuple[Supervisor, ReadyListener]]:
    """supervisord running the wrapped example service (not started yet) on ``loop``, and its readiness socket."""
    binary = _supervisord()
    if binary is None:
        raise RuntimeError("supervisord is not installed")
    workdir = ctx.workdir / name
    workdir.mkdir(parents=True)
    service_dir = copy_example(workdir / "example_service")
    ready_path = workdir / "ready.sock"
    config = workdir / "supervisord.conf"
    config.write_text(_config(workdir, service_dir, ready_path, loop), encoding="utf-8")
    async with ReadyListener(ready_path) as ready:
        argv = [binary, "-n", "-c", str(config)]
        async with child(argv, polite="sigterm", stdout=subprocess.DEVNULL):
            supervisor = Supervisor(workdir / "supervisor.sock")
            with trio.fail_after(30):
                await supervisor.wait_up()
            yield supervisor, ready


_DEAD = frozenset({"EXITED", "FATAL", "BACKOFF", "STOPPED"})


async def _timed(supervisor: Supervisor, ready: ReadyListener, *calls: tuple[str, tuple[Any, ...]]) -> float:
    """Seconds from issuing ``calls`` (in order) to the program's readiness message.

    Once the calls are made, supervisord is asked every 0.2 s whether the program died before
    saying "ready" (then the sample fails with the end of its log instead of waiting out a timeout).
    """

    async def issue_then_watch() -> None:
        for method, args in calls:
            await supervisor.call(method, *args)
        while True:
            await trio.sleep(0.2)
            info = await supervisor.call("getProcessInfo", PROGRAM)
            if info["statename"] in _DEAD:
                log = await supervisor.call("readProcessStdoutLog", PROGRAM, -2000, 0)
                raise RuntimeError(
                    f"{PROGRAM} is {info['statename']} before it was ready; its log ends:\n{log}"
                )

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(issue_then_watch)
        with trio.fail_after(60):
            arrived, _ = await ready.wait()
        nursery.cancel_scope.cancel()
    return arrived - started


async def install_to_running(ctx: Context) -> Measurement:
    """supervisord ``startProcess`` to the service's readiness on asyncio, in ms (stopped between samples)."""
    return await _start_to_ready(ctx, "asyncio")


async def install_to_running_trio(ctx: Context) -> Measurement:
    """The same, with the service on trio."""
    return await _start_to_ready(ctx, "trio")


async def _start_to_ready(ctx: Context, loop: str) -> Measurement:
    samples = []
    async with supervised(ctx, f"supervisord-start-{loop}", loop) as (supervisor, ready):
        warmup = ctx.pick(1, 2)
        for number in range(warmup + ctx.pick(7, 25)):
            elapsed = await _timed(supervisor, ready, ("startProcess", (PROGRAM, False)))
            await supervisor.call("stopProcess", PROGRAM, True)
            if number >= warmup:
                samples.append(elapsed * 1000)
    return Measurement(samples)


async def restart_latency(ctx: Context) -> Measurement:
    """``supervisorctl restart`` (stop, then start) to the service's readiness again, in ms."""
    samples = []
    async with supervised(ctx, "supervisord-restart") as (supervisor, ready):
        await _timed(supervisor, ready, ("startProcess", (PROGRAM, False)))
        warmup = ctx.pick(1, 2)
        for number in range(warmup + ctx.pick(7, 25)):
            elapsed = await _timed(
                supervisor, ready, ("stopProcess", (PROGRAM, True)), ("startProcess", (PROGRAM, False))
            )
            if number >= warmup:
                samples.append(elapsed * 1000)
        await supervisor.call("stopProcess", PROGRAM, True)
    return Measurement(samples)
