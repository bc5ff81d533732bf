"""Helpers of the runtime tests: fast configurations, test services, waiting for states."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio

from p2p_orchestrator import Orchestrator, OrchestratorConfig, ServiceSettings, StoreSettings
from p2p_orchestrator.config import RuntimeSettings
from p2p_orchestrator.runtime._procfs import process_exists
from p2p_orchestrator.runtime.states import ServiceState, Transition
from tests.helpers import make_archive

HEADER = "import os, sys, time\nimport anyio\nfrom service_framework import BaseService, service_method\n"
"""Test services are written with anyio, so the same body runs on either event loop."""

EVENT_LOOP = "asyncio"
"""The event loop test services declare; the runtime suite's ``event_loop`` fixture runs it on each."""


def fast_config(services: Mapping[str, ServiceSettings] | None = None, **runtime: Any) -> OrchestratorConfig:
    """A configuration for tests: no fsync, short timeouts, no start on install (each overridable)."""
    settings = {
        "start_timeout": 10.0,
        "stop_timeout": 3.0,
        "call_timeout": 10.0,
        "auto_start": False,
        **runtime,
    }
    return OrchestratorConfig(
        store=StoreSettings(fsync=False), runtime=RuntimeSettings(**settings), services=dict(services or {})
    )


def service_archive(
    root: Path,
    name: str,
    body: str | None = None,
    *,
    version: str = "1.0.0",
    manifest: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
) -> bytes:
    """The example service renamed ``name``, or a service whose ``main.py`` is ``HEADER + body``."""
    all_files = dict(files or {})
    manifest = {"event_loop": EVENT_LOOP, **(manifest or {})}
    if body is not None:
        all_files["main.py"] = HEADER + textwrap.dedent(body)
    return make_archive(root / name / version, name, version, files=all_files, manifest=manifest)


def transitions(orch: Orchestrator, name: str) -> list[Transition]:
    return list(orch.supervisor.unit(name).machine.history)


def moves(orch: Orchestrator, name: str) -> list[tuple[str, str]]:
    """The (source, target) state pairs ``name`` went through, oldest first."""
    return [(t.source.value, t.target.value) for t in transitions(orch, name)]


async def wait_for_state(orch: Orchestrator, name: str, state: str, limit: float = 15.0) -> None:
    """Wait (bounded) until ``name`` is in ``state``."""
    target = ServiceState(state)
    with trio.fail_after(limit):
        await orch.supervisor.unit(name).machine.wait_until(lambda s: s is target)


async def wait_for_moves(orch: Orchestrator, name: str, target: str, count: int, limit: float = 20.0) -> None:
    """Wait (bounded) until ``name`` has entered ``target`` at least ``count`` times."""
    machine = orch.supervisor.unit(name).machine
    wanted = ServiceState(target)
    with trio.fail_after(limit):
        await machine.wait_until(lambda _: sum(t.target is wanted for t in machine.history) >= count)


async def wait_until_gone(pid: int, limit: float = 5.0) -> None:
    """Wait (bounded) until no live process has ``pid``; polling /proc is the only way for a non-child."""
    with trio.fail_after(limit):
        while process_exists(pid):  # noqa: ASYNC110 - a non-child's exit has no event to await
            await trio.sleep(0.02)


def pid_of(orch: Orchestrator, name: str) -> int:
    proc = orch.supervisor.unit(name).process
    assert proc is not None, f"{name} has no process"
    return proc.pid


def alive(pid: int) -> bool:
    return process_exists(pid)


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rindex(b")") + 2 :].split()
            if int(fields[1]) == pid and fields[0] not in (b"Z", b"X"):
                found.append(int(entry))
    return found


async def wait_for_health(orch: Orchestrator, name: str, status: str, limit: float = 15.0) -> None:
    """Wait (bounded) until ``name``'s health status is ``status``."""
    with trio.fail_after(limit):
        await orch.supervisor.unit(name).health.wait_until(lambda h: h.status == status)


def recent(orch: Orchestrator, kind: str, service: str | None = None) -> list[Any]:
    """The recent events of type ``kind`` (of ``service``, if given), oldest first."""
    return [
        e for e in orch.events.recent(1000) if e.type == kind and (service is None or e.service == service)
    ]
