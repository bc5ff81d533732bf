"""``get_global_service_manager()``: the services of this process, as P2P Core's framework offered them.

In P2P Core every service of a node ran in one process beside a shared
manager.  Here each service has a process of its own, so the manager a
service finds holds that one service; other services are reached through
``self.proxy``.  What it offers is read-only: the original's loading and
reloading belong to the orchestrator (``orchestrator/*`` methods).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from p2p_orchestrator.framework.service import BaseService

__all__ = ["ServiceManager", "get_global_service_manager", "set_global_service_manager"]


class ServiceRegistry:
    """``manager.registry``: the same services, looked up by name."""

    def __init__(self, services: dict[str, BaseService]) -> None:
        self.services = services

    def get_service(self, name: str) -> BaseService | None:
        return self.services.get(name)

    def list_services(self) -> dict[str, Any]:
        """``{name: {"status", "info", "methods"}}``."""
        return {
            name: {
                "status": service.status.value,
                "info": dict(vars(service.info)),
                "methods": list(service.info.exposed_methods),
            }
            for name, service in self.services.items()
        }


class ServiceManager:
    """The services hosted by this process (one), and the proxy they share."""

    def __init__(self) -> None:
        self.services: dict[str, BaseService] = {}
        self.registry = ServiceRegistry(self.services)
        self.proxy_client: Any = None

    def register(self, service: BaseService) -> None:
        """Record ``service`` (the runner does, once it is bound)."""
        self.services[service.service_name] = service
        self.proxy_client = service.proxy

    def get_service(self, name: str) -> BaseService | None:
        return self.services.get(name)

    def get_running_services(self) -> list[str]:
        return [name for name, service in self.services.items() if service.status.value == "running"]

    def list_available_methods(self) -> dict[str, list[str]]:
        return {name: list(service.info.exposed_methods) for name, service in self.services.items()}


_manager: ServiceManager | None = None


def get_global_service_manager() -> ServiceManager | None:
    """This process's :class:`ServiceManager`; ``None`` outside an orchestrator's runner."""
    return _manager


def set_global_service_manager(manager: ServiceManager | None) -> None:
    global _manager  # noqa: PLW0603 - one manager per process, as in P2P Core
    _manager = manager
