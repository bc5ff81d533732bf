"""After an exit nobody asked for: the restart policy decides, and the backoff delay is waited.

:func:`after_exit` is the tail of the supervisor's loop: it moves the unit to
``stopped`` or ``failed`` when the policy says not to restart (or the restart
limit is reached), and otherwise to ``backoff`` for the policy's delay, which a
stop request cuts short.  It publishes ``service_failed`` / ``service_stopped``
accordingly.
"""

from __future__ import annotations

import logging
import time

import trio

from p2p_orchestrator.events import EventBus
from p2p_orchestrator.runtime.protocol import describe_exit
from p2p_orchestrator.runtime.states import ServiceState
from p2p_orchestrator.runtime.unit import ServiceUnit

__all__ = ["after_exit"]

log = logging.getLogger("p2p_orchestrator.runtime")

S = ServiceState


async def after_exit(unit: ServiceUnit, events: EventBus, *, failed: bool) -> bool:
    """Apply the restart policy after an exit nobody asked for; whether to start again."""
    policy = unit.tracker.policy
    status = describe_exit(unit.last_exit_status) if unit.last_exit_status is not None else "no exit status"
    if not policy.should_restart(failed=failed):
        target = S.FAILED if failed else S.STOPPED
        unit.machine.move(target, f"exited ({status}); restart policy {policy.policy}")
        kind = "service_failed" if failed else "service_stopped"
        events.publish(kind, unit.name, unit.version, state=target.value, exit_status=unit.last_exit_status)
        return False
    delay = unit.tracker.next_delay(time.monotonic())
    if delay is None:
        unit.last_error = (
            f"{unit.last_error or status}; gave up after {policy.max_restarts} restarts "
            f"within {policy.window:g} s"
        )
        unit.machine.move(S.FAILED, unit.last_error)
        log.error("Service %s failed: %s", unit.name, unit.last_error)
        events.publish("service_failed", unit.name, unit.version, state="failed", error=unit.last_error)
        return False
    log.warning("Service %s exited (%s); restarting in %.2f s", unit.name, status, delay)
    unit.machine.move(S.BACKOFF, f"exited ({status}); restart in {delay:.3f} s")
    unit.next_start_at = time.monotonic() + delay
    events.publish(
        "service_failed",
        unit.name,
        unit.version,
        state="backoff",
        exit_status=unit.last_exit_status,
        error=unit.last_error,
        restart_in=round(delay, 3),
    )
    with trio.CancelScope() as unit.backoff_scope:
        await trio.sleep(delay)
    unit.backoff_scope = None
    unit.next_start_at = None
    if unit.stop_requested:
        unit.machine.move(S.STOPPED, "stopped during backoff")
        events.publish("service_stopped", unit.name, unit.version)
        return False
    return True
