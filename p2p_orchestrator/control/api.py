"""``ControlApi``: what the control socket answers, over a running :class:`~p2p_orchestrator.node.Node`.

Paths of the RPC table go to ``node.rpc`` as the node's admin
(:data:`~p2p_orchestrator.rpc.LOCAL_CALLER`); ``node/<name>`` paths are the
control socket's own methods, the :func:`~p2p_orchestrator.rpc.api_method` methods of
:class:`ControlApi` (their parameters read from their signatures, like the
orchestrator's), which the peer protocol never serves (a peer's ``node/...`` call
goes to the RPC table, where ``node`` is just a service name):

==================  =================================================  ==========================
method              params                                             answer
==================  =================================================  ==========================
``node/id``         none                                               ``{peer_id, listen_addrs,
                                                                       home, pid, control_socket}``
``node/peers``      none                                               ``{peers: [{peer_id,
                                                                       connected, addrs, pinned,
                                                                       role}]}``
``node/trust``      ``peer_id``, ``role`` (``admin``, ``deployer``,    ``{peer_id, role,
                    ``reader`` or null to remove it)                   previous_role}``
``node/call``       ``method``, ``params`` (map), ``peer`` (peer ID,   the method's result
                    optional)
``node/export``     ``service_name``, ``path`` (absolute),             ``{service_name, archive,
                    ``peer`` (optional)                                size, archive_hash}``
``node/publish``    ``archive_path``, ``release_path`` (absolute)      install result, ``announced``
``node/rollout``    ``targets``, ``archive_path`` (absolute) or        the rollout's account
                    ``service_name``, ``canary``, ``wave``,
                    ``health_wait``, ``max_failures``
``node/logs``       ``service_name``, ``lines`` (default 50),          a stream of lines
                    ``follow`` (default false)
``node/events``     ``limit`` (recent events first, default 20),       a stream of events
                    ``follow`` (default false), ``types`` (list)
==================  =================================================  ==========================

One addition to an RPC method, on this socket only: ``orchestrator/install_service``
(directly or through ``node/call``) takes ``archive_path`` (an absolute path the
node reads) instead of ``archive_data``, so the CLI never copies a large archive
through the socket.  The node streams the file into its store when it installs
locally, and reads it into the call when it forwards it to a peer.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import trio

from p2p_orchestrator._files import create_temporary, temporary_path
from p2p_orchestrator.callers import LOCAL_CALLER, Permission
from p2p_orchestrator.control._session import Emit, Streaming
from p2p_orchestrator.errors import (
    ProtocolError,
    ServiceCallError,
    ServiceManagementError,
)
from p2p_orchestrator.events import Event
from p2p_orchestrator.rpc import Param, api_method, check_params, method_table
from p2p_orchestrator.wire import Request

if TYPE_CHECKING:
    from p2p_orchestrator.node import Node

__all__ = ["CONTROL_NAMESPACE", "ControlApi"]

CONTROL_NAMESPACE = "node"
"""The prefix of the control socket's own methods: ``node/<name>``."""

_CONTROL = api_method(Permission.ADMIN)
"""A ``node/<name>`` method: the local operator's alone (only the socket's mode guards it)."""

_INSTALL = "orchestrator/install_service"
_INSTALL_BY_PATH = {
    "archive_path": Param((str,)),
    "release_path": Param((str,), required=False),
    "force_reinstall": Param((bool,), required=False),
    "allow_unsigned": Param((bool,), required=False),
    "allow_rollback": Param((bool,), required=False),
}
_MAX_LOG_LINES = 10_000
_MAX_EVENTS = 1000
_COPY_CHUNK = 1024 * 1024


