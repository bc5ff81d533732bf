"""``Node``: an orchestrator on the libp2p network.

A node gives its :class:`~p2p_orchestrator.Orchestrator` an identity, a host and
a protocol, so other nodes can call every orchestrator method and every public
service method addressed only by its peer ID::

    async with Node.open("~/.p2p-orchestrator") as node:      # opens the Orchestrator too
        print(node.peer_id, node.listen_addrs)
        peer = await node.connect("/ip4/10.0.0.2/tcp/4001/p2p/12D3KooW...")
        services = await node.proxy(peer).call_method("orchestrator/list_services", {})

or around an orchestrator you already opened::

    async with Orchestrator(home) as orch, Node(orch) as node:
        ...

What it owns, all torn down on exit:

* the identity (:mod:`~p2p_orchestrator.node.identity`) and a py-libp2p host
  (Noise + Yamux + TCP, see :mod:`~p2p_orchestrator.node.host._build`);
* the RPC protocol handler (:data:`~p2p_orchestrator.wire.RPC_PROTOCOL_ID`)
  answering peers as their role allows (:mod:`~p2p_orchestrator.node.access`);
* one reusable outbound stream per peer for our calls (:mod:`~p2p_orchestrator.node.rpc._pool`);
* the peer book and the reconnect tasks (:mod:`~p2p_orchestrator.node.host._dialer`);
* a nursery for its background tasks.

While it runs, the orchestrator is linked to it
(:class:`~p2p_orchestrator.orchestrator.NetworkLink`): ``rpc.call(method, params,
peer=PEER_ID)`` reaches other nodes, ``distribute_service`` and ``fetch_service`` move
archives through ``node.transfers``, ``get_metrics`` has the network's figures, and the
services of ``[updates] follow`` are followed (:mod:`~p2p_orchestrator.orchestrator.updates`).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol

from p2p_orchestrator._patterns import METHOD_PATH
from p2p_orchestrator.callers import Caller, Permission
from p2p_orchestrator.config import OrchestratorConfig, default_home, load_config
from p2p_orchestrator.errors import ServiceCallError
from p2p_orchestrator.node.access import AccessControl, Role
from p2p_orchestrator.node.distribution.transfers import NodeTransfers
from p2p_orchestrator.node.host._build import (
    ConnectionWatcher,
    build_host,
    close_host,
    parse_listen_addrs,
    parse_peer_address,
    parse_peer_id,
    stop_auto_connector,
)
from p2p_orchestrator.node.host._dialer import Dialer
from p2p_orchestrator.node.host._inbound_gate import GateLimits, InboundGate
from p2p_orchestrator.node.host._limits import StreamLimiter
from p2p_orchestrator.node.host._stream import NetStream, RawStream
from p2p_orchestrator.node.identity import load_or_create_identity, peer_id_of, verify_signature
from p2p_orchestrator.node.peerbook import PeerBook
from p2p_orchestrator.node.proxy import RemoteProxy
from p2p_orchestrator.node.rpc._handler import RpcStreamHandler
from p2p_orchestrator.node.rpc._pool import ChannelPool
from p2p_orchestrator.node.rpc._server import Deadlines
from p2p_orchestrator.orchestrator import NetworkLink, Orchestrator
from p2p_orchestrator.rpc import Rpc
from p2p_orchestrator.wire import RPC_PROTOCOL_ID

__all__ = ["Node", "PeerStatus"]

log = logging.getLogger("p2p_orchestrator.node")

_RPC_PROTOCOL = TProtocol(RPC_PROTOCOL_ID)


@dataclass(frozen=True)
class PeerStatus:
    """One peer as :meth:`Node.peers` reports it."""

    peer_id: str
    connected: bool
    addrs: tuple[str, ...]
    """Where it was last reached (from the peer book), without ``/p2p/<id>``."""
    pinned: bool
    """Kept connected: redialled at start and when the connection drops."""
    role: str | None
    """Its role on this node (``None``: unknown peer)."""


class Node:
    """An orchestrator on the network; see the module docstring."""

    def __init__(self, orchestrator: Orchestrator, *, config: OrchestratorConfig | None = None) -> None:
        self.orchestrator = orchestrator
        config = config if config is not None else orchestrator.config
        self.settings = config.node
        self.access = AccessControl(config.access, orchestrator.home)
        self._deadlines = Deadlines(
            read=self.settings.read_timeout,
            idle=self.settings.idle_timeout,
            write=self.settings.write_timeout,
        )
        self._handler = RpcStreamHandler(
            self._call_rpc,
            self.access,
            StreamLimiter(per_peer=self.settings.max_streams_per_peer, total=self.settings.max_streams_total),
            deadlines=self._deadlines,
            max_in_flight=self.settings.max_in_flight_per_stream,
        )
        self._gate = InboundGate(GateLimits.from_settings(self.settings), self._has_role)
        self._host: IHost | None = None
        self._peer_id = ""
        self._book: PeerBook | None = None
        self._dialer: Dialer | None = None
        self._pool: ChannelPool | None = None
        self._stack: AsyncExitStack | None = None
        self._running = False

    # -- opening and closing ----------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def open(
        cls, home: str | os.PathLike[str] | None = None, *, config: OrchestratorConfig | None = None
    ) -> AsyncIterator[Node]:
        """Open the orchestrator at ``home`` and put it on the network.

        The node's configuration, ``roles.toml`` and identity are checked first,
        so a bad ``[node]`` section or an unsafe ``identity.key`` raises its own
        error (``ConfigError``, ``IdentityError``) before anything starts.
        """
        path, config = await trio.to_thread.run_sync(_check_before_start, home, config)
        async with (
            Orchestrator(path, config=config) as orchestrator,
            cls(orchestrator, config=config) as node,
        ):
            yield node

    async def __aenter__(self) -> Node:
        home = self.orchestrator.home
        settings = self.settings
        listen = parse_listen_addrs(settings.listen)
        bootstrap = [parse_peer_address(text) for text in settings.bootstrap]
        key_pair = await trio.to_thread.run_sync(load_or_create_identity, home)
        self._peer_id = peer_id_of(key_pair)
        self._book = book = await trio.to_thread.run_sync(PeerBook, home)
        self._host = host = build_host(key_pair, settings, listen, is_known=self._has_role, gate=self._gate)
        host.set_stream_handler(_RPC_PROTOCOL, self._handler)
        async with AsyncExitStack() as stack:
            # Unwound in reverse: stop our tasks, leave the nursery, close the host, leave host.run.
            await stack.enter_async_context(host.run(listen))
            stack.push_async_callback(close_host, host)
            await stop_auto_connector(host)
            nursery = await stack.enter_async_context(trio.open_nursery())
            stack.push_async_callback(self._shutdown, nursery)
            self._pool = ChannelPool(
                nursery,
                self._open_rpc_stream,
                deadlines=self._deadlines,
                max_in_flight=settings.max_in_flight_per_stream,
            )
            self._dialer = dialer = Dialer(host, book, settings, nursery)
            host.get_network().register_notifee(ConnectionWatcher(self._on_connect, dialer.on_disconnect))
            for peer, address in bootstrap:
                await trio.to_thread.run_sync(
                    lambda p=peer, a=address: book.record(p.to_base58(), [str(a)], pin=True)
                )
            dialer.start()
            self._running = True
            self.transfers = await stack.enter_async_context(NodeTransfers(self, nursery))
            link = NetworkLink(
                call_peer=self._relay,
                distributor=self.transfers,
                metrics=self._network_metrics,
                peers=self._connected_peers,
                peer_id=self._peer_id,
                sign=key_pair.private_key.sign,
                verify=verify_signature,
                permissions_of=self._permissions_of,
            )
            stack.enter_context(self.orchestrator.linked(link))
            nursery.start_soon(self.orchestrator.follow_updates)
            nursery.start_soon(self.orchestrator.run_rollouts)
            nursery.start_soon(self.orchestrator.keep_replicas)
            log.info("Node %s listening on %s", self._peer_id, ", ".join(self.listen_addrs))
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        self._running = False
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)
        log.info("Node %s stopped", self._peer_id)

    def _network_metrics(self) -> dict[str, Any]:
        """The node's part of ``get_metrics``: peers and transfer bytes."""
        peers = self.peers()
        moved = self.transfers.bytes_moved
        return {
            "peers_known": len(peers),
            "peers_connected": sum(peer.connected for peer in peers),
            "transfer_bytes_sent": moved.sent,
            "transfer_bytes_received": moved.received,
        }

    async def _shutdown(self, nursery: trio.Nursery) -> None:
        if self._dialer is not None:
            self._dialer.close()
        self._handler.close()
        if self._pool is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(self._deadlines.write):
                await self._pool.aclose()  # a clean end for the peers' side of our streams
        nursery.cancel_scope.cancel()

    # -- what the node is -------------------------------------------------------------------

    @property
    def host(self) -> IHost:
        """The py-libp2p host (for protocols of other layers, e.g. transfer)."""
        if self._host is None or not self._running:
            raise RuntimeError("the node is not running: use 'async with Node(...)'")
        return self._host

    @property
    def peer_id(self) -> str:
        """This node's peer ID (``12D3KooW...``), stable across restarts."""
        if not self._peer_id:
            raise RuntimeError("the node is not running: use 'async with Node(...)'")
        return self._peer_id

    @property
    def listen_addrs(self) -> list[str]:
        """Where peers can reach this node, each ending in ``/p2p/<peer id>``."""
        return [str(addr) for addr in self.host.get_addrs()]

    @property
    def rpc(self) -> Rpc:
        """The orchestrator's RPC table (local calls: ``await node.rpc.call(method, params)``)."""
        return self.orchestrator.rpc

    def stats(self) -> dict[str, int]:
        """Counters of the network layer: streams served, refused, open; peers connected."""
        limiter = self._handler.limiter
        return {
            "inbound_streams_open": limiter.open_streams(),
            "inbound_streams_peak": limiter.peak,
            "inbound_streams_refused": limiter.refused,
            "outbound_streams_open": self._pool.channel_count() if self._pool is not None else 0,
            "connected_peers": len(self.host.get_connected_peers()),
            "inbound_connections_pending": len(self._gate.pending()),
            "inbound_connections_established": len(self._gate.established()),
            "inbound_connections_dropped": self._gate.dropped,
        }

    # -- peers --------------------------------------------------------------------------------

    async def connect(self, target: str) -> str:
        """Connect to a peer by multiaddr (``.../p2p/<id>``, which pins it) or by known peer ID.

        Returns the peer ID.  Raises ``ServiceCallError`` (``bad_peer_address``,
        ``bad_peer_id``, ``peer_unreachable``).
        """
        dialer = self._running_dialer()
        if target.startswith("/"):
            return await dialer.connect_address(target)
        await dialer.ensure_connected(target)
        return target

    async def wait_connected(self, peer_id: str) -> None:
        """Return once a connection to ``peer_id`` is open (bound it with ``trio.fail_after``)."""
        await self._running_dialer().wait_connected(peer_id)

    def is_connected(self, peer_id: str) -> bool:
        """Whether a connection to ``peer_id`` is open now."""
        return self._running_dialer().is_connected(parse_peer_id(peer_id))

    def peers(self) -> list[PeerStatus]:
        """Every peer in the peer book or connected now."""
        host, book = self.host, self._book
        assert book is not None
        connected = {peer.to_base58() for peer in host.get_connected_peers()}
        known = {peer.peer_id: peer for peer in book.peers()}
        result = []
        for peer_id in sorted(connected | known.keys()):
            entry = known.get(peer_id)
            role = self.access.role_of(peer_id)
            result.append(
                PeerStatus(
                    peer_id=peer_id,
                    connected=peer_id in connected,
                    addrs=entry.addrs if entry else (),
                    pinned=entry.pinned if entry else False,
                    role=role.value if role else None,
                )
            )
        return result

    def _on_connect(self, peer_id: str, remote_ip: str | None) -> None:
        """A connection opened (py-libp2p's notifee: must not block or raise)."""
        if self._dialer is not None:
            self._dialer.on_connect(peer_id, remote_ip)
        if self._has_role(peer_id):  # strangers cannot make this node call them by connecting
            self.orchestrator.peer_connected(peer_id)

    def _connected_peers(self) -> list[str]:
        """The peer IDs connected now, those with a role here first, each group in random order.

        The update follower's audience: it asks the first few, so strangers that connected to
        this node cannot crowd out the peers it knows.
        """
        if self._host is None or not self._running:
            return []
        connected = [peer.to_base58() for peer in self._host.get_connected_peers()]
        random.shuffle(connected)
        return sorted(connected, key=lambda peer: not self._has_role(peer))  # stable: known first

    def _has_role(self, peer_id: str) -> bool:
        return self.access.role_of(peer_id) is not None

    def _permissions_of(self, peer_id: str) -> frozenset[Permission]:
        caller = self.access.caller_for(peer_id)
        return caller.permissions if caller is not None else frozenset()

    def role_of(self, peer_id: str) -> Role | None:
        """The role ``peer_id`` has on this node (``None``: unknown)."""
        return self.access.role_of(peer_id)

    async def set_role(self, peer_id: str, role: Role | str | None) -> None:
        """Give ``peer_id`` a role now and across restarts (``roles.toml``); ``None`` removes it."""
        await trio.to_thread.run_sync(self.access.set_role, peer_id, role)

    # -- calls --------------------------------------------------------------------------------

    def proxy(self, peer_id: str) -> RemoteProxy:
        """A client for calls to ``peer_id`` (see :class:`RemoteProxy`)."""
        return RemoteProxy(self.call_remote, peer_id)

    async def call_remote(
        self,
        peer_id: str,
        method: str,
        params: Mapping[str, Any] | None = None,
        time_limit: float | None = None,
    ) -> Any:
        """Call ``method`` on ``peer_id`` (this node's own ID: a local call); see :class:`RemoteProxy`."""
        if not isinstance(method, str) or not METHOD_PATH.fullmatch(method):
            raise ServiceCallError(
                f"bad method path {method!r:.140}: expected '<service>/<method>' or 'orchestrator/<method>'",
                code="bad_method",
            )
        params = {} if params is None else params
        if not isinstance(params, Mapping) or not all(isinstance(key, str) for key in params):
            raise ServiceCallError(f"{method}: params must be a map with text keys", code="bad_params")
        if peer_id == self.peer_id:
            return await self.rpc.call(method, params)
        pool = self._pool
        if pool is None or not self._running:
            raise ServiceCallError("the node is not running", code="node_closed")
        limit = self.settings.call_timeout if time_limit is None else time_limit
        return await pool.call(peer_id, method, dict(params), time_limit=limit)

    async def _relay(self, peer_id: str, method: str, params: dict[str, Any]) -> Any:
        """The :class:`Rpc` seam: a local caller's ``rpc.call(..., peer=peer_id)``."""
        return await self.call_remote(peer_id, method, params)

    async def _call_rpc(self, method: str, params: dict[str, Any], caller: Caller) -> Any:
        return await self.rpc.call(method, params, caller=caller)

    async def _open_rpc_stream(self, peer_text: str) -> NetStream:
        peer = await self._running_dialer().ensure_connected(peer_text)
        timeout = self.settings.dial_timeout
        with trio.move_on_after(timeout):
            try:
                raw = await self.host.new_stream(peer, [_RPC_PROTOCOL])
            except Exception as exc:
                raise ServiceCallError(
                    f"cannot open an RPC stream to {peer_text}: {type(exc).__name__}: {exc}",
                    code="peer_unreachable",
                ) from exc
            return NetStream(cast(RawStream, raw))
        raise ServiceCallError(
            f"opening an RPC stream to {peer_text} took longer than {timeout:g} s", code="peer_unreachable"
        )

    def _running_dialer(self) -> Dialer:
        if self._dialer is None or not self._running:
            raise ServiceCallError("the node is not running", code="node_closed")
        return self._dialer

    def __repr__(self) -> str:
        return f"Node({self._peer_id or 'not running'!r}, home={str(self.orchestrator.home)!r})"


def _check_before_start(
    home: str | os.PathLike[str] | None, config: OrchestratorConfig | None
) -> tuple[Path, OrchestratorConfig]:
    """Resolve the home and configuration, and check what the node will need (blocking)."""
    path = Path(home).expanduser() if home is not None else default_home()
    config = config if config is not None else load_config(path)
    parse_listen_addrs(config.node.listen)
    for text in config.node.bootstrap:
        parse_peer_address(text)
    AccessControl(config.access, path)  # reads and checks roles.toml
    load_or_create_identity(path)
    return path, config
