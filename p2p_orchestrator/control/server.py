"""The control socket server: ``home/control.sock``, the node's admin interface for the CLI.

:func:`serve_control` runs in the node's nursery for as long as the node runs::

    async with Node.open(home) as node, trio.open_nursery() as nursery:
        path = await nursery.start(serve_control, node)

Every connection is a :class:`~p2p_orchestrator.control._session.ControlSession`
(the RPC protocol's frames, ``hello`` first, CLI in role ``client``), served by
:class:`~p2p_orchestrator.control.api.ControlApi` as the node's admin: the
socket's mode (0600) is the access control.
"""

from __future__ import annotations

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


async def serve_control(node: Node, *, task_status: TaskStatus[Path] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the control socket of ``node`` until cancelled; ``nursery.start`` returns its path.

    Raises :class:`~p2p_orchestrator.control.errors.ControlError` when the socket
    cannot be created (another node answers on it, or something else is there).
    """
    path = socket_path(node.orchestrator.home)
    api = ControlApi(node, path)
    hello = Hello("orchestrator", info={"peer_id": node.peer_id})
    socket_file = ControlSocketFile(path)
    sock = await trio.to_thread.run_sync(socket_file.open)
    try:
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))

        async def serve_one(stream: trio.SocketStream) -> None:
            await ControlSession(stream, api.handle, hello=hello).run()

        task_status.started(path)
        await trio.serve_listeners(serve_one, [listener])
    finally:
        socket_file.close()
