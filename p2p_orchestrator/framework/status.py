"""``ServiceStatus`` and ``ServiceInfo``: where a service is in its life, and what it says of itself."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ServiceInfo", "ServiceStatus"]


class ServiceStatus(enum.Enum):
    """A service instance's status (``self.status``); its ``value`` is the text reported."""

    NOT_INITIALIZED = "not_initialized"
    INITIALIZING = "initializing"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ERROR = "error"


@dataclass
class ServiceInfo:
    """What a service says of itself (``self.info``); a service may change its fields.

    The runner fills ``version`` from the manifest, ``description`` from the
    manifest or the class docstring, and ``exposed_methods`` from the methods
    marked with :func:`~p2p_orchestrator.framework.service_method`, unless the
    service set them itself.
    """

    name: str
    version: str = "1.0.0"
    description: str = ""
    exposed_methods: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    dependencies: list[str] = field(default_factory=list)
    domain: str = "default"
