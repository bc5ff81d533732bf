"""The multistream-select forms a node accepts, byte for byte (docs/protocol.md, "Protocol negotiation")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cbor2
import multiaddr
import pytest
import trio
from libp2p.abc import IHost
from libp2p.peer.peerinfo import info_from_p2p_addr

from p2p_orchestrator.node import Node
from tests.node.support import fast_config, frame, raw_peer


def line(text: str) -> bytes:
    data = (text + "\n").encode()
    return bytes([len(data)]) + data


HEADER = line("/multistream/1.0.0")
RPC_ID = line("/p2p-orchestrator/rpc/1.0.0")
PING = frame(cbor2.dumps({"t": "req", "id": 1, "method": "node/ping", "params": {}}))


async def exchange(host: IHost, node: Node, writes: list[bytes]) -> bytes:
    """Open a bare Yamux stream (no negotiation of ours), write ``writes``, return what comes back."""
    peer = info_from_p2p_addr(multiaddr.Multiaddr(node.listen_addrs[0])).peer_id
    conn: Any = host.get_network().get_connections(peer)[0].muxed_conn
    stream = await conn.open_stream()
    for data in writes:
        await stream.write(data)
    received = b""
    with trio.move_on_after(2):
        while True:
            try:
                chunk = await stream.read(4096)
            except Exception:
                break
            if not chunk:
                break
            received += chunk
            if received.endswith(b"\n\n") or b"\xa3atcerr" in received or b"\xa3atcres" in received:
                break
    return received


@pytest.mark.parametrize(
    ("writes", "starts"),
    [
        ([HEADER, RPC_ID, PING], HEADER + RPC_ID + b"\x00\x00"),  # one write each, then a frame
        ([HEADER + RPC_ID + PING], HEADER + RPC_ID + b"\x00\x00"),  # lazy: all in one write
        ([HEADER + line("/nope/1.0.0"), RPC_ID + PING], HEADER + line("na") + RPC_ID + b"\x00\x00"),
        ([HEADER + line("ls")], HEADER),
        ([RPC_ID], HEADER),  # no header first: refused
    ],
    ids=["separate", "lazy", "na_then_retry", "ls", "no_header"],
)
async def test_negotiation_forms(tmp_path: Path, writes: list[bytes], starts: bytes) -> None:
    with trio.fail_after(30):
        async with Node.open(tmp_path / "node", config=fast_config()) as node, raw_peer() as peer:
            await peer.connect(info_from_p2p_addr(multiaddr.Multiaddr(node.listen_addrs[0])))
            received = await exchange(peer, node, writes)
    assert received.startswith(starts), received[:120]
    if writes[-1].endswith(PING):
        answer = cbor2.loads(received[len(starts) + 2 :])
        assert answer["id"] == 1 and answer["t"] in ("res", "err")
    if writes[0].endswith(line("ls")):
        assert (
            b"/p2p-orchestrator/rpc/1.0.0\n" in received and b"/p2p-orchestrator/transfer/1.0.0\n" in received
        )
    if writes == [RPC_ID]:
        assert received == HEADER
