"""The RPC table: method paths, their parameters and who may call them.

``"orchestrator/<method>"`` paths reach the :class:`~p2p_orchestrator.Orchestrator`
API; ``"<service>/<method>"`` paths reach a running service's exposed methods.
The same table serves local calls (``orch.rpc.call``), the node's control socket
and remote peers: only the caller's permissions differ.  Parameters are checked
here, before anything runs, so every entry point refuses bad input the same way.

The table is not written by hand: an API method joins it with :func:`api_method`
(its permission), and :func:`method_table` reads its parameters and their types
from the method's own signature::

    @api_method(Permission.DEPLOY)
    async def stop_service(self, service_name: str, force: bool = False) -> dict[str, Any]: ...
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections import abc
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from p2p_orchestrator._patterns import METHOD_PATH
from p2p_orchestrator.callers import LOCAL_CALLER, Caller, Permission
from p2p_orchestrator.config import OrchestratorConfig
from p2p_orchestrator.errors import PermissionDenied, ServiceCallError

__all__ = [
    "LOCAL_CALLER",
    "Caller",
    "MethodSpec",
    "Param",
    "Permission",
    "Rpc",
    "RpcApi",
    "api_method",
    "check_params",
    "method_table",
]


@dataclass(frozen=True)
class Param:
    """One parameter of a method: the message types it accepts, and whether it must be given."""

    types: tuple[type, ...]
    required: bool = True


@dataclass(frozen=True)
class MethodSpec:
    """One orchestrator method as the RPC table exposes it."""

    name: str
    permission: Permission
    params: Mapping[str, Param]
    local_only: frozenset[str] = frozenset()
    """Flags only a caller on this node may set."""
    takes_caller: bool = False
    """The method is given the :class:`Caller` as its keyword ``caller`` (not a parameter of the call)."""


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_MARK = "__rpc_method__"


@dataclass(frozen=True)
class _Mark:
    permission: Permission
    wire: Mapping[str, tuple[type, ...]]
    local_only: frozenset[str]
    takes_caller: bool


def api_method(
    permission: Permission,
    *,
    wire: Mapping[str, type | tuple[type, ...]] | None = None,
    local_only: tuple[str, ...] = (),
    takes_caller: bool = False,
) -> Callable[[F], F]:
    """Put an ``async def`` method of the API in the RPC table, callable with ``permission``.

    Its parameters are read from its signature (:func:`method_table`), so they are written
    once.  ``wire`` narrows a parameter's accepted types for calls that arrive as messages
    (``install_service`` takes a path from local Python callers, only bytes over the wire).
    ``local_only`` names flags only this node's operator may set (``allow_unsigned``): from a
    peer or a service, a true value is refused with ``permission_denied``, whatever its role.
    ``takes_caller``: the router passes who calls as the keyword argument ``caller`` (a
    :class:`Caller`; the method's default serves Python callers), e.g. to rate-limit each peer;
    it is not a parameter of the call, and a message cannot set it.
    """
    narrowed = {name: types if isinstance(types, tuple) else (types,) for name, types in (wire or {}).items()}

    def mark(func: F) -> F:
        checked: Any = func  # keep `func` typed as F: iscoroutinefunction would narrow it
        if not inspect.iscoroutinefunction(checked):
            raise TypeError(f"@api_method needs an 'async def' method; {func.__qualname__} is not")
        setattr(func, _MARK, _Mark(permission, narrowed, frozenset(local_only), takes_caller))
        return func

    return mark


@functools.cache
def method_table(api: type) -> Mapping[str, MethodSpec]:
    """The RPC table of an API class: each :func:`api_method` with its permission and parameters.

    A parameter's types come from its annotation (``str``, ``int``, ``bool``, ``bytes``, a list or
    sequence as ``list``, a map as ``dict``, ``X | None``); it is required when it has no default.
    An annotation the wire cannot carry is a :class:`TypeError` here, when the table is built.
    """
    table: dict[str, MethodSpec] = {}
    for name in dir(api):
        func = getattr(api, name)
        mark = getattr(func, _MARK, None)
        if not isinstance(mark, _Mark):
            continue
        hints = typing.get_type_hints(func)
        params: dict[str, Param] = {}
        for parameter in list(inspect.signature(func).parameters.values())[1:]:
            if mark.takes_caller and parameter.name == "caller":
                continue
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise TypeError(f"{api.__name__}.{name}: an RPC method takes named parameters only")
            types = mark.wire.get(parameter.name) or _wire_types(
                hints[parameter.name], f"{name}({parameter.name})"
            )
            params[parameter.name] = Param(types, required=parameter.default is parameter.empty)
        stray = (set(mark.wire) | mark.local_only) - set(params)
        if stray:
            raise TypeError(
                f"{api.__name__}.{name}: wire= or local_only= names no parameter: {sorted(stray)}"
            )
        if mark.takes_caller and "caller" not in inspect.signature(func).parameters:
            raise TypeError(f"{api.__name__}.{name}: takes_caller needs a keyword parameter 'caller'")
        table[name] = MethodSpec(name, mark.permission, params, mark.local_only, mark.takes_caller)
    return table


_WIRE_TYPES: dict[Any, type] = {
    str: str,
    int: int,
    bool: bool,
    bytes: bytes,
    float: float,
    type(None): type(None),
    list: list,
    abc.Sequence: list,
    dict: dict,
    abc.Mapping: dict,
}


def _wire_types(hint: Any, where: str) -> tuple[type, ...]:
    """The message types that carry a value of type ``hint``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(t for member in typing.get_args(hint) for t in _wire_types(member, where))
    carried = _WIRE_TYPES.get(typing.get_origin(hint) or hint)
    if carried is None:
        raise TypeError(f"{where}: the wire cannot carry {hint!r}; annotate it, or narrow it with wire=")
    return (carried,)


