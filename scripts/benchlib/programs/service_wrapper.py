"""The example service as a plain program, for supervisord to start (the install/restart baseline).

``python -m benchlib.programs.service_wrapper SERVICE_DIR READY_SOCKET [asyncio|trio]``: imports the
service's ``main.py``, awaits ``Run().initialize()`` on that event loop (asyncio by default, as the
orchestrator runs a service whose manifest names none), then connects to the unix socket
READY_SOCKET and writes ``ready <pid>``.  On SIGTERM or SIGINT it awaits ``cleanup()`` and exits 0.
On asyncio it never imports trio, as the orchestrator's runner does not.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

from benchlib.programs._service import start_service


async def main_trio(directory: Path, ready_socket: str) -> None:
    import trio

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        service = await start_service(directory)
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with sock:
            await sock.connect(ready_socket)
            await trio.SocketStream(sock).send_all(f"ready {os.getpid()}\n".encode())
        async for _ in signals:
            break
        await service.cleanup()


async def main_asyncio(directory: Path, ready_socket: str) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    service = await start_service(directory)
    _, writer = await asyncio.open_unix_connection(ready_socket)
    writer.write(f"ready {os.getpid()}\n".encode())
    await writer.drain()
    writer.close()
    await stop.wait()
    await service.cleanup()


if __name__ == "__main__":
    where, ready = Path(sys.argv[1]), sys.argv[2]
    if (sys.argv[3] if len(sys.argv) > 3 else "asyncio") == "trio":
        import trio

        trio.run(main_trio, where, ready)
    else:
        import asyncio

        asyncio.run(main_asyncio(where, ready))
