"""Noise frames read with one wake-up (``node._frame_reads``): whole frames, EOF, the mark restored."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from libp2p.io import msgio
from libp2p.io.exceptions import IncompleteReadError
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.raw_connection import RawConnection

from p2p_orchestrator.node.host import _frame_reads


@asynccontextmanager
async def tcp_pair() -> AsyncIterator[tuple[RawConnection, trio.SocketStream]]:
    """A py-libp2p raw TCP connection on loopback, and the plain other end of it."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        accepted: list[trio.SocketStream] = []

        async def accept() -> None:
            accepted.append(await listeners[0].accept())

        nursery.start_soon(accept)
        client = await trio.open_tcp_stream("127.0.0.1", port)
    async with client, accepted[0] as server, listeners[0]:
        yield RawConnection(TrioTCPStream(server), initiator=False), client


def lowat(raw: RawConnection) -> int:
    sock = raw.stream.stream.socket  # type: ignore[attr-defined]
    value: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)
    return value


async def test_a_frame_sent_in_pieces_is_read_whole_and_the_mark_is_restored() -> None:
    _frame_reads.install()
    _frame_reads.install()  # idempotent
    frame = bytes(range(256)) * 240  # 61440 bytes, as a Noise frame body
    with trio.fail_after(10):
        async with tcp_pair() as (raw, peer):

            async def send_in_pieces() -> None:
                for start in range(0, len(frame), 8192):
                    await peer.send_all(frame[start : start + 8192])
                    await trio.sleep(0.005)  # pacing like a slow link, for the test only

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_in_pieces)
                assert await msgio.read_exactly(raw, len(frame)) == frame  # type: ignore[attr-defined]
            assert lowat(raw) == 1
            await peer.send_all(b"\x00\x05hello")  # a small frame right after: no wait for more
            assert await msgio.read_exactly(raw, 2) == b"\x00\x05"  # type: ignore[attr-defined]
            assert await msgio.read_exactly(raw, 5) == b"hello"  # type: ignore[attr-defined]


async def test_the_end_of_the_connection_mid_frame_is_seen_at_once() -> None:
    _frame_reads.install()
    with trio.fail_after(5):
        async with tcp_pair() as (raw, peer):
            await peer.send_all(b"x" * 100)
            await peer.aclose()
            with pytest.raises(IncompleteReadError):
                await msgio.read_exactly(raw, 60000)  # type: ignore[attr-defined]
