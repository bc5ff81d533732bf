"""The running half of the :class:`~p2p_orchestrator.Orchestrator` API: start, stop, restart, logs.

Kept apart from ``orchestrator.py`` so each module stays about one thing: this
one translates the spec's running methods (their result shapes, desired state,
log messages) into :class:`~p2p_orchestrator.runtime.supervisor.Supervisor`
calls.  :class:`RunningApi` is a mixin of ``Orchestrator`` only.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from typing import Any

import trio

from p2p_orchestrator._clock import utc_now_iso
from p2p_orchestrator.config import OrchestratorConfig
from p2p_orchestrator.errors import OrchestratorError
from p2p_orchestrator.events import EventBus
from p2p_orchestrator.rpc import LOCAL_CALLER, Rpc
from p2p_orchestrator.runtime.logs import LogFollower
from p2p_orchestrator.runtime.plan import launch_plan
from p2p_orchestrator.runtime.policy import RestartPolicy
from p2p_orchestrator.runtime.process import LaunchSpec
from p2p_orchestrator.runtime.supervisor import Supervisor
from p2p_orchestrator.store import ServiceRecord, ServiceStore

__all__ = ["RunningApi"]

log = logging.getLogger("p2p_orchestrator")


class RunningApi:
    """Start, stop, restart and watch services; mixed into :class:`~p2p_orchestrator.Orchestrator`."""

    events: EventBus
    rpc: Rpc
    _supervisor: Supervisor | None

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
        """Start, concurrently, every service that was running when the node last stopped."""

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

    def _launch_plan(self, name: str) -> tuple[LaunchSpec, RestartPolicy]:
        """What the supervisor starts for ``name`` now: the current version and its settings."""
        record = self.store.get(name)
        return launch_plan(
            name,
            version=record.current.version,
            directory=self.store.version_dir(record.current),
            manifest=record.current.manifest,
            configuration=self.service_configuration(record),
            config=self.config,
        )

    async def _local_call(self, method: str, params: dict[str, Any]) -> Any:
        """A service's proxy call to this node: the RPC table, as a caller on this node."""
        return await self.rpc.call(method, params, caller=LOCAL_CALLER)

    # -- running ------------------------------------------------------------------------

    async def start_service(self, service_name: str) -> dict[str, Any]:
        """Start the service's process and wait until it is running.

        Raises :class:`~p2p_orchestrator.ServiceManagementError` when it cannot
        be loaded or initialized, or exceeds the start timeout; the service is then
        ``failed`` and ``last_error`` says why.  Starting a running service is a
        no-op that succeeds.  The node starts it again after a restart.
        """
        async with self._service_lock(service_name):
            self.store.get(service_name)
            return await self._start_locked(service_name)

    async def _start_locked(self, name: str) -> dict[str, Any]:
        already = self.supervisor.is_running(name)
        if not already:
            log.info("Starting service: %s", name)
        unit = await self.supervisor.start(name)
        self.store.set_desired_state(name, "running")
        message = f"Service {name} is already running" if already else f"Service {name} loaded and started"
        log.info(message)
        started_at = unit.process.started_at if unit.process is not None else utc_now_iso()
        return {"success": True, "service_name": name, "started_at": started_at, "message": message}

    async def stop_service(self, service_name: str, force: bool = False) -> dict[str, Any]:
        """Stop the service: ``cleanup()`` within the grace period, then SIGTERM, then SIGKILL.

        It stays stopped after a node restart.  Stopping a stopped service succeeds.
        ``force`` is reserved for stopping a service that others depend on (service
        dependencies are not enforced yet, so it changes nothing today).
        """
        async with self._service_lock(service_name):
            self.store.get(service_name)
            log.info("Stopping service: %s", service_name)
            stopped = await self.supervisor.stop(service_name)
            self.store.set_desired_state(service_name, "stopped")
        message = f"Service {service_name} stopped" if stopped else f"Service {service_name} was not running"
        log.info(message)
        return {
            "success": True,
            "service_name": service_name,
            "stopped_at": utc_now_iso(),
            "message": message,
        }

    async def restart_service(self, service_name: str) -> dict[str, Any]:
        """Stop the service if it runs, then start it (on its current version)."""
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

    def follow_logs(self, service_name: str, lines: int = 0) -> LogFollower:
        """Follow the service's output: an async iterator of lines (see :class:`LogFollower`)."""
        self.store.get(service_name)
        return self.supervisor.logs.follow(service_name, lines=lines)
