"""The import name services use: ``from service_framework import BaseService, service_method``.

``layers.service`` and ``layers.service_framework`` (P2P Core's names) give the
same objects inside a service's process.
"""

from p2p_orchestrator.framework import (
    BaseService,
    CallerInfo,
    MethodInfo,
    MetricsState,
    NodeProxy,
    ServiceInfo,
    ServiceManager,
    ServiceMetrics,
    ServiceProxy,
    ServiceStatus,
    current_caller,
    get_global_service_manager,
    service_method,
    set_global_service_manager,
)

__all__ = [
    "BaseService",
    "CallerInfo",
    "MethodInfo",
    "MetricsState",
    "NodeProxy",
    "ServiceInfo",
    "ServiceManager",
    "ServiceMetrics",
    "ServiceProxy",
    "ServiceStatus",
    "current_caller",
    "get_global_service_manager",
    "service_method",
    "set_global_service_manager",
]
