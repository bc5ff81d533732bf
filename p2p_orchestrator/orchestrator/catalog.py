"""``ServiceCatalog``: the installed services as the parts above the store read them.

The store knows versions and files; the catalog adds what the node's settings and the
runtime make of them: where a version lives, where the service keeps its data, its merged
configuration, the dependency graph, the launch plan the supervisor starts, and the
virtual environments the kept versions use.  It runs nothing; every part of the
orchestrator (running, upgrades, installs, reports, distribution) is given the one
catalog of the open orchestrator.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio

from p2p_orchestrator.config import OrchestratorConfig
from p2p_orchestrator.errors import OrchestratorError, ServiceManagementError
from p2p_orchestrator.framework import merge_configuration
from p2p_orchestrator.runtime.dependencies import Installed, graph_of, stop_layers
from p2p_orchestrator.runtime.plan import ServicePlan, launch_plan
from p2p_orchestrator.runtime.venvs import VenvCache
from p2p_orchestrator.store import ServiceRecord, ServiceStore

__all__ = ["REDACTED", "ServiceCatalog"]

REDACTED = "<redacted>"
"""What another node reads in place of the operator's configuration values and the node's paths."""

log = logging.getLogger("p2p_orchestrator")


class ServiceCatalog:
    """The store, the operator's settings and the environments of one open orchestrator."""

    def __init__(self, home: Path, store: ServiceStore, config: OrchestratorConfig, venvs: VenvCache) -> None:
        self.home = home
        self.store = store
        self.config = config
        self.venvs = venvs

    def data_directory(self, service_name: str, *, create: bool = True) -> Path:
        """``home/data/<name>/``: the service's working directory, shared by all its versions.

        Made (mode 0700) on first use unless ``create`` is false.  It outlives upgrades,
        rollbacks and uninstalls (a service reinstalled finds its data again).
        """
        path = self.home / "data" / service_name
        if create:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def current_dir(self, record: ServiceRecord) -> Path:
        """Where the current version of ``record`` is unpacked."""
        return self.store.version_dir(record.current)

    def environment_of(self, record: ServiceRecord) -> Path | None:
        """The virtual environment the current version runs in (``None``: the node's Python)."""
        key = VenvCache.key_of(self.current_dir(record))
        return self.venvs.root / key if key is not None else None

    def configuration(self, record: ServiceRecord, *, redact_operator: bool = False) -> dict[str, Any]:
        """The merged configuration: manifest, then ``config/default.json``, then the operator's.

        ``redact_operator``: the operator's values read ``"<redacted>"`` (for another node).
        """
        operator = self.config.service(record.name).config
        return merge_configuration(
            record.current.manifest.get("configuration"),
            _read_default_config(self.current_dir(record)),
            _redacted(operator) if redact_operator else operator,
        )

    def launch_plan(self, name: str) -> ServicePlan:
        """What the supervisor starts for ``name`` now: the current version and its settings."""
        record = self.store.get(name)
        directory = self.current_dir(record)
        return launch_plan(
            name,
            version=record.current.version,
            directory=directory,
            data_directory=self.data_directory(name),
            manifest=record.current.manifest,
            configuration=self.configuration(record),
            config=self.config,
            python=self.venvs.python_for(name, directory),
        )

    def graph(self) -> dict[str, Installed]:
        """The dependency graph of the installed services (current versions)."""
        return graph_of(
            (name, r.current.version, r.current.manifest) for name, r in self.store.records.items()
        )

    def shutdown_layers(self, running: list[str]) -> list[list[str]]:
        """The order the node stops its services in when it closes: dependents first."""
        try:
            graph = self.graph()
        except OrchestratorError as exc:
            log.warning("Stopping every service at once (the dependency graph is unreadable: %s)", exc)
            return [running]
        return stop_layers(running, graph)

    async def prune_environments(self) -> None:
        """Remove the virtual environments no kept version of any service uses any more."""
        keep = {
            key
            for record in self.store.records.values()
            for version in record.versions
            if (key := VenvCache.key_of(self.store.version_dir(version))) is not None
        }
        doomed = self.venvs.prune(keep)
        if doomed:
            await trio.to_thread.run_sync(VenvCache.remove, doomed)
            log.info("Removed %d unused virtual environment(s)", len(doomed))


def _redacted(layer: Mapping[str, Any]) -> dict[str, Any]:
    """``layer`` with every value (nested objects kept as objects) replaced by ``"<redacted>"``."""
    return {key: _redacted(value) if isinstance(value, Mapping) else REDACTED for key, value in layer.items()}


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
