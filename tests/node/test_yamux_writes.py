"""A guarded Yamux stream's writes (``node._yamux_writes``): the library's frames and Noise messages,
a writer woken by its window at once, and its limits kept -- over a real Noise session on TCP."""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from libp2p.security.noise.io import MAX_PLAINTEXT_LENGTH
from libp2p.stream_muxer.exceptions import MuxedStreamError
from libp2p.stream_muxer.yamux.yamux import HEADER_SIZE, TYPE_DATA, YAMUX_HEADER_FORMAT, YamuxStream
from noise.connection import NoiseConnection  # type: ignore[import-untyped]

from p2p_orchestrator.node.host._yamux_writes import WINDOW_WAIT, FittedStream
from tests.node.test_frame_reads import tcp_pair
from tests.node.test_secure_reads import noise_pair, secure_session


class Muxer:
    """What a stream asks of its Yamux connection to write: the secured connection and its lock."""

    def __init__(self, secured_conn: Any) -> None:
        self.secured_conn = secured_conn
        self._write_lock = trio.Lock()

    async def _write_frame(self, frame: bytes) -> None:  # the library's way, for any other connection
        await self.secured_conn.write(frame)


class Wire:
    """The plain other end of the TCP connection: Noise messages decrypted, Yamux frames parsed."""

    def __init__(self, peer: trio.SocketStream, state: NoiseConnection) -> None:
        self.peer, self.state, self.pending = peer, state, b""
        self.messages: list[bytes] = []

    async def message(self) -> bytes:
        while len(self.pending) < 2 or len(self.pending) < 2 + int.from_bytes(self.pending[:2], "big"):
            data = await self.peer.receive_some(1 << 20)
            assert data, "the connection ended"
            self.pending += data
        end = 2 + int.from_bytes(self.pending[:2], "big")
        message: bytes = self.state.decrypt(self.pending[2:end])
        self.pending = self.pending[end:]
        self.messages.append(message)
        return message

    async def payload(self, n: int) -> bytes:
        """``n`` bytes of DATA frames, each of which must be one whole Noise message."""
        got = b""
        while len(got) < n:
            message = await self.message()
            _, kind, _, _, length = struct.unpack(YAMUX_HEADER_FORMAT, message[:HEADER_SIZE])
            assert kind == TYPE_DATA and length == len(message) - HEADER_SIZE
            got += message[HEADER_SIZE:]
        return got


@asynccontextmanager
async def stream_pair(window: int) -> AsyncIterator[tuple[Any, Wire]]:
    """A guarded stream writing over a real Noise session on TCP, and the wire's other end."""
    sender, receiver = noise_pair()
    async with tcp_pair() as (raw, peer):
        session = secure_session(raw, sender, is_initiator=True)
        stream: Any = YamuxStream(1, Muxer(session), True)  # type: ignore[arg-type]
        stream.__class__ = FittedStream  # as the guard makes every stream of its connections
        stream.send_window = window
        yield stream, Wire(peer, receiver)


async def test_frames_are_the_librarys_one_noise_message_each() -> None:
    data = os.urandom(300000)
    with trio.fail_after(10):
        async with stream_pair(1 << 20) as (stream, wire), trio.open_nursery() as nursery:
            nursery.start_soon(stream.write, data)
            assert await wire.payload(len(data)) == data
    assert max(len(m) for m in wire.messages) == MAX_PLAINTEXT_LENGTH  # full frames fill a message
    assert len(wire.messages) == -(-len(data) // (MAX_PLAINTEXT_LENGTH - HEADER_SIZE))
    assert stream.send_window == (1 << 20) - len(data)


async def test_a_writer_out_of_window_is_woken_by_the_update_itself(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.5  # time moves only when every task has slept for 0.5 s
    data = os.urandom(200000)
    async with stream_pair(50000) as (stream, wire), trio.open_nursery() as nursery:
        nursery.start_soon(stream.write, data)
        first = await wire.payload(50000)
        await trio.testing.wait_all_tasks_blocked()
        started = trio.current_time()
        stream.send_window += 150000  # what the muxer does with the peer's WINDOW_UPDATE
        rest = await wire.payload(150000)
        assert trio.current_time() == started  # no timer ran: the update woke the writer
    assert first + rest == data


async def test_a_window_never_granted_fails_the_write_after_the_librarys_limit(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0
    async with stream_pair(1000) as (stream, wire):
        started = trio.current_time()
        with pytest.raises(MuxedStreamError, match="window update"):
            await stream.write(os.urandom(5000))
        assert trio.current_time() - started == pytest.approx(WINDOW_WAIT)
        assert await wire.payload(1000)  # what the window allowed went out whole


async def test_a_stream_closed_under_a_waiting_writer_fails_it_at_once(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.5
    async with stream_pair(0) as (stream, _wire):
        failed: list[BaseException] = []

        async def write() -> None:
            try:
                await stream.write(b"x" * 10)
            except MuxedStreamError as exc:
                failed.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            await trio.testing.wait_all_tasks_blocked()
            started = trio.current_time()
            stream.closed = True  # a reset from the peer, or the connection ending
        assert trio.current_time() == started and "closed" in str(failed[0])


async def test_a_cancelled_writer_leaves_the_session_usable(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.5
    async with stream_pair(70000) as (stream, wire):
        with trio.move_on_after(1):
            await stream.write(os.urandom(200000))  # cancelled while waiting for window
        stream.send_window = 1 << 20
        last = os.urandom(1000)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.write, last)
            assert len(await wire.payload(70000)) == 70000  # each message authenticates: no nonce lost
            assert await wire.payload(1000) == last


async def test_another_connection_is_written_the_librarys_way() -> None:
    frames: list[bytes] = []

    class Plain:
        async def write(self, frame: bytes) -> None:
            frames.append(frame)

    stream: Any = YamuxStream(1, Muxer(Plain()), True)  # type: ignore[arg-type]
    stream.__class__ = FittedStream
    stream.send_window = 1 << 20
    data = os.urandom(200000)
    await stream.write(data)
    assert all(len(frame) <= MAX_PLAINTEXT_LENGTH for frame in frames)
    assert len(frames[0]) == MAX_PLAINTEXT_LENGTH
    assert b"".join(frame[HEADER_SIZE:] for frame in frames) == data
