"""``ControlApi``: what the control socket answers, over a running :class:`~p2p_orchestrator.node.Node`.

Paths of the RPC table go to ``node.rpc`` as the node's admin
(:data:`~p2p_orchestrator.rpc.LOCAL_CALLER`); ``node/<name>`` paths are the
control methods of :mod:`p2p_orchestrator.control.methods`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import trio

from p2p_orchestrator._files import create_temporary, temporary_path
from p2p_orchestrator.callers import LOCAL_CALLER
from p2p_orchestrator.control._session import Emit, Streaming
from p2p_orchestrator.control.methods import CONTROL_METHODS, CONTROL_NAMESPACE
from p2p_orchestrator.errors import (
    ProtocolError,
    ServiceCallError,
    ServiceManagementError,
)
from p2p_orchestrator.events import Event
from p2p_orchestrator.rpc import Param, check_params
from p2p_orchestrator.wire import Request

if TYPE_CHECKING:
    from p2p_orchestrator.node import Node

__all__ = ["ControlApi"]

_INSTALL = "orchestrator/install_service"
_INSTALL_BY_PATH = {"archive_path": Param((str,)), "force_reinstall": Param((bool,), required=False)}
_MAX_LOG_LINES = 10_000
_MAX_EVENTS = 1000
_COPY_CHUNK = 1024 * 1024


class ControlApi:
    """Serves control-socket requests for one node; see the module docstring."""

    def __init__(self, node: Node, socket_path: Path) -> None:
        self._node = node
        self._socket_path = socket_path
        self._methods: dict[str, Callable[..., Awaitable[Any]]] = {
            "id": self._id,
            "peers": self._peers,
            "trust": self._trust,
            "call": self._call_method,
            "export": self._export,
            "logs": self._logs,
            "events": self._events,
        }

    async def handle(self, request: Request) -> Any:
        """The answer to one request: a result, or :class:`Streaming` for ``node/logs`` and ``node/events``."""
        namespace, name = request.method.split("/", 1)
        if namespace != CONTROL_NAMESPACE:
            return await self._call(request.method, request.params, None)
        spec = CONTROL_METHODS.get(name)
        method = self._methods.get(name)
        if spec is None or method is None:
            known = ", ".join(f"{CONTROL_NAMESPACE}/{m}" for m in CONTROL_METHODS)
            raise ServiceCallError(
                f"unknown control method {request.method!r}; known: {known}", code="unknown_method"
            )
        params = check_params(request.method, spec.params, request.params)
        return await method(**params)

    # -- calls ------------------------------------------------------------------------------

    async def _call(self, method: str, params: dict[str, Any], peer: str | None) -> Any:
        if peer is not None:  # a name of [peers], or a peer ID
            peer = self._node.orchestrator.config.resolve_peer(peer)
        if method == _INSTALL and "archive_path" in params:
            return await self._install_from_path(params, peer)
        return await self._node.rpc.call(method, params, caller=LOCAL_CALLER, peer=peer)

    async def _install_from_path(self, params: dict[str, Any], peer: str | None) -> Any:
        check_params(f"{_INSTALL} (control socket)", _INSTALL_BY_PATH, params)
        path = _absolute(params["archive_path"], "archive_path")
        force = params.get("force_reinstall", False)
        if peer is None:
            return await self._node.orchestrator.install_service(path, force_reinstall=force)
        return await self._node.orchestrator.install_on_peer(path, peer, force_reinstall=force)

    async def _call_method(
        self, method: str, params: dict[str, Any] | None = None, peer: str | None = None
    ) -> Any:
        return await self._call(method, params or {}, peer)

    # -- node/<name> ----------------------------------------------------------------------------

    async def _id(self) -> dict[str, Any]:
        node = self._node
        return {
            "peer_id": node.peer_id,
            "listen_addrs": node.listen_addrs,
            "home": str(node.orchestrator.home),
            "pid": os.getpid(),
            "control_socket": str(self._socket_path),
        }

    async def _peers(self) -> dict[str, Any]:
        peers = []
        for peer in self._node.peers():
            entry = asdict(peer)
            entry["addrs"] = list(peer.addrs)
            peers.append(entry)
        return {"peers": peers}

    async def _trust(self, peer_id: str, role: str | None) -> dict[str, Any]:
        previous = self._node.role_of(peer_id)
        await self._node.set_role(peer_id, role)
        current = self._node.role_of(peer_id)
        return {
            "peer_id": peer_id,
            "role": current.value if current is not None else None,
            "previous_role": previous.value if previous is not None else None,
        }

    async def _export(self, service_name: str, path: str, peer: str | None = None) -> dict[str, Any]:
        """Write the service's archive to ``path``: copied from the cache here, or fetched from ``peer``."""
        if peer is not None:
            peer = self._node.orchestrator.config.resolve_peer(peer)
        target = _absolute(path, "path")
        if peer is None:
            source = self._node.orchestrator.export_path(service_name)
            size, digest = await trio.to_thread.run_sync(_copy_atomically, source, target)
        else:
            data = await self._node.rpc.call(
                "orchestrator/export_service", {"service_name": service_name}, caller=LOCAL_CALLER, peer=peer
            )
            if not isinstance(data, bytes):
                raise ServiceManagementError(
                    f"export_service answered {type(data).__name__}, not bytes", code="bad_export"
                )
            size, digest = await trio.to_thread.run_sync(_copy_atomically, io.BytesIO(data), target)
        return {"service_name": service_name, "archive": str(target), "size": size, "archive_hash": digest}

    async def _logs(self, service_name: str, lines: int = 50, follow: bool = False) -> Streaming:
        lines = _bounded("lines", lines, _MAX_LOG_LINES)
        orchestrator = self._node.orchestrator
        if not follow:
            tail = await orchestrator.service_logs(service_name, lines)

            async def send_tail(emit: Emit) -> None:
                for line in tail:
                    await emit(line)

            return Streaming(send_tail)
        follower = orchestrator.follow_logs(service_name, lines=lines)

        async def send_new(emit: Emit) -> None:
            async with follower:
                async for line in follower:
                    await emit(line)

        return Streaming(send_new)

    async def _events(
        self, limit: int = 20, follow: bool = False, types: list[Any] | None = None
    ) -> Streaming:
        limit = _bounded("limit", limit, _MAX_EVENTS)
        if types is not None and not all(isinstance(t, str) for t in types):
            raise ServiceCallError("node/events: types must be a list of event type names", code="bad_params")
        wanted = frozenset(types) if types else None
        bus = self._node.orchestrator.events

        async def send(emit: Emit) -> None:
            if not follow:
                for event in bus.recent(limit):
                    if wanted is None or event.type in wanted:
                        await _emit_event(emit, event)
                return
            async with bus.subscribe() as subscription:
                for event in bus.recent(limit):  # no checkpoint since subscribing: no gap, no repeat
                    if wanted is None or event.type in wanted:
                        await _emit_event(emit, event)
                async for event in subscription:
                    if wanted is None or event.type in wanted:
                        await _emit_event(emit, event)

        return Streaming(send)


