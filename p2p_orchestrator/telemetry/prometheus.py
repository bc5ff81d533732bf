"""A ``get_metrics`` report in the Prometheus text format, written with prometheus-client.

Families (every name starts with ``p2p_orchestrator_``):

=====================================  =========  ===============================================
family                                 type       labels, meaning
=====================================  =========  ===============================================
``uptime_seconds``                     gauge      the node's
``services_installed``                 gauge
``services_running``                   gauge
``operations_total``                   counter    ``operation``: installs, failed_installs,
                                                  uninstalls, rollbacks, reverts
``peers``                              gauge      ``state``: known, connected
``transfer_bytes_total``               counter    ``direction``: sent, received
``service_info``                       gauge      ``service``, ``version``, ``state`` (always 1)
``service_running``                    gauge      ``service``: 1 running, 0 not
``service_healthy``                    gauge      ``service``: 1 healthy, 0 unhealthy (absent
                                                  while unknown)
``service_restarts_total``             counter    ``service``
``service_calls_total``                counter    ``service``: calls through the node
``service_call_errors_total``          counter    ``service``
``service_call_seconds``               summary    ``service``: ``_count`` and ``_sum``
``service_counter_total``              counter    ``service``, ``name``: the service's own
                                                  ``self.metrics`` counters
``service_gauge``                      gauge      ``service``, ``name``: its numeric gauges
``service_timer_milliseconds``         summary    ``service``, ``name``: its timers
=====================================  =========  ===============================================

A service's own metric names go in a label rather than into family names, so
no name a service picks can clash with another family or break the format.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "render_report"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The ``Content-Type`` of :func:`render_report`'s bytes."""

_PREFIX = "p2p_orchestrator_"
_OPERATIONS = ("installs", "failed_installs", "uninstalls", "rollbacks", "reverts")


def render_report(report: Mapping[str, Any]) -> bytes:
    """The Prometheus text exposition of ``report`` (what ``orchestrator/get_metrics`` returns)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ReportCollector(report))
    return generate_latest(registry)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class _ReportCollector(Collector):
    def __init__(self, report: Mapping[str, Any]) -> None:
        self._report = report

    def collect(self) -> Iterator[Metric]:
        node = self._report.get("node") or {}
        services: Mapping[str, Any] = self._report.get("services") or {}
        yield from self._node(node, services)
        yield from self._services(services)
        yield from self._own(services)

    def _node(self, node: Mapping[str, Any], services: Mapping[str, Any]) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            _PREFIX + "uptime_seconds",
            "Seconds since the node started",
            value=_number(node.get("uptime_seconds")) or 0,
        )
        yield GaugeMetricFamily(_PREFIX + "services_installed", "Services installed", value=len(services))
        running = sum(1 for entry in services.values() if entry.get("state") == "running")
        yield GaugeMetricFamily(_PREFIX + "services_running", "Services running", value=running)
        operations = CounterMetricFamily(
            _PREFIX + "operations", "Life-cycle operations since the node started", labels=["operation"]
        )
        for name in _OPERATIONS:
            operations.add_metric([name], _number(node.get(name)) or 0)
        yield operations
        if "peers_known" in node:
            peers = GaugeMetricFamily(_PREFIX + "peers", "Peers this node knows", labels=["state"])
            peers.add_metric(["known"], _number(node.get("peers_known")) or 0)
            peers.add_metric(["connected"], _number(node.get("peers_connected")) or 0)
            yield peers
            moved = CounterMetricFamily(
                _PREFIX + "transfer_bytes", "Bytes moved by archive transfers", labels=["direction"]
            )
            moved.add_metric(["sent"], _number(node.get("transfer_bytes_sent")) or 0)
            moved.add_metric(["received"], _number(node.get("transfer_bytes_received")) or 0)
            yield moved

    def _services(self, services: Mapping[str, Any]) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            _PREFIX + "service_info", "A service's version and state", labels=["service", "version", "state"]
        )
        running = GaugeMetricFamily(
            _PREFIX + "service_running", "Whether the service runs", labels=["service"]
        )
        healthy = GaugeMetricFamily(
            _PREFIX + "service_healthy", "The service's last health verdict", labels=["service"]
        )
        restarts = CounterMetricFamily(
            _PREFIX + "service_restarts", "Restarts of the service's process", labels=["service"]
        )
        calls = CounterMetricFamily(_PREFIX + "service_calls", "Calls into the service", labels=["service"])
        errors = CounterMetricFamily(
            _PREFIX + "service_call_errors", "Calls into the service that failed", labels=["service"]
        )
        latency = SummaryMetricFamily(
            _PREFIX + "service_call_seconds", "Time calls into the service took", labels=["service"]
        )
        for name, entry in sorted(services.items()):
            state = str(entry.get("state") or "unknown")
            info.add_metric([name, str(entry.get("version") or ""), state], 1)
            running.add_metric([name], 1 if state == "running" else 0)
            health = entry.get("health")
            if health in ("healthy", "unhealthy"):
                healthy.add_metric([name], 1 if health == "healthy" else 0)
            restarts.add_metric([name], _number(entry.get("restart_count")) or 0)
            calls.add_metric([name], _number(entry.get("calls")) or 0)
            errors.add_metric([name], _number(entry.get("call_errors")) or 0)
            latency.add_metric(
                [name], int(_number(entry.get("calls")) or 0), _number(entry.get("call_seconds")) or 0
            )
        yield from (info, running, healthy, restarts, calls, errors, latency)

    def _own(self, services: Mapping[str, Any]) -> Iterator[Metric]:
        counters = CounterMetricFamily(
            _PREFIX + "service_counter", "A service's own counters (self.metrics)", labels=["service", "name"]
        )
        gauges = GaugeMetricFamily(
            _PREFIX + "service_gauge",
            "A service's own numeric gauges (self.metrics)",
            labels=["service", "name"],
        )
        timers = SummaryMetricFamily(
            _PREFIX + "service_timer_milliseconds",
            "A service's own timers (self.metrics)",
            labels=["service", "name"],
        )
        for service, entry in sorted(services.items()):
            kept = entry.get("metrics")
            if not isinstance(kept, Mapping):
                continue
            for name, value in sorted((kept.get("counters") or {}).items()):
                if (number := _number(value)) is not None:
                    counters.add_metric([service, str(name)], number)
            for name, value in sorted((kept.get("gauges") or {}).items()):
                if (number := _number(value)) is not None:
                    gauges.add_metric([service, str(name)], number)
            for name, summary in sorted((kept.get("timers") or {}).items()):
                if isinstance(summary, Mapping):
                    count = _number(summary.get("count")) or 0
                    total = _number(summary.get("sum_ms"))
                    if total is None:
                        total = count * (_number(summary.get("avg_ms")) or 0)
                    timers.add_metric([service, str(name)], int(count), total)
        yield from (counters, gauges, timers)
