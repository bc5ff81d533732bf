"""The operations a dashboard page may ask for, each one method of the RPC table.

A request is a JSON object: ``{"action", "service", "peer"?, ...}``.  ``peer`` names the node to
act on (a peer ID or a name of ``[peers]``; absent or this node's ID: this node); on another node
the call goes over the RPC protocol and that node decides by the role it gives this one, exactly
as for ``p2p-orchestrator stop NAME --peer PEER``.

=============  ===============================  ==========================================
action         method                           more fields
=============  ===============================  ==========================================
``start``      ``start_service``
``stop``       ``stop_service``
``restart``    ``restart_service``
``rollback``   ``rollback_service``
``rollout``    ``rollout_service`` (here only)  ``targets`` (peer IDs), ``canary``, ``wave``,
                                                ``health_wait`` (seconds, default 30)
``replicas``   ``set_replicas``                 ``count`` (0 or more)
=============  ===============================  ==========================================

A rollout is started and answered at once (``wait=False``): the operations page follows it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from p2p_orchestrator._patterns import PEER_ID
from p2p_orchestrator.callers import LOCAL_CALLER
from p2p_orchestrator.dashboard.errors import DashboardError

if TYPE_CHECKING:
    from p2p_orchestrator.node import Node

__all__ = ["ACTIONS", "Action", "parse_action", "run_action"]

log = logging.getLogger("p2p_orchestrator.dashboard")

ACTIONS = ("start", "stop", "restart", "rollback", "rollout", "replicas")
_SIMPLE = {
    "start": "start_service",
    "stop": "stop_service",
    "restart": "restart_service",
    "rollback": "rollback_service",
}
_MAX_TARGETS = 256


@dataclass(frozen=True)
class Action:
    """One checked request: the method to call, its parameters, and where."""

    name: str
    method: str
    params: dict[str, Any]
    peer: str | None


def _text(body: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 256:
        raise DashboardError(f"{key} must be a non-empty string", code="bad_request")
    return value


def _count(body: Mapping[str, Any], key: str, default: int, low: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 10_000:
        raise DashboardError(f"{key} must be a whole number from {low}", code="bad_request")
    return value


def _seconds(body: Mapping[str, Any], key: str, default: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
        raise DashboardError(f"{key} must be a number of seconds from 0 to 3600", code="bad_request")
    return float(value)


def parse_action(body: Any) -> Action:
    """The action a request body asks for; ``bad_request`` or ``unknown_action`` if none."""
    if not isinstance(body, dict):
        raise DashboardError("an action is a JSON object", code="bad_request")
    name = _text(body, "action")
    if name not in ACTIONS:
        raise DashboardError(f"unknown action {name!r}; known: {', '.join(ACTIONS)}", code="unknown_action")
    service = _text(body, "service")
    peer = _text(body, "peer", required=False)
    if name in _SIMPLE:
        return Action(name, _SIMPLE[name], {"service_name": service}, peer)
    if name == "replicas":
        return Action(
            name, "set_replicas", {"service_name": service, "count": _count(body, "count", 1, 0)}, peer
        )
    targets = body.get("targets")
    if (
        not isinstance(targets, list)
        or not 0 < len(targets) <= _MAX_TARGETS
        or not all(isinstance(t, str) and PEER_ID.fullmatch(t) for t in targets)
    ):
        raise DashboardError("targets must be a list of peer IDs", code="bad_request")
    if peer is not None:
        raise DashboardError("a rollout is run by this node: no peer", code="bad_request")
    params = {
        "targets": targets,
        "service_name": service,
        "canary": _count(body, "canary", 1, 0),
        "wave": _count(body, "wave", 1, 1),
        "health_wait": _seconds(body, "health_wait", 30.0),
        "wait": False,
    }
    return Action(name, "rollout_service", params, None)


async def run_action(node: Node, action: Action) -> Any:
    """Call the action's method here or on its peer; the method's result or its typed error."""
    peer = node.orchestrator.config.resolve_peer(action.peer) if action.peer is not None else None
    if peer == node.peer_id:
        peer = None
    log.info(
        "Dashboard action %s of %s on %s",
        action.name,
        action.params.get("service_name"),
        peer or "this node",
    )
    return await node.rpc.call(f"orchestrator/{action.method}", action.params, caller=LOCAL_CALLER, peer=peer)
