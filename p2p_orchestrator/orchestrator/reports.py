"""``Reports``: what the node says about its services and itself -- the API's read methods.

Listing, describing, exporting, events, metrics and status read the catalog and the
supervisor and change nothing.  :meth:`Reports.remote_view` is what another node may
see of a result: no paths, no operator configuration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import trio

from p2p_orchestrator._clock import utc_now_iso
from p2p_orchestrator._replies import json_weight, newest_within
from p2p_orchestrator.errors import ServiceCallError, ServiceManagementError
from p2p_orchestrator.orchestrator.catalog import REDACTED
from p2p_orchestrator.orchestrator.shared import Part, Shared
from p2p_orchestrator.runtime._landlock import abi_version as landlock_abi
from p2p_orchestrator.runtime.service_metrics import read_metrics
from p2p_orchestrator.store import ServiceRecord

__all__ = ["MAX_EVENTS_REPLY", "Reports"]

MAX_EVENTS_REPLY = 1000
"""The most events ``get_events`` returns."""

_LOCAL_PATHS = frozenset({"directory", "data_directory", "log_file", "venv", "services_directory", "home"})


class Reports(Part):
    """The read methods of the API; see the module docstring."""

    def __init__(self, shared: Shared, network_metrics: Callable[[], dict[str, Any]]) -> None:
        super().__init__(shared)
        self._network_metrics = network_metrics
        self._started_at = time.monotonic()
        self._started_at_iso = utc_now_iso()
        self._landlock_abi = landlock_abi()

    def _describe(self, record: ServiceRecord) -> dict[str, Any]:
        current = record.current
        return {
            "installed": True,
            "running": self._supervisor.is_running(record.name),
            "installed_at": current.installed_at,
            "archive_hash": current.archive_hash,
            "manifest": dict(current.manifest),
            "files_count": current.files_count,
            "directory_exists": self._catalog.current_dir(record).is_dir(),
            "version": current.version,
            "desired_state": record.desired_state,
            **self._supervisor.unit(record.name).describe(),
        }

    async def list_services(self) -> dict[str, Any]:
        """``list_services``: every installed service with its state, from memory."""
        services = {name: self._describe(record) for name, record in sorted(self._store.records.items())}
        return {
            "total_installed": len(services),
            "total_running": sum(1 for s in services.values() if s["running"]),
            "services": services,
        }

    async def service_info(self, service_name: str) -> dict[str, Any]:
        """``get_service_info``: what ``list_services`` has of one service, and more."""
        record = self._store.get(service_name)
        info = {"name": service_name, **self._describe(record)}
        info["directory"] = str(self._catalog.current_dir(record))
        info["data_directory"] = str(self._catalog.data_directory(service_name, create=False))
        info["versions"] = [
            {**v.to_dict(), "current": v.id == record.current.id} for v in reversed(record.versions)
        ]
        info["configuration"] = self._catalog.configuration(record)
        info["exposed_methods"] = list(record.current.manifest.get("exposed_methods", []))
        unit = self._supervisor.unit(service_name)
        info["restart_policy"] = unit.tracker.policy.to_dict()
        info["health_policy"] = unit.health_policy.to_dict()
        info["health"] = {**info["health"], "detail": unit.health.detail}  # what health_check() returned
        info["last_revert"] = dict(record.last_revert) if record.last_revert is not None else None
        venv = self._catalog.environment_of(record)
        info["venv"] = str(venv) if venv is not None else None
        info["methods"] = dict(unit.process.methods) if unit.process is not None else {}
        info["log_file"] = str(self._supervisor.logs.log(service_name).path)
        info["metrics"] = (await read_metrics([unit]))[service_name]
        return info

    def remote_view(self, method: str, result: Any) -> Any:
        """What another node may see of ``method``'s ``result``: no paths, no operator configuration.

        The operator's ``[services.<name>.config]`` values (tokens, passwords...) are
        replaced by ``"<redacted>"`` in ``get_service_info``'s ``configuration``, and so
        are the node's filesystem paths in ``get_service_info`` and
        ``get_orchestrator_status`` (the keys stay: the results keep their shape).
        """
        if method == "get_service_info" and isinstance(result, dict):
            shown = {key: REDACTED if key in _LOCAL_PATHS else value for key, value in result.items()}
            record = self._store.records.get(str(result.get("name")))
            if record is not None:
                shown["configuration"] = self._catalog.configuration(record, redact_operator=True)
            return shown
        if method == "get_orchestrator_status" and isinstance(result, dict):
            return {key: REDACTED if key in _LOCAL_PATHS else value for key, value in result.items()}
        return result

    def export_path(self, service_name: str) -> Path:
        """Where the current version's archive is cached (``archive_missing`` if it is not)."""
        record = self._store.get(service_name)
        path = self._store.archive_path(record.current.archive_hash)
        if not path.is_file():
            raise ServiceManagementError(
                f"the archive of {service_name!r} ({record.current.archive_hash[:12]}) is missing from {path}",
                code="archive_missing",
            )
        return path

    async def export(self, service_name: str) -> bytes:
        """``export_service``: the current version's archive, byte for byte as it was installed."""
        return await trio.Path(self.export_path(service_name)).read_bytes()

    async def recent_events(self, limit: int, types: list[Any] | None) -> dict[str, Any]:
        """``get_events``: the newest events that fit in a reply, oldest first."""
        if not 0 <= limit <= MAX_EVENTS_REPLY:
            raise ServiceCallError(
                f"limit must be between 0 and {MAX_EVENTS_REPLY}, got {limit}", code="bad_params"
            )
        if types is not None and not all(isinstance(t, str) for t in types):
            raise ServiceCallError("types must be a list of event type names", code="bad_params")
        wanted = frozenset(types) if types else None
        chosen = [
            event.to_portable_dict()
            for event in self._events.recent(limit)
            if wanted is None or event.type in wanted
        ]
        kept, truncated = newest_within(chosen, json_weight)
        return {"events": kept, "truncated": truncated}

    async def metrics(self, service_name: str | None) -> dict[str, Any]:
        """``get_metrics``: every service's metrics (or one's), and the node's."""
        records = self._store.records
        names = [self._store.get(service_name).name] if service_name is not None else sorted(records)
        units = [self._supervisor.unit(name) for name in names]
        kept = await read_metrics(units)
        services: dict[str, Any] = {}
        for unit in units:
            record = records.get(unit.name)
            stats = unit.call_stats
            services[unit.name] = {
                "state": unit.state.value,
                "version": record.current.version if record is not None else None,
                "restart_count": unit.tracker.total,
                "health": unit.health.describe().get("status"),
                "calls": stats.calls,
                "call_errors": stats.errors,
                "call_seconds": round(stats.seconds, 6),
                "metrics": kept.get(unit.name),
            }
        status = self.status()
        node = {"uptime_seconds": status["uptime_seconds"], **status["statistics"], **self._network_metrics()}
        return {"node": node, "services": services}

    def status(self) -> dict[str, Any]:
        """``get_orchestrator_status``: the orchestrator's own state and counters."""
        records = self._store.records
        sandbox = self._catalog.config.runtime.sandbox
        return {
            "orchestrator_status": "running",
            "services_directory": str(self._store.services_dir),
            "home": str(self._catalog.home),
            "started_at": self._started_at_iso,
            "uptime_seconds": round(time.monotonic() - self._started_at, 3),
            "statistics": {
                "total_installed": len(records),
                "total_running": sum(1 for name in records if self._supervisor.is_running(name)),
                **asdict(self._counters),
            },
            "sandbox": {
                "enabled": sandbox,
                "landlock_abi": self._landlock_abi,
                "enforced": sandbox and self._landlock_abi > 0,
            },
        }
