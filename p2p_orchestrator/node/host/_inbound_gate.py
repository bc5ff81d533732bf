"""``InboundGate``: who may hold an inbound connection, so strangers cannot lock out the node's peers.

The holes.  Peer IDs cost nothing to make, and py-libp2p 0.8.1 admits inbound connections first
come, first served until its limits are full (256 established, 300 in all); after that a peer
with a role gets ``peer_unreachable``.  Worse, its listener keeps the task of every inbound
connection -- and the slot it took of those 300 -- until the host stops, closed or not: a node
that had accepted 300 connections in its life accepted none.

The gate.  :func:`install_gate` puts each inbound connection in a task of its own with a
:class:`Ticket` (its cancel scope is the connection's life: cancelling it drops the handshake or
closes the connection, and the task ends when the connection closes), and this policy decides:

* **handshakes**: at most ``max_pending`` at once and ``max_pending_per_ip`` from one address;
  one more drops the *oldest* handshake of that address (or of all), so a flood of sockets that
  never finish their handshake cannot keep a new, honest one out;
* **peers without a role**: at most ``max_strangers`` established connections together and
  ``max_strangers_per_ip`` from one address; one more is closed as soon as its handshake says
  whose it is;
* **peers with a role** are always let in; when inbound connections reach ``capacity``, the
  oldest stranger's connection is closed to make room.

Our own dials are outbound and never pass the gate; since strangers hold a bounded share, the
swarm's connection limit always has room for them.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio
from libp2p.abc import IHost, INetConn, INetwork

from p2p_orchestrator.config import NodeSettings
from p2p_orchestrator.node.host._notifee import Notifee

__all__ = ["GateLimits", "InboundGate", "Ticket", "install_gate"]

log = logging.getLogger("p2p_orchestrator.node")

Remote = tuple[str, int]
"""A connection's remote ``(ip, port)``."""