async def _emit_event(emit: Emit, event: Event) -> None:
    """Send one event; one whose data cannot travel as CBOR is sent with that data as text."""
    try:
        await emit(event.to_dict())
    except ProtocolError:
        await emit(event.to_portable_dict())


def _absolute(text: str, what: str) -> Path:
    path = Path(text)
    if not path.is_absolute():
        raise ServiceCallError(f"{what} must be an absolute path, got {text!r}", code="bad_params")
    return path


def _bounded(name: str, value: int, limit: int) -> int:
    if not 0 <= value <= limit:
        raise ServiceCallError(f"{name} must be between 0 and {limit}, got {value}", code="bad_params")
    return value


def _copy_atomically(source: Path | BinaryIO, target: Path) -> tuple[int, str]:
    """Copy ``source`` to ``target`` through a temporary file beside it; its size and sha256.

    A reader of ``target`` never sees half an archive, and an existing file is replaced only
    once the copy is complete.
    """
    temp = temporary_path(target)
    digest, size = hashlib.sha256(), 0
    try:
        with contextlib.ExitStack() as stack:
            reader = stack.enter_context(open(source, "rb")) if isinstance(source, Path) else source
            writer = stack.enter_context(os.fdopen(create_temporary(temp, 0o666), "wb"))
            while chunk := reader.read(_COPY_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
        os.replace(temp, target)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ServiceManagementError(f"cannot write {target}: {exc}", code="write_failed") from exc
    return size, digest.hexdigest()