def check_params(path: str, spec: Mapping[str, Param], params: Mapping[str, Any]) -> dict[str, Any]:
    """Refuse unknown, missing and ill-typed parameters with a message naming them."""
    if not isinstance(params, Mapping):
        raise ServiceCallError(
            f"{path}: params must be a map, not {type(params).__name__}", code="bad_params"
        )
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise ServiceCallError(
            f"{path}: unknown parameter(s) {', '.join(map(str, unknown))}; "
            f"accepted: {', '.join(spec) or 'none'}",
            code="bad_params",
        )
    for name, param in spec.items():
        if name not in params:
            if param.required:
                raise ServiceCallError(f"{path}: missing parameter {name!r}", code="bad_params")
            continue
        value = params[name]
        # bool is an int subclass; a declared bool must be a real bool and vice versa
        if not isinstance(value, param.types) or (isinstance(value, bool) and bool not in param.types):
            wanted = " or ".join(t.__name__ for t in param.types)
            raise ServiceCallError(
                f"{path}: parameter {name!r} must be {wanted}, not {type(value).__name__}", code="bad_params"
            )
    return dict(params)


_LIFE_CYCLE = frozenset({"start_service", "stop_service", "restart_service"})


def _own_life_cycle(caller: Caller, method: str, params: Mapping[str, Any]) -> bool:
    """A service may start, stop and restart itself through its proxy, whatever else it may not do."""
    return (
        caller.service is not None
        and method in _LIFE_CYCLE
        and isinstance(params, Mapping)
        and params.get("service_name") == caller.service
    )


class RpcApi(Protocol):
    """What the table needs of the API it routes to (the :class:`~p2p_orchestrator.Orchestrator`).

    Its :func:`api_method` methods are the ``orchestrator/<method>`` paths.
    """

    @property
    def config(self) -> OrchestratorConfig: ...

    def remote_view(self, method: str, result: Any) -> Any:
        """What another node may see of ``method``'s ``result``."""

    async def call_service(self, service: str, method: str, params: dict[str, Any], caller: Caller) -> Any:
        """Call ``method`` of the running service ``service`` as ``caller``."""

    async def call_peer(self, peer: str, method: str, params: dict[str, Any]) -> Any:
        """Send the call to the node ``peer`` (a peer ID or a name of ``[peers]``)."""


class Rpc:
    """Routes ``"<target>/<method>"`` calls to the orchestrator or a service.

    ``await orch.rpc.call("orchestrator/list_services", {})`` is the local entry
    point of the spec; transports call :meth:`call` with the caller they
    authenticated.
    """

    def __init__(self, api: RpcApi) -> None:
        self._api = api
        self.methods = method_table(type(api))
        """The ``orchestrator/<method>`` table: name -> :class:`MethodSpec`."""

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        caller: Caller = LOCAL_CALLER,
        peer: str | None = None,
    ) -> Any:
        """Call ``method`` with ``params`` as ``caller``; returns the method's result.

        With ``peer`` (a peer ID, or a name of ``[peers]``) the call goes to that node instead, through the
        network layer; only callers on this node may send calls on (a remote
        peer cannot use this node as a relay).
        """
        if peer is not None:
            if not caller.is_local:
                raise PermissionDenied(f"peer {caller.peer_id} may not relay calls through this node")
            return await self._api.call_peer(peer, method, dict(params or {}))
        if not isinstance(method, str) or not (match := METHOD_PATH.fullmatch(method)):
            raise ServiceCallError(
                f"bad method path {method!r}: expected '<service>/<method>' or 'orchestrator/<method>'",
                code="bad_method",
            )
        target, name = match.groups()
        params = {} if params is None else params
        if target == "orchestrator":
            return await self._call_api(method, name, params, caller)
        if not isinstance(params, Mapping):
            raise ServiceCallError(f"{method}: params must be a map", code="bad_params")
        return await self._api.call_service(target, name, dict(params), caller)

    async def _call_api(self, path: str, name: str, params: Mapping[str, Any], caller: Caller) -> Any:
        spec = self.methods.get(name)
        if spec is None:
            raise ServiceCallError(
                f"unknown orchestrator method {name!r}; known: {', '.join(sorted(self.methods))}",
                code="unknown_method",
            )
        if spec.permission not in caller.permissions and not _own_life_cycle(caller, name, params):
            raise PermissionDenied(
                f"peer {caller.peer_id} may not call {path} (needs the {spec.permission.value} permission)"
            )
        kwargs = check_params(path, spec.params, params)
        if not caller.is_operator and (flags := sorted(f for f in spec.local_only if kwargs.get(f))):
            who = f"service {caller.service}" if caller.service is not None else f"peer {caller.peer_id}"
            raise PermissionDenied(
                f"{who} may not set {', '.join(flags)} with {path}: only this node's operator may "
                "(the Python API or the control socket)"
            )
        if kwargs.get("force_reinstall") is True and Permission.ADMIN not in caller.permissions:
            raise PermissionDenied(
                f"peer {caller.peer_id} may not force a reinstall or a downgrade with {path} "
                "(force_reinstall needs the admin permission)"
            )
        handler: Callable[..., Awaitable[Any]] = getattr(self._api, name)
        result = await (handler(**kwargs, caller=caller) if spec.takes_caller else handler(**kwargs))
        return result if caller.is_local else self._api.remote_view(name, result)
