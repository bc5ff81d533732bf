"""What the dashboard remembers between two requests: distributions under way, recent figures.

* :class:`Distributions` follows the node's ``distribution_progress`` events (one distribution is
  a service and an archive hash) and keeps the :data:`MAX_DISTRIBUTIONS` most recent, with each
  target's latest figures: the operations page draws their bars from it.
* :class:`History` keeps, per node and service, the last :data:`HISTORY_POINTS` samples of the
  figures a node page draws as sparklines (calls, errors, restarts, the service's own numeric
  gauges), recorded each time the page asks for that node's metrics: nothing is sampled while
  nobody watches.  At most :data:`MAX_SERIES` node-service pairs are kept, the oldest dropped.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping
from typing import Any

from p2p_orchestrator.events import Event

__all__ = ["HISTORY_POINTS", "MAX_DISTRIBUTIONS", "MAX_SERIES", "Distributions", "History"]

MAX_DISTRIBUTIONS = 20
HISTORY_POINTS = 60
MAX_SERIES = 256
_MAX_GAUGES = 4


class Distributions:
    """The recent distributions from this node, from its ``distribution_progress`` events."""

    def __init__(self) -> None:
        self._entries: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()

    def feed(self, event: Event) -> None:
        """Apply one event (any other type is ignored)."""
        if event.type != "distribution_progress" or event.service is None:
            return
        data = event.data
        key = f"{event.service}@{data.get('archive_hash', '')}"
        entry = self._entries.get(key)
        done = _int(data.get("targets_done"))
        if entry is None or (entry["finished"] and done < entry["targets_done"]):
            entry = {"service": event.service, "version": event.version, "started": event.time, "targets": {}}
            self._entries.pop(key, None)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        total = _int(data.get("targets_total"))
        entry.update(
            archive_hash=data.get("archive_hash"),
            updated=event.time,
            bytes_sent=_int(data.get("bytes_sent")),
            bytes_received=_int(data.get("bytes_received")),
            bytes_total=_int(data.get("bytes_total")),
            targets_done=done,
            targets_failed=_int(data.get("targets_failed")),
            targets_total=total,
            finished=total > 0 and done >= total,
        )
        targets = data.get("targets")
        if isinstance(targets, Mapping):
            for peer, figures in targets.items():
                if isinstance(figures, Mapping):
                    entry["targets"][str(peer)] = {
                        "bytes_received": _int(figures.get("bytes_received")),
                        "bytes_sent": _int(figures.get("bytes_sent")),
                        "state": str(figures.get("state", "transferring")),
                    }
        while len(self._entries) > MAX_DISTRIBUTIONS:
            self._entries.popitem(last=False)

    def recent(self) -> list[dict[str, Any]]:
        """The distributions kept, newest first (copies)."""
        return [
            {**entry, "targets": {peer: dict(fig) for peer, fig in entry["targets"].items()}}
            for entry in reversed(self._entries.values())
        ]


class History:
    """Recent samples of each node's service figures; see the module docstring."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._series: collections.OrderedDict[tuple[str, str], collections.deque[dict[str, Any]]] = (
            collections.OrderedDict()
        )

    def record(self, peer_id: str, services: Mapping[str, Any]) -> None:
        """Add one sample per service of a ``get_metrics`` report's ``services``."""
        now = round(self._clock(), 3)
        for name, figures in services.items():
            if not isinstance(figures, Mapping):
                continue
            sample: dict[str, Any] = {
                "t": now,
                "calls": _int(figures.get("calls")),
                "errors": _int(figures.get("call_errors")),
                "restarts": _int(figures.get("restart_count")),
            }
            own = figures.get("metrics")
            gauges = own.get("gauges") if isinstance(own, Mapping) else None
            if isinstance(gauges, Mapping):
                numeric = {
                    str(k): float(v)
                    for k, v in gauges.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
                sample["gauges"] = dict(sorted(numeric.items())[:_MAX_GAUGES])
            key = (peer_id, str(name))
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = collections.deque(maxlen=HISTORY_POINTS)
            self._series.move_to_end(key)
            series.append(sample)
        while len(self._series) > MAX_SERIES:
            self._series.popitem(last=False)

    def of(self, peer_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every kept sample of ``peer_id``'s services, oldest first."""
        return {name: list(series) for (peer, name), series in self._series.items() if peer == peer_id}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
