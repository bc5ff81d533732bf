"""The import name services use: ``from service_framework import BaseService, service_method``."""

from p2p_orchestrator.framework import BaseService, MethodInfo, ServiceProxy, service_method

__all__ = ["BaseService", "MethodInfo", "ServiceProxy", "service_method"]
