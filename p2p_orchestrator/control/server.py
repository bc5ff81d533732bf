"""The control socket server: ``home/control.sock``, the node's admin interface for the CLI.

:func:`serve_control` runs in the node's nursery for as long as the node runs::

    async with Node.open(home) as node, trio.open_nursery() as nursery:
        path = await nursery.start(serve_control, node)

Every connection is a :class:`~p2p_orchestrator.control._session.ControlSession`
(the RPC protocol's frames, ``hello`` first, CLI in role ``client``), served by
:class:`~p2p_orchestrator.control.api.ControlApi` as the node's admin: the
socket's mode (0600) is the access control, and a connection from one of the
node's own service processes (or what they started) is refused, since they run
as the same user and Landlock does not cover connecting to a socket.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from p2p_orchestrator.control._listener import ControlSocketFile, check_socket_path
from p2p_orchestrator.control._session import ControlSession
from p2p_orchestrator.control.api import ControlApi
from p2p_orchestrator.control.paths import socket_path
from p2p_orchestrator.wire import Hello

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from p2p_orchestrator.node import Node

__all__ = ["check_socket_path", "serve_control"]

log = logging.getLogger("p2p_orchestrator.control")


def _service_of_peer(stream: trio.SocketStream, node: Node) -> str | None:
    """The service whose process (or its child) is at the other end of ``stream``, if one is.

    The control socket is admin for whoever connects, and services run as the
    node's user: the kernel's ``SO_PEERCRED`` names the connecting process.
    """
    raw = stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _, _ = struct.unpack("3i", raw)
    return node.orchestrator.supervisor.serves_process(pid) if pid > 0 else None


async def serve_control(
    node: Node,
    *,
    served: Mapping[str, str | None] | None = None,
    task_status: TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control socket of ``node`` until cancelled; ``nursery.start`` returns its path.

    ``served``: the URLs the node serves besides this socket (``metrics``, ``dashboard``), which
    ``node/id`` reports; read at each call, so that servers started after this one are included.

    Raises :class:`~p2p_orchestrator.control.errors.ControlError` when the socket
    cannot be created (another node answers on it, or something else is there).
    """
    path = socket_path(node.orchestrator.home)
    api = ControlApi(node, path, served)
    hello = Hello("orchestrator", info={"peer_id": node.peer_id})
    socket_file = ControlSocketFile(path)
    sock = await trio.to_thread.run_sync(socket_file.open)
    try:
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))

        async def serve_one(stream: trio.SocketStream) -> None:
            service = _service_of_peer(stream, node)
            if service is not None:
                # Landlock cannot keep a confined service from connecting here: refuse it ourselves
                log.warning("Refused a control connection from a process of service %s", service)
                await stream.aclose()
                return
            await ControlSession(stream, api.handle, hello=hello).run()

        task_status.started(path)
        await trio.serve_listeners(serve_one, [listener])
    finally:
        socket_file.close()