class ControlApi:
    """Serves control-socket requests for one node; see the module docstring."""

    def __init__(self, node: Node, socket_path: Path, served: Mapping[str, str | None] | None = None) -> None:
        self._node = node
        self._socket_path = socket_path
        self._served: Mapping[str, str | None] = served if served is not None else {}

    async def handle(self, request: Request) -> Any:
        """The answer to one request: a result, or :class:`Streaming` for ``node/logs`` and ``node/events``."""
        namespace, name = request.method.split("/", 1)
        if namespace != CONTROL_NAMESPACE:
            return await self._forward(request.method, request.params, None)
        spec = _METHODS.get(name)
        if spec is None:
            known = ", ".join(f"{CONTROL_NAMESPACE}/{m}" for m in _METHODS)
            raise ServiceCallError(
                f"unknown control method {request.method!r}; known: {known}", code="unknown_method"
            )
        params = check_params(request.method, spec.params, request.params)
        method: Callable[..., Awaitable[Any]] = getattr(self, name)
        return await method(**params)

    # -- calls ------------------------------------------------------------------------------

    async def _forward(self, method: str, params: dict[str, Any], peer: str | None) -> Any:
        if peer is not None:  # a name of [peers], or a peer ID
            peer = self._node.orchestrator.config.resolve_peer(peer)
        if method == _INSTALL and "archive_path" in params:
            return await self._install_from_path(params, peer)
        return await self._node.rpc.call(method, params, caller=LOCAL_CALLER, peer=peer)

    async def _install_from_path(self, params: dict[str, Any], peer: str | None) -> Any:
        check_params(f"{_INSTALL} (control socket)", _INSTALL_BY_PATH, params)
        path = _absolute(params["archive_path"], "archive_path")
        release = _absolute(params["release_path"], "release_path") if "release_path" in params else None
        force = params.get("force_reinstall", False)
        orchestrator = self._node.orchestrator
        if peer is None:
            return await orchestrator.install_service(
                path,
                force_reinstall=force,
                release=release,
                allow_unsigned=params.get("allow_unsigned", False),
                allow_rollback=params.get("allow_rollback", False),
            )
        if params.get("allow_unsigned") or params.get("allow_rollback"):
            raise ServiceCallError(
                "allow_unsigned and allow_rollback act on this node only; the node at --peer decides by its own "
                "[security] and [publishers]",
                code="bad_params",
            )
        return await orchestrator.install_on_peer(path, peer, force_reinstall=force, release=release)

    @_CONTROL
    async def call(self, method: str, params: dict[str, Any] | None = None, peer: str | None = None) -> Any:
        """``node/call``: a method of the RPC table, here or on ``peer``."""
        return await self._forward(method, params or {}, peer)

    # -- node/<name> ----------------------------------------------------------------------------

    @_CONTROL
    async def id(self) -> dict[str, Any]:
        """``node/id``: who and where this node is, and the URLs it serves (``metrics``, ``dashboard``)."""
        node = self._node
        return {
            "peer_id": node.peer_id,
            "listen_addrs": node.listen_addrs,
            "home": str(node.orchestrator.home),
            "pid": os.getpid(),
            "control_socket": str(self._socket_path),
            **self._served,
        }

    @_CONTROL
    async def peers(self) -> dict[str, Any]:
        """``node/peers``: the peers this node knows."""
        peers = []
        for peer in self._node.peers():
            entry = asdict(peer)
            entry["addrs"] = list(peer.addrs)
            peers.append(entry)
        return {"peers": peers}

    @_CONTROL
    async def trust(self, peer_id: str, role: str | None) -> dict[str, Any]:
        """``node/trust``: give ``peer_id`` a role here, or take it away (``None``)."""
        previous = self._node.role_of(peer_id)
        await self._node.set_role(peer_id, role)
        current = self._node.role_of(peer_id)
        return {
            "peer_id": peer_id,
            "role": current.value if current is not None else None,
            "previous_role": previous.value if previous is not None else None,
        }

    @_CONTROL
    async def export(self, service_name: str, path: str, peer: str | None = None) -> dict[str, Any]:
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

    @_CONTROL
    async def publish(self, archive_path: str, release_path: str) -> dict[str, Any]:
        """``node/publish``: install a signed release here, then announce it to the connected peers."""
        archive = _absolute(archive_path, "archive_path")
        release = _absolute(release_path, "release_path")
        return await self._node.orchestrator.publish_release(archive, release)

    @_CONTROL
    async def rollout(
        self,
        targets: list[str],
        *,
        archive_path: str | None = None,
        service_name: str | None = None,
        canary: int = 1,
        wave: int = 1,
        health_wait: float = 30.0,
        max_failures: int = 0,
    ) -> dict[str, Any]:
        """``node/rollout``: a rollout of an archive file here (its ``.release`` beside it) or of a service."""
        orchestrator = self._node.orchestrator
        options: dict[str, Any] = {
            "canary": canary,
            "wave": wave,
            "health_wait": health_wait,
            "max_failures": max_failures,
        }
        if archive_path is not None:
            return await orchestrator.rollout_archive(
                _absolute(archive_path, "archive_path"), targets, **options
            )
        return await orchestrator.rollout_service(targets, service_name=service_name, **options)

    @_CONTROL
    async def logs(self, service_name: str, lines: int = 50, follow: bool = False) -> Streaming:
        """``node/logs``: the service's last ``lines`` lines, then (``follow``) each new one."""
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

    @_CONTROL
    async def events(
        self, limit: int = 20, follow: bool = False, types: list[Any] | None = None
    ) -> Streaming:
        """``node/events``: the last ``limit`` events, then (``follow``) each new one."""
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


_METHODS = method_table(ControlApi)
