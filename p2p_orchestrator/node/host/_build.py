"""The py-libp2p host of a node, built one way only, and the address helpers around it.

:func:`build_host` names every choice explicitly instead of taking
py-libp2p's defaults, which would also accept plaintext and secio dialers (a
downgrade) and wait 250 ms on every connect:

* security: Noise only (the remote peer ID of every connection is then
  authenticated by the handshake: it is the identity the access table uses);
* muxer: Yamux only (Mplex is ~5x slower), with its receive windows and buffers enforced
  (:mod:`._yamux_guard`);
* inbound connections through :mod:`._inbound_gate` (a bounded share for peers without a role);
* py-libp2p's own protocols (identify, identify/push, ping) bounded (:mod:`._library_protocols`);
* transport: TCP, listening where ``[node] listen`` says;
* ``max_connections_per_peer=1`` (connects take ~8 ms instead of 250 ms);
* py-libp2p's own reconnect policies off, because the node has one
  (:mod:`p2p_orchestrator.node.host._dialer`): no auto-connector dialling every peer
  in the peerstore (:func:`stop_auto_connector`), no hidden retries inside one
  dial (``RetryConfig(max_retries=0)``: one attempt is one dial of each
  address, bounded by ``dial_timeout``), and the swarm's 60-second "negative
  cache" of failed peers lifted before each deliberate dial (:func:`allow_dial`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetConn, INetwork
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.peer.id import ID
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from p2p_orchestrator.config import ConfigError, NodeSettings
from p2p_orchestrator.errors import ServiceCallError
from p2p_orchestrator.node.host import _patches as patches
from p2p_orchestrator.node.host._inbound_gate import InboundGate, install_gate
from p2p_orchestrator.node.host._library_protocols import bound_library_protocols
from p2p_orchestrator.node.host._notifee import Notifee
from p2p_orchestrator.node.host._yamux_guard import BufferLimits, install_guard

log = logging.getLogger("p2p_orchestrator.node")

_DIAL_ADDR_TTL = 120
"""Seconds py-libp2p keeps an address it is given to dial (what its own ``connect`` uses)."""

__all__ = [
    "ConnectionWatcher",
    "allow_dial",
    "build_host",
    "close_host",
    "dial_only",
    "parse_listen_addrs",
    "parse_peer_address",
    "parse_peer_id",
    "stop_auto_connector",
]


def parse_listen_addrs(texts: Sequence[str]) -> list[multiaddr.Multiaddr]:
    """``[node] listen`` as multiaddrs; :class:`ConfigError` names a bad one."""
    addrs = []
    for text in texts:
        try:
            addr = multiaddr.Multiaddr(text)
        except Exception as exc:
            raise ConfigError(f"[node] listen: {text!r} is not a multiaddr ({exc})") from exc
        if "tcp" not in {proto.name for proto in addr.protocols()}:
            raise ConfigError(f"[node] listen: {text!r} is not a TCP address (this node speaks TCP only)")
        addrs.append(addr)
    return addrs


def parse_peer_id(text: str) -> ID:
    """A peer ID from its base58 text; ``ServiceCallError(code="bad_peer_id")`` if it is not one."""
    try:
        return ID.from_base58(text)
    except Exception as exc:
        raise ServiceCallError(f"{text!r:.80} is not a peer ID", code="bad_peer_id") from exc


def parse_peer_address(text: str) -> tuple[ID, multiaddr.Multiaddr]:
    """Split ``/ip4/.../tcp/N/p2p/<id>`` into the peer ID and the address before ``/p2p``."""
    try:
        addr = multiaddr.Multiaddr(text)
        peer_text = addr.get_peer_id()
        transport = addr.decapsulate(multiaddr.Multiaddr(f"/p2p/{peer_text}")) if peer_text else None
    except Exception as exc:
        raise ServiceCallError(
            f"{text!r:.200} is not a peer address: {exc}", code="bad_peer_address"
        ) from exc
    if peer_text is None or transport is None:
        raise ServiceCallError(f"{text!r:.200} does not end in /p2p/<peer id>", code="bad_peer_address")
    return parse_peer_id(peer_text), transport


def build_host(
    key_pair: KeyPair,
    settings: NodeSettings,
    listen: Sequence[multiaddr.Multiaddr],
    *,
    is_known: Callable[[str], bool] = lambda peer: False,
    gate: InboundGate | None = None,
) -> IHost:
    """A Noise + Yamux + TCP host with the node's identity; see the module docstring.

    ``is_known(peer_id)``: whether a peer has a role on the node; peers without one get the
    smaller share of buffers (:mod:`._yamux_guard`).  ``gate`` admits inbound connections
    (:mod:`._inbound_gate`); without one, every inbound connection the swarm takes is let in.
    """
    patches.install()  # before the host exists: a version check, then the process-wide fixes
    noise = NoiseTransport(key_pair, noise_privkey=new_x25519_key_pair().private_key)
    host = new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt={YAMUX_PROTOCOL_ID: Yamux},  # type: ignore[dict-item]
        listen_addrs=list(listen),
        enable_mDNS=settings.mdns,
        connection_config=ConnectionConfig(
            max_connections_per_peer=1,
            min_connections=0,
            low_watermark=0,
            dial_timeout=settings.dial_timeout,
        ),
    )
    network: Any = host.get_network()
    network.retry_config = RetryConfig(max_retries=0)
    install_guard(host, BufferLimits(), is_known)
    bound_library_protocols(host, is_known)
    if gate is not None:
        install_gate(host, gate)
    return host


def allow_dial(host: IHost, peer: ID) -> None:
    """Lift the swarm's negative cache for ``peer`` (after a failed dial it refuses new ones for 60 s)."""
    unblock = getattr(host.get_network(), "unblock_peer", None)
    if unblock is not None:
        unblock(peer)


