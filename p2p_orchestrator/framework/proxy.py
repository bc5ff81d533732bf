"""The proxy a service holds (``self.proxy``): calls to other services, here or on other nodes.

Every idiom in use among P2P Core services and this project's works::

    await self.proxy.call("other/method", {"x": 1})                 # this project's
    await self.proxy.call("other/method", {"x": 1}, peer=PEER_ID)   # ... on another node
    await self.proxy.call_method("orchestrator/list_services", {})  # the seed's
    await self.proxy.other.method(x=1)                              # P2P Core's attribute style
    await self.proxy.other.coordinator.method(x=1)                  # ... on the peer named "coordinator"
    await self.proxy.other[PEER_ID].method(x=1)                     # ... on a peer by its ID
    await self.proxy.call_remote_method(node_id=PEER_ID, method_path="other/method", params={})

A peer is named by its peer ID or by a name of the node's ``[peers]`` table
(``coordinator = "12D3KooW..."``).  In the attribute style,
``self.proxy.<service>.<word>`` is a peer when ``<word>`` is one of those names
or looks like a peer ID (``local`` means this node), and a method otherwise.
Methods take keyword arguments only, as in P2P Core.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

__all__ = ["NodeProxy", "ServiceProxy", "Transport", "looks_like_peer_id"]

Transport = Callable[[str, dict[str, Any], str | None], Awaitable[Any]]
"""How a call leaves the service: ``(method path, params, peer or None) -> result``."""

_PEER_ID = re.compile(r"(12D3KooW|Qm|16Uiu2)[1-9A-HJ-NP-Za-km-z]{30,100}")
_LOCAL = "local"


def looks_like_peer_id(word: str) -> bool:
    """Whether ``word`` has the shape of a libp2p peer ID (base58 multihash)."""
    return _PEER_ID.fullmatch(word) is not None


class ServiceProxy(Protocol):
    """What every proxy offers: ``await proxy.call("svc/method", {...}, peer=None)``."""

    async def call(
        self, method: str, params: Mapping[str, Any] | None = None, *, peer: str | None = None
    ) -> Any:
        """Call ``method`` (``"<service>/<method>"`` or ``"orchestrator/<method>"``)."""
        ...


class NodeProxy:
    """The proxy a service gets from its node; see the module docstring."""

    def __init__(self, transport: Transport, peer_names: frozenset[str] = frozenset()) -> None:
        self._transport = transport
        self._peer_names = peer_names

    async def call(
        self, method: str, params: Mapping[str, Any] | None = None, *, peer: str | None = None
    ) -> Any:
        """Call ``method`` on this node, or on ``peer`` (a peer ID or a name of ``[peers]``)."""
        return await self._transport(method, dict(params or {}), None if peer == _LOCAL else peer)

    async def call_method(
        self, method: str, params: Mapping[str, Any] | None = None, *, peer: str | None = None
    ) -> Any:
        """The seed's name for :meth:`call`."""
        return await self.call(method, params, peer=peer)

    async def call_remote_method(
        self, node_id: str, method_path: str, params: Mapping[str, Any] | None = None
    ) -> Any:
        """Call ``method_path`` on the node ``node_id`` (P2P Core's orchestrator idiom)."""
        return await self.call(method_path, params, peer=node_id)

    def is_peer(self, word: str) -> bool:
        """Whether ``word`` after a service name names a peer rather than a method."""
        return word == _LOCAL or word in self._peer_names or looks_like_peer_id(word)

    def __getattr__(self, service: str) -> ServiceHandle:
        if service.startswith("_"):
            raise AttributeError(service)
        return ServiceHandle(self, service)

    def __getitem__(self, service: str) -> ServiceHandle:
        return ServiceHandle(self, service)


class ServiceHandle:
    """``proxy.<service>``: its methods on this node, or a peer to call them on."""

    def __init__(self, proxy: NodeProxy, service: str) -> None:
        self._proxy = proxy
        self._service = service

    def __getattr__(self, word: str) -> Any:
        if word.startswith("_"):
            raise AttributeError(word)
        if self._proxy.is_peer(word):
            return PeerHandle(self._proxy, self._service, word)
        return MethodCaller(self._proxy, f"{self._service}/{word}", None)

    def __getitem__(self, peer: str) -> PeerHandle:
        return PeerHandle(self._proxy, self._service, peer)

    def __repr__(self) -> str:
        return f"<proxy of service {self._service!r}>"


class PeerHandle:
    """``proxy.<service>.<peer>``: the service's methods on that peer."""

    def __init__(self, proxy: NodeProxy, service: str, peer: str) -> None:
        self._proxy = proxy
        self._service = service
        self._peer = peer

    def __getattr__(self, method: str) -> MethodCaller:
        if method.startswith("_"):
            raise AttributeError(method)
        return MethodCaller(self._proxy, f"{self._service}/{method}", self._peer)

    def __repr__(self) -> str:
        return f"<proxy of service {self._service!r} on {self._peer}>"


class MethodCaller:
    """One remote method: ``await caller(**params)``."""

    def __init__(self, proxy: NodeProxy, path: str, peer: str | None) -> None:
        self._proxy = proxy
        self._path = path
        self._peer = peer

    async def __call__(self, *args: Any, **params: Any) -> Any:
        if args:
            raise TypeError(f"{self._path}: pass parameters by name (got {len(args)} positional)")
        return await self._proxy.call(self._path, params, peer=self._peer)

    def __repr__(self) -> str:
        where = f" on {self._peer}" if self._peer else ""
        return f"<proxy method {self._path}{where}>"
