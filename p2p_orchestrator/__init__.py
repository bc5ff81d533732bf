"""p2p-orchestrator: a libp2p-native service orchestrator for peer-to-peer nodes.

The public API lives here; everything else in the package is private.  Importing
this package never imports libp2p: the network layer is loaded only by the node.

The names below load lazily, on first use (PEP 562): importing a subpackage
(``p2p_orchestrator.wire``, ``p2p_orchestrator.control.client``, the command
line) runs this module, and must not pay for trio and the runtime (~0.3 s) when
it does not use them.  To export a name, add it to the ``TYPE_CHECKING`` imports
(for type checkers) and to ``_EXPORTS`` (``tests/test_package_exports.py`` checks
that the two agree); ``__all__`` follows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from p2p_orchestrator._lazy import lazy_getattr

if TYPE_CHECKING:
    from p2p_orchestrator.archive import (
        ArchiveLimits as ArchiveLimits,
    )
    from p2p_orchestrator.archive import (
        Manifest as Manifest,
    )
    from p2p_orchestrator.archive import (
        Version as Version,
    )
    from p2p_orchestrator.archive import (
        pack_service as pack_service,
    )
    from p2p_orchestrator.archive import (
        pack_service_bytes as pack_service_bytes,
    )
    from p2p_orchestrator.archive import (
        unpack_archive as unpack_archive,
    )
    from p2p_orchestrator.callers import (
        Caller as Caller,
    )
    from p2p_orchestrator.callers import (
        Permission as Permission,
    )
    from p2p_orchestrator.config import (
        OrchestratorConfig as OrchestratorConfig,
    )
    from p2p_orchestrator.config import (
        RuntimeSettings as RuntimeSettings,
    )
    from p2p_orchestrator.config import (
        ServiceSettings as ServiceSettings,
    )
    from p2p_orchestrator.config import (
        StoreSettings as StoreSettings,
    )
    from p2p_orchestrator.config import (
        load_config as load_config,
    )
    from p2p_orchestrator.errors import (
        Busy as Busy,
    )
    from p2p_orchestrator.errors import (
        ConfigError as ConfigError,
    )
    from p2p_orchestrator.errors import (
        ControlError as ControlError,
    )
    from p2p_orchestrator.errors import (
        IdentityError as IdentityError,
    )
    from p2p_orchestrator.errors import (
        OrchestratorError as OrchestratorError,
    )
    from p2p_orchestrator.errors import (
        PermissionDenied as PermissionDenied,
    )
    from p2p_orchestrator.errors import (
        ProtocolError as ProtocolError,
    )
    from p2p_orchestrator.errors import (
        ReleaseError as ReleaseError,
    )
    from p2p_orchestrator.errors import (
        RemoteError as RemoteError,
    )
    from p2p_orchestrator.errors import (
        ServiceCallError as ServiceCallError,
    )
    from p2p_orchestrator.errors import (
        ServiceDistributionError as ServiceDistributionError,
    )
    from p2p_orchestrator.errors import (
        ServiceInstallationError as ServiceInstallationError,
    )
    from p2p_orchestrator.errors import (
        ServiceManagementError as ServiceManagementError,
    )
    from p2p_orchestrator.events import (
        Event as Event,
    )
    from p2p_orchestrator.events import (
        EventBus as EventBus,
    )
    from p2p_orchestrator.framework import (
        BaseService as BaseService,
    )
    from p2p_orchestrator.framework import (
        CallerInfo as CallerInfo,
    )
    from p2p_orchestrator.framework import (
        MethodInfo as MethodInfo,
    )
    from p2p_orchestrator.framework import (
        ServiceInfo as ServiceInfo,
    )
    from p2p_orchestrator.framework import (
        ServiceMetrics as ServiceMetrics,
    )
    from p2p_orchestrator.framework import (
        ServiceProxy as ServiceProxy,
    )
    from p2p_orchestrator.framework import (
        ServiceStatus as ServiceStatus,
    )
    from p2p_orchestrator.framework import (
        current_caller as current_caller,
    )
    from p2p_orchestrator.framework import (
        service_method as service_method,
    )
    from p2p_orchestrator.node import (
        Node as Node,
    )
    from p2p_orchestrator.node import (
        RemoteProxy as RemoteProxy,
    )
    from p2p_orchestrator.node import (
        Role as Role,
    )
    from p2p_orchestrator.orchestrator import (
        ArchiveSource as ArchiveSource,
    )
    from p2p_orchestrator.orchestrator import (
        Orchestrator as Orchestrator,
    )
    from p2p_orchestrator.runtime.logs import (
        LogFollower as LogFollower,
    )
    from p2p_orchestrator.runtime.states import (
        ServiceState as ServiceState,
    )

_EXPORTS: dict[str, tuple[str, ...]] = {
    "p2p_orchestrator.archive": (
        "ArchiveLimits",
        "Manifest",
        "Version",
        "pack_service",
        "pack_service_bytes",
        "unpack_archive",
    ),
    "p2p_orchestrator.config": (
        "OrchestratorConfig",
        "RuntimeSettings",
        "ServiceSettings",
        "StoreSettings",
        "load_config",
    ),
    "p2p_orchestrator.errors": (
        "Busy",
        "ConfigError",
        "ControlError",
        "IdentityError",
        "OrchestratorError",
        "PermissionDenied",
        "ProtocolError",
        "ReleaseError",
        "RemoteError",
        "ServiceCallError",
        "ServiceDistributionError",
        "ServiceInstallationError",
        "ServiceManagementError",
    ),
    "p2p_orchestrator.events": ("Event", "EventBus"),
    "p2p_orchestrator.framework": (
        "BaseService",
        "MethodInfo",
        "ServiceProxy",
        "service_method",
        "CallerInfo",
        "ServiceInfo",
        "ServiceMetrics",
        "ServiceStatus",
        "current_caller",
    ),
    "p2p_orchestrator.node": ("Node", "RemoteProxy", "Role"),
    "p2p_orchestrator.orchestrator": ("ArchiveSource", "Orchestrator"),
    "p2p_orchestrator.runtime.logs": ("LogFollower",),
    "p2p_orchestrator.callers": ("Caller", "Permission"),
    "p2p_orchestrator.runtime.states": ("ServiceState",),
}
"""The public names, by the module that defines them: each written here and in the imports above."""

_LAZY = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted([*_LAZY, "__version__"])  # noqa: PLE0605

_exported = lazy_getattr(__name__, _LAZY, globals())


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read on first use: importlib.metadata costs every service process ~30 ms
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("p2p-orchestrator")
        except PackageNotFoundError:  # run from a source tree that was never installed
            value = "0.0.0+unknown"
        globals()["__version__"] = value
        return value
    return _exported(name)
