"""``Orchestrator``: the local life-cycle manager of one node's services.

This is the public API of the spec (``install_service``, ``list_services``...),
with its parameters and result shapes.  It composes the layers below it (the
archive rules, the versioned store, the event bus) and runs blocking work
(unpacking, hashing, fsync) in worker threads so its event loop stays
responsive.  It knows nothing of the network: the node layer serves the same
methods to peers through :attr:`Orchestrator.rpc`.

Services run in child processes supervised by :mod:`p2p_orchestrator.runtime`;
the orchestrator owns the nursery their supervising tasks live in, so it must
be used as a trio async context manager::

    async with Orchestrator(home="/var/lib/p2p-orchestrator") as orch:
        result = await orch.install_service(archive_bytes)
        await orch.start_service("hello")
        answer = await orch.rpc.call("hello/greet", {"name": "Ada"})

Opening it kills processes a killed predecessor left behind and starts the
services whose desired state is ``running``; closing it stops every service
(politely, then by force) without changing their desired state.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import trio

from p2p_orchestrator._clock import utc_now_iso
from p2p_orchestrator._distribution import DistributionApi
from p2p_orchestrator._keyed_locks import KeyedLocks
from p2p_orchestrator._replies import json_weight, newest_within
from p2p_orchestrator._upgrades import UpgradeApi
from p2p_orchestrator.config import OrchestratorConfig, default_home, load_config
from p2p_orchestrator.errors import (
    OrchestratorError,
    ServiceCallError,
    ServiceInstallationError,
    ServiceManagementError,
)
from p2p_orchestrator.events import EventBus
from p2p_orchestrator.framework import merge_configuration
from p2p_orchestrator.rpc import Rpc
from p2p_orchestrator.runtime._landlock import abi_version as landlock_abi
from p2p_orchestrator.runtime.revert import UpgradeTrials
from p2p_orchestrator.runtime.service_metrics import read_metrics
from p2p_orchestrator.runtime.supervisor import Supervisor, open_supervisor
from p2p_orchestrator.runtime.venvs import VenvCache
from p2p_orchestrator.store import ServiceRecord, ServiceStore, StagedArchive

__all__ = ["ArchiveSource", "Orchestrator"]

MAX_EVENTS_REPLY = 1000
"""The most events :meth:`Orchestrator.get_events` returns."""

log = logging.getLogger("p2p_orchestrator")

ArchiveSource = bytes | bytearray | memoryview | str | os.PathLike[str]
"""Archive bytes, or the path of an archive file (read in a stream, never whole)."""


class Orchestrator(UpgradeApi, DistributionApi):
    """The local life-cycle manager; see the module docstring."""

    def __init__(
        self, home: str | os.PathLike[str] | None = None, *, config: OrchestratorConfig | None = None
    ):
        self.home = Path(home).expanduser() if home is not None else default_home()
        self._config = config
        self.events = EventBus()
        self.rpc = Rpc(self)
        self._store: ServiceStore | None = None
        self._locks = KeyedLocks()
        self._started_at = 0.0
        self._started_at_iso = ""
        self._stats = {"installs": 0, "failed_installs": 0, "uninstalls": 0, "rollbacks": 0, "reverts": 0}
        self._landlock_abi = landlock_abi()
        self.network_metrics: Callable[[], dict[str, Any]] | None = None
        """Set by the network layer while it runs: its part of :meth:`get_metrics` (peers, transfer bytes)."""
        self._stack: AsyncExitStack | None = None
        self._supervisor: Supervisor | None = None
        self._trials = UpgradeTrials()
        self._starting: set[str] = set()
        self._venvs = VenvCache(self.home / "venvs")

    # -- life of the orchestrator itself ------------------------------------------

    @property
    def config(self) -> OrchestratorConfig:
        """The configuration in force (read from ``home/config.toml`` when opened)."""
        if self._config is None:
            self._config = load_config(self.home)
        return self._config

    @property
    def store(self) -> ServiceStore:
        if self._store is None:
            raise RuntimeError("the orchestrator is not open: use 'async with Orchestrator(...)'")
        return self._store

    @property
    def supervisor(self) -> Supervisor:
        """The runtime that runs the services (see :mod:`p2p_orchestrator.runtime`)."""
        if self._supervisor is None:
            raise RuntimeError("the orchestrator is not open: use 'async with Orchestrator(...)'")
        return self._supervisor

    async def __aenter__(self) -> Orchestrator:
        config = self.config
        self._venvs = VenvCache(
            self.home / "venvs",
            wheel_dir=config.runtime.wheel_dir,
            timeout=config.runtime.requirements_timeout,
        )
        self._store = await trio.to_thread.run_sync(
            lambda: ServiceStore(self.home, limits=config.archive, settings=config.store)
        )
        async with AsyncExitStack() as stack:
            stack.callback(self._close_store)
            self._supervisor = await stack.enter_async_context(
                open_supervisor(
                    self.home,
                    config.runtime,
                    plan=self._launch_plan,
                    local_call=self._local_call,
                    events=self.events,
                    on_failure=self._on_service_failure,
                    stop_layers=self._shutdown_layers,
                )
            )
            self.rpc.service_call_handler = self._supervisor.call
            self._started_at = time.monotonic()
            self._started_at_iso = utc_now_iso()
            log.info(
                "Orchestrator started with %d installed service(s) in %s", len(self.store.records), self.home
            )
            await self._prune_environments()
            await self._restore_desired_state()
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)

    def _close_store(self) -> None:
        self.rpc.service_call_handler = None
        if self._store is not None:
            self._store.close()
            self._store = None

    @asynccontextmanager
    async def _service_lock(self, name: str) -> AsyncIterator[None]:
        """Serialise life-cycle operations on one service."""
        async with self._locks.hold(name):
            yield

    # -- install, uninstall, rollback ------------------------------------------------

    async def install_service(
        self, archive_data: ArchiveSource, force_reinstall: bool = False
    ) -> dict[str, Any]:
        """Validate an archive and make it the service's current version.

        ``archive_data`` is the archive's bytes or a path to it.  A newer version
        than the installed one is an upgrade; the same or an older version needs
        ``force_reinstall=True``.  The previous version stays on disk for
        :meth:`rollback_service`.  Raises
        :class:`~p2p_orchestrator.ServiceInstallationError` and leaves the node
        exactly as it was when the archive or the install is refused.

        A running service is restarted on the new version; a stopped one is
        started unless the operator (``[services.<name>] auto_start``, then
        ``[runtime] auto_start``) or its manifest's ``auto_start: false`` says
        otherwise (the operator's per-service setting wins over the manifest, the
        manifest over ``[runtime]``).  ``warnings`` lists what the manifest said
        that was accepted but looks like a mistake (a ``name`` that differs from
        the archive's directory).  ``auto_started`` says whether it runs the new version now; if
        that start failed, ``auto_start_error`` says why.  When the new version
        replaced another and does not start, the service is reverted to that
        version (``reverted: true``, ``revert_reason``); when it fails within
        ``revert_window`` after this returns, the revert happens in the background
        (``service_reverted``, ``last_revert`` in :meth:`get_service_info`).

        A ``requirements.txt`` that lists packages gets the service a virtual
        environment first; if it cannot be built (``requirements_failed``),
        nothing is installed.
        """
        log.info("Installing service from %s", _describe_source(archive_data))
        try:
            staged = await self._stage(archive_data)
            name = staged.service_name
            warnings = list(staged.unpacked.manifest.warnings)
            for warning in warnings:
                log.warning("Installing %s: %s", name, warning)
            log.info("Installing service: %s", name)
            try:
                async with self._service_lock(name):
                    await self._prepare_install(staged, force=force_reinstall)
                    was_running = self._is_up(name)
                    before = self.store.records.get(name)
                    self._refuse_breaking_upgrade(staged, force=force_reinstall)
                    record = self.store.install(staged, force=force_reinstall)
                    self._stats["installs"] += 1
                    log.info("Service %s installed successfully", name)
                    self.events.publish(
                        "service_installed",
                        name,
                        record.current.version,
                        archive_hash=record.current.archive_hash,
                    )
                    started = await self._auto_start(record, before.current if before else None, was_running)
            finally:
                self.store.discard(staged)  # nothing left to do once installed; else nothing of it stays
            await self._prune_environments()
            await trio.to_thread.run_sync(self.store.empty_trash)
        except OrchestratorError as exc:
            self._stats["failed_installs"] += 1
            log.warning("Install refused: %s", exc)
            self.events.publish("service_install_failed", None, None, code=exc.code, message=exc.message)
            raise
        return {
            "success": True,
            "service_name": name,
            "installed_at": record.current.installed_at,
            "archive_hash": record.current.archive_hash,
            **started.to_result(),
            **({"warnings": warnings} if warnings else {}),
        }

    async def _stage(self, archive_data: ArchiveSource) -> StagedArchive:
        """Validate and unpack an archive into the store's staging area (in a worker thread)."""
        with _open_source(archive_data) as source:
            return await trio.to_thread.run_sync(self.store.stage, source)

    async def uninstall_service(self, service_name: str, force: bool = False) -> dict[str, Any]:
        """Stop a service if it runs, then remove it, all its kept versions and its cached archives.

        A service that installed services need is not uninstalled
        (``has_dependents``) unless ``force``: then the running ones are stopped
        first (see :meth:`stop_service`); they stay installed, and will not start
        until what they need is installed again.
        """
        log.info("Uninstalling service: %s", service_name)
        self.store.get(service_name)
        if force:
            await self._stop_dependents(service_name)
        async with self._service_lock(service_name):
            record = self.store.get(service_name)
            self._refuse_if_needed(service_name, "stop" if force else "uninstall")
            await self.supervisor.stop(service_name)
            self.store.uninstall(service_name)
            self.supervisor.forget(service_name)
            self._trials.end(service_name)
        await self._prune_environments()
        await trio.to_thread.run_sync(self.store.empty_trash)
        self._stats["uninstalls"] += 1
        log.info("Service %s uninstalled", service_name)
        self.events.publish("service_uninstalled", service_name, record.current.version)
        return {"success": True, "service_name": service_name, "uninstalled_at": utc_now_iso()}

    async def rollback_service(self, service_name: str, force: bool = False) -> dict[str, Any]:
        """Switch a service back to the version installed before the current one.

        A running service is restarted on that version.  Refused (``breaks_dependents``) when
        running services need this one in a range that version leaves out, unless ``force``.
        """
        async with self._service_lock(service_name):
            current = self.store.get(service_name)
            before = current.current
            was_running = self._is_up(service_name)
            previous = current.previous()
            if previous is not None and not force:
                broken = self._dependents_left_out(service_name, previous.semver)
                if broken:
                    raise ServiceManagementError(
                        f"cannot roll {service_name} back to {previous.version}: running service(s) need "
                        f"another version: {broken}; stop them first, or pass force=True",
                        code="breaks_dependents",
                    )
            record = self.store.rollback(service_name)
            self._trials.end(service_name)
            self._stats["rollbacks"] += 1
            log.info(
                "Service %s rolled back from %s to %s", service_name, before.version, record.current.version
            )
            self.events.publish(
                "service_rolled_back", service_name, record.current.version, from_version=before.version
            )
            if was_running:
                await self._restart_locked(service_name)
        return {
            "success": True,
            "service_name": service_name,
            "rolled_back_at": utc_now_iso(),
            "from_version": before.version,
            "to_version": record.current.version,
            "archive_hash": record.current.archive_hash,
        }

    # -- reads ----------------------------------------------------------------------

    def _describe(self, record: ServiceRecord) -> dict[str, Any]:
        current = record.current
        directory = self.store.version_dir(current)
        return {
            "installed": True,
            "running": self.is_running(record.name),
            "installed_at": current.installed_at,
            "archive_hash": current.archive_hash,
            "manifest": dict(current.manifest),
            "files_count": current.files_count,
            "directory_exists": directory.is_dir(),
            "version": current.version,
            "desired_state": record.desired_state,
            **self.supervisor.unit(record.name).describe(),
        }

    async def list_services(self) -> dict[str, Any]:
        """Every installed service with its state, from memory."""
        services = {name: self._describe(record) for name, record in sorted(self.store.records.items())}
        return {
            "total_installed": len(services),
            "total_running": sum(1 for s in services.values() if s["running"]),
            "services": services,
        }

    async def get_service_info(self, service_name: str) -> dict[str, Any]:
        """Everything known of one service: what ``list_services`` has, and more.

        ``metrics`` is what the service keeps in ``self.metrics`` (``counters``,
        ``gauges``, ``timers``), or ``None`` while it does not run.
        """
        record = self.store.get(service_name)
        info = {"name": service_name, **self._describe(record)}
        directory = self.store.version_dir(record.current)
        info["directory"] = str(directory)
        info["data_directory"] = str(self.data_directory(service_name, create=False))
        info["versions"] = [
            {**v.to_dict(), "current": v.id == record.current.id} for v in reversed(record.versions)
        ]
        info["configuration"] = self.service_configuration(record)
        info["exposed_methods"] = list(record.current.manifest.get("exposed_methods", []))
        unit = self.supervisor.unit(service_name)
        info["restart_policy"] = unit.tracker.policy.to_dict()
        info["health_policy"] = unit.health_policy.to_dict()
        info["health"] = {**info["health"], "detail": unit.health.detail}  # what health_check() returned
        info["last_revert"] = dict(record.last_revert) if record.last_revert is not None else None
        key = VenvCache.key_of(directory)
        info["venv"] = str(self._venvs.root / key) if key is not None else None
        info["methods"] = dict(unit.process.methods) if unit.process is not None else {}
        info["log_file"] = str(self.supervisor.logs.log(service_name).path)
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
            shown = {key: _REDACTED if key in _LOCAL_PATHS else value for key, value in result.items()}
            record = self.store.records.get(str(result.get("name")))
            if record is not None:
                shown["configuration"] = self.service_configuration(record, redact_operator=True)
            return shown
        if method == "get_orchestrator_status" and isinstance(result, dict):
            return {key: _REDACTED if key in _LOCAL_PATHS else value for key, value in result.items()}
        return result

    def service_configuration(
        self, record: ServiceRecord, *, redact_operator: bool = False
    ) -> dict[str, Any]:
        """The merged configuration: manifest, then ``config/default.json``, then the operator's.

        ``redact_operator``: the operator's values read ``"<redacted>"`` (for another node).
        """
        directory = self.store.version_dir(record.current)
        operator = self.config.service(record.name).config
        return merge_configuration(
            record.current.manifest.get("configuration"),
            _read_default_config(directory),
            _redacted(operator) if redact_operator else operator,
        )

    async def export_service(self, service_name: str) -> bytes:
        """The ``.tar.gz`` of the current version, byte for byte as it was installed."""
        path = self.export_path(service_name)
        return await trio.Path(path).read_bytes()

    def export_path(self, service_name: str) -> Path:
        """Where the current version's archive is cached (for streaming it without loading it)."""
        record = self.store.get(service_name)
        path = self.store.archive_path(record.current.archive_hash)
        if not path.is_file():
            raise ServiceManagementError(
                f"the archive of {service_name!r} ({record.current.archive_hash[:12]}) is missing from {path}",
                code="archive_missing",
            )
        return path

    async def get_events(self, limit: int = 20, types: list[Any] | None = None) -> dict[str, Any]:
        """The node's recent events, oldest first: ``{"events": [...], "truncated": bool}``.

        The last ``limit`` (at most 1000) events, then only those whose type is in ``types``
        when given, then the newest that fit in :data:`~p2p_orchestrator._replies.REPLY_BYTES`
        (``truncated`` says whether older ones were left out for that).  Each is ``{type,
        service, version, time, data}``, as ``events`` prints them.
        """
        if not 0 <= limit <= MAX_EVENTS_REPLY:
            raise ServiceCallError(
                f"limit must be between 0 and {MAX_EVENTS_REPLY}, got {limit}", code="bad_params"
            )
        if types is not None and not all(isinstance(t, str) for t in types):
            raise ServiceCallError("types must be a list of event type names", code="bad_params")
        wanted = frozenset(types) if types else None
        chosen = [
            event.to_portable_dict()
            for event in self.events.recent(limit)
            if wanted is None or event.type in wanted
        ]
        kept, truncated = newest_within(chosen, json_weight)
        return {"events": kept, "truncated": truncated}

    async def get_metrics(self, service_name: str | None = None) -> dict[str, Any]:
        """Every service's metrics (or one's), and the node's: what ``metrics`` and Prometheus show.

        ``{"node": {...}, "services": {name: {"state", "version", "restart_count",
        "health", "calls", "call_errors", "call_seconds", "metrics"}}}``, where
        ``metrics`` is what the service keeps in ``self.metrics`` (``counters``,
        ``gauges``, ``timers``), or ``None`` while it does not run.
        """
        names = (
            [self.store.get(service_name).name] if service_name is not None else sorted(self.store.records)
        )
        units = [self.supervisor.unit(name) for name in names]
        kept = await read_metrics(units)
        services: dict[str, Any] = {}
        for unit in units:
            record = self.store.records.get(unit.name)
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
        status = await self.get_orchestrator_status()
        node = {"uptime_seconds": status["uptime_seconds"], **status["statistics"]}
        if self.network_metrics is not None:
            node.update(self.network_metrics())
        return {"node": node, "services": services}

    async def get_orchestrator_status(self) -> dict[str, Any]:
        """The orchestrator's own state and counters."""
        records = self.store.records
        return {
            "orchestrator_status": "running",
            "services_directory": str(self.store.services_dir),
            "home": str(self.home),
            "started_at": self._started_at_iso,
            "uptime_seconds": round(time.monotonic() - self._started_at, 3),
            "statistics": {
                "total_installed": len(records),
                "total_running": sum(1 for name in records if self.is_running(name)),
                **self._stats,
            },
            "sandbox": {
                "enabled": self.config.runtime.sandbox,
                "landlock_abi": self._landlock_abi,
                "enforced": self.config.runtime.sandbox and self._landlock_abi > 0,
            },
        }


def _describe_source(source: ArchiveSource) -> str:
    if isinstance(source, bytes | bytearray | memoryview):
        return f"archive data ({len(source)} bytes)"
    return f"archive file {os.fspath(source)}"


def _open_source(source: ArchiveSource) -> AbstractContextManager[BinaryIO]:
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source))
    try:
        return open(os.fspath(source), "rb")
    except OSError as exc:
        raise ServiceInstallationError(
            f"cannot read archive {os.fspath(source)}: {exc}", code="unreadable_archive"
        ) from exc


_LOCAL_PATHS = frozenset({"directory", "data_directory", "log_file", "venv", "services_directory", "home"})
_REDACTED = "<redacted>"


def _redacted(layer: Mapping[str, Any]) -> dict[str, Any]:
    """``layer`` with every value (nested objects kept as objects) replaced by ``"<redacted>"``."""
    return {
        key: _redacted(value) if isinstance(value, Mapping) else _REDACTED for key, value in layer.items()
    }


def _read_default_config(directory: Path) -> dict[str, Any]:
    """``config/default.json`` of an installed version (validated when it was installed)."""
    try:
        data = json.loads((directory / "config" / "default.json").read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ServiceManagementError(
            f"cannot read {directory / 'config' / 'default.json'}: {exc}", code="bad_service_config"
        ) from exc
    return data if isinstance(data, dict) else {}
