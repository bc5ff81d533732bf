"""``ServiceRunner``: start, stop, restart and watch services, dependencies first.

It translates the spec's running methods (their result shapes, desired state,
dependencies, log messages) into
:class:`~p2p_orchestrator.runtime.supervisor.Supervisor` calls, and keeps the
desired state in the store.

Locks: every life-cycle operation on a service holds that service's lock.
Starting a service also takes, one after the other, the locks of the
dependencies it starts, so locks are only ever nested along dependency edges
(dependent, then dependency); as the graph a start accepts has no cycle, two
starts cannot deadlock.  A forced stop takes each dependent's lock on its own,
never while holding the lock of what they need.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from p2p_orchestrator._clock import utc_now_iso
from p2p_orchestrator._replies import ITEM_BYTES, newest_within
from p2p_orchestrator.archive import Version
from p2p_orchestrator.crashpoints import crashpoint
from p2p_orchestrator.errors import (
    OrchestratorError,
    ServiceCallError,
    ServiceInstallationError,
    ServiceManagementError,
)
from p2p_orchestrator.orchestrator.shared import Part, Shared
from p2p_orchestrator.runtime.dependencies import (
    broken_by,
    dependents_in_stop_order,
    direct_dependents,
    start_order,
)
from p2p_orchestrator.runtime.logs import LogFollower
from p2p_orchestrator.runtime.venvs import read_requirements

__all__ = ["ServiceRunner"]

MAX_LOG_REPLY_LINES = 1000
"""The most lines :meth:`ServiceRunner.peer_logs` returns."""

log = logging.getLogger("p2p_orchestrator")


class ServiceRunner(Part):
    """The running half of the API; see the module docstring."""

    def __init__(self, shared: Shared) -> None:
        super().__init__(shared)
        self._starting: set[str] = set()
        """Services whose start passed its last dependency check and is under way."""

    async def restore_desired_state(self) -> None:
        """Start every service that was running when the node last stopped.

        They start concurrently, but each start first starts (and waits for)
        what the service needs, so they come up in dependency order.
        """

        async def restore(name: str) -> None:
            try:
                async with self._locks.hold(name):
                    await self.start_locked(name)
            except OrchestratorError as exc:
                log.warning(
                    "Service %s was running before the node restarted, but did not start: %s", name, exc
                )

        async with trio.open_nursery() as nursery:
            for name, record in sorted(self._store.records.items()):
                if record.desired_state == "running":
                    nursery.start_soon(restore, name)

    # -- running ------------------------------------------------------------------------

    async def start(self, service_name: str) -> dict[str, Any]:
        """``start_service``: what it needs first, then the service; refused (typed) if it cannot run."""
        async with self._locks.hold(service_name):
            self._store.get(service_name)
            return await self.start_locked(service_name)

    async def start_locked(self, name: str) -> dict[str, Any]:
        """Start ``name`` and, first, what it needs (its lock is held; theirs are taken in turn)."""
        order = start_order(name, self._catalog.graph())
        for dependency in order[:-1]:
            await self._start_dependency(dependency, needed_by=name)
        return await self._start_one(name)

    async def _start_one(self, name: str) -> dict[str, Any]:
        already = self._supervisor.is_running(name)
        if not already:
            log.info("Starting service: %s", name)
            await self._ensure_environment(name)
            # The ranges again, with no await before the service counts as starting: an install
            # that went on meanwhile committed already (refused here) or sees it (refused there).
            start_order(name, self._catalog.graph())
        self._starting.add(name)
        try:
            unit = await self._supervisor.start(name)
        finally:
            self._starting.discard(name)
        crashpoint("runtime.start.before_desired")
        self._store.set_desired_state(name, "running")
        message = f"Service {name} is already running" if already else f"Service {name} loaded and started"
        log.info(message)
        started_at = unit.process.started_at if unit.process is not None else utc_now_iso()
        return {"success": True, "service_name": name, "started_at": started_at, "message": message}

    async def _ensure_environment(self, name: str) -> None:
        """Build the service's virtual environment if it needs one and it is missing."""
        directory = self._store.version_dir(self._store.get(name).current)
        try:
            await self._catalog.venvs.ensure(name, read_requirements(directory))
        except ServiceInstallationError as exc:
            raise ServiceManagementError(exc.message, code=exc.code) from exc

    async def _start_dependency(self, name: str, *, needed_by: str) -> None:
        """Start ``name`` for ``needed_by`` unless it runs, then wait until it is healthy (bounded)."""
        async with self._locks.hold(name):
            if not self._supervisor.is_running(name):
                log.info("Starting service %s, which %s needs", name, needed_by)
                try:
                    await self._start_one(name)
                except OrchestratorError as exc:
                    raise ServiceManagementError(
                        f"{needed_by} needs {name}, which did not start: {exc.message}",
                        code="dependency_failed",
                    ) from exc
        unit = self._supervisor.unit(name)
        limit = self._catalog.config.runtime.dependency_timeout
        with trio.move_on_after(limit):
            await unit.health.wait_until(lambda health: health.status == "healthy" or not unit.running)
        if unit.running and unit.health.status == "healthy":
            return
        why = unit.health.last_error or unit.last_error
        raise ServiceManagementError(
            f"{needed_by} needs {name}, which is {unit.state.value} and {unit.health.status} "
            f"(waited up to {limit:g} s for it to be running and healthy)" + (f": {why}" if why else ""),
            code="dependency_failed",
        )

    async def stop(self, service_name: str, force: bool = False) -> dict[str, Any]:
        """``stop_service``: stop it (and, forced, what runs needing it, first); it stays stopped."""
        self._store.get(service_name)
        if force:
            await self.stop_dependents(service_name)
        async with self._locks.hold(service_name):
            self._store.get(service_name)
            self.refuse_if_needed(service_name, "stop")
            log.info("Stopping service: %s", service_name)
            stopped = await self._supervisor.stop(service_name)
            crashpoint("runtime.stop.before_desired")
            self._store.set_desired_state(service_name, "stopped")
        message = f"Service {service_name} stopped" if stopped else f"Service {service_name} was not running"
        log.info(message)
        return {
            "success": True,
            "service_name": service_name,
            "stopped_at": utc_now_iso(),
            "message": message,
        }

    def refuse_if_needed(self, name: str, action: str) -> None:
        """``has_dependents`` if running services need ``name`` (``"stop"``) or installed ones do."""
        graph = self._catalog.graph()
        if action == "stop":
            needing = [d for d in dependents_in_stop_order(name, graph) if self.is_up(d)]
            who = "running"
        else:
            needing, who = direct_dependents(name, graph), "installed"
        if needing:
            raise ServiceManagementError(
                f"cannot {action} {name}: {who} service(s) need it: {', '.join(needing)}; {action} them "
                f"first, or pass force=True to stop them first",
                code="has_dependents",
            )

    async def stop_dependents(self, name: str) -> None:
        """Stop every running service that needs ``name``, each before what it needs (a forced stop)."""
        for dependent in dependents_in_stop_order(name, self._catalog.graph()):
            async with self._locks.hold(dependent):
                if self.is_up(dependent):
                    log.info("Stopping service %s, which needs %s (forced)", dependent, name)
                    await self._supervisor.stop(dependent)
                    self._store.set_desired_state(dependent, "stopped")

    async def restart(self, service_name: str) -> dict[str, Any]:
        """``restart_service``: stop it if it runs, then start it on its current version."""
        async with self._locks.hold(service_name):
            self._store.get(service_name)
            await self.restart_locked(service_name)
        return {
            "success": True,
            "service_name": service_name,
            "restarted_at": utc_now_iso(),
            "message": f"Service {service_name} restarted",
        }

    async def restart_locked(self, name: str) -> None:
        log.info("Restarting service: %s", name)
        await self._supervisor.stop(name)
        await self.start_locked(name)
        unit = self._supervisor.unit(name)
        self._events.publish("service_restarted", name, unit.version, manual=True)

    def dependents_left_out(self, name: str, version: Version) -> str:
        """The running (or starting) services whose range for ``name`` leaves ``version`` out, in words.

        ``""`` when there are none.  A graph that cannot be read raises ``bad_dependency``.
        """
        return ", ".join(
            f"{other} (needs {dep})"
            for other, dep in broken_by(name, version, self._catalog.graph())
            if self.is_up(other) or other in self._starting
        )

    def is_up(self, name: str) -> bool:
        """Running, starting or waiting to restart: a process is (or will be) there."""
        unit = self._supervisor.find(name)
        return unit is not None and unit.looping

    def is_running(self, service_name: str) -> bool:
        """Whether the service's process is up and serving (state ``running``)."""
        return self._supervisor.is_running(service_name)

    async def logs(self, service_name: str, lines: int = 100) -> list[str]:
        """The last ``lines`` lines of the service's output (stdout and stderr), oldest first."""
        self._store.get(service_name)
        return await self._supervisor.logs.tail(service_name, lines)

    async def peer_logs(self, service_name: str, lines: int = 100) -> dict[str, Any]:
        """``get_service_logs``: the newest of the last ``lines`` (at most 1000) that fit in a reply."""
        if not 0 <= lines <= MAX_LOG_REPLY_LINES:
            raise ServiceCallError(
                f"lines must be between 0 and {MAX_LOG_REPLY_LINES}, got {lines}", code="bad_params"
            )
        tail = await self.logs(service_name, lines)
        kept, truncated = newest_within(tail, lambda line: len(line.encode()) + ITEM_BYTES)
        return {"service_name": service_name, "lines": kept, "truncated": truncated}

    def follow(self, service_name: str, lines: int = 0) -> LogFollower:
        """Follow the service's output: an async iterator of lines (see :class:`LogFollower`)."""
        self._store.get(service_name)
        return self._supervisor.logs.follow(service_name, lines=lines)
