"""The running half of the :class:`~p2p_orchestrator.Orchestrator` API: start, stop, restart, logs.

Kept apart from ``orchestrator.py`` so each module stays about one thing: this
one translates the spec's running methods (their result shapes, desired state,
dependencies, log messages) into
:class:`~p2p_orchestrator.runtime.supervisor.Supervisor` calls.
:class:`RunningApi` is a mixin of ``Orchestrator`` only.

Locks: every life-cycle operation on a service holds that service's lock.
Starting a service also takes, one after the other, the locks of the
dependencies it starts, so locks are only ever nested along dependency edges
(dependent, then dependency); as the graph a start accepts has no cycle, two
starts cannot deadlock.  A forced stop takes each dependent's lock on its own,
never while holding the lock of what they need.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import trio

from p2p_orchestrator._clock import utc_now_iso
from p2p_orchestrator._replies import ITEM_BYTES, newest_within
from p2p_orchestrator.archive import Version
from p2p_orchestrator.callers import Caller, Permission
from p2p_orchestrator.config import OrchestratorConfig
from p2p_orchestrator.crashpoints import crashpoint
from p2p_orchestrator.errors import (
    OrchestratorError,
    ServiceCallError,
    ServiceInstallationError,
    ServiceManagementError,
)
from p2p_orchestrator.events import EventBus
from p2p_orchestrator.rpc import Rpc
from p2p_orchestrator.runtime.dependencies import (
    Installed,
    broken_by,
    dependents_in_stop_order,
    direct_dependents,
    graph_of,
    start_order,
    stop_layers,
)
from p2p_orchestrator.runtime.logs import LogFollower
from p2p_orchestrator.runtime.plan import ServicePlan, launch_plan
from p2p_orchestrator.runtime.supervisor import Supervisor
from p2p_orchestrator.runtime.venvs import VenvCache, read_requirements
from p2p_orchestrator.store import ServiceRecord, ServiceStore

__all__ = ["RunningApi"]

MAX_LOG_REPLY_LINES = 1000
"""The most lines :meth:`RunningApi.get_service_logs` returns."""

log = logging.getLogger("p2p_orchestrator")


class RunningApi:
    """Start, stop, restart and watch services; mixed into :class:`~p2p_orchestrator.Orchestrator`."""

    events: EventBus
    rpc: Rpc
    home: Path
    _supervisor: Supervisor | None
    _venvs: VenvCache
    _starting: set[str]
    """Services whose start passed its last dependency check and is under way."""

    # provided by Orchestrator
    @property
    def config(self) -> OrchestratorConfig:
        raise NotImplementedError

    @property
    def store(self) -> ServiceStore:
        raise NotImplementedError

    @property
    def supervisor(self) -> Supervisor:
        raise NotImplementedError

    def _service_lock(self, name: str) -> AbstractAsyncContextManager[None]:
        raise NotImplementedError

    def service_configuration(self, record: ServiceRecord) -> dict[str, Any]:
        raise NotImplementedError

    async def _restore_desired_state(self) -> None:
        """Start every service that was running when the node last stopped.

        They start concurrently, but each start first starts (and waits for)
        what the service needs, so they come up in dependency order.
        """

        async def restore(name: str) -> None:
            try:
                async with self._service_lock(name):
                    await self._start_locked(name)
            except OrchestratorError as exc:
                log.warning(
                    "Service %s was running before the node restarted, but did not start: %s", name, exc
                )

        async with trio.open_nursery() as nursery:
            for name, record in sorted(self.store.records.items()):
                if record.desired_state == "running":
                    nursery.start_soon(restore, name)

    def _launch_plan(self, name: str) -> ServicePlan:
        """What the supervisor starts for ``name`` now: the current version and its settings."""
        record = self.store.get(name)
        directory = self.store.version_dir(record.current)
        return launch_plan(
            name,
            version=record.current.version,
            directory=directory,
            data_directory=self.data_directory(name),
            manifest=record.current.manifest,
            configuration=self.service_configuration(record),
            config=self.config,
            python=self._venvs.python_for(name, directory),
        )

    def data_directory(self, service_name: str, *, create: bool = True) -> Path:
        """Where ``service_name`` keeps its files: its working directory, shared by all its versions.

        ``home/data/<name>/``, made (mode 0700) on first use unless ``create`` is
        false.  It outlives upgrades, rollbacks and uninstalls (a service reinstalled
        finds its data again).
        """
        path = self.home / "data" / service_name
        if create:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    async def _local_call(self, service: str, method: str, params: dict[str, Any], peer: str | None) -> Any:
        """A service's proxy call: the RPC table, as that service (which may relay to ``peer``).

        A service acts with its own rights, not the node's: it may call public methods
        of this node's services, ``orchestrator/*`` methods that only read, and what the
        operator grants it more (``[services.<name>] may = ["deploy"]``); on other nodes,
        what they grant this node.
        """
        granted = frozenset(Permission(p) for p in self.config.service(service).may)
        caller = Caller(
            peer_id=None,
            permissions=frozenset({Permission.READ}) | granted,
            public_only=True,
            service=service,
        )
        return await self.rpc.call(method, params, caller=caller, peer=peer)

    def _shutdown_layers(self, running: list[str]) -> list[list[str]]:
        """The order the node stops its services in when it closes: dependents first."""
        try:
            graph = self._graph()
        except OrchestratorError as exc:
            log.warning("Stopping every service at once (the dependency graph is unreadable: %s)", exc)
            return [running]
        return stop_layers(running, graph)

    def _graph(self) -> dict[str, Installed]:
        """The dependency graph of the installed services (current versions)."""
        return graph_of(
            (name, r.current.version, r.current.manifest) for name, r in self.store.records.items()
        )

    # -- running ------------------------------------------------------------------------

    async def start_service(self, service_name: str) -> dict[str, Any]:
        """Start the service's process and wait until it is running.

        What the service needs (its manifest's ``dependencies``) is started
        first, dependencies before dependents, and each must be running and
        healthy within ``[runtime] dependency_timeout``.  Raises
        :class:`~p2p_orchestrator.ServiceManagementError` when it cannot be
        loaded or initialized, exceeds the start timeout (the service is then
        ``failed`` and ``last_error`` says why), or a dependency is missing, of
        the wrong version, part of a cycle or fails.  Starting a running service
        is a no-op that succeeds.  The node starts it again after a restart.
        """
        async with self._service_lock(service_name):
            self.store.get(service_name)
            return await self._start_locked(service_name)

    async def _start_locked(self, name: str) -> dict[str, Any]:
        """Start ``name`` and, first, what it needs (its lock is held; theirs are taken in turn)."""
        order = start_order(name, self._graph())
        for dependency in order[:-1]:
            await self._start_dependency(dependency, needed_by=name)
        return await self._start_one(name)

    async def _start_one(self, name: str) -> dict[str, Any]:
        already = self.supervisor.is_running(name)
        if not already:
            log.info("Starting service: %s", name)
            await self._ensure_environment(name)
            # The ranges again, with no await before the service counts as starting: an install
            # that went on meanwhile committed already (refused here) or sees it (refused there).
            start_order(name, self._graph())
        self._starting.add(name)
        try:
            unit = await self.supervisor.start(name)
        finally:
            self._starting.discard(name)
        crashpoint("runtime.start.before_desired")
        self.store.set_desired_state(name, "running")
        message = f"Service {name} is already running" if already else f"Service {name} loaded and started"
        log.info(message)
        started_at = unit.process.started_at if unit.process is not None else utc_now_iso()
        return {"success": True, "service_name": name, "started_at": started_at, "message": message}

    async def _ensure_environment(self, name: str) -> None:
        """Build the service's virtual environment if it needs one and it is missing."""
        directory = self.store.version_dir(self.store.get(name).current)
        try:
            await self._venvs.ensure(name, read_requirements(directory))
        except ServiceInstallationError as exc:
            raise ServiceManagementError(exc.message, code=exc.code) from exc

    async def _start_dependency(self, name: str, *, needed_by: str) -> None:
        """Start ``name`` for ``needed_by`` unless it runs, then wait until it is healthy (bounded)."""
        async with self._service_lock(name):
            if not self.supervisor.is_running(name):
                log.info("Starting service %s, which %s needs", name, needed_by)
                try:
                    await self._start_one(name)
                except OrchestratorError as exc:
                    raise ServiceManagementError(
                        f"{needed_by} needs {name}, which did not start: {exc.message}",
                        code="dependency_failed",
                    ) from exc
        unit = self.supervisor.unit(name)
        limit = self.config.runtime.dependency_timeout
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

    async def stop_service(self, service_name: str, force: bool = False) -> dict[str, Any]:
        """Stop the service: ``cleanup()`` within the grace period, then SIGTERM, then SIGKILL.

        It stays stopped after a node restart.  Stopping a stopped service succeeds.
        A service that running services need is not stopped (``has_dependents``)
        unless ``force``: then those services are stopped first, each before
        what it needs, and stay stopped after a node restart too.
        """
        self.store.get(service_name)
        if force:
            await self._stop_dependents(service_name)
        async with self._service_lock(service_name):
            self.store.get(service_name)
            self._refuse_if_needed(service_name, "stop")
            log.info("Stopping service: %s", service_name)
            stopped = await self.supervisor.stop(service_name)
            crashpoint("runtime.stop.before_desired")
            self.store.set_desired_state(service_name, "stopped")
        message = f"Service {service_name} stopped" if stopped else f"Service {service_name} was not running"
        log.info(message)
        return {
            "success": True,
            "service_name": service_name,
            "stopped_at": utc_now_iso(),
            "message": message,
        }

    def _refuse_if_needed(self, name: str, action: str) -> None:
        """``has_dependents`` if running services need ``name`` (``"stop"``) or installed ones do."""
        graph = self._graph()
        if action == "stop":
            needing = [d for d in dependents_in_stop_order(name, graph) if self._is_up(d)]
            who = "running"
        else:
            needing, who = direct_dependents(name, graph), "installed"
        if needing:
            raise ServiceManagementError(
                f"cannot {action} {name}: {who} service(s) need it: {', '.join(needing)}; {action} them "
                f"first, or pass force=True to stop them first",
                code="has_dependents",
            )

    async def _stop_dependents(self, name: str) -> None:
        """Stop every running service that needs ``name``, each before what it needs (a forced stop)."""
        for dependent in dependents_in_stop_order(name, self._graph()):
            async with self._service_lock(dependent):
                if self._is_up(dependent):
                    log.info("Stopping service %s, which needs %s (forced)", dependent, name)
                    await self.supervisor.stop(dependent)
                    self.store.set_desired_state(dependent, "stopped")

    async def restart_service(self, service_name: str) -> dict[str, Any]:
        """Stop the service if it runs, then start it (on its current version).

        Services that need it keep running; their calls to it fail while it restarts.
        """
        async with self._service_lock(service_name):
            self.store.get(service_name)
            await self._restart_locked(service_name)
        return {
            "success": True,
            "service_name": service_name,
            "restarted_at": utc_now_iso(),
            "message": f"Service {service_name} restarted",
        }

    async def _restart_locked(self, name: str) -> None:
        log.info("Restarting service: %s", name)
        await self.supervisor.stop(name)
        await self._start_locked(name)
        unit = self.supervisor.unit(name)
        self.events.publish("service_restarted", name, unit.version, manual=True)

    def _dependents_left_out(self, name: str, version: Version) -> str:
        """The running (or starting) services whose range for ``name`` leaves ``version`` out, in words.

        ``""`` when there are none.  A graph that cannot be read raises ``bad_dependency``.
        """
        return ", ".join(
            f"{other} (needs {dep})"
            for other, dep in broken_by(name, version, self._graph())
            if self._is_up(other) or other in self._starting
        )

    def _is_up(self, name: str) -> bool:
        """Running, starting or waiting to restart: a process is (or will be) there."""
        unit = self._supervisor.find(name) if self._supervisor is not None else None
        return unit is not None and unit.looping

    def is_running(self, service_name: str) -> bool:
        """Whether the service's process is up and serving (state ``running``)."""
        return self._supervisor is not None and self._supervisor.is_running(service_name)

    async def service_logs(self, service_name: str, lines: int = 100) -> list[str]:
        """The last ``lines`` lines of the service's output (stdout and stderr), oldest first."""
        self.store.get(service_name)
        return await self.supervisor.logs.tail(service_name, lines)

    async def get_service_logs(self, service_name: str, lines: int = 100) -> dict[str, Any]:
        """The last ``lines`` (at most 1000) lines of the service's output, as a peer may read them.

        ``{"service_name", "lines", "truncated"}``: the newest lines that fit in
        :data:`~p2p_orchestrator._replies.REPLY_BYTES`; ``truncated`` says whether older ones
        were left out for that.
        """
        if not 0 <= lines <= MAX_LOG_REPLY_LINES:
            raise ServiceCallError(
                f"lines must be between 0 and {MAX_LOG_REPLY_LINES}, got {lines}", code="bad_params"
            )
        tail = await self.service_logs(service_name, lines)
        kept, truncated = newest_within(tail, lambda line: len(line.encode()) + ITEM_BYTES)
        return {"service_name": service_name, "lines": kept, "truncated": truncated}

    def follow_logs(self, service_name: str, lines: int = 0) -> LogFollower:
        """Follow the service's output: an async iterator of lines (see :class:`LogFollower`)."""
        self.store.get(service_name)
        return self.supervisor.logs.follow(service_name, lines=lines)
