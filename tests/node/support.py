"""Helpers of the node tests: fast configurations, a raw libp2p peer, frame decoding."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import multiaddr
import trio
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr

from p2p_orchestrator.config import NodeSettings, OrchestratorConfig, RuntimeSettings, StoreSettings
from p2p_orchestrator.node import Node
from p2p_orchestrator.node._host import build_host, close_host
from p2p_orchestrator.node._stream import NetStream, RawStream, StreamBroken
from p2p_orchestrator.wire import RPC_PROTOCOL_ID, FrameDecoder, decode_payload
from tests.helpers import make_archive

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
        runtime=RuntimeSettings(start_timeout=10.0, stop_timeout=3.0, call_timeout=10.0),
        node=replace(FAST_NODE, **node),
    )


def service_archive(root: Path, name: str, body: str, version: str = "1.0.0", **kwargs: Any) -> bytes:
    """A service named ``name`` whose ``main.py`` is ``HEADER + body``."""
    files = {"main.py": HEADER + textwrap.dedent(body), **kwargs.pop("files", {})}
    return make_archive(root / name / version, name, version, files=files, **kwargs)


SLOW_SERVICE = """
class Run(BaseService):
    SERVICE_NAME = "slow_service"

    @service_method(description="sleeps", public=True)
    async def sleep(self, seconds=1.0):
        await trio.sleep(seconds)
        return {"slept": seconds}

    @service_method(description="echo", public=True)
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
