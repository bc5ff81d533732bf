"""``FleetView``: what the dashboard's pages show, gathered from this node and from its peers.

This node's figures come from its orchestrator as its own caller; another node's come over the
RPC protocol, so that node answers as the role it gives this one (``reader`` is enough to read;
a peer that gives none answers ``permission_denied``, shown as "no access").  Each peer is asked
at most :data:`PEER_TIMEOUT` seconds, all at once: a page never waits on the slowest peer for
longer than that.

Peer IDs are shown shortened as libp2p's tools do (``ShortString``: the first 2 characters, ``*``,
the last 6), with the name ``[peers]`` gives them, if any.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from p2p_orchestrator.callers import LOCAL_CALLER
from p2p_orchestrator.dashboard.errors import DashboardError
from p2p_orchestrator.dashboard.tracker import Distributions, History
from p2p_orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    from p2p_orchestrator.node import Node

__all__ = ["PEER_CACHE_SECONDS", "PEER_TIMEOUT", "FleetView", "short_peer_id"]

PEER_TIMEOUT = 3.0
PEER_CACHE_SECONDS = 1.0
_MAX_CACHED = 512
_LOG_LINES = 30
_EVENTS = 200

_NOT_CONNECTED = {"code": "not_connected", "message": "not connected"}

Reply = tuple[Any, dict[str, str] | None]
"""A method's result, or ``None`` and ``{"code", "message"}`` of why there is none."""


def short_peer_id(peer_id: str) -> str:
    """``12*AbCdEf``: libp2p's short form of a peer ID."""
    return f"{peer_id[:2]}*{peer_id[-6:]}" if len(peer_id) > 8 else peer_id


def _health(services: Mapping[str, Any]) -> str:
    """One word for a node's services: ``healthy``, ``degraded`` (one failed or unhealthy), ``idle``."""
    if not services:
        return "idle"
    for entry in services.values():
        health = (entry.get("health") or {}).get("status")
        if entry.get("state") == "failed" or health == "unhealthy":
            return "degraded"
    return "healthy"