def dial_only(host: IHost, peer: ID, address: multiaddr.Multiaddr) -> None:
    """Make ``address`` the only one py-libp2p knows for ``peer``, so its next dial goes there.

    py-libp2p's swarm dials at most one address per transport (the first of its
    peerstore), whatever else it knows: a peer that came back on another port
    would be dialled at its dead old address for as long as that stays known.
    The dialer therefore chooses the address itself (the peer book keeps them all).
    """
    peerstore = host.get_peerstore()
    peerstore.clear_addrs(peer)
    peerstore.add_addrs(peer, [address], _DIAL_ADDR_TTL)


async def stop_auto_connector(host: IHost) -> None:
    """Stop py-libp2p's auto-connector, which would dial every peer in its peerstore.

    ``ConnectionConfig`` cannot switch it off (a zero high watermark would make
    the pruner close every connection instead), and the swarm starts it in
    ``host.run``; stopping it right after makes its loop and its on-disconnect
    trigger do nothing.  Which peers to keep connected is the node's choice.
    """
    connector: Any = getattr(host.get_network(), "auto_connector", None)
    if connector is not None:
        await connector.stop()


async def close_host(host: IHost, *, time_limit: float = 5.0) -> None:
    """Close the host's connections and listeners; call it before leaving ``host.run()``.

    Leaving ``host.run()`` alone stops the swarm's service but not its TCP
    listeners, which run in a trio *system* task: the port keeps accepting
    (and failing) connections until the whole trio run ends, so peers never see
    the node go away.  ``host.close()`` closes connections and listeners.  It
    runs shielded (the node may be closing because it was cancelled), within
    ``time_limit`` seconds; a failure is logged, never raised.
    """
    with trio.CancelScope(shield=True), trio.move_on_after(time_limit) as timer:
        try:
            await host.close()
        except Exception:
            log.exception("closing the libp2p host %s failed", host.get_id())
    if timer.cancelled_caught:
        log.warning(
            "closing the libp2p host %s took over %g s; left to its nursery", host.get_id(), time_limit
        )


class ConnectionWatcher(Notifee):
    """Calls ``on_connect(peer_id, remote_ip)`` / ``on_disconnect(peer_id)`` as connections open and close.

    A py-libp2p notifee: the callbacks run inside the swarm's own tasks, so they
    must not block or raise; the node's callbacks only set events and start
    tasks of its own.
    """

    def __init__(
        self, on_connect: Callable[[str, str | None], None], on_disconnect: Callable[[str], None]
    ) -> None:
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._on_disconnect(conn.muxed_conn.peer_id.to_base58())

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        try:  # Yamux (the only muxer we speak) can say; the interface does not promise it
            remote = conn.muxed_conn.get_remote_address()  # type: ignore[attr-defined]
        except Exception:  # a transport that cannot say: the address is simply not known
            remote = None
        self._on_connect(conn.muxed_conn.peer_id.to_base58(), remote[0] if remote else None)
