"""Helpers of the reliability suites: node configurations, real node processes, test services.

A *node process* runs :mod:`tests.reliability.node_proc` on a home directory
whose ``config.toml`` :func:`write_config` wrote; :func:`node_process` starts
it and always stops it (politely: stdin closes; then SIGKILL).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from p2p_orchestrator.crashpoints import CRASHPOINT_ENV
from tests.helpers import REPO, make_archive

__all__ = [
    "HEADER",
    "LOAD_SERVICE",
    "NodeExited",
    "NodeProcess",
    "free_port",
    "node_config",
    "node_process",
    "rss_bytes",
    "service_archive",
    "write_config",
]

HEADER = "import trio\nfrom service_framework import BaseService, service_method\n"

LOAD_SERVICE = """
class Run(BaseService):
    SERVICE_NAME = "load_service"

    async def initialize(self):
        self.active = 0
        self.peak = 0
        self.calls = 0

    @service_method(description="doubles x after a short wait", public=True, requires_auth=False)
    async def work(self, x=0, seconds=0.0):
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await trio.sleep(seconds)
            self.calls += 1
            return {"x": x, "double": 2 * x}
        finally:
            self.active -= 1

    @service_method(description="sleeps", public=True, requires_auth=False)
    async def sleep(self, seconds=1.0):
        await trio.sleep(seconds)
        return {"slept": seconds}

    @service_method(description="echo", public=True, requires_auth=False)
    async def echo(self, value=None):
        return {"value": value}

    @service_method(description="concurrency seen so far", public=True, requires_auth=False)
    async def counters(self):
        return {"peak": self.peak, "active": self.active, "calls": self.calls}

    @service_method(description="not for remote callers", public=False)
    async def private(self):
        return {"secret": True}
"""


def service_archive(root: Path, name: str, body: str, version: str = "1.0.0", **kwargs: Any) -> bytes:
    """A service named ``name`` whose ``main.py`` is :data:`HEADER` + ``body``, on trio."""
    files = {"main.py": HEADER + textwrap.dedent(body), **kwargs.pop("files", {})}
    kwargs["manifest"] = {"event_loop": "trio", **kwargs.get("manifest", {})}
    return make_archive(root / name / version, name, version, files=files, **kwargs)


# -- configuration files ---------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def write_config(home: Path, sections: Mapping[str, Mapping[str, Any]]) -> None:
    """Write ``home/config.toml``: ``{section: {key: value or {key: value}}}`` (one level of subtables)."""
    lines: list[str] = []
    for section, table in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(v)}" for key, v in table.items() if not isinstance(v, Mapping)]
        for key, sub in table.items():
            if isinstance(sub, Mapping):
                lines.append(f"[{section}.{key}]")
                lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in sub.items()]
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("\n".join(lines) + "\n")


def node_config(
    *,
    roles: Mapping[str, str] | None = None,
    port: int = 0,
    fsync: bool = False,
    node: Mapping[str, Any] | None = None,
    runtime: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """A configuration with short deadlines for node processes (overridable per section)."""
    return {
        "store": {"fsync": fsync},
        "runtime": {
            "start_timeout": 10.0,
            "stop_timeout": 3.0,
            "call_timeout": 10.0,
            "auto_start": False,  # the trials start what they mean to run
            **(runtime or {}),
        },
        "node": {
            "listen": [f"/ip4/127.0.0.1/tcp/{port}"],
            "call_timeout": 10.0,
            "dial_timeout": 3.0,
            "read_timeout": 2.0,
            "idle_timeout": 10.0,
            "write_timeout": 2.0,
            "reconnect_attempts": 30,
            "reconnect_delay": 0.1,
            "reconnect_max_delay": 0.5,
            **(node or {}),
        },
        "access": {"roles": dict(roles or {})},
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a node that must come back on it)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for {pid}")


# -- node processes --------------------------------------------------------------------------


class NodeExited(Exception):
    """The node process ended while a test waited for one of its lines."""


class NodeProcess:
    """A running :mod:`tests.reliability.node_proc`; see the module docstring."""

    def __init__(self, process: trio.Process, home: Path, log: Path) -> None:
        self.process = process
        self.home = home
        self.log = log
        self.ready: dict[str, Any] = {}
        """The ``ready`` line: ``peer_id``, ``addrs``, ``pids``."""
        self.events: list[dict[str, Any]] = []
        """Every line read so far."""
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def peer_id(self) -> str:
        return str(self.ready["peer_id"])

    @property
    def address(self) -> str:
        return str(self.ready["addrs"][0])

    def stderr(self) -> str:
        """What the process wrote to stderr so far (for failure messages)."""
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    async def next_event(self) -> dict[str, Any]:
        """The next JSON line; :class:`NodeExited` at EOF."""
        stdout = self.process.stdout
        assert stdout is not None
        while b"\n" not in self._buffer:
            chunk = await stdout.receive_some(65536)
            if not chunk:
                raise NodeExited(f"node process {self.pid} exited; stderr:\n{self.stderr()}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        event: dict[str, Any] = json.loads(line)
        self.events.append(event)
        return event

    async def wait_for(self, *kinds: str, limit: float = 60.0) -> dict[str, Any]:
        """The next line whose ``event`` is one of ``kinds`` (others are skipped)."""
        with trio.fail_after(limit):
            while True:
                event = await self.next_event()
                if event["event"] in kinds:
                    return event

    async def send(self, op: str, **fields: Any) -> None:
        """Send one command line."""
        stdin = self.process.stdin
        assert stdin is not None
        await stdin.send_all(json.dumps({"op": op, **fields}).encode() + b"\n")

    async def command(self, op: str, *, limit: float = 60.0, **fields: Any) -> dict[str, Any]:
        """Send a command and return its ``done`` or ``error`` line."""
        await self.send(op, **fields)
        return await self.wait_for("done", "error", limit=limit)

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the node process (not its services)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    async def wait_exit(self, limit: float = 20.0) -> int:
        """Wait for the process to end; its return code."""
        with trio.fail_after(limit):
            return await self.process.wait()

    async def aclose(self) -> None:
        """Ask the node to stop (stdin closes), wait for it (bounded), kill it if it does not."""
        if self.process.stdin is not None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self.process.stdin.aclose()
        with trio.move_on_after(20):
            await self.process.wait()
        if self.process.returncode is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGKILL)
            await self.process.wait()
        if self.process.stdout is not None:
            await self.process.stdout.aclose()


@asynccontextmanager
async def node_process(
    home: Path, *, crashpoint: str | None = None, wait_ready: bool = True, limit: float = 60.0
) -> AsyncIterator[NodeProcess]:
    """Run a node process on ``home`` for the block (``crashpoint``: it SIGKILLs itself there)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop(CRASHPOINT_ENV, None)
    if crashpoint is not None:
        env[CRASHPOINT_ENV] = crashpoint
    log = home.parent / f"{home.name}.stderr"
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as stderr:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "tests.reliability.node_proc", str(home)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO,
            env=env,
        )
    node = NodeProcess(process, home, log)
    try:
        if wait_ready:
            node.ready = await node.wait_for("ready", limit=limit)
        yield node
    finally:
        with trio.CancelScope(shield=True):
            await node.aclose()