@dataclass(frozen=True)
class GateLimits:
    """The gate's limits; see the module docstring."""

    max_pending: int = 64
    max_pending_per_ip: int = 16
    max_strangers: int = 64
    max_strangers_per_ip: int = 8
    capacity: int = 256

    @classmethod
    def from_settings(cls, settings: NodeSettings) -> GateLimits:
        """The limits ``[node]`` sets (16 handshakes per address for 64 in all, and so on)."""
        return cls(
            max_pending=settings.max_pending_connections,
            max_pending_per_ip=max(1, settings.max_pending_connections // 4),
            max_strangers=settings.max_stranger_connections,
            max_strangers_per_ip=settings.max_stranger_connections_per_ip,
        )


@dataclass(eq=False)
class Ticket:
    """One inbound connection, from its first byte to its close."""

    remote: Remote | None
    order: int
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    peer: str | None = None
    """The peer ID, once the handshake has said it."""
    stranger: bool = True
    conn: INetConn | None = None
    admitted: trio.Event = field(default_factory=trio.Event)
    """Set once the handshake is done and the connection let in."""

    @property
    def ip(self) -> str | None:
        return self.remote[0] if self.remote else None

    def drop(self, why: str) -> None:
        """End this connection (its task closes it)."""
        if not self.scope.cancel_called:
            log.info(
                "Dropping the inbound connection from %s (%s): %s", self.remote, self.peer or "handshake", why
            )
            self.scope.cancel()


class InboundGate:
    """Admission of inbound connections; see the module docstring.  No I/O: it cancels scopes."""

    def __init__(self, limits: GateLimits, is_known: Callable[[str], bool]) -> None:
        self.limits = limits
        self._is_known = is_known
        self._order = itertools.count()
        self._pending: list[Ticket] = []
        self._established: list[Ticket] = []
        self.dropped = 0
        """Inbound connections dropped by the gate so far."""

    def pending(self) -> list[Ticket]:
        """Inbound connections in their handshake, oldest first."""
        return list(self._pending)

    def established(self) -> list[Ticket]:
        """Inbound connections established and let in, oldest first."""
        return list(self._established)

    def arrive(self, remote: Remote | None) -> Ticket:
        """A new inbound connection: make room among the handshakes if needed and give it a ticket."""
        ticket = Ticket(remote, next(self._order))
        same_ip = [t for t in self._pending if t.ip == ticket.ip]
        if len(same_ip) >= self.limits.max_pending_per_ip:
            self._drop(same_ip[0], f"over {self.limits.max_pending_per_ip} handshakes from {ticket.ip}")
        elif len(self._pending) >= self.limits.max_pending:
            self._drop(self._pending[0], f"over {self.limits.max_pending} handshakes at once")
        self._pending.append(ticket)
        return ticket

    def admit(self, remote: Remote | None, peer: str, conn: INetConn) -> None:
        """The handshake of the inbound connection from ``remote`` is done: let it in or drop it."""
        ticket = next((t for t in self._pending if t.remote == remote), None)
        if ticket is None:
            return  # ours (outbound), or already dropped
        self._pending.remove(ticket)
        ticket.peer, ticket.conn = peer, conn
        ticket.stranger = not self._is_known(peer)
        if ticket.stranger:
            strangers = [t for t in self._established if t.stranger]
            if len(strangers) >= self.limits.max_strangers:
                self._drop(ticket, f"{self.limits.max_strangers} peers without a role are connected")
                return
            if sum(t.ip == ticket.ip for t in strangers) >= self.limits.max_strangers_per_ip:
                self._drop(
                    ticket,
                    f"{self.limits.max_strangers_per_ip} peers without a role are connected from {ticket.ip}",
                )
                return
        elif len(self._established) >= self.limits.capacity:
            oldest = next(
                (t for t in self._established if t.stranger and not self._is_known(t.peer or "")), None
            )
            if oldest is not None:
                self._drop(oldest, f"room for {peer}, a peer with a role")
        self._established.append(ticket)
        ticket.admitted.set()

    def closed(self, conn: INetConn) -> None:
        """``conn`` closed: end its ticket's task."""
        for ticket in self._established:
            if ticket.conn is conn:
                ticket.scope.cancel()
                return

    def leave(self, ticket: Ticket) -> None:
        """The ticket's task ends."""
        for group in (self._pending, self._established):
            if ticket in group:
                group.remove(ticket)

    def _drop(self, ticket: Ticket, why: str) -> None:
        self.dropped += 1
        self.leave(ticket)
        ticket.drop(why)


class _GateWatcher(Notifee):
    """Tells the gate when inbound connections are established and closed."""

    def __init__(self, gate: InboundGate) -> None:
        self._gate = gate

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._gate.admit(_remote(conn.muxed_conn), conn.muxed_conn.peer_id.to_base58(), conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._gate.closed(conn)


def _remote(conn: object) -> Remote | None:
    try:  # TCP streams and Yamux connections can say; the interfaces do not promise it
        remote = conn.get_remote_address()  # type: ignore[attr-defined]
    except Exception:
        return None
    return (str(remote[0]), int(remote[1])) if remote else None


def install_gate(host: IHost, gate: InboundGate) -> None:
    """Put every inbound connection of ``host`` through ``gate``; call it before ``host.run``."""
    network: Any = host.get_network()
    handle: Callable[[Any, Any], Awaitable[None]] = network._handle_inbound_connection

    async def gated(read_write_closer: Any, maddr: Any) -> None:
        ticket = gate.arrive(_remote(read_write_closer))
        try:
            with ticket.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_end_with_connection, ticket)
                    await handle(read_write_closer, maddr)  # returns early only if it failed
                    nursery.cancel_scope.cancel()
        finally:
            gate.leave(ticket)
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                await _close(ticket.conn if ticket.conn is not None else read_write_closer)

    network._handle_inbound_connection = gated
    network.register_notifee(_GateWatcher(gate))


async def _end_with_connection(ticket: Ticket) -> None:
    """End the ticket's task when its connection closes (py-libp2p's own task would wait forever)."""
    await ticket.admitted.wait()
    closed: trio.Event | None = getattr(ticket.conn, "event_closed", None)
    if closed is not None:
        await closed.wait()
        ticket.scope.cancel()


async def _close(resource: Any) -> None:
    try:
        await resource.close()
    except Exception as exc:  # closed already, or broken: either way it is gone
        log.debug("closing an inbound connection failed: %s", exc)
