"""A guarded Yamux connection's incoming frames (``node._yamux_incoming``): plain DATA frames delivered
without the library's per-frame work, every other frame left to the library -- the same bytes, the
same streams, the same ends, over a real Noise session on TCP."""

from __future__ import annotations

import itertools
import logging
import os
import random
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from libp2p.peer.id import ID
from libp2p.stream_muxer.exceptions import MuxedStreamEOF, MuxedStreamReset
from libp2p.stream_muxer.yamux.yamux import (
    FLAG_FIN,
    FLAG_SYN,
    MAX_WINDOW_SIZE,
    TYPE_DATA,
    YAMUX_HEADER_FORMAT,
)
from noise.connection import NoiseConnection  # type: ignore[import-untyped]

from p2p_orchestrator.node.host import _secure_reads
from p2p_orchestrator.node.host._yamux_guard import Budget, BufferLimits, _GuardedYamux
from tests.node.test_frame_reads import tcp_pair
from tests.node.test_secure_reads import noise_pair, secure_session

YAMUX_LOG = "libp2p.stream_muxer.yamux.yamux"


def frame(stream_id: int, payload: bytes, flags: int = 0, length: int | None = None) -> bytes:
    size = len(payload) if length is None else length
    return struct.pack(YAMUX_HEADER_FORMAT, 0, TYPE_DATA, flags, stream_id, size) + payload


class Peer:
    """The other end: Yamux frames written as Noise messages cut wherever the test says."""

    def __init__(self, wire: trio.SocketStream, state: NoiseConnection) -> None:
        self.wire, self.state = wire, state

    async def send(self, data: bytes, *, cuts: int = 0) -> None:
        """``data`` in Noise messages of at most 65519 bytes, cut at ``cuts`` random places too."""
        places = sorted({0, len(data), *(random.randrange(1, len(data)) for _ in range(cuts))})
        wire = b""
        for start, end in itertools.pairwise(places):
            for at in range(start, end, 65519):
                ciphertext = self.state.encrypt(data[at : min(end, at + 65519)])
                wire += len(ciphertext).to_bytes(2, "big") + ciphertext
        await self.wire.send_all(wire)


@asynccontextmanager
async def guarded_connection() -> AsyncIterator[tuple[Any, Peer]]:
    """A started guarded Yamux (the responder) on a real Noise session over TCP, and its peer."""
    _secure_reads.install()
    sender, receiver = noise_pair()
    guarded: Any = type(
        "GuardedYamux",
        (_GuardedYamux,),
        {
            "_limits": BufferLimits(),
            "_is_known": staticmethod(lambda peer: True),
            "_strangers": Budget(1 << 30),
        },
    )
    async with tcp_pair() as (raw, wire), trio.open_nursery() as nursery:
        session = secure_session(raw, receiver, is_initiator=False)
        muxer = guarded(session, ID(os.urandom(34)), is_initiator=False)
        muxer._guard()
        nursery.start_soon(muxer.start)
        yield muxer, Peer(wire, sender)
        nursery.cancel_scope.cancel()


async def read_all(stream: Any) -> bytes:
    got = b""
    while True:
        try:
            got += await stream.read(1 << 20)
        except MuxedStreamEOF:
            return got


async def test_plain_data_frames_arrive_whole_and_in_order_without_the_librarys_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=YAMUX_LOG)
    payloads = [os.urandom(n) for n in (1, 11, 12, 13, 4096, 65507, 20000, 100, 65507, 3)]
    wire = (
        frame(1, b"first", FLAG_SYN) + b"".join(frame(1, p) for p in payloads) + frame(1, b"last", FLAG_FIN)
    )
    with trio.fail_after(10):
        async with guarded_connection() as (muxer, peer):
            await peer.send(wire, cuts=25)  # headers and payloads cut across Noise messages too
            stream = await muxer.accept_stream()
            assert await read_all(stream) == b"first" + b"".join(payloads) + b"last"
    handled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("YAMUX RX")]
    assert len([line for line in handled if "type=DATA" in line]) == 2  # the SYN and the FIN: the library's
    assert not [line for line in handled if "type=DATA flags=0 " in line]  # the plain ones: delivered here


async def test_a_frame_for_a_stream_that_is_gone_is_dropped_and_the_next_ones_arrive() -> None:
    with trio.fail_after(10):
        async with guarded_connection() as (muxer, peer):
            await peer.send(frame(1, b"a", FLAG_SYN) + frame(99, os.urandom(5000)) + frame(1, b"b", FLAG_FIN))
            stream = await muxer.accept_stream()
            assert await read_all(stream) == b"ab"
            assert 99 not in muxer.streams and 99 not in muxer.stream_buffers


async def test_a_payload_past_the_window_is_refused_and_the_stream_reset() -> None:
    with trio.fail_after(10):
        async with guarded_connection() as (muxer, peer):
            await peer.send(frame(1, b"a", FLAG_SYN))
            stream = await muxer.accept_stream()
            window = muxer.streams[1].recv_window
            await peer.send(frame(1, os.urandom(window + 1)))
            await trio.testing.wait_all_tasks_blocked()  # taken in (not read: a read would grow the window)
            with pytest.raises(MuxedStreamReset):
                await read_all(stream)
            assert muxer._strikes == 1 and muxer._budget.used == 0


async def test_a_connection_that_ends_inside_a_payload_ends_as_the_librarys_does() -> None:
    with trio.fail_after(10):
        async with guarded_connection() as (muxer, peer):
            await peer.send(frame(1, b"a", FLAG_SYN))
            stream = await muxer.accept_stream()
            await peer.send(frame(1, b"0123456789", length=1000))  # 990 bytes never come
            await peer.wire.aclose()
            await muxer.event_shutting_down.wait()
            try:
                got: bytes | None = await read_all(stream)
            except MuxedStreamReset:
                got = None
            # what was buffered may be dropped with the connection; never the frame cut short
            assert got in (b"", b"a", None)


async def test_an_oversized_frame_is_left_to_the_library_which_closes_the_connection() -> None:
    with trio.fail_after(10):
        async with guarded_connection() as (muxer, peer):
            await peer.send(frame(1, b"a", FLAG_SYN) + frame(1, b"", length=MAX_WINDOW_SIZE + 1))
            await muxer.event_shutting_down.wait()
