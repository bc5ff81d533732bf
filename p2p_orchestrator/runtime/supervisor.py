"""``Supervisor``: starts, watches, restarts and stops the service processes of one node.

Each started service gets a supervising loop, a task in the orchestrator's
nursery, that owns its processes one after the other::

    starting ──> running ──(exit)──> backoff ──(delay)──> starting ──> ...
       │                               │
       └─(start fails)─> failed        └─(restart limit)─> failed

:meth:`Supervisor.start` returns once the first process is ``running`` (or
raises the start error, leaving the service ``failed``: a first start that
fails is reported to whoever asked, not retried).  After that the loop applies
the service's :class:`~p2p_orchestrator.runtime.policy.RestartPolicy` to every
exit it did not ask for.  :meth:`Supervisor.stop` asks the loop to stop the
process (politely, then SIGTERM, then SIGKILL) and waits until it has.

While a process runs, the loop also probes its health
(:mod:`~p2p_orchestrator.runtime.health`); a process that fails too many probes
in a row (or whose event loop is blocked) is killed, and the restart policy
applies as after a crash.  Every exit the loop did not ask for, and every
failed restart, is reported to ``on_failure`` (the orchestrator's upgrade
guard, which may revert an upgrade).

The supervisor publishes ``service_started``, ``service_restarted``,
``service_failed``, ``service_stopped`` and ``service_health`` events; it never
touches the store (desired state is the orchestrator's business).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from p2p_orchestrator.callers import Caller
from p2p_orchestrator.config import RuntimeSettings
from p2p_orchestrator.errors import ServiceManagementError
from p2p_orchestrator.events import EventBus
from p2p_orchestrator.runtime._procfs import ancestry
from p2p_orchestrator.runtime.backoff import after_exit
from p2p_orchestrator.runtime.calls import LocalCall, ProxyCalls, call_service
from p2p_orchestrator.runtime.fork_server import ForkServer, open_fork_server
from p2p_orchestrator.runtime.health import HealthPolicy, Status, watch_health
from p2p_orchestrator.runtime.logs import LogBook
from p2p_orchestrator.runtime.pidfiles import PidFiles
from p2p_orchestrator.runtime.plan import ServicePlan
from p2p_orchestrator.runtime.process import LaunchSpec, ServiceProcess
from p2p_orchestrator.runtime.protocol import describe_exit
from p2p_orchestrator.runtime.states import ServiceState
from p2p_orchestrator.runtime.unit import ServiceUnit

if TYPE_CHECKING:
    from trio_typing import TaskStatus

__all__ = ["FailureHook", "LaunchPlan", "LocalCall", "Supervisor", "open_supervisor"]

log = logging.getLogger("p2p_orchestrator.runtime")

S = ServiceState
LaunchPlan = Callable[[str], ServicePlan]
"""What to start for a service now: its launch spec, restart and health policies (read at every start)."""
FailureHook = Callable[[str, str | None, str], None]
"""Told ``(service, version, reason)`` of every unrequested exit or failed restart; must not block."""
_STACK_DUMP_WAIT = 0.2  # seconds for a hung runner to write its stacks to the log before SIGKILL


class Supervisor:
    """Every service's :class:`ServiceUnit` and supervising loop; see the module docstring."""

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        plan: LaunchPlan,
        local_call: LocalCall,
        logs: LogBook,
        pidfiles: PidFiles,
        events: EventBus,
        on_failure: FailureHook | None = None,
        forks: ForkServer | None = None,
    ) -> None:
        self._nursery = nursery
        self.forks = forks
        """The node's fork server (``None``: every service process is a new interpreter)."""
        self._plan = plan
        self._proxy_calls = ProxyCalls(nursery, local_call)
        self._on_failure = on_failure
        self.logs = logs
        self._pidfiles = pidfiles
        self._events = events
        self._units: dict[str, ServiceUnit] = {}

    # -- units -----------------------------------------------------------------------------

    def serves_process(self, pid: int) -> str | None:
        """The service whose process ``pid`` is, or descends from, or shares a process group with."""
        processes = {unit.process.pid: name for name, unit in self._units.items() if unit.process is not None}
        if not processes:
            return None
        return next((processes[p] for p in ancestry(pid) if p in processes), None)

    def unit(self, name: str) -> ServiceUnit:
        """The unit of ``name``, created (``installed``) on first use."""
        unit = self._units.get(name)
        if unit is None:
            unit = self._units[name] = ServiceUnit(name)
        return unit

    def find(self, name: str) -> ServiceUnit | None:
        """The unit of ``name`` if it has one."""
        return self._units.get(name)

    def forget(self, name: str) -> None:
        """Drop the unit of an uninstalled service (stop it first)."""
        unit = self._units.pop(name, None)
        if unit is not None and unit.looping:
            raise RuntimeError(f"forgetting {name} while its supervising loop runs")

    def is_running(self, name: str) -> bool:
        unit = self._units.get(name)
        return unit is not None and unit.running

    def spawn(self, async_fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run ``async_fn(*args)`` as a task of the runtime (cancelled when the node closes)."""
        self._nursery.start_soon(async_fn, *args)

    # -- start and stop -----------------------------------------------------------------------

    async def start(self, name: str) -> ServiceUnit:
        """Start ``name`` unless it runs; return once it is ``running``.

        Raises :class:`ServiceManagementError` (the service is then ``failed``)
        when its process cannot be started, fails to load or initialize, or
        exceeds its start timeout.
        """
        unit = self.unit(name)
        await unit.machine.wait_until(lambda s: s not in (S.STARTING, S.STOPPING))
        if unit.state is S.RUNNING:
            return unit
        if unit.looping:  # in backoff: start afresh, now
            await self.stop(name)
        unit.stop_requested = False
        unit.stop_event = trio.Event()
        unit.tracker.reset()
        unit.loop_done = trio.Event()
        await self._nursery.start(self._supervise, unit)
        return unit

    async def stop(self, name: str) -> bool:
        """Stop ``name`` and wait until it is ``stopped``; whether it had a process or pending restart."""
        unit = self._units.get(name)
        if unit is None:
            return False
        if not unit.looping:
            if unit.state is S.FAILED:
                unit.machine.move(S.STOPPED, "stop requested")
            return False
        assert unit.loop_done is not None
        unit.stop_requested = True
        unit.stop_event.set()
        if unit.state in (S.STARTING, S.RUNNING):
            unit.machine.move(S.STOPPING, "stop requested")
        elif unit.state is S.BACKOFF and unit.backoff_scope is not None:
            unit.backoff_scope.cancel()
        await unit.loop_done.wait()
        return True

    async def stop_all(self, layers: Callable[[list[str]], list[list[str]]] | None = None) -> None:
        """Stop every service (their desired state is left alone).

        ``layers`` groups the running services into batches stopped one after
        the other, each concurrently (dependents before what they need); without
        it they all stop at once.
        """
        running = [name for name, unit in self._units.items() if unit.looping]
        for batch in layers(running) if layers is not None else [running]:
            async with trio.open_nursery() as nursery:
                for name in batch:
                    nursery.start_soon(self.stop, name)

    # -- the supervising loop -----------------------------------------------------------------

    async def _supervise(self, unit: ServiceUnit, *, task_status: TaskStatus[None]) -> None:
        assert unit.loop_done is not None
        done = unit.loop_done
        first = True  # until the first process is running and start() has returned
        try:
            while True:
                try:
                    plan = self._plan(unit.name)
                except ServiceManagementError as exc:
                    if first:
                        raise  # to start()'s caller; the state did not change
                    self._fail(unit, exc.message)
                    return
                unit.tracker.policy = plan.restart
                unit.health_policy = plan.health
                unit.version = plan.spec.version
                unit.machine.move(S.STARTING, "first start" if first else "restart")
                try:
                    code, error, ran = await self._incarnation(
                        unit, plan.spec, first=first, task_status=task_status
                    )
                except ServiceManagementError as exc:  # no process could be spawned at all
                    code, error, ran = None, exc, False
                first = first and not ran  # once it ran, start() has returned
                if unit.stop_requested:
                    unit.machine.move(S.STOPPED, "stopped on request")
                    self._events.publish("service_stopped", unit.name, unit.version, exit_status=code)
                    if first:
                        raise ServiceManagementError(
                            f"{unit.name} was stopped while starting", code="start_cancelled"
                        )
                    return
                if error is not None:
                    unit.last_error = error.message
                    if first:
                        self._fail(unit, error.message)
                        raise error
                    failed = True
                elif unit.kill_reason is not None:
                    unit.last_error, failed = unit.kill_reason, True
                else:
                    assert code is not None
                    failed = code != 0
                    if failed:
                        unit.last_error = f"exited on its own: {describe_exit(code)}"
                first = False
                if failed and self._on_failure is not None:
                    self._on_failure(unit.name, unit.version, unit.last_error or "failed")
                if not await after_exit(unit, self._events, failed=failed):
                    return
        finally:
            done.set()

    def _fail(self, unit: ServiceUnit, error: str) -> None:
        unit.last_error = error
        unit.machine.move(S.FAILED, error)
        log.error("Service %s failed: %s", unit.name, error)
        self._events.publish("service_failed", unit.name, unit.version, state="failed", error=error)

    async def _incarnation(
        self, unit: ServiceUnit, spec: LaunchSpec, *, first: bool, task_status: TaskStatus[None]
    ) -> tuple[int | None, ServiceManagementError | None, bool]:
        """Run one process of ``unit`` until it exits: its return code, the start error, whether it ran."""
        error: ServiceManagementError | None = None
        ran = False
        unit.kill_reason = None
        unit.health.reset()
        async with ServiceProcess.launch(
            spec,
            log=self.logs.log(unit.name),
            pidfiles=self._pidfiles,
            on_call=self._proxy_calls,
            forks=self.forks,
        ) as proc:
            unit.process = proc
            async with trio.open_nursery() as nursery:
                health_scope = trio.CancelScope()

                async def stop_on_request() -> None:
                    await unit.stop_event.wait()
                    health_scope.cancel()  # a stopping service answers no probes: do not count them
                    await proc.stop(spec.stop_timeout, polite=proc.ready)

                nursery.start_soon(stop_on_request)
                try:
                    await proc.wait_ready()
                except ServiceManagementError as exc:
                    error = exc
                else:
                    if not unit.stop_requested:
                        self._now_running(unit, proc, first=first, task_status=task_status)
                        ran = True
                        nursery.start_soon(self._guard_health, unit, proc, unit.health_policy, health_scope)
                    await proc.wait()
                nursery.cancel_scope.cancel()
        unit.process = None
        unit.health.reset()
        unit.last_exit_status = proc.returncode
        if error is None and not unit.stop_requested:
            unit.tracker.ran_for(time.monotonic() - proc.started_monotonic)
        return proc.returncode, error, ran

    def _now_running(
        self, unit: ServiceUnit, proc: ServiceProcess, *, first: bool, task_status: TaskStatus[None]
    ) -> None:
        unit.machine.move(S.RUNNING, f"pid {proc.pid} ready")
        unit.next_start_at = None
        if first:
            unit.last_error = None
            self._events.publish("service_started", unit.name, unit.version, pid=proc.pid)
            task_status.started()
        else:
            log.info("Service %s restarted (restart %d, pid %d)", unit.name, unit.tracker.total, proc.pid)
            self._events.publish(
                "service_restarted", unit.name, unit.version, pid=proc.pid, restart_count=unit.tracker.total
            )

    async def _guard_health(
        self, unit: ServiceUnit, proc: ServiceProcess, policy: HealthPolicy, scope: trio.CancelScope
    ) -> None:
        """Probe ``proc`` while it runs; kill it (stacks to the log first) when it fails too often."""

        def on_change(before: Status, after: Status) -> None:
            if (before, after) == ("unknown", "healthy"):
                return  # the normal start of a process: service_started says it
            health = unit.health
            log.log(
                logging.WARNING if after == "unhealthy" else logging.INFO,
                "Service %s is %s (was %s)",
                unit.name,
                after,
                before,
            )
            self._events.publish(
                "service_health",
                unit.name,
                unit.version,
                status=after,
                previous=before,
                consecutive_failures=health.consecutive_failures,
                error=health.last_error if after == "unhealthy" else None,
            )

        with scope:
            reason = await watch_health(proc.probe_health, policy, unit.health, on_change=on_change)
            if reason is None or unit.stop_requested:
                return
            log.error("Service %s (pid %d): %s; killing it", unit.name, proc.pid, reason)
            unit.kill_reason = reason
            proc.dump_stacks()
            await trio.sleep(_STACK_DUMP_WAIT)
            proc.kill()

    # -- calls ---------------------------------------------------------------------------------

    async def call(self, target: str, method: str, params: dict[str, Any], caller: Caller) -> Any:
        """Call ``target``'s exposed ``method`` for ``caller`` (the :class:`~p2p_orchestrator.rpc.Rpc` seam)."""
        return await call_service(self._units.get(target), target, method, params, caller)


@asynccontextmanager
async def open_supervisor(
    home: Path,
    settings: RuntimeSettings,
    *,
    plan: LaunchPlan,
    local_call: LocalCall,
    events: EventBus,
    on_failure: FailureHook | None = None,
    stop_layers: Callable[[list[str]], list[list[str]]] | None = None,
) -> AsyncIterator[Supervisor]:
    """The supervisor of the node at ``home``, with the nursery its loops run in.

    On entry it kills processes a killed predecessor left behind (see
    :mod:`~p2p_orchestrator.runtime.pidfiles`).  On exit, even when cancelled, it
    stops every service (in the batches ``stop_layers`` gives, dependents first)
    within the grace period, then cancels whatever is left (which kills the
    remaining children), so no child outlives it.
    """
    pidfiles = PidFiles(home / "run")
    orphans = await trio.to_thread.run_sync(pidfiles.reap_orphans)
    if orphans:
        log.warning("Killed %d orphaned service process(es) of a previous node", len(orphans))
    logs = LogBook(home / "logs", max_bytes=settings.log_max_bytes, backups=settings.log_backups)
    try:
        async with AsyncExitStack() as stack:
            forks = await stack.enter_async_context(open_fork_server()) if settings.fork_server else None
            nursery = await stack.enter_async_context(trio.open_nursery())
            supervisor = Supervisor(
                nursery,
                plan=plan,
                local_call=local_call,
                logs=logs,
                pidfiles=pidfiles,
                events=events,
                on_failure=on_failure,
                forks=forks,
            )
            try:
                yield supervisor
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(settings.stop_timeout + 5.0):
                    await supervisor.stop_all(stop_layers)
                nursery.cancel_scope.cancel()
    finally:
        logs.close()
