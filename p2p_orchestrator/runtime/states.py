"""The life-cycle states of a supervised service and the moves allowed between them.

::

    installed ──start──> starting ──ready──> running ──stop──> stopping ──> stopped
                            │                   │                              │
                            │ fails             │ exits on its own             │ start
                            v                   v                              v
                          failed <──limit── backoff ──delay over──> starting ...

* ``installed``: known to the node, not started since the node opened.
* ``starting``: a process exists; ``main.py`` is being imported or ``initialize()`` runs.
* ``running``: ``initialize()`` returned; the service answers calls.
* ``stopping``: asked to stop; ``cleanup()`` runs, then SIGTERM, then SIGKILL.
* ``stopped``: stopped on request (or exited cleanly when the policy keeps it down).
* ``backoff``: exited on its own; waits before the supervisor starts it again.
* ``failed``: a start failed, or the restart limit was reached; down until started again.

:class:`StateMachine` refuses any other move with :class:`RuntimeError` (a bug in
the supervisor, never an operator mistake), remembers recent transitions with
their times, and lets tasks wait for a state without polling.
"""

from __future__ import annotations

import collections
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

__all__ = ["ServiceState", "StateMachine", "Transition"]


class ServiceState(enum.StrEnum):
    """Where a service is in its life cycle; see the module docstring."""

    INSTALLED = "installed"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    BACKOFF = "backoff"
    FAILED = "failed"


S = ServiceState
_ALLOWED: dict[ServiceState, frozenset[ServiceState]] = {
    S.INSTALLED: frozenset({S.STARTING}),
    S.STARTING: frozenset({S.RUNNING, S.STOPPING, S.BACKOFF, S.FAILED}),
    S.RUNNING: frozenset({S.STOPPING, S.BACKOFF, S.FAILED, S.STOPPED}),
    S.STOPPING: frozenset({S.STOPPED}),
    S.STOPPED: frozenset({S.STARTING}),
    S.BACKOFF: frozenset({S.STARTING, S.STOPPED, S.FAILED}),
    S.FAILED: frozenset({S.STARTING, S.STOPPED}),
}


@dataclass(frozen=True)
class Transition:
    """One move, with the monotonic time it happened at and why."""

    source: ServiceState
    target: ServiceState
    at: float
    reason: str


class StateMachine:
    """The current state of one service, its recent history, and waiting for a state."""

    def __init__(self, *, history: int = 64) -> None:
        self._state = ServiceState.INSTALLED
        self._changed = trio.Event()
        self.history: collections.deque[Transition] = collections.deque(maxlen=history)
        """The last transitions, oldest first."""

    @property
    def state(self) -> ServiceState:
        return self._state

    def move(self, target: ServiceState, reason: str = "") -> None:
        """Go to ``target``; :class:`RuntimeError` if the move is not allowed."""
        if target not in _ALLOWED[self._state]:
            raise RuntimeError(f"illegal service state transition {self._state.value} -> {target.value}")
        self.history.append(Transition(self._state, target, time.monotonic(), reason))
        self._state = target
        self._changed.set()
        self._changed = trio.Event()

    async def wait_until(self, predicate: Callable[[ServiceState], bool]) -> ServiceState:
        """Wait until ``predicate(state)`` holds (immediately if it does now); return the state."""
        while not predicate(self._state):
            await self._changed.wait()
        return self._state
