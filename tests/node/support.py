"""Helpers of the node tests: fast configurations, a raw libp2p peer, frame decoding."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import multiaddr
import trio
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.transport.upgrader import TransportUpgrader

from p2p_orchestrator.config import NodeSettings, OrchestratorConfig, RuntimeSettings, StoreSettings
from p2p_orchestrator.node import Node
from p2p_orchestrator.node.host._build import build_host, close_host
from p2p_orchestrator.node.host._stream import NetStream, RawStream, StreamBroken
from p2p_orchestrator.wire import RPC_PROTOCOL_ID, FrameDecoder, decode_payload
from tests.helpers import make_archive

_T = TypeVar("_T")

RPC = TProtocol(RPC_PROTOCOL_ID)
HEADER = "import trio\nfrom service_framework import BaseService, service_method\n"

FAST_NODE = NodeSettings(
    call_timeout=10.0,
    dial_timeout=3.0,
    read_timeout=0.5,
    idle_timeout=3.0,
    write_timeout=1.0,
    max_streams_per_peer=8,
    max_streams_total=64,
    reconnect_attempts=20,
    reconnect_delay=0.05,
    reconnect_max_delay=0.5,
)


def fast_config(**node: Any) -> OrchestratorConfig:
    """No fsync, short runtime timeouts, and short node deadlines (overridable)."""
    return OrchestratorConfig(
        store=StoreSettings(fsync=False),
        runtime=RuntimeSettings(start_timeout=10.0, stop_timeout=3.0, call_timeout=10.0, auto_start=False),
        node=replace(FAST_NODE, **node),
    )


def service_archive(root: Path, name: str, body: str, version: str = "1.0.0", **kwargs: Any) -> bytes:
    """A service named ``name`` whose ``main.py`` is ``HEADER + body``, on trio."""
    files = {"main.py": HEADER + textwrap.dedent(body), **kwargs.pop("files", {})}
    kwargs["manifest"] = {"event_loop": "trio", **kwargs.get("manifest", {})}
    return make_archive(root / name / version, name, version, files=files, **kwargs)


SLOW_SERVICE = """
class Run(BaseService):
    SERVICE_NAME = "slow_service"

    @service_method(description="sleeps", public=True, requires_auth=False)
    async def sleep(self, seconds=1.0):
        await trio.sleep(seconds)
        return {"slept": seconds}

    @service_method(description="echo", public=True, requires_auth=False)
    async def echo(self, value=None):
        return {"value": value}
"""


@asynccontextmanager
async def raw_peer() -> AsyncIterator[IHost]:
    """A bare libp2p host (Noise + Yamux, like a node) that speaks whatever bytes a test wants."""
    key_pair = create_new_key_pair()
    listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    host = build_host(key_pair, FAST_NODE, listen)
    async with host.run(listen):
        try:
            yield host
        finally:
            await close_host(host)


async def handshake(address: str) -> trio.SocketStream:
    """Connect to the node at ``address`` from a fresh peer ID, Noise and Yamux negotiated; the socket.

    The connection is never started on this side: it only holds its place on the node's.
    """
    maddr = multiaddr.Multiaddr(address)
    info = info_from_p2p_addr(maddr)
    sock = await trio.open_tcp_stream(maddr.value_for_protocol("ip4"), int(maddr.value_for_protocol("tcp")))
    noise = NoiseTransport(create_new_key_pair(), noise_privkey=new_x25519_key_pair().private_key)
    upgrader = TransportUpgrader({NOISE_PROTOCOL_ID: noise}, {YAMUX_PROTOCOL_ID: Yamux})
    secured = await upgrader.upgrade_security(RawConnection(TrioTCPStream(sock), True), True, info.peer_id)
    await upgrader.upgrade_connection(secured, info.peer_id)
    return sock


async def open_raw_stream(host: IHost, node: Node) -> NetStream:
    """Connect ``host`` to ``node`` and open an RPC stream to it."""
    await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(node.listen_addrs[0])))
    raw: Any = await host.new_stream(
        info_from_p2p_addr(multiaddr.Multiaddr(node.listen_addrs[0])).peer_id, [RPC]
    )
    stream: RawStream = raw
    return NetStream(stream)


async def read_to_end(stream: NetStream, limit: float = 5.0) -> tuple[list[dict[str, Any]], str]:
    """Every frame the node sends until the stream ends, and how it ended (``eof``/``broken``/``timeout``)."""
    decoder = FrameDecoder()
    frames: list[dict[str, Any]] = []
    with trio.move_on_after(limit):
        while True:
            try:
                data = await stream.receive()
            except StreamBroken:
                return frames, "broken"
            if not data:
                return frames, "eof"
            decoder.feed(data)
            while (payload := decoder.next_frame()) is not None:
                frames.append(decode_payload(payload))
    return frames, "timeout"


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


@contextmanager
def trio_loop_in_thread(
    main: Callable[[Callable[[_T], Awaitable[None]]], Awaitable[None]], *, name: str
) -> Iterator[_T]:
    """Run ``main(publish)`` in a trio loop of its own thread; yield what it publishes.

    For hypothesis tests, which are synchronous: ``main`` sets things up (a swarm, a raw peer),
    then ``await publish(value)``, which hands ``value`` (typically holding the loop's
    :class:`trio.lowlevel.TrioToken`) to the test and waits until the test is done.  A failure
    before ``publish`` is raised in the test's thread.
    """
    published: list[_T] = []
    started, failed = threading.Event(), []
    stop: list[tuple[trio.lowlevel.TrioToken, trio.Event]] = []

    async def publish(value: _T) -> None:
        done = trio.Event()
        stop.append((trio.lowlevel.current_trio_token(), done))
        published.append(value)
        started.set()
        await done.wait()

    def thread() -> None:
        try:
            trio.run(main, publish)
        except BaseException as exc:  # reported to the test thread
            failed.append(exc)
            started.set()

    worker = threading.Thread(target=thread, name=name)
    worker.start()
    assert started.wait(60), f"{name}: the trio loop did not start"
    if failed:
        raise failed[0]
    try:
        yield published[0]
    finally:
        token, done = stop[0]
        trio.from_thread.run_sync(done.set, trio_token=token)
        worker.join(30)
        assert not worker.is_alive()
