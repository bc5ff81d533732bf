"""``RemoteProxy``: the spec's proxy client, calling one other node by its peer ID.

::

    proxy = node.proxy("12D3KooW...")
    services = await proxy.call_method("orchestrator/list_services", {})
    answer = await proxy.call_method("example_service/greet", {"name": "Ada"}, time_limit=5)

A call raises exactly what the remote side raised, rebuilt as the same class
(``ServiceInstallationError``, ``PermissionDenied``...; see
:func:`~p2p_orchestrator.errors.error_from_wire`), or a local
``ServiceCallError`` whose ``code`` says what went wrong on the way:

================  ================================================================
``bad_method``    the method path is not ``"<namespace>/<method>"``
``bad_params``    ``params`` is not a map with text keys
``bad_peer_id``   the peer ID is malformed
``peer_unreachable``  no known address for the peer, or dialling it failed
``call_timeout``  no answer within the time limit (the remote call is cancelled)
``channel_closed``  the stream ended after the request was sent (it may have run)
``unencodable_params``  a parameter cannot travel (e.g. a ``datetime``, a frame over 4 MiB)
================  ================================================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["RemoteCall", "RemoteProxy"]

RemoteCall = Callable[[str, str, Mapping[str, Any] | None, float | None], Awaitable[Any]]
"""``(peer_id, method, params, time_limit) -> result``: the node's remote call."""


class RemoteProxy:
    """Calls to one peer; see the module docstring.  Cheap: make one per use if you like."""

    def __init__(self, call: RemoteCall, peer_id: str) -> None:
        self._call = call
        self.peer_id = peer_id

    async def call_method(
        self, method: str, params: Mapping[str, Any] | None = None, *, time_limit: float | None = None
    ) -> Any:
        """Call ``method`` on the peer, waiting at most ``time_limit`` seconds (default: ``[node] call_timeout``)."""
        return await self._call(self.peer_id, method, params, time_limit)

    async def call(
        self, method: str, params: Mapping[str, Any] | None = None, *, time_limit: float | None = None
    ) -> Any:
        """The same as :meth:`call_method` (the name services' own proxy uses)."""
        return await self._call(self.peer_id, method, params, time_limit)

    def __repr__(self) -> str:
        return f"RemoteProxy({self.peer_id!r})"