class FleetView:
    """The data of each page; see the module docstring."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.distributions = Distributions()
        self.history = History()
        self._cache: dict[tuple[str, str, str], tuple[float, Reply]] = {}

    # -- calls --------------------------------------------------------------------------------

    def _target(self, peer_id: str) -> str | None:
        """``None`` for this node (a local call), else the peer ID (a name of ``[peers]`` resolved)."""
        peer_id = self._node.orchestrator.config.resolve_peer(peer_id)
        return None if peer_id == self._node.peer_id else peer_id

    async def ask(self, peer_id: str | None, method: str, params: dict[str, Any] | None = None) -> Reply:
        """``orchestrator/<method>`` here (``peer_id`` ``None`` or ours) or on a peer, bounded in time.

        A peer's answer is kept :data:`PEER_CACHE_SECONDS`: pages open in several tabs, each
        refreshed at every event of this node, ask a peer once.
        """
        peer = None if peer_id is None else self._target(peer_id)
        if peer is None:
            return await self._call(None, method, params or {})
        key = (peer, method, repr(sorted((params or {}).items())))
        kept = self._cache.get(key)
        if kept is not None and trio.current_time() - kept[0] < PEER_CACHE_SECONDS:
            return kept[1]
        reply = await self._call(peer, method, params or {})
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (trio.current_time(), reply)
        return reply

    def forget(self, peer_id: str | None) -> None:
        """Drop what was kept of ``peer_id``'s answers (after an action there)."""
        peer = None if peer_id is None else self._target(peer_id)
        for key in [key for key in self._cache if key[0] == peer]:
            del self._cache[key]

    async def _call(self, peer: str | None, method: str, params: dict[str, Any]) -> Reply:
        try:
            with trio.fail_after(PEER_TIMEOUT):
                result = await self._node.rpc.call(
                    f"orchestrator/{method}", params, caller=LOCAL_CALLER, peer=peer
                )
        except trio.TooSlowError:
            return None, {"code": "peer_timeout", "message": f"no answer within {PEER_TIMEOUT:g} s"}
        except OrchestratorError as exc:
            return None, {"code": exc.code, "message": exc.message}
        return result, None

    # -- who is who -----------------------------------------------------------------------------

    def _names(self) -> dict[str, str]:
        return {peer: name for name, peer in self._node.orchestrator.config.peers.items()}

    def _members(self) -> list[dict[str, Any]]:
        """This node first, then every peer it knows: identity, connection, role here."""
        names = self._names()
        me = self._node.peer_id
        members: list[dict[str, Any]] = [
            {
                "peer_id": me,
                "short": short_peer_id(me),
                "name": names.get(me),
                "self": True,
                "connected": True,
                "role": "self",
            }
        ]
        for peer in self._node.peers():
            if peer.peer_id == me:
                continue
            members.append(
                {
                    "peer_id": peer.peer_id,
                    "short": short_peer_id(peer.peer_id),
                    "name": names.get(peer.peer_id),
                    "self": False,
                    "connected": peer.connected,
                    "role": peer.role,
                }
            )
        return members

    def _member(self, peer_id: str) -> dict[str, Any]:
        target = self._target(peer_id) or self._node.peer_id
        for member in self._members():
            if member["peer_id"] == target:
                return member
        raise DashboardError(f"this node does not know {peer_id}", code="not_found")

    async def _each(
        self, peers: list[str], method: str, params: dict[str, Any] | None = None
    ) -> dict[str, Reply]:
        replies: dict[str, Reply] = {}

        async def one(peer: str) -> None:
            replies[peer] = await self.ask(peer, method, params)

        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(one, peer)
        return replies

    # -- pages ----------------------------------------------------------------------------------

    async def fleet(self) -> dict[str, Any]:
        """Every node this one knows, with its services (as far as it lets this node read them)."""
        members = self._members()
        replies = await self._each(
            [m["peer_id"] for m in members if m["self"] or m["connected"]], "list_services"
        )
        for member in members:
            listed, error = replies.get(member["peer_id"], (None, _NOT_CONNECTED))
            member["error"] = error
            services: Mapping[str, Any] = listed["services"] if isinstance(listed, dict) else {}
            member["services"] = {
                name: {
                    "version": entry.get("version"),
                    "state": entry.get("state"),
                    "health": (entry.get("health") or {}).get("status"),
                }
                for name, entry in services.items()
            }
            member["services_total"] = len(services) if listed is not None else None
            member["services_running"] = sum(1 for e in services.values() if e.get("state") == "running")
            member["health"] = _health(services) if listed is not None else "unknown"
        return {"self": self._node.peer_id, "nodes": members}

    async def node(self, peer_id: str) -> dict[str, Any]:
        """One node: its services with state, version, uptime, restarts, health, and recent figures."""
        member = self._member(peer_id)
        peer = member["peer_id"]
        listed, error = await self.ask(peer, "list_services")
        metrics, _ = await self.ask(peer, "get_metrics") if error is None else (None, None)
        figures = metrics.get("services", {}) if isinstance(metrics, dict) else {}
        if figures:
            self.history.record(peer, figures)
        services = []
        for name, entry in (listed or {}).get("services", {}).items():
            services.append(
                {
                    "name": name,
                    "version": entry.get("version"),
                    "state": entry.get("state"),
                    "desired_state": entry.get("desired_state"),
                    "uptime_seconds": entry.get("uptime_seconds"),
                    "restart_count": entry.get("restart_count"),
                    "health": (entry.get("health") or {}).get("status"),
                    "last_error": entry.get("last_error"),
                    "replicas": entry.get("replicas"),
                    "calls": (figures.get(name) or {}).get("calls"),
                    "call_errors": (figures.get(name) or {}).get("call_errors"),
                }
            )
        node_figures = metrics.get("node") if isinstance(metrics, dict) else None
        return {
            **member,
            "error": error,
            "services": services,
            "node": node_figures,
            "history": self.history.of(peer),
        }

    async def logs(self, peer_id: str, service_name: str) -> dict[str, Any]:
        """The last lines of one service's output on one node."""
        peer = self._member(peer_id)["peer_id"]
        result, error = await self.ask(
            peer, "get_service_logs", {"service_name": service_name, "lines": _LOG_LINES}
        )
        return {"service_name": service_name, "lines": (result or {}).get("lines", []), "error": error}

    async def service(self, name: str) -> dict[str, Any]:
        """One service across the fleet: which version runs where, its replicas, updates, rollouts.

        ``releases`` are the versions this node keeps of it (newest first, ``current`` and
        ``signed`` marked): what a rollback goes back to, and what a rollout sends.
        """
        fleet = await self.fleet()
        where = [
            {
                "peer_id": m["peer_id"],
                "short": m["short"],
                "name": m["name"],
                "self": m["self"],
                **m["services"][name],
            }
            for m in fleet["nodes"]
            if name in m["services"]
        ]
        replicas, _ = await self.ask(None, "get_replicas", {"service_name": name})
        info, _ = await self.ask(None, "get_service_info", {"service_name": name})
        updates, _ = await self.ask(None, "get_updates")
        rollouts, _ = await self.ask(None, "rollout_status")
        return {
            "service_name": name,
            "nodes": where,
            "versions": sorted({str(entry["version"]) for entry in where}, key=_version_order),
            "replicas": replicas,
            "releases": (info or {}).get("versions", []),
            "updates": _about(updates, name),
            "rollouts": [r for r in (rollouts or {}).get("rollouts", []) if r.get("service_name") == name],
            "distributions": [d for d in self.distributions.recent() if d["service"] == name],
        }

    async def operations(self) -> dict[str, Any]:
        """Distributions and rollouts this node runs or ran lately; ``names``: how to show each peer."""
        rollouts, error = await self.ask(None, "rollout_status")
        return {
            "distributions": self.distributions.recent(),
            "rollouts": (rollouts or {}).get("rollouts", []),
            "error": error,
            "names": {m["peer_id"]: m["name"] or m["short"] for m in self._members()},
        }

    async def events(self) -> dict[str, Any]:
        """This node's recent events, oldest first."""
        result, error = await self.ask(None, "get_events", {"limit": _EVENTS})
        return {"events": (result or {}).get("events", []), "error": error}


def _version_order(version: str) -> tuple[tuple[int, ...], str]:
    """``1.2.0`` before ``1.10.0``: the numbers of ``MAJOR.MINOR.PATCH`` first, then the text."""
    core = version.split("+", 1)[0].split("-", 1)[0]
    return tuple(int(part) if part.isdigit() else 0 for part in core.split(".")), version


def _about(updates: Any, name: str) -> Any:
    """The part of ``get_updates`` about service ``name`` (the whole answer when its shape is unknown)."""
    if isinstance(updates, dict) and isinstance(updates.get("services"), dict):
        return updates["services"].get(name)
    return updates
