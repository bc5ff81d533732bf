"""``ServiceUnit``: what the supervisor knows and keeps about one service.

A unit outlives its processes: it holds the state machine, the restart
bookkeeping, the current :class:`~p2p_orchestrator.runtime.process.ServiceProcess`
(if any) and what the last one left behind (exit status, error).  The
supervisor's loop is the only writer; everything here is read by the API.
"""

from __future__ import annotations

import time
from typing import Any

import trio

from p2p_orchestrator.runtime.health import HealthPolicy, HealthStatus
from p2p_orchestrator.runtime.policy import RestartPolicy, RestartTracker
from p2p_orchestrator.runtime.process import ServiceProcess
from p2p_orchestrator.runtime.protocol import describe_exit
from p2p_orchestrator.runtime.states import ServiceState, StateMachine

__all__ = ["CallStats", "ServiceUnit"]


class CallStats:
    """Calls into one service through the node since it started: how many, how many failed, how long."""

    __slots__ = ("calls", "errors", "seconds")

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.seconds = 0.0
        """Total time the calls took, answered or not."""

    def record(self, seconds: float, *, failed: bool) -> None:
        self.calls += 1
        self.errors += failed
        self.seconds += seconds

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "errors": self.errors, "seconds": round(self.seconds, 6)}


class ServiceUnit:
    """The supervised state of one installed service."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.machine = StateMachine()
        self.tracker = RestartTracker(RestartPolicy())
        self.health = HealthStatus()
        self.health_policy = HealthPolicy()
        self.process: ServiceProcess | None = None
        self.version: str | None = None
        self.last_exit_status: int | None = None
        """Return code of the last process (negative: killed by that signal)."""
        self.last_error: str | None = None
        self.kill_reason: str | None = None
        """Why the supervisor killed the current process (failed health checks), if it did."""
        self.stop_requested = False
        self.stop_event = trio.Event()
        """Set by a stop request; the supervising loop then stops the process."""
        self.backoff_scope: trio.CancelScope | None = None
        self.next_start_at: float | None = None
        """Monotonic time the pending restart is due (in ``backoff``)."""
        self.loop_done: trio.Event | None = None
        """Set when the supervising loop of this unit ends (``None``: no loop ever ran)."""
        self.call_stats = CallStats()

    @property
    def state(self) -> ServiceState:
        return self.machine.state

    @property
    def running(self) -> bool:
        """In state ``running`` with a live, ready process."""
        return self.state is ServiceState.RUNNING and self.process is not None and self.process.ready

    @property
    def looping(self) -> bool:
        """Whether a supervising loop owns this unit now."""
        return self.loop_done is not None and not self.loop_done.is_set()

    def describe(self) -> dict[str, Any]:
        """The runtime fields of ``list_services`` / ``get_service_info``."""
        proc = (
            self.process
            if self.state in (ServiceState.STARTING, ServiceState.RUNNING, ServiceState.STOPPING)
            else None
        )
        uptime = None
        if proc is not None and self.state is ServiceState.RUNNING:
            uptime = round(time.monotonic() - proc.started_monotonic, 3)
        return {
            "state": self.state.value,
            "pid": proc.pid if proc is not None else None,
            "started_at": proc.started_at if proc is not None else None,
            "uptime_seconds": uptime,
            "restart_count": self.tracker.total,
            "last_exit_status": self.last_exit_status,
            "last_exit": describe_exit(self.last_exit_status) if self.last_exit_status is not None else None,
            "last_error": self.last_error,
            "health": self.health.describe(),
            "sandbox": dict(proc.sandbox) if proc is not None else None,
        }
