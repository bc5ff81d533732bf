"""``ControlClient``: a blocking client of a node's control socket (stdlib ``socket`` + the sans-IO codec).

It imports neither trio nor libp2p, so a command-line call costs little more
than the interpreter's start::

    with ControlClient(home) as client:
        services = client.call("orchestrator/list_services")
        answer = client.call("node/call", {"method": "hello/greet", "params": {}, "peer": peer_id})
        for line in client.stream("node/logs", {"service_name": "hello", "follow": True}):
            print(line)

Errors are the node's, rebuilt as their own class
(:func:`~p2p_orchestrator.errors.error_from_wire`); a home where no node
answers raises :class:`~p2p_orchestrator.control.errors.NodeNotRunning`.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from p2p_orchestrator.control.errors import ControlError, NodeNotRunning
from p2p_orchestrator.control.paths import socket_address, socket_path
from p2p_orchestrator.wire import (
    CLOSED,
    NEED_DATA,
    Cancel,
    ErrorReply,
    Hello,
    Message,
    Request,
    Response,
    RpcConnection,
    StreamItem,
)

__all__ = ["ControlClient"]

_RECEIVE_SIZE = 65536


class ControlClient:
    """One connection to the node of ``home``; see the module docstring.  Not thread-safe."""

    def __init__(self, home: Path, *, connect_timeout: float = 5.0) -> None:
        self.home = home
        self.path = socket_path(home)
        self._connect_timeout = connect_timeout
        self._sock: socket.socket | None = None
        self._conn = RpcConnection("client", exchange_hello=True)
        self.node_info: dict[str, Any] = {}
        """What the node said of itself in its ``hello`` (its ``peer_id``)."""

    def __enter__(self) -> ControlClient:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Connect and exchange ``hello``; :class:`NodeNotRunning` if nobody answers."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self._connect_timeout)
        try:
            with socket_address(self.path) as address:
                sock.connect(address)
            self._sock = sock
            self._send(Hello("cli"))
            hello = self._next()  # the codec refuses anything but a hello first
        except (FileNotFoundError, ConnectionRefusedError):
            self.close(sock)
            raise NodeNotRunning(self.home) from None
        except TimeoutError:
            self.close(sock)
            raise ControlError(
                f"the node of {self.home} accepted the connection but did not answer within "
                f"{self._connect_timeout:g} s",
                code="node_not_answering",
            ) from None
        except PermissionError as exc:
            self.close(sock)
            raise ControlError(
                f"cannot use {self.path}: {exc.strerror} (is the node running as another user?)",
                code="control_permission_denied",
            ) from None
        except BaseException:
            self.close(sock)
            raise
        sock.settimeout(None)
        self.node_info = dict(hello.info) if isinstance(hello, Hello) else {}

    def close(self, sock: socket.socket | None = None) -> None:
        """Close the connection (the node cancels whatever it still runs for it)."""
        sock = sock or self._sock
        self._sock = None
        if sock is not None:
            sock.close()

    # -- calls ---------------------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Call ``method`` and return its result (the node's error is raised as is)."""
        msg = self._next_about(self._request(method, params))
        if isinstance(msg, Response):
            return msg.result
        if isinstance(msg, ErrorReply):
            raise msg.error
        raise ControlError(f"{method} answered with a stream; use stream()", code="unexpected_stream")

    def stream(self, method: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        """The items of a streamed answer, as they arrive (closing the iterator stops it)."""
        rid = self._request(method, params)
        finished = False
        try:
            while True:
                msg = self._next_about(rid)
                if isinstance(msg, StreamItem):
                    yield msg.item
                    continue
                finished = True
                if isinstance(msg, ErrorReply):
                    raise msg.error
                if isinstance(msg, Response):
                    yield msg.result
                return
        finally:
            if not finished and self._sock is not None:
                self._send(Cancel(rid))

    def call_watching(
        self,
        method: str,
        params: dict[str, Any],
        *,
        watch: tuple[str, dict[str, Any]],
        on_item: Callable[[Any], None],
    ) -> Any:
        """Call ``method`` while a streaming ``watch`` call feeds ``on_item``; the call's result.

        Both requests share this connection: e.g. a distribution with its
        ``node/events`` progress.  The watch is cancelled when the call ends.
        """
        watch_id = self._request(*watch)
        rid = self._request(method, params)
        watching = True
        try:
            while True:
                msg = self._next()
                msg_id = getattr(msg, "id", None)
                if msg_id == watch_id:
                    if isinstance(msg, StreamItem):
                        on_item(msg.item)
                    else:
                        watching = False  # the watch ended early (or failed): the call goes on
                elif msg_id == rid:
                    if isinstance(msg, ErrorReply):
                        raise msg.error
                    if isinstance(msg, Response):
                        return msg.result
        finally:
            if watching and self._sock is not None:
                self._send(Cancel(watch_id))

    # -- the codec -----------------------------------------------------------------------------

    def _request(self, method: str, params: dict[str, Any] | None) -> int:
        rid = self._conn.next_request_id()
        self._send(Request(rid, method, params or {}))
        return rid

    def _send(self, msg: Message) -> None:
        data = self._conn.send(msg)
        if data:
            self._sendall(data)

    def _sendall(self, data: bytes) -> None:
        if self._sock is None:
            raise ControlError("the connection to the node is closed", code="channel_closed")
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise ControlError(f"the node closed the connection: {exc}", code="channel_closed") from exc

    def _next_about(self, rid: int) -> Message:
        """The next message about request ``rid`` (messages about other requests are dropped)."""
        while True:
            msg = self._next()
            if getattr(msg, "id", None) == rid:
                return msg

    def _next(self) -> Message:
        """The next message from the node; raises its connection-level error or ``channel_closed``."""
        while True:
            try:
                event = self._conn.next_event()
            finally:
                if out := self._conn.data_to_send():
                    self._sendall(out)
            if event is NEED_DATA:
                self._conn.receive_data(self._receive())
            elif event is CLOSED:
                raise ControlError("the node closed the connection (is it stopping?)", code="channel_closed")
            elif isinstance(event, ErrorReply) and event.id is None:
                raise event.error
            else:
                return event

    def _receive(self) -> bytes:
        if self._sock is None:
            raise ControlError("the connection to the node is closed", code="channel_closed")
        try:
            return self._sock.recv(_RECEIVE_SIZE)
        except ConnectionResetError:
            return b""
