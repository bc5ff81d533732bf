"""p2p-orchestrator: a libp2p-native service orchestrator for peer-to-peer nodes.

The public API lives here; everything else in the package is private.  Importing
this package never imports libp2p: the network layer is loaded only by the node.

The names below load lazily, on first use (PEP 562): importing a subpackage
(``p2p_orchestrator.wire``, ``p2p_orchestrator.control.client``, the command
line) runs this module, and must not pay for trio and the runtime (~0.3 s) when
it does not use them.  To export a name, add it to the ``TYPE_CHECKING`` imports,
to ``_LAZY`` and to ``__all__`` (``tests/test_package_exports.py`` checks that
the three agree).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from p2p_orchestrator.archive import (
        ArchiveLimits,
        Manifest,
        Version,
        pack_service,
        pack_service_bytes,
        unpack_archive,
    )
    from p2p_orchestrator.callers import Caller, Permission
    from p2p_orchestrator.config import (
        OrchestratorConfig,
        RuntimeSettings,
        ServiceSettings,
        StoreSettings,
        load_config,
    )
    from p2p_orchestrator.errors import (
        Busy,
        ConfigError,
        ControlError,
        IdentityError,
        OrchestratorError,
        PermissionDenied,
        ProtocolError,
        RemoteError,
        ServiceCallError,
        ServiceDistributionError,
        ServiceInstallationError,
        ServiceManagementError,
    )
    from p2p_orchestrator.events import Event, EventBus
    from p2p_orchestrator.framework import (
        BaseService,
        CallerInfo,
        MethodInfo,
        ServiceInfo,
        ServiceMetrics,
        ServiceProxy,
        ServiceStatus,
        current_caller,
        service_method,
    )
    from p2p_orchestrator.node import Node, RemoteProxy, Role
    from p2p_orchestrator.orchestrator import ArchiveSource, Orchestrator
    from p2p_orchestrator.runtime.logs import LogFollower
    from p2p_orchestrator.runtime.states import ServiceState

_LAZY: dict[str, str] = {
    "ArchiveLimits": "p2p_orchestrator.archive",
    "Manifest": "p2p_orchestrator.archive",
    "Version": "p2p_orchestrator.archive",
    "pack_service": "p2p_orchestrator.archive",
    "pack_service_bytes": "p2p_orchestrator.archive",
    "unpack_archive": "p2p_orchestrator.archive",
    "OrchestratorConfig": "p2p_orchestrator.config",
    "RuntimeSettings": "p2p_orchestrator.config",
    "ServiceSettings": "p2p_orchestrator.config",
    "StoreSettings": "p2p_orchestrator.config",
    "load_config": "p2p_orchestrator.config",
    "Busy": "p2p_orchestrator.errors",
    "ConfigError": "p2p_orchestrator.errors",
    "ControlError": "p2p_orchestrator.errors",
    "IdentityError": "p2p_orchestrator.errors",
    "OrchestratorError": "p2p_orchestrator.errors",
    "PermissionDenied": "p2p_orchestrator.errors",
    "ProtocolError": "p2p_orchestrator.errors",
    "RemoteError": "p2p_orchestrator.errors",
    "ServiceCallError": "p2p_orchestrator.errors",
    "ServiceDistributionError": "p2p_orchestrator.errors",
    "ServiceInstallationError": "p2p_orchestrator.errors",
    "ServiceManagementError": "p2p_orchestrator.errors",
    "Event": "p2p_orchestrator.events",
    "EventBus": "p2p_orchestrator.events",
    "BaseService": "p2p_orchestrator.framework",
    "MethodInfo": "p2p_orchestrator.framework",
    "ServiceProxy": "p2p_orchestrator.framework",
    "service_method": "p2p_orchestrator.framework",
    "CallerInfo": "p2p_orchestrator.framework",
    "ServiceInfo": "p2p_orchestrator.framework",
    "ServiceMetrics": "p2p_orchestrator.framework",
    "ServiceStatus": "p2p_orchestrator.framework",
    "current_caller": "p2p_orchestrator.framework",
    "Node": "p2p_orchestrator.node",
    "RemoteProxy": "p2p_orchestrator.node",
    "Role": "p2p_orchestrator.node",
    "ArchiveSource": "p2p_orchestrator.orchestrator",
    "Orchestrator": "p2p_orchestrator.orchestrator",
    "LogFollower": "p2p_orchestrator.runtime.logs",
    "Caller": "p2p_orchestrator.rpc",
    "Permission": "p2p_orchestrator.rpc",
    "ServiceState": "p2p_orchestrator.runtime.states",
}

__version__ = "0.1.0"

__all__ = [
    "ArchiveLimits",
    "ArchiveSource",
    "BaseService",
    "Busy",
    "Caller",
    "CallerInfo",
    "ConfigError",
    "ControlError",
    "Event",
    "EventBus",
    "IdentityError",
    "LogFollower",
    "Manifest",
    "MethodInfo",
    "Node",
    "Orchestrator",
    "OrchestratorConfig",
    "OrchestratorError",
    "Permission",
    "PermissionDenied",
    "ProtocolError",
    "RemoteError",
    "RemoteProxy",
    "Role",
    "RuntimeSettings",
    "ServiceCallError",
    "ServiceDistributionError",
    "ServiceInfo",
    "ServiceInstallationError",
    "ServiceManagementError",
    "ServiceMetrics",
    "ServiceProxy",
    "ServiceSettings",
    "ServiceState",
    "ServiceStatus",
    "StoreSettings",
    "Version",
    "__version__",
    "current_caller",
    "load_config",
    "pack_service",
    "pack_service_bytes",
    "service_method",
    "unpack_archive",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
