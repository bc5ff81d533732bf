"""Reading the metrics services keep (``self.metrics``) from their processes.

Each running process is asked ``runner/metrics`` on its priority path (it never
waits behind the service's calls), all at once, each within a short limit: a
service whose event loop is blocked just has no metrics in the answer, and
never delays the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import trio

from p2p_orchestrator.errors import OrchestratorError
from p2p_orchestrator.runtime.unit import ServiceUnit

__all__ = ["READ_LIMIT", "read_metrics"]

log = logging.getLogger("p2p_orchestrator.runtime")

READ_LIMIT = 1.0
"""Seconds a process has to answer ``runner/metrics``."""


async def read_metrics(units: Iterable[ServiceUnit], time_limit: float = READ_LIMIT) -> dict[str, Any]:
    """``{name: {"counters", "gauges", "timers"} or None}`` for each unit (``None``: not running or no answer)."""
    found: dict[str, Any] = {}

    async def read(unit: ServiceUnit) -> None:
        proc = unit.process
        if proc is None or not unit.running:
            return
        try:
            answer = await proc.read_metrics(time_limit)
        except OrchestratorError as exc:
            log.debug("No metrics from %s: %s", unit.name, exc)
            return
        metrics = answer.get("metrics")
        found[unit.name] = metrics if isinstance(metrics, dict) else None

    wanted = list(units)
    async with trio.open_nursery() as nursery:
        for unit in wanted:
            nursery.start_soon(read, unit)
    return {unit.name: found.get(unit.name) for unit in wanted}
