"""Who called the method being served: :func:`current_caller`.

The node, not the message, establishes the caller: a peer's ID is the one its
encrypted connection authenticated, and its role is the one this node gives it.
A service can make its own decisions with it::

    from service_framework import current_caller

    @service_method(description="Forget a job", public=True)
    async def forget(self, job_id: str):
        caller = current_caller()
        if not caller.local and caller.role != "admin":
            raise PermissionError("only this node or an admin may forget jobs")

Tasks a method starts inherit its caller (it is a :mod:`contextvars` value).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["CallerInfo", "current_caller"]


@dataclass(frozen=True)
class CallerInfo:
    """The caller of a service method."""

    peer_id: str | None = None
    """The calling peer's ID; ``None`` for a caller on this node."""
    role: str | None = None
    """The peer's role on this node (``"admin"``, ``"deployer"``, ``"reader"``), ``None`` without one."""
    service: str | None = None
    """The service of this node that called through its proxy (``None``: the operator, the API, a peer)."""

    @property
    def local(self) -> bool:
        """Whether the call came from this node (its operator, the API or one of its services)."""
        return self.peer_id is None

    @classmethod
    def from_wire(cls, data: Any) -> CallerInfo:
        """Read the node's description of a caller (anything malformed is the local caller)."""
        if not isinstance(data, dict):
            return LOCAL
        peer, role, service = data.get("peer_id"), data.get("role"), data.get("service")
        return cls(
            peer if isinstance(peer, str) else None,
            role if isinstance(role, str) else None,
            service if isinstance(service, str) else None,
        )

    def to_wire(self) -> dict[str, Any]:
        return {"peer_id": self.peer_id, "role": self.role, "service": self.service}


LOCAL = CallerInfo()

_current: ContextVar[CallerInfo] = ContextVar("p2p_orchestrator_caller", default=LOCAL)


def current_caller() -> CallerInfo:
    """The caller of the service method being served (local outside any call)."""
    return _current.get()


def set_caller(caller: CallerInfo) -> None:
    """Set the caller of the current task (the runner does, for each call it serves)."""
    _current.set(caller)
