"""The service framework: what a service author's ``main.py`` builds on.

Services import it as ``from service_framework import BaseService, service_method``
(a top-level module this package installs), from ``layers.service`` or
``layers.service_framework`` (P2P Core's names, inside a service's process), or
from :mod:`p2p_orchestrator`; all give the same objects.
"""

from p2p_orchestrator.framework.caller import CallerInfo, current_caller
from p2p_orchestrator.framework.configuration import merge_configuration
from p2p_orchestrator.framework.manager import (
    ServiceManager,
    get_global_service_manager,
    set_global_service_manager,
)
from p2p_orchestrator.framework.metrics import ServiceMetrics
from p2p_orchestrator.framework.proxy import NodeProxy, ServiceProxy
from p2p_orchestrator.framework.service import BaseService, MethodInfo, service_method
from p2p_orchestrator.framework.status import ServiceInfo, ServiceStatus

MetricsState = ServiceMetrics
"""P2P Core's name for :class:`ServiceMetrics`."""

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
    "merge_configuration",
    "service_method",
    "set_global_service_manager",
]
