"""Node configuration: ``config.toml`` in the node's home directory.

Every key has a default, so a missing file is a valid configuration.  Unknown
sections and keys are refused with a message naming them: a typo in an operator's
file must not silently fall back to a default.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from p2p_orchestrator.archive import ArchiveLimits
from p2p_orchestrator.errors import OrchestratorError
from p2p_orchestrator.runtime.policy import RestartPolicy

__all__ = [
    "CONFIG_FILE_NAME",
    "ConfigError",
    "OrchestratorConfig",
    "RuntimeSettings",
    "ServiceSettings",
    "StoreSettings",
    "default_home",
    "load_config",
]

CONFIG_FILE_NAME = "config.toml"
HOME_ENV = "P2P_ORCHESTRATOR_HOME"
_T = TypeVar("_T")


class ConfigError(OrchestratorError):
    """The configuration file is unreadable or holds an unknown or ill-typed key."""

    default_code = "bad_config"


@dataclass(frozen=True)
class StoreSettings:
    """How installed versions are kept on disk."""

    keep_versions: int = 3
    """Installed versions kept per service (the current one included) for rollback."""
    fsync: bool = True
    """Flush installed files to disk before switching to them (survives power loss)."""


@dataclass(frozen=True)
class RuntimeSettings:
    """How service processes are run (``[runtime]``); every service gets these unless overridden."""

    start_timeout: float = 10.0
    """Seconds a service may take to import ``main.py`` and finish ``initialize()``."""
    stop_timeout: float = 5.0
    """Grace period for ``cleanup()`` on stop, before SIGTERM and then SIGKILL."""
    call_timeout: float = 30.0
    """Default deadline of one call to a service method (and of a service's proxy call)."""
    memory_limit_mb: int = 0
    """Address-space limit (RLIMIT_AS) of each service process in MiB; 0 means none."""
    log_max_bytes: int = 1024 * 1024
    """Size at which a service's log file is rotated."""
    log_backups: int = 3
    """Rotated log files kept per service (``<name>.log.1`` ... ``.log.N``)."""


@dataclass(frozen=True)
class ServiceSettings:
    """What the node operator sets for one service, overriding its manifest."""

    config: Mapping[str, Any] = field(default_factory=dict)
    auto_start: bool | None = None
    restart: Mapping[str, Any] = field(default_factory=dict)
    """Overrides of the manifest's ``restart`` object (see :class:`~p2p_orchestrator.runtime.policy.RestartPolicy`)."""
    memory_limit_mb: int | None = None
    """Overrides ``[runtime] memory_limit_mb`` for this service."""


@dataclass(frozen=True)
class OrchestratorConfig:
    """Everything a node reads from its configuration file."""

    archive: ArchiveLimits = field(default_factory=ArchiveLimits)
    store: StoreSettings = field(default_factory=StoreSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    services: Mapping[str, ServiceSettings] = field(default_factory=dict)

    def service(self, name: str) -> ServiceSettings:
        """The operator's settings for ``name`` (defaults when none are given)."""
        return self.services.get(name, ServiceSettings())


def default_home() -> Path:
    """``$P2P_ORCHESTRATOR_HOME``, or ``~/.p2p-orchestrator``."""
    env = os.environ.get(HOME_ENV)
    return Path(env).expanduser() if env else Path.home() / ".p2p-orchestrator"


def load_config(home: Path) -> OrchestratorConfig:
    """Read ``home/config.toml``; defaults when it does not exist."""
    path = home / CONFIG_FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return OrchestratorConfig()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return config_from_dict(data, source=str(path))


def config_from_dict(data: Mapping[str, Any], *, source: str = "configuration") -> OrchestratorConfig:
    """Build an :class:`OrchestratorConfig` from parsed TOML, checking every key."""
    known = {"archive", "store", "runtime", "services"}
    _refuse_unknown(data, known, source)
    config = OrchestratorConfig()
    if "archive" in data:
        config = replace(config, archive=_section(ArchiveLimits, data["archive"], f"{source} [archive]"))
    if "store" in data:
        config = replace(config, store=_section(StoreSettings, data["store"], f"{source} [store]"))
    if "runtime" in data:
        config = replace(config, runtime=_section(RuntimeSettings, data["runtime"], f"{source} [runtime]"))
    if "services" in data:
        services_data = _table(data["services"], f"{source} [services]")
        services: dict[str, ServiceSettings] = {}
        for name, raw in services_data.items():
            where = f"{source} [services.{name}]"
            table = _table(raw, where)
            _refuse_unknown(table, {"config", "auto_start", "restart", "memory_limit_mb"}, where)
            auto_start = table.get("auto_start")
            if auto_start is not None and not isinstance(auto_start, bool):
                raise ConfigError(f"{where}: auto_start must be true or false")
            memory = table.get("memory_limit_mb")
            if memory is not None and (type(memory) is not int or memory < 0):
                raise ConfigError(f"{where}: memory_limit_mb must be a whole number >= 0 (0: no limit)")
            restart = _table(table.get("restart", {}), f"{where}.restart")
            try:
                RestartPolicy.from_layers(restart, where=f"{where}.restart")
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc
            services[name] = ServiceSettings(
                config=_table(table.get("config", {}), f"{where}.config"),
                auto_start=auto_start,
                restart=restart,
                memory_limit_mb=memory,
            )
        config = replace(config, services=services)
    return config


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table")
    return value


def _refuse_unknown(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def _section(cls: type[_T], raw: Any, where: str) -> _T:
    table = _table(raw, where)
    defaults = cls()
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    _refuse_unknown(table, names, where)
    values: dict[str, Any] = {}
    for key, given in table.items():
        default = getattr(defaults, key)
        expected = type(default)
        # TOML's 5 means 5.0 where a float is expected
        value = float(given) if expected is float and type(given) is int else given
        if type(value) is not expected:
            raise ConfigError(f"{where}: {key} must be of type {expected.__name__}, got {value!r}")
        if expected in (int, float) and (value < 0 or (value == 0 and default != 0)):
            raise ConfigError(f"{where}: {key} must be positive, got {value}")
        values[key] = value
    return replace(defaults, **values)  # type: ignore[type-var]
