"""Health checks: is a running service still doing its job, and is its event loop alive?

The supervisor probes every running service (``runner/health``) from the moment
it is ``running``, then every ``interval`` seconds, each probe bounded by
``timeout``.  The runner answers from the service's ``async def health_check(self)``
when it has one, and "healthy" when it has not: so even a service with no check
of its own is probed, and one whose event loop is blocked (``time.sleep`` in a
method, a CPU loop, a blocking C call) is caught because it cannot answer.
``failures`` consecutive failed probes kill the process, and the restart policy
applies as after any crash.  Failures within ``start_period`` seconds of the start
do not count (a success ends that period early).

Why a flood of calls does not starve the probes (and get a busy service killed
as hung): trio runs every runnable task once per scheduling round, so a probe's
latency in the child is about the sum of the steps of the tasks runnable beside
it.  The node therefore sends at most ``[runtime] max_concurrent_calls`` service
calls to a process at once; the others wait in the node (costing the service
nothing, and still bounded by their deadline).  Probes skip that queue, and the
channel keeps in-flight slots for them, so a probe waits behind at most that many
call steps, however many calls are queued.  A probe that still gets no answer
within ``timeout`` means the loop is blocked, not busy.  (We chose this over a
watchdog thread measuring event-loop lag in the child: a thread would see the
same scheduling rounds, cost every child a thread, and still need a way to
report; the probe measures what matters, "does it answer", end to end.)  Before
killing a process for failed probes the supervisor sends it ``SIGUSR1``, on
which the runner's :mod:`faulthandler` writes every thread's stack to the log,
so the log shows where it hung.

The policy is read from the manifest's ``health`` object, overlaid key by key by
the operator's ``[services.<name>.health]`` table (the same precedence as the
restart policy)::

    {"interval": 10, "timeout": 5, "failures": 3, "start_period": 0}

:class:`HealthStatus` is what ``list_services`` shows (``health``): ``status``
(``unknown`` until the first probe of a process, then ``healthy`` or
``unhealthy`` as the last counted probe said), ``last_check``,
``consecutive_failures`` and ``last_error``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import trio

from p2p_orchestrator._clock import utc_now_iso
from p2p_orchestrator.errors import OrchestratorError
from p2p_orchestrator.runtime._layers import overlay

__all__ = ["HealthPolicy", "HealthStatus", "Probe", "watch_health"]

Status = Literal["unknown", "healthy", "unhealthy"]
Probe = Callable[[float], Awaitable[Any]]
"""Ask the service for its health within the given seconds; the runner's answer."""
_GONE = frozenset({"channel_closed", "service_exited"})


@dataclass(frozen=True)
class HealthPolicy:
    """How often and how strictly a service is probed; see the module docstring."""

    interval: float = 10.0
    timeout: float = 5.0
    failures: int = 3
    start_period: float = 0.0

    @classmethod
    def from_layers(cls, *layers: Mapping[str, Any] | None, where: str = "health") -> HealthPolicy:
        """Overlay ``layers`` (manifest first, operator last) on the defaults.

        Raises :class:`ValueError` naming the key for an unknown key or a bad value.
        """
        known = sorted(f.name for f in fields(cls))
        return overlay(
            cls(), layers, check=lambda key, value: _check(key, value, where), where=where, known=known
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form reported by ``get_service_info``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check(key: str, value: Any, where: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: {key} must be a number, not {value!r}")
    if key == "failures":
        if value != int(value) or value < 1:
            raise ValueError(f"{where}: failures must be a whole number >= 1, not {value!r}")
        return int(value)
    if value < 0 or (key != "start_period" and value == 0):
        raise ValueError(f"{where}: {key} must be positive, not {value!r}")
    return float(value)


class HealthStatus:
    """The health of one service as its probes left it; awaitable like the state machine."""

    def __init__(self) -> None:
        self.status: Status = "unknown"
        self.last_check: str | None = None
        """When the last probe answered or failed (ISO 8601)."""
        self.consecutive_failures = 0
        self.last_error: str | None = None
        """Why the last failed probe failed (kept across restarts, for the record)."""
        self.detail: Any = None
        """What the service's ``health_check()`` returned, when it returned a map."""
        self._changed = trio.Event()

    def reset(self) -> None:
        """A new process (or none): nothing is known of its health yet."""
        self.consecutive_failures = 0
        self.detail = None
        self._set("unknown")

    def passed(self, detail: Any) -> Status:
        """Record a successful probe; the status before it."""
        before = self.status
        self.last_check = utc_now_iso()
        self.consecutive_failures = 0
        self.detail = detail
        self._set("healthy")
        return before

    def failed(self, error: str, *, counts: bool) -> Status:
        """Record a failed probe (``counts``: outside the start period); the status before it."""
        before = self.status
        self.last_check = utc_now_iso()
        self.last_error = error
        if counts:
            self.consecutive_failures += 1
            self._set("unhealthy")
        return before

    def _set(self, status: Status) -> None:
        self.status = status
        self._changed.set()
        self._changed = trio.Event()

    async def wait_until(self, predicate: Callable[[HealthStatus], bool]) -> None:
        """Wait until ``predicate(self)`` holds (at once if it does now)."""
        while not predicate(self):
            await self._changed.wait()

    def describe(self) -> dict[str, Any]:
        """The ``health`` field of ``list_services`` / ``get_service_info``."""
        return {
            "status": self.status,
            "last_check": self.last_check,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
        }


async def watch_health(
    probe: Probe,
    policy: HealthPolicy,
    status: HealthStatus,
    *,
    on_change: Callable[[Status, Status], None],
) -> str | None:
    """Probe until ``policy.failures`` consecutive counted failures; return why.

    Returns ``None`` when the process went away meanwhile (its exit is handled
    elsewhere).  ``on_change(before, after)`` is called on every status change.
    Probes start at once and then follow ``interval`` (a probe that took longer
    is followed at once by the next).
    """
    started = time.monotonic()
    in_start_period = policy.start_period > 0
    while True:
        began = trio.current_time()
        error: str | None
        try:
            answer = await probe(policy.timeout)
        except OrchestratorError as exc:
            if exc.code in _GONE:
                return None
            if exc.code == "call_timeout":
                error = (
                    f"health check did not answer within {policy.timeout:g} s "
                    "(is the service's event loop blocked?)"
                )
            else:
                error = f"health check failed: {exc.message}"
            healthy, detail = False, None
        else:
            healthy, error, detail = _read(answer)
        if healthy:
            in_start_period = False
            before = status.passed(detail)
        else:
            in_start_period = in_start_period and time.monotonic() - started < policy.start_period
            before = status.failed(error or "unhealthy", counts=not in_start_period)
        if status.status != before:
            on_change(before, status.status)
        if status.consecutive_failures >= policy.failures:
            return f"health check failed {status.consecutive_failures} time(s) in a row: {status.last_error}"
        await trio.sleep_until(max(began + policy.interval, trio.current_time()))


def _read(answer: Any) -> tuple[bool, str | None, Any]:
    """``(healthy, error, detail)`` from the runner's answer, which must be well formed."""
    if not isinstance(answer, dict) or not isinstance(answer.get("healthy"), bool):
        return False, f"the runner sent a malformed health answer: {answer!r:.200}", None
    error = answer.get("error")
    return answer["healthy"], error if isinstance(error, str) else None, answer.get("detail")
