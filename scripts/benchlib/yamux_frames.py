"""CPU a node's Yamux connection spends per incoming DATA frame, against py-libp2p's own loop, in one run.

    .venv/bin/python scripts/benchlib/yamux_frames.py                 # 100-byte and 64 KiB frames
    .venv/bin/python scripts/benchlib/yamux_frames.py --rounds 5 --sizes 100 1000

One process: a guarded Yamux connection (what a node runs: ``node.host._yamux_guard``) on a real
Noise session over loopback TCP, taking DATA frames on one stream from a plain peer, and a reader
draining the stream.  The peer's Noise messages are encrypted before the clock starts, so the
figure is the receiving side's: the reads, the decryption, Yamux, the stream's reads and window
updates.  Each round measures the same frames twice, one after the other: with the guarded
connection delivering plain DATA frames itself (``node.host._yamux_incoming``), and with every
frame left to py-libp2p's receive loop (the baseline).  Prints the process's CPU time per frame
(microseconds, all threads) for both, the best of the rounds, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[:0] = [str(Path(__file__).resolve().parents[2])]

import trio
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.peer.id import ID
from libp2p.security.noise.io import NoiseTransportReadWriter
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.yamux.yamux import FLAG_SYN, TYPE_DATA, YAMUX_HEADER_FORMAT
from noise.connection import NoiseConnection  # type: ignore[import-untyped]

from p2p_orchestrator.node.host import _patches, _yamux_guard
from p2p_orchestrator.node.host._yamux_guard import Budget, BufferLimits

__all__ = ["measure"]

_MESSAGE = 65519
"""Most plaintext one Noise message carries."""


def _noise_pair() -> tuple[NoiseConnection, NoiseConnection]:
    sender = NoiseConnection.from_name(b"Noise_NN_25519_ChaChaPoly_SHA256")
    receiver = NoiseConnection.from_name(b"Noise_NN_25519_ChaChaPoly_SHA256")
    sender.set_as_initiator()
    receiver.set_as_responder()
    sender.start_handshake()
    receiver.start_handshake()
    receiver.read_message(sender.write_message())
    sender.read_message(receiver.write_message())
    return sender, receiver


def _frame(stream_id: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(YAMUX_HEADER_FORMAT, 0, TYPE_DATA, flags, stream_id, len(payload)) + payload


def _wire(state: NoiseConnection, plaintext: bytes) -> bytes:
    out = bytearray()
    for at in range(0, len(plaintext), _MESSAGE):
        ciphertext = state.encrypt(plaintext[at : at + _MESSAGE])
        out += len(ciphertext).to_bytes(2, "big") + ciphertext
    return bytes(out)


async def _one(size: int, frames: int, *, fast: bool) -> float:
    """CPU seconds per frame to take ``frames`` DATA frames of ``size`` bytes."""
    sender, receiver = _noise_pair()
    payload = os.urandom(size)
    opening = _wire(sender, _frame(1, b"x", FLAG_SYN))
    body = _wire(sender, b"".join(_frame(1, payload) for _ in range(frames)))
    guarded: Any = type(
        "GuardedYamux",
        (_yamux_guard._GuardedYamux,),
        {
            "_limits": BufferLimits(connection=1 << 30),
            "_is_known": staticmethod(lambda peer: True),
            "_strangers": Budget(1 << 30),
        },
    )
    route = _yamux_guard.route_yamux_reads
    if not fast:
        _yamux_guard.route_yamux_reads = lambda session, reader: None  # type: ignore[assignment]
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    try:
        async with trio.open_nursery() as nursery:
            client = await trio.open_tcp_stream("127.0.0.1", port)
            server = await listeners[0].accept()
            raw = RawConnection(TrioTCPStream(server), initiator=False)
            session = SecureSession(
                local_peer=None,  # type: ignore[arg-type]
                local_private_key=None,  # type: ignore[arg-type]
                remote_peer=None,  # type: ignore[arg-type]
                remote_permanent_pubkey=None,  # type: ignore[arg-type]
                is_initiator=False,
                conn=NoiseTransportReadWriter(raw, receiver),
            )
            muxer = guarded(session, ID(os.urandom(34)), is_initiator=False)
            muxer._guard()
            nursery.start_soon(muxer.start)
            await client.send_all(opening)
            stream = await muxer.accept_stream()
            muxer.streams[1].recv_window = 1 << 30  # the peer sends it all at once: a window that holds it
            total = 1 + size * frames
            started = time.process_time()
            nursery.start_soon(client.send_all, body)
            got = 0
            while got < total:
                got += len(await stream.read(1 << 20))
            spent = time.process_time() - started
            nursery.cancel_scope.cancel()
    finally:
        _yamux_guard.route_yamux_reads = route  # type: ignore[assignment]
        await listeners[0].aclose()
    return spent / frames


async def measure(sizes: list[int], rounds: int) -> None:
    """Print, per frame size, the best CPU per frame of ``rounds`` rounds, both ways, and the ratio."""
    _patches.install()
    for size in sizes:
        frames = max(200, min(20000, (64 << 20) // max(size, 1)))
        best = {True: float("inf"), False: float("inf")}
        for _ in range(rounds):
            for fast in (True, False):
                best[fast] = min(best[fast], await _one(size, frames, fast=fast))
        print(
            f"{size:>6}-byte frames ({frames}): node {best[True] * 1e6:7.1f} us/frame, "
            f"py-libp2p's loop {best[False] * 1e6:7.1f} us/frame, ratio {best[True] / best[False]:.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 65507])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trio.run(measure, args.sizes, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
