"""``ServiceMetrics``: the counters, gauges and timers a service keeps (``self.metrics``).

The names and behaviour follow P2P Core's framework, so its services run
unchanged::

    self.metrics.increment("jobs_done")            # counter += 1
    self.metrics.gauge("queue_length", len(queue))  # gauge = value
    self.metrics.timer("parse_ms", 12.5)            # one duration sample, in ms
    async with self.metrics.timing_context("fetch_ms"):
        await fetch()                               # its duration, even if it raises

Every :func:`~p2p_orchestrator.framework.service_method` also records
``method_<name>_calls``, ``method_<name>_success``, ``method_<name>_errors`` and
the timer ``method_<name>_duration_ms`` unless ``track_metrics=False``.

Unlike the original, a timer does not keep every sample forever: it keeps its
count, sum, minimum and maximum over all samples and the last
:data:`TIMER_WINDOW` samples, so a long-running service's memory stays bounded.
The node reads :meth:`ServiceMetrics.snapshot` for ``get_service_info``, the
``metrics`` command and the Prometheus endpoint.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TIMER_WINDOW", "ServiceMetrics", "TimerStats"]

TIMER_WINDOW = 1000
"""Samples each timer keeps for its recent view; count, sum, min and max cover all samples."""

_COUNTER_SUFFIXES = ("_count", "_total", "_sum")


@dataclass
class TimerStats:
    """One timer: every sample summed up, and the most recent ones."""

    count: int = 0
    total_ms: float = 0.0
    min_ms: float = math.inf
    max_ms: float = -math.inf
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=TIMER_WINDOW))

    def add(self, duration_ms: float) -> None:
        self.count += 1
        self.total_ms += duration_ms
        self.min_ms = min(self.min_ms, duration_ms)
        self.max_ms = max(self.max_ms, duration_ms)
        self.recent.append(duration_ms)

    def summary(self) -> dict[str, Any]:
        """``{count, avg_ms, min_ms, max_ms, sum_ms}`` (the original's keys, and the sum)."""
        if not self.count:
            return {"count": 0, "avg_ms": 0.0, "min_ms": 0.0, "max_ms": 0.0, "sum_ms": 0.0}
        return {
            "count": self.count,
            "avg_ms": self.total_ms / self.count,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "sum_ms": self.total_ms,
        }


class ServiceMetrics:
    """A service's own metrics; see the module docstring.

    ``counters`` and ``gauges`` are plain dicts (name to number) that a service
    may also read and write directly, as P2P Core services do.
    """

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.gauges: dict[str, Any] = {}
        self.timers: dict[str, TimerStats] = {}
        self.last_updated: dict[str, float] = {}
        """Epoch seconds of each metric's last update."""

    def increment(self, name: str, value: int = 1) -> None:
        """Add ``value`` to the counter ``name`` (which starts at 0)."""
        self.counters[name] = self.counters.get(name, 0) + value
        self.last_updated[name] = time.time()

    def gauge(self, name: str, value: Any) -> None:
        """Set the gauge ``name`` to ``value``."""
        self.gauges[name] = value
        self.last_updated[name] = time.time()

    def timer(self, name: str, duration_ms: float) -> None:
        """Record one duration of ``name``, in milliseconds."""
        stats = self.timers.get(name)
        if stats is None:
            stats = self.timers[name] = TimerStats()
        stats.add(float(duration_ms))
        self.last_updated[name] = time.time()

    @asynccontextmanager
    async def timing_context(self, name: str) -> AsyncIterator[None]:
        """``async with metrics.timing_context(name):`` records the block's duration, even if it raises."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timer(name, (time.perf_counter() - started) * 1000.0)

    def metric(self, name: str, value: Any, metric_type: str = "gauge") -> None:
        """Set a metric by type: ``"counter"`` (set, not add), ``"gauge"`` or ``"timer"`` (one sample)."""
        if metric_type == "counter":
            self.counters[name] = value
            self.last_updated[name] = time.time()
        elif metric_type == "gauge":
            self.gauge(name, value)
        elif metric_type == "timer":
            self.timer(name, value)

    def set_data(self, key: str, value: Any) -> None:
        """The older setter: a number named ``*_count``, ``*_total`` or ``*_sum`` is a counter, the rest gauges."""
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric and key.endswith(_COUNTER_SUFFIXES):
            self.counters[key] = int(value)
        else:
            self.gauges[key] = float(value) if numeric else value

    @property
    def data(self) -> dict[str, Any]:
        """Counters and gauges in one dict, with ``<timer>_count`` and ``<timer>_avg`` for each timer."""
        merged: dict[str, Any] = {**self.counters, **self.gauges}
        for name, stats in self.timers.items():
            if stats.count:
                merged[f"{name}_count"] = stats.count
                merged[f"{name}_avg"] = stats.total_ms / stats.count
        return merged

    def snapshot(self) -> dict[str, Any]:
        """``{"counters", "gauges", "timers"}``, JSON-able: what the node reports of this service."""
        return {
            "counters": {name: value for name, value in self.counters.items() if _is_number(value)},
            "gauges": {name: _plain(value) for name, value in self.gauges.items()},
            "timers": {name: stats.summary() for name, stats in self.timers.items()},
        }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """A gauge as the node can carry it: numbers, text, booleans and None as they are, the rest as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)[:200]
