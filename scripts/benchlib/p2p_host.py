"""A raw py-libp2p host set up as the notes advise: Noise + Yamux only, one connection per peer.

Shared by the responder program and the measuring side of the network baselines, so both
ends are configured alike.  Importing this module imports libp2p (~0.8 s): only the network
baselines do.
"""

from __future__ import annotations

from typing import Any

import multiaddr
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

__all__ = [
    "ECHO_PROTOCOL",
    "ECHO_SIZE",
    "LOOPBACK",
    "SINK_PROTOCOL",
    "make_host",
    "read_exactly",
]

ECHO_PROTOCOL = TProtocol("/p2p-orchestrator-bench/echo/1.0.0")
"""Request/response: the dialer writes ``ECHO_SIZE`` bytes, the listener writes them back."""
SINK_PROTOCOL = TProtocol("/p2p-orchestrator-bench/sink/1.0.0")
"""Bulk: an 8-byte big-endian size, that many bytes, then the listener answers the count it read."""
ECHO_SIZE = 32
LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


def make_host() -> Any:
    """A host with an Ed25519 identity, Noise, Yamux and ``max_connections_per_peer=1``."""
    key_pair = create_new_key_pair()
    noise = NoiseTransport(key_pair, noise_privkey=create_new_x25519_key_pair().private_key)
    return new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=[LOOPBACK],
        connection_config=ConnectionConfig(max_connections_per_peer=1),
    )


async def read_exactly(stream: Any, size: int) -> bytes:
    """Exactly ``size`` bytes (``read`` may return fewer); EOF before that is an error."""
    data = bytearray()
    while len(data) < size:
        chunk = await stream.read(size - len(data))
        if not chunk:
            raise EOFError(f"stream ended after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)
