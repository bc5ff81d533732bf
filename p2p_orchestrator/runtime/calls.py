"""Calls into a running service, and the calls a service makes through its proxy.

Into a service (:func:`call_service`): the method must be one the service
reported as exposed when it became ready, a caller limited to public methods
(another node) may call only ``public=True`` ones, a peer without a role only
those that also say ``requires_auth=False`` (and is told nothing more when
refused), and a call from another node must be admitted (:mod:`~p2p_orchestrator.runtime.admission`: ``busy`` beyond
bounded shares).

Out of a service (:class:`ProxyCalls`): a service's ``self.proxy.call(...)``
goes to this node's RPC table as a caller on this node (with ``peer=``, the
table relays it to that node when the network layer runs; ``no_network``
otherwise).  It arrives as ``runner/call`` on the channel to its process and is
served by a task of that channel, which is cancelled when the channel closes.  That is
right for calls into other services (nobody waits for the answer any more),
but not for ``orchestrator/*`` calls: a service that asks
``orchestrator/restart_service`` for itself closes its own channel halfway
through, and the restart would be cancelled after the stop and before the
start.  So ``orchestrator/*`` calls run *detached*, as tasks of the
supervisor's nursery: they finish whatever becomes of the caller, and the
caller gets the result if it is still there to take it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import outcome
import trio

from p2p_orchestrator.callers import Caller
from p2p_orchestrator.errors import PermissionDenied, ServiceCallError
from p2p_orchestrator.framework.caller import CallerInfo
from p2p_orchestrator.runtime.unit import ServiceUnit

__all__ = ["LocalCall", "ProxyCalls", "call_service"]

log = logging.getLogger("p2p_orchestrator.runtime")

LocalCall = Callable[[str, str, dict[str, Any], str | None], Awaitable[Any]]
"""How a service's proxy call reaches this node's RPC table, as that service:
``(service, method, params, peer)``; with a peer ID the table sends it on to that node."""
_DETACHED_PREFIX = "orchestrator/"


async def call_service(
    unit: ServiceUnit | None, target: str, method: str, params: dict[str, Any], caller: Caller
) -> Any:
    """Call ``target``'s exposed ``method`` for ``caller``; ``unit`` is ``target``'s, if it has one.

    A peer without a role learns nothing from a refusal: whether the service is
    missing, stopped, lacks the method or keeps it from strangers, it is told the
    same (``method_unavailable``), and the node's log says which.  Other remote
    callers see only public methods named in an ``unknown_method`` error.
    """
    proc = unit.process if unit is not None and unit.running else None
    info = proc.methods.get(method) if proc is not None else None
    if not caller.is_local and caller.role is None and not _open_to_strangers(info):
        log.info("A peer without a role (%s) was refused %s/%s", caller.peer_id, target, method)
        raise PermissionDenied(
            f"{target}/{method} is not available to peers without a role on this node",
            code="method_unavailable",
        )
    if unit is None or proc is None:
        state = f" (state: {unit.state.value})" if unit is not None else ""
        raise ServiceCallError(
            f"cannot call {target}/{method}: service {target!r} is not running{state}",
            code="service_not_running",
        )
    if info is None:
        shown = sorted(m for m, i in proc.methods.items() if not caller.public_only or i.get("public", False))
        raise ServiceCallError(
            f"service {target!r} has no exposed method {method!r}; exposed: {', '.join(shown) or 'none'}",
            code="unknown_method",
        )
    if caller.public_only and not info.get("public", False):
        raise PermissionDenied(
            f"{target}/{method} is not public: only callers on this node may call it",
            code="method_not_public",
        )
    started = time.monotonic()
    failed = True
    try:
        with proc.admission.admit(caller):
            who = CallerInfo(caller.peer_id, caller.role, caller.service)
            result = await proc.call(method, params, caller=who)
        failed = False
        return result
    finally:
        unit.call_stats.record(time.monotonic() - started, failed=failed)


def _open_to_strangers(info: dict[str, Any] | None) -> bool:
    """Whether a method (as its service reported it) is for peers without a role too."""
    return info is not None and bool(info.get("public")) and info.get("requires_auth", True) is False


class ProxyCalls:
    """Carries out services' proxy calls; see the module docstring."""

    def __init__(self, nursery: trio.Nursery, local_call: LocalCall) -> None:
        self._nursery = nursery
        self._local_call = local_call

    async def __call__(self, service: str, method: str, params: dict[str, Any], peer: str | None) -> Any:
        """A :data:`~p2p_orchestrator.runtime.process.ProxyCall`: ``(service, method, params, peer) -> result``."""
        if peer is None and method.startswith(_DETACHED_PREFIX):
            return await self._detached(service, method, params)
        return await self._local_call(service, method, params, peer)

    async def _detached(self, service: str, method: str, params: dict[str, Any]) -> Any:
        done = trio.Event()
        box: list[outcome.Outcome[Any]] = []
        waiting = True

        async def run() -> None:
            try:
                result: outcome.Outcome[Any] = outcome.Value(
                    await self._local_call(service, method, params, None)
                )
            except Exception as exc:
                result = outcome.Error(exc)
                if not waiting:  # its caller is gone: the log is the only place left for the error
                    log.warning("%s, called by a service that went away meanwhile, failed: %s", method, exc)
            box.append(result)
            done.set()

        self._nursery.start_soon(run)
        try:
            await done.wait()
        finally:
            waiting = False
        return box[0].unwrap()
