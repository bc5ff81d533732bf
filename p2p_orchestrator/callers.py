"""Who is calling and what they may do: the leaf both the runtime and the API build on.

The transports establish a :class:`Caller` (never the message): the node from the peer ID its
Noise handshake authenticated and the role table, the runtime for a service's own proxy calls,
and :data:`LOCAL_CALLER` for the node itself (its API, the control socket).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Caller", "LOCAL_CALLER", "Permission"]


class Permission(StrEnum):
    """What a method needs from its caller."""

    READ = "read"
    """Inspect: list, info, status, export, logs, events."""
    DEPLOY = "deploy"
    """Change what runs: install, uninstall, start, stop, restart, rollback, distribute, fetch."""
    ADMIN = "admin"
    """Node administration: trust, configuration."""


@dataclass(frozen=True)
class Caller:
    """Who is calling, as established by the transport (never by the message)."""

    peer_id: str | None
    """``None`` for a call from this node itself (API, control socket, own services)."""
    permissions: frozenset[Permission]
    public_only: bool
    """Whether only ``public=True`` service methods may be called."""
    role: str | None = None
    """The peer's role on this node (``None``: local, or a peer without one)."""
    service: str | None = None
    """The local service making the call through its proxy (``None``: not a service)."""

    @property
    def is_local(self) -> bool:
        """A call from this node: its operator (API, control socket) or one of its services."""
        return self.peer_id is None

    @property
    def is_operator(self) -> bool:
        """A call from this node's operator: not a peer, and not a service (someone else's code)."""
        return self.peer_id is None and self.service is None


LOCAL_CALLER = Caller(peer_id=None, permissions=frozenset(Permission), public_only=False)
