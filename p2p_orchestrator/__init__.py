"""p2p-orchestrator: a libp2p-native service orchestrator for peer-to-peer nodes.

The public API lives here; everything else in the package is private.  Importing
this package never imports libp2p: the network layer is loaded only by the node.
"""

from p2p_orchestrator.archive import (
    ArchiveLimits,
    Manifest,
    Version,
    pack_service,
    pack_service_bytes,
    unpack_archive,
)
from p2p_orchestrator.config import (
    ConfigError,
    OrchestratorConfig,
    ServiceSettings,
    StoreSettings,
    load_config,
)
from p2p_orchestrator.errors import (
    Busy,
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
from p2p_orchestrator.framework import BaseService, MethodInfo, ServiceProxy, service_method
from p2p_orchestrator.orchestrator import Orchestrator
from p2p_orchestrator.rpc import Caller, Permission

__version__ = "0.1.0"

__all__ = [
    "ArchiveLimits",
    "BaseService",
    "Busy",
    "Caller",
    "ConfigError",
    "Event",
    "EventBus",
    "Manifest",
    "MethodInfo",
    "Orchestrator",
    "OrchestratorConfig",
    "OrchestratorError",
    "Permission",
    "PermissionDenied",
    "ProtocolError",
    "RemoteError",
    "ServiceCallError",
    "ServiceDistributionError",
    "ServiceInstallationError",
    "ServiceManagementError",
    "ServiceProxy",
    "ServiceSettings",
    "StoreSettings",
    "Version",
    "__version__",
    "load_config",
    "pack_service",
    "pack_service_bytes",
    "service_method",
    "unpack_archive",
]
