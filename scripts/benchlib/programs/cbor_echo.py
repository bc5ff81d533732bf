"""The process-isolation floor for a local call (the ``local_call`` baseline).

``python -m benchlib.programs.cbor_echo FD SERVICE_DIR``: brings the example service up, then
answers length-prefixed CBOR requests ``{"id", "method", "params"}`` arriving on the inherited
socket FD by calling the service's method, until the socket closes.  It first sends
``{"ready": pid}``.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import trio

from benchlib.framing import FrameReader, encode
from benchlib.programs._service import start_service


async def main(fd: int, directory: Path) -> None:
    service = await start_service(directory)
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(socket.socket(fileno=fd)))
    async with stream:
        await stream.send_all(encode({"ready": os.getpid()}))
        reader = FrameReader(stream)
        while (request := await reader.next()) is not None:
            _, _, method = request["method"].partition("/")
            result = await service.call_method(method, request["params"])
            await stream.send_all(encode({"id": request["id"], "result": result}))
    await service.cleanup()


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]), Path(sys.argv[2]))
