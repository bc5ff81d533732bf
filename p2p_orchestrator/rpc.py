"""The RPC table: method paths, their parameters and who may call them.

``"orchestrator/<method>"`` paths reach the :class:`~p2p_orchestrator.Orchestrator`
API; ``"<service>/<method>"`` paths reach a running service's exposed methods.
The same table serves local calls (``orch.rpc.call``), the node's control socket
and remote peers: only the caller's permissions differ.  Parameters are checked
here, before anything runs, so every entry point refuses bad input the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from p2p_orchestrator._patterns import METHOD_PATH
from p2p_orchestrator.callers import LOCAL_CALLER, Caller, Permission
from p2p_orchestrator.config import OrchestratorConfig
from p2p_orchestrator.errors import PermissionDenied, ServiceCallError

__all__ = ["Caller", "LOCAL_CALLER", "METHODS", "MethodSpec", "Permission", "Rpc"]


@dataclass(frozen=True)
class Param:
    types: tuple[type, ...]
    required: bool = True


@dataclass(frozen=True)
class MethodSpec:
    """One orchestrator method as the RPC table exposes it."""

    name: str
    permission: Permission
    params: Mapping[str, Param]


_NAME = {"service_name": Param((str,))}

METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            "install_service",
            Permission.DEPLOY,
            {"archive_data": Param((bytes,)), "force_reinstall": Param((bool,), required=False)},
        ),
        MethodSpec(
            "uninstall_service", Permission.DEPLOY, {**_NAME, "force": Param((bool,), required=False)}
        ),
        MethodSpec("start_service", Permission.DEPLOY, _NAME),
        MethodSpec("stop_service", Permission.DEPLOY, {**_NAME, "force": Param((bool,), required=False)}),
        MethodSpec("restart_service", Permission.DEPLOY, _NAME),
        # a rollback is a downgrade: only an admin (or the local operator) may force one
        MethodSpec("rollback_service", Permission.ADMIN, {**_NAME, "force": Param((bool,), required=False)}),
        MethodSpec("list_services", Permission.READ, {}),
        MethodSpec("get_service_info", Permission.READ, _NAME),
        MethodSpec("export_service", Permission.READ, _NAME),
        MethodSpec("get_orchestrator_status", Permission.READ, {}),
        MethodSpec(
            "get_metrics", Permission.READ, {"service_name": Param((str, type(None)), required=False)}
        ),
        MethodSpec("get_service_logs", Permission.READ, {**_NAME, "lines": Param((int,), required=False)}),
        MethodSpec(
            "get_events",
            Permission.READ,
            {"limit": Param((int,), required=False), "types": Param((list, type(None)), required=False)},
        ),
        MethodSpec(
            "distribute_service",
            Permission.DEPLOY,
            {
                **_NAME,
                "target_nodes": Param((list,)),
                "force_reinstall": Param((bool,), required=False),
                "auto_start": Param((bool, type(None)), required=False),
                "strategy": Param((str,), required=False),
                "concurrency": Param((int, type(None)), required=False),
            },
        ),
        MethodSpec(
            "fetch_service",
            Permission.DEPLOY,
            {**_NAME, "from_peer": Param((str,)), "force_reinstall": Param((bool,), required=False)},
        ),
    )
}


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


ServiceCallHandler = Callable[[str, str, dict[str, Any], Caller], Awaitable[Any]]
RemoteCallHandler = Callable[[str, str, dict[str, Any]], Awaitable[Any]]
"""``(peer_id, method, params) -> result``: how a call addressed to another node leaves this one."""


class _Api(Protocol):
    """What the table needs of the API it routes to (the :class:`~p2p_orchestrator.Orchestrator`)."""

    @property
    def config(self) -> OrchestratorConfig: ...

    def remote_view(self, method: str, result: Any) -> Any: ...


class Rpc:
    """Routes ``"<target>/<method>"`` calls to the orchestrator or a service.

    ``await orch.rpc.call("orchestrator/list_services", {})`` is the local entry
    point of the spec; transports call :meth:`call` with the caller they
    authenticated.
    """

    def __init__(self, orchestrator: _Api) -> None:
        self._orchestrator = orchestrator
        self.service_call_handler: ServiceCallHandler | None = None
        """Set by the runtime: how ``"<service>/<method>"`` calls reach a service."""
        self.remote_call_handler: RemoteCallHandler | None = None
        """Set by the node (:mod:`p2p_orchestrator.node`): how calls with ``peer=`` reach another node."""

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
            return await self._call_peer(peer, method, params, caller)
        if not isinstance(method, str) or not (match := METHOD_PATH.fullmatch(method)):
            raise ServiceCallError(
                f"bad method path {method!r}: expected '<service>/<method>' or 'orchestrator/<method>'",
                code="bad_method",
            )
        target, name = match.groups()
        params = {} if params is None else params
        if target == "orchestrator":
            spec = METHODS.get(name)
            if spec is None:
                raise ServiceCallError(
                    f"unknown orchestrator method {name!r}; known: {', '.join(sorted(METHODS))}",
                    code="unknown_method",
                )
            if spec.permission not in caller.permissions and not _own_life_cycle(caller, name, params):
                raise PermissionDenied(
                    f"peer {caller.peer_id} may not call {method} (needs the {spec.permission.value} permission)"
                )
            kwargs = check_params(method, spec.params, params)
            if kwargs.get("force_reinstall") is True and Permission.ADMIN not in caller.permissions:
                raise PermissionDenied(
                    f"peer {caller.peer_id} may not force a reinstall or a downgrade with {method} "
                    "(force_reinstall needs the admin permission)"
                )
            handler: Callable[..., Awaitable[Any]] = getattr(self._orchestrator, name)
            result = await handler(**kwargs)
            return result if caller.is_local else self._orchestrator.remote_view(name, result)
        if not isinstance(params, Mapping):
            raise ServiceCallError(f"{method}: params must be a map", code="bad_params")
        if self.service_call_handler is None:
            raise ServiceCallError(
                f"cannot call {method}: service {target!r} is not running", code="service_not_running"
            )
        return await self.service_call_handler(target, name, dict(params), caller)

    async def _call_peer(
        self, peer: str, method: str, params: Mapping[str, Any] | None, caller: Caller
    ) -> Any:
        if not caller.is_local:
            raise PermissionDenied(f"peer {caller.peer_id} may not relay calls through this node")
        if self.remote_call_handler is None:
            raise ServiceCallError(
                f"cannot call {method} on peer {peer}: this node runs no network layer", code="no_network"
            )
        peer_id = self._orchestrator.config.resolve_peer(peer)
        return await self.remote_call_handler(peer_id, method, dict(params or {}))
