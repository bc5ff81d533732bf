"""``Dialer``: connects to peers by address or by peer ID alone, and keeps pinned peers connected.

* :meth:`Dialer.connect_address` dials ``/ip4/.../tcp/N/p2p/<id>``, records the
  address in the :class:`~p2p_orchestrator.node.peerbook.PeerBook` and pins the
  peer.
* :meth:`Dialer.ensure_connected` reuses a live connection, or dials the peer
  with the addresses the book knows (the operator's, bootstrap's, and those
  this node reached the peer at itself), then those the peer announced
  (identify, identify/push) at an IP address a connection of its came from
  (any, with ``[node] mdns``).  A peer cannot steer our dials elsewhere nor
  fill the book: identify/push lets it announce up to 1000 addresses of its
  choice, and only one it was reached at is ever recorded.  Concurrent dials
  of one peer share one attempt.  Failures raise
  ``ServiceCallError(code="peer_unreachable")``: no known address, refused,
  timed out after ``dial_timeout``.
* When a pinned peer's connection drops, :meth:`Dialer.on_disconnect` starts a
  reconnect task in the node's nursery: up to ``reconnect_attempts`` dials,
  ``reconnect_delay`` apart at first and doubling up to ``reconnect_max_delay``
  (with ±20% jitter so a restarted swarm does not redial in lockstep).  At
  start :meth:`Dialer.start` does the same for every pinned peer (bootstrap
  peers are pinned), its first attempt at once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import multiaddr
import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from p2p_orchestrator._backoff import exponential_delay
from p2p_orchestrator._keyed_locks import KeyedLocks
from p2p_orchestrator.config import NodeSettings
from p2p_orchestrator.errors import ServiceCallError
from p2p_orchestrator.node.host._build import allow_dial, dial_only, parse_peer_address, parse_peer_id
from p2p_orchestrator.node.peerbook import MAX_ADDRS, PeerBook

__all__ = ["Dialer"]

log = logging.getLogger("p2p_orchestrator.node")

_JITTER = 0.2
_SEEN_PEERS = 1024
"""Peers whose connection IPs are remembered (the least recent are forgotten first)."""
_IPS_PER_PEER = 4


def _ip_of(address: multiaddr.Multiaddr) -> str | None:
    for protocol in ("ip4", "ip6"):
        try:
            return str(address.value_for_protocol(protocol))
        except Exception:  # not this protocol
            continue
    return None


class Dialer:
    """Dials and redials peers for one node; see the module docstring."""

    def __init__(self, host: IHost, book: PeerBook, settings: NodeSettings, nursery: trio.Nursery) -> None:
        self._host = host
        self._book = book
        self._settings = settings
        self._nursery = nursery
        self._locks = KeyedLocks()
        self._redialing: set[str] = set()
        self._connected_events: dict[str, trio.Event] = {}
        self._seen_at: OrderedDict[str, set[str]] = OrderedDict()
        """The IPs each peer's connections came from (the most recent peers, bounded)."""
        self._closing = False

    def is_connected(self, peer_id: ID) -> bool:
        return bool(self._host.get_network().connections.get(peer_id))

    async def connect_address(self, text: str, *, pin: bool = True) -> str:
        """Dial a ``.../p2p/<id>`` multiaddr; remember (and pin) the peer; return its peer ID."""
        peer, address = parse_peer_address(text)
        peer_text = peer.to_base58()
        if peer == self._host.get_id():
            raise ServiceCallError(f"{text} is this node's own address", code="bad_peer_address")
        await self._dial(peer, [address])
        await trio.to_thread.run_sync(lambda: self._book.record(peer_text, [str(address)], pin=pin))
        return peer_text

    async def ensure_connected(self, peer_text: str) -> ID:
        """Connect to ``peer_text`` with the addresses we know for it, unless connected already."""
        peer = parse_peer_id(peer_text)
        if self.is_connected(peer):
            return peer
        addrs = self._known_addrs(peer)
        if not addrs:
            raise ServiceCallError(
                f"no known address for peer {peer_text}: connect to it once with its multiaddr "
                "(node.connect('/ip4/.../tcp/.../p2p/<id>')), or list it in [node] bootstrap",
                code="peer_unreachable",
            )
        reached = await self._dial(peer, addrs)
        if reached is not None:  # the address we saw answer goes first; nothing unverified is kept
            await trio.to_thread.run_sync(lambda: self._book.record(peer_text, [str(reached)]))
        return peer

    def _known_addrs(self, peer: ID) -> list[multiaddr.Multiaddr]:
        addrs: list[multiaddr.Multiaddr] = []
        known = self._book.get(peer.to_base58())
        for text in known.addrs if known else ():
            try:
                addrs.append(multiaddr.Multiaddr(text))
            except Exception as exc:
                log.warning("ignoring the bad address %r of %s in the peer book: %s", text, peer, exc)
        seen = self._seen_at.get(peer.to_base58(), set())
        try:
            announced = self._host.get_peerstore().addrs(peer)
        except Exception as exc:  # PeerStoreError: unknown or expired
            log.debug("peerstore has no address for %s: %s", peer, exc)
            announced = []
        for address in announced:
            if address not in addrs and (self._settings.mdns or _ip_of(address) in seen):
                addrs.append(address)
        return addrs[:MAX_ADDRS]

    async def _dial(self, peer: ID, addrs: list[multiaddr.Multiaddr]) -> multiaddr.Multiaddr | None:
        """Connect to ``peer`` at the first of ``addrs`` that answers; the address that did (``None``: was connected).

        py-libp2p dials only one TCP address of a peer (the first its peerstore
        holds), so a peer that came back at a new address would never be reached
        while the old one is known: each address is tried in turn, alone in the
        peerstore (:func:`dial_only`), most recent first.
        """
        async with self._locks.hold(peer.to_base58()):
            if self.is_connected(peer):
                return None
            timeout = self._settings.dial_timeout
            failures: list[str] = []
            last: Exception | None = None
            with trio.move_on_after(timeout) as timer:
                for address in addrs:
                    allow_dial(self._host, peer)  # our backoff decides when to retry, not py-libp2p's cache
                    dial_only(self._host, peer, address)
                    try:
                        await self._host.connect(PeerInfo(peer, [address]))
                    except Exception as exc:
                        failures.append(f"{address}: {type(exc).__name__}: {exc}")
                        last = exc
                        continue
                    return address
            if timer.cancelled_caught:
                raise ServiceCallError(
                    f"connecting to peer {peer} took longer than {timeout:g} s"
                    + (f" ({'; '.join(failures)})" if failures else ""),
                    code="peer_unreachable",
                )
            raise ServiceCallError(
                f"cannot connect to peer {peer} at {'; '.join(failures)}", code="peer_unreachable"
            ) from last

    async def wait_connected(self, peer_text: str) -> None:
        """Return once ``peer_text`` is connected (now, or when a connection opens)."""
        peer = parse_peer_id(peer_text)
        while not self.is_connected(peer):
            await self._connected_events.setdefault(peer_text, trio.Event()).wait()

    def on_connect(self, peer_text: str, remote_ip: str | None = None) -> None:
        """A connection opened (called from py-libp2p's notifee: must not block or raise)."""
        if remote_ip is not None:
            ips = self._seen_at.pop(peer_text, set())
            if len(ips) < _IPS_PER_PEER:
                ips.add(remote_ip)
            self._seen_at[peer_text] = ips
            while len(self._seen_at) > _SEEN_PEERS:
                self._seen_at.popitem(last=False)
        event = self._connected_events.pop(peer_text, None)
        if event is not None:
            event.set()

    # -- keeping pinned peers connected -------------------------------------------------------

    def start(self) -> None:
        """Dial every pinned peer in the background (the first attempt at once)."""
        for known in self._book.pinned():
            self._redial(known.peer_id, immediately=True)

    def on_disconnect(self, peer_text: str) -> None:
        """A connection closed (called from py-libp2p's notifee: must not block or raise)."""
        known = self._book.get(peer_text)
        if known is not None and known.pinned:
            self._redial(peer_text, immediately=False)

    def close(self) -> None:
        """Stop starting reconnects (the node's nursery cancels those running)."""
        self._closing = True

    def _redial(self, peer_text: str, *, immediately: bool) -> None:
        if self._closing or peer_text in self._redialing:
            return
        self._redialing.add(peer_text)
        try:
            self._nursery.start_soon(self._keep_connected, peer_text, immediately, name=f"redial {peer_text}")
        except RuntimeError as exc:  # the nursery is closing: so is the node
            self._redialing.discard(peer_text)
            log.debug("not redialling %s: %s", peer_text, exc)

    async def _keep_connected(self, peer_text: str, immediately: bool) -> None:
        settings = self._settings
        waits = 0
        try:
            peer = parse_peer_id(peer_text)
            for attempt in range(1, settings.reconnect_attempts + 1):
                if attempt > 1 or not immediately:
                    await trio.sleep(
                        exponential_delay(
                            settings.reconnect_delay, 2.0, waits, settings.reconnect_max_delay, jitter=_JITTER
                        )
                    )
                    waits += 1
                if self.is_connected(peer):
                    return
                try:
                    await self.ensure_connected(peer_text)
                except ServiceCallError as exc:
                    log.info(
                        "Reconnect %d/%d to %s failed: %s",
                        attempt,
                        settings.reconnect_attempts,
                        peer_text,
                        exc,
                    )
                    continue
                log.info("Connected to peer %s", peer_text)
                return
            log.warning("Gave up connecting to %s after %d attempts", peer_text, settings.reconnect_attempts)
        except ServiceCallError as exc:  # a malformed peer ID in the book
            log.warning("Not redialling %s: %s", peer_text, exc)
        finally:
            self._redialing.discard(peer_text)
