"""The example service as a plain program, for supervisord to start (the install/restart baseline).

``python -m benchlib.programs.service_wrapper SERVICE_DIR READY_SOCKET``: imports the service's
``main.py``, awaits ``Run().initialize()``, then connects to the unix socket READY_SOCKET and
writes ``ready <pid>``.  On SIGTERM or SIGINT it awaits ``cleanup()`` and exits 0.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import trio

from benchlib.programs._service import start_service


async def _signal_ready(path: str) -> None:
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with sock:
        await sock.connect(path)
        await trio.SocketStream(sock).send_all(f"ready {os.getpid()}\n".encode())


async def main(directory: Path, ready_socket: str) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        service = await start_service(directory)
        await _signal_ready(ready_socket)
        async for _ in signals:
            break
        await service.cleanup()


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), sys.argv[2])
