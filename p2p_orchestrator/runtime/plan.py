"""What to start for a service: its :class:`LaunchSpec`, restart and health policies, from its layers.

Settings are read at every start (first start and each restart), so an
upgrade, a rollback or a changed configuration takes effect at the next start.
Precedence, lowest first: the runtime defaults (``[runtime]``), the manifest
(``restart``, ``health``), the operator's ``[services.<name>]`` table.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2p_orchestrator.config import OrchestratorConfig
from p2p_orchestrator.errors import ServiceManagementError
from p2p_orchestrator.runtime.health import HealthPolicy
from p2p_orchestrator.runtime.policy import RestartPolicy
from p2p_orchestrator.runtime.process import LaunchSpec
from p2p_orchestrator.runtime.venvs import runner_package_dirs

__all__ = ["ServicePlan", "launch_plan"]


@dataclass(frozen=True)
class ServicePlan:
    """Everything the supervisor needs for the next process of one service."""

    spec: LaunchSpec
    restart: RestartPolicy
    health: HealthPolicy


def launch_plan(
    name: str,
    *,
    version: str,
    directory: Path,
    data_directory: Path | None = None,
    manifest: Mapping[str, Any],
    configuration: dict[str, Any],
    config: OrchestratorConfig,
    python: str = sys.executable,
) -> ServicePlan:
    """The plan of ``name``; ``bad_restart_policy`` / ``bad_health_policy`` if they do not parse."""
    settings = config.service(name)
    runtime = config.runtime
    try:
        restart = RestartPolicy.from_layers(
            manifest.get("restart"), settings.restart, where=f"{name}: restart policy"
        )
    except ValueError as exc:
        raise ServiceManagementError(str(exc), code="bad_restart_policy") from exc
    try:
        health = HealthPolicy.from_layers(
            manifest.get("health"), settings.health, where=f"{name}: health policy"
        )
    except ValueError as exc:
        raise ServiceManagementError(str(exc), code="bad_health_policy") from exc
    memory = settings.memory_limit_mb if settings.memory_limit_mb is not None else runtime.memory_limit_mb
    spec = LaunchSpec(
        name=name,
        version=version,
        directory=directory,
        data_directory=data_directory or directory,
        config=configuration,
        start_timeout=runtime.start_timeout,
        stop_timeout=runtime.stop_timeout,
        call_timeout=runtime.call_timeout,
        memory_limit_mb=memory,
        max_concurrent_calls=runtime.max_concurrent_calls,
        python=python,
        event_loop=str(manifest.get("event_loop") or "asyncio"),
        sandbox=runtime.sandbox,
        network=settings.network if settings.network is not None else manifest.get("network") is not False,
        readable=() if python == sys.executable else runner_package_dirs(),
        environment=tuple((key, os.environ[key]) for key in runtime.pass_env if key in os.environ),
        description=str(manifest.get("description") or ""),
        peer_names=frozenset(config.peers),
    )
    return ServicePlan(spec=spec, restart=restart, health=health)
