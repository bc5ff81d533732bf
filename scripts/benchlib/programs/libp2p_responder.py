"""The far end of the raw py-libp2p baselines, in its own process.

``python -m benchlib.programs.libp2p_responder``: starts a host (see :mod:`benchlib.p2p_host`),
prints ``listening <multiaddr>/p2p/<peer id>`` and serves the echo and sink protocols until its
stdin closes.  Each handler contains its own failures (an exception escaping a handler would
take the whole host down): it reports them on stderr and resets the stream.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from benchlib.p2p_host import ECHO_PROTOCOL, ECHO_SIZE, LOOPBACK, SINK_PROTOCOL, make_host, read_exactly

_READ = 1 << 20


def _contained(handler: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    async def wrapper(stream: Any) -> None:
        try:
            await handler(stream)
        except Exception:
            print(f"libp2p_responder: {handler.__name__} failed:", file=sys.stderr)
            traceback.print_exc()
            await stream.reset()

    return wrapper


async def echo(stream: Any) -> None:
    """Read one request, write it back, close."""
    await stream.write(await read_exactly(stream, ECHO_SIZE))
    await stream.close()


async def sink(stream: Any) -> None:
    """Read a size, then that many bytes (discarded), then answer the count read."""
    size = int.from_bytes(await read_exactly(stream, 8), "big")
    received = 0
    while received < size:
        chunk = await stream.read(min(_READ, size - received))
        if not chunk:
            raise EOFError(f"stream ended after {received} of {size} bytes")
        received += len(chunk)
    await stream.write(received.to_bytes(8, "big"))
    await stream.close()


async def main() -> None:
    host = make_host()
    host.set_stream_handler(ECHO_PROTOCOL, _contained(echo))
    host.set_stream_handler(SINK_PROTOCOL, _contained(sink))
    async with host.run(listen_addrs=[LOOPBACK]):
        address = host.get_addrs()[0]
        print(f"listening {address}", flush=True)
        stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
        while await stdin.receive_some(4096):
            pass


if __name__ == "__main__":
    trio.run(main)
