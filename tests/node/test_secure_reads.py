"""Noise transport messages read ahead (``node._secure_reads``): the same bytes and errors as before."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from libp2p.io.exceptions import IncompleteReadError
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.security.noise.io import NoiseTransportReadWriter
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.yamux import yamux as yamux_module
from noise.connection import NoiseConnection  # type: ignore[import-untyped]
from noise.exceptions import NoiseInvalidMessage  # type: ignore[import-untyped]

from p2p_orchestrator.node.host import _secure_reads
from tests.node.test_frame_reads import lowat, tcp_pair


def noise_pair() -> tuple[NoiseConnection, NoiseConnection]:
    """Two Noise states after a handshake: the sender's, the receiver's."""
    sender = NoiseConnection.from_name(b"Noise_NN_25519_ChaChaPoly_SHA256")
    receiver = NoiseConnection.from_name(b"Noise_NN_25519_ChaChaPoly_SHA256")
    sender.set_as_initiator()
    receiver.set_as_responder()
    sender.start_handshake()
    receiver.start_handshake()
    receiver.read_message(sender.write_message())
    sender.read_message(receiver.write_message())
    assert sender.handshake_finished and receiver.handshake_finished
    return sender, receiver


def framed(state: NoiseConnection, plaintext: bytes) -> bytes:
    ciphertext = state.encrypt(plaintext)
    return len(ciphertext).to_bytes(2, "big") + ciphertext


def secure_session(raw: RawConnection, state: NoiseConnection, *, is_initiator: bool) -> SecureSession:
    """A py-libp2p ``SecureSession`` over ``raw`` with the Noise ``state`` of a finished handshake."""
    key: Any = None  # neither side's keys are used once the handshake is done
    return SecureSession(
        local_peer=key,
        local_private_key=key,
        remote_peer=key,
        remote_permanent_pubkey=key,
        is_initiator=is_initiator,
        conn=NoiseTransportReadWriter(raw, state),
    )


@asynccontextmanager
async def session_pair() -> AsyncIterator[
    tuple[SecureSession, NoiseConnection, trio.SocketStream, RawConnection]
]:
    """A receiving ``SecureSession`` over TCP, the sender's Noise state, and the plain other end."""
    _secure_reads.install()
    _secure_reads.install()  # idempotent
    sender, receiver = noise_pair()
    async with tcp_pair() as (raw, peer):
        yield secure_session(raw, receiver, is_initiator=False), sender, peer, raw


async def test_messages_are_read_in_any_pieces_and_split_across_reads() -> None:
    messages = [os.urandom(size) for size in (12, 65507, 65519, 17, 1, 40000, 65519, 300)]
    stream = b"".join(messages)
    with trio.fail_after(10):
        async with session_pair() as (session, sender, peer, raw):
            wire = b"".join(framed(sender, message) for message in messages)

            async def send() -> None:
                # cut the wire at odd places: inside lengths, inside messages, several at once
                for start, end in ((0, 1), (1, 70000), (70000, 70001), (70001, 200000), (200000, len(wire))):
                    await peer.send_all(wire[start:end])
                    await trio.sleep(0.01)

            got = bytearray()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                for size in (5, 7, 65507, 1, 65519, 18, 40000, 65000):
                    got += await session.read(size)
                got += await session.read(len(stream) - len(got))
            assert got == stream
            assert lowat(raw) == 1


async def test_yamux_reads_get_the_same_bytes_and_views_of_whole_messages() -> None:
    with trio.fail_after(10):
        async with session_pair() as (session, sender, peer, _raw):
            header, body, tail = os.urandom(12), os.urandom(65507), os.urandom(5)
            read_exactly: Any = yamux_module.read_exactly
            await peer.send_all(framed(sender, header + body))
            first, second = await read_exactly(session, 12), await read_exactly(session, 65507)
            # views of the decrypted message: its bytes are not copied
            assert isinstance(first, memoryview) and isinstance(second, memoryview)
            assert first == header and second == body
            await peer.send_all(framed(sender, header + body[:100]) + framed(sender, body[100:] + tail))
            assert await read_exactly(session, 12) == header
            assert bytes(await read_exactly(session, 65507)) == body  # across two messages: joined
            assert await read_exactly(session, 5) == tail


async def test_bytes_read_ahead_are_taken_without_waiting() -> None:
    with trio.fail_after(10):
        async with session_pair() as (session, sender, peer, _raw):
            header, body, tail = os.urandom(12), os.urandom(65536 - 12), os.urandom(300)
            wire = header + body  # a 64 KiB Yamux frame: more than one Noise message holds
            await peer.send_all(framed(sender, wire[:65519]) + framed(sender, wire[65519:] + tail))
            await peer.send_all(framed(sender, b"abc"))
            await trio.sleep(0.2)  # all of it in the socket: the first read takes it all
            assert _secure_reads.take_ready(session, 12) is None  # nothing read ahead yet
            assert bytes(await session.read(12)) == header
            got = _secure_reads.take_ready(session, len(body))  # the rest and the next message
            assert got is not None and bytes(got) == body
            assert _secure_reads.take_ready(session, 300) == tail
            assert _secure_reads.take_ready(session, 5) is None  # "abc" is too short: kept
            assert await session.read(3) == b"abc"


async def test_the_end_of_the_connection_is_an_incomplete_read() -> None:
    with trio.fail_after(10):
        async with session_pair() as (session, sender, peer, _raw):
            message = framed(sender, b"x" * 5000)
            await peer.send_all(message[:3000])
            await peer.aclose()
            with pytest.raises(IncompleteReadError) as cut:
                await session.read(5000)
            assert cut.value.expected_bytes == 5000 + 16 and not cut.value.is_clean_close
    with trio.fail_after(10):
        async with session_pair() as (session, _sender, peer, _raw):
            await peer.aclose()
            with pytest.raises(IncompleteReadError) as clean:
                await session.read(12)
            assert clean.value.is_clean_close


async def test_a_forged_message_fails_authentication() -> None:
    with trio.fail_after(10):
        async with session_pair() as (session, sender, peer, _raw):
            message = bytearray(framed(sender, b"hello, world"))
            message[5] ^= 1
            await peer.send_all(bytes(message))
            with pytest.raises(NoiseInvalidMessage):
                await session.read(12)


def test_the_socket_low_water_mark_is_reachable() -> None:
    # the read-ahead marks TCP sockets as _frame_reads does; the option must exist here
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 2)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 2
